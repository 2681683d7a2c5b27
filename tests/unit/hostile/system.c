/* Declares system() itself and calls it.
 * expect: ENOEXEC 'system' */
#include <seglam.h>
int system(const char *cmd);
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	(void)in; (void)len;
	seglam_printf(out, "%d\n", system("touch /tmp/seglam-pwned-system"));
	return 0;
}
