/*
 * weeks-between: the time between two dates in weeks and days ("2024-01-01
 * 2024-03-01" -> "8 weeks 4 days").
 *
 * Composed: the day count comes from the days-between type (seglam_call), which
 * owns the date parsing and calendar rules; this only divides by seven.
 */
#include <seglam.h>
#include <stdlib.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	const char *days;
	char *end;
	size_t n;
	long d, w;

	days = seglam_call("days-between", in, len, &n);
	if (!days) {
		seglam_printf(out, "expected two dates, as \"YYYY-MM-DD YYYY-MM-DD\"\n");
		return 1;
	}
	d = strtol(days, &end, 10);
	if (end == days || (*end != '\n' && *end != '\0')) {
		seglam_printf(out, "days-between answered something unexpected\n");
		return 1;
	}
	if (d < 0)
		seglam_printf(out, "-");
	d = labs(d);
	w = d / 7;
	d %= 7;
	seglam_printf(out, "%ld week%s %ld day%s\n", w, w == 1 ? "" : "s", d, d == 1 ? "" : "s");
	return 0;
}
