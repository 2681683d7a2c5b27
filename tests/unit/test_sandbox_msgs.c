/*
 * test_sandbox_msgs: what the daemon side of the sandbox says when it refuses,
 * with the real seglam-worker.
 *
 *	test_sandbox_msgs WORKER INCLUDE_DIR
 *
 * A procedure too large for a worker's image space is refused with the real size
 * of that space (frame.h frame_arena_size: worker_mem / 16, at most 16 MiB), and a
 * run after the sandbox stopped says the daemon is unmounting, not strerror's
 * "Cannot send after transport endpoint shutdown".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sandbox.h"
#include "tap.h"

#define MEM_LIMIT (128u << 20) /* -o worker_mem: an image space of 8 MiB */

static const char *worker_path, *include_dir;

static void start(void)
{
	struct sandbox_config cfg = {
	    .worker_path = worker_path,
	    .include_dir = include_dir,
	    .timeout_ms = 5000,
	    .max_workers = 2,
	    .mem_limit = MEM_LIMIT,
	};
	int r = sandbox_init(&cfg);

	if (r < 0) {
		printf("Bail out! sandbox_init: %s\n", strerror(-r));
		exit(1);
	}
}

static const char echo_src[] = "#include <seglam.h>\n"
			       "int seglam_run(const char *in, size_t len, seglam_out *out)\n"
			       "{\n\tseglam_write(out, in, len);\n\treturn 0;\n}\n";

/* 12 MiB of initialized data: more than the 8 MiB image space of MEM_LIMIT. */
static const char big_src[] = "#include <seglam.h>\n"
			      "static char big[12 << 20] = {1};\n"
			      "int seglam_run(const char *in, size_t len, seglam_out *out)\n"
			      "{\n\tseglam_write(out, big, 1);\n\treturn 0;\n}\n";

int main(int argc, char **argv)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	int r;

	if (argc < 3) {
		fprintf(stderr, "usage: %s WORKER INCLUDE_DIR\n", argv[0]);
		return 2;
	}
	worker_path = argv[1];
	include_dir = argv[2];
	start();

	r = sandbox_compile(0, big_src, strlen(big_src), &err);
	CHECK(r < 0 && strstr(buf_str(&err), "does not fit a worker's image space (8192 KiB: "
					     "-o worker_mem / 16, at most 16 MiB)"),
	      "too large for the image space: the real size of it");
	if (tap.failed)
		tap_diag("r=%d err=%s", r, buf_str(&err));

	buf_reset(&err);
	r = sandbox_run(0, echo_src, strlen(echo_src), "hi", 2, &out, &err);
	CHECK(r == 0 && out.len == 2 && !memcmp(out.data, "hi", 2), "a small procedure runs");

	sandbox_shutdown();
	buf_reset(&err);
	r = sandbox_run(0, echo_src, strlen(echo_src), "hi", 2, &out, &err);
	CHECK(r == -EIO && !strcmp(buf_str(&err), "sandbox: stopped: the daemon is unmounting"),
	      "a run after shutdown: the daemon is unmounting");
	if (tap.failed)
		tap_diag("r=%d err=%s", r, buf_str(&err));
	buf_free(&out);
	buf_free(&err);
	return tap_done();
}
