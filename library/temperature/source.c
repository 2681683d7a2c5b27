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

/* kelvin = value * scale + offset */
static const struct {
	const char *names[4];
	double scale, offset;
} units[] = {
	{ { "C", "°C", "celsius", NULL }, 1.0, 273.15 },
	{ { "F", "°F", "fahrenheit", NULL }, 5.0 / 9.0, 459.67 * 5.0 / 9.0 },
	{ { "K", "kelvin", "kelvins", NULL }, 1.0, 0.0 },
	{ { "R", "°R", "rankine", NULL }, 5.0 / 9.0, 0.0 },
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

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	char from[TOKEN_MAX + 1], to[TOKEN_MAX + 1];
	double v, kelvin;
	int f, t;

	if (!parse_query(in, len, &v, from, to)) {
		seglam_printf(out, "expected \"NUMBER UNIT to UNIT\", e.g. \"100 C to F\"\n");
		return 1;
	}
	f = find_unit(from);
	t = find_unit(to);
	if (f < 0 || t < 0) {
		seglam_printf(out, "unknown unit '%s' (known: C, F, K, R)\n", f < 0 ? from : to);
		return 1;
	}
	kelvin = v * units[f].scale + units[f].offset;
	if (kelvin < -1e-9) {
		seglam_printf(out, "below absolute zero\n");
		return 1;
	}
	if (f == t)
		put_number(out, v);	/* no round trip through kelvins */
	else
		put_number(out, (kelvin - units[t].offset) / units[t].scale);
	return 0;
}
