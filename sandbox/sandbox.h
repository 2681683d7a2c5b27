/*
 * sandbox: compiling and running untrusted procedure source, daemon side.
 *
 * Every compile and every run happens in a worker process started from the
 * seglam-worker helper binary (sandbox/worker/), never in the daemon.  This module
 * owns the pool of live workers (each holds compiled procedures of one owner,
 * keyed by the XXH3 of their source), the pipe protocol to them, time limits,
 * answer caps and killing/reaping.  Every byte read from a worker is treated as
 * hostile.  @owner, in the functions below, is the uid the procedure's source
 * belongs to: procedures of different owners never share a worker process.
 *
 * Thread safety: all functions may be called from any thread concurrently.
 */
#ifndef SEGLAM_SANDBOX_H
#define SEGLAM_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

/* The defaults (a field left 0 takes its default): here only.  Plain numbers, so
 * that fs/main.c's usage() can print them. */
#define SANDBOX_DEFAULT_TIMEOUT_MS 2000
#define SANDBOX_DEFAULT_MAX_ANSWER 1048576
#define SANDBOX_DEFAULT_MEM_MB 256
#define SANDBOX_DEFAULT_WORKERS 64
#define SANDBOX_DEFAULT_WORKER_TYPES 256
#define SANDBOX_MAX_WORKER_TYPES 1024 /* FRAME_SLOTS_MAX */

struct sandbox_config {
	const char *worker_path; /* the seglam-worker binary */
	const char *include_dir; /* headers a procedure may include (include/ of the tree) */
	unsigned timeout_ms;	 /* per compile and per run */
	size_t max_answer;	 /* answer size cap in bytes */
	size_t mem_limit;	 /* worker address-space limit in bytes */
	unsigned max_workers;	 /* live workers kept in the pool (LRU) */
	unsigned worker_types;	 /* compiled types one worker holds (LRU) */
	/* Memory the pool's workers may hold together, in bytes (0: no budget): the
	 * memory only each worker holds (its private pages, what its exit frees),
	 * measured once it has compiled; least recently used idle workers are
	 * evicted past it. */
	size_t mem_budget;
	/* Compile even where Landlock is missing (-o allow_no_landlock): tcc then
	 * can read any file user nobody can, guarded only by the precheck. */
	bool allow_no_landlock;
	/* Run every input in the worker process itself (-o worker_reuse) instead of
	 * a fresh child per input: no fork per run, but a procedure may then keep
	 * state from one input (one reader) to the next.  See SECURITY.md. */
	bool worker_reuse;
	/* RLIMIT_CPU, in seconds, of each process that runs tcc or procedure code:
	 * a backstop under the daemon's own time limit, never before it (0: the
	 * default, frame.h FRAME_CPU_BACKSTOP_S or 2 x timeout + 10 s if more).  A batch's
	 * child and a -o worker_reuse worker serve many inputs: each stops at a
	 * quarter of it (frame.h frame_cpu_share_ms), so no honest input meets it.
	 * A value set here is taken as it is (tests: a backstop of seconds). */
	unsigned cpu_backstop_s;
};

int sandbox_init(const struct sandbox_config *cfg);
void sandbox_shutdown(void);

/*
 * Compile @source (which need not be NUL-terminated) in a worker, keeping the
 * worker in the pool for later runs of the same source.
 * Returns 0, or -EIO with a one-line-per-error compiler message in @err
 * (for example "line 3: 'x' undeclared").
 */
int sandbox_compile(uid_t owner, const char *source, size_t srclen, struct buf *err);

/*
 * Run the procedure @source on @in.  Reuses a pooled worker for this source or
 * loads it into one, with @in when it is at most 64 KiB: the process that
 * compiles it answers @in (not under -o worker_reuse).
 * Returns 0 with the answer in @out; -EINVAL when the procedure rejected the input
 * (its reason in @out); -ENOEXEC with a reason in @err when it does not compile;
 * -EIO with a reason in @err when it crashed (signal named), timed out, exceeded
 * the answer cap or misbehaved.
 */
int sandbox_run(uid_t owner, const char *source, size_t srclen, const char *in, size_t inlen,
		struct buf *out, struct buf *err);

