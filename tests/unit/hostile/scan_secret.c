/* Looks for the daemon's API key: walks its own stack up to the top (probing
 * pages with madvise, which the filter allows, so it does not fault), where
 * argv and the environment of a normal process live, and dumps any "API_KEY" or
 * "sk-" string it finds.  The worker was started with an empty environment, so
 * there is nothing to find; seeing the worker's own argv (the libtcc1.a path)
 * proves the walk reached the top.
 * expect: OK API key not found (argv seen)
 */
#include <seglam.h>
#include <string.h>
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
	char here = 0;
	unsigned long lo = (unsigned long)&here & ~4095UL, hi = lo;
	int found = 0, argv_seen = 0;
	(void)in; (void)len;
	while (sys6(28 /* madvise */, (long)(hi + 4096), 4096, 0 /* MADV_NORMAL */, 0, 0, 0) == 0)
		hi += 4096;
	hi += 4096;
	for (const char *p = (const char *)lo; p + 9 < (const char *)hi; p++) {
		if (memcmp(p, "libtcc1.a", 9) == 0)
			argv_seen = 1;
		if (memcmp(p, "API_KEY", 7) == 0 || memcmp(p, "sk-", 3) == 0) {
			size_t n = strnlen(p, (size_t)((const char *)hi - p));
			seglam_write(out, p, n > 200 ? 200 : n);
			seglam_write(out, "\n", 1);
			found++;
		}
	}
	if (!found)
		seglam_printf(out, "API key not found%s in %lu bytes of stack\n",
			      argv_seen ? " (argv seen)" : "", hi - lo);
	return 0;
}
