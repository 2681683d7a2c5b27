/*
 * synth: turning a miss into an admitted procedure with the LLM.
 *
 * One synthesis = up to 1 + repair_rounds LLM calls: the reply's code is
 * compiled and run on every case of tests/ (and any the reply carried) in the
 * sandbox; a compile error, a failing case or a reply without code goes back to
 * the LLM.  Only an admitted source is written to the store, after meta.json
 * (so the new source is never mistaken for a person's edit), together with the
 * last prompt and reply.  An hourly budget of calls and tokens bounds the cost.
 */
#ifndef SEGLAM_SYNTH_H
#define SEGLAM_SYNTH_H

#include "llm.h"
#include "proc.h"

struct synth_config {
	struct llm_config llm;	       /* resolved; owned by the caller */
	unsigned repair_rounds;	       /* default 3 */
	unsigned calls_per_hour;       /* 0: unlimited */
	unsigned long tokens_per_hour; /* 0: unlimited */
};

void synth_init(const struct synth_config *cfg);
/* A proc_synth_fn. */
int synth_procedure(const struct proc_material *m, struct buf *err);
/*
 * One LLM call on the synthesis budget (used by routing, cache/route.c).  Returns 0
 * with @reply filled, or -EIO with the reason in @err.
 */
int synth_call(const char *system, const char *user, struct llm_reply *reply, struct buf *err);
const struct llm_config *synth_llm(void);
/* Append `name value` lines for the stats file. */
void synth_stats(struct buf *out);
/* LLM calls and tokens since mount. */
void synth_totals(unsigned long *calls, unsigned long *tokens_in, unsigned long *tokens_out);

#endif
