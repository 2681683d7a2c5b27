/*
 * word-frequency: how often each word occurs, most frequent first.
 *
 * A word is a run of letters, digits and apostrophes; ASCII letters are compared
 * and printed in lower case, and any byte of a multibyte UTF-8 character counts
 * as a letter.  The words are sorted so that equal words are neighbours, counted,
 * and the counts sorted.
 */
#include <seglam.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct word {
	const char *s;
	size_t len;
	unsigned long count;
};

static bool is_word_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '\'' || c >= 0x80;
}

static int lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Case-insensitive (ASCII) byte order. */
static int cmp_text(const void *a, const void *b)
{
	const struct word *x = a, *y = b;
	size_t i, n = x->len < y->len ? x->len : y->len;

	for (i = 0; i < n; i++) {
		int c = lower((unsigned char)x->s[i]) - lower((unsigned char)y->s[i]);

		if (c)
			return c;
	}
	return x->len < y->len ? -1 : x->len > y->len;
}

/* Most frequent first; equal counts in word order. */
static int cmp_count(const void *a, const void *b)
{
	const struct word *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return cmp_text(a, b);
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	struct word *w;
	size_t i, n = 0, u = 0, k;

	w = malloc((len / 2 + 1) * sizeof(*w));	/* words are separated */
	if (!w) {
		seglam_printf(out, "out of memory\n");
		return 1;
	}
	for (i = 0; i < len;) {
		size_t start;

		/* apostrophes only inside words: "'tis" and "dogs'" lose theirs */
		while (i < len && (!is_word_byte((unsigned char)in[i]) || in[i] == '\''))
			i++;
		for (start = i; i < len && is_word_byte((unsigned char)in[i]); i++)
			;
		k = i;
		while (k > start && in[k - 1] == '\'')
			k--;
		if (k > start) {
			w[n].s = in + start;
			w[n].len = k - start;
			w[n].count = 1;
			n++;
		}
	}
	qsort(w, n, sizeof(*w), cmp_text);
	for (i = 0; i < n; i++) {	/* merge runs of equal words into w[0..u) */
		if (u > 0 && cmp_text(&w[u - 1], &w[i]) == 0)
			w[u - 1].count++;
		else
			w[u++] = w[i];
	}
	qsort(w, u, sizeof(*w), cmp_count);
	for (i = 0; i < u; i++) {
		char buf[256];
		size_t j;

		if (seglam_printf(out, "%lu ", w[i].count))
			break;
		for (j = 0; j < w[i].len; j++) {
			buf[j % sizeof(buf)] = (char)lower((unsigned char)w[i].s[j]);
			if (j % sizeof(buf) == sizeof(buf) - 1)
				seglam_write(out, buf, sizeof(buf));
		}
		seglam_write(out, buf, w[i].len % sizeof(buf));
		seglam_write(out, "\n", 1);
	}
	free(w);
	return 0;
}
