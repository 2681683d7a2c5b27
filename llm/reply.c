/*
 * reply: finding the procedure (and optional test cases) in whatever a model
 * sends back.  The input is untrusted and may be any bytes, not NUL-terminated:
 * every access is bounded by the length, never by a terminator.
 *
 * One scan turns the reply into fenced blocks and the text outside them:
 *   - CRLF becomes LF;
 *   - reasoning is dropped: from a line starting with <think> or <thinking> to
 *     the matching close tag (or to the end when it never closes: a cut-off
 *     thought is not an answer), and, for servers that strip the opening tag,
 *     everything before a lone </think> that comes before any fence;
 *   - fences are ``` or ~~~ (3 or more, any indentation), closed by a line of
 *     at least as many of the same character and nothing else (as CommonMark);
 *     a fence the reply never closes (cut at max_tokens) runs to the end.
 *
 * Which code is the procedure (llm_reply_code), first rule that matches:
 *   1. the last block tagged c-like (c, C, h, cpp, c++, cc, cxx) or untagged that
 *      defines seglam_run (a definition, not a prototype or a call): models put
 *      the final version last, after drafts; a closed block beats a cut one;
 *   2. the last block in any other language that defines seglam_run;
 *   3. bare code outside any fence around a definition of seglam_run;
 *   4. the last block explicitly tagged c-like (compiling it will say what is
 *      missing, which is a better repair message than "no code").
 * Otherwise -ENOENT.
 *
 * Test cases (llm_reply_cases) are the lines of ```tests blocks, see prompt.txt:
 *   INPUT => ANSWER      (ANSWER gets one "\n" appended; \n \t \r \\ \" \0 \xHH)
 */
#include "llm.h"
#include "llm_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LLM_MAX_BLOCKS 256
#define LLM_MAX_REPLY_CASES 64
#define LLM_MAX_CASE_BYTES 4096

enum llm_lang { LLM_LANG_NONE, LLM_LANG_C, LLM_LANG_TESTS, LLM_LANG_OTHER };

struct llm_block {
	size_t off, len; /* content lines, in scan.text */
	enum llm_lang lang;
	int closed;
};

struct llm_scan {
	struct buf text; /* the reply, CRLF -> LF */
	struct buf bare; /* lines outside fences and reasoning */
	struct llm_block blocks[LLM_MAX_BLOCKS];
	size_t nblocks;
};

static int llm_is_ident(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

static int llm_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Case-insensitive search for @needle in s[0..n). */
static const char *llm_find_ci(const char *s, size_t n, const char *needle)
{
	size_t k = strlen(needle);

	for (size_t i = 0; k <= n && i <= n - k; i++)
		if (!strncasecmp(s + i, needle, k))
			return s + i;
	return NULL;
}

static int llm_starts_ci(const char *s, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);

	return n >= k && !strncasecmp(s, prefix, k);
}

/* Length of the think opener at s, or 0. */
static size_t llm_think_open(const char *s, size_t n)
{
	if (llm_starts_ci(s, n, "<think>"))
		return 7;
	if (llm_starts_ci(s, n, "<thinking>"))
		return 10;
	return 0;
}

/* End of the first think close tag in s[0..n), or 0 when none. */
static size_t llm_think_close(const char *s, size_t n)
{
	const char *a = llm_find_ci(s, n, "</think>"), *b = llm_find_ci(s, n, "</thinking>");

	if (a && (!b || a <= b))
		return (size_t)(a - s) + 8;
	if (b)
		return (size_t)(b - s) + 11;
	return 0;
}

static enum llm_lang llm_fence_lang(const char *s, size_t n)
{
	static const char *const c_like[] = {"c", "h", "cpp", "c++", "cc", "cxx", "c11", "c99"};
	size_t i = 0, k;

	while (i < n && (llm_is_blank(s[i]) || s[i] == '{' || s[i] == '.'))
		i++;
	for (k = i; k < n && !llm_is_blank(s[k]) && s[k] != '{' && s[k] != '}' && s[k] != ',';)
		k++;
	if (k == i)
		return LLM_LANG_NONE;
	for (size_t j = 0; j < sizeof(c_like) / sizeof(c_like[0]); j++)
		if (strlen(c_like[j]) == k - i && !strncasecmp(s + i, c_like[j], k - i))
			return LLM_LANG_C;
	if ((k - i == 5 && !strncasecmp(s + i, "tests", 5)) ||
	    (k - i == 4 && !strncasecmp(s + i, "test", 4)))
		return LLM_LANG_TESTS;
	return LLM_LANG_OTHER;
}

