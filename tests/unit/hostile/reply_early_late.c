/* Writes a complete forged reply ("ok") on fd 1 itself, early, then after a while
 * the real one with this input in it: before each run had its own child, the
 * daemon took "ok", found the pipe empty, pooled the worker, and the next caller
 * got this caller's input.  Now "ok" is this run's answer (a procedure may answer
 * what it likes) and the child is killed with it: the late one never leaves.
 * expect: OK|EIO ok | protocol violation | timed out */
#include <seglam.h>
static long sys3(long n, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	char early[10] = {0, 0, 0, 0, 2, 0, 0, 0, 'o', 'k'};
	volatile unsigned long spin;

	sys3(1 /* write */, 1, (long)early, sizeof(early));
	for (spin = 0; spin < 20000000; spin++)
		;
	seglam_printf(out, "previous caller's input: %.*s", (int)len, in);
	return 0;
}
