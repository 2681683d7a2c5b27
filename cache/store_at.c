/*
 * store_at: every path the daemon resolves in STORE, beneath the store root: the
 * *at() wrappers of store.h (store_open_beneath ... store_readlink), each acting on
 * the last component without following it, and mkdir -p beneath the root.  A
 * refusal (a symlink or ".." on the way) is logged, rate limited.  store.c keeps the
 * store's layout and files (marker, type directories, read/write, walk, log).
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h> /* renameat2 */
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "beneath.h"
#include "log.h"
#include "store_int.h"

/*
 * A store entry is not what it must be (a symlink or ".." on the way, where the
 * daemon needs a directory or a file): refused, and said, a few times a second at
 * most (an NFS peer can plant one that every lookup meets).
 */
void store_refused(const char *path, int err)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* second and count */
	static time_t second;
	static unsigned count;
	time_t now = time(NULL);
	bool say;
	const char *what = err == -ELOOP   ? "a symlink where a directory or file belongs"
			   : err == -EXDEV ? "a '..' leading out of STORE"
					   : "not a directory where one belongs";

	if (err != -ELOOP && err != -EXDEV && err != -ENOTDIR)
		return;
	pthread_mutex_lock(&lock);
	if (now != second) {
		second = now;
		count = 0;
	}
	say = count++ < 5;
	pthread_mutex_unlock(&lock);
	if (say)
		log_warn("store: %s: refused: %s (seglamfs never follows links in STORE; "
			 "replace it with a real directory or file)",
			 path, what);
}

int store_open_beneath(const char *rel, int flags, mode_t mode)
{
	int fd = beneath_open(store_root_fd(), rel, flags, mode);

	if (fd < 0)
		store_refused(rel, fd);
	return fd;
}

int store_open_file(const char *rel, int flags, mode_t mode)
{
	int fd = store_open_beneath(rel, flags | O_NONBLOCK, mode);
	struct stat st;

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		int ret = S_ISDIR(st.st_mode) ? -EISDIR : -EACCES;

		if (ret == -EACCES)
			log_warn("store: %s: refused: not a regular file (a FIFO or device in "
				 "STORE is never opened; remove it)",
				 rel);
		close(fd);
		return ret;
	}
	return fd;
}

int store_parent_fd(const char *rel, const char **base)
{
	int fd = beneath_parent(store_root_fd(), rel, base);

	if (fd < 0)
		store_refused(rel, fd);
	return fd;
}

/* A statx result as the struct stat its callers know. */
static void store_stat_of(const struct statx *x, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_dev = makedev(x->stx_dev_major, x->stx_dev_minor);
	st->st_ino = x->stx_ino;
	st->st_mode = x->stx_mode;
	st->st_nlink = x->stx_nlink;
	st->st_uid = x->stx_uid;
	st->st_gid = x->stx_gid;
	st->st_rdev = makedev(x->stx_rdev_major, x->stx_rdev_minor);
	st->st_size = (off_t)x->stx_size;
	st->st_blksize = x->stx_blksize;
	st->st_blocks = (blkcnt_t)x->stx_blocks;
	st->st_atim = (struct timespec){x->stx_atime.tv_sec, x->stx_atime.tv_nsec};
	st->st_mtim = (struct timespec){x->stx_mtime.tv_sec, x->stx_mtime.tv_nsec};
	st->st_ctim = (struct timespec){x->stx_ctime.tv_sec, x->stx_ctime.tv_nsec};
}

/*
 * fstatat(@dirfd, @base, @flags) and the birth time (0: none reported), in one
 * call: on an NFS store each is a round trip.  Where statx is refused as such (an
 * old kernel, a container's or a unit's seccomp profile that predates it),
 * fstatat does it without a birth time.
 */
static int store_stat_born(int dirfd, const char *base, int flags, struct stat *st,
			   int64_t *born_ns)
{
	struct statx x;

	*born_ns = 0;
	if (statx(dirfd, base, flags, STATX_BASIC_STATS | STATX_BTIME, &x) == 0) {
		store_stat_of(&x, st);
		if (x.stx_mask & STATX_BTIME)
			*born_ns = x.stx_btime.tv_sec * 1000000000ll + x.stx_btime.tv_nsec;
		return 0;
	}
	if ((errno != ENOSYS && errno != EPERM && errno != EINVAL) ||
	    fstatat(dirfd, base, st, flags) != 0)
		return -errno;
	return 0;
}

int store_lstat_born(const char *rel, struct stat *st, int64_t *born_ns)
{
	const char *base;
	int dirfd = store_parent_fd(rel, &base), ret;

	*born_ns = 0;
	if (dirfd < 0)
		return dirfd;
	ret = store_stat_born(dirfd, base, AT_SYMLINK_NOFOLLOW, st, born_ns);
	close(dirfd);
	return ret;
}

int store_lstat(const char *rel, struct stat *st)
{
	int64_t born;

	return store_lstat_born(rel, st, &born);
}

int store_fstat_born(int fd, struct stat *st, int64_t *born_ns)
{
	return store_stat_born(fd, "", AT_EMPTY_PATH, st, born_ns);
}

