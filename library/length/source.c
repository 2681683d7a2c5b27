/*
 * length: a length converted between metric and imperial units ("1 mi to km" ->
 * "1.609344").
 *
 * Each unit is its exact length in metres (the international inch is 0.0254 m,
 * the nautical mile 1852 m).  Results are rounded to 10 significant digits, which
 * hides the binary rounding of the factors.
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
static bool parse_query(const char *in, size_t len, double *v, char *from, char *to)
{
	const char *p = in, *end = in + len, *rest;
	char tok[TOKEN_MAX + 1];

	if (!next_token(&p, end, tok) || !(rest = parse_number(tok, v)))
		return false;
	if (*rest)
		strcpy(from, rest);
	else if (!next_token(&p, end, from))
		return false;
	if (!next_token(&p, end, tok) || (strcasecmp(tok, "to") && strcasecmp(tok, "in")))
		return false;
	return next_token(&p, end, to) && !next_token(&p, end, tok);
}

static const struct {
	const char *names[5];
	double metres;
} units[] = {
	{ { "mm", "millimeter", "millimeters", "millimetre", "millimetres" }, 0.001 },
	{ { "cm", "centimeter", "centimeters", "centimetre", "centimetres" }, 0.01 },
	{ { "m", "meter", "meters", "metre", "metres" }, 1.0 },
	{ { "km", "kilometer", "kilometers", "kilometre", "kilometres" }, 1000.0 },
	{ { "in", "inch", "inches", "\"", NULL }, 0.0254 },
	{ { "ft", "foot", "feet", "'", NULL }, 0.3048 },
	{ { "yd", "yard", "yards", NULL, NULL }, 0.9144 },
	{ { "mi", "mile", "miles", NULL, NULL }, 1609.344 },
	{ { "nmi", "nautical-mile", "nautical-miles", NULL, NULL }, 1852.0 },
};

#define NUNITS ((int)(sizeof(units) / sizeof(units[0])))

static int find_unit(const char *name)
{
	int i, k;

	for (i = 0; i < NUNITS; i++)
		for (k = 0; k < 5 && units[i].names[k]; k++)
			if (strcasecmp(name, units[i].names[k]) == 0)
				return i;
	return -1;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	char from[TOKEN_MAX + 1], to[TOKEN_MAX + 1];
	double v, r;
	int f, t;

	if (!parse_query(in, len, &v, from, to)) {
		seglam_printf(out, "expected \"NUMBER UNIT to UNIT\", e.g. \"1 mi to km\"\n");
		return 1;
	}
	f = find_unit(from);
	t = find_unit(to);
	if (f < 0 || t < 0) {
		seglam_printf(out, "unknown unit '%s' (known: mm, cm, m, km, in, ft, yd, "
			      "mi, nmi)\n", f < 0 ? from : to);
		return 1;
	}
	r = v * units[f].metres / units[t].metres;
	/* v * metres can overflow where the result fits: then scale by the ratio. */
	if (!isfinite(r))
		r = v * (units[f].metres / units[t].metres);
	if (!isfinite(r)) {
		seglam_printf(out, "result out of range\n");
		return 1;
	}
	put_number(out, r);
	return 0;
}
