/* node: the inode table (ino -> node, (parent, name) -> node); see node.h. */
#include "node.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "ghost.h"
#include "route.h"
#include "store.h"
#include "xalloc.h"

/* The table and every node's fields; never held across store I/O (node.h). */
pthread_mutex_t node_lock = PTHREAD_MUTEX_INITIALIZER;
uint64_t node_generation;

/* All under node_lock. */
static struct {
	struct node **by_ino, **by_name;
	size_t nbuckets, count;
	uint64_t next_ino;
	uint64_t epoch; /* see node_epoch */
} nodes;

#define NODE_FIXED 7
static struct node fixed[NODE_FIXED];

static size_t ino_bucket(uint64_t ino)
{
	return (size_t)(ino * 0x9E3779B97F4A7C15ull >> 20) & (nodes.nbuckets - 1);
}

static size_t name_bucket(uint64_t parent, const char *name)
{
	return (size_t)XXH3_64bits_withSeed(name, strlen(name), parent) & (nodes.nbuckets - 1);
}

static void rehash(void)
{
	size_t old = nodes.nbuckets, i;
	struct node **by_ino = nodes.by_ino, **by_name = nodes.by_name;

	nodes.nbuckets = old ? old * 2 : 1024;
	nodes.by_ino = xcalloc(nodes.nbuckets, sizeof(*nodes.by_ino));
	nodes.by_name = xcalloc(nodes.nbuckets, sizeof(*nodes.by_name));
	for (i = 0; i < old; i++) {
		struct node *n, *next;

		for (n = by_ino[i]; n; n = next) {
			size_t b = ino_bucket(n->ino);

			next = n->ino_next;
			n->ino_next = nodes.by_ino[b];
			nodes.by_ino[b] = n;
		}
		for (n = by_name[i]; n; n = next) {
			size_t b = name_bucket(n->parent->ino, n->name);

			next = n->name_next;
			n->name_next = nodes.by_name[b];
			nodes.by_name[b] = n;
		}
	}
	free(by_ino);
	free(by_name);
}

static void insert_ino(struct node *n)
{
	size_t b = ino_bucket(n->ino);

	n->ino_next = nodes.by_ino[b];
	nodes.by_ino[b] = n;
}

static void insert_name(struct node *n)
{
	size_t b = name_bucket(n->parent->ino, n->name);

	n->name_next = nodes.by_name[b];
	nodes.by_name[b] = n;
}

void node_init(void)
{
	/* clang-format off */
	static const struct {
		enum node_kind kind;
		const char *name;
	} defs[NODE_FIXED] = {{NODE_ROOT, ""},
			      {NODE_ASK, "ask"},
			      {NODE_PROCS, "procs"},
			      {NODE_QUERY, "query"},
			      {NODE_STATS, "stats"},
			      {NODE_ASK_TYPE, "q"},
			      {NODE_MAP, "map"}};
	/* clang-format on */
	size_t i;

	node_generation = (uint64_t)time(NULL);
	ghost_clear();
	memset(fixed, 0, sizeof(fixed)); /* no child list left from an earlier node_init */
	rehash();
	for (i = 0; i < NODE_FIXED; i++) {
		struct node *n = &fixed[i];

		n->ino = i + 1;
		n->kind = defs[i].kind;
		n->name = (char *)defs[i].name;
		n->parent = i ? &fixed[0] : NULL;
		if (n->ino == INO_Q)
			n->type = ROUTE_TYPE; /* its answers are questions (fs_ask) */
		insert_ino(n);
		if (i) {
			insert_name(n);
			LIST_INSERT_HEAD(&fixed[0].kids, n, sibling);
		}
	}
	nodes.next_ino = 16;
}

static bool node_fixed(const struct node *n)
{
	return n >= fixed && n < fixed + NODE_FIXED;
}

struct node *node_by_ino(uint64_t ino)
{
	struct node *n;

	for (n = nodes.by_ino[ino_bucket(ino)]; n; n = n->ino_next)
		if (n->ino == ino)
			return n;
	return NULL;
}

struct node *node_child(struct node *parent, const char *name)
{
	struct node *n;

	for (n = nodes.by_name[name_bucket(parent->ino, name)]; n; n = n->name_next)
		if (n->parent == parent && !strcmp(n->name, name))
			return n;
	return NULL;
}

/* Find or create; a new node takes back the number of its ghost (ghost_claim): one
 * of the same parent, name and kind, for the store file @backing on @dev born at
 * @born_ns (0, 0, 0: no file). */
