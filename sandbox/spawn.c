/*
 * spawn: starting a worker (see sandbox_int.h), prefix sandbox_.
 *
 * Workers are started with posix_spawn, never fork: the daemon is multithreaded
 * and holds the FUSE fd and the LLM API key; posix_spawn (clone(CLONE_VFORK) +
 * exec in glibc) copies nothing of that, and the environment passed is empty.
 * Most workers come from the mother (worker/mother.c), one seglam-worker
 * started that way which forks a worker per request (or hands over the spare it
 * forked ahead): the request carries the worker's pipe ends over SCM_RIGHTS and
 * the answer is its pid and the pid of a spare it found dead, if any.  When there is no
 * mother (-o worker_reuse, or it keeps failing) each worker is spawned on its own.
 * sandbox_load() starts a worker when needed, sends a load request (the source
 * into the checked-out slot) and reads the compile verdict.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "sandbox_int.h"

/* A mother that keeps dying is not started again: workers are spawned one by one. */
#define SANDBOX_MOTHER_STARTS 16
/* The least time the mother is given to answer: its answer runs no procedure
 * code, so it is not bounded by -o timeout (which may be a few milliseconds). */
#define SANDBOX_MOTHER_ANSWER_MS 5000

/* The mother.  lock orders requests on its socket and protects every field; pid 0
 * when there is none (not yet started, or it died: started again on the next
 * spawn, up to SANDBOX_MOTHER_STARTS). */
static struct {
	pthread_mutex_t lock;
	pid_t pid;
	int fd;
	unsigned starts;
	uint64_t forks; /* by the current mother */
	pid_t owner;	/* getpid() of the process that started it */
} mom = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

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
 * /dev/null, @arena as FRAME_ARENA_FD and @load as FRAME_LOAD_FD unless they are
 * -1, nothing else), in its own process group, with default signal dispositions
 * and an empty environment.  @mother: start the mother instead.
 */
