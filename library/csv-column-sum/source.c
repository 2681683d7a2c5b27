/*
 * csv-column-sum: the sum of one column of a CSV table.
 *
 * The first line of the input names the column: a header name, or a 1-based
 * column number when no header has that name.  The rest is CSV (RFC 4180): a
 * header row, then data rows; fields are separated by commas, rows by LF or CRLF,
 * and a field in double quotes may hold commas, newlines and "" for a quote.
 *
 * Integer sums are exact (any size); once a value has a fraction or an exponent,
 * or an integer sum overflows, the sum continues in double precision and is
 * printed with 15 significant digits.
 */
#include <seglam.h>
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_MAX 256	/* longer names and numbers are not kept whole */

struct csv {
	const char *p, *end;
	unsigned long row;		/* the current row; the header is row 1 */
	const char *err;
};

/*
 * Read the next field into buf (unquoted, at most FIELD_MAX bytes; *flen is its
 * real length).  Sets *last when the field ends its row.  Returns false at the end
 * of the input or on a syntax error (c->err).
 */
static bool next_field(struct csv *c, char *buf, size_t *flen, bool *last)
{
	bool quoted = false;

	*flen = 0;
	if (c->p == c->end)
		return false;
	if (*c->p == '"') {
		quoted = true;
		c->p++;
	}
	for (;;) {
		char ch;

		if (c->p == c->end) {
			if (quoted) {
				c->err = "unterminated quoted field";
				return false;
			}
			*last = true;
			return true;
		}
		ch = *c->p++;
		if (quoted && ch == '"') {
			if (c->p < c->end && *c->p == '"') {
				c->p++;		/* "" is a quote */
			} else {
				quoted = false;	/* the closing quote */
				if (c->p < c->end && *c->p != ',' && *c->p != '\n' &&
				    *c->p != '\r') {
					c->err = "text after a closing quote";
					return false;
				}
				continue;
			}
		} else if (!quoted && ch == ',') {
			*last = false;
			return true;
		} else if (!quoted && (ch == '\n' || (ch == '\r' && c->p < c->end &&
							 *c->p == '\n'))) {
			if (ch == '\r')
				c->p++;
			*last = true;
			return true;
		} else if (!quoted && ch == '"') {
			c->err = "quote inside an unquoted field";
			return false;
		}
		if (*flen < FIELD_MAX)
			buf[*flen] = ch;
		(*flen)++;
	}
}

