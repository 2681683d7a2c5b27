/* Writes through a NULL pointer.
 * expect: EIO crashed: SIGSEGV */
#include <seglam.h>
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	volatile int *p = 0;
	(void)in; (void)len; (void)out;
	*p = 42;
	return 0;
}
