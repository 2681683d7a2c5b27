/*
 * bench/client.c: the timing client of scripts/bench.
 *
 * Every timed operation is what a program does to read a file: open, read until
 * EOF, close (or one Redis GET).  Times are CLOCK_MONOTONIC nanoseconds.
 *
 *   client lat ROUNDS BATCH SERIES...     interleaved latency; SERIES is NAME=SPEC:
 *       file:PATH            the same file every time
 *       new:DIR              DIR/<a fresh name> every time (ask/TYPE: a new input)
 *       list:FILE            the paths listed in FILE, one a line, in turn
 *       redis:HOST:PORT:KEY  GET KEY over one connection (hiredis)
 *     Within a round the series alternate operation by operation (A B C A B C...),
 *     so drifts of the machine hit all of them alike.  Prints JSON: per series
 *     the p50 and p99 of every round, their medians, and the percentiles of all
 *     samples (for the plot).
 *   client thr SECONDS THREADS SPEC       throughput: THREADS threads doing SPEC
 *       (file:, new:, list:, newlist:FILE = a fresh name under the dirs of FILE in
 *       turn) for SECONDS; prints "ops_per_s N errors N".
 *   client once FILE [GAP_US]             read each path of FILE once, in order
 *       (GAP_US apart: one at a time on an otherwise idle mount); prints "usec
 *       errno" per path.
 *   client miss URL BODYFILE FILE         alternately read a path of FILE (a new
 *       type: a miss) and POST BODYFILE to URL (the LLM round trip alone); prints
 *       "miss_usec errno llm_usec" per path.
 *   client stream MNT NQ NTYPES S INSPACE SEED EVERY PREFIX OUTCSV
 *       the cost-curve replay: NQ queries, type rank ~ Zipf(S) over NTYPES types
 *       named PREFIX%04u, input uniform in [0, INSPACE); every EVERY queries one
 *       CSV line: queries, LLM calls (MNT/stats syntheses) and exact-match cache
 *       misses in the window, their totals, errors, seconds.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(2);
}

/* open + read to EOF + close; 0 or errno. */
static int read_file(const char *path)
{
	char buf[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;

	if (fd < 0)
		return errno;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	if (n < 0)
		err = errno;
	close(fd);
	return err;
}

static char **read_lines(const char *file, size_t *n)
{
	FILE *f = fopen(file, "r");
	char *line = NULL, **v = NULL;
	size_t cap = 0, vn = 0, vcap = 0;
	ssize_t len;

	if (!f)
		die(file);
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (!len)
			continue;
		if (vn == vcap) {
			vcap = vcap ? vcap * 2 : 64;
			v = realloc(v, vcap * sizeof(*v));
			if (!v)
				die("realloc");
		}
		v[vn++] = strdup(line);
	}
	free(line);
	fclose(f);
	*n = vn;
	return v;
}

/* ---- one kind of operation ------------------------------------------------- */

enum kind { K_FILE, K_NEW, K_LIST, K_NEWLIST, K_REDIS };

struct spec {
	char name[64];
	enum kind kind;
	char *path;  /* file:, new: */
	char **list; /* list:, newlist: */
	size_t nlist;
	redisContext *rc;
	char *key;
};

static atomic_ulong name_seq;
static unsigned long run_id;

static void spec_parse(struct spec *s, const char *arg, bool named)
{
	const char *eq = named ? strchr(arg, '=') : NULL, *rest;

	memset(s, 0, sizeof(*s));
	if (named) {
		if (!eq)
			die("series NAME=SPEC");
		snprintf(s->name, sizeof(s->name), "%.*s", (int)(eq - arg), arg);
		arg = eq + 1;
	}
	if (!strncmp(arg, "file:", 5)) {
		s->kind = K_FILE;
		s->path = strdup(arg + 5);
	} else if (!strncmp(arg, "new:", 4)) {
		s->kind = K_NEW;
		s->path = strdup(arg + 4);
	} else if (!strncmp(arg, "list:", 5)) {
		s->kind = K_LIST;
		s->list = read_lines(arg + 5, &s->nlist);
	} else if (!strncmp(arg, "newlist:", 8)) {
		s->kind = K_NEWLIST;
		s->list = read_lines(arg + 8, &s->nlist);
	} else if (!strncmp(arg, "redis:", 6)) {
		char host[256];
		int port;

		rest = arg + 6;
		if (sscanf(rest, "%255[^:]:%d:", host, &port) != 2)
			die("redis:HOST:PORT:KEY");
		s->kind = K_REDIS;
		s->key = strdup(strchr(strchr(rest, ':') + 1, ':') + 1);
		s->rc = redisConnect(host, port);
		if (!s->rc || s->rc->err) {
			fprintf(stderr, "redis: %s\n", s->rc ? s->rc->errstr : "no context");
			exit(2);
		}
	} else {
		fprintf(stderr, "unknown spec %s\n", arg);
		exit(2);
	}
	if ((s->kind == K_LIST || s->kind == K_NEWLIST) && !s->nlist)
		die("empty list");
}

