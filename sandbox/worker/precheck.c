/*
 * precheck: lexical screening of procedure source, see precheck.h.
 *
 * Works like translation phases 1-3 without trigraphs (tcc has neither trigraphs
 * nor digraphs): join backslash-newlines, then walk the tokens skipping comments
 * and string/char literals, so that "#include" inside a string or a comment is not
 * a directive, and a directive hidden behind a line splice or a comment is.
 *
 * It must see every directive tcc executes, and tcc (tccpp.c) lexes in two modes:
 * normal text, and the text skipped by a false #if (preprocess_skip), which differ.
 * The precheck cannot know which mode a line is in (that needs macro values), so
 * it reads every line in a way that is right in both, and refuses the constructs
 * where the two modes (or tcc and the C standard) disagree:
 *  - the rest of an #error or #warning line is raw text in both modes: no comment
 *    or literal starts there;
 *  - tcc lets a string or character literal run over newlines until its closing
 *    quote (also in skipped text): a literal must end on the line it starts, or
 *    the source is refused;
 *  - a '#' first on a line but after a comment is a directive in normal text and
 *    not in skipped text: refused;
 *  - a backslash outside a literal that does not end the line: tcc's skipped text
 *    ignores it without ending the line start, so a "\#warning" there is a
 *    directive: refused (it is an error in normal text anyway).
 * tests/unit/test_precheck_tcc.c checks this against tcc itself.
 */
#include "precheck.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const worker_headers[] = {
    "seglam.h", "string.h",  "stdlib.h", "stdio.h",  "ctype.h",	 "math.h",
    "stdint.h", "stdbool.h", "limits.h", "stddef.h", "stdarg.h",
};

static const char *const worker_directives[] = {
    "define", "undef", "if", "ifdef", "ifndef", "elif", "else", "endif", "error", "warning",
};

#define WORKER_NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct worker_text {
	char *c;	/* source with backslash-newlines removed */
	uint32_t *line; /* original line number of each byte of c */
	size_t n;
};

static bool worker_isident(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' ||
	       (!first && c >= '0' && c <= '9');
}

static bool worker_ishspace(char c)
{
	return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

static void worker_headers_list(struct buf *err)
{
	buf_adds(err, "procedures may include:");
	for (size_t i = 0; i < WORKER_NELEM(worker_headers); i++)
		buf_printf(err, " <%s>", worker_headers[i]);
}

/* Append the directive starting at @i (up to the end of its logical line) for messages. */
static void worker_quote_line(const struct worker_text *t, size_t i, struct buf *err)
{
	size_t end = i;

	while (end < t->n && t->c[end] != '\n' && end - i < 80)
		end++;
	while (end > i && worker_ishspace(t->c[end - 1]))
		end--;
	for (size_t k = i; k < end; k++)
		buf_addc(err, (unsigned char)t->c[k] < 0x20 ? ' ' : t->c[k]);
	if (end < t->n && t->c[end] != '\n' && end - i >= 80)
		buf_adds(err, "...");
}

/*
 * Skip horizontal white space and comments from @i, not crossing a newline except
 * inside a block comment (which the preprocessor turns into one space).
 * Returns the new index, or SIZE_MAX for an unterminated comment.
 */
static size_t worker_skip_blank(const struct worker_text *t, size_t i)
{
	for (;;) {
		if (i < t->n && worker_ishspace(t->c[i])) {
			i++;
		} else if (i + 1 < t->n && t->c[i] == '/' && t->c[i + 1] == '*') {
			const char *e = NULL;

			if (i + 2 < t->n)
				e = memmem(t->c + i + 2, t->n - i - 2, "*/", 2);
			if (!e)
				return SIZE_MAX;
			i = (size_t)(e - t->c) + 2;
		} else if (i + 1 < t->n && t->c[i] == '/' && t->c[i + 1] == '/') {
			while (i < t->n && t->c[i] != '\n')
				i++;
		} else {
			return i;
		}
	}
}

/* Check an #include whose operand starts at @i; @hash is the '#'. */
static int worker_check_include(const struct worker_text *t, size_t hash, size_t i, struct buf *err)
{
	char close;
	size_t start, end;

	if (i >= t->n || (t->c[i] != '<' && t->c[i] != '"'))
		goto bad;
	close = t->c[i] == '<' ? '>' : '"';
	start = i + 1;
	end = start;
	while (end < t->n && t->c[end] != close && t->c[end] != '\n')
		end++;
	if (end >= t->n || t->c[end] != close)
		goto bad;
	i = worker_skip_blank(t, end + 1);
	if (i != SIZE_MAX && i < t->n && t->c[i] != '\n')
		goto bad; /* trailing tokens */
	for (size_t k = 0; k < WORKER_NELEM(worker_headers); k++) {
		size_t hl = strlen(worker_headers[k]);

		if (close == '"' && strcmp(worker_headers[k], "seglam.h") != 0)
			continue;
		if (end - start == hl && memcmp(t->c + start, worker_headers[k], hl) == 0)
			return 0;
	}
bad:
	buf_printf(err, "line %u: ", t->line[hash]);
	worker_quote_line(t, hash, err);
	buf_adds(err, " is not allowed (");
	worker_headers_list(err);
	buf_adds(err, ")");
	return -1;
}

/* Check the directive whose '#' is at @hash.  On success *@next is where to go on. */
static int worker_check_directive(const struct worker_text *t, size_t hash, size_t *next,
				  struct buf *err)
{
	size_t i = worker_skip_blank(t, hash + 1), start;

	if (i == SIZE_MAX) {
		buf_printf(err, "line %u: unterminated comment", t->line[hash]);
		return -1;
	}
	if (i >= t->n || t->c[i] == '\n') {
		*next = i; /* the null directive */
		return 0;
	}
	start = i;
	while (i < t->n && worker_isident(t->c[i], i == start))
		i++;
	if ((i - start == 5 && memcmp(t->c + start, "error", 5) == 0) ||
	    (i - start == 7 && memcmp(t->c + start, "warning", 7) == 0)) {
		/* tcc reads the rest of the line raw, in skipped text too */
		while (i < t->n && t->c[i] != '\n')
			i++;
		*next = i;
		return 0;
	}
	if (i - start == 7 && memcmp(t->c + start, "include", 7) == 0) {
		size_t op = worker_skip_blank(t, i);

		if (worker_check_include(t, hash, op == SIZE_MAX ? t->n : op, err) < 0)
			return -1;
		*next = i;
		return 0;
	}
	for (size_t k = 0; k < WORKER_NELEM(worker_directives); k++) {
		size_t dl = strlen(worker_directives[k]);

		if (i - start == dl && memcmp(t->c + start, worker_directives[k], dl) == 0) {
			*next = i;
			return 0;
		}
	}
	buf_printf(err, "line %u: ", t->line[hash]);
	worker_quote_line(t, hash, err);
	buf_adds(err, " is not allowed (allowed directives:");
	for (size_t k = 0; k < WORKER_NELEM(worker_directives); k++)
		buf_printf(err, " #%s", worker_directives[k]);
	buf_adds(err, " #include; ");
	worker_headers_list(err);
	buf_adds(err, ")");
	return -1;
}

/* Translation phase 2: remove backslash-newline, remembering original line numbers. */
static int worker_splice(const char *src, size_t len, struct worker_text *t)
{
	uint32_t line = 1;

	t->c = malloc(len + 1);
	t->line = malloc((len + 1) * sizeof(*t->line));
	t->n = 0;
	if (!t->c || !t->line)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (src[i] == '\\' && i + 1 < len && src[i + 1] == '\n') {
			i++;
			line++;
			continue;
		}
		if (src[i] == '\\' && i + 2 < len && src[i + 1] == '\r' && src[i + 2] == '\n') {
			i += 2;
			line++;
			continue;
		}
		t->c[t->n] = src[i];
		t->line[t->n++] = line;
		if (src[i] == '\n')
			line++;
	}
	t->c[t->n] = '\0';
	t->line[t->n] = line;
	return 0;
}

