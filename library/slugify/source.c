/*
 * slugify: a URL slug made from the input ("Hello, World!" -> "hello-world").
 *
 * ASCII letters (lowered) and digits are kept.  Latin-1 letters are spelled in
 * ASCII ("Crème Brûlée" -> "creme-brulee", "ß" -> "ss").  Apostrophes vanish
 * ("don't" -> "dont").  Every other run of bytes becomes a single '-', and the
 * slug neither starts nor ends with '-'.
 */
#include <seglam.h>
#include <stdbool.h>
#include <string.h>

/* ASCII spellings of U+00C0..U+00FF; "" separates words (× and ÷). */
static const char *const latin1[64] = {
	"a", "a", "a", "a", "a", "a", "ae", "c",	/* À Á Â Ã Ä Å Æ Ç */
	"e", "e", "e", "e", "i", "i", "i", "i",		/* È É Ê Ë Ì Í Î Ï */
	"d", "n", "o", "o", "o", "o", "o", "",		/* Ð Ñ Ò Ó Ô Õ Ö × */
	"o", "u", "u", "u", "u", "y", "th", "ss",	/* Ø Ù Ú Û Ü Ý Þ ß */
	"a", "a", "a", "a", "a", "a", "ae", "c",	/* à á â ã ä å æ ç */
	"e", "e", "e", "e", "i", "i", "i", "i",		/* è é ê ë ì í î ï */
	"d", "n", "o", "o", "o", "o", "o", "",		/* ð ñ ò ó ô õ ö ÷ */
	"o", "u", "u", "u", "u", "y", "th", "y",	/* ø ù ú û ü ý þ ÿ */
};

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	const unsigned char *s = (const unsigned char *)in;
	char buf[4096];
	size_t i = 0, n = 0;
	bool any = false, dash = false;	/* anything written yet; a '-' pending */

	while (i < len) {
		const char *keep = NULL;	/* what this character spells */
		char one[2] = { 0, 0 };
		size_t k = 1;

		if ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')) {
			one[0] = (char)s[i];
			keep = one;
		} else if (s[i] >= 'A' && s[i] <= 'Z') {
			one[0] = (char)(s[i] - 'A' + 'a');
			keep = one;
		} else if (s[i] == '\'') {
			i++;
			continue;
		} else if ((s[i] == 0xc3) && i + 1 < len && s[i + 1] >= 0x80 &&
			   s[i + 1] <= 0xbf) {
			/* U+00C0..U+00FF is 0xc3 0x80..0xbf */
			keep = latin1[s[i + 1] - 0x80];
			k = 2;
		} else if (s[i] == 0xe2 && i + 2 < len && s[i + 1] == 0x80 &&
			   s[i + 2] == 0x99) {
			i += 3;		/* U+2019, the typographic apostrophe */
			continue;
		}
		i += k;
		if (!keep || !*keep) {
			dash = any;	/* separators only between words */
			continue;
		}
		if (n > sizeof(buf) - 4) {
			if (seglam_write(out, buf, n))
				return 1;
			n = 0;
		}
		if (dash)
			buf[n++] = '-';
		memcpy(buf + n, keep, strlen(keep));
		n += strlen(keep);
		any = true;
		dash = false;
	}
	if (!any) {
		seglam_printf(out, "no letters or digits to make a slug of\n");
		return 1;
	}
	buf[n++] = '\n';
	seglam_write(out, buf, n);
	return 0;
}
