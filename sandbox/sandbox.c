/*
 * sandbox: daemon side of compiling and running procedures, see sandbox.h.
 *
 * Owns the pool of seglam-worker processes (sandbox/worker/), the pipe protocol to
 * them (sandbox/worker/frame.h), time limits, answer caps and reaping.  Every byte
 * read from a worker is hostile: lengths are checked against caps before any
 * allocation, an unexpected status kills the worker, and a worker that failed in
 * any way is never reused.
 *
 * Workers are started with posix_spawn, never fork: the daemon is multithreaded
 * and holds the FUSE fd and the LLM API key; posix_spawn (clone(CLONE_VFORK) +
 * exec in glibc) copies nothing of that, and the environment passed is empty.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "config.h"
#include "frame.h"
#include "log.h"

#define SANDBOX_PER_SOURCE 4		    /* live workers per source before waiting */
#define SANDBOX_MAX_SOURCE (16u << 20)	    /* larger sources are refused */
#define SANDBOX_MAX_INPUT FRAME_REQ_MAX_LEN /* the frame length is a u32 */
#define SANDBOX_EXIT_GRACE_MS 500	    /* for a worker that closed its pipe */
/* A mother that keeps dying is not started again: workers are spawned one by one. */
#define SANDBOX_MOTHER_STARTS 16

struct sandbox_worker {
	struct sandbox_worker *prev, *next; /* in the idle list or the busy list */
	uint64_t key;			    /* XXH3_64bits(source) */
	char *source;			    /* compared in full: XXH3 is not collision proof */
	size_t srclen;
	pid_t pid;
	int req_fd, resp_fd; /* our ends, O_CLOEXEC | O_NONBLOCK */
	bool forgotten;	     /* sandbox_forget() while busy: discard on return */
	bool parked;	     /* waiting on a seglam_call: not counted against the cap */
};

struct sandbox_list {
	struct sandbox_worker *head, *tail; /* head = most recently used */
	unsigned n;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t returned; /* a worker went back to the pool or died */
	bool ready;
	struct sandbox_config cfg;
	char *worker_path, *include_dir;
	struct sandbox_list idle, busy; /* busy includes workers being started */
	/* Out of both lists and not yet reaped: still processes, so still under the
	 * cap until sandbox_kill_chain() has waited for them. */
	unsigned dying;
	unsigned killed; /* of those, SIGKILLed evictions awaiting their reaper */
	unsigned parked; /* busy workers waiting on a call (see sandbox.h) */
	sandbox_call_fn call_fn;
	struct sandbox_stats stats;
	/* The mother (worker.c "mother"): forks a worker per type.  mlock orders
	 * requests on its socket; pid 0 when there is none (not yet started, or it
	 * died: started again on the next spawn, up to SANDBOX_MOTHER_STARTS). */
	pthread_mutex_t mlock;
	pid_t mother_pid;
	int mother_fd;
	unsigned mother_starts;
	uint64_t mother_forks; /* by the current mother */
	pid_t mother_owner;    /* getpid() of the process that started it */
} sbx = {.lock = PTHREAD_MUTEX_INITIALIZER,
	 .returned = PTHREAD_COND_INITIALIZER,
	 .mlock = PTHREAD_MUTEX_INITIALIZER,
	 .mother_fd = -1};

/* The chain of runs this thread is in (composition): the top-level deadline. */
static _Thread_local struct {
	bool active;
	int64_t deadline;
} sbx_chain;

/* ------------------------------------------------------------------------- */
/* Lists (callers hold sbx.lock) */

static void sandbox_list_del(struct sandbox_list *l, struct sandbox_worker *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		l->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		l->tail = w->prev;
	w->prev = w->next = NULL;
	l->n--;
}

static void sandbox_list_push(struct sandbox_list *l, struct sandbox_worker *w)
{
	w->prev = NULL;
	w->next = l->head;
	if (l->head)
		l->head->prev = w;
	else
		l->tail = w;
	l->head = w;
	l->n++;
}

static bool sandbox_same_source(const struct sandbox_worker *w, uint64_t key, const char *src,
				size_t len)
{
	return w->key == key && w->srclen == len && memcmp(w->source, src, len) == 0;
}

/* ------------------------------------------------------------------------- */
/* One worker process */

static void sandbox_worker_free(struct sandbox_worker *w)
{
	if (w->req_fd >= 0)
		close(w->req_fd);
	if (w->resp_fd >= 0)
		close(w->resp_fd);
	free(w->source);
	free(w);
}

/* SIGKILL to the worker's process group: the worker and the child of the run in
 * progress (which is not ours to reap: it is reparented and reaped by init). */
static void sandbox_group_kill(pid_t pid)
{
	if (kill(-pid, SIGKILL) < 0)
		kill(pid, SIGKILL);
}

/* SIGKILL and reap: the one way a worker ends, so no zombie is ever left. */
static void sandbox_worker_kill(struct sandbox_worker *w)
{
	if (w->pid > 0) {
		sandbox_group_kill(w->pid);
		while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
			;
		w->pid = 0;
	}
	sandbox_worker_free(w);
}

/* A worker's (or a run's child's) wait status as a reason, appended to @err. */
static void sandbox_describe_status(int status, struct buf *err)
{
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		const char *name = sigabbrev_np(sig);

		if (sig == SIGSYS)
			buf_adds(err, "killed by the sandbox: forbidden system call (SIGSYS)");
		else if (sig == SIGXCPU || sig == SIGKILL)
			buf_printf(err, "killed by SIG%s (CPU or memory limit)", name ? name : "?");
		else
			buf_printf(err, "crashed: SIG%s", name ? name : "?");
	} else if (WEXITSTATUS(status) == WORKER_EXIT_OOM) {
		buf_printf(err, "ran out of memory (limit %zu MiB)", sbx.cfg.mem_limit >> 20);
	} else if (WEXITSTATUS(status) == WORKER_EXIT_SETUP) {
		buf_adds(err, "could not set up the sandbox");
	} else {
		buf_printf(err, "exited with status %d", WEXITSTATUS(status));
	}
}

/* Why did this worker stop talking?  Reaps it and appends the reason to @err. */
/* A run or batch exchange passed its deadline: say so and count it. */
static void sandbox_timed_out(struct buf *err)
{
	buf_printf(err, "timed out after %u ms", sbx.cfg.timeout_ms);
	pthread_mutex_lock(&sbx.lock);
	sbx.stats.timeouts++;
	pthread_mutex_unlock(&sbx.lock);
}

