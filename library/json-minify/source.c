/*
 * json-minify: a JSON text, validated, with all whitespace between tokens removed.
 *
 * A strict RFC 8259 parser (recursive descent, nesting limited to MAX_DEPTH)
 * that prints as it parses.  Strings and numbers are copied exactly as written,
 * so nothing is lost or re-rounded.  The input is parsed twice: once to validate
 * it, once to print it.
 */
#define PRETTY 0

#include <seglam.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#define MAX_DEPTH 256

struct json {
	const char *p, *end;		/* the parse position and the end */
	seglam_out *out;		/* NULL in the validating pass */
	int depth;
	const char *err;		/* the first error and where it happened */
	const char *err_at;
	bool write_failed;
	size_t n;			/* output is batched in buf[0..n) */
	char buf[4096];
};

static bool fail(struct json *j, const char *err)
{
	if (!j->err) {
		j->err = err;
		j->err_at = j->p;
	}
	return false;
}

static void flush(struct json *j)
{
	if (j->out && j->n && seglam_write(j->out, j->buf, j->n))
		j->write_failed = true;
	j->n = 0;
}

static void emit(struct json *j, const char *s, size_t len)
{
	if (!j->out)
		return;
	while (len > 0) {
		size_t k = sizeof(j->buf) - j->n;

		if (k > len)
			k = len;
		memcpy(j->buf + j->n, s, k);
		j->n += k;
		s += k;
		len -= k;
		if (j->n == sizeof(j->buf))
			flush(j);
	}
}

/* In pretty mode: a newline and two spaces per nesting level. */
static void newline(struct json *j)
{
	int i;

	if (!PRETTY)
		return;
	emit(j, "\n", 1);
	for (i = 0; i < j->depth; i++)
		emit(j, "  ", 2);
}

/* JSON whitespace is exactly space, tab, newline and carriage return. */
static void skip_ws(struct json *j)
{
	while (j->p < j->end &&
	       (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The length of the valid UTF-8 sequence at s[0..n), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t k, i;
	long c;

	if (s[0] < 0x80)
		return 1;
	else if (s[0] >= 0xc2 && s[0] <= 0xdf)
		k = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		k = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		k = 4, c = s[0] & 0x07;
	else
		return 0;
	if (k > n)
		return 0;
	for (i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((k == 3 && c < 0x800) || (k == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;	/* overlong, beyond U+10FFFF, or a surrogate */
	return k;
}

/* A string, copied as it is written (escapes are checked, not rewritten). */
static bool string(struct json *j)
{
	const char *s = j->p;

	j->p++;		/* the opening quote */
	while (j->p < j->end && *j->p != '"') {
		unsigned char c = (unsigned char)*j->p;

		if (c < 0x20)
			return fail(j, "control character in string (escape it)");
		if (c == '\\') {
			j->p++;
			if (j->p == j->end)
				break;
			if (*j->p == 'u') {
				int i;

				for (i = 1; i <= 4; i++)
					if (j->p + i >= j->end || !is_hex(j->p[i]))
						return fail(j, "\\u needs four hex digits");
				j->p += 5;
			} else if (*j->p && strchr("\"\\/bfnrt", *j->p)) {
				j->p++;
			} else {
				return fail(j, "unknown escape in string");
			}
		} else {
			size_t k = utf8_len((const unsigned char *)j->p,
					    (size_t)(j->end - j->p));

			if (k == 0)
				return fail(j, "invalid UTF-8 in string");
			j->p += k;
		}
	}
	if (j->p == j->end)
		return fail(j, "unterminated string");
	j->p++;
	emit(j, s, (size_t)(j->p - s));
	return true;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, copied as it is written */
static bool number(struct json *j)
{
	const char *s = j->p;

	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p == j->end || !is_digit(*j->p))
		return fail(j, "expected a digit");
	if (*j->p == '0') {
		j->p++;
		if (j->p < j->end && is_digit(*j->p))
			return fail(j, "leading zero in number");
	} else {
		while (j->p < j->end && is_digit(*j->p))
			j->p++;
	}
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p == j->end || !is_digit(*j->p))
			return fail(j, "expected a digit after '.'");
		while (j->p < j->end && is_digit(*j->p))
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p == j->end || !is_digit(*j->p))
			return fail(j, "expected a digit in exponent");
		while (j->p < j->end && is_digit(*j->p))
			j->p++;
	}
	emit(j, s, (size_t)(j->p - s));
	return true;
}

static bool literal(struct json *j, const char *word)
{
	size_t k = strlen(word);

	if ((size_t)(j->end - j->p) < k || memcmp(j->p, word, k) != 0)
		return fail(j, "expected a value");
	emit(j, word, k);
	j->p += k;
	return true;
}

static bool value(struct json *j);

/* An object or an array (close is '}' or ']'); j->p is at the opening bracket. */
static bool container(struct json *j, char close)
{
	bool first = true;

	if (++j->depth > MAX_DEPTH)
		return fail(j, "nested too deeply (the limit is 256 levels)");
	emit(j, j->p, 1);
	j->p++;
	skip_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		j->depth--;
		emit(j, &close, 1);	/* {} and [] stay on one line */
		return true;
	}
	for (;;) {
		if (!first)
			emit(j, ",", 1);
		newline(j);
		first = false;
		if (close == '}') {
			if (j->p == j->end || *j->p != '"')
				return fail(j, "expected a string as object key");
			if (!string(j))
				return false;
			skip_ws(j);
			if (j->p == j->end || *j->p != ':')
				return fail(j, "expected ':' after object key");
			j->p++;
			emit(j, PRETTY ? ": " : ":", PRETTY ? 2 : 1);
			skip_ws(j);
		}
		if (!value(j))
			return false;
		skip_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			skip_ws(j);
			continue;
		}
		if (j->p < j->end && *j->p == close)
			break;
		return fail(j, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
	}
	j->p++;
	j->depth--;
	newline(j);
	emit(j, &close, 1);
	return true;
}

static bool value(struct json *j)
{
	if (j->p == j->end)
		return fail(j, "expected a value");
	switch (*j->p) {
	case '{':
		return container(j, '}');
	case '[':
		return container(j, ']');
	case '"':
		return string(j);
	case 't':
		return literal(j, "true");
	case 'f':
		return literal(j, "false");
	case 'n':
		return literal(j, "null");
	default:
		if (*j->p == '-' || is_digit(*j->p))
			return number(j);
		return fail(j, "expected a value");
	}
}

/* One JSON text: a value with optional whitespace around it, and nothing else. */
static bool document(struct json *j)
{
	skip_ws(j);
	if (!value(j))
		return false;
	skip_ws(j);
	if (j->p != j->end)
		return fail(j, "unexpected data after the JSON value");
	emit(j, "\n", 1);
	flush(j);
	return true;
}

int seglam_run(const char *in, size_t len, seglam_out *out)
{
	struct json j;
	const char *s;
	unsigned long line = 1, col = 1;

	/* First only validate, so that nothing is written for invalid input... */
	memset(&j, 0, sizeof(j));
	j.p = in;
	j.end = in + len;
	if (!document(&j)) {
		for (s = in; s < j.err_at; s++) {
			if (*s == '\n')
				line++, col = 1;
			else
				col++;
		}
		seglam_printf(out, "invalid JSON at line %lu, column %lu: %s\n",
			      line, col, j.err);
		return 1;
	}
	/* ...then parse again, writing. */
	memset(&j, 0, sizeof(j));
	j.p = in;
	j.end = in + len;
	j.out = out;
	document(&j);
	return j.write_failed;
}
