/*
 * serve: the request loops (prefix worker_), once the procedure is compiled and
 * the filter is on.  The zygote (worker_serve) runs no procedure code and holds
 * no input (but a load's first one while it passes it on: load.c): it forks a child per run one run
 * ahead (it locks itself down and waits for its "go"), relays that child's frames to the daemon
 * after checking each header before its payload, passes call answers back to it, and kills it after
 * its last final frame.  A -o worker_reuse worker (worker_serve_reuse) runs every input itself
 * instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker_int.h"

/* glibc >= 2.34: fork without atfork handlers, one clone() call */
pid_t _Fork(void);

/* A request is a quiet one when nothing came for this long before it. */
#define WORKER_QUIET_MS 5

/* Whether the request being served is a quiet one (worker_load_pending): a
 * reader asking now and then, not a stream.  A child forked after it inherits
 * it (worker_child_prefault).  No clock: the zygote's filter has no
 * clock_gettime, for hosts where the vDSO falls back to the system call. */
static bool worker_quiet;

/*
 * Touch, while waiting for a request, the pages a typical run writes first, so
 * their copy-on-write faults are taken before the request and not after it: the
 * stack, the head of the answer buffer, malloc's state and its cache of small
 * blocks (where a typical input is read to).  Only what a typical run uses: each
 * page is a copy made for every run, and freed with its child, whether the run
 * needs it or not (16 KiB of stack rather than 64 was measured faster for warm
 * hits and first asks alike; 16 KiB of the heap's top cost a stream of new
 * inputs about 10% and saved a run of a small input nothing: docs/long-tail.md).
 * The code of malloc, free, memset and memcpy too (an answer is appended with
 * memcpy): a fork maps no page of a file's code until the child runs it, and
 * where first touches are costly (a PVM guest) each is a trap to the host.
 * malloc's pages only for a child forked after a quiet request (worker_quiet,
 * which the fork copies): in a stream of requests the CPU they take is the
 * next run's, and it cost such a stream about 6%.
 */
static void worker_child_prefault(void)
{
	volatile char stack[16 * 1024];
	size_t head = worker_out.cap + 1 < 16384 ? worker_out.cap + 1 : 16384;
	/* volatile: a compiler may drop a malloc and free whose memory nothing
	 * reads, and GCC did (this step did nothing until 2026-12-02); and it
	 * inlines memset and memcpy, which must run libc's own here */
	char *volatile p;
	void *(*volatile set)(void *, int, size_t) = memset;
	void *(*volatile copy)(void *, const void *, size_t) = memcpy;

	for (size_t i = 0; i < sizeof(stack); i += 4096)
		stack[i] = 0;
	for (size_t i = 0; i < head; i += 4096)
		worker_out.data[i] = 0;
	for (size_t n = 16; worker_quiet && n <= 1024; n *= 4) {
		p = malloc(n);
		if (p) {
			set(p, 0, n);
			copy(p, p + n / 2, n / 2);
		}
		free(p);
	}
	worker_arena_prefault();
}

/*
 * A run's child, forked before its request arrives: locks itself down, reads one
 * request (an input or a batch) from fd 0 (the daemon's pipe: the zygote never
 * holds an input), closes fd 0, tells the zygote how many final frames it owes
 * (FRAME_START), runs the procedure, writes its frames on fd 1 (its pipe to the
 * zygote), and waits to be killed.  All of that before the procedure runs is
 * what the zygote may trust: closing fd 0 first lets the zygote pass answers on
 * as soon as they are whole, since nothing here can read a later request, and
 * FRAME_START comes before any byte the procedure could write.  Exits 0 with
 * nothing written when the daemon has closed the request pipe.
 */
