/* The same with a character literal and a #pragma.
 * expect: ENOEXEC missing terminating ' character */
#include <seglam.h>
char c = 'x
/* '
#pragma comment(option, "-b")
// */
int seglam_run(const char *in, size_t len, seglam_out *out) { return 0; }
