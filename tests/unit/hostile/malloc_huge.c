/* Asks for 8 GiB and touches every page.
 * expect: EIO ran out of memory */
#include <seglam.h>
#include <stdlib.h>
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	size_t n = (size_t)8 << 30;
	char *p = malloc(n);
	(void)in; (void)len;
	for (size_t i = 0; i < n; i += 4096)
		p[i] = 1;
	seglam_printf(out, "got %p\n", p);
	return 0;
}