/* One operation; @i counts this caller's operations.  0 or errno. */
static int spec_op(struct spec *s, size_t i)
{
	char path[4096];
	redisReply *r;
	const char *dir;
	int err;

	switch (s->kind) {
	case K_FILE:
		return read_file(s->path);
	case K_LIST:
		return read_file(s->list[i % s->nlist]);
	case K_NEW:
	case K_NEWLIST:
		dir = s->kind == K_NEW ? s->path : s->list[i % s->nlist];
		snprintf(path, sizeof(path), "%s/in%lx-%lu", dir, run_id,
			 atomic_fetch_add(&name_seq, 1));
		return read_file(path);
	case K_REDIS:
		r = redisCommand(s->rc, "GET %s", s->key);
		err = !r || r->type != REDIS_REPLY_STRING ? EIO : 0;
		if (r)
			freeReplyObject(r);
		return err;
	}
	return EINVAL;
}

/* ---- statistics --------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted @v. */
static uint64_t pct(const uint64_t *v, size_t n, double p)
{
	size_t k = (size_t)ceil(p / 100.0 * (double)n);

	if (k < 1)
		k = 1;
	return v[k > n ? n - 1 : k - 1];
}

static double median_dbl(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_dbl);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- lat ------------------------------------------------------------------- */

static int cmd_lat(int argc, char **argv)
{
	int rounds = atoi(argv[0]), batch = atoi(argv[1]), ns = argc - 2;
	struct spec *s = calloc((size_t)ns, sizeof(*s));
	uint64_t *all, *cur;
	double *p50, *p99;
	unsigned long *errors;
	size_t nall = (size_t)rounds * (size_t)batch;

	if (rounds < 1 || batch < 1 || ns < 1)
		die("lat ROUNDS BATCH SERIES...");
	all = malloc((size_t)ns * nall * sizeof(*all));
	cur = malloc((size_t)batch * sizeof(*cur));
	p50 = malloc((size_t)ns * (size_t)rounds * sizeof(*p50));
	p99 = malloc((size_t)ns * (size_t)rounds * sizeof(*p99));
	errors = calloc((size_t)ns, sizeof(*errors));
	for (int j = 0; j < ns; j++)
		spec_parse(&s[j], argv[2 + j], true);
	/* warm-up: one op each, untimed */
	for (int j = 0; j < ns; j++)
		spec_op(&s[j], 0);
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < batch; i++) {
			for (int k = 0; k < ns; k++) {
				/* rotate the order each op: no series always goes first */
				int j = (k + i + r) % ns;
				uint64_t t0 = now_ns();
				int err = spec_op(&s[j], (size_t)r * batch + i + 1);
				uint64_t dt = now_ns() - t0;

				if (err)
					errors[j]++;
				all[(size_t)j * nall + (size_t)r * batch + i] = dt;
			}
		}
		for (int j = 0; j < ns; j++) {
			memcpy(cur, &all[(size_t)j * nall + (size_t)r * batch],
			       (size_t)batch * sizeof(*cur));
			qsort(cur, (size_t)batch, sizeof(*cur), cmp_u64);
			p50[j * rounds + r] = (double)pct(cur, (size_t)batch, 50) / 1000.0;
			p99[j * rounds + r] = (double)pct(cur, (size_t)batch, 99) / 1000.0;
		}
	}
	printf("{\"rounds\": %d, \"batch\": %d, \"series\": {", rounds, batch);
	for (int j = 0; j < ns; j++) {
		static const double ps[] = {1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9};
		uint64_t *v = &all[(size_t)j * nall];
		double tmp[4096];
		int n = rounds < 4096 ? rounds : 4096;

		qsort(v, nall, sizeof(*v), cmp_u64);
		printf("%s\"%s\": {\"errors\": %lu, \"p50_rounds\": [", j ? ", " : "", s[j].name,
		       errors[j]);
		for (int r = 0; r < rounds; r++)
			printf("%s%.3f", r ? ", " : "", p50[j * rounds + r]);
		printf("], \"p99_rounds\": [");
		for (int r = 0; r < rounds; r++)
			printf("%s%.3f", r ? ", " : "", p99[j * rounds + r]);
		memcpy(tmp, &p50[j * rounds], (size_t)n * sizeof(double));
		printf("], \"p50_us\": %.3f", median_dbl(tmp, (size_t)n));
		memcpy(tmp, &p99[j * rounds], (size_t)n * sizeof(double));
		printf(", \"p99_us\": %.3f, \"cdf\": [", median_dbl(tmp, (size_t)n));
		for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++)
			printf("%s[%g, %.3f]", k ? ", " : "", ps[k],
			       (double)pct(v, nall, ps[k]) / 1000.0);
		printf("]}");
	}
	printf("}}\n");
	return 0;
}

