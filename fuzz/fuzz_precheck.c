/*
 * fuzz precheck: sandbox/worker/precheck.c worker_precheck, the lexical screen every
 * procedure source goes through in the worker before tcc sees a byte.  The input
 * is the source.
 *
 * Checked against a reference written separately from precheck.c and in another
 * shape (three passes: splice, strip comments, scan lines) from the rules the
 * precheck states: translation phases 1-3 without trigraphs; a '#' first on a
 * logical line (comments count as blanks) starts a directive, which must be one
 * of the allowed ones, and an #include must name an allowed header as <h> (or
 * "seglam.h") with nothing after it; no _Pragma identifier outside literals and
 * pp-numbers; no NUL, no unterminated block comment.  And where tcc's lexer reads
 * differently from the C standard or between normal and #if-skipped text (issue
 * 10): the rest of an #error/#warning line is raw (no comment or literal starts
 * in it); a literal must close on its line; a '#' first on a line but after a
 * comment is refused; a backslash outside a literal (after splicing) is refused.
 * tests/unit/test_precheck_tcc.c checks the same against tcc itself.  Both must agree in both
 * directions: accepting what the reference finds forbidden is a sandbox hole,
 * refusing what it finds fine would break good procedures.  Also: the verdict
 * is stable, a refusal carries one message with a real line number, and
 * appending a forbidden (allowed) directive on a new line of an accepted source
 * is refused (accepted), so no state leaks from one line to the next.
 */
#include "fuzz.h"

#include <stdbool.h>
#include <string.h>

#include "buf.h"
#include "precheck.h"

/* docs/DESIGN.md, "Procedure ABI": what a procedure may include. */
static const char *const ref_headers[] = {
    "seglam.h", "string.h",  "stdlib.h", "stdio.h",  "ctype.h",	 "math.h",
    "stdint.h", "stdbool.h", "limits.h", "stddef.h", "stdarg.h",
};

/* Conditional compilation, macros and diagnostics; never #pragma, #line, #ident... */
static const char *const ref_directives[] = {
    "define", "undef", "if", "ifdef", "ifndef", "elif", "else", "endif", "error", "warning",
};

#define REF_NELEM(a) (sizeof(a) / sizeof((a)[0]))

static bool ref_hspace(char c)
{
	return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r';
}

static bool ref_idchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$';
}

static bool ref_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Phase 2: drop backslash-newline (LF or CRLF).  @out holds @n bytes. */
static size_t ref_splice(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\\' && i + 1 < n && in[i + 1] == '\n')
			i += 1;
		else if (in[i] == '\\' && i + 2 < n && in[i + 1] == '\r' && in[i + 2] == '\n')
			i += 2;
		else
			out[o++] = (char)in[i];
	}
	return o;
}

/*
 * End of the literal opened by the quote at @i: past its closing quote, or at
 * the newline (or end) where an unterminated one stops.
 */
static size_t ref_literal_end(const char *t, size_t n, size_t i, bool *closed)
{
	char q = t[i++];

	*closed = false;
	while (i < n && t[i] != '\n') {
		if (t[i] == q) {
			*closed = true;
			return i + 1;
		}
		i += t[i] == '\\' && i + 1 < n && t[i + 1] != '\n' ? 2 : 1;
	}
	return i;
}

/* Written into the comment-free text for a comment that comes first on its line
 * (ref_accepts maps any 0x01 of the input to 0x02 first: both are "other" bytes). */
#define REF_LEADING_COMMENT '\x01'

static bool ref_word_at(const char *t, size_t n, size_t i, const char *word)
{
	size_t l = strlen(word);

	return i + l <= n && !memcmp(t + i, word, l) && (i + l == n || !ref_idchar(t[i + l]));
}

/*
 * Phase 3, comments only: each becomes one space (REF_LEADING_COMMENT when only
 * blanks and comments come before it on its line), literals are kept as they are,
 * and so is the rest of an #error or #warning line, where nothing is a comment.
 * Returns the new length, or -1 for an unterminated block comment.
 */
