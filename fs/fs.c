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

void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = fi_handle(fi);

	(void)ino;
	if (handle_ops[h->kind].read)
		handle_ops[h->kind].read(req, h, size, off);
	else
		fuse_reply_err(req, EISDIR);
}

void fs_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off,
	      struct fuse_file_info *fi)
{
	struct handle *h = fi_handle(fi);

	(void)ino;
	if (handle_ops[h->kind].write)
		handle_ops[h->kind].write(req, h, data, size, off);
	else
		fuse_reply_err(req, EBADF);
}

void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = fi_handle(fi);

	(void)ino;
	fuse_reply_err(req, handle_ops[h->kind].flush ? -handle_ops[h->kind].flush(h) : 0);
}

void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = fi_handle(fi);

	(void)ino;
	(void)datasync;
	fuse_reply_err(req, handle_ops[h->kind].fsync ? -handle_ops[h->kind].fsync(h) : 0);
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
