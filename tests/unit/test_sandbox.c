/*
 * test_sandbox: the daemon side of the sandbox (sandbox/, outside sandbox/worker/) and
 * the seglam-worker it drives, end to end.
 *
 *	test_sandbox WORKER INCLUDE_DIR HOSTILE_DIR [NOLANDLOCK_WORKER]
 *
 * Real workers, real seccomp.  Each case prints "ok N - name" or "not ok N - name";
 * the exit status is non-zero if any failed.  The hostile corpus (the .c files in HOSTILE_DIR)
 * is data driven: each file has an "expect:" line (grammar in tests/unit/hostile/README.md)
 * naming the outcomes allowed on any kernel; containment is checked for every case.
 * Nothing here asserts on elapsed time (timings are printed): the suite must pass on
 * a loaded 2-core machine.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "sandbox.h"
#include "tap.h"

#define SECRET "sk-seglam-test-secret-6b1f0c9e2d"
#define TIMEOUT_MS 1000

static const char *worker_path, *include_dir, *hostile_dir, *nolandlock_path;

/* A check named @name whose diagnostic (printf-style: the values seen) is printed
 * only when it fails: an error text may run over lines, a check's name may not. */
#define CHECK_WHY(cond, name, ...)                                                                 \
	do {                                                                                       \
		bool ok_ = (cond);                                                                 \
		CHECK(ok_, "%s", (name));                                                          \
		if (!ok_)                                                                          \
			tap_diag(__VA_ARGS__);                                                     \
	} while (0)

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int run(const char *src, const char *in, struct buf *out, struct buf *err)
{
	buf_reset(out);
	buf_reset(err);
	return sandbox_run(0, src, strlen(src), in, strlen(in), out, err);
}

static bool opt_worker_reuse;
static unsigned opt_cpu_backstop_s; /* 0: the default */

static void start_within(const char *worker, unsigned max_workers, bool allow_no_landlock,
			 unsigned timeout_ms)
{
	struct sandbox_config cfg = {
	    .worker_path = worker,
	    .include_dir = include_dir,
	    .timeout_ms = timeout_ms,
	    .max_workers = max_workers,
	    .allow_no_landlock = allow_no_landlock,
	    .worker_reuse = opt_worker_reuse,
	    .cpu_backstop_s = opt_cpu_backstop_s,
	};
	int r = sandbox_init(&cfg);

	if (r < 0) {
		printf("Bail out! sandbox_init: %s\n", strerror(-r));
		exit(1);
	}
}

static void start_with(const char *worker, unsigned max_workers, bool allow_no_landlock)
{
	start_within(worker, max_workers, allow_no_landlock, TIMEOUT_MS);
}

static void start(unsigned max_workers)
{
	start_with(worker_path, max_workers, false);
}

/* For a check that stops a worker's processes to look into them mid-compile: the
 * time limit is not what it shows, and the pause (a memory scan on a loaded
 * machine) must not end the compile it watches. */
static void start_patient(unsigned max_workers)
{
	start_within(worker_path, max_workers, false, 20000);
}

static const char good_src[] = "#include <seglam.h>\n"
			       "#include <stdlib.h>\n"
			       "#include <string.h>\n"
			       "int seglam_run(const char *in, size_t len, seglam_out *out)\n"
			       "{\n"
			       "\tchar *end;\n"
			       "\tlong v = strtol(in, &end, 10);\n"
			       "\tif (len == 0 || *end) {\n"
			       "\t\tseglam_printf(out, \"not a number: %s\", in);\n"
			       "\t\treturn 1;\n"
			       "\t}\n"
			       "\tseglam_printf(out, \"%ld\\n\", v * v + 1);\n"
			       "\treturn 0;\n"
			       "}\n";

static void test_good(void)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	bool all = true;
	int r;

	r = sandbox_compile(0, good_src, strlen(good_src), &err);
	CHECK_WHY(r == 0, "good procedure compiles", "r=%d err=%s", r, buf_str(&err));
	r = run(good_src, "12", &out, &err);
	CHECK_WHY(r == 0 && strcmp(buf_str(&out), "145\n") == 0, "good procedure answers",
		  "r=%d out=%s err=%s", r, buf_str(&out), buf_str(&err));
	for (int i = 0; i < 2000 && all; i++) {
		char in[32], want[32];

		snprintf(in, sizeof(in), "%d", i - 1000);
		snprintf(want, sizeof(want), "%ld\n", (long)(i - 1000) * (i - 1000) + 1);
		r = run(good_src, in, &out, &err);
		all = r == 0 && strcmp(buf_str(&out), want) == 0;
		if (!all)
			tap_diag("input %s: r=%d out=%s err=%s", in, r, buf_str(&out),
				 buf_str(&err));
	}
	CHECK_WHY(all, "2000 distinct inputs answered right", "see above");
	r = run(good_src, "12x", &out, &err);
	CHECK_WHY(r == -EINVAL && strcmp(buf_str(&out), "not a number: 12x") == 0,
		  "rejection gives -EINVAL and the reason", "r=%d out=%s", r, buf_str(&out));
	r = run(good_src, "", &out, &err);
	CHECK_WHY(r == -EINVAL, "empty input is passed and rejected", "r=%d", r);
	buf_free(&out);
	buf_free(&err);
}

static void test_compile_errors(void)
{
	const char *bad = "#include <seglam.h>\n\nint seglam_run(const char *in, size_t len, "
			  "seglam_out *out)\n{\n\treturn x;\n}\n";
	const char *missing = "#include <seglam.h>\nint seglam_runx(void) { return 0; }\n";
	const char *in_header = "#define toupper 1\n#include <seglam.h>\n#include <ctype.h>\n"
				"int seglam_run(const char *in, size_t len, seglam_out *out)\n"
				"{\n\treturn 0;\n}\n";
	struct buf out = BUF_INIT, err = BUF_INIT;
	int r;

	r = sandbox_compile(0, bad, strlen(bad), &err);
	CHECK_WHY(r == -EIO && strcmp(buf_str(&err), "line 5: 'x' undeclared") == 0,
		  "compile error gives \"line N: ...\"", "r=%d err=%s", r, buf_str(&err));
	r = run(bad, "1", &out, &err);
	CHECK_WHY(r == -ENOEXEC && strstr(buf_str(&err), "line 5:"),
		  "run of a bad source gives -ENOEXEC", "r=%d err=%s", r, buf_str(&err));
	buf_reset(&err);
	r = sandbox_compile(0, missing, strlen(missing), &err);
	CHECK_WHY(r == -EIO && strstr(buf_str(&err), "seglam_run is not defined"),
		  "missing seglam_run", "r=%d err=%s", r, buf_str(&err));
	/* an error inside a header: tcc names it on a second line, after "In file
	 * included from", which says the header's name and not this host's path */
	buf_reset(&err);
	r = sandbox_compile(0, in_header, strlen(in_header), &err);
	CHECK_WHY(r == -EIO && strstr(buf_str(&err), "ctype.h:") &&
		      !strstr(buf_str(&err), include_dir),
		  "an error in a header names the header, not the host's path", "r=%d err=%s", r,
		  buf_str(&err));
	buf_free(&out);
	buf_free(&err);
}

static const char libc_src[] =
    "#include <seglam.h>\n"
    "#include <stdarg.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "#include <ctype.h>\n"
    "#include <math.h>\n"
    "#include <stdint.h>\n"
    "#include <stdbool.h>\n"
    "#include <limits.h>\n"
    "static long sum(int n, ...)\n"
    "{\n"
    "\tva_list ap;\n"
    "\tlong s = 0;\n"
    "\tva_start(ap, n);\n"
    "\tfor (int i = 0; i < n; i++)\n"
    "\t\ts += va_arg(ap, long);\n"
    "\tva_end(ap);\n"
    "\treturn s;\n"
    "}\n"
    "static double dsum(int n, ...)\n"
    "{\n"
    "\tva_list ap;\n"
    "\tdouble s = 0;\n"
    "\tva_start(ap, n);\n"
    "\twhile (n--)\n"
    "\t\ts += va_arg(ap, double);\n"
    "\tva_end(ap);\n"
    "\treturn s;\n"
    "}\n"
    "static int say(seglam_out *out, const char *fmt, ...)\n"
    "{\n"
    "\tchar tmp[256];\n"
    "\tva_list ap;\n"
    "\tva_start(ap, fmt);\n"
    "\tvsnprintf(tmp, sizeof(tmp), fmt, ap);\n"
    "\tva_end(ap);\n"
    "\treturn seglam_write(out, tmp, strlen(tmp));\n"
    "}\n"
    "static int cmp(const void *a, const void *b)\n"
    "{\n"
    "\treturn *(const int *)a - *(const int *)b;\n"
    "}\n"
    "int seglam_run(const char *in, size_t len, seglam_out *out)\n"
    "{\n"
    "\tint a, b, n = 100000;\n"
    "\tint *v = malloc(n * sizeof(*v));\n"
    "\tchar *up = strdup(in);\n"
    "\tlong double ld = 1.5L;\n"
    "\tuint64_t big = UINT64_MAX;\n"
    "\tif (sscanf(in, \"%d %d\", &a, &b) != 2) { say(out, \"want two ints\"); return 1; }\n"
    "\tfor (int i = 0; i < n; i++)\n"
    "\t\tv[i] = (int)((i * 2654435761u) % 1000003u);\n"
    "\tqsort(v, n, sizeof(*v), cmp);\n"
    "\tfor (int i = 1; i < n; i++)\n"
    "\t\tif (v[i - 1] > v[i]) return 1;\n"
    "\tfor (char *p = up; *p; p++) *p = toupper((unsigned char)*p);\n"
    "\tsay(out, \"sum=%ld dsum=%.2f\\n\", sum(3, (long)a, (long)b, 7L), dsum(2, 0.25, 0.5));\n"
    "\tsay(out, \"sqrt=%.4f pow=%.1f sin=%.3f\\n\", sqrt(2.0), pow(2, 10), sin(M_PI / 2));\n"
    "\tsay(out, \"ld=%d big=%llu min=%d up=%s\\n\", (int)(ld * 2), (unsigned long long)(big / 3),\n"
    "\t    INT_MIN, up);\n"
    "\tfree(v);\n"
    "\tfree(up);\n"
    "\treturn 0;\n"
    "}\n";

static void test_libc(void)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	const char *want = "sum=12 dsum=0.75\nsqrt=1.4142 pow=1024.0 sin=1.000\n"
			   "ld=3 big=6148914691236517205 min=-2147483648 up=2 3\n";
	int r = run(libc_src, "2 3", &out, &err);

	CHECK_WHY(r == 0 && strcmp(buf_str(&out), want) == 0,
		  "variadics, snprintf, sscanf, qsort, malloc, math work", "r=%d out=%s err=%s", r,
		  buf_str(&out), buf_str(&err));
	buf_free(&out);
	buf_free(&err);
}

