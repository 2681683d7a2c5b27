/*
 * pool: the live workers of the daemon side (see sandbox_int.h), prefix sandbox_.
 *
 * A worker holds the compiled types of one owner in up to -o worker_types slots
 * (frame.h); a source of an owner (struct sandbox_code, in sbx.codes) may be in
 * slots of several workers.  A caller checks out a worker with its source in a
 * slot: an idle one that has it compiled (a hit), else a slot to load it into (a
 * miss: sandbox_load compiles it there) in this order: a free slot of an idle
 * worker of the owner, a new worker while under max_workers, the least recently
 * used slot of an idle worker of the owner (a type eviction: no process ends),
 * and last a new worker in place of the least recently used idle one.  So a
 * pool of N workers keeps up to N x worker_types compiled types, and processes
 * start only for concurrency or another owner.  It runs, and checks the worker
 * in (back to the idle list, or killed).  The pool bounds processes: at most
 * SANDBOX_PER_SOURCE busy per source, and max_workers in all (less the parked
 * ones), evicting least recently used idle workers, which count until they have
 * been reaped.  Every worker ends here, so no zombie is ever left: an evicted one
 * by closing its pipes (it ends its children and exits on its own) and the
 * reaper thread's waitpid, any other by SIGKILL of its group and waitpid
 * (sandbox_kill_reap, which also reaps the group's orphans where they come to
 * the daemon).  sbx.lock guards
 * the lists, the slots and the codes; no process is killed or reaped while it
 * is held.
 *
 * Eviction of workers runs one step ahead: a new worker that takes the last free
 * place also evicts the least recently used idle worker, which exits while the
 * new one compiles, so the next one finds a place free instead of waiting for an
 * exit (about half a millisecond here).  Below SANDBOX_AHEAD_MIN it does not.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "log.h"
#include "sandbox_int.h"
#include "xalloc.h"

#define SANDBOX_PER_SOURCE 4 /* live workers per source before waiting */
#define SANDBOX_AHEAD_MIN 8  /* smaller pools evict only when they must */

/* ------------------------------------------------------------------------- */
/* Lists (callers hold sbx.lock) */

static void sandbox_list_del(struct sandbox_list *l, struct sandbox_worker *w)
{
	TAILQ_REMOVE(&l->q, w, link);
	l->n--;
}

static void sandbox_list_push(struct sandbox_list *l, struct sandbox_worker *w)
{
	TAILQ_INSERT_HEAD(&l->q, w, link);
	l->n++;
	w->busy = l == &sbx.busy;
}

/* The least recently used idle worker, or NULL. */
static struct sandbox_worker *sandbox_idle_lru(void)
{
	return TAILQ_LAST(&sbx.idle.q, sandbox_tailq);
}

/* ------------------------------------------------------------------------- */
/* Codes and slots (callers hold sbx.lock) */

struct sandbox_code_key {
	uid_t owner;
	const char *src;
	size_t len;
};

static bool sandbox_code_eq(const void *item, const void *key)
{
	const struct sandbox_code *c = item;
	const struct sandbox_code_key *k = key;

	return c->owner == k->owner && c->srclen == k->len &&
	       memcmp(c->source, k->src, k->len) == 0;
}

void sandbox_codes_init(void)
{
	hmap_init(&sbx.codes, sandbox_code_eq);
	TAILQ_INIT(&sbx.slots_lru);
}

static struct sandbox_code *sandbox_code_find(uint64_t key, uid_t owner, const char *src,
					      size_t len)
{
	struct sandbox_code_key k = {owner, src, len};

	return hmap_find(&sbx.codes, key, &k);
}

/* Put the code of (@owner, @src) in @sl, an empty slot of a checked-out worker. */
static void sandbox_slot_fill(struct sandbox_slot *sl, uint64_t key, uid_t owner, const char *src,
			      size_t len)
{
	struct sandbox_code *c = sandbox_code_find(key, owner, src, len);

	if (!c) {
		c = xcalloc(1, sizeof(*c));
		c->key = key;
		c->owner = owner;
		c->source = xmalloc(len ? len : 1);
		memcpy(c->source, src, len);
		c->srclen = len;
		LIST_INIT(&c->slots);
		hmap_insert(&sbx.codes, key, c);
		sbx.code_bytes += len;
	}
	sl->code = c;
	sl->loaded = sl->forgotten = false;
	LIST_INSERT_HEAD(&c->slots, sl, by_code);
	sl->w->nused++;
}

