/* The same in text skipped by #if 0, where tcc also reads a #warning line raw:
 * the #endif after it ends the skipped part and the #pragma is executed.
 * expect: ENOEXEC #pragma comment(option, "-b") is not allowed */
#include <seglam.h>
#if 0
#warning /*
#endif
#pragma comment(option, "-b")
// */
int seglam_run(const char *in, size_t len, seglam_out *out) { return 0; }
