/*
 * roman-add: the sum of two Roman numerals, as a Roman numeral ("XII + IX" ->
 * "XXI").
 *
 * Composed: reading a numeral is roman-to-int's job and writing one is
 * int-to-roman's (seglam_call); this only splits the input and adds.
 */
#include <seglam.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* The value of the numeral s[0..len) by roman-to-int, or -1 (reason written). */
static long value(const char *s, size_t len, seglam_out *out)
{
	size_t n;
	const char *v;
	char *end;
	long x;

	while (len > 0 && is_space((unsigned char)*s))
		s++, len--;
	while (len > 0 && is_space((unsigned char)s[len - 1]))
		len--;
	v = seglam_call("roman-to-int", s, len, &n);
	if (!v) {
		seglam_printf(out, "not a Roman numeral of 1..3999: '%.*s'\n",
			      len > 40 ? 40 : (int)len, s);
		return -1;
	}
	x = strtol(v, &end, 10);
	if (end == v || (*end != '\n' && *end != '\0')) {
		seglam_printf(out, "roman-to-int answered something unexpected\n");
		return -1;
	}
	return x;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	const char *plus = memchr(in, '+', len), *r;
	char num[32];
	long a, b;
	size_t n;

	if (!plus || memchr(plus + 1, '+', len - (size_t)(plus + 1 - in))) {
		seglam_printf(out, "expected two numerals joined by '+', as \"XII + IX\"\n");
		return 1;
	}
	a = value(in, (size_t)(plus - in), out);
	if (a < 0)
		return 1;
	b = value(plus + 1, len - (size_t)(plus + 1 - in), out);
	if (b < 0)
		return 1;
	snprintf(num, sizeof(num), "%ld", a + b);
	r = seglam_call("int-to-roman", num, strlen(num), &n);
	if (!r) {
		seglam_printf(out, "the sum %ld has no Roman numeral (over 3999)\n", a + b);
		return 1;
	}
	seglam_write(out, r, n);
	return 0;
}
