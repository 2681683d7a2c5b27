/*
 * route_llm: a question no pattern wins, routed by the LLM (see route_int.h).
 *
 * The request names the types nearest to the question by shared words (rarer words
 * weigh more) with their specs, patterns and examples; the reply names a type (or
 * says none fits) with patterns and example questions, and is admitted by
 * route_admit_reply under rt.admit, or sent back with the reason up to
 * repair_rounds times.  Concurrent misses of one question make one routing (a
 * flight), and a failed question is not routed again for fail_ttl.  No lock is
 * held across the LLM call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <xxhash.h>

#include "llm.h"
#include "llm_route.h"
#include "log.h"
#include "route_int.h"
#include "synth.h"
#include "xalloc.h"

/* ---- remembered failures (rt.mu held) ------------------------------------ */

/* Whether @key failed within fail_ttl; forgets the failures past it. */
static bool fail_remembered(const char *key)
{
	int64_t now = route_now_ns();
	struct fail *f, *next;

	for (f = TAILQ_FIRST(&rt.fails); f; f = next) {
		next = TAILQ_NEXT(f, link);
		if (f->until <= now) {
			TAILQ_REMOVE(&rt.fails, f, link);
			free(f->key);
			free(f);
			rt.nfails--;
			continue;
		}
		if (!strcmp(f->key, key))
			return true;
	}
	return false;
}

/* Takes rt.mu itself. */
static void fail_remember(const char *key)
{
	struct fail *f;

	if (!rt.cfg.fail_ttl_ms)
		return;
	pthread_mutex_lock(&rt.mu);
	if (rt.nfails >= ROUTE_FAILS_MAX) { /* bounded: forget the oldest */
		f = TAILQ_LAST(&rt.fails, route_fails);
		TAILQ_REMOVE(&rt.fails, f, link);
		free(f->key);
		free(f);
		rt.nfails--;
	}
	f = xcalloc(1, sizeof(*f));
	f->key = xstrdup(key);
	f->until = route_now_ns() + (int64_t)rt.cfg.fail_ttl_ms * 1000000;
	TAILQ_INSERT_HEAD(&rt.fails, f, link);
	rt.nfails++;
	pthread_mutex_unlock(&rt.mu);
}

/* ---- the request -------------------------------------------------------- */

struct near {
	char *name;
	double score;
	struct buf examples;
};

static int cmp_near(const void *a, const void *b)
{
	const struct rtype *x = *(struct rtype *const *)a, *y = *(struct rtype *const *)b;

	return x->score < y->score ? 1 : x->score > y->score ? -1 : strcmp(x->name, y->name);
}

/* The types nearest to @nq by shared words (rarer words weigh more). */
static size_t nearest(const char *nq, size_t nqlen, struct near *out, size_t max)
{
	struct wordset ws = {0};
	struct rtype **cand = NULL;
	size_t ncand = 0, n = 0;

	route_wordset_add_text(&ws, nq, nqlen);
	route_wordset_unique(&ws);
	pthread_rwlock_wrlock(&rt.lock); /* scores live in the types */
	rt.epoch++;
	for (size_t i = 0; i < ws.n; i++) {
		struct word *w = route_word_find(ws.w[i]);

		if (!w || !w->tr.n || w->tr.n > ROUTE_COMMON_WORD)
			continue;
		for (size_t k = 0; k < w->tr.n; k++) {
			struct rtype *t = w->tr.v[k].t;

			if (t->epoch != rt.epoch) {
				t->epoch = rt.epoch;
				t->score = 0;
				cand = xrealloc(cand, (ncand + 1) * sizeof(*cand));
				cand[ncand++] = t;
			}
			t->score += 1.0 / (double)w->tr.n;
		}
	}
	if (ncand)
		qsort(cand, ncand, sizeof(*cand), cmp_near);
	for (size_t i = 0; i < ncand && n < max; i++) {
		struct rtype *t = cand[i];

		memset(&out[n], 0, sizeof(out[n]));
		out[n].name = xstrdup(t->name);
		out[n].score = t->score;
		for (size_t k = 0; k < t->d.nex && k < ROUTE_NEAR_EXAMPLES; k++)
			buf_printf(&out[n].examples, "%s => %s\n", t->d.ex[k].q, t->d.ex[k].in);
		n++;
	}
	pthread_rwlock_unlock(&rt.lock);
	for (size_t i = 0; i < ws.n; i++)
		free(ws.w[i]);
	free(ws.w);
	free(cand);
	return n;
}

