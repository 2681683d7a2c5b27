/*
 * test_hmap: common/hmap, the growing hash map of the toolkit.
 *
 * 100,000 string keys inserted, found, half removed and found again (the rest
 * still there, the removed ones gone); a few hundred keys under one identical hash
 * (every lookup a collision, removal in the middle of a probe run); growth from an
 * empty map; iteration visiting each item exactly once; destroy freeing every item
 * (the free callback counts them).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "tap.h"

#define N 100000
#define NCOLL 500

struct item {
	char key[24];
	unsigned seen;
	unsigned id;
};

static bool item_eq(const void *item, const void *key)
{
	return !strcmp(((const struct item *)item)->key, key);
}

static unsigned freed;

static void item_free(void *item)
{
	freed++;
	free(item);
}

static struct item *item_new(unsigned id)
{
	struct item *it = calloc(1, sizeof(*it));

	if (!it)
		abort();
	snprintf(it->key, sizeof(it->key), "key-%u", id);
	it->id = id;
	return it;
}

static void test_many(void)
{
	struct hmap m = HMAP_INIT(item_eq);
	char key[24];
	bool ok = true, grew = true;
	size_t cap = 0, i = 0;
	unsigned visits = 0;
	struct item *it;

	CHECK(hmap_find(&m, hmap_hash_str("key-0"), "key-0") == NULL, "an empty map finds nothing");
	CHECK(hmap_remove(&m, hmap_hash_str("key-0"), "key-0") == NULL,
	      "an empty map removes nothing");
	for (unsigned k = 0; k < N; k++) {
		it = item_new(k);
		hmap_insert(&m, hmap_hash_str(it->key), it);
		if (m.cap != cap) {
			/* Doubling only, never past 3/4 full. */
			grew &= !cap || m.cap == cap * 2;
			cap = m.cap;
		}
		grew &= m.count * 4 <= m.cap * 3;
	}
	CHECK(hmap_count(&m) == N, "%u keys inserted (count %zu)", N, hmap_count(&m));
	CHECK(grew && m.cap >= N * 4 / 3, "the table grew by doubling to %zu slots", m.cap);
	for (unsigned k = 0; k < N && ok; k++) {
		snprintf(key, sizeof(key), "key-%u", k);
		it = hmap_find(&m, hmap_hash_str(key), key);
		ok = it && it->id == k;
	}
	CHECK(ok, "each of the %u keys is found", N);
	CHECK(!hmap_find(&m, hmap_hash_str("key-100000"), "key-100000"), "a missing key is not");

	while ((it = hmap_next(&m, &i))) {
		it->seen++;
		visits++;
	}
	ok = visits == N;
	for (unsigned k = 0; k < N && ok; k++) {
		snprintf(key, sizeof(key), "key-%u", k);
		ok = ((struct item *)hmap_find(&m, hmap_hash_str(key), key))->seen == 1;
	}
	CHECK(ok, "iteration visits each of the %u items once (%u visits)", N, visits);

	for (unsigned k = 0; k < N && ok; k += 2) {
		snprintf(key, sizeof(key), "key-%u", k);
		it = hmap_remove(&m, hmap_hash_str(key), key);
		ok = it && it->id == k;
		free(it);
	}
	CHECK(ok && hmap_count(&m) == N / 2, "every even key removed (count %zu)", hmap_count(&m));
	for (unsigned k = 0; k < N && ok; k++) {
		snprintf(key, sizeof(key), "key-%u", k);
		it = hmap_find(&m, hmap_hash_str(key), key);
		ok = k % 2 ? it && it->id == k : !it;
	}
	CHECK(ok, "after removal the odd keys are found and the even ones are not");
	snprintf(key, sizeof(key), "key-%u", 0);
	CHECK(!hmap_remove(&m, hmap_hash_str(key), key), "a removed key cannot be removed twice");

	/* Put the even keys back: the freed slots are reused. */
	for (unsigned k = 0; k < N; k += 2) {
		it = item_new(k);
		hmap_insert(&m, hmap_hash_str(it->key), it);
	}
	ok = hmap_count(&m) == N;
	for (unsigned k = 0; k < N && ok; k++) {
		snprintf(key, sizeof(key), "key-%u", k);
		it = hmap_find(&m, hmap_hash_str(key), key);
		ok = it && it->id == k;
	}
	CHECK(ok, "re-inserted keys are found with the others");

	freed = 0;
	hmap_destroy(&m, item_free);
	CHECK(freed == N, "destroy frees each item once (%u)", freed);
	CHECK(!m.slots && !m.cap && !m.count, "a destroyed map is empty");
	CHECK(!hmap_find(&m, 1, "key-1"), "and finds nothing");
}

