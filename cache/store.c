/*
 * store: the hashed on-disk tree of procedure directories; see store.h.  This file
 * keeps the layout and the files (marker, type directories, read and write, the
 * walk, the temp sweep, the log); store_at.c resolves paths beneath the root.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "atomic.h"
#include "log.h"
#include "store_int.h"
#include "xalloc.h"

#define STORE_MARKER "seglamfs-store"
#define STORE_LOG_MAX (64 * 1024)

static int store_fd = -1;
static bool store_ro;

int store_root_fd(void)
{
	return store_fd;
}

bool store_readonly(void)
{
	return store_ro;
}

static int store_check_marker(const char *path, struct buf *err)
{
	struct buf text = BUF_INIT;
	int ret, version;
	DIR *dir;
	struct dirent *de;
	bool empty = true;

	ret = file_read_all(store_fd, STORE_MARKER, 4096, &text);
	if (ret == 0) {
		if (sscanf(buf_str(&text), STORE_MARKER " %d", &version) != 1) {
			buf_printf(err, "%s: not a seglamfs store: %s holds no version", path,
				   STORE_MARKER);
			ret = -EINVAL;
		} else if (version > STORE_FORMAT_VERSION) {
			buf_printf(err,
				   "%s: store format %d is newer than this seglamfs (%d): upgrade "
				   "seglamfs",
				   path, version, STORE_FORMAT_VERSION);
			ret = -EINVAL;
		}
		goto out;
	}
	if (ret != -ENOENT) {
		buf_printf(err, "%s/%s: %s", path, STORE_MARKER, strerror(-ret));
		goto out;
	}
	/* No marker: initialise an empty directory, refuse anything else. */
	dir = fdopendir(dup(store_fd));
	if (!dir) {
		ret = -errno;
		buf_printf(err, "%s: %s", path, strerror(errno));
		goto out;
	}
	while ((de = readdir(dir))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, "procs") && strcmp(de->d_name, "lost+found"))
			empty = false;
	}
	closedir(dir);
	if (!empty) {
		buf_printf(err,
			   "%s: not a seglamfs store and not empty (no %s file): "
			   "use an empty directory",
			   path, STORE_MARKER);
		ret = -EINVAL;
		goto out;
	}
	if (store_ro) {
		buf_printf(err, "%s: empty store opened read-only", path);
		ret = -EROFS;
		goto out;
	}
	buf_reset(&text);
	buf_printf(&text, STORE_MARKER " %d\n", STORE_FORMAT_VERSION);
	ret = atomic_write(store_fd, STORE_MARKER, text.data, text.len, 0644);
	if (!ret && mkdirat(store_fd, "procs", 0755) != 0 && errno != EEXIST)
		ret = -errno;
	if (ret)
		buf_printf(err, "%s: cannot initialise store: %s", path, strerror(-ret));
out:
	buf_free(&text);
	return ret;
}

int store_open(const char *path, bool readonly, struct buf *err)
{
	int ret;

	store_ro = readonly;
	store_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (store_fd < 0) {
		ret = -errno;
		buf_printf(err, "%s: cannot open store: %s", path, strerror(errno));
		return ret;
	}
	ret = store_check_marker(path, err);
	if (ret) {
		close(store_fd);
		store_fd = -1;
	}
	return ret;
}

void store_close(void)
{
	if (store_fd >= 0)
		close(store_fd);
	store_fd = -1;
}

bool store_type_valid(const char *name, size_t len)
{
	size_t i;

	if (len < 1 || len > STORE_TYPE_MAX || name[0] == '.')
		return false;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '+' || c == '-'))
			return false;
	}
	return true;
}

void store_type_dir(const char *type, struct buf *out)
{
	XXH64_hash_t h = XXH3_64bits(type, strlen(type));

	buf_printf(out, "procs/%02x/%02x/%s", (unsigned)(h >> 56), (unsigned)(h >> 48) & 0xff,
		   type);
}

static void store_path(const char *type, const char *rel, struct buf *out)
{
	store_type_dir(type, out);
	if (rel && *rel) {
		buf_addc(out, '/');
		buf_adds(out, rel);
	}
}

int store_read(const char *type, const char *rel, size_t max, struct buf *out)
{
	struct buf path = BUF_INIT;
	int ret;

	store_path(type, rel, &path);
	ret = file_read_all(store_fd, path.data, max, out);
	buf_free(&path);
	return ret;
}

