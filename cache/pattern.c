/* pattern: parsing and matching the phrasings of questions; see pattern.h. */
#include "pattern.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Matching is backtracking over slot ends: bound the work one match may do, so a
 * hostile pattern ("{a}{b}{c}...") costs a bounded amount and simply misses. */
#define PAT_STEPS_MAX 100000

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_end(char c)
{
	return is_ws(c) || c == '?' || c == '.' || c == '!';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

void pat_normalize(const char *s, size_t len, struct buf *out)
{
	size_t b = 0, e = len, i;
	bool space = false;

	buf_reset(out);
	while (b < e && is_end(s[b]))
		b++;
	while (e > b && is_end(s[e - 1]))
		e--;
	for (i = b; i < e; i++) {
		if (is_ws(s[i])) {
			space = true;
			continue;
		}
		if (space)
			buf_addc(out, ' ');
		space = false;
		buf_addc(out, s[i]);
	}
	if (!out->data)
		buf_grow(out, 1);
}

void pat_free(struct pat *p)
{
	free(p->text);
	free(p->tmpl);
	free(p->key);
	memset(p, 0, sizeof(*p));
}

/* Length of the slot "{NAME}" at @s (s[0] == '{'), or 0 when it is not one. */
static size_t slot_len(const char *s, size_t avail)
{
	size_t i;

	for (i = 1; i < avail && i <= 65 && is_name_char(s[i]); i++)
		;
	if (i == 1 || i >= avail || s[i] != '}')
		return 0;
	return i + 1;
}

/* Checks the slots of @s; fills @names (pointers into s) when given. */
static int scan_slots(const char *s, size_t len, const char **names, size_t *nlens, unsigned *n,
		      unsigned *lits, struct buf *why, const char *what)
{
	size_t i = 0;

	*n = 0;
	if (lits)
		*lits = 0;
	while (i < len) {
		size_t sl;

		if (s[i] == '}') {
			buf_printf(why, "a '}' in the %s closes no slot (slots are {NAME})", what);
			return -EINVAL;
		}
		if (s[i] != '{') {
			if (lits)
				(*lits)++;
			i++;
			continue;
		}
		sl = slot_len(s + i, len - i);
		if (!sl) {
			buf_printf(why,
				   "a '{' in the %s opens no slot (slots are {NAME}: letters, "
				   "digits, _ and -; there is no other syntax)",
				   what);
			return -EINVAL;
		}
		if (names) {
			for (unsigned k = 0; k < *n; k++)
				if (nlens[k] == sl - 2 && !memcmp(names[k], s + i + 1, sl - 2)) {
					buf_printf(why, "slot {%.*s} appears twice in the pattern",
						   (int)(sl - 2), s + i + 1);
					return -EINVAL;
				}
			if (*n == PAT_SLOTS_MAX) {
				buf_printf(why, "more than %d slots in one pattern", PAT_SLOTS_MAX);
				return -EINVAL;
			}
			names[*n] = s + i + 1;
			nlens[*n] = sl - 2;
		}
		(*n)++;
		i += sl;
	}
	return 0;
}

int pat_parse(const char *line, size_t len, struct pat *p, struct buf *why)
{
	struct buf text = BUF_INIT, tmpl = BUF_INIT;
	const char *names[PAT_SLOTS_MAX], *arrow;
	size_t nlens[PAT_SLOTS_MAX], plen = len, i;
	unsigned n = 0, tn = 0;
	int ret = 0;

	memset(p, 0, sizeof(*p));
	for (i = 0; i < len && is_ws(line[i]); i++)
		;
	if (i == len || line[i] == '#')
		return 0;
	if (len > PAT_LINE_MAX || memchr(line, '\0', len)) {
		buf_printf(why, "a pattern line is text of at most %d bytes", PAT_LINE_MAX);
		return -EINVAL;
	}
	arrow = memmem(line, len, " => ", 4);
	if (arrow)
		plen = (size_t)(arrow - line);
	pat_normalize(line, plen, &text);
	if (!text.len) {
		buf_adds(why, "the pattern before ' => ' is empty");
		ret = -EINVAL;
		goto out;
	}
	ret = scan_slots(text.data, text.len, names, nlens, &n, &p->lits, why, "pattern");
	if (ret)
		goto out;
	if (arrow) {
		const char *t = arrow + 4, *e = line + len;

		while (t < e && is_ws(*t))
			t++;
		while (e > t && is_ws(e[-1]))
			e--;
		buf_add(&tmpl, t, (size_t)(e - t));
		if (!tmpl.data)
			buf_grow(&tmpl, 1);
		/* In a template a slot may be used any number of times: count, don't
		 * collect, then check each name against the pattern's. */
		ret = scan_slots(tmpl.data, tmpl.len, NULL, NULL, &tn, NULL, why, "template");
		if (ret)
			goto out;
		for (i = 0; i < tmpl.len;) {
			size_t sl = tmpl.data[i] == '{' ? slot_len(tmpl.data + i, tmpl.len - i) : 0;
			bool known = false;

			if (!sl) {
				i++;
				continue;
			}
			for (unsigned k = 0; k < n; k++)
				known |= nlens[k] == sl - 2 &&
					 !memcmp(names[k], tmpl.data + i + 1, sl - 2);
			if (!known) {
				buf_printf(why, "template slot {%.*s} is not a slot of the pattern",
					   (int)(sl - 2), tmpl.data + i + 1);
				ret = -EINVAL;
				goto out;
			}
			i += sl;
		}
		p->tmpl = buf_steal(&tmpl);
	}
	p->nslots = n;
	p->text = buf_steal(&text);
	ret = 1;
out:
	buf_free(&text);
	buf_free(&tmpl);
	if (ret < 0)
		pat_free(p);
	return ret;
}

struct mstate {
	const char *q;
	size_t qlen;
	size_t vb[PAT_SLOTS_MAX], ve[PAT_SLOTS_MAX];
	unsigned long steps, limit;
};

static bool match_at(struct mstate *m, const char *p, size_t pi, size_t plen, size_t qi,
		     unsigned slot)
{
	for (;;) {
		if (++m->steps > m->limit)
			return false;
		if (pi == plen)
			return qi == m->qlen;
		if (p[pi] == '{') {
			size_t sl = slot_len(p + pi, plen - pi), end;
			size_t next = pi + sl;

			for (end = qi + 1; end <= m->qlen; end++) {
				/* A literal next must start right at the slot's end. */
				if (next < plen && p[next] != '{' &&
				    (end == m->qlen || lower(m->q[end]) != lower(p[next])))
					continue;
				if (next == plen && end != m->qlen)
					continue;
				m->vb[slot] = qi;
				m->ve[slot] = end;
				if (match_at(m, p, next, plen, end, slot + 1))
					return true;
				if (m->steps > m->limit)
					return false;
			}
			return false;
		}
		if (qi == m->qlen || lower(p[pi]) != lower(m->q[qi]))
			return false;
		pi++;
		qi++;
	}
}

bool pat_match(const struct pat *p, const char *q, size_t qlen, struct buf *input)
{
	unsigned long budget = PAT_STEPS_MAX;

	return pat_match_budget(p, q, qlen, input, &budget);
}

bool pat_match_budget(const struct pat *p, const char *q, size_t qlen, struct buf *input,
		      unsigned long *budget)
{
	struct mstate m = {.q = q, .qlen = qlen};
	const char *t;
	size_t i, plen = strlen(p->text);
	unsigned k = 0;
	bool ok;

	buf_reset(input);
	m.limit = *budget < PAT_STEPS_MAX ? *budget : PAT_STEPS_MAX;
	ok = match_at(&m, p->text, 0, plen, 0, 0);
	*budget -= m.steps < *budget ? m.steps : *budget;
	if (!ok)
		return false;
	if (!p->tmpl) {
		for (k = 0; k < p->nslots; k++) {
			if (k)
				buf_addc(input, ' ');
			buf_add(input, q + m.vb[k], m.ve[k] - m.vb[k]);
		}
		if (!input->data)
			buf_grow(input, 1);
		return true;
	}
	t = p->tmpl;
	for (i = 0; t[i];) {
		size_t sl = t[i] == '{' ? slot_len(t + i, strlen(t + i)) : 0;

		if (!sl) {
			buf_addc(input, t[i++]);
			continue;
		}
		/* Find the slot's index by its name in the pattern. */
		k = 0;
		for (size_t j = 0; j < plen;) {
			size_t s2 = p->text[j] == '{' ? slot_len(p->text + j, plen - j) : 0;

			if (!s2) {
				j++;
				continue;
			}
			if (s2 == sl && !memcmp(p->text + j, t + i, sl))
				break;
			k++;
			j += s2;
		}
		if (k < p->nslots)
			buf_add(input, q + m.vb[k], m.ve[k] - m.vb[k]);
		i += sl;
	}
	if (!input->data)
		buf_grow(input, 1);
	return true;
}

void pat_words(const struct pat *p, void (*fn)(const char *w, size_t len, void *arg), void *arg)
{
	const char *s = p->text;
	char w[PAT_LINE_MAX + 1];

	while (*s) {
		size_t n = strcspn(s, " ");

		if (n && !memchr(s, '{', n)) {
			for (size_t i = 0; i < n; i++)
				w[i] = lower(s[i]);
			w[n] = '\0';
			fn(w, n, arg);
		}
		s += n;
		if (*s)
			s++;
	}
}
