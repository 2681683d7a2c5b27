/*
 * seglam-worker: compiles one untrusted procedure with libtcc and runs it on inputs.
 *
 * Started by sandbox/sandbox.c with posix_spawn, an empty environment and
 *	argv: seglam-worker INCLUDE_DIR LIBTCC1_A MEM_LIMIT_BYTES ANSWER_CAP_BYTES [FLAG...]
 * (FLAGs: allow_no_landlock, reuse).  fd 0 = requests, fd 1 = responses (frame.h), fd 2 =
 * /dev/null. Without Landlock the worker refuses to compile (tcc could read any file this user can)
 *unless the last argument says the operator accepted that.
 *
 * The order of the steps in main() is the security argument, and each step says
 * why it comes where it does.  In short: privileges are dropped and the file
 * system is closed off *before* tcc parses hostile source (tcc is a big C
 * parser with no hardening), and the strict seccomp filter goes on *after*
 * relocation (which needs executable memory) and before any procedure code runs.
 *
 * Procedure code never runs in this process (the "zygote"): each request (an
 * input, or a batch of one reader's inputs) is run in a child forked for it one
 * run ahead, which locks itself down further, waits for its turn, and is killed
 * after its answers.  So no run sees another run's input (a procedure's static
 * variables, heap and even its writable code start afresh from the compiled
 * image each time), and the daemon's pipe carries only frames the zygote wrote
 * and checked: the final frames each request is owed, and the run's call
 * requests (frame.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <libtcc.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ctype.h>
#include <math.h>
#include <strings.h>

#include "buf.h"
#include "frame.h"
#include "precheck.h"

/* glibc >= 2.34: fork without atfork handlers, one clone() call */
pid_t _Fork(void);

#define WORKER_NOBODY 65534
/* RLIMIT_NPROC counts every process of the worker's user (nobody, for a root
 * daemon), so it cannot be 0 now that the zygote forks: a bound, not a ban. */
#define WORKER_MAX_PROCS 4096
/* The zygote's ends of a run child's two pipes, at fixed numbers so that the
 * zygote's filter can name them: the read end of the child's response pipe (the
 * child's fd 1), and the write end of the pipe the child reads as its fd 3
 * (WORKER_CHILD_FD there too), which the child reads for call answers and, after
 * its final frame, blocks on until the zygote kills it. */
#define WORKER_CHILD_FD 3
#define WORKER_CALL_FD 4
/* The same two for the child forked ahead, until it becomes the current one. */
#define WORKER_NEXT_CHILD_FD 5
#define WORKER_NEXT_CALL_FD 6
#define WORKER_CPU_BACKSTOP 300 /* s; the daemon enforces the real per-run limit */
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

/* The answer being built by one run.  Preallocated at cap + 1 bytes (pages are
 * only touched as they are written) so seglam_write never allocates. */
typedef struct seglam_out seglam_out;
struct seglam_out {
	char *data;
	size_t len;
	size_t cap;
	bool overflow;
};

static struct seglam_out worker_out;

static void worker_die_oom(void)
{
	/* Exit code, not a message: after seccomp only fd 1 exists and it carries frames. */
	_exit(WORKER_EXIT_OOM);
}

/* ------------------------------------------------------------------------- */
/* What procedures may call: everything declared in include/, nothing else. */

static int seglam_write(seglam_out *out, const void *buf, size_t len)
{
	if (out->overflow)
		return -1;
	if (len > out->cap - out->len) {
		out->overflow = true;
		return -1;
	}
	memcpy(out->data + out->len, buf, len);
	out->len += len;
	out->data[out->len] = '\0';
	return 0;
}

static int __attribute__((format(printf, 2, 3)))
seglam_printf(seglam_out *out, const char *fmt, ...)
{
	size_t room;
	va_list ap;
	int n;

	if (out->overflow)
		return -1;
	room = out->cap - out->len;
	va_start(ap, fmt);
	n = vsnprintf(out->data + out->len, room + 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n > room) {
		out->data[out->len] = '\0';
		out->overflow = true;
		return -1;
	}
	out->len += (size_t)n;
	return 0;
}

/* Allocation failure under RLIMIT_AS ends the run with a clear "out of memory"
 * instead of a NULL dereference reported as a crash. */
static void *worker_malloc(size_t n)
{
	void *p = malloc(n);

	if (!p && n)
		worker_die_oom();
	return p;
}

static void *worker_calloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p && n && size)
		worker_die_oom();
	return p;
}

static void *worker_realloc(void *old, size_t n)
{
	void *p = realloc(old, n);

	if (!p && n)
		worker_die_oom();
	return p;
}

/*
 * The call stub, in a run's child: a FRAME_CALL on fd 1 (the child's pipe to the
 * zygote, which relays it to the daemon), the answer frame back on
 * WORKER_CHILD_FD (the zygote passes it on from the daemon; frame.h).  The daemon
 * does the ask; this process never sees the callee's code.  An answer stays valid
 * until the run ends.  A broken pipe mid-call means the run is being given up:
 * exit.
 */
/* Where call answers come from: the run child's second pipe, or fd 0 itself in a
 * -o worker_reuse worker (which talks to the daemon directly). */
static int worker_call_fd = WORKER_CHILD_FD;

/* Answers seglam_call returned: they stay valid until seglam_run returns (the ABI
 * says so).  A run's child never frees them (it ends with its run); a
 * worker_reuse worker frees them after each run. */
struct worker_held {
	struct worker_held *next;
	char data[];
};

