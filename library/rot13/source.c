/*
 * rot13: the input with every ASCII letter moved 13 places along the alphabet
 * (a <-> n, B <-> O, ...).  Applying it twice gives the input back.  All other
 * bytes are copied unchanged.
 */
#include <seglam.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	char buf[4096];
	size_t i, n = 0;

	/* A final newline ends the text rather than being part of it. */
	if (len > 0 && in[len - 1] == '\n')
		len--;
	for (i = 0; i < len; i++) {
		char c = in[i];

		if (c >= 'a' && c <= 'z')
			c = (char)('a' + (c - 'a' + 13) % 26);
		else if (c >= 'A' && c <= 'Z')
			c = (char)('A' + (c - 'A' + 13) % 26);
		buf[n++] = c;
		if (n == sizeof(buf)) {
			if (seglam_write(out, buf, n))
				return 1;
			n = 0;
		}
	}
	seglam_write(out, buf, n);
	seglam_write(out, "\n", 1);
	return 0;
}
