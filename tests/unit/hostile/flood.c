/* Fills the answer past the cap, then keeps writing 1,000,000 more pieces,
 * ignoring seglam_write's -1, and returns success anyway.
 * expect: EIO answer exceeds */
#include <seglam.h>
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	long over = 0;
	(void)in; (void)len;
	while (over < 1000000)
		over += seglam_write(out, "flood flood flood\n", 18) != 0;
	return 0;
}
