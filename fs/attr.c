/*
 * attr: the attributes of every node kind, and GETATTR.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "xalloc.h"

void attr_dir(struct stat *st, uint64_t ino, mode_t mode)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFDIR | mode;
	st->st_nlink = 2;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_mtim = st->st_ctim = st->st_atim = fs_mounted;
}

static void attr_file(struct stat *st, uint64_t ino, mode_t mode, off_t size, int64_t mtime_ns)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFREG | mode;
	st->st_nlink = 1;
	st->st_size = size;
	st->st_blocks = (size + 511) / 512;
	st->st_blksize = 4096;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = st->st_ctim.tv_nsec = st->st_atim.tv_nsec = mtime_ns % 1000000000;
}

/*
 * Stat a procs node in the store.  node_lock held on entry and on return, but
 * dropped across the lstat and fstat: on an NFS store each is a network round
 * trip, and every other request needs node_lock.  @n stays valid meanwhile
 * (pinned by node_attr); its path and its writer's shadow are taken before the
 * lock is dropped, so a rename or a save racing with the stat gives the
 * attributes from just before it, as a stat that came first would.
 */
static int attr_store(struct node *n, struct stat *st)
{
	struct buf path = BUF_INIT;
	uint64_t ino = n->ino;
	int shadow = -1, ret;

	ret = node_store_path(n, &path);
	if (ret) {
		buf_free(&path);
		return ret;
	}
	/* While n->writer points to a pfile its shadow is open: pfile_save and
	 * pfile_destroy clear n->writer under node_lock before they move or close it.
	 * A duplicate (no I/O) is ours to fstat after the lock is dropped. */
	if (n->writer && n->writer->shadow >= 0)
		shadow = fcntl(n->writer->shadow, F_DUPFD_CLOEXEC, 0);
	pthread_mutex_unlock(&node_lock);
	ret = store_lstat(path.data, st);
	if (!ret && shadow >= 0) {
		struct stat sh;

		/* Unsaved writes: report the size and times the writer sees. */
		if (fstat(shadow, &sh) == 0) {
			st->st_size = sh.st_size;
			st->st_blocks = sh.st_blocks;
			st->st_mtim = sh.st_mtim;
		}
	}
	if (shadow >= 0)
		close(shadow);
	buf_free(&path);
	pthread_mutex_lock(&node_lock);
	st->st_ino = ino;
	return ret;
}

/*
 * Attributes of answer @a for node @n, and a record of the size the reply is about
 * to carry.  Once two replies differ, the kernel may hold either, so the node is
 * read with direct I/O for the rest of its life.  node_lock held.
 */
static void attr_answer(struct node *n, const struct answer *a, struct stat *st)
{
	attr_file(st, n->ino, 0444, (off_t)a->len, a->mtime_ns);
	if (n->told && n->told_size != a->len)
		n->told_differs = true;
	n->told = true;
	n->told_size = a->len;
}

/* Kernel entry cache time for a node whose attributes live @attr_timeout. */
double entry_timeout(double attr_timeout)
{
	return fs_cfg.timeout > attr_timeout ? fs_cfg.timeout : attr_timeout;
}

/*
 * The attributes of each node kind (node_ops[].attr): node_lock held on entry,
 * may be dropped and retaken (answers run procedures); *@timeout comes in as the
 * default, fs_cfg.timeout.
 */
int attr_root(struct node *n, struct stat *st, double *timeout)
{
	attr_dir(st, n->ino, 0755);
	st->st_nlink = 7;
	*timeout = FS_FIXED_TIMEOUT;
	return 0;
}

/* ask/, query/, map/ */
int attr_view(struct node *n, struct stat *st, double *timeout)
{
	attr_dir(st, n->ino, 0555);
	*timeout = FS_FIXED_TIMEOUT;
	return 0;
}

int attr_procs(struct node *n, struct stat *st, double *timeout)
{
	/* Shared (allow_other): anyone may add a type, only its owner (or root)
	 * may rename or remove it, as in /tmp. */
	attr_dir(st, n->ino, fs_cfg.readonly ? 0555 : fs_cfg.shared ? 01777 : 0755);
	*timeout = FS_FIXED_TIMEOUT;
	return 0;
}

int attr_stats(struct node *n, struct stat *st, double *timeout)
{
	struct buf text = BUF_INIT;
	uint64_t ino = n->ino;

	pthread_mutex_unlock(&node_lock);
	stats_text(&text);
	pthread_mutex_lock(&node_lock);
	attr_file(st, ino, 0444, (off_t)text.len,
		  (int64_t)fs_mounted.tv_sec * 1000000000 + fs_mounted.tv_nsec);
	*timeout = 0;
	buf_free(&text);
	return 0;
}

