/* nearest: existing types a new procedure may call; see nearest.h. */
#include "nearest.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "clock.h"
#include "store.h"
#include "xalloc.h"

/*
 * The names of the store's types, from its last walk: a walk opens every
 * directory of procs/ (about 7 µs a type here), which made each synthesis cost
 * more the bigger the store (9 ms at 200 types, 23 ms at 2,000, most of it that
 * walk).  Types this daemon makes or changes are added as they come
 * (nearest_note); those others add to STORE directly (another daemon, rsync) are
 * seen at the next walk, at most NEAREST_FRESH_MS later.  A name whose type is
 * gone is dropped by the re-ranking (nearest_has_source) until then.
 */
#define NEAREST_FRESH_MS 1000

static struct {
	pthread_mutex_t lock; /* everything below; memory only, never held across I/O */
	char **names;
	size_t n, cap;
	bool walked;	    /* names is the result of a walk (plus notes since) */
	uint64_t walked_ns; /* when that walk began (monotonic) */
	unsigned walking;   /* walks under way: notes meanwhile also go to noted */
	char **noted;	    /* (a walk may have passed their directory already) */
	size_t nnoted, capnoted;
} nearest_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Whether @type is one of @names (a linear scan: a note per synthesis or edit). */
static bool nearest_names_has(char **names, size_t n, const char *type)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(names[i], type))
			return true;
	return false;
}

static void nearest_names_add(char ***names, size_t *n, size_t *cap, const char *type)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 256;
		*names = xreallocarray(*names, *cap, sizeof(**names));
	}
	(*names)[(*n)++] = xstrdup(type);
}

static void nearest_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

struct nearest_walk {
	char **names;
	size_t n, cap;
};

static int nearest_walk_one(const char *type, void *arg)
{
	struct nearest_walk *w = arg;

	if (w->n >= NEAREST_SCAN)
		return 1; /* stop the walk: bounded work */
	nearest_names_add(&w->names, &w->n, &w->cap, type);
	return 0;
}

/* Walk the store again when the names are older than NEAREST_FRESH_MS.  Called
 * without the lock; returns with it held. */
static void nearest_names_lock_fresh(void)
{
	struct nearest_walk w = {NULL, 0, 0};
	uint64_t now = clock_mono_ns();

	pthread_mutex_lock(&nearest_cache.lock);
	if (nearest_cache.walked && now - nearest_cache.walked_ns < NEAREST_FRESH_MS * 1000000ull)
		return;
	nearest_cache.walking++;
	pthread_mutex_unlock(&nearest_cache.lock);
	/* (two syntheses may walk at once: the later walk's names are kept) */
	store_foreach_type(nearest_walk_one, &w);
	pthread_mutex_lock(&nearest_cache.lock);
	for (size_t i = 0; i < nearest_cache.nnoted && w.n < NEAREST_SCAN; i++)
		if (!nearest_names_has(w.names, w.n, nearest_cache.noted[i]))
			nearest_names_add(&w.names, &w.n, &w.cap, nearest_cache.noted[i]);
	if (--nearest_cache.walking == 0) {
		nearest_names_free(nearest_cache.noted, nearest_cache.nnoted);
		nearest_cache.noted = NULL;
		nearest_cache.nnoted = nearest_cache.capnoted = 0;
	}
	nearest_names_free(nearest_cache.names, nearest_cache.n);
	nearest_cache.names = w.names;
	nearest_cache.n = w.n;
	nearest_cache.cap = w.cap;
	nearest_cache.walked = true;
	nearest_cache.walked_ns = now;
}

void nearest_note(const char *type)
{
	pthread_mutex_lock(&nearest_cache.lock);
	if (nearest_cache.walked && nearest_cache.n < NEAREST_SCAN &&
	    !nearest_names_has(nearest_cache.names, nearest_cache.n, type))
		nearest_names_add(&nearest_cache.names, &nearest_cache.n, &nearest_cache.cap, type);
	if (nearest_cache.walking &&
	    !nearest_names_has(nearest_cache.noted, nearest_cache.nnoted, type))
		nearest_names_add(&nearest_cache.noted, &nearest_cache.nnoted,
				  &nearest_cache.capnoted, type);
	pthread_mutex_unlock(&nearest_cache.lock);
}

