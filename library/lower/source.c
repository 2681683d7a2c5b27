/*
 * lower: the input with its letters in lower case.
 *
 * Letters of ASCII, Latin-1, Latin Extended-A, Greek and basic Cyrillic change
 * case; everything else (digits, punctuation, other scripts, bytes that are not
 * valid UTF-8) is copied unchanged.  Characters whose lower case is not a single
 * code point (capital I with dot above) keep their form.
 */
#include <seglam.h>
#include <stddef.h>

/*
 * Case pairs: for upper case code points from..to (every step-th one), the lower
 * case form is the code point plus delta.
 */
static const struct {
	long from, to, delta, step;
} pairs[] = {
	{ 0x41, 0x5a, 32, 1 },		/* A-Z */
	{ 0xc0, 0xd6, 32, 1 },		/* Latin-1 (not the multiplication sign) */
	{ 0xd8, 0xde, 32, 1 },
	{ 0x178, 0x178, 0xff - 0x178, 1 },	/* Y with diaeresis */
	{ 0x100, 0x12e, 1, 2 },		/* Latin Extended-A: alternating pairs */
	{ 0x132, 0x136, 1, 2 },
	{ 0x139, 0x147, 1, 2 },
	{ 0x14a, 0x176, 1, 2 },
	{ 0x179, 0x17d, 1, 2 },
	{ 0x386, 0x386, 38, 1 },	/* Greek with tonos */
	{ 0x388, 0x38a, 37, 1 },
	{ 0x38c, 0x38c, 64, 1 },
	{ 0x38e, 0x38f, 63, 1 },
	{ 0x391, 0x3a1, 32, 1 },	/* Greek */
	{ 0x3a3, 0x3ab, 32, 1 },
	{ 0x400, 0x40f, 80, 1 },	/* Cyrillic */
	{ 0x410, 0x42f, 32, 1 },
};

#define NPAIRS (sizeof(pairs) / sizeof(pairs[0]))

static long to_lower(long c)
{
	size_t i;

	for (i = 0; i < NPAIRS; i++)
		if (c >= pairs[i].from && c <= pairs[i].to &&
		    (c - pairs[i].from) % pairs[i].step == 0)
			return c + pairs[i].delta;
	return c;
}

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

static size_t utf8_encode(long c, char *buf)
{
	if (c < 0x80) {
		buf[0] = (char)c;
		return 1;
	} else if (c < 0x800) {
		buf[0] = (char)(0xc0 | (c >> 6));
		buf[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	} else if (c < 0x10000) {
		buf[0] = (char)(0xe0 | (c >> 12));
		buf[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		buf[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	buf[0] = (char)(0xf0 | (c >> 18));
	buf[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	buf[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	buf[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	const unsigned char *s = (const unsigned char *)in;
	char buf[4096];
	size_t i = 0, n = 0;

	/* A final newline ends the text rather than being part of it. */
	if (len > 0 && in[len - 1] == '\n')
		len--;
	while (i < len) {
		long cp;
		size_t k = utf8_decode(s + i, len - i, &cp);

		if (n > sizeof(buf) - 4) {
			if (seglam_write(out, buf, n))
				return 1;
			n = 0;
		}
		if (cp < 0)
			buf[n++] = in[i];	/* not UTF-8: copied as it is */
		else
			n += utf8_encode(to_lower(cp), buf + n);
		i += k;
	}
	/* A 4-byte character can end exactly at the end of buf: make room. */
	if (n == sizeof(buf)) {
		if (seglam_write(out, buf, n))
			return 1;
		n = 0;
	}
	buf[n++] = '\n';
	seglam_write(out, buf, n);
	return 0;
}
