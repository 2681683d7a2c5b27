/*
 * url-encode: the input percent-encoded for use in a URL (RFC 3986).
 *
 * The unreserved characters A-Z a-z 0-9 - . _ ~ stay; every other byte becomes
 * %XX with upper-case hex digits (a space becomes %20, UTF-8 é becomes %C3%A9).
 */
#include <seglam.h>
#include <stdbool.h>

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	static const char hex[] = "0123456789ABCDEF";
	char buf[4096];
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (n > sizeof(buf) - 3) {
			if (seglam_write(out, buf, n))
				return 1;
			n = 0;
		}
		if (unreserved(c)) {
			buf[n++] = (char)c;
		} else {
			buf[n++] = '%';
			buf[n++] = hex[c >> 4];
			buf[n++] = hex[c & 15];
		}
	}
	seglam_write(out, buf, n);
	seglam_write(out, "\n", 1);
	return 0;
}
