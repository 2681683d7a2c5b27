/*
 * sandbox_int: what the daemon side's own files share, and nothing else uses.
 *
 *	sandbox.c	init, shutdown, compile, stats: the public entry points that are
 *			not a run (sandbox.h)
 *	pool.c		the pool of live workers: checkout/checkin, the per-source and
 *			max_workers limits, LRU eviction, killing and reaping, forget
 *	spawn.c		starting a worker: posix_spawn of seglam-worker, the mother
 *			(forks on request over SCM_RIGHTS), the first exchange (compile)
 *	exchange.c	one request and its reply (sandbox_exchange), the seglam_call
 *			relay, how a worker ended, sandbox_run and the chain's deadline
 *	batch.c		sandbox_run_batch (seglam map): batch request, record parsing,
 *			answer by answer after a failure
 *
 * Every byte read from a worker is hostile: lengths are checked against caps before
 * any allocation, an unexpected status kills the worker, and a worker that failed in
 * any way is never reused.
 */
#ifndef SEGLAM_SANDBOX_INT_H
#define SEGLAM_SANDBOX_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "buf.h"
#include "frame.h"
#include "hmap.h"
#include "sandbox.h"

#define SANDBOX_MAX_SOURCE (16u << 20) /* larger sources are refused */
#define SANDBOX_EXIT_GRACE_MS 500      /* for a worker that closed its pipe */
/* Load requests up to this size are written (what the pipe takes) before the worker starts. */
#define SANDBOX_PRESEND_MAX (32u << 10)
/* A type's first input goes with its load (struct sandbox_input) up to this size:
 * the zygote holds it while it passes it on, under the worker's RLIMIT_AS. */
#define SANDBOX_FIRST_INPUT_MAX (64u << 10)
/* Source bytes the pool keeps for its compiled types (struct sandbox_code), all
 * owners together: past it the least recently used idle types are dropped. */
#define SANDBOX_CODE_BYTES_MAX (64u << 20)

/*
 * How the last exchange with a worker ended when a process of it died on its own:
 * decisions read this (sandbox_end_sigkill), never the reason text, which is for
 * people.  A worker we killed (timeout, protocol violation, hung) records nothing.
 */
enum sandbox_end {
	SANDBOX_END_NONE = 0, /* no wait status seen (a reply, or killed by us) */
	SANDBOX_END_WORKER,   /* the worker itself ended: end_status is its wait status */
	SANDBOX_END_CHILD,    /* the run's child ended (FRAME_FAIL_DIED): its status */
};

struct sandbox_worker;

/* One source of one owner that slots of workers hold (compiled or being loaded),
 * in sbx.codes: a hit finds the slots of a source in one lookup.  Under sbx.lock;
 * freed when no slot holds it. */
struct sandbox_code {
	uint64_t key; /* XXH3_64bits(source) */
	uid_t owner;
	char *source; /* compared in full: XXH3 is not collision proof */
	size_t srclen;
	LIST_HEAD(, sandbox_slot) slots;
};

/* A worker's slot (frame.h): a compiled type, or empty (code NULL).  Under
 * sbx.lock, except that the thread holding the worker checked out sets loaded. */
struct sandbox_slot {
	struct sandbox_worker *w;
	struct sandbox_code *code;
	LIST_ENTRY(sandbox_slot) by_code;
	TAILQ_ENTRY(sandbox_slot) lru; /* in sbx.slots_lru once loaded */
	bool loaded;		       /* compiled in the worker */
	bool forgotten;		       /* sandbox_forget() while the worker was busy */
};

struct sandbox_worker {
	/* link, busy, parked, the slots: under sbx.lock */
	TAILQ_ENTRY(sandbox_worker) link; /* in idle, busy, exiting, or a dead chain */
	uid_t owner;			  /* whose types it holds: never anyone else's */
	struct sandbox_slot *slots;
	unsigned nslots, nused; /* nslots: -o worker_types (1 with worker_reuse) */
	unsigned cur;		/* the slot of the current checkout */
	bool busy;		/* checked out (or being started) */
	/* pid, the fds and end: the thread that checked the worker out owns them; an
	 * idle or dying one is the pool's (sbx.lock while it is in a list). */
	pid_t pid;
	int req_fd, resp_fd;  /* our ends, O_CLOEXEC | O_NONBLOCK */
	int load_fd;	      /* our end of the load pipe (frame.h), -1 with worker_reuse */
	enum sandbox_end end; /* of the last exchange */
	int end_status;	      /* the wait status, when end is not SANDBOX_END_NONE */
	bool parked;	      /* waiting on a seglam_call: not counted against the cap */
	int64_t exit_by;      /* evicted: SIGKILLed if not gone by then (frame_now_ms) */
	size_t load_sent;     /* bytes of the first load request in the pipe already (spawn.c) */
	/* The last load carried the type's first input (frame.h FRAME_REQ_LOAD_RUN)
	 * and compiled: that input's reply is due on resp_fd, and answers to its
	 * calls go on load_fd (exchange.c sandbox_run). */
	bool first_sent;
	/* -o worker_reuse: how long it was checked out, in all (ms), and since when.
	 * Its CPU time is at most that: retired before its backstop (frame.h
	 * frame_cpu_share_ms), with the SIGXCPU of a run that pushes past it. */
	int64_t busy_ms, busy_since;
	size_t mem;	    /* its private memory after its last load (with a mem_budget), */
	size_t mem_counted; /* ... and how much of it sbx.mem_live counts (under sbx.lock) */
};

