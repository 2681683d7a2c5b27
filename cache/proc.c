/*
 * proc: the registry of procedure records and their state machine; see proc.h,
 * and proc_int.h for the files of the module.
 *
 * A record is missing, ready or failing.  proc_current() moves it: it revalidates
 * a record whose period is over or that an edit marked stale (the store work in
 * admit.c, applied here under the record's lock), and hands a missing or failing
 * type to the synthesizer (proc_synth.c).
 */
#include "proc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "clock.h"
#include "log.h"
#include "nearest.h"
#include "proc_int.h"
#include "sandbox.h"
#include "store.h"
#include "xalloc.h"

/* A call waits at most this long for a callee's revalidation (proc_reval_wait). */
#define PROC_CALL_LOCK_S 30

_Thread_local struct proc_frame proc_stack[PROC_CALL_DEPTH + 4];
_Thread_local unsigned proc_depth;
_Thread_local unsigned proc_chain_synths;
_Thread_local bool proc_synth_refused;

static bool proc_has_type(const void *item, const void *key)
{
	return !strcmp(((const struct proc *)item)->type, key);
}

struct procs procs = {.lock = PTHREAD_MUTEX_INITIALIZER,
		      .graph_lock = PTHREAD_MUTEX_INITIALIZER,
		      .index = HMAP_INIT(proc_has_type),
		      .all = SLIST_HEAD_INITIALIZER(procs.all)};

void proc_config_defaults(struct proc_config *cfg)
{
	if (!cfg->revalidate_ms)
		cfg->revalidate_ms = PROC_DEFAULT_REVALIDATE_MS;
	if (!cfg->memo_bytes)
		cfg->memo_bytes = (size_t)PROC_DEFAULT_MEMO_MB << 20;
	if (!cfg->fail_ttl_ms)
		cfg->fail_ttl_ms = PROC_DEFAULT_FAIL_TTL_MS;
	if (!cfg->history_max)
		cfg->history_max = PROC_DEFAULT_HISTORY;
	if (!cfg->tests_max)
		cfg->tests_max = (size_t)PROC_DEFAULT_TESTS_MAX_MB << 20;
}

int proc_init(const struct proc_config *cfg)
{
	procs.cfg = *cfg;
	proc_config_defaults(&procs.cfg);
	memo_init(procs.cfg.memo_bytes);
	sandbox_set_call_handler(proc_call);
	return 0;
}

void proc_set_change_hook(void (*fn)(const char *type))
{
	procs.change_hook = fn;
}

void proc_changed(struct proc *p)
{
	if (procs.change_hook)
		procs.change_hook(p->type);
	proc_changed_callers(p);
}

/* Push a frame; false when the stack is full (the depth check makes that rare). */
bool proc_push(struct proc *p, uint64_t version)
{
	if (proc_depth >= sizeof(proc_stack) / sizeof(proc_stack[0]))
		return false;
	proc_stack[proc_depth].p = p;
	proc_stack[proc_depth].version = version;
	proc_depth++;
	return true;
}

void proc_pop(bool pushed)
{
	if (pushed)
		proc_depth--;
}

/*
 * The first-touch sweep of a type's temp files (store_clean_type), off the read
 * path: it walks directories of the store, which on a store not read for a while
 * (the long tail) is disk I/O, and nothing a reader reads depends on it (temp
 * files have names of their own, and the daemon's own are never stale).  One
 * thread takes them in order; it is started by the first sweep of this process
 * (threads do not survive fuse_daemonize's fork) and drained at shutdown, so no
 * sweep asked for is lost.  Without a thread the sweep runs in place, as before.
 */
struct proc_sweep {
	STAILQ_ENTRY(proc_sweep) next;
	char type[];
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	STAILQ_HEAD(, proc_sweep) q;
	pid_t owner; /* getpid() of the process whose thread runs, 0: none */
	pthread_t thread;
	bool stop;
} sweeper = {.lock = PTHREAD_MUTEX_INITIALIZER,
	     .cond = PTHREAD_COND_INITIALIZER,
	     .q = STAILQ_HEAD_INITIALIZER(sweeper.q)};

