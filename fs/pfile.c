/*
 * pfile: files under procs/, written through shadows.
 *
 * Writes never touch the store file in place: the first write (or an O_TRUNC
 * open, a truncate) makes a "shadow", a temp copy beside the target, and
 * FLUSH/FSYNC commits it with fsync + rename (cache/store_edit.h).  FLUSH is the
 * commit point because it is synchronous with close(): RELEASE is not, and the
 * next read after a save must see the new procedure.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "log.h"
#include "perm.h"
#include "store.h"
#include "store_edit.h"
#include "xalloc.h"

/* Node @ino now stands for the store file @st describes, born at @born. */
static void node_note_backing(fuse_ino_t ino, const struct stat *st, int64_t born)
{
	struct node *n;

	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	if (n)
		node_set_backing(n, (uint64_t)st->st_ino, (uint64_t)st->st_dev, born);
	pthread_mutex_unlock(&node_lock);
}

/* Give @pf a shadow of @target (with its data when @copy). */
static int pfile_make_shadow(struct pfile *pf, const char *target, bool copy)
{
	int fd = store_edit_shadow(pf->fd, target, copy, &pf->shadow_path);

	if (fd < 0)
		return fd;
	pf->shadow = fd;
	return 0;
}

/*
 * Make the shadow the file: fsync it, rename it over the target.  pf->lock held.
 * @target is the node's current store path (it may have been renamed since open);
 * @gone when the name was unlinked meanwhile, so a save does not resurrect it.
 */
static int pfile_commit(struct pfile *pf, const char *target, bool gone)
{
	int ret = 0;

	if (!pf->dirty || pf->shadow < 0)
		return 0;
	ret = store_edit_commit(pf->shadow, pf->shadow_path.data, target, gone);
	if (ret)
		goto out;
	if (pf->fd >= 0)
		close(pf->fd);
	pf->fd = pf->shadow;
	pf->shadow = -1;
	pf->dirty = false;
out:
	return ret;
}

/*
 * A write of @h failed (pf->error): half the data is worse than none.  Drop the
 * shadow, keep the old file; pf->error stays, so that every later write, flush,
 * fsync and close of this handle fails with it and nothing of the handle is ever
 * committed (a later write would start a new shadow from the old file, and
 * commit the old data patched with only the writes after the failure).
 * pf->lock held.
 */
static int pfile_failed(struct handle *h)
{
	struct pfile *pf = &h->pf;
	struct node *n;

	if (pf->shadow >= 0) {
		/* attr_store reads the writer's shadow: unhook it before closing it. */
		pthread_mutex_lock(&node_lock);
		n = node_by_ino(h->ino);
		if (n && n->writer == pf)
			n->writer = NULL;
		pthread_mutex_unlock(&node_lock);
		store_edit_discard(pf->shadow, pf->shadow_path.data);
		pf->shadow = -1;
	}
	pf->dirty = false;
	return pf->error;
}

/* Commit a handle's writes; used by flush, fsync and release. */
int pfile_save(struct handle *h)
{
	struct buf path = BUF_INIT, type = BUF_INIT;
	struct pfile *pf = &h->pf;
	struct node *n;
	bool gone = true;
	int ret;

	pthread_mutex_lock(&pf->lock);
	if (pf->error) {
		ret = pfile_failed(h);
		pthread_mutex_unlock(&pf->lock);
		return ret;
	}
	if (!pf->dirty) {
		pthread_mutex_unlock(&pf->lock);
		return 0;
	}
	pthread_mutex_lock(&node_lock);
	n = node_by_ino(h->ino);
	if (n) {
		/* A name too deep for a store path is no name to save to. */
		gone = n->unlinked || node_store_path(n, &path);
		buf_adds(&type, node_type(n));
		if (n->writer == pf)
			n->writer = NULL;
	}
	pthread_mutex_unlock(&node_lock);
	ret = pfile_commit(pf, path.data ? path.data : "", gone);
	if (!ret && !gone) {
		struct stat st;
		int64_t born;

		/* Saved through this name: the name keeps its inode, as with an
		 * in-place write. */
		if (store_fstat_born(pf->fd, &st, &born) == 0)
			node_note_backing(h->ino, &st, born);
	}
	pthread_mutex_unlock(&pf->lock);
	if (ret)
		log_error("procs/%s: saving %s failed: %s (the old file is unchanged)", type.data,
			  path.data, strerror(-ret));
	else if (!gone)
		procs_changed(type.data);
	buf_free(&path);
	buf_free(&type);
	return ret;
}

