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
#include "store.h"

static struct synth_config synth_cfg;

/* A fixed hourly window: simple to reason about and to explain in the log. */
static struct {
	pthread_mutex_t lock;
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

struct provenance {
	const struct llm_config *llm;
	uint64_t source_hash, prompt_hash, reply_hash;
	long tokens_in, tokens_out;
	unsigned rounds, calls, cases;
	bool repair;
};

static void meta_edit_provenance(cJSON *meta, void *arg)
{
	struct provenance *p = arg;
	char hex[17], when[32];
	char *host = llm_url_host(p->llm->url);

	meta_now(when, sizeof(when));
	meta_set_string(meta, "author", "llm");
	meta_set_string(meta, "written", when);
	meta_set_string(meta, "provider", llm_provider_name(p->llm->provider));
	meta_set_string(meta, "model", p->llm->model ? p->llm->model : "");
	meta_set_string(meta, "llm_host", host ? host : "");
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)p->source_hash);
	meta_set_string(meta, "source_hash", hex);
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)p->prompt_hash);
	meta_set_string(meta, "prompt_hash", hex);
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)p->reply_hash);
	meta_set_string(meta, "reply_hash", hex);
	meta_set_number(meta, "tokens_in", (double)p->tokens_in);
	meta_set_number(meta, "tokens_out", (double)p->tokens_out);
	meta_set_number(meta, "llm_calls", p->calls);
	meta_set_number(meta, "repair_rounds", p->rounds);
	meta_set_bool(meta, "repair", p->repair);
	meta_set_string(meta, "compile", "ok");
	meta_set_string(meta, "tests", "passed");
	meta_set_number(meta, "tests_passed", p->cases);
	cJSON_DeleteItemFromObjectCaseSensitive(meta, "failure");
	free(host);
}

/* Keep what was said, so a person can see why the code is what it is. */
static void synth_keep_exchange(const char *type, const struct buf *system, const struct buf *user,
				const struct llm_reply *reply)
{
	struct buf prompt = BUF_INIT;

	buf_adds(&prompt, "=== system ===\n");
	buf_add(&prompt, buf_str(system), system->len);
	buf_adds(&prompt, "\n=== user ===\n");
	buf_add(&prompt, buf_str(user), user->len);
	store_write(type, "last-prompt.txt", prompt.data, prompt.len);
	if (reply)
		store_write(type, "last-reply.txt", buf_str(&reply->text), reply->text.len);
	buf_free(&prompt);
}