void nearest_shutdown(void)
{
	pthread_mutex_lock(&nearest_cache.lock);
	nearest_names_free(nearest_cache.names, nearest_cache.n);
	nearest_names_free(nearest_cache.noted, nearest_cache.nnoted);
	nearest_cache.names = nearest_cache.noted = NULL;
	nearest_cache.n = nearest_cache.cap = nearest_cache.nnoted = nearest_cache.capnoted = 0;
	nearest_cache.walked = false;
	pthread_mutex_unlock(&nearest_cache.lock);
}

#define NEAREST_WORDS 64
#define NEAREST_WORD_LEN 24
#define NEAREST_SPEC_MAX 4096
#define NEAREST_EXAMPLE_MAX 512

/* A small set of lower-case words of 3+ letters or digits, minus filler. */
struct nearest_words {
	char w[NEAREST_WORDS][NEAREST_WORD_LEN];
	size_t n;
};

static bool nearest_filler(const char *w)
{
	static const char *const stop[] = {
	    "the",  "and",  "for",   "with",	 "from",   "that",   "this",  "are",  "its",
	    "not",  "any",  "one",   "two",	 "input",  "answer", "type",  "each", "into",
	    "when", "else", "other", "rejected", "reason", "which",  "than",  "but",  "all",
	    "per",  "line", "lines", "number",	 "string", "text",   "given", "has",  "was",
	};

	for (size_t i = 0; i < sizeof(stop) / sizeof(stop[0]); i++)
		if (!strcmp(w, stop[i]))
			return true;
	return false;
}

static bool nearest_has(const struct nearest_words *s, const char *w)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->w[i], w))
			return true;
	return false;
}

static void nearest_split(const char *text, size_t len, struct nearest_words *s)
{
	size_t i = 0;

	while (i < len && s->n < NEAREST_WORDS) {
		char w[NEAREST_WORD_LEN];
		size_t k = 0;

		while (i < len && !isalnum((unsigned char)text[i]))
			i++;
		while (i < len && isalnum((unsigned char)text[i])) {
			if (k < sizeof(w) - 1)
				w[k++] = (char)tolower((unsigned char)text[i]);
			i++;
		}
		w[k] = '\0';
		if (k >= 3 && !nearest_filler(w) && !nearest_has(s, w))
			strcpy(s->w[s->n++], w);
	}
}

/* How many words of @a are in @b. */
static unsigned nearest_overlap(const struct nearest_words *a, const struct nearest_words *b)
{
	unsigned n = 0;

	for (size_t i = 0; i < a->n; i++)
		n += nearest_has(b, a->w[i]);
	return n;
}

struct nearest_cand {
	char type[STORE_TYPE_MAX + 1];
	unsigned score;
	size_t spec; /* index into the specs read for the re-ranking */
};

struct nearest_scan {
	const char *self;
	struct nearest_words target;
	struct nearest_cand cand[NEAREST_CANDIDATES];
	size_t ncand;
};

static void nearest_visit(const char *type, struct nearest_scan *sc)
{
	struct nearest_words name = {.n = 0};
	size_t worst = 0;
	unsigned score;

	if (!strcmp(type, sc->self))
		return;
	nearest_split(type, strlen(type), &name);
	score = nearest_overlap(&name, &sc->target);
	if (!score)
		return;
	if (sc->ncand < NEAREST_CANDIDATES) {
		worst = sc->ncand++;
	} else {
		for (size_t i = 1; i < sc->ncand; i++)
			if (sc->cand[i].score < sc->cand[worst].score)
				worst = i;
		if (sc->cand[worst].score >= score)
			return;
	}
	strcpy(sc->cand[worst].type, type);
	sc->cand[worst].score = score;
}

static int nearest_cmp(const void *a, const void *b)
{
	const struct nearest_cand *x = a, *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return strcmp(x->type, y->type);
}

