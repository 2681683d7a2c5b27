/*
 * base-convert: an integer written in one base, rewritten in another.
 *
 * Input "NUMBER FROM TO", e.g. "255 10 16" -> "ff".  Bases are decimal, 2..36;
 * digits beyond 9 are letters (either case in, lower case out).  The number may
 * have a sign and any number of digits up to MAX_DIGITS: it is converted exactly,
 * through an array of 32-bit limbs (little-endian), not through a machine word.
 */
#include <seglam.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIGITS 4096

static bool is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Quote at most 40 bytes of s for a reason, '?' for bytes that are not printable. */
static void put_quoted(seglam_out *out, const char *s, size_t len)
{
	char buf[41];
	size_t i, n = len < 40 ? len : 40;

	for (i = 0; i < n; i++)
		buf[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
	buf[n] = '\0';
	seglam_printf(out, "'%s%s'", buf, len > n ? "..." : "");
}

/* The value of digit c, or 99 if c is not a digit in any base. */
static int digit_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 10;
	return 99;
}

/* Split off the next whitespace-separated field of [*p, end); false if none. */
static bool next_field(const char **p, const char *end, const char **f, size_t *flen)
{
	while (*p < end && is_space((unsigned char)**p))
		(*p)++;
	*f = *p;
	while (*p < end && !is_space((unsigned char)**p))
		(*p)++;
	*flen = (size_t)(*p - *f);
	return *flen > 0;
}

/* A base: 2..36 in decimal; 0 if the field is not one. */
static int parse_base(const char *f, size_t flen)
{
	int base = 0;
	size_t i;

	if (flen > 2)
		return 0;
	for (i = 0; i < flen; i++) {
		if (!isdigit((unsigned char)f[i]))
			return 0;
		base = base * 10 + (f[i] - '0');
	}
	return base >= 2 && base <= 36 ? base : 0;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	const char *p = in, *end = in + len, *num, *fb, *tb, *extra;
	size_t nlen, fblen, tblen, xlen, i, nlimbs = 0, maxlimbs, ndig = 0;
	uint32_t *limbs = NULL, chunk;
	char *buf = NULL;
	int from, to, per_chunk, k;
	bool negative = false;

	if (!next_field(&p, end, &num, &nlen) || !next_field(&p, end, &fb, &fblen) ||
	    !next_field(&p, end, &tb, &tblen) || next_field(&p, end, &extra, &xlen)) {
		seglam_printf(out, "expected \"NUMBER FROM-BASE TO-BASE\", e.g. \"255 10 16\"\n");
		return 1;
	}
	from = parse_base(fb, fblen);
	to = parse_base(tb, tblen);
	if (!from || !to) {
		seglam_printf(out, "bad base ");
		put_quoted(out, from ? tb : fb, from ? tblen : fblen);
		seglam_printf(out, ": bases are 2 to 36, in decimal\n");
		return 1;
	}
	if (num[0] == '-' || num[0] == '+') {
		negative = num[0] == '-';
		num++, nlen--;
	}
	if (nlen == 0 || nlen > MAX_DIGITS) {
		seglam_printf(out, "the number needs 1 to %d digits\n", MAX_DIGITS);
		return 1;
	}
	for (i = 0; i < nlen; i++) {
		if (digit_value((unsigned char)num[i]) >= from) {
			seglam_printf(out, "not a base-%d number: ", from);
			put_quoted(out, num, nlen);
			seglam_printf(out, "\n");
			return 1;
		}
	}

	/* Each digit is under 6 bits, so this many limbs always suffice. */
	maxlimbs = nlen * 6 / 32 + 2;
	limbs = calloc(maxlimbs, sizeof(*limbs));
	/* Each output digit holds at least a bit; add a chunk, a sign and a newline. */
	buf = malloc(maxlimbs * 32 + 64);
	if (!limbs || !buf) {
		free(limbs);
		free(buf);
		seglam_printf(out, "out of memory\n");
		return 1;
	}

	/* limbs = limbs * from + digit, for each digit */
	for (i = 0; i < nlen; i++) {
		uint64_t carry = (uint64_t)digit_value((unsigned char)num[i]);
		size_t j;

		for (j = 0; j < nlimbs; j++) {
			uint64_t t = (uint64_t)limbs[j] * (uint64_t)from + carry;

			limbs[j] = (uint32_t)t;
			carry = t >> 32;
		}
		if (carry)
			limbs[nlimbs++] = (uint32_t)carry;
	}

	/*
	 * Divide by to^per_chunk (the largest power that fits 32 bits) until nothing is
	 * left; each remainder gives per_chunk digits, least significant first.
	 */
	for (per_chunk = 1, chunk = (uint32_t)to; (uint64_t)chunk * (uint64_t)to <= UINT32_MAX;
	     per_chunk++)
		chunk *= (uint32_t)to;
	while (nlimbs > 0) {
		uint64_t rem = 0;
		size_t j = nlimbs;

		while (j-- > 0) {
			uint64_t t = (rem << 32) | limbs[j];

			limbs[j] = (uint32_t)(t / chunk);
			rem = t % chunk;
		}
		while (nlimbs > 0 && limbs[nlimbs - 1] == 0)
			nlimbs--;
		for (k = 0; k < per_chunk; k++) {
			buf[ndig++] = digits[rem % (uint64_t)to];
			rem /= (uint64_t)to;
		}
	}
	while (ndig > 1 && buf[ndig - 1] == '0')
		ndig--;		/* the last chunk's leading zeros */
	if (ndig == 0)
		buf[ndig++] = '0';
	else if (negative && !(ndig == 1 && buf[0] == '0'))
		buf[ndig++] = '-';	/* no "-0" */

	/* The digits are backwards: reverse them, then add the newline. */
	for (i = 0; i < ndig / 2; i++) {
		char c = buf[i];

		buf[i] = buf[ndig - 1 - i];
		buf[ndig - 1 - i] = c;
	}
	buf[ndig++] = '\n';
	seglam_write(out, buf, ndig);
	free(limbs);
	free(buf);
	return 0;
}