/* Empty @sl (the worker keeps the old image until the slot is loaded again, and
 * never runs it: the daemon names the slot of every run). */
static void sandbox_slot_clear(struct sandbox_slot *sl)
{
	struct sandbox_code *c = sl->code;

	if (!c)
		return;
	LIST_REMOVE(sl, by_code);
	if (sl->loaded) {
		TAILQ_REMOVE(&sbx.slots_lru, sl, lru);
		sbx.stats.types_cached--;
	}
	sl->code = NULL;
	sl->loaded = sl->forgotten = false;
	sl->w->nused--;
	if (LIST_EMPTY(&c->slots)) {
		struct sandbox_code_key k = {c->owner, c->source, c->srclen};

		hmap_remove(&sbx.codes, c->key, &k);
		sbx.code_bytes -= c->srclen;
		free(c->source);
		free(c);
	}
}

/* @w leaves the pool: its slots no longer hold anything. */
static void sandbox_slots_clear(struct sandbox_worker *w)
{
	for (unsigned i = 0; i < w->nslots; i++)
		sandbox_slot_clear(&w->slots[i]);
}

/* The caller's load into its worker's current slot is done. */
void sandbox_loaded(struct sandbox_worker *w, bool ok)
{
	struct sandbox_slot *sl = &w->slots[w->cur];

	pthread_mutex_lock(&sbx.lock);
	if (ok && !sl->loaded) {
		sl->loaded = true;
		TAILQ_INSERT_HEAD(&sbx.slots_lru, sl, lru);
		sbx.stats.types_cached++;
	} else if (!ok) {
		sandbox_slot_clear(sl);
	}
	pthread_mutex_unlock(&sbx.lock);
}

/* ------------------------------------------------------------------------- */
/* One worker process */

static void sandbox_worker_free(struct sandbox_worker *w)
{
	if (w->req_fd >= 0)
		close(w->req_fd);
	if (w->resp_fd >= 0)
		close(w->resp_fd);
	if (w->load_fd >= 0)
		close(w->load_fd);
	free(w->slots);
	free(w);
}

/* SIGKILL to the worker's process group: the worker and its children (the run in
 * progress, the child forked ahead, the compiler). */
static void sandbox_group_kill(pid_t pid)
{
	if (kill(-pid, SIGKILL) < 0)
		kill(pid, SIGKILL);
}

/*
 * Process groups of killed workers with members not yet reaped (group_reap).
 * A worker's children outlive it by moments after a SIGKILL of the group; those
 * not gone within the grace are tried again at the next call.  Bounded: a group
 * that does not empty for SANDBOX_ORPHAN_GROUPS later kills is given up (its
 * members stuck in the kernel, a zombie or two at worst).
 */
#define SANDBOX_ORPHAN_GROUPS 16
static pthread_mutex_t orphan_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t orphan_groups[SANDBOX_ORPHAN_GROUPS];
static unsigned orphan_next;

/* Reap what of process group @pgid is ours: true when none is left. */
static bool sandbox_group_reaped(pid_t pgid)
{
	pid_t r;

	while ((r = waitpid(-pgid, NULL, WNOHANG)) > 0 || (r < 0 && errno == EINTR))
		;
	return r < 0;
}

/*
 * Reap the rest of process group @pgid, whose leader, a killed worker, has just
 * been reaped.  Its children are orphans now, and orphans go to the nearest
 * reaper: init, or this daemon where it is PID 1 of its namespace (a container
 * without an init).  There nobody else would reap them, and every timeout would
 * leave zombies of the workers' user against its RLIMIT_NPROC.  Elsewhere the
 * first waitpid says ECHILD and that is all.  The group's number cannot be
 * another's meanwhile: a pid is not reused while a group of that number has a
 * member.
 */
