/*
 * hex-decode: the bytes that a hexadecimal text stands for ("4869" -> "Hi").
 *
 * Two hex digits (either case) per byte; whitespace between bytes is ignored, so
 * "48 69" and `xxd -p` output decode too.  Anything else is an error.
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
	char *buf = malloc(len / 2 + 1);
	size_t i, n = 0;
	int hi = -1;		/* the first digit of a pair, once seen */

	if (!buf) {
		seglam_printf(out, "out of memory\n");
		return 1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		int v = hex_value(c);

		if (v < 0 && hi < 0 && (c == ' ' || (c >= '\t' && c <= '\r')))
			continue;
		if (v < 0) {
			seglam_printf(out, "not a hex digit: byte 0x%02x at offset %zu\n", c, i);
			free(buf);
			return 1;
		}
		if (hi < 0) {
			hi = v;
		} else {
			buf[n++] = (char)(hi << 4 | v);
			hi = -1;
		}
	}
	if (hi >= 0) {
		seglam_printf(out, "odd number of hex digits\n");
		free(buf);
		return 1;
	}
	buf[n++] = '\n';
	seglam_write(out, buf, n);
	free(buf);
	return 0;
}
