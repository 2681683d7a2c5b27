/*
 * route: the public API of route.h (see route_int.h for the module's files).
 *
 * Answers q/QUESTION: normalize, make sure the index is built and fresh
 * (route_ready), find the winning pattern, revalidate the winner's patterns when
 * they are older than revalidate_ms, and on a miss route the question with the LLM
 * (route_miss) and look again; the answer itself is proc_ask's.  Also the hit
 * counters (flushed to meta.json), the stats lines and shutdown.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "meta.h"
#include "proc.h"
#include "route_int.h"
#include "xalloc.h"

/* The module's state; route_int.h says which lock protects what. */
struct route_state rt = {
    .lock = PTHREAD_RWLOCK_INITIALIZER,
    .types = HMAP_INIT(route_type_eq),
    .words = HMAP_INIT(route_word_eq),
    .admit = PTHREAD_MUTEX_INITIALIZER,
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
    .flights = LIST_HEAD_INITIALIZER(rt.flights),
    .fails = TAILQ_HEAD_INITIALIZER(rt.fails),
};

/* ---- finding ------------------------------------------------------------ */

/* 0 with the winner's name and input, or -ENOENT. */
static int find(const char *nq, size_t nqlen, struct buf *type, struct buf *input,
		struct rtype **winner)
{
	struct found f = {0};
	int ret = -ENOENT;

	pthread_rwlock_rdlock(&rt.lock);
	route_find_locked(nq, nqlen, NULL, &f);
	if (f.t && !f.tie) {
		buf_reset(type);
		buf_adds(type, f.t->name);
		buf_reset(input);
		buf_add(input, buf_str(&f.input), f.input.len);
		if (!input->data)
			buf_grow(input, 1);
		if (winner)
			*winner = f.t;
		ret = 0;
	}
	pthread_rwlock_unlock(&rt.lock);
	buf_free(&f.input);
	return ret;
}

/* Find, revalidating the winner's patterns when they are older than revalidate. */
static int find_fresh(const char *nq, size_t nqlen, struct buf *type, struct buf *input,
		      struct rtype **winner)
{
	int64_t limit = (int64_t)rt.cfg.revalidate_ms * 1000000;
	int ret;

	for (int round = 0; round < 3; round++) {
		struct rtype *t = NULL;
		int64_t checked;

		ret = find(nq, nqlen, type, input, &t);
		if (ret)
			return ret;
		/* Types are never freed while the daemon runs: reading t is safe. */
		checked = atomic_load(&t->checked_ns);
		if (route_now_ns() - checked < limit) {
			*winner = t;
			return 0;
		}
		route_reload_if_changed(type->data, true);
	}
	return find(nq, nqlen, type, input, winner);
}

int route_find(const char *q, size_t len, struct buf *type, struct buf *input)
{
	struct buf nq = BUF_INIT;
	struct rtype *t;
	int ret;

	pat_normalize(q, len, &nq);
	route_ready();
	ret = find_fresh(nq.data, nq.len, type, input, &t);
	buf_free(&nq);
	return ret;
}

/* ---- answering ---------------------------------------------------------- */

/* @count: this is the read (OPEN, a query's read), counted once; a look ahead counts
 * only a failure, which is all its reader will see. */
static int route_answer(const char *q, size_t len, struct answer **ans, bool count)
{
	struct buf nq = BUF_INIT, type = BUF_INIT, input = BUF_INIT;
	struct rtype *t = NULL;
	int ret;

	*ans = NULL;
	if (len > PAT_QUESTION_MAX || memchr(q, '\0', len)) {
		ret = -ENOENT;
		goto out;
	}
	pat_normalize(q, len, &nq);
	route_ready();
	ret = find_fresh(nq.data, nq.len, &type, &input, &t);
	if (ret) {
		atomic_fetch_add(&rt.misses, 1);
		if (!rt.cfg.llm || !nq.len)
			goto out;
		if (store_readonly()) {
			/* Nothing the LLM says could be admitted: don't ask. */
			log_warn("q: '%s' matches no pattern, and the store is read-only: no "
				 "routing (mount it read-write to let the LLM add patterns)",
				 nq.data);
			ret = -EIO;
			goto out;
		}
		ret = route_miss(nq.data, nq.len);
		if (ret)
			goto out;
		ret = find_fresh(nq.data, nq.len, &type, &input, &t);
		if (ret) {
			ret = -EIO;
			goto out;
		}
	} else if (count) {
		atomic_fetch_add(&rt.hits, 1);
	}
	if (count) {
		atomic_fetch_add(&t->hits, 1);
		ret = proc_ask(type.data, input.data, input.len, ans);
	} else {
		ret = proc_peek(type.data, input.data, input.len, ans);
	}
out:
	if (count || ret)
		atomic_fetch_add(&rt.asks, 1);
	buf_free(&nq);
	buf_free(&type);
	buf_free(&input);
	return ret;
}

