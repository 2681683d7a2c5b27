/*
 * base64-encode: the input bytes in base64 (RFC 4648, standard alphabet, with '='
 * padding, on one line).
 */
#include <seglam.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = (const unsigned char *)in;
	char buf[4096];
	size_t i, n = 0;

	/* every 3 bytes (24 bits) become 4 characters of 6 bits */
	for (i = 0; i < len; i += 3) {
		unsigned long v = (unsigned long)s[i] << 16;
		size_t left = len - i;

		if (left > 1)
			v |= (unsigned long)s[i + 1] << 8;
		if (left > 2)
			v |= s[i + 2];
		buf[n++] = alphabet[(v >> 18) & 63];
		buf[n++] = alphabet[(v >> 12) & 63];
		buf[n++] = left > 1 ? alphabet[(v >> 6) & 63] : '=';
		buf[n++] = left > 2 ? alphabet[v & 63] : '=';
		if (n == sizeof(buf)) {
			if (seglam_write(out, buf, n))
				return 1;
			n = 0;
		}
	}
	buf[n++] = '\n';	/* 4096 is a multiple of 4, so there is room */
	seglam_write(out, buf, n);
	return 0;
}