int store_read_source(const char *type, size_t max, struct buf *out, struct stat *st, uid_t *owner)
{
	struct buf dir = BUF_INIT;
	struct stat dst;
	int dirfd, ret;

	store_type_dir(type, &dir);
	dirfd = store_open_beneath(dir.data, O_RDONLY | O_DIRECTORY, 0);
	buf_free(&dir);
	if (dirfd < 0)
		return dirfd;
	if (fstat(dirfd, &dst) < 0) {
		ret = -errno;
		goto out;
	}
	ret = file_read_all_st(dirfd, "source.c", max, out, st);
	if (ret)
		goto out;
	*owner = st->st_uid;
	if (st->st_uid == geteuid() && dst.st_uid != st->st_uid)
		*owner = dst.st_uid;
out:
	close(dirfd);
	return ret;
}

static int store_mkdirs(const char *path)
{
	int fd = store_mkdirs_fd(path);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

int store_mkdir_type(const char *type)
{
	struct buf dir = BUF_INIT;
	int ret;

	if (store_ro)
		return -EROFS;
	store_type_dir(type, &dir);
	ret = store_mkdirs(dir.data);
	buf_free(&dir);
	return ret;
}

bool store_type_exists(const char *type)
{
	struct buf dir = BUF_INIT;
	struct stat st = {0};
	bool ok;

	store_type_dir(type, &dir);
	ok = store_lstat(dir.data, &st) == 0 && S_ISDIR(st.st_mode);
	if (!ok && S_ISLNK(st.st_mode))
		store_refused(dir.data, -ELOOP);
	buf_free(&dir);
	return ok;
}

/*
 * The directory of @type's @rel, open, its missing parts made: all of them with
 * @create_type, else only those below the type directory, which must exist
 * (-ENOENT).  A type deleted while the daemon was busy with it (an admission, a
 * count flush) must stay deleted: made again by root, it would be a directory its
 * owner can no longer remove, holding its name.
 */
static int store_dir_of(const char *type, const char *rel, bool create_type)
{
	struct buf path = BUF_INIT;
	const char *slash = strrchr(rel, '/');
	int typefd, ret;

	if (create_type) {
		store_path(type, rel, &path);
		*strrchr(path.data, '/') = '\0';
		ret = store_mkdirs_fd(path.data);
		goto out;
	}
	/* What is missing below the type directory is made in the directory opened
	 * here, not by name: a delete after this open leaves nothing to make in. */
	store_type_dir(type, &path);
	typefd = store_open_beneath(path.data, O_PATH | O_DIRECTORY, 0);
	if (typefd < 0 || !slash) {
		ret = typefd;
		goto out;
	}
	buf_reset(&path);
	buf_add(&path, rel, (size_t)(slash - rel));
	ret = store_mkdirs_at(typefd, path.data);
	close(typefd);
out:
	buf_free(&path);
	return ret;
}

static int store_write_in(const char *type, const char *rel, const void *data, size_t len,
			  bool create_type)
{
	const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
	int ret, dirfd;

	if (store_ro)
		return -EROFS;
	dirfd = store_dir_of(type, rel, create_type);
	if (dirfd < 0) {
		ret = dirfd;
	} else {
		ret = atomic_write(dirfd, base, data, len, 0644);
		close(dirfd);
	}
	return ret;
}

int store_write(const char *type, const char *rel, const void *data, size_t len)
{
	return store_write_in(type, rel, data, len, true);
}

int store_update(const char *type, const char *rel, const void *data, size_t len)
{
	return store_write_in(type, rel, data, len, false);
}

/* One held-back write of a store_later. */
struct store_later_write {
	char *type, *rel;
	struct buf data;
};

void store_later_add(struct store_later *l, const char *type, const char *rel, const void *data,
		     size_t len)
{
	struct store_later_write *w = NULL;

	if (strchr(rel, '/')) {
		store_write(type, rel, data, len); /* not one of the type's own files: now */
		return;
	}
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->w[i].type, type) && !strcmp(l->w[i].rel, rel))
			w = &l->w[i];
	if (!w) {
		l->w = xrealloc(l->w, (l->n + 1) * sizeof(*l->w));
		w = &l->w[l->n++];
		w->type = xstrdup(type);
		w->rel = xstrdup(rel);
		w->data = (struct buf)BUF_INIT;
	}
	buf_reset(&w->data);
	buf_add(&w->data, data, len);
}

