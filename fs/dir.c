/*
 * dir: directory handles (OPENDIR takes a snapshot, READDIR serves it).
 */
#include "fs_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "atomic.h"
#include "store.h"
#include "xalloc.h"

static int type_foreach_add(const char *type, void *arg)
{
	struct handle *h = arg;
	struct dirent_snap *e;

	if (!(h->dir.n & (h->dir.n - 1)) || h->dir.n < 2) {
		size_t cap = h->dir.n < 2 ? 4 : h->dir.n * 2;
		h->dir.ents = xreallocarray(h->dir.ents, cap, sizeof(*h->dir.ents));
	}
	e = &h->dir.ents[h->dir.n++];
	e->name = xstrdup(type);
	e->type = S_IFDIR;
	e->ino = 0;
	return 0;
}

static void dir_add(struct handle *h, const char *name, mode_t type, uint64_t ino)
{
	type_foreach_add(name, h);
	h->dir.ents[h->dir.n - 1].type = type;
	h->dir.ents[h->dir.n - 1].ino = ino;
}

/* The dot entries at the top of procs/ (see procs_dot_name). */
static void procs_dot_entries(struct handle *h)
{
	int fd = store_open_beneath("procs", O_RDONLY | O_DIRECTORY, 0);
	struct dirent *de;
	DIR *dir;

	if (fd < 0)
		return;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return;
	}
	while ((de = readdir(dir)))
		if (procs_dot_name(INO_PROCS, de->d_name))
			dir_add(h, de->d_name, (mode_t)DTTOIF(de->d_type), 0);
	closedir(dir);
}

/*
 * The entries of a directory of each kind (node_ops[].opendir), after "." and
 * "..": node_lock not held; @path is the store path of a directory in the store
 * (node_ops[].in_store).
 */
int dir_root(fuse_req_t req, struct handle *h, enum node_kind kind, const char *path)
{
	(void)req;
	(void)kind;
	(void)path;
	dir_add(h, "ask", S_IFDIR, INO_ASK);
	dir_add(h, "procs", S_IFDIR, INO_PROCS);
	dir_add(h, "query", S_IFDIR, INO_QUERY);
	dir_add(h, "stats", S_IFREG, INO_STATS);
	dir_add(h, "q", S_IFDIR, INO_Q);
	dir_add(h, "map", S_IFDIR, INO_MAP);
	return 0;
}

/* ask/, procs/, query/, map/: the types of the store. */
int dir_types(fuse_req_t req, struct handle *h, enum node_kind kind, const char *path)
{
	int ret = store_foreach_type(type_foreach_add, h);

	(void)req;
	(void)path;
	if (kind == NODE_PROCS && !ret)
		procs_dot_entries(h);
	if (kind == NODE_QUERY || kind == NODE_MAP)
		for (size_t i = 2; i < h->dir.n; i++)
			h->dir.ents[i].type = S_IFREG;
	return ret;
}

int dir_ask_type(fuse_req_t req, struct handle *h, enum node_kind kind, const char *path)
{
	(void)req;
	(void)h;
	(void)kind;
	(void)path;
	return 0; /* inputs are unbounded: nothing to list */
}

/* procs/TYPE/ and its directories: what the store holds, less temp files and
 * anything but files, directories and links. */
int dir_store(fuse_req_t req, struct handle *h, enum node_kind kind, const char *path)
{
	int fd = store_open_beneath(path, O_RDONLY | O_DIRECTORY, 0), ret;
	struct dirent *de;
	DIR *dir;

	(void)kind;
	if (fd < 0)
		return fd;
	/* Listing needs read access to the directory opened (procs_may_use). */
	ret = procs_may_use(req, h->ino, fd, R_OK, NULL);
	if (ret) {
		close(fd);
		return ret;
	}
	dir = fdopendir(fd);
	if (!dir) {
		ret = -errno;
		close(fd);
		return ret;
	}
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    atomic_is_tmpname(de->d_name) ||
		    (de->d_type != DT_REG && de->d_type != DT_DIR && de->d_type != DT_LNK &&
		     de->d_type != DT_UNKNOWN))
			continue;
		dir_add(h, de->d_name, (mode_t)DTTOIF(de->d_type), 0);
	}
	closedir(dir);
	return 0;
}

