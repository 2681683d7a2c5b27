/* Calls abort(), which is allowed: it is reported as a crash.
 * expect: EIO crashed: SIGABRT */
#include <seglam.h>
#include <stdlib.h>
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	(void)in; (void)len; (void)out;
	abort();
	return 0;
}