static void test_binary_and_cap(void)
{
	const char *echo = "#include <seglam.h>\n"
			   "int seglam_run(const char *in, size_t len, seglam_out *out)\n"
			   "{ return seglam_write(out, in, len + 1) ? 2 : 0; }\n";
	const char *exact =
	    "#include <seglam.h>\n#include <string.h>\n"
	    "int seglam_run(const char *in, size_t len, seglam_out *out)\n"
	    "{ static char b[1 << 20]; memset(b, 'a', sizeof(b));\n"
	    "  if (seglam_write(out, b, sizeof(b) - (in[0] == '1' ? 0 : 1))) return 3;\n"
	    "  return seglam_write(out, \"\\n\", 1); }\n";
	struct buf out = BUF_INIT, err = BUF_INIT;
	char in[5] = {'a', 0, 'b', 0, 'c'};
	int r;

	r = sandbox_run(0, echo, strlen(echo), in, sizeof(in), &out, &err);
	CHECK_WHY(r == 0 && out.len == 6 && memcmp(out.data, "a\0b\0c\0", 6) == 0,
		  "binary input with NULs, in[len] == 0", "r=%d len=%zu", r, out.len);
	{
		/* 3 MiB: more than a pipe holds, so the write has to wait for the worker */
		const char *count = "#include <seglam.h>\n"
				    "int seglam_run(const char *in, size_t len, seglam_out *out)\n"
				    "{ unsigned long s = 0; for (size_t i = 0; i < len; i++) s += "
				    "(unsigned char)in[i];\n"
				    "  return seglam_printf(out, \"%zu %lu\\n\", len, s); }\n";
		size_t big = 3u << 20;
		char *in3 = malloc(big), want[64];
		unsigned long sum = 0;

		for (size_t i = 0; i < big; i++)
			sum += (unsigned char)(in3[i] = (char)(i * 31));
		snprintf(want, sizeof(want), "%zu %lu\n", big, sum);
		buf_reset(&out);
		r = sandbox_run(0, count, strlen(count), in3, big, &out, &err);
		CHECK_WHY(r == 0 && strcmp(buf_str(&out), want) == 0, "3 MiB input",
			  "r=%d out=%s err=%s", r, buf_str(&out), buf_str(&err));
		free(in3);
	}
	r = run(exact, "0", &out, &err);
	CHECK_WHY(r == 0 && out.len == 1u << 20, "an answer of exactly the cap is accepted",
		  "r=%d len=%zu err=%s", r, out.len, buf_str(&err));
	r = run(exact, "1", &out, &err);
	CHECK_WHY(r == -EIO && strstr(buf_str(&err), "answer exceeds 1048576 bytes") &&
		      out.len == 0,
		  "one byte over the cap is refused", "r=%d err=%s", r, buf_str(&err));
	buf_free(&out);
	buf_free(&err);
}

static bool file_exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0;
}

static const char *const pwned[] = {"/tmp/seglam-pwned-execve", "/tmp/seglam-pwned-system",
				    "/tmp/seglam-pwned-dlopen", "/tmp/pwned"};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * One hostile case's "expect:" line (tests/unit/hostile/README.md):
 *	expect: KIND[|KIND...] [REASON[ | REASON...]]
 * The run must end in one of the KINDs (OK: answered, EINVAL: rejected, EIO:
 * failed) with a message containing one of the REASONs (the answer for OK, the
 * rejection for EINVAL, the error for EIO).  Containment is checked for every
 * case whatever it says: no secret and no host file in anything that comes back,
 * nothing written outside, and the pool still serves a good procedure.
 */
struct expect {
	int kinds[3];
	unsigned nkinds;
	char reasons[8][128];
	unsigned nreasons;
};

static int parse_expect(const char *src, struct expect *x)
{
	const char *e = strstr(src, "expect: "), *p, *eol;
	char line[1024], *tok, *save, *kinds, *rest;

	memset(x, 0, sizeof(*x));
	if (!e)
		return -1;
	p = e + 8;
	eol = strchr(p, '\n');
	snprintf(line, sizeof(line), "%.*s", (int)(eol ? eol - p : (long)strlen(p)), p);
	if ((tok = strstr(line, "*/")))
		*tok = '\0';
	kinds = line;
	rest = strchr(line, ' ');
	if (rest)
		*rest++ = '\0';
	for (tok = strtok_r(kinds, "|", &save); tok; tok = strtok_r(NULL, "|", &save)) {
		int k = strcmp(tok, "OK") == 0	      ? 0
			: strcmp(tok, "EINVAL") == 0  ? -EINVAL
			: strcmp(tok, "EIO") == 0     ? -EIO
			: strcmp(tok, "ENOEXEC") == 0 ? -ENOEXEC
						      : 1;

		if (k > 0 || x->nkinds >= 3)
			return -1;
		x->kinds[x->nkinds++] = k;
	}
	while (rest && *rest) {
		char *bar = strstr(rest, " | "), *end;

		if (bar)
			*bar = '\0';
		while (*rest == ' ')
			rest++;
		for (end = rest + strlen(rest); end > rest && end[-1] == ' ';)
			*--end = '\0';
		if (*rest) {
			if (x->nreasons >= 8)
				return -1;
			snprintf(x->reasons[x->nreasons++], sizeof(x->reasons[0]), "%s", rest);
		}
		rest = bar ? bar + 3 : NULL;
	}
	return x->nkinds ? 0 : -1;
}

static bool expect_met(const struct expect *x, int r, const char *msg)
{
	bool kind = false;

	for (unsigned i = 0; i < x->nkinds; i++)
		kind = kind || x->kinds[i] == r;
	if (!kind)
		return false;
	if (!x->nreasons)
		return true;
	for (unsigned i = 0; i < x->nreasons; i++)
		if (strstr(msg, x->reasons[i]))
			return true;
	return false;
}

/* Nothing of the host came back, the message is printable, and nothing was
 * written outside. */
static bool contained(const struct buf *out, const struct buf *err, const char **why)
{
	const char *host = "root:x:0:0:"; /* /etc/passwd */

	*why = "";
	if (strstr(buf_str(out), SECRET) || strstr(buf_str(err), SECRET))
		*why = "the secret leaked";
	else if (strstr(buf_str(out), host) || strstr(buf_str(err), host))
		*why = "a host file leaked";
	for (size_t i = 0; i < err->len; i++)
		if (((unsigned char)err->data[i] < 0x20 && err->data[i] != '\n') ||
		    err->data[i] == 0x7f)
			*why = "a raw control byte in the message";
	for (size_t i = 0; i < sizeof(pwned) / sizeof(pwned[0]); i++)
		if (file_exists(pwned[i]))
			*why = pwned[i];
	return !**why;
}

static void test_hostile_one(const char *name)
{
	struct buf src = BUF_INIT, out = BUF_INIT, err = BUF_INIT;
	char path[4096], label[512];
	struct expect x;
	const char *why = "", *msg;
	bool parsed;
	double t0, dt;
	FILE *f;
	int r;

	snprintf(path, sizeof(path), "%s/%s", hostile_dir, name);
	f = fopen(path, "r");
	if (f) {
		char chunk[4096];
		size_t n;

		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			buf_add(&src, chunk, n);
		fclose(f);
	}
	parsed = parse_expect(buf_str(&src), &x) == 0;
	snprintf(label, sizeof(label), "hostile %s: contained, %s%s%s", name,
		 x.nkinds && x.kinds[0] == 0 ? "OK"
		 : x.kinds[0] == -EINVAL     ? "EINVAL"
		 : x.kinds[0] == -ENOEXEC    ? "ENOEXEC"
					     : "EIO",
		 x.nkinds > 1 ? "|..." : "", x.nreasons ? " as expected" : "");
	t0 = now_ms();
	r = sandbox_run(0, src.data, src.len, "x", 1, &out, &err);
	dt = now_ms() - t0;
	/* Elapsed time is printed, never asserted: the machine may be loaded. */
	msg = r == -EIO || r == -ENOEXEC ? buf_str(&err) : buf_str(&out);
	tap_diag("%s: r=%d after %.0f ms: %.*s", name, r, dt, (int)strcspn(msg, "\n"), msg);
	CHECK_WHY(parsed && expect_met(&x, r, msg) && contained(&out, &err, &why), label,
		  "%s r=%d; err=%.300s; out=%.300s", parsed ? why : "no valid expect: line", r,
		  buf_str(&err), buf_str(&out));
	r = run(good_src, "3", &out, &err);
	if (r != 0 || strcmp(buf_str(&out), "10\n") != 0)
		CHECK_WHY(false, "pool still serves after hostile", "%s: r=%d err=%s", name, r,
			  buf_str(&err));
	buf_free(&src);
	buf_free(&out);
	buf_free(&err);
}

static void test_hostile(void)
{
	DIR *d = opendir(hostile_dir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;
	bool none = true;

	for (size_t i = 0; i < sizeof(pwned) / sizeof(pwned[0]); i++)
		unlink(pwned[i]);
	if (!d) {
		CHECK_WHY(false, "hostile corpus", "%s: %s", hostile_dir, strerror(errno));
		return;
	}
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);

		if (l > 2 && strcmp(de->d_name + l - 2, ".c") == 0) {
			names = realloc(names, (n + 1) * sizeof(*names));
			names[n++] = strdup(de->d_name);
		}
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		test_hostile_one(names[i]);
		free(names[i]);
	}
	free(names);
	for (size_t i = 0; i < sizeof(pwned) / sizeof(pwned[0]); i++)
		none = none && !file_exists(pwned[i]);
	CHECK_WHY(n >= 20 && none, "hostile corpus created no files outside", "%zu files", n);
}

/* Children of this process, and seglam-worker processes anywhere, from /proc.
 * The worker mother (one process that forks workers, not a worker) and its
 * spare (forked ahead, not yet a worker) are children too, counted only while
 * the pool is live (@mothers: how many mothers there are). */
static int mothers;
static void count_procs(int *children, int *workers)
{
	DIR *d = opendir("/proc");
	struct dirent *de;

	*children = *workers = 0;
	while (d && (de = readdir(d))) {
		char path[300], buf[512], comm[64];
		int ppid;
		char state;
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f)) {
			char *rp = strrchr(buf, ')');
			char *lp = strchr(buf, '(');

			if (lp && rp && sscanf(rp + 2, "%c %d", &state, &ppid) == 2) {
				snprintf(comm, sizeof(comm), "%.*s", (int)(rp - lp - 1), lp + 1);
				*children += ppid == getpid();
				*children -= ppid == getpid() && mothers &&
					     (strcmp(comm, "seglam-mother") == 0 ||
					      strcmp(comm, "seglam-spare") == 0);
				*workers += ppid == getpid() && strcmp(comm, "seglam-worker") == 0;
			}
		}
		fclose(f);
	}
	if (d)
		closedir(d);
}