static void __attribute__((noreturn)) worker_child(void)
{
	uint32_t len, slot, count = 1;
	char go;
	struct frame_batch b;
	worker_run_fn run;
	char *in;

	worker_arena_drop(); /* first: no write access to any image (load.c) */
	worker_limit_cpu();
	worker_child_lockdown();
	worker_child_prefault();
	/* Forked ahead: wait until the run before this one is over, so that only
	 * one process ever reads the request pipe (the zygote reads call answers
	 * from it during a run).  End of file: the zygote is gone.  Loads meanwhile
	 * go to the zygote on their own pipe; this child sees each new type in the
	 * arena, as every child does. */
	if (frame_read_full(WORKER_CHILD_FD, &go, 1, -1) != 1)
		_exit(0);
	len = worker_read_len(0);
	if (len == FRAME_REQ_LOAD)
		_exit(WORKER_EXIT_IO); /* not on this pipe: the daemon is out of step */
	if (frame_read_full(0, &slot, sizeof(slot), -1) != (ssize_t)sizeof(slot))
		_exit(WORKER_EXIT_IO);
	run = worker_slot_run(slot);
	if (!run)
		_exit(WORKER_EXIT_IO); /* the daemon is out of step */
	if (len == FRAME_REQ_BATCH) {
		in = worker_batch_read(&b);
		count = b.count;
	} else {
		in = worker_read_body(0, len);
	}
	if (close(0) < 0)
		_exit(WORKER_EXIT_IO);
	worker_send_start(count);
	if (len == FRAME_REQ_BATCH)
		worker_batch_run(run, &b, in);
	else
		worker_run_one(run, in, len);
	/* Wait to be killed rather than exit: tearing this process down now would
	 * compete for the CPU with the zygote passing the answer on. */
	while (read(WORKER_CHILD_FD, &len, 1) < 0 && errno == EINTR)
		;
	_exit(0);
}

/*
 * Fork a child ahead (it locks itself down, then waits for its "go"), with its
 * two pipes: its fd 1 writes to the zygote's WORKER_NEXT_CHILD_FD, its
 * WORKER_CHILD_FD reads the zygote's WORKER_NEXT_CALL_FD (first the "go" byte,
 * then call answers).  The zygote moves
 * them to WORKER_CHILD_FD and WORKER_CALL_FD when it becomes the current child.
 */
static pid_t worker_fork_child(void)
{
	int p[2], q[2];
	pid_t child;

	if (pipe2(p, O_CLOEXEC) < 0 || p[0] != WORKER_NEXT_CHILD_FD ||
	    p[1] != WORKER_NEXT_CALL_FD || pipe2(q, O_CLOEXEC) < 0)
		_exit(WORKER_EXIT_IO);
	child = _Fork();
	if (child < 0)
		_exit(WORKER_EXIT_IO);
	if (child == 0) {
		/* Its own pipes as fd 1 and WORKER_CHILD_FD (dup2 leaves them
		 * without O_CLOEXEC); nothing of the current child's (fds 3 and 4
		 * until the dup2), of the zygote's ends of its own, nor the load
		 * pipe. */
		if (dup2(p[1], 1) < 0 || dup2(q[0], WORKER_CHILD_FD) < 0)
			_exit(WORKER_EXIT_IO);
		for (int fd = WORKER_CALL_FD; fd <= q[1]; fd++)
			close(fd);
		close(WORKER_LOAD_FD);
		worker_child();
	}
	/* p[1] (WORKER_NEXT_CALL_FD) is replaced by the write end of the call pipe */
	if (dup2(q[1], WORKER_NEXT_CALL_FD) < 0)
		_exit(WORKER_EXIT_IO);
	close(q[0]);
	close(q[1]);
	return child;
}

/* The child forked ahead becomes the current one: its pipes move down. */
static void worker_promote(void)
{
	if (dup2(WORKER_NEXT_CHILD_FD, WORKER_CHILD_FD) < 0 ||
	    dup2(WORKER_NEXT_CALL_FD, WORKER_CALL_FD) < 0)
		_exit(WORKER_EXIT_IO);
	close(WORKER_NEXT_CHILD_FD);
	close(WORKER_NEXT_CALL_FD);
}

/* Let the child forked ahead read the request pipe (a broken pipe: it is gone,
 * which its relay will find). */
static void worker_go(void)
{
	char go = 1;

	frame_write_full(WORKER_NEXT_CALL_FD, &go, 1, -1);
}