static struct worker_held *worker_held;

static void worker_batch_flush(void);

static const char *seglam_call(const char *type, const char *in, size_t len, size_t *n)
{
	uint8_t hdr[FRAME_RESP_HDR], rhdr[FRAME_REQ_HDR];
	struct worker_held *h;
	size_t tl;
	uint32_t rlen;

	if (n)
		*n = 0;
	if (!type || (!in && len))
		return NULL;
	tl = strnlen(type, FRAME_CALL_TYPE_MAX + 1);
	if (tl == 0 || tl > FRAME_CALL_TYPE_MAX || len > worker_out.cap)
		return NULL; /* not a type name, or an input the daemon would refuse */
	/* a batch's answers so far first: frames leave in order */
	worker_batch_flush();
	frame_put_response(hdr, FRAME_CALL, (uint32_t)(tl + 1 + len));
	if (frame_write_full(1, hdr, sizeof(hdr), -1) < 0 ||
	    frame_write_full(1, type, tl + 1, -1) < 0 ||
	    (len && frame_write_full(1, in, len, -1) < 0))
		_exit(WORKER_EXIT_IO);
	if (frame_read_full(worker_call_fd, rhdr, sizeof(rhdr), -1) != (ssize_t)sizeof(rhdr))
		_exit(WORKER_EXIT_IO);
	rlen = frame_get_request(rhdr);
	if (rlen == FRAME_CALL_FAILED)
		return NULL;
	if (rlen > worker_out.cap)
		_exit(WORKER_EXIT_IO);
	h = malloc(sizeof(*h) + rlen + 1);
	if (!h)
		worker_die_oom();
	if (frame_read_full(worker_call_fd, h->data, rlen, -1) != (ssize_t)rlen)
		_exit(WORKER_EXIT_IO);
	h->data[rlen] = '\0';
	h->next = worker_held;
	worker_held = h;
	if (n)
		*n = rlen;
	return h->data;
}

struct worker_sym {
	const char *name;
	const void *addr;
};

/* clang-format off: one table, grouped by header */
#define WORKER_SYM(f)                                                                              \
	{                                                                                          \
#f, (const void *)&f                                                               \
	}
static const struct worker_sym worker_syms[] = {
    /* seglam.h */
    WORKER_SYM(seglam_write),
    WORKER_SYM(seglam_printf),
    WORKER_SYM(seglam_call),
    /* string.h (memcpy, memmove and memset are also emitted by tcc itself) */
    WORKER_SYM(memcpy),
    WORKER_SYM(memmove),
    WORKER_SYM(memset),
    WORKER_SYM(memcmp),
    WORKER_SYM(memchr),
    WORKER_SYM(memrchr),
    WORKER_SYM(memmem),
    WORKER_SYM(strlen),
    WORKER_SYM(strnlen),
    WORKER_SYM(strcpy),
    WORKER_SYM(strncpy),
    WORKER_SYM(strcat),
    WORKER_SYM(strncat),
    WORKER_SYM(strcmp),
    WORKER_SYM(strncmp),
    WORKER_SYM(strcoll),
    WORKER_SYM(strcasecmp),
    WORKER_SYM(strncasecmp),
    WORKER_SYM(strchr),
    WORKER_SYM(strrchr),
    WORKER_SYM(strstr),
    WORKER_SYM(strcasestr),
    WORKER_SYM(strspn),
    WORKER_SYM(strcspn),
    WORKER_SYM(strpbrk),
    WORKER_SYM(strtok),
    WORKER_SYM(strtok_r),
    WORKER_SYM(strsep),
    WORKER_SYM(strdup),
    WORKER_SYM(strndup),
    /* stdlib.h */
    {"malloc", (const void *)&worker_malloc},
    {"calloc", (const void *)&worker_calloc},
    {"realloc", (const void *)&worker_realloc},
    WORKER_SYM(free),
    WORKER_SYM(atoi),
    WORKER_SYM(atol),
    WORKER_SYM(atoll),
    WORKER_SYM(atof),
    WORKER_SYM(strtol),
    WORKER_SYM(strtoul),
    WORKER_SYM(strtoll),
    WORKER_SYM(strtoull),
    WORKER_SYM(strtod),
    WORKER_SYM(strtof),
    WORKER_SYM(abs),
    WORKER_SYM(labs),
    WORKER_SYM(llabs),
    WORKER_SYM(div),
    WORKER_SYM(ldiv),
    WORKER_SYM(lldiv),
    WORKER_SYM(qsort),
    WORKER_SYM(bsearch),
    WORKER_SYM(abort),
    /* stdio.h: strings only */
    WORKER_SYM(snprintf),
    WORKER_SYM(sprintf),
    WORKER_SYM(vsnprintf),
    WORKER_SYM(vsprintf),
    WORKER_SYM(sscanf),
    WORKER_SYM(vsscanf),
    /* ctype.h */
    WORKER_SYM(isalnum),
    WORKER_SYM(isalpha),
    WORKER_SYM(isblank),
    WORKER_SYM(iscntrl),
    WORKER_SYM(isdigit),
    WORKER_SYM(isgraph),
    WORKER_SYM(islower),
    WORKER_SYM(isprint),
    WORKER_SYM(ispunct),
    WORKER_SYM(isspace),
    WORKER_SYM(isupper),
    WORKER_SYM(isxdigit),
    WORKER_SYM(tolower),
    WORKER_SYM(toupper),
    /* math.h */
    WORKER_SYM(fabs),
    WORKER_SYM(floor),
    WORKER_SYM(ceil),
    WORKER_SYM(round),
    WORKER_SYM(trunc),
    WORKER_SYM(rint),
    WORKER_SYM(nearbyint),
    WORKER_SYM(lround),
    WORKER_SYM(lrint),
    WORKER_SYM(fmod),
    WORKER_SYM(remainder),
    WORKER_SYM(modf),
    WORKER_SYM(frexp),
    WORKER_SYM(ldexp),
    WORKER_SYM(sqrt),
    WORKER_SYM(cbrt),
    WORKER_SYM(hypot),
    WORKER_SYM(pow),
    WORKER_SYM(exp),
    WORKER_SYM(exp2),
    WORKER_SYM(expm1),
    WORKER_SYM(log),
    WORKER_SYM(log2),
    WORKER_SYM(log10),
    WORKER_SYM(log1p),
    WORKER_SYM(sin),
    WORKER_SYM(cos),
    WORKER_SYM(tan),
    WORKER_SYM(asin),
    WORKER_SYM(acos),
    WORKER_SYM(atan),
    WORKER_SYM(atan2),
    WORKER_SYM(sinh),
    WORKER_SYM(cosh),
    WORKER_SYM(tanh),
    WORKER_SYM(fmin),
    WORKER_SYM(fmax),
    WORKER_SYM(copysign),
    WORKER_SYM(fabsf),
    WORKER_SYM(floorf),
    WORKER_SYM(ceilf),
    WORKER_SYM(roundf),
    WORKER_SYM(sqrtf),
    WORKER_SYM(powf),
    WORKER_SYM(fmodf),
};
/* clang-format on */