/*
 * Write @n files of @type's directory (names without a slash) with
 * atomic_write_many, if the directory still exists: one deleted meanwhile is not
 * made again (-ENOENT, not an error here).
 */
static int store_write_existing(const char *type, struct atomic_file *f, size_t n)
{
	struct buf dir = BUF_INIT;
	int ret, dirfd;

	if (store_ro)
		return -EROFS;
	store_type_dir(type, &dir);
	dirfd = store_open_beneath(dir.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	buf_free(&dir);
	if (dirfd < 0)
		return dirfd == -ENOENT ? 0 : dirfd;
	ret = atomic_write_many(dirfd, f, n, 0644);
	close(dirfd);
	return ret;
}

int store_later_flush(struct store_later *l)
{
	struct atomic_file *f = xcalloc(l->n ? l->n : 1, sizeof(*f));
	int ret = 0;

	/* The writes of one type together: their data goes to the device at once. */
	for (size_t i = 0, j; i < l->n; i = j) {
		int rc;

		for (j = i; j < l->n && !strcmp(l->w[j].type, l->w[i].type); j++) {
			f[j - i].name = l->w[j].rel;
			f[j - i].data = buf_str(&l->w[j].data);
			f[j - i].len = l->w[j].data.len;
		}
		rc = store_write_existing(l->w[i].type, f, j - i);
		if (rc)
			log_warn("procs/%s: cannot write the records of its LLM exchanges: %s",
				 l->w[i].type, strerror(-rc));
		if (rc && !ret)
			ret = rc;
	}
	for (size_t i = 0; i < l->n; i++) {
		free(l->w[i].type);
		free(l->w[i].rel);
		buf_free(&l->w[i].data);
	}
	free(f);
	free(l->w);
	l->w = NULL;
	l->n = 0;
	return ret;
}

static int store_walk_level(int dirfd, int depth, int (*fn)(const char *, void *), void *arg)
{
	DIR *dir = fdopendir(dirfd);
	struct dirent *de;
	int ret = 0;

	if (!dir) {
		close(dirfd);
		return -errno;
	}
	while (!ret && (de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		if (depth == 2) {
			/* A symlink planted as a type is not one (store_type_exists agrees). */
			if ((de->d_type == DT_DIR || de->d_type == DT_UNKNOWN) &&
			    store_type_valid(de->d_name, strlen(de->d_name)))
				ret = fn(de->d_name, arg);
			continue;
		}
		int sub =
		    openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (sub >= 0)
			ret = store_walk_level(sub, depth + 1, fn, arg);
	}
	closedir(dir);
	return ret;
}

int store_foreach_type(int (*fn)(const char *type, void *arg), void *arg)
{
	int fd = store_open_beneath("procs", O_RDONLY | O_DIRECTORY, 0);

	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	return store_walk_level(fd, 0, fn, arg);
}

static void store_clean_dir(int dirfd, int depth)
{
	DIR *dir = fdopendir(dirfd);
	struct dirent *de;

	if (!dir) {
		close(dirfd);
		return;
	}
	while ((de = readdir(dir))) {
		if (atomic_tmp_is_stale(de->d_name)) {
			if (unlinkat(dirfd, de->d_name, 0) == 0)
				log_info("store: removed stale temp file %s", de->d_name);
			continue;
		}
		if (depth < 2 && de->d_type == DT_DIR && de->d_name[0] != '.') {
			int sub = openat(dirfd, de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub >= 0)
				store_clean_dir(sub, depth + 1);
		}
	}
	closedir(dir);
}

void store_clean_type(const char *type)
{
	struct buf dir = BUF_INIT;
	int fd;

	if (store_ro)
		return;
	store_type_dir(type, &dir);
	fd = store_open_beneath(dir.data, O_RDONLY | O_DIRECTORY, 0);
	if (fd >= 0)
		store_clean_dir(fd, 0);
	buf_free(&dir);
}

/*
 * Rotate a full log while holding its lock: keep the newest half (from a line
 * boundary) plus @line, written whole by rename, so the name stays and `tail -F`
 * follows the new file as it follows a logrotate'd one.
 */
static int store_log_rotate(const char *type, const struct buf *line)
{
	struct buf old = BUF_INIT;
	int ret = store_read(type, "log", STORE_LOG_MAX * 4, &old);

	if (ret == -EFBIG || ret == -ENOENT || ret == -EISDIR)
		buf_reset(&old);
	if (old.len + line->len > STORE_LOG_MAX / 2) {
		size_t cut = old.len + line->len - STORE_LOG_MAX / 2;
		char *nl = cut < old.len ? memchr(old.data + cut, '\n', old.len - cut) : NULL;
		size_t keep = nl ? old.len - (size_t)(nl + 1 - old.data) : 0;

		memmove(old.data, old.data + old.len - keep, keep);
		buf_truncate(&old, keep);
	}
	buf_add(&old, line->data, line->len);
	ret = store_update(type, "log", old.data, old.len);
	buf_free(&old);
	return ret;
}

/*
 * Appends go in place (O_APPEND, one write() of a whole line), so a descriptor
 * open on the log, `tail -f` through the mount included, sees every new line.
 * The line is written under an OFD write lock on the file: local appenders would
 * not need it (O_APPEND of one small write is atomic), but on NFS O_APPEND is
 * not atomic across clients, while taking a lock makes the client fetch the
 * current size and releasing it flushes the write, so daemons on several hosts
 * interleave whole lines.  Without a lock manager (ENOLCK) the line is written
 * unlocked.  A rotation replaces the file: an appender that locked the old one
 * sees the name now stands for another inode and starts over.
 */
static int store_log_append(const char *type, const struct buf *line)
{
	struct buf path = BUF_INIT;
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	struct stat fst, pst;
	int ret = 0, fd = -1, tries;

	/* (a log line never makes its type: store_dir_of) */
	fd = store_dir_of(type, "log", false);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	close(fd);
	fd = -1;
	store_type_dir(type, &path);
	buf_adds(&path, "/log");
	for (tries = 0; tries < 5; tries++) {
		fd = store_open_file(path.data, O_WRONLY | O_APPEND | O_CREAT, 0644);
		if (fd < 0) {
			ret = fd;
			goto out;
		}
		if (fcntl(fd, F_OFD_SETLKW, &fl) != 0 && errno != ENOLCK && errno != EINVAL) {
			ret = -errno;
			goto out;
		}
		if (fstat(fd, &fst) != 0) {
			ret = -errno;
			goto out;
		}
		if (store_lstat(path.data, &pst) == 0 && pst.st_ino == fst.st_ino &&
		    pst.st_dev == fst.st_dev)
			break;
		close(fd); /* rotated meanwhile: append to the new file */
		fd = -1;
	}
	if (fd < 0) {
		ret = -EAGAIN;
		goto out;
	}
	if (!S_ISREG(fst.st_mode)) {
		ret = -EINVAL;
	} else if (fst.st_nlink != 1) {
		/* Another name for the same file (a hard link someone made in the
		 * store, maybe to a file of another user's or outside the type): the
		 * daemon never writes through one.  The log starts over as a file of
		 * its own, with nothing of the other's bytes (rotating would copy
		 * them into a file anyone may read). */
		log_warn("procs/%s/log: has %ju names (a hard link): replaced by a new log, "
			 "the other file left as it was",
			 type, (uintmax_t)fst.st_nlink);
		ret = store_update(type, "log", line->data, line->len);
	} else if ((size_t)fst.st_size + line->len > STORE_LOG_MAX) {
		ret = store_log_rotate(type, line);
	} else {
		ssize_t n = write(fd, line->data, line->len);

		if (n < 0)
			ret = -errno;
		else if ((size_t)n != line->len)
			ret = -EIO;
	}
out:
	if (fd >= 0)
		close(fd); /* releases the lock */
	buf_free(&path);
	return ret;
}

int store_log(const char *type, const char *fmt, ...)
{
	struct buf line = BUF_INIT;
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int ret;

	if (store_ro)
		return -EROFS;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	buf_printf(&line, "%04d-%02d-%02dT%02d:%02d:%02dZ ", tm.tm_year + 1900, tm.tm_mon + 1,
		   tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	va_start(ap, fmt);
	buf_vprintf(&line, fmt, ap);
	va_end(ap);
	if (!line.len || line.data[line.len - 1] != '\n')
		buf_addc(&line, '\n');
	/* No process-wide mutex: the OFD lock on the type's own log orders this
	 * daemon's threads too, so appenders to one log never wait on another's
	 * (slow, NFS) write and fsync. */
	ret = store_log_append(type, &line);
	buf_free(&line);
	return ret;
}
