/* Writes forever, ignoring seglam_write's -1.
 * expect: EIO timed out */
#include <seglam.h>
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	(void)in; (void)len;
	for (;;)
		seglam_printf(out, "%s", "more\n");
	return 0;
}
