/*
 * synth_validate: validation of a synthesized procedure (see synth.h): the
 * direct-answers request (no code shown), the expectations it yields and their
 * withdrawal, running a version on them, the N-version comparison on derived
 * inputs, the evidence for meta.json and the standing answers kept as
 * tests/llm-HASH.in|.out.  Expectations are answers the LLM gave without seeing
 * code; every version must reproduce them, or the LLM withdraws them.
 */
#include "synth_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "meta.h"
#include "proc.h"
#include "sandbox.h"
#include "store.h"
#include "xalloc.h"

static bool same_bytes(const struct buf *a, const char *s, size_t n)
{
	return a->len == n && !memcmp(buf_str(a), s, n);
}

/* Whether tests/ already has a case for this input (a person's or an earlier llm- one). */
static const struct llm_case *synth_case_for(const struct proc_material *m, const char *in,
					     size_t n)
{
	for (size_t i = 0; i < m->ncases; i++)
		if (same_bytes(&m->cases[i].in, in, n))
			return &m->cases[i];
	return NULL;
}

void synth_event(struct synth_run *r, const char *kind, const struct buf *in, const char *said,
		 const char *expected, const char *resolution)
{
	cJSON *e = meta_new_object();
	struct buf q = BUF_INIT;

	synth_quote(&q, buf_str(in), in->len);
	cJSON_AddStringToObject(e, "kind", kind);
	cJSON_AddStringToObject(e, "input", q.data);
	cJSON_AddStringToObject(e, "procedure", said);
	cJSON_AddStringToObject(e, "expected", expected);
	cJSON_AddStringToObject(e, "resolution", resolution);
	cJSON_AddItemToArray(r->events, e);
	buf_free(&q);
}

/* Set the resolution of every open event (an agreement was reached: the code was fixed). */
void synth_events_resolve(struct synth_run *r, const char *resolution)
{
	cJSON *e;

	cJSON_ArrayForEach(e, r->events)
	{
		cJSON *res = cJSON_GetObjectItemCaseSensitive(e, "resolution");

		if (cJSON_IsString(res) && !strcmp(res->valuestring, "open"))
			cJSON_SetValuestring(res, resolution);
	}
}

static void synth_add_expect(struct synth_run *r, const struct llm_case *c, bool reject)
{
	const struct llm_case *known;
	struct expect *e;

	if (r->nex >= SYNTH_MAX_EXPECT)
		return;
	for (size_t i = 0; i < r->nex; i++)
		if (same_bytes(&r->ex[i].in, buf_str(&c->in), c->in.len))
			return; /* the first answer for an input stands */
	known = synth_case_for(r->m, buf_str(&c->in), c->in.len);
	if (known) {
		/* tests/ wins (a person's case always; an earlier llm- one was admitted). */
		if (reject || !(known->out.len == c->out.len + 1 &&
				!memcmp(buf_str(&known->out), buf_str(&c->out), c->out.len))) {
			struct buf q = BUF_INIT;

			synth_quote(&q, buf_str(&c->in), c->in.len);
			store_log(r->m->type,
				  "validation: the direct answer for %s differs from tests/%s, "
				  "which wins",
				  q.data, known->name);
			buf_free(&q);
		}
		return;
	}
	r->ex = xrealloc(r->ex, (r->nex + 1) * sizeof(*r->ex));
	e = &r->ex[r->nex++];
	memset(e, 0, sizeof(*e));
	buf_add(&e->in, buf_str(&c->in), c->in.len);
	buf_grow(&e->in, 0);
	buf_add(&e->out, buf_str(&c->out), c->out.len);
	if (!reject)
		buf_addc(&e->out, '\n');
	e->reject = reject;
}

/* The prompt of a direct-answers request for @inputs and @picks more. */
static void synth_answers_prompt(const struct synth_run *r, const struct llm_case *inputs, size_t n,
				 unsigned picks, struct buf *system, struct buf *user)
{
	struct llm_answers_input ain = {0};

	ain.type = r->m->type;
	ain.spec = r->m->spec;
	ain.cases = r->m->cases;
	ain.ncases = r->m->ncases;
	ain.inputs = inputs;
	ain.ninputs = n;
	ain.picks = picks;
	llm_prompt_answers(&ain, system, user);
}

/*
 * A direct-answers call made (@rc of synth_call, the reply in @reply): account
 * it, keep the exchange and, with @use, add the answers as expectations.
 */
