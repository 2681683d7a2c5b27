/* Gets tcc to read a file of the host into a compile error message.
 * expect: ENOEXEC #include "/etc/passwd" is not allowed */
#include <seglam.h>
#include "/etc/passwd"
int seglam_run(const char *in, size_t len, seglam_out *out) { return 0; }
