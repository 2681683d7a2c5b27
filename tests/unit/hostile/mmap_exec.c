/* Maps a fresh executable page to run new machine code from it.
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
	long p = sys6(9 /* mmap */, 0, 4096, 7 /* RWX */, 0x22 /* PRIVATE|ANON */, -1, 0);
	(void)in; (void)len;
	seglam_printf(out, "mmap %lx\n", p);
	return 0;
}