static int synth_answers_take(struct synth_run *r, int rc, const struct buf *system,
			      const struct buf *user, const struct llm_reply *reply, bool use)
{
	struct llm_case *ans = NULL, *rej = NULL;
	int nans = 0, nrej = 0;
	size_t before = r->nex;

	rc = synth_run_account(r, rc, reply);
	r->answer_calls++;
	synth_keep_exchange(r->m, "answers", system, user, rc ? NULL : reply);
	if (rc || !use)
		return rc;
	nans = llm_reply_lines(buf_str(&reply->text), reply->text.len, "answers", &ans);
	nrej = llm_reply_lines(buf_str(&reply->text), reply->text.len, "rejects", &rej);
	for (int i = 0; i < nans; i++)
		synth_add_expect(r, &ans[i], false);
	for (int i = 0; i < nrej; i++)
		synth_add_expect(r, &rej[i], true);
	store_log(r->m->type,
		  "validation: direct answers (no code shown): %d answer%s, %d reject%s, "
		  "%zu new expectation%s",
		  nans, nans == 1 ? "" : "s", nrej, nrej == 1 ? "" : "s", r->nex - before,
		  r->nex - before == 1 ? "" : "s");
	llm_cases_free(ans, nans > 0 ? (size_t)nans : 0);
	llm_cases_free(rej, nrej > 0 ? (size_t)nrej : 0);
	return 0;
}

/*
 * The separate request: answers for @inputs (and @picks inputs of the LLM's own
 * choosing), never showing code.  Adds the answers as expectations.
 */
int synth_request_answers(struct synth_run *r, const struct llm_case *inputs, size_t n,
			  unsigned picks, struct buf *err)
{
	struct buf system = BUF_INIT, user = BUF_INIT;
	struct llm_reply reply = {0};
	int rc;

	synth_answers_prompt(r, inputs, n, picks, &system, &user);
	buf_reset(err);
	rc = synth_call(system.data, user.data, &reply, err);
	rc = synth_answers_take(r, rc, &system, &user, &reply, true);
	llm_reply_free(&reply);
	buf_free(&system);
	buf_free(&user);
	return rc;
}

/* The first direct-answers request in flight: the thread reads and writes only this. */
struct synth_answers {
	pthread_t tid;
	bool threaded;
	struct buf system, user, err;
	struct llm_reply reply;
	int rc;
	struct buf *asked; /* the inputs it asks for, to tell the later ones */
	size_t nasked;
};

static void *synth_answers_main(void *arg)
{
	struct synth_answers *a = arg;

	a->rc = synth_call_paid(a->system.data, a->user.data, &a->reply, &a->err);
	return NULL;
}

void synth_answers_begin(struct synth_run *r)
{
	struct synth_answers *a;

	if (r->answers || r->answers_done)
		return;
	a = xcalloc(1, sizeof(*a));
	if (synth_budget_take(&a->err)) {
		buf_free(&a->err);
		free(a);
		return;
	}
	synth_answers_prompt(r, r->asked, r->nasked, SYNTH_PICKS, &a->system, &a->user);
	a->asked = xcalloc(r->nasked ? r->nasked : 1, sizeof(*a->asked));
	for (size_t i = 0; i < r->nasked; i++) {
		a->asked[i] = (struct buf)BUF_INIT;
		buf_add(&a->asked[i], buf_str(&r->asked[i].in), r->asked[i].in.len);
	}
	a->nasked = r->nasked;
	a->threaded = pthread_create(&a->tid, NULL, synth_answers_main, a) == 0;
	if (!a->threaded)
		synth_answers_main(a); /* no thread to spare: the two calls in turn */
	r->answers = a;
}

/* Whether @a asked for input @in. */
static bool synth_answers_asked(const struct synth_answers *a, const struct buf *in)
{
	for (size_t i = 0; i < a->nasked; i++)
		if (same_bytes(&a->asked[i], buf_str(in), in->len))
			return true;
	return false;
}

