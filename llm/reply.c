/*
 * reply: finding the procedure in whatever a model sends back (llm_reply_code).
 * The input is untrusted and may be any bytes, not NUL-terminated: every access
 * is bounded by the length, never by a terminator.  The reply is first scanned
 * into fenced blocks and prose (reply_scan.c); the test and validation lines
 * are in reply_cases.c.
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
 */
#include "llm.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reply_int.h"
#include "xalloc.h"

static int llm_is_ident(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
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

/* Candidates for seglam_run's parameter list open at once (see llm_find_run). */
#define LLM_RUN_OPEN_MAX 64

/*
 * Find a definition of seglam_run in s[0..n): the name, a parameter list, then
 * a body.  Returns 1 with the offsets of the name and of the body's '{'.
 *
 * One pass, linear in n: a reply is up to 16 MiB of anything, and matching the
 * parentheses anew from every `seglam_run(` was quadratic (a reply of nothing
 * but `seglam_run(` took minutes).  Each `seglam_run(` is a candidate, kept with
 * the parenthesis depth before its '('; the ')' that brings the depth back there
 * ends its parameter list, and a '{' after it makes it a definition.  Open
 * candidates nest, so only the innermost can end at a ')': past
 * LLM_RUN_OPEN_MAX the outermost (oldest) are forgotten, never the newest, which
 * is where a real definition after prose with a stray `seglam_run(` is.
 */
static int llm_find_run(const char *s, size_t n, size_t *name, size_t *body)
{
	struct {
		size_t name, depth;
	} open[LLM_RUN_OPEN_MAX];
	size_t nopen = 0, first = 0, depth = 0, i = 0;
	size_t after = SIZE_MAX; /* the name just seen, if seglam_run, else SIZE_MAX */

	while (i < n) {
		size_t j = llm_skip_comment(s, n, i);

		if (j != i) {
			i = j;
			continue;
		}
		if (s[i] == '"' || s[i] == '\'') {
			i = llm_skip_literal(s, n, i);
			after = SIZE_MAX;
			continue;
		}
		if (llm_is_ident(s[i])) {
			for (j = i; j < n && llm_is_ident(s[j]);)
				j++;
			after = j - i == 10 && !memcmp(s + i, "seglam_run", 10) ? i : SIZE_MAX;
			i = j;
			continue;
		}
		if (s[i] == '(') {
			if (after != SIZE_MAX) {
				if (nopen == LLM_RUN_OPEN_MAX) {
					first = (first + 1) % LLM_RUN_OPEN_MAX;
					nopen--;
				}
				open[(first + nopen) % LLM_RUN_OPEN_MAX].name = after;
				open[(first + nopen) % LLM_RUN_OPEN_MAX].depth = depth;
				nopen++;
			}
			depth++;
		} else if (s[i] == ')' && depth) {
			depth--;
			if (nopen && open[(first + nopen - 1) % LLM_RUN_OPEN_MAX].depth == depth) {
				/* Each ')' ends at most one candidate: the spaces skipped
				 * here are skipped once more by this loop, no more. */
				size_t k = llm_skip_space(s, n, i + 1);

				nopen--;
				if (k < n && s[k] == '{') {
					*name = open[(first + nopen) % LLM_RUN_OPEN_MAX].name;
					*body = k;
					return 1;
				}
			}
		}
		if (!llm_is_blank(s[i]) && s[i] != '\n' && s[i] != '\r' && s[i] != '\f' &&
		    s[i] != '\v')
			after = SIZE_MAX;
		i++;
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
	struct llm_scan *sc = xcalloc(1, sizeof(*sc));
	const struct llm_block *pick = NULL;
	size_t base = 0, name, body;
	int ret = -ENOENT;

	buf_reset(code);
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