static void *proc_sweeper(void *arg)
{
	struct proc_sweep *s;

	(void)arg;
	/* Leftovers nobody waits for: the reads that queued them come first (a
	 * burst of first reads, a store's types one after another, must not
	 * share the CPU with their own sweeps).  Raising a thread's nice value
	 * needs no privilege. */
	setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
	pthread_mutex_lock(&sweeper.lock);
	for (;;) {
		while (STAILQ_EMPTY(&sweeper.q) && !sweeper.stop)
			pthread_cond_wait(&sweeper.cond, &sweeper.lock);
		s = STAILQ_FIRST(&sweeper.q);
		if (!s)
			break; /* stopped, and nothing left */
		STAILQ_REMOVE_HEAD(&sweeper.q, next);
		pthread_mutex_unlock(&sweeper.lock);
		store_clean_type(s->type);
		free(s);
		pthread_mutex_lock(&sweeper.lock);
	}
	pthread_mutex_unlock(&sweeper.lock);
	return NULL;
}

static void proc_sweep_later(const char *type)
{
	size_t len = strlen(type) + 1;
	struct proc_sweep *s = xmalloc(sizeof(*s) + len);
	bool now = false;

	memcpy(s->type, type, len);
	pthread_mutex_lock(&sweeper.lock);
	if (sweeper.owner != getpid()) {
		sweeper.stop = false;
		if (pthread_create(&sweeper.thread, NULL, proc_sweeper, NULL) == 0)
			sweeper.owner = getpid();
		else
			now = true;
	}
	if (!now) {
		STAILQ_INSERT_TAIL(&sweeper.q, s, next);
		pthread_cond_signal(&sweeper.cond);
	}
	pthread_mutex_unlock(&sweeper.lock);
	if (now) {
		store_clean_type(s->type);
		free(s);
	}
}

/* At shutdown: the sweeps asked for are done, then the thread ends. */
static void proc_sweep_drain(void)
{
	pthread_mutex_lock(&sweeper.lock);
	if (sweeper.owner != getpid()) {
		pthread_mutex_unlock(&sweeper.lock);
		return;
	}
	sweeper.stop = true;
	sweeper.owner = 0;
	pthread_cond_signal(&sweeper.cond);
	pthread_mutex_unlock(&sweeper.lock);
	pthread_join(sweeper.thread, NULL);
}

struct proc *proc_find(const char *type, bool create)
{
	uint64_t h = hmap_hash_str(type);
	struct proc *p;
	bool fresh = false;

	pthread_mutex_lock(&procs.lock);
	p = hmap_find(&procs.index, h, type);
	if (p || !create)
		goto out;
	p = xcalloc(1, sizeof(*p));
	p->type = xstrdup(type);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->stale = true;
	hmap_insert(&procs.index, h, p);
	SLIST_INSERT_HEAD(&procs.all, p, next);
	fresh = true;
out:
	pthread_mutex_unlock(&procs.lock);
	/* First touch of a type in this daemon: temp files a crash left behind are
	 * swept, by the sweeper (above). */
	if (fresh)
		proc_sweep_later(type);
	return p;
}

void proc_each(void (*fn)(struct proc *p, void *arg), void *arg)
{
	struct proc *p;

	pthread_mutex_lock(&procs.lock);
	p = SLIST_FIRST(&procs.all);
	pthread_mutex_unlock(&procs.lock);
	/* Records are never freed before shutdown and go in at the head, so walking
	 * unlocked is safe (a record inserted meanwhile is in front of the walk and
	 * is missed). */
	for (; p; p = SLIST_NEXT(p, next))
		fn(p, arg);
}

/*
 * Bring the record in line with the store.  Lock held on entry and exit, and
 * dropped in between: the record is marked reval_busy, so readers of this type
 * wait for the outcome (proc_reval_wait) while nobody else waits on the store.
 */
void proc_revalidate(struct proc *p)
{
	struct reval r = {.src_seen = p->src_seen,
			  .src_st = p->src_st,
			  .cur = p->cur ? pversion_get(p->cur) : NULL,
			  .state = p->state,
			  .admitted_key = p->admitted_key,
			  .tests_id = p->tests_id,
			  .reason = BUF_INIT,
			  .defer_compile = !p->compile_first};
	bool loaded = p->loaded;

	p->reval_busy = true;
	p->stale = false;
	p->checked_ns = clock_mono_coarse_ns();
	pthread_mutex_unlock(&p->lock);

	proc_revalidate_store(p, &r);

	pthread_mutex_lock(&p->lock);
	p->src_seen = r.src_seen;
	p->src_st = r.src_st;
	pversion_put(p->cur);
	p->cur = r.cur;
	p->state = r.state;
	p->admitted_key = r.admitted_key;
	if (r.defer_compile && p->compile_first) {
		/* A read found the source not compiling while this ran (proc_ask.c
		 * proc_compile_failed): what this admitted on record is admitted
		 * again, compiling first. */
		p->admitted_key = 0;
		p->stale = true;
	}
	p->tests_id = r.tests_id;
	if (r.reason_set) {
		struct buf t = p->reason;

		p->reason = r.reason;
		r.reason = t;
	}
	p->loaded = true;
	/* The first load of a type in this daemon changes nothing the kernel has.
	 * The hook reaches the kernel (FUSE notifications): never under the lock. */
	if (r.changed && loaded) {
		pthread_mutex_unlock(&p->lock);
		proc_changed(p);
		pthread_mutex_lock(&p->lock);
	}
	p->reval_busy = false;
	pthread_cond_broadcast(&p->cond);
	buf_free(&r.reason);
}

