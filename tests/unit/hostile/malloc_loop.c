/* Allocates 64 MiB blocks and touches them until something gives: RLIMIT_AS
 * (out of memory), or on a loaded machine the time limit first, or the host's
 * OOM killer.  All contained: the daemon's memory is not touched.
 * expect: EIO ran out of memory | timed out | killed by SIGKILL */
#include <seglam.h>
#include <stdlib.h>
#include <string.h>
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	size_t total = 0;
	(void)in; (void)len;
	for (int i = 0; i < 1024; i++) {
		char *p = malloc((size_t)64 << 20);
		memset(p, 0x55, (size_t)64 << 20);
		total += (size_t)64 << 20;
	}
	seglam_printf(out, "allocated %zu\n", total);
	return 0;
}