static struct node *lookup_child(struct node *parent, const char *name, enum node_kind kind,
				 uint64_t backing, uint64_t dev, int64_t born_ns)
{
	struct node *n = node_child(parent, name);

	if (n && n->kind != kind) {
		/* A procs entry that changed from file to directory keeps its ino; any other
		 * kind change means the old node is stale. */
		node_detach(n);
		n = NULL;
	}
	if (!n) {
		uint64_t ino = ghost_kind(kind)
				   ? ghost_claim(parent->ino, name, kind, backing, dev, born_ns)
				   : 0;

		n = xcalloc(1, sizeof(*n));
		n->ino = ino ? ino : nodes.next_ino++;
		n->kind = kind;
		n->parent = parent;
		parent->children++;
		LIST_INSERT_HEAD(&parent->kids, n, sibling);
		n->name = xstrdup(name);
		if (kind == NODE_ASK_TYPE || kind == NODE_QUERY_TYPE || kind == NODE_PROCS_TYPE ||
		    kind == NODE_MAP_TYPE) {
			n->type_owned = xstrdup(name);
			n->type = n->type_owned;
		} else if (kind != NODE_PFILE) {
			/* Borrowed: an answer's parent is its ASK_TYPE (or q/), which
			 * outlives it and is never renamed.  A procs entry borrows nothing:
			 * it can move to another type and outlive the type it was looked
			 * up in (node_type walks up instead). */
			n->type = parent->type;
		}
		if (nodes.count + 1 > nodes.nbuckets)
			rehash();
		insert_ino(n);
		insert_name(n);
		nodes.count++;
	}
	n->nlookup++;
	return n;
}

struct node *node_lookup_child(struct node *parent, const char *name, enum node_kind kind)
{
	return lookup_child(parent, name, kind, 0, 0, 0);
}

struct node *node_lookup_file(struct node *parent, const char *name, const struct stat *st,
			      int64_t born_ns)
{
	struct node *n = lookup_child(parent, name, NODE_PFILE, st->st_ino, st->st_dev, born_ns);

	node_set_backing(n, (uint64_t)st->st_ino, (uint64_t)st->st_dev, born_ns);
	return n;
}

static void unlink_name(struct node *n)
{
	struct node **p = &nodes.by_name[name_bucket(n->parent->ino, n->name)];

	while (*p && *p != n)
		p = &(*p)->name_next;
	if (*p)
		*p = n->name_next;
	n->name_next = NULL;
}

/* Type directories are few and NFS clients keep handles to them: keep them while
 * they have a name, so LOOKUP(ino, ".") answers rather than ESTALE.  Only the
 * store's types, though: with an LLM every name is a type one may ask, and a
 * node kept for each name anyone looked up would grow without bound (a loop of
 * stat query/T$i); the others go once the kernel forgets them. */
static bool node_kept(const struct node *n)
{
	return !n->unlinked &&
	       (n->kind == NODE_PROCS_TYPE ||
		((n->kind == NODE_ASK_TYPE || n->kind == NODE_QUERY_TYPE) && n->stored));
}

/*
 * Free @n, then its parents, while nothing holds them: no lookup the kernel may
 * still use (nlookup), no child (its path runs through @n), no request that
 * dropped node_lock for store I/O (pins).  This is the one place nodes die, so
 * a pinned node and its parent chain stay valid across the unlocked I/O.
 */
static void node_free_if_unused(struct node *n)
{
	while (n && !node_fixed(n) && n->nlookup == 0 && n->children == 0 && n->pins == 0 &&
	       !node_kept(n)) {
		struct node *parent = n->parent, **p;

		if (!n->unlinked) {
			/* Still named: an NFS handle to it may come back (ghost.h). */
			if (ghost_kind(n->kind))
				ghost_add(n);
			unlink_name(n);
		}
		LIST_REMOVE(n, sibling);
		for (p = &nodes.by_ino[ino_bucket(n->ino)]; *p != n; p = &(*p)->ino_next)
			;
		*p = n->ino_next;
		nodes.count--;
		free(n->name);
		free(n->type_owned);
		free(n->input);
		free(n);
		parent->children--;
		n = parent;
	}
}

void node_type_answered(uint64_t ino)
{
	struct node *n;

	pthread_mutex_lock(&node_lock);
	n = node_by_ino(ino);
	if (n && (n->kind == NODE_ASK_TYPE || n->kind == NODE_QUERY_TYPE))
		n->stored = true;
	pthread_mutex_unlock(&node_lock);
}

void node_forget(struct node *n, uint64_t count)
{
	if (node_fixed(n))
		return;
	n->nlookup = count > n->nlookup ? 0 : n->nlookup - count;
	node_free_if_unused(n);
}

void node_pin(struct node *n)
{
	n->pins++;
}

void node_unpin(struct node *n)
{
	n->pins--;
	node_free_if_unused(n);
}

uint64_t node_epoch(void)
{
	return nodes.epoch;
}

/* The same st_ino on the same st_dev, and the same birth time when both are known:
 * a deleted file's st_ino may go to the next new file (ext4). */
static bool node_same_file(const struct node *n, uint64_t backing, uint64_t dev, int64_t born)
{
	return n->backing == backing && n->backing_dev == dev &&
	       (!born || !n->backing_born || n->backing_born == born);
}

void node_set_backing(struct node *n, uint64_t backing, uint64_t dev, int64_t born)
{
	/* A first backing (a new node) changes what no one has seen. */
	if (n->backing && !node_same_file(n, backing, dev, born))
		nodes.epoch++;
	n->backing = backing;
	n->backing_dev = dev;
	n->backing_born = born;
}

