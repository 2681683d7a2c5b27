/*
 * fs: FUSE low-level operations; see fs.h.
 *
 * ask/TYPE/INPUT is computed at LOOKUP, because its size must be exact there
 * (rsync, tar and NFS clients trust st_size); OPEN takes the answer from the memo
 * (or recomputes it, deterministically), and READ serves it from the handle.
 *
 * procs/TYPE/... is a view of the type's store directory.  Writes never touch the
 * store file in place: the first write (or an O_TRUNC open) makes a "shadow", a
 * temp copy beside the target, and FLUSH/FSYNC commits it with fsync + rename.
 * FLUSH is the commit point because it is synchronous with close(): RELEASE is
 * not, and the next read after a save must see the new procedure.
 */
#include "fs_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "atomic.h"
#include "log.h"
#include "map.h"
#include "name.h"
#include "node.h"
#include "perm.h"
#include "proc.h"
#include "route.h"
#include "store.h"
#include "store_edit.h"
#include "synth.h"
#include "usage.h"

struct fs_config fs_cfg;
/* Bytes buffered by all open query/ handles, bounded by fs_cfg.query_mem: one user's
 * writes must not take the daemon's memory (a handle alone is capped at
 * FS_QUERY_MAX). */
_Atomic size_t fs_query_bytes;
struct fuse_session *fs_session;
struct timespec fs_mounted; /* the times of the directories the mount makes */

void fs_set_session(struct fuse_session *se)
{
	fs_session = se;
}

void fs_init(const struct fs_config *cfg)
{
	fs_cfg = *cfg;
	clock_gettime(CLOCK_REALTIME, &fs_mounted);
	if (fs_cfg.timeout <= 0)
		fs_cfg.timeout = 1.0;
	if (!fs_cfg.query_mem)
		fs_cfg.query_mem = (size_t)256 << 20;
	map_init(fs_cfg.query_mem);
}

void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = NULL;
	struct node *n;
	enum node_kind kind;
	char *type = NULL, *input = NULL;
	size_t inlen = 0;
	atomic_bool intr;
	bool status = false;
	int ret = 0;

	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	kind = n ? n->kind : NODE_ROOT;
	if (n && kind == NODE_QUERY_TYPE)
		status = n->parent && n->parent->ino != INO_QUERY;
	if (n && (kind == NODE_ANSWER || kind == NODE_QUERY_TYPE || kind == NODE_MAP_TYPE)) {
		type = strdup(n->type);
		if (kind == NODE_ANSWER) {
			input = malloc(n->inlen + 1);
			memcpy(input, n->input, n->inlen + 1);
			inlen = n->inlen;
		}
	}
	pthread_mutex_unlock(&node_lock);
	if (!n) {
		ret = -ESTALE;
		goto out;
	}
	switch (kind) {
	case NODE_ANSWER:
		if ((fi->flags & O_ACCMODE) != O_RDONLY) {
			ret = -EACCES;
			break;
		}
		h = handle_new(H_ANSWER, ino);
		fs_intr_begin(req, &intr);
		ret = fs_ask(type, input, inlen, &h->ans);
		fs_intr_end(req);
		if (!ret && h->ans->rc)
			ret = h->ans->rc;
		if (ret)
			break;
		answer_open_mode(h, fi);
		fi->noflush = 1; /* nothing to save on close: spare the round trip */
		break;
	case NODE_QUERY_TYPE:
		h = handle_new(H_QUERY, ino);
		pthread_mutex_init(&h->q.lock, NULL);
		h->q.status = status;
		fi->direct_io = 1;
		break;
	case NODE_MAP_TYPE:
		h = handle_new(H_MAP, ino);
		ret = map_open(type, &h->map);
		fi->direct_io = 1;
		fi->nonseekable = 1;
		break;
	case NODE_STATS:
		h = handle_new(H_STATS, ino);
		stats_text(&h->text);
		fi->direct_io = 1;
		fi->noflush = 1;
		break;
	case NODE_PFILE:
		ret = pfile_open(req, ino, fi);
		goto out;
	default:
		ret = -EISDIR;
	}
	if (!ret)
		fi->fh = (uintptr_t)h;
out:
	free(type);
	free(input);
	if (ret) {
		if (h && h->kind == H_ANSWER)
			answer_put(h->ans);
		if (h)
			handle_free(h);
		fuse_reply_err(req, -ret);
	} else {
		fuse_reply_open(req, fi);
	}
}

