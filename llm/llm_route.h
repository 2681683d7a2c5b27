/*
 * llm_route: the routing request of a question in plain words, and reading its
 * reply (see the "route", "patterns" and "questions" blocks in README).
 */
#ifndef SEGLAM_LLM_ROUTE_H
#define SEGLAM_LLM_ROUTE_H

#include <stddef.h>

#include "buf.h"

/* One existing type shown to the router. */
struct llm_route_type {
	const char *name;
	const char *spec;     /* may be NULL */
	const char *patterns; /* the patterns file as it is, may be NULL */
	const char *examples; /* "QUESTION => INPUT" lines, may be NULL */
};

struct llm_route_input {
	const char *question;
	const struct llm_route_type *types;
	size_t ntypes;
	const char *prev_reply; /* the reply of a failed round, or NULL */
	const char *failure;	/* why it failed, or NULL */
};

void llm_route_prompt(const struct llm_route_input *in, struct buf *system, struct buf *user);

/*
 * The contents of every fenced block tagged @tag (case-insensitive), joined, with
 * <think> reasoning dropped.  Returns the number of such blocks.
 */
int llm_reply_block(const char *reply, size_t len, const char *tag, struct buf *out);

#endif
