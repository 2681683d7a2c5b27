/*
 * confine: the steps that shut the worker in (prefix worker_): fds closed, root
 * dropped, rlimits, no_new_privs, Landlock, glibc's one-time work done early,
 * and the seccomp filters (the zygote's, the run child's on top of it, and the
 * -o worker_reuse one).  main.c takes these steps and says why in that order;
 * each function here says what it shuts and why.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "worker_int.h"

#define WORKER_NOBODY 65534
/* RLIMIT_NPROC counts every process of the worker's user (nobody, for a root
 * daemon), so it cannot be 0 now that the zygote forks: a bound, not a ban. */
#define WORKER_MAX_PROCS 4096
#define WORKER_MAX_FDS 16

/* Landlock constants newer than the build host's <linux/landlock.h>. */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#define WORKER_LL_NET_BIND_TCP (1ULL << 0)
#define WORKER_LL_NET_CONNECT_TCP (1ULL << 1)
#define WORKER_LL_SCOPE_ABSTRACT_UNIX (1ULL << 0)
#define WORKER_LL_SCOPE_SIGNAL (1ULL << 1)

/* struct landlock_ruleset_attr as of ABI 6; the size passed selects the fields. */
struct worker_ll_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

void worker_close_fds(int from)
{
	if (syscall(SYS_close_range, (unsigned)from, ~0U, 0U) < 0) {
		/* pre-5.9 kernel: close what RLIMIT_NOFILE allows */
		long max = sysconf(_SC_OPEN_MAX);

		for (long fd = from; fd < (max > 0 ? max : 1024); fd++)
			close((int)fd);
	}
}

void worker_drop_privileges(void)
{
	if (geteuid() != 0 && getegid() != 0)
		return;
	if (setgroups(0, NULL) < 0 || setgid(WORKER_NOBODY) < 0 || setuid(WORKER_NOBODY) < 0)
		worker_fail(WORKER_EXIT_SETUP, "worker: cannot switch to uid %d: %s", WORKER_NOBODY,
			    strerror(errno));
	if (setuid(0) == 0 || geteuid() == 0)
		worker_fail(WORKER_EXIT_SETUP, "worker: still root after setuid");
}

static void worker_limit(int res, rlim_t soft, rlim_t hard, const char *name)
{
	struct rlimit rl = {.rlim_cur = soft, .rlim_max = hard};

	if (setrlimit(res, &rl) < 0)
		worker_fail(WORKER_EXIT_SETUP, "worker: setrlimit(%s): %s", name, strerror(errno));
}

/* The CPU backstop in seconds (argv "cpu=", the daemon's sandbox.h cpu_backstop_s). */
unsigned worker_cpu_s = FRAME_CPU_BACKSTOP_S;

/*
 * The limits of every process from here on.  Not RLIMIT_CPU, which counts a
 * process's whole life: the zygote (and the mother) never runs procedure code,
 * and its CPU time grows with every run it forks and relays (about a
 * millisecond a run on a 2-core VM), so a backstop of a run's size ended a busy
 * zygote with SIGXCPU (at its 309,403rd run there), failing the run it served.
 * Each process that runs tcc or procedure code takes it for itself instead
 * (worker_limit_cpu); here only that it can.
 */
