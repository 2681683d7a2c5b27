/* Corrupts the heap; glibc notices and aborts (a C library that does not
 * check would crash later instead).
 * expect: EIO crashed: SIGABRT | crashed: SIGSEGV */
#include <seglam.h>
#include <stdlib.h>
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	char *p = malloc(32);
	(void)in; (void)len; (void)out;
	free(p);
	free(p);
	return 0;
}
