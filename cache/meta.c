/* meta: tolerant read-modify-write of meta.json; see meta.h. */
#include "meta.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "store.h"
#include "xalloc.h"

#include <xxhash.h>

#define META_MAX (1024 * 1024)

static cJSON *meta_nonnull(cJSON *item, const char *what)
{
	if (!item) {
		/* log_msg() allocates; this path must not (as xalloc.c). */
		log_emergency(what);
		abort();
	}
	return item;
}

cJSON *meta_new_object(void)
{
	return meta_nonnull(cJSON_CreateObject(), "cJSON object: out of memory; aborting");
}

cJSON *meta_new_array(void)
{
	return meta_nonnull(cJSON_CreateArray(), "cJSON array: out of memory; aborting");
}

/*
 * Remove every member named @key: a person's meta.json may repeat a key, and
 * cJSON only removes (and finds) the first, so a set would leave an older value
 * behind that later reads return.
 */
static void meta_delete(cJSON *meta, const char *key)
{
	cJSON *old;

	while ((old = cJSON_DetachItemFromObjectCaseSensitive(meta, key)))
		cJSON_Delete(old);
}

void meta_set_string(cJSON *meta, const char *key, const char *value)
{
	meta_delete(meta, key);
	cJSON_AddStringToObject(meta, key, value ? value : "");
}

void meta_set_number(cJSON *meta, const char *key, double value)
{
	meta_delete(meta, key);
	cJSON_AddNumberToObject(meta, key, value);
}

void meta_set_bool(cJSON *meta, const char *key, int value)
{
	meta_delete(meta, key);
	cJSON_AddBoolToObject(meta, key, value);
}

void meta_add_number(cJSON *meta, const char *key, double delta)
{
	const cJSON *old = cJSON_GetObjectItemCaseSensitive(meta, key);
	double v = cJSON_IsNumber(old) ? old->valuedouble : 0;

	meta_set_number(meta, key, v + delta);
}

const char *meta_get_string(const cJSON *meta, const char *key)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(meta, key);

	return cJSON_IsString(item) ? item->valuestring : NULL;
}

void meta_now(char *out, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void meta_set_hash(cJSON *meta, const char *key, uint64_t hash)
{
	char hex[17];

	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)hash);
	meta_set_string(meta, key, hex);
}

void meta_set_author_llm(cJSON *meta, const char *provider, const char *model, const char *made_by)
{
	char when[32];

	meta_now(when, sizeof(when));
	meta_set_string(meta, "author", "llm");
	meta_set_string(meta, "written", when);
	meta_set_string(meta, "provider", provider);
	meta_set_string(meta, "model", model);
	if (made_by)
		meta_set_string(meta, "made_by", made_by);
}

void meta_set_author_human(cJSON *meta, bool now)
{
	char when[32];

	meta_set_string(meta, "author", "human");
	if (!now)
		return;
	meta_now(when, sizeof(when));
	meta_set_string(meta, "written", when);
	meta_delete(meta, "model");
	meta_delete(meta, "provider");
	/* The evidence was about the LLM's source, not this one. */
	meta_delete(meta, "validation");
}

void meta_set_synthesis(cJSON *meta, const struct meta_synthesis *s)
{
	meta_set_string(meta, "llm_host", s->llm_host);
	meta_set_hash(meta, "source_hash", s->source_hash);
	meta_set_hash(meta, "prompt_hash", s->prompt_hash);
	meta_set_hash(meta, "reply_hash", s->reply_hash);
	meta_set_number(meta, "tokens_in", (double)s->tokens_in);
	meta_set_number(meta, "tokens_out", (double)s->tokens_out);
	meta_set_number(meta, "llm_calls", s->calls);
	meta_set_number(meta, "repair_rounds", s->rounds);
	meta_set_bool(meta, "repair", s->repair);
	meta_set_number(meta, "tests_passed", s->cases);
}

void meta_set_source(cJSON *meta, uint64_t source_hash)
{
	meta_set_hash(meta, "source_hash", source_hash);
}

