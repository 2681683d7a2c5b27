/*
 * mother: the seglam-mother process, main.c's step 3b (prefix worker_mother).
 *
 * A worker started with the flag "mother" is not a worker: it takes the steps
 * that do not depend on a type (fds closed, nobody, limits, no_new_privs, not
 * dumpable, Landlock) once, with libtcc already loaded, and then forks one child
 * per type on the daemon's request.  That child becomes an ordinary worker (the
 * zygote of one type: steps 4 on) and is what a posix_spawn per type made
 * before, without the exec, the dynamic loading and the set-up.
 *
 * fd 0 is a SOCK_SEQPACKET socket to the daemon.  Each request is one byte with
 * exactly two fds (SCM_RIGHTS): the read end of the new worker's request pipe and
 * the write end of its response pipe.  The mother clones with CLONE_PARENT, so
 * the worker is the daemon's child as a spawned one is (the daemon reaps it,
 * reads its wait status and kills its process group), and answers with the
 * worker's pid (an int32, or -errno).  The child puts the two fds on 0 and 1 and
 * closes everything else, the socket included, before it reads a byte of
 * source: no worker can talk to the mother, and no procedure (nor tcc) ever runs
 * in it.  The mother ends when the daemon closes the socket (or dies).
 *
 * The spare: so that a cold start waits for no fork, the mother keeps one child
 * forked ahead (comm "seglam-spare", still in the mother's process group, fd 0
 * closed), which warms its own heap with the mother's trusted warm-up compile
 * (its copy-on-write faults are taken while it waits, not during the type's
 * compile) and then waits on a socket of its own for the two pipe fds.  A
 * request hands them to the spare and answers with its pid; the next spare is
 * forked after the answer.  The answer is two int32s: the worker's pid (or
 * -errno) and the pid of a spare found dead (0 if none), which the daemon, its
 * parent, reaps.  A spare still waiting when the mother ends gets EOF and exits;
 * the daemon reaps it with the mother's process group.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "frame.h"
#include "worker_int.h"

#define WORKER_MOTHER_NAME "seglam-mother"

static void worker_mother_reply(int32_t pid, int32_t dead_spare)
{
	int32_t v[2] = {pid, dead_spare};

	while (send(0, v, sizeof(v), MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

/* Receive one request on @sock: 0 with a new worker's fds (frame.h: two pipe
 * ends, its arena's memfd and its load pipe's read end), 1 at EOF, -1 for a bad
 * one. */
static int worker_mother_recv(int sock, int fds[FRAME_WORKER_FDS])
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(FRAME_WORKER_FDS * sizeof(int))];
	} u;
	char byte;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c;
	struct stat st;
	ssize_t n;
	int ok = 0;

	for (int i = 0; i < FRAME_WORKER_FDS; i++)
		fds[i] = -1;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return 1;
	c = CMSG_FIRSTHDR(&msg);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
		size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		for (size_t i = 0; i < nfd && i < FRAME_WORKER_FDS; i++)
			memcpy(&fds[i], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
		ok = nfd == FRAME_WORKER_FDS && !(msg.msg_flags & MSG_CTRUNC);
	}
	/* two pipes, the arena (a plain file: a memfd), and a pipe */
	for (int i = 0; i < FRAME_WORKER_FDS && ok; i++)
		ok = fstat(fds[i], &st) == 0 &&
		     (i == 2 ? S_ISREG(st.st_mode) != 0 : S_ISFIFO(st.st_mode) != 0);
	if (ok)
		return 0;
	for (int i = 0; i < FRAME_WORKER_FDS; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return -1;
}

bool worker_warmed; /* by the mother, before this worker was forked */

/*
 * Not glibc's fork: it cannot make the daemon the parent.  The child never runs
 * procedure code itself (its run children are _Fork()ed, which sets their thread
 * id right), so the thread id glibc keeps for this thread, stale in the child,
 * is never used.
 */
static long worker_mother_clone(void)
{
	return syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD), 0UL, NULL, NULL, 0UL);
}

