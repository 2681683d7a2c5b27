/*
 * seglam-worker: compiles one untrusted procedure with libtcc and runs it on inputs.
 *
 * Started by cache/sandbox.c with posix_spawn, an empty environment and
 *	argv: seglam-worker INCLUDE_DIR LIBTCC1_A MEM_LIMIT_BYTES ANSWER_CAP_BYTES
 * fd 0 = requests, fd 1 = responses (frame.h), fd 2 = /dev/null.
 *
 * The order of the steps in main() is the security argument, and each step says
 * why it comes where it does.  In short: privileges are dropped and the file
 * system is closed off *before* tcc parses hostile source (tcc is a big C
 * parser with no hardening), and the strict seccomp filter goes on *after*
 * relocation (which needs executable memory) and before any procedure code runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
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
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <ctype.h>
#include <math.h>
#include <strings.h>

#include "buf.h"
#include "frame.h"
#include "precheck.h"

#define WORKER_NOBODY 65534
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
	worker_limit(RLIMIT_NPROC, 0, 0, "RLIMIT_NPROC");
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
 * headers (read) and libtcc1.a (read).  Missing Landlock is not fatal: the
 * worker is still nobody, and seccomp later forbids open altogether.
 */
static void worker_landlock(const char *include_dir, const char *libtcc1)
{
	struct worker_ll_attr attr = {0};
	size_t attr_size = sizeof(attr.handled_access_fs);
	int abi, ruleset;

	abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1)
		return;
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
 * The filter under which procedure code runs.  Default: kill the whole process
 * (SIGSYS), which the daemon reports as "forbidden system call".
 */
static int worker_seccomp(void)
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

static void worker_flush(char *obuf, size_t *olen)
{
	if (*olen && frame_write_full(1, obuf, *olen, -1) < 0)
		_exit(WORKER_EXIT_IO);
	*olen = 0;
}

