/* library: copy bundled procedures into the store; see library.h. */
#include "library.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "atomic.h"
#include "log.h"
#include "meta.h"
#include "store.h"

#define LIBRARY_FILE_MAX (4 << 20)

/*
 * How a library type is copied into a store that may already hold it.  A new type
 * gets every file.  A type whose meta.json says the library wrote its source, and
 * whose source.c is still the very source admitted under that record (same hash:
 * an edit not yet seen by any daemon counts as an edit), is brought up to date: its
 * source.c is replaced by the library's (the old one was an older library's) and it gets
 * the files it lacks (a newer library's patterns, example questions, cases), never a
 * replacement of another file someone may have edited.  Any other type is left
 * alone: the library's cases or patterns may not fit that procedure.
 */
enum library_mode { LIBRARY_NEW, LIBRARY_KEEP, LIBRARY_UPGRADE };

static bool library_wants(const char *type, const char *rel, const struct buf *data,
			  enum library_mode mode)
{
	struct buf cur = BUF_INIT;
	int ret;

	if (mode == LIBRARY_NEW)
		return true;
	if (mode == LIBRARY_KEEP || !strcmp(rel, "meta.json"))
		return false;
	ret = store_read(type, rel, LIBRARY_FILE_MAX, &cur);
	if (ret == 0 && (strcmp(rel, "source.c") != 0 ||
			 (cur.len == data->len && !memcmp(buf_str(&cur), buf_str(data), cur.len))))
		ret = 1; /* there, and not ours to replace (or already the same) */
	buf_free(&cur);
	return ret != 1 && ret != -EFBIG;
}

/* Whether the store's @type is the library's, as admitted, unedited since. */
static bool library_untouched(const char *type)
{
	cJSON *meta = meta_load(type);
	const char *author = meta ? meta_get_string(meta, "author") : NULL;
	const char *recorded = meta ? meta_get_string(meta, "source_hash") : NULL;
	struct buf src = BUF_INIT;
	char hash[17];
	bool yes = false;

	if (author && recorded && !strcmp(author, "library") &&
	    store_read(type, "source.c", LIBRARY_FILE_MAX, &src) == 0) {
		snprintf(hash, sizeof(hash), "%016llx",
			 (unsigned long long)XXH3_64bits(buf_str(&src), src.len));
		yes = !strcmp(hash, recorded);
	}
	buf_free(&src);
	cJSON_Delete(meta);
	return yes;
}

/* Copy regular files of @dirfd (and one level of subdirectories) to TYPE/@prefix. */
static int library_copy_dir(int dirfd, const char *type, const char *prefix, int depth,
			    enum library_mode mode, unsigned *copied)
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
			ret = sub < 0
				  ? -errno
				  : library_copy_dir(sub, type, rel.data, depth + 1, mode, copied);
			continue;
		}
		if (de->d_type != DT_REG)
			continue;
		buf_reset(&data);
		ret = file_read_all(dirfd, de->d_name, LIBRARY_FILE_MAX, &data);
		if (!ret && library_wants(type, rel.data, &data, mode)) {
			ret = store_write(type, rel.data, buf_str(&data), data.len);
			*copied += !ret;
		}
	}
	closedir(dir);
	buf_free(&rel);
	buf_free(&data);
	return ret;
}

int library_install(const char *libdir, struct buf *err)
{
	struct dirent *de;
	unsigned added = 0, updated = 0;
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
		enum library_mode mode = LIBRARY_NEW;
		unsigned copied = 0;
		int sub;

		if (!store_type_valid(de->d_name, strlen(de->d_name)))
			continue;
		if (store_type_exists(de->d_name))
			mode = library_untouched(de->d_name) ? LIBRARY_UPGRADE : LIBRARY_KEEP;
		sub = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sub < 0)
			continue;
		/* source.c last would be nicer, but readers only use a type once it has
		 * passed its tests, and the tests arrive in the same pass. */
		ret = library_copy_dir(sub, de->d_name, "", 0, mode, &copied);
		if (ret)
			buf_printf(err, "%s/%s: cannot copy into the store: %s", libdir, de->d_name,
				   strerror(-ret));
		else if (mode == LIBRARY_NEW)
			added++;
		else if (copied)
			updated++;
	}
	closedir(dir);
	if (!ret)
		log_info("library: installed %u procedure%s and brought %u up to date from %s",
			 added, added == 1 ? "" : "s", updated, libdir);
	return ret;
}
