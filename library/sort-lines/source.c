/*
 * sort-lines: the lines of the input in byte order, like `LC_ALL=C sort`.
 */
#include <seglam.h>
#include <stdlib.h>
#include <string.h>

struct line {
	const char *s;
	size_t len;
};

/*
 * Split in[0..len) into lines.  A final newline ends the last line rather than
 * starting an empty one.  Returns the number of lines, or -1 if out of memory.
 */
static long split_lines(const char *in, size_t len, struct line **lines)
{
	size_t i, n = 0, start = 0;

	for (i = 0; i < len; i++)
		if (in[i] == '\n')
			n++;
	if (len > 0 && in[len - 1] != '\n')
		n++;
	*lines = malloc((n ? n : 1) * sizeof(**lines));
	if (!*lines)
		return -1;
	n = 0;
	for (i = 0; i <= len; i++) {
		if (i == len ? i > start : in[i] == '\n') {
			(*lines)[n].s = in + start;
			(*lines)[n].len = i - start;
			n++;
			start = i + 1;
		}
	}
	return (long)n;
}

/* Byte order, like `LC_ALL=C sort`: a line sorts before its extensions. */
static int cmp_line(const void *a, const void *b)
{
	const struct line *x = a, *y = b;
	int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);

	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	struct line *lines;
	long n = split_lines(in, len, &lines), i;

	if (n < 0) {
		seglam_printf(out, "out of memory\n");
		return 1;
	}
	qsort(lines, (size_t)n, sizeof(*lines), cmp_line);
	for (i = 0; i < n; i++) {
		if (seglam_write(out, lines[i].s, lines[i].len) ||
		    seglam_write(out, "\n", 1))
			break;
	}
	free(lines);
	return 0;
}
