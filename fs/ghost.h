/*
 * ghost: the inode numbers of nodes the kernel forgot, so NFS handles to them
 * still resolve.
 *
 * An NFS server keeps a file handle (the inode number) long after the kernel has
 * forgotten the inode; to serve it again the kernel asks LOOKUP(ino, ".").  A
 * procs/ file or an answer the kernel forgot has no node any more (node.c frees
 * it), so it remembers a ghost instead: the number, the parent's number, the name
 * and, for a procs/ file, which store file it stood for.  A new node of
 * the same parent, name and kind (and store file) takes the ghost's number back, whether the
 * kernel's handle or anyone's lookup by name made it: a number stands for one object for the life
 * of the daemon, as on a local filesystem.
 *
 * Bounded: the last GHOST_MAX forgotten nodes (about 100 bytes each).  Everything
 * here is under node_lock.
 */
#ifndef SEGLAM_GHOST_H
#define SEGLAM_GHOST_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "node.h"

#define GHOST_MAX 16384

/* The kinds that leave a ghost: procs/ files and directories, and answers. */
static inline bool ghost_kind(enum node_kind kind)
{
	return kind == NODE_PFILE || kind == NODE_ANSWER;
}

/* What a ghost remembers of a node (ghost_find). */
struct ghost_of {
	uint64_t parent;
	enum node_kind kind;
	struct buf name;
};

/* Remember forgotten @node (still named: not unlinked). */
void ghost_add(const struct node *node);
/*
 * The number a new child @name of kind @kind of @parent had, and the ghost is
 * dropped; else 0.  For a procs/ file, only if it is the same store file: st_ino
 * @backing on @dev, birth time @born_ns (store_lstat_born), as the node had.  A
 * store whose filesystem reports no birth times (an NFS mount may not) gets no
 * number back: ESTALE, as before ghosts.
 */
uint64_t ghost_claim(uint64_t parent, const char *name, enum node_kind kind, uint64_t backing,
		     uint64_t dev, int64_t born_ns);
/* Forget the ghost of @ino, if any: its name holds no such file any more. */
void ghost_forget(uint64_t ino);
/* What forgotten inode @ino was, into @out (its name appended): 0, or -ESTALE. */
int ghost_find(uint64_t ino, struct ghost_of *out);
size_t ghost_count(void);
void ghost_clear(void);

#endif
