/* fork(), then clone() and vfork() in case fork alone is filtered.
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
	long a = sys6(57 /* fork */, 0, 0, 0, 0, 0, 0);
	long b = sys6(56 /* clone */, 17 /* SIGCHLD */, 0, 0, 0, 0, 0);
	long c = sys6(58 /* vfork */, 0, 0, 0, 0, 0, 0);
	(void)in; (void)len;
	if (a == 0 || b == 0 || c == 0)
		for (;;)
			;
	seglam_printf(out, "fork %ld clone %ld vfork %ld\n", a, b, c);
	return 0;
}