/* ------------------------------------------------------------------------- */
/* Setup steps */

/* Report a failure before serving as a compile error, then exit. */
static void __attribute__((noreturn)) worker_fail(int code, const char *fmt, ...)
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

static void worker_close_fds(void)
{
	if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0) {
		/* pre-5.9 kernel: close what RLIMIT_NOFILE allows */
		long max = sysconf(_SC_OPEN_MAX);

		for (long fd = 3; fd < (max > 0 ? max : 1024); fd++)
			close((int)fd);
	}
}

static void worker_drop_privileges(void)
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

static void worker_set_limits(rlim_t mem)
{
	worker_limit(RLIMIT_AS, mem, mem, "RLIMIT_AS");
	worker_limit(RLIMIT_CPU, WORKER_CPU_BACKSTOP, WORKER_CPU_BACKSTOP + 10, "RLIMIT_CPU");
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
static void worker_landlock(const char *include_dir, const char *libtcc1, bool allow_missing)
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

/* The length word of the next request (or a request kind, FRAME_REQ_*). */
static uint32_t worker_read_len(void)
{
	uint8_t hdr[FRAME_REQ_HDR];
	ssize_t r = frame_read_full(0, hdr, sizeof(hdr), -1);

	if (r == 0)
		_exit(0); /* the daemon closed the pipe: done */
	if (r != (ssize_t)sizeof(hdr))
		_exit(WORKER_EXIT_IO);
	return frame_get_request(hdr);
}

static char *worker_read_body(uint32_t len)
{
	char *data;

	if (len >= FRAME_REQ_BATCH)
		_exit(WORKER_EXIT_IO); /* a request kind where a length belongs */
	data = malloc((size_t)len + 1);
	if (!data)
		worker_die_oom();
	if (frame_read_full(0, data, len, -1) != (ssize_t)len)
		_exit(WORKER_EXIT_IO);
	data[len] = '\0';
	return data;
}

static char *worker_read_frame(uint32_t *len)
{
	*len = worker_read_len();
	return worker_read_body(*len);
}

/* ------------------------------------------------------------------------- */
/* Compiling */

struct worker_compile {
	struct buf msg;
	const char *include_dir;
	const char *code_lo, *code_hi; /* relocated image */
	const char *bad_symbol;
};

/* Rewrite tcc's "<string>:3: error: 'x' undeclared" into "line 3: 'x' undeclared". */
static void worker_tcc_error(void *opaque, const char *msg)
{
	struct worker_compile *c = opaque;
	size_t dl = strlen(c->include_dir);

	if (c->msg.len >= FRAME_MAX_MESSAGE)
		return;
	if (strncmp(msg, "<string>:", 9) == 0) {
		char *end;
		unsigned long line = strtoul(msg + 9, &end, 10);

		if (end != msg + 9 && *end == ':') {
			msg = end + 1;
			while (*msg == ' ')
				msg++;
			if (strncmp(msg, "error: ", 7) == 0)
				msg += 7;
			buf_printf(&c->msg, "line %lu: ", line);
		}
	} else if (strncmp(msg, "tcc: error: ", 12) == 0) {
		msg += 12;
		if (strncmp(msg, "undefined symbol '", 18) == 0) {
			/* a function outside the allowed headers: say so, for the LLM */
			const char *q = strchr(msg + 18, '\'');

			buf_printf(&c->msg,
				   "'%.*s' is not available to procedures (they may only "
				   "call functions declared in the allowed headers)\n",
				   q ? (int)(q - msg - 18) : 64, msg + 18);
			return;
		}
	} else if (strncmp(msg, c->include_dir, dl) == 0 && msg[dl] == '/') {
		msg += dl + 1; /* "stdio.h:12: ..." rather than a path of this host */
	}
	buf_adds(&c->msg, msg);
	buf_addc(&c->msg, '\n');
}

/* tcc resolves a symbol that is neither defined nor added with dlsym(RTLD_DEFAULT),
 * i.e. from anything linked into this process (system, dlopen, fopen...).  After
 * relocation every global must therefore be in the procedure's own image or be
 * one of worker_syms. */
static void worker_check_symbol(void *opaque, const char *name, const void *val)
{
	struct worker_compile *c = opaque;
	const char *p = val;

	if (c->bad_symbol || !p || (p >= c->code_lo && p <= c->code_hi))
		return;
	for (size_t i = 0; i < sizeof(worker_syms) / sizeof(worker_syms[0]); i++)
		if (worker_syms[i].addr == val && strcmp(worker_syms[i].name, name) == 0)
			return;
	c->bad_symbol = name;
}

typedef int (*worker_run_fn)(const char *in, size_t len, seglam_out *out);

static worker_run_fn worker_compile(const char *src, const char *include_dir, const char *libtcc1,
				    struct buf *err)
{
	struct worker_compile c = {.msg = BUF_INIT, .include_dir = include_dir};
	worker_run_fn fn = NULL;
	TCCState *s = tcc_new();
	void *mem = MAP_FAILED;
	int size;

	if (!s) {
		buf_adds(err, "out of memory starting the compiler");
		goto out;
	}
	tcc_set_error_func(s, &c, worker_tcc_error);
	tcc_set_options(s, "-nostdlib -nostdinc");
	tcc_set_output_type(s, TCC_OUTPUT_MEMORY);
	tcc_add_include_path(s, include_dir);
	tcc_add_sysinclude_path(s, include_dir);
	/* The precheck rejects _Pragma; this also neutralises one built by ## pasting. */
	tcc_define_symbol(s, "_Pragma(x)", "");
	for (size_t i = 0; i < sizeof(worker_syms) / sizeof(worker_syms[0]); i++)
		tcc_add_symbol(s, worker_syms[i].name, worker_syms[i].addr);
	if (tcc_compile_string(s, src) < 0)
		goto fail;
	/* After the source: tcc only takes the archive members that resolve
	 * symbols still undefined (va_arg, long double and int128 helpers). */
	if (tcc_add_file(s, libtcc1) < 0)
		goto fail;
	size = tcc_relocate(s, NULL);
	if (size < 0)
		goto fail;
	/* Our own buffer rather than TCC_RELOCATE_AUTO, so the image bounds are known. */
	mem = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		buf_adds(err, "out of memory relocating the procedure");
		goto out;
	}
	if (tcc_relocate(s, mem) < 0)
		goto fail;
	c.code_lo = mem;
	c.code_hi = (const char *)mem + size;
	tcc_list_symbols(s, &c, worker_check_symbol);
	if (c.bad_symbol) {
		buf_printf(err,
			   "'%s' is not available to procedures (they may only call the "
			   "functions declared in the allowed headers)",
			   c.bad_symbol);
		goto out;
	}
	fn = (worker_run_fn)tcc_get_symbol(s, "seglam_run");
	if (!fn) {
		buf_adds(err, "seglam_run is not defined");
		goto out;
	}
	/* s stays alive on success: it owns the sections the code points into. */
	s = NULL;
	goto out;
fail:
	while (c.msg.len && c.msg.data[c.msg.len - 1] == '\n')
		buf_truncate(&c.msg, c.msg.len - 1);
	buf_adds(err, c.msg.len ? c.msg.data : "compilation failed");
out:
	if (!fn && mem != MAP_FAILED)
		munmap(mem, (size_t)size);
	if (s)
		tcc_delete(s);
	buf_free(&c.msg);
	return fn;
}

