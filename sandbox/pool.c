/*
 * pool: the live workers of the daemon side (see sandbox_int.h), prefix sandbox_.
 *
 * One compiled procedure per worker, keyed by the XXH3 of its source.  A caller
 * checks a worker out (an idle one of its source, or a reservation it then starts),
 * runs it, and checks it in (back to the idle list, or killed).  The pool bounds
 * processes: at most SANDBOX_PER_SOURCE busy per source, and max_workers in all
 * (less the parked ones), evicting least recently used idle workers, which count
 * until they have been reaped.  Every worker ends here: SIGKILL and waitpid, so no
 * zombie is ever left.  sbx.lock guards the lists; no process is killed or reaped
 * while it is held.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "sandbox_int.h"

#define SANDBOX_PER_SOURCE 4 /* live workers per source before waiting */

/* ------------------------------------------------------------------------- */
/* Lists (callers hold sbx.lock) */

static void sandbox_list_del(struct sandbox_list *l, struct sandbox_worker *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		l->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		l->tail = w->prev;
	w->prev = w->next = NULL;
	l->n--;
}

static void sandbox_list_push(struct sandbox_list *l, struct sandbox_worker *w)
{
	w->prev = NULL;
	w->next = l->head;
	if (l->head)
		l->head->prev = w;
	else
		l->tail = w;
	l->head = w;
	l->n++;
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

/* Put @w, already out of both lists, on the chain @dead to be killed.  Lock held. */
static void sandbox_doom(struct sandbox_worker **dead, struct sandbox_worker *w)
{
	w->next = *dead;
	*dead = w;
	sbx.dying++;
}

/* Idle workers of the LRU tail beyond the cap, taken out of the pool (caller holds
 * the lock, then kills the returned chain without it). */
struct sandbox_worker *sandbox_trim(unsigned limit)
{
	struct sandbox_worker *dead = NULL;

	while (sbx.idle.n + sbx.busy.n - sbx.parked > limit && sbx.idle.tail) {
		struct sandbox_worker *w = sbx.idle.tail;

		sandbox_list_del(&sbx.idle, w);
		sandbox_doom(&dead, w);
		sbx.stats.evictions += sbx.ready; /* not at shutdown */
	}
	return dead;
}

/* Kill and reap a chain from sandbox_doom(); lock not held.  @killed: the
 * chain is counted in sbx.killed (evictions, see sandbox_checkout). */
void sandbox_kill_chain(struct sandbox_worker *w, bool killed)
{
	unsigned n = 0;

	for (; w; n++) {
		struct sandbox_worker *next = w->next;

		sandbox_worker_kill(w);
		w = next;
	}
	if (!n)
		return;
	pthread_mutex_lock(&sbx.lock);
	sbx.dying -= n;
	if (killed)
		sbx.killed -= n;
	pthread_cond_broadcast(&sbx.returned);
	pthread_mutex_unlock(&sbx.lock);
}

void sandbox_update_live(void)
{
	sbx.stats.live_workers = sbx.idle.n + sbx.busy.n;
}

/* Reap evicted workers (see sandbox_checkout): their request pipe was closed, so
 * they are exiting and reap their own run children (a SIGKILL would leave the
 * child forked ahead to PID 1); those not gone within the grace are killed. */
static void sandbox_reap_chain(struct sandbox_worker *v)
{
	int64_t deadline = frame_now_ms() + SANDBOX_EXIT_GRACE_MS;

	for (struct sandbox_worker *x = v; x; x = x->next) {
		while (x->pid > 0) {
			pid_t r = waitpid(x->pid, NULL, WNOHANG);

			if (r == x->pid || (r < 0 && errno != EINTR)) {
				x->pid = 0;
			} else if (frame_now_ms() >= deadline) {
				break; /* sandbox_kill_chain kills and reaps it */
			} else if (r == 0) {
				usleep(200);
			}
		}
	}
	sandbox_kill_chain(v, true);
}

/*
 * Take an idle worker of this source, or reserve a new one (pid 0, to be
 * started by the caller).  Waits when SANDBOX_PER_SOURCE are all busy, or when
 * the cap is reached by busy and dying workers: the cap bounds processes, so an
 * evicted worker counts until it has been reaped.
 */
int sandbox_checkout(uint64_t key, const char *src, size_t len, struct sandbox_worker **out)
{
	struct sandbox_worker *w, *dead = NULL, *chain;
	int ret = 0;

	pthread_mutex_lock(&sbx.lock);
	for (;;) {
		unsigned mine = 0;

		if (!sbx.ready) {
			ret = -ESHUTDOWN;
			goto out;
		}
		for (w = sbx.idle.head; w; w = w->next)
			if (sandbox_same_source(w, key, src, len))
				break;
		if (w) {
			sandbox_list_del(&sbx.idle, w);
			sandbox_list_push(&sbx.busy, w);
			sbx.stats.pool_hits++;
			goto found;
		}
		for (w = sbx.busy.head; w; w = w->next)
			mine += !w->parked && sandbox_same_source(w, key, src, len);
		if (mine >= SANDBOX_PER_SOURCE) {
			pthread_cond_wait(&sbx.returned, &sbx.lock);
			continue;
		}
		if (!sbx.cfg.max_workers ||
		    sbx.idle.n + sbx.busy.n + sbx.dying - sbx.killed - sbx.parked <
			sbx.cfg.max_workers)
			break;
		/* Make room: evict least recently used idle workers.  An idle
		 * worker runs no procedure code, and with its request pipe closed
		 * it never will: it ends its children and exits.  The caller reaps
		 * them (sandbox_reap_chain, after the lock is dropped) before it
		 * starts the new worker, so the cap bounds processes: a reservation
		 * in busy and its victims are never alive together past it. */
		chain = sandbox_trim(sbx.cfg.max_workers - 1);
		if (chain) {
			struct sandbox_worker *v = chain;

			for (;; v = v->next) {
				/* EOF on its requests: an idle worker then ends its run
				 * children and reaps them itself (worker_serve) */
				close(v->req_fd);
				v->req_fd = -1;
				sbx.killed++;
				if (!v->next)
					break;
			}
			v->next = dead;
			dead = chain;
		} else {
			pthread_cond_wait(&sbx.returned, &sbx.lock);
		}
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
found:
	*out = w;
out:
	sandbox_update_live();
	pthread_mutex_unlock(&sbx.lock);
	sandbox_reap_chain(dead);
	return ret;
}

/* Return a checked-out worker: to the idle list when @reuse, else kill it. */
void sandbox_checkin(struct sandbox_worker *w, bool reuse)
{
	struct sandbox_worker *dead = NULL;

	pthread_mutex_lock(&sbx.lock);
	sandbox_list_del(&sbx.busy, w);
	if (reuse && w->pid > 0 && !w->forgotten && sbx.ready) {
		sandbox_list_push(&sbx.idle, w);
		dead = sandbox_trim(sbx.cfg.max_workers);
	} else {
		sandbox_doom(&dead, w);
	}
	sandbox_update_live();
	pthread_cond_broadcast(&sbx.returned);
	pthread_mutex_unlock(&sbx.lock);
	sandbox_kill_chain(dead, false);
}

void sandbox_forget(const char *source, size_t srclen)
{
	uint64_t key = XXH3_64bits(source, srclen);
	struct sandbox_worker *w, *next, *dead = NULL;

	pthread_mutex_lock(&sbx.lock);
	for (w = sbx.idle.head; w; w = next) {
		next = w->next;
		if (sandbox_same_source(w, key, source, srclen)) {
			sandbox_list_del(&sbx.idle, w);
			sandbox_doom(&dead, w);
		}
	}
	for (w = sbx.busy.head; w; w = w->next)
		if (sandbox_same_source(w, key, source, srclen))
			w->forgotten = true;
	sandbox_update_live();
	pthread_mutex_unlock(&sbx.lock);
	sandbox_kill_chain(dead, false);
}