void worker_set_limits(rlim_t mem)
{
	struct rlimit cpu;

	worker_limit(RLIMIT_AS, mem, mem, "RLIMIT_AS");
	if (getrlimit(RLIMIT_CPU, &cpu) < 0 ||
	    (cpu.rlim_max != RLIM_INFINITY && cpu.rlim_max < (rlim_t)worker_cpu_s + 10))
		worker_fail(
		    WORKER_EXIT_SETUP,
		    "worker: RLIMIT_CPU: the daemon's hard limit (%llu s) is below the "
		    "backstop of a run (%u s, twice -o timeout): raise it or lower -o timeout",
		    (unsigned long long)cpu.rlim_max, worker_cpu_s + 10);
	worker_limit(RLIMIT_NOFILE, WORKER_MAX_FDS, WORKER_MAX_FDS, "RLIMIT_NOFILE");
	worker_limit(RLIMIT_FSIZE, 0, 0, "RLIMIT_FSIZE");
	worker_limit(RLIMIT_NPROC, WORKER_MAX_PROCS, WORKER_MAX_PROCS, "RLIMIT_NPROC");
	worker_limit(RLIMIT_CORE, 0, 0, "RLIMIT_CORE");
	worker_limit(RLIMIT_MEMLOCK, 0, 0, "RLIMIT_MEMLOCK");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		worker_fail(WORKER_EXIT_SETUP, "worker: PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		worker_fail(WORKER_EXIT_SETUP, "worker: PR_SET_DUMPABLE: %s", strerror(errno));
}

/* The CPU backstop (the daemon enforces the real per-run limit) of a process
 * that runs tcc or procedure code: a compile child, a run child, a -o
 * worker_reuse worker.  Taken by the process itself, before its own filter (the
 * zygote's lets it set this one limit of its own, and no other). */
void worker_limit_cpu(void)
{
	struct rlimit rl = {.rlim_cur = worker_cpu_s, .rlim_max = (rlim_t)worker_cpu_s + 10};

	if (setrlimit(RLIMIT_CPU, &rl) < 0)
		_exit(WORKER_EXIT_SETUP);
}

static int worker_ll_allow(int ruleset, const char *path, uint64_t access)
{
	struct landlock_path_beneath_attr pb = {.allowed_access = access};
	int r;

	pb.parent_fd = open(path, O_PATH | O_CLOEXEC);
	if (pb.parent_fd < 0)
		return -1;
	r = (int)syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
	close(pb.parent_fd);
	return r;
}

/*
 * Landlock: the only files this process can open from now on are the allowed
 * headers (read) and libtcc1.a (read).  Without it tcc, while it parses hostile
 * source, can open whatever user nobody can read (or, for a daemon that is not
 * root, whatever its user can), and the precheck is the only guard: so missing
 * Landlock is fatal unless @allow_missing (-o allow_no_landlock).  Procedure code
 * itself never can open anything: seccomp forbids open.
 */
void worker_landlock(const char *include_dir, const char *libtcc1, bool allow_missing)
{
	struct worker_ll_attr attr = {0};
	size_t attr_size = sizeof(attr.handled_access_fs);
	int abi, ruleset;

	abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1 && allow_missing)
		return;
	if (abi < 1)
		worker_fail(WORKER_EXIT_SETUP,
			    "worker: Landlock is not available (%s), so the compiler could read "
			    "files of this host: refusing to compile.  Use a kernel of 5.13 or "
			    "later with landlock in its lsm= list, or accept the risk with "
			    "-o allow_no_landlock",
			    strerror(errno));
	attr.handled_access_fs = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1 rights */
	if (abi >= 2)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 4) {
		attr.handled_access_net = WORKER_LL_NET_BIND_TCP | WORKER_LL_NET_CONNECT_TCP;
		attr_size = offsetof(struct worker_ll_attr, scoped);
	}
	if (abi >= 5)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	if (abi >= 6) {
		/* no signals to, and no abstract sockets of, processes outside */
		attr.scoped = WORKER_LL_SCOPE_ABSTRACT_UNIX | WORKER_LL_SCOPE_SIGNAL;
		attr_size = sizeof(attr);
	}
	ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
	if (ruleset < 0)
		worker_fail(WORKER_EXIT_SETUP, "worker: landlock_create_ruleset: %s",
			    strerror(errno));
	if (worker_ll_allow(ruleset, include_dir,
			    LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR) < 0)
		worker_fail(WORKER_EXIT_SETUP,
			    "worker: landlock rule for the include directory: %s", strerror(errno));
	if (worker_ll_allow(ruleset, libtcc1, LANDLOCK_ACCESS_FS_READ_FILE) < 0)
		worker_fail(WORKER_EXIT_SETUP, "worker: landlock rule for %s: %s", libtcc1,
			    strerror(errno));
	if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
		worker_fail(WORKER_EXIT_SETUP, "worker: landlock_restrict_self: %s",
			    strerror(errno));
	close(ruleset);
}

/* ------------------------------------------------------------------------- */
/* Lock-down */

static int worker_cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Make glibc do its one-time work (each may need a syscall the filter forbids)
 * while it still can: qsort caches the page counts from sysinfo() on the first
 * sort over 1 KiB, printf of floating point and malloc set up their state.
 * libseccomp probes the kernel's seccomp API once per process (about ten
 * system calls): done here, a worker forked by the mother inherits the answer. */
