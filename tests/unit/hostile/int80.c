/* The 32-bit syscall entry (int $0x80) uses other numbers: 5 is open there.  With
 * IA32 emulation the filter (x86_64 only) kills it with SIGSYS; a kernel without
 * it (CONFIG_IA32_EMULATION off, or ia32_emulation=0) raises SIGSEGV instead.
 * Either way /etc/passwd is never opened.
 * expect: EIO forbidden system call | crashed: SIGSEGV */
#include <seglam.h>
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	long ret;
	(void)in; (void)len;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(5L), "b"("/etc/passwd"), "c"(0L) : "memory");
	seglam_printf(out, "open %ld\n", ret);
	return 0;
}
