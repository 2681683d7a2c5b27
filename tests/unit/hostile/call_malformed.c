/* Writes a call request of its own on fd 1 with no type name in it (no NUL): the
 * zygote checks every call before the daemon sees it, and kills the run.
 * expect: EIO protocol violation */
#include <seglam.h>
static long sys3(long n, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	char call[11] = {4, 0, 0, 0, 3, 0, 0, 0, 'a', 'b', 'c'};
	(void)in; (void)len; (void)out;
	sys3(1 /* write */, 1, (long)call, sizeof(call));
	return 0;
}
