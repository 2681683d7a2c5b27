/*
 * usage: what the mount costs and serves over time.
 *
 * The stats file's extra lines (uptime, LLM calls and tokens, an estimated cost
 * from -o price_in/price_out, the hot types), and a history that survives
 * restarts: every minute in which something happened, one line of what changed
 * is appended to STORE/usage/HOST (one file per host, so daemons sharing a
 * store over NFS never append to the same file).  `seglam report` draws it.
 *
 *   2026-11-30T03:25:00Z asks=12 answers=11 rejected=1 errors=0 llm_calls=1
 *       tokens_in=900 tokens_out=300 cost_micro=4500          (one line)
 *
 * Costs are in millionths of the price unit (micro-dollars when prices are in
 * dollars per million tokens), so every stats value stays an integer.
 */
#ifndef SEGLAM_USAGE_H
#define SEGLAM_USAGE_H

#include "buf.h"

struct usage_config {
	double price_in, price_out; /* per million tokens; 0: no cost shown */
};

void usage_init(const struct usage_config *cfg);
/* Append the stats lines. */
void usage_stats(struct buf *out);
/* Append one history line if anything changed since the last call. */
void usage_history_tick(void);

#endif
