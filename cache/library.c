/* library: copy bundled procedures into the store; see library.h. */
#include "library.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "atomic.h"
#include "log.h"
#include "store.h"

#define LIBRARY_FILE_MAX (4 << 20)

/* Copy regular files of @dirfd (and one level of subdirectories) to TYPE/@prefix. */
static int library_copy_dir(int dirfd, const char *type, const char *prefix, int depth)
{
	struct buf rel = BUF_INIT, data = BUF_INIT;
	struct dirent *de;
	DIR *dir = fdopendir(dirfd);
	int ret = 0;

	if (!dir) {
		close(dirfd);
		return -errno;
	}
	while (!ret && (de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		buf_reset(&rel);
		buf_printf(&rel, "%s%s", prefix, de->d_name);
		if (de->d_type == DT_DIR && depth == 0) {
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

			buf_addc(&rel, '/');
			ret = sub < 0 ? -errno : library_copy_dir(sub, type, rel.data, depth + 1);
			continue;
		}
		if (de->d_type != DT_REG)
			continue;
		buf_reset(&data);
		ret = file_read_all(dirfd, de->d_name, LIBRARY_FILE_MAX, &data);
		if (!ret)
			ret = store_write(type, rel.data, buf_str(&data), data.len);
	}
	closedir(dir);
	buf_free(&rel);
	buf_free(&data);
	return ret;
}

int library_install(const char *libdir, struct buf *err)
{
	struct dirent *de;
	unsigned added = 0;
	int ret = 0, fd;
	DIR *dir;

	if (store_readonly()) {
		buf_printf(err, "-o library: the store is read-only");
		return -EROFS;
	}
	fd = open(libdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dir = fd < 0 ? NULL : fdopendir(fd);
	if (!dir) {
		buf_printf(err, "%s: cannot read the procedure library: %s (pass -o library=DIR)",
			   libdir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -ENOENT;
	}
	while (!ret && (de = readdir(dir))) {
		int sub;

		if (!store_type_valid(de->d_name, strlen(de->d_name)) ||
		    store_type_exists(de->d_name))
			continue;
		sub = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sub < 0)
			continue;
		/* source.c last would be nicer, but readers only use a type once it has
		 * passed its tests, and the tests arrive in the same pass. */
		ret = library_copy_dir(sub, de->d_name, "", 0);
		if (ret)
			buf_printf(err, "%s/%s: cannot copy into the store: %s", libdir, de->d_name,
				   strerror(-ret));
		else
			added++;
	}
	closedir(dir);
	if (!ret)
		log_info("library: installed %u procedure%s from %s", added, added == 1 ? "" : "s",
			 libdir);
	return ret;
}
