/*
 * lookup: LOOKUP and FORGET, from a name under a directory node to a node.
 */
#include "fs_int.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>

#include "atomic.h"
#include "ghost.h"
#include "name.h"
#include "proc.h"
#include "route.h"
#include "store.h"

bool type_name_ok(const char *name)
{
	return store_type_valid(name, strlen(name));
}

/*
 * Entries at the top of procs/ whose names start with a dot (.git, .gitignore)
 * are kept as ordinary files in STORE/procs/, where no type can be: a type name
 * never starts with a dot, and the store's type walk skips dot names.
 */
bool procs_dot_name(fuse_ino_t parent, const char *name)
{
	return parent == INO_PROCS && name[0] == '.' && strcmp(name, ".") && strcmp(name, "..") &&
	       !atomic_is_tmpname(name) && strlen(name) <= NAME_MAX;
}

/* The store path of @parent's child @name, into @out (reset first). */
static int child_path(struct node *parent, const char *name, struct buf *out)
{
	buf_reset(out);
	return node_store_child_path(parent, name, out);
}

/* Tries of the lstat when the namespace keeps moving under it (see below). */
#define LOOKUP_TRIES 3

/* The store file the node of @parent's child @name stands for (0: none known). */
static uint64_t child_backing(struct node *parent, const char *name)
{
	struct node *n = node_child(parent, name);

	return n ? n->backing : 0;
}

/*
 * After the lock was dropped for an lstat of @path: did the parent move, or the
 * name get another file (@backing before)?  Only then is the lstat's result
 * stale; node_epoch spares the check when nothing moved anywhere.
 */
static bool child_moved(struct node *parent, const char *name, const struct buf *path,
			uint64_t epoch, uint64_t backing)
{
	struct buf now = BUF_INIT;
	bool moved;

	if (node_epoch() == epoch)
		return false;
	moved = child_path(parent, name, &now) || strcmp(buf_str(&now), buf_str(path)) ||
		child_backing(parent, name) != backing;
	buf_free(&now);
	return moved;
}

/*
 * The child @name of a procs directory, as the store has it now; its lookup
 * counted.  node_lock held on entry and on return, but dropped across the lstat
 * (on NFS a network round trip that every other request would wait for).
 * @parent is pinned meanwhile.  What the lstat saw is published only if nothing
 * moved in between (child_moved: a rename of the parent, an unlink or rename of
 * the name, a save that gave it a new file); otherwise the lstat is redone on the
 * path as it is now, LOOKUP_TRIES times at most, after which the last result
 * stands (a name that keeps moving has no better answer).
 */