static void llm_scan(const char *reply, size_t len, struct llm_scan *sc)
{
	const char *t;
	size_t n, p = 0, fence_len = 0;
	char fence_ch = 0;
	int in_fence = 0, saw_think = 0;

	memset(sc, 0, sizeof(*sc));
	buf_grow(&sc->text, len);
	for (size_t i = 0; i < len; i++)
		if (!(reply[i] == '\r' && i + 1 < len && reply[i + 1] == '\n'))
			buf_addc(&sc->text, reply[i]);
	t = sc->text.data;
	n = sc->text.len;

	while (p < n) {
		const char *nl = memchr(t + p, '\n', n - p);
		size_t eol = nl ? (size_t)(nl - t) : n, next = nl ? eol + 1 : n, ind = p, run;

		while (ind < eol && llm_is_blank(t[ind]))
			ind++;
		if (in_fence) {
			struct llm_block *b = &sc->blocks[sc->nblocks];

			for (run = 0; ind + run < eol && t[ind + run] == fence_ch;)
				run++;
			if (run >= fence_len) {
				size_t r = ind + run;

				while (r < eol && llm_is_blank(t[r]))
					r++;
				if (r == eol) {
					b->len = p - b->off;
					b->closed = 1;
					sc->nblocks++;
					in_fence = 0;
				}
			}
			p = next;
			continue;
		}

		size_t k = llm_think_open(t + ind, eol - ind);
		if (k) {
			size_t c = llm_think_close(t + ind + k, n - ind - k);

			saw_think = 1;
			if (!c) {
				p = n;
				break;
			}
			p = ind + k + c;
			continue;
		}
		if (!saw_think && !sc->nblocks) {
			size_t c = llm_think_close(t + p, eol - p);

			if (c) {
				/* Reasoning whose opening tag the server ate. */
				saw_think = 1;
				buf_reset(&sc->bare);
				p += c;
				continue;
			}
		}

		if (ind < eol && (t[ind] == '`' || t[ind] == '~')) {
			char ch = t[ind];

			for (run = 0; ind + run < eol && t[ind + run] == ch;)
				run++;
			/* ``` followed by more backticks on the line is inline code. */
			if (run >= 3 &&
			    !(ch == '`' && memchr(t + ind + run, '`', eol - ind - run)) &&
			    sc->nblocks < LLM_MAX_BLOCKS) {
				struct llm_block *b = &sc->blocks[sc->nblocks];

				b->off = next;
				b->len = 0;
				b->lang = llm_fence_lang(t + ind + run, eol - ind - run);
				b->closed = 0;
				in_fence = 1;
				fence_ch = ch;
				fence_len = run;
				p = next;
				continue;
			}
		}
		buf_add(&sc->bare, t + p, next - p);
		p = next;
	}
	if (in_fence) {
		struct llm_block *b = &sc->blocks[sc->nblocks++];

		b->len = b->off < n ? n - b->off : 0;
		b->off = b->off < n ? b->off : n;
		b->closed = 0;
	}
}

static void llm_scan_free(struct llm_scan *sc)
{
	buf_free(&sc->text);
	buf_free(&sc->bare);
}

/* Index of the end of the string or character literal that starts at s[i]. */
static size_t llm_skip_literal(const char *s, size_t n, size_t i)
{
	char q = s[i++];

	while (i < n && s[i] != q && s[i] != '\n') {
		if (s[i] == '\\' && i + 1 < n)
			i++;
		i++;
	}
	return i < n ? i + 1 : n;
}

/* Skip a comment at s[i] if there is one; returns the index after it, or i. */
static size_t llm_skip_comment(const char *s, size_t n, size_t i)
{
	if (i + 1 < n && s[i] == '/' && s[i + 1] == '/') {
		while (i < n && s[i] != '\n')
			i++;
	} else if (i + 1 < n && s[i] == '/' && s[i + 1] == '*') {
		const char *e = i + 2 < n ? memmem(s + i + 2, n - i - 2, "*/", 2) : NULL;

		i = e ? (size_t)(e - s) + 2 : n;
	}
	return i;
}

