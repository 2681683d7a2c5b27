/*
 * node: the inode table of the mount.
 *
 * Every object the kernel knows has a node: fixed ones (root, ask/, procs/,
 * query/, stats) and dynamic ones (ask/TYPE, ask/TYPE/INPUT, query/TYPE,
 * procs/TYPE and everything below it).  Inode numbers come from a counter and
 * never stand for another object while the daemon lives (a forgotten file or
 * answer may get its own back: ghost.h); the generation is the mount's start
 * time, so NFS handles from an earlier run are refused with ESTALE rather than
 * resolved to something else.
 *
 * Lifetime: a node lives while the kernel holds lookups on it (nlookup, dropped
 * by FORGET), while it has children (a child's path is computed through its
 * parent chain), or while a request that dropped node_lock pins it (pins).
 * Fixed nodes live forever.
 *
 * node_lock protects the table and every field of every node (below).  Nothing
 * holds it across store I/O (lstat, open, readdir of STORE): on an NFS store each
 * is a network round trip, and every FUSE request needs node_lock.  A request
 * that must stat the store for a node copies the path out, pins the node
 * (node_pin), drops the lock, does the I/O, retakes the lock and then publishes,
 * re-checking what may have moved meanwhile (node_epoch; see lookup_store_child
 * and attr_store).
 */
#ifndef SEGLAM_NODE_H
#define SEGLAM_NODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/stat.h>

#include "buf.h"

enum node_kind {
	NODE_ROOT,
	NODE_ASK,	 /* ask/ */
	NODE_PROCS,	 /* procs/ */
	NODE_QUERY,	 /* query/ */
	NODE_STATS,	 /* stats */
	NODE_ASK_TYPE,	 /* ask/TYPE/ */
	NODE_ANSWER,	 /* ask/TYPE/INPUT */
	NODE_QUERY_TYPE, /* query/TYPE */
	NODE_PROCS_TYPE, /* procs/TYPE/ */
	NODE_PFILE,	 /* anything below procs/TYPE/ */
	NODE_MAP,	 /* map/ */
	NODE_MAP_TYPE,	 /* map/TYPE */
};

#define INO_ROOT 1
#define INO_ASK 2
#define INO_PROCS 3
#define INO_QUERY 4
#define INO_STATS 5
#define INO_Q 6 /* q/: an ASK_TYPE directory of the pseudo type ROUTE_TYPE */
#define INO_MAP 7

struct pfile;

/* Every field: node_lock. */
struct node {
	uint64_t ino;
	uint64_t nlookup;
	unsigned children; /* nodes whose parent this is, named or unlinked (= kids) */
	unsigned pins;	   /* requests using the node with node_lock dropped */
	enum node_kind kind;
	struct node *parent;
	char *name;
	/* Type of an ask/, query/, map/ node (ASK_TYPE, QUERY_TYPE, MAP_TYPE: type_owned;
	 * ANSWER: its parent's).  NULL on NODE_PFILE, which moves between types:
	 * node_type() finds its type through its parents. */
	const char *type;
	char *type_owned; /* set on ASK_TYPE, QUERY_TYPE and PROCS_TYPE nodes */
	/* NODE_ANSWER: the decoded input. */
	char *input;
	size_t inlen;
	/* NODE_ANSWER, what the kernel may hold (see answer_open_mode in ask.c): the
	 * size every attribute reply so far carried, and the version of the answer
	 * whose pages page-cache handles may have filled. */
	size_t told_size;
	bool told, told_differs;
	uint64_t page_version;
	unsigned page_opens;
	bool unlinked; /* removed from the name table: a deleted or replaced entry */
	bool stored;   /* ASK_TYPE, QUERY_TYPE: in the store at its last lookup (node_kept) */
	/* NODE_PFILE: st_ino and st_dev of the store file it stands for (at LOOKUP, or
	 * its last save through the mount); the name may hold another by now. */
	uint64_t backing, backing_dev;
	int64_t backing_born; /* its birth time (store_lstat_born), 0: unknown */
	struct pfile *writer; /* NODE_PFILE open with unsaved writes, for getattr */
	struct node *ino_next, *name_next;
	/* The children, so that a type's answers are found without a scan of the
	 * whole table (inval.c, on every change of the type). */
	LIST_HEAD(node_kids, node) kids;
	LIST_ENTRY(node) sibling;
};

extern pthread_mutex_t node_lock;
extern uint64_t node_generation;

void node_init(void);
void node_shutdown(void);
/* Under node_lock. */
struct node *node_by_ino(uint64_t ino);
struct node *node_child(struct node *parent, const char *name);
/* Find or create the child, and count one lookup. Under node_lock. */
struct node *node_lookup_child(struct node *parent, const char *name, enum node_kind kind);
/* The same for a NODE_PFILE child that stands for the store file @st now, made at
 * @born_ns (store_lstat_born). */
struct node *node_lookup_file(struct node *parent, const char *name, const struct stat *st,
			      int64_t born_ns);
/* Drop @n lookups; frees the node when unused. Under node_lock. */
void node_forget(struct node *node, uint64_t n);
/* Keep @node (and its parents) alive while node_lock is dropped for store I/O;
 * node_unpin frees it if nothing else holds it. Under node_lock. */
void node_pin(struct node *node);
void node_unpin(struct node *node);
/* A counter that moves whenever a name stops standing for what it stood for
 * (detach, move, exchange, a new backing file): a request that dropped node_lock
 * for store I/O compares it to know whether its result may be stale. Under node_lock. */
uint64_t node_epoch(void);
/* NODE_PFILE @node now stands for the store file with st_ino @backing on st_dev
 * @dev, born at @born (0: unknown). Under node_lock. */
void node_set_backing(struct node *node, uint64_t backing, uint64_t dev, int64_t born);
/* Is that the file @st describes, born at @born (0: unknown)?  (A node with no
 * backing stands for no file.) */
bool node_is_backing(const struct node *node, const struct stat *st, int64_t born);
/* The ask/ or query/ type node @ino has answered: its type is in the store now
 * (a synthesis after its lookup made it), so the node is kept as one found there
 * (node_kept).  Takes node_lock. */
void node_type_answered(uint64_t ino);
/* Remove from the name table (unlink, rename target). Under node_lock. */
void node_detach(struct node *node);
/* Move to a new parent/name (rename). Under node_lock. */
void node_move(struct node *node, struct node *parent, const char *name);
/* RENAME_EXCHANGE: @a takes @b's parent and name and @b takes @a's, so that each
 * node goes on naming the object it named (a held directory must never resolve
 * to what was swapped in under its old name). */
void node_exchange(struct node *a, struct node *b);
/* Procs entries below a type directory (or a dot entry of procs/) have a store
 * path down to this depth; deeper ones are refused (-ENAMETOOLONG). */
#define NODE_DEPTH_MAX 256
/* Store-relative path of a procs node ("procs/ab/cd/TYPE/tests/x.in") appended to
 * @out: 0, or -ENAMETOOLONG past NODE_DEPTH_MAX. Under node_lock. */
int node_store_path(const struct node *node, struct buf *out);
/* The same for @parent's child @name, which need not have a node yet. */
int node_store_child_path(const struct node *parent, const char *name, struct buf *out);
/* The type a node belongs to (NULL for fixed nodes). Under node_lock. */
const char *node_type(const struct node *node);
/* Call @fn for each child of @parent still in the name table (not a scan of the
 * table: the parent's own list); @fn must not add or free nodes. Under node_lock. */
void node_foreach_child(struct node *parent, void (*fn)(struct node *child, void *arg), void *arg);
size_t node_count(void);

#endif
