/*
 * test_ghost: fs/ghost, the inode numbers of nodes the kernel forgot.
 *
 * A forgotten file is found by its number (what an NFS handle carries) and gives
 * its number back to a new node of the same parent, name, kind and store file
 * (st_ino, st_dev and birth time), once; another file under the name gets none,
 * nor does a new file with the same st_ino (a number the filesystem recycled:
 * another birth time), nor any file of a store without birth times.  One ghost
 * per name (the newer wins).  The table keeps the last GHOST_MAX: 20,000
 * forgotten nodes leave GHOST_MAX ghosts, the oldest gone, and a claimed one's
 * place is reused.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ghost.h"
#include "tap.h"

/* The birth time the tests give the store file with st_ino @b. */
#define BORN(b) (1700000000000000000ll + (int64_t)(b))

static struct node dir = {.ino = 10, .kind = NODE_PROCS_TYPE};

/* A named node under dir, forgotten: its ghost.  A file (@backing) is on st_dev
 * 7, born at @born. */
static void forget_born(uint64_t ino, const char *name, enum node_kind kind, uint64_t backing,
			int64_t born)
{
	struct node n = {.ino = ino,
			 .kind = kind,
			 .parent = &dir,
			 .name = (char *)name,
			 .backing = backing,
			 .backing_dev = backing ? 7 : 0,
			 .backing_born = born};

	ghost_add(&n);
}

static void forget(uint64_t ino, const char *name, enum node_kind kind, uint64_t backing)
{
	forget_born(ino, name, kind, backing, backing ? BORN(backing) : 0);
}

/* A new node of file @backing under dir claims the name. */
static uint64_t claim(const char *name, uint64_t backing)
{
	return ghost_claim(dir.ino, name, NODE_PFILE, backing, 7, BORN(backing));
}

static bool found(uint64_t ino, const char *name)
{
	struct ghost_of g = {.name = BUF_INIT};
	bool ok = !ghost_find(ino, &g) && g.parent == dir.ino && !strcmp(buf_str(&g.name), name);

	buf_free(&g.name);
	return ok;
}

int main(void)
{
	struct ghost_of g = {.name = BUF_INIT};
	char name[32];
	unsigned i;

	forget(100, "source.c", NODE_PFILE, 555);
	forget(101, "hello", NODE_ANSWER, 0);
	CHECK(found(100, "source.c") && found(101, "hello"),
	      "a forgotten file and answer are found by number");
	CHECK(ghost_find(102, &g) == -ESTALE, "a number never forgotten: ESTALE");
	CHECK(ghost_claim(dir.ino, "source.c", NODE_ANSWER, 0, 0, 0) == 0,
	      "a name of another kind gets no number");
	CHECK(claim("source.c", 555) == 100,
	      "the same parent, name, kind and file get the number back");
	CHECK(claim("source.c", 555) == 0 && !found(100, "source.c"),
	      "once: the ghost is gone after its claim");
	CHECK(ghost_claim(dir.ino, "hello", NODE_ANSWER, 0, 0, 0) == 101,
	      "an answer gets its number back");

	forget(150, "recycled", NODE_PFILE, 9);
	CHECK(ghost_claim(dir.ino, "recycled", NODE_PFILE, 9, 7, BORN(9) + 1) == 0 &&
		  !found(150, "recycled"),
	      "a new file with the old st_ino (recycled: another birth time) gets no number");
	forget(152, "other-dev", NODE_PFILE, 9);
	CHECK(ghost_claim(dir.ino, "other-dev", NODE_PFILE, 9, 8, BORN(9)) == 0,
	      "the same st_ino on another st_dev gets no number");
	forget_born(153, "no-birth", NODE_PFILE, 9, 0);
	CHECK(ghost_claim(dir.ino, "no-birth", NODE_PFILE, 9, 7, 0) == 0,
	      "a store without birth times (NFS) gets no number: ESTALE, as before ghosts");
	forget(151, "kept", NODE_PFILE, 9);
	ghost_forget(151);
	CHECK(!found(151, "kept") && claim("kept", 9) == 0, "a forgotten ghost is gone");
	ghost_forget(151); /* twice: nothing to do */

	forget(200, "notes", NODE_PFILE, 1);
	CHECK(claim("notes", 2) == 0 && !found(200, "notes"),
	      "another file under the name: no number, and the ghost is dropped");
	forget(201, "x", NODE_PFILE, 1);
	forget(202, "x", NODE_PFILE, 2);
	CHECK(!found(201, "x") && found(202, "x") && ghost_count() == 1,
	      "one ghost per name: the newer wins (count %zu)", ghost_count());
	ghost_clear();
	CHECK(ghost_count() == 0 && !found(202, "x"), "clear forgets every ghost");

	for (i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "f%u", i);
		forget(1000 + i, name, NODE_PFILE, i + 1);
	}
	CHECK(ghost_count() == GHOST_MAX, "20000 forgotten: the last %d kept (%zu)", GHOST_MAX,
	      ghost_count());
	CHECK(!found(1000, "f0") && !found(1000 + 20000 - GHOST_MAX - 1, "f3615"),
	      "the oldest are gone");
	snprintf(name, sizeof(name), "f%u", 20000 - GHOST_MAX);
	CHECK(found(1000 + 20000 - GHOST_MAX, name) && found(1000 + 19999, "f19999"),
	      "the last GHOST_MAX are there");
	CHECK(claim("f19999", 20000) == 1000 + 19999, "a recent one is claimed");
	for (i = 0; i < GHOST_MAX; i++) {
		snprintf(name, sizeof(name), "g%u", i);
		forget(100000 + i, name, NODE_PFILE, 1);
	}
	CHECK(ghost_count() == GHOST_MAX && found(100000, "g0") && !found(1000 + 19998, "f19998"),
	      "another GHOST_MAX replace them all, claimed places too (%zu)", ghost_count());
	ghost_clear();
	buf_free(&g.name);
	return tap_done();
}