static void sandbox_group_reap(pid_t pgid)
{
	int64_t deadline = frame_now_ms() + SANDBOX_EXIT_GRACE_MS;
	unsigned i;

	while (!sandbox_group_reaped(pgid)) {
		if (frame_now_ms() >= deadline) {
			pthread_mutex_lock(&orphan_lock);
			orphan_groups[orphan_next++ % SANDBOX_ORPHAN_GROUPS] = pgid;
			pthread_mutex_unlock(&orphan_lock);
			break;
		}
		usleep(200);
	}
	pthread_mutex_lock(&orphan_lock);
	for (i = 0; i < SANDBOX_ORPHAN_GROUPS; i++)
		if (orphan_groups[i] && orphan_groups[i] != pgid &&
		    sandbox_group_reaped(orphan_groups[i]))
			orphan_groups[i] = 0;
	pthread_mutex_unlock(&orphan_lock);
}

int sandbox_kill_reap(pid_t pid)
{
	int status = 0;

	sandbox_group_kill(pid);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	sandbox_group_reap(pid);
	return status;
}

void sandbox_ended_group(pid_t pgid)
{
	kill(-pgid, SIGKILL);
	sandbox_group_reap(pgid);
}

/* SIGKILL and reap: the one way a worker ends, so no zombie is ever left. */
static void sandbox_worker_kill(struct sandbox_worker *w)
{
	if (w->pid > 0) {
		sandbox_kill_reap(w->pid);
		w->pid = 0;
	}
	sandbox_worker_free(w);
}

/* ------------------------------------------------------------------------- */
/* The pool */

/* @w leaves the pool (lock held): its memory no longer counts. */
static void sandbox_mem_forget(struct sandbox_worker *w)
{
	sbx.mem_live -= w->mem_counted;
	w->mem_counted = 0;
}

/* Put @w, already out of both lists, on the chain @dead to be killed.  Lock held. */
static void sandbox_doom(struct sandbox_tailq *dead, struct sandbox_worker *w)
{
	sandbox_mem_forget(w);
	sandbox_slots_clear(w);
	TAILQ_INSERT_TAIL(dead, w, link);
	sbx.dying++;
}

/* All idle workers (shutdown), taken out of the pool (caller holds the lock, then
 * kills the returned chain without it).  Only sandbox_shutdown trims to 0. */
void sandbox_trim(unsigned limit, struct sandbox_tailq *dead)
{
	struct sandbox_worker *w;

	while (sbx.idle.n + sbx.busy.n - sbx.parked > limit && (w = sandbox_idle_lru())) {
		sandbox_list_del(&sbx.idle, w);
		sandbox_doom(dead, w);
	}
}

/* Kill and reap a chain from sandbox_doom(); lock not held. */
void sandbox_kill_chain(struct sandbox_tailq *dead)
{
	struct sandbox_worker *w;
	unsigned n = 0;

	while ((w = TAILQ_FIRST(dead))) {
		TAILQ_REMOVE(dead, w, link);
		sandbox_worker_kill(w);
		n++;
	}
	if (!n)
		return;
	pthread_mutex_lock(&sbx.lock);
	sbx.dying -= n;
	pthread_cond_broadcast(&sbx.returned);
	pthread_mutex_unlock(&sbx.lock);
}

void sandbox_update_live(void)
{
	sbx.stats.live_workers = sbx.idle.n + sbx.busy.n;
}

/* Wait until @w, which closed its pipes, is gone, then reap it: up to its exit_by,
 * after which it is SIGKILLed.  (Its run children are its own to reap: a SIGKILL
 * of a live zygote would leave the child forked ahead to init, where a zombie of
 * user nobody still counts against RLIMIT_NPROC until init reaps it.) */
static void sandbox_reap_evicted(struct sandbox_worker *w)
{
	int pfd = (int)syscall(SYS_pidfd_open, w->pid, 0);

	for (;;) {
		int64_t left = w->exit_by - frame_now_ms();
		pid_t r = waitpid(w->pid, NULL, WNOHANG);

		if (r == w->pid || (r < 0 && errno != EINTR)) {
			w->pid = 0;
			break;
		}
		if (r < 0)
			continue;
		if (left <= 0)
			break; /* sandbox_worker_kill below */
		if (pfd >= 0) {
			/* readable once it has exited (kernel 5.3 on) */
			struct pollfd p = {.fd = pfd, .events = POLLIN};

			poll(&p, 1, (int)left);
		} else {
			usleep(200);
		}
	}
	if (pfd >= 0)
		close(pfd);
	sandbox_worker_kill(w);
}

/* Wait for the evicted workers on sbx.exiting and free them.  Lock held on entry
 * and exit, dropped in between. */
