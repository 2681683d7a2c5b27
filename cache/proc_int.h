/*
 * proc_int: what the files of the proc module share, and nothing else includes.
 *
 * proc (proc.h) is one module in several files, all with the prefix proc_:
 *   proc.c        the registry of records and the state machine (missing, ready,
 *                 failing; revalidation applied under the record's lock)
 *   proc_ask.c    the answer path: proc_ask, proc_peek, proc_map (batch), the
 *                 per-input log
 *   proc_synth.c  the hand-off to the synthesizer on a miss or a failing source
 *   admit.c       admission (compile + cases -> enum proc_verdict), the store side
 *                 of a revalidation, admissions on record, history/
 *   cases.c       the reader of a type's tests/ (a person's cases over llm- ones)
 *   calls.c       composition: the calls/callers graph, transitive invalidation,
 *                 the seglam_call handler
 *   proc_stats.c  counters: the stats file, hot types, meta.json hit counts
 *
 * Locks (each field says which one protects it):
 *   p->lock             one record's state (struct proc)
 *   procs.lock          the record index and list (struct procs)
 *   procs.graph_lock    the calls/callers edges of every record (struct procs)
 *   synth_jobs_lock     the count of running syntheses (proc_synth.c)
 * A thread holds one at a time, except synth_jobs_lock, taken under p->lock.  None
 * is held across store I/O, a compilation, a test run or the LLM (docs/locking.md):
 * slow per-type work serializes on flags under p->lock instead.
 */
#ifndef SEGLAM_PROC_INT_H
#define SEGLAM_PROC_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "hmap.h"
#include "llm.h"
#include "proc.h"

/* Composition: calls nest at most this deep (docs/DESIGN.md); graph walks visit at most
 * PROC_GRAPH_MAX types (what a hit pays is bounded whatever the graph). */
#define PROC_CALL_DEPTH 8
#define PROC_GRAPH_MAX 64
/* Distinct callees written to meta.json per caller source, and LLM syntheses that
 * the calls of one read may start: a procedure calling many names in a loop must
 * not turn into unbounded meta.json writes or LLM requests. */
#define PROC_CALLS_MAX 64
#define PROC_CALL_SYNTH_MAX 2
/* Inputs of readers waiting on one synthesis shown to the LLM (examples of the form). */
#define PROC_WAIT_INPUTS 8
#define PROC_WAIT_INPUT_MAX 1024 /* bytes */

/* One source text, shared by readers running it while a newer one is admitted. */
struct pversion {
	atomic_uint refs;
	uint64_t hash;
	int64_t mtime_ns;
	uid_t owner; /* of source.c: whose code it is (never shares a worker with others') */
	size_t len;
	bool calls; /* the source mentions seglam_call (composition) */
	char src[];
};

enum proc_state { PROC_MISSING, PROC_READY, PROC_FAILING };

/*
 * One record per type asked.  Locking: @lock is held only for short critical
 * sections, never across store I/O, a compilation, a test run or the LLM, since
 * the stats file, the mount's change hook and this type's other readers take it.
 * The slow work of a type serializes on the type alone, through flags under
 * @lock with @cond: reval_busy (a revalidation or first sweep runs, lock
 * dropped) and synth_busy (a synthesis runs).  Readers of the type wait on @cond;
 * readers of other types and global structures never wait on them.
 */
struct proc {
	char *type;		/* immutable */
	SLIST_ENTRY(proc) next; /* under procs.lock (records are never freed before shutdown) */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* signalled when reval_busy or synth_busy clears */
	/* Under @lock. */
	uint64_t checked_ns;
	bool stale;
	bool loaded; /* revalidated at least once */
	/*
	 * A revalidation runs with @lock dropped: only its thread writes the fields
	 * from src_seen to admitted_key (and loaded), under @lock, when it ends.
	 */
	bool reval_busy;
	/* What the store looked like at the last revalidation (under @lock). */
	bool src_seen;
	struct stat src_st;
	uint64_t tests_id;
	struct pversion *cur;
	enum proc_state state;
	struct buf reason;
	uint64_t admitted_key; /* (source, tests) pair last admitted or refused */
	/* A first run found that a source admitted on record does not compile here:
	 * this type's admissions compile first from now on (proc_ask.c). */
	bool compile_first;
	/* Synthesis (under @lock): single flight, and a remembered failure. */
	bool synth_busy;
	/* The records of its LLM exchanges are still being written, after its readers
	 * were answered (proc_synth.c); the mount waits for them (proc_records_wait). */
	bool records_pending;
	uint64_t synth_key; /* admitted_key of the source a synthesis ran for */
	uint64_t synth_fail_until;
	struct buf synth_reason;
	struct buf waiting[PROC_WAIT_INPUTS]; /* inputs asked while synthesizing */
	unsigned nwaiting;
	/* Counters not yet written to meta.json (atomics, no lock). */
	atomic_ulong hits, misses;
	atomic_ulong asked; /* asks since mount: the hot types of stats */
	/* Log rate limiting of per-input failures (under @lock). */
	time_t log_second;
	unsigned log_count;
	/*
	 * Composition (under procs.graph_lock): the types this one was seen calling
	 * with source calls_version, and the types seen calling it.  dep_gen counts
	 * changes of callees; it is part of the memo version of this type's answers,
	 * so a callee's change retires them.  Records are never freed before
	 * shutdown, so the pointers stay valid.
	 */
	struct proc **calls, **callers;
	size_t ncalls, ncallers;
	uint64_t calls_version;
	atomic_ulong dep_gen;
	atomic_bool has_calls;
};