/*
 * Wait while another thread revalidates @p (lock held, dropped while waiting).
 * Inside a call the wait is bounded: two types that call each other, admitted at
 * once by two threads, would otherwise wait on each other forever.  Returns 0 or
 * -EDEADLK.
 */
static int proc_reval_wait(struct proc *p)
{
	struct timespec until;

	if (!proc_depth) {
		while (p->reval_busy)
			pthread_cond_wait(&p->cond, &p->lock);
		return 0;
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += PROC_CALL_LOCK_S;
	while (p->reval_busy)
		if (pthread_cond_timedwait(&p->cond, &p->lock, &until) == ETIMEDOUT &&
		    p->reval_busy)
			return -EDEADLK;
	return 0;
}

/* Get the current admitted source (a reference), revalidating/synthesizing. */
int proc_current(struct proc *p, const char *in, size_t len, struct pversion **out, struct buf *why)
{
	int ret = 0;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		if (p->reval_busy) {
			if (proc_reval_wait(p) < 0) {
				log_warn("procs/%s: busy for %d s during a call (types calling "
					 "each other being admitted at once?)",
					 p->type, PROC_CALL_LOCK_S);
				ret = -EIO;
				break;
			}
			continue;
		}
		if (p->stale ||
		    clock_mono_coarse_ns() - p->checked_ns >= procs.cfg.revalidate_ms * 1000000ull)
			proc_revalidate(p);
		if (p->state == PROC_READY) {
			*out = pversion_get(p->cur);
			break;
		}
		if (!procs.cfg.synth) {
			ret = p->state == PROC_MISSING ? -ENOENT : -EIO;
			if (ret == -ENOENT)
				buf_adds(why, "no procedure, and no LLM configured to write one");
			else
				buf_adds(why, buf_str(&p->reason));
			break;
		}
		if (p->state == PROC_MISSING && store_readonly()) {
			buf_adds(why, "no procedure, and the store is read-only");
			ret = -ENOENT;
			break;
		}
		ret = proc_synthesize(p, in, len, why);
		if (ret)
			break;
	}
	pthread_mutex_unlock(&p->lock);
	return ret;
}

bool proc_type_visible(const char *type)
{
	return procs.cfg.synth != NULL || store_type_exists(type);
}

void proc_touched(const char *type)
{
	struct proc *p = proc_find(type, false);

	nearest_note(type);
	if (p) {
		pthread_mutex_lock(&p->lock);
		p->stale = true;
		/* A person changed something: let a failed synthesis be retried now.
		 * Forgetting the key too keeps proc_synthesize's "a repair already
		 * produced this very source" guard from taking the place of the
		 * remembered failure. */
		p->synth_fail_until = 0;
		p->synth_key = 0;
		pthread_mutex_unlock(&p->lock);
		/* The mount drops this type's kernel caches; its callers' go too. */
		proc_changed_callers(p);
	}
}

void proc_shutdown(void)
{
	struct proc *p;

	sandbox_set_call_handler(NULL);
	/* A synthesis nobody waits for any more still holds its record. */
	proc_synth_drain();
	proc_sweep_drain();
	proc_flush();
	nearest_shutdown();
	while ((p = SLIST_FIRST(&procs.all))) {
		SLIST_REMOVE_HEAD(&procs.all, next);
		pversion_put(p->cur);
		free(p->calls);
		free(p->callers);
		buf_free(&p->reason);
		buf_free(&p->synth_reason);
		for (unsigned w = 0; w < PROC_WAIT_INPUTS; w++)
			buf_free(&p->waiting[w]);
		pthread_mutex_destroy(&p->lock);
		pthread_cond_destroy(&p->cond);
		free(p->type);
		free(p);
	}
	hmap_destroy(&procs.index, NULL);
	memo_shutdown();
}
