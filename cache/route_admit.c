/*
 * route_admit: what patterns must pass before they are used (see route_int.h).
 *
 * The checks of a type's own patterns against its examples (route_admit_self, no
 * lock) and against the examples of every other type (route_admit_cross, index
 * lock held), and the admission of a routing reply: its patterns must win the
 * question, take no other type's examples, and an existing type must accept the
 * inputs; a new type's procedure is synthesized from the reply; then the files are
 * written and the type is filed again.  route_admit_reply runs under rt.admit.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"
#include "llm_route.h"
#include "log.h"
#include "meta.h"
#include "proc.h"
#include "route_int.h"
#include "synth.h"
#include "xalloc.h"

/* @s for a one-line message: control bytes as '?', cut at 100 bytes.  Returns @out. */
static const char *shown(const char *s, size_t len, char out[104])
{
	size_t n = len > 100 ? 100 : len;

	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	strcpy(out + n, len > 100 ? "..." : "");
	return out;
}

/* ---- checks -------------------------------------------------------------- */

static void has_word_cb(const char *w, size_t len, void *arg)
{
	(void)w;
	(void)len;
	*(bool *)arg = true;
}

/* Every example of @d is won by @d's patterns with exactly its input (no lock). */
int route_admit_self(const struct tdata *d, struct buf *why)
{
	struct buf in = BUF_INIT;
	int ret = 0;

	for (size_t i = 0; i < d->npats; i++) {
		bool has = false;

		pat_words(&d->pats[i], has_word_cb, &has);
		if (!has) {
			buf_printf(why,
				   "pattern '%s' has no whole literal word (a word between spaces, "
				   "which is how questions find patterns): add one",
				   d->pats[i].text);
			ret = -EINVAL;
			goto out;
		}
	}
	for (size_t i = 0; i < d->nex; i++) {
		const struct rex *x = &d->ex[i];

		if (route_best_of(d->pats, d->npats, x->q, x->qlen, &in) < 0) {
			buf_printf(why, "example questions/%s.q '%s' matches no pattern", x->name,
				   x->q);
			ret = -EINVAL;
			goto out;
		}
		if (in.len != x->inlen || memcmp(in.data, x->in, in.len)) {
			char a[104], b[104];

			buf_printf(
			    why, "example questions/%s.q '%s' gives input '%s', not '%s' of %s.in",
			    x->name, x->q, shown(in.data, in.len, a), shown(x->in, x->inlen, b),
			    x->name);
			ret = -EINVAL;
			goto out;
		}
	}
out:
	buf_free(&in);
	return ret;
}

/* No example question of another type is won by @pats.  Lock held. */
int route_admit_cross(const struct rtype *self, const char *selfname, const struct pat *pats,
		      size_t n, struct buf *why)
{
	struct buf tmp = BUF_INIT;
	int ret = 0;

	for (size_t i = 0; i < n && !ret; i++) {
		char *key = route_choose_key(&pats[i]);
		struct word *w = key ? route_word_find(key) : NULL;

		free(key);
		for (size_t k = 0; w && k < w->er.n && !ret; k++) {
			struct rtype *u = w->er.v[k].t;
			const struct rex *x;
			int own;

			if (u == self || !strcmp(u->name, selfname))
				continue;
			x = &u->d.ex[w->er.v[k].i];
			if (!pat_match(&pats[i], x->q, x->qlen, &tmp))
				continue;
			own =
			    u->ok ? route_best_of(u->d.pats, u->d.npats, x->q, x->qlen, NULL) : -1;
			if ((int)pats[i].lits >= own) {
				buf_printf(why,
					   "pattern '%s' would win example questions/%s.q '%s' of "
					   "type %s: make it more specific",
					   pats[i].text, x->name, x->q, u->name);
				ret = -EINVAL;
			}
		}
	}
	buf_free(&tmp);
	return ret;
}

/* ---- a routing reply ----------------------------------------------------- */

static void meta_edit_routed(cJSON *meta, void *arg)
{
	const struct llm_config *llm = synth_llm();

	(void)arg;
	meta_set_author_llm(meta, llm_provider_name(llm->provider), llm->model ? llm->model : "",
			    "routing");
	meta_set_admission(meta, 0, true, true, NULL);
}