/* ------------------------------------------------------------------------- */
/* Lock-down */

static int worker_cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Make glibc do its one-time work (each may need a syscall the filter forbids)
 * while it still can: qsort caches the page counts from sysinfo() on the first
 * sort over 1 KiB, printf of floating point and malloc set up their state. */
static void worker_warm_up(void)
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
}

/*
 * -o worker_reuse: the filter of a worker that runs every input itself, in this
 * one process, with no child per run (and so nothing of the zygote's filter:
 * no fork, pipe, dup, kill).  Default action: kill the whole process (SIGSYS).
 */
static int worker_seccomp_reuse(void)
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
static int worker_seccomp(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int r = -ENOMEM;

	if (!ctx)
		return r;
#define ALLOW(call, ...)                                                                           \
	do {                                                                                       \
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(call), __VA_ARGS__);            \
		if (r < 0)                                                                         \
			goto out;                                                                  \
	} while (0)
	/* the two pipes, and the zygote's end of the pipe from a run's child */
	ALLOW(read, 1, SCMP_A0(SCMP_CMP_EQ, 0));
	ALLOW(read, 1, SCMP_A0(SCMP_CMP_EQ, WORKER_CHILD_FD));
	ALLOW(write, 1, SCMP_A0(SCMP_CMP_EQ, 1));
	ALLOW(write, 1, SCMP_A0(SCMP_CMP_EQ, WORKER_CALL_FD));
	ALLOW(write, 1, SCMP_A0(SCMP_CMP_EQ, WORKER_NEXT_CALL_FD)); /* its "go" */
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
	ALLOW(kill, 1, SCMP_A1(SCMP_CMP_EQ, SIGKILL));
	ALLOW(sched_yield, 0);
	/* the child, before any procedure code: its pipe as fd 1, its own filter */
	ALLOW(dup2, 0);
	ALLOW(seccomp, 1, SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER));
#undef ALLOW
	r = seccomp_load(ctx);
