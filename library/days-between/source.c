/*
 * days-between: the number of days from one date to another ("2024-01-01
 * 2024-03-01" -> 60), negative if the second date is earlier.  Proleptic
 * Gregorian calendar.
 */
#include <seglam.h>
#include <stdbool.h>
#include <stddef.h>

static bool is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static bool is_leap(long y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/*
 * Parse a date YYYY-MM-DD from s[0..len): a four-digit year (0000 to 9999, 0000
 * being 1 BC), and a month and a day that exist in it.  Returns NULL or a reason.
 */
static const char *parse_date(const char *s, size_t len, long *y, int *m, int *d)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	size_t i;

	if (len != 10 || s[4] != '-' || s[7] != '-')
		return "expected a date as YYYY-MM-DD";
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return "expected a date as YYYY-MM-DD";
	*y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	*m = (s[5] - '0') * 10 + (s[6] - '0');
	*d = (s[8] - '0') * 10 + (s[9] - '0');
	if (*m < 1 || *m > 12)
		return "no such month";
	if (*d < 1 || *d > mdays[*m - 1] + (*m == 2 && is_leap(*y)))
		return "no such day in that month";
	return NULL;
}

/*
 * Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil): count in 400-year eras that start on March 1, so that the
 * leap day falls at the end of a year.
 */
static long days_from_civil(long y, int m, int d)
{
	long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;				/* [0, 399] */
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;	/* [0, 365] */
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;	/* [0, 146096] */
	return era * 146097 + doe - 719468;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	const char *p = in, *end = in + len, *s[2];
	size_t n[2];
	long y[2], days[2];
	int m[2], d[2], i;

	for (i = 0; i < 3; i++) {
		while (p < end && is_space((unsigned char)*p))
			p++;
		if (i == 2)
			break;
		for (s[i] = p; p < end && !is_space((unsigned char)*p); p++)
			;
		n[i] = (size_t)(p - s[i]);
	}
	if (n[0] == 0 || n[1] == 0 || p != end) {
		seglam_printf(out, "expected two dates, as \"YYYY-MM-DD YYYY-MM-DD\"\n");
		return 1;
	}
	for (i = 0; i < 2; i++) {
		const char *err = parse_date(s[i], n[i], &y[i], &m[i], &d[i]);

		if (err) {
			seglam_printf(out, "%s: '%.*s'\n", err, n[i] > 40 ? 40 : (int)n[i], s[i]);
			return 1;
		}
		days[i] = days_from_civil(y[i], m[i], d[i]);
	}
	seglam_printf(out, "%ld\n", days[1] - days[0]);
	return 0;
}
