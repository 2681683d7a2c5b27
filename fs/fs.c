/*
 * fs: FUSE low-level operations; see fs.h.
 *
 * ask/TYPE/INPUT is computed at LOOKUP, because its size must be exact there
 * (rsync, tar and NFS clients trust st_size); OPEN takes the answer from the memo
 * (or recomputes it, deterministically), and READ serves it from the handle.
 *
 * procs/TYPE/... is a view of the type's store directory.  Writes never touch the
 * store file in place: the first write (or an O_TRUNC open) makes a "shadow", a
 * temp copy beside the target, and FLUSH/FSYNC commits it with fsync + rename.
 * FLUSH is the commit point because it is synchronous with close(): RELEASE is
 * not, and the next read after a save must see the new procedure.
 */
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "atomic.h"
#include "log.h"
#include "map.h"
#include "name.h"
#include "node.h"
#include "perm.h"
#include "proc.h"
#include "route.h"
#include "store.h"
#include "synth.h"
#include "usage.h"

#define FS_FIXED_TIMEOUT 3600.0
#define FS_QUERY_MAX (64u << 20)
#define QUERY_STATUS_DIR ".status"

static struct fs_config fs_cfg;
/* Bytes buffered by all open query/ handles, bounded by fs_cfg.query_mem: one user's
 * writes must not take the daemon's memory (a handle alone is capped at
 * FS_QUERY_MAX). */
static _Atomic size_t fs_query_bytes;
static struct fuse_session *fs_session;
static struct timespec fs_mounted; /* the times of the directories the mount makes */

enum handle_kind { H_ANSWER, H_QUERY, H_STATS, H_PFILE, H_DIR, H_MAP };

struct pfile {
	pthread_mutex_t lock;
	int fd;			/* the file as opened (or the last committed shadow) */
	int shadow;		/* temp copy taking writes, or -1 */
	struct buf shadow_path; /* store-relative */
	bool writable;
	bool dirty;
	int error; /* a write to the shadow failed: it must never be committed */
};

struct dirent_snap {
	char *name;
	mode_t type;
	uint64_t ino;
};

struct handle {
	enum handle_kind kind;
	bool paged; /* H_ANSWER through the page cache: counted in node->page_opens */
	union {
		struct answer *ans;
		struct {
			pthread_mutex_t lock;
			struct buf input;
			struct answer *ans;
			int err;
			bool sealed;
			bool status;	  /* query/.status/TYPE: a status line, then the body */
			struct buf reply; /* status mode: what follows the input */
		} q;
		struct buf text;
		struct map_stream *map;
		struct pfile pf;
		struct {
			struct dirent_snap *ents;
			size_t n;
		} dir;
	};
	uint64_t ino;
	struct handle *next, *prev;
};

void fs_set_session(struct fuse_session *se)
{
	fs_session = se;
}

void fs_init(const struct fs_config *cfg)
{
	fs_cfg = *cfg;
	clock_gettime(CLOCK_REALTIME, &fs_mounted);
	if (fs_cfg.timeout <= 0)
		fs_cfg.timeout = 1.0;
	if (!fs_cfg.query_mem)
		fs_cfg.query_mem = (size_t)256 << 20;
	map_init(fs_cfg.query_mem);
}

/* Every live handle, so that those the kernel never released (a lazy unmount
 * racing RELEASE) are still saved and freed at shutdown. */
static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;
static struct handle handles = {.next = &handles, .prev = &handles};

static struct handle *handle_new(enum handle_kind kind, uint64_t ino)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		abort();
	h->kind = kind;
	h->ino = ino;
	pthread_mutex_lock(&handles_lock);
	h->next = handles.next;
	h->prev = &handles;
	handles.next->prev = h;
	handles.next = h;
	pthread_mutex_unlock(&handles_lock);
	return h;
}

static void handle_forget(struct handle *h)
{
	pthread_mutex_lock(&handles_lock);
	h->prev->next = h->next;
	h->next->prev = h->prev;
	pthread_mutex_unlock(&handles_lock);
}

/* Free a handle that never got anything to release (an open that failed). */
static void handle_free(struct handle *h)
{
	handle_forget(h);
	free(h);
}

static struct handle *fi_handle(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

/*
 * A request that may wait for the LLM (a miss) can be interrupted: the reader's
 * Ctrl-C or kill makes the kernel send INTERRUPT, libfuse calls fs_intr_func on
 * another thread, and proc's wait returns -EINTR.  fs_intr_end must come before
 * the reply (after it the request is freed); it waits out a running callback.
 */
static void fs_intr_func(fuse_req_t req, void *data)
{
	(void)req;
	atomic_store((atomic_bool *)data, true);
}

static void fs_intr_begin(fuse_req_t req, atomic_bool *flag)
{
	atomic_init(flag, false);
	fuse_req_interrupt_func(req, fs_intr_func, flag);
	proc_set_interrupt(flag);
}

static void fs_intr_end(fuse_req_t req)
{
	proc_set_interrupt(NULL);
	fuse_req_interrupt_func(req, NULL, NULL);
}

/* An answer of ask/TYPE/INPUT, or of a question (q/QUESTION, query/.q: the pseudo type
 * ROUTE_TYPE, which no real type name can be). */
static int fs_ask(const char *type, const char *in, size_t len, struct answer **ans)
{
	if (!strcmp(type, ROUTE_TYPE))
		return route_ask(in, len, ans);
	return proc_ask(type, in, len, ans);
}

/* The same, for a look ahead (LOOKUP, stat), which counts only a failure. */
static int fs_peek(const char *type, const char *in, size_t len, struct answer **ans)
{
	if (!strcmp(type, ROUTE_TYPE))
		return route_peek(in, len, ans);
	return proc_peek(type, in, len, ans);
}

/* ---- attributes ---------------------------------------------------------- */

static void attr_dir(struct stat *st, uint64_t ino, mode_t mode)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFDIR | mode;
	st->st_nlink = 2;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_mtim = st->st_ctim = st->st_atim = fs_mounted;
}

static void attr_file(struct stat *st, uint64_t ino, mode_t mode, off_t size, int64_t mtime_ns)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFREG | mode;
	st->st_nlink = 1;
	st->st_size = size;
	st->st_blocks = (size + 511) / 512;
	st->st_blksize = 4096;
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = st->st_ctim.tv_nsec = st->st_atim.tv_nsec = mtime_ns % 1000000000;
}