out:
	seccomp_release(ctx);
	return r;
}

/*
 * A run's child, before the procedure's code: on top of the zygote's filter, only
 * the system calls a procedure needs (their arguments are checked by the zygote's
 * filter), close (the child gives up fd 0 before the procedure runs), and abort()
 * only at itself.  No fork, no pipe, no dup, no wait, no kill, no further filter.
 * A raw filter rather than libseccomp: it is built and loaded in every child,
 * once per run.
 */
static void worker_child_lockdown(void)
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
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_tgkill, 0, 5),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, self, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, self, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	};
	/* clang-format on */
	struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
		_exit(WORKER_EXIT_SETUP);
}

/* ------------------------------------------------------------------------- */

static int worker_parse_size(const char *s, unsigned long long *v)
{
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno || end == s || *end ? -1 : 0;
}

/* ------------------------------------------------------------------------- */
/* Batches (seglam map, frame.h): many inputs per request, answers buffered. */

#define WORKER_BATCH_OUT (256u << 10) /* reply buffer; written out when full */

/* vDSO present: CLOCK_MONOTONIC_COARSE is read without a system call, so the
 * seccomp filter need not allow clock_gettime.  Without it a batch writes each
 * answer out at once (slower, and still timed per input by the daemon). */
static bool worker_have_clock;

static int64_t worker_coarse_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A batch's answers not written yet (seglam_call writes them before a call, so
 * frames leave in order). */
static char worker_obuf[WORKER_BATCH_OUT];
static size_t worker_olen;

static void worker_batch_flush(void)
{
	if (worker_olen && frame_write_full(1, worker_obuf, worker_olen, -1) < 0)
		_exit(WORKER_EXIT_IO);
	worker_olen = 0;
}

/* The rest of a batch request (after its length word): the header and the inputs. */
static char *worker_batch_read(struct frame_batch *b)
{
	char *data;

	if (frame_read_full(0, b, sizeof(*b), -1) != (ssize_t)sizeof(*b) ||
	    b->bytes > FRAME_BATCH_MAX || b->count > FRAME_BATCH_MAX_COUNT || b->count == 0)
		_exit(WORKER_EXIT_IO);
	data = malloc(b->bytes ? b->bytes : 1);
	if (!data)
		worker_die_oom();
	if (frame_read_full(0, data, b->bytes, -1) != (ssize_t)b->bytes)
		_exit(WORKER_EXIT_IO);
	return data;
}

static void worker_batch_run(worker_run_fn run, const struct frame_batch *b, char *data)
{
	static char *in;
	static size_t incap;
	size_t off = 0, produced = 0;
	bool each;
	int64_t last;

	each = (b->flags & FRAME_BATCH_EACH) || !worker_have_clock;
	last = worker_have_clock ? worker_coarse_ms() : 0;
	for (uint32_t i = 0; i < b->count; i++) {
		uint8_t hdr[FRAME_RESP_HDR];
		uint32_t len;
		int32_t status;
		int rc;

		if (b->bytes - off < FRAME_REQ_HDR)
			_exit(WORKER_EXIT_IO);
		len = frame_get_request((const uint8_t *)data + off);
		off += FRAME_REQ_HDR;
		if (len > b->bytes - off)
			_exit(WORKER_EXIT_IO);
		if (produced >= b->out_max) {
			/* enough for the daemon to hold: the rest comes again later */
			frame_put_response(hdr, FRAME_SKIPPED, 0);
			if (sizeof(hdr) > sizeof(worker_obuf) - worker_olen)
				worker_batch_flush();
			memcpy(worker_obuf + worker_olen, hdr, sizeof(hdr));
			worker_olen += sizeof(hdr);
			off += len;
			continue;
		}
		/* Progress before a new input, so the daemon can time this one alone. */
		if (!each && worker_olen && worker_coarse_ms() - last >= (int64_t)b->flush_ms) {
			worker_batch_flush();
			last = worker_coarse_ms();
		}
		/* A private NUL-terminated copy: a procedure scribbling on its input
		 * must not change the inputs that follow. */
		if (len + 1 > incap) {
			free(in);
			incap = len + 1 > 4096 ? len + 1 : 4096;
			in = malloc(incap);
			if (!in)
				worker_die_oom();
		}
		memcpy(in, data + off, len);
		in[len] = '\0';
		off += len;
		worker_out.len = 0;
		worker_out.overflow = false;
		worker_out.data[0] = '\0';
		rc = run(in, len, &worker_out);
		if (worker_out.overflow) {
			status = FRAME_TOO_LARGE;
			worker_out.len = 0;
		} else {
			status = rc ? FRAME_REJECTED : FRAME_ANSWER;
		}
		frame_put_response(hdr, status, (uint32_t)worker_out.len);
		produced += sizeof(hdr) + worker_out.len;
		if (sizeof(hdr) + worker_out.len > sizeof(worker_obuf) - worker_olen)
			worker_batch_flush();
		if (sizeof(hdr) + worker_out.len <= sizeof(worker_obuf)) {
			memcpy(worker_obuf + worker_olen, hdr, sizeof(hdr));
			memcpy(worker_obuf + worker_olen + sizeof(hdr), worker_out.data,
			       worker_out.len);
			worker_olen += sizeof(hdr) + worker_out.len;
		} else if (frame_write_full(1, hdr, sizeof(hdr), -1) < 0 ||
			   frame_write_full(1, worker_out.data, worker_out.len, -1) < 0) {
			_exit(WORKER_EXIT_IO);
		}
		if (each)
			worker_batch_flush();
	}
	worker_batch_flush();
}

