/*
 * fuzz meta: the meta.json read-modify-write of cache/meta.c.  meta.json is
 * written by people and other daemons, so meta_update() must take any bytes,
 * start afresh when they are not a JSON object, apply the edit helpers and print
 * valid JSON back.  The real meta_update() runs against the in-memory store of
 * stub_store.c, with an edit like the ones in cache/proc.c and cache/synth.c.
 */
#include "fuzz.h"

#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "meta.h"
#include "stub_store.h"

#define HASH "0123456789abcdef"

static void edit(cJSON *meta, void *arg)
{
	const char *known = meta_get_string(meta, "source_hash");
	char when[32];

	(void)arg;
	/* What meta_update() just set is what the edit sees. */
	FUZZ_CHECK(meta_get_string(meta, "type") && !strcmp(meta_get_string(meta, "type"), "t"));
	if (!known || strcmp(known, HASH)) {
		meta_now(when, sizeof(when));
		meta_set_string(meta, "author", "human");
		meta_set_string(meta, "written", when);
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "model");
	}
	meta_set_string(meta, "source_hash", HASH);
	meta_add_number(meta, "hits", 1);
	meta_add_number(meta, "misses", 0);
	meta_set_number(meta, "tokens_in", 1234);
	meta_set_bool(meta, "compiled", 1);
	meta_set_string(meta, "failure", NULL);
	FUZZ_CHECK(!strcmp(meta_get_string(meta, "source_hash"), HASH));
}

/* The file meta_update() wrote: one JSON object with our edits, and a newline. */
static double check_written(void)
{
	const cJSON *hits;
	cJSON *meta;
	double h;

	FUZZ_CHECK(stub_store.writes == 1);
	FUZZ_CHECK(stub_store.file.len >= 3 &&
		   stub_store.file.data[stub_store.file.len - 1] == '\n');
	meta = cJSON_ParseWithLength(stub_store.file.data, stub_store.file.len);
	FUZZ_CHECK(cJSON_IsObject(meta));
	FUZZ_CHECK(meta_get_string(meta, "type") && !strcmp(meta_get_string(meta, "type"), "t"));
	FUZZ_CHECK(meta_get_string(meta, "source_hash") &&
		   !strcmp(meta_get_string(meta, "source_hash"), HASH));
	hits = cJSON_GetObjectItemCaseSensitive(meta, "hits");
	/* A number, or null when it overflowed to infinity (cJSON prints that as null). */
	FUZZ_CHECK(cJSON_IsNumber(hits) || cJSON_IsNull(hits));
	h = cJSON_IsNumber(hits) ? hits->valuedouble : NAN;
	cJSON_Delete(meta);
	return h;
}

int fuzz_meta(const uint8_t *data, size_t size)
{
	double h1, h2;

	stub_store.readonly = false;
	stub_store_set(data, size);
	FUZZ_CHECK(meta_update("t", edit, NULL) == 0);
	h1 = check_written();
	/* Read back what we wrote: stable, and the counter goes on. */
	FUZZ_CHECK(meta_update("t", edit, NULL) == 0);
	h2 = check_written();
	/* Up to printing precision: a person may have written a fractional count. */
	if (isfinite(h1) && fabs(h1) < 1e15)
		FUZZ_CHECK(fabs(h2 - (h1 + 1)) <= 1e-9 * (fabs(h1) + 1));
	/* A read-only store is never written. */
	stub_store.readonly = true;
	stub_store.writes = 0;
	FUZZ_CHECK(meta_update("t", edit, NULL) < 0 && stub_store.writes == 0);
	stub_store_free();
	return 0;
}

FUZZ_MAIN(meta)