static void pfile_set_writer(uint64_t ino, struct pfile *pf)
{
	struct node *n;

	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	if (n)
		n->writer = pf;
	pthread_mutex_unlock(&node_lock);
}

/*
 * Open node @ino's store file for handle @fi.  @made: the file a CREATE of this
 * request just made (its identity), which the caller may write whatever mode it
 * asked for (POSIX: the kernel skips the access check of the file it creates; git
 * writes every object 0444 that way); any other file found at the name is
 * checked as any open is.
 */
static int pfile_open_made(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
			   const struct stat *made)
{
	struct buf path = BUF_INIT;
	struct handle *h;
	int acc = fi->flags & O_ACCMODE, ret, fd, mask;
	bool replaced = false;
	struct stat st;

	ret = procs_path(ino, NULL, &path, NULL);
	if (ret)
		goto out;
	if (acc != O_RDONLY && (ret = check_writable()))
		goto out;
	fd = store_open_file(path.data, O_RDONLY, 0);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	/* The caller's access, checked again on the file opened: the name may hold
	 * another than the one the kernel checked (procs_may_use). */
	mask = (acc != O_WRONLY ? R_OK : 0) | (acc != O_RDONLY || (fi->flags & O_TRUNC) ? W_OK : 0);
	if (made && fstat(fd, &st) == 0 && st.st_ino == made->st_ino && st.st_dev == made->st_dev)
		mask = 0;
	ret = procs_may_use(req, ino, fd, mask, &replaced);
	if (ret) {
		close(fd);
		goto out;
	}
	h = handle_new(H_PFILE, ino);
	/* The name stands for another file than the one the kernel looked up, whose
	 * size it caches: read this one without letting that size cut it short. */
	if (replaced)
		fi->direct_io = 1;
	pthread_mutex_init(&h->pf.lock, NULL);
	h->pf.fd = fd;
	h->pf.shadow = -1;
	h->pf.writable = acc != O_RDONLY;
	if (h->pf.writable && (fi->flags & O_TRUNC)) {
		ret = pfile_make_shadow(&h->pf, path.data, false);
		if (ret) {
			close(fd);
			handle_free(h);
			goto out;
		}
		h->pf.dirty = true;
		pfile_set_writer(ino, &h->pf);
	}
	fi->fh = (uintptr_t)h;
	fi->keep_cache = 0;
out:
	buf_free(&path);
	return ret;
}

/*
 * CREATE without O_EXCL of a name the store has (made meanwhile, or hidden from
 * LOOKUP: a FIFO, device or socket an NFS peer planted): a regular file is opened
 * as it is, and stays its owner's (pfile_open checks it is the file looked up);
 * anything else is refused (-EACCES, as store_open_file refuses it) without being
 * opened.
 */
static int create_existing(const char *path)
{
	struct stat st;
	int ret = store_lstat(path, &st);

	if (ret || S_ISREG(st.st_mode))
		return ret;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	log_warn("store: %s: refused: not a regular file (a FIFO or device in STORE is never "
		 "opened; remove it)",
		 path);
	return -EACCES;
}