static bool is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* [+-]?(digits[.digits?]|.digits)([eE][+-]?digits)?; sets *integer if no . or e */
static bool is_number(const char *s, bool *integer)
{
	size_t digits = 0;

	*integer = true;
	if (*s == '+' || *s == '-')
		s++;
	for (; isdigit((unsigned char)*s); s++)
		digits++;
	if (*s == '.') {
		*integer = false;
		for (s++; isdigit((unsigned char)*s); s++)
			digits++;
	}
	if (digits == 0)
		return false;
	if (*s == 'e' || *s == 'E') {
		*integer = false;
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!isdigit((unsigned char)*s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
	}
	return *s == '\0';
}

/* The 0-based index of the wanted column, or -1 (the reason is written). */
static long find_column(struct csv *c, const char *want, size_t wlen, seglam_out *out)
{
	char buf[FIELD_MAX + 1];
	size_t flen, i;
	bool last = false;
	long col = 0, found = -1, number = 0;

	while (!last && next_field(c, buf, &flen, &last)) {
		if (found < 0 && flen == wlen && memcmp(buf, want, flen) == 0)
			found = col;
		col++;
	}
	if (c->err) {
		seglam_printf(out, "bad CSV in the header row: %s\n", c->err);
		return -1;
	}
	if (found >= 0)
		return found;
	for (i = 0; i < wlen && number <= col; i++) {
		if (!isdigit((unsigned char)want[i]))
			break;
		number = number * 10 + (want[i] - '0');
	}
	if (wlen > 0 && i == wlen && number >= 1 && number <= col)
		return number - 1;
	seglam_printf(out, "no column '%s' in the header row (%ld columns)\n", want, col);
	return -1;
}

/*
 * Exact integer sums of any size: the positive and the negative values are added
 * up separately, as magnitudes in base 10^9 limbs (least significant first), and
 * subtracted at the end.  40 limbs of 9 digits (360 digits) hold far more than
 * the longest field (256 bytes) times any number of rows.
 */
#define LIMBS 40
#define LIMB_BASE 1000000000u

struct big {
	uint32_t l[LIMBS];
};

/* Add the decimal digits s[0..n) to @b; false when the sum no longer fits. */
static bool big_add_digits(struct big *b, const char *s, size_t n)
{
	struct big v = { { 0 } };
	size_t i, k = 0;
	uint64_t carry = 0;

	/* digits into limbs, 9 at a time from the right */
	while (n > 0) {
		size_t take = n < 9 ? n : 9;
		uint32_t limb = 0;

		if (k == LIMBS)
			return false;
		for (i = n - take; i < n; i++)
			limb = limb * 10 + (uint32_t)(s[i] - '0');
		v.l[k++] = limb;
		n -= take;
	}
	for (i = 0; i < LIMBS; i++) {
		uint64_t t = (uint64_t)b->l[i] + v.l[i] + carry;

		b->l[i] = (uint32_t)(t % LIMB_BASE);
		carry = t / LIMB_BASE;
	}
	return carry == 0;
}

static int big_cmp(const struct big *a, const struct big *b)
{
	for (size_t i = LIMBS; i-- > 0;)
		if (a->l[i] != b->l[i])
			return a->l[i] < b->l[i] ? -1 : 1;
	return 0;
}

/* a -= b, for a >= b */
static void big_sub(struct big *a, const struct big *b)
{
	int64_t borrow = 0;

	for (size_t i = 0; i < LIMBS; i++) {
		int64_t t = (int64_t)a->l[i] - b->l[i] - borrow;

		borrow = t < 0;
		a->l[i] = (uint32_t)(t < 0 ? t + LIMB_BASE : t);
	}
}

static void big_print(seglam_out *out, const struct big *b, bool negative)
{
	size_t i = LIMBS;

	while (i > 1 && b->l[i - 1] == 0)
		i--;
	seglam_printf(out, "%s%u", negative ? "-" : "", b->l[i - 1]);
	while (i-- > 1)
		seglam_printf(out, "%09u", b->l[i - 1]);
	seglam_printf(out, "\n");
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	struct csv c = { 0 };
	char want[FIELD_MAX + 1], buf[FIELD_MAX + 1];
	const char *nl = memchr(in, '\n', len), *w = in;
	size_t wlen, flen;
	long column, col;
	bool all_int = true, last, integer;
	struct big psum = { { 0 } }, nsum = { { 0 } };
	double dsum = 0;

	/* line 1: the column */
	if (!nl) {
		seglam_printf(out, "expected a column name or number on the first line, "
			      "then the CSV\n");
		return 1;
	}
	wlen = (size_t)(nl - in);
	while (wlen > 0 && is_space((unsigned char)*w))
		w++, wlen--;
	while (wlen > 0 && is_space((unsigned char)w[wlen - 1]))
		wlen--;
	if (wlen == 0 || wlen > FIELD_MAX || memchr(w, '\0', wlen)) {
		seglam_printf(out, "the first line must name a column (1 to %d bytes)\n",
			      FIELD_MAX);
		return 1;
	}
	memcpy(want, w, wlen);
	want[wlen] = '\0';

	c.p = nl + 1;
	c.end = in + len;
	c.row = 1;
	if (c.p == c.end) {
		seglam_printf(out, "no CSV after the first line\n");
		return 1;
	}
	column = find_column(&c, want, wlen, out);
	if (column < 0)
		return 1;

	/* the data rows */
	while (c.p < c.end) {
		c.row++;
		last = false;
		for (col = 0; !last && next_field(&c, buf, &flen, &last); col++) {
			char *s = buf, *e;
			double d;

			if (col != column)
				continue;
			if (flen > FIELD_MAX) {
				seglam_printf(out, "row %lu: value too long\n", c.row);
				return 1;
			}
			buf[flen] = '\0';
			if (strlen(buf) != flen) {
				seglam_printf(out, "row %lu: NUL byte in a value\n", c.row);
				return 1;
			}
			while (is_space((unsigned char)*s))
				s++;
			for (e = s + strlen(s); e > s && is_space((unsigned char)e[-1]); e--)
				;
			*e = '\0';
			if (*s == '\0')
				continue;	/* an empty cell adds nothing */
			if (!is_number(s, &integer)) {
				seglam_printf(out, "row %lu: not a number: '%s'\n", c.row, s);
				return 1;
			}
			d = strtod(s, NULL);
			if (!isfinite(d)) {
				seglam_printf(out, "row %lu: number out of range: '%s'\n", c.row, s);
				return 1;
			}
			dsum += d;
			if (all_int) {
				bool neg = *s == '-';
				const char *digits = s + (*s == '-' || *s == '+');

				if (!integer ||
				    !big_add_digits(neg ? &nsum : &psum, digits, strlen(digits)))
					all_int = false;
			}
		}
		if (c.err) {
			seglam_printf(out, "bad CSV in row %lu: %s\n", c.row, c.err);
			return 1;
		}
	}
	if (all_int) {
		bool neg = big_cmp(&psum, &nsum) < 0;

		if (neg) {
			big_sub(&nsum, &psum);
			big_print(out, &nsum, true);
		} else {
			big_sub(&psum, &nsum);
			big_print(out, &psum, false);
		}
	} else {
		seglam_printf(out, "%.15g\n", dsum == 0 ? 0.0 : dsum);	/* no -0 */
	}
	return 0;
}
