/* ghost: inode numbers of forgotten nodes, for NFS handles; see ghost.h. */
#include "ghost.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "hmap.h"
#include "xalloc.h"

struct ghost {
	uint64_t ino, parent, backing, dev;
	int64_t born; /* the store file's birth time (node.h backing_born) */
	enum node_kind kind;
	size_t ring; /* its place in ghosts.ring */
	char name[];
};

struct ghost_key {
	uint64_t parent;
	enum node_kind kind;
	const char *name;
};

static bool ghost_ino_eq(const void *item, const void *key)
{
	return ((const struct ghost *)item)->ino == *(const uint64_t *)key;
}

static bool ghost_key_eq(const void *item, const void *key)
{
	const struct ghost *g = item;
	const struct ghost_key *k = key;

	return g->parent == k->parent && g->kind == k->kind && !strcmp(g->name, k->name);
}

/*
 * All under node_lock.  The ring holds the ghosts in the order they were made
 * (NULL where one was claimed): the next one made replaces the oldest, so memory
 * stays bounded however many names are looked up and forgotten.
 */
static struct {
	struct hmap by_ino, by_key;
	struct ghost **ring;
	size_t next;
} ghosts = {.by_ino = HMAP_INIT(ghost_ino_eq), .by_key = HMAP_INIT(ghost_key_eq)};

static uint64_t ino_hash(uint64_t ino)
{
	return XXH3_64bits(&ino, sizeof(ino));
}

static uint64_t key_hash(const struct ghost_key *k)
{
	return XXH3_64bits_withSeed(k->name, strlen(k->name), k->parent * 16 + (uint64_t)k->kind);
}

/* Take @g out of both maps and the ring, and free it. */
static void ghost_drop(struct ghost *g)
{
	struct ghost_key k = {g->parent, g->kind, g->name};

	hmap_remove(&ghosts.by_ino, ino_hash(g->ino), &g->ino);
	hmap_remove(&ghosts.by_key, key_hash(&k), &k);
	ghosts.ring[g->ring] = NULL;
	free(g);
}

void ghost_add(const struct node *n)
{
	size_t len = strlen(n->name);
	struct ghost *g, *old;
	struct ghost_key k = {n->parent->ino, n->kind, n->name};

	if (!ghosts.ring)
		ghosts.ring = xcalloc(GHOST_MAX, sizeof(*ghosts.ring));
	/* One ghost per name: an older one stood for a file that has left it. */
	old = hmap_find(&ghosts.by_key, key_hash(&k), &k);
	if (old)
		ghost_drop(old);
	if (ghosts.ring[ghosts.next])
		ghost_drop(ghosts.ring[ghosts.next]);
	g = xmalloc(sizeof(*g) + len + 1);
	g->ino = n->ino;
	g->parent = n->parent->ino;
	g->backing = n->backing;
	g->dev = n->backing_dev;
	g->kind = n->kind;
	g->born = n->backing_born;
	g->ring = ghosts.next;
	memcpy(g->name, n->name, len + 1);
	ghosts.ring[ghosts.next] = g;
	ghosts.next = (ghosts.next + 1) % GHOST_MAX;
	hmap_insert(&ghosts.by_ino, ino_hash(g->ino), g);
	k.name = g->name;
	hmap_insert(&ghosts.by_key, key_hash(&k), g);
}

uint64_t ghost_claim(uint64_t parent, const char *name, enum node_kind kind, uint64_t backing,
		     uint64_t dev, int64_t born_ns)
{
	struct ghost_key k = {parent, kind, name};
	struct ghost *g;
	uint64_t ino = 0;

	if (!hmap_count(&ghosts.by_key))
		return 0;
	g = hmap_find(&ghosts.by_key, key_hash(&k), &k);
	if (!g)
		return 0;
	/* Another file behind the name (replaced while forgotten): a new number, so
	 * the old one's handles get ESTALE rather than this file.  Its st_ino alone
	 * does not tell (a deleted file's number goes to the next new one), the
	 * birth time with it does; no birth time, no telling: no number. */
	if (kind == NODE_ANSWER ||
	    (g->backing == backing && g->dev == dev && born_ns && g->born == born_ns))
		ino = g->ino;
	ghost_drop(g);
	return ino;
}

void ghost_forget(uint64_t ino)
{
	struct ghost *g = hmap_find(&ghosts.by_ino, ino_hash(ino), &ino);

	if (g)
		ghost_drop(g);
}

int ghost_find(uint64_t ino, struct ghost_of *out)
{
	const struct ghost *g = hmap_find(&ghosts.by_ino, ino_hash(ino), &ino);

	if (!g)
		return -ESTALE;
	out->parent = g->parent;
	out->kind = g->kind;
	buf_adds(&out->name, g->name);
	return 0;
}

size_t ghost_count(void)
{
	return hmap_count(&ghosts.by_ino);
}

void ghost_clear(void)
{
	size_t i;

	if (ghosts.ring)
		for (i = 0; i < GHOST_MAX; i++)
			free(ghosts.ring[i]);
	free(ghosts.ring);
	hmap_destroy(&ghosts.by_ino, NULL);
	hmap_destroy(&ghosts.by_key, NULL);
	ghosts.ring = NULL;
	ghosts.next = 0;
}
