/* proc: procedure records, revalidation, admission, synthesis hand-off; see proc.h. */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "atomic.h"
#include "log.h"
#include "meta.h"
#include "sandbox.h"
#include "store.h"

#define PROC_SOURCE_MAX (1024 * 1024)
#define PROC_SPEC_MAX (64 * 1024)
#define PROC_CASE_MAX (1024 * 1024)
#define PROC_CASES_MAX 1000
#define PROC_BUCKETS 4096
/* At most this many per-input failures are written to a type's log per second. */
#define PROC_LOG_BURST 5
/* Inputs of readers waiting on one synthesis shown to the LLM (examples of the form). */
#define PROC_WAIT_INPUTS 8
#define PROC_WAIT_INPUT_MAX 1024

/* One source text, shared by readers running it while a newer one is admitted. */
struct pversion {
	atomic_uint refs;
	uint64_t hash;
	int64_t mtime_ns;
	size_t len;
	char src[];
};

enum proc_state { PROC_MISSING, PROC_READY, PROC_FAILING };

struct proc {
	char *type;
	struct proc *next;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t checked_ns;
	bool stale;
	bool loaded; /* revalidated at least once */
	/* What the store looked like at the last revalidation. */
	bool src_seen;
	struct stat src_st;
	uint64_t tests_id;
	struct pversion *cur;
	enum proc_state state;
	struct buf reason;
	uint64_t admitted_key; /* (source, tests) pair last admitted or refused */
	/* Synthesis: single flight, and a remembered failure. */
	bool synth_busy;
	uint64_t synth_key; /* admitted_key of the source a synthesis ran for */
	uint64_t synth_fail_until;
	struct buf synth_reason;
	struct buf waiting[PROC_WAIT_INPUTS]; /* inputs asked while synthesizing */
	unsigned nwaiting;
	/* Counters not yet written to meta.json. */
	atomic_ulong hits, misses;
	/* Log rate limiting of per-input failures. */
	time_t log_second;
	unsigned log_count;
};

static struct {
	struct proc_config cfg;
	pthread_mutex_t lock;
	struct proc *table[PROC_BUCKETS];
	void (*change_hook)(const char *type);
	atomic_ulong asks, answers, rejects, errors, not_found, syntheses, synth_failures,
	    admissions, admission_failures;
} procs = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void pversion_put(struct pversion *v)
{
	if (v && atomic_fetch_sub(&v->refs, 1) == 1)
		free(v);
}

static struct pversion *pversion_get(struct pversion *v)
{
	atomic_fetch_add(&v->refs, 1);
	return v;
}

int proc_init(const struct proc_config *cfg)
{
	procs.cfg = *cfg;
	if (!procs.cfg.revalidate_ms)
		procs.cfg.revalidate_ms = 1000;
	if (!procs.cfg.memo_bytes)
		procs.cfg.memo_bytes = 64 << 20;
	if (!procs.cfg.fail_ttl_ms)
		procs.cfg.fail_ttl_ms = 30000;
	if (!procs.cfg.history_max)
		procs.cfg.history_max = 20;
	memo_init(procs.cfg.memo_bytes);
	return 0;
}

void proc_set_change_hook(void (*fn)(const char *type))
{
	procs.change_hook = fn;
}

static void proc_changed(struct proc *p)
{
	if (procs.change_hook)
		procs.change_hook(p->type);
}

static struct proc *proc_find(const char *type, bool create)
{
	uint64_t h = XXH3_64bits(type, strlen(type));
	struct proc **slot, *p;

	pthread_mutex_lock(&procs.lock);
	slot = &procs.table[h % PROC_BUCKETS];
	for (p = *slot; p; p = p->next)
		if (!strcmp(p->type, type))
			goto out;
	if (!create)
		goto out;
	p = calloc(1, sizeof(*p));
	if (!p)
		abort();
	p->type = strdup(type);
	if (!p->type)
		abort();
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->stale = true;
	p->next = *slot;
	*slot = p;
	/* First touch of a type in this daemon: sweep temp files a crash left behind. */
	store_clean_type(type);
out:
	pthread_mutex_unlock(&procs.lock);
	return p;
}

