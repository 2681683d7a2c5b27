/*
 * route_index: the routing index by literal words (see route_int.h).
 *
 * Owns the types and words tables (rt.types, rt.words: common/hmap, growing with
 * the store) and what is filed under each word: a pattern under its rarest whole
 * word, an example question under each of its words, a type under every word of its
 * name, patterns, examples and spec (for nearness).  A question looks only at the
 * patterns filed under its own words: O(words), never a scan of the types.
 *
 * The tables, filing and finding run with rt.lock held (shared to read, exclusive to
 * file, as each says); the word helpers and route_best_of touch nothing shared.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "route_int.h"
#include "xalloc.h"

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* ---- tables ------------------------------------------------------------- */

static void vec_add(struct vec *v, struct rtype *t, uint32_t i)
{
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 1; /* most words are in one type */
		v->v = xrealloc(v->v, v->cap * sizeof(*v->v));
	}
	v->v[v->n].t = t;
	v->v[v->n].i = i;
	v->n++;
}

/* Remove the entries of @t (and index @i, unless @i is UINT32_MAX). */
static void vec_del(struct vec *v, struct rtype *t, uint32_t i)
{
	size_t k, j = 0;

	for (k = 0; k < v->n; k++)
		if (!(v->v[k].t == t && (i == UINT32_MAX || v->v[k].i == i)))
			v->v[j++] = v->v[k];
	v->n = j;
}

/* The hmap equality callbacks: a table's key is the item's string. */
bool route_word_eq(const void *item, const void *key)
{
	return !strcmp(((const struct word *)item)->w, key);
}

bool route_type_eq(const void *item, const void *key)
{
	return !strcmp(((const struct rtype *)item)->name, key);
}

/* Lock held (either way). */
struct word *route_word_find(const char *w)
{
	return hmap_find(&rt.words, hmap_hash_str(w), w);
}

/* Write lock held: the word, added when new. */
static struct word *word_get(const char *w)
{
	uint64_t h = hmap_hash_str(w);
	struct word *x = hmap_find(&rt.words, h, w);

	if (x)
		return x;
	x = xcalloc(1, sizeof(*x));
	x->w = xstrdup(w);
	hmap_insert(&rt.words, h, x);
	return x;
}

/* Lock held (either way). */
struct rtype *route_type_find(const char *name)
{
	return hmap_find(&rt.types, hmap_hash_str(name), name);
}

/* Write lock held: the type, added when new. */
struct rtype *route_type_get(const char *name)
{
	uint64_t h = hmap_hash_str(name);
	struct rtype *t = hmap_find(&rt.types, h, name);

	if (t)
		return t;
	t = xcalloc(1, sizeof(*t));
	t->name = xstrdup(name);
	hmap_insert(&rt.types, h, t);
	return t;
}

/* ---- words -------------------------------------------------------------- */

/* Split lowercased @s at spaces into distinct tokens (pointers into @s). */
static size_t tokens(char *s, char **tok, size_t max)
{
	size_t n = 0;
	char *p = s;

	while (*p && n < max) {
		char *e = strchr(p, ' ');
		bool dup = false;

		if (e)
			*e = '\0';
		for (size_t k = 0; k < n && !dup; k++)
			dup = !strcmp(tok[k], p);
		if (*p && !dup)
			tok[n++] = p;
		if (!e)
			break;
		p = e + 1;
	}
	return n;
}

char *route_lowered(const char *s, size_t len)
{
	char *l = xmalloc(len + 1);

	for (size_t i = 0; i < len; i++)
		l[i] = lower(s[i]);
	l[len] = '\0';
	return l;
}