int synth_answers_end(struct synth_run *r, bool use, struct buf *err)
{
	struct synth_answers *a = r->answers;
	struct llm_case *late = NULL;
	size_t nlate = 0;
	int rc;

	r->answers = NULL;
	if (a->threaded)
		pthread_join(a->tid, NULL);
	buf_reset(err);
	buf_add(err, buf_str(&a->err), a->err.len);
	rc = synth_answers_take(r, a->rc, &a->system, &a->user, &a->reply, use);
	if (!rc && use) {
		/* Readers that began waiting after the request went out: their inputs
		 * get direct answers too, in a request of their own. */
		synth_refresh_asked(r);
		for (size_t i = 0; i < r->nasked; i++)
			if (!synth_answers_asked(a, &r->asked[i].in)) {
				late = xrealloc(late, (nlate + 1) * sizeof(*late));
				late[nlate++] = r->asked[i];
			}
		if (nlate)
			rc = synth_request_answers(r, late, nlate, 0, err);
		free(late); /* its cases are r->asked's */
	}
	for (size_t i = 0; i < a->nasked; i++)
		buf_free(&a->asked[i]);
	free(a->asked);
	llm_reply_free(&a->reply);
	buf_free(&a->system);
	buf_free(&a->user);
	buf_free(&a->err);
	free(a);
	return rc;
}

/* What a run said, in words: "'A'", "rejected ('why')", "failed (why)". */
static void synth_outcome(struct buf *b, int rc, const struct buf *out, const struct buf *err)
{
	if (rc == 0) {
		synth_quote(b, buf_str(out), out->len);
	} else if (rc == -EINVAL) {
		buf_adds(b, "that it is rejected (");
		synth_quote(b, buf_str(out), out->len);
		buf_adds(b, ")");
	} else {
		buf_printf(b, "nothing: the run failed (%s)", buf_str(err));
	}
}

/*
 * Run @code on every expectation still standing.  Returns the number of
 * disagreements, described in @why (one line each) and recorded as open events.
 */
unsigned synth_check_expect(struct synth_run *r, const struct buf *code, struct buf *why)
{
	struct buf out = BUF_INIT, err = BUF_INIT, said = BUF_INIT, exp = BUF_INIT;
	unsigned bad = 0;

	for (size_t i = 0; i < r->nex; i++) {
		struct expect *e = &r->ex[i];
		int rc;

		if (e->withdrawn)
			continue;
		buf_reset(&out);
		buf_reset(&err);
		rc = sandbox_run(geteuid(), code->data, code->len, buf_str(&e->in), e->in.len, &out,
				 &err);
		if (e->reject ? rc == -EINVAL
			      : rc == 0 && same_bytes(&out, buf_str(&e->out), e->out.len))
			continue;
		bad++;
		buf_reset(&said);
		buf_reset(&exp);
		synth_outcome(&said, rc, &out, &err);
		if (e->reject) {
			buf_adds(&exp, "that it is rejected (");
			synth_quote(&exp, buf_str(&e->out), e->out.len);
			buf_adds(&exp, ")");
		} else {
			synth_quote(&exp, buf_str(&e->out), e->out.len);
		}
		buf_adds(why, "input ");
		synth_quote(why, buf_str(&e->in), e->in.len);
		buf_printf(why, ": the procedure said %s, the direct answer was %s\n", said.data,
			   exp.data);
		synth_event(r, "direct", &e->in, said.data, exp.data, "open");
	}
	buf_free(&out);
	buf_free(&err);
	buf_free(&said);
	buf_free(&exp);
	return bad;
}

/* Withdrawals in a repair reply: the expectation is dropped, the reason logged. */
void synth_withdraw(struct synth_run *r, const struct llm_reply *reply)
{
	struct llm_case *w = NULL;
	int n = llm_reply_lines(buf_str(&reply->text), reply->text.len, "withdraw", &w);

	for (int i = 0; i < n; i++) {
		for (size_t k = 0; k < r->nex; k++) {
			struct expect *e = &r->ex[k];
			struct buf q = BUF_INIT, a = BUF_INIT, why = BUF_INIT;
			cJSON *ev;

			if (e->withdrawn || !same_bytes(&e->in, buf_str(&w[i].in), w[i].in.len))
				continue;
			e->withdrawn = true;
			synth_quote(&q, buf_str(&e->in), e->in.len);
			synth_quote(&a, buf_str(&e->out), e->out.len);
			synth_quote(&why, buf_str(&w[i].out), w[i].out.len);
			store_log(r->m->type,
				  "validation: expectation withdrawn: input %s => %s%s: %s", q.data,
				  e->reject ? "rejected " : "", a.data, why.data);
			/* The open event for this input is resolved by the withdrawal. */
			cJSON_ArrayForEach(ev, r->events)
			{
				cJSON *in = cJSON_GetObjectItemCaseSensitive(ev, "input");
				cJSON *res = cJSON_GetObjectItemCaseSensitive(ev, "resolution");

				if (cJSON_IsString(in) && cJSON_IsString(res) &&
				    !strcmp(in->valuestring, q.data) &&
				    !strcmp(res->valuestring, "open")) {
					struct buf t = BUF_INIT;

					buf_printf(&t, "withdrawn: %s", why.data);
					cJSON_SetValuestring(res, t.data);
					buf_free(&t);
				}
			}
			buf_free(&q);
			buf_free(&a);
			buf_free(&why);
		}
	}
	llm_cases_free(w, n > 0 ? (size_t)n : 0);
}

