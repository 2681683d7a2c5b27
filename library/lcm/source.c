/*
 * lcm: the least common multiple of two or more integers ("4 6 10" -> 60).
 *
 * Signs are ignored and a zero anywhere gives 0.  The result must fit 64 bits:
 * lcm(a, b) = a / gcd(a, b) * b, with the multiplication checked for overflow.
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
	bool zero = false, overflow = false;

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
		/* A 0 anywhere makes the answer 0, even after the running lcm overflowed:
		 * so an overflow is only an error once every number has been read. */
		if (n == 0)
			zero = true;
		if (count++ == 0) {
			result = n;
		} else if (!overflow && result != 0 && n != 0) {
			uint64_t a = result / gcd(result, n);

			if (a > UINT64_MAX / n)
				overflow = true;
			else
				result = a * n;
		}
	}
	if (count < 2) {
		seglam_printf(out, "expected two or more integers, separated by spaces or commas\n");
		return 1;
	}
	if (zero) {
		result = 0;
	} else if (overflow) {
		seglam_printf(out, "the lcm is larger than 18446744073709551615\n");
		return 1;
	}
	seglam_printf(out, "%llu\n", (unsigned long long)result);
	return 0;
}
