/* test_core: unit tests of name decoding, buffers, atomic writes, the store layout
 * and the answer memo. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "answer.h"
#include "atomic.h"
#include "beneath.h"
#include "buf.h"
#include "clock.h"
#include "ghost.h"
#include "name.h"
#include "node.h"
#include "store.h"
#include "store_edit.h"
#include "tap.h"
#include "xalloc.h"

static int decodes_to(const char *name, const char *want, size_t wantlen)
{
	struct buf b = BUF_INIT;
	int ok;

	name_decode(name, strlen(name), &b);
	ok = b.len == wantlen && !memcmp(buf_str(&b), want, wantlen);
	if (!ok)
		printf("# decode(%s) gave '%s' (%zu bytes)\n", name, buf_str(&b), b.len);
	buf_free(&b);
	return ok;
}

static void test_name(void)
{
	CHECK(decodes_to("MCMXCIV", "MCMXCIV", 7), "plain name is the input");
	CHECK(decodes_to("a%2Fb", "a/b", 3), "%%2F is a slash");
	CHECK(decodes_to("a%2fb", "a/b", 3), "lowercase hex");
	CHECK(decodes_to("100%25", "100%", 4), "%%25 is a percent");
	CHECK(decodes_to("100%", "100%", 4), "trailing %% stands for itself");
	CHECK(decodes_to("%4", "%4", 2), "%% with one digit stands for itself");
	CHECK(decodes_to("%zz", "%zz", 3), "%% with non-hex stands for itself");
	CHECK(decodes_to("%00x", "\0x", 2), "%%00 gives a NUL byte");
	CHECK(decodes_to("", "", 0), "empty name");
	CHECK(decodes_to("%%41", "%A", 2), "%%%% then %%41");
}

static void test_buf(void)
{
	struct buf b = BUF_INIT;
	int i;

	CHECK(!strcmp(buf_str(&b), ""), "empty buffer is an empty string");
	for (i = 0; i < 10000; i++)
		buf_printf(&b, "%d,", i);
	CHECK(b.len == strlen(b.data), "printf appends keep NUL termination");
	buf_truncate(&b, 3);
	CHECK(!strcmp(b.data, "0,1"), "truncate");
	buf_add(&b, "\0z", 2);
	CHECK(b.len == 5 && b.data[3] == '\0' && b.data[4] == 'z', "binary data");
	buf_reset(&b);
	buf_addquoted(&b, "a'b\\\n\t\x01\xc3\xa9", 9, 100);
	CHECK(!strcmp(b.data, "'a\\'b\\\\\\n\\t\\x01\xc3\xa9'"),
	      "addquoted escapes quotes, backslash, control bytes; keeps UTF-8");
	buf_reset(&b);
	buf_addquoted(&b, "abcdef", 6, 3);
	CHECK(!strcmp(b.data, "'abc'... (6 bytes)"), "addquoted cuts at max and says how long");
	buf_free(&b);
}

static void test_toolkit(void)
{
	char *s = xstrdup("hello"), *t = xstrndup("hello", 3), *u = xasprintf("%s-%d", s, 7);
	int *v = xcalloc(4, sizeof(*v));
	uint64_t m0 = clock_mono_ns(), m1 = clock_mono_ns();

	CHECK(!strcmp(s, "hello") && !strcmp(t, "hel") && !strcmp(u, "hello-7"),
	      "xstrdup, xstrndup, xasprintf");
	CHECK(!v[0] && !v[3], "xcalloc zeroes");
	v = xreallocarray(v, 1000, sizeof(*v));
	v[999] = 1;
	CHECK(v[999] == 1, "xreallocarray grows");
	CHECK(m1 >= m0 && clock_real_ns() > 1500000000ull * 1000000000ull,
	      "monotonic clock does not go back; real clock is after 2017");
	free(s);
	free(t);
	free(u);
	free(v);
}

static void test_atomic(void)
{
	char dir[] = "/tmp/seglam-test-XXXXXX";
	struct buf b = BUF_INIT, name = BUF_INIT;
	int fd;

	if (!mkdtemp(dir)) {
		CHECK(0, "mkdtemp");
		return;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	CHECK(atomic_write(fd, "f", "hello", 5, 0644) == 0, "atomic write");
	CHECK(file_read_all(fd, "f", 100, &b) == 0 && !strcmp(b.data, "hello"), "read back");
	buf_reset(&b);
	CHECK(file_read_all(fd, "f", 3, &b) == -EFBIG, "read cap gives EFBIG");
	CHECK(file_read_all(fd, "missing", 3, &b) == -ENOENT, "missing file gives ENOENT");
	atomic_tmpname(&name);
	CHECK(atomic_is_tmpname(name.data), "temp names are recognised");
	CHECK(!atomic_tmp_is_stale(name.data), "our own temp file is not stale");
	{
		const char *f = name.data + strlen(ATOMIC_TMP_PREFIX);
		int dots = 0;

		for (; *f; f++)
			dots += *f == '.';
		/* HOST.PID.START.N where /proc tells when this process started */
		CHECK(dots == (access("/proc/self/stat", R_OK) == 0 ? 3 : 2),
		      "a temp name holds its writer's start");
	}
	CHECK(atomic_tmp_is_stale(".seglam-tmp.nohost"), "malformed temp name is litter");
	buf_reset(&name);
	{
		char host[64] = "";

		gethostname(host, sizeof(host) - 1);
		if (strchr(host, '.'))
			*strchr(host, '.') = '\0';
		buf_printf(&name, ".seglam-tmp.%s.999999999.1", host);
		CHECK(atomic_tmp_is_stale(name.data), "temp file of a dead pid is stale");
		buf_reset(&name);
		buf_printf(&name, ".seglam-tmp.otherhost%s.1.1", host);
		CHECK(!atomic_tmp_is_stale(name.data), "other host's temp file is left alone");
		/* pid 1 lives, but it did not start at tick 999999999999: a process
		 * that once had its pid wrote this */
		buf_reset(&name);
		buf_printf(&name, ".seglam-tmp.%s.1.999999999999.1", host);
		CHECK(atomic_tmp_is_stale(name.data), "temp file of a reused pid is stale");
		buf_reset(&name);
		buf_printf(&name, ".seglam-tmp.%s.%ld.999999999999.1", host, (long)getpid());
		CHECK(atomic_tmp_is_stale(name.data), "an earlier process with our pid is stale");
		buf_reset(&name);
		buf_printf(&name, ".seglam-tmp.%s.1.7", host);
		CHECK(!atomic_tmp_is_stale(name.data), "a live pid without a start is left alone");
	}
	CHECK(!atomic_is_tmpname("source.c"), "source.c is not a temp name");
	unlinkat(fd, "f", 0);
	close(fd);
	rmdir(dir);
	buf_free(&b);
	buf_free(&name);
}

