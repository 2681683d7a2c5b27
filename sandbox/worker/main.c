/*
 * seglam-worker: compiles untrusted procedures with libtcc and runs them on inputs.
 *
 * Started by sandbox/spawn.c with posix_spawn (or forked by the mother, mother.c),
 * an empty environment and
 *	argv: seglam-worker INCLUDE_DIR LIBTCC1_A MEM_LIMIT_BYTES ANSWER_CAP_BYTES [FLAG...]
 * (FLAGs: allow_no_landlock, reuse, mother, cpu=SECONDS: the CPU backstop,
 * confine.c worker_limit_cpu).  fd 0 = requests, fd 1 = responses
 * (frame.h), fd 2 = /dev/null.  Without Landlock the worker refuses to compile (tcc
 * could read any file this user can) unless a flag says the operator accepted that.
 *
 * The order of the steps in main() is the security argument, and each step says
 * why it comes where it does.  In short: privileges are dropped and the file
 * system is closed off *before* tcc parses hostile source (tcc is a big C parser
 * with no hardening), and no procedure code runs before a strict seccomp filter
 * is on.
 *
 * A worker (the "zygote") holds the compiled types of one owner, in slots, and
 * runs no procedure code and parses no source itself: each type is compiled by a
 * compile child (load.c), which sends back the relocated image, and each request
 * (an input, or a batch of one reader's inputs) is run in a child forked for it
 * one run ahead, which locks itself down further, waits for its turn, and is
 * killed after its answers.  So no run sees another run's input (a procedure's
 * static variables, heap and even its writable code start afresh from the
 * compiled image each time), no type's source or run can change another type's
 * image, and the daemon's pipe carries only frames the zygote wrote and checked:
 * the final frames each request is owed, and the run's call requests (frame.h).
 * A -o worker_reuse worker compiles its one type itself and runs every input in
 * its own process (SECURITY.md).
 *
 * Where each step lives (worker_int.h lists the files): steps 1-3 and the
 * filters of step 6 in confine.c, step 3b in mother.c, step 4 in precheck.c,
 * step 5 in compile.c (called by load.c in a compile child), step 7 in serve.c
 * (the zygote) and run.c (a run).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "buf.h"
#include "frame.h"
#include "precheck.h"
#include "worker_int.h"

/* Report a failure before serving as a compile error, then exit. */
void worker_fail(int code, const char *fmt, ...)
{
	struct buf msg = BUF_INIT;
	uint8_t hdr[FRAME_RESP_HDR];
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&msg, fmt, ap);
	va_end(ap);
	if (msg.len > FRAME_MAX_MESSAGE)
		buf_truncate(&msg, FRAME_MAX_MESSAGE);
	frame_put_response(hdr, FRAME_COMPILE_ERROR, (uint32_t)msg.len);
	if (frame_write_full(1, hdr, sizeof(hdr), -1) == 0)
		frame_write_full(1, msg.data ? msg.data : "", msg.len, -1);
	_exit(code);
}

static int worker_parse_size(const char *s, unsigned long long *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || end == s || *end ? -1 : 0;
}

/* Step 6 for both kinds of worker: the filter goes on. */
static void worker_lock_down(bool reuse)
{
	if (!worker_warmed)
		worker_warm_up();
	worker_have_clock = getauxval(AT_SYSINFO_EHDR) != 0;
	if (worker_have_clock)
		worker_coarse_ms(); /* resolves the vDSO entry before the filter */
	if ((reuse ? worker_seccomp_reuse() : worker_seccomp()) < 0)
		worker_fail(WORKER_EXIT_SETUP, "worker: cannot install the seccomp filter");
}

