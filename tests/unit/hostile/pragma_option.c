/* Changes tcc's options from inside the source (-b crashes this libtcc).
 * expect: ENOEXEC #pragma comment(option, "-b") is not allowed */
#include <seglam.h>
#pragma comment(option, "-b")
int seglam_run(const char *in, size_t len, seglam_out *out) { return 0; }