static void reply_slice(fuse_req_t req, const char *data, size_t len, size_t size, off_t off)
{
	if ((size_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, data + off,
			       len - (size_t)off < size ? len - (size_t)off : size);
}

void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct handle *h = fi_handle(fi);
	char *data;
	ssize_t n;

	(void)ino;
	switch (h->kind) {
	case H_ANSWER: {
		/* Our own reference: once the reply is written the reader may close and
		 * RELEASE (on another thread) drop the handle's, while writev returns. */
		struct answer *a = answer_get(h->ans);

		reply_slice(req, a->data, a->len, size, off);
		answer_put(a);
		return;
	}
	case H_STATS:
		data = malloc(h->text.len + 1);
		if (!data)
			abort();
		memcpy(data, buf_str(&h->text), h->text.len + 1);
		reply_slice(req, data, h->text.len, size, off);
		free(data);
		return;
	case H_QUERY:
		/* The file reads as the input written, followed by the answer, so a
		 * reader continuing on the writing descriptor gets just the answer. */
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
			size_t n = h->q.input.len - (size_t)off < size
				       ? h->q.input.len - (size_t)off
				       : size;

			data = malloc(n ? n : 1);
			if (!data)
				abort();
			memcpy(data, h->q.input.data + off, n);
			pthread_mutex_unlock(&h->q.lock);
			fuse_reply_buf(req, data, n);
			free(data);
		} else if (h->q.status) {
			size_t skip = (size_t)off - h->q.input.len, n = 0;

			if (skip < h->q.reply.len)
				n = h->q.reply.len - skip < size ? h->q.reply.len - skip : size;
			data = malloc(n ? n : 1);
			if (!data)
				abort();
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
		return;
	case H_MAP:
		map_read(req, h->map, size);
		return;
	case H_PFILE:
		data = malloc(size ? size : 1);
		if (!data)
			abort();
		pthread_mutex_lock(&h->pf.lock);
		n = pread(h->pf.shadow >= 0 ? h->pf.shadow : h->pf.fd, data, size, off);
		pthread_mutex_unlock(&h->pf.lock);
		if (n < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_buf(req, data, (size_t)n);
		free(data);
		return;
	default:
		fuse_reply_err(req, EISDIR);
	}
}

void fs_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct handle *h = fi_handle(fi);
	struct buf path = BUF_INIT;
	ssize_t n;
	int ret = 0;

	if (h->kind == H_QUERY) {
		pthread_mutex_lock(&h->q.lock);
		if (h->q.sealed) {
			ret = -EBUSY; /* the answer has been read: open the file again */
		} else if ((uint64_t)off + size > FS_QUERY_MAX) {
			ret = -EFBIG;
		} else if ((size_t)off + size > h->q.input.len &&
			   (ret = query_charge((size_t)off + size - h->q.input.len)) != 0) {
			log_debug(
			    "query/: an input write refused: open query/ handles already "
			    "buffer %zu bytes, the -o query_mem limit (they free it on close)",
			    atomic_load(&fs_query_bytes));
		} else {
			if ((size_t)off > h->q.input.len) {
				buf_grow(&h->q.input, (size_t)off - h->q.input.len);
				memset(h->q.input.data + h->q.input.len, 0,
				       (size_t)off - h->q.input.len);
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
		return;
	}
	if (h->kind == H_MAP) {
		map_write(req, h->map, data, size);
		return;
	}
	if (h->kind != H_PFILE || !h->pf.writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	pthread_mutex_lock(&h->pf.lock);
	if (h->pf.shadow < 0) {
		ret = procs_path(ino, NULL, &path, NULL);
		if (!ret)
			ret = pfile_make_shadow(&h->pf, path.data, true);
		if (!ret)
			pfile_set_writer(ino, &h->pf);
	}
	if (!ret) {
		n = pwrite(h->pf.shadow, data, size, off);
		if (n < 0)
			ret = -errno;
		else if ((size_t)n < size)
			ret = -ENOSPC;
		h->pf.dirty = true;
		if (ret)
			h->pf.error = ret;
	}
	pthread_mutex_unlock(&h->pf.lock);
	buf_free(&path);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, size);
}

void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = fi_handle(fi);

	(void)ino;
	fuse_reply_err(req, h->kind == H_PFILE ? -pfile_save(h) : 0);
}

void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = fi_handle(fi);
	int ret = 0;

	(void)ino;
	(void)datasync;
	if (h->kind == H_PFILE) {
		ret = pfile_save(h);
		pthread_mutex_lock(&h->pf.lock);
		if (!ret && fsync(h->pf.fd) != 0 && errno != EBADF && errno != EINVAL)
			ret = -errno;
		pthread_mutex_unlock(&h->pf.lock);
	}
	fuse_reply_err(req, -ret);
}

void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	handle_destroy(fi_handle(fi));
	fuse_reply_err(req, 0);
}

void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	if (fstatvfs(store_root_fd(), &sv) != 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

void fs_init_conn(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* NFS export: the kernel may ask for "." and ".." of a handle's inode. */
	if (conn->capable & FUSE_CAP_EXPORT_SUPPORT)
		conn->want |= FUSE_CAP_EXPORT_SUPPORT;
	/* Drop cached answer pages when the source's mtime (the answer's) changes. */
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

const struct fuse_lowlevel_ops fs_ops = {
    .init = fs_init_conn,
    .lookup = fs_lookup,
    .forget = fs_forget,
    .forget_multi = fs_forget_multi,
    .getattr = fs_getattr,
    .setattr = fs_setattr,
    .readlink = fs_readlink,
    .mkdir = fs_mkdir,
    .mknod = fs_mknod,
    .unlink = fs_unlink,
    .rmdir = fs_rmdir,
    .symlink = fs_symlink,
    .rename = fs_rename,
    .link = fs_link,
    .open = fs_open,
    .read = fs_read,
    .write = fs_write,
    .flush = fs_flush,
    .release = fs_release,
    .fsync = fs_fsync,
    .opendir = fs_opendir,
    .readdir = fs_readdir,
    .releasedir = fs_releasedir,
    .fsyncdir = fs_fsyncdir,
    .statfs = fs_statfs,
    .create = fs_create,
};