/* ---- thr ------------------------------------------------------------------- */

struct thr_arg {
	struct spec *s;
	uint64_t until;
	unsigned long ops, errors;
	int id;
};

static void *thr_main(void *p)
{
	struct thr_arg *a = p;
	size_t i = (size_t)a->id * 7919;

	while (now_ns() < a->until) {
		for (int k = 0; k < 16; k++) {
			if (spec_op(a->s, i++))
				a->errors++;
			a->ops++;
		}
	}
	return NULL;
}

static int cmd_thr(int argc, char **argv)
{
	double secs = atof(argv[0]);
	int n = atoi(argv[1]);
	struct spec s;
	struct thr_arg *a;
	pthread_t *t;
	unsigned long ops = 0, errors = 0;
	uint64_t t0, t1;

	if (argc != 3 || n < 1)
		die("thr SECONDS THREADS SPEC");
	spec_parse(&s, argv[2], false);
	a = calloc((size_t)n, sizeof(*a));
	t = calloc((size_t)n, sizeof(*t));
	t0 = now_ns();
	for (int i = 0; i < n; i++) {
		a[i].s = &s;
		a[i].until = t0 + (uint64_t)(secs * 1e9);
		a[i].id = i;
		if (pthread_create(&t[i], NULL, thr_main, &a[i]))
			die("pthread_create");
	}
	for (int i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		ops += a[i].ops;
		errors += a[i].errors;
	}
	t1 = now_ns();
	printf("ops_per_s %.1f errors %lu\n", (double)ops / ((double)(t1 - t0) / 1e9), errors);
	return 0;
}

/* ---- once / miss ------------------------------------------------------------- */

static int cmd_once(int argc, char **argv)
{
	long gap_us = argc == 2 ? atol(argv[1]) : 0;
	size_t n;
	char **v;

	if (argc != 1 && argc != 2)
		die("once FILE [GAP_US]");
	v = read_lines(argv[0], &n);
	for (size_t i = 0; i < n; i++) {
		uint64_t t0;

		if (gap_us > 0)
			usleep((useconds_t)gap_us);
		t0 = now_ns();
		int err = read_file(v[i]);

		printf("%.3f %d\n", (double)(now_ns() - t0) / 1000.0, err);
	}
	return 0;
}

static size_t discard(char *p, size_t sz, size_t n, void *u)
{
	(void)p;
	(void)u;
	return sz * n;
}

static int cmd_miss(int argc, char **argv)
{
	FILE *f;
	char *body = NULL, **v;
	size_t cap = 0, len, n;

	if (argc != 3)
		die("miss URL BODYFILE FILE");
	f = fopen(argv[1], "r");
	if (!f)
		die(argv[1]);
	len = getdelim(&body, &cap, '\0', f) > 0 ? strlen(body) : 0;
	fclose(f);
	v = read_lines(argv[2], &n);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (size_t i = 0; i < n; i++) {
		struct curl_slist *h = NULL;
		uint64_t t0 = now_ns(), t1, t2;
		int err = read_file(v[i]);
		CURL *c;

		t1 = now_ns();
		/* the LLM alone: a fresh connection, as the daemon makes per request */
		c = curl_easy_init();
		h = curl_slist_append(h, "Content-Type: application/json");
		h = curl_slist_append(h, "Authorization: Bearer x");
		curl_easy_setopt(c, CURLOPT_URL, argv[0]);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
		t2 = now_ns();
		curl_easy_perform(c);
		t2 = now_ns() - t2;
		curl_easy_cleanup(c);
		curl_slist_free_all(h);
		printf("%.3f %d %.3f\n", (double)(t1 - t0) / 1000.0, err, (double)t2 / 1000.0);
	}
	return 0;
}

/* ---- stream ------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static double rng_unit(void)
{
	return (double)(rng() >> 11) / 9007199254740992.0;
}

static long stats_counter(const char *mnt, const char *name)
{
	char path[4096], line[256], key[128];
	long v, found = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/stats", mnt);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%127s %ld", key, &v) == 2 && !strcmp(key, name))
			found = v;
	fclose(f);
	return found;
}

/* Open-addressing set of 64-bit keys (never 0). */
static uint64_t *set_tab;
static size_t set_cap;

