/*
 * pool: the live workers of the daemon side (see sandbox_int.h), prefix sandbox_.
 *
 * One compiled procedure per worker, keyed by the XXH3 of its source.  A caller
 * checks a worker out (an idle one of its source, or a reservation it then starts),
 * runs it, and checks it in (back to the idle list, or killed).  The pool bounds
 * processes: at most SANDBOX_PER_SOURCE busy per source, and max_workers in all
 * (less the parked ones), evicting least recently used idle workers, which count
 * until they have been reaped.  Every worker ends here, so no zombie is ever left:
 * an evicted one by closing its pipes (it ends its run children and exits on its
 * own) and the reaper thread's waitpid, any other by SIGKILL and waitpid.
 * sbx.lock guards the lists; no process is killed or reaped while it is held.
 *
 * Eviction runs one step ahead: a cold start that reserves the last free place
 * also evicts the least recently used idle worker, which exits while the new one
 * compiles, so the next cold start finds a place free instead of waiting for an
 * exit (about half a millisecond here).  The pool then keeps max_workers - 1
 * compiled types when it is full; below SANDBOX_AHEAD_MIN it does not.
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
}

/* The least recently used idle worker, or NULL. */
static struct sandbox_worker *sandbox_idle_lru(void)
{
	return TAILQ_LAST(&sbx.idle.q, sandbox_tailq);
}

static bool sandbox_same_source(const struct sandbox_worker *w, uint64_t key, const char *src,
				size_t len)
{
	return w->key == key && w->srclen == len && memcmp(w->source, src, len) == 0;
}

/* ------------------------------------------------------------------------- */
/* One worker process */

static void sandbox_worker_free(struct sandbox_worker *w)
{
	if (w->req_fd >= 0)
		close(w->req_fd);
	if (w->resp_fd >= 0)
		close(w->resp_fd);
	free(w->source);
	free(w);
}

/* SIGKILL to the worker's process group: the worker and the child of the run in
 * progress (which is not ours to reap: it is reparented and reaped by init). */
void sandbox_group_kill(pid_t pid)
{
	if (kill(-pid, SIGKILL) < 0)
		kill(pid, SIGKILL);
}

/* SIGKILL and reap: the one way a worker ends, so no zombie is ever left. */
static void sandbox_worker_kill(struct sandbox_worker *w)
{
	if (w->pid > 0) {
		sandbox_group_kill(w->pid);
		while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
			;
		w->pid = 0;
	}
	sandbox_worker_free(w);
}

/* ------------------------------------------------------------------------- */
/* The pool */

/* @w leaves the pool (lock held): its memory no longer counts. */
static void sandbox_mem_forget(struct sandbox_worker *w)
{
	if (w->mem_counted)
		sbx.mem_live -= w->mem;
	w->mem_counted = false;
}

/* Put @w, already out of both lists, on the chain @dead to be killed.  Lock held. */
static void sandbox_doom(struct sandbox_tailq *dead, struct sandbox_worker *w)
{
	sandbox_mem_forget(w);
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
	close(w->req_fd);
	close(w->resp_fd);
	w->req_fd = w->resp_fd = -1;
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

/*
 * Take an idle worker of this source, or reserve a new one (pid 0, to be
 * started by the caller).  Waits when SANDBOX_PER_SOURCE are all busy, or when
 * the cap is reached by busy and dying workers: the cap bounds processes, so an
 * evicted worker counts until it has been reaped.
 */
int sandbox_checkout(uint64_t key, const char *src, size_t len, struct sandbox_worker **out)
{
	struct sandbox_worker *w;
	int ret = 0;

	pthread_mutex_lock(&sbx.lock);
	for (;;) {
		unsigned mine = 0;

		if (!sbx.ready) {
			ret = -ESHUTDOWN;
			goto out;
		}
		TAILQ_FOREACH(w, &sbx.idle.q, link)
			if (sandbox_same_source(w, key, src, len))
				break;
		if (w) {
			sandbox_list_del(&sbx.idle, w);
			sandbox_list_push(&sbx.busy, w);
			sbx.stats.pool_hits++;
			goto found;
		}
		TAILQ_FOREACH(w, &sbx.busy.q, link)
			mine += !w->parked && sandbox_same_source(w, key, src, len);
		if (mine >= SANDBOX_PER_SOURCE) {
			pthread_cond_wait(&sbx.returned, &sbx.lock);
			continue;
		}
		if (!sbx.cfg.max_workers ||
		    sbx.idle.n + sbx.busy.n + sbx.dying - sbx.parked < sbx.cfg.max_workers)
			break;
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
	w = calloc(1, sizeof(*w));
	if (w)
		w->source = malloc(len ? len : 1);
	if (!w || !w->source) {
		if (w)
			free(w);
		ret = -ENOMEM;
		goto out;
	}
	memcpy(w->source, src, len);
	sbx.stats.pool_misses++;
	w->srclen = len;
	w->key = key;
	w->req_fd = w->resp_fd = -1;
	sandbox_list_push(&sbx.busy, w);
	/* One step ahead (see the top of this file): the victim exits while this
	 * worker starts and compiles. */
	if (sbx.cfg.max_workers >= SANDBOX_AHEAD_MIN)
		sandbox_evict_over(sbx.cfg.max_workers - 1);
found:
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

	pthread_mutex_lock(&sbx.lock);
	sandbox_list_del(&sbx.busy, w);
	if (reuse && w->pid > 0 && !w->forgotten && sbx.ready) {
		sandbox_list_push(&sbx.idle, w);
		/* over the cap when parked callers came back (they do not count
		 * while parked) */
		if (sbx.cfg.max_workers)
			sandbox_evict_over(sbx.cfg.max_workers);
		if (w->mem && !w->mem_counted) {
			/* measured when it compiled: it counts from now on */
			sbx.mem_live += w->mem;
			w->mem_counted = true;
		}
		sandbox_evict_over_budget(w);
	} else {
		sandbox_doom(&dead, w);
	}
	sandbox_update_live();
	pthread_cond_broadcast(&sbx.returned);
	pthread_mutex_unlock(&sbx.lock);
	sandbox_kill_chain(&dead);
}

void sandbox_forget(const char *source, size_t srclen)
{
	uint64_t key = XXH3_64bits(source, srclen);
	struct sandbox_tailq dead = TAILQ_HEAD_INITIALIZER(dead);
	struct sandbox_worker *w, *next;

	pthread_mutex_lock(&sbx.lock);
	for (w = TAILQ_FIRST(&sbx.idle.q); w; w = next) {
		next = TAILQ_NEXT(w, link);
		if (sandbox_same_source(w, key, source, srclen)) {
			sandbox_list_del(&sbx.idle, w);
			sandbox_doom(&dead, w);
		}
	}
	TAILQ_FOREACH(w, &sbx.busy.q, link)
		if (sandbox_same_source(w, key, source, srclen))
			w->forgotten = true;
	sandbox_update_live();
	pthread_mutex_unlock(&sbx.lock);
	sandbox_kill_chain(&dead);
}