void worker_warm_up(void)
{
	int v[4096];
	char tmp[128];
	double d;
	void *p;

	for (int i = 0; i < 4096; i++)
		v[i] = (i * 7919) % 4096;
	qsort(v, 4096, sizeof(v[0]), worker_cmp_int);
	snprintf(tmp, sizeof(tmp), "%g %f %e %La %s %d", 1.5, 2.25, 1e300, (long double)3, "x", 7);
	sscanf("1.25 7", "%lf %d", &d, &v[0]);
	p = malloc(1 << 20); /* over the mmap threshold */
	free(p);
	seccomp_api_get();
}

/*
 * -o worker_reuse: the filter of a worker that runs every input itself, in this
 * one process, with no child per run (and so nothing of the zygote's filter:
 * no fork, pipe, dup, kill).  Default action: kill the whole process (SIGSYS).
 */
int worker_seccomp_reuse(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	pid_t pid = getpid(), tid = gettid();
	int r = -ENOMEM;

	if (!ctx)
		return r;
#define ALLOW(call, ...)                                                                           \
	do {                                                                                       \
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(call), __VA_ARGS__);            \
		if (r < 0)                                                                         \
			goto out;                                                                  \
	} while (0)
	/* the two pipes, nothing else */
	ALLOW(read, 1, SCMP_A0(SCMP_CMP_EQ, 0));
	ALLOW(write, 1, SCMP_A0(SCMP_CMP_EQ, 1));
	/* glibc's fatal messages ("free(): double free detected") go to fd 2 with
	 * writev before abort(); fd 2 is /dev/null */
	ALLOW(writev, 1, SCMP_A0(SCMP_CMP_EQ, 2));
	/* malloc and friends; never executable memory, so no new code after relocation */
	ALLOW(mmap, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	ALLOW(mprotect, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	ALLOW(munmap, 0);
	ALLOW(mremap, 0); /* realloc of large blocks */
	ALLOW(brk, 0);
	ALLOW(madvise, 0); /* free() returning memory */
	ALLOW(exit, 0);
	ALLOW(exit_group, 0);
	ALLOW(rt_sigreturn, 0);
	/* abort() (called by a procedure, or by malloc on heap corruption) blocks
	 * signals and raises SIGABRT on this very thread: allow exactly that, so it
	 * is reported as SIGABRT rather than as a forbidden system call. */
	ALLOW(rt_sigprocmask, 0);
	ALLOW(getpid, 0);
	ALLOW(gettid, 0);
	ALLOW(tgkill, 3, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)pid),
	      SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)tid), SCMP_A2(SCMP_CMP_EQ, SIGABRT));
#undef ALLOW
	r = seccomp_load(ctx);
out:
	seccomp_release(ctx);
	return r;
}

/*
 * The zygote's filter.  Default: kill the whole process (SIGSYS).  The zygote
 * itself only reads requests, forks, relays and waits; what else is here is what
 * its children need (they add worker_child_lockdown()'s list on top, and a
 * system call must pass both).
 */
/* The zygote's filter, built but not loaded (worker_seccomp_prepare), or NULL. */
static struct sock_fprog worker_zygote_prog;

/* The zygote's filter as a libseccomp context: 0 with *@out, or -errno. */
static int worker_seccomp_build(scmp_filter_ctx *out)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int r = -ENOMEM;

	*out = NULL;
	if (!ctx)
		return r;