static int sandbox_spawn_exec(int fd0, int fd1, int arena, int load, bool mother, pid_t *pid)
{
	char mem[32], cap[32], cpu[32];
	char *argv[9] = {mother ? "seglam-mother" : "seglam-worker", sbx.include_dir,
			 SEGLAM_LIBTCC1, mem, cap};
	int argc = 5;
	char *envp[] = {NULL};		 /* no API key, no anything */
	int keep_below = FRAME_ARENA_FD; /* the first fd closed */
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int ret;

	argv[argc++] = cpu;
	if (sbx.cfg.allow_no_landlock)
		argv[argc++] = "allow_no_landlock";
	if (sbx.cfg.worker_reuse)
		argv[argc++] = "reuse";
	if (mother)
		argv[argc++] = "mother";
	argv[argc] = NULL;
	snprintf(mem, sizeof(mem), "%zu", sbx.cfg.mem_limit);
	snprintf(cap, sizeof(cap), "%zu", sbx.cfg.max_answer);
	snprintf(cpu, sizeof(cpu), "cpu=%u", sbx.cfg.cpu_backstop_s);
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
	if (!ret && arena >= 0) {
		ret = -posix_spawn_file_actions_adddup2(&fa, arena, FRAME_ARENA_FD);
		keep_below = FRAME_ARENA_FD + 1;
	}
	if (!ret && load >= 0) {
		ret = -posix_spawn_file_actions_adddup2(&fa, load, FRAME_LOAD_FD);
		keep_below = FRAME_LOAD_FD + 1;
	}
	if (!ret)
		ret = -posix_spawn_file_actions_addclosefrom_np(&fa, keep_below);
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

/*
 * End the mother (mom.lock held): close its socket (it exits on EOF), kill, reap.
 * Its spare (worker.c mother.c) is our child too and still in the mother's
 * process group: killed and reaped with it.  (A process group id is not reused
 * while a member lives, so -pid still names the spare's group after the mother
 * is reaped.)
 */
static void sandbox_mother_stop(void)
{
	if (mom.fd >= 0)
		close(mom.fd);
	mom.fd = -1;
	mom.forks = 0;
	if (mom.pid > 0) {
		kill(-mom.pid, SIGKILL);
		kill(mom.pid, SIGKILL);
		while (waitpid(mom.pid, NULL, 0) < 0 && errno == EINTR)
			;
		while (waitpid(-mom.pid, NULL, 0) > 0 || errno == EINTR)
			;
	}
	mom.pid = 0;
}

/* Reap a spare the mother found dead: it is exiting (its socket is closed), or a
 * process of ours that is not the mother's to name, which is then left alone. */
static void sandbox_mother_reap_spare(pid_t spare)
{
	int64_t deadline = frame_now_ms() + SANDBOX_EXIT_GRACE_MS;

	if (spare <= 0 || spare == mom.pid || getpgid(spare) != mom.pid)
		return;
	while (waitpid(spare, NULL, WNOHANG) == 0 && frame_now_ms() < deadline)
		usleep(200);
}

/* Start the mother (mom.lock held).  0 or -errno. */
static int sandbox_mother_start(void)
{
	int sv[2];
	int ret;

	if (mom.starts >= SANDBOX_MOTHER_STARTS)
		return -EAGAIN;
	mom.starts++;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	sv[0] = sandbox_high_fd(sv[0]);
	sv[1] = sandbox_high_fd(sv[1]);
	if (sv[0] < 0 || sv[1] < 0) {
		ret = -EMFILE;
		goto out;
	}
	ret = sandbox_spawn_exec(sv[1], -1, -1, -1, true, &mom.pid);
	if (ret)
		goto out;
	mom.fd = sv[0];
	mom.owner = getpid();
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
 * Did the mother end by a SIGKILL (mom.lock held)?  Not a way it fails by itself:
 * one that cannot set up exits with a status, and its seccomp filter kills with
 * SIGSYS.  So someone ended it from outside (an admin, the OOM killer), and it is
 * started again like any mother that died after forking.  Its socket closes a
 * moment before it can be waited for: look for up to 50 ms, without reaping
 * (sandbox_mother_stop does).
 */
static bool sandbox_mother_killed(void)
{
	for (int i = 0; i < 50; i++) {
		siginfo_t si = {0};

		if (waitid(P_PID, (id_t)mom.pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
			return false;
		if (si.si_pid == mom.pid)
			return si.si_code == CLD_KILLED && si.si_status == SIGKILL;
		usleep(1000);
	}
	return false;
}

/*
 * Ask the mother for a worker on @fds (frame.h: the pipe ends of its requests and
 * responses, its arena).  0 with *@pid, or -errno (then the caller spawns one
 * itself).  A mother that does not answer well within the time limit is ended.
 * *@handed says the fds reached it: a worker of its may then have them even
 * though no answer came (it answered late, or died after the clone), so they
 * must not be given to another.
 */
static int sandbox_mother_fork(const int fds[FRAME_WORKER_FDS], pid_t *pid, bool *handed)
{
	struct pollfd p;
	int32_t v[2] = {0, 0}; /* the worker's pid (or -errno), a dead spare's pid */
	ssize_t n;
	int ret;

	if (sbx.cfg.worker_reuse)
		return -ENOTSUP; /* the worker runs procedures itself: see worker.c */
	pthread_mutex_lock(&mom.lock);
	if (mom.pid > 0 && mom.owner != getpid()) {
		/* Started before fuse_daemonize() forked us: its workers would be
		 * the children of the process that exited, not ours.  Closing our
		 * end of its socket ends it; it is not ours to reap. */
		close(mom.fd);
		mom.fd = -1;
		mom.pid = 0;
	}
	if (mom.pid <= 0) {
		ret = sandbox_mother_start();
		if (ret)
			goto out;
	}
	n = frame_send_fds(mom.fd, fds);
	if (n != 1) {
		ret = n < 0 ? (int)n : -EIO;
		goto fail;
	}
	*handed = true;
	p = (struct pollfd){.fd = mom.fd, .events = POLLIN};
	do
		n = poll(&p, 1,
			 (int)(sbx.cfg.timeout_ms > SANDBOX_MOTHER_ANSWER_MS
				   ? sbx.cfg.timeout_ms
				   : SANDBOX_MOTHER_ANSWER_MS));
	while (n < 0 && errno == EINTR);
	if (n != 1) {
		ret = -ETIMEDOUT;
		goto fail;
	}
	do
		n = recv(mom.fd, v, sizeof(v), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(v)) {
		ret = -EIO;
		goto fail;
	}
	sandbox_mother_reap_spare(v[1]);
	if (v[0] <= 0) {
		/* (it answered that it made no worker: no one has the fds) */
		*handed = false;
		ret = v[0] < 0 ? v[0] : -EIO;
		goto out;
	}
	*pid = v[0];
	mom.forks++;
	ret = 0;
	goto out;
fail:
	/* One that never forked could not set up (no Landlock, say): spawning
	 * workers one by one reports why, per type; do not try again.  Unless it
	 * was killed before its first fork (a mother under ASan takes a while). */
	if (!mom.forks && (ret == -ETIMEDOUT || !sandbox_mother_killed()))
		mom.starts = SANDBOX_MOTHER_STARTS;
	log_warn("sandbox: the worker mother (pid %d) failed (%s): %s", (int)mom.pid,
		 strerror(-ret),
		 mom.starts < SANDBOX_MOTHER_STARTS ? "starting another"
						    : "spawning each worker instead");
	sandbox_mother_stop();
out:
	pthread_mutex_unlock(&mom.lock);
	return ret;
}

/* At shutdown: end the mother; a later sandbox_init may start one again. */
void sandbox_mother_shutdown(void)
{
	pthread_mutex_lock(&mom.lock);
	sandbox_mother_stop();
	mom.starts = 0;
	pthread_mutex_unlock(&mom.lock);
}

/*
 * A load request as an iovec (frame.h): the header, the source and, with @first
 * (a load that runs the type's first input), that input's length and bytes.
 * Returns the number of parts (2 or 4) and the bytes in *@total.
 */
static int sandbox_load_request(const struct sandbox_worker *w, const struct sandbox_input *first,
				uint32_t hdr[4], struct iovec iov[4], size_t *total)
{
	const struct sandbox_code *c = sandbox_cur_code(w);
	int n = 2;

	hdr[0] = first ? FRAME_REQ_LOAD_RUN : FRAME_REQ_LOAD;
	hdr[1] = w->cur;
	hdr[2] = (uint32_t)c->srclen;
	iov[0] = (struct iovec){hdr, 3 * sizeof(uint32_t)};
	iov[1] = (struct iovec){c->source, c->srclen};
	*total = iov[0].iov_len + c->srclen;
	if (first) {
		hdr[3] = (uint32_t)first->len;
		iov[2] = (struct iovec){&hdr[3], sizeof(uint32_t)};
		iov[3] = (struct iovec){(void *)first->data, first->len};
		*total += sizeof(uint32_t) + first->len;
		n = 4;
	}
	return n;
}

/* Write @parts of @iov (@total bytes) on @fd within @deadline, less the first
 * @skip bytes (in the pipe already: sandbox_presend); one write when they are
 * small.  Returns 0, -ETIMEDOUT or -errno. */
static int sandbox_write_parts(int fd, const struct iovec *iov, int parts, size_t total,
			       size_t skip, int64_t deadline)
{
	char small[4096];
	size_t at = 0;
	int ret = 0;

	if (total <= sizeof(small)) {
		for (int i = 0; i < parts; i++) {
			if (iov[i].iov_len)
				memcpy(small + at, iov[i].iov_base, iov[i].iov_len);
			at += iov[i].iov_len;
		}
		return frame_write_full(fd, small + skip, total - skip, deadline);
	}
	for (int i = 0; i < parts && !ret; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		ret = frame_write_full(fd, (const char *)iov[i].iov_base + skip,
				       iov[i].iov_len - skip, deadline);
		skip = 0;
	}
	return ret;
}

/*
 * The load request goes into the new worker's pipe @fd (our end, O_NONBLOCK)
 * before the worker exists: it reads it the moment it starts, with no turn of
 * ours in between (a cold start waits for every hop between processes).  Only
 * what the empty pipe takes at once: a new pipe may hold as little as one page
 * (an unprivileged user past fs.pipe-user-pages-soft gets those), and a write
 * that waited here would wait for a reader that is started only after it.
 * sandbox_load sends the rest once the worker runs, within the time limit.
 * Returns the bytes written.
 */
static size_t sandbox_presend(int fd, const struct sandbox_worker *w,
			      const struct sandbox_input *first)
{
	uint32_t hdr[4];
	struct iovec iov[4];
	size_t total;
	int parts = sandbox_load_request(w, first, hdr, iov, &total);
	ssize_t n;

	if (total > SANDBOX_PRESEND_MAX)
		return 0;
	do
		n = writev(fd, iov, parts);
	while (n < 0 && errno == EINTR);
	return n > 0 ? (size_t)n : 0;
}

/*
 * A new worker's arena (worker/load.c): a memfd of frame_arena_size(), sealed
 * against shrinking and growing.  Made here because a worker may not size a
 * file (RLIMIT_FSIZE 0); the worker maps it and seals it against new writable
 * shared mappings.  -errno on failure.
 */
static int sandbox_arena_fd(void)
{
	/* MFD_EXEC (Linux 6.3): executable even where vm.memfd_noexec=1 */
	int fd = memfd_create("seglam-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING | 0x0010U);

	if (fd < 0 && errno == EINVAL)
		fd = memfd_create("seglam-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	fd = sandbox_high_fd(fd);
	if (fd < 0)
		return -EMFILE;
	if (ftruncate(fd, (off_t)frame_arena_size(sbx.cfg.mem_limit)) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

/* Close what of a new worker's pipe ends and arena is still ours (not -1). */
static void sandbox_spawn_close(int req[2], int resp[2], int load[2], int *arena)
{
	for (int i = 0; i < 2; i++) {
		if (req[i] >= 0)
			close(req[i]);
		if (resp[i] >= 0)
			close(resp[i]);
		if (load[i] >= 0)
			close(load[i]);
		req[i] = resp[i] = load[i] = -1;
	}
	if (*arena >= 0)
		close(*arena);
	*arena = -1;
}

/* A worker on new pipes: forked by the mother, else spawned on its own. */
static int sandbox_spawn(struct sandbox_worker *w, const struct sandbox_input *first)
{
	int req[2] = {-1, -1}, resp[2] = {-1, -1}, load[2] = {-1, -1}, arena = -1;
	bool handed = false, mother = true;
	int tries = 0;
	int ret;

retry:
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
	if (!sbx.cfg.worker_reuse) {
		/* Loads on a pipe of their own, which the zygote reads: not through
		 * the run child waiting on the request pipe (a hand-over, and two
		 * processes woken rather than one, on every cold start). */
		arena = sandbox_arena_fd();
		if (arena < 0) {
			ret = arena;
			goto out;
		}
		if (pipe2(load, O_CLOEXEC) < 0) {
			ret = -errno;
			goto out;
		}
		for (int i = 0; i < 2; i++) {
			load[i] = sandbox_high_fd(load[i]);
			if (load[i] < 0) {
				ret = -EMFILE;
				goto out;
			}
		}
	}
	/* Our ends never block, from the start: sandbox_presend writes before
	 * there is a reader. */
	for (int i = 0; i < 3; i++) {
		int fd = i == 0 ? req[1] : i == 1 ? resp[0] : load[1];

		if (fd >= 0 && fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
			ret = -errno;
			goto out;
		}
	}
	w->load_sent = sandbox_presend(load[1] >= 0 ? load[1] : req[1], w, first);
	ret = -ECHILD;
	if (mother)
		ret = sandbox_mother_fork(
		    (const int[FRAME_WORKER_FDS]){req[0], resp[1], arena, load[0]}, &w->pid,
		    &handed);
	if (ret == 0) {
		pthread_mutex_lock(&sbx.lock);
		sbx.stats.forks++;
		pthread_mutex_unlock(&sbx.lock);
	} else if (handed) {
		/* A worker the failed mother made may hold these pipes: they go
		 * (it sees their end and exits), and the next try has its own: from
		 * a new mother once, then spawned. */
		handed = false;
		mother = ++tries < 2;
		sandbox_spawn_close(req, resp, load, &arena);
		goto retry;
	} else {
		ret = sandbox_spawn_exec(req[0], resp[1], arena, load[0], false, &w->pid);
	}
	if (ret)
		goto out;
	w->req_fd = req[1];
	w->resp_fd = resp[0];
	w->load_fd = load[1];
	req[1] = resp[0] = load[1] = -1;
out:
	sandbox_spawn_close(req, resp, load, &arena);
	return ret;
}

/*
 * The memory only process @pid holds, in bytes: its private pages (what its exit
 * frees; the pages it still shares with the mother are not its own).  From
 * /proc/PID/smaps_rollup, else statm's resident less file-backed pages (which
 * counts shared anonymous pages too: more than the truth, never less).
 */
static size_t sandbox_private_memory(pid_t pid)
{
	char path[64], line[256];
	size_t kb = 0, v;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "re");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if ((sscanf(line, "Private_Clean: %zu kB", &v) == 1 ||
			     sscanf(line, "Private_Dirty: %zu kB", &v) == 1)) {
				kb += v;
				found = true;
			}
		fclose(f);
	}
	if (found)
		return kb << 10;
	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	f = fopen(path, "re");
	if (f) {
		size_t size, resident, shared;

		if (fscanf(f, "%zu %zu %zu", &size, &resident, &shared) == 3 && resident > shared)
			kb = (resident - shared) * (size_t)(sysconf(_SC_PAGESIZE) >> 10);
		fclose(f);
	}
	return kb << 10;
}

/*
 * What ending the worker @pid frees, in bytes: its private pages and those of its
 * children (run children forked ahead, the compile child waiting for the next
 * load: they go with it, and a fresh fork shares nearly every page of the zygote,
 * so the zygote's own count alone says little).  Pages they share with each other
 * and not with the mother are counted by none: less than the truth.
 */
static size_t sandbox_worker_memory(pid_t pid)
{
	size_t total = sandbox_private_memory(pid);
	char path[64];
	FILE *f;
	int child;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	f = fopen(path, "re");
	if (!f)
		return total;
	while (fscanf(f, "%d", &child) == 1)
		total += sandbox_private_memory((pid_t)child);
	fclose(f);
	return total;
}

/*
 * Compile the source of @w's current slot there, starting @w first when it is a
 * new one (pid 0).  With @first, the process that compiles it runs that input
 * next (frame.h FRAME_REQ_LOAD_RUN; not in a -o worker_reuse worker, which has
 * no load pipe): its reply is then due (w->first_sent).  Returns 0; -ENOEXEC
 * with @err when the source does not compile; -EIO with @err; or -ENOSPC with
 * @err when the image does not fit what @w has left of its image space (the
 * caller tries another worker).
 */
int sandbox_load(struct sandbox_worker *w, const struct sandbox_input *first, struct buf *err)
{
	struct buf msg = BUF_INIT;
	uint32_t hdr[4];
	struct iovec iov[4];
	int64_t deadline;
	size_t total;
	int ret, parts, fd;

	w->first_sent = false;
	w->end = SANDBOX_END_NONE; /* (sandbox_exchange does too; a write may time out first) */
	if (sbx.cfg.worker_reuse)
		first = NULL;
	if (w->pid <= 0) {
		w->busy_ms = 0; /* a new process: a new CPU budget */
		ret = sandbox_spawn(w, first);
		pthread_mutex_lock(&sbx.lock);
		sbx.stats.spawns += ret == 0;
		pthread_mutex_unlock(&sbx.lock);
		if (ret < 0) {
			log_error("sandbox: cannot start %s: %s", sbx.worker_path, strerror(-ret));
			buf_printf(err, "cannot start the worker %s: %s", sbx.worker_path,
				   strerror(-ret));
			ret = -EIO;
			goto out;
		}
	} else {
		w->load_sent = 0;
	}
	/* The compile's time limit starts once there is a worker to compile: a
	 * mother that was slow to answer, or one started anew, takes none of it. */
	deadline = frame_now_ms() + sbx.cfg.timeout_ms;
	pthread_mutex_lock(&sbx.lock);
	sbx.stats.compiles++;
	pthread_mutex_unlock(&sbx.lock);
	parts = sandbox_load_request(w, first, hdr, iov, &total);
	/* Written here (one write when small: the worker wakes up once), less what
	 * went into a new worker's pipe before it started; then the exchange only
	 * reads.  (A -o worker_reuse worker has no load pipe: its one load comes on
	 * fd 0.) */
	fd = w->load_fd >= 0 ? w->load_fd : w->req_fd;
	ret = sandbox_write_parts(fd, iov, parts, total, w->load_sent, deadline);
	w->load_sent = 0;
	if (ret == -ETIMEDOUT) {
		sandbox_timed_out(err);
		sandbox_kill_reap(w->pid);
		w->pid = 0;
		ret = -EIO;
	} else {
		/* (a write error, EPIPE: the read says what became of the worker) */
		ret = sandbox_exchange(w, fd, NULL, 0, NULL, 0, FRAME_NO_ROOM, FRAME_MAX_MESSAGE,
				       deadline, &msg, err);
	}
	if (ret == FRAME_COMPILED && msg.len == 0) {
		w->first_sent = first != NULL;
		if (sbx.cfg.mem_budget)
			w->mem = sandbox_worker_memory(w->pid);
		ret = 0;
		goto out;
	}
	if (ret == FRAME_NO_ROOM && msg.len == 8) {
		uint64_t size;

		memcpy(&size, msg.data, 8);
		/* The numbers are frame.h's (frame_arena_size), not a copy of them. */
		buf_printf(err,
			   "the compiled procedure (%llu bytes) does not fit a worker's image "
			   "space (%zu KiB: -o worker_mem / 16, at most %u MiB)",
			   (unsigned long long)size, frame_arena_size(sbx.cfg.mem_limit) >> 10,
			   FRAME_ARENA_MAX >> 20);
		ret = -ENOSPC;
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
		ret = -ENOEXEC;
	} else if (ret == FRAME_COMPILE_DIED && msg.len == 4) {
		/* tcc may exit() or crash on some inputs: a compile failure too */
		int32_t st;

		memcpy(&st, msg.data, 4);
		buf_adds(err, "compiler ");
		sandbox_worker_ended(w, SANDBOX_END_NONE, st, err);
		/* A crash is the source's; a SIGKILL (the OOM killer, an operator)
		 * says nothing of it: that load failed, not the source. */
		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
			ret = -ENOEXEC;
	} else if (ret >= 0) {
		buf_adds(err, "protocol violation from the worker");
		sandbox_kill_reap(w->pid);
		w->pid = 0;
	} else {
		/* the worker itself died: its wait status says why */
		struct buf why = BUF_INIT;

		buf_add(&why, err->data, err->len);
		buf_reset(err);
		buf_printf(err, "compiler %s", buf_str(&why));
		buf_free(&why);
	}
	if (ret != -ENOEXEC)
		ret = -EIO;
	pthread_mutex_lock(&sbx.lock);
	sbx.stats.compile_failures++;
	pthread_mutex_unlock(&sbx.lock);
out:
	buf_free(&msg);
	return ret;
}
