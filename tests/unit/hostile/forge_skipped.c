/* Writes a batch's "skipped, send again" frame on fd 1 as the final frame of a
 * single run: the zygote passes it on (it cannot tell a batch from a single run),
 * and the daemon must fail the run on the procedure, not blame the worker.
 * expect: EIO protocol violation from the procedure */
#include <seglam.h>
static long sys3(long n, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	int hdr[2] = {5 /* FRAME_SKIPPED */, 0};
	(void)in; (void)len; (void)out;
	sys3(1 /* write */, 1, (long)hdr, sizeof(hdr));
	return 0;
}
