/*
 * ask: the answers of ask/TYPE/INPUT (and of questions), and how the kernel may
 * cache them in its page cache.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>

#include "proc.h"
#include "route.h"

/* An answer of ask/TYPE/INPUT, or of a question (q/QUESTION, query/.q: the pseudo type
 * ROUTE_TYPE, which no real type name can be). */
int fs_ask(const char *type, const char *in, size_t len, struct answer **ans)
{
	if (!strcmp(type, ROUTE_TYPE))
		return route_ask(in, len, ans);
	return proc_ask(type, in, len, ans);
}

/* The same, for a look ahead (LOOKUP, stat), which counts only a failure. */
int fs_peek(const char *type, const char *in, size_t len, struct answer **ans)
{
	if (!strcmp(type, ROUTE_TYPE))
		return route_peek(in, len, ans);
	return proc_peek(type, in, len, ans);
}

/*
 * Choose how the kernel reads answer handle @h.  Through the page cache, a reader
 * gets EOF without another READ and a repeated read costs no request at all; but
 * the kernel then trusts its i_size and its cached pages, so that is safe only
 * when
 *  - every attribute reply for the node carried this answer's size (an edit that
 *    changed the size raced with a GETATTR: the kernel may hold the other one and
 *    would cut the answer short), and
 *  - no handle open through the page cache reads another version (pages are per
 *    inode, shared by all its descriptors).
 * Otherwise direct I/O, which is always right.  Cached pages are kept across
 * opens only while the version they were read from is current.
 *
 * A page-cache handle's answer is pushed into the kernel's cache before OPEN is
 * answered (notify_store), so the reader's first read is not a READ request
 * either.  That is safe outside node_lock: this handle is counted in page_opens
 * with its version, so no handle of another version can use the pages until it
 * is released.
 */
static void answer_open_mode(struct handle *h, struct fuse_file_info *fi)
{
	struct node *n;
	uint64_t version = h->ans->version;
	bool push = false;

	fi->direct_io = 1;
	pthread_mutex_lock(&node_lock);
	n = node_by_ino(h->ino);
	if (n && n->told && !n->told_differs && n->told_size == h->ans->len &&
	    (n->page_opens == 0 || n->page_version == version)) {
		fi->direct_io = 0;
		fi->keep_cache = n->page_opens > 0 || (n->page_version == version && version);
		n->page_version = version;
		n->page_opens++;
		h->paged = true;
		push = !fi->keep_cache && h->ans->len && fs_session;
	}
	pthread_mutex_unlock(&node_lock);
	if (push) {
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(h->ans->len);

		bv.buf[0].mem = h->ans->data;
		/* On failure (an old kernel) the pages are dropped at open and read. */
		if (fuse_lowlevel_notify_store(fs_session, h->ino, 0, &bv, 0) == 0)
			fi->keep_cache = 1;
	}
}

void ask_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	/* Our own reference: once the reply is written the reader may close and
	 * RELEASE (on another thread) drop the handle's, while writev returns. */
	struct answer *a = answer_get(h->ans);

	reply_slice(req, a->data, a->len, size, off);
	answer_put(a);
}

void ask_destroy(struct handle *h)
{
	if (h->paged) {
		struct node *n;

		pthread_mutex_lock(&node_lock);
		n = node_by_ino(h->ino);
		if (n && n->page_opens)
			n->page_opens--;
		pthread_mutex_unlock(&node_lock);
	}
	answer_put(h->ans);
}

/* OPEN of ask/TYPE/INPUT: the answer, computed now if the memo lost it. */
int ask_open(fuse_req_t req, const struct node_open *o, struct fuse_file_info *fi,
	     struct handle **hp)
{
	struct handle *h;
	atomic_bool intr;
	int ret;

	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return -EACCES;
	h = *hp = handle_new(H_ANSWER, o->ino);
	fs_intr_begin(req, &intr);
	ret = fs_ask(o->type, o->input, o->inlen, &h->ans);
	fs_intr_end(req);
	if (!ret)
		node_type_answered(o->parent_ino);
	if (!ret && h->ans->rc)
		ret = h->ans->rc;
	if (ret)
		return ret;
	answer_open_mode(h, fi);
	fi->noflush = 1; /* nothing to save on close: spare the round trip */
	return 0;
}