int route_ask(const char *q, size_t len, struct answer **ans)
{
	return route_answer(q, len, ans, true);
}

int route_peek(const char *q, size_t len, struct answer **ans)
{
	return route_answer(q, len, ans, false);
}

/* ---- the rest ----------------------------------------------------------- */

void route_init(const struct route_config *cfg)
{
	rt.cfg = *cfg;
	if (!rt.cfg.revalidate_ms)
		rt.cfg.revalidate_ms = 1000;
}

void route_set_change_hook(void (*fn)(const char *type))
{
	rt.hook = fn;
}

static void meta_edit_qhits(cJSON *meta, void *arg)
{
	meta_add_question_hits(meta, *(unsigned long *)arg);
}

void route_flush(void)
{
	struct pending {
		char *name;
		unsigned long hits;
		struct rtype *t;
	} *v = NULL;
	size_t n = 0, iter = 0;
	struct rtype *t;

	pthread_rwlock_rdlock(&rt.lock);
	while ((t = hmap_next(&rt.types, &iter))) {
		unsigned long h = atomic_exchange(&t->hits, 0);

		if (!h)
			continue;
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n].name = xstrdup(t->name);
		v[n].hits = h;
		v[n].t = t;
		n++;
	}
	pthread_rwlock_unlock(&rt.lock);
	for (size_t i = 0; i < n; i++) {
		if (store_readonly() || !store_type_exists(v[i].name) ||
		    meta_update(v[i].name, meta_edit_qhits, &v[i].hits) != 0)
			atomic_fetch_add(&v[i].t->hits, v[i].hits);
		free(v[i].name);
	}
	free(v);
}

void route_stats(struct buf *out)
{
	pthread_rwlock_rdlock(&rt.lock);
	buf_printf(out, "question_types %zu\n", hmap_count(&rt.types));
	buf_printf(out, "question_patterns %zu\n", rt.npatterns);
	pthread_rwlock_unlock(&rt.lock);
	buf_printf(out, "question_asks %lu\n", atomic_load(&rt.asks));
	buf_printf(out, "question_hits %lu\n", atomic_load(&rt.hits));
	buf_printf(out, "routing_misses %lu\n", atomic_load(&rt.misses));
	buf_printf(out, "routing_calls %lu\n", atomic_load(&rt.calls));
	buf_printf(out, "routing_admitted %lu\n", atomic_load(&rt.admitted));
	buf_printf(out, "routing_failed %lu\n", atomic_load(&rt.failed));
}

static void type_free(void *item)
{
	struct rtype *t = item;

	free(t->owords);
	route_tdata_free(&t->d);
	free(t->name);
	free(t);
}

static void word_free(void *item)
{
	struct word *w = item;

	free(w->pr.v);
	free(w->er.v);
	free(w->tr.v);
	free(w->w);
	free(w);
}

void route_shutdown(void)
{
	struct fail *f;

	route_flush();
	pthread_rwlock_wrlock(&rt.lock);
	hmap_destroy(&rt.types, type_free);
	hmap_destroy(&rt.words, word_free);
	pthread_rwlock_unlock(&rt.lock);
	pthread_mutex_lock(&rt.mu);
	for (size_t i = 0; i < rt.npending; i++)
		free(rt.pending[i]);
	free(rt.pending);
	rt.pending = NULL;
	rt.npending = 0;
	while ((f = TAILQ_FIRST(&rt.fails))) {
		TAILQ_REMOVE(&rt.fails, f, link);
		free(f->key);
		free(f);
	}
	rt.nfails = 0;
	pthread_mutex_unlock(&rt.mu);
}