/* beneath: no symlink and no ".." on the way, with openat2 and with the walk. */
static void test_beneath_mode(bool walk)
{
	char dir[] = "/tmp/seglam-test-XXXXXX", outside[] = "/tmp/seglam-test-XXXXXX";
	const char *base;
	int fd, sub, out_fd;
	struct buf b = BUF_INIT;
	struct stat st;

	if (!mkdtemp(dir) || !mkdtemp(outside)) {
		CHECK(0, "mkdtemp");
		return;
	}
	beneath_force_walk(walk);
	out_fd = open(outside, O_RDONLY | O_DIRECTORY);
	atomic_write(out_fd, "secret", "canary", 6, 0600);
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	mkdirat(fd, "a", 0755);
	mkdirat(fd, "a/b", 0755);
	atomic_write(fd, "x", "x", 1, 0644);
	symlinkat(outside, fd, "a/out");
	symlinkat("../x", fd, "a/rel");

	sub = beneath_open(fd, "a/b", O_RDONLY | O_DIRECTORY, 0);
	CHECK(sub >= 0, walk ? "walk: plain path opens" : "openat2: plain path opens");
	if (sub >= 0)
		close(sub);
	CHECK(beneath_open(fd, "a/out/secret", O_RDONLY, 0) == -ELOOP,
	      walk ? "walk: symlink on the way is ELOOP" : "openat2: symlink on the way is ELOOP");
	CHECK(beneath_open(fd, "a/out", O_RDONLY | O_DIRECTORY, 0) < 0,
	      walk ? "walk: symlink at the end refused" : "openat2: symlink at the end refused");
	CHECK(beneath_open(fd, "a/rel", O_RDONLY, 0) < 0,
	      walk ? "walk: relative symlink refused" : "openat2: relative symlink refused");
	CHECK(beneath_open(fd, "../x", O_RDONLY, 0) == -EXDEV,
	      walk ? "walk: .. out is EXDEV" : "openat2: .. out is EXDEV");
	CHECK(beneath_open(fd, "a/out/new", O_WRONLY | O_CREAT, 0644) < 0 &&
		  faccessat(out_fd, "new", F_OK, 0) != 0,
	      walk ? "walk: no create through a symlink" : "openat2: no create through a symlink");
	CHECK(file_read_all(fd, "a/out/secret", 100, &b) == -ELOOP && !b.len,
	      "file_read_all never follows a symlinked directory");
	sub = beneath_parent(fd, "a/out/secret", &base);
	CHECK(sub == -ELOOP, "beneath_parent refuses a symlinked parent");
	sub = beneath_parent(fd, "a/out", &base);
	CHECK(sub >= 0 && !strcmp(base, "out") &&
		  fstatat(sub, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode),
	      "beneath_parent gives the directory of a symlink, not its target");
	if (sub >= 0)
		close(sub);
	CHECK(beneath_parent(fd, "a/..", &base) == -EINVAL, "beneath_parent refuses ..");
	beneath_force_walk(false);
	unlinkat(fd, "a/out", 0);
	unlinkat(fd, "a/rel", 0);
	unlinkat(fd, "a/b", AT_REMOVEDIR);
	unlinkat(fd, "a", AT_REMOVEDIR);
	unlinkat(fd, "x", 0);
	unlinkat(out_fd, "secret", 0);
	close(fd);
	close(out_fd);
	rmdir(dir);
	rmdir(outside);
	buf_free(&b);
}