static size_t llm_skip_space(const char *s, size_t n, size_t i)
{
	for (;;) {
		size_t j;

		while (i < n && (llm_is_blank(s[i]) || s[i] == '\n' || s[i] == '\r' ||
				 s[i] == '\f' || s[i] == '\v'))
			i++;
		j = llm_skip_comment(s, n, i);
		if (j == i)
			return i;
		i = j;
	}
}

/* Index after the bracket matching the one at s[i] ('(' or '{'), or n. */
static size_t llm_match(const char *s, size_t n, size_t i)
{
	char open = s[i], close = open == '(' ? ')' : '}';
	size_t depth = 0;

	while (i < n) {
		size_t j = llm_skip_comment(s, n, i);

		if (j != i) {
			i = j;
			continue;
		}
		if (s[i] == '"' || s[i] == '\'') {
			i = llm_skip_literal(s, n, i);
			continue;
		}
		if (s[i] == open) {
			depth++;
		} else if (s[i] == close && --depth == 0) {
			return i + 1;
		}
		i++;
	}
	return n;
}

/*
 * Find a definition of seglam_run in s[0..n): the name, a parameter list, then
 * a body.  Returns 1 with the offsets of the name and of the body's '{'.
 */
static int llm_find_run(const char *s, size_t n, size_t *name, size_t *body)
{
	size_t i = 0;

	while (i < n) {
		size_t j = llm_skip_comment(s, n, i);

		if (j != i) {
			i = j;
			continue;
		}
		if (s[i] == '"' || s[i] == '\'') {
			i = llm_skip_literal(s, n, i);
			continue;
		}
		if (!llm_is_ident(s[i])) {
			i++;
			continue;
		}
		for (j = i; j < n && llm_is_ident(s[j]);)
			j++;
		if (j - i == 10 && !memcmp(s + i, "seglam_run", 10)) {
			size_t k = llm_skip_space(s, n, j);

			if (k < n && s[k] == '(') {
				k = llm_skip_space(s, n, llm_match(s, n, k));
				if (k < n && s[k] == '{') {
					*name = i;
					*body = k;
					return 1;
				}
			}
		}
		i = j;
	}
	return 0;
}

/* Does the line s[0..n) look like C rather than prose? */
static int llm_line_is_code(const char *s, size_t n)
{
	static const char *const words[] = {
	    "static",  "int",	  "char",    "void",	"unsigned",  "signed",	 "long",
	    "short",   "const",	  "struct",  "enum",	"typedef",   "union",	 "size_t",
	    "bool",    "double",  "float",   "uint8_t", "uint16_t",  "uint32_t", "uint64_t",
	    "int8_t",  "int16_t", "int32_t", "int64_t", "if",	     "else",	 "for",
	    "while",   "do",	  "return",  "switch",	"case",	     "break",	 "continue",
	    "default", "goto",	  "extern",  "inline",	"seglam_out"};
	size_t i = 0, k;

	if (n && s[0] == '\t')
		return 1;
	while (i < n && llm_is_blank(s[i]))
		i++;
	while (n > i && (llm_is_blank(s[n - 1]) || s[n - 1] == '\r'))
		n--;
	if (i == n)
		return 0;
	if ((s[i] && strchr("#{}*", s[i])) ||
	    (s[i] == '/' && i + 1 < n && (s[i + 1] == '/' || s[i + 1] == '*')))
		return 1;
	if (s[n - 1] && strchr(";{}", s[n - 1]))
		return 1;
	for (k = i; k < n && llm_is_ident(s[k]);)
		k++;
	for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++)
		if (strlen(words[w]) == k - i && !memcmp(s + i, words[w], k - i))
			return 1;
	return 0;
}

static int llm_line_is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!llm_is_blank(s[i]) && s[i] != '\r')
			return 0;
	return 1;
}

/*
 * End of the top-level construct starting at line s[q]: a preprocessor line (with
 * its continuations), or a declaration or definition up to its ';' or closing
 * '}' at depth 0 (to the end of that line).  0 when it does not end as C does
 * (prose that happened to look like code).
 */
