/*
 * procs: the namespace operations of procs/ (mkdir, unlink, rename, links),
 * each a store_* call beneath STORE, then the node table and the caches told.
 */
#include "fs_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"
#include "log.h"
#include "perm.h"
#include "proc.h"
#include "route.h"
#include "store.h"
#include "store_edit.h"
#include "xalloc.h"

void procs_records_barrier(fuse_ino_t ino, const char *name)
{
	struct node *n;
	char *type = NULL;

	if (!proc_records_pending())
		return; /* the fast path: no synthesis is writing records */
	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	if (n && n->kind == NODE_PROCS && name)
		type = xstrdup(name);
	else if (n && node_ops[n->kind].in_store && node_type(n))
		type = xstrdup(node_type(n));
	pthread_mutex_unlock(&node_lock);
	if (type)
		proc_records_wait(type); /* without node_lock: it waits on store writes */
	free(type);
}

/*
 * Resolve @ino to a procs node's store path (and type); for a NULL @name the node
 * itself, else its child @name.  Returns 0, -ESTALE, or -EPERM outside procs/.
 */
int procs_path(fuse_ino_t ino, const char *name, struct buf *path, struct buf *type)
{
	struct node *n;
	int ret = 0;

	procs_records_barrier(ino, name);
	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	if (!n) {
		ret = -ESTALE;
	} else if (n->kind == NODE_PROCS && name && procs_dot_name(ino, name)) {
		buf_printf(path, "procs/%s", name);
		if (type)
			buf_adds(type, name);
	} else if (n->kind != NODE_PROCS_TYPE && n->kind != NODE_PFILE) {
		ret = n->kind == NODE_PROCS ? -EPERM : -EACCES;
	} else if (name && atomic_is_tmpname(name)) {
		ret = -EINVAL; /* the daemon's own temp names are never made through the mount */
	} else {
		ret = name ? node_store_child_path(n, name, path) : node_store_path(n, path);
		if (!ret && type)
			buf_adds(type, node_type(n));
	}
	pthread_mutex_unlock(&node_lock);
	return ret;
}

/* Something under procs/TYPE changed through the mount. */
void procs_changed(const char *type)
{
	if (type[0] == '.')
		return; /* .git and the like: no procedure, no answers to drop */
	proc_touched(type);
	route_touched(type);
	fs_inval_type(type);
}

int procs_may_use(fuse_req_t req, fuse_ino_t ino, int fd, int mask, bool *replaced)
{
	struct node *n;
	struct stat st;
	int64_t born;
	int ret = 0;

	ret = store_fstat_born(fd, &st, &born);
	if (ret)
		return ret;
	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	if (!n)
		ret = -ESTALE;
	else if (replaced)
		*replaced = n->kind == NODE_PFILE && !node_is_backing(n, &st, born);
	pthread_mutex_unlock(&node_lock);
	if (!ret && fs_cfg.shared && mask)
		ret = perm_access(req, &st, mask);
	return ret;
}

/* "/proc/self/fd/N": acts on what @fd has open (O_PATH included), not on a name. */
void procs_fd_path(int fd, char out[PROCS_FD_PATH])
{
	snprintf(out, PROCS_FD_PATH, "/proc/self/fd/%d", fd);
}

int check_writable(void)
{
	return fs_cfg.readonly || store_readonly() ? -EROFS : 0;
}

/*
 * Give what this request just created, open as @fd (O_PATH will do), to the
 * requesting user when the daemon runs as root.  By descriptor, never by name:
 * the name can be given another file (a hard link to someone else's) between
 * the create and the chown.
 */
void chown_to_caller(fuse_req_t req, int fd)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	if (getuid() == 0 && ctx && (ctx->uid != 0 || ctx->gid != 0))
		if (fchownat(fd, "", ctx->uid, ctx->gid, AT_EMPTY_PATH) != 0)
			log_debug("chown to the caller: %s", strerror(errno));
}

/*
 * Give what this request made (@fd) the mode the kernel asked for, already
 * masked by the caller's umask: the daemon's own umask must not mask it again
 * (a daemon at 022 took group write from a caller at 002).
 */
void made_mode(int fd, mode_t mode)
{
	if (fchmod(fd, mode & 0777) != 0)
		log_debug("chmod of a new entry: %s", strerror(errno));
}

/*
 * The entry this request made at @path (a directory by mkdirat, a symlink by
 * symlinkat), opened without following it, or -EEXIST when what is there now
 * cannot be it: another kind, another owner than the daemon, a directory with
 * entries or a symlink with other names (renamed or linked in meanwhile).  Only
 * then is it given to the caller.
 */