static void sandbox_worker_diagnose(struct sandbox_worker *w, struct buf *err)
{
	int64_t deadline = frame_now_ms() + SANDBOX_EXIT_GRACE_MS;
	int status = 0;
	pid_t r;

	/* Its response pipe is closed, so it is exiting; give it a moment to finish. */
	for (;;) {
		r = waitpid(w->pid, &status, WNOHANG);
		if (r != 0 || frame_now_ms() >= deadline)
			break;
		usleep(1000);
	}
	if (r == 0) {
		sandbox_group_kill(w->pid);
		while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR)
			;
		buf_adds(err, "stopped answering and was killed");
	} else if (r < 0) {
		buf_printf(err, "lost: waitpid: %s", strerror(errno));
	} else {
		/* the worker is gone; a run's child it left (if any) goes too */
		kill(-w->pid, SIGKILL);
		sandbox_describe_status(status, err);
	}
	w->pid = 0;
}

/* Keep our pipe ends off fds 0-2 (the dup2s in the child would clobber them). */
static int sandbox_high_fd(int fd)
{
	int nfd;

	if (fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return nfd;
}

/*
 * posix_spawn seglam-worker with @fd0 and @fd1 as its fds 0 and 1 (fd 2
 * /dev/null, nothing else), in its own process group, with default signal
 * dispositions and an empty environment.  @mother: start the mother instead.
 */
static int sandbox_spawn_exec(int fd0, int fd1, bool mother, pid_t *pid)
{
	char mem[32], cap[32];
	char *argv[8] = {mother ? "seglam-mother" : "seglam-worker", sbx.include_dir,
			 SEGLAM_LIBTCC1, mem, cap};
	int argc = 5;
	char *envp[] = {NULL}; /* no API key, no anything */
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int ret;

	if (sbx.cfg.allow_no_landlock)
		argv[argc++] = "allow_no_landlock";
	if (sbx.cfg.worker_reuse)
		argv[argc++] = "reuse";
	if (mother)
		argv[argc++] = "mother";
	argv[argc] = NULL;
	snprintf(mem, sizeof(mem), "%zu", sbx.cfg.mem_limit);
	snprintf(cap, sizeof(cap), "%zu", sbx.cfg.max_answer);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&all);
	ret = -posix_spawn_file_actions_adddup2(&fa, fd0, 0);
	if (!ret && fd1 >= 0)
		ret = -posix_spawn_file_actions_adddup2(&fa, fd1, 1);
	if (!ret && fd1 < 0)
		ret = -posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (!ret)
		ret = -posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	if (!ret)
		ret = -posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	/* default dispositions (the daemon ignores SIGPIPE) and an empty mask */
	if (!ret)
		ret = -posix_spawnattr_setsigdefault(&attr, &all);
	if (!ret)
		ret = -posix_spawnattr_setsigmask(&attr, &none);
	/* its own process group, so that a timeout kills the run's child too */
	if (!ret)
		ret = -posix_spawnattr_setpgroup(&attr, 0);
	if (!ret)
		ret = -posix_spawnattr_setflags(
		    &attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
	if (!ret)
		ret = -posix_spawn(pid, sbx.worker_path, &fa, &attr, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	return ret;
}

/* End the mother (mlock held): close its socket (it exits on EOF), kill, reap. */
static void sandbox_mother_stop(void)
{
	if (sbx.mother_fd >= 0)
		close(sbx.mother_fd);
	sbx.mother_fd = -1;
	sbx.mother_forks = 0;
	if (sbx.mother_pid > 0) {
		kill(sbx.mother_pid, SIGKILL);
		while (waitpid(sbx.mother_pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	sbx.mother_pid = 0;
}

/* Start the mother (mlock held).  0 or -errno. */
static int sandbox_mother_start(void)
{
	int sv[2];
	int ret;

	if (sbx.mother_starts >= SANDBOX_MOTHER_STARTS)
		return -EAGAIN;
	sbx.mother_starts++;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	sv[0] = sandbox_high_fd(sv[0]);
	sv[1] = sandbox_high_fd(sv[1]);
	if (sv[0] < 0 || sv[1] < 0) {
		ret = -EMFILE;
		goto out;
	}
	ret = sandbox_spawn_exec(sv[1], -1, true, &sbx.mother_pid);
	if (ret)
		goto out;
	sbx.mother_fd = sv[0];
	sbx.mother_owner = getpid();
	sv[0] = -1;
	pthread_mutex_lock(&sbx.lock);
	sbx.stats.mother_spawns++;
	pthread_mutex_unlock(&sbx.lock);
out:
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0)
			close(sv[i]);
	return ret;
}

/*
 * Ask the mother for a worker on the pipe ends @fd0 (its requests) and @fd1 (its
 * responses).  0 with *@pid, or -errno (then the caller spawns one itself).
 * A mother that does not answer well within the time limit is ended.
 */
static int sandbox_mother_fork(int fd0, int fd1, pid_t *pid)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} u;
	char byte = 'W';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c;
	struct pollfd p;
	int32_t v = 0;
	ssize_t n;
	int ret;

	if (sbx.cfg.worker_reuse)
		return -ENOTSUP; /* the worker runs procedures itself: see worker.c */
	pthread_mutex_lock(&sbx.mlock);
	if (sbx.mother_pid > 0 && sbx.mother_owner != getpid()) {
		/* Started before fuse_daemonize() forked us: its workers would be
		 * the children of the process that exited, not ours.  Closing our
		 * end of its socket ends it; it is not ours to reap. */
		close(sbx.mother_fd);
		sbx.mother_fd = -1;
		sbx.mother_pid = 0;
	}
	if (sbx.mother_pid <= 0) {
		ret = sandbox_mother_start();
		if (ret)
			goto out;
	}
	memset(&u, 0, sizeof(u));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(2 * sizeof(int));
	memcpy(CMSG_DATA(c), &fd0, sizeof(int));
	memcpy(CMSG_DATA(c) + sizeof(int), &fd1, sizeof(int));
	do
		n = sendmsg(sbx.mother_fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != 1) {
		ret = n < 0 ? -errno : -EIO;
		goto fail;
	}
	p = (struct pollfd){.fd = sbx.mother_fd, .events = POLLIN};
	do
		n = poll(&p, 1, (int)sbx.cfg.timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n != 1) {
		ret = -ETIMEDOUT;
		goto fail;
	}
	do
		n = recv(sbx.mother_fd, &v, sizeof(v), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(v)) {
		ret = -EIO;
		goto fail;
	}
	if (v <= 0) {
		ret = v < 0 ? v : -EIO;
		goto out;
	}
	*pid = v;
	sbx.mother_forks++;
	ret = 0;
	goto out;
fail:
	/* One that never forked could not set up (no Landlock, say): spawning
	 * workers one by one reports why, per type; do not try again. */
	if (!sbx.mother_forks)
		sbx.mother_starts = SANDBOX_MOTHER_STARTS;
	log_warn("sandbox: the worker mother (pid %d) failed (%s): %s", (int)sbx.mother_pid,
		 strerror(-ret),
		 sbx.mother_starts < SANDBOX_MOTHER_STARTS ? "starting another"
							   : "spawning each worker instead");
	sandbox_mother_stop();
out:
	pthread_mutex_unlock(&sbx.mlock);
	return ret;
}

static int sandbox_spawn(struct sandbox_worker *w)
{
	int req[2] = {-1, -1}, resp[2] = {-1, -1};
	int ret;

	/* O_CLOEXEC on every end: another thread spawning at the same moment must
	 * not inherit them (it would keep our pipes open and hide EOF). */
	if (pipe2(req, O_CLOEXEC) < 0 || pipe2(resp, O_CLOEXEC) < 0) {
		ret = -errno;
		goto out;
	}
	for (int i = 0; i < 2; i++) {
		req[i] = sandbox_high_fd(req[i]);
		resp[i] = sandbox_high_fd(resp[i]);
		if (req[i] < 0 || resp[i] < 0) {
			ret = -EMFILE;
			goto out;
		}
	}
	ret = sandbox_mother_fork(req[0], resp[1], &w->pid);
	if (ret == 0) {
		pthread_mutex_lock(&sbx.lock);
		sbx.stats.forks++;
		pthread_mutex_unlock(&sbx.lock);
	} else {
		ret = sandbox_spawn_exec(req[0], resp[1], false, &w->pid);
	}
	if (ret)
		goto out;
	w->req_fd = req[1];
	w->resp_fd = resp[0];
	req[1] = resp[0] = -1;
	fcntl(w->req_fd, F_SETFL, O_NONBLOCK);
	fcntl(w->resp_fd, F_SETFL, O_NONBLOCK);
out:
	for (int i = 0; i < 2; i++) {
		if (req[i] >= 0)
			close(req[i]);
		if (resp[i] >= 0)
			close(resp[i]);
	}
	return ret;
}

/* Largest call request: a type name, its NUL, and an input up to the answer cap
 * (so one callee's answer can be handed to another). */
#define SANDBOX_CALL_CAP                                                                           \
	((uint32_t)(sbx.cfg.max_answer < UINT32_MAX - 2 - FRAME_CALL_TYPE_MAX                      \
			? FRAME_CALL_TYPE_MAX + 1 + sbx.cfg.max_answer                             \
			: UINT32_MAX - 1))

static void sandbox_park(struct sandbox_worker *w, bool on)
{
	pthread_mutex_lock(&sbx.lock);
	w->parked = on;
	if (on) {
		sbx.parked++;
		sbx.stats.calls++;
		if (sbx.parked > sbx.stats.parked_max)
			sbx.stats.parked_max = sbx.parked;
		/* its slot under the cap is free for the callee (or anyone) now */
		pthread_cond_broadcast(&sbx.returned);
	} else {
		sbx.parked--;
	}
	pthread_mutex_unlock(&sbx.lock);
}

/*
 * Serve one call frame of @rlen bytes from @w (its header already read): read the
 * request, ask the handler (the worker parked meanwhile), write the answer frame.
 * *@deadline follows the chain's (a suspension for admitting the callee moved it).
 * Returns 0; -ETIMEDOUT; -EPROTO (a malformed request, @err says so); or -EIO when
 * the worker stopped talking.
 */
static int sandbox_answer_call(struct sandbox_worker *w, const char *req, size_t rlen,
			       int64_t *deadline, struct buf *err);

static int sandbox_serve_call(struct sandbox_worker *w, uint32_t rlen, int64_t *deadline,
			      struct buf *err)
{
	struct buf req = BUF_INIT;
	ssize_t r;
	int ret;

	buf_grow(&req, rlen);
	r = frame_read_full(w->resp_fd, req.data, rlen, *deadline);
	if (r < 0 || r != (ssize_t)rlen)
		ret = r == -ETIMEDOUT ? -ETIMEDOUT : -EIO;
	else
		ret = sandbox_answer_call(w, req.data, rlen, deadline, err);
	buf_free(&req);
	return ret;
}

/* The part of sandbox_serve_call after the request is read: @req, @rlen bytes
 * (a batch has it in its buffer already). */
static int sandbox_answer_call(struct sandbox_worker *w, const char *req, size_t rlen,
			       int64_t *deadline, struct buf *err)
{
	struct buf ans = BUF_INIT, why = BUF_INIT;
	uint8_t hdr[FRAME_REQ_HDR];
	const char *type, *in;
	size_t inlen;
	int ret, rc = -ENOSYS;

	if (frame_get_call(req, rlen, &type, &in, &inlen) < 0) {
		buf_adds(err, "protocol violation from the worker (malformed call)");
		ret = -EPROTO;
		goto out;
	}
	if (sbx.call_fn) {
		sandbox_park(w, true);
		rc = sbx.call_fn(type, in, inlen, &ans, &why);
		sandbox_park(w, false);
		if (sbx_chain.active)
			*deadline = sbx_chain.deadline;
		/* The chain's time is spent (a callee timed out, say): the whole read
		 * fails, whatever the caller would do with a NULL. */
		if (frame_now_ms() >= *deadline) {
			ret = -ETIMEDOUT;
			goto out;
		}
	}
	if (rc == 0 && ans.len > sbx.cfg.max_answer)
		rc = -EFBIG; /* the callee's own cap is the same: defensive */
	frame_put_request(hdr, rc == 0 ? (uint32_t)ans.len : FRAME_CALL_FAILED);
	ret = frame_write_full(w->req_fd, hdr, sizeof(hdr), *deadline);
	if (!ret && rc == 0 && ans.len)
		ret = frame_write_full(w->req_fd, ans.data, ans.len, *deadline);
	/* A write error (EPIPE) is not final here either: the reply read tells. */
	if (ret != -ETIMEDOUT)
		ret = 0;
out:
	buf_free(&ans);
	buf_free(&why);
	return ret;
}

/*
 * Send one frame and read the reply, within @deadline.  Returns the frame status
 * with the payload in @data, or -EIO with the reason in @err; on -EIO the worker
 * process is gone (reaped).
 */
static int sandbox_exchange(struct sandbox_worker *w, const void *msg, size_t len,
			    int32_t max_status, uint32_t cap, int64_t deadline, struct buf *data,
			    struct buf *err)
{
	uint8_t req[FRAME_REQ_HDR], resp[FRAME_RESP_HDR], small[1024];
	int32_t status;
	uint32_t rlen;
	ssize_t r;
	int wr;

	frame_put_request(req, (uint32_t)len);
	if (len <= sizeof(small) - sizeof(req)) {
		/* One write for a small request: the worker wakes up once. */
		memcpy(small, req, sizeof(req));
		memcpy(small + sizeof(req), msg, len);
		wr = frame_write_full(w->req_fd, small, sizeof(req) + len, deadline);
	} else {
		wr = frame_write_full(w->req_fd, req, sizeof(req), deadline);
		if (!wr)
			wr = frame_write_full(w->req_fd, msg, len, deadline);
	}
	/* A write error (EPIPE) is not final: the worker may have replied first. */
	if (wr == -ETIMEDOUT)
		goto timeout;
again:
	r = frame_read_full(w->resp_fd, resp, sizeof(resp), deadline);
	if (r == -ETIMEDOUT)
		goto timeout;
	if (r != (ssize_t)sizeof(resp))
		goto died;
	if (frame_get_response(resp, max_status, max_status >= FRAME_CALL ? SANDBOX_CALL_CAP : cap,
			       &status, &rlen) < 0 ||
	    (status != FRAME_CALL && rlen > cap)) {
		buf_adds(err, "protocol violation from the worker");
		goto kill;
	}
	if (status == FRAME_CALL) {
		r = sandbox_serve_call(w, rlen, &deadline, err);
		if (r == -ETIMEDOUT)
			goto timeout;
		if (r == -EPROTO)
			goto kill;
		if (r < 0)
			goto died;
		goto again;
	}
	buf_reset(data);
	buf_grow(data, rlen);
	r = frame_read_full(w->resp_fd, data->data, rlen, deadline);
	if (r == -ETIMEDOUT)
		goto timeout;
	if (r != (ssize_t)rlen)
		goto died;
	data->len = rlen;
	data->data[rlen] = '\0';
	return status;
timeout:
	sandbox_timed_out(err);
	goto kill;
died:
	sandbox_worker_diagnose(w, err);
	pthread_mutex_lock(&sbx.lock);
	sbx.stats.crashes++;
	pthread_mutex_unlock(&sbx.lock);
	return -EIO;
kill:
	sandbox_group_kill(w->pid);
	while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
		;
	w->pid = 0;
	return -EIO;
}

/* Anything readable after a reply (extra bytes, or EOF) means: do not reuse. */
static bool sandbox_worker_clean(struct sandbox_worker *w)
{
	struct pollfd p = {.fd = w->resp_fd, .events = POLLIN};

	return poll(&p, 1, 0) == 0;
}

/* ------------------------------------------------------------------------- */
/* The pool */

/* Put @w, already out of both lists, on the chain @dead to be killed.  Lock held. */
static void sandbox_doom(struct sandbox_worker **dead, struct sandbox_worker *w)
{
	w->next = *dead;
	*dead = w;
	sbx.dying++;
}

/* Idle workers of the LRU tail beyond the cap, taken out of the pool (caller holds
 * the lock, then kills the returned chain without it). */
static struct sandbox_worker *sandbox_trim(unsigned limit)
{
	struct sandbox_worker *dead = NULL;

	while (sbx.idle.n + sbx.busy.n - sbx.parked > limit && sbx.idle.tail) {
		struct sandbox_worker *w = sbx.idle.tail;

		sandbox_list_del(&sbx.idle, w);
		sandbox_doom(&dead, w);
		sbx.stats.evictions += sbx.ready; /* not at shutdown */
	}
	return dead;
}

/* Kill and reap a chain from sandbox_doom(); lock not held.  @killed: the
 * chain is counted in sbx.killed (evictions, see sandbox_checkout). */
static void sandbox_kill_chain(struct sandbox_worker *w, bool killed)
{
	unsigned n = 0;

	for (; w; n++) {
		struct sandbox_worker *next = w->next;

		sandbox_worker_kill(w);
		w = next;
	}
	if (!n)
		return;
	pthread_mutex_lock(&sbx.lock);
	sbx.dying -= n;
	if (killed)
		sbx.killed -= n;
	pthread_cond_broadcast(&sbx.returned);
	pthread_mutex_unlock(&sbx.lock);
}

static void sandbox_update_live(void)
{
	sbx.stats.live_workers = sbx.idle.n + sbx.busy.n;
}

/*
 * Take an idle worker of this source, or reserve a new one (pid 0, to be
 * started by the caller).  Waits when SANDBOX_PER_SOURCE are all busy, or when
 * the cap is reached by busy and dying workers: the cap bounds processes, so an
 * evicted worker counts until it has been reaped.
 */
static void sandbox_reap_chain(struct sandbox_worker *v);

static int sandbox_checkout(uint64_t key, const char *src, size_t len, struct sandbox_worker **out)
{
	struct sandbox_worker *w, *dead = NULL, *chain;
	int ret = 0;

	pthread_mutex_lock(&sbx.lock);
	for (;;) {
		unsigned mine = 0;

		if (!sbx.ready) {
			ret = -ESHUTDOWN;
			goto out;
		}
		for (w = sbx.idle.head; w; w = w->next)
			if (sandbox_same_source(w, key, src, len))
				break;
		if (w) {
			sandbox_list_del(&sbx.idle, w);
			sandbox_list_push(&sbx.busy, w);
			sbx.stats.pool_hits++;
			goto found;
		}
		for (w = sbx.busy.head; w; w = w->next)
			mine += !w->parked && sandbox_same_source(w, key, src, len);
		if (mine >= SANDBOX_PER_SOURCE) {
			pthread_cond_wait(&sbx.returned, &sbx.lock);
			continue;
		}
		if (!sbx.cfg.max_workers ||
		    sbx.idle.n + sbx.busy.n + sbx.dying - sbx.killed - sbx.parked <
			sbx.cfg.max_workers)
			break;
		/* Make room: evict least recently used idle workers.  An idle
		 * worker runs no procedure code, and with its request pipe closed
		 * it never will: it ends its children and exits.  The caller reaps
		 * them (sandbox_reap_chain, after the lock is dropped) before it
		 * starts the new worker, so the cap bounds processes: a reservation
		 * in busy and its victims are never alive together past it. */
		chain = sandbox_trim(sbx.cfg.max_workers - 1);
		if (chain) {
			struct sandbox_worker *v = chain;

			for (;; v = v->next) {
				/* EOF on its requests: an idle worker then ends its run
				 * children and reaps them itself (worker_serve) */
				close(v->req_fd);
				v->req_fd = -1;
				sbx.killed++;
				if (!v->next)
					break;
			}
			v->next = dead;
			dead = chain;
		} else {
			pthread_cond_wait(&sbx.returned, &sbx.lock);
		}
	}
	w = calloc(1, sizeof(*w));
	if (w)
		w->source = malloc(len ? len : 1);
	if (!w || !w->source) {
		if (w)
			free(w);
		ret = -ENOMEM;
		goto out;
	}
	memcpy(w->source, src, len);
	sbx.stats.pool_misses++;
	w->srclen = len;
	w->key = key;
	w->req_fd = w->resp_fd = -1;
	sandbox_list_push(&sbx.busy, w);
found:
	*out = w;
out:
	sandbox_update_live();
	pthread_mutex_unlock(&sbx.lock);
	sandbox_reap_chain(dead);
	return ret;
}

/* Reap evicted workers (see sandbox_checkout): their request pipe was closed, so
 * they are exiting and reap their own run children (a SIGKILL would leave the
 * child forked ahead to PID 1); those not gone within the grace are killed. */
static void sandbox_reap_chain(struct sandbox_worker *v)
{
	int64_t deadline = frame_now_ms() + SANDBOX_EXIT_GRACE_MS;

	for (struct sandbox_worker *x = v; x; x = x->next) {
		while (x->pid > 0) {
			pid_t r = waitpid(x->pid, NULL, WNOHANG);

			if (r == x->pid || (r < 0 && errno != EINTR)) {
				x->pid = 0;
			} else if (frame_now_ms() >= deadline) {
				break; /* sandbox_kill_chain kills and reaps it */
			} else if (r == 0) {
				usleep(200);
			}
		}
	}
	sandbox_kill_chain(v, true);
}

/* Return a checked-out worker: to the idle list when @reuse, else kill it. */
static void sandbox_checkin(struct sandbox_worker *w, bool reuse)
{
	struct sandbox_worker *dead = NULL;

	pthread_mutex_lock(&sbx.lock);
	sandbox_list_del(&sbx.busy, w);
	if (reuse && w->pid > 0 && !w->forgotten && sbx.ready) {
		sandbox_list_push(&sbx.idle, w);
		dead = sandbox_trim(sbx.cfg.max_workers);
	} else {
		sandbox_doom(&dead, w);
	}
	sandbox_update_live();
	pthread_cond_broadcast(&sbx.returned);
	pthread_mutex_unlock(&sbx.lock);
	sandbox_kill_chain(dead, false);
}

/* Start the reserved worker @w and compile its source.  0 or -EIO with @err. */
static int sandbox_start(struct sandbox_worker *w, struct buf *err)
{
	int64_t deadline = frame_now_ms() + sbx.cfg.timeout_ms;
	struct buf msg = BUF_INIT;
	int ret;

	ret = sandbox_spawn(w);
	pthread_mutex_lock(&sbx.lock);
	sbx.stats.spawns += ret == 0;
	sbx.stats.compiles++;
	pthread_mutex_unlock(&sbx.lock);
	if (ret < 0) {
		log_error("sandbox: cannot start %s: %s", sbx.worker_path, strerror(-ret));
		buf_printf(err, "cannot start the worker %s: %s", sbx.worker_path, strerror(-ret));
		ret = -EIO;
		goto out;
	}
	ret = sandbox_exchange(w, w->source, w->srclen, FRAME_COMPILE_ERROR, FRAME_MAX_MESSAGE,
			       deadline, &msg, err);
	if (ret == FRAME_COMPILED && msg.len == 0) {
		ret = 0;
		goto out;
	}
	if (ret == FRAME_COMPILE_ERROR) {
		/* A reason, always: an empty one would read "compile failed: ".  It is
		 * the worker's (tcc's, quoting the source: "#error ESC[2J") text, on its
		 * way to logs, the LLM and readers: no control byte gets through. */
		if (msg.len)
			buf_addrepr(err, msg.data, msg.len, true);
		else
			buf_adds(err, "the compiler failed without a message");
	} else if (ret == FRAME_COMPILED) {
		buf_adds(err, "protocol violation from the worker");
	} else {
		/* tcc may exit() or crash on some inputs: a compile failure too */
		struct buf why = BUF_INIT;

		buf_add(&why, err->data, err->len);
		buf_reset(err);
		buf_printf(err, "compiler %s", buf_str(&why));
		buf_free(&why);
	}
	ret = -EIO;
	pthread_mutex_lock(&sbx.lock);
	sbx.stats.compile_failures++;
	pthread_mutex_unlock(&sbx.lock);
out:
	buf_free(&msg);
	return ret;
}

/* ------------------------------------------------------------------------- */
/* API */

int sandbox_init(const struct sandbox_config *cfg)
{
	int ret = 0;

	pthread_mutex_lock(&sbx.lock);
	if (sbx.ready) {
		ret = -EALREADY;
		goto out;
	}
	if (!cfg || !cfg->worker_path || !cfg->include_dir) {
		ret = -EINVAL;
		goto out;
	}
	sbx.cfg = *cfg;
	if (!sbx.cfg.timeout_ms)
		sbx.cfg.timeout_ms = 2000;
	if (!sbx.cfg.max_answer)
		sbx.cfg.max_answer = 1u << 20;
	if (sbx.cfg.max_answer > UINT32_MAX - 1)
		sbx.cfg.max_answer = UINT32_MAX - 1;
	if (!sbx.cfg.mem_limit)
		sbx.cfg.mem_limit = 256u << 20;
	if (!sbx.cfg.max_workers)
		sbx.cfg.max_workers = 64;
	sbx.worker_path = strdup(cfg->worker_path);
	sbx.include_dir = strdup(cfg->include_dir);
	if (!sbx.worker_path || !sbx.include_dir) {
		free(sbx.worker_path);
		free(sbx.include_dir);
		ret = -ENOMEM;
		goto out;
	}
	sbx.cfg.worker_path = sbx.worker_path;
	sbx.cfg.include_dir = sbx.include_dir;
	memset(&sbx.stats, 0, sizeof(sbx.stats));
	sbx.ready = true;
	/* The workers enforce it (they see the same kernel); say it once here too. */
	if (syscall(SYS_landlock_create_ruleset, NULL, 0, 1UL /* _VERSION */) < 0) {
		if (sbx.cfg.allow_no_landlock)
			log_warn("sandbox: Landlock is not available (%s): compiles are guarded "
				 "by the precheck alone (-o allow_no_landlock)",
				 strerror(errno));
		else
			log_error("sandbox: Landlock is not available (%s): every compile will "
				  "be refused; use a kernel of 5.13 or later with landlock in its "
				  "lsm= list, or accept the risk with -o allow_no_landlock",
				  strerror(errno));
	}
out:
	pthread_mutex_unlock(&sbx.lock);
	return ret;
}

void sandbox_shutdown(void)
{
	struct sandbox_worker *dead;

	pthread_mutex_lock(&sbx.lock);
	if (!sbx.ready) {
		pthread_mutex_unlock(&sbx.lock);
		return;
	}
	sbx.ready = false;
	dead = sandbox_trim(0);
	/* Busy workers belong to requests still running: they are killed when
	 * checked in (sbx.ready is false); wait for them so nothing outlives us. */
	pthread_cond_broadcast(&sbx.returned);
	while (sbx.busy.n)
		pthread_cond_wait(&sbx.returned, &sbx.lock);
	sandbox_update_live();
	pthread_mutex_unlock(&sbx.lock);
	sandbox_kill_chain(dead, false);
	pthread_mutex_lock(&sbx.mlock);
	sandbox_mother_stop();
	sbx.mother_starts = 0;
	pthread_mutex_unlock(&sbx.mlock);
	free(sbx.worker_path);
	free(sbx.include_dir);
	sbx.worker_path = sbx.include_dir = NULL;
}

int sandbox_compile(const char *source, size_t srclen, struct buf *err)
{
	uint64_t key = XXH3_64bits(source, srclen);
	struct sandbox_worker *w = NULL;
	int ret;

	if (srclen > SANDBOX_MAX_SOURCE) {
		buf_printf(err, "source is larger than %u bytes", SANDBOX_MAX_SOURCE);
		return -EIO;
	}
	ret = sandbox_checkout(key, source, srclen, &w);
	if (ret < 0) {
		buf_printf(err, "sandbox: %s", strerror(-ret));
		ret = -EIO;
		goto out;
	}
	if (w->pid > 0)
		goto out; /* already compiled and idle */
	ret = sandbox_start(w, err);
out:
	if (w)
		sandbox_checkin(w, ret == 0);
	return ret;
}

/* One exchange with a started worker; sets *@reuse when it may serve again. */
static int sandbox_run_once(struct sandbox_worker *w, const char *in, size_t inlen, struct buf *out,
			    struct buf *err, bool *reuse)
{
	struct timespec t0, t1;
	int64_t deadline;
	bool chain_top;
	int ret;

	/* The time limit covers the run only, not the compile before it.  One clock
	 * read serves the limit and the run_ns statistic (frame_now_ms's clock). */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	deadline = (int64_t)t0.tv_sec * 1000 + t0.tv_nsec / 1000000 + sbx.cfg.timeout_ms;
	/* A callee gets what is left of the top-level run's time (sandbox.h). */
	chain_top = !sbx_chain.active;
	if (chain_top) {
		sbx_chain.active = true;
		sbx_chain.deadline = deadline;
	} else if (sbx_chain.deadline < deadline) {
		deadline = sbx_chain.deadline;
	}
	/* FRAME_FAILED carries 8 bytes even when the answer cap is smaller */
	ret = sandbox_exchange(w, in, inlen, FRAME_CALL,
			       (uint32_t)(sbx.cfg.max_answer < 8 ? 8 : sbx.cfg.max_answer),
			       deadline, out, err);
	if (chain_top)
		sbx_chain.active = false;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_mutex_lock(&sbx.lock);
	sbx.stats.runs++;
	sbx.stats.run_ns +=
	    (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
	pthread_mutex_unlock(&sbx.lock);
	*reuse = false;
	if ((ret == FRAME_ANSWER || ret == FRAME_REJECTED) && out->len > sbx.cfg.max_answer)
		ret = FRAME_TOO_LARGE;
	switch (ret) {
	case FRAME_ANSWER:
		*reuse = sandbox_worker_clean(w);
		return 0;
	case FRAME_REJECTED:
		*reuse = sandbox_worker_clean(w);
		return -EINVAL;
	case FRAME_TOO_LARGE:
		buf_reset(out);
		buf_printf(err, "answer exceeds %zu bytes", sbx.cfg.max_answer);
		return -EIO;
	case FRAME_FAILED: {
		int32_t fail[2];

		if (out->len != sizeof(fail)) {
			buf_adds(err, "protocol violation from the worker");
		} else {
			memcpy(fail, out->data, sizeof(fail));
			if (fail[0] == FRAME_FAIL_DIED) {
				/* the zygote is untouched: it may serve again */
				sandbox_describe_status(fail[1], err);
				*reuse = sandbox_worker_clean(w);
			} else {
				buf_adds(err, "protocol violation from the procedure");
			}
		}
		buf_reset(out);
		pthread_mutex_lock(&sbx.lock);
		sbx.stats.crashes++;
		pthread_mutex_unlock(&sbx.lock);
		return -EIO;
	}
	default:
		buf_reset(out);
		return -EIO;
	}
}

void sandbox_set_call_handler(sandbox_call_fn fn)
{
	pthread_mutex_lock(&sbx.lock);
	sbx.call_fn = fn;
	pthread_mutex_unlock(&sbx.lock);
}

void sandbox_chain_suspend(struct sandbox_chain_saved *saved)
{
	saved->active = sbx_chain.active;
	saved->deadline = sbx_chain.deadline;
	saved->since = frame_now_ms();
	sbx_chain.active = false;
}

void sandbox_chain_resume(const struct sandbox_chain_saved *saved)
{
	sbx_chain.active = saved->active;
	/* the time spent suspended is not the chain's */
	sbx_chain.deadline = saved->deadline + (frame_now_ms() - saved->since);
}

int sandbox_run(const char *source, size_t srclen, const char *in, size_t inlen, struct buf *out,
		struct buf *err)
{
	uint64_t key = XXH3_64bits(source, srclen);
	struct sandbox_worker *w = NULL;
	bool reuse = false;
	int ret;

	if (srclen > SANDBOX_MAX_SOURCE) {
		buf_printf(err, "source is larger than %u bytes", SANDBOX_MAX_SOURCE);
		return -EIO;
	}
	if (inlen > SANDBOX_MAX_INPUT) {
		buf_printf(err, "input is larger than %u bytes", SANDBOX_MAX_INPUT);
		return -EIO;
	}
	for (int attempt = 0;; attempt++) {
		bool fresh;

		ret = sandbox_checkout(key, source, srclen, &w);
		if (ret < 0) {
			buf_printf(err, "sandbox: %s", strerror(-ret));
			ret = -EIO;
			w = NULL;
			break;
		}
		fresh = w->pid <= 0;
		if (fresh) {
			ret = sandbox_start(w, err);
			if (ret < 0)
				break;
		}
		ret = sandbox_run_once(w, in, inlen, out, err, &reuse);
		/* A pooled worker killed from outside while idle (SIGKILL: the OOM killer,
		 * an operator) is not this input's fault: try once more in a fresh one. */
		if (ret != -EIO || fresh || attempt > 0 || !strstr(buf_str(err), "SIGKILL"))
			break;
		sandbox_checkin(w, false);
		w = NULL;
		buf_reset(err);
		buf_reset(out);
	}
	if (w)
		sandbox_checkin(w, reuse);
	return ret;
}

void sandbox_forget(const char *source, size_t srclen)
{
	uint64_t key = XXH3_64bits(source, srclen);
	struct sandbox_worker *w, *next, *dead = NULL;

	pthread_mutex_lock(&sbx.lock);
	for (w = sbx.idle.head; w; w = next) {
		next = w->next;
		if (sandbox_same_source(w, key, source, srclen)) {
			sandbox_list_del(&sbx.idle, w);
			sandbox_doom(&dead, w);
		}
	}
	for (w = sbx.busy.head; w; w = w->next)
		if (sandbox_same_source(w, key, source, srclen))
			w->forgotten = true;
	sandbox_update_live();
	pthread_mutex_unlock(&sbx.lock);
	sandbox_kill_chain(dead, false);
}

void sandbox_get_stats(struct sandbox_stats *st)
{
	pthread_mutex_lock(&sbx.lock);
	*st = sbx.stats;
	st->live_workers = sbx.idle.n + sbx.busy.n;
	pthread_mutex_unlock(&sbx.lock);
}

/* ------------------------------------------------------------------------- */
/* Batches (seglam map) */

#define SANDBOX_BATCH_PIPE (1 << 20) /* pipe size asked for: one write, one wakeup */
#define SANDBOX_BATCH_READ (256u << 10)
#define SANDBOX_BATCH_SLACK_MS 50 /* flush interval + coarse clock granularity */
#define SANDBOX_BATCH_FLUSH_MS 10
#define SANDBOX_BATCH_OUT (1u << 20) /* answers of one batch, bytes (then FRAME_SKIPPED) */

static void sandbox_put_le32(char *p, uint32_t v)
{
	p[0] = (char)(v & 0xff);
	p[1] = (char)((v >> 8) & 0xff);
	p[2] = (char)((v >> 16) & 0xff);
	p[3] = (char)(v >> 24);
}

/*
 * Turn the worker records read into @out from @*parse on into batch records,
 * in place: [i32 status][u32 len] native -> [u32 kind][u32 len] little-endian.
 * An answer over the cap becomes a failure with its reason.  Counts complete
 * records in @*got (at most @want).  Returns 0, or -EPROTO for a bad record.
 */
static int sandbox_batch_parse(struct buf *out, size_t *parse, size_t *got, size_t *skipped,
			       size_t want)
{
	while (*got + *skipped < want && out->len - *parse >= FRAME_RESP_HDR) {
		uint8_t *h = (uint8_t *)out->data + *parse;
		int32_t status;
		uint32_t len;

		if (frame_get_response(h, FRAME_SKIPPED, SANDBOX_CALL_CAP, &status, &len) < 0 ||
		    (status != FRAME_CALL && len > sbx.cfg.max_answer &&
		     !(status == FRAME_FAILED && len == 8)) ||
		    (status == FRAME_FAILED && len != 8))
			return -EPROTO;
		if (status == FRAME_CALL || status == FRAME_FAILED) {
			/* the zygote's: handled by the caller once it is whole */
			if (*skipped)
				return -EPROTO;
			if (out->len - *parse - FRAME_RESP_HDR < len)
				break;
			return status;
		}
		if (status == FRAME_SKIPPED) {
			/* no bytes; once skipping, every later input is skipped too */
			if (len)
				return -EPROTO;
			memmove(h, h + FRAME_RESP_HDR, out->len - *parse - FRAME_RESP_HDR);
			out->len -= FRAME_RESP_HDR;
			(*skipped)++;
			continue;
		}
		if (*skipped)
			return -EPROTO;
		if (out->len - *parse - FRAME_RESP_HDR < len)
			break;
		if (status == FRAME_TOO_LARGE) {
			char why[64];
			size_t wl = (size_t)snprintf(why, sizeof(why), "answer exceeds %zu bytes",
						     sbx.cfg.max_answer);
			size_t at = *parse + FRAME_RESP_HDR;

			buf_grow(out, wl);
			memmove(out->data + at + wl, out->data + at, out->len - at);
			memcpy(out->data + at, why, wl);
			out->len += wl;
			h = (uint8_t *)out->data + *parse;
			status = SANDBOX_FAILED;
			len = (uint32_t)wl;
		}
		sandbox_put_le32((char *)h, (uint32_t)status);
		sandbox_put_le32((char *)h + 4, len);
		*parse += FRAME_RESP_HDR + len;
		(*got)++;
	}
	return 0;
}

/*
 * Send @count inputs (@frames, @bytes) as one batch request and read the answers
 * into @out.  *@got counts the inputs answered, even on failure.  Returns 0, or
 * -EIO with the reason in @err and the worker reaped.
 */
static int sandbox_batch_exchange(struct sandbox_worker *w, const char *frames, size_t bytes,
				  size_t count, bool each, struct buf *out, size_t *got,
				  struct buf *err)
{
	uint8_t req[FRAME_REQ_HDR + sizeof(struct frame_batch)];
	struct frame_batch b = {.flags = each ? FRAME_BATCH_EACH : 0,
				.flush_ms = SANDBOX_BATCH_FLUSH_MS,
				.count = (uint32_t)count,
				.bytes = (uint32_t)bytes,
				.out_max = SANDBOX_BATCH_OUT};
	size_t parse = out->len, base = out->len, skipped = 0;
	int64_t deadline = frame_now_ms() + sbx.cfg.timeout_ms + SANDBOX_BATCH_SLACK_MS;
	int wr;

	*got = 0;
	frame_put_request(req, FRAME_REQ_BATCH);
	memcpy(req + FRAME_REQ_HDR, &b, sizeof(b));
	wr = frame_write_full(w->req_fd, req, sizeof(req), deadline);
	if (!wr)
		wr = frame_write_full(w->req_fd, frames, bytes, deadline);
	if (wr == -ETIMEDOUT)
		goto timeout;
	/* On a write error (EPIPE) the worker is gone: reading says why. */
	while (*got + skipped < count) {
		struct pollfd p = {.fd = w->resp_fd, .events = POLLIN};
		size_t before = *got;
		int64_t left;
		ssize_t r;
		int rec;

		buf_grow(out, SANDBOX_BATCH_READ);
		r = read(w->resp_fd, out->data + out->len, SANDBOX_BATCH_READ);
		if (r > 0) {
			out->len += (size_t)r;
			/* An honest worker stops at out_max plus one answer. */
			rec = sandbox_batch_parse(out, &parse, got, &skipped, count);
			if (rec < 0 || parse - base > SANDBOX_BATCH_OUT + sbx.cfg.max_answer + 64) {
				buf_adds(err, "protocol violation from the worker");
				goto kill;
			}
			if (rec == FRAME_CALL) {
				/* seglam_call from the current input: answered within its
				 * time limit, which also bounds the callee (sandbox.h) */
				uint32_t len;
				int rc;

				memcpy(&len, out->data + parse + 4, 4);
				sbx_chain.active = true;
				sbx_chain.deadline = deadline;
				rc = sandbox_answer_call(w, out->data + parse + FRAME_RESP_HDR, len,
							 &deadline, err);
				sbx_chain.active = false;
				memmove(out->data + parse, out->data + parse + FRAME_RESP_HDR + len,
					out->len - parse - FRAME_RESP_HDR - len);
				out->len -= FRAME_RESP_HDR + len;
				if (rc == -ETIMEDOUT)
					goto timeout;
				if (rc < 0)
					goto kill;
				continue;
			}
			if (rec == FRAME_FAILED) {
				/* the zygote's word for the input it was on: its child
				 * died (the reason) or broke the protocol */
				int32_t fail[2];

				memcpy(fail, out->data + parse + FRAME_RESP_HDR, sizeof(fail));
				if (fail[0] == FRAME_FAIL_DIED)
					sandbox_describe_status(fail[1], err);
				else
					buf_adds(err, "protocol violation from the procedure");
				pthread_mutex_lock(&sbx.lock);
				sbx.stats.crashes++;
				pthread_mutex_unlock(&sbx.lock);
				goto kill_quiet;
			}
			/* The time limit is per input: it restarts with each answer. */
			if (*got > before)
				deadline =
				    frame_now_ms() + sbx.cfg.timeout_ms + SANDBOX_BATCH_SLACK_MS;
			continue;
		}
		if (r == 0 || (errno != EINTR && errno != EAGAIN))
			goto died;
		if (errno == EINTR)
			continue;
		left = deadline - frame_now_ms();
		if (left <= 0)
			goto timeout;
		if (poll(&p, 1, left > 60000 ? 60000 : (int)left) < 0 && errno != EINTR)
			goto died;
	}
	if (parse == out->len)
		return 0;
	/* Every answer is in, but more bytes came: keep the answers, not the worker. */
	log_error("sandbox: worker %d sent bytes after its last answer: killed", (int)w->pid);
	goto kill;
timeout:
	sandbox_timed_out(err);
	goto kill;
died:
	out->len = parse; /* drop a partial record */
	sandbox_worker_diagnose(w, err);
	pthread_mutex_lock(&sbx.lock);
	sbx.stats.crashes++;
	pthread_mutex_unlock(&sbx.lock);
	return -EIO;
kill:
kill_quiet:
	out->len = parse;
	sandbox_group_kill(w->pid);
	while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
		;
	w->pid = 0;
	return *got + skipped == count ? 0 : -EIO;
}

static void sandbox_batch_failed(struct buf *out, const struct buf *why)
{
	char h[8];

	sandbox_put_le32(h, SANDBOX_FAILED);
	sandbox_put_le32(h + 4, (uint32_t)why->len);
	buf_add(out, h, sizeof(h));
	buf_add(out, why->data ? why->data : "", why->len);
}

int sandbox_run_batch(const char *source, size_t srclen, const char *frames, size_t bytes,
		      size_t count, struct buf *out, size_t *ran, struct buf *err)
{
	uint64_t key = XXH3_64bits(source, srclen);
	struct buf why = BUF_INIT;
	size_t done = 0, off = 0, mark = out->len;
	bool each = false;
	int ret = 0;

	if (srclen > SANDBOX_MAX_SOURCE) {
		buf_printf(err, "source is larger than %u bytes", SANDBOX_MAX_SOURCE);
		return -EIO;
	}
	if (bytes > FRAME_BATCH_MAX || count > FRAME_BATCH_MAX_COUNT) {
		buf_printf(err, "batch larger than %u bytes or %u inputs", FRAME_BATCH_MAX,
			   FRAME_BATCH_MAX_COUNT);
		return -EIO;
	}
	while (done < count) {
		struct sandbox_worker *w = NULL;
		struct timespec t0, t1;
		size_t got = 0;

		ret = sandbox_checkout(key, source, srclen, &w);
		if (ret < 0) {
			buf_printf(err, "sandbox: %s", strerror(-ret));
			ret = -EIO;
			break;
		}
		if (w->pid <= 0) {
			ret = sandbox_start(w, err);
			if (ret < 0) {
				sandbox_checkin(w, false);
				break;
			}
			/* Room for a whole batch in each pipe: fewer wakeups both ways. */
			fcntl(w->req_fd, F_SETPIPE_SZ, SANDBOX_BATCH_PIPE);
			fcntl(w->resp_fd, F_SETPIPE_SZ, SANDBOX_BATCH_PIPE);
		}
		clock_gettime(CLOCK_MONOTONIC, &t0);
		buf_reset(&why);
		ret = sandbox_batch_exchange(w, frames + off, bytes - off, count - done, each, out,
					     &got, &why);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		pthread_mutex_lock(&sbx.lock);
		sbx.stats.runs += got;
		sbx.stats.run_ns +=
		    (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
		pthread_mutex_unlock(&sbx.lock);
		sandbox_checkin(w, ret == 0 && w->pid > 0 && sandbox_worker_clean(w));
		for (size_t i = 0; i < got; i++)
			off += FRAME_REQ_HDR + frame_get_request((const uint8_t *)frames + off);
		done += got;
		if (ret == 0 && done < count && !got) {
			/* an honest worker always runs the first input of a batch */
			buf_adds(err, "protocol violation from the worker (skipped every input)");
			ret = -EIO;
			break;
		}
		if (ret == 0)
			break; /* all answered, or the rest skipped (out_max): sent again */
		ret = 0;
		if (!each && count - done > 1) {
			/* Buffered answers died with the worker: go again answer by
			 * answer, so the input that kills it is known. */
			each = true;
			continue;
		}
		/* Answer by answer (or with one input left), the first input not
		 * answered is the culprit.  The rest of this batch stays answer by
		 * answer: where one input failed, the next failure costs one run. */
		sandbox_batch_failed(out, &why);
		off += FRAME_REQ_HDR + frame_get_request((const uint8_t *)frames + off);
		done++;
		each = true;
	}
	if (ret < 0) {
		out->len = mark;
		done = 0;
	}
	*ran = done;
	buf_free(&why);
	return ret;
}

void sandbox_stats_print(struct buf *out)
{
	struct sandbox_stats st;
	uint64_t asked;

	sandbox_get_stats(&st);
	asked = st.pool_hits + st.pool_misses;
	buf_printf(out, "worker_forks %llu\n", (unsigned long long)st.forks);
	buf_printf(out, "worker_mother_spawns %llu\n", (unsigned long long)st.mother_spawns);
	buf_printf(out, "worker_compiles %llu\n", (unsigned long long)st.compiles);
	buf_printf(out, "worker_evictions %llu\n", (unsigned long long)st.evictions);
	buf_printf(out, "worker_pool_hits %llu\n", (unsigned long long)st.pool_hits);
	buf_printf(out, "worker_pool_misses %llu\n", (unsigned long long)st.pool_misses);
	/* stats values are integers: the ratio in thousandths */
	buf_printf(out, "worker_pool_hit_permille %llu\n",
		   (unsigned long long)(asked ? st.pool_hits * 1000 / asked : 0));
	buf_printf(out, "workers_max %u\n", sbx.cfg.max_workers);
}