/* One input: its answer (or rejection) as a frame written in one write, so the
 * reader wakes up once. */
static void worker_run_one(worker_run_fn run, char *in, uint32_t len)
{
	int32_t status;
	int rc;

	worker_out.len = 0;
	worker_out.overflow = false;
	worker_out.data[0] = '\0';
	rc = run(in, len, &worker_out);
	if (worker_out.overflow) {
		status = FRAME_TOO_LARGE;
		worker_out.len = 0;
	} else {
		status = rc ? FRAME_REJECTED : FRAME_ANSWER;
	}
	frame_put_response((uint8_t *)worker_out.data - FRAME_RESP_HDR, status,
			   (uint32_t)worker_out.len);
	if (frame_write_full(1, worker_out.data - FRAME_RESP_HDR, FRAME_RESP_HDR + worker_out.len,
			     -1) < 0)
		_exit(WORKER_EXIT_IO);
}

/* -o worker_reuse: serve inputs in this process until the daemon closes the pipe.
 * A procedure may keep state from one input to the next (SECURITY.md). */
static void __attribute__((noreturn)) worker_serve_reuse(worker_run_fn run)
{
	worker_call_fd = 0;
	for (;;) {
		uint32_t len = worker_read_len();
		struct frame_batch b;
		char *in;

		if (len == FRAME_REQ_BATCH) {
			in = worker_batch_read(&b);
			worker_batch_run(run, &b, in);
		} else {
			in = worker_read_body(len);
			worker_run_one(run, in, len);
		}
		free(in);
		while (worker_held) {
			struct worker_held *h = worker_held;

			worker_held = h->next;
			free(h);
		}
	}
}

/*
 * Touch, while waiting for a request, the pages a typical run writes first, so
 * their copy-on-write faults are taken before the request and not after it: the
 * stack, the head of the answer buffer, the top of the heap.
 */