/* Every key under hash 42: each probe compares through eq. */
static void test_collisions(void)
{
	struct hmap m;
	struct item *items[NCOLL], *it;
	bool ok = true;
	size_t i = 0;
	unsigned visits = 0;

	hmap_init(&m, item_eq);
	for (unsigned k = 0; k < NCOLL; k++) {
		items[k] = item_new(k);
		hmap_insert(&m, 42, items[k]);
	}
	for (unsigned k = 0; k < NCOLL && ok; k++)
		ok = hmap_find(&m, 42, items[k]->key) == items[k];
	CHECK(ok, "%u keys of one hash are each found", NCOLL);
	CHECK(!hmap_find(&m, 42, "key-x"), "a missing key of the same hash is not found");
	CHECK(!hmap_find(&m, hmap_hash_str("key-1"), "key-1"),
	      "a key is found only under its own hash");
	/* Remove from the middle of the run, every third. */
	for (unsigned k = 1; k < NCOLL && ok; k += 3)
		ok = hmap_remove(&m, 42, items[k]->key) == items[k];
	CHECK(ok, "keys are removed from the middle of a collision run");
	for (unsigned k = 0; k < NCOLL && ok; k++) {
		it = hmap_find(&m, 42, items[k]->key);
		ok = k % 3 == 1 ? !it : it == items[k];
	}
	CHECK(ok, "the rest of the run is still found, the removed keys are not");
	while ((it = hmap_next(&m, &i))) {
		it->seen++;
		visits++;
	}
	ok = visits == hmap_count(&m);
	for (unsigned k = 0; k < NCOLL && ok; k++)
		ok = items[k]->seen == (k % 3 == 1 ? 0u : 1u);
	CHECK(ok, "iteration visits each remaining item once (%u)", visits);
	for (unsigned k = 1; k < NCOLL; k += 3)
		free(items[k]);
	freed = 0;
	hmap_destroy(&m, item_free);
	CHECK(freed == NCOLL - (NCOLL + 1) / 3, "destroy frees the %u remaining items", freed);
}

/* Collisions across the wrap-around: removal keeps runs that cross the table's end. */
static void test_wrap(void)
{
	struct hmap m = HMAP_INIT(item_eq);
	struct item *items[8];
	bool ok = true;

	for (unsigned k = 0; k < 8; k++) {
		items[k] = item_new(k);
		/* Homes at the last two slots of the first 16-slot table. */
		hmap_insert(&m, 14 + (k % 2), items[k]);
	}
	CHECK(m.cap == 16, "eight items fit in the first table (%zu slots)", m.cap);
	ok = hmap_remove(&m, 14, items[0]->key) == items[0];
	ok &= hmap_remove(&m, 15, items[3]->key) == items[3];
	for (unsigned k = 0; k < 8 && ok; k++)
		ok = hmap_find(&m, 14 + (k % 2), items[k]->key) ==
		     (k == 0 || k == 3 ? NULL : items[k]);
	CHECK(ok, "runs that wrap around the end survive removal");
	free(items[0]);
	free(items[3]);
	hmap_destroy(&m, free);
}

int main(void)
{
	test_many();
	test_collisions();
	test_wrap();
	return tap_done();
}
