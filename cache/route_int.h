/*
 * route_int: what the files of the routing module share, and nothing else sees.
 *
 *	route.c		the public API of route.h: answering q/, finding a winner,
 *			freshness of the winner, stats, hit counters, shutdown
 *	route_index.c	the index by literal words: the types and words tables,
 *			filing a type's patterns and examples, matching a question
 *	route_store.c	reading patterns/ and questions/ of a type, the walk of the
 *			store, STORE/routes notes between daemons sharing a store
 *	route_admit.c	the admission checks of patterns, and admitting a routing
 *			reply (writing its patterns, questions, new type)
 *	route_llm.c	a miss: the nearest types, the routing request and its
 *			reply, single flight, remembered failures
 *
 * Prefix route_.  Knows nothing about FUSE.
 */
#ifndef SEGLAM_ROUTE_INT_H
#define SEGLAM_ROUTE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "buf.h"
#include "clock.h"
#include "hmap.h"
#include "pattern.h"
#include "route.h"
#include "store.h"

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

/* What a file looked like (lstat): a changed signature means read it again. */
struct sig {
	uint64_t ino;
	int64_t mtime_ns, size;
	bool exists;
};

/* An example question (questions/NAME.q) and the input it maps to (NAME.in). */
struct rex {
	char *name;
	char *q; /* normalized */
	size_t qlen;
	char *in;
	size_t inlen;
};

/* A type's patterns and examples as read from the store. */
struct tdata {
	struct pat *pats;
	size_t npats;
	struct rex *ex;
	size_t nex;
	struct sig ps, qs;
	char *reason; /* why the patterns are not used, or NULL */
	char *spec;   /* the start of the spec, for nearness; dropped once filed */
};

/* A type in the index.  Never freed while the daemon runs (a hit reads checked_ns and
 * hits after the lock is dropped); all but the atomics under rt.lock. */
struct rtype {
	char *name;
	struct tdata d;
	bool ok;	      /* patterns admitted and filed */
	struct word **owords; /* the words it is filed under in tr (words are never freed) */
	size_t nowords;
	atomic_llong checked_ns;
	atomic_ulong hits;
	double score; /* nearness to one question, valid when epoch == rt.epoch */
	unsigned long epoch;
};

struct ref {
	struct rtype *t;
	uint32_t i;
};

struct vec {
	struct ref *v;
	size_t n, cap;
};

/* A lowercased word and what is filed under it.  Never freed while the daemon runs. */
struct word {
	char *w;
	uint32_t df;   /* patterns holding this whole word */
	struct vec pr; /* patterns filed under it */
	struct vec er; /* examples holding it */
	struct vec tr; /* types mentioning it */
};

/* A routing in progress: concurrent misses of one question wait for it. */
struct flight {
	char *key;
	bool done;
	int ret;
	unsigned refs;
	LIST_ENTRY(flight) link;
};

/* A question whose routing failed, not routed again until @until. */
struct fail {
	char *key;
	int64_t until;
	TAILQ_ENTRY(fail) link; /* newest first */
};

/* The best pattern for a question. */
struct found {
	struct rtype *t;
	int lits;
	bool tie;
	struct buf input;
};

/* A type whose patterns were refused, logged once the index is unlocked. */
struct refusal {
	char *name, *reason;
};

/* Words for nearness: letters and digits only, lowercased, 2 characters or more. */
struct wordset {
	char **w;
	size_t n, cap;
};

/* A routing reply, parsed. */
struct rreply {
	char name[STORE_TYPE_MAX + 1];
	bool none;
	struct buf reason;
	struct buf patterns; /* the block's lines, as they will be appended */
	struct tdata add;    /* its patterns and questions, parsed */
};

struct route_state {
	struct route_config cfg; /* set by route_init, before any question */

	/*
	 * @lock (rwlock) protects the index: @types, @words, @epoch, @npatterns, and in
	 * each rtype and word everything but the atomics.  Readers of q/ take it
	 * shared; nearest() takes it exclusive (scores live in the types).  Never held
	 * across store I/O or the LLM: files are read (route_tdata_load) before and
	 * logged after.
	 */
	pthread_rwlock_t lock;
	struct hmap types; /* struct rtype by name */
	struct hmap words; /* struct word by lowercased word */
	unsigned long epoch;
	size_t npatterns;

	/*
	 * @admit: one routing admission at a time (patterns files are appended, a new
	 * type's candidate is checked): held across store I/O and the sandbox, but
	 * taken only by a question that missed and got a routing reply, never by a
	 * hit, a read of ask/ or the index's readers.
	 */
	pthread_mutex_t admit;

	/*
	 * @mu protects what follows up to @hook (short sections; walks and scans run
	 * with walked == 1 or a signature taken, unlocked).  @cond (with @mu): the walk
	 * is done, or a flight landed.
	 */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int walked; /* 0 not yet, 1 walking, 2 done */
	struct sig notes;
	int64_t notes_checked;
	int64_t notes_since; /* CLOCK_REALTIME of the last scan of the notes */
	char **pending;	     /* types touched during the walk, to look at after it */
	size_t npending;
	LIST_HEAD(, flight) flights;
	TAILQ_HEAD(route_fails, fail) fails; /* newest first, at most ROUTE_FAILS_MAX */
	size_t nfails;

	void (*hook)(const char *type); /* set before the mount serves requests */
	atomic_ulong asks, hits, misses, calls, failed, admitted;
};

extern struct route_state rt;

static inline int64_t route_now_ns(void)
{
	return (int64_t)clock_mono_ns();
}

static inline int64_t route_real_ns(void)
{
	return (int64_t)clock_real_ns();
}

/* route_index.c: the tables and the index (rt.lock held as each says). */
bool route_type_eq(const void *item, const void *key);
bool route_word_eq(const void *item, const void *key);
struct word *route_word_find(const char *w);
struct rtype *route_type_find(const char *name);
struct rtype *route_type_get(const char *name); /* write lock */
char *route_lowered(const char *s, size_t len);
void route_wordset_add_text(struct wordset *ws, const char *s, size_t len);
void route_wordset_unique(struct wordset *ws);
int route_best_of(const struct pat *pats, size_t n, const char *q, size_t qlen, struct buf *input);
char *route_choose_key(const struct pat *p);
void route_unfile_patterns(struct rtype *t);
bool route_file_type(struct rtype *t, struct tdata *d, bool cross, struct buf *why);
void route_find_locked(const char *nq, size_t nqlen, const struct rtype *exclude, struct found *f);
size_t route_refuse_winners(struct rtype *t, struct refusal **out);

/* route_store.c: reading the store (no lock held) and keeping the index fresh. */
void route_tdata_load(const char *name, struct tdata *d);
void route_tdata_parse(struct tdata *d, const char *text, size_t len);
void route_tdata_free(struct tdata *d);
void route_reload(const char *name, bool note);
void route_reload_if_changed(const char *name, bool note);
void route_ready(void);

/* route_admit.c: admission checks (lock as each says) and a reply's admission. */
int route_admit_self(const struct tdata *d, struct buf *why);
int route_admit_cross(const struct rtype *self, const char *selfname, const struct pat *pats,
		      size_t n, struct buf *why);
int route_admit_reply(const char *nq, size_t nqlen, const char *text, size_t len, struct rreply *r,
		      struct buf *why);

/* route_llm.c: a miss routed by the LLM. */
int route_miss(const char *nq, size_t nqlen);

#endif