static size_t llm_construct_end(const char *s, size_t n, size_t q)
{
	const char *nl;

	if (s[q] == '#') {
		while ((nl = memchr(s + q, '\n', n - q)) && nl > s + q && nl[-1] == '\\')
			q = (size_t)(nl - s) + 1;
		return nl ? (size_t)(nl - s) + 1 : n;
	}
	while (q < n) {
		size_t j = llm_skip_comment(s, n, q);

		if (j != q) {
			q = j;
			continue;
		}
		if (s[q] == '"' || s[q] == '\'') {
			q = llm_skip_literal(s, n, q);
			continue;
		}
		if (s[q] == '\n' && q + 1 < n && s[q + 1] == '\n')
			return 0;
		if (s[q] == '{' || s[q] == ';') {
			if (s[q] == '{')
				q = llm_match(s, n, q);
			if (q >= n)
				return n;
			nl = memchr(s + q, '\n', n - q);
			return nl ? (size_t)(nl - s) + 1 : n;
		}
		q++;
	}
	return 0;
}

/*
 * Cut the bare code around a definition of seglam_run out of prose: back from
 * the definition over code-looking lines, forward to the end of its body and
 * over any top-level code that follows.
 */
static int llm_bare_code(const char *s, size_t n, struct buf *code)
{
	size_t name, body, start, end, q;

	if (!llm_find_run(s, n, &name, &body))
		return 0;
	start = name;
	while (start && s[start - 1] != '\n')
		start--;
	while (start) {
		size_t ls = start - 1;

		while (ls && s[ls - 1] != '\n')
			ls--;
		if (!llm_line_is_code(s + ls, start - 1 - ls) &&
		    !llm_line_is_blank(s + ls, start - 1 - ls))
			break;
		start = ls;
	}
	end = llm_match(s, n, body);
	for (;;) {
		const char *nl = memchr(s + end, '\n', n - end);
		size_t eol, next;

		end = nl ? (size_t)(nl - s) + 1 : n;
		/* More top-level code after it (a helper)?  Skip blank lines first. */
		for (q = end;; q = next) {
			nl = memchr(s + q, '\n', n - q);
			eol = nl ? (size_t)(nl - s) : n;
			next = nl ? eol + 1 : n;
			if (q >= n || !llm_line_is_blank(s + q, eol - q))
				break;
		}
		if (q >= n || llm_is_blank(s[q]) || !llm_line_is_code(s + q, eol - q))
			break;
		q = llm_construct_end(s, n, q);
		if (!q)
			break;
		end = q;
	}
	/* Leading blank lines are not part of it. */
	while (start < end) {
		const char *nl = memchr(s + start, '\n', end - start);

		if (!nl || !llm_line_is_blank(s + start, (size_t)(nl - (s + start))))
			break;
		start = (size_t)(nl - s) + 1;
	}
	buf_add(code, s + start, end - start);
	return 1;
}

static void llm_finish_code(struct buf *code, size_t base)
{
	/* Drop trailing blank lines, end with exactly one newline. */
	while (code->len > base &&
	       (code->data[code->len - 1] == '\n' || llm_is_blank(code->data[code->len - 1])))
		code->len--;
	code->data[code->len] = '\0';
	buf_addc(code, '\n');
}

int llm_reply_code(const char *reply, size_t len, struct buf *code)
{
	struct llm_scan *sc = calloc(1, sizeof(*sc));
	const struct llm_block *pick = NULL;
	size_t base = 0, name, body;
	int ret = -ENOENT;

	buf_reset(code);
	if (!sc)
		return -ENOMEM;
	llm_scan(reply ? reply : "", reply ? len : 0, sc);
	for (int tier = 1; tier <= 2 && !pick; tier++) {
		for (size_t i = sc->nblocks; i-- > 0;) {
			const struct llm_block *b = &sc->blocks[i];
			int ok = tier == 1 ? b->lang == LLM_LANG_C || b->lang == LLM_LANG_NONE
					   : b->lang == LLM_LANG_OTHER;

			if (!ok || !llm_find_run(sc->text.data + b->off, b->len, &name, &body))
				continue;
			if (!pick || (!pick->closed && b->closed))
				pick = b;
			if (pick->closed)
				break;
		}
	}
	if (!pick && llm_bare_code(sc->bare.data ? sc->bare.data : "", sc->bare.len, code)) {
		llm_finish_code(code, base);
		ret = 0;
		goto out;
	}
	for (size_t i = sc->nblocks; !pick && i-- > 0;)
		if (sc->blocks[i].lang == LLM_LANG_C &&
		    !llm_line_is_blank(sc->text.data + sc->blocks[i].off, sc->blocks[i].len))
			pick = &sc->blocks[i];
	if (!pick)
		goto out;
	buf_add(code, sc->text.data + pick->off, pick->len);
	llm_finish_code(code, base);
	ret = 0;
out:
	llm_scan_free(sc);
	free(sc);
	return ret;
}

