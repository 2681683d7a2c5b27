/* execve("/bin/sh", ["sh", "-c", "touch /tmp/seglam-pwned-execve"]).
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
	const char *argv[] = {"sh", "-c", "touch /tmp/seglam-pwned-execve", 0};
	const char *envp[] = {0};
	(void)in; (void)len;
	seglam_printf(out, "execve %ld\n",
		      sys6(59 /* execve */, (long)"/bin/sh", (long)argv, (long)envp, 0, 0, 0));
	return 0;
}
