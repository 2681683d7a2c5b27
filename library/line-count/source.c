/*
 * line-count: the number of lines in the input.
 *
 * Lines are ended by '\n'.  A last line without a '\n' still counts, so this is
 * `wc -l` plus one when the input does not end with a newline.
 */
#include <seglam.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	unsigned long lines = 0;
	size_t i;

	for (i = 0; i < len; i++)
		if (in[i] == '\n')
			lines++;
	if (len > 0 && in[len - 1] != '\n')
		lines++;	/* an unterminated last line */
	seglam_printf(out, "%lu\n", lines);
	return 0;
}
