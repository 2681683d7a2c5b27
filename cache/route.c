/* route: the routing index of questions in plain words; see route.h. */
#include "route.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "atomic.h"
#include "llm.h"
#include "llm_route.h"
#include "log.h"
#include "meta.h"
#include "pattern.h"
#include "proc.h"
#include "store.h"
#include "xalloc.h"
#include "synth.h"

#define ROUTE_PATTERNS_MAX (256u << 10)
#define ROUTE_EXAMPLES_MAX 1000
#define ROUTE_EXAMPLE_BYTES 4096
#define ROUTE_NEAREST 5
#define ROUTE_NEAR_EXAMPLES 8
#define ROUTE_FAILS_MAX 4096
#define ROUTE_TOKENS_MAX 256
#define ROUTE_SPEC_MAX (64u << 10)
#define ROUTE_SPEC_WORDS 2048 /* bytes of a spec whose words count for nearness */
/* Patterns one question may try, and matching steps it may spend: past these (a store
 * written to make every question try every pattern, or hard ones) the question is a
 * miss, never a partial search's winner.  A hit stays within milliseconds. */
#define ROUTE_CANDIDATES_MAX 50000
#define ROUTE_STEPS_MAX 2000000ul
/* A word in more types than this says nothing about which type is near. */
#define ROUTE_COMMON_WORD 5000
/* STORE/routes/TYPE: a note that TYPE's patterns or questions changed, for other
 * daemons sharing the store (see docs/questions.md). */
#define ROUTE_NOTES "routes"
/* Notes older than the last scan by more than this are not looked at again: the slack
 * covers clocks of hosts sharing the store over NFS that disagree a little. */
#define ROUTE_NOTE_SKEW_NS (120ll * 1000000000)

struct sig {
	uint64_t ino;
	int64_t mtime_ns, size;
	bool exists;
};

struct rex {
	char *name;
	char *q; /* normalized */
	size_t qlen;
	char *in;
	size_t inlen;
};

struct tdata {
	struct pat *pats;
	size_t npats;
	struct rex *ex;
	size_t nex;
	struct sig ps, qs;
	char *reason; /* why the patterns are not used, or NULL */
	char *spec;   /* the start of the spec, for nearness; dropped once filed */
};

struct rtype {
	char *name;
	struct tdata d;
	bool ok;	      /* patterns admitted and filed */
	struct word **owords; /* the words it is filed under in tr (words are never freed) */
	size_t nowords;
	atomic_llong checked_ns;
	atomic_ulong hits;
	double score;
	unsigned long epoch;
	struct rtype *next;
};

struct ref {
	struct rtype *t;
	uint32_t i;
};

struct vec {
	struct ref *v;
	size_t n, cap;
};

struct word {
	char *w;
	uint32_t df;   /* patterns holding this whole word */
	struct vec pr; /* patterns filed under it */
	struct vec er; /* examples holding it */
	struct vec tr; /* types mentioning it */
	struct word *next;
};

struct flight {
	char *key;
	bool done;
	int ret;
	unsigned refs;
	struct flight *next;
};

struct fail {
	char *key;
	int64_t until;
	struct fail *next;
};

static struct {
	struct route_config cfg;
	/*
	 * Locking.  @lock: the tables below (types, words, patterns index);
	 * readers of q/ take it shared.  Never held across store I/O or the LLM:
	 * files are read (tdata_load) before and logged after.
	 */
	pthread_rwlock_t lock;
	struct rtype **types;
	size_t ntb, ntypes;
	struct word **words;
	size_t nwb, nwords;
	unsigned long epoch;
	size_t npatterns;

	/* One routing admission at a time (patterns files are appended, a new type's
	 * candidate is checked): held across store I/O and the sandbox, but taken only
	 * by a question that missed and got a routing reply, never by a hit, a read
	 * of ask/ or the tables' readers. */
	pthread_mutex_t admit;
	pthread_mutex_t mu; /* what follows (short sections; walks and scans run with
			     * walked == 1 or a signature taken, unlocked) */
	pthread_cond_t cond;
	int walked; /* 0 not yet, 1 walking, 2 done */
	struct sig notes;
	int64_t notes_checked;
	int64_t notes_since; /* CLOCK_REALTIME of the last scan of the notes */
	char **pending;
	size_t npending;
	struct flight *flights;
	struct fail *fails;
	size_t nfails;