/* The first test case (by name) of @type whose input and answer are both small. */
static bool nearest_example(const char *type, struct llm_case *c)
{
	struct buf path = BUF_INIT;
	struct dirent **list = NULL;
	bool found = false;
	int fd, n;

	store_type_dir(type, &path);
	buf_adds(&path, "/tests");
	/* Beneath STORE: a tests/ or type directory planted as a symlink is refused. */
	fd = store_open_beneath(path.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	buf_free(&path);
	if (fd < 0)
		return false;
	n = scandirat(fd, ".", &list, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		const char *name = list[i]->d_name;
		size_t len = strlen(name);

		if (!found && len > 3 && name[0] != '.' && !strcmp(name + len - 3, ".in")) {
			struct buf out = BUF_INIT;

			buf_printf(&out, "%.*s.out", (int)(len - 3), name);
			c->in.len = c->out.len = 0;
			if (file_read_all(fd, name, NEAREST_EXAMPLE_MAX, &c->in) == 0 &&
			    file_read_all(fd, out.data, NEAREST_EXAMPLE_MAX, &c->out) == 0) {
				c->name = strndup(name, len - 3);
				found = c->name != NULL;
			}
			buf_free(&out);
			if (!found) {
				buf_free(&c->in);
				buf_free(&c->out);
			}
		}
		free(list[i]);
	}
	free(list);
	close(fd);
	return found;
}

static bool nearest_has_source(const char *type)
{
	struct buf path = BUF_INIT;
	struct stat st;
	bool yes;

	store_type_dir(type, &path);
	buf_adds(&path, "/source.c");
	yes = store_lstat(path.data, &st) == 0 && S_ISREG(st.st_mode);
	buf_free(&path);
	return yes;
}

size_t nearest_types(const char *type, const char *spec, size_t max, struct llm_callable **out)
{
	struct nearest_scan *sc = calloc(1, sizeof(*sc));
	struct llm_callable *res = NULL;
	struct buf specs[NEAREST_CANDIDATES];
	size_t n = 0;

	*out = NULL;
	if (!sc)
		return 0;
	if (max > NEAREST_MAX)
		max = NEAREST_MAX;
	sc->self = type;
	nearest_split(type, strlen(type), &sc->target);
	if (spec)
		nearest_split(spec, strlen(spec), &sc->target);
	nearest_names_lock_fresh();
	for (size_t i = 0; i < nearest_cache.n; i++)
		nearest_visit(nearest_cache.names[i], sc);
	pthread_mutex_unlock(&nearest_cache.lock);

	/* Re-rank the candidates: a shared name word counts double, a shared spec
	 * word once. */
	for (size_t i = 0; i < sc->ncand; i++) {
		struct nearest_words words = {.n = 0};

		specs[i] = (struct buf)BUF_INIT;
		if (!nearest_has_source(sc->cand[i].type)) {
			sc->cand[i].score = 0;
			continue;
		}
		store_read(sc->cand[i].type, "spec", NEAREST_SPEC_MAX, &specs[i]);
		nearest_split(buf_str(&specs[i]), specs[i].len, &words);
		sc->cand[i].score = 2 * sc->cand[i].score + nearest_overlap(&words, &sc->target);
	}
	for (size_t i = 0; i < sc->ncand; i++)
		sc->cand[i].spec = i;
	qsort(sc->cand, sc->ncand, sizeof(sc->cand[0]), nearest_cmp);
	res = calloc(max ? max : 1, sizeof(*res));
	for (size_t i = 0; res && i < sc->ncand && n < max; i++) {
		size_t k = sc->cand[i].spec;
		struct llm_callable *c = &res[n];

		if (sc->cand[i].score == 0)
			break;
		c->type = strdup(sc->cand[i].type);
		c->spec = specs[k].len ? strdup(buf_str(&specs[k])) : NULL;
		if (!c->type)
			break;
		c->example = (struct llm_case){0};
		c->has_example = nearest_example(c->type, &c->example);
		n++;
	}
	for (size_t i = 0; i < sc->ncand; i++)
		buf_free(&specs[i]);
	free(sc);
	*out = res;
	return n;
}

void nearest_free(struct llm_callable *c, size_t n)
{
	for (size_t i = 0; c && i < n; i++) {
		free(c[i].type);
		free(c[i].spec);
		free(c[i].example.name);
		buf_free(&c[i].example.in);
		buf_free(&c[i].example.out);
	}
	free(c);
}