static void stats_text(struct buf *out)
{
	proc_stats(out);
	route_stats(out);
	synth_stats(out);
	usage_stats(out);
	pthread_mutex_lock(&node_lock);
	buf_printf(out, "inodes %zu\n", node_count());
	pthread_mutex_unlock(&node_lock);
}

/* Stat a procs node in the store; node_lock held. */
static int attr_store(struct node *n, struct stat *st)
{
	struct buf path = BUF_INIT;
	int ret = 0;

	node_store_path(n, &path);
	ret = store_lstat(path.data, st);
	buf_free(&path);
	if (!ret && n->writer) {
		struct stat sh;

		/* Unsaved writes: report the size and times the writer sees. */
		if (n->writer->shadow >= 0 && fstat(n->writer->shadow, &sh) == 0) {
			st->st_size = sh.st_size;
			st->st_blocks = sh.st_blocks;
			st->st_mtim = sh.st_mtim;
		}
	}
	st->st_ino = n->ino;
	return ret;
}

/*
 * Attributes of answer @a for node @n, and a record of the size the reply is about
 * to carry.  Once two replies differ, the kernel may hold either, so the node is
 * read with direct I/O for the rest of its life.  node_lock held.
 */
static void attr_answer(struct node *n, const struct answer *a, struct stat *st)
{
	attr_file(st, n->ino, 0444, (off_t)a->len, a->mtime_ns);
	if (n->told && n->told_size != a->len)
		n->told_differs = true;
	n->told = true;
	n->told_size = a->len;
}

/* Kernel entry cache time for a node whose attributes live @attr_timeout. */
static double entry_timeout(double attr_timeout)
{
	return fs_cfg.timeout > attr_timeout ? fs_cfg.timeout : attr_timeout;
}

/*
 * Attributes of any node; node_lock held on entry, may be dropped and retaken
 * (answers run procedures).  *@ans, if given, receives the answer of an ANSWER
 * node.
 */
static int node_attr(struct node *n, struct stat *st, double *timeout)
{
	struct answer *ans = NULL;
	struct buf text = BUF_INIT;
	char *type, *input;
	size_t inlen;
	uint64_t ino = n->ino;
	int ret = 0;

	*timeout = fs_cfg.timeout;
	switch (n->kind) {
	case NODE_ROOT:
		attr_dir(st, ino, 0755);
		st->st_nlink = 7;
		*timeout = FS_FIXED_TIMEOUT;
		break;
	case NODE_ASK:
	case NODE_QUERY:
	case NODE_MAP:
		attr_dir(st, ino, 0555);
		*timeout = FS_FIXED_TIMEOUT;
		break;
	case NODE_PROCS:
		/* Shared (allow_other): anyone may add a type, only its owner (or root)
		 * may rename or remove it, as in /tmp. */
		attr_dir(st, ino, fs_cfg.readonly ? 0555 : fs_cfg.shared ? 01777 : 0755);
		*timeout = FS_FIXED_TIMEOUT;
		break;
	case NODE_STATS:
		pthread_mutex_unlock(&node_lock);
		stats_text(&text);
		pthread_mutex_lock(&node_lock);
		attr_file(st, ino, 0444, (off_t)text.len,
			  (int64_t)fs_mounted.tv_sec * 1000000000 + fs_mounted.tv_nsec);
		*timeout = 0;
		break;
	case NODE_ASK_TYPE:
		attr_dir(st, ino, 0555);
		break;
	case NODE_QUERY_TYPE:
	case NODE_MAP_TYPE:
		attr_file(st, ino, 0666, 0,
			  (int64_t)fs_mounted.tv_sec * 1000000000 + fs_mounted.tv_nsec);
		break;
	case NODE_ANSWER:
		type = strdup(n->type);
		input = malloc(n->inlen + 1);
		if (!type || !input)
			abort();
		memcpy(input, n->input, n->inlen + 1);
		inlen = n->inlen;
		pthread_mutex_unlock(&node_lock);
		ret = fs_peek(type, input, inlen, &ans);
		pthread_mutex_lock(&node_lock);
		free(type);
		free(input);
		if (ret)
			break;
		if (ans->rc) {
			ret = ans->rc;
			break;
		}
		attr_answer(n, ans, st);
		break;
	case NODE_PROCS_TYPE:
		ret = attr_store(n, st);
		break;
	case NODE_PFILE:
		/* Files here are replaced by rename (saves, other daemons): a cached size
		 * would cut reads of the file a descriptor really has open, so the kernel
		 * asks every time (with the descriptor, when there is one). */
		*timeout = 0;
		ret = attr_store(n, st);
		break;
	}
	answer_put(ans);
	buf_free(&text);
	return ret;
}

/* ---- lookup -------------------------------------------------------------- */

static int reply_node(fuse_req_t req, struct node *n)
{
	struct fuse_entry_param e;
	atomic_bool intr;
	int ret;

	memset(&e, 0, sizeof(e));
	fs_intr_begin(req, &intr);
	ret = node_attr(n, &e.attr, &e.attr_timeout);
	fs_intr_end(req);
	if (ret) {
		node_forget(n, 1);
		return ret;
	}
	e.ino = n->ino;
	e.generation = node_generation;
	e.entry_timeout = entry_timeout(e.attr_timeout);
	pthread_mutex_unlock(&node_lock);
	fuse_reply_entry(req, &e);
	pthread_mutex_lock(&node_lock);
	return 0;
}

static bool type_name_ok(const char *name)
{
	return store_type_valid(name, strlen(name));
}

/*
 * Entries at the top of procs/ whose names start with a dot (.git, .gitignore)
 * are kept as ordinary files in STORE/procs/, where no type can be: a type name
 * never starts with a dot, and the store's type walk skips dot names.
 */
static bool procs_dot_name(fuse_ino_t parent, const char *name)
{
	return parent == INO_PROCS && name[0] == '.' && strcmp(name, ".") && strcmp(name, "..") &&
	       !atomic_is_tmpname(name) && strlen(name) <= NAME_MAX;
}

