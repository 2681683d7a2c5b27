/* The same, hidden behind a comment and a line splice.
 * expect: ENOEXEC is not allowed */
#include <seglam.h>
/* x */ # inc\
lude "/etc/passwd"
int seglam_run(const char *in, size_t len, seglam_out *out) { return 0; }