static long ref_uncomment(const char *in, size_t n, char *out)
{
	size_t o = 0, i = 0;
	bool bol = true;	 /* only blanks and comments so far on this line */
	bool after_hash = false; /* a directive's name may come next */

	while (i < n) {
		if (in[i] == '\n') {
			bol = true;
			after_hash = false;
			out[o++] = in[i++];
		} else if (ref_hspace(in[i])) {
			out[o++] = in[i++];
		} else if (in[i] == '/' && i + 1 < n && in[i + 1] == '*') {
			const char *e = i + 2 < n ? memmem(in + i + 2, n - i - 2, "*/", 2) : NULL;

			if (!e)
				return -1;
			out[o++] = bol ? REF_LEADING_COMMENT : ' ';
			i = (size_t)(e - in) + 2;
		} else if (in[i] == '/' && i + 1 < n && in[i + 1] == '/') {
			while (i < n && in[i] != '\n')
				i++;
		} else if (in[i] == '#' && bol) {
			out[o++] = in[i++];
			bol = false;
			after_hash = true;
		} else if (after_hash &&
			   (ref_word_at(in, n, i, "error") || ref_word_at(in, n, i, "warning"))) {
			while (i < n && in[i] != '\n')
				out[o++] = in[i++];
		} else if (in[i] == '"' || in[i] == '\'') {
			bool closed;
			size_t e = ref_literal_end(in, n, i, &closed);

			memcpy(out + o, in + i, e - i);
			o += e - i;
			i = e;
			bol = after_hash = false;
		} else {
			out[o++] = in[i++];
			bol = after_hash = false;
		}
	}
	return (long)o;
}

static bool ref_is(const char *s, size_t len, const char *word)
{
	return len == strlen(word) && !memcmp(s, word, len);
}

/* The operand of an #include from @i to the end of its line: allowed or not. */
static bool ref_include_ok(const char *t, size_t n, size_t i)
{
	size_t start, end;
	char close;

	while (i < n && ref_hspace(t[i]))
		i++;
	if (i >= n || (t[i] != '<' && t[i] != '"'))
		return false;
	close = t[i] == '<' ? '>' : '"';
	start = end = i + 1;
	while (end < n && t[end] != close && t[end] != '\n')
		end++;
	if (end >= n || t[end] != close)
		return false;
	for (i = end + 1; i < n && t[i] != '\n'; i++)
		if (!ref_hspace(t[i]))
			return false;
	if (close == '"')
		return ref_is(t + start, end - start, "seglam.h");
	for (size_t k = 0; k < REF_NELEM(ref_headers); k++)
		if (ref_is(t + start, end - start, ref_headers[k]))
			return true;
	return false;
}

/* Scan comment-free text: true when nothing forbidden is in it. */
static bool ref_scan(const char *t, size_t n)
{
	bool line_start = true, commented = false;
	size_t i = 0;

	while (i < n) {
		char c = t[i];

		if (c == '\n') {
			line_start = true;
			commented = false;
			i++;
		} else if (c == REF_LEADING_COMMENT) {
			commented = true;
			i++;
		} else if (ref_hspace(c)) {
			i++;
		} else if (c == '#' && line_start) {
			size_t name;
			bool ok = false;

			if (commented)
				return false; /* a directive in normal text, not in skipped text */
			for (i++; i < n && ref_hspace(t[i]); i++)
				;
			line_start = false;
			if (i >= n || t[i] == '\n')
				continue; /* the null directive */
			name = i;
			if (!ref_digit(t[i]))
				while (i < n && ref_idchar(t[i]))
					i++;
			if (ref_is(t + name, i - name, "include")) {
				if (!ref_include_ok(t, n, i))
					return false;
				continue;
			}
			if (ref_is(t + name, i - name, "error") ||
			    ref_is(t + name, i - name, "warning")) {
				while (i < n && t[i] != '\n')
					i++; /* raw text */
				continue;
			}
			for (size_t k = 0; k < REF_NELEM(ref_directives); k++)
				ok |= ref_is(t + name, i - name, ref_directives[k]);
			if (!ok)
				return false; /* #pragma, #line, # 12 "file", #ident, ... */
		} else if (c == '"' || c == '\'') {
			bool closed;

			i = ref_literal_end(t, n, i, &closed);
			if (!closed)
				return false; /* tcc would read on past the newline */
			line_start = false;
		} else if (c == '\\') {
			return false; /* stray: splices are gone */
		} else if (ref_digit(c) || (c == '.' && i + 1 < n && ref_digit(t[i + 1]))) {
			/* pp-number: digits, letters, '_', '$', '.', and a sign after e/E/p/P */
			for (i++; i < n; i++) {
				if ((t[i] == '+' || t[i] == '-') && strchr("eEpP", t[i - 1]))
					continue;
				if (!ref_idchar(t[i]) && t[i] != '.')
					break;
			}
			line_start = false;
		} else if (ref_idchar(c)) {
			size_t start = i;

			while (i < n && ref_idchar(t[i]))
				i++;
			if (ref_is(t + start, i - start, "_Pragma"))
				return false;
			line_start = false;
		} else {
			i++;
			line_start = false;
		}
	}
	return true;
}

