/* tcc reads the rest of a #warning line raw: the comment opener there opens
 * nothing, so the #include after it is a directive to tcc, and must be to the
 * precheck too.
 * expect: ENOEXEC #include "/etc/passwd" is not allowed */
#include <seglam.h>
#warning /*
#include "/etc/passwd"
// */
int seglam_run(const char *in, size_t len, seglam_out *out) { return 0; }