/* Whether @child has exited, and is reaped now. */
static bool worker_reaped(pid_t child)
{
	pid_t r;

	while ((r = wait4(child, NULL, WNOHANG, NULL)) < 0)
		if (errno != EINTR)
			_exit(WORKER_EXIT_IO);
	return r == child;
}

int worker_reap(pid_t child)
{
	int status;

	while (wait4(child, &status, 0, NULL) < 0)
		if (errno != EINTR)
			_exit(WORKER_EXIT_IO);
	return status;
}

/* The first child (told to go at once) and the one after it, with their pipes
 * on fds 3 to 6: the first is forked as a next one would be (fds 3 and 4 held
 * meanwhile) and moved down. */
static void worker_first_children(pid_t *child, pid_t *next)
{
	int hold[2];

	if (pipe2(hold, O_CLOEXEC) < 0 || hold[0] != WORKER_CHILD_FD || hold[1] != WORKER_CALL_FD)
		_exit(WORKER_EXIT_IO);
	*child = worker_fork_child();
	worker_go();
	close(hold[0]);
	close(hold[1]);
	worker_promote();
	*next = worker_fork_child();
}

/* Tell the daemon the run failed in place of the final frame it waits for. */
static void worker_send_failed(int32_t kind, int wait_status)
{
	int32_t fail[2] = {kind, wait_status};
	uint8_t frame[FRAME_RESP_HDR + sizeof(fail)];

	frame_put_response(frame, FRAME_FAILED, sizeof(fail));
	memcpy(frame + FRAME_RESP_HDR, fail, sizeof(fail));
	if (frame_write_full(1, frame, sizeof(frame), -1) < 0)
		_exit(WORKER_EXIT_IO);
}

/*
 * Pass the daemon's answer to a call on, from fd 0 to the child's WORKER_CALL_FD,
 * in pieces.  All of it is read even when the child is gone (EPIPE: SIGPIPE is
 * ignored), so the request pipe stays in step.  The daemon is trusted, but a
 * length over the cap means the pipe is out of step: exit.
 */
static void worker_pass_answer(const struct worker_run_pipes *rp)
{
	enum { piece_size = 64 * 1024 };
	/* (on the heap, not in .bss: see worker_obuf in run.c) */
	static char *piece;
	uint8_t hdr[FRAME_REQ_HDR];
	bool gone = false;
	uint32_t len;

	if (frame_read_full(rp->answers_in, hdr, sizeof(hdr), -1) != (ssize_t)sizeof(hdr))
		_exit(WORKER_EXIT_IO);
	len = frame_get_request(hdr);
	if (len != FRAME_CALL_FAILED && len > worker_out.cap)
		_exit(WORKER_EXIT_IO);
	if (frame_write_full(rp->answers_out, hdr, sizeof(hdr), -1) < 0)
		gone = true;
	if (!piece)
		piece = worker_malloc(piece_size);
	while (len != FRAME_CALL_FAILED && len) {
		uint32_t n = len < piece_size ? len : (uint32_t)piece_size;

		if (frame_read_full(rp->answers_in, piece, n, -1) != (ssize_t)n)
			_exit(WORKER_EXIT_IO);
		if (!gone && frame_write_full(rp->answers_out, piece, n, -1) < 0)
			gone = true;
		len -= n;
	}
	explicit_bzero(piece, piece_size);
}

/* The load pipe has hung up (the daemon is done with this worker): the child's
 * end of file on the request pipe says so next, and the relay's usual path ends
 * the worker. */
static bool worker_load_eof;

/* poll, retried on EINTR; its result. */
static int worker_poll(struct pollfd *p, nfds_t n, int ms)
{
	int r;

	while ((r = poll(p, n, ms)) < 0)
		if (errno != EINTR)
			_exit(WORKER_EXIT_IO);
	return r;
}

/*
 * Between requests: wait until the waiting child has something to say (it read
 * a request) or a load comes, and note whether it was a quiet one.  Whether a
 * load came, to be read (load.c).  The daemon sends one request at a time, so
 * at most one of the two.
 */
