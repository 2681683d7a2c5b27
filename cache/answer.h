/*
 * answer: an immutable, refcounted result of running a procedure on one input,
 * and the memo that keeps recent answers in memory.
 *
 * The memo is keyed by (source version, XXH3-128 of the input): answers are pure
 * functions of those two, so an edit of the procedure changes the key and old
 * entries simply age out.  It is bounded in bytes (LRU).
 */
#ifndef SEGLAM_ANSWER_H
#define SEGLAM_ANSWER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct answer {
	atomic_uint refs;
	int rc;		  /* 0: answer; -EINVAL: rejected (data is the reason); -EIO... */
	uint64_t version; /* source version that produced it */
	int64_t mtime_ns; /* mtime of that source, shown as the answer's mtime */
	size_t len;
	char data[];
};

struct answer *answer_new(int rc, uint64_t version, const void *data, size_t len);
struct answer *answer_get(struct answer *a);
void answer_put(struct answer *a);

void memo_init(size_t max_bytes);
void memo_shutdown(void);
/* Returns a new reference, or NULL. */
struct answer *memo_find(uint64_t version, const void *in, size_t len);
void memo_add(const void *in, size_t len, struct answer *a);

struct memo_stats {
	uint64_t hits, misses, entries, bytes;
};
void memo_get_stats(struct memo_stats *st);

#endif