int lookup_store_child(struct node *parent, const char *name, struct node **out)
{
	struct buf path = BUF_INIT;
	struct stat st;
	uint64_t epoch, backing;
	int64_t born;
	int ret = 0, tries = 0;

	if (atomic_is_tmpname(name))
		return -ENOENT;
	node_pin(parent);
	do {
		ret = child_path(parent, name, &path);
		if (ret)
			goto out;
		epoch = node_epoch();
		backing = child_backing(parent, name);
		pthread_mutex_unlock(&node_lock);
		ret = store_lstat_born(path.data, &st, &born);
		pthread_mutex_lock(&node_lock);
	} while (child_moved(parent, name, &path, epoch, backing) && ++tries < LOOKUP_TRIES);
	/* A FIFO, device or socket in STORE (an NFS peer, a restore) is not served:
	 * the mount never makes one, and opening one would wait or reach a device. */
	if (!ret && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
		ret = -ENOENT;
	if (!ret) {
		struct node *old = node_child(parent, name);

		/* Another file now stands behind the name (replaced by rename, here or
		 * by another daemon): it gets a new inode, as on a local filesystem, so
		 * a reader of the old one is never cut to the new one's size. */
		if (old && old->backing && !node_is_backing(old, &st, born))
			node_detach(old);
		*out = node_lookup_file(parent, name, &st, born);
	}
out:
	node_unpin(parent);
	buf_free(&path);
	return ret;
}

/*
 * The child @name of a directory of each kind (node_ops[].lookup), its lookup not
 * yet counted: node_lock held on entry, may be dropped and retaken, never held
 * across store I/O (the type checks below run without it; lookup_store_child drops
 * it).  Dropping it is safe for @parent: fixed nodes never die, and
 * lookup_store_child pins the others.
 */
int lookup_root(struct node *parent, const char *name, struct node **out)
{
	*out = node_child(parent, name);
	return *out ? 0 : -ENOENT;
}

/* ask/, query/, map/: a directory (ask/) or file of each visible type. */
int lookup_view(struct node *parent, const char *name, struct node **out)
{
	struct node *n;
	bool stored;
	int ret;

	if (parent->ino == INO_QUERY && !strcmp(name, QUERY_STATUS_DIR)) {
		/* query/.status/ works as query/ does, with the status in the data. */
		n = node_lookup_child(parent, name, NODE_QUERY);
		n->nlookup--;
		*out = n;
		return 0;
	}
	pthread_mutex_unlock(&node_lock);
	stored = type_name_ok(name) && store_type_exists(name);
	/* (an LLM makes any valid name a type: proc_type_visible) */
	ret = stored || (type_name_ok(name) && proc_type_visible(name)) ? 0 : -ENOENT;
	if (parent->kind == NODE_QUERY && !strcmp(name, ROUTE_TYPE))
		ret = 0; /* query/.q: questions too long for a name */
	pthread_mutex_lock(&node_lock);
	if (ret)
		return ret;
	n = node_lookup_child(parent, name,
			      parent->kind == NODE_ASK	 ? NODE_ASK_TYPE
			      : parent->kind == NODE_MAP ? NODE_MAP_TYPE
							 : NODE_QUERY_TYPE);
	n->stored = stored; /* (node_kept) */
	n->nlookup--;	    /* counted by fs_lookup */
	*out = n;
	return 0;
}

int lookup_procs(struct node *parent, const char *name, struct node **out)
{
	int ret;

	if (procs_dot_name(parent->ino, name))
		return lookup_store(parent, name, out);
	pthread_mutex_unlock(&node_lock);
	ret = type_name_ok(name) && store_type_exists(name) ? 0 : -ENOENT;
	pthread_mutex_lock(&node_lock);
	if (ret)
		return ret;
	*out = node_lookup_child(parent, name, NODE_PROCS_TYPE);
	(*out)->nlookup--;
	return 0;
}

/* ask/TYPE/INPUT: any name is an input. */
int lookup_ask_type(struct node *parent, const char *name, struct node **out)
{
	struct node *n = node_lookup_child(parent, name, NODE_ANSWER);

	n->nlookup--;
	if (!n->input) {
		struct buf input = BUF_INIT;

		name_decode(name, strlen(name), &input);
		n->inlen = input.len;
		n->input = buf_steal(&input);
	}
	*out = n;
	return 0;
}

/* procs/TYPE/... and procs/.NAME: what the store holds. */
int lookup_store(struct node *parent, const char *name, struct node **out)
{
	int ret = lookup_store_child(parent, name, out);

	if (!ret)
		(*out)->nlookup--;
	return ret;
}

/*
 * NFS export: the kernel forgot inode @ino, and a handle to it came back.  A file
 * or answer forgotten while it still had its name left a ghost (ghost.h): look
 * that name up again in its parent (itself revived the same way if the kernel
 * forgot it too), and the new node takes the old number back if it still stands
 * for the same store file.  @out gets the node, its lookup not counted (a revived
 * parent is held by its child), or the call returns -ESTALE.  node_lock held;
 * dropped for the store's lstat as in any lookup.
 */
static int lookup_revive(uint64_t ino, unsigned depth, struct node **out)
{
	struct ghost_of g = {.name = BUF_INIT};
	struct node *parent, *n = NULL;
	int ret;

	ret = depth > NODE_DEPTH_MAX ? -ESTALE : ghost_find(ino, &g);
	if (ret)
		goto out;
	parent = node_by_ino(g.parent);
	if (!parent) {
		ret = lookup_revive(g.parent, depth + 1, &parent);
		if (ret)
			goto out;
	}
	/* A revived parent has no lookup and no child yet: the pin keeps it through
	 * the child's lookup, and the unpin frees it if the child is not found. */
	node_pin(parent);
	ret = node_ops[parent->kind].lookup ? node_ops[parent->kind].lookup(parent, g.name.data, &n)
					    : -ENOTDIR;
	if (!ret && n->ino != ino) {
		node_forget(n, 0); /* another file has the name: drops its node if new */
		ret = -ENOENT;
	}
	/* Gone for good: its number is never given back, and the next use of the
	 * handle costs no store lookup.  (An I/O error may pass: the ghost stays.) */
	if (ret == -ENOENT)
		ghost_forget(ino);
	if (ret)
		ret = -ESTALE;
	node_unpin(parent);
out:
	buf_free(&g.name);
	if (!ret)
		*out = n;
	return ret;
}

void fs_lookup(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct node *parent, *n = NULL;
	int ret = 0;
	bool dot = !strcmp(name, ".") || !strcmp(name, "..");

	procs_records_barrier(parent_ino, name);
	pthread_mutex_lock(&node_lock);
	parent = node_by_ino(parent_ino);
	if (!parent)
		ret = dot ? lookup_revive(parent_ino, 0, &parent) : -ESTALE;
	if (ret)
		goto out;
	/* NFS export asks for "." and ".." of inodes it has handles for. */
	if (dot) {
		node_pin(parent); /* for "..", a revived node has no lookup of its own */
		n = !strcmp(name, ".") || !parent->parent ? parent : parent->parent;
		n->nlookup++;
		ret = reply_node(req, n);
		node_unpin(parent);
		goto out;
	}
	if (!node_ops[parent->kind].lookup) {
		ret = -ENOTDIR;
		goto out;
	}
	ret = node_ops[parent->kind].lookup(parent, name, &n);
	if (ret)
		goto out;
	n->nlookup++;
	ret = reply_node(req, n);
out:
	pthread_mutex_unlock(&node_lock);
	if (ret)
		fuse_reply_err(req, -ret);
}

void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct node *n;

	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	if (n)
		node_forget(n, nlookup);
	pthread_mutex_unlock(&node_lock);
	fuse_reply_none(req);
}

void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *list)
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

void reply_new_entry(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
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
