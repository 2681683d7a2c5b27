/* socket(AF_INET, SOCK_STREAM) and connect to 127.0.0.1:22 with raw syscalls.
 * expect: EIO forbidden system call */
#include <seglam.h>
static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	__asm__ volatile("mov %5, %%r10\n\tmov %6, %%r8\n\tmov %7, %%r9\n\tsyscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "m"(d), "m"(e), "m"(f)
			 : "rcx", "r8", "r9", "r10", "r11", "memory");
	return ret;
}
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	unsigned char sa[16] = {2, 0, 0, 22, 127, 0, 0, 1};
	long fd = sys6(41 /* socket */, 2, 1, 0, 0, 0, 0);
	(void)in; (void)len;
	seglam_printf(out, "socket %ld connect %ld\n", fd,
		      sys6(42 /* connect */, fd, (long)sa, sizeof(sa), 0, 0, 0));
	return 0;
}
