/* Declares getenv() and asks for the key.
 * expect: ENOEXEC 'getenv' */
#include <seglam.h>
char *getenv(const char *name);
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	const char *k = getenv("SEGLAM_LLM_API_KEY");
	(void)in; (void)len;
	seglam_printf(out, "%s\n", k ? k : "(none)");
	return 0;
}
