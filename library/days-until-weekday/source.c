/*
 * days-until-weekday: how many days from a date until a weekday ("2024-03-01
 * Monday" -> 3), 0 when the date is that weekday.
 *
 * Composed: the date's own weekday comes from the weekday type (seglam_call),
 * so its calendar rules and date checks are written, tested and fixed once.
 */
#include <ctype.h>
#include <seglam.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static const char *const names[7] = {
	"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
};

static bool is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Index 0..6 of a weekday name of @len bytes (any case), or -1. */
static int day_index(const char *s, size_t len)
{
	for (int i = 0; i < 7; i++) {
		size_t k = 0;

		if (strlen(names[i]) != len)
			continue;
		while (k < len && tolower((unsigned char)s[k]) == tolower((unsigned char)names[i][k]))
			k++;
		if (k == len)
			return i;
	}
	return -1;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	const char *date, *day, *wd;
	size_t dlen, daylen, n;
	int want, have;

	while (len > 0 && is_space((unsigned char)*in))
		in++, len--;
	while (len > 0 && is_space((unsigned char)in[len - 1]))
		len--;
	date = in;
	for (dlen = 0; dlen < len && !is_space((unsigned char)in[dlen]); dlen++)
		;
	day = in + dlen;
	daylen = len - dlen;
	while (daylen > 0 && is_space((unsigned char)*day))
		day++, daylen--;
	if (dlen == 0 || daylen == 0 || memchr(day, ' ', daylen) || memchr(in, '\0', len)) {
		seglam_printf(out, "expected a date and a weekday, as \"YYYY-MM-DD Friday\"\n");
		return 1;
	}
	want = day_index(day, daylen);
	if (want < 0) {
		seglam_printf(out, "not a weekday: '%.*s'\n", daylen > 40 ? 40 : (int)daylen, day);
		return 1;
	}
	wd = seglam_call("weekday", date, dlen, &n);
	if (!wd) {
		seglam_printf(out, "not a date (YYYY-MM-DD): '%.*s'\n", dlen > 40 ? 40 : (int)dlen,
			      date);
		return 1;
	}
	have = day_index(wd, n && wd[n - 1] == '\n' ? n - 1 : n);
	if (have < 0) {
		seglam_printf(out, "weekday answered something unexpected\n");
		return 1;
	}
	seglam_printf(out, "%d\n", (want - have + 7) % 7);
	return 0;
}
