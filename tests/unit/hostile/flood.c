/* Writes 100 million pieces, ignoring seglam_write's -1 once the cap is reached.
 * expect: EIO answer exceeds */
#include <seglam.h>
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	(void)in; (void)len;
	for (long i = 0; i < 100000000; i++)
		seglam_write(out, "flood flood flood\n", 18);
	return 0;
}
