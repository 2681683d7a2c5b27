/* Reads fd 15, where the zygote keeps the daemon's load pipe (a later type's
 * source would come there): every child the zygote forks closes it first, so
 * the read fails with EBADF (or the filter refuses it), and never waits there.
 * expect: OK|EIO -9 | forbidden system call */
#include <seglam.h>
static long sys3(long n, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	char buf[64];
	(void)in; (void)len;
	seglam_printf(out, "%ld\n", sys3(0 /* read */, 15, (long)buf, sizeof(buf)));
	return 0;
}