int worker_precheck(const char *src, size_t len, struct buf *err)
{
	struct worker_text t = {0};
	bool line_start = true, commented = false;
	size_t i = 0;
	int ret = -1;

	if (memchr(src, '\0', len)) {
		buf_adds(err, "source contains a NUL byte");
		goto out;
	}
	if (worker_splice(src, len, &t) < 0) {
		buf_adds(err, "out of memory checking the source");
		goto out;
	}
	while (i < t.n) {
		char c = t.c[i];

		if (c == '\n') {
			line_start = true;
			commented = false;
			i++;
		} else if (worker_ishspace(c)) {
			i++;
		} else if (c == '/' && i + 1 < t.n && (t.c[i + 1] == '*' || t.c[i + 1] == '/')) {
			/* comments are white space: they keep line_start as it was */
			commented = commented || line_start;
			i = worker_skip_blank(&t, i);
			if (i == SIZE_MAX) {
				buf_adds(err, "unterminated comment");
				goto out;
			}
		} else if (c == '#' && line_start) {
			if (commented) {
				buf_printf(
				    err,
				    "line %u: a directive after a comment on its line is not "
				    "allowed (tcc reads it differently inside #if 0); move "
				    "the comment after it",
				    t.line[i]);
				goto out;
			}
			if (worker_check_directive(&t, i, &i, err) < 0)
				goto out;
			line_start = false;
		} else if (c == '"' || c == '\'') {
			size_t start = i;

			/* tcc would go on past the newline (parse_pp_string); C does not */
			for (i++; i < t.n && t.c[i] != c && t.c[i] != '\n'; i++)
				if (t.c[i] == '\\' && i + 1 < t.n && t.c[i + 1] != '\n')
					i++;
			if (i >= t.n || t.c[i] != c) {
				buf_printf(err,
					   "line %u: missing terminating %c character (a string or "
					   "character literal must end on the line it starts)",
					   t.line[start], c);
				goto out;
			}
			i++;
			line_start = false;
		} else if (c == '\\') {
			/* not a line splice (those are gone): a stray backslash */
			buf_printf(err, "line %u: stray '\\' outside a literal", t.line[i]);
			goto out;
		} else if (worker_isident(c, true)) {
			size_t start = i;

			while (i < t.n && worker_isident(t.c[i], false))
				i++;
			if (i - start == 7 && memcmp(t.c + start, "_Pragma", 7) == 0) {
				buf_printf(err, "line %u: the _Pragma operator is not allowed",
					   t.line[start]);
				goto out;
			}
			line_start = false;
		} else if (c >= '0' && c <= '9') {
			/* a pp-number, so that 1e_Pragma is not taken for an identifier */
			for (i++; i < t.n; i++) {
				char d = t.c[i];

				if ((d == '+' || d == '-') && strchr("eEpP", t.c[i - 1]))
					continue;
				if (!worker_isident(d, false) && d != '.')
					break;
			}
			line_start = false;
		} else {
			line_start = false;
			i++;
		}
	}
	ret = 0;
out:
	free(t.c);
	free(t.line);
	return ret;
}