int main(int argc, char **argv)
{
	unsigned long long mem, cap, cpu;
	struct buf err = BUF_INIT;
	uint8_t hdr[FRAME_RESP_HDR];
	worker_run_fn run;
	uint32_t srclen;
	size_t image = 0;
	char *src, *relay;
	bool allow_no_landlock = false, reuse = false, mother = false, bad_flag = false;

	/* Step 1: nothing inherited but the two pipes, /dev/null and (a worker
	 * that is not -o worker_reuse) its arena's memfd on fd 3 and its load pipe
	 * on fd 4.  (The daemon already spawned us with an empty environment and
	 * closefrom; this also covers a daemon that forgot.) */
	worker_close_fds(FRAME_LOAD_FD + 1);
	/* a write to a run's child that died mid-call fails with EPIPE instead */
	signal(SIGPIPE, SIG_IGN);
	for (int i = 5; i < argc; i++) {
		if (strcmp(argv[i], "allow_no_landlock") == 0)
			allow_no_landlock = true;
		else if (strcmp(argv[i], "reuse") == 0)
			reuse = true;
		else if (strcmp(argv[i], "mother") == 0)
			mother = true;
		else if (strncmp(argv[i], "cpu=", 4) == 0 &&
			 worker_parse_size(argv[i] + 4, &cpu) == 0 && cpu > 0 &&
			 cpu < UINT_MAX - 10)
			worker_cpu_s = (unsigned)cpu;
		else
			bad_flag = true;
	}
	if (argc < 5 || bad_flag || worker_parse_size(argv[3], &mem) < 0 ||
	    worker_parse_size(argv[4], &cap) < 0 || cap == 0 ||
	    cap >= UINT32_MAX - WORKER_RELAY_MAX(0))
		worker_fail(WORKER_EXIT_USAGE,
			    "usage: seglam-worker INCLUDE_DIR LIBTCC1 MEM_BYTES "
			    "ANSWER_CAP [allow_no_landlock] [reuse] [cpu=SECONDS]");

	/* Step 2: drop root, then limits.  setuid first: RLIMIT_NPROC 0 would be
	 * checked against the new user otherwise.  no_new_privs is also what
	 * allows Landlock and seccomp without CAP_SYS_ADMIN. */
	worker_drop_privileges();
	worker_set_limits((rlim_t)mem);
	if (chdir(argv[1]) < 0) /* so "seglam.h" resolves in the include dir */
		worker_fail(WORKER_EXIT_SETUP, "worker: include directory: %s", strerror(errno));

	/* Step 3: file system closed off before any untrusted byte is parsed. */
	worker_landlock(argv[1], argv[2], allow_no_landlock);

	/* Step 3b (mother only): fork a worker per request from here on (each
	 * gets its arena's memfd with its pipes). */
	if (reuse || mother) {
		close(FRAME_ARENA_FD);
		close(FRAME_LOAD_FD);
	}
	if (mother)
		worker_mother(argv[0], argv[1]);

	worker_out.cap = (size_t)cap;
	/* room for the response header in front: a child writes its frame at once */
	worker_out.data = (char *)worker_malloc(FRAME_RESP_HDR + (size_t)cap + 1) + FRAME_RESP_HDR;

	if (reuse) {
		/* -o worker_reuse: one type, compiled and run in this process,
		 * which so takes the CPU backstop itself. */
		uint32_t head[2];

		worker_limit_cpu();

		/* Step 4: the source (a load into slot 0), screened lexically
		 * (#include of files, #pragma). */
		if (worker_read_len(0) != FRAME_REQ_LOAD ||
		    frame_read_full(0, head, sizeof(head), -1) != (ssize_t)sizeof(head) ||
		    head[0] != 0)
			_exit(WORKER_EXIT_IO);
		srclen = head[1];
		src = worker_read_body(0, srclen);
		if (worker_precheck(src, srclen, &err) < 0)
			worker_fail(0, "%s", err.data);

		/* Step 5: compile and relocate; needs PROT_EXEC, so before seccomp.
		 * No procedure code runs here (tcc_relocate does not run
		 * constructors). */
		run = worker_compile(NULL, src, argv[1], argv[2], NULL, 0, &image, &err);
		free(src);
		if (!run)
			worker_fail(0, "%s", err.data);
		worker_lock_down(true);
		frame_put_response(hdr, FRAME_COMPILED, 0);
		if (frame_write_full(1, hdr, sizeof(hdr), -1) < 0)
			_exit(WORKER_EXIT_IO);
		worker_serve_reuse(run);
	}

	/* The zygote.  Step 4z: the arena for the types it will hold (load.c),
	 * and how dear a first touch of a page is here (how children get ready). */
	worker_touch_measure();
	relay = worker_private_map(WORKER_RELAY_ROOM((size_t)cap));
	worker_arena_map(FRAME_ARENA_FD);
	worker_load_pipe(FRAME_LOAD_FD);

	/* Step 6: lock down before the first request.  From here on: the pipes,
	 * non-executable new memory, exit, and forking children that lock
	 * themselves down further: a compile child per type (load.c: it reads the
	 * allowed headers and relocates), a run child per request (serve.c).  Every
	 * reply is sent with the filter in place, so a pooled worker is always a
	 * locked one. */
	worker_lock_down(false);

	/* Step 7: load types and serve inputs, each in a fresh child, until the
	 * daemon closes the pipe.  The first request is a load. */
	worker_serve(relay, argv[1], argv[2]);
	return 0;
}
