/* Waits on its request pipe with poll (the zygote's filter allows poll for its
 * compile children, which look for their load while they pre-fault their pages;
 * a run's child must refuse it itself).
 * expect: EIO forbidden system call */
#include <seglam.h>
static long sys3(long n, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	int fds[2] = {0, 1}; /* struct pollfd {fd 0, POLLIN} */
	long r = sys3(7 /* poll */, (long)fds, 1, 0);
	(void)in; (void)len;
	seglam_printf(out, "poll %ld\n", r);
	return 0;
}