/* Record kinds of sandbox_run_batch (and of MOUNT/map/TYPE, which passes them on). */
enum { SANDBOX_ANSWER = 0, SANDBOX_REJECTED = 1, SANDBOX_FAILED = 2 };

/*
 * Run the procedure @source on @count inputs at once (seglam map).  @frames holds
 * them as [u32 len][len bytes], host byte order, @bytes in all (at most 4 MiB and
 * 65536 inputs).  Appends one record per input to @out, in order:
 * [u32 kind][u32 len][len bytes], little-endian, kind SANDBOX_ANSWER (the answer),
 * SANDBOX_REJECTED (the procedure's reason) or SANDBOX_FAILED (why: crashed, timed
 * out, answer too large).  The time limit applies to each input; an input that
 * kills its worker fails alone and the next inputs go to a fresh worker.
 * Answers beyond about 1 MiB are not made: *@ran says how many inputs (a prefix,
 * at least one) have their record; the caller sends the rest again.
 * Returns 0; -ENOEXEC with @err (and nothing appended) when the procedure does
 * not compile; or -EIO with @err when it cannot run at all (no worker).
 */
int sandbox_run_batch(uid_t owner, const char *source, size_t srclen, const char *frames,
		      size_t bytes, size_t count, struct buf *out, size_t *ran, struct buf *err);

/* Drop this source from the pool's workers (it was replaced or evicted). */
void sandbox_forget(uid_t owner, const char *source, size_t srclen);

/*
 * Composition.  A procedure's seglam_call() reaches the daemon as a call frame
 * during a run; the exchange loop hands it to @fn (set once at start by the
 * cache layer), on the thread running the caller, and sends the answer back.
 * @fn returns 0 with the callee's answer in @out, or -errno (the procedure sees
 * NULL) with a reason in @why.  Without a handler every call fails.
 *
 * While a caller waits, its worker is "parked": it does not count against
 * max_workers (nor against the per-source limit), so the callee can always get a
 * worker and a chain never deadlocks at the cap.  Parked workers use no CPU; the
 * pool exceeds the cap by at most the parked ones, at most 8 per chain (the depth
 * limit), and goes back under the cap as chains finish.
 *
 * The time limit of a top-level run covers the whole chain: a run started while
 * another run of this thread waits on a call has only the time left.
 */
typedef int (*sandbox_call_fn)(const char *type, const char *in, size_t len, struct buf *out,
			       struct buf *why);
void sandbox_set_call_handler(sandbox_call_fn fn);

/*
 * Step out of the current chain's time limit (for work that is not running the
 * chain's procedures: admitting a callee, asking the LLM for it): runs started
 * until sandbox_chain_resume() get their own limit, and the time spent is not
 * counted against the chain.  @saved is opaque state for resume.
 */
struct sandbox_chain_saved {
	int64_t deadline, since;
	int active;
};
void sandbox_chain_suspend(struct sandbox_chain_saved *saved);
void sandbox_chain_resume(const struct sandbox_chain_saved *saved);

struct sandbox_stats {
	uint64_t spawns, runs, compiles, compile_failures, crashes, timeouts, live_workers;
	uint64_t calls, parked_max; /* call frames served; most workers parked at once */
	uint64_t run_ns;	    /* time in run exchanges: request written to answer read */
	/* The long tail (issue 16).  spawns = forks + workers spawned one by one
	 * (posix_spawn: -o worker_reuse, or no mother). */
	uint64_t forks;		/* workers forked by the mother */
	uint64_t mother_spawns; /* mothers started (1, unless one died) */
	uint64_t evictions;	/* idle workers killed to stay under max_workers */
	/* Of the times a worker was wanted (a compile, a run, a batch): an
	 * admission's compile and the run after it are one miss and one hit. */
	uint64_t pool_hits;	 /* a compiled worker of the source was idle */
	uint64_t pool_misses;	 /* none was: a load (a compile, in a new worker or not) */
	uint64_t mem_live;	 /* private bytes of the live workers (with a mem_budget) */
	uint64_t types_cached;	 /* compiled types the live workers hold */
	uint64_t type_evictions; /* compiled types dropped for another one */
};
void sandbox_get_stats(struct sandbox_stats *st);

/* The counters above that proc_stats() does not print, as "name value" lines
 * (worker pool hit ratio, forks, evictions, mother). */
void sandbox_stats_print(struct buf *out);

#endif
