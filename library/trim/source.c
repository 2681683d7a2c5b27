/*
 * trim: the input without leading and trailing whitespace.
 *
 * Whitespace is ASCII: space, tab, newline, vertical tab, form feed, carriage
 * return.  Whitespace inside the text is kept as it is.
 */
#include <seglam.h>
#include <stdbool.h>

static bool is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	size_t start = 0;

	while (start < len && is_space((unsigned char)in[start]))
		start++;
	while (len > start && is_space((unsigned char)in[len - 1]))
		len--;
	seglam_write(out, in + start, len - start);
	seglam_write(out, "\n", 1);
	return 0;
}