static int lookup_store_child(struct node *parent, const char *name, struct node **out)
{
	struct buf path = BUF_INIT;
	struct stat st;
	int ret = 0;

	if (atomic_is_tmpname(name))
		return -ENOENT;
	node_store_path(parent, &path);
	buf_addc(&path, '/');
	buf_adds(&path, name);
	ret = store_lstat(path.data, &st);
	/* A FIFO, device or socket in STORE (an NFS peer, a restore) is not served:
	 * the mount never makes one, and opening one would wait or reach a device. */
	if (!ret && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
		ret = -ENOENT;
	if (!ret) {
		struct node *old = node_child(parent, name);

		/* Another file now stands behind the name (replaced by rename, here or
		 * by another daemon): it gets a new inode, as on a local filesystem, so
		 * a reader of the old one is never cut to the new one's size. */
		if (old && old->backing && old->backing != (uint64_t)st.st_ino)
			node_detach(old);
		*out = node_lookup_child(parent, name, NODE_PFILE);
		(*out)->backing = (uint64_t)st.st_ino;
	}
	buf_free(&path);
	return ret;
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct node *parent, *n = NULL;
	struct buf input = BUF_INIT;
	int ret = 0;

	pthread_mutex_lock(&node_lock);
	parent = node_by_ino(parent_ino);
	if (!parent) {
		ret = -ESTALE;
		goto out;
	}
	/* NFS export asks for "." and ".." of inodes it has handles for. */
	if (!strcmp(name, ".") || !strcmp(name, "..")) {
		n = !strcmp(name, ".") || !parent->parent ? parent : parent->parent;
		n->nlookup++;
		ret = reply_node(req, n);
		goto out;
	}
	switch (parent->kind) {
	case NODE_ROOT:
		n = node_child(parent, name);
		if (!n) {
			ret = -ENOENT;
			goto out;
		}
		break;
	case NODE_ASK:
	case NODE_QUERY:
	case NODE_MAP:
		if (parent->ino == INO_QUERY && !strcmp(name, QUERY_STATUS_DIR)) {
			/* query/.status/ works as query/ does, with the status in the data. */
			n = node_lookup_child(parent, name, NODE_QUERY);
			n->nlookup--;
			break;
		}
		pthread_mutex_unlock(&node_lock);
		ret = type_name_ok(name) && proc_type_visible(name) ? 0 : -ENOENT;
		if (parent->kind == NODE_QUERY && !strcmp(name, ROUTE_TYPE))
			ret = 0; /* query/.q: questions too long for a name */
		pthread_mutex_lock(&node_lock);
		if (ret)
			goto out;
		n = node_lookup_child(parent, name,
				      parent->kind == NODE_ASK	 ? NODE_ASK_TYPE
				      : parent->kind == NODE_MAP ? NODE_MAP_TYPE
								 : NODE_QUERY_TYPE);
		n->nlookup--; /* counted below */
		break;
	case NODE_PROCS:
		if (procs_dot_name(parent->ino, name)) {
			ret = lookup_store_child(parent, name, &n);
			if (ret)
				goto out;
			n->nlookup--;
			break;
		}
		pthread_mutex_unlock(&node_lock);
		ret = type_name_ok(name) && store_type_exists(name) ? 0 : -ENOENT;
		pthread_mutex_lock(&node_lock);
		if (ret)
			goto out;
		n = node_lookup_child(parent, name, NODE_PROCS_TYPE);
		n->nlookup--;
		break;
	case NODE_ASK_TYPE:
		n = node_lookup_child(parent, name, NODE_ANSWER);
		n->nlookup--;
		if (!n->input) {
			name_decode(name, strlen(name), &input);
			n->inlen = input.len;
			n->input = buf_steal(&input);
		}
		break;
	case NODE_PROCS_TYPE:
	case NODE_PFILE:
		ret = lookup_store_child(parent, name, &n);
		if (ret)
			goto out;
		n->nlookup--;
		break;
	default:
		ret = -ENOTDIR;
		goto out;
	}
	n->nlookup++;
	ret = reply_node(req, n);
out:
	pthread_mutex_unlock(&node_lock);
	buf_free(&input);
	if (ret)
		fuse_reply_err(req, -ret);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct node *n;

	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	if (n)
		node_forget(n, nlookup);
	pthread_mutex_unlock(&node_lock);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *list)
{
	size_t i;

	pthread_mutex_lock(&node_lock);
	for (i = 0; i < count; i++) {
		struct node *n = node_by_ino(list[i].ino);

		if (n)
			node_forget(n, list[i].nlookup);
	}
	pthread_mutex_unlock(&node_lock);
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n;
	struct stat st;
	double timeout;
	int ret;

	if (fi && fi->fh && fi_handle(fi)->kind == H_PFILE) {
		/* fstat: the file this descriptor has open, which may no longer be the one
		 * behind its name (replaced by a save); its size bounds the reads. */
		struct pfile *pf = &fi_handle(fi)->pf;

		pthread_mutex_lock(&pf->lock);
		ret = fstat(pf->shadow >= 0 ? pf->shadow : pf->fd, &st) ? -errno : 0;
		pthread_mutex_unlock(&pf->lock);
		st.st_ino = ino;
		if (ret)
			fuse_reply_err(req, -ret);
		else
			fuse_reply_attr(req, &st, fs_cfg.timeout);
		return;
	}
	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	if (n && fi && fi->fh && fi_handle(fi)->kind == H_ANSWER) {
		/* The kernel asks with the descriptor before reading past its i_size:
		 * answer with the size of the answer this descriptor reads. */
		memset(&st, 0, sizeof(st));
		attr_answer(n, fi_handle(fi)->ans, &st);
		timeout = fs_cfg.timeout;
		ret = 0;
	} else if (n) {
		atomic_bool intr;

		fs_intr_begin(req, &intr);
		ret = node_attr(n, &st, &timeout);
		fs_intr_end(req);
	} else {
		ret = -ESTALE;
	}
	pthread_mutex_unlock(&node_lock);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, timeout);
}

/* ---- helpers for procs/ ---------------------------------------------------- */

/*
 * Resolve @ino to a procs node's store path (and type); for a NULL @name the node
 * itself, else its child @name.  Returns 0, -ESTALE, or -EPERM outside procs/.
 */
static int procs_path(fuse_ino_t ino, const char *name, struct buf *path, struct buf *type)
{
	struct node *n;
	int ret = 0;

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
		node_store_path(n, path);
		if (name) {
			buf_addc(path, '/');
			buf_adds(path, name);
		}
		if (type)
			buf_adds(type, node_type(n));
	}
	pthread_mutex_unlock(&node_lock);
	return ret;
}

