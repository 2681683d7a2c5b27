/* answer: refcounted answers and the bounded LRU answer memo; see answer.h. */
#include "answer.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <xxhash.h>

#include "hmap.h"
#include "xalloc.h"

struct answer *answer_new(int rc, uint64_t version, const void *data, size_t len)
{
	struct answer *a = xmalloc(sizeof(*a) + len + 1);

	atomic_init(&a->refs, 1);
	a->rc = rc;
	a->version = version;
	a->mtime_ns = 0;
	a->len = len;
	if (len)
		memcpy(a->data, data, len);
	a->data[len] = '\0';
	return a;
}

struct answer *answer_get(struct answer *a)
{
	atomic_fetch_add(&a->refs, 1);
	return a;
}

void answer_put(struct answer *a)
{
	if (a && atomic_fetch_sub(&a->refs, 1) == 1)
		free(a);
}

struct memo_entry {
	XXH128_hash_t key;
	struct answer *ans;
	TAILQ_ENTRY(memo_entry) lru; /* most recent first */
};

TAILQ_HEAD(memo_lru, memo_entry);

static struct {
	pthread_mutex_t lock; /* everything below; memory only, never held across I/O */
	bool ready;	      /* between memo_init and memo_shutdown */
	struct hmap index;    /* key (its low 64 bits as the hash) -> entry */
	struct memo_lru lru;
	size_t bytes, max_bytes;
	uint64_t hits, misses;
} memo = {.lock = PTHREAD_MUTEX_INITIALIZER};

#define MEMO_ENTRY_COST(a) (sizeof(struct memo_entry) + sizeof(struct answer) + (a)->len)

static XXH128_hash_t memo_key(uint64_t version, const void *in, size_t len)
{
	return XXH3_128bits_withSeed(in, len, version);
}

static bool memo_has_key(const void *item, const void *key)
{
	return XXH128_isEqual(((const struct memo_entry *)item)->key, *(const XXH128_hash_t *)key);
}

void memo_init(size_t max_bytes)
{
	memo.max_bytes = max_bytes;
	/* The map grows as entries come (about 600k small answers at the default
	 * 64 MB): lookups stay O(1) at any size. */
	hmap_init(&memo.index, memo_has_key);
	TAILQ_INIT(&memo.lru);
	memo.ready = true;
}

static void memo_evict_one(void)
{
	struct memo_entry *e = TAILQ_LAST(&memo.lru, memo_lru);

	if (!e)
		return;
	hmap_remove(&memo.index, e->key.low64, &e->key);
	TAILQ_REMOVE(&memo.lru, e, lru);
	memo.bytes -= MEMO_ENTRY_COST(e->ans);
	answer_put(e->ans);
	free(e);
}

struct answer *memo_find(uint64_t version, const void *in, size_t len)
{
	XXH128_hash_t key = memo_key(version, in, len);
	struct answer *a = NULL;
	struct memo_entry *e;

	pthread_mutex_lock(&memo.lock);
	if (memo.ready) {
		e = hmap_find(&memo.index, key.low64, &key);
		if (e && e->ans->version == version) {
			TAILQ_REMOVE(&memo.lru, e, lru);
			TAILQ_INSERT_HEAD(&memo.lru, e, lru);
			a = answer_get(e->ans);
		}
	}
	if (a)
		memo.hits++;
	else
		memo.misses++;
	pthread_mutex_unlock(&memo.lock);
	return a;
}

void memo_add(const void *in, size_t len, struct answer *a)
{
	XXH128_hash_t key = memo_key(a->version, in, len);
	struct memo_entry *e;
	size_t cost = MEMO_ENTRY_COST(a);

	pthread_mutex_lock(&memo.lock);
	if (!memo.ready || cost > memo.max_bytes / 4)
		goto out;
	if (hmap_find(&memo.index, key.low64, &key))
		goto out; /* a concurrent reader of the same input got there first */
	e = xcalloc(1, sizeof(*e));
	e->key = key;
	e->ans = answer_get(a);
	hmap_insert(&memo.index, key.low64, e);
	TAILQ_INSERT_HEAD(&memo.lru, e, lru);
	memo.bytes += cost;
	while (memo.bytes > memo.max_bytes)
		memo_evict_one();
out:
	pthread_mutex_unlock(&memo.lock);
}

void memo_shutdown(void)
{
	pthread_mutex_lock(&memo.lock);
	while (!TAILQ_EMPTY(&memo.lru))
		memo_evict_one();
	hmap_destroy(&memo.index, NULL);
	memo.ready = false;
	pthread_mutex_unlock(&memo.lock);
}

void memo_get_stats(struct memo_stats *st)
{
	pthread_mutex_lock(&memo.lock);
	st->hits = memo.hits;
	st->misses = memo.misses;
	st->entries = hmap_count(&memo.index);
	st->bytes = memo.bytes;
	pthread_mutex_unlock(&memo.lock);
}