static bool worker_load_pending(void)
{
	struct pollfd p[2] = {{.fd = WORKER_CHILD_FD, .events = POLLIN},
			      {.fd = WORKER_LOAD_FD, .events = POLLIN}};

	if (worker_load_eof)
		return false;
	worker_quiet = worker_poll(p, 2, WORKER_QUIET_MS) == 0;
	if (worker_quiet)
		worker_poll(p, 2, -1);
	if (p[0].revents)
		return false;
	if (p[1].revents & POLLIN)
		return true;
	worker_load_eof = true;
	return false;
}

/*
 * The zygote's side of one run: read what the child writes into @relay
 * (WORKER_RELAY_ROOM(cap) bytes), check each frame's header before its payload,
 * and write complete checked frames to the daemon as they come.  The first frame
 * must be FRAME_START (what the child owes: 1 final frame, or a batch's count).
 * A call request (well formed: frame_get_call) goes to the daemon after the
 * frames before it, and its answer back to the child.  After the last final
 * frame owed the run is over: WORKER_RUN_DONE, the child still to be killed and
 * reaped (whatever else it wrote is dropped with it).  A malformed frame gets the
 * child killed, and an end of file before the last frame (the child exited, or
 * closed fd 1) its wait status; either way one FRAME_FAILED goes in place of the
 * final frame the daemon waits for: WORKER_RUN_REAPED.  WORKER_RUN_EOF: the
 * daemon closed the request pipe.  @rp names the pipes: a run child's, or for a
 * load's first input (load.c) the compile child's, which was handed its input
 * with the source, so that its end before FRAME_START is that input's failure.
 */
