/*
 * synth: LLM synthesis with repair rounds and an hourly budget; see synth.h.
 *
 * This file holds the synthesis loop (synth_version: prompt, call, compile and
 * test, repair), synth_procedure (versions, then writing the admitted source and
 * its provenance) and the budget every LLM call goes through.  The validation
 * against direct answers is in synth_validate.c.
 */
#include "synth.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "meta.h"
#include "nearest.h"
#include "store.h"
#include "synth_int.h"
#include "xalloc.h"

/* Set once by synth_init() before the mount serves requests, read-only after: no lock. */
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
	/* The admission just made, with the tests it passed: the daemon's own
	 * revalidation of the new source.c finds it on record and does not make it
	 * a second time (only the compile, a pool hit: the same source's worker). */
	meta_set_admission(meta, p->tests_id, true, true, NULL);
	meta_set_validation(meta, p->validation);
	p->validation = NULL;
	free(host);
}

/* One record of what was said: at once, or with m->later once the readers have their answer. */
static void synth_keep(const struct proc_material *m, const char *name, const char *data,
		       size_t len)
{
	if (m->later)
		store_later_add(m->later, m->type, name, data, len);
	else
		store_write(m->type, name, data, len);
}

/* Keep what was said, so a person can see why the code is what it is. */
void synth_keep_exchange(const struct proc_material *m, const char *name, const struct buf *system,
			 const struct buf *user, const struct llm_reply *reply)
{
	struct buf prompt = BUF_INIT, file = BUF_INIT;

	buf_adds(&prompt, "=== system ===\n");
	buf_add(&prompt, buf_str(system), system->len);
	buf_adds(&prompt, "\n=== user ===\n");
	buf_add(&prompt, buf_str(user), user->len);
	buf_printf(&file, "last-%s-prompt.txt", name);
	synth_keep(m, strcmp(name, "synth") ? file.data : "last-prompt.txt", prompt.data,
		   prompt.len);
	if (reply) {
		buf_reset(&file);
		buf_printf(&file, "last-%s-reply.txt", name);
		synth_keep(m, strcmp(name, "synth") ? file.data : "last-reply.txt",
			   buf_str(&reply->text), reply->text.len);
	}
	buf_free(&prompt);
	buf_free(&file);
}

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

int synth_run_account(struct synth_run *r, int rc, const struct llm_reply *reply)
{
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

/*
 * The synthesis request of a round; the first one also sends the direct-answers
 * request, on a thread of its own (synth_answers_begin): it needs nothing of the
 * code, so a new type costs one LLM latency rather than two.  The synthesis
 * request takes its share of the budget first, so that a budget of one call is
 * spent on the code, as when the two went out one after the other.
 */
static int synth_round_call(struct synth_run *r, const struct buf *system, const struct buf *user,
			    struct llm_reply *reply, struct buf *err)
{
	int rc;

	buf_reset(err);
	rc = budget_take(err) ? -EDQUOT : 0;
	if (!rc) {
		if (synth_cfg.validate)
			synth_answers_begin(r);
		rc = synth_call_paid(system->data, user->data, reply, err);
	}
	return synth_run_account(r, rc, reply);
}

void synth_refresh_asked(struct synth_run *r)
{
	llm_cases_free(r->asked, r->nasked);
	proc_waiting_inputs(r->m->type, &r->asked, &r->nasked);
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
			if (synth_cfg.validate)
				synth_answers_begin(r);
			rc = 0;
		} else {
			rc = synth_round_call(r, &system, &user, &reply, err);
			r->synth_calls++;
			synth_keep_exchange(m, "synth", &system, &user, rc ? NULL : &reply);
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
			rc = r->answers
				 ? synth_answers_end(r, true, err)
				 : synth_request_answers(r, r->asked, r->nasked, SYNTH_PICKS, err);
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

int synth_procedure(const struct proc_material *m, struct buf *err)
{
	struct synth_run r = {0};
	struct buf codes[SYNTH_MAX_VERSIONS];
	unsigned nv = synth_cfg.versions ? synth_cfg.versions : 1, k, stored, iter;
	bool tests_same;
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
	r.events = meta_new_array();
	r.prov.llm = &synth_cfg.llm;
	r.prov.repair = m->prev_source != NULL;
	/* A synthesis makes its type (its log, provenance and source go there);
	 * nothing that only records something of a type does (store_update). */
	store_mkdir_type(m->type);
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

	/* Whether tests/ is still what the cases were read from: then, with the
	 * expectations stored below, it is exactly what this source was checked
	 * against.  A case a person added meanwhile was not checked: no record
	 * then (an id no tests/ has), and the next read admits it with every case. */
	tests_same = proc_tests_id(m->type) == m->tests_id;
	stored = synth_store_expect(&r);
	r.prov.cases = (unsigned)m->ncases + r.reply_cases;
	for (size_t i = 0; i < r.nex; i++)
		r.prov.cases += !r.ex[i].withdrawn;
	r.prov.validation = synth_evidence(&r, nv, stored);
	r.prov.tests_id = tests_same ? proc_tests_id(m->type) : UINT64_MAX;
	meta_update(m->type, meta_edit_provenance, &r.prov);
	cJSON_Delete(r.prov.validation);
	rc = store_write(m->type, "source.c", codes[0].data, codes[0].len);
	if (rc) {
		buf_reset(err);
		buf_printf(err, "cannot store source.c: %s", strerror(-rc));
		ret = rc;
		goto out;
	}
	nearest_note(m->type);
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
	if (r.answers) {
		/* No version got as far as its check: the call is paid for and kept. */
		struct buf aerr = BUF_INIT;

		synth_answers_end(&r, false, &aerr);
		buf_free(&aerr);
	}
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
	if (budget_take(err))
		return -EDQUOT;
	return synth_call_paid(system, user, reply, err);
}

int synth_budget_take(struct buf *err)
{
	return budget_take(err);
}

int synth_call_paid(const char *system, const char *user, struct llm_reply *reply, struct buf *err)
{
	struct buf lerr = BUF_INIT;
	int ret;

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
