/*
 * is-prime: whether an integer is a prime number ("true" or "false").
 *
 * Any integer whose magnitude fits 64 bits is answered exactly: small factors are
 * tried first, then a deterministic Miller-Rabin test.
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

/* (a + b) mod m, for a, b < m, without overflow */
static uint64_t addmod(uint64_t a, uint64_t b, uint64_t m)
{
	return a >= m - b ? a - (m - b) : a + b;
}

/*
 * (a * b) mod m without a 128-bit type (tcc has none): shift-and-add when the
 * product could overflow 64 bits.
 */
static uint64_t mulmod(uint64_t a, uint64_t b, uint64_t m)
{
	uint64_t r = 0;

	a %= m;
	b %= m;
	if (a <= UINT32_MAX && b <= UINT32_MAX)
		return a * b % m;
	while (b) {
		if (b & 1)
			r = addmod(r, a, m);
		a = addmod(a, a, m);
		b >>= 1;
	}
	return r;
}

static uint64_t powmod(uint64_t a, uint64_t e, uint64_t m)
{
	uint64_t r = 1 % m;

	a %= m;
	while (e) {
		if (e & 1)
			r = mulmod(r, a, m);
		a = mulmod(a, a, m);
		e >>= 1;
	}
	return r;
}

/*
 * Miller-Rabin with the first twelve primes as bases, which is exact (no false
 * positives) for every n below 3.3e24, so for every 64-bit n.
 */
static bool is_prime(uint64_t n)
{
	static const uint64_t bases[] = { 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37 };
	uint64_t d = n - 1;
	size_t i;
	int s = 0, r;

	if (n < 2)
		return false;
	for (i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		if (n == bases[i])
			return true;
		if (n % bases[i] == 0)
			return false;
	}
	while ((d & 1) == 0) {
		d >>= 1;
		s++;
	}
	for (i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		uint64_t x = powmod(bases[i], d, n);

		if (x == 1 || x == n - 1)
			continue;
		for (r = 1; r < s; r++) {
			x = mulmod(x, x, n);
			if (x == n - 1)
				break;
		}
		if (r == s)
			return false;	/* bases[i] witnesses that n is composite */
	}
	return true;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	bool negative;
	uint64_t n;
	int err;

	while (len > 0 && is_space((unsigned char)*in))
		in++, len--;
	while (len > 0 && is_space((unsigned char)in[len - 1]))
		len--;
	err = parse_integer(in, len, &negative, &n);
	if (err) {
		seglam_printf(out, "%s: ", err == 1 ? "not a decimal integer" :
			      "too large (the limit is 18446744073709551615)");
		put_quoted(out, in, len);
		seglam_printf(out, "\n");
		return 1;
	}
	/* primes are positive by definition */
	seglam_printf(out, "%s\n", !negative && is_prime(n) ? "true" : "false");
	return 0;
}