struct conc {
	int id, bad;
};

static void *conc_thread(void *arg)
{
	struct conc *c = arg;
	struct buf out = BUF_INIT, err = BUF_INIT;

	for (int i = 0; i < 200; i++) {
		char in[32], want[32];
		long v = c->id * 1000 + i;

		snprintf(in, sizeof(in), "%ld", v);
		snprintf(want, sizeof(want), "%ld\n", v * v + 1);
		if (run(good_src, in, &out, &err) != 0 || strcmp(buf_str(&out), want) != 0)
			c->bad++;
	}
	buf_free(&out);
	buf_free(&err);
	return NULL;
}

static void test_concurrency(void)
{
	pthread_t t[8];
	struct conc c[8];
	struct sandbox_stats st;
	int bad = 0;

	for (int i = 0; i < 8; i++) {
		c[i] = (struct conc){.id = i};
		pthread_create(&t[i], NULL, conc_thread, &c[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		bad += c[i].bad;
	}
	sandbox_get_stats(&st);
	CHECK_WHY(bad == 0, "8 threads x 200 runs of one source", "%d wrong", bad);
	CHECK_WHY(st.live_workers <= 64, "live workers within the cap", "live=%llu",
		  (unsigned long long)st.live_workers);
}

static void pool_sources(char src[5][256])
{
	for (int i = 0; i < 5; i++)
		snprintf(src[i], 256,
			 "#include <seglam.h>\nint seglam_run(const char *in, size_t len, "
			 "seglam_out *out) { return seglam_printf(out, \"%d\\n\"); }\n",
			 i);
}

/* Five types of one owner, cap 3, one type per worker (-o worker_types=1): the
 * pool keeps the 3 most recently used workers. */
static void test_pool_limits_one_type(void)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct sandbox_config cfg = {.worker_path = worker_path,
				     .include_dir = include_dir,
				     .timeout_ms = TIMEOUT_MS,
				     .max_workers = 3,
				     .worker_types = 1};
	struct sandbox_stats st;
	char src[5][256];
	int children, workers, ok = 1;

	sandbox_shutdown();
	if (sandbox_init(&cfg) < 0)
		exit(1);
	pool_sources(src);
	for (int i = 0; i < 5; i++)
		ok &= run(src[i], "", &out, &err) == 0 && out.data[0] == '0' + i;
	sandbox_get_stats(&st);
	mothers = 1;
	count_procs(&children, &workers);
	CHECK_WHY(ok && st.live_workers == 3 && children == 3,
		  "worker_types=1: LRU keeps max_workers live", "ok=%d live=%llu children=%d", ok,
		  (unsigned long long)st.live_workers, children);
	/* five loads: three workers forked by the one mother, then the least
	 * recently used type replaced twice (no process ends for that) */
	CHECK_WHY(st.evictions == 0 && st.type_evictions == 2 && st.pool_misses == 5 &&
		      st.forks == 3 && st.mother_spawns == 1 && st.types_cached == 3,
		  "worker_types=1: types replaced by use in the workers there are",
		  "evictions=%llu type_evictions=%llu misses=%llu forks=%llu mothers=%llu "
		  "cached=%llu",
		  (unsigned long long)st.evictions, (unsigned long long)st.type_evictions,
		  (unsigned long long)st.pool_misses, (unsigned long long)st.forks,
		  (unsigned long long)st.mother_spawns, (unsigned long long)st.types_cached);
	/* another owner at the cap: the least recently used worker makes room */
	ok = sandbox_run(65534, src[0], strlen(src[0]), "", 0, &out, &err) == 0 &&
	     out.data[0] == '0';
	sandbox_get_stats(&st);
	count_procs(&children, &workers);
	CHECK_WHY(ok && st.evictions == 1 && st.forks == 4 && st.live_workers == 3 && children <= 4,
		  "worker_types=1: another owner evicts a worker under the cap",
		  "ok=%d evictions=%llu forks=%llu live=%llu children=%d", ok,
		  (unsigned long long)st.evictions, (unsigned long long)st.forks,
		  (unsigned long long)st.live_workers, children);
	mothers = 0;
	buf_free(&out);
	buf_free(&err);
}

/* Five types of one owner, cap 3, default worker_types: one worker holds them
 * all (no process per type); sandbox_forget drops one type, not the worker. */
static void test_pool_limits(void)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct sandbox_stats st;
	char src[5][256];
	int children, workers, ok = 1;

	sandbox_shutdown();
	start(3);
	pool_sources(src);
	for (int i = 0; i < 5; i++)
		ok &= run(src[i], "", &out, &err) == 0 && out.data[0] == '0' + i;
	for (int i = 0; i < 5; i++) /* all five still compiled: hits */
		ok &= run(src[i], "x", &out, &err) == 0 && out.data[0] == '0' + i;
	sandbox_get_stats(&st);
	mothers = 1;
	count_procs(&children, &workers);
	CHECK_WHY(
	    ok && st.live_workers == 1 && children == 1 && st.types_cached == 5,
	    "one worker holds five types of one owner", "ok=%d live=%llu children=%d cached=%llu",
	    ok, (unsigned long long)st.live_workers, children, (unsigned long long)st.types_cached);
	CHECK_WHY(st.evictions == 0 && st.pool_misses == 5 && st.pool_hits == 5 && st.forks == 1 &&
		      st.compiles == 5,
		  "five loads into one worker forked once, then five hits",
		  "evictions=%llu misses=%llu hits=%llu forks=%llu compiles=%llu",
		  (unsigned long long)st.evictions, (unsigned long long)st.pool_misses,
		  (unsigned long long)st.pool_hits, (unsigned long long)st.forks,
		  (unsigned long long)st.compiles);
	sandbox_forget(0, src[4], strlen(src[4]));
	sandbox_get_stats(&st);
	count_procs(&children, &workers);
	mothers = 0;
	CHECK_WHY(st.live_workers == 1 && children == 1 && st.types_cached == 4,
		  "sandbox_forget drops that source, not its worker",
		  "live=%llu children=%d "
		  "cached=%llu",
		  (unsigned long long)st.live_workers, children,
		  (unsigned long long)st.types_cached);
	ok = run(src[4], "", &out, &err) == 0 && out.data[0] == '4';
	sandbox_get_stats(&st);
	CHECK_WHY(ok && st.compiles == 6, "a forgotten source is compiled again",
		  "err=%s compiles=%llu", buf_str(&err), (unsigned long long)st.compiles);
	/* another owner's types never go into that worker */
	ok = sandbox_run(65534, src[0], strlen(src[0]), "", 0, &out, &err) == 0 &&
	     out.data[0] == '0';
	sandbox_get_stats(&st);
	CHECK_WHY(ok && st.live_workers == 2 && st.forks == 2,
		  "another owner's procedure gets a worker of its own",
		  "err=%s live=%llu forks=%llu", buf_str(&err), (unsigned long long)st.live_workers,
		  (unsigned long long)st.forks);
	buf_free(&out);
	buf_free(&err);
	test_pool_limits_one_type();
}

/* Composition: the call handler the cache layer would provide, scripted by type. */
static int call_handler(const char *type, const char *in, size_t len, struct buf *out,
			struct buf *why)
{
	struct buf err = BUF_INIT;
	int r;

	if (!strcmp(type, "sq")) {
		/* a nested run on this thread: the caller's worker is parked meanwhile */
		r = sandbox_run(0, good_src, strlen(good_src), in, len, out, &err);
		buf_free(&err);
		return r;
	}
	if (!strcmp(type, "slow")) {
		usleep((TIMEOUT_MS + 200) * 1000);
		buf_adds(out, "late\n");
		return 0;
	}
	buf_adds(why, "no such type");
	return -ENOENT;
}

static const char caller_src[] = "#include <seglam.h>\n"
				 "int seglam_run(const char *in, size_t len, seglam_out *out)\n"
				 "{\n"
				 "\tsize_t n = 99;\n"
				 "\tconst char *a = seglam_call(in, \"7\", 1, &n);\n"
				 "\tif (!a)\n"
				 "\t\treturn seglam_printf(out, \"NULL n=%zu\\n\", n);\n"
				 "\treturn seglam_printf(out, \"got %zu %s\", n, a);\n"
				 "}\n";

static void test_calls(void)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct sandbox_stats st;
	int r;

	sandbox_shutdown();
	start(1); /* the cap at 1: a caller and its callee must still both run */
	r = run(caller_src, "x", &out, &err);
	CHECK_WHY(r == 0 && !strcmp(buf_str(&out), "NULL n=0\n"), "no handler: seglam_call is NULL",
		  "r=%d out=%s err=%s", r, buf_str(&out), buf_str(&err));
	sandbox_set_call_handler(call_handler);
	r = run(caller_src, "sq", &out, &err);
	CHECK_WHY(r == 0 && !strcmp(buf_str(&out), "got 3 50\n"),
		  "seglam_call answers through the daemon, workers cap 1", "r=%d out=%s err=%s", r,
		  buf_str(&out), buf_str(&err));
	r = run(caller_src, "nope", &out, &err);
	CHECK_WHY(r == 0 && !strcmp(buf_str(&out), "NULL n=0\n"), "a failed call is NULL",
		  "r=%d out=%s err=%s", r, buf_str(&out), buf_str(&err));
	/* A first run that calls: its input goes with the load, the process that
	 * compiled the type runs it, and the call's answer reaches it through the
	 * load pipe (frame.h FRAME_REQ_LOAD_RUN); twice, the second time the callee
	 * too is loaded with its input while the caller waits. */
	for (int i = 0; i < 2; i++) {
		struct sandbox_stats st0;

		sandbox_get_stats(&st0);
		sandbox_forget(0, caller_src, strlen(caller_src));
		if (i)
			sandbox_forget(0, good_src, strlen(good_src));
		r = run(caller_src, "sq", &out, &err);
		sandbox_get_stats(&st);
		CHECK_WHY(r == 0 && !strcmp(buf_str(&out), "got 3 50\n") &&
			      st.compiles > st0.compiles + (unsigned)i,
			  i ? "a first run calls a type loaded with its input meanwhile"
			    : "a first run (loaded with its input) calls through the daemon",
			  "r=%d out=%s err=%s compiles %llu -> %llu", r, buf_str(&out),
			  buf_str(&err), (unsigned long long)st0.compiles,
			  (unsigned long long)st.compiles);
	}
	sandbox_forget(0, caller_src, strlen(caller_src));
	r = run(caller_src, "slow", &out, &err);
	CHECK_WHY(r == -EIO && strstr(buf_str(&err), "timed out"),
		  "a first run whose call passes the time limit fails", "r=%d out=%s err=%s", r,
		  buf_str(&out), buf_str(&err));
	r = run(caller_src, "", &out, &err);
	CHECK_WHY(r == 0 && !strcmp(buf_str(&out), "NULL n=0\n"), "an empty type is NULL",
		  "r=%d out=%s err=%s", r, buf_str(&out), buf_str(&err));
	r = run(caller_src, "slow", &out, &err);
	CHECK_WHY(r == -EIO && strstr(buf_str(&err), "timed out"),
		  "a call past the time limit fails the whole run", "r=%d out=%s err=%s", r,
		  buf_str(&out), buf_str(&err));
	r = run(caller_src, "sq", &out, &err);
	sandbox_get_stats(&st);
	CHECK_WHY(r == 0 && st.calls >= 4 && st.parked_max >= 1,
		  "the pool keeps serving after a timed-out call",
		  "r=%d calls=%llu parked_max=%llu", r, (unsigned long long)st.calls,
		  (unsigned long long)st.parked_max);
	sandbox_set_call_handler(NULL);
	buf_free(&out);
	buf_free(&err);
}

