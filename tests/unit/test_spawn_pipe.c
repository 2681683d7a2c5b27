/*
 * test_spawn_pipe: a worker started when new pipes are small (sandbox/spawn.c).
 *
 *	test_spawn_pipe WORKER INCLUDE_DIR
 *
 * Once a user's pipe buffers pass fs.pipe-user-pages-soft, Linux gives each new
 * pipe of that user one or two pages (4 or 8 KiB) instead of 64 KiB.  The daemon
 * writes a new worker's load request into its pipe before the worker exists
 * (sandbox_presend): a write that waited for room there would wait for a reader
 * that is started only after it returns, and the run would hang for good.
 *
 * A child process becomes a user of its own (as root; else it stays who it is),
 * holds pipes until a new one is small, and runs loads larger than such a pipe on
 * every path: a run (the load carries the first input; the cut falls in the source
 * or in the input), a compile (no input), and a -o worker_reuse worker (the load
 * on its request pipe).  Each must answer.  A hang is caught by alarm(), which
 * kills the child: the only time in this test, a bound far past any real run.
 * Skipped where new pipes do not shrink (no soft limit, or a privileged user).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "sandbox.h"
#include "tap.h"

/* A user no other test runs as (root's workers run as nobody): the pipes held
 * here shrink only this user's new pipes. */
#define TEST_UID 61234
#define HANG_SECONDS 60
#define MAX_PIPES 16384
#define SMALL_PIPE 8192
#define EXIT_SKIP 77

static const char *worker_path, *include_dir;
/* The child's checks so far and its failures, shared: the parent counts its
 * own after them. */
static int *shared;

static void child_sync(void)
{
	shared[0] = tap.count;
	shared[1] = tap.failed;
}

/* A procedure of about @pad bytes (a long comment) that echoes its input. */
static char *echo_source(size_t pad, char fill)
{
	static const char head[] = "#include <seglam.h>\n/*";
	static const char tail[] =
	    "*/\nint seglam_run(const char *in, size_t len, seglam_out *out)\n"
	    "{\n\tseglam_write(out, in, len);\n\treturn 0;\n}\n";
	char *s = malloc(sizeof(head) + pad + sizeof(tail));

	if (!s)
		exit(1);
	memcpy(s, head, sizeof(head) - 1);
	memset(s + sizeof(head) - 1, fill, pad);
	memcpy(s + sizeof(head) - 1 + pad, tail, sizeof(tail));
	return s;
}

/* Hold pipes until a new pipe is at most SMALL_PIPE bytes; its size, or -1. */
static int shrink_pipes(void)
{
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	for (int i = 0; i < MAX_PIPES; i++) {
		int p[2], size;

		if (pipe2(p, O_CLOEXEC) < 0)
			return -1;
		size = fcntl(p[1], F_GETPIPE_SZ);
		if (size > 0 && size <= SMALL_PIPE)
			return size;
	}
	return -1;
}

static void start(bool reuse)
{
	struct sandbox_config cfg = {
	    .worker_path = worker_path,
	    .include_dir = include_dir,
	    .timeout_ms = 2000,
	    .max_workers = 4,
	    .worker_reuse = reuse,
	};
	int r = sandbox_init(&cfg);

	if (r < 0) {
		printf("Bail out! sandbox_init: %s\n", strerror(-r));
		exit(1);
	}
}

/* Run @src on @in as @owner (a new owner: a new worker, whose load is present). */
static void check_run(uid_t owner, const char *src, const char *in, size_t inlen, const char *name)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	int r = sandbox_run(owner, src, strlen(src), in, inlen, &out, &err);

	CHECK(r == 0 && out.len == inlen && !memcmp(out.data, in, inlen), "%s", name);
	child_sync();
	if (r)
		tap_diag("r=%d err=%s", r, buf_str(&err));
	buf_free(&out);
	buf_free(&err);
}

static void child(void)
{
	size_t big_in = 6 << 10;
	char *src20 = echo_source(20 << 10, 'x'), *src6 = echo_source(6 << 10, 'y');
	char *in = malloc(big_in);
	struct buf err = BUF_INIT;
	int size, r;

	if (!in)
		exit(1);
	memset(in, 'i', big_in);
	alarm(HANG_SECONDS);
	if (geteuid() == 0) {
		struct rlimit rl = {MAX_PIPES * 2 + 64, MAX_PIPES * 2 + 64};

		setrlimit(RLIMIT_NOFILE, &rl);
		if (setgroups(0, NULL) < 0 || setgid(TEST_UID) < 0 || setuid(TEST_UID) < 0) {
			printf("Bail out! cannot become uid %d: %s\n", TEST_UID, strerror(errno));
			exit(1);
		}
	}
	size = shrink_pipes();
	if (size < 0)
		exit(EXIT_SKIP);
	tap_diag("a new pipe holds %d bytes", size);
	start(false);
	check_run(1, src20, "x", 1, "run, 20 KiB source, small pipe: answers");
	check_run(2, src6, in, big_in, "run, 6 KiB source and 6 KiB input, small pipe: answers");
	r = sandbox_compile(3, src20, strlen(src20), &err);
	CHECK(r == 0, "compile, 20 KiB source, small pipe: compiles");
	child_sync();
	if (r)
		tap_diag("r=%d err=%s", r, buf_str(&err));
	sandbox_shutdown();
	start(true);
	check_run(4, src20, "x", 1, "worker_reuse run, 20 KiB source, small pipe: answers");
	sandbox_shutdown();
	buf_free(&err);
	free(src20);
	free(src6);
	free(in);
	fflush(stdout);
	_exit(tap.failed ? 1 : 0);
}

int main(int argc, char **argv)
{
	int status;
	pid_t pid;

	if (argc < 3) {
		fprintf(stderr, "usage: %s WORKER INCLUDE_DIR\n", argv[0]);
		return 2;
	}
	worker_path = argv[1];
	include_dir = argv[2];
	signal(SIGPIPE, SIG_IGN);
	shared = mmap(NULL, 2 * sizeof(*shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		      -1, 0);
	if (shared == MAP_FAILED) {
		printf("Bail out! mmap: %s\n", strerror(errno));
		return 1;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		printf("Bail out! fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0)
		child();
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SKIP) {
		printf("1..0 # SKIP new pipes do not shrink here (fs.pipe-user-pages-soft)\n");
		return 0;
	}
	tap.count = shared[0];
	tap.failed = shared[1];
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		tap_diag("a load hung: killed after %d s", HANG_SECONDS);
	CHECK(WIFEXITED(status) || WTERMSIG(status) != SIGALRM, "no load hung");
	CHECK(WIFEXITED(status) && (WEXITSTATUS(status) == 0 || tap.failed),
	      "the child ended by itself (wait status %#x)", status);
	return tap_done();
}
