/*
 * temperature: a temperature converted between Celsius, Fahrenheit, Kelvin and
 * Rankine ("100 C to F" -> "212").
 *
 * Every scale is linear in kelvins, so a value goes to kelvins and back out.
 * Results are rounded to 10 significant digits, which hides the binary rounding
 * of the way there (373.15 K is 211.99999999999997 F in doubles).
 */
#include <seglam.h>
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_MAX 32

static bool is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* The next whitespace-separated token of [*p, end) into tok[TOKEN_MAX + 1]. */
static bool next_token(const char **p, const char *end, char *tok)
{
	size_t n = 0;

	while (*p < end && is_space((unsigned char)**p))
		(*p)++;
	while (*p < end && !is_space((unsigned char)**p)) {
		if (n == TOKEN_MAX || **p == '\0')
			return false;	/* too long for any number or unit */
		tok[n++] = *(*p)++;
	}
	tok[n] = '\0';
	return n > 0;
}

/*
 * Split a leading decimal number ([+-]digits[.digits][e[+-]digits], or with the
 * digits after the point only) off tok: store its value and return what follows.
 * NULL if tok does not start with a number.
 */
static const char *parse_number(const char *tok, double *v)
{
	const char *s = tok;
	char buf[TOKEN_MAX + 1];
	size_t digits = 0;

	if (*s == '+' || *s == '-')
		s++;
	for (; isdigit((unsigned char)*s); s++)
		digits++;
	if (*s == '.')
		for (s++; isdigit((unsigned char)*s); s++)
			digits++;
	if (digits == 0)
		return NULL;
	if ((*s == 'e' || *s == 'E') &&
	    (isdigit((unsigned char)s[1]) ||
	     ((s[1] == '+' || s[1] == '-') && isdigit((unsigned char)s[2])))) {
		s += 2;
		while (isdigit((unsigned char)*s))
			s++;
	}
	memcpy(buf, tok, (size_t)(s - tok));
	buf[s - tok] = '\0';
	*v = strtod(buf, NULL);
	return isfinite(*v) ? s : NULL;
}

/* Print v with up to 10 significant digits, trailing zeros dropped, no "-0". */
static void put_number(seglam_out *out, double v)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%.10g", v);
	seglam_printf(out, "%s\n", strcmp(buf, "-0") == 0 ? "0" : buf);
}

/*
 * Parse "NUMBER UNIT to UNIT" ("in" for "to" works too; the first unit may touch
 * the number: "100C to F").  Returns false if the input has another shape.
 */
static bool parse_query(const char *in, size_t len, double *v, char *num, char *from,
			char *to)
{
	const char *p = in, *end = in + len, *rest;
	char tok[TOKEN_MAX + 1];

	if (!next_token(&p, end, tok) || !(rest = parse_number(tok, v)))
		return false;
	memcpy(num, tok, (size_t)(rest - tok));
	num[rest - tok] = '\0';
	if (*rest)
		strcpy(from, rest);
	else if (!next_token(&p, end, from))
		return false;
	if (!next_token(&p, end, tok) || (strcasecmp(tok, "to") && strcasecmp(tok, "in")))
		return false;
	return next_token(&p, end, to) && !next_token(&p, end, tok);
}

/*
 * Each unit: the size of its degree in kelvins (5/9 as num/den), and two anchor
 * points as decimal text: absolute zero and the freezing point of water.  The
 * difference between the input and an anchor is taken digit by digit (see
 * decimal_minus), so "32.00001 F to C" keeps every digit the answer shows.
 */
static const struct {
	const char *names[4];
	double num, den;		/* degree size: num / den kelvin */
	const char *zero, *freeze;	/* absolute zero, water freezes */
} units[] = {
	{ { "C", "°C", "celsius", NULL }, 1, 1, "-273.15", "0" },
	{ { "F", "°F", "fahrenheit", NULL }, 5, 9, "-459.67", "32" },
	{ { "K", "kelvin", "kelvins", NULL }, 1, 1, "0", "273.15" },
	{ { "R", "°R", "rankine", NULL }, 5, 9, "0", "491.67" },
};

#define NUNITS ((int)(sizeof(units) / sizeof(units[0])))

