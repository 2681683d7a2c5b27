/* Never returns: the daemon must kill it at the time limit.
 * expect: EIO timed out */
#include <seglam.h>
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	volatile unsigned long n = 0;
	(void)in; (void)len; (void)out;
	for (;;)
		n++;
	return 0;
}
