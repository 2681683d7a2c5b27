/* Makes a heap page executable to run new machine code from it (the zygote's
 * filter allows mprotect to PROT_EXEC for its compile children; a run's child
 * must refuse it itself).
 * expect: EIO forbidden system call */
#include <seglam.h>
#include <stdlib.h>
static long sys3(long n, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	char *p = malloc(8192);
	long page = ((long)p + 4095) & ~4095L;
	long r = sys3(10 /* mprotect */, page, 4096, 7 /* RWX */);
	(void)in; (void)len;
	seglam_printf(out, "mprotect %ld\n", r);
	return 0;
}
