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

/* Apply @edit to the type's meta.json object and write it back. Returns 0 or -errno. */
int meta_update(const char *type, void (*edit)(cJSON *meta, void *arg), void *arg);

/* The type's meta.json as a JSON object, or NULL when missing or not an object. */
cJSON *meta_load(const char *type);

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

#endif
