/*
 * slowfs: a FUSE passthrough of ROOT that sleeps SLOWFS_MS milliseconds (default
 * 50) before every operation while the file named by SLOWFS_FLAG exists (always,
 * when SLOWFS_FLAG is unset): a store on a slow network filesystem, for
 * tests/mount/test_slow_store.py.  A test helper, not installed.
 *
 *     SLOWFS_MS=50 SLOWFS_FLAG=/tmp/slow slowfs -f ROOT MOUNTPOINT
 *
 * With SLOWFS_HOLD=NAME and SLOWFS_HOLD_FLAG=FILE, an operation on a path whose
 * last component is NAME stops while FILE exists, as a request stuck on the
 * network would, after creating FILE.held: a test learns that the request is
 * stuck from that file, not from a clock, and releases it by removing FILE.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

static char root[PATH_MAX];
static const char *flag;
static long delay_ms = 50;
static const char *hold_name, *hold_flag;

/* Every operation pays the network's round trip while the flag is up. */
static void slow(void)
{
	struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};

	if (flag && access(flag, F_OK) != 0)
		return;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* SLOWFS_HOLD: see the top of the file. */
static void hold(const char *path)
{
	struct timespec ts = {0, 10 * 1000000L};
	const char *base = strrchr(path, '/');
	char held[PATH_MAX];
	int fd;

	if (!hold_name || !hold_flag || strcmp(base ? base + 1 : path, hold_name) ||
	    access(hold_flag, F_OK) != 0)
		return;
	snprintf(held, sizeof(held), "%s.held", hold_flag);
	fd = open(held, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
	while (access(hold_flag, F_OK) == 0)
		nanosleep(&ts, NULL);
}

static void real(const char *path, char *out)
{
	snprintf(out, PATH_MAX, "%s%s", root, path);
}

#define REAL(p)                                                                                    \
	char r[PATH_MAX];                                                                          \
	slow();                                                                                    \
	hold(p);                                                                                   \
	real(p, r)

static void *sf_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->use_ino = 1;
	/* Every operation reaches this process: no cache hides the slowness. */
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	cfg->direct_io = 0;
	return NULL;
}

static int sf_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	REAL(path);
	if (fi)
		return fstat((int)fi->fh, st) ? -errno : 0;
	return lstat(r, st) ? -errno : 0;
}

static int sf_access(const char *path, int mask)
{
	REAL(path);
	return access(r, mask) ? -errno : 0;
}

static int sf_readlink(const char *path, char *buf, size_t size)
{
	ssize_t n;

	REAL(path);
	n = readlink(r, buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int sf_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct dirent *de;
	DIR *d;

	(void)off;
	(void)fi;
	(void)flags;
	REAL(path);
	d = opendir(r);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		struct stat st = {.st_ino = de->d_ino, .st_mode = (mode_t)de->d_type << 12};

		if (fill(buf, de->d_name, &st, 0, 0))
			break;
	}
	closedir(d);
	return 0;
}

static int sf_mkdir(const char *path, mode_t mode)
{
	REAL(path);
	return mkdir(r, mode) ? -errno : 0;
}

static int sf_unlink(const char *path)
{
	REAL(path);
	return unlink(r) ? -errno : 0;
}

static int sf_rmdir(const char *path)
{
	REAL(path);
	return rmdir(r) ? -errno : 0;
}

static int sf_symlink(const char *from, const char *to)
{
	REAL(to);
	return symlink(from, r) ? -errno : 0;
}

static int sf_rename(const char *from, const char *to, unsigned int flags)
{
	char t[PATH_MAX];

	REAL(from);
	real(to, t);
	return renameat2(AT_FDCWD, r, AT_FDCWD, t, flags) ? -errno : 0;
}

static int sf_link(const char *from, const char *to)
{
	char t[PATH_MAX];

	REAL(from);
	real(to, t);
	return link(r, t) ? -errno : 0;
}

static int sf_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	REAL(path);
	if (fi)
		return fchmod((int)fi->fh, mode) ? -errno : 0;
	return chmod(r, mode) ? -errno : 0;
}

static int sf_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	REAL(path);
	if (fi)
		return fchown((int)fi->fh, uid, gid) ? -errno : 0;
	return lchown(r, uid, gid) ? -errno : 0;
}

static int sf_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	REAL(path);
	if (fi)
		return ftruncate((int)fi->fh, size) ? -errno : 0;
	return truncate(r, size) ? -errno : 0;
}

static int sf_utimens(const char *path, const struct timespec ts[2], struct fuse_file_info *fi)
{
	REAL(path);
	if (fi)
		return futimens((int)fi->fh, ts) ? -errno : 0;
	return utimensat(AT_FDCWD, r, ts, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

static int sf_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int fd;

	REAL(path);
	fd = open(r, fi->flags, mode);
	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int sf_open(const char *path, struct fuse_file_info *fi)
{
	int fd;

	REAL(path);
	fd = open(r, fi->flags);
	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int sf_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	ssize_t n;

	(void)path;
	slow();
	n = pread((int)fi->fh, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

static int sf_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	ssize_t n;

	(void)path;
	slow();
	n = pwrite((int)fi->fh, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

static int sf_statfs(const char *path, struct statvfs *sv)
{
	REAL(path);
	return statvfs(r, sv) ? -errno : 0;
}

static int sf_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	close((int)fi->fh);
	return 0;
}

static int sf_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	slow();
	return (datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh)) ? -errno : 0;
}

static const struct fuse_operations sf_ops = {
    .init = sf_init,
    .getattr = sf_getattr,
    .access = sf_access,
    .readlink = sf_readlink,
    .readdir = sf_readdir,
    .mkdir = sf_mkdir,
    .symlink = sf_symlink,
    .unlink = sf_unlink,
    .rmdir = sf_rmdir,
    .rename = sf_rename,
    .link = sf_link,
    .chmod = sf_chmod,
    .chown = sf_chown,
    .truncate = sf_truncate,
    .utimens = sf_utimens,
    .open = sf_open,
    .create = sf_create,
    .read = sf_read,
    .write = sf_write,
    .statfs = sf_statfs,
    .release = sf_release,
    .fsync = sf_fsync,
};

int main(int argc, char *argv[])
{
	const char *ms = getenv("SLOWFS_MS");
	char *args[64];
	int n = 0, i;

	if (argc < 3 || argc > 60 || !realpath(argv[argc - 2], root)) {
		fprintf(stderr, "usage: slowfs [FUSE options] ROOT MOUNTPOINT (ROOT must exist)\n");
		return 2;
	}
	flag = getenv("SLOWFS_FLAG");
	hold_name = getenv("SLOWFS_HOLD");
	hold_flag = getenv("SLOWFS_HOLD_FLAG");
	if (ms)
		delay_ms = strtol(ms, NULL, 10);
	umask(0);
	for (i = 0; i < argc - 2; i++)
		args[n++] = argv[i];
	args[n++] = argv[argc - 1];
	args[n] = NULL;
	return fuse_main(n, args, &sf_ops, NULL);
}
