/*
 * url-decode: the bytes that a percent-encoded text stands for (RFC 3986).
 *
 * %XX (hex digits in either case) becomes the byte XX; every other byte stands
 * for itself, '+' included (it means a space only in HTML form data).  A '%' not
 * followed by two hex digits is an error.
 */
#include <seglam.h>
#include <stdlib.h>

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	char *buf;
	size_t i, n = 0;

	/* A final newline (stdin adds one) is not part of the encoded text. */
	if (len > 0 && in[len - 1] == '\n')
		len--;
	buf = malloc(len + 1);
	if (!buf) {
		seglam_printf(out, "out of memory\n");
		return 1;
	}
	for (i = 0; i < len; i++) {
		if (in[i] == '%') {
			int hi = -1, lo = -1;

			if (len - i > 2) {
				hi = hex_value((unsigned char)in[i + 1]);
				lo = hex_value((unsigned char)in[i + 2]);
			}
			if (hi < 0 || lo < 0) {
				seglam_printf(out, "'%%' at offset %zu is not followed by two "
					      "hex digits\n", i);
				free(buf);
				return 1;
			}
			buf[n++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			buf[n++] = in[i];
		}
	}
	buf[n++] = '\n';
	seglam_write(out, buf, n);
	free(buf);
	return 0;
}