static int open_made(const char *path, mode_t kind)
{
	int fd = store_open_beneath(
	    path, S_ISDIR(kind) ? O_RDONLY | O_DIRECTORY | O_NOFOLLOW : O_PATH | O_NOFOLLOW, 0);
	struct stat st;
	bool ok;

	if (fd < 0)
		return fd;
	ok = fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == kind && st.st_uid == geteuid();
	if (ok && S_ISDIR(kind)) {
		int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		DIR *dir = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
		struct dirent *de;

		if (!dir && dup_fd >= 0)
			close(dup_fd);
		ok = dir != NULL;
		while (ok && (de = readdir(dir)))
			ok = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
		if (dir)
			closedir(dir);
	} else if (ok) {
		ok = st.st_nlink == 1;
	}
	if (!ok) {
		log_warn("store: %s: not the entry just made (replaced meanwhile): left as it is",
			 path);
		close(fd);
		return -EEXIST;
	}
	return fd;
}

/*
 * Make procs/TYPE/ for mkdir: its bucket directories as needed, then the type
 * directory itself, which must be new (-EEXIST otherwise: a type someone made
 * meanwhile is theirs, never given to this caller).
 */
static int mkdir_type(const char *name, mode_t mode, struct buf *path)
{
	char *p;
	int ret = 0;

	store_type_dir(name, path);
	/* "procs/HH" and "procs/HH/HH" (procs/ is there): each made beneath STORE by
	 * store_mkdir, so a symlink planted as one is refused by the next. */
	for (p = strchr(strchr(path->data, '/') + 1, '/'); p && !ret; p = strchr(p + 1, '/')) {
		*p = '\0';
		ret = store_mkdir(path->data, 0755);
		*p = '/';
		if (ret == -EEXIST)
			ret = 0;
	}
	return ret ? ret : store_mkdir(path->data, mode);
}

void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct buf path = BUF_INIT, type = BUF_INIT;
	int ret = check_writable(), fd;

	if (ret)
		goto out;
	if (parent == INO_PROCS && !procs_dot_name(parent, name)) {
		if (!type_name_ok(name)) {
			ret = -EINVAL;
			goto out;
		}
		buf_adds(&type, name);
		ret = mkdir_type(name, mode, &path);
	} else {
		ret = procs_path(parent, name, &path, &type);
		if (!ret)
			ret = store_mkdir(path.data, mode);
	}
	if (ret)
		goto out;
	/* Ours since mkdirat said so (an existing directory is -EEXIST); given to the
	 * caller only if the name still holds it. */
	fd = open_made(path.data, S_IFDIR);
	if (fd >= 0) {
		made_mode(fd, mode);
		chown_to_caller(req, fd);
		close(fd);
	}
	procs_changed(type.data);
	reply_new_entry(req, parent, name);
out:
	if (ret)
		fuse_reply_err(req, -ret);
	buf_free(&path);
	buf_free(&type);
}

static void detach_child(fuse_ino_t parent_ino, const char *name)
{
	struct node *parent, *n;

	pthread_mutex_lock(&node_lock);
	parent = node_by_ino(parent_ino);
	n = parent ? node_child(parent, name) : NULL;
	if (n)
		node_detach(n);
	pthread_mutex_unlock(&node_lock);
}

/* Files the daemon writes into a type directory of its own accord (its records),
 * or the temp file of such a write. */
static bool procs_is_record(const char *name)
{
	return !strcmp(name, "log") || !strcmp(name, "meta.json") || !strcmp(name, "callers") ||
	       atomic_is_tmpname(name);
}

/*
 * Remove the directory of a type (@dir, its store path).  `rm -r` races with the
 * daemon's own records of the type: a failure logged or counts flushed while rm
 * empties the directory make `log` or `meta.json` after rm listed it, and the
 * rmdir then failed with ENOTEMPTY although the caller removed everything there
 * was.  Records of a type being removed are moot: when nothing but such files is
 * left and the caller may remove entries of the directory, they go and the
 * rmdir is tried again.  Anything else left (a source, a test) is ENOTEMPTY.
 */