static bool set_add(uint64_t k)
{
	size_t i = (size_t)(k * 0x9E3779B97F4A7C15ull) & (set_cap - 1);

	while (set_tab[i]) {
		if (set_tab[i] == k)
			return false;
		i = (i + 1) & (set_cap - 1);
	}
	set_tab[i] = k;
	return true;
}

static int cmd_stream(int argc, char **argv)
{
	const char *mnt, *prefix;
	unsigned long nq, ntypes, inspace, every;
	double s, *cdf, sum = 0;
	long calls0, calls_prev, ctot = 0;
	unsigned long exact_win = 0, exact_tot = 0, errors = 0, repeats = 0;
	uint64_t t0, tq, repeat_ns = 0;
	unsigned char *seen;
	FILE *out;

	if (argc != 9)
		die("stream MNT NQ NTYPES S INSPACE SEED EVERY PREFIX OUTCSV");
	mnt = argv[0];
	nq = strtoul(argv[1], NULL, 10);
	ntypes = strtoul(argv[2], NULL, 10);
	s = atof(argv[3]);
	inspace = strtoul(argv[4], NULL, 10);
	rng_state = strtoull(argv[5], NULL, 10);
	every = strtoul(argv[6], NULL, 10);
	prefix = argv[7];
	out = fopen(argv[8], "w");
	if (!out)
		die(argv[8]);
	cdf = malloc(ntypes * sizeof(*cdf));
	for (unsigned long k = 0; k < ntypes; k++)
		cdf[k] = (sum += 1.0 / pow((double)(k + 1), s));
	for (unsigned long k = 0; k < ntypes; k++)
		cdf[k] /= sum;
	for (set_cap = 1; set_cap < nq * 2; set_cap <<= 1)
		;
	set_tab = calloc(set_cap, sizeof(*set_tab));
	seen = calloc(ntypes / 8 + 1, 1);
	calls0 = calls_prev = stats_counter(mnt, "syntheses");
	if (calls0 < 0)
		die("stats");
	fprintf(
	    out,
	    "queries,llm_calls,exact_misses,llm_calls_total,exact_misses_total,errors,seconds\n");
	t0 = now_ns();
	for (unsigned long q = 1; q <= nq; q++) {
		double u = rng_unit();
		unsigned long lo = 0, hi = ntypes - 1, in;
		char path[4096];

		while (lo < hi) {
			unsigned long mid = (lo + hi) / 2;

			if (cdf[mid] < u)
				lo = mid + 1;
			else
				hi = mid;
		}
		in = (unsigned long)(rng() % inspace);
		snprintf(path, sizeof(path), "%s/ask/%s%04lu/%lu", mnt, prefix, lo, in);
		tq = now_ns();
		if (read_file(path))
			errors++;
		/* a type's first query is its synthesis; the others are what the cache
		 * serves (hits, or cold starts of a type whose code was evicted) */
		if (seen[lo / 8] & (1u << (lo % 8))) {
			repeat_ns += now_ns() - tq;
			repeats++;
		}
		seen[lo / 8] |= (unsigned char)(1u << (lo % 8));
		if (set_add(((uint64_t)(lo + 1) << 32) | in)) {
			exact_win++;
			exact_tot++;
		}
		if (q % every == 0 || q == nq) {
			long c = stats_counter(mnt, "syntheses");

			ctot = c - calls0;
			fprintf(out, "%lu,%ld,%lu,%ld,%lu,%lu,%.3f\n", q, c - calls_prev, exact_win,
				ctot, exact_tot, errors, (double)(now_ns() - t0) / 1e9);
			fflush(out);
			calls_prev = c;
			exact_win = 0;
		}
	}
	fclose(out);
	printf("queries %lu llm_calls %ld exact_misses %lu errors %lu seconds %.3f repeats %lu "
	       "repeat_seconds %.3f\n",
	       nq, ctot, exact_tot, errors, (double)(now_ns() - t0) / 1e9, repeats,
	       (double)repeat_ns / 1e9);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: client lat|thr|once|miss|stream ...\n");
		return 2;
	}
	run_id = (unsigned long)getpid() ^ ((unsigned long)now_ns() << 16);
	if (!strcmp(argv[1], "lat") && argc >= 5)
		return cmd_lat(argc - 2, argv + 2);
	if (!strcmp(argv[1], "thr"))
		return cmd_thr(argc - 2, argv + 2);
	if (!strcmp(argv[1], "once"))
		return cmd_once(argc - 2, argv + 2);
	if (!strcmp(argv[1], "miss"))
		return cmd_miss(argc - 2, argv + 2);
	if (!strcmp(argv[1], "stream"))
		return cmd_stream(argc - 2, argv + 2);
	fprintf(stderr, "client: bad arguments (see bench/client.c)\n");
	return 2;
}