/* ---- the reply ---------------------------------------------------------- */

static void trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t' || **s == '\r'))
		(*s)++;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
		(*e)--;
}

/* Read the route, patterns and questions blocks. */
static int parse_reply(const char *text, size_t len, struct rreply *r, struct buf *why)
{
	struct buf b = BUF_INIT, nq = BUF_INIT;
	const char *p, *e;
	int ret = -EINVAL;

	if (llm_reply_block(text, len, "route", &b) == 0) {
		buf_adds(why, "the reply has no ```route block");
		goto out;
	}
	for (p = b.data; p < b.data + b.len;) {
		const char *le = memchr(p, '\n', (size_t)(b.data + b.len - p)), *s = p;

		e = le ? le : b.data + b.len;
		p = le ? le + 1 : e;
		trim(&s, &e);
		if (e - s > 5 && !strncasecmp(s, "none:", 5)) {
			s += 5;
			trim(&s, &e);
			r->none = true;
			buf_add(&r->reason, s, (size_t)(e - s));
			ret = 0;
			goto out;
		}
		if (e - s > 5 && !strncasecmp(s, "type:", 5)) {
			s += 5;
			trim(&s, &e);
			if (!store_type_valid(s, (size_t)(e - s))) {
				buf_printf(
				    why,
				    "'%.*s' is not a type name (1 to 128 of A-Z a-z 0-9 . _ + -)",
				    (int)(e - s > 130 ? 130 : e - s), s);
				goto out;
			}
			memcpy(r->name, s, (size_t)(e - s));
			r->name[e - s] = '\0';
		}
	}
	if (!r->name[0]) {
		buf_adds(why, "the ```route block names no `type: NAME` (nor `none: REASON`)");
		goto out;
	}
	llm_reply_block(text, len, "patterns", &r->patterns);
	route_tdata_parse(&r->add, r->patterns.data, r->patterns.len);
	if (r->add.reason) {
		buf_printf(why, "a pattern does not parse: %s", r->add.reason);
		goto out;
	}
	if (!r->add.npats) {
		buf_adds(why, "the ```patterns block holds no pattern");
		goto out;
	}
	llm_reply_block(text, len, "questions", &b);
	for (p = b.data; p < b.data + b.len && r->add.nex < 64;) {
		const char *le = memchr(p, '\n', (size_t)(b.data + b.len - p)), *s = p, *a;
		struct rex *x;

		e = le ? le : b.data + b.len;
		p = le ? le + 1 : e;
		a = memmem(s, (size_t)(e - s), " => ", 4);
		if (!a)
			continue;
		pat_normalize(s, (size_t)(a - s), &nq);
		s = a + 4;
		trim(&s, &e);
		if (!nq.len || e - s > ROUTE_EXAMPLE_BYTES)
			continue;
		r->add.ex = xrealloc(r->add.ex, (r->add.nex + 1) * sizeof(*r->add.ex));
		x = &r->add.ex[r->add.nex++];
		x->qlen = nq.len;
		x->q = buf_steal(&nq);
		x->in = xstrndup(s, (size_t)(e - s));
		x->inlen = (size_t)(e - s);
		x->name = xasprintf("llm-%016llx", (unsigned long long)XXH3_64bits(x->q, x->qlen));
	}
	ret = 0;
out:
	buf_free(&b);
	buf_free(&nq);
	return ret;
}

static void rreply_free(struct rreply *r)
{
	buf_free(&r->reason);
	buf_free(&r->patterns);
	route_tdata_free(&r->add);
}

/* ---- one routing -------------------------------------------------------- */