static void worker_batch(worker_run_fn run)
{
	static char obuf[WORKER_BATCH_OUT];
	static char *in;
	static size_t incap;
	struct frame_batch b;
	size_t olen = 0, off = 0, produced = 0;
	bool each;
	int64_t last;
	char *data;

	if (frame_read_full(0, &b, sizeof(b), -1) != (ssize_t)sizeof(b) ||
	    b.bytes > FRAME_BATCH_MAX || b.count > FRAME_BATCH_MAX_COUNT)
		_exit(WORKER_EXIT_IO);
	data = malloc(b.bytes ? b.bytes : 1);
	if (!data)
		worker_die_oom();
	if (frame_read_full(0, data, b.bytes, -1) != (ssize_t)b.bytes)
		_exit(WORKER_EXIT_IO);
	each = (b.flags & FRAME_BATCH_EACH) || !worker_have_clock;
	last = worker_have_clock ? worker_coarse_ms() : 0;
	for (uint32_t i = 0; i < b.count; i++) {
		uint8_t hdr[FRAME_RESP_HDR];
		uint32_t len;
		int32_t status;
		int rc;

		if (b.bytes - off < FRAME_REQ_HDR)
			_exit(WORKER_EXIT_IO);
		len = frame_get_request((const uint8_t *)data + off);
		off += FRAME_REQ_HDR;
		if (len > b.bytes - off)
			_exit(WORKER_EXIT_IO);
		if (produced >= b.out_max) {
			/* enough for the daemon to hold: the rest comes again later */
			frame_put_response(hdr, FRAME_SKIPPED, 0);
			if (sizeof(hdr) > sizeof(obuf) - olen)
				worker_flush(obuf, &olen);
			memcpy(obuf + olen, hdr, sizeof(hdr));
			olen += sizeof(hdr);
			off += len;
			continue;
		}
		/* Progress before a new input, so the daemon can time this one alone. */
		if (!each && olen && worker_coarse_ms() - last >= (int64_t)b.flush_ms) {
			worker_flush(obuf, &olen);
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
		if (sizeof(hdr) + worker_out.len > sizeof(obuf) - olen)
			worker_flush(obuf, &olen);
		if (sizeof(hdr) + worker_out.len <= sizeof(obuf)) {
			memcpy(obuf + olen, hdr, sizeof(hdr));
			memcpy(obuf + olen + sizeof(hdr), worker_out.data, worker_out.len);
			olen += sizeof(hdr) + worker_out.len;
		} else if (frame_write_full(1, hdr, sizeof(hdr), -1) < 0 ||
			   frame_write_full(1, worker_out.data, worker_out.len, -1) < 0) {
			_exit(WORKER_EXIT_IO);
		}
		if (each)
			worker_flush(obuf, &olen);
	}
	worker_flush(obuf, &olen);
	free(data);
}

static void worker_serve(worker_run_fn run)
{
	static char small[4096];

	for (;;) {
		uint8_t hdr[FRAME_RESP_HDR];
		int32_t status;
		uint32_t len = worker_read_len();
		char *in;
		int rc;

		if (len == FRAME_REQ_BATCH) {
			worker_batch(run);
			continue;
		}
		in = worker_read_body(len);

		worker_out.len = 0;
		worker_out.overflow = false;
		worker_out.data[0] = '\0';
		rc = run(in, len, &worker_out);
		free(in);
		if (worker_out.overflow) {
			status = FRAME_TOO_LARGE;
			worker_out.len = 0;
		} else {
			status = rc ? FRAME_REJECTED : FRAME_ANSWER;
		}
		frame_put_response(hdr, status, (uint32_t)worker_out.len);
		/* A small reply goes out in one write, so the daemon wakes up once. */
		if (worker_out.len <= sizeof(small) - sizeof(hdr)) {
			memcpy(small, hdr, sizeof(hdr));
			memcpy(small + sizeof(hdr), worker_out.data, worker_out.len);
			if (frame_write_full(1, small, sizeof(hdr) + worker_out.len, -1) < 0)
				_exit(WORKER_EXIT_IO);
		} else if (frame_write_full(1, hdr, sizeof(hdr), -1) < 0 ||
			   frame_write_full(1, worker_out.data, worker_out.len, -1) < 0) {
			_exit(WORKER_EXIT_IO);
		}
	}
}

int main(int argc, char **argv)
{
	unsigned long long mem, cap;
	struct buf err = BUF_INIT;
	uint8_t hdr[FRAME_RESP_HDR];
	worker_run_fn run;
	uint32_t srclen;
	char *src;

	/* Step 1: nothing inherited but the two pipes and /dev/null.  (The daemon
	 * already spawned us with an empty environment and closefrom(3); this
	 * also covers a daemon that forgot.) */
	worker_close_fds();
	if (argc != 5 || worker_parse_size(argv[3], &mem) < 0 ||
	    worker_parse_size(argv[4], &cap) < 0 || cap == 0 || cap >= UINT32_MAX)
		worker_fail(WORKER_EXIT_USAGE,
			    "usage: seglam-worker INCLUDE_DIR LIBTCC1 MEM_BYTES ANSWER_CAP");

	/* Step 2: drop root, then limits.  setuid first: RLIMIT_NPROC 0 would be
	 * checked against the new user otherwise.  no_new_privs is also what
	 * allows Landlock and seccomp without CAP_SYS_ADMIN. */
	worker_drop_privileges();
	worker_set_limits((rlim_t)mem);
	if (chdir(argv[1]) < 0) /* so "seglam.h" resolves in the include dir */
		worker_fail(WORKER_EXIT_SETUP, "worker: include directory: %s", strerror(errno));

	/* Step 3: file system closed off before any untrusted byte is parsed. */
	worker_landlock(argv[1], argv[2]);

	worker_out.cap = (size_t)cap;
	worker_out.data = malloc((size_t)cap + 1);
	if (!worker_out.data)
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
	 * memory management, exit.  The "compiled" reply is only sent once the
	 * filter is in place, so a pooled worker is always a locked one. */
	worker_warm_up();
	worker_have_clock = getauxval(AT_SYSINFO_EHDR) != 0;
	if (worker_have_clock)
		worker_coarse_ms(); /* resolves the vDSO entry before the filter */
	if (worker_seccomp() < 0)
		worker_fail(WORKER_EXIT_SETUP, "worker: cannot install the seccomp filter");
	frame_put_response(hdr, FRAME_COMPILED, 0);
	if (frame_write_full(1, hdr, sizeof(hdr), -1) < 0)
		_exit(WORKER_EXIT_IO);

	/* Step 7: serve inputs until the daemon closes the pipe. */
	worker_serve(run);
	return 0;
}
