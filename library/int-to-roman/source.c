/*
 * int-to-roman: an integer from 1 to 3999 as a Roman numeral (1994 -> "MCMXCIV").
 */
#include <seglam.h>
#include <ctype.h>
#include <stdbool.h>
#include <string.h>

static const struct {
	const char *sym;
	int value;
} numerals[] = {
	{ "M", 1000 }, { "CM", 900 }, { "D", 500 }, { "CD", 400 },
	{ "C", 100 }, { "XC", 90 }, { "L", 50 }, { "XL", 40 },
	{ "X", 10 }, { "IX", 9 }, { "V", 5 }, { "IV", 4 }, { "I", 1 },
};

#define NNUMERALS (sizeof(numerals) / sizeof(numerals[0]))

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

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	size_t i, start;
	int value = 0;

	while (len > 0 && is_space((unsigned char)*in))
		in++, len--;
	while (len > 0 && is_space((unsigned char)in[len - 1]))
		len--;
	start = len > 0 && in[0] == '+';
	if (start == len)
		goto bad;
	for (i = start; i < len; i++) {
		if (!isdigit((unsigned char)in[i]))
			goto bad;
		value = value * 10 + (in[i] - '0');
		if (value > 3999)
			goto range;	/* stop before it can overflow */
	}
	if (value < 1)
		goto range;
	for (i = 0; i < NNUMERALS; i++) {
		while (value >= numerals[i].value) {
			seglam_printf(out, "%s", numerals[i].sym);
			value -= numerals[i].value;
		}
	}
	seglam_printf(out, "\n");
	return 0;
bad:
	seglam_printf(out, "not a decimal integer: ");
	put_quoted(out, in, len);
	seglam_printf(out, "\n");
	return 1;
range:
	seglam_printf(out, "out of range: ");
	put_quoted(out, in, len);
	seglam_printf(out, " (roman numerals cover 1 to 3999)\n");
	return 1;
}
