/*
 * hmap: a growing hash map of caller-owned items, keyed by a caller-given hash.
 *
 * Open addressing with linear probing; each slot holds the item's 64-bit hash (an
 * XXH3 of its key, say; hmap_hash() is one) and a pointer to the item.  The table
 * doubles when it is 3/4 full, so lookups stay O(1) at any size, and removal
 * shifts the following slots back instead of leaving tombstones.  Items are never
 * moved or copied: a pointer to an item stays valid while it is in the map.
 *
 * The map knows nothing of keys: @eq(item, key) says whether @item has key @key,
 * and is called only for items of the same hash.  Items are not NULL.  Not
 * thread-safe: the caller's lock protects the map.  Memory comes from xalloc.h.
 */
#ifndef SEGLAM_HMAP_H
#define SEGLAM_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef bool (*hmap_eq_fn)(const void *item, const void *key);

struct hmap_slot {
	uint64_t hash;
	void *item; /* NULL: the slot is free */
};

struct hmap {
	struct hmap_slot *slots; /* cap slots, NULL before the first insert */
	size_t cap;		 /* 0 or a power of two */
	size_t count;
	hmap_eq_fn eq;
};

/* A static initializer: an empty map. */
/* clang-format off */
#define HMAP_INIT(eq_fn) {.eq = (eq_fn)}
/* clang-format on */

void hmap_init(struct hmap *m, hmap_eq_fn eq);
/* Free the table; @free_item (may be NULL) is called on each item first. */
void hmap_destroy(struct hmap *m, void (*free_item)(void *item));

/* XXH3 of @len bytes at @data: the hash callers key strings by. */
uint64_t hmap_hash(const void *data, size_t len);
uint64_t hmap_hash_str(const char *s);

/* The item of key @key (hash @hash), or NULL. */
void *hmap_find(const struct hmap *m, uint64_t hash, const void *key);
/*
 * Add @item (not NULL) under @hash.  The caller makes sure no item of the same key
 * is in the map (hmap_find first): the map does not compare on insert.
 */
void hmap_insert(struct hmap *m, uint64_t hash, void *item);
/* Take out the item of key @key and return it, or NULL when there is none. */
void *hmap_remove(struct hmap *m, uint64_t hash, const void *key);

static inline size_t hmap_count(const struct hmap *m)
{
	return m->count;
}

/*
 * Iterate: `size_t i = 0; while ((item = hmap_next(m, &i))) ...`.  Each item once,
 * in no particular order; the map must not change during the iteration.
 */
void *hmap_next(const struct hmap *m, size_t *iter);

#endif