/* The source of @w's current checkout. */
static inline const struct sandbox_code *sandbox_cur_code(const struct sandbox_worker *w)
{
	return w->slots[w->cur].code;
}

TAILQ_HEAD(sandbox_tailq, sandbox_worker);

struct sandbox_list {
	struct sandbox_tailq q; /* first = most recently used */
	unsigned n;
};

/* The pool and its configuration (the mother's state is spawn.c's own). */
struct sandbox_state {
	/* lock protects ready, idle, busy, dying, exiting, parked, stats, the reaper's
	 * fields, the writing of call_fn, and each worker's list links, forgotten and
	 * parked. */
	pthread_mutex_t lock;
	pthread_cond_t returned; /* a worker went back to the pool or died */
	bool ready;
	/* Written by sandbox_init before ready, read-only until sandbox_shutdown. */
	struct sandbox_config cfg;
	char *worker_path, *include_dir;
	struct sandbox_list idle, busy; /* busy includes workers being started */
	/* Out of both lists and not yet reaped: still processes, so still under the
	 * cap until sandbox_kill_chain() or the reaper has waited for them. */
	unsigned dying;
	/* Of those, the evicted ones (pool.c): their pipes closed, they exit on their
	 * own, and the reaper thread waits for them. */
	struct sandbox_tailq exiting;
	unsigned nexiting;   /* evicted and not yet reaped (on exiting, or being reaped) */
	pthread_cond_t reap; /* exiting is not empty, or stop_reaper */
	pid_t reaper_owner;  /* getpid() of the process whose reaper runs, 0: none */
	pthread_t reaper;
	bool stop_reaper;
	unsigned parked;   /* busy workers waiting on a call (see sandbox.h) */
	size_t mem_live;   /* sum of mem of the workers in idle and busy that count it */
	struct hmap codes; /* struct sandbox_code by key */
	size_t code_bytes; /* their sources' bytes */
	TAILQ_HEAD(sandbox_slot_lru, sandbox_slot) slots_lru; /* loaded slots, newest first */
	/* Set once at start, before the first run (sandbox.h): read without the lock. */
	sandbox_call_fn call_fn;
	struct sandbox_stats stats;
};
extern struct sandbox_state sbx;

/* The chain of runs this thread is in (composition): the top-level deadline. */
struct sandbox_chain {
	bool active;
	int64_t deadline;
};
extern _Thread_local struct sandbox_chain sbx_chain;

/* Largest call request: a type name, its NUL, and an input up to the answer cap
 * (so one callee's answer can be handed to another). */
#define SANDBOX_CALL_CAP                                                                           \
	((uint32_t)(sbx.cfg.max_answer < UINT32_MAX - 2 - FRAME_CALL_TYPE_MAX                      \
			? FRAME_CALL_TYPE_MAX + 1 + sbx.cfg.max_answer                             \
			: UINT32_MAX - 1))

/* A type's first input, sent with its load when the worker has a load pipe:
 * the process that compiles the type runs it (frame.h FRAME_REQ_LOAD_RUN). */
struct sandbox_input {
	const char *data;
	size_t len;
};

/* pool.c */
int sandbox_checkout(uid_t owner, const char *src, size_t len, struct sandbox_worker **out);
void sandbox_checkin(struct sandbox_worker *w, bool reuse);
void sandbox_loaded(struct sandbox_worker *w, bool ok);
void sandbox_codes_init(void);
void sandbox_trim(unsigned limit, struct sandbox_tailq *dead);
void sandbox_kill_chain(struct sandbox_tailq *dead);
void sandbox_reaper_stop(void);
void sandbox_update_live(void);
/* SIGKILL worker @pid's process group, reap the worker (its wait status) and the
 * rest of the group where that is ours to reap. */
int sandbox_kill_reap(pid_t pid);
/* The same for the group of a worker that ended on its own and was reaped. */
void sandbox_ended_group(pid_t pgid);

/* spawn.c */
int sandbox_load(struct sandbox_worker *w, const struct sandbox_input *first, struct buf *err);
void sandbox_mother_shutdown(void);

/* exchange.c */
int sandbox_exchange(struct sandbox_worker *w, int fd, const void *hdr, size_t hlen,
		     const void *msg, size_t len, int32_t max_status, uint32_t cap,
		     int64_t deadline, struct buf *data, struct buf *err);
int sandbox_prepare(uid_t owner, const char *source, size_t srclen,
		    const struct sandbox_input *first, struct sandbox_worker **out, bool *loaded,
		    struct buf *err);
int sandbox_answer_call(struct sandbox_worker *w, int fd, const char *req, size_t rlen,
			int64_t *deadline, struct buf *err);
void sandbox_worker_ended(struct sandbox_worker *w, enum sandbox_end end, int status,
			  struct buf *err);
void sandbox_worker_diagnose(struct sandbox_worker *w, struct buf *err);
void sandbox_timed_out(struct buf *err);
bool sandbox_worker_clean(struct sandbox_worker *w);

#endif