/* Fingerprint of tests/: names, sizes and mtimes of its NAME.in/NAME.out files. */
static uint64_t proc_tests_id(const char *type)
{
	struct buf path = BUF_INIT, acc = BUF_INIT;
	struct dirent *de;
	uint64_t id = 0;
	DIR *dir;
	int fd;

	store_type_dir(type, &path);
	buf_adds(&path, "/tests");
	fd = store_open_beneath(path.data, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		goto out;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		goto out;
	}
	while ((de = readdir(dir))) {
		struct stat st;

		if (de->d_name[0] == '.' || fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		/* Sum of per-file hashes: independent of readdir order. */
		buf_reset(&acc);
		buf_printf(&acc, "%s/%lld/%lld.%ld", de->d_name, (long long)st.st_size,
			   (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
		id += XXH3_64bits(acc.data, acc.len);
	}
	closedir(dir);
out:
	buf_free(&path);
	buf_free(&acc);
	return id;
}

static bool case_name_ok(const char *name, size_t len)
{
	/* Editor and rsync litter is never a test case. */
	return len > 0 && name[0] != '.' && name[len - 1] != '~' && name[0] != '#';
}

static bool name_is_llm(const char *name)
{
	return !strncmp(name, "llm-", 4);
}

static int name_cmp(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	int lx = name_is_llm(x), ly = name_is_llm(y);

	/* A person's cases first (a failure names one of them when it can, and they
	 * are known before the llm- cases they overrule). */
	return lx != ly ? lx - ly : strcmp(x, y);
}

/*
 * Call @fn on each case of tests/ (@fd taken), one at a time, in name order, until
 * their bytes reach @max: hard links make a small directory hold any number of big
 * files, and the daemon must not hold them all for one reader.  @fn may take the
 * case (clearing *c); a nonzero return stops the walk and is returned.  *@cut tells
 * that cases were left out for the cap.
 */
static int proc_foreach_case(int fd, size_t max, int (*fn)(struct llm_case *c, void *arg),
			     void *arg, bool *cut)
{
	char **names = NULL;
	size_t nnames = 0, total = 0, i, nhuman = 0;
	uint64_t *human = NULL; /* input hashes of a person's cases */
	struct dirent *de;
	DIR *dir;
	int ret = 0;

	*cut = false;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(dir)) && nnames < PROC_CASES_MAX) {
		size_t len = strlen(de->d_name);

		if (len < 4 || strcmp(de->d_name + len - 3, ".in") ||
		    !case_name_ok(de->d_name, len - 3))
			continue;
		names = realloc(names, (nnames + 1) * sizeof(*names));
		if (!names)
			abort();
		names[nnames] = strndup(de->d_name, len - 3);
		if (!names[nnames])
			abort();
		nnames++;
	}
	if (nnames)
		qsort(names, nnames, sizeof(*names), name_cmp);
	for (i = 0; i < nnames && !*cut && !ret; i++) {
		struct llm_case c = {0};
		struct buf name = BUF_INIT;
		size_t room = max - total, lim = room < PROC_CASE_MAX ? room : PROC_CASE_MAX;
		int rc;

		/* Each file with what is left of the budget: never more than @max in all. */
		buf_printf(&name, "%s.in", names[i]);
		rc = file_read_all(dirfd(dir), name.data, lim, &c.in);
		if (!rc) {
			room -= c.in.len;
			lim = room < PROC_CASE_MAX ? room : PROC_CASE_MAX;
			buf_reset(&name);
			buf_printf(&name, "%s.out", names[i]);
			rc = file_read_all(dirfd(dir), name.data, lim, &c.out);
		}
		if (rc == -EFBIG && lim < PROC_CASE_MAX)
			*cut = true;
		buf_free(&name);
		if (!rc) {
			/* (An input without its answer, yet, is not a case.) */
			uint64_t h = XXH3_64bits(buf_str(&c.in), c.in.len);
			bool overruled = false;

			total += c.in.len + c.out.len;
			/* A person's case wins over an LLM's (tests/llm-*) for the same input. */
			if (!name_is_llm(names[i])) {
				human = realloc(human, (nhuman + 1) * sizeof(*human));
				if (!human)
					abort();
				human[nhuman++] = h;
			} else {
				for (size_t k = 0; k < nhuman && !overruled; k++)
					overruled = human[k] == h;
			}
			c.name = names[i];
			names[i] = NULL;
			if (!overruled)
				ret = fn(&c, arg);
		}
		free(c.name);
		buf_free(&c.in);
		buf_free(&c.out);
	}
	closedir(dir);
	for (i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	free(human);
	return ret;
}

struct case_list {
	struct llm_case *cases;
	size_t n;
};

static int case_list_add(struct llm_case *c, void *arg)
{
	struct case_list *l = arg;

	l->cases = realloc(l->cases, (l->n + 1) * sizeof(*l->cases));
	if (!l->cases)
		abort();
	l->cases[l->n++] = *c;
	memset(c, 0, sizeof(*c));
	return 0;
}

/* The cases of tests/ (@fd taken), in name order, at most @max bytes in all. */
static int proc_read_cases_max(int fd, size_t max, struct llm_case **out, size_t *nout, bool *cut)
{
	struct case_list l = {0};
	int ret = proc_foreach_case(fd, max, case_list_add, &l, cut);

	*out = l.cases;
	*nout = l.n;
	return ret;
}

int proc_read_cases(int fd, struct llm_case **out, size_t *nout)
{
	bool cut;

	return proc_read_cases_max(fd, procs.cfg.tests_max ? procs.cfg.tests_max : 16u << 20, out,
				   nout, &cut);
}

static size_t proc_tests_max(void)
{
	return procs.cfg.tests_max ? procs.cfg.tests_max : 16u << 20;
}

/* A type's tests/, never through a symlink (it could otherwise name any file on the
 * host), or -errno. */
static int proc_tests_open(const char *type)
{
	struct buf path = BUF_INIT;
	int fd;

	store_type_dir(type, &path);
	buf_adds(&path, "/tests");
	fd = store_open_beneath(path.data, O_RDONLY | O_DIRECTORY, 0);
	buf_free(&path);
	return fd;
}

static void proc_tests_cut(const char *type, size_t n)
{
	log_warn("procs/%s: tests/ holds more than %zu MiB of cases: only the first %zu (by "
		 "name) are used (raise -o tests_max, or make the cases smaller)",
		 type, proc_tests_max() >> 20, n);
}

/* Load the cases of a type's tests/, sorted by name. */
static int proc_load_cases(const char *type, struct llm_case **out, size_t *nout)
{
	bool cut = false;
	int fd, ret;

	*out = NULL;
	*nout = 0;
	fd = proc_tests_open(type);
	if (fd < 0)
		return 0;
	ret = proc_read_cases_max(fd, proc_tests_max(), out, nout, &cut);
	if (cut)
		proc_tests_cut(type, *nout);
	return ret;
}

/* Quote untrusted bytes for a one-line log message, shortened. */
static void quote(struct buf *b, const char *s, size_t len)
{
	size_t i, max = 200;

	buf_addc(b, '\'');
	for (i = 0; i < len && i < max; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\n')
			buf_adds(b, "\\n");
		else if (c == '\\' || c == '\'')
			buf_printf(b, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			buf_printf(b, "\\x%02x", c);
		else
			buf_addc(b, (char)c);
	}
	buf_addc(b, '\'');
	if (len > max)
		buf_printf(b, "... (%zu bytes)", len);
}

/*
 * Run the procedure on every case.  Returns 0, or -EIO with the first failure in
 * @why ("test NAME: input '...': expected '...', got '...'").
 */
static int proc_run_cases(const char *src, size_t srclen, const struct llm_case *cases, size_t n,
			  struct buf *why)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	int ret = 0;
	size_t i;

	for (i = 0; i < n && !ret; i++) {
		const struct llm_case *c = &cases[i];
		int rc;

		buf_reset(&out);
		buf_reset(&err);
		rc = sandbox_run(src, srclen, c->in.data ? c->in.data : "", c->in.len, &out, &err);
		if (rc == 0 && out.len == c->out.len &&
		    !memcmp(buf_str(&out), buf_str(&c->out), out.len))
			continue;
		ret = -EIO;
		buf_printf(why, "test %s failed: input ", c->name);
		quote(why, buf_str(&c->in), c->in.len);
		buf_adds(why, ": expected ");
		quote(why, buf_str(&c->out), c->out.len);
		if (rc == 0) {
			buf_adds(why, ", got ");
			quote(why, out.data ? out.data : "", out.len);
		} else if (rc == -EINVAL) {
			buf_adds(why, ", but the procedure rejected it: ");
			quote(why, buf_str(&out), out.len);
		} else {
			buf_printf(why, ", but the run failed: %s", buf_str(&err));
		}
	}
	buf_free(&out);
	buf_free(&err);
	return ret;
}

int proc_check_source(const char *src, size_t len, const struct llm_case *cases, size_t n,
		      struct buf *why)
{
	struct buf err = BUF_INIT;
	int ret;

	ret = sandbox_compile(src, len, &err);
	if (ret)
		buf_printf(why, "compile failed: %s", buf_str(&err));
	else
		ret = proc_run_cases(src, len, cases, n, why);
	buf_free(&err);
	return ret;
}

struct admit_run {
	const struct pversion *v;
	struct buf *why;
	size_t n;
};

static int admit_case(struct llm_case *c, void *arg)
{
	struct admit_run *a = arg;

	a->n++;
	return proc_run_cases(a->v->src, a->v->len, c, 1, a->why);
}

/* Compile and test the current source, the cases loaded and run one at a time;
 * sets state and reason. Lock held. */
static void proc_admit(struct proc *p, bool quiet)
{
	struct admit_run a = {p->cur, &p->reason, 0};
	struct buf err = BUF_INIT;
	bool cut = false;
	size_t n;
	int ret, fd;

	atomic_fetch_add(&procs.admissions, 1);
	buf_reset(&p->reason);
	ret = sandbox_compile(p->cur->src, p->cur->len, &err);
	if (ret) {
		buf_printf(&p->reason, "compile failed: %s", buf_str(&err));
	} else if ((fd = proc_tests_open(p->type)) >= 0) {
		ret = proc_foreach_case(fd, proc_tests_max(), admit_case, &a, &cut);
		if (cut)
			proc_tests_cut(p->type, a.n);
	}
	buf_free(&err);
	n = a.n;
	if (ret) {
		atomic_fetch_add(&procs.admission_failures, 1);
		p->state = PROC_FAILING;
		log_warn("procs/%s: %s (fix source.c or tests/; see procs/%s/log)", p->type,
			 buf_str(&p->reason), p->type);
		store_log(p->type, "%s", buf_str(&p->reason));
	} else {
		p->state = PROC_READY;
		log_info("procs/%s: source %016llx compiled and passed %zu test%s", p->type,
			 (unsigned long long)p->cur->hash, n, n == 1 ? "" : "s");
		/* An admission already on record (a remount, another daemon) is not news:
		 * skip the fsync'ed log write on this first read. */
		if (!quiet)
			store_log(p->type, "source %016llx compiled and passed %zu test%s",
				  (unsigned long long)p->cur->hash, n, n == 1 ? "" : "s");
	}
}

struct meta_source_arg {
	uint64_t hash, tests_id;
	bool ok;
	const char *reason;
};

/* A source nobody recorded is a person's edit; record its hash and who wrote it. */
static void meta_edit_source(cJSON *meta, void *arg)
{
	struct meta_source_arg *a = arg;
	const char *known = meta_get_string(meta, "source_hash");
	char hash[17], when[32];

	snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)a->hash);
	if (!known) {
		if (!meta_get_string(meta, "author"))
			meta_set_string(meta, "author", "human");
	} else if (strcmp(known, hash) != 0) {
		meta_now(when, sizeof(when));
		meta_set_string(meta, "author", "human");
		meta_set_string(meta, "written", when);
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "model");
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "provider");
		/* The evidence was about the LLM's source, not this one. */
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "validation");
	}
	meta_set_string(meta, "source_hash", hash);
	snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)a->tests_id);
	meta_set_string(meta, "tests_id", hash);
	meta_set_string(meta, "compile",
			a->ok || !a->reason || strncmp(a->reason, "compile", 7) ? "ok" : "failed");
	meta_set_string(meta, "tests", a->ok ? "passed" : "failed");
	if (a->reason)
		meta_set_string(meta, "failure", a->reason);
	else
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "failure");
}