static int procs_rmdir_type(fuse_req_t req, const char *dir)
{
	int ret = store_unlink(dir, AT_REMOVEDIR);

	for (int tries = 0; tries < 3 && ret == -ENOTEMPTY; tries++) {
		int fd = store_open_beneath(dir, O_RDONLY | O_DIRECTORY, 0);
		struct dirent *de;
		struct stat st;
		bool only_records = true;
		DIR *d;

		if (fd < 0)
			break;
		if (fstat(fd, &st) != 0 || (fs_cfg.shared && perm_access(req, &st, W_OK | X_OK))) {
			close(fd);
			break;
		}
		d = fdopendir(fd);
		if (!d) {
			close(fd);
			break;
		}
		while (only_records && (de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				only_records = procs_is_record(de->d_name) &&
					       (de->d_type == DT_REG || de->d_type == DT_UNKNOWN);
		if (only_records) {
			rewinddir(d);
			while ((de = readdir(d)))
				if (procs_is_record(de->d_name))
					unlinkat(fd, de->d_name, 0); /* (a directory: EISDIR) */
		}
		closedir(d);
		if (!only_records)
			break;
		ret = store_unlink(dir, AT_REMOVEDIR);
	}
	return ret;
}

static void fs_unlink_common(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
	struct buf path = BUF_INIT, type = BUF_INIT;
	int ret = check_writable();

	if (ret)
		goto out;
	if (parent == INO_PROCS && !procs_dot_name(parent, name)) {
		if (!flags) {
			ret = -EISDIR;
			goto out;
		}
		if (!type_name_ok(name)) {
			ret = -ENOENT;
			goto out;
		}
		store_type_dir(name, &path);
		buf_adds(&type, name);
	} else {
		ret = procs_path(parent, name, &path, &type);
		if (ret)
			goto out;
	}
	if (parent == INO_PROCS && !procs_dot_name(parent, name))
		ret = procs_rmdir_type(req, path.data);
	else
		ret = store_unlink(path.data, flags);
	if (ret)
		goto out;
	detach_child(parent, name);
	procs_changed(type.data);
out:
	fuse_reply_err(req, -ret);
	buf_free(&path);
	buf_free(&type);
}

void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_unlink_common(req, parent, name, 0);
}

void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_unlink_common(req, parent, name, AT_REMOVEDIR);
}

/* Regular files only (knfsd creates files through MKNOD): no device, FIFO or socket
 * is ever made in the store. */
void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct buf path = BUF_INIT, type = BUF_INIT;
	int ret = check_writable(), fd;

	(void)rdev;
	if (!ret && !S_ISREG(mode))
		ret = -EPERM;
	if (!ret)
		ret = procs_path(parent, name, &path, &type);
	if (!ret) {
		fd = store_open_beneath(path.data, O_WRONLY | O_CREAT | O_EXCL, mode & 0777);
		if (fd < 0) {
			ret = fd;
		} else {
			/* O_EXCL: the file is ours */
			made_mode(fd, mode);
			chown_to_caller(req, fd);
			close(fd);
		}
	}
	if (ret) {
		fuse_reply_err(req, -ret);
	} else {
		procs_changed(type.data);
		reply_new_entry(req, parent, name);
	}
	buf_free(&path);
	buf_free(&type);
}

void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct buf path = BUF_INIT, type = BUF_INIT;
	int ret = check_writable();

	if (!ret)
		ret = procs_path(parent, name, &path, &type);
	if (!ret)
		ret = store_symlink(link, path.data);
	if (ret) {
		fuse_reply_err(req, -ret);
	} else {
		int fd = open_made(path.data, S_IFLNK);

		if (fd >= 0) {
			chown_to_caller(req, fd);
			close(fd);
		}
		procs_changed(type.data);
		reply_new_entry(req, parent, name);
	}
	buf_free(&path);
	buf_free(&type);
}

void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct buf path = BUF_INIT;
	char target[4096];
	ssize_t n = -1;
	int ret, fd = -1;

	ret = procs_path(ino, NULL, &path, NULL);
	if (!ret) {
		/* By descriptor: the link read is the one found, whatever kind of
		 * entry the name holds (reading a link's target needs no access). */
		fd = store_open_beneath(path.data, O_PATH | O_NOFOLLOW, 0);
		if (fd < 0)
			ret = fd;
	}
	if (!ret) {
		n = readlinkat(fd, "", target, sizeof(target) - 1);
		if (n < 0)
			ret = -errno;
	}
	if (fd >= 0)
		close(fd);
	buf_free(&path);
	if (ret) {
		fuse_reply_err(req, ret == -EPERM ? EINVAL : -ret);
		return;
	}
	target[n] = '\0';
	fuse_reply_readlink(req, target);
}