static void test_beneath(void)
{
	test_beneath_mode(false);
	test_beneath_mode(true);
}

static void test_store(void)
{
	char dir[] = "/tmp/seglam-store-XXXXXX";
	struct buf err = BUF_INIT, b = BUF_INIT, path = BUF_INIT;
	char big[200];

	CHECK(store_type_valid("roman-to-int", 12), "valid type");
	CHECK(store_type_valid("a.b_c+d-E9", 10), "all allowed characters");
	CHECK(!store_type_valid(".hidden", 7), "leading dot rejected");
	CHECK(!store_type_valid("a/b", 3), "slash rejected");
	CHECK(!store_type_valid("a b", 3), "space rejected");
	CHECK(!store_type_valid("", 0), "empty rejected");
	memset(big, 'a', sizeof(big));
	CHECK(store_type_valid(big, 128), "128 bytes allowed");
	CHECK(!store_type_valid(big, 129), "129 bytes rejected");
	store_type_dir("upper", &path);
	CHECK(!strncmp(path.data, "procs/", 6) && strlen(path.data) == 6 + 6 + 5 &&
		  !strcmp(path.data + 12, "upper"),
	      "type dir is procs/HH/HH/TYPE");

	if (!mkdtemp(dir)) {
		CHECK(0, "mkdtemp");
		return;
	}
	CHECK(store_open(dir, false, &err) == 0, "open initialises an empty directory");
	CHECK(store_write("upper", "tests/a.in", "x", 1) == 0, "write creates directories");
	CHECK(store_read("upper", "tests/a.in", 10, &b) == 0 && !strcmp(b.data, "x"), "read back");
	CHECK(store_type_exists("upper") && !store_type_exists("lower"), "type exists");
	CHECK(store_log("upper", "hello %d", 42) == 0, "log append");
	buf_reset(&b);
	CHECK(store_read("upper", "log", 1000, &b) == 0 && strstr(b.data, "hello 42\n"),
	      "log line");
	store_close();
	buf_reset(&err);
	CHECK(store_open(dir, true, &err) == 0, "reopen read-only");
	CHECK(store_write("upper", "x", "y", 1) == -EROFS, "read-only store refuses writes");
	store_close();
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			printf("# cleanup failed\n");
	}
	mkdtemp(strcpy(dir, "/tmp/seglam-store-XXXXXX"));
	{
		char f[300];
		FILE *fp;

		snprintf(f, sizeof(f), "%s/unrelated", dir);
		fp = fopen(f, "w");
		if (fp)
			fclose(fp);
		buf_reset(&err);
		CHECK(store_open(dir, false, &err) == -EINVAL && strstr(err.data, "not empty"),
		      "a non-empty non-store directory is refused");
		unlink(f);
		rmdir(dir);
	}
	buf_free(&err);
	buf_free(&b);
	buf_free(&path);
}