void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi)
{
	struct buf path = BUF_INIT, type = BUF_INIT;
	struct fuse_entry_param e;
	struct node *pnode, *n = NULL;
	struct stat made = {0}; /* the file this request made (st_ino 0: none) */
	int ret = check_writable(), fd;

	if (ret)
		goto out;
	ret = procs_path(parent, name, &path, &type);
	if (ret)
		goto out;
	if (atomic_is_tmpname(name)) {
		ret = -EINVAL;
		goto out;
	}
	/* The name appears at once (POSIX), empty; the data arrives by shadow.  Always
	 * O_EXCL: only a file this request made is given to the caller, and nothing
	 * else at the name is opened here (a FIFO would wake its blocked reader). */
	fd = store_open_file(path.data, O_WRONLY | O_CREAT | O_EXCL, mode & 0777);
	if (fd >= 0) {
		made_mode(fd, mode);
		chown_to_caller(req, fd);
		if (fstat(fd, &made) != 0)
			made.st_ino = 0;
		close(fd);
	} else if (fd == -EEXIST && !(fi->flags & O_EXCL)) {
		ret = create_existing(path.data);
	} else {
		ret = fd;
	}
	if (ret)
		goto out;
	pthread_mutex_lock(&node_lock);
	pnode = node_by_ino(parent);
	ret = pnode ? lookup_store_child(pnode, name, &n) : -ESTALE;
	if (!ret) {
		memset(&e, 0, sizeof(e));
		ret = node_attr(n, &e.attr, &e.attr_timeout);
		if (ret)
			node_forget(n, 1);
	}
	pthread_mutex_unlock(&node_lock);
	if (ret)
		goto out;
	e.ino = e.attr.st_ino;
	e.generation = node_generation;
	e.entry_timeout = entry_timeout(e.attr_timeout);
	ret = pfile_open_made(req, e.ino, fi, made.st_ino ? &made : NULL);
	if (ret) {
		pthread_mutex_lock(&node_lock);
		n = node_by_ino(e.ino);
		if (n)
			node_forget(n, 1);
		pthread_mutex_unlock(&node_lock);
		goto out;
	}
	procs_changed(type.data);
	fuse_reply_create(req, &e, fi);
out:
	if (ret)
		fuse_reply_err(req, -ret);
	buf_free(&path);
	buf_free(&type);
}

/*
 * Truncate the file at @path (node @ino) to @size for the caller of @req, who
 * must be allowed to write the file opened (procs_may_use): a shadow, committed
 * as a save is; the name keeps its inode, as after an in-place truncate.
 */
static int pfile_truncate(fuse_req_t req, fuse_ino_t ino, const char *path, off_t size)
{
	struct stat st;
	int64_t born = 0;
	int fd, ret;

	fd = store_open_file(path, O_RDONLY, 0);
	if (fd < 0)
		return fd;
	ret = procs_may_use(req, ino, fd, W_OK, NULL);
	if (!ret)
		ret = store_edit_truncate(fd, path, size, &st, &born);
	if (!ret && st.st_ino)
		node_note_backing(ino, &st, born);
	close(fd);
	return ret;
}

/* SETATTR of a directory the mount makes: its owner (or root) may, and nothing is
 * kept; only root gives it away (the same rules as for store files). */
static int fixed_dir_setattr(fuse_req_t req, const struct stat *attr, int to_set)
{
	struct stat cur;

	attr_dir(&cur, INO_ROOT, 0755);
	return perm_setattr(req, &cur, attr, to_set) ? -EPERM : 0;
}

