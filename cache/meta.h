/*
 * meta: reading and updating procs/TYPE/meta.json.
 *
 * meta.json is shared with people (who may write anything into it) and with
 * other daemons, so every update is read-modify-write of whatever is there,
 * starting afresh from {"type": TYPE} when it is not a JSON object, and written
 * back atomically.  Nothing here is on the hit path.
 */
#ifndef SEGLAM_META_H
#define SEGLAM_META_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Apply @edit to the type's meta.json object and write it back. Returns 0 or -errno. */
int meta_update(const char *type, void (*edit)(cJSON *meta, void *arg), void *arg);

/* The type's meta.json as a JSON object, or NULL when missing or not an object. */
cJSON *meta_load(const char *type);

/*
 * cJSON_CreateObject() and cJSON_CreateArray() that cannot fail, as xalloc.h's
 * allocators: on out of memory they log one line and abort.
 */
cJSON *meta_new_object(void);
cJSON *meta_new_array(void);

/* Helpers for edits: set (replace) a member. */
void meta_set_string(cJSON *meta, const char *key, const char *value);
void meta_set_number(cJSON *meta, const char *key, double value);
void meta_set_bool(cJSON *meta, const char *key, int value);
/* Add @delta to a numeric member (missing or non-numeric counts as 0). */
void meta_add_number(cJSON *meta, const char *key, double delta);
/* The string member @key, or NULL. */
const char *meta_get_string(const cJSON *meta, const char *key);
/* Current UTC time as "YYYY-MM-DDTHH:MM:SSZ" into @out (at least 21 bytes). */
void meta_now(char *out, size_t size);

/*
 * The schema: every field of meta.json the daemon writes is written by one of the
 * functions below (called from the edits of proc.c, synth.c and route.c), so the
 * names and shapes live in one place.  Hashes are 16 lowercase hex digits.
 */

/* An LLM wrote the source now: author, written, provider, model; @made_by (e.g.
 * "routing") or NULL to leave that field alone. */
void meta_set_author_llm(cJSON *meta, const char *provider, const char *model, const char *made_by);
/* A person wrote the source: author "human"; with @now, written (now), and the
 * LLM's model, provider and validation evidence (about another source) go. */
void meta_set_author_human(cJSON *meta, bool now);

/* What a synthesis cost and where its source came from. */
struct meta_synthesis {
	const char *llm_host; /* NULL: "" */
	uint64_t source_hash, prompt_hash, reply_hash;
	long tokens_in, tokens_out;
	unsigned calls, rounds, cases;
	bool repair;
};
void meta_set_synthesis(cJSON *meta, const struct meta_synthesis *s);

/* The source this record is about (source_hash). */
void meta_set_source(cJSON *meta, uint64_t source_hash);
/*
 * The admission of that source against the tests @tests_id (0: not written):
 * compile "ok"/"failed", tests "passed"/"failed", failure (the reason, or
 * removed when NULL).
 */
void meta_set_admission(cJSON *meta, uint64_t tests_id, bool compiled, bool passed,
			const char *failure);
/* The validation evidence of a synthesis (taken); NULL removes it. */
void meta_set_validation(cJSON *meta, cJSON *validation);

/* "calls": the types the source @version was seen calling (@names sorted, no
 * duplicates), and calls_source; meta_drop_calls removes both. */
void meta_set_calls(cJSON *meta, const char *const *names, size_t n, const char *version);
void meta_drop_calls(cJSON *meta);

/* Counters added to those on disk (hits, misses; question_hits). */
void meta_add_counts(cJSON *meta, unsigned long hits, unsigned long misses);
void meta_add_question_hits(cJSON *meta, unsigned long hits);

#endif