/* Trim blanks at both ends of s[*i..*e). */
static void llm_trim(const char *s, size_t *i, size_t *e)
{
	while (*i < *e && (llm_is_blank(s[*i]) || s[*i] == '\r'))
		(*i)++;
	while (*e > *i && (llm_is_blank(s[*e - 1]) || s[*e - 1] == '\r'))
		(*e)--;
}

static int llm_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void llm_unescape(struct buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\\' || i + 1 == n) {
			buf_addc(b, s[i]);
			continue;
		}
		switch (s[++i]) {
		case 'n':
			buf_addc(b, '\n');
			break;
		case 't':
			buf_addc(b, '\t');
			break;
		case 'r':
			buf_addc(b, '\r');
			break;
		case '0':
			buf_addc(b, '\0');
			break;
		case '\\':
		case '"':
		case '\'':
			buf_addc(b, s[i]);
			break;
		case 'x':
			if (i + 1 < n && llm_hex(s[i + 1]) >= 0) {
				int v = llm_hex(s[++i]);

				if (i + 1 < n && llm_hex(s[i + 1]) >= 0)
					v = v * 16 + llm_hex(s[++i]);
				buf_addc(b, (char)v);
				break;
			}
			/* fall through */
		default:
			/* Not an escape we know: the model meant a backslash. */
			buf_addc(b, '\\');
			buf_addc(b, s[i]);
			break;
		}
	}
}

int llm_reply_cases(const char *reply, size_t len, struct llm_case **cases)
{
	struct llm_scan *sc = calloc(1, sizeof(*sc));
	struct llm_case *v = NULL;
	size_t nv = 0;

	*cases = NULL;
	if (!sc)
		return 0;
	llm_scan(reply ? reply : "", reply ? len : 0, sc);
	for (size_t bi = 0; bi < sc->nblocks && nv < LLM_MAX_REPLY_CASES; bi++) {
		const struct llm_block *b = &sc->blocks[bi];
		const char *s = sc->text.data + b->off;
		size_t p = 0;

		if (b->lang != LLM_LANG_TESTS)
			continue;
		while (p < b->len && nv < LLM_MAX_REPLY_CASES) {
			const char *nl = memchr(s + p, '\n', b->len - p);
			size_t e = nl ? (size_t)(nl - s) : b->len, next = nl ? e + 1 : b->len;
			size_t i = p, arrow = 0, is, ie, os, oe;
			int found = 0;

			llm_trim(s, &i, &e);
			p = next;
			if (i == e || s[i] == '#')
				continue;
			for (size_t a = i; a + 1 < e; a++) {
				if (s[a] == '=' && s[a + 1] == '>' &&
				    (a == i || llm_is_blank(s[a - 1])) &&
				    (a + 2 == e || llm_is_blank(s[a + 2]))) {
					arrow = a;
					found = 1;
					break;
				}
			}
			if (!found)
				continue;
			is = i;
			ie = arrow;
			os = arrow + 2;
			oe = e;
			llm_trim(s, &is, &ie);
			llm_trim(s, &os, &oe);
			if (ie - is > LLM_MAX_CASE_BYTES || oe - os > LLM_MAX_CASE_BYTES)
				continue;
			if (!(nv & (nv - 1))) {
				struct llm_case *nvv = realloc(v, (nv ? nv * 2 : 1) * sizeof(*v));

				if (!nvv)
					goto out;
				v = nvv;
			}
			memset(&v[nv], 0, sizeof(v[nv]));
			llm_unescape(&v[nv].in, s + is, ie - is);
			llm_unescape(&v[nv].out, s + os, oe - os);
			buf_addc(&v[nv].out, '\n');
			buf_grow(&v[nv].in, 0); /* a valid, NUL-terminated empty input too */
			if (asprintf(&v[nv].name, "reply-%zu", nv + 1) < 0)
				v[nv].name = NULL;
			nv++;
		}
	}
out:
	llm_scan_free(sc);
	free(sc);
	*cases = v;
	return (int)nv;
}

