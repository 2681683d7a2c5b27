/* answer: refcounted answers and the bounded LRU answer memo; see answer.h. */
#include "answer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

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
	struct memo_entry *hnext;	/* hash chain */
	struct memo_entry *prev, *next; /* LRU list, most recent first */
};

static struct {
	pthread_mutex_t lock; /* everything below; memory only, never held across I/O */
	struct memo_entry **table;
	size_t nbuckets, entries, bytes, max_bytes;
	struct memo_entry lru; /* sentinel */
	uint64_t hits, misses;
} memo = {.lock = PTHREAD_MUTEX_INITIALIZER};

#define MEMO_ENTRY_COST(a) (sizeof(struct memo_entry) + sizeof(struct answer) + (a)->len)

static XXH128_hash_t memo_key(uint64_t version, const void *in, size_t len)
{
	return XXH3_128bits_withSeed(in, len, version);
}

void memo_init(size_t max_bytes)
{
	memo.max_bytes = max_bytes;
	memo.nbuckets = 1 << 12;
	memo.table = xcalloc(memo.nbuckets, sizeof(*memo.table));
	memo.lru.prev = memo.lru.next = &memo.lru;
}

static void lru_unlink(struct memo_entry *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void lru_push_front(struct memo_entry *e)
{
	e->next = memo.lru.next;
	e->prev = &memo.lru;
	memo.lru.next->prev = e;
	memo.lru.next = e;
}

static struct memo_entry **memo_slot(XXH128_hash_t key)
{
	struct memo_entry **p = &memo.table[key.low64 & (memo.nbuckets - 1)];

	while (*p && !XXH128_isEqual((*p)->key, key))
		p = &(*p)->hnext;
	return p;
}

/*
 * Keep chains short: the memo holds up to max_bytes of small answers (about 600k
 * entries at the default 64 MB), so the table doubles whenever it has more entries
 * than buckets.  Rehashing runs under the lock, amortized over the inserts.
 */
static void memo_grow(void)
{
	size_t nb = memo.nbuckets * 2;
	struct memo_entry **t = calloc(nb, sizeof(*t));

	if (!t)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < memo.nbuckets; i++) {
		struct memo_entry *e = memo.table[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			e->hnext = t[e->key.low64 & (nb - 1)];
			t[e->key.low64 & (nb - 1)] = e;
		}
	}
	free(memo.table);
	memo.table = t;
	memo.nbuckets = nb;
}

static void memo_evict_one(void)
{
	struct memo_entry *e = memo.lru.prev, **p;

	if (e == &memo.lru)
		return;
	p = memo_slot(e->key);
	*p = e->hnext;
	lru_unlink(e);
	memo.entries--;
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
	if (memo.table) {
		e = *memo_slot(key);
		if (e && e->ans->version == version) {
			lru_unlink(e);
			lru_push_front(e);
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
	struct memo_entry **p, *e;
	size_t cost = MEMO_ENTRY_COST(a);

	pthread_mutex_lock(&memo.lock);
	if (!memo.table || cost > memo.max_bytes / 4)
		goto out;
	p = memo_slot(key);
	if (*p)
		goto out; /* a concurrent reader of the same input got there first */
	e = xcalloc(1, sizeof(*e));
	e->key = key;
	e->ans = answer_get(a);
	*p = e;
	lru_push_front(e);
	memo.entries++;
	memo.bytes += cost;
	while (memo.bytes > memo.max_bytes)
		memo_evict_one();
	if (memo.entries > memo.nbuckets)
		memo_grow();
out:
	pthread_mutex_unlock(&memo.lock);
}

void memo_shutdown(void)
{
	pthread_mutex_lock(&memo.lock);
	while (memo.entries)
		memo_evict_one();
	free(memo.table);
	memo.table = NULL;
	pthread_mutex_unlock(&memo.lock);
}

void memo_get_stats(struct memo_stats *st)
{
	pthread_mutex_lock(&memo.lock);
	st->hits = memo.hits;
	st->misses = memo.misses;
	st->entries = memo.entries;
	st->bytes = memo.bytes;
	pthread_mutex_unlock(&memo.lock);
}