/* Add the words of @s for nearness (see struct wordset). */
void route_wordset_add_text(struct wordset *ws, const char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		char w[64];
		size_t n = 0;

		while (i < len && !((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
				    (s[i] >= '0' && s[i] <= '9') || s[i] == '{'))
			i++;
		if (i < len && s[i] == '{') { /* a slot name says nothing */
			while (i < len && s[i] != '}')
				i++;
			continue;
		}
		while (i < len && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
				   (s[i] >= '0' && s[i] <= '9'))) {
			if (n < sizeof(w) - 1)
				w[n++] = lower(s[i]);
			i++;
		}
		w[n] = '\0';
		if (n < 2)
			continue;
		if (ws->n == ws->cap) {
			ws->cap = ws->cap ? ws->cap * 2 : 16;
			ws->w = xrealloc(ws->w, ws->cap * sizeof(*ws->w));
		}
		ws->w[ws->n] = xstrdup(w);
		ws->n++;
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort and drop duplicates. */
void route_wordset_unique(struct wordset *ws)
{
	size_t j = 0;

	if (!ws->n)
		return;
	qsort(ws->w, ws->n, sizeof(*ws->w), cmp_str);
	for (size_t i = 0; i < ws->n; i++) {
		if (j && !strcmp(ws->w[j - 1], ws->w[i]))
			free(ws->w[i]);
		else
			ws->w[j++] = ws->w[i];
	}
	ws->n = j;
}

/* ---- matching ----------------------------------------------------------- */

/* Best match of @pats on @q: the most literal characters, first wins. */
int route_best_of(const struct pat *pats, size_t n, const char *q, size_t qlen, struct buf *input)
{
	struct buf tmp = BUF_INIT;
	int best = -1;

	for (size_t i = 0; i < n; i++) {
		if ((int)pats[i].lits <= best)
			continue;
		if (pat_match(&pats[i], q, qlen, &tmp)) {
			best = (int)pats[i].lits;
			if (input) {
				buf_reset(input);
				buf_add(input, tmp.data, tmp.len);
			}
		}
	}
	buf_free(&tmp);
	return best;
}

struct keypick {
	const char *best;
	uint32_t df;
	size_t len;
	char buf[PAT_LINE_MAX + 1];
};

static void key_cb(const char *w, size_t len, void *arg)
{
	struct keypick *k = arg;
	struct word *x = route_word_find(w);
	uint32_t df = x ? x->df : 0;

	if (!k->best || df < k->df || (df == k->df && len > k->len)) {
		memcpy(k->buf, w, len + 1);
		k->best = k->buf;
		k->df = df;
		k->len = len;
	}
}

/* The word a pattern is filed under: its rarest whole word (the longest of
 * equally rare ones), or NULL when it has none.  Write lock held. */
char *route_choose_key(const struct pat *p)
{
	struct keypick k = {0};

	pat_words(p, key_cb, &k);
	return k.best ? xstrdup(k.best) : NULL;
}

/* ---- filing a type in the index (write lock held) ----------------------- */

static void ex_words(struct rtype *t, uint32_t i, bool add)
{
	char *l = route_lowered(t->d.ex[i].q, t->d.ex[i].qlen), *tok[ROUTE_TOKENS_MAX];
	size_t n = tokens(l, tok, ROUTE_TOKENS_MAX);

	for (size_t k = 0; k < n; k++) {
		struct word *w = add ? word_get(tok[k]) : route_word_find(tok[k]);

		if (!w)
			continue;
		if (add)
			vec_add(&w->er, t, i);
		else
			vec_del(&w->er, t, i);
	}
	free(l);
}

static void df_cb(const char *w, size_t len, void *arg)
{
	struct word *x = word_get(w);

	(void)len;
	if (arg)
		x->df++;
	else if (x->df)
		x->df--;
}

void route_unfile_patterns(struct rtype *t)
{
	if (!t->ok)
		return;
	for (size_t i = 0; i < t->d.npats; i++) {
		struct pat *p = &t->d.pats[i];
		struct word *w = p->key ? route_word_find(p->key) : NULL;

		if (w)
			vec_del(&w->pr, t, (uint32_t)i);
		pat_words(p, df_cb, NULL);
	}
	rt.npatterns -= t->d.npats;
	t->ok = false;
}

static void file_patterns(struct rtype *t)
{
	for (size_t i = 0; i < t->d.npats; i++) {
		struct pat *p = &t->d.pats[i];

		pat_words(p, df_cb, p);
		free(p->key);
		p->key = route_choose_key(p);
		vec_add(&word_get(p->key)->pr, t, (uint32_t)i);
	}
	rt.npatterns += t->d.npats;
	t->ok = true;
}

static void unfile(struct rtype *t)
{
	route_unfile_patterns(t);
	for (size_t i = 0; i < t->d.nex; i++)
		ex_words(t, (uint32_t)i, false);
	for (size_t i = 0; i < t->nowords; i++)
		vec_del(&t->owords[i]->tr, t, UINT32_MAX);
	free(t->owords);
	t->owords = NULL;
	t->nowords = 0;
	route_tdata_free(&t->d);
}

/* Install @d as @t's data; returns true when the patterns were refused just now. */
bool route_file_type(struct rtype *t, struct tdata *d, bool cross, struct buf *why)
{
	struct wordset ws = {0};
	char *old_reason = t->d.reason ? xstrdup(t->d.reason) : NULL;
	bool refused = false;

	unfile(t);
	t->d = *d;
	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < t->d.nex; i++)
		ex_words(t, (uint32_t)i, true);
	route_wordset_add_text(&ws, t->name, strlen(t->name));
	for (size_t i = 0; i < t->d.npats; i++)
		route_wordset_add_text(&ws, t->d.pats[i].text, strlen(t->d.pats[i].text));
	for (size_t i = 0; i < t->d.nex; i++)
		route_wordset_add_text(&ws, t->d.ex[i].q, t->d.ex[i].qlen);
	if (t->d.spec) {
		size_t sl = strlen(t->d.spec);

		route_wordset_add_text(&ws, t->d.spec,
				       sl < ROUTE_SPEC_WORDS ? sl : ROUTE_SPEC_WORDS);
		free(t->d.spec);
		t->d.spec = NULL;
	}
	route_wordset_unique(&ws);
	t->owords = xmalloc((ws.n ? ws.n : 1) * sizeof(*t->owords));
	t->nowords = ws.n;
	for (size_t i = 0; i < ws.n; i++) {
		t->owords[i] = word_get(ws.w[i]);
		vec_add(&t->owords[i]->tr, t, 0);
		free(ws.w[i]);
	}
	free(ws.w);
	if (!t->d.reason && t->d.npats) {
		buf_reset(why);
		if (route_admit_self(&t->d, why) == 0 &&
		    (!cross || route_admit_cross(t, t->name, t->d.pats, t->d.npats, why) == 0))
			file_patterns(t);
		else
			t->d.reason = buf_steal(why);
	}
	if (t->d.reason && (!old_reason || strcmp(old_reason, t->d.reason)))
		refused = true;
	free(old_reason);
	atomic_store(&t->checked_ns, route_now_ns());
	return refused;
}