void meta_set_admission(cJSON *meta, uint64_t tests_id, bool compiled, bool passed,
			const char *failure)
{
	/* Always, 0 (no tests/) included: the record of an admission names the
	 * tests it passed, and a type without tests is admitted on record too. */
	meta_set_hash(meta, "tests_id", tests_id);
	meta_set_string(meta, "compile", compiled ? "ok" : "failed");
	meta_set_string(meta, "tests", passed ? "passed" : "failed");
	if (failure)
		meta_set_string(meta, "failure", failure);
	else
		meta_delete(meta, "failure");
}

void meta_set_validation(cJSON *meta, cJSON *validation)
{
	meta_delete(meta, "validation");
	if (validation)
		cJSON_AddItemToObject(meta, "validation", validation);
}

void meta_set_calls(cJSON *meta, const char *const *names, size_t n, const char *version)
{
	cJSON *arr = meta_new_array();

	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(names[i]));
	/* @names may point into the old array: replace it only once the new is built */
	meta_delete(meta, "calls");
	cJSON_AddItemToObject(meta, "calls", arr);
	meta_set_string(meta, "calls_source", version);
}

void meta_drop_calls(cJSON *meta)
{
	meta_delete(meta, "calls");
	meta_delete(meta, "calls_source");
}

void meta_add_counts(cJSON *meta, unsigned long hits, unsigned long misses)
{
	meta_add_number(meta, "hits", (double)hits);
	meta_add_number(meta, "misses", (double)misses);
}

void meta_add_question_hits(cJSON *meta, unsigned long hits)
{
	meta_add_number(meta, "question_hits", (double)hits);
}

cJSON *meta_load(const char *type)
{
	struct buf text = BUF_INIT;
	cJSON *meta = NULL;

	if (store_read(type, "meta.json", META_MAX, &text) == 0)
		meta = cJSON_ParseWithLength(text.data, text.len);
	buf_free(&text);
	if (!cJSON_IsObject(meta)) {
		cJSON_Delete(meta);
		meta = NULL;
	}
	return meta;
}

/*
 * meta.json is read, changed and written whole by several threads of one daemon
 * (the counts flush, an admission's record, a synthesis's provenance, calls
 * edges): two at once would each write their own change over the other's, and a
 * provenance lost makes the next look take the LLM's source for a person's edit.
 * So the updates of one type are one at a time (a lock per hash stripe: types
 * are many, and an update is a read, an fsync'd write and a rename).  Daemons
 * sharing a store are not serialized (docs/locking.md).
 */
#define META_LOCKS 64
static pthread_mutex_t meta_locks[META_LOCKS] = {
    [0 ... META_LOCKS - 1] = PTHREAD_MUTEX_INITIALIZER,
};

int meta_update(const char *type, void (*edit)(cJSON *meta, void *arg), void *arg)
{
	pthread_mutex_t *lock = &meta_locks[XXH3_64bits(type, strlen(type)) % META_LOCKS];
	struct buf text = BUF_INIT;
	cJSON *meta = NULL;
	char *out = NULL;
	int ret;

	if (store_readonly())
		return -EROFS;
	pthread_mutex_lock(lock);
	if (store_read(type, "meta.json", META_MAX, &text) == 0)
		meta = cJSON_ParseWithLength(text.data, text.len);
	if (!cJSON_IsObject(meta)) {
		/* A person's broken JSON must not break anything: start a fresh object. */
		cJSON_Delete(meta);
		meta = meta_new_object();
	}
	meta_set_string(meta, "type", type);
	edit(meta, arg);
	out = cJSON_Print(meta);
	if (!out) {
		ret = -ENOMEM;
		goto out;
	}
	buf_reset(&text);
	buf_adds(&text, out);
	buf_addc(&text, '\n');
	ret = store_update(type, "meta.json", text.data, text.len);
out:
	pthread_mutex_unlock(lock);
	free(out);
	cJSON_Delete(meta);
	buf_free(&text);
	return ret;
}
