/* Keeps every input in a static buffer and answers with the ones before: each
 * run starts from the compiled image, so there is never an earlier one.
 * expect: OK remembered: [] */
#include <seglam.h>
#include <string.h>
static char seen[4096];
int seglam_run(const char *in, size_t len, seglam_out *out)
{
	size_t n = strlen(seen);

	seglam_printf(out, "remembered: [%s]\n", seen);
	if (n + len + 2 < sizeof(seen)) {
		memcpy(seen + n, in, len);
		seen[n + len] = ';';
	}
	return 0;
}