int synth_procedure(const struct proc_material *m, struct buf *err)
{
	struct llm_prompt_input pin = {0};
	struct provenance prov = {0};
	struct buf system = BUF_INIT, user = BUF_INIT, code = BUF_INIT, why = BUF_INIT;
	struct buf prev = BUF_INIT, failure = BUF_INIT;
	struct llm_case *cases = NULL;
	struct llm_callable *callable = NULL;
	size_t ncases = 0;
	unsigned round;
	int ret = -EIO;

	if (store_readonly()) {
		buf_adds(err, "the store is read-only: cannot store a new procedure");
		return -EROFS;
	}
	pin.type = m->type;
	pin.spec = m->spec;
	pin.cases = m->cases;
	pin.ncases = m->ncases;
	/* Composition: show the LLM what it may call instead of re-deriving it. */
	pin.ncallable = nearest_types(m->type, m->spec, NEAREST_MAX, &callable);
	pin.callable = callable;
	if (m->prev_source) {
		buf_adds(&prev, m->prev_source);
		buf_adds(&failure, m->failure ? m->failure : "");
	}
	prov.llm = &synth_cfg.llm;
	prov.tokens_in = prov.tokens_out = 0;
	prov.repair = m->prev_source != NULL;
	store_log(m->type, "%s: asking %s (%s)", m->prev_source ? "repair" : "miss",
		  llm_provider_name(synth_cfg.llm.provider),
		  synth_cfg.llm.model ? synth_cfg.llm.model : "default model");

	for (round = 0; round <= synth_cfg.repair_rounds; round++) {
		struct llm_reply reply = {0};
		struct buf lerr = BUF_INIT;
		int rc;

		pin.prev_source = prev.len ? prev.data : NULL;
		pin.failure = prev.len ? failure.data : NULL;
		buf_reset(&system);
		buf_reset(&user);
		llm_prompt_build(&pin, &system, &user);
		buf_reset(err);
		rc = budget_take(err);
		if (rc) {
			ret = -EIO;
			break;
		}
		prov.calls++;
		rc = llm_complete(&synth_cfg.llm, system.data, user.data, &reply, &lerr);
		if (rc) {
			buf_printf(err, "%s", buf_str(&lerr));
			synth_keep_exchange(m->type, &system, &user, NULL);
			buf_free(&lerr);
			llm_reply_free(&reply);
			ret = -EIO;
			break; /* the client already retried what is worth retrying */
		}
		buf_free(&lerr);
		budget_spend(reply.tokens_in, reply.tokens_out);
		if (reply.tokens_in > 0)
			prov.tokens_in += reply.tokens_in;
		if (reply.tokens_out > 0)
			prov.tokens_out += reply.tokens_out;
		synth_keep_exchange(m->type, &system, &user, &reply);

		buf_reset(&code);
		buf_reset(&why);
		if (llm_reply_code(buf_str(&reply.text), reply.text.len, &code) != 0) {
			buf_adds(&why, "the reply holds no C code defining seglam_run");
		} else {
			/* Cases from tests/ first, then any the reply carried (optional). */
			struct llm_case *extra = NULL;
			int nextra = llm_reply_cases(buf_str(&reply.text), reply.text.len, &extra);
			size_t total = m->ncases + (size_t)(nextra > 0 ? nextra : 0), i;

			cases = calloc(total ? total : 1, sizeof(*cases));
			if (!cases)
				abort();
			if (m->ncases)
				memcpy(cases, m->cases, m->ncases * sizeof(*cases));
			for (i = 0; nextra > 0 && i < (size_t)nextra; i++)
				cases[m->ncases + i] = extra[i];
			ncases = total;
			rc = proc_check_source(code.data, code.len, cases, ncases, &why);
			free(cases);
			cases = NULL;
			if (nextra > 0)
				llm_cases_free(extra, (size_t)nextra);
			else
				free(extra);
			if (rc == 0) {
				prov.source_hash = XXH3_64bits(code.data, code.len);
				prov.prompt_hash = XXH3_64bits(user.data, user.len) ^
						   XXH3_64bits(system.data, system.len);
				prov.reply_hash = XXH3_64bits(buf_str(&reply.text), reply.text.len);
				prov.rounds = round;
				prov.cases = (unsigned)total;
				meta_update(m->type, meta_edit_provenance, &prov);
				rc = store_write(m->type, "source.c", code.data, code.len);
				llm_reply_free(&reply);
				if (rc) {
					buf_printf(err, "cannot store source.c: %s", strerror(-rc));
					ret = rc;
					break;
				}
				store_log(m->type,
					  "%s: admitted source %016llx after %u repair round%s "
					  "(%u call%s, %ld tokens in, %ld out)",
					  m->prev_source ? "repair" : "synthesis",
					  (unsigned long long)prov.source_hash, round,
					  round == 1 ? "" : "s", prov.calls,
					  prov.calls == 1 ? "" : "s", prov.tokens_in,
					  prov.tokens_out);
				ret = 0;
				break;
			}
		}
		store_log(m->type, "round %u: %s", round, why.data);
		/* Feed the failure back: the next prompt is a repair of this code. */
		buf_reset(&prev);
		buf_add(&prev, code.len ? code.data : "/* (no code in the reply) */",
			code.len ? code.len : strlen("/* (no code in the reply) */"));
		buf_reset(&failure);
		buf_add(&failure, why.data, why.len);
		buf_reset(err);
		buf_printf(err, "no admissible procedure after %u round%s: %s", round + 1,
			   round ? "s" : "", why.data);
		llm_reply_free(&reply);
	}
	buf_free(&system);
	buf_free(&user);
	buf_free(&code);
	buf_free(&why);
	buf_free(&prev);
	buf_free(&failure);
	nearest_free(callable, pin.ncallable);
	return ret;
}