/* Cold and warm latencies, printed for the record: timing is asserted only in
 * benchmarks (bench/), never here.  What is checked is that every run is right. */
static void test_timing(void)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	double cold[20], warm[2000];
	char src[300];
	int bad = 0;

	for (int i = 0; i < 20; i++) {
		double t0;

		snprintf(src, sizeof(src),
			 "#include <seglam.h>\n#include <string.h>\n"
			 "int seglam_run(const char *in, size_t len, seglam_out *out)\n"
			 "{ return seglam_printf(out, \"%%d %%zu\\n\", %d, strlen(in)); }\n",
			 i);
		t0 = now_ms();
		bad += sandbox_compile(0, src, strlen(src), &err) != 0;
		cold[i] = now_ms() - t0;
		sandbox_forget(0, src, strlen(src));
	}
	for (int i = 0; i < 2000; i++) {
		double t0 = now_ms();

		bad += run(good_src, "42", &out, &err) != 0 || strcmp(buf_str(&out), "1765\n");
		warm[i] = now_ms() - t0;
	}
	qsort(cold, 20, sizeof(double), cmp_double);
	qsort(warm, 2000, sizeof(double), cmp_double);
	tap_diag("cold start (spawn + compile) median %.2f ms, max %.2f ms", cold[10], cold[19]);
	tap_diag("warm run median %.1f us, p99 %.1f us", warm[1000] * 1e3, warm[1980] * 1e3);
	CHECK_WHY(bad == 0, "20 cold compiles and 2000 warm runs all right", "%d wrong; err=%s",
		  bad, buf_str(&err));
	buf_free(&out);
	buf_free(&err);
}

/* buf_addrepr, the one quoting helper for worker and compiler text. */
static void test_addrepr(void)
{
	/* ESC, BEL, backslash, newline, tab, DEL, U+00E9, U+009B (C1 CSI), a lone
	 * continuation byte, an overlong '/', a truncated sequence */
	static const char in[] = "a\x1b[2J\x07\\b\n\t\x7f\xc3\xa9\xc2\x9b\x80\xc0\xaf\xe2\x82";
	const char *keep =
	    "a\\x1b[2J\\x07\\\\b\n\\t\\x7f\xc3\xa9\\xc2\\x9b\\x80\\xc0\\xaf\\xe2\\x82";
	const char *flat =
	    "a\\x1b[2J\\x07\\\\b\\n\\t\\x7f\xc3\xa9\\xc2\\x9b\\x80\\xc0\\xaf\\xe2\\x82";
	struct buf a = BUF_INIT, b = BUF_INIT;

	buf_addrepr(&a, in, sizeof(in) - 1, true);
	buf_addrepr(&b, in, sizeof(in) - 1, false);
	CHECK_WHY(strcmp(buf_str(&a), keep) == 0 && strcmp(buf_str(&b), flat) == 0,
		  "buf_addrepr escapes control bytes, C1 and invalid UTF-8, keeps valid UTF-8",
		  "got %s | %s", buf_str(&a), buf_str(&b));
	buf_free(&a);
	buf_free(&b);
}

/*
 * A type's first input runs in the process that compiled it (frame.h
 * FRAME_REQ_LOAD_RUN), any later one in a run child: the procedure must find the
 * same process either way.  This one lists the fds it can read (a read of 0 bytes
 * is 0 on an open fd, -EBADF otherwise: fd 0 is closed in both, 1 and 2 are
 * write-only, 3 brings call answers, and nothing tcc opened is left) and tries to open a header
 * (the compile child's own filter allows openat; the run child's, which it adds, does not: SIGSYS).
 */
static const char fds_src[] =
    "#include <seglam.h>\n"
    "static long sys3(long n, long a, long b, long c)\n"
    "{\n"
    "\tlong ret;\n"
    "\t__asm__ volatile(\"syscall\" : \"=a\"(ret) : \"a\"(n), \"D\"(a), \"S\"(b), \"d\"(c)\n"
    "\t\t\t : \"rcx\", \"r11\", \"memory\");\n"
    "\treturn ret;\n"
    "}\n"
    "int seglam_run(const char *in, size_t len, seglam_out *out)\n"
    "{\n"
    "\tchar b[1];\n"
    "\tseglam_printf(out, \"open:\");\n"
    "\tfor (long fd = 0; fd < 64; fd++)\n"
    "\t\tif (sys3(0, fd, (long)b, 0) == 0)\n"
    "\t\t\tseglam_printf(out, \" %ld\", fd);\n"
    "\tif (len && in[0] == 'o')\n"
    "\t\tsys3(257, -100, (long)\"/etc/hostname\", 0);\n"
    "\treturn seglam_printf(out, \"\\n\");\n"
    "}\n";

static void test_first_run_like_others(void)
{
	struct buf first = BUF_INIT, later = BUF_INIT, err = BUF_INIT;
	int r1, r2;

	sandbox_forget(0, fds_src, strlen(fds_src));
	r1 = sandbox_run(0, fds_src, strlen(fds_src), "a", 1, &first, &err);
	r2 = sandbox_run(0, fds_src, strlen(fds_src), "b", 1, &later, &err);
	CHECK_WHY(r1 == 0 && r2 == 0 && !strcmp(buf_str(&first), buf_str(&later)) &&
		      !strcmp(buf_str(&first), "open: 3\n"),
		  "a type's first run and a later one read the same fds (3: call answers)",
		  "r=%d,%d first=%s later=%s err=%s", r1, r2, buf_str(&first), buf_str(&later),
		  buf_str(&err));
	for (int i = 0; i < 2; i++) {
		buf_reset(&first);
		buf_reset(&err);
		if (!i)
			sandbox_forget(0, fds_src, strlen(fds_src));
		r1 = sandbox_run(0, fds_src, strlen(fds_src), "o", 1, &first, &err);
		CHECK_WHY(r1 == -EIO && strstr(buf_str(&err), "SIGSYS"),
			  i ? "openat in a later run: killed by the sandbox"
			    : "openat in a type's first run: killed by the run child's filter",
			  "r=%d out=%s err=%s", r1, buf_str(&first), buf_str(&err));
	}
	buf_free(&first);
	buf_free(&later);
	buf_free(&err);
}

/*
 * No run sees another's input (issue 10 item 6): a procedure that keeps its inputs
 * in static memory, and one that writes a forged reply early and its real one (with
 * the input) late, are each run for one caller and then another; the second
 * caller never gets the first one's input.  Before each run had a fresh child,
 * both leaked.
 */
static void test_runs_isolated(void)
{
	static const char *const cases[] = {"remember.c", "reply_early_late.c"};
	struct buf src = BUF_INIT, out = BUF_INIT, err = BUF_INIT;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		char path[4096], name[128];
		bool leaked = false;
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s", hostile_dir, cases[c]);
		buf_reset(&src);
		f = fopen(path, "r");
		if (f) {
			char chunk[4096];
			size_t n;

			while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
				buf_add(&src, chunk, n);
			fclose(f);
		}
		for (int i = 0; i < 6; i++) {
			char in[64];
			bool other = false;
			int r;

			snprintf(in, sizeof(in), "secret-of-caller-%d", i);
			buf_reset(&out);
			buf_reset(&err);
			r = sandbox_run(0, src.data, src.len, in, strlen(in), &out, &err);
			/* any earlier caller's input (the corpus ran these with "x") */
			for (int j = 0; j < i; j++) {
				char prev[64];

				snprintf(prev, sizeof(prev), "secret-of-caller-%d", j);
				other = other || strstr(buf_str(&out), prev) ||
					strstr(buf_str(&err), prev);
			}
			other = other || strstr(buf_str(&out), "input: x") ||
				strstr(buf_str(&out), "[x;");
			if (other) {
				tap_diag("run %d: r=%d out=%s err=%s", i, r, buf_str(&out),
					 buf_str(&err));
				leaked = true;
			}
		}
		snprintf(name, sizeof(name), "%s: no caller gets an earlier caller's input",
			 cases[c]);
		CHECK_WHY(src.len > 0 && !leaked, name, "see above");
	}
	buf_free(&src);
	buf_free(&out);
	buf_free(&err);
}

/* A procedure that counts the 32-bit words of its stack equal to its input's
 * number less one (so that it never holds the value itself): every mapped page of
 * the stack, probed with madvise, which the filter allows. */
static const char stack_scanner[] =
    "#include <seglam.h>\n"
    "#include <stdlib.h>\n"
    "static long sys3(long n, long a, long b, long c)\n"
    "{\n"
    "\tlong ret;\n"
    "\t__asm__ volatile(\"syscall\" : \"=a\"(ret) : \"a\"(n), \"D\"(a), \"S\"(b), "
    "\"d\"(c) : \"rcx\", \"r11\", \"memory\");\n"
    "\treturn ret;\n"
    "}\n"
    "int seglam_run(const char *in, size_t len, seglam_out *out)\n"
    "{\n"
    "\tchar here = 0;\n"
    "\tunsigned long lo = (unsigned long)&here & ~4095UL, hi = lo;\n"
    "\tunsigned int m = (unsigned int)strtoul(in, 0, 10), hits = 0;\n"
    "\t(void)len;\n"
    "\twhile (sys3(28, (long)(lo - 4096), 4096, 0) == 0)\n"
    "\t\tlo -= 4096;\n"
    "\twhile (sys3(28, (long)(hi + 4096), 4096, 0) == 0)\n"
    "\t\thi += 4096;\n"
    "\thi += 4096;\n"
    "\tfor (const unsigned int *w = (const unsigned int *)lo; (unsigned long)w < hi; w++)\n"
    "\t\tif (*w + 1 == m)\n"
    "\t\t\thits++;\n"
    "\tseglam_printf(out, \"hits %u in %lu KiB\\n\", hits, (hi - lo) / 1024);\n"
    "\treturn 0;\n"
    "}\n";

