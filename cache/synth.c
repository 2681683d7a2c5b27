/* synth: LLM synthesis with repair rounds and an hourly budget; see synth.h. */
#include "synth.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "log.h"
#include "meta.h"
#include "nearest.h"
#include "sandbox.h"
#include "store.h"
#include "xalloc.h"

static struct synth_config synth_cfg;

/* A fixed hourly window: simple to reason about and to explain in the log. */
static struct {
	pthread_mutex_t lock; /* the counters below; never held across the LLM or I/O */
	time_t window_start;
	unsigned calls;
	unsigned long tokens;
	unsigned long total_calls, total_tokens_in, total_tokens_out;
} budget = {.lock = PTHREAD_MUTEX_INITIALIZER};

void synth_init(const struct synth_config *cfg)
{
	/* repair_rounds 0 is meaningful (one call, no repair): main sets the default. */
	synth_cfg = *cfg;
}

/* Take one call from the budget, or say when it refills. */
static int budget_take(struct buf *err)
{
	time_t now = time(NULL);
	int ret = 0;

	pthread_mutex_lock(&budget.lock);
	if (now - budget.window_start >= 3600) {
		budget.window_start = now;
		budget.calls = 0;
		budget.tokens = 0;
	}
	if ((synth_cfg.calls_per_hour && budget.calls >= synth_cfg.calls_per_hour) ||
	    (synth_cfg.tokens_per_hour && budget.tokens >= synth_cfg.tokens_per_hour)) {
		time_t refill = budget.window_start + 3600;
		struct tm tm;
		char when[32];

		gmtime_r(&refill, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		buf_printf(err,
			   "LLM budget spent (%u calls, %lu tokens this hour; limits %u calls, "
			   "%lu tokens): it refills at %s (raise -o llm_calls_per_hour / "
			   "llm_tokens_per_hour)",
			   budget.calls, budget.tokens, synth_cfg.calls_per_hour,
			   synth_cfg.tokens_per_hour, when);
		ret = -EDQUOT;
	} else {
		budget.calls++;
		budget.total_calls++;
	}
	pthread_mutex_unlock(&budget.lock);
	return ret;
}

static void budget_spend(long in, long out)
{
	pthread_mutex_lock(&budget.lock);
	if (in > 0) {
		budget.tokens += (unsigned long)in;
		budget.total_tokens_in += (unsigned long)in;
	}
	if (out > 0) {
		budget.tokens += (unsigned long)out;
		budget.total_tokens_out += (unsigned long)out;
	}
	pthread_mutex_unlock(&budget.lock);
}

void synth_stats(struct buf *out)
{
	pthread_mutex_lock(&budget.lock);
	buf_printf(out, "llm_calls %lu\n", budget.total_calls);
	buf_printf(out, "llm_tokens_in %lu\n", budget.total_tokens_in);
	buf_printf(out, "llm_tokens_out %lu\n", budget.total_tokens_out);
	pthread_mutex_unlock(&budget.lock);
}

void synth_totals(unsigned long *calls, unsigned long *tokens_in, unsigned long *tokens_out)
{
	pthread_mutex_lock(&budget.lock);
	*calls = budget.total_calls;
	*tokens_in = budget.total_tokens_in;
	*tokens_out = budget.total_tokens_out;
	pthread_mutex_unlock(&budget.lock);
}

struct provenance {
	const struct llm_config *llm;
	uint64_t source_hash, prompt_hash, reply_hash;
	long tokens_in, tokens_out;
	unsigned rounds, calls, cases;
	bool repair;
	cJSON *validation; /* the evidence, moved into meta.json */
};

static void meta_edit_provenance(cJSON *meta, void *arg)
{
	struct provenance *p = arg;
	char *host = llm_url_host(p->llm->url);
	struct meta_synthesis s = {
	    .llm_host = host,
	    .source_hash = p->source_hash,
	    .prompt_hash = p->prompt_hash,
	    .reply_hash = p->reply_hash,
	    .tokens_in = p->tokens_in,
	    .tokens_out = p->tokens_out,
	    .calls = p->calls,
	    .rounds = p->rounds,
	    .cases = p->cases,
	    .repair = p->repair,
	};

	meta_set_author_llm(meta, llm_provider_name(p->llm->provider),
			    p->llm->model ? p->llm->model : "", NULL);
	meta_set_synthesis(meta, &s);
	meta_set_admission(meta, 0, true, true, NULL);
	meta_set_validation(meta, p->validation);
	p->validation = NULL;
	free(host);
}

/* Keep what was said, so a person can see why the code is what it is. */
static void synth_keep_exchange(const char *type, const char *name, const struct buf *system,
				const struct buf *user, const struct llm_reply *reply)
{
	struct buf prompt = BUF_INIT, file = BUF_INIT;

	buf_adds(&prompt, "=== system ===\n");
	buf_add(&prompt, buf_str(system), system->len);
	buf_adds(&prompt, "\n=== user ===\n");
	buf_add(&prompt, buf_str(user), user->len);
	buf_printf(&file, "last-%s-prompt.txt", name);
	store_write(type, strcmp(name, "synth") ? file.data : "last-prompt.txt", prompt.data,
		    prompt.len);
	if (reply) {
		buf_reset(&file);
		buf_printf(&file, "last-%s-reply.txt", name);
		store_write(type, strcmp(name, "synth") ? file.data : "last-reply.txt",
			    buf_str(&reply->text), reply->text.len);
	}
	buf_free(&prompt);
	buf_free(&file);
}

/*
 * Validation (see synth.h): expectations are answers the LLM gave without seeing
 * code; every version must reproduce them, or the LLM withdraws them.
 */
struct expect {
	struct buf in, out; /* out: the answer (with its newline), or a reject's reason */
	bool reject, withdrawn;
};

struct synth_run {
	const struct proc_material *m;
	struct llm_case *asked; /* inputs of the waiting readers */
	size_t nasked;
	struct expect *ex;
	size_t nex;
	bool answers_done;
	struct provenance prov;
	unsigned synth_calls, answer_calls, reply_cases, compared;
	bool first_used; /* m->first_reply was taken as round 0 */
	cJSON *events; /* disagreements and how each was resolved */
	struct buf last_user, last_system, last_reply;
};

#define SYNTH_PICKS 5
#define SYNTH_MAX_EXPECT 128
#define SYNTH_MAX_COMPARE 96
#define SYNTH_MAX_VERSIONS 5

/* Untrusted bytes quoted for a one-line message, at most 160 of them. */
#define synth_quote(b, s, len) buf_addquoted((b), (s), (len), 160)

/* @text on one line (the log is one line an event): newlines become "; ". */
static void synth_oneline(struct buf *line, const struct buf *text)
{
	size_t n = text->len;

	while (n && text->data[n - 1] == '\n')
		n--;
	for (size_t i = 0; i < n; i++) {
		if (text->data[i] == '\n')
			buf_adds(line, "; ");
		else
			buf_addc(line, text->data[i]);
	}
	buf_grow(line, 0);
}

/* One LLM call of a synthesis run: synth_call, accounted in the provenance. */
static int synth_run_call(struct synth_run *r, const struct buf *system, const struct buf *user,
			  struct llm_reply *reply, struct buf *err)
{
	int rc;

	buf_reset(err);
	rc = synth_call(system->data, user->data, reply, err);
	if (rc == -EDQUOT)
		return -EIO;
	r->prov.calls++;
	if (rc)
		return rc;
	if (reply->tokens_in > 0)
		r->prov.tokens_in += reply->tokens_in;
	if (reply->tokens_out > 0)
		r->prov.tokens_out += reply->tokens_out;
	return 0;
}

static void synth_refresh_asked(struct synth_run *r)
{
	llm_cases_free(r->asked, r->nasked);
	proc_waiting_inputs(r->m->type, &r->asked, &r->nasked);
}

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

static void synth_event(struct synth_run *r, const char *kind, const struct buf *in,
			const char *said, const char *expected, const char *resolution)
{
	cJSON *e = cJSON_CreateObject();
	struct buf q = BUF_INIT;

	if (!e)
		abort();
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
static void synth_events_resolve(struct synth_run *r, const char *resolution)
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

/*
 * The separate request: answers for @inputs (and @picks inputs of the LLM's own
 * choosing), never showing code.  Adds the answers as expectations.
 */
static int synth_request_answers(struct synth_run *r, const struct llm_case *inputs, size_t n,
				 unsigned picks, struct buf *err)
{
	struct llm_answers_input ain = {0};
	struct buf system = BUF_INIT, user = BUF_INIT;
	struct llm_reply reply = {0};
	struct llm_case *ans = NULL, *rej = NULL;
	int nans = 0, nrej = 0, rc;
	size_t before = r->nex;

	ain.type = r->m->type;
	ain.spec = r->m->spec;
	ain.cases = r->m->cases;
	ain.ncases = r->m->ncases;
	ain.inputs = inputs;
	ain.ninputs = n;
	ain.picks = picks;
	llm_prompt_answers(&ain, &system, &user);
	rc = synth_run_call(r, &system, &user, &reply, err);
	r->answer_calls++;
	synth_keep_exchange(r->m->type, "answers", &system, &user, rc ? NULL : &reply);
	if (rc)
		goto out;
	nans = llm_reply_lines(buf_str(&reply.text), reply.text.len, "answers", &ans);
	nrej = llm_reply_lines(buf_str(&reply.text), reply.text.len, "rejects", &rej);
	for (int i = 0; i < nans; i++)
		synth_add_expect(r, &ans[i], false);
	for (int i = 0; i < nrej; i++)
		synth_add_expect(r, &rej[i], true);
	store_log(r->m->type,
		  "validation: direct answers (no code shown): %d answer%s, %d reject%s, "
		  "%zu new expectation%s",
		  nans, nans == 1 ? "" : "s", nrej, nrej == 1 ? "" : "s", r->nex - before,
		  r->nex - before == 1 ? "" : "s");
out:
	llm_cases_free(ans, nans > 0 ? (size_t)nans : 0);
	llm_cases_free(rej, nrej > 0 ? (size_t)nrej : 0);
	llm_reply_free(&reply);
	buf_free(&system);
	buf_free(&user);
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
static unsigned synth_check_expect(struct synth_run *r, const struct buf *code, struct buf *why)
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
		rc = sandbox_run(code->data, code->len, buf_str(&e->in), e->in.len, &out, &err);
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
static void synth_withdraw(struct synth_run *r, const struct llm_reply *reply)
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

/*
 * One version: synthesis (or a repair of @start, failing for @failure) with
 * repair rounds, until the code compiles, passes tests/ and the reply's own
 * cases, and reproduces every expectation.  The first version that passes
 * tests/ asks for the direct answers.  Returns 0 with the code in @code.
 */
static int synth_version(struct synth_run *r, const char *start, const char *failure,
			 bool disagreement, struct buf *code, struct buf *err)
{
	const struct proc_material *m = r->m;
	struct llm_prompt_input pin = {0};
	struct buf system = BUF_INIT, user = BUF_INIT, why = BUF_INIT;
	struct buf prev = BUF_INIT, fail = BUF_INIT, line = BUF_INIT;
	struct llm_callable *callable = NULL;
	unsigned round;
	int ret = -EIO;

	pin.type = m->type;
	pin.spec = m->spec;
	pin.cases = m->cases;
	pin.ncases = m->ncases;
	/* Composition: show the LLM what it may call instead of re-deriving it. */
	pin.ncallable = nearest_types(m->type, m->spec, NEAREST_MAX, &callable);
	pin.callable = callable;
	if (start) {
		buf_adds(&prev, start);
		buf_adds(&fail, failure ? failure : "");
	}
	for (round = 0; round <= synth_cfg.repair_rounds; round++) {
		struct llm_reply reply = {0};
		struct llm_case *extra = NULL, *cases;
		int nextra, rc;
		size_t total;

		synth_refresh_asked(r);
		pin.inputs = r->asked;
		pin.ninputs = r->nasked;
		pin.prev_source = prev.len ? prev.data : NULL;
		pin.failure = prev.len ? fail.data : NULL;
		pin.disagreement = prev.len && disagreement;
		buf_reset(&system);
		buf_reset(&user);
		llm_prompt_build(&pin, &system, &user);
		if (m->first_reply && !r->first_used) {
			/* The routing request already paid for this code: no call. */
			r->first_used = true;
			buf_add(&reply.text, m->first_reply, m->first_reply_len);
			rc = 0;
		} else {
			rc = synth_run_call(r, &system, &user, &reply, err);
			r->synth_calls++;
			synth_keep_exchange(m->type, "synth", &system, &user, rc ? NULL : &reply);
		}
		if (rc) {
			llm_reply_free(&reply);
			break;
		}
		if (disagreement)
			synth_withdraw(r, &reply);
		disagreement = false;
		buf_reset(code);
		buf_reset(&why);
		if (llm_reply_code(buf_str(&reply.text), reply.text.len, code) != 0) {
			buf_adds(&why, "the reply holds no C code defining seglam_run");
			goto failed;
		}
		/* Cases from tests/ first, then any the reply carried (optional). */
		nextra = llm_reply_cases(buf_str(&reply.text), reply.text.len, &extra);
		total = m->ncases + (size_t)(nextra > 0 ? nextra : 0);
		cases = xcalloc(total ? total : 1, sizeof(*cases));
		if (m->ncases)
			memcpy(cases, m->cases, m->ncases * sizeof(*cases));
		for (size_t i = 0; nextra > 0 && i < (size_t)nextra; i++)
			cases[m->ncases + i] = extra[i];
		/* For `seglam ask`'s progress line, which reads the log. */
		store_log(m->type, "round %u of %u: compiling and testing (%zu case%s)", round + 1,
			  synth_cfg.repair_rounds + 1, total, total == 1 ? "" : "s");
		rc = proc_check_source(code->data, code->len, cases, total, &why);
		free(cases);
		llm_cases_free(extra, nextra > 0 ? (size_t)nextra : 0);
		if (rc)
			goto failed;
		if ((size_t)(nextra > 0 ? nextra : 0) > r->reply_cases)
			r->reply_cases = (unsigned)nextra;
		if (synth_cfg.validate && !r->answers_done) {
			r->answers_done = true;
			synth_refresh_asked(r);
			rc = synth_request_answers(r, r->asked, r->nasked, SYNTH_PICKS, err);
			if (rc) {
				llm_reply_free(&reply);
				break;
			}
			if (!r->nex)
				store_log(m->type, "validation: the LLM gave no direct answers: "
						   "checked against tests/ only");
		}
		if (synth_check_expect(r, code, &why)) {
			disagreement = true;
			goto failed;
		}
		synth_events_resolve(r, "repaired: the procedure was fixed");
		r->prov.source_hash = XXH3_64bits(code->data, code->len);
		r->prov.prompt_hash =
		    XXH3_64bits(user.data, user.len) ^ XXH3_64bits(system.data, system.len);
		r->prov.reply_hash = XXH3_64bits(buf_str(&reply.text), reply.text.len);
		r->prov.rounds += round;
		llm_reply_free(&reply);
		ret = 0;
		break;
	failed:
		buf_reset(&line);
		synth_oneline(&line, &why);
		store_log(m->type, "round %u: %s", round, buf_str(&line));
		buf_reset(err);
		buf_printf(err, "no admissible procedure after %u round%s: %s", round + 1,
			   round ? "s" : "", buf_str(&line));
		/* Feed the failure back: the next prompt is a repair of this code. */
		buf_reset(&prev);
		buf_add(&prev, code->len ? code->data : "/* (no code in the reply) */",
			code->len ? code->len : strlen("/* (no code in the reply) */"));
		buf_reset(&fail);
		buf_add(&fail, why.data, why.len);
		llm_reply_free(&reply);
	}
	buf_free(&system);
	buf_free(&user);
	buf_free(&why);
	buf_free(&prev);
	buf_free(&fail);
	buf_free(&line);
	nearest_free(callable, pin.ncallable);
	return ret;
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
static int synth_compare(struct synth_run *r, struct buf *codes, unsigned nv, struct buf *at,
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
		rc0 = sandbox_run(codes[0].data, codes[0].len, buf_str(&v[i].in), v[i].in.len, &o0,
				  &e0);
		for (unsigned k = 1; k < nv && !found; k++) {
			buf_reset(&o);
			buf_reset(&e);
			rc = sandbox_run(codes[k].data, codes[k].len, buf_str(&v[i].in),
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
static cJSON *synth_evidence(struct synth_run *r, unsigned nv, unsigned stored)
{
	cJSON *v = cJSON_CreateObject(), *src = cJSON_CreateObject(), *calls;
	unsigned human = 0, earlier = 0, rejects = 0, withdrawn = 0;

	if (!v || !src)
		abort();
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
static unsigned synth_store_expect(struct synth_run *r)
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

int synth_procedure(const struct proc_material *m, struct buf *err)
{
	struct synth_run r = {0};
	struct buf codes[SYNTH_MAX_VERSIONS];
	unsigned nv = synth_cfg.versions ? synth_cfg.versions : 1, k, stored, iter;
	int ret = -EIO, rc;

	if (store_readonly()) {
		buf_adds(err, "the store is read-only: cannot store a new procedure");
		return -EROFS;
	}
	if (nv > SYNTH_MAX_VERSIONS)
		nv = SYNTH_MAX_VERSIONS;
	for (k = 0; k < SYNTH_MAX_VERSIONS; k++)
		codes[k] = (struct buf)BUF_INIT;
	r.m = m;
	r.events = cJSON_CreateArray();
	if (!r.events)
		abort();
	r.prov.llm = &synth_cfg.llm;
	r.prov.repair = m->prev_source != NULL;
	store_log(m->type, "%s: asking %s (%s)%s", m->prev_source ? "repair" : "miss",
		  llm_provider_name(synth_cfg.llm.provider),
		  synth_cfg.llm.model ? synth_cfg.llm.model : "default model",
		  nv > 1 ? " for several independent versions" : "");

	/* Version 1 may repair a failing source; later versions never see code. */
	for (k = 0; k < nv; k++) {
		rc = synth_version(&r, k ? NULL : m->prev_source, k ? NULL : m->failure, false,
				   &codes[k], err);
		if (rc)
			goto out;
		if (nv > 1)
			store_log(m->type, "version %u of %u: source %016llx passed", k + 1, nv,
				  (unsigned long long)XXH3_64bits(codes[k].data, codes[k].len));
	}
	/* The versions must agree; a disagreement is settled by a direct answer. */
	for (iter = 0; nv > 1 && iter <= synth_cfg.repair_rounds; iter++) {
		struct buf at = BUF_INIT, why = BUF_INIT, q = BUF_INIT;
		struct llm_case one = {0};
		size_t before = r.nex;

		if (!synth_compare(&r, codes, nv, &at, &why)) {
			buf_free(&at);
			buf_free(&why);
			break;
		}
		synth_quote(&q, buf_str(&at), at.len);
		store_log(m->type, "versions disagree on input %s: %s", q.data, why.data);
		one.in = at;
		synth_event(&r, "versions", &at, why.data, "(asked directly)", "open");
		rc = synth_request_answers(&r, &one, 1, 0, err);
		if (!rc && r.nex == before) {
			buf_printf(err,
				   "versions disagree on input %s (%s) and the LLM gave no "
				   "direct answer for it",
				   q.data, why.data);
			rc = -EIO;
		}
		buf_free(&q);
		buf_free(&why);
		buf_free(&at);
		if (rc)
			goto out;
		/* Every version that does not reproduce the new answer is repaired. */
		for (k = 0; k < nv; k++) {
			struct buf w = BUF_INIT;

			if (!synth_check_expect(&r, &codes[k], &w)) {
				buf_free(&w);
				continue;
			}
			buf_printf(&w, "(an independent version of this procedure disagreed on "
				       "this input)");
			{
				struct buf start = BUF_INIT, line = BUF_INIT;

				synth_oneline(&line, &w);
				store_log(m->type, "version %u: %s", k + 1, buf_str(&line));
				buf_free(&line);

				buf_add(&start, codes[k].data, codes[k].len);
				rc = synth_version(&r, start.data, w.data, true, &codes[k], err);
				buf_free(&start);
			}
			buf_free(&w);
			if (rc)
				goto out;
		}
		synth_events_resolve(&r, "repaired: the versions now agree with the direct answer");
		if (iter == synth_cfg.repair_rounds) {
			buf_printf(err, "the %u versions still disagree after %u round%s", nv,
				   iter + 1, iter ? "s" : "");
			goto out;
		}
	}

	stored = synth_store_expect(&r);
	r.prov.cases = (unsigned)m->ncases + r.reply_cases;
	for (size_t i = 0; i < r.nex; i++)
		r.prov.cases += !r.ex[i].withdrawn;
	r.prov.validation = synth_evidence(&r, nv, stored);
	meta_update(m->type, meta_edit_provenance, &r.prov);
	cJSON_Delete(r.prov.validation);
	rc = store_write(m->type, "source.c", codes[0].data, codes[0].len);
	if (rc) {
		buf_reset(err);
		buf_printf(err, "cannot store source.c: %s", strerror(-rc));
		ret = rc;
		goto out;
	}
	store_log(m->type,
		  "%s: admitted source %016llx after %u repair round%s (%u call%s: %u "
		  "synthesis, %u direct-answer; %ld tokens in, %ld out); validated against %zu "
		  "direct answer%s%s",
		  m->prev_source ? "repair" : "synthesis", (unsigned long long)r.prov.source_hash,
		  r.prov.rounds, r.prov.rounds == 1 ? "" : "s", r.prov.calls,
		  r.prov.calls == 1 ? "" : "s", r.synth_calls, r.answer_calls, r.prov.tokens_in,
		  r.prov.tokens_out, r.nex, r.nex == 1 ? "" : "s",
		  nv > 1 ? " and the other versions" : "");
	ret = 0;
out:
	for (k = 0; k < SYNTH_MAX_VERSIONS; k++)
		buf_free(&codes[k]);
	for (size_t i = 0; i < r.nex; i++) {
		buf_free(&r.ex[i].in);
		buf_free(&r.ex[i].out);
	}
	free(r.ex);
	llm_cases_free(r.asked, r.nasked);
	cJSON_Delete(r.events);
	return ret;
}

int synth_call(const char *system, const char *user, struct llm_reply *reply, struct buf *err)
{
	struct buf lerr = BUF_INIT;
	int ret;

	ret = budget_take(err);
	if (ret)
		return -EDQUOT;
	ret = llm_complete(&synth_cfg.llm, system, user, reply, &lerr);
	if (ret) {
		buf_add(err, buf_str(&lerr), lerr.len);
		buf_free(&lerr);
		return -EIO; /* the client already retried what is worth retrying */
	}
	buf_free(&lerr);
	budget_spend(reply->tokens_in, reply->tokens_out);
	return 0;
}

const struct llm_config *synth_llm(void)
{
	return &synth_cfg.llm;
}