/* ---- finding (read lock held, or write) -------------------------------- */

/* Read lock held.  @exclude's patterns are not considered. */
void route_find_locked(const char *nq, size_t nqlen, const struct rtype *exclude, struct found *f)
{
	char *l = route_lowered(nq, nqlen), *tok[ROUTE_TOKENS_MAX];
	size_t n = tokens(l, tok, ROUTE_TOKENS_MAX);
	struct buf tmp = BUF_INIT;
	size_t tried = 0;
	unsigned long budget = ROUTE_STEPS_MAX;

	f->t = NULL;
	f->lits = -1;
	f->tie = false;
	for (size_t k = 0; k < n; k++) {
		struct word *w = route_word_find(tok[k]);

		if (w && (tried += w->pr.n) > ROUTE_CANDIDATES_MAX) {
			log_warn("q: a question would try over %d patterns: a miss (make the "
				 "patterns of the store more specific)",
				 ROUTE_CANDIDATES_MAX);
			f->tie = true;
			break;
		}
		for (size_t j = 0; w && j < w->pr.n; j++) {
			struct rtype *t = w->pr.v[j].t;
			const struct pat *p = &t->d.pats[w->pr.v[j].i];

			if (t == exclude || (int)p->lits < f->lits)
				continue;
			if ((int)p->lits == f->lits && t == f->t)
				continue; /* first pattern of the same type wins */
			if (!pat_match_budget(p, nq, nqlen, &tmp, &budget)) {
				if (budget)
					continue;
				log_warn("q: a question spent its %lu matching steps: a miss (make "
					 "the patterns of the store simpler)",
					 ROUTE_STEPS_MAX);
				f->tie = true;
				goto out;
			}
			if ((int)p->lits == f->lits) {
				f->tie = true;
				continue;
			}
			f->t = t;
			f->lits = (int)p->lits;
			f->tie = false;
			buf_reset(&f->input);
			buf_add(&f->input, tmp.data, tmp.len);
		}
	}
out:
	buf_free(&tmp);
	free(l);
}

/*
 * Examples of @t are questions no other type's patterns may win: a type whose
 * patterns now win (or tie with @t on) one of them is refused, as its own admission
 * would have been.  Write lock held; the refused types and why go to *@out.
 */
size_t route_refuse_winners(struct rtype *t, struct refusal **out)
{
	struct buf tmp = BUF_INIT;
	size_t n = 0;

	*out = NULL;
	for (size_t i = 0; i < t->d.nex; i++) {
		const struct rex *x = &t->d.ex[i];
		int own = t->ok ? route_best_of(t->d.pats, t->d.npats, x->q, x->qlen, NULL) : -1;

		/* Each round refuses one type: at most as many rounds as tying types. */
		for (int round = 0; round < 64; round++) {
			struct found f = {0};
			struct rtype *u = NULL;

			route_find_locked(x->q, x->qlen, t, &f);
			buf_free(&f.input);
			if (!f.t || f.lits < own)
				break;
			/* f.t is one of the types reaching the best count: refuse it. */
			u = f.t;
			route_unfile_patterns(u);
			free(u->d.reason);
			buf_reset(&tmp);
			buf_printf(&tmp,
				   "a pattern would win example questions/%s.q '%s' of type %s: "
				   "make it more specific",
				   x->name, x->q, t->name);
			u->d.reason = xstrdup(buf_str(&tmp));
			*out = xreallocarray(*out, n + 1, sizeof(**out));
			(*out)[n].name = xstrdup(u->name);
			(*out)[n].reason = xstrdup(u->d.reason);
			n++;
		}
	}
	buf_free(&tmp);
	return n;
}
