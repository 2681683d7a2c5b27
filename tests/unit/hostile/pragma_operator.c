/* The same through the _Pragma operator.
 * expect: ENOEXEC _Pragma operator is not allowed */
#include <seglam.h>
_Pragma("comment(option, \"-b\")")
int seglam_run(const char *in, size_t len, seglam_out *out) { return 0; }
