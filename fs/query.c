/*
 * query: query/TYPE (and query/.status/TYPE): the input written, sealed into an
 * answer at the first read.
 */
#include "fs_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proc.h"
#include "route.h"
#include "xalloc.h"

/*
 * Status mode (query/.status/TYPE): what follows the input is one status line,
 * "ok", "rejected", "unknown" or "failed", then the answer or the reason of this
 * very ask, so `seglam ask` never has to guess it from the log.  Only an
 * interrupt is an error of the read.  q.lock held.
 */
static void query_seal_status(struct handle *h, const char *type)
{
	struct buf why = BUF_INIT;
	int ret;

	if (!strcmp(type, ROUTE_TYPE)) {
		ret = route_ask(buf_str(&h->q.input), h->q.input.len, &h->q.ans);
		if (ret && ret != -EINTR)
			buf_adds(&why, "no procedure answers this question (see the daemon's log)");
	} else {
		ret = proc_ask_why(type, buf_str(&h->q.input), h->q.input.len, &h->q.ans, &why);
	}

	if (!ret)
		node_type_answered(h->ino);
	buf_reset(&h->q.reply);
	h->q.err = 0;
	if (ret == -EINTR) {
		h->q.err = ret;
		h->q.sealed = false;
	} else if (!ret && !h->q.ans->rc) {
		buf_adds(&h->q.reply, "ok\n");
		buf_add(&h->q.reply, h->q.ans->data, h->q.ans->len);
	} else {
		const char *body = ret ? buf_str(&why) : h->q.ans->data;
		size_t len = ret ? why.len : h->q.ans->len;

		buf_adds(&h->q.reply, ret == -ENOENT ? "unknown\n"
				      : ret	     ? "failed\n"
						     : "rejected\n");
		buf_add(&h->q.reply, body, len);
		if (!len || body[len - 1] != '\n')
			buf_addc(&h->q.reply, '\n');
	}
	buf_free(&why);
}

/* Take @more bytes of the query budget, or -ENOSPC when it is spent. */
static int query_charge(size_t more)
{
	size_t now = atomic_fetch_add(&fs_query_bytes, more);

	if (now + more > fs_cfg.query_mem) {
		atomic_fetch_sub(&fs_query_bytes, more);
		return -ENOSPC;
	}
	return 0;
}

/* Seal a query handle: run the procedure on what was written. q.lock held. */
static void query_seal(struct handle *h)
{
	struct node *n;
	char *type = NULL;

	h->q.sealed = true;
	pthread_mutex_lock(&node_lock);
	n = node_by_ino(h->ino);
	if (n)
		type = strdup(n->type);
	pthread_mutex_unlock(&node_lock);
	if (!type) {
		h->q.err = -ESTALE;
		return;
	}
	if (h->q.status) {
		query_seal_status(h, type);
		free(type);
		return;
	}
	h->q.err = fs_ask(type, buf_str(&h->q.input), h->q.input.len, &h->q.ans);
	if (!h->q.err)
		node_type_answered(h->ino);
	if (!h->q.err && h->q.ans->rc)
		h->q.err = h->q.ans->rc;
	if (h->q.err == -EINTR)
		h->q.sealed = false; /* interrupted: the next read asks again */
	free(type);
}

/* The file reads as the input written, followed by the answer, so a reader
 * continuing on the writing descriptor gets just the answer. */
void query_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	char *data;

	pthread_mutex_lock(&h->q.lock);
	if (!h->q.sealed) {
		atomic_bool intr;

		fs_intr_begin(req, &intr);
		query_seal(h);
		fs_intr_end(req);
	}
	if (h->q.err) {
		pthread_mutex_unlock(&h->q.lock);
		fuse_reply_err(req, -h->q.err);
		return;
	}
	if ((size_t)off < h->q.input.len) {
		size_t n =
		    h->q.input.len - (size_t)off < size ? h->q.input.len - (size_t)off : size;

		data = xmalloc(n ? n : 1);
		memcpy(data, h->q.input.data + off, n);
		pthread_mutex_unlock(&h->q.lock);
		fuse_reply_buf(req, data, n);
		free(data);
	} else if (h->q.status) {
		size_t skip = (size_t)off - h->q.input.len, n = 0;

		if (skip < h->q.reply.len)
			n = h->q.reply.len - skip < size ? h->q.reply.len - skip : size;
		data = xmalloc(n ? n : 1);
		memcpy(data, h->q.reply.data + skip, n);
		pthread_mutex_unlock(&h->q.lock);
		fuse_reply_buf(req, data, n);
		free(data);
	} else {
		struct answer *a = answer_get(h->q.ans);

		pthread_mutex_unlock(&h->q.lock);
		reply_slice(req, a->data, a->len, size, off - (off_t)h->q.input.len);
		answer_put(a);
	}
}

void query_write(fuse_req_t req, struct handle *h, const char *data, size_t size, off_t off)
{
	int ret = 0;

	pthread_mutex_lock(&h->q.lock);
	if (h->q.sealed) {
		ret = -EBUSY; /* the answer has been read: open the file again */
	} else if ((uint64_t)off + size > FS_QUERY_MAX) {
		ret = -EFBIG;
	} else if ((size_t)off + size > h->q.input.len &&
		   (ret = query_charge((size_t)off + size - h->q.input.len)) != 0) {
		log_debug("query/: an input write refused: open query/ handles already "
			  "buffer %zu bytes, the -o query_mem limit (they free it on close)",
			  atomic_load(&fs_query_bytes));
	} else {
		if ((size_t)off > h->q.input.len) {
			buf_grow(&h->q.input, (size_t)off - h->q.input.len);
			memset(h->q.input.data + h->q.input.len, 0, (size_t)off - h->q.input.len);
			h->q.input.len = (size_t)off;
		}
		if ((size_t)off + size > h->q.input.len) {
			buf_grow(&h->q.input, (size_t)off + size - h->q.input.len);
			h->q.input.len = (size_t)off + size;
			h->q.input.data[h->q.input.len] = '\0';
		}
		memcpy(h->q.input.data + off, data, size);
	}
	pthread_mutex_unlock(&h->q.lock);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, size);
}

void query_destroy(struct handle *h)
{
	answer_put(h->q.ans);
	atomic_fetch_sub(&fs_query_bytes, h->q.input.len);
	buf_free(&h->q.input);
	buf_free(&h->q.reply);
	pthread_mutex_destroy(&h->q.lock);
}

/* OPEN of query/TYPE, or of query/.status/TYPE (status mode). */
int query_open(fuse_req_t req, const struct node_open *o, struct fuse_file_info *fi,
	       struct handle **hp)
{
	struct handle *h = *hp = handle_new(H_QUERY, o->ino);

	(void)req;
	pthread_mutex_init(&h->q.lock, NULL);
	h->q.status = o->parent_ino && o->parent_ino != INO_QUERY;
	fi->direct_io = 1;
	return 0;
}