/*
 * A run child is a copy of the zygote, stack included: what the zygote's own
 * frames left there (the length of the last answer it relayed, of another type
 * of the same worker) must not be in the children it forks after.  The writer answers with
 * a length no other run has; the scanner walks every mapped page of its stack
 * (probing with madvise, which the filter allows) and counts the words equal
 * to it, comparing w + 1 with what it was given so that it never holds the
 * value itself.
 */
static void test_stack_keeps_no_answer_length(void)
{
	static const char writer[] = "#include <seglam.h>\n"
				     "#include <stdlib.h>\n"
				     "int seglam_run(const char *in, size_t len, seglam_out *out)\n"
				     "{\n"
				     "\tlong n = strtol(in, 0, 10);\n"
				     "\t(void)len;\n"
				     "\twhile (n-- > 0)\n"
				     "\t\tseglam_write(out, \"x\", 1);\n"
				     "\treturn 0;\n"
				     "}\n";
	/* no other answer of this suite is this long */
	const unsigned long length = 54321;
	struct buf out = BUF_INIT, err = BUF_INIT;
	char in[32], m[32];
	bool clean = true, answered = true;

	snprintf(in, sizeof(in), "%lu", length);
	snprintf(m, sizeof(m), "%lu", length + 1);
	/* the scanner's first run is its compile child's; then run children */
	run(stack_scanner, m, &out, &err);
	for (int i = 0; i < 6; i++) {
		/* (the child of a run was forked after the run before the one
		 * before it: the run between makes the scanner's child the first
		 * one forked after the writer's answer) */
		answered = answered && run(writer, in, &out, &err) == 0 && out.len == length;
		answered = answered && run(good_src, "1", &out, &err) == 0;
		answered = answered && run(stack_scanner, m, &out, &err) == 0 &&
			   !strncmp(buf_str(&out), "hits ", 5);
		if (answered && strncmp(buf_str(&out), "hits 0 ", 7)) {
			tap_diag("run %d: %s", i, buf_str(&out));
			clean = false;
		}
	}
	/* The same across loads: a type's first input is run by its compile
	 * child, and the compiler for the next load is forked right after that
	 * run's answer; each source here is new, so each ask is a load. */
	for (int i = 0; i < 4; i++) {
		struct buf w = BUF_INIT, sc = BUF_INIT;

		buf_printf(&w, "/* writer %d */\n%s", i, writer);
		buf_printf(&sc, "/* scanner %d */\n%s", i, stack_scanner);
		buf_reset(&out);
		buf_reset(&err);
		answered = answered &&
			   sandbox_run(0, w.data, w.len, in, strlen(in), &out, &err) == 0 &&
			   out.len == length;
		buf_reset(&out);
		answered = answered &&
			   sandbox_run(0, sc.data, sc.len, m, strlen(m), &out, &err) == 0 &&
			   !strncmp(buf_str(&out), "hits ", 5);
		if (answered && strncmp(buf_str(&out), "hits 0 ", 7)) {
			tap_diag("load %d: %s", i, buf_str(&out));
			clean = false;
		}
		buf_free(&w);
		buf_free(&sc);
	}
	CHECK_WHY(answered, "a writer and a stack scanner of one owner answer in turn",
		  "out=%.80s err=%s", buf_str(&out), buf_str(&err));
	CHECK(clean, "no child's stack holds the length of an answer relayed before it was "
		     "forked (another type's), run child or compile child");
	buf_free(&out);
	buf_free(&err);
}

/*
 * The same for the length of a type's first input, which the zygote passes from
 * the load pipe to the compile child (load.c worker_load_first): the compile
 * child for the next load is forked right after that run, and the run children
 * after it, all with a copy of the zygote's stack.  Each writer here is a new
 * type asked with an input of a length no other input has; the scanner after it
 * is a new type too (its first run is the compile child forked after the
 * writer's), then asked again (a run child).
 */
static void test_stack_keeps_no_input_length(void)
{
	static const char writer[] = "#include <seglam.h>\n"
				     "int seglam_run(const char *in, size_t len, seglam_out *out)\n"
				     "{\n"
				     "\t(void)in;\n"
				     "\treturn seglam_printf(out, \"%zu\\n\", len);\n"
				     "}\n";
	const unsigned long length = 43210; /* under a first input's 64 KiB */
	struct buf out = BUF_INIT, err = BUF_INIT, in = BUF_INIT;
	char m[32], want[32];
	bool clean = true, answered = true;

	sandbox_shutdown();
	start(0);
	while (in.len < length)
		buf_addc(&in, 'i');
	snprintf(m, sizeof(m), "%lu", length + 1);
	snprintf(want, sizeof(want), "%lu\n", length);
	for (int i = 0; i < 4; i++) {
		struct buf w = BUF_INIT, sc = BUF_INIT;

		buf_printf(&w, "/* input writer %d */\n%s", i, writer);
		buf_printf(&sc, "/* input scanner %d */\n%s", i, stack_scanner);
		buf_reset(&out);
		buf_reset(&err);
		answered = answered &&
			   sandbox_run(0, w.data, w.len, in.data, in.len, &out, &err) == 0 &&
			   !strcmp(buf_str(&out), want);
		for (int k = 0; k < 2; k++) {
			buf_reset(&out);
			answered = answered &&
				   sandbox_run(0, sc.data, sc.len, m, strlen(m), &out, &err) == 0 &&
				   !strncmp(buf_str(&out), "hits ", 5);
			if (answered && strncmp(buf_str(&out), "hits 0 ", 7)) {
				tap_diag("load %d, %s: %s", i, k ? "run child" : "compile child",
					 buf_str(&out));
				clean = false;
			}
		}
		buf_free(&w);
		buf_free(&sc);
	}
	CHECK_WHY(answered, "writers of first inputs and stack scanners answer in turn",
		  "out=%.80s err=%s", buf_str(&out), buf_str(&err));
	CHECK(clean, "no child's stack holds the length of another type's first input");
	buf_free(&out);
	buf_free(&err);
	buf_free(&in);
}

/*
 * -o worker_reuse: inputs run in the pooled worker itself.  Answers are right,
 * a forged reply still kills the worker, and (what the option trades away, and
 * SECURITY.md says) a procedure remembers earlier inputs.
 */
static void test_worker_reuse(void)
{
	struct buf src = BUF_INIT, out = BUF_INIT, err = BUF_INIT;
	char path[4096];
	bool all = true;
	FILE *f;
	int r;

	sandbox_shutdown();
	opt_worker_reuse = true;
	start(0);
	for (int i = 0; i < 200 && all; i++) {
		char in[32], want[32];

		snprintf(in, sizeof(in), "%d", i);
		snprintf(want, sizeof(want), "%ld\n", (long)i * i + 1);
		all = run(good_src, in, &out, &err) == 0 && strcmp(buf_str(&out), want) == 0;
	}
	CHECK_WHY(all, "worker_reuse: 200 runs answered right", "out=%s err=%s", buf_str(&out),
		  buf_str(&err));
	snprintf(path, sizeof(path), "%s/remember.c", hostile_dir);
	f = fopen(path, "r");
	if (f) {
		char chunk[4096];
		size_t n;

		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			buf_add(&src, chunk, n);
		fclose(f);
	}
	sandbox_run(0, src.data, src.len, "first", 5, &out, &err);
	r = sandbox_run(0, src.data, src.len, "second", 6, &out, &err);
	CHECK_WHY(
	    r == 0 && strstr(buf_str(&out), "first;"),
	    "worker_reuse: a procedure remembers earlier inputs (what the option trades away)",
	    "r=%d out=%s", r, buf_str(&out));
	/* seglam_call in a reusing worker: the answer comes on fd 0 itself */
	sandbox_set_call_handler(call_handler);
	all = true;
	for (int i = 0; i < 20 && all; i++)
		all = run(caller_src, i % 2 ? "sq" : "nope", &out, &err) == 0 &&
		      !strcmp(buf_str(&out), i % 2 ? "got 3 50\n" : "NULL n=0\n");
	sandbox_set_call_handler(NULL);
	CHECK_WHY(all, "worker_reuse: seglam_call answers, 20 runs in a row", "out=%s err=%s",
		  buf_str(&out), buf_str(&err));
	sandbox_shutdown();
	opt_worker_reuse = false;
	start(0);
	buf_free(&src);
	buf_free(&out);
	buf_free(&err);
}

/*
 * Fail closed: on a kernel without Landlock (simulated by nolandlock-worker, which
 * makes landlock_create_ruleset fail with ENOSYS under the real worker) nothing
 * compiles, with a reason naming the fix, unless allow_no_landlock was given.
 */
static void test_no_landlock(void)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	int r;

	if (!nolandlock_path) {
		CHECK_WHY(false, "no Landlock: refused", "no nolandlock-worker path given");
		return;
	}
	sandbox_shutdown();
	start_with(nolandlock_path, 0, false);
	r = run(good_src, "3", &out, &err);
	CHECK_WHY(r == -ENOEXEC && strstr(buf_str(&err), "Landlock is not available") &&
		      strstr(buf_str(&err), "allow_no_landlock") && out.len == 0,
		  "without Landlock nothing compiles, and the reason names the option",
		  "r=%d err=%s", r, buf_str(&err));
	sandbox_shutdown();
	start_with(nolandlock_path, 0, true);
	r = run(good_src, "3", &out, &err);
	CHECK_WHY(r == 0 && strcmp(buf_str(&out), "10\n") == 0,
		  "allow_no_landlock compiles without Landlock", "r=%d out=%s err=%s", r,
		  buf_str(&out), buf_str(&err));
	sandbox_shutdown();
	start(0);
	buf_free(&out);
	buf_free(&err);
}

/* Our seglam-worker children (the pool's workers; the mother is seglam-mother):
 * how many, and the first pid in *@pid. */
static int pooled_workers(pid_t *pid)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	*pid = 0;
	while (d && (de = readdir(d))) {
		char path[300], buf[512];
		int ppid;
		char state;
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && strstr(buf, "(seglam-worker) ")) {
			char *rp = strrchr(buf, ')');

			if (sscanf(rp + 2, "%c %d", &state, &ppid) == 2 && ppid == getpid() &&
			    state != 'Z' && n++ == 0)
				*pid = (pid_t)atoi(de->d_name);
		}
		fclose(f);
	}
	if (d)
		closedir(d);
	return n;
}

/* Signal @pid's process group (the worker and the run child forked ahead) from
 * outside, as an operator or the OOM killer would, and wait until it has exited
 * (without reaping it: that is the pool's). */
static void kill_worker(pid_t pid, int sig)
{
	siginfo_t info;

	if (kill(-pid, sig) < 0)
		kill(pid, sig);
	while (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) < 0 && errno == EINTR)
		;
}

/*
 * A pooled worker killed from outside while idle (SIGKILL: the OOM killer, an
 * operator) is not the input's fault: the run is tried once more in a fresh worker.
 * Any other end of a worker is the run's answer: it fails, and is not tried again.
 */