/* One procedure running on this thread: a chain of calls is a stack of these. */
struct proc_frame {
	struct proc *p;
	uint64_t version; /* of the source running; 0 for a synthesis candidate */
};

/* The calls running on this thread (proc.c; read by the answer, call and synthesis
 * paths): proc_stack[0..proc_depth) is the chain, the caller below its callee. */
extern _Thread_local struct proc_frame proc_stack[PROC_CALL_DEPTH + 4];
extern _Thread_local unsigned proc_depth;
extern _Thread_local unsigned proc_chain_synths; /* syntheses started by this read's calls */
extern _Thread_local bool proc_synth_refused;	 /* the last call's callee hit that bound */

SLIST_HEAD(proc_list, proc);

/* The module's global state (proc.c). */
struct procs {
	struct proc_config cfg; /* set by proc_init, then read only */
	/* Protects index, all and the records' next; never held across store I/O (the
	 * first-touch sweep runs after it is dropped, proc_find). */
	pthread_mutex_t lock;
	struct hmap index;		       /* type name -> record: lookups */
	struct proc_list all;		       /* every record, newest first: walks (proc_each) */
	void (*change_hook)(const char *type); /* set once at start */
	/* Protects the calls/callers/ncalls/ncallers/calls_version of every record;
	 * memory only, taken with no other lock held. */
	pthread_mutex_t graph_lock;
	/* Counters: atomics, no lock. */
	atomic_ulong calls, call_failures;
	atomic_ulong asks, answers, rejects, errors, not_found, syntheses, synth_failures,
	    admissions, admission_failures, admissions_on_record;
	atomic_uint records_pending; /* records with records_pending set: 0 is the fast path */
};
extern struct procs procs;

static inline void pversion_put(struct pversion *v)
{
	if (v && atomic_fetch_sub(&v->refs, 1) == 1)
		free(v);
}

static inline struct pversion *pversion_get(struct pversion *v)
{
	atomic_fetch_add(&v->refs, 1);
	return v;
}

/* Untrusted bytes quoted for a one-line log message, at most 200 of them. */
#define quote(b, s, len) buf_addquoted((b), (s), (len), 200)

/* Callees a caller's meta.json stopped listing: their `callers` files need a look. */
struct proc_dropped {
	char *names[PROC_GRAPH_MAX];
	size_t n;
};

/*
 * What a revalidation found, worked out with the record's lock dropped and
 * applied to the record under it (proc_revalidate).
 */
struct reval {
	bool src_seen;
	struct stat src_st;
	struct pversion *cur; /* a reference */
	enum proc_state state;
	uint64_t admitted_key, tests_id;
	bool reason_set; /* reason replaces the record's */
	struct buf reason;
	bool changed;
	/* An admission on record may leave the compile to the first run (admit.c):
	 * false once a compile failed there (proc_ask.c). */
	bool defer_compile;
};

/* proc.c: the registry and the state machine. */
struct proc *proc_find(const char *type, bool create);
/* Call @fn on every record (unlocked walk: records are never freed before shutdown). */
void proc_each(void (*fn)(struct proc *p, void *arg), void *arg);
bool proc_push(struct proc *p, uint64_t version);
void proc_pop(bool pushed);
void proc_changed(struct proc *p);
void proc_revalidate(struct proc *p);
int proc_current(struct proc *p, const char *in, size_t len, struct pversion **out,
		 struct buf *why);

/* proc_ask.c */
void proc_log_input(struct proc *p, const char *what, const char *in, size_t len,
		    const char *reason);

/* proc_synth.c */
int proc_synthesize(struct proc *p, const char *in, size_t len, struct buf *why);
void proc_synth_drain(void);

/* admit.c */
void proc_revalidate_store(struct proc *p, struct reval *r);

/* cases.c (and proc_tests_id, in proc.h) */
int proc_foreach_case(int fd, size_t max, int (*fn)(struct llm_case *c, void *arg), void *arg,
		      bool *cut, struct buf *toobig);
size_t proc_tests_max(void);
int proc_tests_open(const char *type);
void proc_tests_cut(const char *type, size_t n);
int proc_load_cases(const char *type, struct llm_case **out, size_t *nout);

/* calls.c */
void proc_changed_callers(struct proc *p);
void proc_refresh_callees(struct proc *p);
int proc_call(const char *type, const char *in, size_t len, struct buf *out, struct buf *why);
void proc_dropped_collect(const cJSON *calls, const char *const *keep, size_t nkeep,
			  struct proc_dropped *d);
void proc_dropped_apply(struct proc_dropped *d);

#endif
