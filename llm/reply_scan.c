/*
 * reply_scan: one scan turns an LLM reply into fenced blocks and the text
 * outside them (llm_scan, for reply.c and reply_cases.c).  The input is
 * untrusted and may be any bytes, not NUL-terminated: every access is bounded by
 * the length, never by a terminator.
 *
 * The scan, in one pass over the lines:
 *   - CRLF becomes LF;
 *   - reasoning is dropped: from a line starting with <think> or <thinking> to
 *     the matching close tag (or to the end when it never closes: a cut-off
 *     thought is not an answer), and, for servers that strip the opening tag,
 *     everything before a lone </think> that comes before any fence;
 *   - fences are ``` or ~~~ (3 or more, any indentation), closed by a line of
 *     at least as many of the same character and nothing else (as CommonMark);
 *     a fence the reply never closes (cut at max_tokens) runs to the end.
 */
#include "reply_int.h"

#include <string.h>
#include <strings.h>

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

/*
 * End of the first think close tag (</think> or </thinking>) in s[0..n), or 0
 * when none.  One pass that stops at the first: searching for each tag over the
 * whole rest made every <think> line cost the rest of the reply (a reply of
 * `<think></think>` lines took minutes).
 */
static size_t llm_think_close(const char *s, size_t n)
{
	const char *lt;

	for (size_t i = 0; i < n && (lt = memchr(s + i, '<', n - i)); i++) {
		i = (size_t)(lt - s);
		if (!llm_starts_ci(s + i, n - i, "</think"))
			continue;
		if (i + 7 < n && s[i + 7] == '>')
			return i + 8;
		if (llm_starts_ci(s + i + 7, n - i - 7, "ing>"))
			return i + 11;
	}
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

void llm_scan(const char *reply, size_t len, struct llm_scan *sc)
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

void llm_scan_free(struct llm_scan *sc)
{
	buf_free(&sc->text);
	buf_free(&sc->bare);
}

/*
 * The tag of the block whose content starts at b->off: the word after the fence
 * characters on the line before (```answers, ~~~ withdraw).
 */
int llm_block_tag_is(const struct llm_scan *sc, const struct llm_block *b, const char *tag)
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