static void sandbox_reap_exiting(void)
{
	struct sandbox_tailq list = TAILQ_HEAD_INITIALIZER(list);
	struct sandbox_worker *w;
	unsigned n = 0;

	TAILQ_CONCAT(&list, &sbx.exiting, link);
	pthread_mutex_unlock(&sbx.lock);
	while ((w = TAILQ_FIRST(&list))) {
		TAILQ_REMOVE(&list, w, link);
		sandbox_reap_evicted(w);
		n++;
	}
	pthread_mutex_lock(&sbx.lock);
	sbx.dying -= n;
	sbx.nexiting -= n;
	pthread_cond_broadcast(&sbx.returned);
}

/* The reaper thread: waits for evicted workers, off every request's path. */
static void *sandbox_reaper(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&sbx.lock);
	for (;;) {
		while (TAILQ_EMPTY(&sbx.exiting) && !sbx.stop_reaper)
			pthread_cond_wait(&sbx.reap, &sbx.lock);
		if (TAILQ_EMPTY(&sbx.exiting))
			break;
		sandbox_reap_exiting();
	}
	pthread_mutex_unlock(&sbx.lock);
	return NULL;
}

/*
 * Evict @w (idle, out of both lists; lock held): close its pipes, so that it ends
 * its run children and exits on its own, and hand it to the reaper, started here
 * the first time (after fuse_daemonize: threads do not survive its fork, so a
 * reaper of another process does not count).  It stays counted in dying, under
 * the cap, until the reaper has waited for it.
 */
static void sandbox_evict(struct sandbox_worker *w)
{
	sandbox_mem_forget(w);
	sandbox_slots_clear(w);
	close(w->req_fd);
	close(w->resp_fd);
	if (w->load_fd >= 0)
		close(w->load_fd);
	w->req_fd = w->resp_fd = w->load_fd = -1;
	w->exit_by = frame_now_ms() + SANDBOX_EXIT_GRACE_MS;
	TAILQ_INSERT_TAIL(&sbx.exiting, w, link);
	sbx.dying++;
	sbx.nexiting++;
	sbx.stats.evictions++;
	if (sbx.reaper_owner != getpid()) {
		int e;

		sbx.stop_reaper = false;
		e = pthread_create(&sbx.reaper, NULL, sandbox_reaper, NULL);
		if (e == 0)
			sbx.reaper_owner = getpid();
		else
			log_error("sandbox: cannot start the reaper thread (%s): a cold start "
				  "at the cap then waits for its victim itself",
				  strerror(e));
	}
	pthread_cond_signal(&sbx.reap);
}

/* Evict idle workers, least recently used first, until the pool will hold at most
 * @limit processes once the evicted ones are gone (evicting one does not lower the
 * count of processes now: it is still one until reaped).  Lock held. */
static void sandbox_evict_over(unsigned limit)
{
	struct sandbox_worker *w;

	while (sbx.idle.n + sbx.busy.n + sbx.dying - sbx.nexiting - sbx.parked > limit &&
	       (w = sandbox_idle_lru())) {
		sandbox_list_del(&sbx.idle, w);
		sandbox_evict(w);
	}
}

/* Evict idle workers, least recently used first, while the live ones hold more
 * than -o workers_mem, sparing @keep (the one just checked in).  Lock held. */
static void sandbox_evict_over_budget(struct sandbox_worker *keep)
{
	struct sandbox_worker *w;

	while (sbx.cfg.mem_budget && sbx.mem_live > sbx.cfg.mem_budget &&
	       (w = sandbox_idle_lru()) && w != keep) {
		sandbox_list_del(&sbx.idle, w);
		sandbox_evict(w);
	}
}

/* At shutdown, once no worker can be evicted any more: the reaper waits for the
 * evicted ones still exiting, then ends. */
void sandbox_reaper_stop(void)
{
	pthread_mutex_lock(&sbx.lock);
	sbx.stop_reaper = true;
	pthread_cond_signal(&sbx.reap);
	if (sbx.reaper_owner != getpid()) {
		/* no reaper of ours: reap what is left here */
		if (!TAILQ_EMPTY(&sbx.exiting))
			sandbox_reap_exiting();
		pthread_mutex_unlock(&sbx.lock);
		return;
	}
	sbx.reaper_owner = 0;
	pthread_mutex_unlock(&sbx.lock);
	pthread_join(sbx.reaper, NULL);
}

