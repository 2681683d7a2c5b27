/* _Pragma built by token pasting, so no "_Pragma" token appears in the source.
 * The worker defines _Pragma(x) as nothing, so this is harmless: it compiles and
 * the option is never applied.
 * expect: OK pasted */
#include <seglam.h>
#define CAT(a, b) a##b
CAT(_Pra, gma)("comment(option, \"-b\")")
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	(void)in; (void)len;
	seglam_printf(out, "pasted\n");
	return 0;
}