/* Something under procs/TYPE changed through the mount. */
static void procs_changed(const char *type)
{
	if (type[0] == '.')
		return; /* .git and the like: no procedure, no answers to drop */
	proc_touched(type);
	route_touched(type);
	fs_inval_type(type);
}

static int check_writable(void)
{
	return fs_cfg.readonly || store_readonly() ? -EROFS : 0;
}

/* Give a created entry to the requesting user when the daemon runs as root. */
static void chown_to_caller(fuse_req_t req, const char *path)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	if (getuid() == 0 && ctx && (ctx->uid != 0 || ctx->gid != 0))
		if (store_chown(path, ctx->uid, ctx->gid) != 0)
			log_debug("chown %s: failed", path);
}

static void reply_new_entry(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct node *parent, *n = NULL;
	int ret;

	pthread_mutex_lock(&node_lock);
	parent = node_by_ino(parent_ino);
	if (parent && parent->kind == NODE_PROCS && !procs_dot_name(parent_ino, name)) {
		n = node_lookup_child(parent, name, NODE_PROCS_TYPE);
		ret = 0;
	} else {
		ret = parent ? lookup_store_child(parent, name, &n) : -ESTALE;
	}
	if (!ret)
		ret = reply_node(req, n);
	pthread_mutex_unlock(&node_lock);
	if (ret)
		fuse_reply_err(req, -ret);
}

/* ---- directories ----------------------------------------------------------- */

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct buf path = BUF_INIT, type = BUF_INIT;
	int ret = check_writable();

	if (ret)
		goto out;
	if (parent == INO_PROCS && !procs_dot_name(parent, name)) {
		if (!type_name_ok(name)) {
			ret = -EINVAL;
			goto out;
		}
		if (store_type_exists(name)) {
			ret = -EEXIST;
			goto out;
		}
		ret = store_mkdir_type(name);
		if (!ret) {
			store_type_dir(name, &path);
			chown_to_caller(req, path.data);
			procs_changed(name);
			reply_new_entry(req, parent, name);
		}
		goto out;
	}
	ret = procs_path(parent, name, &path, &type);
	if (ret)
		goto out;
	ret = store_mkdir(path.data, mode);
	if (ret)
		goto out;
	chown_to_caller(req, path.data);
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

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_unlink_common(req, parent, name, 0);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fs_unlink_common(req, parent, name, AT_REMOVEDIR);
}