/* Add @s to the list of inputs to compare, once. */
static void synth_add_input(struct llm_case **v, size_t *n, const char *s, size_t len)
{
	for (size_t i = 0; i < *n; i++)
		if (same_bytes(&(*v)[i].in, s, len))
			return;
	if (*n >= SYNTH_MAX_COMPARE)
		return;
	*v = xrealloc(*v, (*n + 1) * sizeof(**v));
	memset(&(*v)[*n], 0, sizeof(**v));
	buf_add(&(*v)[*n].in, s, len);
	buf_grow(&(*v)[*n].in, 0);
	(*n)++;
}

/*
 * Inputs derived from @s: a digit changed, lengths varied, empty, and boundary
 * values put in place of its first run of digits.
 */
static void synth_mutate(struct llm_case **v, size_t *n, const char *s, size_t len)
{
	/* clang-format off */
	static const char *const bounds[] = {
		"0", "1", "9", "10", "99", "100", "255", "256", "65535", "65536",
		"2147483647", "2147483648", "4294967295", "4294967296",
		"9223372036854775807", "9223372036854775808",
		"18446744073709551615", "18446744073709551616"};
	/* clang-format on */
	struct buf t = BUF_INIT;
	size_t i, d0 = len, d1;

	synth_add_input(v, n, "", 0);
	if (len > 256)
		return;
	for (i = 0; i < len; i++) {
		if (s[i] >= '0' && s[i] <= '9') {
			if (d0 == len)
				d0 = i;
			buf_reset(&t);
			buf_add(&t, s, len);
			t.data[i] = (char)('0' + (s[i] - '0' + 1) % 10);
			synth_add_input(v, n, t.data, t.len);
		}
	}
	if (len > 1) {
		synth_add_input(v, n, s, len - 1);
		synth_add_input(v, n, s + 1, len - 1);
	}
	buf_reset(&t);
	buf_add(&t, s, len);
	buf_add(&t, s, len);
	synth_add_input(v, n, t.data, t.len);
	if (len) {
		buf_reset(&t);
		buf_add(&t, s, len);
		buf_addc(&t, s[len - 1]);
		synth_add_input(v, n, t.data, t.len);
	}
	if (d0 < len) {
		for (d1 = d0; d1 < len && s[d1] >= '0' && s[d1] <= '9';)
			d1++;
		for (i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
			buf_reset(&t);
			buf_add(&t, s, d0);
			buf_adds(&t, bounds[i]);
			buf_add(&t, s + d1, len - d1);
			synth_add_input(v, n, t.data, t.len);
			if (d0 > 0 && s[d0 - 1] == '-') {
				/* and the same value without its sign */
				buf_reset(&t);
				buf_add(&t, s, d0 - 1);
				buf_adds(&t, bounds[i]);
				buf_add(&t, s + d1, len - d1);
				synth_add_input(v, n, t.data, t.len);
				continue;
			}
			buf_reset(&t);
			buf_add(&t, s, d0);
			buf_addc(&t, '-');
			buf_adds(&t, bounds[i]);
			buf_add(&t, s + d1, len - d1);
			synth_add_input(v, n, t.data, t.len);
		}
	}
	buf_free(&t);
}

/*
 * N-version check: run every version on the cases, the expectations and inputs
 * derived from them.  Returns 1 with the first input where two versions differ
 * (in @at, described in @why), 0 when all agree.
 */
int synth_compare(struct synth_run *r, struct buf *codes, unsigned nv, struct buf *at,
		  struct buf *why)
{
	struct llm_case *v = NULL;
	size_t n = 0, i;
	struct buf o0 = BUF_INIT, e0 = BUF_INIT, o = BUF_INIT, e = BUF_INIT;
	int found = 0;