	void (*hook)(const char *type);
	atomic_ulong asks, hits, misses, calls, failed, admitted;
} rt = {.lock = PTHREAD_RWLOCK_INITIALIZER,
	.admit = PTHREAD_MUTEX_INITIALIZER,
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* @s for a one-line message: control bytes as '?', cut at 100 bytes.  Returns @out. */
static const char *shown(const char *s, size_t len, char out[104])
{
	size_t n = len > 100 ? 100 : len;

	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	strcpy(out + n, len > 100 ? "..." : "");
	return out;
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

static size_t hash_str(const char *s, size_t mask)
{
	return (size_t)XXH3_64bits(s, strlen(s)) & mask;
}

static struct word *word_find(const char *w)
{
	struct word *x;

	if (!rt.nwb)
		return NULL;
	for (x = rt.words[hash_str(w, rt.nwb - 1)]; x; x = x->next)
		if (!strcmp(x->w, w))
			return x;
	return NULL;
}

static struct word *word_get(const char *w)
{
	struct word *x = word_find(w);

	if (x)
		return x;
	if (rt.nwords + 1 > rt.nwb) {
		size_t nb = rt.nwb ? rt.nwb * 2 : 1024;
		struct word **tb = calloc(nb, sizeof(*tb));

		if (!tb)
			abort();
		for (size_t b = 0; b < rt.nwb; b++) {
			struct word *y, *next;

			for (y = rt.words[b]; y; y = next) {
				size_t h = hash_str(y->w, nb - 1);

				next = y->next;
				y->next = tb[h];
				tb[h] = y;
			}
		}
		free(rt.words);
		rt.words = tb;
		rt.nwb = nb;
	}
	x = calloc(1, sizeof(*x));
	if (!x || !(x->w = strdup(w)))
		abort();
	x->next = rt.words[hash_str(w, rt.nwb - 1)];
	rt.words[hash_str(w, rt.nwb - 1)] = x;
	rt.nwords++;
	return x;
}

static struct rtype *type_find(const char *name)
{
	struct rtype *t;

	if (!rt.ntb)
		return NULL;
	for (t = rt.types[hash_str(name, rt.ntb - 1)]; t; t = t->next)
		if (!strcmp(t->name, name))
			return t;
	return NULL;
}

static struct rtype *type_get(const char *name)
{
	struct rtype *t = type_find(name);

	if (t)
		return t;
	if (rt.ntypes + 1 > rt.ntb) {
		size_t nb = rt.ntb ? rt.ntb * 2 : 1024;
		struct rtype **tb = calloc(nb, sizeof(*tb));

		if (!tb)
			abort();
		for (size_t b = 0; b < rt.ntb; b++) {
			struct rtype *y, *next;

			for (y = rt.types[b]; y; y = next) {
				size_t h = hash_str(y->name, nb - 1);

				next = y->next;
				y->next = tb[h];
				tb[h] = y;
			}
		}
		free(rt.types);
		rt.types = tb;
		rt.ntb = nb;
	}
	t = calloc(1, sizeof(*t));
	if (!t || !(t->name = strdup(name)))
		abort();
	t->next = rt.types[hash_str(name, rt.ntb - 1)];
	rt.types[hash_str(name, rt.ntb - 1)] = t;
	rt.ntypes++;
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

static char *lowered(const char *s, size_t len)
{
	char *l = malloc(len + 1);

	if (!l)
		abort();
	for (size_t i = 0; i < len; i++)
		l[i] = lower(s[i]);
	l[len] = '\0';
	return l;
}

/* Words for nearness: letters and digits only, lowercased, 2 characters or more. */
struct wordset {
	char **w;
	size_t n, cap;
};

static void wordset_add_text(struct wordset *ws, const char *s, size_t len)
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

static void wordset_unique(struct wordset *ws)
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

/* ---- loading a type from the store -------------------------------------- */

static void sig_of(const char *path, struct sig *s)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	/* Resolved beneath STORE: a type directory planted as a symlink is not followed. */
	if (store_lstat(path, &st) == 0) {
		s->exists = true;
		s->ino = (uint64_t)st.st_ino;
		s->size = (int64_t)st.st_size;
		s->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	}
}

static bool sig_eq(const struct sig *a, const struct sig *b)
{
	return a->exists == b->exists && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns;
}

static void type_sigs(const char *name, struct sig *ps, struct sig *qs)
{
	struct buf path = BUF_INIT;
	size_t base;

	store_type_dir(name, &path);
	base = path.len;
	buf_adds(&path, "/patterns");
	sig_of(path.data, ps);
	buf_truncate(&path, base);
	buf_adds(&path, "/questions");
	sig_of(path.data, qs);
	buf_free(&path);
}

static void tdata_free(struct tdata *d)
{
	for (size_t i = 0; i < d->npats; i++)
		pat_free(&d->pats[i]);
	free(d->pats);
	for (size_t i = 0; i < d->nex; i++) {
		free(d->ex[i].name);
		free(d->ex[i].q);
		free(d->ex[i].in);
	}
	free(d->ex);
	free(d->reason);
	free(d->spec);
	memset(d, 0, sizeof(*d));
}

/* Parse patterns text into @d (appending); on a bad line sets d->reason. */
static void tdata_parse(struct tdata *d, const char *text, size_t len)
{
	struct buf why = BUF_INIT;
	size_t p = 0, lineno = 0;

	while (p < len && !d->reason) {
		const char *nl = memchr(text + p, '\n', len - p);
		size_t e = nl ? (size_t)(nl - text) : len;
		struct pat pt;
		int r;

		lineno++;
		buf_reset(&why);
		r = pat_parse(text + p, e - p, &pt, &why);
		if (r < 0) {
			buf_printf(&why, " (line %zu: %.*s)", lineno,
				   (int)(e - p > 200 ? 200 : e - p), text + p);
			d->reason = buf_steal(&why);
		} else if (r > 0) {
			d->pats = xrealloc(d->pats, (d->npats + 1) * sizeof(*d->pats));
			d->pats[d->npats++] = pt;
		}
		p = nl ? e + 1 : len;
	}
	buf_free(&why);
}

static bool litter(const char *name, size_t len)
{
	return !len || name[0] == '.' || name[0] == '#' || name[len - 1] == '~' ||
	       !strcmp(name, "4913") || atomic_is_tmpname(name);
}

static int cmp_ex(const void *a, const void *b)
{
	return strcmp(((const struct rex *)a)->name, ((const struct rex *)b)->name);
}

static void tdata_examples(struct tdata *d, const char *name)
{
	struct buf path = BUF_INIT, q = BUF_INIT, in = BUF_INIT, nq = BUF_INIT, fn = BUF_INIT;
	struct dirent *de;
	DIR *dir;
	int fd;

	store_type_dir(name, &path);
	buf_adds(&path, "/questions");
	fd = store_open_beneath(path.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	buf_free(&path);
	if (fd < 0)
		return;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return;
	}
	while ((de = readdir(dir)) && d->nex < ROUTE_EXAMPLES_MAX) {
		size_t len = strlen(de->d_name);
		struct rex *x;

		if (len < 3 || strcmp(de->d_name + len - 2, ".q") || litter(de->d_name, len - 2))
			continue;
		buf_reset(&fn);
		buf_add(&fn, de->d_name, len - 2);
		buf_adds(&fn, ".in");
		buf_reset(&q);
		buf_reset(&in);
		if (file_read_all(fd, de->d_name, ROUTE_EXAMPLE_BYTES, &q) != 0 ||
		    file_read_all(fd, fn.data, ROUTE_EXAMPLE_BYTES, &in) != 0)
			continue; /* a question without its input (yet) is no example */
		/* A final newline (echo) is not part of the input. */
		if (in.len && in.data[in.len - 1] == '\n')
			buf_truncate(&in, in.len - 1);
		pat_normalize(q.data ? q.data : "", q.len, &nq);
		if (!nq.len || memchr(nq.data, '\0', nq.len))
			continue;
		d->ex = xrealloc(d->ex, (d->nex + 1) * sizeof(*d->ex));
		x = &d->ex[d->nex++];
		x->name = strndup(de->d_name, len - 2);
		x->qlen = nq.len;
		x->q = buf_steal(&nq);
		x->inlen = in.len;
		if (!in.data)
			buf_grow(&in, 1);
		x->in = buf_steal(&in);
		if (!x->name)
			abort();
	}
	closedir(dir);
	if (d->nex)
		qsort(d->ex, d->nex, sizeof(*d->ex), cmp_ex);
	buf_free(&q);
	buf_free(&in);
	buf_free(&nq);
	buf_free(&fn);
}

/* Read a type's patterns and questions (no lock held: this is the store I/O). */
static void tdata_load(const char *name, struct tdata *d)
{
	struct buf text = BUF_INIT;
	int r;

	memset(d, 0, sizeof(*d));
	type_sigs(name, &d->ps, &d->qs);
	if (d->ps.exists) {
		r = store_read(name, "patterns", ROUTE_PATTERNS_MAX, &text);
		if (r == -EFBIG) {
			if (asprintf(&d->reason, "the patterns file is over %u bytes",
				     ROUTE_PATTERNS_MAX) < 0)
				abort();
		} else if (r == 0) {
			tdata_parse(d, buf_str(&text), text.len);
		}
	}
	if (d->qs.exists)
		tdata_examples(d, name);
	/* The spec's words make a type near a question even before it has patterns. */
	buf_reset(&text);
	if (store_read(name, "spec", ROUTE_SPEC_MAX, &text) == 0 && text.len)
		d->spec = buf_steal(&text);
	buf_free(&text);
}

/* ---- admission ---------------------------------------------------------- */

/* Best match of @pats on @q: the most literal characters, first wins. */
static int best_of(const struct pat *pats, size_t n, const char *q, size_t qlen, struct buf *input)
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
	struct word *x = word_find(w);
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
static char *choose_key(const struct pat *p)
{
	struct keypick k = {0};

	pat_words(p, key_cb, &k);
	return k.best ? strdup(k.best) : NULL;
}

static void has_word_cb(const char *w, size_t len, void *arg)
{
	(void)w;
	(void)len;
	*(bool *)arg = true;
}

/* Every example of @d is won by @d's patterns with exactly its input (no lock). */
static int admit_self(const struct tdata *d, struct buf *why)
{
	struct buf in = BUF_INIT;
	int ret = 0;

	for (size_t i = 0; i < d->npats; i++) {
		bool has = false;

		pat_words(&d->pats[i], has_word_cb, &has);
		if (!has) {
			buf_printf(why,
				   "pattern '%s' has no whole literal word (a word between spaces, "
				   "which is how questions find patterns): add one",
				   d->pats[i].text);
			ret = -EINVAL;
			goto out;
		}
	}
	for (size_t i = 0; i < d->nex; i++) {
		const struct rex *x = &d->ex[i];

		if (best_of(d->pats, d->npats, x->q, x->qlen, &in) < 0) {
			buf_printf(why, "example questions/%s.q '%s' matches no pattern", x->name,
				   x->q);
			ret = -EINVAL;
			goto out;
		}
		if (in.len != x->inlen || memcmp(in.data, x->in, in.len)) {
			char a[104], b[104];

			buf_printf(
			    why, "example questions/%s.q '%s' gives input '%s', not '%s' of %s.in",
			    x->name, x->q, shown(in.data, in.len, a), shown(x->in, x->inlen, b),
			    x->name);
			ret = -EINVAL;
			goto out;
		}
	}
out:
	buf_free(&in);
	return ret;
}

/* No example question of another type is won by @pats.  Lock held. */
static int admit_cross(const struct rtype *self, const char *selfname, const struct pat *pats,
		       size_t n, struct buf *why)
{
	struct buf tmp = BUF_INIT;
	int ret = 0;

	for (size_t i = 0; i < n && !ret; i++) {
		char *key = choose_key(&pats[i]);
		struct word *w = key ? word_find(key) : NULL;

		free(key);
		for (size_t k = 0; w && k < w->er.n && !ret; k++) {
			struct rtype *u = w->er.v[k].t;
			const struct rex *x;
			int own;

			if (u == self || !strcmp(u->name, selfname))
				continue;
			x = &u->d.ex[w->er.v[k].i];
			if (!pat_match(&pats[i], x->q, x->qlen, &tmp))
				continue;
			own = u->ok ? best_of(u->d.pats, u->d.npats, x->q, x->qlen, NULL) : -1;
			if ((int)pats[i].lits >= own) {
				buf_printf(why,
					   "pattern '%s' would win example questions/%s.q '%s' of "
					   "type %s: make it more specific",
					   pats[i].text, x->name, x->q, u->name);
				ret = -EINVAL;
			}
		}
	}
	buf_free(&tmp);
	return ret;
}

/* ---- filing a type in the index (write lock held) ----------------------- */

static void ex_words(struct rtype *t, uint32_t i, bool add)
{
	char *l = lowered(t->d.ex[i].q, t->d.ex[i].qlen), *tok[ROUTE_TOKENS_MAX];
	size_t n = tokens(l, tok, ROUTE_TOKENS_MAX);

	for (size_t k = 0; k < n; k++) {
		struct word *w = add ? word_get(tok[k]) : word_find(tok[k]);

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

static void unfile_patterns(struct rtype *t)
{
	if (!t->ok)
		return;
	for (size_t i = 0; i < t->d.npats; i++) {
		struct pat *p = &t->d.pats[i];
		struct word *w = p->key ? word_find(p->key) : NULL;

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
		p->key = choose_key(p);
		vec_add(&word_get(p->key)->pr, t, (uint32_t)i);
	}
	rt.npatterns += t->d.npats;
	t->ok = true;
}

static void unfile(struct rtype *t)
{
	unfile_patterns(t);
	for (size_t i = 0; i < t->d.nex; i++)
		ex_words(t, (uint32_t)i, false);
	for (size_t i = 0; i < t->nowords; i++)
		vec_del(&t->owords[i]->tr, t, UINT32_MAX);
	free(t->owords);
	t->owords = NULL;
	t->nowords = 0;
	tdata_free(&t->d);
}

/* Install @d as @t's data; returns true when the patterns were refused just now. */
static bool file_type(struct rtype *t, struct tdata *d, bool cross, struct buf *why)
{
	struct wordset ws = {0};
	char *old_reason = t->d.reason ? strdup(t->d.reason) : NULL;
	bool refused = false;

	unfile(t);
	t->d = *d;
	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < t->d.nex; i++)
		ex_words(t, (uint32_t)i, true);
	wordset_add_text(&ws, t->name, strlen(t->name));
	for (size_t i = 0; i < t->d.npats; i++)
		wordset_add_text(&ws, t->d.pats[i].text, strlen(t->d.pats[i].text));
	for (size_t i = 0; i < t->d.nex; i++)
		wordset_add_text(&ws, t->d.ex[i].q, t->d.ex[i].qlen);
	if (t->d.spec) {
		size_t sl = strlen(t->d.spec);

		wordset_add_text(&ws, t->d.spec, sl < ROUTE_SPEC_WORDS ? sl : ROUTE_SPEC_WORDS);
		free(t->d.spec);
		t->d.spec = NULL;
	}
	wordset_unique(&ws);
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
		if (admit_self(&t->d, why) == 0 &&
		    (!cross || admit_cross(t, t->name, t->d.pats, t->d.npats, why) == 0))
			file_patterns(t);
		else
			t->d.reason = buf_steal(why);
	}
	if (t->d.reason && (!old_reason || strcmp(old_reason, t->d.reason)))
		refused = true;
	free(old_reason);
	atomic_store(&t->checked_ns, now_ns());
	return refused;
}

static void note_change(const char *name)
{
	int fd;

	if (store_readonly())
		return;
	if (mkdirat(store_root_fd(), ROUTE_NOTES, 0755) != 0 && errno != EEXIST)
		return;
	fd = openat(store_root_fd(), ROUTE_NOTES, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	if (atomic_write(fd, name, "", 0, 0644) != 0)
		log_warn("routes: cannot note the change of %s for other daemons", name);
	close(fd);
}

/* Read @name from the store and file it; tell others when @note and it changed. */
struct refusal {
	char *name, *reason;
};

static size_t refuse_winners(struct rtype *t, struct refusal **out);

static void reload(const char *name, bool note)
{
	struct tdata d;
	struct buf why = BUF_INIT;
	struct rtype *t;
	struct refusal *others = NULL;
	size_t nothers = 0;
	bool changed, refused;
	char *reason = NULL;

	tdata_load(name, &d);
	pthread_rwlock_wrlock(&rt.lock);
	t = type_find(name);
	changed = !t || !sig_eq(&t->d.ps, &d.ps) || !sig_eq(&t->d.qs, &d.qs);
	if (!t && !d.ps.exists && !d.qs.exists && !store_type_exists(name)) {
		pthread_rwlock_unlock(&rt.lock);
		tdata_free(&d);
		return;
	}
	if (!t)
		t = type_get(name);
	refused = file_type(t, &d, true, &why);
	if (refused && t->d.reason)
		reason = strdup(t->d.reason);
	if (changed)
		nothers = refuse_winners(t, &others);
	pthread_rwlock_unlock(&rt.lock);
	if (reason) {
		log_warn("%s: patterns not used: %s", name, reason);
		store_log(name, "patterns: not used: %s (fix procs/%s/patterns or questions/)",
			  reason, name);
	}
	for (size_t i = 0; i < nothers; i++) {
		log_warn("%s: patterns not used: %s", others[i].name, others[i].reason);
		store_log(others[i].name, "patterns: not used: %s", others[i].reason);
		if (rt.hook)
			rt.hook(others[i].name);
		free(others[i].name);
		free(others[i].reason);
	}
	free(others);
	if (changed) {
		if (note)
			note_change(name);
		if (rt.hook)
			rt.hook(name);
	}
	free(reason);
	buf_free(&why);
}

static void reload_if_changed(const char *name, bool note)
{
	struct sig ps, qs;
	struct rtype *t;
	bool same;

	type_sigs(name, &ps, &qs);
	pthread_rwlock_rdlock(&rt.lock);
	t = type_find(name);
	same = t ? sig_eq(&t->d.ps, &ps) && sig_eq(&t->d.qs, &qs) : !ps.exists && !qs.exists;
	if (t && same)
		atomic_store(&t->checked_ns, now_ns());
	pthread_rwlock_unlock(&rt.lock);
	if (!same)
		reload(name, note);
}

/* ---- walking and freshness ---------------------------------------------- */

static int walk_one(const char *name, void *arg)
{
	struct tdata d;
	struct buf why = BUF_INIT;

	struct rtype *t;
	char *reason = NULL;

	(void)arg;
	tdata_load(name, &d);
	pthread_rwlock_wrlock(&rt.lock);
	t = type_get(name);
	if (file_type(t, &d, false, &why) && t->d.reason)
		reason = strdup(t->d.reason);
	pthread_rwlock_unlock(&rt.lock);
	if (reason) {
		log_warn("%s: patterns not used: %s", name, reason);
		store_log(name, "patterns: not used: %s", reason);
	}
	free(reason);
	buf_free(&why);
	return 0;
}

/* Once every type is in, check what a type-by-type load could not: examples of
 * other types. */
static void walk_cross(void)
{
	struct buf why = BUF_INIT;
	struct refusal *refused = NULL;
	size_t nrefused = 0;

	pthread_rwlock_wrlock(&rt.lock);
	for (size_t b = 0; b < rt.ntb; b++)
		for (struct rtype *t = rt.types[b]; t; t = t->next) {
			if (!t->ok)
				continue;
			buf_reset(&why);
			if (admit_cross(t, t->name, t->d.pats, t->d.npats, &why) == 0)
				continue;
			unfile_patterns(t);
			t->d.reason = buf_steal(&why);
			refused = xreallocarray(refused, nrefused + 1, sizeof(*refused));
			refused[nrefused].name = xstrdup(t->name);
			refused[nrefused].reason = xstrdup(t->d.reason);
			nrefused++;
		}
	pthread_rwlock_unlock(&rt.lock);
	/* Logged with the index unlocked: a log line is store I/O. */
	for (size_t i = 0; i < nrefused; i++) {
		log_warn("%s: patterns not used: %s", refused[i].name, refused[i].reason);
		store_log(refused[i].name, "patterns: not used: %s", refused[i].reason);
		free(refused[i].name);
		free(refused[i].reason);
	}
	free(refused);
	buf_free(&why);
}

static void notes_scan(void)
{
	int64_t since;
	struct sig s;
	struct dirent *de;
	DIR *dir;
	int fd;

	sig_of(ROUTE_NOTES, &s);
	pthread_mutex_lock(&rt.mu);
	if (sig_eq(&s, &rt.notes)) {
		pthread_mutex_unlock(&rt.mu);
		return;
	}
	rt.notes = s;
	since = rt.notes_since - ROUTE_NOTE_SKEW_NS;
	rt.notes_since = real_ns();
	pthread_mutex_unlock(&rt.mu);
	fd = openat(store_root_fd(), ROUTE_NOTES, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return;
	}
	/* Only the notes written since the last scan: the others were seen then. */
	while ((de = readdir(dir))) {
		struct stat st;

		if (!store_type_valid(de->d_name, strlen(de->d_name)) ||
		    fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec < since)
			continue;
		reload_if_changed(de->d_name, false);
	}
	closedir(dir);
}

/* The index is built on the first question (not at mount: most mounts of a big store
 * never see one), and kept fresh at most every revalidate_ms. */
static void route_ready(void)
{
	int64_t now = now_ns();
	char **pending = NULL;
	size_t npending = 0;
	bool scan = false;

	pthread_mutex_lock(&rt.mu);
	if (rt.walked == 0) {
		rt.walked = 1;
		pthread_mutex_unlock(&rt.mu);
		rt.notes_since = real_ns(); /* (no other thread reads it before walked == 2) */
		sig_of(ROUTE_NOTES, &rt.notes);
		store_foreach_type(walk_one, NULL);
		walk_cross();
		pthread_mutex_lock(&rt.mu);
		rt.walked = 2;
		rt.notes_checked = now_ns();
		pthread_cond_broadcast(&rt.cond);
	}
	while (rt.walked != 2)
		pthread_cond_wait(&rt.cond, &rt.mu);
	if (rt.npending) {
		pending = rt.pending;
		npending = rt.npending;
		rt.pending = NULL;
		rt.npending = 0;
	}
	if (now - rt.notes_checked >= (int64_t)rt.cfg.revalidate_ms * 1000000) {
		rt.notes_checked = now;
		scan = true;
	}
	pthread_mutex_unlock(&rt.mu);
	for (size_t i = 0; i < npending; i++) {
		reload_if_changed(pending[i], true);
		free(pending[i]);
	}
	free(pending);
	if (scan)
		notes_scan();
}

/*
 * Other daemons learn of this change by its note, so it is written now, not at this
 * daemon's next question (which may never come).
 */
void route_touched(const char *type)
{
	struct sig ps, qs;
	int walked;

	pthread_mutex_lock(&rt.mu);
	walked = rt.walked;
	if (walked == 1) {
		/* The walk may have read the type already: look again once it is done. */
		for (size_t i = 0; i < rt.npending; i++)
			if (!strcmp(rt.pending[i], type))
				goto out;
		rt.pending = realloc(rt.pending, (rt.npending + 1) * sizeof(*rt.pending));
		if (!rt.pending || !(rt.pending[rt.npending] = strdup(type)))
			abort();
		rt.npending++;
	}
out:
	pthread_mutex_unlock(&rt.mu);
	if (walked == 2) {
		reload_if_changed(type, true);
	} else if (walked == 0) {
		/* No index here to compare with: note any type that has patterns or examples. */
		type_sigs(type, &ps, &qs);
		if (ps.exists || qs.exists)
			note_change(type);
	}
}

/* ---- finding ------------------------------------------------------------ */

struct found {
	struct rtype *t;
	int lits;
	bool tie;
	struct buf input;
};

/* Read lock held.  @exclude's patterns are not considered. */
static void find_locked(const char *nq, size_t nqlen, const struct rtype *exclude, struct found *f)
{
	char *l = lowered(nq, nqlen), *tok[ROUTE_TOKENS_MAX];
	size_t n = tokens(l, tok, ROUTE_TOKENS_MAX);
	struct buf tmp = BUF_INIT;
	size_t tried = 0;
	unsigned long budget = ROUTE_STEPS_MAX;

	f->t = NULL;
	f->lits = -1;
	f->tie = false;
	for (size_t k = 0; k < n; k++) {
		struct word *w = word_find(tok[k]);

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
static size_t refuse_winners(struct rtype *t, struct refusal **out)
{
	struct buf tmp = BUF_INIT;
	size_t n = 0;

	*out = NULL;
	for (size_t i = 0; i < t->d.nex; i++) {
		const struct rex *x = &t->d.ex[i];
		int own = t->ok ? best_of(t->d.pats, t->d.npats, x->q, x->qlen, NULL) : -1;

		/* Each round refuses one type: at most as many rounds as tying types. */
		for (int round = 0; round < 64; round++) {
			struct found f = {0};
			struct rtype *u = NULL;

			find_locked(x->q, x->qlen, t, &f);
			buf_free(&f.input);
			if (!f.t || f.lits < own)
				break;
			/* f.t is one of the types reaching the best count: refuse it. */
			u = f.t;
			unfile_patterns(u);
			free(u->d.reason);
			buf_reset(&tmp);
			buf_printf(&tmp,
				   "a pattern would win example questions/%s.q '%s' of type %s: "
				   "make it more specific",
				   x->name, x->q, t->name);
			u->d.reason = strdup(buf_str(&tmp));
			*out = realloc(*out, (n + 1) * sizeof(**out));
			if (!*out || !u->d.reason || !((*out)[n].name = strdup(u->name)) ||
			    !((*out)[n].reason = strdup(u->d.reason)))
				abort();
			n++;
		}
	}
	buf_free(&tmp);
	return n;
}

/* 0 with the winner's name and input, or -ENOENT. */
static int find(const char *nq, size_t nqlen, struct buf *type, struct buf *input,
		struct rtype **winner)
{
	struct found f = {0};
	int ret = -ENOENT;

	pthread_rwlock_rdlock(&rt.lock);
	find_locked(nq, nqlen, NULL, &f);
	if (f.t && !f.tie) {
		buf_reset(type);
		buf_adds(type, f.t->name);
		buf_reset(input);
		buf_add(input, buf_str(&f.input), f.input.len);
		if (!input->data)
			buf_grow(input, 1);
		if (winner)
			*winner = f.t;
		ret = 0;
	}
	pthread_rwlock_unlock(&rt.lock);
	buf_free(&f.input);
	return ret;
}

/* Find, revalidating the winner's patterns when they are older than revalidate. */
static int find_fresh(const char *nq, size_t nqlen, struct buf *type, struct buf *input,
		      struct rtype **winner)
{
	int64_t limit = (int64_t)rt.cfg.revalidate_ms * 1000000;
	int ret;

	for (int round = 0; round < 3; round++) {
		struct rtype *t = NULL;
		int64_t checked;

		ret = find(nq, nqlen, type, input, &t);
		if (ret)
			return ret;
		/* Types are never freed while the daemon runs: reading t is safe. */
		checked = atomic_load(&t->checked_ns);
		if (now_ns() - checked < limit) {
			*winner = t;
			return 0;
		}
		reload_if_changed(type->data, true);
	}
	return find(nq, nqlen, type, input, winner);
}

int route_find(const char *q, size_t len, struct buf *type, struct buf *input)
{
	struct buf nq = BUF_INIT;
	struct rtype *t;
	int ret;

	pat_normalize(q, len, &nq);
	route_ready();
	ret = find_fresh(nq.data, nq.len, type, input, &t);
	buf_free(&nq);
	return ret;
}

/* ---- routing a miss with the LLM ---------------------------------------- */

static bool fail_remembered(const char *key)
{
	int64_t now = now_ns();

	for (struct fail **p = &rt.fails, *f; (f = *p);) {
		if (f->until <= now) {
			*p = f->next;
			free(f->key);
			free(f);
			rt.nfails--;
			continue;
		}
		if (!strcmp(f->key, key))
			return true;
		p = &f->next;
	}
	return false;
}

static void fail_remember(const char *key)
{
	struct fail *f;

	if (!rt.cfg.fail_ttl_ms)
		return;
	pthread_mutex_lock(&rt.mu);
	if (rt.nfails >= ROUTE_FAILS_MAX) { /* bounded: forget the oldest */
		struct fail **p = &rt.fails;

		while ((*p)->next)
			p = &(*p)->next;
		free((*p)->key);
		free(*p);
		*p = NULL;
		rt.nfails--;
	}
	f = calloc(1, sizeof(*f));
	if (!f || !(f->key = strdup(key)))
		abort();
	f->until = now_ns() + (int64_t)rt.cfg.fail_ttl_ms * 1000000;
	f->next = rt.fails;
	rt.fails = f;
	rt.nfails++;
	pthread_mutex_unlock(&rt.mu);
}

struct near {
	char *name;
	double score;
	struct buf examples;
};

static int cmp_near(const void *a, const void *b)
{
	const struct rtype *x = *(struct rtype *const *)a, *y = *(struct rtype *const *)b;

	return x->score < y->score ? 1 : x->score > y->score ? -1 : strcmp(x->name, y->name);
}

/* The types nearest to @nq by shared words (rarer words weigh more). */
static size_t nearest(const char *nq, size_t nqlen, struct near *out, size_t max)
{
	struct wordset ws = {0};
	struct rtype **cand = NULL;
	size_t ncand = 0, n = 0;

	wordset_add_text(&ws, nq, nqlen);
	wordset_unique(&ws);
	pthread_rwlock_wrlock(&rt.lock); /* scores live in the types */
	rt.epoch++;
	for (size_t i = 0; i < ws.n; i++) {
		struct word *w = word_find(ws.w[i]);

		if (!w || !w->tr.n || w->tr.n > ROUTE_COMMON_WORD)
			continue;
		for (size_t k = 0; k < w->tr.n; k++) {
			struct rtype *t = w->tr.v[k].t;

			if (t->epoch != rt.epoch) {
				t->epoch = rt.epoch;
				t->score = 0;
				cand = xrealloc(cand, (ncand + 1) * sizeof(*cand));
				cand[ncand++] = t;
			}
			t->score += 1.0 / (double)w->tr.n;
		}
	}
	if (ncand)
		qsort(cand, ncand, sizeof(*cand), cmp_near);
	for (size_t i = 0; i < ncand && n < max; i++) {
		struct rtype *t = cand[i];

		memset(&out[n], 0, sizeof(out[n]));
		out[n].name = strdup(t->name);
		out[n].score = t->score;
		for (size_t k = 0; k < t->d.nex && k < ROUTE_NEAR_EXAMPLES; k++)
			buf_printf(&out[n].examples, "%s => %s\n", t->d.ex[k].q, t->d.ex[k].in);
		n++;
	}
	pthread_rwlock_unlock(&rt.lock);
	for (size_t i = 0; i < ws.n; i++)
		free(ws.w[i]);
	free(ws.w);
	free(cand);
	return n;
}

static void trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t' || **s == '\r'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
		(*e)--;
}

struct rreply {
	char name[STORE_TYPE_MAX + 1];
	bool none;
	struct buf reason;
	struct buf patterns; /* the block's lines, as they will be appended */
	struct tdata add;    /* its patterns and questions, parsed */
};

/* Read the route, patterns and questions blocks. */
static int parse_reply(const char *text, size_t len, struct rreply *r, struct buf *why)
{
	struct buf b = BUF_INIT, nq = BUF_INIT;
	const char *p, *e;
	int ret = -EINVAL;

	if (llm_reply_block(text, len, "route", &b) == 0) {
		buf_adds(why, "the reply has no ```route block");
		goto out;
	}
	for (p = b.data; p < b.data + b.len;) {
		const char *le = memchr(p, '\n', (size_t)(b.data + b.len - p)), *s = p;

		e = le ? le : b.data + b.len;
		p = le ? le + 1 : e;
		trim(&s, &e);
		if (e - s > 5 && !strncasecmp(s, "none:", 5)) {
			s += 5;
			trim(&s, &e);
			r->none = true;
			buf_add(&r->reason, s, (size_t)(e - s));
			ret = 0;
			goto out;
		}
		if (e - s > 5 && !strncasecmp(s, "type:", 5)) {
			s += 5;
			trim(&s, &e);
			if (!store_type_valid(s, (size_t)(e - s))) {
				buf_printf(
				    why,
				    "'%.*s' is not a type name (1 to 128 of A-Z a-z 0-9 . _ + -)",
				    (int)(e - s > 130 ? 130 : e - s), s);
				goto out;
			}
			memcpy(r->name, s, (size_t)(e - s));
			r->name[e - s] = '\0';
		}
	}
	if (!r->name[0]) {
		buf_adds(why, "the ```route block names no `type: NAME` (nor `none: REASON`)");
		goto out;
	}
	llm_reply_block(text, len, "patterns", &r->patterns);
	tdata_parse(&r->add, r->patterns.data, r->patterns.len);
	if (r->add.reason) {
		buf_printf(why, "a pattern does not parse: %s", r->add.reason);
		goto out;
	}
	if (!r->add.npats) {
		buf_adds(why, "the ```patterns block holds no pattern");
		goto out;
	}
	llm_reply_block(text, len, "questions", &b);
	for (p = b.data; p < b.data + b.len && r->add.nex < 64;) {
		const char *le = memchr(p, '\n', (size_t)(b.data + b.len - p)), *s = p, *a;
		struct rex *x;

		e = le ? le : b.data + b.len;
		p = le ? le + 1 : e;
		a = memmem(s, (size_t)(e - s), " => ", 4);
		if (!a)
			continue;
		pat_normalize(s, (size_t)(a - s), &nq);
		s = a + 4;
		trim(&s, &e);
		if (!nq.len || e - s > ROUTE_EXAMPLE_BYTES)
			continue;
		r->add.ex = xrealloc(r->add.ex, (r->add.nex + 1) * sizeof(*r->add.ex));
		x = &r->add.ex[r->add.nex++];
		x->qlen = nq.len;
		x->q = buf_steal(&nq);
		x->in = strndup(s, (size_t)(e - s));
		x->inlen = (size_t)(e - s);
		if (asprintf(&x->name, "llm-%016llx",
			     (unsigned long long)XXH3_64bits(x->q, x->qlen)) < 0)
			abort();
	}
	ret = 0;
out:
	buf_free(&b);
	buf_free(&nq);
	return ret;
}

static void rreply_free(struct rreply *r)
{
	buf_free(&r->reason);
	buf_free(&r->patterns);
	tdata_free(&r->add);
}

static void meta_edit_routed(cJSON *meta, void *arg)
{
	const struct llm_config *llm = synth_llm();

	(void)arg;
	meta_set_author_llm(meta, llm_provider_name(llm->provider), llm->model ? llm->model : "",
			    "routing");
	meta_set_admission(meta, 0, true, true, NULL);
}

/* A new type's procedure, from the reply: compiled and tested in the sandbox. */
static int new_procedure(const char *name, const char *text, size_t len, struct buf *code,
			 struct buf *spec, struct llm_case **cases, int *ncases, struct buf *why)
{
	if (llm_reply_code(text, len, code) != 0) {
		buf_printf(why,
			   "type %s does not exist: the reply must hold its procedure in a "
			   "```c block",
			   name);
		return -EINVAL;
	}
	llm_reply_block(text, len, "spec", spec);
	*ncases = llm_reply_cases(text, len, cases);
	if (*ncases < 0)
		*ncases = 0;
	return proc_check_source(code->data, code->len, *cases, (size_t)*ncases, why);
}

/* Check a reply and, when admissible, write it to the store. */
static int admit_reply(const char *nq, size_t nqlen, const char *text, size_t len, struct rreply *r,
		       struct buf *why)
{
	struct buf in = BUF_INIT, code = BUF_INIT, spec = BUF_INIT, old = BUF_INIT, all = BUF_INIT;
	struct llm_case *cases = NULL;
	struct tdata cur, comb = {0};
	struct found other = {0};
	int ncases = 0, ours, ret = -EINVAL;
	bool exists;

	memset(&cur, 0, sizeof(cur));
	if (best_of(r->add.pats, r->add.npats, nq, nqlen, NULL) < 0) {
		buf_printf(why, "none of the patterns matches the question '%s'", nq);
		goto out;
	}
	exists = store_type_exists(r->name);
	if (exists && store_read(r->name, "patterns", ROUTE_PATTERNS_MAX, &old) == -EFBIG) {
		buf_printf(why, "type %s has a full patterns file", r->name);
		goto out;
	}
	tdata_load(r->name, &cur);
	if (cur.reason) {
		buf_printf(why, "the patterns of type %s are not in use (%s): route elsewhere",
			   r->name, cur.reason);
		goto out;
	}
	/* The combination: its patterns and examples with the reply's. */
	comb.npats = cur.npats + r->add.npats;
	comb.pats = calloc(comb.npats ? comb.npats : 1, sizeof(*comb.pats));
	comb.nex = cur.nex + r->add.nex;
	comb.ex = calloc(comb.nex ? comb.nex : 1, sizeof(*comb.ex));
	if (!comb.pats || !comb.ex)
		abort();
	/* (memcpy from NULL is undefined even for 0 bytes: new types have none yet) */
	if (cur.npats)
		memcpy(comb.pats, cur.pats, cur.npats * sizeof(*cur.pats));
	memcpy(comb.pats + cur.npats, r->add.pats, r->add.npats * sizeof(*r->add.pats));
	if (cur.nex)
		memcpy(comb.ex, cur.ex, cur.nex * sizeof(*cur.ex));
	if (r->add.nex)
		memcpy(comb.ex + cur.nex, r->add.ex, r->add.nex * sizeof(*r->add.ex));
	ret = admit_self(&comb, why);
	if (!ret) {
		pthread_rwlock_rdlock(&rt.lock);
		ret = admit_cross(type_find(r->name), r->name, comb.pats, comb.npats, why);
		if (!ret) {
			find_locked(nq, nqlen, type_find(r->name), &other);
			ours = best_of(comb.pats, comb.npats, nq, nqlen, &in);
			if (other.t && other.lits >= ours) {
				buf_printf(
				    why,
				    "the question is matched as well or better by a pattern of "
				    "type %s (%d literal characters against %d): make the "
				    "patterns more specific",
				    other.t->name, other.lits, ours);
				ret = -EINVAL;
			}
			/* Its example questions too: admitting them must not take questions
			 * another type answers away from it (see refuse_winners). */
			for (size_t i = 0; !ret && i < r->add.nex; i++) {
				const struct rex *x = &r->add.ex[i];

				buf_free(&other.input);
				memset(&other, 0, sizeof(other));
				find_locked(x->q, x->qlen, type_find(r->name), &other);
				ours = best_of(comb.pats, comb.npats, x->q, x->qlen, NULL);
				if (other.t && other.lits >= ours) {
					buf_printf(
					    why,
					    "the example question '%s' is answered by type %s "
					    "(its pattern has %d literal characters against "
					    "%d): route it there, or make the patterns more "
					    "specific",
					    x->q, other.t->name, other.lits, ours);
					ret = -EINVAL;
				}
			}
		}
		pthread_rwlock_unlock(&rt.lock);
	}
	free(comb.pats); /* shallow: the entries belong to cur and r->add */
	free(comb.ex);
	if (ret)
		goto out;
	/* An existing type must accept the inputs the reply maps its questions to: a
	 * question routed to the wrong type is caught here, before any file is written. */
	for (size_t i = 0; exists && i < r->add.nex; i++) {
		struct answer *a = NULL;
		const struct rex *x = &r->add.ex[i];

		ret = proc_ask(r->name, x->in, x->inlen, &a);
		if (!ret && a->rc)
			ret = a->rc;
		if (ret) {
			const char *nl = a ? memchr(a->data, '\n', a->len) : NULL;
			size_t rl =
			    a && ret == -EINVAL ? (nl ? (size_t)(nl - a->data) : a->len) : 0;
			char in[104], reason[104];

			buf_printf(why,
				   "type %s %s the input '%s' of the question '%s' (%s): it does "
				   "not answer this question; route it elsewhere",
				   r->name, ret == -EINVAL ? "rejects" : "cannot answer",
				   shown(x->in, x->inlen, in), x->q,
				   shown(rl ? a->data : "", rl, reason));
		}
		answer_put(a);
		if (ret) {
			ret = -EINVAL;
			goto out;
		}
	}
	if (!exists) {
		ret = new_procedure(r->name, text, len, &code, &spec, &cases, &ncases, why);
		if (ret)
			goto out;
		if (spec.len)
			store_write(r->name, "spec", spec.data, spec.len);
		for (int i = 0; i < ncases; i++) {
			struct buf n = BUF_INIT;

			buf_printf(&n, "tests/%s.in", cases[i].name);
			store_write(r->name, n.data, buf_str(&cases[i].in), cases[i].in.len);
			buf_reset(&n);
			buf_printf(&n, "tests/%s.out", cases[i].name);
			store_write(r->name, n.data, buf_str(&cases[i].out), cases[i].out.len);
			buf_free(&n);
		}
		/* The reply's code is admitted as any synthesis: validated against direct
		 * answers, repaired if it disagrees; synth_procedure writes source.c. */
		{
			struct proc_material m = {
			    .type = r->name,
			    .spec = spec.len ? spec.data : NULL,
			    .cases = cases,
			    .ncases = (size_t)ncases,
			    .first_reply = text,
			    .first_reply_len = len,
			};
			struct buf serr = BUF_INIT;

			ret = synth_procedure(&m, &serr);
			if (ret) {
				buf_printf(why, "the procedure of new type %s was not admitted: %s",
					   r->name, buf_str(&serr));
				buf_free(&serr);
				goto out;
			}
			buf_free(&serr);
		}
		meta_update(r->name, meta_edit_routed, NULL);
	}
	for (size_t i = 0; i < r->add.nex; i++) {
		struct buf n = BUF_INIT;
		const struct rex *x = &r->add.ex[i];

		buf_printf(&n, "questions/%s.in", x->name);
		store_write(r->name, n.data, x->in, x->inlen);
		buf_reset(&n);
		buf_printf(&n, "questions/%s.q", x->name);
		buf_reset(&all);
		buf_add(&all, x->q, x->qlen);
		buf_addc(&all, '\n');
		store_write(r->name, n.data, all.data, all.len);
		buf_free(&n);
	}
	buf_reset(&all);
	buf_add(&all, buf_str(&old), old.len);
	if (old.len && old.data[old.len - 1] != '\n')
		buf_addc(&all, '\n');
	buf_add(&all, r->patterns.data, r->patterns.len);
	ret = store_write(r->name, "patterns", all.data, all.len);
	if (ret) {
		buf_printf(why, "cannot store the patterns: %s", strerror(-ret));
		goto out;
	}
	store_log(r->name, "routing: admitted %zu pattern%s and %zu question%s for '%s'%s",
		  r->add.npats, r->add.npats == 1 ? "" : "s", r->add.nex,
		  r->add.nex == 1 ? "" : "s", nq, exists ? "" : " (a new type)");
	reload(r->name, true);
	atomic_fetch_add(&rt.admitted, 1);
out:
	tdata_free(&cur);
	buf_free(&in);
	buf_free(&code);
	buf_free(&spec);
	buf_free(&old);
	buf_free(&all);
	buf_free(&other.input);
	llm_cases_free(cases, (size_t)ncases);
	return ret;
}

/* One routing of question @nq: up to 1 + repair_rounds LLM calls. */
static int route_llm(const char *nq, size_t nqlen)
{
	struct near near[ROUTE_NEAREST];
	struct llm_route_type types[ROUTE_NEAREST];
	struct buf system = BUF_INIT, user = BUF_INIT, prev = BUF_INIT, failure = BUF_INIT;
	struct buf specs[ROUTE_NEAREST], pats[ROUTE_NEAREST];
	size_t n = nearest(nq, nqlen, near, ROUTE_NEAREST);
	int ret = -EIO;

	for (size_t i = 0; i < n; i++) {
		memset(&specs[i], 0, sizeof(specs[i]));
		memset(&pats[i], 0, sizeof(pats[i]));
		store_read(near[i].name, "spec", 8192, &specs[i]);
		store_read(near[i].name, "patterns", 8192, &pats[i]);
		types[i].name = near[i].name;
		types[i].spec = specs[i].len ? specs[i].data : NULL;
		types[i].patterns = pats[i].len ? pats[i].data : NULL;
		types[i].examples = near[i].examples.len ? near[i].examples.data : NULL;
	}
	for (unsigned round = 0; round <= rt.cfg.repair_rounds; round++) {
		struct llm_route_input in = {nq, types, n, prev.len ? prev.data : NULL,
					     failure.len ? failure.data : NULL};
		struct llm_reply reply = {0};
		struct rreply r = {0};
		struct buf why = BUF_INIT;
		int rc;

		buf_reset(&system);
		buf_reset(&user);
		llm_route_prompt(&in, &system, &user);
		atomic_fetch_add(&rt.calls, 1);
		rc = synth_call(system.data, user.data, &reply, &why);
		if (rc) {
			log_warn("q: routing '%s': %s", nq, why.data);
			buf_free(&why);
			llm_reply_free(&reply);
			break;
		}
		rc = parse_reply(buf_str(&reply.text), reply.text.len, &r, &why);
		if (!rc && r.none) {
			log_info("q: '%s' has no procedure: %s", nq, buf_str(&r.reason));
			rreply_free(&r);
			buf_free(&why);
			llm_reply_free(&reply);
			break;
		}
		if (!rc) {
			pthread_mutex_lock(&rt.admit);
			rc = admit_reply(nq, nqlen, buf_str(&reply.text), reply.text.len, &r, &why);
			pthread_mutex_unlock(&rt.admit);
		}
		if (!rc) {
			ret = 0;
			rreply_free(&r);
			buf_free(&why);
			llm_reply_free(&reply);
			break;
		}
		log_warn("q: routing '%s', round %u: not admitted: %s", nq, round, why.data);
		if (r.name[0] && store_type_exists(r.name))
			store_log(r.name, "routing '%s': not admitted: %s", nq, why.data);
		buf_reset(&prev);
		buf_add(&prev, buf_str(&reply.text), reply.text.len);
		buf_reset(&failure);
		buf_add(&failure, why.data, why.len);
		rreply_free(&r);
		buf_free(&why);
		llm_reply_free(&reply);
	}
	for (size_t i = 0; i < n; i++) {
		free(near[i].name);
		buf_free(&near[i].examples);
		buf_free(&specs[i]);
		buf_free(&pats[i]);
	}
	buf_free(&system);
	buf_free(&user);
	buf_free(&prev);
	buf_free(&failure);
	return ret;
}

/* Concurrent misses of one question make one routing. */
static int route_miss(const char *nq, size_t nqlen)
{
	char *key = lowered(nq, nqlen);
	struct flight *f;
	int ret;

	pthread_mutex_lock(&rt.mu);
	if (fail_remembered(key)) {
		pthread_mutex_unlock(&rt.mu);
		free(key);
		return -EIO;
	}
	for (f = rt.flights; f; f = f->next)
		if (!strcmp(f->key, key))
			break;
	if (f) {
		f->refs++;
		while (!f->done)
			pthread_cond_wait(&rt.cond, &rt.mu);
		ret = f->ret;
		if (--f->refs == 0) {
			free(f->key);
			free(f);
		}
		pthread_mutex_unlock(&rt.mu);
		free(key);
		return ret;
	}
	f = calloc(1, sizeof(*f));
	if (!f || !(f->key = strdup(key)))
		abort();
	f->refs = 1;
	f->next = rt.flights;
	rt.flights = f;
	pthread_mutex_unlock(&rt.mu);

	ret = route_llm(nq, nqlen);
	if (ret) {
		atomic_fetch_add(&rt.failed, 1);
		fail_remember(key);
	}
	pthread_mutex_lock(&rt.mu);
	for (struct flight **p = &rt.flights; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	f->done = true;
	f->ret = ret;
	pthread_cond_broadcast(&rt.cond);
	if (--f->refs == 0) {
		free(f->key);
		free(f);
	}
	pthread_mutex_unlock(&rt.mu);
	free(key);
	return ret;
}

/* @count: this is the read (OPEN, a query's read), counted once; a look ahead counts
 * only a failure, which is all its reader will see. */
static int route_answer(const char *q, size_t len, struct answer **ans, bool count)
{
	struct buf nq = BUF_INIT, type = BUF_INIT, input = BUF_INIT;
	struct rtype *t = NULL;
	int ret;

	*ans = NULL;
	if (len > PAT_QUESTION_MAX || memchr(q, '\0', len)) {
		ret = -ENOENT;
		goto out;
	}
	pat_normalize(q, len, &nq);
	route_ready();
	ret = find_fresh(nq.data, nq.len, &type, &input, &t);
	if (ret) {
		atomic_fetch_add(&rt.misses, 1);
		if (!rt.cfg.llm || !nq.len)
			goto out;
		if (store_readonly()) {
			/* Nothing the LLM says could be admitted: don't ask. */
			log_warn("q: '%s' matches no pattern, and the store is read-only: no "
				 "routing (mount it read-write to let the LLM add patterns)",
				 nq.data);
			ret = -EIO;
			goto out;
		}
		ret = route_miss(nq.data, nq.len);
		if (ret)
			goto out;
		ret = find_fresh(nq.data, nq.len, &type, &input, &t);
		if (ret) {
			ret = -EIO;
			goto out;
		}
	} else if (count) {
		atomic_fetch_add(&rt.hits, 1);
	}
	if (count) {
		atomic_fetch_add(&t->hits, 1);
		ret = proc_ask(type.data, input.data, input.len, ans);
	} else {
		ret = proc_peek(type.data, input.data, input.len, ans);
	}
out:
	if (count || ret)
		atomic_fetch_add(&rt.asks, 1);
	buf_free(&nq);
	buf_free(&type);
	buf_free(&input);
	return ret;
}

int route_ask(const char *q, size_t len, struct answer **ans)
{
	return route_answer(q, len, ans, true);
}

int route_peek(const char *q, size_t len, struct answer **ans)
{
	return route_answer(q, len, ans, false);
}

/* ---- the rest ----------------------------------------------------------- */

void route_init(const struct route_config *cfg)
{
	rt.cfg = *cfg;
	if (!rt.cfg.revalidate_ms)
		rt.cfg.revalidate_ms = 1000;
}

void route_set_change_hook(void (*fn)(const char *type))
{
	rt.hook = fn;
}

static void meta_edit_qhits(cJSON *meta, void *arg)
{
	meta_add_question_hits(meta, *(unsigned long *)arg);
}

void route_flush(void)
{
	struct pending {
		char *name;
		unsigned long hits;
		struct rtype *t;
	} *v = NULL;
	size_t n = 0;

	pthread_rwlock_rdlock(&rt.lock);
	for (size_t b = 0; b < rt.ntb; b++)
		for (struct rtype *t = rt.types[b]; t; t = t->next) {
			unsigned long h = atomic_exchange(&t->hits, 0);

			if (!h)
				continue;
			v = realloc(v, (n + 1) * sizeof(*v));
			if (!v || !(v[n].name = strdup(t->name)))
				abort();
			v[n].hits = h;
			v[n].t = t;
			n++;
		}
	pthread_rwlock_unlock(&rt.lock);
	for (size_t i = 0; i < n; i++) {
		if (store_readonly() || !store_type_exists(v[i].name) ||
		    meta_update(v[i].name, meta_edit_qhits, &v[i].hits) != 0)
			atomic_fetch_add(&v[i].t->hits, v[i].hits);
		free(v[i].name);
	}
	free(v);
}

void route_stats(struct buf *out)
{
	pthread_rwlock_rdlock(&rt.lock);
	buf_printf(out, "question_types %zu\n", rt.ntypes);
	buf_printf(out, "question_patterns %zu\n", rt.npatterns);
	pthread_rwlock_unlock(&rt.lock);
	buf_printf(out, "question_asks %lu\n", atomic_load(&rt.asks));
	buf_printf(out, "question_hits %lu\n", atomic_load(&rt.hits));
	buf_printf(out, "routing_misses %lu\n", atomic_load(&rt.misses));
	buf_printf(out, "routing_calls %lu\n", atomic_load(&rt.calls));
	buf_printf(out, "routing_admitted %lu\n", atomic_load(&rt.admitted));
	buf_printf(out, "routing_failed %lu\n", atomic_load(&rt.failed));
}

void route_shutdown(void)
{
	route_flush();
	pthread_rwlock_wrlock(&rt.lock);
	for (size_t b = 0; b < rt.ntb; b++) {
		struct rtype *t, *next;

		for (t = rt.types[b]; t; t = next) {
			next = t->next;
			free(t->owords);
			tdata_free(&t->d);
			free(t->name);
			free(t);
		}
	}
	free(rt.types);
	rt.types = NULL;
	rt.ntb = rt.ntypes = 0;
	for (size_t b = 0; b < rt.nwb; b++) {
		struct word *w, *next;

		for (w = rt.words[b]; w; w = next) {
			next = w->next;
			free(w->pr.v);
			free(w->er.v);
			free(w->tr.v);
			free(w->w);
			free(w);
		}
	}
	free(rt.words);
	rt.words = NULL;
	rt.nwb = rt.nwords = 0;
	pthread_rwlock_unlock(&rt.lock);
	pthread_mutex_lock(&rt.mu);
	for (size_t i = 0; i < rt.npending; i++)
		free(rt.pending[i]);
	free(rt.pending);
	rt.pending = NULL;
	rt.npending = 0;
	while (rt.fails) {
		struct fail *f = rt.fails;

		rt.fails = f->next;
		free(f->key);
		free(f);
	}
	pthread_mutex_unlock(&rt.mu);
}