#define ALLOW(call, ...)                                                                           \
	do {                                                                                       \
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(call), __VA_ARGS__);            \
		if (r < 0)                                                                         \
			goto out;                                                                  \
	} while (0)
	/* the two pipes, the zygote's ends of the pipes from its children, and the
	 * headers a compile child reads (a run's child has no other fd to read) */
	ALLOW(read, 0);
	ALLOW(write, 1, SCMP_A0(SCMP_CMP_EQ, 1));
	ALLOW(write, 1, SCMP_A0(SCMP_CMP_EQ, WORKER_CALL_FD));
	ALLOW(write, 1, SCMP_A0(SCMP_CMP_EQ, WORKER_NEXT_CALL_FD)); /* its "go" */
	ALLOW(write, 1, SCMP_A0(SCMP_CMP_EQ, WORKER_COMPILER_FD));  /* a source to compile */
	/* glibc's fatal messages ("free(): double free detected") go to fd 2 with
	 * writev before abort(); fd 2 is /dev/null */
	ALLOW(writev, 1, SCMP_A0(SCMP_CMP_EQ, 2));
	/* malloc and friends; never a new executable mapping.  mprotect to
	 * PROT_EXEC: a loaded image in the zygote, and tcc's relocation in a compile
	 * child (load.c); a run's child may not (worker_child_lockdown). */
	ALLOW(mmap, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	ALLOW(mprotect, 0);
	ALLOW(munmap, 0);
	ALLOW(mremap, 0); /* realloc of large blocks */
	ALLOW(brk, 0);
	ALLOW(madvise, 0); /* free() returning memory; a compile child pre-faulting */
	ALLOW(poll, 0);	   /* a compile child looking for its load (load.c) */
	ALLOW(exit, 0);
	ALLOW(exit_group, 0);
	ALLOW(rt_sigreturn, 0);
	/* a compile child reading the allowed headers (Landlock bounds which) */
	ALLOW(openat, 1,
	      SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND | O_TMPFILE, 0));
	ALLOW(lseek, 0);
	/* abort() (called by a procedure, or by malloc on heap corruption) blocks
	 * signals and raises SIGABRT on its own thread: allowed here for any thread,
	 * and narrowed to the child itself by its own filter. */
	ALLOW(rt_sigprocmask, 0);
	ALLOW(getpid, 0);
	ALLOW(gettid, 0);
	ALLOW(tgkill, 1, SCMP_A2(SCMP_CMP_EQ, SIGABRT));
	/* the zygote: _Fork() exactly as glibc 2.34+ does it, a pipe per run, and
	 * killing a child that floods it */
	ALLOW(clone, 1,
	      SCMP_A0(SCMP_CMP_EQ,
		      (scmp_datum_t)(CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD)));
	ALLOW(set_robust_list, 0);
	ALLOW(wait4, 0);
	ALLOW(pipe2, 0);
	ALLOW(close, 0);
	ALLOW(fcntl, 1, SCMP_A1(SCMP_CMP_EQ, F_DUPFD_CLOEXEC)); /* the compiler's pipes */
	ALLOW(dup3, 0);
	ALLOW(kill, 1, SCMP_A1(SCMP_CMP_EQ, SIGKILL));
	ALLOW(sched_yield, 0);
	/* the child, before any procedure code: its pipe as fd 1, its own filter */
	ALLOW(dup2, 0);
	ALLOW(seccomp, 1, SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER));
	/* the child, before its own filter: its CPU backstop (worker_limit_cpu) */
	ALLOW(prlimit64, 2, SCMP_A0(SCMP_CMP_EQ, 0), SCMP_A1(SCMP_CMP_EQ, RLIMIT_CPU));
#undef ALLOW
	*out = ctx;
	return 0;
out:
	seccomp_release(ctx);
	return r;
}

/*
 * In the mother: build the zygote's filter once, as the BPF program seccomp_load
 * would install (exported through a pipe: libseccomp 2.5 has no export to
 * memory), so that each worker forked from it installs it with one system call
 * instead of building it again (about a tenth of a millisecond).  The filter has
 * nothing per process in it.  On any failure each worker builds its own.
 */
void worker_seccomp_prepare(void)
{
	scmp_filter_ctx ctx;
	struct sock_filter *f = NULL;
	size_t len = 0;
	int p[2] = {-1, -1};

	if (worker_seccomp_build(&ctx) < 0)
		return;
	if (pipe2(p, O_CLOEXEC) < 0 || seccomp_export_bpf(ctx, p[1]) < 0)
		goto out;
	close(p[1]);
	p[1] = -1;
	for (;;) {
		struct sock_filter *nf = realloc(f, len + 4096);
		ssize_t n;

		if (!nf)
			goto out;
		f = nf;
		n = read(p[0], (char *)f + len, 4096);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > 65536) /* BPF_MAXINSNS * 8: not a filter */
			goto out;
	}
	if (len == 0 || len % sizeof(*f))
		goto out;
	worker_zygote_prog.len = (unsigned short)(len / sizeof(*f));
	worker_zygote_prog.filter = f;
	f = NULL;
out:
	free(f);
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
	seccomp_release(ctx);
}

int worker_seccomp(void)
{
	scmp_filter_ctx ctx;
	int r;

	if (worker_zygote_prog.filter) {
		/* what seccomp_load does with this program (no_new_privs is set) */
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &worker_zygote_prog) < 0)
			return -errno;
		return 0;
	}
	r = worker_seccomp_build(&ctx);
	if (r < 0)
		return r;
	r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

/* The end of a child's raw filter (the accumulator holds the system call number):
 * tgkill of itself only (what abort() needs), anything else kills. */