void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi)
{
	struct handle *h = fi ? fi_handle(fi) : NULL;
	struct buf path = BUF_INIT, type = BUF_INIT;
	struct pfile *pf = h && h->kind == H_PFILE ? &h->pf : NULL;
	char self[PROCS_FD_PATH];
	struct stat cur;
	int ret, fd = -1, shadow = -1;

	ret = procs_path(ino, NULL, &path, &type);
	if (ret == -EPERM || ret == -EACCES) {
		/* Outside procs/: only a no-op truncate of a query or map file is harmless;
		 * the owner (or root) restoring a backup may set the owner, mode and times
		 * of the directories the mount makes, which keep none of them (as on other
		 * virtual filesystems), so that rsync -a, cp -a and tar exit 0. */
		if (h && (h->kind == H_QUERY || h->kind == H_MAP) && to_set == FUSE_SET_ATTR_SIZE &&
		    attr->st_size == 0)
			ret = 0;
		else if (!(to_set & FUSE_SET_ATTR_SIZE) &&
			 ((ino >= INO_ROOT && ino <= INO_QUERY) || ino == INO_MAP))
			ret = fixed_dir_setattr(req, attr, to_set);
		if (!ret) {
			fs_getattr(req, ino, fi);
			goto out_free;
		}
		goto out;
	}
	if (ret || (ret = check_writable()))
		goto out;
	if (pf) {
		pthread_mutex_lock(&pf->lock);
	} else {
		/* fchmod, fchown and futimens come without the handle (only ftruncate
		 * has it): a handle's unsaved writes, committed at its close, must
		 * carry them too, or the commit puts the old mode, owner and times
		 * back (cp -a: write, utimens, fchown, fchmod, close). */
		struct node *n;

		pthread_mutex_lock(&node_lock);
		n = node_by_ino(ino);
		if (n && n->writer && n->writer->shadow >= 0)
			shadow = fcntl(n->writer->shadow, F_DUPFD_CLOEXEC, 0);
		pthread_mutex_unlock(&node_lock);
	}
	if (pf && pf->shadow >= 0)
		shadow = fcntl(pf->shadow, F_DUPFD_CLOEXEC, 0);
	if (!pf || to_set != FUSE_SET_ATTR_SIZE) {
		/* The entry at the name, by descriptor, checked and changed as one: a
		 * name can be given another file between an lstat and a chmod. */
		fd = store_open_beneath(path.data, O_PATH | O_NOFOLLOW, 0);
		ret = fd < 0 ? fd : procs_may_use(req, ino, fd, 0, NULL);
		if (!ret && fstat(fd, &cur) != 0)
			ret = -errno;
		if (fd >= 0)
			procs_fd_path(fd, self);
	} else if (fstat(pf->fd, &cur) != 0) {
		ret = -errno; /* a truncate of the file this descriptor has open */
	}
	/* Never for a caller the kernel would refuse (the daemon acts as root). */
	if (!ret)
		ret = perm_setattr(req, &cur, attr, to_set);
	if (!ret && (to_set & FUSE_SET_ATTR_MODE)) {
		/* Never setuid, setgid or sticky.  A symlink has no mode of its own
		 * (chmod through the descriptor would say so too). */
		if (S_ISLNK(cur.st_mode))
			ret = -EOPNOTSUPP;
		else if (chmod(self, attr->st_mode & 0777) != 0)
			ret = -errno;
		if (!ret && shadow >= 0)
			fchmod(shadow, attr->st_mode & 0777);
	}
	if (!ret && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		uid_t uid = to_set & FUSE_SET_ATTR_UID ? attr->st_uid : (uid_t)-1;
		gid_t gid = to_set & FUSE_SET_ATTR_GID ? attr->st_gid : (gid_t)-1;

		if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH) != 0)
			ret = -errno;
		if (!ret && shadow >= 0 && fchown(shadow, uid, gid) != 0)
			ret = -errno;
	}
	if (!ret && (to_set & FUSE_SET_ATTR_SIZE)) {
		if (pf && pf->error) {
			ret = pfile_failed(h); /* nothing of this handle is saved any more */
		} else if (pf && pf->writable) {
			if (pf->shadow < 0) {
				ret = pfile_make_shadow(pf, path.data, attr->st_size > 0);
				if (!ret)
					pfile_set_writer(ino, pf);
			}
			if (!ret && ftruncate(pf->shadow, attr->st_size) != 0) {
				ret = -errno;
				pf->error = ret;
			}
			pf->dirty = true;
		} else {
			ret = pfile_truncate(req, ino, path.data, attr->st_size);
		}
	}
	if (!ret && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
		struct timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};

		if (to_set & FUSE_SET_ATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_ATIME)
			ts[0] = attr->st_atim;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_MTIME)
			ts[1] = attr->st_mtim;
		if (pf && pf->shadow >= 0) {
			if (futimens(pf->shadow, ts) != 0)
				ret = -errno;
		} else if (utimensat(AT_FDCWD, self, ts, 0) != 0) {
			ret = -errno; /* the magic link is not followed: a symlink's own times */
		} else if (shadow >= 0 && futimens(shadow, ts) != 0) {
			ret = -errno;
		}
	}
	if (pf)
		pthread_mutex_unlock(&pf->lock);
	if (fd >= 0)
		close(fd);
	if (shadow >= 0)
		close(shadow);
	if (!ret && (to_set & FUSE_SET_ATTR_SIZE) && !pf)
		procs_changed(type.data);