void llm_cases_free(struct llm_case *cases, size_t n)
{
	if (!cases)
		return;
	for (size_t i = 0; i < n; i++) {
		free(cases[i].name);
		buf_free(&cases[i].in);
		buf_free(&cases[i].out);
	}
	free(cases);
}

/*
 * The tag of the block whose content starts at b->off: the word after the fence
 * characters on the line before (```answers, ~~~ withdraw).
 */
static int llm_block_tag_is(const struct llm_scan *sc, const struct llm_block *b, const char *tag)
{
	const char *t = sc->text.data;
	size_t e = b->off ? b->off - 1 : 0, s = e, k = strlen(tag), i;

	if (!b->off || !t)
		return 0;
	while (s > 0 && t[s - 1] != '\n')
		s--;
	i = s;
	while (i < e &&
	       (llm_is_blank(t[i]) || t[i] == '`' || t[i] == '~' || t[i] == '{' || t[i] == '.'))
		i++;
	if (e - i < k || strncasecmp(t + i, tag, k))
		return 0;
	i += k;
	return i == e || llm_is_blank(t[i]) || t[i] == '}' || t[i] == ',';
}

int llm_reply_lines(const char *reply, size_t len, const char *tag, struct llm_case **cases)
{
	struct llm_scan *sc = calloc(1, sizeof(*sc));
	struct llm_case *v = NULL;
	size_t nv = 0;

	*cases = NULL;
	if (!sc)
		return 0;
	llm_scan(reply ? reply : "", reply ? len : 0, sc);
	for (size_t bi = 0; bi < sc->nblocks && nv < LLM_MAX_REPLY_CASES; bi++) {
		const struct llm_block *b = &sc->blocks[bi];
		const char *s = sc->text.data + b->off;
		size_t p = 0;

		if (!llm_block_tag_is(sc, b, tag))
			continue;
		while (p < b->len && nv < LLM_MAX_REPLY_CASES) {
			const char *nl = memchr(s + p, '\n', b->len - p);
			size_t e = nl ? (size_t)(nl - s) : b->len, next = nl ? e + 1 : b->len;
			size_t i = p, arrow = 0, is, ie, os, oe;
			int found = 0;

			llm_trim(s, &i, &e);
			p = next;
			if (i == e || s[i] == '#')
				continue;
			for (size_t a = i; a + 1 < e; a++) {
				if (s[a] == '=' && s[a + 1] == '>' &&
				    (a == i || llm_is_blank(s[a - 1])) &&
				    (a + 2 == e || llm_is_blank(s[a + 2]))) {
					arrow = a;
					found = 1;
					break;
				}
			}
			if (!found)
				continue;
			is = i;
			ie = arrow;
			os = arrow + 2;
			oe = e;
			llm_trim(s, &is, &ie);
			llm_trim(s, &os, &oe);
			if (ie - is > LLM_MAX_CASE_BYTES || oe - os > LLM_MAX_CASE_BYTES)
				continue;
			if (!(nv & (nv - 1))) {
				struct llm_case *nvv = realloc(v, (nv ? nv * 2 : 1) * sizeof(*v));

				if (!nvv)
					goto out;
				v = nvv;
			}
			memset(&v[nv], 0, sizeof(v[nv]));
			llm_unescape(&v[nv].in, s + is, ie - is);
			llm_unescape(&v[nv].out, s + os, oe - os);
			buf_grow(&v[nv].in, 0);
			buf_grow(&v[nv].out, 0);
			if (asprintf(&v[nv].name, "%s-%zu", tag, nv + 1) < 0)
				v[nv].name = NULL;
			nv++;
		}
	}
out:
	llm_scan_free(sc);
	free(sc);
	*cases = v;
	return (int)nv;
}
