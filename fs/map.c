/*
 * map: MOUNT/map/TYPE, see map.h.
 *
 * Writes only queue input (checking each frame's length as it completes); the
 * work happens in reads: a read with nothing left to return takes the complete
 * frames waiting (up to a batch), runs them through proc_map and returns the
 * first bytes of the records.  So the daemon computes no faster than the client
 * reads (back-pressure), holds at most MAP_PENDING_MAX of input plus one batch of
 * records per descriptor, and a client that alternates "write some inputs, read
 * their records" never blocks and never sees EAGAIN.
 */
#include "map.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "proc.h"
#include "xalloc.h"

#define MAP_INPUT_MAX (1u << 20)   /* one input, bytes */
#define MAP_PENDING_MAX (4u << 20) /* queued input before writes get EAGAIN */
#define MAP_BATCH_BYTES (1u << 20) /* input bytes per batch */
#define MAP_BATCH_COUNT 16384u	   /* inputs per batch, at most */
#define MAP_BATCH_FIRST 16u	   /* inputs in the first batch of a stream */
#define MAP_BATCH_NS 50000000ull   /* aim: a batch takes 50 ms */
/* Charged per open stream: a batch's records (1 MiB) plus one answer, and the
 * buffers an idle stream keeps (up to MAP_KEEP each for input and batch). */
#define MAP_OUT_RESERVE (4u << 20)
#define MAP_KEEP (1u << 20)

/* Memory of all map/ streams together (queued input, plus a reservation for
 * records per open stream), bounded by -o query_mem: one user opening many
 * streams must not take the daemon's memory. */
static _Atomic size_t map_mem;
static size_t map_mem_max = (size_t)256 << 20;

struct map_stream {
	char *type;
	pthread_mutex_t lock; /* in, ready, nready, scan, broken */
	struct buf in;	      /* queued input: complete frames, then maybe a partial one */
	size_t ready;	      /* bytes of complete frames at the start of in */
	size_t nready;	      /* and how many */
	bool broken;	      /* a frame was longer than MAP_INPUT_MAX */
	/* One read at a time: it owns everything below. */
	pthread_mutex_t rlock;
	struct buf out; /* records made and not read yet, from out_off */
	size_t out_off;
	struct buf batch; /* inputs being run */
	size_t batch_n;
	/* Batch size: doubles from MAP_BATCH_FIRST while batches stay under
	 * MAP_BATCH_NS, shrinks at once when inputs get slow, so a slow procedure
	 * (up to the time limit per input) still answers every read promptly. */
	size_t batch_max;
	int err; /* the procedure cannot run: every later read fails */
};

static uint32_t map_le32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

void map_init(size_t max_bytes)
{
	if (max_bytes)
		map_mem_max = max_bytes;
}

/* Take @n bytes of the budget, or -ENOSPC. */
static int map_charge(size_t n)
{
	size_t now = atomic_fetch_add(&map_mem, n);

	if (now + n > map_mem_max) {
		atomic_fetch_sub(&map_mem, n);
		log_debug("map/: refused %zu bytes: open map/ streams hold %zu, the -o query_mem "
			  "limit (they free it on close)",
			  n, now);
		return -ENOSPC;
	}
	return 0;
}

static void map_release(size_t n)
{
	atomic_fetch_sub(&map_mem, n);
}

int map_open(const char *type, struct map_stream **out)
{
	struct map_stream *m;
	int ret = map_charge(MAP_OUT_RESERVE);

	*out = NULL;
	if (ret)
		return ret;
	m = xcalloc(1, sizeof(*m));
	m->type = xstrdup(type);
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->rlock, NULL);
	m->batch_max = MAP_BATCH_FIRST;
	*out = m;
	return 0;
}

void map_close(struct map_stream *m)
{
	if (!m)
		return;
	map_release(MAP_OUT_RESERVE + m->in.len + m->batch.len);
	buf_free(&m->in);
	buf_free(&m->out);
	buf_free(&m->batch);
	pthread_mutex_destroy(&m->lock);
	pthread_mutex_destroy(&m->rlock);
	free(m->type);
	free(m);
}

/* An empty buffer keeps its memory (no churn between batches) unless it grew over
 * @keep for a burst. */
static void map_trim(struct buf *b, size_t keep)
{
	if (!b->len && b->cap > keep)
		buf_free(b);
}

/* Mark the frames of @in completed since the last call as ready.  Lock held. */
static int map_scan(struct map_stream *m)
{
	while (m->in.len - m->ready >= 4) {
		char *h = m->in.data + m->ready;
		uint32_t len = map_le32(h);

		if (len > MAP_INPUT_MAX)
			return -EINVAL;
		if (m->in.len - m->ready - 4 < len)
			break;
		/* proc_map takes lengths in host order */
		memcpy(h, &len, 4);
		m->ready += 4 + (size_t)len;
		m->nready++;
	}
	return 0;
}