static int type_foreach_add(const char *type, void *arg)
{
	struct handle *h = arg;
	struct dirent_snap *e;

	if (!(h->dir.n & (h->dir.n - 1)) || h->dir.n < 2) {
		size_t cap = h->dir.n < 2 ? 4 : h->dir.n * 2;
		void *p = realloc(h->dir.ents, cap * sizeof(*h->dir.ents));

		if (!p)
			abort();
		h->dir.ents = p;
	}
	e = &h->dir.ents[h->dir.n++];
	e->name = strdup(type);
	if (!e->name)
		abort();
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

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = handle_new(H_DIR, ino);
	struct buf path = BUF_INIT;
	struct node *n;
	enum node_kind kind;
	int ret = 0;

	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	kind = n ? n->kind : NODE_ROOT;
	if (n && (kind == NODE_PROCS_TYPE || kind == NODE_PFILE))
		node_store_path(n, &path);
	pthread_mutex_unlock(&node_lock);
	if (!n) {
		ret = -ESTALE;
		goto out;
	}
	dir_add(h, ".", S_IFDIR, ino);
	dir_add(h, "..", S_IFDIR, 0);
	switch (kind) {
	case NODE_ROOT:
		dir_add(h, "ask", S_IFDIR, INO_ASK);
		dir_add(h, "procs", S_IFDIR, INO_PROCS);
		dir_add(h, "query", S_IFDIR, INO_QUERY);
		dir_add(h, "stats", S_IFREG, INO_STATS);
		dir_add(h, "q", S_IFDIR, INO_Q);
		dir_add(h, "map", S_IFDIR, INO_MAP);
		break;
	case NODE_ASK:
	case NODE_PROCS:
	case NODE_QUERY:
	case NODE_MAP:
		ret = store_foreach_type(type_foreach_add, h);
		if (kind == NODE_PROCS && !ret)
			procs_dot_entries(h);
		if (kind == NODE_QUERY || kind == NODE_MAP)
			for (size_t i = 2; i < h->dir.n; i++)
				h->dir.ents[i].type = S_IFREG;
		break;
	case NODE_ASK_TYPE:
		break; /* inputs are unbounded: nothing to list */
	case NODE_PROCS_TYPE:
	case NODE_PFILE: {
		int fd = store_open_beneath(path.data, O_RDONLY | O_DIRECTORY, 0);
		struct dirent *de;
		DIR *dir;

		if (fd < 0) {
			ret = fd;
			break;
		}
		dir = fdopendir(fd);
		if (!dir) {
			ret = -errno;
			close(fd);
			break;
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
		break;
	}
	default:
		ret = -ENOTDIR;
	}
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

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
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

static int pfile_save(struct handle *h);

/* Release a handle: save what a procs file still holds, free everything. */
static void handle_destroy(struct handle *h)
{
	switch (h->kind) {
	case H_ANSWER:
		if (h->paged) {
			struct node *n;

			pthread_mutex_lock(&node_lock);
			n = node_by_ino(h->ino);
			if (n && n->page_opens)
				n->page_opens--;
			pthread_mutex_unlock(&node_lock);
		}
		answer_put(h->ans);
		break;
	case H_QUERY:
		answer_put(h->q.ans);
		atomic_fetch_sub(&fs_query_bytes, h->q.input.len);
		buf_free(&h->q.input);
		buf_free(&h->q.reply);
		pthread_mutex_destroy(&h->q.lock);
		break;
	case H_STATS:
		buf_free(&h->text);
		break;
	case H_MAP:
		map_close(h->map);
		break;
	case H_PFILE:
		pfile_save(h);
		pthread_mutex_lock(&node_lock);
		{
			struct node *n = node_by_ino(h->ino);

			if (n && n->writer == &h->pf)
				n->writer = NULL;
		}
		pthread_mutex_unlock(&node_lock);
		if (h->pf.shadow >= 0) {
			close(h->pf.shadow);
			store_unlink(h->pf.shadow_path.data, 0);
		}
		if (h->pf.fd >= 0)
			close(h->pf.fd);
		buf_free(&h->pf.shadow_path);
		pthread_mutex_destroy(&h->pf.lock);
		break;
	case H_DIR:
		for (size_t i = 0; i < h->dir.n; i++)
			free(h->dir.ents[i].name);
		free(h->dir.ents);
		break;
	}
	handle_forget(h);
	free(h);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	handle_destroy(fi_handle(fi));
	fuse_reply_err(req, 0);
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
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

/* ---- procs/ files: shadow writes ------------------------------------------ */

/* Node @ino now stands for the store file @st describes. */
static void node_note_backing(fuse_ino_t ino, const struct stat *st)
{
	struct node *n;

	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	if (n)
		n->backing = (uint64_t)st->st_ino;
	pthread_mutex_unlock(&node_lock);
}

static int pfile_make_shadow(struct pfile *pf, const char *target, bool copy)
{
	struct buf tmp = BUF_INIT;
	const char *slash = strrchr(target, '/');
	struct stat st;
	int fd = -1, ret = 0;

	buf_add(&tmp, target, (size_t)(slash - target + 1));
	atomic_tmpname(&tmp);
	if (pf->fd >= 0 && fstat(pf->fd, &st) == 0)
		st.st_mode &= 0777; /* never setuid, setgid or sticky */
	else
		st.st_mode = 0644;
	fd = store_open_beneath(tmp.data, O_RDWR | O_CREAT | O_EXCL, st.st_mode);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	if (copy && pf->fd >= 0) {
		char chunk[65536];
		off_t off = 0;
		ssize_t n;

		while ((n = pread(pf->fd, chunk, sizeof(chunk), off)) > 0) {
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
	if (pf->fd >= 0 && getuid() == 0 && fstat(pf->fd, &st) == 0)
		if (fchown(fd, st.st_uid, st.st_gid) != 0)
			log_debug("chown shadow: %s", strerror(errno));
	pf->shadow = fd;
	fd = -1;
	buf_reset(&pf->shadow_path);
	buf_add(&pf->shadow_path, tmp.data, tmp.len);
out:
	if (fd >= 0) {
		close(fd);
		store_unlink(tmp.data, 0);
	}
	buf_free(&tmp);
	return ret;
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
	if (pf->error) {
		/* Half the data is worse than none: drop the shadow, keep the old file. */
		ret = pf->error;
		close(pf->shadow);
		store_unlink(pf->shadow_path.data, 0);
		pf->shadow = -1;
		pf->dirty = false;
		pf->error = 0;
		return ret;
	}
	if (fsync(pf->shadow) != 0) {
		ret = -errno;
		goto out;
	}
	if (gone) {
		store_unlink(pf->shadow_path.data, 0);
	} else if ((ret = store_rename(pf->shadow_path.data, target, 0)) != 0) {
		goto out;
	}
	if (pf->fd >= 0)
		close(pf->fd);
	pf->fd = pf->shadow;
	pf->shadow = -1;
	pf->dirty = false;
out:
	return ret;
}

/* Commit a handle's writes; used by flush, fsync and release. */
static int pfile_save(struct handle *h)
{
	struct buf path = BUF_INIT, type = BUF_INIT;
	struct pfile *pf = &h->pf;
	struct node *n;
	bool gone = true;
	int ret;

	pthread_mutex_lock(&pf->lock);
	if (!pf->dirty) {
		pthread_mutex_unlock(&pf->lock);
		return 0;
	}
	pthread_mutex_lock(&node_lock);
	n = node_by_ino(h->ino);
	if (n) {
		gone = n->unlinked;
		node_store_path(n, &path);
		buf_adds(&type, node_type(n));
		if (n->writer == pf)
			n->writer = NULL;
	}
	pthread_mutex_unlock(&node_lock);
	ret = pfile_commit(pf, path.data ? path.data : "", gone);
	if (!ret && !gone) {
		struct stat st;

		/* Saved through this name: the name keeps its inode, as with an
		 * in-place write. */
		if (fstat(pf->fd, &st) == 0)
			node_note_backing(h->ino, &st);
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

static bool pfile_replaced(fuse_ino_t ino, int fd)
{
	struct stat st;
	struct node *n;
	bool replaced = false;

	if (fstat(fd, &st) != 0)
		return false;
	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	if (n && n->backing && n->backing != (uint64_t)st.st_ino)
		replaced = true;
	pthread_mutex_unlock(&node_lock);
	return replaced;
}

static int pfile_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct buf path = BUF_INIT;
	struct handle *h;
	int acc = fi->flags & O_ACCMODE, ret, fd;

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
	h = handle_new(H_PFILE, ino);
	/* The name stands for another file than the one the kernel looked up, whose
	 * size it caches: read this one without letting that size cut it short. */
	if (pfile_replaced(ino, fd))
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
	(void)req;
out:
	buf_free(&path);
	return ret;
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct buf path = BUF_INIT, type = BUF_INIT;
	struct fuse_entry_param e;
	struct node *pnode, *n = NULL;
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
	/* The name appears at once (POSIX), empty; the data arrives by shadow. */
	fd = store_open_file(path.data, O_WRONLY | O_CREAT | (fi->flags & O_EXCL), mode & 0777);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	close(fd);
	chown_to_caller(req, path.data);
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
	ret = pfile_open(req, e.ino, fi);
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

/* ---- open/read/write --------------------------------------------------------- */

/*
 * Choose how the kernel reads answer handle @h.  Through the page cache, a reader
 * gets EOF without another READ and a repeated read costs no request at all; but
 * the kernel then trusts its i_size and its cached pages, so that is safe only
 * when
 *  - every attribute reply for the node carried this answer's size (an edit that
 *    changed the size raced with a GETATTR: the kernel may hold the other one and
 *    would cut the answer short), and
 *  - no handle open through the page cache reads another version (pages are per
 *    inode, shared by all its descriptors).
 * Otherwise direct I/O, which is always right.  Cached pages are kept across
 * opens only while the version they were read from is current.
 *
 * A page-cache handle's answer is pushed into the kernel's cache before OPEN is
 * answered (notify_store), so the reader's first read is not a READ request
 * either.  That is safe outside node_lock: this handle is counted in page_opens
 * with its version, so no handle of another version can use the pages until it
 * is released.
 */
static void answer_open_mode(struct handle *h, struct fuse_file_info *fi)
{
	struct node *n;
	uint64_t version = h->ans->version;
	bool push = false;

	fi->direct_io = 1;
	pthread_mutex_lock(&node_lock);
	n = node_by_ino(h->ino);
	if (n && n->told && !n->told_differs && n->told_size == h->ans->len &&
	    (n->page_opens == 0 || n->page_version == version)) {
		fi->direct_io = 0;
		fi->keep_cache = n->page_opens > 0 || (n->page_version == version && version);
		n->page_version = version;
		n->page_opens++;
		h->paged = true;
		push = !fi->keep_cache && h->ans->len && fs_session;
	}
	pthread_mutex_unlock(&node_lock);
	if (push) {
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(h->ans->len);

		bv.buf[0].mem = h->ans->data;
		/* On failure (an old kernel) the pages are dropped at open and read. */
		if (fuse_lowlevel_notify_store(fs_session, h->ino, 0, &bv, 0) == 0)
			fi->keep_cache = 1;
	}
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = NULL;
	struct node *n;
	enum node_kind kind;
	char *type = NULL, *input = NULL;
	size_t inlen = 0;
	atomic_bool intr;
	bool status = false;
	int ret = 0;

	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	kind = n ? n->kind : NODE_ROOT;
	if (n && kind == NODE_QUERY_TYPE)
		status = n->parent && n->parent->ino != INO_QUERY;
	if (n && (kind == NODE_ANSWER || kind == NODE_QUERY_TYPE || kind == NODE_MAP_TYPE)) {
		type = strdup(n->type);
		if (kind == NODE_ANSWER) {
			input = malloc(n->inlen + 1);
			memcpy(input, n->input, n->inlen + 1);
			inlen = n->inlen;
		}
	}
	pthread_mutex_unlock(&node_lock);
	if (!n) {
		ret = -ESTALE;
		goto out;
	}
	switch (kind) {
	case NODE_ANSWER:
		if ((fi->flags & O_ACCMODE) != O_RDONLY) {
			ret = -EACCES;
			break;
		}
		h = handle_new(H_ANSWER, ino);
		fs_intr_begin(req, &intr);
		ret = fs_ask(type, input, inlen, &h->ans);
		fs_intr_end(req);
		if (!ret && h->ans->rc)
			ret = h->ans->rc;
		if (ret)
			break;
		answer_open_mode(h, fi);
		fi->noflush = 1; /* nothing to save on close: spare the round trip */
		break;
	case NODE_QUERY_TYPE:
		h = handle_new(H_QUERY, ino);
		pthread_mutex_init(&h->q.lock, NULL);
		h->q.status = status;
		fi->direct_io = 1;
		break;
	case NODE_MAP_TYPE:
		h = handle_new(H_MAP, ino);
		ret = map_open(type, &h->map);
		fi->direct_io = 1;
		fi->nonseekable = 1;
		break;
	case NODE_STATS:
		h = handle_new(H_STATS, ino);
		stats_text(&h->text);
		fi->direct_io = 1;
		fi->noflush = 1;
		break;
	case NODE_PFILE:
		ret = pfile_open(req, ino, fi);
		goto out;
	default:
		ret = -EISDIR;
	}
	if (!ret)
		fi->fh = (uintptr_t)h;
out:
	free(type);
	free(input);
	if (ret) {
		if (h && h->kind == H_ANSWER)
			answer_put(h->ans);
		if (h)
			handle_free(h);
		fuse_reply_err(req, -ret);
	} else {
		fuse_reply_open(req, fi);
	}
}

static void reply_slice(fuse_req_t req, const char *data, size_t len, size_t size, off_t off)
{
	if ((size_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, data + off,
			       len - (size_t)off < size ? len - (size_t)off : size);
}

/*
 * Status mode (query/.status/TYPE): what follows the input is one status line,
 * "ok", "rejected", "unknown" or "failed", then the answer or the reason of this
 * very ask, so `seglam ask` never has to guess it from the log.  Only an
 * interrupt is an error of the read.  q.lock held.
 */
static void query_seal_status(struct handle *h, const char *type)
{
	struct buf why = BUF_INIT;
	int ret;

	if (!strcmp(type, ROUTE_TYPE)) {
		ret = route_ask(buf_str(&h->q.input), h->q.input.len, &h->q.ans);
		if (ret && ret != -EINTR)
			buf_adds(&why, "no procedure answers this question (see the daemon's log)");
	} else {
		ret = proc_ask_why(type, buf_str(&h->q.input), h->q.input.len, &h->q.ans, &why);
	}

	buf_reset(&h->q.reply);
	h->q.err = 0;
	if (ret == -EINTR) {
		h->q.err = ret;
		h->q.sealed = false;
	} else if (!ret && !h->q.ans->rc) {
		buf_adds(&h->q.reply, "ok\n");
		buf_add(&h->q.reply, h->q.ans->data, h->q.ans->len);
	} else {
		const char *body = ret ? buf_str(&why) : h->q.ans->data;
		size_t len = ret ? why.len : h->q.ans->len;

		buf_adds(&h->q.reply, ret == -ENOENT ? "unknown\n"
				      : ret	     ? "failed\n"
						     : "rejected\n");
		buf_add(&h->q.reply, body, len);
		if (!len || body[len - 1] != '\n')
			buf_addc(&h->q.reply, '\n');
	}
	buf_free(&why);
}

/* Take @more bytes of the query budget, or -ENOSPC when it is spent. */
static int query_charge(size_t more)
{
	size_t now = atomic_fetch_add(&fs_query_bytes, more);

	if (now + more > fs_cfg.query_mem) {
		atomic_fetch_sub(&fs_query_bytes, more);
		return -ENOSPC;
	}
	return 0;
}

/* Seal a query handle: run the procedure on what was written. q.lock held. */
static void query_seal(struct handle *h)
{
	struct node *n;
	char *type = NULL;

	h->q.sealed = true;
	pthread_mutex_lock(&node_lock);
	n = node_by_ino(h->ino);
	if (n)
		type = strdup(n->type);
	pthread_mutex_unlock(&node_lock);
	if (!type) {
		h->q.err = -ESTALE;
		return;
	}
	if (h->q.status) {
		query_seal_status(h, type);
		free(type);
		return;
	}
	h->q.err = fs_ask(type, buf_str(&h->q.input), h->q.input.len, &h->q.ans);
	if (!h->q.err && h->q.ans->rc)
		h->q.err = h->q.ans->rc;
	if (h->q.err == -EINTR)
		h->q.sealed = false; /* interrupted: the next read asks again */
	free(type);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct handle *h = fi_handle(fi);
	char *data;
	ssize_t n;

	(void)ino;
	switch (h->kind) {
	case H_ANSWER: {
		/* Our own reference: once the reply is written the reader may close and
		 * RELEASE (on another thread) drop the handle's, while writev returns. */
		struct answer *a = answer_get(h->ans);

		reply_slice(req, a->data, a->len, size, off);
		answer_put(a);
		return;
	}
	case H_STATS:
		data = malloc(h->text.len + 1);
		if (!data)
			abort();
		memcpy(data, buf_str(&h->text), h->text.len + 1);
		reply_slice(req, data, h->text.len, size, off);
		free(data);
		return;
	case H_QUERY:
		/* The file reads as the input written, followed by the answer, so a
		 * reader continuing on the writing descriptor gets just the answer. */
		pthread_mutex_lock(&h->q.lock);
		if (!h->q.sealed) {
			atomic_bool intr;

			fs_intr_begin(req, &intr);
			query_seal(h);
			fs_intr_end(req);
		}
		if (h->q.err) {
			pthread_mutex_unlock(&h->q.lock);
			fuse_reply_err(req, -h->q.err);
			return;
		}
		if ((size_t)off < h->q.input.len) {
			size_t n = h->q.input.len - (size_t)off < size
				       ? h->q.input.len - (size_t)off
				       : size;

			data = malloc(n ? n : 1);
			if (!data)
				abort();
			memcpy(data, h->q.input.data + off, n);
			pthread_mutex_unlock(&h->q.lock);
			fuse_reply_buf(req, data, n);
			free(data);
		} else if (h->q.status) {
			size_t skip = (size_t)off - h->q.input.len, n = 0;

			if (skip < h->q.reply.len)
				n = h->q.reply.len - skip < size ? h->q.reply.len - skip : size;
			data = malloc(n ? n : 1);
			if (!data)
				abort();
			memcpy(data, h->q.reply.data + skip, n);
			pthread_mutex_unlock(&h->q.lock);
			fuse_reply_buf(req, data, n);
			free(data);
		} else {
			struct answer *a = answer_get(h->q.ans);

			pthread_mutex_unlock(&h->q.lock);
			reply_slice(req, a->data, a->len, size, off - (off_t)h->q.input.len);
			answer_put(a);
		}
		return;
	case H_MAP:
		map_read(req, h->map, size);
		return;
	case H_PFILE:
		data = malloc(size ? size : 1);
		if (!data)
			abort();
		pthread_mutex_lock(&h->pf.lock);
		n = pread(h->pf.shadow >= 0 ? h->pf.shadow : h->pf.fd, data, size, off);
		pthread_mutex_unlock(&h->pf.lock);
		if (n < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_buf(req, data, (size_t)n);
		free(data);
		return;
	default:
		fuse_reply_err(req, EISDIR);
	}
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct handle *h = fi_handle(fi);
	struct buf path = BUF_INIT;
	ssize_t n;
	int ret = 0;

	if (h->kind == H_QUERY) {
		pthread_mutex_lock(&h->q.lock);
		if (h->q.sealed) {
			ret = -EBUSY; /* the answer has been read: open the file again */
		} else if ((uint64_t)off + size > FS_QUERY_MAX) {
			ret = -EFBIG;
		} else if ((size_t)off + size > h->q.input.len &&
			   (ret = query_charge((size_t)off + size - h->q.input.len)) != 0) {
			log_debug(
			    "query/: an input write refused: open query/ handles already "
			    "buffer %zu bytes, the -o query_mem limit (they free it on close)",
			    atomic_load(&fs_query_bytes));
		} else {
			if ((size_t)off > h->q.input.len) {
				buf_grow(&h->q.input, (size_t)off - h->q.input.len);
				memset(h->q.input.data + h->q.input.len, 0,
				       (size_t)off - h->q.input.len);
				h->q.input.len = (size_t)off;
			}
			if ((size_t)off + size > h->q.input.len) {
				buf_grow(&h->q.input, (size_t)off + size - h->q.input.len);
				h->q.input.len = (size_t)off + size;
				h->q.input.data[h->q.input.len] = '\0';
			}
			memcpy(h->q.input.data + off, data, size);
		}
		pthread_mutex_unlock(&h->q.lock);
		if (ret)
			fuse_reply_err(req, -ret);
		else
			fuse_reply_write(req, size);
		return;
	}
	if (h->kind == H_MAP) {
		map_write(req, h->map, data, size);
		return;
	}
	if (h->kind != H_PFILE || !h->pf.writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	pthread_mutex_lock(&h->pf.lock);
	if (h->pf.shadow < 0) {
		ret = procs_path(ino, NULL, &path, NULL);
		if (!ret)
			ret = pfile_make_shadow(&h->pf, path.data, true);
		if (!ret)
			pfile_set_writer(ino, &h->pf);
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
	pthread_mutex_unlock(&h->pf.lock);
	buf_free(&path);
	if (ret)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_write(req, size);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = fi_handle(fi);

	(void)ino;
	fuse_reply_err(req, h->kind == H_PFILE ? -pfile_save(h) : 0);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = fi_handle(fi);
	int ret = 0;

	(void)ino;
	(void)datasync;
	if (h->kind == H_PFILE) {
		ret = pfile_save(h);
		pthread_mutex_lock(&h->pf.lock);
		if (!ret && fsync(h->pf.fd) != 0 && errno != EBADF && errno != EINVAL)
			ret = -errno;
		pthread_mutex_unlock(&h->pf.lock);
	}
	fuse_reply_err(req, -ret);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	handle_destroy(fi_handle(fi));
	fuse_reply_err(req, 0);
}

/* ---- metadata changes ---------------------------------------------------------- */

/* After replacing the file behind a name ourselves: the name keeps its inode. */
static void node_set_backing(fuse_ino_t ino, const char *path)
{
	struct stat st;

	if (store_lstat(path, &st) == 0)
		node_note_backing(ino, &st);
}

/* truncate(2) without a descriptor: copy the kept prefix to a temp file, rename. */
static int truncate_atomic(const char *path, off_t size)
{
	struct pfile pf = {.fd = -1, .shadow = -1};
	int ret;

	pf.fd = store_open_file(path, O_RDONLY, 0);
	if (pf.fd < 0)
		return pf.fd;
	ret = pfile_make_shadow(&pf, path, size > 0);
	if (!ret && ftruncate(pf.shadow, size) != 0)
		ret = -errno;
	if (!ret) {
		pf.dirty = true;
		ret = pfile_commit(&pf, path, false);
	}
	if (pf.shadow >= 0) {
		close(pf.shadow);
		store_unlink(pf.shadow_path.data, 0);
	}
	if (pf.fd >= 0)
		close(pf.fd);
	buf_free(&pf.shadow_path);
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

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct handle *h = fi ? fi_handle(fi) : NULL;
	struct buf path = BUF_INIT, type = BUF_INIT;
	struct pfile *pf = h && h->kind == H_PFILE ? &h->pf : NULL;
	struct stat cur;
	int ret;

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
	if (pf)
		pthread_mutex_lock(&pf->lock);
	/* Never for a caller the kernel would refuse (the daemon acts as root). */
	if (pf && fstat(pf->fd, &cur) != 0)
		ret = -errno;
	else if (!pf)
		ret = store_lstat(path.data, &cur);
	if (!ret)
		ret = perm_setattr(req, &cur, attr, to_set);
	if (!ret && (to_set & FUSE_SET_ATTR_MODE)) {
		/* store_chmod drops setuid, setgid and sticky bits. */
		ret = store_chmod(path.data, attr->st_mode);
		if (pf && pf->shadow >= 0)
			fchmod(pf->shadow, attr->st_mode & 0777);
	}
	if (!ret && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		uid_t uid = to_set & FUSE_SET_ATTR_UID ? attr->st_uid : (uid_t)-1;
		gid_t gid = to_set & FUSE_SET_ATTR_GID ? attr->st_gid : (gid_t)-1;

		ret = store_chown(path.data, uid, gid);
	}
	if (!ret && (to_set & FUSE_SET_ATTR_SIZE)) {
		if (pf && pf->writable) {
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
			ret = truncate_atomic(path.data, attr->st_size);
			if (!ret)
				node_set_backing(ino, path.data);
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
		} else {
			ret = store_utimens(path.data, ts);
		}
	}
	if (pf)
		pthread_mutex_unlock(&pf->lock);
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

/* Regular files only (knfsd creates files through MKNOD): no device, FIFO or socket
 * is ever made in the store. */
static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
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
		if (fd < 0)
			ret = fd;
		else
			close(fd);
	}
	if (ret) {
		fuse_reply_err(req, -ret);
	} else {
		chown_to_caller(req, path.data);
		procs_changed(type.data);
		reply_new_entry(req, parent, name);
	}
	buf_free(&path);
	buf_free(&type);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
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
		chown_to_caller(req, path.data);
		procs_changed(type.data);
		reply_new_entry(req, parent, name);
	}
	buf_free(&path);
	buf_free(&type);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct buf path = BUF_INIT;
	char target[4096];
	ssize_t n = -1;
	int ret;

	ret = procs_path(ino, NULL, &path, NULL);
	if (!ret) {
		n = store_readlink(path.data, target, sizeof(target) - 1);
		if (n < 0)
			ret = (int)n;
	}
	buf_free(&path);
	if (ret) {
		fuse_reply_err(req, ret == -EPERM ? EINVAL : -ret);
		return;
	}
	target[n] = '\0';
	fuse_reply_readlink(req, target);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char *name)
{
	struct buf from = BUF_INIT, to = BUF_INIT, type = BUF_INIT;
	int ret = check_writable();

	if (!ret)
		ret = procs_path(ino, NULL, &from, NULL);
	if (!ret)
		ret = procs_path(parent, name, &to, &type);
	if (!ret)
		ret = store_link(from.data, to.data);
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

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
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
		store_type_dir(name, &from);
		store_type_dir(newname, &to);
		buf_adds(&t1, name);
		buf_adds(&t2, newname);
		/* The bucket directories of the new name; an exchange needs both types. */
		if (!(flags & RENAME_EXCHANGE)) {
			ret = store_mkdir_type(newname);
			if (!ret)
				ret = store_unlink(to.data, AT_REMOVEDIR);
		}
	} else {
		ret = procs_path(parent, name, &from, &t1);
		if (!ret)
			ret = procs_path(newparent, newname, &to, &t2);
		if (!ret && (atomic_is_tmpname(name) || atomic_is_tmpname(newname)))
			ret = -EINVAL;
	}
	if (ret)
		goto out;
	ret = store_rename(from.data, to.data, flags);
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

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	if (fstatvfs(store_root_fd(), &sv) != 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

static void fs_init_conn(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* NFS export: the kernel may ask for "." and ".." of a handle's inode. */
	if (conn->capable & FUSE_CAP_EXPORT_SUPPORT)
		conn->want |= FUSE_CAP_EXPORT_SUPPORT;
	/* Drop cached answer pages when the source's mtime (the answer's) changes. */
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

const struct fuse_lowlevel_ops fs_ops = {
    .init = fs_init_conn,
    .lookup = fs_lookup,
    .forget = fs_forget,
    .forget_multi = fs_forget_multi,
    .getattr = fs_getattr,
    .setattr = fs_setattr,
    .readlink = fs_readlink,
    .mkdir = fs_mkdir,
    .mknod = fs_mknod,
    .unlink = fs_unlink,
    .rmdir = fs_rmdir,
    .symlink = fs_symlink,
    .rename = fs_rename,
    .link = fs_link,
    .open = fs_open,
    .read = fs_read,
    .write = fs_write,
    .flush = fs_flush,
    .release = fs_release,
    .fsync = fs_fsync,
    .opendir = fs_opendir,
    .readdir = fs_readdir,
    .releasedir = fs_releasedir,
    .fsyncdir = fs_fsyncdir,
    .statfs = fs_statfs,
    .create = fs_create,
};

void fs_shutdown_handles(void)
{
	struct handle *h;

	for (;;) {
		pthread_mutex_lock(&handles_lock);
		h = handles.next == &handles ? NULL : handles.next;
		pthread_mutex_unlock(&handles_lock);
		if (!h)
			break;
		handle_destroy(h);
	}
}
