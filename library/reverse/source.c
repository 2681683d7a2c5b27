/*
 * reverse: the input with its characters in reverse order.
 *
 * Characters are UTF-8 code points, so "héllo" becomes "olléh", not a mess of
 * swapped bytes.  A byte that is not part of a valid UTF-8 sequence counts as one
 * character.  Combining marks are code points of their own, so they move to the
 * other side of their base letter.
 */
#include <seglam.h>
#include <stdlib.h>
#include <string.h>

/*
 * Decode the UTF-8 sequence at s[0..n), n >= 1: return its length and store the
 * code point in *cp, or return 1 and store -1 if s[0] does not start a valid
 * shortest-form sequence.
 */
static size_t utf8_decode(const unsigned char *s, size_t n, long *cp)
{
	size_t k, i;
	long c;

	*cp = -1;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	} else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		k = 2, c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		k = 3, c = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		k = 4, c = s[0] & 0x07;
	} else {
		return 1;
	}
	if (k > n)
		return 1;
	for (i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 1;
		c = (c << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((k == 3 && c < 0x800) || (k == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 1;
	*cp = c;
	return k;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	char *buf;
	size_t i, k;
	long cp;

	/* A final newline ends the text rather than being part of it. */
	if (len > 0 && in[len - 1] == '\n')
		len--;
	buf = malloc(len + 1);
	if (!buf) {
		seglam_printf(out, "out of memory\n");
		return 1;
	}
	/* The character at in[i..i+k) goes to the mirror position buf[len-i-k..). */
	for (i = 0; i < len; i += k) {
		k = utf8_decode((const unsigned char *)in + i, len - i, &cp);
		memcpy(buf + len - i - k, in + i, k);
	}
	buf[len] = '\n';
	seglam_write(out, buf, len + 1);
	free(buf);
	return 0;
}