/* A new type's procedure, from the reply: compiled and tested in the sandbox. */
static int new_procedure(const char *name, const char *text, size_t len, struct buf *code,
			 struct buf *spec, struct llm_case **cases, int *ncases, struct buf *why)
{
	if (llm_reply_code(text, len, code) != 0) {
		buf_printf(why,
			   "type %s does not exist: the reply must hold its procedure in a "
			   "```c block",
			   name);
		return -EINVAL;
	}
	llm_reply_block(text, len, "spec", spec);
	*ncases = llm_reply_cases(text, len, cases);
	if (*ncases < 0)
		*ncases = 0;
	return proc_check_source(code->data, code->len, *cases, (size_t)*ncases, why);
}

/* Check a reply and, when admissible, write it to the store. */
int route_admit_reply(const char *nq, size_t nqlen, const char *text, size_t len, struct rreply *r,
		      struct buf *why)
{
	struct buf in = BUF_INIT, code = BUF_INIT, spec = BUF_INIT, old = BUF_INIT, all = BUF_INIT;
	struct llm_case *cases = NULL;
	struct tdata cur, comb = {0};
	struct found other = {0};
	int ncases = 0, ours, ret = -EINVAL;
	bool exists;

	memset(&cur, 0, sizeof(cur));
	if (route_best_of(r->add.pats, r->add.npats, nq, nqlen, NULL) < 0) {
		buf_printf(why, "none of the patterns matches the question '%s'", nq);
		goto out;
	}
	exists = store_type_exists(r->name);
	if (exists && store_read(r->name, "patterns", ROUTE_PATTERNS_MAX, &old) == -EFBIG) {
		buf_printf(why, "type %s has a full patterns file", r->name);
		goto out;
	}
	route_tdata_load(r->name, &cur);
	if (cur.reason) {
		buf_printf(why, "the patterns of type %s are not in use (%s): route elsewhere",
			   r->name, cur.reason);
		goto out;
	}
	/* The combination: its patterns and examples with the reply's. */
	comb.npats = cur.npats + r->add.npats;
	comb.pats = xcalloc(comb.npats ? comb.npats : 1, sizeof(*comb.pats));
	comb.nex = cur.nex + r->add.nex;
	comb.ex = xcalloc(comb.nex ? comb.nex : 1, sizeof(*comb.ex));
	/* (memcpy from NULL is undefined even for 0 bytes: new types have none yet) */
	if (cur.npats)
		memcpy(comb.pats, cur.pats, cur.npats * sizeof(*cur.pats));
	memcpy(comb.pats + cur.npats, r->add.pats, r->add.npats * sizeof(*r->add.pats));
	if (cur.nex)
		memcpy(comb.ex, cur.ex, cur.nex * sizeof(*cur.ex));
	if (r->add.nex)
		memcpy(comb.ex + cur.nex, r->add.ex, r->add.nex * sizeof(*r->add.ex));
	ret = route_admit_self(&comb, why);
	if (!ret) {
		pthread_rwlock_rdlock(&rt.lock);
		ret = route_admit_cross(route_type_find(r->name), r->name, comb.pats, comb.npats,
					why);
		if (!ret) {
			route_find_locked(nq, nqlen, route_type_find(r->name), &other);
			ours = route_best_of(comb.pats, comb.npats, nq, nqlen, &in);
			if (other.t && other.lits >= ours) {
				buf_printf(
				    why,
				    "the question is matched as well or better by a pattern of "
				    "type %s (%d literal characters against %d): make the "
				    "patterns more specific",
				    other.t->name, other.lits, ours);
				ret = -EINVAL;
			}
			/* Its example questions too: admitting them must not take questions
			 * another type answers away from it (see route_refuse_winners). */
			for (size_t i = 0; !ret && i < r->add.nex; i++) {
				const struct rex *x = &r->add.ex[i];

				buf_free(&other.input);
				memset(&other, 0, sizeof(other));
				route_find_locked(x->q, x->qlen, route_type_find(r->name), &other);
				ours = route_best_of(comb.pats, comb.npats, x->q, x->qlen, NULL);
				if (other.t && other.lits >= ours) {
					buf_printf(
					    why,
					    "the example question '%s' is answered by type %s "
					    "(its pattern has %d literal characters against "
					    "%d): route it there, or make the patterns more "
					    "specific",
					    x->q, other.t->name, other.lits, ours);
					ret = -EINVAL;
				}
			}
		}
		pthread_rwlock_unlock(&rt.lock);
	}
	free(comb.pats); /* shallow: the entries belong to cur and r->add */
	free(comb.ex);
	if (ret)
		goto out;
	/* An existing type must accept the inputs the reply maps its questions to: a
	 * question routed to the wrong type is caught here, before any file is written. */
	for (size_t i = 0; exists && i < r->add.nex; i++) {
		struct answer *a = NULL;
		const struct rex *x = &r->add.ex[i];

		ret = proc_ask(r->name, x->in, x->inlen, &a);
		if (!ret && a->rc)
			ret = a->rc;
		if (ret) {
			const char *nl = a ? memchr(a->data, '\n', a->len) : NULL;
			size_t rl =
			    a && ret == -EINVAL ? (nl ? (size_t)(nl - a->data) : a->len) : 0;
			char in[104], reason[104];

			buf_printf(why,
				   "type %s %s the input '%s' of the question '%s' (%s): it does "
				   "not answer this question; route it elsewhere",
				   r->name, ret == -EINVAL ? "rejects" : "cannot answer",
				   shown(x->in, x->inlen, in), x->q,
				   shown(rl ? a->data : "", rl, reason));
		}
		answer_put(a);
		if (ret) {
			ret = -EINVAL;
			goto out;
		}
	}
	if (!exists) {
		ret = new_procedure(r->name, text, len, &code, &spec, &cases, &ncases, why);
		if (ret)
			goto out;
		if (spec.len)
			store_write(r->name, "spec", spec.data, spec.len);
		for (int i = 0; i < ncases; i++) {
			struct buf n = BUF_INIT;

			buf_printf(&n, "tests/%s.in", cases[i].name);
			store_write(r->name, n.data, buf_str(&cases[i].in), cases[i].in.len);
			buf_reset(&n);
			buf_printf(&n, "tests/%s.out", cases[i].name);
			store_write(r->name, n.data, buf_str(&cases[i].out), cases[i].out.len);
			buf_free(&n);
		}
		/* The reply's code is admitted as any synthesis: validated against direct
		 * answers, repaired if it disagrees; synth_procedure writes source.c. */
		{
			struct proc_material m = {
			    .type = r->name,
			    .spec = spec.len ? spec.data : NULL,
			    .cases = cases,
			    .ncases = (size_t)ncases,
			    .tests_id = proc_tests_id(r->name),
			    .first_reply = text,
			    .first_reply_len = len,
			};
			struct buf serr = BUF_INIT;

			ret = synth_procedure(&m, &serr);
			if (ret) {
				buf_printf(why, "the procedure of new type %s was not admitted: %s",
					   r->name, buf_str(&serr));
				buf_free(&serr);
				goto out;
			}
			buf_free(&serr);
		}
		meta_update(r->name, meta_edit_routed, NULL);
	}
	for (size_t i = 0; i < r->add.nex; i++) {
		struct buf n = BUF_INIT;
		const struct rex *x = &r->add.ex[i];

		buf_printf(&n, "questions/%s.in", x->name);
		store_write(r->name, n.data, x->in, x->inlen);
		buf_reset(&n);
		buf_printf(&n, "questions/%s.q", x->name);
		buf_reset(&all);
		buf_add(&all, x->q, x->qlen);
		buf_addc(&all, '\n');
		store_write(r->name, n.data, all.data, all.len);
		buf_free(&n);
	}
	buf_reset(&all);
	buf_add(&all, buf_str(&old), old.len);
	if (old.len && old.data[old.len - 1] != '\n')
		buf_addc(&all, '\n');
	buf_add(&all, r->patterns.data, r->patterns.len);
	ret = store_write(r->name, "patterns", all.data, all.len);
	if (ret) {
		buf_printf(why, "cannot store the patterns: %s", strerror(-ret));
		goto out;
	}
	store_log(r->name, "routing: admitted %zu pattern%s and %zu question%s for '%s'%s",
		  r->add.npats, r->add.npats == 1 ? "" : "s", r->add.nex,
		  r->add.nex == 1 ? "" : "s", nq, exists ? "" : " (a new type)");
	route_reload(r->name, true);
	atomic_fetch_add(&rt.admitted, 1);
out:
	route_tdata_free(&cur);
	buf_free(&in);
	buf_free(&code);
	buf_free(&spec);
	buf_free(&old);
	buf_free(&all);
	buf_free(&other.input);
	llm_cases_free(cases, (size_t)ncases);
	return ret;
}