/* store_edit: shadow, commit by rename, truncate, type rename; never out of STORE. */
static void test_store_edit(void)
{
	char dir[] = "/tmp/seglam-store-XXXXXX", outside[] = "/tmp/seglam-test-XXXXXX";
	struct buf err = BUF_INIT, b = BUF_INIT, tdir = BUF_INIT, target = BUF_INIT,
		   shadow_path = BUF_INIT, cmd = BUF_INIT;
	struct stat st;
	int fd, shadow;

	if (!mkdtemp(dir) || !mkdtemp(outside)) {
		CHECK(0, "mkdtemp");
		return;
	}
	CHECK(store_open(dir, false, &err) == 0, "edit: open a new store");
	CHECK(store_write("ed", "source.c", "old data", 8) == 0, "edit: a file to edit");
	store_type_dir("ed", &tdir);
	buf_printf(&target, "%s/source.c", tdir.data);

	fd = store_open_file(target.data, O_RDONLY, 0);
	shadow = store_edit_shadow(fd, target.data, true, &shadow_path);
	CHECK(shadow >= 0 && strstr(shadow_path.data, ATOMIC_TMP_PREFIX),
	      "shadow: a temp file beside the target");
	CHECK(shadow >= 0 && pwrite(shadow, "NEW", 3, 0) == 3, "shadow takes writes");
	CHECK(store_read("ed", "source.c", 100, &b) == 0 && !strcmp(b.data, "old data"),
	      "the target is unchanged before the commit");
	CHECK(store_edit_commit(shadow, shadow_path.data, target.data, false) == 0,
	      "commit renames the shadow over the target");
	buf_reset(&b);
	CHECK(store_read("ed", "source.c", 100, &b) == 0 && !strcmp(b.data, "NEW data"),
	      "the target has the copied data with the write");
	CHECK(store_lstat(shadow_path.data, &st) == -ENOENT, "no temp file is left");
	close(shadow);
	close(fd);

	fd = store_open_file(target.data, O_RDONLY, 0);
	shadow = store_edit_shadow(fd, target.data, false, &shadow_path);
	CHECK(shadow >= 0 && store_edit_commit(shadow, shadow_path.data, target.data, true) == 0,
	      "commit of an unlinked name");
	CHECK(store_lstat(shadow_path.data, &st) == -ENOENT,
	      "an unlinked name's shadow is removed, not renamed");
	buf_reset(&b);
	CHECK(store_read("ed", "source.c", 100, &b) == 0 && !strcmp(b.data, "NEW data"),
	      "and the target is untouched");
	close(shadow);
	close(fd);

	fd = store_open_file(target.data, O_RDONLY, 0);
	shadow = store_edit_shadow(fd, target.data, false, &shadow_path);
	store_edit_discard(shadow, shadow_path.data);
	CHECK(store_lstat(shadow_path.data, &st) == -ENOENT, "discard removes the shadow");
	close(fd);

	fd = store_open_file(target.data, O_RDONLY, 0);
	CHECK(fd >= 0 && store_edit_truncate(fd, target.data, 3, NULL, NULL) == 0, "truncate");
	if (fd >= 0)
		close(fd);
	buf_reset(&b);
	CHECK(store_read("ed", "source.c", 100, &b) == 0 && !strcmp(b.data, "NEW"),
	      "truncate keeps the prefix");

	/* store_lstat_born: lstat's answer through statx, and the birth time. */
	{
		struct stat want;
		struct statx x;
		char full[PATH_MAX];
		int64_t born = -1, fd_born = -1, btime;

		snprintf(full, sizeof(full), "%s/%s", dir, target.data);
		CHECK(store_lstat_born(target.data, &st, &born) == 0 && lstat(full, &want) == 0 &&
			  st.st_dev == want.st_dev && st.st_ino == want.st_ino &&
			  st.st_mode == want.st_mode && st.st_size == want.st_size &&
			  st.st_nlink == want.st_nlink && st.st_uid == want.st_uid &&
			  st.st_mtim.tv_nsec == want.st_mtim.tv_nsec &&
			  st.st_ctim.tv_sec == want.st_ctim.tv_sec,
		      "store_lstat_born gives what lstat gives");
		statx(AT_FDCWD, full, AT_SYMLINK_NOFOLLOW, STATX_BTIME, &x);
		btime = x.stx_mask & STATX_BTIME
			    ? x.stx_btime.tv_sec * 1000000000ll + x.stx_btime.tv_nsec
			    : 0;
		fd = store_open_file(target.data, O_RDONLY, 0);
		CHECK(born == btime && !store_fstat_born(fd, &st, &fd_born) && fd_born == btime &&
			  st.st_ino == want.st_ino && st.st_dev == want.st_dev,
		      "and the birth time, by name and by fd (%lld; 0 where none is kept)",
		      (long long)born);
		if (fd >= 0)
			close(fd);
		CHECK(store_lstat_born("nosuch/x", &st, &born) == -ENOENT,
		      "store_lstat_born of nothing: ENOENT");
	}

	/* A symlinked directory in STORE: no shadow is made through it. */
	buf_printf(&cmd, "ln -s %s %s/%s/out", outside, dir, tdir.data);
	CHECK(system(cmd.data) == 0, "edit: a symlink to outside the store");
	buf_reset(&target);
	buf_printf(&target, "%s/out/x", tdir.data);
	shadow = store_edit_shadow(-1, target.data, false, &shadow_path);
	CHECK(shadow < 0, "no shadow through a symlink out of STORE");
	if (shadow >= 0)
		close(shadow);
	fd = store_open_file(target.data, O_RDONLY, 0);
	CHECK(fd < 0 || store_edit_truncate(fd, target.data, 0, NULL, NULL) < 0,
	      "no truncate through a symlink");
	if (fd >= 0)
		close(fd);

	CHECK(store_edit_rename_type("ed", "ed2", 0) == 0 && !store_type_exists("ed") &&
		  store_type_exists("ed2"),
	      "rename a type");
	CHECK(store_edit_rename_type("nosuch", "ed3", 0) == -ENOENT, "rename of no type: ENOENT");
	store_close();
	buf_reset(&cmd);
	buf_printf(&cmd, "rm -rf %s %s", dir, outside);
	if (system(cmd.data) != 0)
		printf("# cleanup failed\n");
	buf_free(&err);
	buf_free(&b);
	buf_free(&tdir);
	buf_free(&target);
	buf_free(&shadow_path);
	buf_free(&cmd);
}