void map_write(fuse_req_t req, struct map_stream *m, const char *data, size_t size)
{
	size_t old;
	int ret = 0;

	pthread_mutex_lock(&m->lock);
	if (m->broken) {
		ret = -EINVAL;
	} else if (m->in.len >= MAP_PENDING_MAX) {
		ret = -EAGAIN; /* read the records of what was written first */
	} else if ((ret = map_charge(size)) == 0) {
		old = m->in.len;
		buf_add(&m->in, data, size);
		ret = map_scan(m);
		if (ret < 0) {
			size_t keep = m->ready > old ? m->ready : old;

			/* Keep the frames before the bad one; the stream ends there. */
			log_info("map/%s: an input frame claims more than %u bytes: stream refused",
				 m->type, MAP_INPUT_MAX);
			m->broken = true;
			map_release(m->in.len - keep);
			buf_truncate(&m->in, keep);
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, size);
}

/* Move up to a batch of ready frames from in to batch.  Lock held. */
static void map_take(struct map_stream *m)
{
	size_t off = 0, n = 0;

	while (n < m->nready && n < m->batch_max) {
		uint32_t len;

		memcpy(&len, m->in.data + off, 4);
		if (n && off + 4 + len > MAP_BATCH_BYTES)
			break;
		off += 4 + (size_t)len;
		n++;
	}
	buf_reset(&m->batch);
	m->batch_n = n;
	if (!off)
		return;
	buf_add(&m->batch, m->in.data, off);
	memmove(m->in.data, m->in.data + off, m->in.len - off);
	buf_truncate(&m->in, m->in.len - off);
	m->ready -= off;
	m->nready -= n;
	map_trim(&m->in, MAP_KEEP);
}

/* Run the batch (filling it first if empty); records go to out.  rlock held. */
static int map_run(struct map_stream *m, bool *nothing)
{
	struct buf err = BUF_INIT;
	size_t ran = 0, off = 0, fit;
	struct timespec t0, t1;
	uint64_t ns;
	int ret;

	*nothing = false;
	if (!m->batch_n) {
		bool broken;

		pthread_mutex_lock(&m->lock);
		map_take(m);
		*nothing = !m->batch_n;
		broken = m->broken;
		pthread_mutex_unlock(&m->lock);
		if (*nothing)
			return broken ? -EINVAL : 0;
	}
	buf_reset(&m->out);
	m->out_off = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = proc_map(m->type, m->batch.data, m->batch.len, m->batch_n, &m->out, &ran, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ns = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
	fit = ran ? (size_t)(MAP_BATCH_NS * ran / (ns ? ns : 1)) : 1;
	if (fit > 2 * m->batch_max)
		fit = 2 * m->batch_max;
	m->batch_max = fit < 1 ? 1 : fit > MAP_BATCH_COUNT ? MAP_BATCH_COUNT : fit;
	if (ret) {
		log_warn("map/%s: %s", m->type, buf_str(&err));
		m->err = ret == -ENOENT ? -ENOENT : -EIO;
		ret = m->err;
		goto out;
	}
	/* What was not run (answers reached the batch's cap) goes first next time. */
	for (size_t i = 0; i < ran; i++) {
		uint32_t len;

		memcpy(&len, m->batch.data + off, 4);
		off += 4 + (size_t)len;
	}
	if (off) {
		memmove(m->batch.data, m->batch.data + off, m->batch.len - off);
		buf_truncate(&m->batch, m->batch.len - off);
	}
	m->batch_n -= ran;
	map_release(off);
	map_trim(&m->batch, MAP_KEEP);
out:
	buf_free(&err);
	return ret;
}

void map_read(fuse_req_t req, struct map_stream *m, size_t size)
{
	bool nothing = false;
	size_t n;
	int ret = 0;

	pthread_mutex_lock(&m->rlock);
	if (m->err) {
		ret = m->err;
		goto out;
	}
	if (m->out_off == m->out.len) {
		ret = map_run(m, &nothing);
		if (ret || nothing)
			goto out;
	}
	n = m->out.len - m->out_off < size ? m->out.len - m->out_off : size;
	fuse_reply_buf(req, m->out.data + m->out_off, n);
	m->out_off += n;
	if (m->out_off == m->out.len) {
		buf_reset(&m->out);
		m->out_off = 0;
		map_trim(&m->out, 2 * MAP_KEEP);
	}
	pthread_mutex_unlock(&m->rlock);
	return;
out:
	pthread_mutex_unlock(&m->rlock);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_buf(req, NULL, 0);
}