out:
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fs_getattr(req, ino, fi);
out_free:
	buf_free(&path);
	buf_free(&type);
}

void pfile_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	char *data = xmalloc(size ? size : 1);
	ssize_t n;

	pthread_mutex_lock(&h->pf.lock);
	n = pread(h->pf.shadow >= 0 ? h->pf.shadow : h->pf.fd, data, size, off);
	pthread_mutex_unlock(&h->pf.lock);
	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, data, (size_t)n);
	free(data);
}

/* Writes go to the shadow, made at the first one (with the file's data). */
void pfile_write(fuse_req_t req, struct handle *h, const char *data, size_t size, off_t off)
{
	struct buf path = BUF_INIT;
	ssize_t n;
	int ret = 0;

	if (!h->pf.writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	pthread_mutex_lock(&h->pf.lock);
	if (h->pf.error) {
		ret = pfile_failed(h); /* an earlier write failed: so do all later ones */
		goto out;
	}
	if (h->pf.shadow < 0) {
		ret = procs_path(h->ino, NULL, &path, NULL);
		if (!ret)
			ret = pfile_make_shadow(&h->pf, path.data, true);
		if (!ret)
			pfile_set_writer(h->ino, &h->pf);
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
out:
	pthread_mutex_unlock(&h->pf.lock);
	buf_free(&path);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, size);
}

/* FSYNC: commit, then sync the file the descriptor now has. */
int pfile_fsync(struct handle *h)
{
	int ret = pfile_save(h);

	pthread_mutex_lock(&h->pf.lock);
	if (!ret && fsync(h->pf.fd) != 0 && errno != EBADF && errno != EINVAL)
		ret = -errno;
	pthread_mutex_unlock(&h->pf.lock);
	return ret;
}

/* RELEASE: save what the handle still holds, drop a shadow that failed. */
void pfile_destroy(struct handle *h)
{
	struct node *n;

	pfile_save(h);
	pthread_mutex_lock(&node_lock);
	n = node_by_ino(h->ino);
	if (n && n->writer == &h->pf)
		n->writer = NULL;
	pthread_mutex_unlock(&node_lock);
	if (h->pf.shadow >= 0)
		store_edit_discard(h->pf.shadow, h->pf.shadow_path.data);
	if (h->pf.fd >= 0)
		close(h->pf.fd);
	buf_free(&h->pf.shadow_path);
	pthread_mutex_destroy(&h->pf.lock);
}

/* OPEN of a procs/ file (node_ops[].open): the handle goes into @fi directly. */
int pfile_node_open(fuse_req_t req, const struct node_open *o, struct fuse_file_info *fi,
		    struct handle **hp)
{
	(void)hp;
	return pfile_open_made(req, o->ino, fi, NULL);
}
