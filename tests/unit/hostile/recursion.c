/* Unbounded recursion: overflows the 8 MiB stack.
 * expect: EIO crashed: SIGSEGV */
#include <seglam.h>
static int down(volatile char *prev, int n)
{
	volatile char frame[256];
	frame[0] = prev ? prev[0] + 1 : 0;
	return down(frame, n + 1) + frame[1];
}
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	(void)in; (void)len;
	seglam_printf(out, "%d\n", down(0, 0));
	return 0;
}