/* A new worker of @owner (pid 0: the caller starts it on its first load). */
static struct sandbox_worker *sandbox_worker_new(uid_t owner)
{
	struct sandbox_worker *w = xcalloc(1, sizeof(*w));

	w->owner = owner;
	w->nslots = sbx.cfg.worker_reuse ? 1 : sbx.cfg.worker_types;
	w->slots = xcalloc(w->nslots, sizeof(*w->slots));
	for (unsigned i = 0; i < w->nslots; i++)
		w->slots[i].w = w;
	w->req_fd = w->resp_fd = w->load_fd = -1;
	return w;
}

/* An idle worker of @owner with a free slot (the most recently used such), its
 * slot in *@slot; NULL if none.  Never a -o worker_reuse one: it compiles once. */
static struct sandbox_worker *sandbox_idle_with_room(uid_t owner, unsigned *slot)
{
	struct sandbox_worker *w;

	if (sbx.cfg.worker_reuse)
		return NULL;
	TAILQ_FOREACH(w, &sbx.idle.q, link) {
		if (w->owner != owner || w->nused >= w->nslots)
			continue;
		for (unsigned i = 0; i < w->nslots; i++)
			if (!w->slots[i].code) {
				*slot = i;
				return w;
			}
	}
	return NULL;
}

/* The least recently used compiled type of an idle worker of @owner, emptied
 * for a new one (a type eviction), its worker returned; NULL if none. */
static struct sandbox_worker *sandbox_evict_type(uid_t owner, unsigned *slot)
{
	struct sandbox_slot *sl;

	if (sbx.cfg.worker_reuse)
		return NULL;
	TAILQ_FOREACH_REVERSE(sl, &sbx.slots_lru, sandbox_slot_lru, lru)
		if (!sl->w->busy && sl->w->owner == owner)
			break;
	if (!sl)
		return NULL;
	*slot = (unsigned)(sl - sl->w->slots);
	sandbox_slot_clear(sl);
	sbx.stats.type_evictions++;
	return sl->w;
}

/*
 * Check out a worker with (@owner, @src) in its current slot (w->cur): compiled
 * when that slot is loaded (a hit), else to be loaded by the caller
 * (sandbox_load), starting the worker first when its pid is 0.  See the top of
 * this file for the order.  Waits when SANDBOX_PER_SOURCE are all busy on this
 * source, or when the cap is reached by busy and dying workers and no slot can be
 * had: the cap bounds processes, so an evicted worker counts until reaped.
 */