int worker_relay(const struct worker_run_pipes *rp, pid_t child, char *relay)
{
	size_t cap = worker_out.cap, room = WORKER_RELAY_ROOM(cap), have = 0, pos = 0, sent = 0;
	uint32_t owed = 0, len;
	bool started = false;
	const char *type, *in;
	int32_t status;
	size_t inlen;
	ssize_t r;
	int st;

	for (;;) {
		while (have - pos >= FRAME_RESP_HDR) {
			uint8_t *h = (uint8_t *)relay + pos;

			if (!started) {
				if (frame_get_response(h, FRAME_START, 4, &status, &len) < 0 ||
				    status != FRAME_START || len != 4)
					goto violation;
				if (have - pos < FRAME_RESP_HDR + 4)
					break;
				memcpy(&owed, h + FRAME_RESP_HDR, 4);
				/* A compile child running a load's first input owes one
				 * frame: its count is not the word of code we wrote (a tcc
				 * exploit may have run there), and a larger one would keep
				 * this relay waiting past the daemon's reply. */
				if (owed == 0 || owed > FRAME_BATCH_MAX_COUNT ||
				    (!rp->loads && owed != 1))
					goto violation;
				started = true;
				pos = sent = pos + FRAME_RESP_HDR + 4;
				continue;
			}
			if (frame_get_response(h, FRAME_SKIPPED,
					       (uint32_t)(WORKER_RELAY_MAX(cap) - FRAME_RESP_HDR),
					       &status, &len) < 0 ||
			    status == FRAME_FAILED || (status != FRAME_CALL && len > cap) ||
			    (status == FRAME_SKIPPED && len))
				goto violation;
			if (have - pos < FRAME_RESP_HDR + len)
				break;
			if (status == FRAME_CALL) {
				if (frame_get_call(relay + pos + FRAME_RESP_HDR, len, &type, &in,
						   &inlen) < 0)
					goto violation;
				/* the answers before it, then the call itself */
				pos += FRAME_RESP_HDR + len;
				if (frame_write_full(1, relay + sent, pos - sent, -1) < 0)
					_exit(WORKER_EXIT_IO);
				sent = pos;
				worker_pass_answer(rp);
				continue;
			}
			pos += FRAME_RESP_HDR + len;
			if (--owed == 0) {
				if (frame_write_full(1, relay + sent, pos - sent, -1) < 0)
					_exit(WORKER_EXIT_IO);
				explicit_bzero(relay, have);
				return WORKER_RUN_DONE;
			}
		}
		/* what is whole goes out now; a partial frame waits for the rest */
		if (pos > sent && frame_write_full(1, relay + sent, pos - sent, -1) < 0)
			_exit(WORKER_EXIT_IO);
		memmove(relay, relay + pos, have - pos);
		have -= pos;
		explicit_bzero(relay + have, pos);
		pos = sent = 0;
		if (rp->loads && !started && !have && worker_load_pending())
			return WORKER_RUN_LOAD;
		r = read(rp->frames, relay + have, room - have);
		if (r > 0) {
			have += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		break; /* end of file: the child exited (or closed fd 1) */
	}
	explicit_bzero(relay, have);
	st = worker_reap(child);
	if (!started && rp->loads) {
		/* Gone before it said it had a request: whether it took one from the
		 * pipe is unknown, so this worker cannot answer for it.  The daemon
		 * closing the pipe is the normal case. */
		if (have == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
			return WORKER_RUN_EOF;
		if (WIFEXITED(st))
			_exit(WEXITSTATUS(st) ? WEXITSTATUS(st) : WORKER_EXIT_IO);
		kill(getpid(), SIGKILL);
		_exit(WORKER_EXIT_IO);
	}
	worker_send_failed(
	    WIFEXITED(st) && WEXITSTATUS(st) == 0 ? FRAME_FAIL_PROTOCOL : FRAME_FAIL_DIED, st);
	return WORKER_RUN_REAPED;
violation:
	explicit_bzero(relay, have);
	kill(child, SIGKILL);
	st = worker_reap(child);
	if (!started && rp->loads)
		_exit(WORKER_EXIT_IO); /* the child's own code broke the protocol */
	worker_send_failed(FRAME_FAIL_PROTOCOL, st);
	return WORKER_RUN_REAPED;
}

/*
 * Wipe the stack below the caller's frame, where worker_relay's frames and its
 * callees' were: what they held of a run (the lengths of its frames, of a call's
 * answer) would otherwise be in every child forked after it, dead bytes a
 * procedure can read, until something happened to write over them.  Called after
 * each relay, before the next fork.  The run's own frames wrote these pages after
 * the last fork, so the wipe is no new copy-on-write fault (but for a deeper
 * stretch no relay reached).
 */
void __attribute__((noinline)) worker_stack_wipe(void)
{
	char below[2048];

	explicit_bzero(below, sizeof(below));
}

/*
 * After a load, once the caller has wiped its stack (worker_stack_wipe: the
 * load's frames held its lengths, and those of a first input, @ran, which a
 * process forked with them would copy): the compiler for the next load, where
 * the load did not fork it during its compile (load.c).  After a first input's
 * run at once, off the path of that answer; else (where first touches are
 * costly) after the run that follows (worker_serve).
 */
static void worker_load_forked(bool ran, const char *include_dir, const char *libtcc1)
{
	if (ran || !worker_touch_costly)
		worker_compiler_ahead(include_dir, libtcc1);
}

/*
 * Serve requests until the daemon closes the pipe, each in a fresh child.  The
 * child for the next request is forked, and has locked itself down, before that
 * request is sent: as soon as a run's last frame is passed on, the child that
 * made it is killed (it has said all it may), and the next one forked before the
 * old one is reaped, while the daemon is busy with the answer.  So neither the
 * fork nor a child's exit is between a request and its answer.  The zygote never
 * runs procedure code and holds no input longer than it takes to pass on a load's
 * first one (then wiped); it wipes what it relayed, so a child starts with
 * nothing of an earlier run.
 *
 * A load request (load.c) comes on the load pipe, which the zygote reads itself
 * (worker_load_pending, between requests); it has the type compiled into its
 * slot and answers, while the child waiting for an input goes on waiting: forked
 * before the type was there, it sees it in the arena, as every child does.  A
 * load that brings the type's first input has it run by the compile child, whose
 * frames the zygote relays before it comes back here: the waiting child is not
 * used, so no child is forked or ended for that run.
 */
void worker_serve(char *relay, const char *include_dir, const char *libtcc1)
{
	static const struct worker_run_pipes run = {.frames = WORKER_CHILD_FD,
						    .answers_in = 0,
						    .answers_out = WORKER_CALL_FD,
						    .loads = true};
	pid_t child, next, dying = 0, compiler;
	bool after_load = true, ran;

	/* the first request is a load (then, as after every load, its frames
	 * wiped before the next fork: worker_load_forked) */
	compiler = worker_load(relay, include_dir, libtcc1, &ran);
	worker_stack_wipe();
	worker_load_forked(ran, include_dir, libtcc1);
	worker_first_children(&child, &next);
	for (;;) {
		int end = worker_relay(&run, child, relay);

		worker_stack_wipe();

		if (end == WORKER_RUN_LOAD) {
			/* (a load right after a load: the last one's compiler first;
			 * it has said all it may, and must not keep us waiting) */
			if (compiler) {
				kill(compiler, SIGKILL);
				worker_reap(compiler);
			}
			/* The waiting child still waits for the next input. */
			compiler = worker_load(relay, include_dir, libtcc1, &ran);
			worker_stack_wipe();
			worker_load_forked(ran, include_dir, libtcc1);
			after_load = true;
			continue;
		}

		if (end == WORKER_RUN_EOF) {
			/* The daemon closed the pipe (it evicted this worker): end the
			 * child forked ahead and reap it and the last one, so that none
			 * is left to init (a zombie there still counts against
			 * RLIMIT_NPROC of user nobody until init reaps it). */
			kill(next, SIGKILL);
			worker_reap(next);
			if (dying)
				worker_reap(dying);
			if (compiler) {
				kill(compiler, SIGKILL);
				worker_reap(compiler);
			}
			worker_compiler_end();
			_exit(0);
		}
		/* The run is over, and with it the zygote's reads of call answers
		 * from the request pipe: the child forked ahead may read it now. */
		worker_go();
		/* The daemon was woken by the last write as by a writer about to block
		 * (a pipe's wake-up is synchronous): it waits for this CPU unless the
		 * zygote yields it before going on with the work below. */
		sched_yield();
		/* The child forked ahead is the current one now, perhaps already
		 * running the next request.  This
		 * one is killed and reaped one run later (its exit overlaps that
		 * run), and the one after the next is forked meanwhile: neither a fork
		 * nor an exit is between a request and its answer. */
		if (end == WORKER_RUN_DONE)
			kill(child, SIGKILL);
		close(WORKER_CHILD_FD);
		close(WORKER_CALL_FD);
		worker_promote();
		if (dying)
			worker_reap(dying);
		dying = end == WORKER_RUN_DONE ? child : 0;
		child = next;
		if (after_load) {
			/* The compiler of the load, killed after its reply (load.c):
			 * reaped here if it is gone, else at the next load or the end
			 * (the one for the next load was forked during the compile). */
			if (compiler && worker_reaped(compiler))
				compiler = 0;
			after_load = false;
		}
		next = worker_fork_child();
		/* (where first touches are costly, the compiler for the next load is
		 * forked here rather than during the load: load.c) */
		if (worker_touch_costly)
			worker_compiler_ahead(include_dir, libtcc1);
	}
}

/* -o worker_reuse: serve inputs in this process until the daemon closes the pipe.
 * A procedure may keep state from one input to the next (SECURITY.md). */
void worker_serve_reuse(worker_run_fn run)
{
	worker_call_fd = 0;
	for (;;) {
		uint32_t len = worker_read_len(0), slot;
		struct frame_batch b;
		char *in;

		if (frame_read_full(0, &slot, sizeof(slot), -1) != (ssize_t)sizeof(slot) || slot)
			_exit(WORKER_EXIT_IO); /* one type, in slot 0 */

		if (len == FRAME_REQ_BATCH) {
			in = worker_batch_read(&b);
			worker_batch_run(run, &b, in);
		} else {
			in = worker_read_body(0, len);
			worker_run_one(run, in, len);
		}
		free(in);
		worker_held_free();
	}
}
