/* In text skipped by #if 0, tcc passes over a stray backslash without ending the
 * start of the line, so "\#warning" is a #warning there (raw line).
 * expect: ENOEXEC stray '\\' outside a literal */
#include <seglam.h>
#if 0
\#warning /*
#endif
#include "/etc/passwd"
// */
int seglam_run(const char *in, size_t len, seglam_out *out) { return 0; }
