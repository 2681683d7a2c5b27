/*
 * route: questions in plain words to (type, input), by the patterns of types.
 *
 * The routing index holds, for every type of the store, its admitted patterns
 * (procs/TYPE/patterns) and example questions (procs/TYPE/questions/NAME.q|.in),
 * filed by literal words: a pattern under its rarest whole word, an example under
 * each of its words.  A question looks up only the patterns filed under its own
 * words, so a hit costs about the same at 10 types or 100,000.  See
 * docs/questions.md for how the index is built and kept fresh.
 *
 * Knows nothing about FUSE.
 */
#ifndef SEGLAM_ROUTE_H
#define SEGLAM_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "answer.h"
#include "buf.h"

/* The pseudo type of q/ and query/.q in the mount: never a valid type name. */
#define ROUTE_TYPE ".q"

struct route_config {
	unsigned revalidate_ms;
	unsigned fail_ttl_ms;
	unsigned repair_rounds;
	bool llm; /* an LLM is configured: a miss is routed by it */
};

void route_init(const struct route_config *cfg);
void route_shutdown(void);

/* Called (any thread, no lock held) when answers under q/ may have changed. */
void route_set_change_hook(void (*fn)(const char *type));

/*
 * The answer to question @q[@len].  Returns 0 with *@ans (rc 0 or -EINVAL as for
 * proc_ask), -ENOENT (no pattern wins and no LLM), -EIO (routing failed or the
 * question has no procedure; the reason is in the daemon's log).
 */
int route_ask(const char *q, size_t len, struct answer **ans);
/* The same for a look ahead (LOOKUP, stat): counted in stats only when it fails, so
 * that one read of q/QUESTION is one ask. */
int route_peek(const char *q, size_t len, struct answer **ans);

/*
 * Route without answering: 0 with the winning type in @type and its input in
 * @input, or -ENOENT.  For tests and tools.
 */
int route_find(const char *q, size_t len, struct buf *type, struct buf *input);

/* A file under procs/TYPE/ changed through this mount. */
void route_touched(const char *type);

/* Write question-hit counters to meta.json. */
void route_flush(void);

/* Append `name value` lines for the stats file. */
void route_stats(struct buf *out);

#endif
