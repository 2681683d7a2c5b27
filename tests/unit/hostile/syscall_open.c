/* open("/etc/passwd") with the syscall instruction, then copy it into the answer.
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
	char buf[4096];
	long fd = sys6(2 /* open */, (long)"/etc/passwd", 0, 0, 0, 0, 0), n;
	(void)in; (void)len;
	if (fd < 0)
		fd = sys6(257 /* openat */, -100, (long)"/etc/passwd", 0, 0, 0, 0);
	while ((n = sys6(0 /* read */, fd, (long)buf, sizeof(buf), 0, 0, 0)) > 0)
		seglam_write(out, buf, (size_t)n);
	return 0;
}