/* Whether meta.json already records this very source and tests as passed. */
static bool proc_admission_on_record(const char *type, uint64_t hash, uint64_t tests_id)
{
	cJSON *meta = meta_load(type);
	char h[17], t[17];
	const char *ms, *mt, *tests;
	bool yes;

	if (!meta)
		return false;
	snprintf(h, sizeof(h), "%016llx", (unsigned long long)hash);
	snprintf(t, sizeof(t), "%016llx", (unsigned long long)tests_id);
	ms = meta_get_string(meta, "source_hash");
	mt = meta_get_string(meta, "tests_id");
	tests = meta_get_string(meta, "tests");
	yes = ms && mt && tests && !strcmp(ms, h) && !strcmp(mt, t) && !strcmp(tests, "passed");
	cJSON_Delete(meta);
	return yes;
}

/* A name proc_keep_history makes: YYYYMMDDTHHMMSSZ-<16 hex>.c */
static int history_name_ok(const struct dirent *de)
{
	const char *s = de->d_name;
	size_t i;

	if (strlen(s) != 35 || s[8] != 'T' || s[15] != 'Z' || s[16] != '-' || strcmp(s + 33, ".c"))
		return 0;
	for (i = 0; i < 33; i++) {
		if (i == 8 || i == 15 || i == 16)
			continue;
		if (i < 16 ? !(s[i] >= '0' && s[i] <= '9')
			   : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return 1;
}

/* Keep a replaced source in history/, named by its mtime and hash, bounded. */
static void proc_keep_history(struct proc *p, const struct pversion *old)
{
	struct buf name = BUF_INIT, dir = BUF_INIT;
	time_t t = (time_t)(old->mtime_ns / 1000000000);
	struct tm tm;
	char stamp[32];

	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	/* Deterministic name: daemons sharing the store write the same file. */
	buf_printf(&name, "history/%s-%016llx.c", stamp, (unsigned long long)old->hash);
	if (store_write(p->type, name.data, old->src, old->len) != 0)
		goto out;

	/* Prune the oldest entries beyond history_max (names sort by time). */
	store_type_dir(p->type, &dir);
	buf_adds(&dir, "/history");
	{
		/* Never through a symlink, and only names this code makes: a history/
		 * planted elsewhere must not let the daemon delete anything there. */
		int fd = store_open_beneath(dir.data, O_RDONLY | O_DIRECTORY, 0);
		struct dirent **list = NULL;
		int i, n;

		if (fd < 0)
			goto out;
		n = scandirat(fd, ".", &list, history_name_ok, alphasort);
		for (i = 0; i < n; i++) {
			struct stat st;

			if (n - i > (int)procs.cfg.history_max &&
			    fstatat(fd, list[i]->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISREG(st.st_mode))
				unlinkat(fd, list[i]->d_name, 0);
			free(list[i]);
		}
		free(list);
		close(fd);
	}
out:
	buf_free(&name);
	buf_free(&dir);
}

/*
 * Bring the record in line with the store: re-read source.c if its identity
 * changed, re-admit when the source or tests changed.  Lock held.
 */
static void proc_revalidate(struct proc *p)
{
	struct buf path = BUF_INIT, src = BUF_INIT;
	struct stat st;
	uint64_t tests_id, key;
	bool changed = false, known;
	int ret;

	p->stale = false;
	p->checked_ns = now_ns();
	store_type_dir(p->type, &path);
	buf_adds(&path, "/source.c");
	if (store_lstat(path.data, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (p->cur) {
			pversion_put(p->cur);
			p->cur = NULL;
			changed = true;
		}
		p->src_seen = false;
		p->state = PROC_MISSING;
		p->admitted_key = 0;
		goto out;
	}
	if (!p->src_seen || st.st_ino != p->src_st.st_ino || st.st_dev != p->src_st.st_dev ||
	    st.st_size != p->src_st.st_size || st.st_mtim.tv_sec != p->src_st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != p->src_st.st_mtim.tv_nsec ||
	    st.st_ctim.tv_nsec != p->src_st.st_ctim.tv_nsec) {
		ret = file_read_all(store_root_fd(), path.data, PROC_SOURCE_MAX, &src);
		if (ret) {
			buf_reset(&p->reason);
			buf_printf(&p->reason, "cannot read source.c: %s", strerror(-ret));
			p->state = PROC_FAILING;
			goto out;
		}
		p->src_seen = true;
		p->src_st = st;
		uint64_t hash = XXH3_64bits(src.data ? src.data : "", src.len);

		if (!p->cur || p->cur->hash != hash) {
			struct pversion *v = malloc(sizeof(*v) + src.len + 1);

			if (!v)
				abort();
			atomic_init(&v->refs, 1);
			v->hash = hash;
			v->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
			v->len = src.len;
			memcpy(v->src, buf_str(&src), src.len + 1);
			if (p->cur) {
				if (!store_readonly())
					proc_keep_history(p, p->cur);
				sandbox_forget(p->cur->src, p->cur->len);
				pversion_put(p->cur);
			}
			p->cur = v;
			changed = true;
		}
	}
	tests_id = proc_tests_id(p->type);
	key = p->cur->hash ^ (tests_id * 0x9E3779B97F4A7C15ull);
	if (key == p->admitted_key && p->state != PROC_MISSING)
		goto out;
	p->tests_id = tests_id;
	p->admitted_key = key;
	known = proc_admission_on_record(p->type, p->cur->hash, tests_id);
	proc_admit(p, known);
	changed = true;
	if (!store_readonly() && !(known && p->state == PROC_READY)) {
		struct meta_source_arg a = {p->cur->hash, tests_id, p->state == PROC_READY,
					    p->state == PROC_READY ? NULL : buf_str(&p->reason)};

		meta_update(p->type, meta_edit_source, &a);
	}
out:
	/* The first load of a type in this daemon changes nothing the kernel has. */
	if (changed && p->loaded)
		proc_changed(p);
	p->loaded = true;
	buf_free(&path);
	buf_free(&src);
}

/* Read spec and tests for the synthesizer. */
static void proc_material_load(struct proc *p, struct proc_material *m, struct buf *spec,
			       struct llm_case **cases)
{
	memset(m, 0, sizeof(*m));
	m->type = p->type;
	if (store_read(p->type, "spec", PROC_SPEC_MAX, spec) == 0)
		m->spec = buf_str(spec);
	proc_load_cases(p->type, cases, &m->ncases);
	m->cases = *cases;
}

/*
 * Ask the synthesizer for a procedure (on a miss) or a repair (failing source),
 * once at a time per type; concurrent readers wait and share the outcome.
 * Lock held on entry and exit (dropped while the LLM works).  Returns 0 when the
 * record should be revalidated and used, or -EIO with @why.
 */
/* Remember the input of a reader that waits on a synthesis. Lock held. */
static void proc_wait_input(struct proc *p, const char *in, size_t len)
{
	unsigned i;

	if (!in || len > PROC_WAIT_INPUT_MAX || p->nwaiting == PROC_WAIT_INPUTS)
		return;
	for (i = 0; i < p->nwaiting; i++)
		if (p->waiting[i].len == len && !memcmp(buf_str(&p->waiting[i]), in, len))
			return;
	buf_reset(&p->waiting[p->nwaiting]);
	buf_add(&p->waiting[p->nwaiting], in, len);
	buf_grow(&p->waiting[p->nwaiting], 0);
	p->nwaiting++;
}

int proc_waiting_inputs(const char *type, struct llm_case **cases, size_t *n)
{
	struct proc *p = proc_find(type, false);
	struct llm_case *v = NULL;
	unsigned i;

	*cases = NULL;
	*n = 0;
	if (!p)
		return 0;
	pthread_mutex_lock(&p->lock);
	if (p->nwaiting) {
		v = calloc(p->nwaiting, sizeof(*v));
		if (!v)
			abort();
		for (i = 0; i < p->nwaiting; i++) {
			buf_add(&v[i].in, buf_str(&p->waiting[i]), p->waiting[i].len);
			buf_grow(&v[i].in, 0);
			buf_grow(&v[i].out, 0);
			if (asprintf(&v[i].name, "asked-%u", i + 1) < 0)
				abort();
		}
		*n = p->nwaiting;
	}
	pthread_mutex_unlock(&p->lock);
	*cases = v;
	return 0;
}

static int proc_synthesize(struct proc *p, const char *in, size_t len, struct buf *why)
{
	struct proc_material m;
	struct llm_case *cases = NULL;
	struct buf spec = BUF_INIT, err = BUF_INIT, prev = BUF_INIT, failure = BUF_INIT;
	uint64_t key = p->admitted_key;
	int ret;

	if (p->synth_busy) {
		proc_wait_input(p, in, len);
		while (p->synth_busy)
			pthread_cond_wait(&p->cond, &p->lock);
		return 0; /* the caller re-checks the state the synthesis left */
	}
	if (p->synth_fail_until && now_ns() < p->synth_fail_until && p->synth_key == key) {
		buf_adds(why, buf_str(&p->synth_reason));
		return -EIO;
	}
	if (p->state == PROC_FAILING && p->synth_key == key && !p->synth_fail_until) {
		/* A repair already produced this very source: do not loop. */
		buf_adds(why, buf_str(&p->reason));
		return -EIO;
	}
	p->synth_busy = true;
	p->synth_key = key;
	p->nwaiting = 0;
	proc_wait_input(p, in, len);
	if (p->state == PROC_FAILING && p->cur) {
		buf_add(&prev, p->cur->src, p->cur->len);
		buf_adds(&failure, buf_str(&p->reason));
	}
	pthread_mutex_unlock(&p->lock);

	proc_material_load(p, &m, &spec, &cases);
	if (prev.len) {
		m.prev_source = prev.data;
		m.failure = failure.data;
	}
	atomic_fetch_add(&procs.syntheses, 1);
	ret = procs.cfg.synth(&m, &err);
	llm_cases_free(cases, m.ncases);

	pthread_mutex_lock(&p->lock);
	p->synth_busy = false;
	p->nwaiting = 0;
	pthread_cond_broadcast(&p->cond);
	if (ret) {
		atomic_fetch_add(&procs.synth_failures, 1);
		p->synth_fail_until = now_ns() + (uint64_t)procs.cfg.fail_ttl_ms * 1000000ull;
		buf_reset(&p->synth_reason);
		buf_printf(&p->synth_reason, "synthesis failed: %s", buf_str(&err));
		buf_adds(why, buf_str(&p->synth_reason));
		log_warn("procs/%s: %s", p->type, buf_str(&p->synth_reason));
		store_log(p->type, "%s", buf_str(&p->synth_reason));
		ret = -EIO;
	} else {
		p->synth_fail_until = 0;
		p->stale = true;
	}
	buf_free(&spec);
	buf_free(&err);
	buf_free(&prev);
	buf_free(&failure);
	return ret;
}

/* Log a per-input failure, at most PROC_LOG_BURST a second per type. */
static void proc_log_input(struct proc *p, const char *what, const char *in, size_t len,
			   const char *reason)
{
	struct buf line = BUF_INIT;
	time_t now = time(NULL);
	bool write;

	pthread_mutex_lock(&p->lock);
	if (p->log_second != now) {
		p->log_second = now;
		p->log_count = 0;
	}
	write = p->log_count++ < PROC_LOG_BURST;
	pthread_mutex_unlock(&p->lock);
	if (!write)
		return;
	buf_printf(&line, "%s: input ", what);
	quote(&line, in, len);
	buf_adds(&line, ": ");
	quote(&line, reason, strlen(reason));
	store_log(p->type, "%s", line.data);
	log_info("procs/%s: %s", p->type, line.data);
	buf_free(&line);
}

/* Get the current admitted source (a reference), revalidating/synthesizing. */
static int proc_current(struct proc *p, const char *in, size_t len, struct pversion **out)
{
	struct buf why = BUF_INIT;
	int ret = 0;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		if (p->stale || now_ns() - p->checked_ns >= procs.cfg.revalidate_ms * 1000000ull)
			proc_revalidate(p);
		if (p->state == PROC_READY) {
			*out = pversion_get(p->cur);
			break;
		}
		if (!procs.cfg.synth) {
			ret = p->state == PROC_MISSING ? -ENOENT : -EIO;
			break;
		}
		if (p->state == PROC_MISSING && store_readonly()) {
			ret = -ENOENT;
			break;
		}
		ret = proc_synthesize(p, in, len, &why);
		if (ret)
			break;
	}
	pthread_mutex_unlock(&p->lock);
	buf_free(&why);
	return ret;
}

int proc_ask(const char *type, const char *in, size_t len, struct answer **ans)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct pversion *v = NULL;
	struct answer *a;
	struct proc *p;
	int ret;

	atomic_fetch_add(&procs.asks, 1);
	*ans = NULL;
	p = proc_find(type, true);
	ret = proc_current(p, in, len, &v);
	if (ret) {
		atomic_fetch_add(ret == -ENOENT ? &procs.not_found : &procs.errors, 1);
		if (ret != -ENOENT)
			atomic_fetch_add(&p->misses, 1);
		goto out;
	}
	a = memo_find(v->hash, in, len);
	if (!a) {
		ret = sandbox_run(v->src, v->len, in, len, &out, &err);
		if (ret == -EIO) {
			atomic_fetch_add(&procs.errors, 1);
			proc_log_input(p, "run failed", in, len, buf_str(&err));
			goto out;
		}
		a = answer_new(ret, v->hash, out.data, out.len);
		a->mtime_ns = v->mtime_ns;
		memo_add(in, len, a);
		if (ret == -EINVAL)
			proc_log_input(p, "rejected", in, len, buf_str(&out));
		ret = 0;
	}
	atomic_fetch_add(a->rc ? &procs.rejects : &procs.answers, 1);
	atomic_fetch_add(&p->hits, 1);
	*ans = a;
out:
	pversion_put(v);
	buf_free(&out);
	buf_free(&err);
	return ret;
}

/* The little-endian u32 at @p (records of sandbox_run_batch). */
static uint32_t proc_le32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

int proc_map(const char *type, const char *frames, size_t bytes, size_t count, struct buf *out,
	     size_t *ran, struct buf *err)
{
	struct pversion *v = NULL;
	size_t at = out->len, off = 0, logged = 0;
	uint32_t first;
	struct proc *p;
	int ret;

	*ran = 0;
	if (!count || bytes < sizeof(first))
		return 0;
	p = proc_find(type, true);
	/* A miss is synthesized for the first input of the batch (validation asks the
	 * LLM about the inputs that caused the miss). */
	memcpy(&first, frames, sizeof(first));
	ret = proc_current(p, frames + 4, first, &v);
	if (ret) {
		atomic_fetch_add(ret == -ENOENT ? &procs.not_found : &procs.errors, 1);
		pthread_mutex_lock(&p->lock);
		if (ret == -ENOENT)
			buf_printf(err, "%s: no procedure (and no LLM configured to write one)",
				   type);
		else if (p->synth_reason.len && p->synth_fail_until)
			buf_add(err, p->synth_reason.data, p->synth_reason.len);
		else if (p->reason.len)
			buf_add(err, p->reason.data, p->reason.len);
		else
			buf_printf(err, "%s: failing (see procs/%s/log)", type, type);
		pthread_mutex_unlock(&p->lock);
		goto out;
	}
	/* No memo: a stream of a million inputs would flush everything else out. */
	ret = sandbox_run_batch(v->src, v->len, frames, bytes, count, out, ran, err);
	count = *ran;
	atomic_fetch_add(&procs.asks, count);
	if (ret) {
		atomic_fetch_add(&procs.errors, 1);
		store_log(type, "map: %s", buf_str(err));
		goto out;
	}
	atomic_fetch_add(&p->hits, count);
	for (size_t i = 0; i < count && at + 8 <= out->len; i++) {
		uint32_t kind = proc_le32(out->data + at), len = proc_le32(out->data + at + 4);
		uint32_t inlen;

		memcpy(&inlen, frames + off, 4); /* host order, see sandbox.h */
		if (kind == SANDBOX_ANSWER) {
			atomic_fetch_add(&procs.answers, 1);
		} else {
			struct buf reason = BUF_INIT;

			atomic_fetch_add(kind == SANDBOX_REJECTED ? &procs.rejects : &procs.errors,
					 1);
			/* a few per batch: the log is rate limited anyway */
			if (logged++ < PROC_LOG_BURST) {
				buf_add(&reason, out->data + at + 8, len);
				proc_log_input(p,
					       kind == SANDBOX_REJECTED ? "rejected" : "run failed",
					       frames + off + 4, inlen, buf_str(&reason));
			}
			buf_free(&reason);
		}
		at += 8 + (size_t)len;
		off += 4 + (size_t)inlen;
	}
out:
	pversion_put(v);
	return ret;
}

bool proc_type_visible(const char *type)
{
	return procs.cfg.synth != NULL || store_type_exists(type);
}

void proc_touched(const char *type)
{
	struct proc *p = proc_find(type, false);

	if (p) {
		pthread_mutex_lock(&p->lock);
		p->stale = true;
		/* A person changed something: let a failed synthesis be retried now. */
		p->synth_fail_until = 0;
		pthread_mutex_unlock(&p->lock);
	}
}

struct meta_counts {
	unsigned long hits, misses;
};

static void meta_edit_counts(cJSON *meta, void *arg)
{
	struct meta_counts *c = arg;

	meta_add_number(meta, "hits", (double)c->hits);
	meta_add_number(meta, "misses", (double)c->misses);
}

void proc_flush(void)
{
	size_t i;

	if (store_readonly())
		return;
	for (i = 0; i < PROC_BUCKETS; i++) {
		struct proc *p;

		pthread_mutex_lock(&procs.lock);
		p = procs.table[i];
		pthread_mutex_unlock(&procs.lock);
		/* Records are never freed before shutdown, so walking unlocked is safe. */
		for (; p; p = p->next) {
			struct meta_counts c;

			c.hits = atomic_exchange(&p->hits, 0);
			c.misses = atomic_exchange(&p->misses, 0);
			if ((c.hits || c.misses) && store_type_exists(p->type) &&
			    meta_update(p->type, meta_edit_counts, &c) != 0) {
				atomic_fetch_add(&p->hits, c.hits);
				atomic_fetch_add(&p->misses, c.misses);
			}
		}
	}
}

void proc_stats(struct buf *out)
{
	struct sandbox_stats ss;
	struct memo_stats ms;

	sandbox_get_stats(&ss);
	memo_get_stats(&ms);
	buf_printf(out, "asks %lu\n", atomic_load(&procs.asks));
	buf_printf(out, "answers %lu\n", atomic_load(&procs.answers));
	buf_printf(out, "rejected %lu\n", atomic_load(&procs.rejects));
	buf_printf(out, "errors %lu\n", atomic_load(&procs.errors));
	buf_printf(out, "not_found %lu\n", atomic_load(&procs.not_found));
	buf_printf(out, "memo_hits %llu\n", (unsigned long long)ms.hits);
	buf_printf(out, "memo_misses %llu\n", (unsigned long long)ms.misses);
	buf_printf(out, "memo_entries %llu\n", (unsigned long long)ms.entries);
	buf_printf(out, "memo_bytes %llu\n", (unsigned long long)ms.bytes);
	buf_printf(out, "admissions %lu\n", atomic_load(&procs.admissions));
	buf_printf(out, "admission_failures %lu\n", atomic_load(&procs.admission_failures));
	buf_printf(out, "syntheses %lu\n", atomic_load(&procs.syntheses));
	buf_printf(out, "synthesis_failures %lu\n", atomic_load(&procs.synth_failures));
	buf_printf(out, "worker_spawns %llu\n", (unsigned long long)ss.spawns);
	buf_printf(out, "worker_runs %llu\n", (unsigned long long)ss.runs);
	/* The process hop a hit on a new input pays, in total: bench/run.py reports
	 * it per run next to the hit latency. */
	buf_printf(out, "worker_run_us %llu\n", (unsigned long long)(ss.run_ns / 1000));
	buf_printf(out, "worker_crashes %llu\n", (unsigned long long)ss.crashes);
	buf_printf(out, "worker_timeouts %llu\n", (unsigned long long)ss.timeouts);
	buf_printf(out, "workers_live %llu\n", (unsigned long long)ss.live_workers);
}

void proc_shutdown(void)
{
	size_t i;

	proc_flush();
	for (i = 0; i < PROC_BUCKETS; i++) {
		struct proc *p = procs.table[i], *next;

		for (; p; p = next) {
			next = p->next;
			pversion_put(p->cur);
			buf_free(&p->reason);
			buf_free(&p->synth_reason);
			for (unsigned w = 0; w < PROC_WAIT_INPUTS; w++)
				buf_free(&p->waiting[w]);
			pthread_mutex_destroy(&p->lock);
			pthread_cond_destroy(&p->cond);
			free(p->type);
			free(p);
		}
		procs.table[i] = NULL;
	}
	memo_shutdown();
}