static void worker_child_prefault(void)
{
	volatile char stack[64 * 1024];
	size_t head = worker_out.cap + 1 < 16384 ? worker_out.cap + 1 : 16384;
	void *p;

	for (size_t i = 0; i < sizeof(stack); i += 4096)
		stack[i] = 0;
	for (size_t i = 0; i < head; i += 4096)
		worker_out.data[i] = 0;
	p = malloc(16384);
	if (p)
		memset(p, 0, 16384);
	free(p);
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
static void __attribute__((noreturn)) worker_child(worker_run_fn run)
{
	uint8_t start[FRAME_RESP_HDR + 4];
	uint32_t len, count = 1;
	char go;
	struct frame_batch b;
	char *in;

	worker_child_lockdown();
	worker_child_prefault();
	/* Forked ahead: wait until the run before this one is over, so that only
	 * one process ever reads the request pipe (the zygote reads call answers
	 * from it during a run).  End of file: the zygote is gone. */
	if (frame_read_full(WORKER_CHILD_FD, &go, 1, -1) != 1)
		_exit(0);
	len = worker_read_len();
	if (len == FRAME_REQ_BATCH) {
		in = worker_batch_read(&b);
		count = b.count;
	} else {
		in = worker_read_body(len);
	}
	if (close(0) < 0)
		_exit(WORKER_EXIT_IO);
	frame_put_response(start, FRAME_START, 4);
	memcpy(start + FRAME_RESP_HDR, &count, 4);
	if (frame_write_full(1, start, sizeof(start), -1) < 0)
		_exit(WORKER_EXIT_IO);
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
static pid_t worker_fork_child(worker_run_fn run)
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
		 * until the dup2) nor of the zygote's ends of its own. */
		if (dup2(p[1], 1) < 0 || dup2(q[0], WORKER_CHILD_FD) < 0)
			_exit(WORKER_EXIT_IO);
		for (int fd = WORKER_CALL_FD; fd <= q[1]; fd++)
			close(fd);
		worker_child(run);
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

static int worker_reap(pid_t child)
{
	int status;

	while (wait4(child, &status, 0, NULL) < 0)
		if (errno != EINTR)
			_exit(WORKER_EXIT_IO);
	return status;
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
static void worker_pass_answer(void)
{
	static char piece[64 * 1024];
	uint8_t hdr[FRAME_REQ_HDR];
	bool gone = false;
	uint32_t len;

	if (frame_read_full(0, hdr, sizeof(hdr), -1) != (ssize_t)sizeof(hdr))
		_exit(WORKER_EXIT_IO);
	len = frame_get_request(hdr);
	if (len != FRAME_CALL_FAILED && len > worker_out.cap)
		_exit(WORKER_EXIT_IO);
	if (frame_write_full(WORKER_CALL_FD, hdr, sizeof(hdr), -1) < 0)
		gone = true;
	while (len != FRAME_CALL_FAILED && len) {
		uint32_t n = len < sizeof(piece) ? len : (uint32_t)sizeof(piece);

		if (frame_read_full(0, piece, n, -1) != (ssize_t)n)
			_exit(WORKER_EXIT_IO);
		if (!gone && frame_write_full(WORKER_CALL_FD, piece, n, -1) < 0)
			gone = true;
		len -= n;
	}
	explicit_bzero(piece, sizeof(piece));
}

/* The largest frame a child may send: a call request (frame.h). */
#define WORKER_RELAY_MAX(cap) (FRAME_RESP_HDR + FRAME_CALL_TYPE_MAX + 1 + (cap))
/* The zygote's buffer for a child's frames: the largest frame (a call request)
 * and a batch's buffer of answers. */
#define WORKER_RELAY_ROOM(cap) (WORKER_RELAY_MAX(cap) + WORKER_BATCH_OUT)

enum { WORKER_RUN_DONE, WORKER_RUN_REAPED, WORKER_RUN_EOF };

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
 * daemon closed the request pipe.
 */
static int worker_relay(pid_t child, char *relay)
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
				if (owed == 0 || owed > FRAME_BATCH_MAX_COUNT)
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
				worker_pass_answer();
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
		r = read(WORKER_CHILD_FD, relay + have, room - have);
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
	if (!started) {
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
	worker_send_failed(WIFEXITED(st) && WEXITSTATUS(st) == 0 ? FRAME_FAIL_PROTOCOL
								  : FRAME_FAIL_DIED,
			   st);
	return WORKER_RUN_REAPED;
violation:
	explicit_bzero(relay, have);
	kill(child, SIGKILL);
	st = worker_reap(child);
	if (!started)
		_exit(WORKER_EXIT_IO); /* the child's own code broke the protocol */
	worker_send_failed(FRAME_FAIL_PROTOCOL, st);
	return WORKER_RUN_REAPED;
}

/*
 * Serve requests until the daemon closes the pipe, each in a fresh child.  The
 * child for the next request is forked, and has locked itself down, before that
 * request is sent: as soon as a run's last frame is passed on, the child that
 * made it is killed (it has said all it may), and the next one forked before the
 * old one is reaped, while the daemon is busy with the answer.  So neither the
 * fork nor a child's exit is between a request and its answer.  The zygote never
 * runs procedure code and never holds an input; it wipes what it relayed, so a
 * child starts with nothing of an earlier run.
 */
static void __attribute__((noreturn)) worker_serve(worker_run_fn run, char *relay)
{
	pid_t child, next, dying = 0;
	int hold[2];

	/* The first child is forked as a next one would be (fds 3 and 4 held
	 * meanwhile), told to go at once, and moved down. */
	if (pipe2(hold, O_CLOEXEC) < 0 || hold[0] != WORKER_CHILD_FD || hold[1] != WORKER_CALL_FD)
		_exit(WORKER_EXIT_IO);
	child = worker_fork_child(run);
	worker_go();
	close(hold[0]);
	close(hold[1]);
	worker_promote();
	next = worker_fork_child(run);
	for (;;) {
		int end = worker_relay(child, relay);

		if (end == WORKER_RUN_EOF) {
			/* The daemon closed the pipe (it evicted this worker): end the
			 * child forked ahead and reap it and the last one, so that none
			 * is left to init (a zombie there still counts against
			 * RLIMIT_NPROC of user nobody until init reaps it). */
			kill(next, SIGKILL);
			worker_reap(next);
			if (dying)
				worker_reap(dying);
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
		next = worker_fork_child(run);
	}
}

/* ------------------------------------------------------------------------- */
/* The mother (argv flag "mother") */

/*
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
 */
#define WORKER_MOTHER_NAME "seglam-mother"

static void worker_mother_reply(int32_t v)
{
	while (send(0, &v, sizeof(v), MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

/* Receive one request: 0 with two pipe fds, 1 at EOF, -1 for a bad request. */
static int worker_mother_recv(int fds[2])
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(2 * sizeof(int))];
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

	fds[0] = fds[1] = -1;
	do
		n = recvmsg(0, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return 1;
	c = CMSG_FIRSTHDR(&msg);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
		size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		if (nfd >= 1)
			memcpy(&fds[0], CMSG_DATA(c), sizeof(int));
		if (nfd >= 2)
			memcpy(&fds[1], CMSG_DATA(c) + sizeof(int), sizeof(int));
		ok = nfd == 2 && !(msg.msg_flags & MSG_CTRUNC);
	}
	for (int i = 0; i < 2 && ok; i++)
		ok = fstat(fds[i], &st) == 0 && S_ISFIFO(st.st_mode);
	if (ok)
		return 0;
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return -1;
}

static bool worker_warmed; /* by the mother, before this worker was forked */

/* Returns only in a new worker, with its pipes on fds 0 and 1. */
static void worker_mother(char *argv0, const char *include_dir)
{
	static const char warm[] =
	    "#include <seglam.h>\nint seglam_run(const char *in, size_t len, "
	    "seglam_out *out) { return seglam_write(out, in, len); }\n";
	size_t len0 = strlen(argv0);
	TCCState *s = tcc_new();

	prctl(PR_SET_NAME, WORKER_MOTHER_NAME, 0, 0, 0);
	/* Once for every worker to come: glibc's first-use work (worker_warm_up)
	 * and tcc's (a compile of this fixed, trusted source: its code and the
	 * headers are then in the page cache, and tcc's first-use work done).  It
	 * is parsed only: nothing is relocated, so nothing of it is executable. */
	worker_warm_up();
	worker_warmed = true;
	if (!s)
		_exit(WORKER_EXIT_OOM);
	tcc_set_options(s, "-nostdlib -nostdinc");
	tcc_set_output_type(s, TCC_OUTPUT_MEMORY);
	tcc_add_include_path(s, include_dir);
	tcc_add_sysinclude_path(s, include_dir);
	tcc_compile_string(s, warm);
	tcc_delete(s);
	for (;;) {
		int fds[2], r;
		long pid;

		r = worker_mother_recv(fds);
		if (r > 0)
			_exit(0);
		if (r < 0) {
			worker_mother_reply(-EBADMSG);
			continue;
		}
		/* Not glibc's fork: it cannot make the daemon the parent.  The child
		 * never runs procedure code itself (its run children are _Fork()ed,
		 * which sets their thread id right), so the thread id glibc keeps
		 * for this thread, stale in the child, is never used. */
		pid = syscall(SYS_clone, (unsigned long)(CLONE_PARENT | SIGCHLD), 0UL, NULL, NULL,
			      0UL);
		if (pid == 0) {
			/* its own process group first: the daemon kills it with it */
			setpgid(0, 0);
			if (dup2(fds[0], 0) < 0 || dup2(fds[1], 1) < 0)
				_exit(WORKER_EXIT_IO);
			worker_close_fds();
			/* look like the worker it is (ps, /proc/PID/comm and cmdline) */
			prctl(PR_SET_NAME, "seglam-worker", 0, 0, 0);
			if (len0 == strlen("seglam-worker"))
				memcpy(argv0, "seglam-worker", len0);
			return;
		}
		close(fds[0]);
		close(fds[1]);
		worker_mother_reply(pid > 0 ? (int32_t)pid : -errno);
	}
}

int main(int argc, char **argv)
{
	unsigned long long mem, cap;
	struct buf err = BUF_INIT;
	uint8_t hdr[FRAME_RESP_HDR];
	worker_run_fn run;
	uint32_t srclen;
	char *src, *relay;
	bool allow_no_landlock = false, reuse = false, mother = false, bad_flag = false;

	/* Step 1: nothing inherited but the two pipes and /dev/null.  (The daemon
	 * already spawned us with an empty environment and closefrom(3); this
	 * also covers a daemon that forgot.) */
	worker_close_fds();
	/* a write to a run's child that died mid-call fails with EPIPE instead */
	signal(SIGPIPE, SIG_IGN);
	for (int i = 5; i < argc; i++) {
		if (strcmp(argv[i], "allow_no_landlock") == 0)
			allow_no_landlock = true;
		else if (strcmp(argv[i], "reuse") == 0)
			reuse = true;
		else if (strcmp(argv[i], "mother") == 0)
			mother = true;
		else
			bad_flag = true;
	}
	if (argc < 5 || bad_flag || worker_parse_size(argv[3], &mem) < 0 ||
	    worker_parse_size(argv[4], &cap) < 0 || cap == 0 ||
	    cap >= UINT32_MAX - WORKER_RELAY_MAX(0))
		worker_fail(WORKER_EXIT_USAGE, "usage: seglam-worker INCLUDE_DIR LIBTCC1 MEM_BYTES "
					       "ANSWER_CAP [allow_no_landlock] [reuse]");

	/* Step 2: drop root, then limits.  setuid first: RLIMIT_NPROC 0 would be
	 * checked against the new user otherwise.  no_new_privs is also what
	 * allows Landlock and seccomp without CAP_SYS_ADMIN. */
	worker_drop_privileges();
	worker_set_limits((rlim_t)mem);
	if (chdir(argv[1]) < 0) /* so "seglam.h" resolves in the include dir */
		worker_fail(WORKER_EXIT_SETUP, "worker: include directory: %s", strerror(errno));

	/* Step 3: file system closed off before any untrusted byte is parsed. */
	worker_landlock(argv[1], argv[2], allow_no_landlock);

	/* Step 3b (mother only): fork a worker per type from here on. */
	if (mother)
		worker_mother(argv[0], argv[1]);

	worker_out.cap = (size_t)cap;
	/* room for the response header in front: a child writes its frame at once */
	worker_out.data = malloc(FRAME_RESP_HDR + (size_t)cap + 1);
	if (worker_out.data)
		worker_out.data += FRAME_RESP_HDR;
	relay = malloc(WORKER_RELAY_ROOM((size_t)cap));
	if (!worker_out.data || !relay)
		worker_die_oom();

	/* Step 4: the source, screened lexically (#include of files, #pragma). */
	src = worker_read_frame(&srclen);
	if (worker_precheck(src, srclen, &err) < 0)
		worker_fail(0, "%s", err.data);

	/* Step 5: compile and relocate; needs PROT_EXEC, so before seccomp.  No
	 * procedure code runs here (tcc_relocate does not run constructors). */
	run = worker_compile(src, argv[1], argv[2], &err);
	free(src);
	if (!run)
		worker_fail(0, "%s", err.data);

	/* Step 6: lock down.  From here on: read fd 0, write fd 1, non-executable
	 * memory management, exit, and forking a child per run that locks itself
	 * down further.  The "compiled" reply is only sent once the filter is in
	 * place, so a pooled worker is always a locked one. */
	if (!worker_warmed)
		worker_warm_up();
	worker_have_clock = getauxval(AT_SYSINFO_EHDR) != 0;
	if (worker_have_clock)
		worker_coarse_ms(); /* resolves the vDSO entry before the filter */
	if ((reuse ? worker_seccomp_reuse() : worker_seccomp()) < 0)
		worker_fail(WORKER_EXIT_SETUP, "worker: cannot install the seccomp filter");
	frame_put_response(hdr, FRAME_COMPILED, 0);
	if (frame_write_full(1, hdr, sizeof(hdr), -1) < 0)
		_exit(WORKER_EXIT_IO);

	/* Step 7: serve inputs, each in a fresh child, until the daemon closes the pipe. */
	if (reuse)
		worker_serve_reuse(run);
	worker_serve(run, relay);
	return 0;
}
