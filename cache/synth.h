/*
 * synth: turning a miss into an admitted procedure with the LLM.
 *
 * One synthesis = up to 1 + repair_rounds LLM calls: the reply's code is
 * compiled and run on every case of tests/ (and any the reply carried) in the
 * sandbox; a compile error, a failing case or a reply without code goes back to
 * the LLM.  Only an admitted source is written to the store, after meta.json
 * (so the new source is never mistaken for a person's edit), together with the
 * last prompt and reply.  An hourly budget of calls and tokens bounds the cost.
 *
 * Validation: a procedure that passes tests/ is also checked against direct
 * answers, which the LLM gives in a separate request that shows the type, its
 * spec and tests but never code: for the inputs that were asked and for inputs it
 * picks.  A disagreement is a repair round that shows both sides; the LLM fixes
 * the code or withdraws the expectation (```withdraw, logged).  Standing answers
 * are stored as tests/llm-HASH.in|.out; a person's case for the same input wins.
 * With versions=N, N independent syntheses must also agree with each other on
 * every case and on inputs derived from them; where they differ, a direct answer
 * for that input settles it and the versions that disagree with it are repaired.
 * The evidence goes to meta.json ("validation").
 */
#ifndef SEGLAM_SYNTH_H
#define SEGLAM_SYNTH_H

#include <stdbool.h>

#include "llm.h"
#include "proc.h"

struct synth_config {
	struct llm_config llm;	       /* resolved; owned by the caller */
	unsigned repair_rounds;	       /* default 3 */
	unsigned calls_per_hour;       /* 0: unlimited */
	unsigned long tokens_per_hour; /* 0: unlimited */
	unsigned versions;	       /* independent syntheses that must agree; 0: 1 */
	bool validate;		       /* check against direct answers; default on */
};

void synth_init(const struct synth_config *cfg);
/* A proc_synth_fn. */
int synth_procedure(const struct proc_material *m, struct buf *err);
/*
 * One LLM call on the synthesis budget (used by routing, cache/route.c).  Returns 0
 * with @reply filled, -EDQUOT when the budget is spent, or -EIO; the reason in @err.
 */
int synth_call(const char *system, const char *user, struct llm_reply *reply, struct buf *err);
const struct llm_config *synth_llm(void);
/* Append `name value` lines for the stats file. */
void synth_stats(struct buf *out);
/* LLM calls and tokens since mount. */
void synth_totals(unsigned long *calls, unsigned long *tokens_in, unsigned long *tokens_out);

#endif
