/* Corrupts the heap; glibc notices and aborts.
 * expect: EIO crashed: SIGABRT */
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
