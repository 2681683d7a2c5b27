/*
 * test_precheck_tcc: sandbox/worker/precheck.c against tcc's own preprocessor.
 *
 *	test_precheck_tcc TCC INCLUDE_DIR [COUNT [SEED]]
 *
 * The precheck is only as good as its agreement with tcc's lexer (tccpp.c), which
 * differs from the C standard (a literal may run over newlines, the rest of an
 * #error/#warning line is raw) and from itself in #if-skipped text.  So: generate
 * many snippets from fragments chosen to hit those differences (quotes, comments,
 * splices, #if 0, #warning, stray backslashes, BOMs...) around canary directives,
 * and for every snippet the precheck accepts, run `tcc -E` on it and check that
 * tcc executed no canary: no "#include "canary.h"" (its text would appear), no
 * "#pragma CANARY" line, no "#line ... "CANARYLINE"".  Anything tcc treats as a
 * directive must have been seen as one by the precheck, which refuses these.
 *
 * First the known bypasses of issue 10 are run through tcc to prove the oracle
 * sees them (tcc does execute the canary there) and through the precheck (which
 * must refuse them).  Deterministic by default; SEED varies the snippets.
 * TAP output (tests/unit/tap.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "precheck.h"
#include "tap.h"

extern char **environ;

static const char *tcc_path, *include_dir;
static char dir[] = "/tmp/seglam-precheck-tcc-XXXXXX";

/* A check, with @detail said only when it fails. */
static void check(bool ok, const char *name, const char *detail)
{
	CHECK(ok, "%s", name);
	if (!ok)
		tap_diag("%s", detail);
}

static int write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (!f)
		return -errno;
	ok = fwrite(data, 1, len, f) == len;
	return fclose(f) == 0 && ok ? 0 : -EIO;
}

static void read_file(const char *path, struct buf *b)
{
	FILE *f = fopen(path, "rb");
	char chunk[4096];
	size_t n;

	buf_reset(b);
	if (!f)
		return;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_add(b, chunk, n);
	fclose(f);
}

/* `tcc -E` on @src; its stdout and stderr together in @out.  0 or -errno. */
static int tcc_preprocess(const char *src, size_t len, struct buf *out)
{
	char cpath[sizeof(dir) + 16], opath[sizeof(dir) + 16], ipath[4096];
	char *argv[] = {(char *)tcc_path, "-E", "-nostdinc", ipath, cpath, NULL};
	posix_spawn_file_actions_t fa;
	int status, r;
	pid_t pid;

	snprintf(cpath, sizeof(cpath), "%s/s.c", dir);
	snprintf(opath, sizeof(opath), "%s/s.out", dir);
	snprintf(ipath, sizeof(ipath), "-I%s", include_dir);
	r = write_file(cpath, src, len);
	if (r < 0)
		return r;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, opath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	r = posix_spawn(&pid, tcc_path, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r)
		return -r;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	read_file(opath, out);
	return 0;
}

/* Did tcc execute a canary directive?  Names which one, or NULL. */
static const char *canary_seen(const struct buf *out)
{
	const char *s = buf_str(out);

	if (strstr(s, "CANARY_INCLUDED_3f9a"))
		return "#include \"canary.h\"";
	for (const char *l = s; l; l = strchr(l, '\n')) {
		const char *eol;
		unsigned n;

		if (*l == '\n')
			l++;
		if (strncmp(l, "#pragma CANARY", 14) == 0)
			return "#pragma";
		/* a line marker "# 4243 "DIR/CANARYLINE"" (a #line passed through as
		 * text would start "#line") */
		if (sscanf(l, "# %u", &n) == 1 && l[2] >= '0' && l[2] <= '9' &&
		    (eol = strchr(l, '\n'),
		     memmem(l, eol ? (size_t)(eol - l) : strlen(l), "CANARYLINE\"", 11)))
			return "#line";
	}
	if (strstr(s, "CANARYLINE:"))
		return "#line (in a message)";
	return NULL;
}

/* The bypasses of issue 10, each hiding a canary from the old precheck. */
static const char *const known[] = {
    /* the rest of a #warning line is raw: no comment starts there */
    "int a;\n#warning /*\n#include \"canary.h\"\n// */\n",
    /* ... also in skipped text, where an apostrophe does not start a literal */
    "#if 0\n#warning /*\n#endif\n#pragma CANARY\n// */\n",
    "#if 0\n#error /* it's\n#endif\n#include \"canary.h\"\n// */\n",
    /* a string literal runs on over the newline */
    "const char *s = \"abc\n/* \"\n#include \"canary.h\"\n// */\n",
    "char c = 'x\n/* '\n#line 4242 \"CANARYLINE\"\n// */\nint z;\n",
    /* a stray backslash keeps skipped text at the start of its line */
    "#if 0\n\\#warning /*\n#endif\n#pragma CANARY\n// */\n",
    /* after a comment, '#' starts a directive in normal text, not in skipped text */
    "#if 0\n/**/ #warning 'x\n/* '\n#endif\n#pragma CANARY\n*/\n",
};