/*
 * An entry with a node gets the node's inode number as its d_ino, the st_ino a
 * LOOKUP gives.  An NFS server that reconnects a directory handle after the
 * kernel forgot the inode (exportfs get_name) looks for the child's st_ino in
 * its parent's listing: a stand-in there turned every handle to a type
 * directory ESTALE.  (Entries without a node have none to agree with yet.)
 */
static void dir_known_inos(struct handle *h, fuse_ino_t ino)
{
	struct node *dir, *n;

	pthread_mutex_lock(&node_lock);
	dir = node_by_ino(ino);
	for (size_t i = 2; dir && i < h->dir.n; i++)
		if (!h->dir.ents[i].ino && (n = node_child(dir, h->dir.ents[i].name)))
			h->dir.ents[i].ino = n->ino;
	pthread_mutex_unlock(&node_lock);
}

void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = handle_new(H_DIR, ino);
	struct buf path = BUF_INIT;
	struct node *n;
	enum node_kind kind;
	int ret = 0;

	procs_records_barrier(ino, NULL);
	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	kind = n ? n->kind : NODE_ROOT;
	if (n && node_ops[kind].in_store)
		ret = node_store_path(n, &path);
	pthread_mutex_unlock(&node_lock);
	if (!n)
		ret = -ESTALE;
	if (ret)
		goto out;
	dir_add(h, ".", S_IFDIR, ino);
	dir_add(h, "..", S_IFDIR, 0);
	if (node_ops[kind].opendir)
		ret = node_ops[kind].opendir(req, h, kind, path.data);
	else
		ret = -ENOTDIR;
	if (!ret)
		dir_known_inos(h, ino);
out:
	buf_free(&path);
	if (ret) {
		for (size_t i = 0; i < h->dir.n; i++)
			free(h->dir.ents[i].name);
		free(h->dir.ents);
		handle_free(h);
		fuse_reply_err(req, -ret);
		return;
	}
	fi->fh = (uintptr_t)h;
	fi->cache_readdir = 0;
	fuse_reply_open(req, fi);
}

void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = fi_handle(fi);
	struct buf out = BUF_INIT;
	size_t i;

	(void)ino;
	for (i = (size_t)off; i < h->dir.n; i++) {
		struct dirent_snap *e = &h->dir.ents[i];
		struct stat st = {0};
		size_t need = fuse_add_direntry(req, NULL, 0, e->name, NULL, 0);

		if (out.len + need > size)
			break;
		/* A zero d_ino hides an entry from some readers: give a stable stand-in. */
		st.st_ino = e->ino ? e->ino : (XXH3_64bits(e->name, strlen(e->name)) | 1ull << 63);
		st.st_mode = e->type;
		buf_grow(&out, need);
		fuse_add_direntry(req, out.data + out.len, need, e->name, &st, (off_t)i + 1);
		out.len += need;
	}
	fuse_reply_buf(req, out.data, out.len);
	buf_free(&out);
}

void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	handle_destroy(fi_handle(fi));
	fuse_reply_err(req, 0);
}

void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct buf path = BUF_INIT;
	int ret, fd;

	(void)datasync;
	(void)fi;
	ret = procs_path(ino, NULL, &path, NULL);
	if (ret == 0) {
		fd = store_open_beneath(path.data, O_RDONLY | O_DIRECTORY, 0);
		if (fd < 0)
			ret = fd;
		else if (fsync(fd) != 0)
			ret = -errno;
		if (fd >= 0)
			close(fd);
	} else {
		ret = 0; /* nothing to sync outside procs/ */
	}
	buf_free(&path);
	fuse_reply_err(req, -ret);
}

void dir_destroy(struct handle *h)
{
	for (size_t i = 0; i < h->dir.n; i++)
		free(h->dir.ents[i].name);
	free(h->dir.ents);
}