/*
 * Link the entry at @from as @to, as root, by descriptor, and only if the caller
 * may link what that descriptor has (the kernel's fs.protected_hardlinks rule:
 * the owner, or one who may read and write it), whatever the kernel checked: the
 * name can hold another user's file by now.
 */
static int link_node(fuse_req_t req, fuse_ino_t ino, const char *from, const char *to)
{
	char self[PROCS_FD_PATH];
	const char *base;
	struct stat st;
	int fd, dirfd = -1, ret;

	fd = store_open_beneath(from, O_PATH | O_NOFOLLOW, 0);
	if (fd < 0)
		return fd;
	ret = procs_may_use(req, ino, fd, 0, NULL);
	if (!ret && fstat(fd, &st) != 0)
		ret = -errno;
	if (!ret && fs_cfg.shared && !perm_owner(req, st.st_uid) &&
	    (!S_ISREG(st.st_mode) || perm_access(req, &st, R_OK | W_OK)))
		ret = -EPERM;
	if (ret)
		goto out;
	dirfd = store_parent_fd(to, &base);
	if (dirfd < 0) {
		ret = dirfd;
		goto out;
	}
	/* linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH; the magic link of the
	 * descriptor does not, and links a symlink itself (it is not followed). */
	procs_fd_path(fd, self);
	if (linkat(AT_FDCWD, self, dirfd, base, AT_SYMLINK_FOLLOW) != 0)
		ret = -errno;
out:
	if (dirfd >= 0)
		close(dirfd);
	close(fd);
	return ret;
}

void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char *name)
{
	struct buf from = BUF_INIT, to = BUF_INIT, type = BUF_INIT;
	int ret = check_writable();

	if (!ret)
		ret = procs_path(ino, NULL, &from, NULL);
	if (!ret)
		ret = procs_path(parent, name, &to, &type);
	if (!ret)
		ret = link_node(req, ino, from.data, to.data);
	if (ret) {
		fuse_reply_err(req, -ret);
	} else {
		procs_changed(type.data);
		reply_new_entry(req, parent, name);
	}
	buf_free(&from);
	buf_free(&to);
	buf_free(&type);
}

void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
	       const char *newname, unsigned int flags)
{
	struct buf from = BUF_INIT, to = BUF_INIT, t1 = BUF_INIT, t2 = BUF_INIT;
	struct node *pn, *npn, *n, *victim;
	int ret = check_writable();

	if (ret)
		goto out;
	if (flags & RENAME_WHITEOUT) {
		ret = -EINVAL; /* a whiteout is a device file: never made in the store */
		goto out;
	}
	if ((parent == INO_PROCS && !procs_dot_name(parent, name)) ||
	    (newparent == INO_PROCS && !procs_dot_name(newparent, newname))) {
		/* Renaming a whole type: both sides must be type directories. */
		if (parent != newparent || !type_name_ok(name) || !type_name_ok(newname)) {
			ret = -EXDEV;
			goto out;
		}
		buf_adds(&t1, name);
		buf_adds(&t2, newname);
		ret = store_edit_rename_type(name, newname, flags);
	} else {
		ret = procs_path(parent, name, &from, &t1);
		if (!ret)
			ret = procs_path(newparent, newname, &to, &t2);
		if (!ret && (atomic_is_tmpname(name) || atomic_is_tmpname(newname)))
			ret = -EINVAL;
		if (!ret)
			ret = store_rename(from.data, to.data, flags);
	}
	if (ret)
		goto out;
	pthread_mutex_lock(&node_lock);
	pn = node_by_ino(parent);
	npn = node_by_ino(newparent);
	n = pn ? node_child(pn, name) : NULL;
	victim = npn ? node_child(npn, newname) : NULL;
	if (flags & RENAME_EXCHANGE) {
		if (n && victim)
			node_exchange(n, victim);
		else if (n && npn)
			node_move(n, npn, newname);
		else if (victim && pn)
			node_move(victim, pn, name);
	} else {
		if (victim && victim != n)
			node_detach(victim);
		if (n && npn)
			node_move(n, npn, newname);
	}
	pthread_mutex_unlock(&node_lock);
	procs_changed(t1.data);
	if (strcmp(t1.data, t2.data))
		procs_changed(t2.data);
out:
	fuse_reply_err(req, -ret);
	buf_free(&from);
	buf_free(&to);
	buf_free(&t1);
	buf_free(&t2);
}
