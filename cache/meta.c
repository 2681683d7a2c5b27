/* meta: tolerant read-modify-write of meta.json; see meta.h. */
#include "meta.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "store.h"

#define META_MAX (1024 * 1024)

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

int meta_update(const char *type, void (*edit)(cJSON *meta, void *arg), void *arg)
{
	struct buf text = BUF_INIT;
	cJSON *meta = NULL;
	char *out = NULL;
	int ret;

	if (store_readonly())
		return -EROFS;
	if (store_read(type, "meta.json", META_MAX, &text) == 0)
		meta = cJSON_ParseWithLength(text.data, text.len);
	if (!cJSON_IsObject(meta)) {
		/* A person's broken JSON must not break anything: start a fresh object. */
		cJSON_Delete(meta);
		meta = cJSON_CreateObject();
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
	ret = store_write(type, "meta.json", text.data, text.len);
out:
	free(out);
	cJSON_Delete(meta);
	buf_free(&text);
	return ret;
}
