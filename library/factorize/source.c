/*
 * factorize: the prime factorization of a positive integer ("360" -> "2^3 * 3^2 * 5").
 *
 * Every integer up to 2^64 - 1 is factored exactly: trial division by small
 * primes, then a deterministic Miller-Rabin test for what is left, and Pollard's
 * rho (Brent's variant) to split composites.
 */
#include <seglam.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

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

/* x exactly as a long double (80-bit, a 64-bit mantissa), by halves: tcc's
 * conversions of unsigned values at or above 2^63 are not to be trusted. */
static long double ld(uint64_t x)
{
	return (long double)(int64_t)(x >> 1) * 2.0L + (long double)(int64_t)(x & 1);
}

/* The 128-bit product a * b as *hi:*lo, from 32-bit halves. */
static void mul128(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
	uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
	uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
	uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;

	*lo = (mid << 32) | (uint32_t)p00;
	*hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

/*
 * (a * b) mod m without a 128-bit type (tcc has none): the exact product in two
 * halves, a quotient estimated with a long double (within a few units: both
 * roundings are relative errors of 2^-64 and the quotient is below 2^64), and the
 * remainder of the exact product by that quotient corrected by adding or
 * subtracting m.  Shift-and-add made a 64-bit semiprime take most of a second
 * (0.67 s on a 2-core VM, past a loaded machine's time limit); this, 0.09 s.
 */
static uint64_t mulmod(uint64_t a, uint64_t b, uint64_t m)
{
	const long double two64 = 18446744073709551616.0L, two32 = 4294967296.0L;
	uint64_t hi, lo, qh, ql, q, dh, dl;
	long double qd, rest;

	a %= m;
	b %= m;
	if (a <= UINT32_MAX && b <= UINT32_MAX)
		return a * b % m;
	mul128(a, b, &hi, &lo);
	qd = (ld(hi) * two64 + ld(lo)) / ld(m);
	/* To an integer by 32-bit halves, each of which may be off by one: tcc
	 * rounds a long double to the nearest integer where C truncates, and has
	 * no unsigned conversion at 2^63 and above.  q need only be close. */
	if (qd >= two64) {
		q = UINT64_MAX;
	} else {
		qh = qd < two32 ? 0 : (uint64_t)(int64_t)(qd / two32);
		rest = qd - (long double)(int64_t)qh * two32;
		while (rest < 0.0L && qh) {
			qh--;
			rest += two32;
		}
		ql = rest < 1.0L ? 0 : (uint64_t)(int64_t)rest;
		if (ql > UINT32_MAX)
			ql = UINT32_MAX;
		q = qh > UINT32_MAX ? UINT64_MAX : (qh << 32) + ql;
	}
	mul128(q, m, &qh, &ql);
	/* hi:lo - qh:ql, a 128-bit two's complement value within a few m of the
	 * remainder */
	dl = lo - ql;
	dh = hi - qh - (lo < ql);
	while ((int64_t)dh < 0) {
		uint64_t t = dl + m;

		dh += t < dl;
		dl = t;
	}
	while (dh || dl >= m) {
		dh -= dl < m;
		dl -= m;
	}
	return dl;
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

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/*
 * A nontrivial factor of n, which is odd, composite and has no factor below 1000.
 * Brent's cycle finding on x -> x^2 + c mod n, multiplying |x - y| together so
 * that a gcd is needed only every 128 steps; if a batch overshoots (the gcd is n),
 * it is replayed one step at a time, and if even that finds only n, c changes.
 */
static uint64_t rho(uint64_t n)
{
	uint64_t c;

	for (c = 1;; c++) {
		uint64_t x = 0, y = 2, ys = 2, q = 1, g = 1, r = 1, k, i;

		while (g == 1) {
			x = y;
			for (i = 0; i < r; i++)
				y = addmod(mulmod(y, y, n), c, n);
			for (k = 0; k < r && g == 1; k += 128) {
				ys = y;
				for (i = 0; i < 128 && i < r - k; i++) {
					y = addmod(mulmod(y, y, n), c, n);
					q = mulmod(q, x > y ? x - y : y - x, n);
				}
				g = gcd(q, n);
			}
			r *= 2;
		}
		if (g == n) {
			do {
				ys = addmod(mulmod(ys, ys, n), c, n);
				g = gcd(x > ys ? x - ys : ys - x, n);
			} while (g == 1);
		}
		if (g != n)
			return g;
	}
}

/* Append the prime factors of n (no factor below 1000) to f[*nf]. */
static void split(uint64_t n, uint64_t *f, int *nf)
{
	uint64_t d;

	if (n == 1)
		return;
	if (is_prime(n)) {
		f[(*nf)++] = n;
		return;
	}
	d = rho(n);
	split(d, f, nf);
	split(n / d, f, nf);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	uint64_t n, p, f[64];	/* a 64-bit number has at most 64 prime factors */
	bool negative;
	int err, nf = 0, i, j;

	while (len > 0 && is_space((unsigned char)*in))
		in++, len--;
	while (len > 0 && is_space((unsigned char)in[len - 1]))
		len--;
	err = parse_integer(in, len, &negative, &n);
	if (err || negative || n == 0) {
		seglam_printf(out, "%s: ",
			      err == 1 ? "not a decimal integer" :
			      err == 2 ? "too large (the limit is 18446744073709551615)" :
			      "only positive integers have a prime factorization");
		put_quoted(out, in, len);
		seglam_printf(out, "\n");
		return 1;
	}
	if (n == 1) {
		seglam_printf(out, "1\n");
		return 0;
	}
	for (p = 2; p < 1000 && p * p <= n; p += 1 + (p > 2)) {
		while (n % p == 0) {
			f[nf++] = p;
			n /= p;
		}
	}
	if (n < 1000 * 1000) {
		if (n > 1)
			f[nf++] = n;	/* no factor below its square root */
	} else {
		split(n, f, &nf);
	}
	qsort(f, (size_t)nf, sizeof(f[0]), cmp_u64);

	/* p^k for each run of equal factors, joined by " * " */
	for (i = 0; i < nf; i = j) {
		for (j = i; j < nf && f[j] == f[i]; j++)
			;
		seglam_printf(out, "%s%llu", i ? " * " : "", (unsigned long long)f[i]);
		if (j - i > 1)
			seglam_printf(out, "^%d", j - i);
	}
	seglam_printf(out, "\n");
	return 0;
}