static int find_unit(const char *name)
{
	int i, k;

	for (i = 0; i < NUNITS; i++)
		for (k = 0; k < 4 && units[i].names[k]; k++)
			if (strcasecmp(name, units[i].names[k]) == 0)
				return i;
	return -1;
}

/* Split a decimal "[-]III[.FF...]" into sign, integer part, first two fraction
 * digits (as hundredths) and the rest (as a fraction of a hundredth). */
static bool decimal_split(const char *s, double *sign, double *hundredths, double *rest)
{
	double ip = 0;
	int f2 = 0, k;
	char tail[TOKEN_MAX + 3] = "0.";
	size_t n = 2;

	*sign = 1;
	if (*s == '+' || *s == '-')
		*sign = *s++ == '-' ? -1 : 1;
	for (; isdigit((unsigned char)*s); s++) {
		ip = ip * 10 + (*s - '0');
		if (ip > 1e15)
			return false;	/* not exact any more: plain doubles do */
	}
	if (*s == '.')
		s++;
	for (k = 0; k < 2; k++) {
		f2 = f2 * 10;
		if (isdigit((unsigned char)*s))
			f2 += *s++ - '0';
	}
	while (isdigit((unsigned char)*s) && n < TOKEN_MAX + 2)
		tail[n++] = *s++;
	tail[n] = '\0';
	if (*s)
		return false;	/* an exponent: plain doubles do */
	*hundredths = ip * 100 + f2;
	*rest = strtod(tail, NULL);
	return true;
}

/*
 * num - anchor for the decimal text num and anchor: the whole hundredths are
 * subtracted exactly, so only the digits beyond them are rounded.  Its sign is
 * exact too: *cmp is -1, 0 or 1.
 */
static double decimal_minus(const char *num, const char *anchor, int *cmp)
{
	double sv, hv, rv, sa, ha, ra, h, r, d;

	if (!decimal_split(num, &sv, &hv, &rv) || !decimal_split(anchor, &sa, &ha, &ra)) {
		d = strtod(num, NULL) - strtod(anchor, NULL);
		*cmp = d < 0 ? -1 : d > 0;
		return d;
	}
	h = sv * hv - sa * ha;	/* exact: integers below 2^53 */
	r = sv * rv;		/* anchors have no digits beyond hundredths */
	d = (h + r) / 100;
	/* |r| < 1 <= |h| unless h == 0: the sign is h's, else r's. */
	*cmp = h < 0 || (h == 0 && r < 0) ? -1 : (h > 0 || r > 0);
	return d;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	char from[TOKEN_MAX + 1], to[TOKEN_MAX + 1];
	char num[TOKEN_MAX + 1];
	double v, d = 0, r;
	int f, t, cmp;

	if (!parse_query(in, len, &v, num, from, to)) {
		seglam_printf(out, "expected \"NUMBER UNIT to UNIT\", e.g. \"100 C to F\"\n");
		return 1;
	}
	f = find_unit(from);
	t = find_unit(to);
	if (f < 0 || t < 0) {
		seglam_printf(out, "unknown unit '%s' (known: C, F, K, R)\n", f < 0 ? from : to);
		return 1;
	}
	/* Below absolute zero, exactly, in the unit given. */
	decimal_minus(num, units[f].zero, &cmp);
	if (cmp < 0) {
		seglam_printf(out, "below absolute zero\n");
		return 1;
	}
	if (f == t) {
		r = v;	/* no round trip */
	} else if (t == 2 || t == 3) {
		/* To an absolute scale: measure from absolute zero. */
		d = decimal_minus(num, units[f].zero, &cmp);
		r = d * units[f].num * units[t].den / (units[f].den * units[t].num);
	} else {
		/* To C or F: measure from the freezing point (0 C, 32 F). */
		d = decimal_minus(num, units[f].freeze, &cmp);
		r = d * units[f].num * units[t].den / (units[f].den * units[t].num) +
		    (t == 1 ? 32 : 0);
	}
	/* d * num can overflow where the result fits: then scale by the ratio. */
	if (!isfinite(r) && f != t)
		r = d * (units[f].num * units[t].den / (units[f].den * units[t].num)) +
		    (t == 1 ? 32 : 0);
	if (!isfinite(r)) {
		seglam_printf(out, "the result is too large for a double\n");
		return 1;
	}
	put_number(out, r);
	return 0;
}
