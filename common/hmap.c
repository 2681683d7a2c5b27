/* hmap: a growing open-addressing hash map; see hmap.h. */
#include "hmap.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "xalloc.h"

#define HMAP_MIN_CAP 16

void hmap_init(struct hmap *m, hmap_eq_fn eq)
{
	memset(m, 0, sizeof(*m));
	m->eq = eq;
}

void hmap_destroy(struct hmap *m, void (*free_item)(void *item))
{
	for (size_t i = 0; free_item && i < m->cap; i++)
		if (m->slots[i].item)
			free_item(m->slots[i].item);
	free(m->slots);
	m->slots = NULL;
	m->cap = m->count = 0;
}

uint64_t hmap_hash(const void *data, size_t len)
{
	return XXH3_64bits(data, len);
}

uint64_t hmap_hash_str(const char *s)
{
	return XXH3_64bits(s, strlen(s));
}

/* The slot of key @key, or of the free slot that ends its probe run. */
static size_t hmap_probe(const struct hmap *m, uint64_t hash, const void *key)
{
	size_t mask = m->cap - 1, i = (size_t)hash & mask;

	while (m->slots[i].item && !(m->slots[i].hash == hash && m->eq(m->slots[i].item, key)))
		i = (i + 1) & mask;
	return i;
}

void *hmap_find(const struct hmap *m, uint64_t hash, const void *key)
{
	if (!m->count)
		return NULL;
	return m->slots[hmap_probe(m, hash, key)].item;
}

/* Place without comparing: every item in the map is distinct by contract. */
static void hmap_place(struct hmap_slot *slots, size_t cap, uint64_t hash, void *item)
{
	size_t i = (size_t)hash & (cap - 1);

	while (slots[i].item)
		i = (i + 1) & (cap - 1);
	slots[i].hash = hash;
	slots[i].item = item;
}

static void hmap_grow(struct hmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : HMAP_MIN_CAP;
	struct hmap_slot *slots = xcalloc(cap, sizeof(*slots));

	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].item)
			hmap_place(slots, cap, m->slots[i].hash, m->slots[i].item);
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
}

void hmap_insert(struct hmap *m, uint64_t hash, void *item)
{
	/* At most 3/4 full: linear probing's runs stay short below that. */
	if ((m->count + 1) * 4 > m->cap * 3)
		hmap_grow(m);
	hmap_place(m->slots, m->cap, hash, item);
	m->count++;
}

void *hmap_remove(struct hmap *m, uint64_t hash, const void *key)
{
	size_t mask = m->cap - 1, i, j;
	void *item;

	if (!m->count)
		return NULL;
	i = hmap_probe(m, hash, key);
	item = m->slots[i].item;
	if (!item)
		return NULL;
	/*
	 * Backward shift: move each later item of the run into the hole when its home
	 * slot does not lie (cyclically) between the hole and it, so that every probe
	 * run stays unbroken without tombstones.
	 */
	for (j = (i + 1) & mask; m->slots[j].item; j = (j + 1) & mask) {
		size_t home = (size_t)m->slots[j].hash & mask;

		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].item = NULL;
	m->slots[i].hash = 0;
	m->count--;
	return item;
}

void *hmap_next(const struct hmap *m, size_t *iter)
{
	while (*iter < m->cap) {
		void *item = m->slots[(*iter)++].item;

		if (item)
			return item;
	}
	return NULL;
}