static void test_memo(void)
{
	struct answer *a, *b;
	char in[32];
	int i, found = 0;

	memo_init(64 * 1024);
	a = answer_new(0, 7, "42\n", 3);
	memo_add("x", 1, a);
	b = memo_find(7, "x", 1);
	CHECK(b == a, "memo finds what was added");
	answer_put(b);
	CHECK(memo_find(8, "x", 1) == NULL, "other version misses");
	CHECK(memo_find(7, "y", 1) == NULL, "other input misses");
	answer_put(a);
	for (i = 0; i < 10000; i++) {
		snprintf(in, sizeof(in), "%d", i);
		a = answer_new(0, 1, in, strlen(in));
		memo_add(in, strlen(in), a);
		answer_put(a);
	}
	for (i = 0; i < 10000; i++) {
		snprintf(in, sizeof(in), "%d", i);
		b = memo_find(1, in, strlen(in));
		if (b) {
			found++;
			if (strcmp(b->data, in))
				found = -100000;
			answer_put(b);
		}
	}
	CHECK(found > 0 && found < 10000, "memo is bounded and keeps recent answers");
	{
		struct memo_stats st;

		memo_get_stats(&st);
		CHECK(st.bytes <= 64 * 1024, "memo bytes within its cap");
	}
	memo_shutdown();

	/* A memo large enough for all: the table grows, and every answer is found. */
	memo_init(64 << 20);
	for (i = 0; i < 50000; i++) {
		snprintf(in, sizeof(in), "in-%d", i);
		a = answer_new(0, 3, in, strlen(in));
		memo_add(in, strlen(in), a);
		answer_put(a);
	}
	found = 0;
	for (i = 0; i < 50000; i++) {
		snprintf(in, sizeof(in), "in-%d", i);
		b = memo_find(3, in, strlen(in));
		if (b && !strcmp(b->data, in))
			found++;
		answer_put(b);
	}
	CHECK(found == 50000, "memo finds all 50000 answers across table growth");
	{
		struct memo_stats st;

		memo_get_stats(&st);
		CHECK(st.entries == 50000, "memo counts its entries");
	}
	memo_shutdown();
}