int sandbox_checkout(uid_t owner, const char *src, size_t len, struct sandbox_worker **out)
{
	uint64_t key = XXH3_64bits(src, len);
	struct sandbox_worker *w;
	struct sandbox_code *c;
	struct sandbox_slot *sl;
	unsigned slot = 0;
	int ret = 0;

	pthread_mutex_lock(&sbx.lock);
	for (;;) {
		unsigned mine = 0;

		if (!sbx.ready) {
			ret = -ESHUTDOWN;
			goto out;
		}
		c = sandbox_code_find(key, owner, src, len);
		if (c) {
			LIST_FOREACH(sl, &c->slots, by_code) {
				if (sl->loaded && !sl->w->busy) {
					w = sl->w;
					sandbox_list_del(&sbx.idle, w);
					sandbox_list_push(&sbx.busy, w);
					w->cur = (unsigned)(sl - w->slots);
					TAILQ_REMOVE(&sbx.slots_lru, sl, lru);
					TAILQ_INSERT_HEAD(&sbx.slots_lru, sl, lru);
					sbx.stats.pool_hits++;
					goto found;
				}
				mine += sl->w->busy && !sl->w->parked &&
					sl == &sl->w->slots[sl->w->cur];
			}
			if (mine >= SANDBOX_PER_SOURCE) {
				pthread_cond_wait(&sbx.returned, &sbx.lock);
				continue;
			}
		}
		w = sandbox_idle_with_room(owner, &slot);
		if (w)
			goto load;
		if (!sbx.cfg.max_workers ||
		    sbx.idle.n + sbx.busy.n + sbx.dying - sbx.parked < sbx.cfg.max_workers)
			break;
		w = sandbox_evict_type(owner, &slot);
		if (w)
			goto load;
		/* Make room: evict the least recently used idle worker (an idle
		 * worker runs no procedure code, and with its pipes closed it never
		 * will) and wait until the reaper has seen it go: the cap bounds
		 * processes, so a reservation and its victim are never alive
		 * together past it. */
		sandbox_evict_over(sbx.cfg.max_workers - 1);
		if (!TAILQ_EMPTY(&sbx.exiting) && sbx.reaper_owner != getpid())
			sandbox_reap_exiting(); /* no reaper thread: wait here */
		else
			pthread_cond_wait(&sbx.returned, &sbx.lock);
	}
	w = sandbox_worker_new(owner);
	sandbox_list_push(&sbx.busy, w);
	slot = 0;
	/* One step ahead (see the top of this file): the victim exits while this
	 * worker starts and compiles. */
	if (sbx.cfg.max_workers >= SANDBOX_AHEAD_MIN)
		sandbox_evict_over(sbx.cfg.max_workers - 1);
	goto fill;
load:
	sandbox_list_del(&sbx.idle, w);
	sandbox_list_push(&sbx.busy, w);
fill:
	sbx.stats.pool_misses++;
	w->cur = slot;
	sandbox_slot_fill(&w->slots[slot], key, owner, src, len);
	/* The sources kept are bounded, whatever sizes and numbers of types are
	 * asked: the least recently used idle types go first. */
	while (sbx.code_bytes > SANDBOX_CODE_BYTES_MAX) {
		TAILQ_FOREACH_REVERSE(sl, &sbx.slots_lru, sandbox_slot_lru, lru)
			if (!sl->w->busy)
				break;
		if (!sl)
			break;
		sandbox_slot_clear(sl);
		sbx.stats.type_evictions++;
	}
found:
	if (sbx.cfg.worker_reuse)
		w->busy_since = frame_now_ms();
	*out = w;
out:
	sandbox_update_live();
	pthread_mutex_unlock(&sbx.lock);
	return ret;
}

/* Return a checked-out worker: to the idle list when @reuse, else kill it. */
void sandbox_checkin(struct sandbox_worker *w, bool reuse)
{
	struct sandbox_tailq dead = TAILQ_HEAD_INITIALIZER(dead);

	if (sbx.cfg.worker_reuse) {
		w->busy_ms += frame_now_ms() - w->busy_since;
		if (w->busy_ms >= frame_cpu_share_ms(sbx.cfg.cpu_backstop_s))
			reuse = false;
	}
	pthread_mutex_lock(&sbx.lock);
	sandbox_list_del(&sbx.busy, w);
	if (reuse && w->pid > 0 && sbx.ready) {
		for (unsigned i = 0; i < w->nslots; i++)
			if (w->slots[i].forgotten || (w->slots[i].code && !w->slots[i].loaded))
				sandbox_slot_clear(&w->slots[i]);
		sandbox_list_push(&sbx.idle, w);
		/* over the cap when parked callers came back (they do not count
		 * while parked) */
		if (sbx.cfg.max_workers)
			sandbox_evict_over(sbx.cfg.max_workers);
		/* measured after its last load: it counts as that from now on */
		sbx.mem_live += w->mem - w->mem_counted;
		w->mem_counted = w->mem;
		sandbox_evict_over_budget(w);
	} else {
		sandbox_doom(&dead, w);
	}
	sandbox_update_live();
	pthread_cond_broadcast(&sbx.returned);
	pthread_mutex_unlock(&sbx.lock);
	sandbox_kill_chain(&dead);
}

void sandbox_forget(uid_t owner, const char *source, size_t srclen)
{
	uint64_t key = XXH3_64bits(source, srclen);
	struct sandbox_slot *sl, *next;
	struct sandbox_code *c;

	pthread_mutex_lock(&sbx.lock);
	c = sandbox_code_find(key, owner, source, srclen);
	/* (the code goes with its last slot: nothing of it is used after that) */
	for (sl = c ? LIST_FIRST(&c->slots) : NULL; sl; sl = next) {
		next = LIST_NEXT(sl, by_code);
		if (sl->w->busy)
			sl->forgotten = true;
		else
			sandbox_slot_clear(sl);
	}
	pthread_mutex_unlock(&sbx.lock);
}