static void test_killed_worker(void)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct sandbox_stats st;
	pid_t pid;
	int r, n;

	sandbox_shutdown();
	start(0);
	r = run(good_src, "2", &out, &err);
	n = pooled_workers(&pid);
	CHECK_WHY(r == 0 && n == 1, "one warm worker in the pool", "r=%d workers=%d err=%s", r, n,
		  buf_str(&err));
	if (pid > 0)
		kill_worker(pid, SIGKILL);
	r = run(good_src, "3", &out, &err);
	sandbox_get_stats(&st);
	CHECK_WHY(r == 0 && strcmp(buf_str(&out), "10\n") == 0 && st.crashes == 1,
		  "a worker killed by SIGKILL while idle: the run is retried in a fresh one",
		  "r=%d out=%s err=%s crashes=%llu", r, buf_str(&out), buf_str(&err),
		  (unsigned long long)st.crashes);
	n = pooled_workers(&pid);
	if (pid > 0)
		kill_worker(pid, SIGTERM);
	r = run(good_src, "4", &out, &err);
	CHECK_WHY(n == 1 && r == -EIO && strstr(buf_str(&err), "SIGTERM"),
		  "a worker ended by another signal fails that run, no retry",
		  "workers=%d r=%d out=%s err=%s", n, r, buf_str(&out), buf_str(&err));
	r = run(good_src, "4", &out, &err);
	CHECK_WHY(r == 0 && strcmp(buf_str(&out), "17\n") == 0, "and the next run answers",
		  "r=%d out=%s err=%s", r, buf_str(&out), buf_str(&err));
	buf_free(&out);
	buf_free(&err);
}

/* The private anonymous mappings of @pid of at least @min bytes, as "lo-hi" lines. */
static void private_maps(pid_t pid, size_t min, struct buf *out)
{
	char path[64], line[512];
	FILE *f;

	buf_reset(out);
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];
		int name = 0;

		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &name) < 3 ||
		    strcmp(perms, "rw-p") != 0 || (name && line[name] && line[name] != '\n') ||
		    hi - lo < min)
			continue;
		buf_printf(out, "%lx-%lx\n", lo, hi);
	}
	if (f)
		fclose(f);
}

/* The live children of @parent (not zombies), up to @max of them into @kids;
 * returns how many. */
static int children_of(pid_t parent, pid_t *kids, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	while (d && n < max && (de = readdir(d))) {
		char path[300], line[512];
		FILE *f;
		int ppid = 0;
		char state = 0;

		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if (de->d_name[0] < '0' || de->d_name[0] > '9' || !(f = fopen(path, "r")))
			continue;
		if (fgets(line, sizeof(line), f) && strrchr(line, ')') &&
		    sscanf(strrchr(line, ')') + 2, "%c %d", &state, &ppid) == 2 && ppid == parent &&
		    state != 'Z')
			kids[n++] = (pid_t)atoi(de->d_name);
		fclose(f);
	}
	if (d)
		closedir(d);
	return n;
}

/*
 * What the zygote keeps for itself (the relay buffer its children's answers
 * pass through; the record of its slots and the buffer a load with its first
 * input is read into) is in memory no child of it gets (sandbox/worker/cow.c):
 * a fork leaves it writable in the zygote, and no run ever holds a byte of it.
 * A load bigger than that buffer still works: its source, or its first input,
 * goes to the zygote's heap instead.
 */
static void test_zygote_memory(void)
{
	struct buf out = BUF_INIT, err = BUF_INIT, mine = BUF_INIT, theirs = BUF_INIT;
	struct buf src = BUF_INIT, in = BUF_INIT;
	int r, kids;
	unsigned long own = 0;
	pid_t zygote, pids[16];

	sandbox_shutdown();
	start(0);
	r = run(good_src, "2", &out, &err);
	CHECK_WHY(r == 0 && pooled_workers(&zygote) == 1, "one zygote", "r=%d err=%s", r,
		  buf_str(&err));
	/* (its children are forked after the answer, off its path) */
	for (int i = 0; i < 200 && (kids = children_of(zygote, pids, 16)) < 1; i++)
		usleep(10000);
	private_maps(zygote, 512 << 10, &mine);
	for (int i = 0; i < kids; i++) {
		struct buf t = BUF_INIT;

		private_maps(pids[i], 0, &t);
		buf_add(&theirs, t.data, t.len);
		buf_free(&t);
	}
	/* (the kernel may merge them into one mapping: their size is what counts,
	 * the relay's, at least 1 MiB here, and the slots and load buffer's) */
	for (char *l = mine.data, *e; l && *l; l = e + 1) {
		unsigned long lo, hi;

		e = strchr(l, '\n');
		*e = '\0';
		if (!strstr(buf_str(&theirs), l) && sscanf(l, "%lx-%lx", &lo, &hi) == 2)
			own += (hi - lo) >> 10;
	}
	CHECK_WHY(
	    kids >= 1 && own >= 1536,
	    "the zygote's own buffers (relay, slots, a load's bytes) are in none of its children",
	    "children=%d KiB of private memory only the zygote has: %lu", kids, own);

	/* A source past the zygote's load buffer (512 KiB), with a first input. */
	buf_add(&src, good_src, strlen(good_src));
	buf_printf(&src, "/* %0600000d */\n", 0);
	buf_reset(&out);
	r = sandbox_run(0, src.data, src.len, "2", 1, &out, &err);
	CHECK_WHY(r == 0 && strcmp(buf_str(&out), "5\n") == 0,
		  "a 600 KB source with its first input: the source in the zygote's heap",
		  "r=%d out=%s err=%s", r, buf_str(&out), buf_str(&err));
	/* A source that fits, and a first input of 64 KiB that no longer does. */
	buf_reset(&src);
	buf_add(&src, good_src, strlen(good_src));
	buf_printf(&src, "/* %0480000d */\n", 1);
	buf_printf(&in, "%065536d", 2);
	buf_reset(&out);
	r = sandbox_run(0, src.data, src.len, in.data, in.len, &out, &err);
	CHECK_WHY(r == 0 && strcmp(buf_str(&out), "5\n") == 0,
		  "a 480 KB source with a 64 KiB first input: the input in the zygote's heap",
		  "r=%d out=%s err=%s", r, buf_str(&out), buf_str(&err));
	/* A source of exactly the buffer's size, with an empty first input: the
	 * input fits in no bytes, one past the buffer's end, and is not heap memory. */
	buf_reset(&src);
	buf_add(&src, good_src, strlen(good_src));
	buf_printf(&src, "/* %0*d */\n", (int)(512 * 1024 - strlen(good_src) - 7), 3);
	buf_reset(&out);
	r = sandbox_run(0, src.data, src.len, "", 0, &out, &err);
	CHECK_WHY(src.len == 512 * 1024 && r == -EINVAL &&
		      strcmp(buf_str(&out), "not a number: ") == 0,
		  "a 512 KiB source with an empty first input: answered (rejected), the zygote "
		  "whole",
		  "len=%zu r=%d out=%s err=%s", src.len, r, buf_str(&out), buf_str(&err));
	r = run(good_src, "3", &out, &err);
	CHECK_WHY(r == 0 && strcmp(buf_str(&out), "10\n") == 0, "and the worker goes on",
		  "r=%d out=%s err=%s", r, buf_str(&out), buf_str(&err));
	buf_free(&out);
	buf_free(&err);
	buf_free(&mine);
	buf_free(&theirs);
	buf_free(&src);
	buf_free(&in);
}

/* Occurrences of @needle in what a fork of @pid would copy of its stack, heap
 * and anonymous writable memory (no mapping marked "dc", MADV_DONTFORK, in
 * /proc/PID/smaps), read through /proc/PID/mem; *@scanned counts the bytes read. */
static int memory_holds(pid_t pid, const char *needle, size_t *scanned)
{
	char path[64], line[512];
	size_t nlen = strlen(needle);
	unsigned long lo = 0, hi = 0;
	bool candidate = false;
	int hits = 0, mem;
	FILE *smaps;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	smaps = fopen(path, "r");
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	mem = open(path, O_RDONLY | O_CLOEXEC);
	while (smaps && mem >= 0 && fgets(line, sizeof(line), smaps)) {
		char perms[8], *chunk;
		unsigned long a, b;
		int name = 0;
		ssize_t got;

		/* (a mapping's line, not one of its fields: "AnonHugePages" parses as hex) */
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &a, &b, perms, &name) >= 3) {
			lo = a;
			hi = b;
			candidate = strncmp(perms, "rw", 2) == 0 &&
				    (!name || line[name] == '\n' || line[name] == '\0' ||
				     strncmp(line + name, "[stack]", 7) == 0 ||
				     strncmp(line + name, "[heap]", 6) == 0);
			continue;
		}
		if (strncmp(line, "VmFlags:", 8) != 0 || !candidate || strstr(line, " dc"))
			continue;
		chunk = malloc(hi - lo);
		got = chunk ? pread(mem, chunk, hi - lo, (off_t)lo) : -1;
		if (got > 0) {
			*scanned += (size_t)got;
			for (char *q = chunk;
			     (q = memmem(q, (size_t)(chunk + got - q), needle, nlen)); q += nlen)
				hits++;
		}
		free(chunk);
	}
	if (smaps)
		fclose(smaps);
	if (mem >= 0)
		close(mem);
	return hits;
}

/*
 * The zygote passes a load's source on to its compile child and keeps none of
 * it where a child could find it: not in the heap, and not on its stack (the
 * head of the request it writes), which every child it forks later gets a copy
 * of.  Such a child runs another type's procedure, of the same owner or not.
 */
