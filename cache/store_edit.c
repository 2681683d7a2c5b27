/*
 * store_edit: shadow writes, commit by fsync + rename, truncate and type renames
 * in the store; see store_edit.h.
 */
#include "store_edit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "log.h"
#include "store.h"

int store_edit_shadow(int src, const char *target, bool copy, struct buf *shadow_path)
{
	struct buf tmp = BUF_INIT;
	const char *slash = strrchr(target, '/');
	struct stat st;
	int fd = -1, ret = 0;

	if (!slash)
		return -EINVAL;
	buf_add(&tmp, target, (size_t)(slash - target + 1));
	atomic_tmpname(&tmp);
	if (src >= 0 && fstat(src, &st) == 0)
		st.st_mode &= 0777; /* never setuid, setgid or sticky */
	else
		st.st_mode = 0644;
	fd = store_open_beneath(tmp.data, O_RDWR | O_CREAT | O_EXCL, st.st_mode);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	/* The source's mode exactly: the temp file was made under the daemon's
	 * umask, which must not take group write off a file at every save (the
	 * caller's umask was applied when the file was made, by the kernel). */
	if (fchmod(fd, st.st_mode) != 0) {
		ret = -errno;
		goto out;
	}
	if (copy && src >= 0) {
		char chunk[65536];
		off_t off = 0;
		ssize_t n;

		while ((n = pread(src, chunk, sizeof(chunk), off)) > 0) {
			if (pwrite(fd, chunk, (size_t)n, off) != n) {
				ret = errno ? -errno : -EIO;
				goto out;
			}
			off += n;
		}
		if (n < 0) {
			ret = -errno;
			goto out;
		}
	}
	if (src >= 0 && getuid() == 0 && fstat(src, &st) == 0)
		if (fchown(fd, st.st_uid, st.st_gid) != 0)
			log_debug("chown shadow: %s", strerror(errno));
	buf_reset(shadow_path);
	buf_add(shadow_path, tmp.data, tmp.len);
	ret = fd;
	fd = -1;
out:
	if (fd >= 0) {
		close(fd);
		store_unlink(tmp.data, 0);
	}
	buf_free(&tmp);
	return ret;
}

/*
 * The data first (a crash must never leave the name on bytes not yet written),
 * then the name, then the directory that holds it: an editor's fsync(2) (or its
 * close) returns once the saved file is what the name stands for on disk, not
 * only in the page cache.
 */
int store_edit_commit(int shadow, const char *shadow_path, const char *target, bool gone)
{
	const char *slash = strrchr(target, '/');
	struct buf dir = BUF_INIT;
	int ret, dirfd;

	if (fsync(shadow) != 0)
		return -errno;
	if (gone) {
		store_unlink(shadow_path, 0);
		return 0;
	}
	ret = store_rename(shadow_path, target, 0);
	if (ret || !slash)
		return ret;
	buf_add(&dir, target, (size_t)(slash - target));
	dirfd = store_open_beneath(dir.data, O_RDONLY | O_DIRECTORY, 0);
	if (dirfd >= 0) {
		if (fsync(dirfd) != 0)
			ret = -errno;
		close(dirfd);
	}
	buf_free(&dir);
	return ret;
}

void store_edit_discard(int shadow, const char *shadow_path)
{
	close(shadow);
	store_unlink(shadow_path, 0);
}

int store_edit_truncate(int src, const char *path, off_t size, struct stat *made,
			int64_t *made_born)
{
	struct buf shadow_path = BUF_INIT;
	int shadow, ret = 0;

	shadow = store_edit_shadow(src, path, size > 0, &shadow_path);
	if (shadow < 0) {
		ret = shadow;
		goto out;
	}
	if (ftruncate(shadow, size) != 0)
		ret = -errno;
	if (!ret)
		ret = store_edit_commit(shadow, shadow_path.data, path, false);
	if (ret) {
		store_edit_discard(shadow, shadow_path.data);
		goto out;
	}
	if (made && store_fstat_born(shadow, made, made_born) != 0)
		made->st_ino = 0;
	close(shadow);
out:
	buf_free(&shadow_path);
	return ret;
}

int store_edit_rename_type(const char *from, const char *to, unsigned int flags)
{
	struct buf from_dir = BUF_INIT, to_dir = BUF_INIT;
	int ret = 0;

	store_type_dir(from, &from_dir);
	store_type_dir(to, &to_dir);
	/* The bucket directories of the new name; an exchange needs both types. */
	if (!(flags & RENAME_EXCHANGE)) {
		ret = store_mkdir_type(to);
		if (!ret)
			ret = store_unlink(to_dir.data, AT_REMOVEDIR);
	}
	if (!ret)
		ret = store_rename(from_dir.data, to_dir.data, flags);
	buf_free(&from_dir);
	buf_free(&to_dir);
	return ret;
}
