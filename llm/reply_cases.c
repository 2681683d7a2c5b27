/*
 * reply_cases: the `INPUT => TEXT` lines of a reply's blocks: test cases from
 * ```tests blocks (llm_reply_cases, format in prompt.txt) and the validation
 * lines of ```answers, ```rejects and ```withdraw blocks (llm_reply_lines).  The
 * reply is untrusted and may be any bytes: every access is bounded by a length.
 *
 *   INPUT => ANSWER      (ANSWER gets one "\n" appended in a tests block;
 *                         \n \t \r \\ \" \0 \xHH are unescaped on both sides)
 */
#include "llm.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "reply_int.h"
#include "xalloc.h"

#define LLM_MAX_REPLY_CASES 64
#define LLM_MAX_CASE_BYTES 4096

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

/*
 * Append the `INPUT => TEXT` lines of block @b to *v (*nv of them, at most
 * LLM_MAX_REPLY_CASES in all), named "@prefix-N".  With @answer_nl (a tests
 * block), TEXT is an answer and gets its "\n"; otherwise it is kept as written.
 */
static void llm_block_lines(const struct llm_scan *sc, const struct llm_block *b,
			    const char *prefix, bool answer_nl, struct llm_case **v, size_t *nv)
{
	const char *s = sc->text.data + b->off;
	size_t p = 0;

	while (p < b->len && *nv < LLM_MAX_REPLY_CASES) {
		const char *nl = memchr(s + p, '\n', b->len - p);
		size_t e = nl ? (size_t)(nl - s) : b->len, next = nl ? e + 1 : b->len;
		size_t i = p, arrow = 0, is, ie, os, oe;
		struct llm_case *c;
		int found = 0;

		llm_trim(s, &i, &e);
		p = next;
		if (i == e || s[i] == '#')
			continue;
		for (size_t a = i; a + 1 < e; a++) {
			if (s[a] == '=' && s[a + 1] == '>' && (a == i || llm_is_blank(s[a - 1])) &&
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
		if (!(*nv & (*nv - 1)))
			*v = xreallocarray(*v, *nv ? *nv * 2 : 1, sizeof(**v));
		c = &(*v)[*nv];
		memset(c, 0, sizeof(*c));
		llm_unescape(&c->in, s + is, ie - is);
		llm_unescape(&c->out, s + os, oe - os);
		if (answer_nl)
			buf_addc(&c->out, '\n');
		/* Valid, NUL-terminated buffers even when a side is empty. */
		buf_grow(&c->in, 0);
		buf_grow(&c->out, 0);
		c->name = xasprintf("%s-%zu", prefix, *nv + 1);
		(*nv)++;
	}
}

int llm_reply_cases(const char *reply, size_t len, struct llm_case **cases)
{
	struct llm_scan *sc = xcalloc(1, sizeof(*sc));
	struct llm_case *v = NULL;
	size_t nv = 0;

	*cases = NULL;
	llm_scan(reply ? reply : "", reply ? len : 0, sc);
	for (size_t bi = 0; bi < sc->nblocks && nv < LLM_MAX_REPLY_CASES; bi++)
		if (sc->blocks[bi].lang == LLM_LANG_TESTS)
			llm_block_lines(sc, &sc->blocks[bi], "reply", true, &v, &nv);
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

int llm_reply_lines(const char *reply, size_t len, const char *tag, struct llm_case **cases)
{
	struct llm_scan *sc = xcalloc(1, sizeof(*sc));
	struct llm_case *v = NULL;
	size_t nv = 0;

	*cases = NULL;
	llm_scan(reply ? reply : "", reply ? len : 0, sc);
	for (size_t bi = 0; bi < sc->nblocks && nv < LLM_MAX_REPLY_CASES; bi++)
		if (llm_block_tag_is(sc, &sc->blocks[bi], tag))
			llm_block_lines(sc, &sc->blocks[bi], tag, false, &v, &nv);
	llm_scan_free(sc);
	free(sc);
	*cases = v;
	return (int)nv;
}
