/*
 * hex-encode: the input bytes as hexadecimal, two lower-case digits per byte,
 * without separators ("Hi" -> "4869").
 */
#include <seglam.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	static const char hex[] = "0123456789abcdef";
	char buf[4096];
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		buf[n++] = hex[c >> 4];
		buf[n++] = hex[c & 15];
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