int attr_ask_type(struct node *n, struct stat *st, double *timeout)
{
	(void)timeout;
	attr_dir(st, n->ino, 0555);
	return 0;
}

/* query/TYPE, map/TYPE */
int attr_query_type(struct node *n, struct stat *st, double *timeout)
{
	(void)timeout;
	attr_file(st, n->ino, 0666, 0,
		  (int64_t)fs_mounted.tv_sec * 1000000000 + fs_mounted.tv_nsec);
	return 0;
}

int attr_answer_node(struct node *n, struct stat *st, double *timeout)
{
	struct answer *ans = NULL;
	char *type, *input;
	size_t inlen;
	int ret;

	(void)timeout;
	type = xstrdup(n->type);
	input = xmalloc(n->inlen + 1);
	memcpy(input, n->input, n->inlen + 1);
	inlen = n->inlen;
	pthread_mutex_unlock(&node_lock);
	ret = fs_peek(type, input, inlen, &ans);
	pthread_mutex_lock(&node_lock);
	free(type);
	free(input);
	if (!ret && ans->rc)
		ret = ans->rc;
	if (!ret)
		attr_answer(n, ans, st);
	answer_put(ans);
	return ret;
}

int attr_procs_type(struct node *n, struct stat *st, double *timeout)
{
	(void)timeout;
	return attr_store(n, st);
}

int attr_pfile(struct node *n, struct stat *st, double *timeout)
{
	/* Files here are replaced by rename (saves, other daemons): a cached size
	 * would cut reads of the file a descriptor really has open, so the kernel
	 * asks every time (with the descriptor, when there is one). */
	*timeout = 0;
	return attr_store(n, st);
}

/*
 * Attributes of any node; node_lock held on entry, may be dropped and retaken.
 * @n is pinned while the lock may be dropped; on return it may be gone if the
 * caller holds no lookup on it (fs_getattr uses nothing of it afterwards).
 */
int node_attr(struct node *n, struct stat *st, double *timeout)
{
	int ret;

	*timeout = fs_cfg.timeout;
	node_pin(n);
	ret = node_ops[n->kind].attr(n, st, timeout);
	node_unpin(n);
	return ret;
}

int reply_node(fuse_req_t req, struct node *n)
{
	struct fuse_entry_param e;
	atomic_bool intr;
	int ret;

	memset(&e, 0, sizeof(e));
	fs_intr_begin(req, &intr);
	ret = node_attr(n, &e.attr, &e.attr_timeout);
	fs_intr_end(req);
	if (ret) {
		node_forget(n, 1);
		return ret;
	}
	e.ino = n->ino;
	e.generation = node_generation;
	e.entry_timeout = entry_timeout(e.attr_timeout);
	pthread_mutex_unlock(&node_lock);
	fuse_reply_entry(req, &e);
	pthread_mutex_lock(&node_lock);
	return 0;
}

void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n;
	struct stat st;
	double timeout;
	int ret;

	if (fi && fi->fh && fi_handle(fi)->kind == H_PFILE) {
		/* fstat: the file this descriptor has open, which may no longer be the one
		 * behind its name (replaced by a save); its size bounds the reads. */
		struct pfile *pf = &fi_handle(fi)->pf;

		pthread_mutex_lock(&pf->lock);
		ret = fstat(pf->shadow >= 0 ? pf->shadow : pf->fd, &st) ? -errno : 0;
		pthread_mutex_unlock(&pf->lock);
		st.st_ino = ino;
		/* Not cached: the kernel keeps one inode for the name, so a stat of the
		 * name could be answered with this file's size until the timeout after
		 * the name has moved on to another file (a log rotated while `tail -F`
		 * reads the old one: the likely cause of a stat of a rotated log that
		 * showed the old size again, once, on a loaded machine). */
		if (ret)
			fuse_reply_err(req, -ret);
		else
			fuse_reply_attr(req, &st, 0);
		return;
	}
	procs_records_barrier(ino, NULL);
	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	if (n && fi && fi->fh && fi_handle(fi)->kind == H_ANSWER) {
		/* The kernel asks with the descriptor before reading past its i_size:
		 * answer with the size of the answer this descriptor reads. */
		memset(&st, 0, sizeof(st));
		attr_answer(n, fi_handle(fi)->ans, &st);
		timeout = fs_cfg.timeout;
		ret = 0;
	} else if (n) {
		atomic_bool intr;

		fs_intr_begin(req, &intr);
		ret = node_attr(n, &st, &timeout);
		fs_intr_end(req);
	} else {
		ret = -ESTALE;
	}
	pthread_mutex_unlock(&node_lock);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, timeout);
}
