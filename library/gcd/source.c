/*
 * gcd: the greatest common divisor of two or more integers ("12 18 30" -> 6).
 *
 * Signs are ignored (gcd(-4, 6) = 2), and gcd(0, n) = n, so only a list of zeros
 * gives 0.  Euclid's algorithm, on 64-bit magnitudes.
 */
#include <seglam.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>

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

/*
 * Parse a decimal integer s[0..len): an optional sign and digits.  Returns 0 and
 * sets *negative and *mag (the magnitude), 1 if it is not an integer, 2 if its
 * magnitude is over 2^64 - 1.
 */
static int parse_integer(const char *s, size_t len, bool *negative, uint64_t *mag)
{
	size_t i = 0;

	*negative = false;
	*mag = 0;
	if (len > 0 && (s[0] == '-' || s[0] == '+'))
		*negative = s[i++] == '-';
	if (i == len)
		return 1;
	for (; i < len; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9)
			return 1;
		if (*mag > (UINT64_MAX - d) / 10) {
			while (++i < len)	/* still report a non-integer as such */
				if ((unsigned char)s[i] - '0' > 9)
					return 1;
			return 2;
		}
		*mag = *mag * 10 + d;
	}
	return 0;
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* Separators: any run of whitespace and commas. */
static bool is_sep(char c)
{
	return c == ',' || is_space((unsigned char)c);
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	const char *p = in, *end = in + len;
	uint64_t result = 0;
	unsigned long count = 0;

	for (;;) {
		const char *num;
		bool negative;
		uint64_t n;
		int err;

		while (p < end && is_sep(*p))
			p++;
		if (p == end)
			break;
		for (num = p; p < end && !is_sep(*p); p++)
			;
		err = parse_integer(num, (size_t)(p - num), &negative, &n);
		if (err) {
			seglam_printf(out, "%s: ", err == 1 ? "not a decimal integer" :
				      "too large (the limit is 18446744073709551615)");
			put_quoted(out, num, (size_t)(p - num));
			seglam_printf(out, "\n");
			return 1;
		}
		result = count++ ? gcd(result, n) : n;
	}
	if (count < 2) {
		seglam_printf(out, "expected two or more integers, separated by spaces or commas\n");
		return 1;
	}
	seglam_printf(out, "%llu\n", (unsigned long long)result);
	return 0;
}
