/*
 * proc: the lifecycle of procedures, and the one entry point for answers.
 *
 * A type is missing (no source.c), ready (its source compiled and passed every
 * case in tests/), or failing (with a reason).  proc keeps one in-memory record
 * per type that has been asked, revalidates it against the store at most every
 * revalidate_ms (or at once after an edit through this mount), admits new
 * sources by compiling and testing them in the sandbox, keeps old sources in
 * history/, and asks the synthesizer (LLM) on a miss or a failing procedure.
 *
 * Knows nothing about FUSE: it reports changes through a hook the mount sets.
 */
#ifndef SEGLAM_PROC_H
#define SEGLAM_PROC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "answer.h"
#include "buf.h"
#include "llm.h"

/* The outcome of compiling a source and running it on a type's cases. */
enum proc_verdict {
	VERDICT_OK,
	VERDICT_COMPILE, /* it does not compile */
	VERDICT_TEST,	 /* a case failed: a wrong answer, a rejection or a failed run */
};

struct store_later;

/* What the synthesizer gets: everything the prompt is made of. */
struct proc_material {
	const char *type;
	const char *spec;	      /* NULL when the type has no spec */
	const struct llm_case *cases; /* the cases of tests/ */
	size_t ncases;
	uint64_t tests_id;	 /* proc_tests_id() taken before the cases were read */
	const char *prev_source; /* a failing source to repair, or NULL */
	const char *failure;	 /* why it fails, or NULL */
	/* A reply already in hand (a routing reply for a new type, cache/route.c): its
	 * code is the first round, validated as any synthesis; NULL for an LLM call. */
	const char *first_reply;
	size_t first_reply_len;
	/* Where the records of the LLM exchanges (last-prompt.txt and the like) go, to
	 * be written once the readers have their answer; NULL: written at once. */
	struct store_later *later;
};

/*
 * A synthesizer writes an admitted source.c (and meta.json) into the store and
 * returns 0, or returns -errno with a reason in @err.  It is called with no lock
 * held, at most once at a time per type.
 */
typedef int (*proc_synth_fn)(const struct proc_material *m, struct buf *err);

/* The defaults (a field left 0 takes its default): here only. */
#define PROC_DEFAULT_REVALIDATE_MS 1000
#define PROC_DEFAULT_MEMO_MB 64
#define PROC_DEFAULT_FAIL_TTL_MS 30000
#define PROC_DEFAULT_HISTORY 20
#define PROC_DEFAULT_TESTS_MAX_MB 16

struct proc_config {
	unsigned revalidate_ms;
	size_t memo_bytes;
	unsigned fail_ttl_ms; /* how long a failed synthesis is remembered */
	unsigned history_max; /* sources kept in history/ */
	size_t tests_max;     /* bytes of test cases read from one tests/ */
	proc_synth_fn synth;  /* NULL: no LLM, a miss is ENOENT */
};

/*
 * The identity of TYPE's tests/ as meta.json records it with an admission (names,
 * sizes and mtimes of its files; 0 without tests/): an admission on record for the
 * same source and the same tests is not made again (cache/admit.c).
 */
uint64_t proc_tests_id(const char *type);

/* Fill the fields of @cfg left 0 with their defaults (proc_init does it too). */
void proc_config_defaults(struct proc_config *cfg);
int proc_init(const struct proc_config *cfg);
void proc_shutdown(void);

/* Called (from any thread, no lock held) when a type's answers may have changed. */
void proc_set_change_hook(void (*fn)(const char *type));

/*
 * The answer of @type for @in.  Returns 0 with *@ans set (whose rc is 0 for an
 * answer or -EINVAL for a rejection with the reason as data); or -ENOENT (no such
 * type and no LLM), -EIO (see procs/TYPE/log for why), or -EINTR (see
 * proc_set_interrupt).  Counted once in stats and meta.json.
 */
int proc_ask(const char *type, const char *in, size_t len, struct answer **ans);
/* proc_ask, with the reason of a failure (-ENOENT, -EIO) appended to @why. */
int proc_ask_why(const char *type, const char *in, size_t len, struct answer **ans,
		 struct buf *why);
/* The same answer, for a look ahead (LOOKUP, stat): only a failure is counted. */
int proc_peek(const char *type, const char *in, size_t len, struct answer **ans);

/*
 * While @flag is set for the calling thread, a proc_ask waiting for a synthesis
 * returns -EINTR soon after *@flag becomes true (the request was interrupted);
 * the synthesis goes on for the next reader.  NULL: wait uninterruptibly.
 */
void proc_set_interrupt(const atomic_bool *flag);

/*
 * Run @type on @count inputs at once, for MOUNT/map/TYPE (seglam map): @frames,
 * @bytes and the records appended to @out are as for sandbox_run_batch().  The
 * source is found, revalidated and synthesized on a miss as for proc_ask; the
 * answers are counted but not memoized.  *@ran: how many inputs got a record (a
 * prefix).  Returns 0, or -ENOENT / -EIO with the reason in @err (nothing appended).
 */
int proc_map(const char *type, const char *frames, size_t bytes, size_t count, struct buf *out,
	     size_t *ran, struct buf *err);

/* Whether ask/TYPE exists: the store has it, or an LLM can make it. */
bool proc_type_visible(const char *type);

/* A file under procs/TYPE/ changed through this mount: revalidate on the next ask. */
void proc_touched(const char *type);

/*
 * Wait until the records of @type's last synthesis (last-prompt.txt and the like,
 * written just after its readers were answered) are in the store: the mount calls
 * this before it looks at procs/TYPE, so that what it shows is never older than
 * the answer its reader got.  Returns at once when no synthesis is writing any.
 */
void proc_records_wait(const char *type);
bool proc_records_pending(void);

/*
 * Compile @src and run it on @cases, in the sandbox.  Returns 0, or -EIO with the
 * compiler's message or the first failing case in @why.
 */
int proc_check_source(const char *src, size_t len, const struct llm_case *cases, size_t n,
		      struct buf *why);

/*
 * Read the test cases of a tests/ directory (takes @dirfd): pairs NAME.in +
 * NAME.out, editor litter ignored, sorted by name, at most 1000 of 1 MiB each.
 */
int proc_read_cases(int dirfd, struct llm_case **cases, size_t *n);

/*
 * The inputs of the readers waiting on the type's synthesis now (the one that
 * caused the miss first), as cases with empty answers; free with llm_cases_free().
 */
int proc_waiting_inputs(const char *type, struct llm_case **cases, size_t *n);

/* Write out counters (hits, misses) held in memory. */
void proc_flush(void);

/* Append `name value` lines for the stats file. */
void proc_stats(struct buf *out);

struct proc_totals {
	unsigned long asks, answers, rejects, errors;
};
/* Counters since mount. */
void proc_totals(struct proc_totals *t);
/* Append `hot.TYPE N` lines: the @max most asked types since mount, most first. */
void proc_hot(struct buf *out, size_t max);

#endif
