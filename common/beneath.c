/* beneath: symlink-free resolution under a directory fd; see beneath.h. */
#include "beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_bool beneath_no_openat2;

void beneath_force_walk(bool on)
{
	atomic_store(&beneath_no_openat2, on);
}

static bool is_symlink(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
}

/* The last resort on kernels without openat2: one component at a time, each with
 * O_NOFOLLOW, ".." refused outright (no lexical tricks to get right). */
static int beneath_walk(int dirfd, const char *path, int flags, mode_t mode)
{
	char comp[NAME_MAX + 1];
	const char *p = path, *end;
	int cur = -1, fd, ret;

	for (;;) {
		size_t len;

		while (*p == '/')
			p++;
		end = strchrnul(p, '/');
		len = (size_t)(end - p);
		if (len > NAME_MAX) {
			ret = -ENAMETOOLONG;
			goto out;
		}
		memcpy(comp, p, len);
		comp[len] = '\0';
		if (!strcmp(comp, "..")) {
			ret = -EXDEV;
			goto out;
		}
		while (*end == '/')
			end++;
		if (!*end) {
			/* Last component ("" or "." stands for the directory itself). */
			fd = openat(cur >= 0 ? cur : dirfd, len ? comp : ".",
				    flags | O_CLOEXEC | O_NOFOLLOW, mode);
			ret = fd >= 0 ? fd : -errno;
			if (ret == -ENOTDIR && is_symlink(cur >= 0 ? cur : dirfd, comp))
				ret = -ELOOP;
			goto out;
		}
		if (len && strcmp(comp, ".")) {
			fd = openat(cur >= 0 ? cur : dirfd, comp,
				    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0) {
				ret = -errno;
				/* A symlink reads as ENOTDIR here: say what openat2 says. */
				if (ret == -ENOTDIR && is_symlink(cur >= 0 ? cur : dirfd, comp))
					ret = -ELOOP;
				goto out;
			}
			if (cur >= 0)
				close(cur);
			cur = fd;
		}
		p = end;
	}
out:
	if (cur >= 0)
		close(cur);
	return ret;
}

int beneath_open(int dirfd, const char *path, int flags, mode_t mode)
{
	struct open_how how;
	long fd;

	if (!*path)
		path = ".";
	if (!atomic_load(&beneath_no_openat2)) {
		memset(&how, 0, sizeof(how));
		/* O_PATH | O_NOFOLLOW would open a trailing symlink itself: without
		 * O_NOFOLLOW, RESOLVE_NO_SYMLINKS refuses it (ELOOP) like any other. */
		how.flags =
		    (unsigned long long)(flags | O_CLOEXEC | ((flags & O_PATH) ? 0 : O_NOFOLLOW));
		/* openat2 refuses a mode without O_CREAT. */
		how.mode = (flags & (O_CREAT | __O_TMPFILE)) ? mode & 07777 : 0;
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
		do
			fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
		while (fd < 0 && errno == EAGAIN);
		if (fd >= 0)
			return (int)fd;
		if (errno != ENOSYS)
			return -errno;
		atomic_store(&beneath_no_openat2, true);
	}
	return beneath_walk(dirfd, path, flags, mode);
}

int beneath_parent(int dirfd, const char *path, const char **base)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t len;

	*base = slash ? slash + 1 : path;
	if (!**base || !strcmp(*base, ".") || !strcmp(*base, ".."))
		return -EINVAL;
	len = slash ? (size_t)(slash - path) : 0;
	if (len >= sizeof(dir))
		return -ENAMETOOLONG;
	memcpy(dir, path, len);
	dir[len] = '\0';
	return beneath_open(dirfd, len ? dir : ".", O_PATH | O_DIRECTORY, 0);
}