static bool ref_accepts(const uint8_t *data, size_t size)
{
	char *spliced, *plain;
	size_t n;
	long m;
	bool ok;

	if (memchr(data, '\0', size))
		return false;
	spliced = malloc(size + 1);
	plain = malloc(size + 1);
	FUZZ_CHECK(spliced && plain);
	n = ref_splice(data, size, spliced);
	for (size_t i = 0; i < n; i++)
		if (spliced[i] == REF_LEADING_COMMENT)
			spliced[i] = '\x02';
	m = ref_uncomment(spliced, n, plain);
	ok = m >= 0 && ref_scan(plain, (size_t)m);
	free(spliced);
	free(plain);
	return ok;
}

/* worker_precheck on an exact-size heap copy of @data + @suffix (ASan sees overreads). */
static int precheck(const uint8_t *data, size_t size, const char *suffix, struct buf *err)
{
	size_t sl = strlen(suffix);
	char *src = malloc(size + sl + 1);
	int r;

	FUZZ_CHECK(src);
	memcpy(src, data, size);
	memcpy(src + size, suffix, sl);
	buf_reset(err);
	r = worker_precheck(src, size + sl, err);
	free(src);
	return r;
}

int fuzz_precheck(const uint8_t *data, size_t size)
{
	struct buf err = BUF_INIT, again = BUF_INIT;
	bool ref = ref_accepts(data, size);
	int r = precheck(data, size, "", &err);

	FUZZ_CHECK(r == 0 || r == -1);
	FUZZ_CHECK((r == 0) == ref);
	FUZZ_CHECK(precheck(data, size, "", &again) == r);
	FUZZ_CHECK(err.len == again.len && (!err.len || !memcmp(err.data, again.data, err.len)));
	if (r == 0) {
		FUZZ_CHECK(err.len == 0);
		/* Two newlines: the first may be spliced onto a trailing backslash. */
		FUZZ_CHECK(precheck(data, size, "\n\n#pragma once\n", &again) < 0);
		FUZZ_CHECK(precheck(data, size, "\n\n#line 1 \"x\"\n", &again) < 0);
		FUZZ_CHECK(precheck(data, size, "\n\n#include </etc/passwd>\n", &again) < 0);
		FUZZ_CHECK(precheck(data, size, "\n\n_Pragma(\"once\")\n", &again) < 0);
		FUZZ_CHECK(precheck(data, size, "\n\n#include <stdio.h>\n", &again) == 0);
	} else {
		size_t lines = 1;

		for (size_t i = 0; i < size; i++)
			lines += data[i] == '\n';
		FUZZ_CHECK(err.len > 0 && err.data[err.len - 1] != '\n');
		if (err.len > 5 && !memcmp(err.data, "line ", 5)) {
			unsigned long line = strtoul(err.data + 5, NULL, 10);

			FUZZ_CHECK(line >= 1 && line <= lines);
		} else {
			FUZZ_CHECK(!strcmp(err.data, "source contains a NUL byte") ||
				   !strcmp(err.data, "unterminated comment"));
		}
	}
	buf_free(&err);
	buf_free(&again);
	return 0;
}

FUZZ_MAIN(precheck)
