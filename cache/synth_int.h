/*
 * synth_int.h: what the files of the synthesis module share (synth.c, the
 * synthesis loop and the public API of synth.h; synth_validate.c, the direct
 * answers, the N-version comparison and the stored llm- cases).  Not for use
 * outside them.
 *
 * A synth_run lives on the stack of one synth_procedure() call and is only ever
 * touched by that thread: it needs no lock.  The one other thread of a synthesis,
 * the direct-answers request in flight (struct synth_answers), has its own copy of
 * everything it reads and writes only its own struct; the run reads that after
 * the join.
 */
#ifndef SEGLAM_SYNTH_INT_H
#define SEGLAM_SYNTH_INT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "synth.h"

/* What meta.json records about the synthesis (meta_edit_provenance in synth.c). */
struct provenance {
	const struct llm_config *llm;
	uint64_t source_hash, prompt_hash, reply_hash;
	long tokens_in, tokens_out;
	unsigned rounds, calls, cases;
	uint64_t tests_id; /* of tests/ as this source was admitted against it */
	bool repair;
	cJSON *validation; /* the evidence, moved into meta.json */
};

/*
 * Validation (see synth.h): expectations are answers the LLM gave without seeing
 * code; every version must reproduce them, or the LLM withdraws them.
 */
struct expect {
	struct buf in, out; /* out: the answer (with its newline), or a reject's reason */
	bool reject, withdrawn;
};

/* One synth_procedure() call: its material, expectations, counters and evidence. */
struct synth_run {
	const struct proc_material *m;
	struct llm_case *asked; /* inputs of the waiting readers */
	size_t nasked;
	struct expect *ex;
	size_t nex;
	bool answers_done;
	struct synth_answers *answers; /* the direct-answers request in flight, or NULL */
	struct provenance prov;
	unsigned synth_calls, answer_calls, reply_cases, compared;
	bool first_used; /* m->first_reply was taken as round 0 */
	cJSON *events;	 /* disagreements and how each was resolved */
};

#define SYNTH_PICKS 5 /* inputs the LLM picks itself in the first direct-answers request */
#define SYNTH_MAX_EXPECT 128
#define SYNTH_MAX_COMPARE 96
#define SYNTH_MAX_VERSIONS 5

/* Untrusted bytes quoted for a one-line message, at most 160 of them. */
#define synth_quote(b, s, len) buf_addquoted((b), (s), (len), 160)

/* synth.c: account a call's outcome @rc (of synth_call) in @r's provenance; the rc to
 * use (-EIO when the budget was spent). */
int synth_run_account(struct synth_run *r, int rc, const struct llm_reply *reply);
/* synth.c: a call in two steps, for a request that goes out on another thread: its
 * share of the budget (0 or -EDQUOT, the reason in @err), then the call itself. */
int synth_budget_take(struct buf *err);
int synth_call_paid(const char *system, const char *user, struct llm_reply *reply, struct buf *err);
/* synth.c: r->asked := the inputs of the readers waiting now. */
void synth_refresh_asked(struct synth_run *r);
/* synth.c: keep a request (and its reply, when there is one) in the type's folder. */
void synth_keep_exchange(const struct proc_material *m, const char *name, const struct buf *system,
			 const struct buf *user, const struct llm_reply *reply);

/* synth_validate.c: a disagreement for meta.json's evidence, with its resolution. */
void synth_event(struct synth_run *r, const char *kind, const struct buf *in, const char *said,
		 const char *expected, const char *resolution);
void synth_events_resolve(struct synth_run *r, const char *resolution);
int synth_request_answers(struct synth_run *r, const struct llm_case *inputs, size_t n,
			  unsigned picks, struct buf *err);
/*
 * The first direct-answers request, sent beside the first synthesis request: for
 * the inputs in r->asked and SYNTH_PICKS more.  Does nothing when no budget is
 * left (the request is then made in line when the answers are needed, and says
 * so).  synth_answers_end waits for the reply; with @use it takes the answers in
 * (as synth_request_answers does) and asks in a second request for the inputs
 * of readers that began waiting after the first went out; without, the call is
 * only accounted and kept.
 */
void synth_answers_begin(struct synth_run *r);
int synth_answers_end(struct synth_run *r, bool use, struct buf *err);
unsigned synth_check_expect(struct synth_run *r, const struct buf *code, struct buf *why);
void synth_withdraw(struct synth_run *r, const struct llm_reply *reply);
int synth_compare(struct synth_run *r, struct buf *codes, unsigned nv, struct buf *at,
		  struct buf *why);
cJSON *synth_evidence(struct synth_run *r, unsigned nv, unsigned stored);
unsigned synth_store_expect(struct synth_run *r);

#endif