	for (i = 0; i < r->m->ncases; i++)
		synth_add_input(&v, &n, buf_str(&r->m->cases[i].in), r->m->cases[i].in.len);
	for (i = 0; i < r->nex; i++)
		synth_add_input(&v, &n, buf_str(&r->ex[i].in), r->ex[i].in.len);
	for (i = 0; i < r->nasked; i++)
		synth_add_input(&v, &n, buf_str(&r->asked[i].in), r->asked[i].in.len);
	for (size_t seeds = n, k = 0; k < seeds; k++)
		synth_mutate(&v, &n, buf_str(&v[k].in), v[k].in.len);
	r->compared = (unsigned)n;
	for (i = 0; i < n && !found; i++) {
		int rc0, rc;

		buf_reset(&o0);
		buf_reset(&e0);
		rc0 = sandbox_run(geteuid(), codes[0].data, codes[0].len, buf_str(&v[i].in),
				  v[i].in.len, &o0, &e0);
		for (unsigned k = 1; k < nv && !found; k++) {
			buf_reset(&o);
			buf_reset(&e);
			rc = sandbox_run(geteuid(), codes[k].data, codes[k].len, buf_str(&v[i].in),
					 v[i].in.len, &o, &e);
			/* Reasons of rejections may differ; answers may not. */
			if (rc == rc0 && (rc != 0 || same_bytes(&o, buf_str(&o0), o0.len)))
				continue;
			found = 1;
			buf_reset(at);
			buf_add(at, buf_str(&v[i].in), v[i].in.len);
			buf_grow(at, 0);
			buf_adds(why, "version 1 said ");
			synth_outcome(why, rc0, &o0, &e0);
			buf_printf(why, ", version %u said ", k + 1);
			synth_outcome(why, rc, &o, &e);
		}
	}
	llm_cases_free(v, n);
	buf_free(&o0);
	buf_free(&e0);
	buf_free(&o);
	buf_free(&e);
	return found;
}

/* The evidence for meta.json. */
cJSON *synth_evidence(struct synth_run *r, unsigned nv, unsigned stored)
{
	cJSON *v = meta_new_object(), *src = meta_new_object(), *calls;
	unsigned human = 0, earlier = 0, rejects = 0, withdrawn = 0;

	for (size_t i = 0; i < r->m->ncases; i++) {
		if (!strncmp(r->m->cases[i].name, "llm-", 4))
			earlier++;
		else
			human++;
	}
	for (size_t i = 0; i < r->nex; i++) {
		if (r->ex[i].withdrawn)
			withdrawn++;
		else if (r->ex[i].reject)
			rejects++;
	}
	cJSON_AddNumberToObject(v, "cases_checked",
				human + earlier + r->reply_cases + (double)(r->nex - withdrawn));
	cJSON_AddNumberToObject(src, "human", human);
	cJSON_AddNumberToObject(src, "llm-direct", stored + rejects + earlier);
	cJSON_AddNumberToObject(src, "llm-tests", r->reply_cases);
	cJSON_AddItemToObject(v, "sources", src);
	cJSON_AddNumberToObject(v, "llm_direct_stored", stored);
	cJSON_AddNumberToObject(v, "llm_direct_rejects", rejects);
	cJSON_AddNumberToObject(v, "withdrawn", withdrawn);
	cJSON_AddNumberToObject(v, "versions", nv);
	cJSON_AddNumberToObject(v, "compared_inputs", nv > 1 ? r->compared : 0);
	calls = cJSON_AddObjectToObject(v, "llm_calls");
	cJSON_AddNumberToObject(calls, "synthesis", r->synth_calls);
	cJSON_AddNumberToObject(calls, "answers", r->answer_calls);
	cJSON_AddItemToObject(v, "disagreements", r->events);
	r->events = NULL;
	return v;
}

/* Keep the standing expectations as tests/llm-HASH.in|.out; returns how many. */
unsigned synth_store_expect(struct synth_run *r)
{
	unsigned stored = 0;

	for (size_t i = 0; i < r->nex; i++) {
		struct expect *e = &r->ex[i];
		struct buf name = BUF_INIT;
		unsigned long long h;

		if (e->withdrawn || e->reject)
			continue; /* a rejection is not a case tests/ can hold */
		h = (unsigned long long)XXH3_64bits(buf_str(&e->in), e->in.len);
		buf_printf(&name, "tests/llm-%016llx.out", h);
		/* The answer first: an .in without its .out is not a case. */
		if (store_write(r->m->type, name.data, buf_str(&e->out), e->out.len) == 0) {
			buf_reset(&name);
			buf_printf(&name, "tests/llm-%016llx.in", h);
			if (store_write(r->m->type, name.data, buf_str(&e->in), e->in.len) == 0)
				stored++;
		}
		buf_free(&name);
	}
	return stored;
}