static int route_llm(const char *nq, size_t nqlen)
{
	struct near near[ROUTE_NEAREST];
	struct llm_route_type types[ROUTE_NEAREST];
	struct buf system = BUF_INIT, user = BUF_INIT, prev = BUF_INIT, failure = BUF_INIT;
	struct buf specs[ROUTE_NEAREST], pats[ROUTE_NEAREST];
	size_t n = nearest(nq, nqlen, near, ROUTE_NEAREST);
	int ret = -EIO;

	for (size_t i = 0; i < n; i++) {
		memset(&specs[i], 0, sizeof(specs[i]));
		memset(&pats[i], 0, sizeof(pats[i]));
		store_read(near[i].name, "spec", 8192, &specs[i]);
		store_read(near[i].name, "patterns", 8192, &pats[i]);
		types[i].name = near[i].name;
		types[i].spec = specs[i].len ? specs[i].data : NULL;
		types[i].patterns = pats[i].len ? pats[i].data : NULL;
		types[i].examples = near[i].examples.len ? near[i].examples.data : NULL;
	}
	for (unsigned round = 0; round <= rt.cfg.repair_rounds; round++) {
		struct llm_route_input in = {nq, types, n, prev.len ? prev.data : NULL,
					     failure.len ? failure.data : NULL};
		struct llm_reply reply = {0};
		struct rreply r = {0};
		struct buf why = BUF_INIT;
		int rc;

		buf_reset(&system);
		buf_reset(&user);
		llm_route_prompt(&in, &system, &user);
		atomic_fetch_add(&rt.calls, 1);
		rc = synth_call(system.data, user.data, &reply, &why);
		if (rc) {
			log_warn("q: routing '%s': %s", nq, why.data);
			buf_free(&why);
			llm_reply_free(&reply);
			break;
		}
		rc = parse_reply(buf_str(&reply.text), reply.text.len, &r, &why);
		if (!rc && r.none) {
			log_info("q: '%s' has no procedure: %s", nq, buf_str(&r.reason));
			rreply_free(&r);
			buf_free(&why);
			llm_reply_free(&reply);
			break;
		}
		if (!rc) {
			pthread_mutex_lock(&rt.admit);
			rc = route_admit_reply(nq, nqlen, buf_str(&reply.text), reply.text.len, &r,
					       &why);
			pthread_mutex_unlock(&rt.admit);
		}
		if (!rc) {
			ret = 0;
			rreply_free(&r);
			buf_free(&why);
			llm_reply_free(&reply);
			break;
		}
		log_warn("q: routing '%s', round %u: not admitted: %s", nq, round, why.data);
		if (r.name[0] && store_type_exists(r.name))
			store_log(r.name, "routing '%s': not admitted: %s", nq, why.data);
		buf_reset(&prev);
		buf_add(&prev, buf_str(&reply.text), reply.text.len);
		buf_reset(&failure);
		buf_add(&failure, why.data, why.len);
		rreply_free(&r);
		buf_free(&why);
		llm_reply_free(&reply);
	}
	for (size_t i = 0; i < n; i++) {
		free(near[i].name);
		buf_free(&near[i].examples);
		buf_free(&specs[i]);
		buf_free(&pats[i]);
	}
	buf_free(&system);
	buf_free(&user);
	buf_free(&prev);
	buf_free(&failure);
	return ret;
}

/* Concurrent misses of one question make one routing. */
int route_miss(const char *nq, size_t nqlen)
{
	char *key = route_lowered(nq, nqlen);
	struct flight *f;
	int ret;

	pthread_mutex_lock(&rt.mu);
	if (fail_remembered(key)) {
		pthread_mutex_unlock(&rt.mu);
		free(key);
		return -EIO;
	}
	LIST_FOREACH(f, &rt.flights, link)
		if (!strcmp(f->key, key))
			break;
	if (f) {
		f->refs++;
		while (!f->done)
			pthread_cond_wait(&rt.cond, &rt.mu);
		ret = f->ret;
		if (--f->refs == 0) {
			free(f->key);
			free(f);
		}
		pthread_mutex_unlock(&rt.mu);
		free(key);
		return ret;
	}
	f = xcalloc(1, sizeof(*f));
	f->key = xstrdup(key);
	f->refs = 1;
	LIST_INSERT_HEAD(&rt.flights, f, link);
	pthread_mutex_unlock(&rt.mu);

	ret = route_llm(nq, nqlen);
	if (ret) {
		atomic_fetch_add(&rt.failed, 1);
		fail_remember(key);
	}
	pthread_mutex_lock(&rt.mu);
	LIST_REMOVE(f, link);
	f->done = true;
	f->ret = ret;
	pthread_cond_broadcast(&rt.cond);
	if (--f->refs == 0) {
		free(f->key);
		free(f);
	}
	pthread_mutex_unlock(&rt.mu);
	free(key);
	return ret;
}