static void test_known(void)
{
	struct buf out = BUF_INIT, err = BUF_INIT, msg = BUF_INIT;

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		const char *seen;
		char name[64];
		int r;

		buf_reset(&err);
		r = tcc_preprocess(known[i], strlen(known[i]), &out);
		seen = r == 0 ? canary_seen(&out) : NULL;
		snprintf(name, sizeof(name), "known bypass %zu: tcc executes it", i + 1);
		buf_reset(&msg);
		buf_printf(&msg, "r=%d, tcc said: %.300s", r, buf_str(&out));
		check(seen != NULL, name, buf_str(&msg));
		snprintf(name, sizeof(name), "known bypass %zu: the precheck refuses it", i + 1);
		check(worker_precheck(known[i], strlen(known[i]), &err) < 0, name, "accepted");
		printf("#   %s\n", buf_str(&err));
	}
	buf_free(&out);
	buf_free(&err);
	buf_free(&msg);
}

/* clang-format off: one table of fragments */
static const char *const frags[] = {
    "\n",
    "\n",
    "\n",
    " ",
    "\t",
    "\f",
    "\r",
    "x",
    "int a;",
    "\"",
    "'",
    "\"s\"",
    "'c'",
    "\"\\\"",
    "'\\''",
    "/*",
    "*/",
    "/*",
    "*/",
    "//",
    "\\\n",
    "\\\r\n",
    "\\",
    "#",
    "# ",
    "#/**/",
    "#warning ",
    "#error ",
    "warning",
    "error",
    "#if 0\n",
    "#if 0\n",
    "#if 1\n",
    "#else\n",
    "#elif 1\n",
    "#endif\n",
    "#endif\n",
    "#ifdef X\n",
    "#define X ",
    "#undef X\n",
    "\n#include \"canary.h\"\n",
    "\n#pragma CANARY\n",
    "\n#line 4242 \"CANARYLINE\"\n",
    "\n# 4243 \"CANARYLINE\"\n",
    "#include <stddef.h>\n",
    "don't",
    "\xef\xbb\xbf",
    "\x80",
    "$",
    "1e+",
    ".",
    "<",
    ">",
    "L\"",
    "u8'",
    "R\"(",
    ")\"",
    "?\?/\n",
    "%:",
    "@",
    "#include \"canary.h\"",
    "#pragma CANARY",
};
/* clang-format on */

static uint64_t rng;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void test_generated(unsigned long count)
{
	struct buf src = BUF_INIT, out = BUF_INIT, err = BUF_INIT, msg = BUF_INIT;
	unsigned long accepted = 0, bad = 0;

	for (unsigned long k = 0; k < count; k++) {
		unsigned nf = 2 + (unsigned)(next_rand() % 14);
		const char *seen;

		buf_reset(&src);
		for (unsigned f = 0; f < nf; f++)
			buf_adds(&src, frags[next_rand() % (sizeof(frags) / sizeof(frags[0]))]);
		buf_reset(&err);
		if (worker_precheck(src.data, src.len, &err) < 0)
			continue;
		accepted++;
		if (tcc_preprocess(src.data, src.len, &out) < 0) {
			bad++;
			continue;
		}
		seen = canary_seen(&out);
		if (seen && bad++ < 5) {
			printf("# the precheck accepted, tcc executed %s:\n", seen);
			for (size_t i = 0; i < src.len; i++)
				printf(src.data[i] == '\n' ? "\\n\n# " : "%c", src.data[i]);
			printf("\n");
		}
	}
	printf("# %lu snippets, %lu accepted by the precheck and run through tcc -E\n", count,
	       accepted);
	buf_printf(&msg, "%lu of %lu accepted snippets made tcc execute a canary", bad, accepted);
	check(bad == 0 && accepted > count / 50,
	      "no directive tcc executes is missed by the precheck", buf_str(&msg));
	buf_free(&src);
	buf_free(&out);
	buf_free(&err);
	buf_free(&msg);
}

int main(int argc, char **argv)
{
	unsigned long count = argc > 3 ? strtoul(argv[3], NULL, 10) : 6000;
	char path[sizeof(dir) + 16];
	struct stat st;

	if (argc < 3) {
		fprintf(stderr, "usage: test_precheck_tcc TCC INCLUDE_DIR [COUNT [SEED]]\n");
		return 2;
	}
	tcc_path = argv[1];
	include_dir = argv[2];
	rng = argc > 4 ? strtoull(argv[4], NULL, 0) : 0x5eed5eedULL;
	if (!rng)
		rng = 1;
	if (stat(tcc_path, &st) < 0) {
		printf("Bail out! %s: %s (the tcc package: apt-get install tcc)\n", tcc_path,
		       strerror(errno));
		return 1;
	}
	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/canary.h", dir);
	write_file(path, "CANARY_INCLUDED_3f9a\n", 21);
	printf("# seed %#llx\n", (unsigned long long)rng);

	test_known();
	test_generated(count);

	unlink(path);
	snprintf(path, sizeof(path), "%s/s.c", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/s.out", dir);
	unlink(path);
	rmdir(dir);
	return tap_done();
}