int store_unlink(const char *rel, int flags)
{
	const char *base;
	int dirfd = store_parent_fd(rel, &base), ret = 0;

	if (dirfd < 0)
		return dirfd;
	if (unlinkat(dirfd, base, flags) != 0)
		ret = -errno;
	close(dirfd);
	return ret;
}

int store_rename(const char *from, const char *to, unsigned int flags)
{
	const char *b1, *b2;
	int d1 = store_parent_fd(from, &b1), d2 = -1, ret = 0;

	if (d1 < 0)
		return d1;
	d2 = store_parent_fd(to, &b2);
	if (d2 < 0)
		ret = d2;
	else if (renameat2(d1, b1, d2, b2, flags) != 0)
		ret = -errno;
	close(d1);
	if (d2 >= 0)
		close(d2);
	return ret;
}

int store_link(const char *from, const char *to)
{
	const char *b1, *b2;
	int d1 = store_parent_fd(from, &b1), d2 = -1, ret = 0;

	if (d1 < 0)
		return d1;
	d2 = store_parent_fd(to, &b2);
	if (d2 < 0)
		ret = d2;
	else if (linkat(d1, b1, d2, b2, 0) != 0)
		ret = -errno;
	close(d1);
	if (d2 >= 0)
		close(d2);
	return ret;
}

int store_mkdir(const char *rel, mode_t mode)
{
	const char *base;
	int dirfd = store_parent_fd(rel, &base), ret = 0;

	if (dirfd < 0)
		return dirfd;
	if (mkdirat(dirfd, base, mode & 0777) != 0)
		ret = -errno;
	close(dirfd);
	return ret;
}

int store_symlink(const char *target, const char *rel)
{
	const char *base;
	int dirfd = store_parent_fd(rel, &base), ret = 0;

	if (dirfd < 0)
		return dirfd;
	if (symlinkat(target, dirfd, base) != 0)
		ret = -errno;
	close(dirfd);
	return ret;
}

ssize_t store_readlink(const char *rel, char *buf, size_t size)
{
	const char *base;
	int dirfd = store_parent_fd(rel, &base);
	ssize_t n;

	if (dirfd < 0)
		return dirfd;
	n = readlinkat(dirfd, base, buf, size);
	if (n < 0)
		n = -errno;
	close(dirfd);
	return n;
}

int store_chmod(const char *rel, mode_t mode)
{
	const char *base;
	int dirfd = store_parent_fd(rel, &base), ret = 0;

	if (dirfd < 0)
		return dirfd;
	/* Never setuid, setgid or sticky: the store is served to other users. */
	if (fchmodat(dirfd, base, mode & 0777, AT_SYMLINK_NOFOLLOW) != 0)
		ret = -errno;
	close(dirfd);
	return ret;
}

int store_chown(const char *rel, uid_t uid, gid_t gid)
{
	const char *base;
	int dirfd = store_parent_fd(rel, &base), ret = 0;

	if (dirfd < 0)
		return dirfd;
	if (fchownat(dirfd, base, uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
		ret = -errno;
	close(dirfd);
	return ret;
}

int store_utimens(const char *rel, const struct timespec ts[2])
{
	const char *base;
	int dirfd = store_parent_fd(rel, &base), ret = 0;

	if (dirfd < 0)
		return dirfd;
	if (utimensat(dirfd, base, ts, AT_SYMLINK_NOFOLLOW) != 0)
		ret = -errno;
	close(dirfd);
	return ret;
}

/*
 * mkdir -p for @path relative to the directory @base, one component at a time,
 * never through a symlink; returns an fd of the last directory (O_PATH) or
 * -errno.  Everything is made below the directory @base is, not below a name: if
 * @base is removed meanwhile, nothing is made (ENOENT), and nothing comes back.
 */
int store_mkdirs_at(int base, const char *path)
{
	char comp[256];
	const char *p = path, *end;
	int cur = -1, fd, ret = 0;

	for (; *p; p = *end ? end + 1 : end) {
		int at = cur >= 0 ? cur : base;
		size_t len;

		end = strchrnul(p, '/');
		len = (size_t)(end - p);
		if (!len)
			continue;
		if (len >= sizeof(comp) || (len <= 2 && !strncmp(p, "..", len))) {
			ret = -EINVAL;
			goto out;
		}
		memcpy(comp, p, len);
		comp[len] = '\0';
		if (mkdirat(at, comp, 0755) != 0 && errno != EEXIST) {
			ret = -errno;
			goto out;
		}
		fd = openat(at, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			struct stat st;

			ret = -errno;
			if (ret == -ENOTDIR && fstatat(at, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode))
				ret = -ELOOP;
			store_refused(path, ret);
			goto out;
		}
		if (cur >= 0)
			close(cur);
		cur = fd;
	}
	if (cur < 0)
		cur = fcntl(base, F_DUPFD_CLOEXEC, 0);
	return cur < 0 ? -errno : cur;
out:
	if (cur >= 0)
		close(cur);
	return ret;
}

int store_mkdirs_fd(const char *path)
{
	return store_mkdirs_at(store_root_fd(), path);
}
