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
 * not, and the next read after a save must see the new procedure (pfile.c, with
 * the store I/O in cache/store_edit.c).
 *
 * This file holds the op table given to libfuse and node_ops, one row per node
 * kind; each view and mechanism has its own file (fs_int.h).
 */
#include "fs_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "map.h"
#include "store.h"
#include "xalloc.h"

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
		fs_cfg.query_mem = (size_t)FS_DEFAULT_QUERY_MEM_MB << 20;
	map_init(fs_cfg.query_mem);
}

/* OPEN of map/TYPE: a stream (map.c). */
static int map_type_open(fuse_req_t req, const struct node_open *o, struct fuse_file_info *fi,
			 struct handle **hp)
{
	struct handle *h = *hp = handle_new(H_MAP, o->ino);

	(void)req;
	fi->direct_io = 1;
	fi->nonseekable = 1;
	return map_open(o->type, &h->map);
}

/* What each kind of node does: one row per kind (see struct node_ops). */
const struct node_ops node_ops[] = {
    [NODE_ROOT] = {.attr = attr_root, .lookup = lookup_root, .opendir = dir_root},
    [NODE_ASK] = {.attr = attr_view, .lookup = lookup_view, .opendir = dir_types},
    [NODE_PROCS] = {.attr = attr_procs, .lookup = lookup_procs, .opendir = dir_types},
    [NODE_QUERY] = {.attr = attr_view, .lookup = lookup_view, .opendir = dir_types},
    [NODE_STATS] = {.attr = attr_stats, .open = stats_open},
    [NODE_ASK_TYPE] = {.attr = attr_ask_type, .lookup = lookup_ask_type, .opendir = dir_ask_type},
    [NODE_ANSWER] = {.attr = attr_answer_node, .open = ask_open},
    [NODE_QUERY_TYPE] = {.attr = attr_query_type, .open = query_open},
    [NODE_PROCS_TYPE] = {.attr = attr_procs_type,
			 .lookup = lookup_store,
			 .opendir = dir_store,
			 .in_store = true},
    [NODE_PFILE] = {.attr = attr_pfile,
		    .lookup = lookup_store,
		    .open = pfile_node_open,
		    .opendir = dir_store,
		    .in_store = true},
    [NODE_MAP] = {.attr = attr_view, .lookup = lookup_view, .opendir = dir_types},
    [NODE_MAP_TYPE] = {.attr = attr_query_type, .open = map_type_open},
};

void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node_open o = {.ino = ino};
	struct handle *h = NULL;
	struct node *n;
	enum node_kind kind;
	char *type = NULL, *input = NULL;
	int ret = 0;

	procs_records_barrier(ino, NULL);
	/* What the open needs of the node, copied: it runs without node_lock. */
	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	kind = n ? n->kind : NODE_ROOT;
	if (n && n->parent)
		o.parent_ino = n->parent->ino;
	if (n && n->type)
		type = xstrdup(n->type);
	if (n && n->input) {
		input = xmalloc(n->inlen + 1);
		memcpy(input, n->input, n->inlen + 1);
		o.inlen = n->inlen;
	}
	pthread_mutex_unlock(&node_lock);
	o.type = type;
	o.input = input;
	if (!n)
		ret = -ESTALE;
	else if (!node_ops[kind].open)
		ret = -EISDIR;
	else
		ret = node_ops[kind].open(req, &o, fi, &h);
	/* An open that sets fi->fh itself (procs/ files) leaves @h NULL. */
	if (!ret && h)
		fi->fh = (uintptr_t)h;
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
