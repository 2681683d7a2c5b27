/*
 * luhn: whether a number passes the Luhn check ("true" or "false"), the checksum
 * of credit card numbers, IMEIs and many other identifiers.
 *
 * From the rightmost digit (the check digit) leftwards, every second digit is
 * doubled, 9 subtracted when that exceeds 9, and the total must end in 0.
 */
#include <seglam.h>
#include <stdbool.h>

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	unsigned long sum = 0, digits = 0;
	size_t i = len;

	while (i-- > 0) {
		char c = in[i];

		if (c == ' ' || c == '-' || c == '\t' || c == '\n' || c == '\r')
			continue;	/* grouping and a final newline */
		if (c < '0' || c > '9') {
			seglam_printf(out, "not a digit: byte 0x%02x at offset %zu\n",
				      (unsigned char)c, i);
			return 1;
		}
		if (digits++ % 2 == 1) {
			int d = 2 * (c - '0');

			sum += d > 9 ? d - 9 : d;
		} else {
			sum += (unsigned long)(c - '0');
		}
	}
	if (digits < 2) {
		seglam_printf(out, "need at least two digits\n");
		return 1;
	}
	seglam_printf(out, "%s\n", sum % 10 == 0 ? "true" : "false");
	return 0;
}