/*
 * The inode table and its ghosts (fs/node.c, fs/ghost.c) together: a procs file
 * forgotten by the kernel gets its number back at the next lookup of the same
 * store file (st_ino, st_dev, birth time), and not when a new file took the
 * deleted one's st_ino (another birth time), for which a live node is not the
 * backing either.
 */
static void test_node_ghosts(void)
{
	struct stat st = {.st_ino = 4242, .st_dev = 9};
	struct node *procs, *type, *f, *g;
	uint64_t ino;

	pthread_mutex_lock(&node_lock);
	node_init();
	procs = node_by_ino(INO_PROCS);
	type = node_lookup_child(procs, "ty", NODE_PROCS_TYPE);
	f = node_lookup_file(type, "f", &st, 1000);
	ino = f->ino;
	CHECK(node_is_backing(f, &st, 1000) && node_is_backing(f, &st, 0),
	      "node: its own file (a birth time unknown on one side counts as the same)");
	CHECK(!node_is_backing(f, &st, 1001),
	      "node: the same st_ino born at another time is another file (recycled)");
	node_forget(f, 1);
	CHECK(!node_by_ino(ino) && ghost_count() == 1, "node: forgotten, it leaves a ghost");
	g = node_lookup_file(type, "f", &st, 1001);
	CHECK(g->ino != ino && ghost_count() == 0,
	      "node: a new file with the old st_ino gets a new number, and the ghost goes");
	ino = g->ino;
	node_forget(g, 1);
	g = node_lookup_file(type, "f", &st, 1001);
	CHECK(g->ino == ino && node_count() == 2 && ghost_count() == 0,
	      "node: the same file looked up again gets its number back (%llu)",
	      (unsigned long long)ino);
	node_forget(g, 1);
	node_forget(type, 1);
	node_shutdown();
	pthread_mutex_unlock(&node_lock);
}

int main(void)
{
	test_name();
	test_buf();
	test_toolkit();
	test_atomic();
	test_beneath();
	test_store();
	test_store_edit();
	test_memo();
	test_node_ghosts();
	return tap_done();
}
