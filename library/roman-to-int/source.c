/*
 * roman-to-int: the value of a Roman numeral ("MCMXCIV" -> 1994).
 *
 * Only canonical numerals from I (1) to MMMCMXCIX (3999) are accepted, in either
 * case: a numeral is read by its symbols' values (a smaller symbol before a larger
 * one is subtracted), and then it must be exactly how that value is written, which
 * rules out "IIII", "IC", "VX", "XM" and the like.
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
#define ROMAN_MAX 15	/* MMMDCCCLXXXVIII, the longest numeral */

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

/* Write value (1..3999) as a canonical numeral into buf[ROMAN_MAX + 1]. */
static void to_roman(int value, char *buf)
{
	size_t i, n = 0;

	for (i = 0; i < NNUMERALS; i++) {
		while (value >= numerals[i].value) {
			size_t k = strlen(numerals[i].sym);

			memcpy(buf + n, numerals[i].sym, k);
			n += k;
			value -= numerals[i].value;
		}
	}
	buf[n] = '\0';
}

static int symbol_value(char c)
{
	switch (toupper((unsigned char)c)) {
	case 'I': return 1;
	case 'V': return 5;
	case 'X': return 10;
	case 'L': return 50;
	case 'C': return 100;
	case 'D': return 500;
	case 'M': return 1000;
	}
	return 0;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	char upper[ROMAN_MAX + 1], canon[ROMAN_MAX + 1];
	size_t i;
	int value = 0;

	while (len > 0 && is_space((unsigned char)*in))
		in++, len--;
	while (len > 0 && is_space((unsigned char)in[len - 1]))
		len--;
	if (len == 0 || len > ROMAN_MAX)
		goto bad;
	for (i = 0; i < len; i++) {
		int v = symbol_value(in[i]);
		int next = i + 1 < len ? symbol_value(in[i + 1]) : 0;

		if (v == 0)
			goto bad;
		value += v < next ? -v : v;
		upper[i] = (char)toupper((unsigned char)in[i]);
	}
	upper[len] = '\0';
	if (value < 1 || value > 3999)
		goto bad;
	to_roman(value, canon);
	if (strcmp(upper, canon) != 0) {
		seglam_printf(out, "not a canonical roman numeral: ");
		put_quoted(out, in, len);
		seglam_printf(out, " (%d is written %s)\n", value, canon);
		return 1;
	}
	seglam_printf(out, "%d\n", value);
	return 0;
bad:
	seglam_printf(out, "not a roman numeral from I to MMMCMXCIX: ");
	put_quoted(out, in, len);
	seglam_printf(out, "\n");
	return 1;
}