bool node_is_backing(const struct node *n, const struct stat *st, int64_t born)
{
	return n->backing && node_same_file(n, (uint64_t)st->st_ino, (uint64_t)st->st_dev, born);
}

void node_detach(struct node *n)
{
	if (node_fixed(n) || n->unlinked)
		return;
	nodes.epoch++;
	unlink_name(n);
	n->unlinked = true;
	node_free_if_unused(n);
}

void node_move(struct node *n, struct node *parent, const char *name)
{
	struct node *old_parent = n->parent;
	char *copy = xstrdup(name);

	nodes.epoch++;
	if (!n->unlinked)
		unlink_name(n);
	free(n->name);
	n->name = copy;
	n->parent = parent;
	parent->children++;
	LIST_REMOVE(n, sibling);
	LIST_INSERT_HEAD(&parent->kids, n, sibling);
	n->unlinked = false;
	if (n->kind == NODE_PROCS_TYPE) {
		free(n->type_owned);
		n->type_owned = xstrdup(name);
		n->type = n->type_owned;
	}
	insert_name(n);
	old_parent->children--;
	node_free_if_unused(old_parent);
}

void node_exchange(struct node *a, struct node *b)
{
	struct node *pa = a->parent;
	char *name = a->name, *type = a->type_owned;

	if (a == b)
		return;
	nodes.epoch++;
	if (!a->unlinked)
		unlink_name(a);
	if (!b->unlinked)
		unlink_name(b);
	if (a->parent != b->parent) {
		LIST_REMOVE(a, sibling);
		LIST_REMOVE(b, sibling);
		LIST_INSERT_HEAD(&b->parent->kids, a, sibling);
		LIST_INSERT_HEAD(&pa->kids, b, sibling);
	}
	/* Each parent keeps one child: the counts do not change. */
	a->name = b->name;
	a->parent = b->parent;
	b->name = name;
	b->parent = pa;
	a->unlinked = b->unlinked = false;
	if (a->kind == NODE_PROCS_TYPE && b->kind == NODE_PROCS_TYPE) {
		/* A type directory's type is its name. */
		a->type_owned = b->type_owned;
		b->type_owned = type;
		a->type = a->type_owned;
		b->type = b->type_owned;
	}
	insert_name(a);
	insert_name(b);
}

int node_store_path(const struct node *node, struct buf *out)
{
	const struct node *chain[NODE_DEPTH_MAX];
	const struct node *n;
	size_t depth = 0;

	for (n = node; n && n->kind == NODE_PFILE; n = n->parent) {
		/* Deeper than any real procedure tree: no path at all.  A made-up
		 * one would be a name someone can create, and serve their file. */
		if (depth == NODE_DEPTH_MAX)
			return -ENAMETOOLONG;
		chain[depth++] = n;
	}
	if (n && n->kind == NODE_PROCS)
		buf_adds(out, "procs"); /* a dot entry at the top of procs/, such as .git */
	else
		store_type_dir(node_type(node), out);
	while (depth--) {
		buf_addc(out, '/');
		buf_adds(out, chain[depth]->name);
	}
	return 0;
}

int node_store_child_path(const struct node *parent, const char *name, struct buf *out)
{
	const struct node *n;
	size_t depth = 1; /* the child */
	int ret;

	for (n = parent; n && n->kind == NODE_PFILE; n = n->parent)
		if (++depth > NODE_DEPTH_MAX)
			return -ENAMETOOLONG;
	ret = node_store_path(parent, out);
	if (!ret) {
		buf_addc(out, '/');
		buf_adds(out, name);
	}
	return ret;
}

const char *node_type(const struct node *n)
{
	/* Walk up: a procs entry may have been renamed into another type.  Below a
	 * dot entry at the top of procs/ (.git), that entry's name stands for the
	 * type: it names no procedure, so nothing is revalidated for it. */
	while (n && n->kind == NODE_PFILE) {
		if (n->parent && n->parent->kind == NODE_PROCS)
			return n->name;
		n = n->parent;
	}
	return n ? n->type : NULL;
}

void node_foreach_child(struct node *parent, void (*fn)(struct node *child, void *arg), void *arg)
{
	struct node *n;

	for (n = LIST_FIRST(&parent->kids); n; n = LIST_NEXT(n, sibling))
		if (!n->unlinked)
			fn(n, arg);
}

size_t node_count(void)
{
	return nodes.count;
}

void node_shutdown(void)
{
	size_t i;

	for (i = 0; i < nodes.nbuckets; i++) {
		struct node *n, *next;

		for (n = nodes.by_ino[i]; n; n = next) {
			next = n->ino_next;
			if (node_fixed(n))
				continue;
			free(n->name);
			free(n->type_owned);
			free(n->input);
			free(n);
		}
	}
	free(nodes.by_ino);
	free(nodes.by_name);
	memset(&nodes, 0, sizeof(nodes));
	ghost_clear();
}
