/* name: percent-decoding of input names; see name.h. */
#include "name.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void name_decode(const char *name, size_t len, struct buf *out)
{
	size_t i;

	buf_grow(out, len);
	for (i = 0; i < len; i++) {
		int hi, lo;

		if (name[i] == '%' && i + 2 < len && (hi = hexval(name[i + 1])) >= 0 &&
		    (lo = hexval(name[i + 2])) >= 0) {
			buf_addc(out, (char)(hi << 4 | lo));
			i += 2;
		} else {
			buf_addc(out, name[i]);
		}
	}
}