/* In a new worker: its pipes @fds on 0 and 1, its arena on FRAME_ARENA_FD, its
 * load pipe on FRAME_LOAD_FD, nothing else open, its name. */
static void worker_mother_become(int fds[FRAME_WORKER_FDS], char *argv0)
{
	size_t len0 = strlen(argv0);

	/* its own process group first: the daemon kills it with it */
	setpgid(0, 0);
	if (dup2(fds[0], 0) < 0 || dup2(fds[1], 1) < 0 || dup2(fds[2], FRAME_ARENA_FD) < 0 ||
	    dup2(fds[3], FRAME_LOAD_FD) < 0)
		_exit(WORKER_EXIT_IO);
	worker_close_fds(FRAME_LOAD_FD + 1);
	/* look like the worker it is (ps, /proc/PID/comm and cmdline) */
	prctl(PR_SET_NAME, "seglam-worker", 0, 0, 0);
	if (len0 == strlen("seglam-worker"))
		memcpy(argv0, "seglam-worker", len0);
}

static int spare_sock = -1; /* the mother's end of the socket to its spare */
static pid_t spare_pid;

/*
 * Fork the spare (see the top of this file).  Returns in the mother, and in the
 * spare only once it has its pipes (as a new worker, like worker_mother()).
 */
static bool worker_mother_spare(char *argv0, const char *include_dir, int fds[FRAME_WORKER_FDS])
{
	int sv[2];
	long pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return false;
	pid = worker_mother_clone();
	if (pid == 0) {
		/* nothing of the daemon's socket: only the mother talks to it
		 * (fd 0 becomes /dev/null, fd 1's, so the pipes received next
		 * cannot land on 0 or 1 before worker_mother_become moves them) */
		dup2(1, 0);
		close(sv[0]);
		prctl(PR_SET_NAME, "seglam-spare", 0, 0, 0);
		/* first, while this process is still a fresh fork (load.c) */
		worker_touch_measure();
		worker_compile_rehearse(include_dir, NULL);
		if (worker_mother_recv(sv[1], fds) != 0)
			_exit(0); /* the mother is gone */
		worker_mother_become(fds, argv0);
		return true;
	}
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return false;
	}
	spare_sock = sv[0];
	spare_pid = (pid_t)pid;
	return false;
}

/* Hand @fds to the spare: 0, or -1 when it is gone (its pid then in *@dead). */
static int worker_mother_hand_over(int fds[FRAME_WORKER_FDS], pid_t *dead)
{
	ssize_t n = frame_send_fds(spare_sock, fds);

	close(spare_sock);
	spare_sock = -1;
	if (n != 1)
		*dead = spare_pid;
	return n == 1 ? 0 : -1;
}

/* Returns only in a new worker, with its pipes on fds 0 and 1. */
void worker_mother(char *argv0, const char *include_dir)
{
	prctl(PR_SET_NAME, WORKER_MOTHER_NAME, 0, 0, 0);
	/* Once for every worker to come: glibc's first-use work (worker_warm_up)
	 * and tcc's. */
	worker_warm_up();
	worker_warmed = true;
	worker_seccomp_prepare();
	worker_compile_rehearse(include_dir, NULL);
	for (;;) {
		int fds[FRAME_WORKER_FDS], r;
		pid_t dead = 0;
		long pid;

		/* After the answer to the last request, before the next one. */
		if (spare_sock < 0 && worker_mother_spare(argv0, include_dir, fds))
			return;
		r = worker_mother_recv(0, fds);
		if (r > 0)
			_exit(0);
		if (r < 0) {
			worker_mother_reply(-EBADMSG, 0);
			continue;
		}
		if (spare_sock >= 0 && worker_mother_hand_over(fds, &dead) == 0) {
			pid = spare_pid;
		} else {
			pid = worker_mother_clone();
			if (pid == 0) {
				worker_mother_become(fds, argv0);
				return;
			}
			if (pid < 0)
				pid = -errno;
		}
		for (int i = 0; i < FRAME_WORKER_FDS; i++)
			close(fds[i]);
		worker_mother_reply((int32_t)pid, (int32_t)dead);
	}
}
