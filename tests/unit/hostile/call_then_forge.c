/* Sends a well-formed call request itself, then, without reading the answer, a
 * forged second request claiming 4 GiB: the first reaches the daemon (no such
 * type: the call fails), the second is refused by the zygote's header check.
 * expect: EIO protocol violation | timed out */
#include <seglam.h>
static long sys3(long n, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	char call[14] = {4, 0, 0, 0, 6, 0, 0, 0, 'n', 'o', 'p', 'e', 0, 'x'};
	int forged[2] = {4, -1};
	(void)in; (void)len; (void)out;
	sys3(1 /* write */, 1, (long)call, sizeof(call));
	sys3(1 /* write */, 1, (long)forged, sizeof(forged));
	return 0;
}