#define WORKER_BPF_TGKILL_SELF(self)                                                               \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_tgkill, 0, 5),                                    \
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),            \
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (self), 0, 3),                                     \
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),            \
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (self), 0, 1),                                     \
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),                                          \
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS)

/*
 * A run's child, before the procedure's code: on top of the zygote's filter, only
 * the system calls a procedure needs (their arguments are checked by the zygote's
 * filter), close (the child gives up fd 0 before the procedure runs), and abort()
 * only at itself.  No fork, no pipe, no dup, no wait, no kill, no further filter.
 * A raw filter rather than libseccomp: it is built and loaded in every child,
 * once per run.
 */
void worker_child_lockdown(void)
{
	uint32_t self = (uint32_t)getpid(); /* == its tid: one thread */
	/* clang-format off */
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#define WORKER_ALLOW_NR(n) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (n), 0, 1), \
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
		/* never executable memory: no new code in a run */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mprotect, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, PROT_EXEC, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		WORKER_ALLOW_NR(__NR_read),
		WORKER_ALLOW_NR(__NR_write),
		WORKER_ALLOW_NR(__NR_writev),
		WORKER_ALLOW_NR(__NR_mmap),
		WORKER_ALLOW_NR(__NR_mprotect),
		WORKER_ALLOW_NR(__NR_munmap),
		WORKER_ALLOW_NR(__NR_mremap),
		WORKER_ALLOW_NR(__NR_brk),
		WORKER_ALLOW_NR(__NR_madvise),
		WORKER_ALLOW_NR(__NR_exit),
		WORKER_ALLOW_NR(__NR_exit_group),
		WORKER_ALLOW_NR(__NR_rt_sigreturn),
		WORKER_ALLOW_NR(__NR_rt_sigprocmask),
		WORKER_ALLOW_NR(__NR_getpid),
		WORKER_ALLOW_NR(__NR_gettid),
		WORKER_ALLOW_NR(__NR_close), /* fd 0, once the request is read */
#undef WORKER_ALLOW_NR
		WORKER_BPF_TGKILL_SELF(self),
	};
	/* clang-format on */
	struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		_exit(WORKER_EXIT_SETUP);
}

/*
 * A compile child (load.c), before it parses a byte of source: on top of the
 * zygote's filter, what tcc needs (reading the allowed headers and libtcc1.a,
 * memory, the relocated image made executable) and writing its reply on fd 1.
 * No fork, no pipe, no dup, no kill: a tcc exploit keeps only this process, which
 * holds nothing but its two pipes (the request, which with a first input also
 * brings that input's call answers, and the reply).
 */
void worker_compile_lockdown(void)
{
	uint32_t self = (uint32_t)getpid();
	/* clang-format off */
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		/* write: the reply pipe, fd 1, only */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_write, 0, 4),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
#define WORKER_ALLOW_NR(n) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (n), 0, 1), \
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)
		WORKER_ALLOW_NR(__NR_read),
		WORKER_ALLOW_NR(__NR_openat),
		WORKER_ALLOW_NR(__NR_lseek),
		WORKER_ALLOW_NR(__NR_close),
		WORKER_ALLOW_NR(__NR_writev),
		WORKER_ALLOW_NR(__NR_mmap),
		WORKER_ALLOW_NR(__NR_mprotect),
		WORKER_ALLOW_NR(__NR_munmap),
		WORKER_ALLOW_NR(__NR_mremap),
		WORKER_ALLOW_NR(__NR_brk),
		WORKER_ALLOW_NR(__NR_madvise),
		WORKER_ALLOW_NR(__NR_exit),
		WORKER_ALLOW_NR(__NR_exit_group),
		WORKER_ALLOW_NR(__NR_rt_sigreturn),
		WORKER_ALLOW_NR(__NR_rt_sigprocmask),
		WORKER_ALLOW_NR(__NR_getpid),
		WORKER_ALLOW_NR(__NR_gettid),
		WORKER_ALLOW_NR(__NR_poll), /* has its load come (worker_compile_warm) */
		/* the run child's filter on top, before a load's first input (load.c
		 * worker_compile_run): a filter can only take more away */
		WORKER_ALLOW_NR(__NR_seccomp),
#undef WORKER_ALLOW_NR
		WORKER_BPF_TGKILL_SELF(self),
	};
	/* clang-format on */
	struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		_exit(WORKER_EXIT_SETUP);
}