static void test_zygote_keeps_no_source(void)
{
	struct buf out = BUF_INIT, err = BUF_INIT, src = BUF_INIT;
	char marker[64];
	pid_t zygote, kids[16], before[16];
	size_t scanned = 0;
	int r, n = 0, nbefore = 0, fresh = 0, hits = 0;

	sandbox_shutdown();
	start(0);
	r = run(good_src, "2", &out, &err);
	CHECK_WHY(r == 0 && pooled_workers(&zygote) == 1, "one zygote", "r=%d err=%s", r,
		  buf_str(&err));
	/* built at run time, so that the needle is in no binary a worker maps */
	snprintf(marker, sizeof(marker), "seglam_secret_%d_%ld", (int)getpid(), (long)time(NULL));
	buf_printf(&src, "/* %s */\n%s", marker, good_src);
	/* The compile child that will take the load and the next run's child are
	 * forked after an answer, off its path: wait for both, and leave them out
	 * below (the load's own compile child holds its source, as it must; the
	 * next compile child is forked after this load's answer). */
	for (int i = 0; i < 200 && (nbefore = children_of(zygote, before, 16)) < 2; i++)
		usleep(10000);
	buf_reset(&out);
	r = sandbox_run(0, src.data, src.len, "4", 1, &out, &err);
	CHECK_WHY(r == 0 && strcmp(buf_str(&out), "17\n") == 0,
		  "a type whose source holds a secret", "r=%d out=%s err=%s", r, buf_str(&out),
		  buf_str(&err));
	for (int i = 0; i < 200 && fresh < 1; i++) {
		usleep(10000);
		n = children_of(zygote, kids, 16);
		fresh = 0;
		for (int k = 0; k < n; k++) {
			bool old = false;

			for (int b = 0; b < nbefore; b++)
				old |= kids[k] == before[b];
			if (!old)
				kids[fresh++] = kids[k];
		}
	}
	for (int i = 0; i < fresh; i++)
		hits += memory_holds(kids[i], marker, &scanned);
	CHECK_WHY(nbefore >= 2 && fresh >= 1 && scanned > 0 && hits == 0,
		  "no child forked after a load holds a byte of its source (stack, heap)",
		  "children before=%d after=%d bytes scanned=%zu copies of the source's head=%d",
		  nbefore, fresh, scanned, hits);
	/* ... nor will any it forks later: what a fork copies of the zygote (its
	 * own buffers are not copied: test_zygote_memory) */
	scanned = 0;
	hits = memory_holds(zygote, marker, &scanned);
	CHECK_WHY(scanned > 0 && hits == 0,
		  "the zygote keeps no byte of a load's source in memory its forks copy",
		  "bytes scanned=%zu copies of the source's head=%d", scanned, hits);
	/* A compiler's message quotes the source, and passes through the zygote. */
	buf_reset(&src);
	buf_printf(&src,
		   "#include <seglam.h>\nint seglam_run(const char *in, size_t len, "
		   "seglam_out *out)\n{\n\treturn %s;\n}\n",
		   marker);
	r = sandbox_run(0, src.data, src.len, "4", 1, &out, &err);
	scanned = 0;
	hits = memory_holds(zygote, marker, &scanned);
	CHECK_WHY(r == -ENOEXEC && strstr(buf_str(&err), marker) && scanned > 0 && hits == 0,
		  "nor of a compiler's message that quotes it",
		  "r=%d err=%s bytes scanned=%zu copies=%d", r, buf_str(&err), scanned, hits);
	buf_free(&out);
	buf_free(&err);
	buf_free(&src);
}

/* Clock ticks of CPU time @pid has used (user and system), -1 when it is gone. */
static long cpu_ticks(pid_t pid)
{
	char path[64], line[1024];
	unsigned long ut = 0, st = 0;
	long ticks = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f && fgets(line, sizeof(line), f) && strrchr(line, ')') &&
	    sscanf(strrchr(line, ')') + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		   &ut, &st) == 2)
		ticks = (long)(ut + st);
	if (f)
		fclose(f);
	return ticks;
}

/* How many seccomp filters @pid has (/proc/PID/status), -1 when unknown. */
static int seccomp_filters(pid_t pid)
{
	char path[64], line[256];
	int n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Seccomp_filters: %d", &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

struct first_ask {
	const struct buf *src;
	const char *in;
	struct buf out, err;
	int r;
};

static void *first_ask_thread(void *arg)
{
	struct first_ask *a = arg;

	a->r = sandbox_run(0, a->src->data, a->src->len, a->in, strlen(a->in), &a->out, &a->err);
	return NULL;
}

/*
 * A type's first input goes to the compile child that made its image, but only
 * once that image is the zygote's: a tcc exploit in the source, compiling with
 * the input at hand, could otherwise write it into the image, which every later
 * run of the type (another caller's) executes.  Shown on a compile slow enough
 * to watch (a macro that expands to 2^18 terms): while the compile child works,
 * the zygote is stopped (so nothing more reaches the child) and the child's
 * memory searched for the input.
 */
static void test_first_input_after_image(void)
{
	struct buf src = BUF_INIT, want = BUF_INIT;
	struct first_ask a = {.src = &src, .out = BUF_INIT, .err = BUF_INIT};
	struct buf out = BUF_INIT, err = BUF_INIT;
	pid_t zygote, kids[16], compiling = 0;
	long ticks[16];
	char marker[64];
	size_t scanned = 0;
	int r, n, hits = -1, filters_before = -1, filters_after = -2;
	pthread_t t;

	sandbox_shutdown();
	start_patient(0);
	r = run(good_src, "2", &out, &err);
	CHECK_WHY(r == 0 && pooled_workers(&zygote) == 1, "one zygote", "r=%d err=%s", r,
		  buf_str(&err));
	usleep(200 * 1000); /* the compile child forked ahead is ready and idle */
	n = children_of(zygote, kids, 16);
	for (int i = 0; i < n; i++)
		ticks[i] = cpu_ticks(kids[i]);
	buf_adds(&src, "#include <seglam.h>\n#define X0 1 +\n");
	for (int i = 1; i <= 18; i++)
		buf_printf(&src, "#define X%d X%d X%d\n", i, i - 1, i - 1);
	buf_adds(&src, "static int k = X18 0;\n"
		       "int seglam_run(const char *in, size_t len, seglam_out *out)\n{\n"
		       "\tseglam_printf(out, \"%zu\\n\", len);\n\treturn k < 0;\n}\n");
	snprintf(marker, sizeof(marker), "seglam-input-%d-%ld", (int)getpid(), (long)time(NULL));
	a.in = marker;
	pthread_create(&t, NULL, first_ask_thread, &a);
	/* the compile child is the one whose CPU time grows (by 20 ms: it has
	 * read its whole request by then) */
	for (int loop = 0; loop < 5000 && !compiling; loop++) {
		pid_t now[16];
		int m = children_of(zygote, now, 16);

		for (int i = 0; i < m && !compiling; i++) {
			long base = 0;

			for (int k = 0; k < n; k++)
				if (kids[k] == now[i])
					base = ticks[k];
			if (cpu_ticks(now[i]) - base >= 2)
				compiling = now[i];
		}
		if (!compiling)
			usleep(1000);
	}
	if (compiling) {
		kill(zygote, SIGSTOP);
		filters_before = seccomp_filters(compiling);
		hits = memory_holds(compiling, marker, &scanned);
		filters_after = seccomp_filters(compiling);
		kill(zygote, SIGCONT);
	}
	pthread_join(t, NULL);
	buf_printf(&want, "%zu\n", strlen(marker));
	CHECK_WHY(a.r == 0 && strcmp(buf_str(&a.out), buf_str(&want)) == 0,
		  "a slow compile with its first input: answered", "r=%d out=%s err=%s", a.r,
		  buf_str(&a.out), buf_str(&a.err));
	/* (the child's filters tell its compile from its run: a run adds one) */
	CHECK_WHY(compiling && scanned > 0 && filters_before == filters_after && hits == 0,
		  "a type's compile child has no input while it compiles (it gets it after the "
		  "image)",
		  "compile child %d, bytes scanned %zu, filters %d then %d, copies of the input %d",
		  (int)compiling, scanned, filters_before, filters_after, hits);
	buf_free(&src);
	buf_free(&want);
	buf_free(&a.out);
	buf_free(&a.err);
	buf_free(&out);
	buf_free(&err);
}

/*
 * The same for a new worker's first load (and, where first touches are costly,
 * a load right after a load), which finds no compile child forked ahead: one is
 * forked for it then.  A first input that no longer fits the zygote's own buffer
 * after its source goes to its heap, which a fork copies: the compile child must be forked before
 * the input is read, or it compiles with the input in its memory.  Before, it was forked after.
 */
static void test_first_load_input_not_in_compiler(void)
{
	struct buf src = BUF_INIT, in = BUF_INIT, want = BUF_INIT;
	struct first_ask a = {.src = &src, .out = BUF_INIT, .err = BUF_INIT};
	pid_t zygote = 0, kids[16], compiling = 0;
	char marker[64];
	size_t scanned = 0;
	int hits = -1;
	pthread_t t;

	sandbox_shutdown();
	start_patient(0);
	/* (2^17 terms: slow enough to be seen compiling, well within the time
	 * limit on a loaded machine) */
	buf_adds(&src, "#include <seglam.h>\n#define X0 1 +\n");
	for (int i = 1; i <= 17; i++)
		buf_printf(&src, "#define X%d X%d X%d\n", i, i - 1, i - 1);
	buf_adds(&src, "static int k = X17 0;\n"
		       "int seglam_run(const char *in, size_t len, seglam_out *out)\n{\n"
		       "\tseglam_printf(out, \"%zu\\n\", len);\n\treturn k < 0;\n}\n");
	snprintf(marker, sizeof(marker), "seglam-big-input-%d-%ld", (int)getpid(),
		 (long)time(NULL));
	/* source and input past the zygote's load buffer (512 KiB): the input (at
	 * most 64 KiB goes with a load) to its heap */
	buf_printf(&src, "/* %0480000d */\n", 0);
	buf_adds(&in, marker);
	while (in.len < 64 * 1024)
		buf_addc(&in, 'x');
	a.in = buf_str(&in);
	pthread_create(&t, NULL, first_ask_thread, &a);
	/* a new worker: its only child is the compile child, until the answer
	 * (asked again each time: the mother is "seglam-worker" too until it has
	 * named itself) */
	for (int loop = 0; loop < 5000 && !compiling; loop++) {
		if (pooled_workers(&zygote) >= 1) {
			int m = children_of(zygote, kids, 16);

			for (int i = 0; i < m && !compiling; i++)
				if (cpu_ticks(kids[i]) >= 2)
					compiling = kids[i];
		}
		if (!compiling)
			usleep(1000);
	}
	if (compiling) {
		kill(zygote, SIGSTOP);
		hits = memory_holds(compiling, marker, &scanned);
		kill(zygote, SIGCONT);
	}
	pthread_join(t, NULL);
	buf_printf(&want, "%zu\n", in.len);
	CHECK_WHY(a.r == 0 && strcmp(buf_str(&a.out), buf_str(&want)) == 0,
		  "a new worker's first load, 480 KB of source and a 64 KiB first input: answered",
		  "r=%d out=%s err=%s", a.r, buf_str(&a.out), buf_str(&a.err));
	CHECK_WHY(compiling && scanned > 0 && hits == 0,
		  "a new worker's compile child has no byte of a large first input while it "
		  "compiles",
		  "compile child %d, bytes scanned %zu, copies of the input %d", (int)compiling,
		  scanned, hits);
	buf_free(&src);
	buf_free(&in);
	buf_free(&want);
	buf_free(&a.out);
	buf_free(&a.err);
}

/* The "Max cpu time" line of /proc/@pid/limits, soft and hard as printed there
 * ("unlimited" or seconds), into @soft and @hard; false when it is gone. */
static bool cpu_limit(pid_t pid, char soft[32], char hard[32])
{
	char path[64], line[256];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
	f = fopen(path, "r");
	while (f && !found && fgets(line, sizeof(line), f))
		found = sscanf(line, "Max cpu time %31s %31s", soft, hard) == 2;
	if (f)
		fclose(f);
	return found;
}

/*
 * RLIMIT_CPU counts a process's whole life.  The zygote never runs procedure
 * code, and its CPU time grows with every run it forks and relays (about a
 * millisecond a run on a loaded 2-core VM): with the 300 s backstop of a run on
 * it, a busy zygote was killed by SIGXCPU after some 300,000 runs, and the run
 * it was serving failed.  So the zygote has the daemon's limit (here the test's:
 * none), and each of its children that runs tcc or procedure code (the compile
 * child and the run child forked ahead, both waiting here) has 300 s (310 s
 * hard).
 */
static void test_cpu_backstop_per_child(void)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	char soft[32] = "", hard[32] = "", want[64];
	pid_t zygote, kids[16];
	struct rlimit own;
	int r, n = 0, limited = 0, live = 0;

	sandbox_shutdown();
	start(0);
	r = run(good_src, "2", &out, &err);
	CHECK_WHY(r == 0 && pooled_workers(&zygote) == 1, "one zygote", "r=%d err=%s", r,
		  buf_str(&err));
	getrlimit(RLIMIT_CPU, &own);
	if (own.rlim_cur == RLIM_INFINITY)
		snprintf(want, sizeof(want), "unlimited");
	else
		snprintf(want, sizeof(want), "%llu", (unsigned long long)own.rlim_cur);
	cpu_limit(zygote, soft, hard);
	CHECK_WHY(!strcmp(soft, want), "the zygote's CPU time is not limited as a run's is",
		  "Max cpu time of the zygote: %s %s (the daemon's soft limit: %s)", soft, hard,
		  want);
	/* (the compile child and the next run's child are forked after the answer) */
	for (int i = 0; i < 200 && (n = children_of(zygote, kids, 16)) < 2; i++)
		usleep(10000);
	/* A child sets its limit itself, first thing after the fork: on a loaded
	 * machine one just forked may not have run yet, so each gets 3 s to show it.
	 * One that ends meanwhile (a compile child after its load) is not counted. */
	for (int i = 0; i < n; i++) {
		char s[32] = "", h[32] = "";
		bool there = true, ok = false;

		for (int t = 0; t < 300 && there && !ok; t++) {
			if (t)
				usleep(10000);
			there = cpu_limit(kids[i], s, h);
			ok = there && !strcmp(s, "300") && !strcmp(h, "310");
		}
		if (!there)
			live--;
		else if (ok)
			limited++;
		else
			tap_diag("child %d: Max cpu time %s %s", (int)kids[i], s, h);
	}
	live += n;
	CHECK_WHY(live >= 2 && limited == live,
		  "its compile and run children have the CPU backstop (300 s, 310 s hard)",
		  "children %d, with the backstop %d", live, limited);
	buf_free(&out);
	buf_free(&err);
}

/* About 30 ms of CPU per input, whatever the input. */
static const char burn_src[] = "#include <seglam.h>\n"
			       "int seglam_run(const char *in, size_t len, seglam_out *out)\n"
			       "{\n"
			       "\tvolatile unsigned long x = len;\n"
			       "\tfor (long i = 0; i < 30000000; i++)\n"
			       "\t\tx = x * 7 + 1;\n"
			       "\treturn seglam_printf(out, \"%zu\\n\", len);\n"
			       "}\n";

/*
 * A process that serves many inputs sets its CPU backstop once, for its whole
 * life: a batch's child (one per seglam map batch, up to 65536 inputs) and a -o
 * worker_reuse worker.  At 5 ms an input a batch met the 300 s backstop, and the
 * input it was on died of SIGXCPU; a busy reusing worker did too.  Now each
 * stops at a quarter of the backstop: the batch's child skips the rest (a new
 * child runs it), the daemon retires the worker.  Shown with a backstop of 4 s
 * and 6 s or more of inputs.
 */
static void test_cpu_backstop_share(void)
{
	struct buf frames = BUF_INIT, out = BUF_INIT, err = BUF_INIT;
	struct sandbox_stats before, after;
	size_t ran = 0, off = 0;
	int r, answered = 0, bad = 0, runs_ok = 0, runs_bad = 0;
	const int inputs = 200;

	sandbox_shutdown();
	opt_cpu_backstop_s = 4;
	start_patient(0); /* (the time limit per input is not what this shows) */
	for (int i = 0; i < inputs; i++) {
		uint32_t len = 3;

		buf_add(&frames, &len, sizeof(len));
		buf_add(&frames, "abc", 3);
	}
	/* the caller sends again what was not run (sandbox.h), as fs/map.c does */
	for (size_t done = 0, at = 0; done < (size_t)inputs;) {
		r = sandbox_run_batch(0, burn_src, strlen(burn_src), frames.data + at,
				      frames.len - at, (size_t)inputs - done, &out, &ran, &err);
		if (r < 0 || !ran)
			break;
		done += ran;
		at += ran * 7;
	}
	while (off + 8 <= out.len) {
		uint32_t kind, len;

		memcpy(&kind, out.data + off, 4);
		memcpy(&len, out.data + off + 4, 4);
		if (kind == SANDBOX_ANSWER && len == 2 && !memcmp(out.data + off + 8, "3\n", 2))
			answered++;
		else if (bad++ == 0)
			tap_diag("record %d: kind %u: %.*s", answered, kind, (int)len,
				 out.data + off + 8);
		off += 8 + len;
	}
	CHECK_WHY(answered == inputs && !bad,
		  "a batch past a quarter of the CPU backstop goes on in a new child, no input "
		  "killed by SIGXCPU",
		  "answered %d of %d, %d other records; err=%s", answered, inputs, bad,
		  buf_str(&err));
	sandbox_shutdown();
	opt_worker_reuse = true;
	start_patient(0);
	sandbox_get_stats(&before);
	for (int i = 0; i < inputs; i++) {
		r = run(burn_src, "abcd", &out, &err);
		if (r == 0 && !strcmp(buf_str(&out), "4\n"))
			runs_ok++;
		else if (runs_bad++ == 0)
			tap_diag("run %d: r=%d err=%s", i, r, buf_str(&err));
	}
	sandbox_get_stats(&after);
	CHECK_WHY(runs_ok == inputs && after.spawns - before.spawns >= 2,
		  "worker_reuse: a worker busy for a quarter of the CPU backstop is retired, no "
		  "run killed by SIGXCPU",
		  "%d of %d runs answered, %llu workers", runs_ok, inputs,
		  (unsigned long long)(after.spawns - before.spawns));
	sandbox_shutdown();
	opt_worker_reuse = false;
	opt_cpu_backstop_s = 0;
	start(0);
	buf_free(&frames);
	buf_free(&out);
	buf_free(&err);
}

/*
 * A mother that takes the request and never answers (stopped): the cold start is
 * not lost.  After the mother's time to answer it is ended, and the worker comes
 * on new pipes (a worker of the stopped mother's may hold the first ones), from
 * a new mother, and still has the whole time limit to compile (before, the wait
 * for the mother had used it up, and the new worker was killed as timed out).
 */
static void test_stopped_mother(void)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	pid_t kids[16], mother = 0;
	int r, n;

	sandbox_shutdown();
	start(0);
	r = run(good_src, "2", &out, &err);
	n = children_of(getpid(), kids, 16);
	for (int i = 0; i < n; i++) {
		char path[64], comm[32] = "";
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/comm", (int)kids[i]);
		f = fopen(path, "r");
		if (f && fgets(comm, sizeof(comm), f) && !strcmp(comm, "seglam-mother\n"))
			mother = kids[i];
		if (f)
			fclose(f);
	}
	CHECK_WHY(r == 0 && mother > 0, "a mother made the first worker", "r=%d mother=%d", r,
		  (int)mother);
	if (mother > 0)
		kill(mother, SIGSTOP);
	/* another owner: a new worker, asked of the mother */
	buf_reset(&out);
	r = sandbox_run(65534, good_src, strlen(good_src), "3", 1, &out, &err);
	CHECK_WHY(r == 0 && strcmp(buf_str(&out), "10\n") == 0,
		  "a mother that never answers: the cold start goes on (new pipes, a new mother)",
		  "r=%d out=%s err=%s", r, buf_str(&out), buf_str(&err));
	r = run(good_src, "4", &out, &err);
	CHECK_WHY(r == 0 && strcmp(buf_str(&out), "17\n") == 0,
		  "and the first owner's type answers", "r=%d out=%s err=%s", r, buf_str(&out),
		  buf_str(&err));
	buf_free(&out);
	buf_free(&err);
}

int main(int argc, char **argv)
{
	struct sandbox_stats st;
	int children, workers;

	worker_path = argc > 1 ? argv[1] : getenv("SEGLAM_WORKER");
	include_dir = argc > 2 ? argv[2] : getenv("SEGLAM_INCLUDE");
	hostile_dir = argc > 3 ? argv[3] : getenv("SEGLAM_HOSTILE");
	nolandlock_path = argc > 4 ? argv[4] : getenv("SEGLAM_NOLANDLOCK_WORKER");
	if (!worker_path || !include_dir || !hostile_dir) {
		fprintf(stderr, "usage: test_sandbox WORKER INCLUDE_DIR HOSTILE_DIR "
				"[NOLANDLOCK_WORKER]\n");
		return 2;
	}
	/* What the daemon does at start; and a secret the workers must never see. */
	signal(SIGPIPE, SIG_IGN);
	setenv("SEGLAM_LLM_API_KEY", SECRET, 1);
	start(0);

	test_good();
	test_compile_errors();
	test_libc();
	test_binary_and_cap();
	test_addrepr();
	test_hostile();
	test_runs_isolated();
	test_stack_keeps_no_answer_length();
	test_stack_keeps_no_input_length();
	test_first_run_like_others();
	test_worker_reuse();
	test_no_landlock();
	test_killed_worker();
	test_stopped_mother();
	test_cpu_backstop_per_child();
	test_cpu_backstop_share();
	test_zygote_memory();
	test_zygote_keeps_no_source();
	test_first_input_after_image();
	test_first_load_input_not_in_compiler();
	test_concurrency();
	test_timing();

	sandbox_get_stats(&st);
	tap_diag("stats: spawns %llu runs %llu compiles %llu compile_failures %llu crashes %llu "
		 "timeouts %llu live %llu",
		 (unsigned long long)st.spawns, (unsigned long long)st.runs,
		 (unsigned long long)st.compiles, (unsigned long long)st.compile_failures,
		 (unsigned long long)st.crashes, (unsigned long long)st.timeouts,
		 (unsigned long long)st.live_workers);
	test_pool_limits();
	test_calls();
	sandbox_shutdown();
	count_procs(&children, &workers);
	CHECK_WHY(children == 0 && workers == 0, "no worker or zombie left after shutdown",
		  "children=%d seglam-worker processes=%d", children, workers);
	return tap_done();
}
