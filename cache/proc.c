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
#include "xalloc.h"

#define PROC_SOURCE_MAX (1024 * 1024)
#define PROC_SPEC_MAX (64 * 1024)
#define PROC_CASE_MAX (1024 * 1024)
#define PROC_CASES_MAX 1000
#define PROC_BUCKETS 4096
/* At most this many per-input failures are written to a type's log per second. */
#define PROC_LOG_BURST 5
/* Composition: calls nest at most this deep (docs/DESIGN.md); graph walks visit at most
 * PROC_GRAPH_MAX types (what a hit pays is bounded whatever the graph). */
#define PROC_CALL_DEPTH 8
#define PROC_GRAPH_MAX 64
#define PROC_CALLERS_MAX (64 * 1024)
/* A call waits at most this long for a callee's revalidation (proc_reval_wait). */
#define PROC_CALL_LOCK_S 30
/* Distinct callees written to meta.json per caller source, and LLM syntheses that
 * the calls of one read may start: a procedure calling many names in a loop must
 * not turn into unbounded meta.json writes or LLM requests. */
#define PROC_CALLS_MAX 64
#define PROC_CALL_SYNTH_MAX 2
/* Inputs of readers waiting on one synthesis shown to the LLM (examples of the form). */
#define PROC_WAIT_INPUTS 8
#define PROC_WAIT_INPUT_MAX 1024

/* One source text, shared by readers running it while a newer one is admitted. */
struct pversion {
	atomic_uint refs;
	uint64_t hash;
	int64_t mtime_ns;
	size_t len;
	bool calls; /* the source mentions seglam_call (composition) */
	char src[];
};

enum proc_state { PROC_MISSING, PROC_READY, PROC_FAILING };

/*
 * One record per type asked.  Locking: @lock is held only for short critical
 * sections, never across store I/O, a compilation, a test run or the LLM, since
 * the stats file, the mount's change hook and this type's other readers take it.
 * The slow work of a type serializes on the type alone, through flags under
 * @lock with @cond: reval_busy (a revalidation or first sweep runs, lock
 * dropped) and synth_busy (a synthesis runs).  Readers of the type wait on @cond;
 * readers of other types and global structures never wait on them.
 */
struct proc {
	char *type;	   /* immutable */
	struct proc *next; /* under procs.lock (records are never freed before shutdown) */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* signalled when reval_busy or synth_busy clears */
	/* Under @lock. */
	uint64_t checked_ns;
	bool stale;
	bool loaded; /* revalidated at least once */
	/*
	 * A revalidation runs with @lock dropped: only its thread writes the fields
	 * from src_seen to admitted_key (and loaded), under @lock, when it ends.
	 */
	bool reval_busy;
	/* What the store looked like at the last revalidation (under @lock). */
	bool src_seen;
	struct stat src_st;
	uint64_t tests_id;
	struct pversion *cur;
	enum proc_state state;
	struct buf reason;
	uint64_t admitted_key; /* (source, tests) pair last admitted or refused */
	/* Synthesis (under @lock): single flight, and a remembered failure. */
	bool synth_busy;
	uint64_t synth_key; /* admitted_key of the source a synthesis ran for */
	uint64_t synth_fail_until;
	struct buf synth_reason;
	struct buf waiting[PROC_WAIT_INPUTS]; /* inputs asked while synthesizing */
	unsigned nwaiting;
	/* Counters not yet written to meta.json (atomics, no lock). */
	atomic_ulong hits, misses;
	atomic_ulong asked; /* asks since mount: the hot types of stats */
	/* Log rate limiting of per-input failures (under @lock). */
	time_t log_second;
	unsigned log_count;
	/*
	 * Composition (under procs.graph_lock): the types this one was seen calling
	 * with source calls_version, and the types seen calling it.  dep_gen counts
	 * changes of callees; it is part of the memo version of this type's answers,
	 * so a callee's change retires them.  Records are never freed before
	 * shutdown, so the pointers stay valid.
	 */
	struct proc **calls, **callers;
	size_t ncalls, ncallers;
	uint64_t calls_version;
	atomic_ulong dep_gen;
	atomic_bool has_calls;
};

/* One procedure running on this thread: a chain of calls is a stack of these. */
struct proc_frame {
	struct proc *p;
	uint64_t version; /* of the source running; 0 for a synthesis candidate */
};

static _Thread_local struct proc_frame proc_stack[PROC_CALL_DEPTH + 4];
static _Thread_local unsigned proc_depth;
static _Thread_local unsigned proc_chain_synths; /* syntheses started by this read's calls */
static _Thread_local bool proc_synth_refused;	 /* the last call's callee hit that bound */

static struct {
	struct proc_config cfg; /* set by proc_init, then read only */
	/* The table and the records' next; never held across store I/O. */
	pthread_mutex_t lock;
	struct proc *table[PROC_BUCKETS];
	void (*change_hook)(const char *type); /* set once at start */
	pthread_mutex_t graph_lock;	       /* the calls/callers edges of every record */
	/* Counters: atomics, no lock. */
	atomic_ulong calls, call_failures;
	atomic_ulong asks, answers, rejects, errors, not_found, syntheses, synth_failures,
	    admissions, admission_failures, admissions_on_record;
} procs = {.lock = PTHREAD_MUTEX_INITIALIZER, .graph_lock = PTHREAD_MUTEX_INITIALIZER};

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

static int proc_call(const char *type, const char *in, size_t len, struct buf *out,
		     struct buf *why);

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
	sandbox_set_call_handler(proc_call);
	return 0;
}

void proc_set_change_hook(void (*fn)(const char *type))
{
	procs.change_hook = fn;
}

static void proc_changed_callers(struct proc *p);

static void proc_changed(struct proc *p)
{
	if (procs.change_hook)
		procs.change_hook(p->type);
	proc_changed_callers(p);
}

/* Push a frame; false when the stack is full (the depth check makes that rare). */
static bool proc_push(struct proc *p, uint64_t version)
{
	if (proc_depth >= sizeof(proc_stack) / sizeof(proc_stack[0]))
		return false;
	proc_stack[proc_depth].p = p;
	proc_stack[proc_depth].version = version;
	proc_depth++;
	return true;
}

static void proc_pop(bool pushed)
{
	if (pushed)
		proc_depth--;
}

static struct proc *proc_find(const char *type, bool create)
{
	uint64_t h = XXH3_64bits(type, strlen(type));
	struct proc **slot, *p;
	bool fresh = false;

	pthread_mutex_lock(&procs.lock);
	slot = &procs.table[h % PROC_BUCKETS];
	for (p = *slot; p; p = p->next)
		if (!strcmp(p->type, type))
			goto out;
	if (!create)
		goto out;
	p = xcalloc(1, sizeof(*p));
	p->type = xstrdup(type);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->stale = true;
	/* First touch of a type in this daemon: temp files a crash left behind are
	 * swept first.  That walks a directory in the store: the new record is busy
	 * meanwhile (its readers wait), the table is not. */
	p->reval_busy = true;
	p->next = *slot;
	*slot = p;
	fresh = true;
out:
	pthread_mutex_unlock(&procs.lock);
	if (fresh) {
		store_clean_type(type);
		pthread_mutex_lock(&p->lock);
		p->reval_busy = false;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
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
		names = xrealloc(names, (nnames + 1) * sizeof(*names));
		names[nnames] = xstrndup(de->d_name, len - 3);
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
				human = xrealloc(human, (nhuman + 1) * sizeof(*human));
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

	l->cases = xrealloc(l->cases, (l->n + 1) * sizeof(*l->cases));
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

/* Untrusted bytes quoted for a one-line log message, at most 200 of them. */
#define quote(b, s, len) buf_addquoted((b), (s), (len), 200)

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

/*
 * Compile and test @v, the cases loaded and run one at a time; the reason of a
 * failure goes to @reason.  No lock held: this is store I/O, a compilation and
 * every test run (the record is marked reval_busy by the caller).
 */
static enum proc_verdict proc_admit(struct proc *p, const struct pversion *v, bool quiet,
				    struct buf *reason)
{
	struct admit_run a = {v, reason, 0};
	enum proc_verdict verdict = VERDICT_OK;
	struct buf err = BUF_INIT;
	bool cut = false;
	size_t n;
	int ret, fd;

	atomic_fetch_add(&procs.admissions, 1);
	buf_reset(reason);
	{
		/* The tests of a callee admitted during a call get their own time
		 * limits: its verdict must not depend on what its caller had left. */
		struct sandbox_chain_saved chain;
		bool pushed = proc_push(p, v->hash);

		sandbox_chain_suspend(&chain);
		ret = sandbox_compile(v->src, v->len, &err);
		if (ret) {
			verdict = VERDICT_COMPILE;
			buf_printf(reason, "compile failed: %s", buf_str(&err));
		} else if (quiet) {
			/* meta.json records that this very source passed these very tests
			 * (same hashes): running them again on a first read after a
			 * remount would only repeat that.  Trusting the record gives
			 * nothing away: whoever can write meta.json can write source.c
			 * and tests/ beside it (SECURITY.md). */
			atomic_fetch_add(&procs.admissions_on_record, 1);
		} else if ((fd = proc_tests_open(p->type)) >= 0) {
			ret = proc_foreach_case(fd, proc_tests_max(), admit_case, &a, &cut);
			if (ret)
				verdict = VERDICT_TEST;
			if (cut)
				proc_tests_cut(p->type, a.n);
		}
		sandbox_chain_resume(&chain);
		proc_pop(pushed);
	}
	buf_free(&err);
	n = a.n;
	if (verdict != VERDICT_OK) {
		atomic_fetch_add(&procs.admission_failures, 1);
		log_warn("procs/%s: %s (fix source.c or tests/; see procs/%s/log)", p->type,
			 buf_str(reason), p->type);
		store_log(p->type, "%s", buf_str(reason));
	} else {
		if (quiet)
			log_info("procs/%s: source %016llx compiled; its tests passed on record",
				 p->type, (unsigned long long)v->hash);
		else
			log_info("procs/%s: source %016llx compiled and passed %zu test%s", p->type,
				 (unsigned long long)v->hash, n, n == 1 ? "" : "s");
		/* An admission already on record (a remount, another daemon) is not news:
		 * skip the fsync'ed log write on this first read. */
		if (!quiet)
			store_log(p->type, "source %016llx compiled and passed %zu test%s",
				  (unsigned long long)v->hash, n, n == 1 ? "" : "s");
	}
	return verdict;
}

/* Callees a caller's meta.json stopped listing: their `callers` files need a look. */
struct proc_dropped {
	char *names[PROC_GRAPH_MAX];
	size_t n;
};

/* Add the names of the array @calls that are not in @keep[0..nkeep) to @d. */
static void proc_dropped_collect(const cJSON *calls, const char *const *keep, size_t nkeep,
				 struct proc_dropped *d)
{
	const cJSON *it;

	if (!d)
		return;
	cJSON_ArrayForEach(it, calls)
	{
		bool kept = false;

		if (!cJSON_IsString(it) || d->n >= PROC_GRAPH_MAX)
			continue;
		for (size_t i = 0; i < nkeep && !kept; i++)
			kept = !strcmp(keep[i], it->valuestring);
		if (!kept && (d->names[d->n] = strdup(it->valuestring)))
			d->n++;
	}
}

static void proc_dropped_apply(struct proc_dropped *d);

struct meta_source_arg {
	uint64_t hash, tests_id;
	enum proc_verdict verdict;
	const char *reason; /* why the verdict is not VERDICT_OK, or NULL */
	struct proc_dropped *dropped;
};

/* A source nobody recorded is a person's edit; record its hash and who wrote it. */
static void meta_edit_source(cJSON *meta, void *arg)
{
	struct meta_source_arg *a = arg;
	const char *known = meta_get_string(meta, "source_hash");
	char hash[17];

	snprintf(hash, sizeof(hash), "%016llx", (unsigned long long)a->hash);
	if (!known) {
		if (!meta_get_string(meta, "author"))
			meta_set_author_human(meta, false);
	} else if (strcmp(known, hash) != 0) {
		meta_set_author_human(meta, true);
	}
	meta_set_source(meta, a->hash);
	/* "calls" belong to the source that made them (proc_record_call). */
	known = meta_get_string(meta, "calls_source");
	if (!known || strcmp(known, hash) != 0) {
		proc_dropped_collect(cJSON_GetObjectItemCaseSensitive(meta, "calls"), NULL, 0,
				     a->dropped);
		meta_drop_calls(meta);
	}
	meta_set_admission(meta, a->tests_id, a->verdict != VERDICT_COMPILE,
			   a->verdict == VERDICT_OK, a->reason);
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
 * What a revalidation found, worked out with the record's lock dropped and
 * applied to the record under it (proc_revalidate).
 */
struct reval {
	bool src_seen;
	struct stat src_st;
	struct pversion *cur; /* a reference */
	enum proc_state state;
	uint64_t admitted_key, tests_id;
	bool reason_set; /* reason replaces the record's */
	struct buf reason;
	bool changed;
};

/*
 * The store part of a revalidation: re-read source.c if its identity changed,
 * re-admit when the source or tests changed.  No lock held (store I/O, compile,
 * tests): @r starts as a copy of the record and only this thread touches it.
 */
static void proc_revalidate_store(struct proc *p, struct reval *r)
{
	struct buf path = BUF_INIT, src = BUF_INIT;
	enum proc_verdict verdict;
	struct stat st;
	uint64_t tests_id, key;
	bool known;
	int ret;

	store_type_dir(p->type, &path);
	buf_adds(&path, "/source.c");
	if (store_lstat(path.data, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (r->cur) {
			pversion_put(r->cur);
			r->cur = NULL;
			r->changed = true;
		}
		r->src_seen = false;
		r->state = PROC_MISSING;
		r->admitted_key = 0;
		goto out;
	}
	if (!r->src_seen || st.st_ino != r->src_st.st_ino || st.st_dev != r->src_st.st_dev ||
	    st.st_size != r->src_st.st_size || st.st_mtim.tv_sec != r->src_st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != r->src_st.st_mtim.tv_nsec ||
	    st.st_ctim.tv_nsec != r->src_st.st_ctim.tv_nsec) {
		ret = file_read_all(store_root_fd(), path.data, PROC_SOURCE_MAX, &src);
		if (ret) {
			r->reason_set = true;
			buf_printf(&r->reason, "cannot read source.c: %s", strerror(-ret));
			r->state = PROC_FAILING;
			goto out;
		}
		r->src_seen = true;
		r->src_st = st;
		uint64_t hash = XXH3_64bits(src.data ? src.data : "", src.len);

		if (!r->cur || r->cur->hash != hash) {
			struct pversion *v = xmalloc(sizeof(*v) + src.len + 1);

			atomic_init(&v->refs, 1);
			v->hash = hash;
			v->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
			v->len = src.len;
			v->calls = memmem(buf_str(&src), src.len, "seglam_call", 11) != NULL;
			memcpy(v->src, buf_str(&src), src.len + 1);
			if (r->cur) {
				if (!store_readonly())
					proc_keep_history(p, r->cur);
				sandbox_forget(r->cur->src, r->cur->len);
				pversion_put(r->cur);
			}
			r->cur = v;
			r->changed = true;
		}
	}
	tests_id = proc_tests_id(p->type);
	key = r->cur->hash ^ (tests_id * 0x9E3779B97F4A7C15ull);
	if (key == r->admitted_key && r->state != PROC_MISSING)
		goto out;
	r->tests_id = tests_id;
	r->admitted_key = key;
	known = proc_admission_on_record(p->type, r->cur->hash, tests_id);
	r->reason_set = true;
	verdict = proc_admit(p, r->cur, known, &r->reason);
	r->state = verdict == VERDICT_OK ? PROC_READY : PROC_FAILING;
	r->changed = true;
	if (!store_readonly() && !(known && verdict == VERDICT_OK)) {
		struct proc_dropped dropped = {.n = 0};
		struct meta_source_arg a = {r->cur->hash, tests_id, verdict,
					    verdict == VERDICT_OK ? NULL : buf_str(&r->reason),
					    &dropped};

		meta_update(p->type, meta_edit_source, &a);
		proc_dropped_apply(&dropped);
	}
out:
	buf_free(&path);
	buf_free(&src);
}

/*
 * Bring the record in line with the store.  Lock held on entry and exit, and
 * dropped in between: the record is marked reval_busy, so readers of this type
 * wait for the outcome (proc_reval_wait) while nobody else waits on the store.
 */
static void proc_revalidate(struct proc *p)
{
	struct reval r = {.src_seen = p->src_seen,
			  .src_st = p->src_st,
			  .cur = p->cur ? pversion_get(p->cur) : NULL,
			  .state = p->state,
			  .admitted_key = p->admitted_key,
			  .tests_id = p->tests_id,
			  .reason = BUF_INIT};
	bool loaded = p->loaded;

	p->reval_busy = true;
	p->stale = false;
	p->checked_ns = now_ns();
	pthread_mutex_unlock(&p->lock);

	proc_revalidate_store(p, &r);

	pthread_mutex_lock(&p->lock);
	p->src_seen = r.src_seen;
	p->src_st = r.src_st;
	pversion_put(p->cur);
	p->cur = r.cur;
	p->state = r.state;
	p->admitted_key = r.admitted_key;
	p->tests_id = r.tests_id;
	if (r.reason_set) {
		struct buf t = p->reason;

		p->reason = r.reason;
		r.reason = t;
	}
	p->loaded = true;
	/* The first load of a type in this daemon changes nothing the kernel has.
	 * The hook reaches the kernel (FUSE notifications): never under the lock. */
	if (r.changed && loaded) {
		pthread_mutex_unlock(&p->lock);
		proc_changed(p);
		pthread_mutex_lock(&p->lock);
	}
	p->reval_busy = false;
	pthread_cond_broadcast(&p->cond);
	buf_free(&r.reason);
}

/*
 * Wait while another thread revalidates @p (lock held, dropped while waiting).
 * Inside a call the wait is bounded: two types that call each other, admitted at
 * once by two threads, would otherwise wait on each other forever.  Returns 0 or
 * -EDEADLK.
 */
static int proc_reval_wait(struct proc *p)
{
	struct timespec until;

	if (!proc_depth) {
		while (p->reval_busy)
			pthread_cond_wait(&p->cond, &p->lock);
		return 0;
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += PROC_CALL_LOCK_S;
	while (p->reval_busy)
		if (pthread_cond_timedwait(&p->cond, &p->lock, &until) == ETIMEDOUT &&
		    p->reval_busy)
			return -EDEADLK;
	return 0;
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
		v = xcalloc(p->nwaiting, sizeof(*v));
		for (i = 0; i < p->nwaiting; i++) {
			buf_add(&v[i].in, buf_str(&p->waiting[i]), p->waiting[i].len);
			buf_grow(&v[i].in, 0);
			buf_grow(&v[i].out, 0);
			v[i].name = xasprintf("asked-%u", i + 1);
		}
		*n = p->nwaiting;
	}
	pthread_mutex_unlock(&p->lock);
	*cases = v;
	return 0;
}

/* A synthesis running on its own thread, so that a reader can give up waiting. */
struct synth_job {
	struct proc *p;
	struct buf prev, failure; /* the failing source to repair and why, or empty */
};

static _Thread_local const atomic_bool *proc_intr;
static pthread_mutex_t synth_jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t synth_jobs_cond = PTHREAD_COND_INITIALIZER;
static unsigned synth_jobs_running;

void proc_set_interrupt(const atomic_bool *flag)
{
	proc_intr = flag;
}

/* Run one synthesis and record its outcome; no lock held on entry. */
static void synth_job_run(struct synth_job *job)
{
	struct proc *p = job->p;
	struct proc_material m;
	struct llm_case *cases = NULL;
	struct buf spec = BUF_INIT, err = BUF_INIT, failure = BUF_INIT;
	int ret;

	proc_material_load(p, &m, &spec, &cases);
	if (job->prev.len) {
		m.prev_source = job->prev.data;
		m.failure = buf_str(&job->failure);
	}
	atomic_fetch_add(&procs.syntheses, 1);
	{
		/* Candidates are checked as this type (its calls are cycle-checked),
		 * and the LLM's time is not a caller's run time. */
		struct sandbox_chain_saved chain;
		bool pushed = proc_push(p, 0);

		sandbox_chain_suspend(&chain);
		ret = procs.cfg.synth(&m, &err);
		sandbox_chain_resume(&chain);
		proc_pop(pushed);
	}
	llm_cases_free(cases, m.ncases);

	if (ret) {
		/* Logged before the lock is taken: the log is store I/O. */
		buf_reset(&failure);
		buf_printf(&failure, "synthesis failed: %s", buf_str(&err));
		log_warn("procs/%s: %s", p->type, buf_str(&failure));
		store_log(p->type, "%s", buf_str(&failure));
	}
	pthread_mutex_lock(&p->lock);
	if (ret) {
		atomic_fetch_add(&procs.synth_failures, 1);
		p->synth_fail_until = now_ns() + (uint64_t)procs.cfg.fail_ttl_ms * 1000000ull;
		buf_reset(&p->synth_reason);
		buf_add(&p->synth_reason, failure.data, failure.len);
	} else {
		p->synth_fail_until = 0;
		p->stale = true;
	}
	p->synth_busy = false;
	p->nwaiting = 0;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	buf_free(&spec);
	buf_free(&err);
	buf_free(&failure);
	buf_free(&job->prev);
	buf_free(&job->failure);
	free(job);
}

static void *synth_job_main(void *arg)
{
	synth_job_run(arg);
	pthread_mutex_lock(&synth_jobs_lock);
	synth_jobs_running--;
	pthread_cond_broadcast(&synth_jobs_cond);
	pthread_mutex_unlock(&synth_jobs_lock);
	return NULL;
}

/*
 * Ask the synthesizer for a procedure (on a miss) or a repair (failing source),
 * once at a time per type; concurrent readers wait and share the outcome.  The
 * synthesis runs on a thread of its own: a reader whose request is interrupted
 * (proc_set_interrupt) stops waiting with -EINTR, and the synthesis goes on for
 * the next reader.  Lock held on entry and exit (dropped while waiting).
 * Returns 0 when the record should be revalidated and used, -EIO with @why, or
 * -EINTR.
 */
static int proc_synth_wait(struct proc *p, const atomic_bool *intr);

static int proc_synthesize(struct proc *p, const char *in, size_t len, struct buf *why)
{
	uint64_t key = p->admitted_key;
	const atomic_bool *intr = proc_intr;
	struct sandbox_chain_saved chain;
	int ret;

	if (!p->synth_busy) {
		struct synth_job *job;
		pthread_attr_t attr;
		pthread_t tid;
		bool started = false;

		if (p->synth_fail_until && now_ns() < p->synth_fail_until && p->synth_key == key) {
			buf_adds(why, buf_str(&p->synth_reason));
			return -EIO;
		}
		if (p->state == PROC_FAILING && p->synth_key == key && !p->synth_fail_until) {
			/* A repair already produced this very source: do not loop. */
			buf_adds(why, buf_str(&p->reason));
			return -EIO;
		}
		if (proc_depth && ++proc_chain_synths > PROC_CALL_SYNTH_MAX) {
			/* A procedure's calls must not make the LLM write a store. */
			proc_synth_refused = true;
			buf_printf(why, "calls of one read may start at most %d syntheses",
				   PROC_CALL_SYNTH_MAX);
			return -EIO;
		}
		job = xcalloc(1, sizeof(*job));
		job->p = p;
		if (p->state == PROC_FAILING && p->cur) {
			buf_add(&job->prev, p->cur->src, p->cur->len);
			buf_adds(&job->failure, buf_str(&p->reason));
		}
		p->synth_busy = true;
		p->synth_key = key;
		p->nwaiting = 0;
		pthread_mutex_lock(&synth_jobs_lock);
		synth_jobs_running++;
		pthread_mutex_unlock(&synth_jobs_lock);
		if (pthread_attr_init(&attr) == 0) {
			pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
			started = pthread_create(&tid, &attr, synth_job_main, job) == 0;
			pthread_attr_destroy(&attr);
		}
		if (!started) {
			/* No thread to spare: synthesize here, uninterruptibly. */
			pthread_mutex_unlock(&p->lock);
			synth_job_main(job);
			pthread_mutex_lock(&p->lock);
		}
	}
	/* Readers that wait show the LLM the form of the inputs (examples). */
	if (p->synth_busy)
		proc_wait_input(p, in, len);
	/* A caller waiting on its callee's synthesis: the LLM's time is not the
	 * caller's run time (composition: one deadline per chain). */
	sandbox_chain_suspend(&chain);
	ret = proc_synth_wait(p, intr);
	sandbox_chain_resume(&chain);
	return ret;
}

/* Wait for the synthesis of @p to end (lock held, dropped while waiting). */
static int proc_synth_wait(struct proc *p, const atomic_bool *intr)
{
	while (p->synth_busy) {
		struct timespec ts;

		if (!intr) {
			pthread_cond_wait(&p->cond, &p->lock);
			continue;
		}
		if (atomic_load(intr))
			return -EINTR;
		/* The interrupt arrives on another thread, which does not know this
		 * record: look at the flag every 20 ms. */
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
	}
	return 0; /* the caller re-checks the state the synthesis left */
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
static int proc_current(struct proc *p, const char *in, size_t len, struct pversion **out,
			struct buf *why)
{
	int ret = 0;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		if (p->reval_busy) {
			if (proc_reval_wait(p) < 0) {
				log_warn("procs/%s: busy for %d s during a call (types calling "
					 "each other being admitted at once?)",
					 p->type, PROC_CALL_LOCK_S);
				ret = -EIO;
				break;
			}
			continue;
		}
		if (p->stale || now_ns() - p->checked_ns >= procs.cfg.revalidate_ms * 1000000ull)
			proc_revalidate(p);
		if (p->state == PROC_READY) {
			*out = pversion_get(p->cur);
			break;
		}
		if (!procs.cfg.synth) {
			ret = p->state == PROC_MISSING ? -ENOENT : -EIO;
			if (ret == -ENOENT)
				buf_adds(why, "no procedure, and no LLM configured to write one");
			else
				buf_adds(why, buf_str(&p->reason));
			break;
		}
		if (p->state == PROC_MISSING && store_readonly()) {
			buf_adds(why, "no procedure, and the store is read-only");
			ret = -ENOENT;
			break;
		}
		ret = proc_synthesize(p, in, len, why);
		if (ret)
			break;
	}
	pthread_mutex_unlock(&p->lock);
	return ret;
}

static void proc_refresh_callees(struct proc *p);

/*
 * The answer of @type for @in.  @count: this is the ask itself (an open, a query),
 * counted in stats and meta.json; otherwise a look ahead (LOOKUP, stat) that
 * counts only a failure, as that failure is all the reader will see.
 */
static int proc_answer(const char *type, const char *in, size_t len, struct answer **ans,
		       bool count, struct buf *why)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	struct pversion *v = NULL;
	struct answer *a;
	struct proc *p;
	uint64_t version;
	int ret;

	*ans = NULL;
	if (!proc_depth)
		proc_chain_synths = 0; /* a new top-level read */
	p = proc_find(type, true);
	ret = proc_current(p, in, len, &v, why);
	if (ret == -EINTR)
		goto out;
	if (ret) {
		atomic_fetch_add(&procs.asks, 1);
		atomic_fetch_add(ret == -ENOENT ? &procs.not_found : &procs.errors, 1);
		if (ret != -ENOENT)
			atomic_fetch_add(&p->misses, 1);
		goto out;
	}
	/* A type that calls others: its answers also depend on theirs (dep_gen). */
	proc_refresh_callees(p);
	/*
	 * Answers are shared by types with the same source, except those of a type
	 * that calls: they also depend on dep_gen, which is this type's own count
	 * (another type with this source may not have seen the callee change).
	 */
	version = v->hash;
	if (v->calls || atomic_load(&p->has_calls))
		version = (version ^ XXH3_64bits(p->type, strlen(p->type))) +
			  atomic_load(&p->dep_gen) * 0x9E3779B97F4A7C15ull;
	a = memo_find(version, in, len);
	if (!a) {
		bool pushed = proc_push(p, v->hash);

		ret = sandbox_run(v->src, v->len, in, len, &out, &err);
		proc_pop(pushed);
		if (ret == -EIO) {
			atomic_fetch_add(&procs.asks, 1);
			atomic_fetch_add(&procs.errors, 1);
			proc_log_input(p, "run failed", in, len, buf_str(&err));
			buf_adds(why, buf_str(&err));
			goto out;
		}
		a = answer_new(ret, version, out.data, out.len);
		a->mtime_ns = v->mtime_ns;
		memo_add(in, len, a);
		if (ret == -EINVAL)
			proc_log_input(p, "rejected", in, len, buf_str(&out));
		ret = 0;
	}
	if (count) {
		atomic_fetch_add(&procs.asks, 1);
		atomic_fetch_add(a->rc ? &procs.rejects : &procs.answers, 1);
		atomic_fetch_add(&p->hits, 1);
		atomic_fetch_add(&p->asked, 1);
	} else if (a->rc) {
		/* A rejection fails the LOOKUP: the reader never opens. */
		atomic_fetch_add(&procs.asks, 1);
		atomic_fetch_add(&procs.rejects, 1);
	}
	*ans = a;
out:
	pversion_put(v);
	buf_free(&out);
	buf_free(&err);
	return ret;
}

int proc_ask(const char *type, const char *in, size_t len, struct answer **ans)
{
	struct buf why = BUF_INIT;
	int ret = proc_answer(type, in, len, ans, true, &why);

	buf_free(&why);
	return ret;
}

int proc_ask_why(const char *type, const char *in, size_t len, struct answer **ans, struct buf *why)
{
	return proc_answer(type, in, len, ans, true, why);
}

int proc_peek(const char *type, const char *in, size_t len, struct answer **ans)
{
	struct buf why = BUF_INIT;
	int ret = proc_answer(type, in, len, ans, false, &why);

	buf_free(&why);
	return ret;
}

/* ------------------------------------------------------------------------- */
/* Composition: procedures calling procedures (seglam_call) */

static bool proc_list_has(struct proc *const *list, size_t n, const struct proc *p)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == p)
			return true;
	return false;
}

static void proc_list_add(struct proc ***list, size_t *n, struct proc *p)
{
	struct proc **l = xreallocarray(*list, *n + 1, sizeof(**list));

	l[(*n)++] = p;
	*list = l;
}

/*
 * Collect @p and, breadth first, the types reachable over @callers (or callees)
 * edges, at most PROC_GRAPH_MAX: into @seen, returning how many.
 */
static size_t proc_walk(struct proc *p, bool callers, struct proc **seen)
{
	size_t n = 0, i = 0;

	seen[n++] = p;
	pthread_mutex_lock(&procs.graph_lock);
	while (i < n) {
		struct proc *q = seen[i++];
		struct proc **l = callers ? q->callers : q->calls;
		size_t k = callers ? q->ncallers : q->ncalls;

		for (size_t j = 0; j < k && n < PROC_GRAPH_MAX; j++)
			if (!proc_list_has(seen, n, l[j]))
				seen[n++] = l[j];
	}
	pthread_mutex_unlock(&procs.graph_lock);
	return n;
}

/*
 * @p changed: every type that calls it, transitively, has new answers too.  Bump
 * their dep_gen (their memo entries no longer match) and have the mount drop
 * their kernel caches.
 */
static void proc_changed_callers(struct proc *p)
{
	struct proc *seen[PROC_GRAPH_MAX];
	size_t n = proc_walk(p, true, seen);

	for (size_t i = 1; i < n; i++) {
		atomic_fetch_add(&seen[i]->dep_gen, 1);
		if (procs.change_hook)
			procs.change_hook(seen[i]->type);
	}
}

/*
 * Before a hit of a type that calls others: revalidate its callees (transitively)
 * whose revalidation period is over, so an edit made outside this mount (another
 * daemon, NFS) reaches the caller within revalidate_ms like any edit.  A callee
 * being revalidated elsewhere is skipped: that revalidation propagates what it
 * finds.
 */
static void proc_refresh_callees(struct proc *p)
{
	struct proc *seen[PROC_GRAPH_MAX];
	uint64_t now;
	size_t n;

	if (!atomic_load(&p->has_calls))
		return;
	n = proc_walk(p, false, seen);
	now = now_ns();
	for (size_t i = 1; i < n; i++) {
		struct proc *c = seen[i];

		pthread_mutex_lock(&c->lock);
		if (!c->reval_busy &&
		    (c->stale || now - c->checked_ns >= procs.cfg.revalidate_ms * 1000000ull))
			proc_revalidate(c);
		pthread_mutex_unlock(&c->lock);
	}
}

struct meta_calls_arg {
	char version[17];
	struct proc **calls;
	size_t n;
	struct proc_dropped dropped; /* what an older source called and this one did not */
};

static int proc_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* meta.json "calls": the types the source "calls_source" was seen calling, sorted. */
static void meta_edit_calls(cJSON *meta, void *arg)
{
	struct meta_calls_arg *a = arg;
	const char *known = meta_get_string(meta, "calls_source");
	cJSON *old = cJSON_GetObjectItemCaseSensitive(meta, "calls"), *it;
	const char *names[PROC_GRAPH_MAX * 2];
	size_t n = 0, unique = 0;

	if (!known || strcmp(known, a->version)) {
		const char *keep[PROC_GRAPH_MAX] = {NULL};
		size_t nkeep = 0;

		for (size_t i = 0; i < a->n && nkeep < PROC_GRAPH_MAX; i++)
			keep[nkeep++] = a->calls[i]->type;
		proc_dropped_collect(old, keep, nkeep, &a->dropped);
	}
	/* Another daemon may have recorded calls of this source that we did not see. */
	if (known && !strcmp(known, a->version) && cJSON_IsArray(old)) {
		cJSON_ArrayForEach(it, old)
		{
			if (n < PROC_GRAPH_MAX && cJSON_IsString(it) &&
			    store_type_valid(it->valuestring, strlen(it->valuestring)))
				names[n++] = it->valuestring;
		}
	}
	for (size_t i = 0; i < a->n && n < PROC_GRAPH_MAX * 2; i++)
		names[n++] = a->calls[i]->type;
	qsort(names, n, sizeof(names[0]), proc_strcmp);
	for (size_t i = 0; i < n; i++)
		if (!i || strcmp(names[i], names[i - 1]))
			names[unique++] = names[i];
	meta_set_calls(meta, names, unique, a->version);
}

/* Whether @caller's meta.json lists @callee in "calls". */
static bool proc_meta_calls(const char *caller, const char *callee)
{
	cJSON *meta = meta_load(caller), *it;
	bool yes = false;

	if (!meta)
		return false;
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(meta, "calls"))
	{
		if (cJSON_IsString(it) && !strcmp(it->valuestring, callee))
			yes = true;
	}
	cJSON_Delete(meta);
	return yes;
}

/*
 * procs/CALLEE/callers: the types whose meta.json lists CALLEE in "calls", one a
 * line, sorted.  Rewritten when a new caller is seen; entries whose meta.json no
 * longer says so (the caller was edited or removed) are dropped then.
 */
static void proc_write_callers(const char *callee, const char *caller)
{
	struct buf old = BUF_INIT, old2 = BUF_INIT, out = BUF_INIT;
	char *names[PROC_GRAPH_MAX * 4];
	size_t n = 0;
	int rd;

	if (caller)
		names[n++] = xstrdup(caller);
	rd = store_read(callee, "callers", PROC_CALLERS_MAX, &old);
	if (rd == 0 && old.len) {
		char *line = old.data, *end = old.data + old.len;

		while (line < end && n < sizeof(names) / sizeof(names[0])) {
			char *nl = memchr(line, '\n', (size_t)(end - line));

			if (!nl)
				nl = end;
			*nl = '\0';
			if (store_type_valid(line, strlen(line)) && (!caller || strcmp(line, caller)) &&
			    proc_meta_calls(line, callee))
				names[n++] = xstrdup(line);
			line = nl + 1;
		}
	}
	qsort(names, n, sizeof(names[0]), proc_strcmp);
	for (size_t i = 0; i < n; i++)
		if (!i || strcmp(names[i], names[i - 1]))
			buf_printf(&out, "%s\n", names[i]);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	/* Only a file that changes is written (old was cut by the NULs above). */
	if (caller || (rd == 0 && store_read(callee, "callers", PROC_CALLERS_MAX, &old2) == 0 &&
		       (old2.len != out.len || memcmp(buf_str(&old2), buf_str(&out), out.len))))
		store_write(callee, "callers", out.data, out.len);
	buf_free(&old2);
	buf_free(&old);
	buf_free(&out);
}

/* Rewrite the callers files of callees a caller no longer lists; frees @d's names. */
static void proc_dropped_apply(struct proc_dropped *d)
{
	for (size_t i = 0; i < d->n; i++) {
		if (!store_readonly() && store_type_valid(d->names[i], strlen(d->names[i])) &&
		    store_type_exists(d->names[i]))
			proc_write_callers(d->names[i], NULL);
		free(d->names[i]);
	}
	d->n = 0;
}

/*
 * The procedure of frame @f called @callee: record the edge in memory and, the
 * first time for this source, in the caller's meta.json and the callee's callers.
 */
static void proc_record_call(struct proc_frame *f, struct proc *callee)
{
	struct proc *caller = f->p;
	struct meta_calls_arg arg = {.n = 0};
	bool fresh = false;

	pthread_mutex_lock(&procs.graph_lock);
	if (f->version && caller->calls_version != f->version) {
		/* a new source: what the old one called no longer says anything */
		caller->ncalls = 0;
		caller->calls_version = f->version;
	}
	if (!proc_list_has(caller->calls, caller->ncalls, callee)) {
		/* in memory always (invalidation must be right); on disk the first few */
		proc_list_add(&caller->calls, &caller->ncalls, callee);
		fresh = caller->ncalls <= PROC_CALLS_MAX;
		if (fresh && f->version) {
			arg.calls = xmalloc(caller->ncalls * sizeof(*arg.calls));
			memcpy(arg.calls, caller->calls, caller->ncalls * sizeof(*arg.calls));
			arg.n = caller->ncalls;
		}
	}
	if (!proc_list_has(callee->callers, callee->ncallers, caller))
		proc_list_add(&callee->callers, &callee->ncallers, caller);
	atomic_store(&caller->has_calls, true);
	pthread_mutex_unlock(&procs.graph_lock);

	if (fresh && f->version && !store_readonly()) {
		/* Rare (once per edge and source) and not the chain's run time. */
		struct sandbox_chain_saved chain;

		sandbox_chain_suspend(&chain);
		snprintf(arg.version, sizeof(arg.version), "%016llx",
			 (unsigned long long)f->version);
		meta_update(caller->type, meta_edit_calls, &arg);
		if (store_type_exists(callee->type))
			proc_write_callers(callee->type, caller->type);
		proc_dropped_apply(&arg.dropped);
		sandbox_chain_resume(&chain);
	}
	free(arg.calls);
}

/*
 * The sandbox's call handler (sandbox_call_fn): a seglam_call() of the procedure
 * running on top of this thread's stack.  A call is an ask, with the same memo,
 * synthesis and admission as a read of ask/TYPE/INPUT.
 */
static int proc_call(const char *type, const char *in, size_t len, struct buf *out, struct buf *why)
{
	struct proc_frame *top = proc_depth ? &proc_stack[proc_depth - 1] : NULL;
	struct answer *a = NULL;
	struct proc *callee;
	int ret;

	atomic_fetch_add(&procs.calls, 1);
	proc_synth_refused = false;
	if (!store_type_valid(type, strlen(type))) {
		buf_adds(why, "not a type name: ");
		quote(why, type, strlen(type));
		ret = -EINVAL;
		goto fail;
	}
	for (unsigned i = 0; i < proc_depth; i++) {
		if (strcmp(proc_stack[i].p->type, type))
			continue;
		buf_adds(why, "a cycle: ");
		for (unsigned k = i; k < proc_depth; k++)
			buf_printf(why, "%s -> ", proc_stack[k].p->type);
		buf_adds(why, type);
		ret = -ELOOP;
		goto fail;
	}
	if (proc_depth > PROC_CALL_DEPTH) {
		buf_printf(why, "calls nest deeper than %d (%s is called at depth %u)",
			   PROC_CALL_DEPTH, type, proc_depth);
		ret = -ELOOP;
		goto fail;
	}
	if (!proc_type_visible(type)) {
		/* no record, no edge: made-up names cost nothing to remember */
		ret = -ENOENT;
		buf_printf(why, "%s: no such type (and no LLM to write it)", type);
		goto fail;
	}
	callee = proc_find(type, true);
	if (top)
		proc_record_call(top, callee);
	ret = proc_ask(type, in, len, &a);
	if (ret == -ENOENT) {
		buf_printf(why, "%s: no such type (and no LLM to write it)", type);
		goto fail;
	} else if (ret && proc_synth_refused) {
		buf_printf(why,
			   "%s is missing or failing, and the calls of one read may start at "
			   "most %d syntheses",
			   type, PROC_CALL_SYNTH_MAX);
		goto fail;
	} else if (ret) {
		buf_printf(why, "%s failed (see procs/%s/log)", type, type);
		goto fail;
	}
	if (a->rc) {
		/* raw: proc_log_input quotes the whole reason */
		buf_printf(why, "%s rejected the input: ", type);
		buf_add(why, a->data, a->len && a->data[a->len - 1] == '\n' ? a->len - 1 : a->len);
		ret = -EINVAL;
		goto fail;
	}
	buf_add(out, a->data, a->len);
	answer_put(a);
	return 0;
fail:
	atomic_fetch_add(&procs.call_failures, 1);
	if (top)
		proc_log_input(top->p, "seglam_call failed", in, len, buf_str(why));
	answer_put(a);
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
	{
		struct buf why = BUF_INIT; /* said better below, from the record */

		ret = proc_current(p, frames + 4, first, &v, &why);
		buf_free(&why);
	}
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
	/* No memo: a stream of a million inputs would flush everything else out.
	 * Its seglam_calls are this type's, as in a read (composition). */
	{
		bool pushed = proc_push(p, v->hash);

		ret = sandbox_run_batch(v->src, v->len, frames, bytes, count, out, ran, err);
		proc_pop(pushed);
	}
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
		/* A person changed something: let a failed synthesis be retried now.
		 * Forgetting the key too keeps proc_synthesize's "a repair already
		 * produced this very source" guard from taking the place of the
		 * remembered failure. */
		p->synth_fail_until = 0;
		p->synth_key = 0;
		pthread_mutex_unlock(&p->lock);
		/* The mount drops this type's kernel caches; its callers' go too. */
		proc_changed_callers(p);
	}
}

struct meta_counts {
	unsigned long hits, misses;
};

static void meta_edit_counts(cJSON *meta, void *arg)
{
	struct meta_counts *c = arg;

	meta_add_counts(meta, c->hits, c->misses);
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

void proc_totals(struct proc_totals *t)
{
	t->asks = atomic_load(&procs.asks);
	t->answers = atomic_load(&procs.answers);
	t->rejects = atomic_load(&procs.rejects);
	t->errors = atomic_load(&procs.errors);
}

void proc_hot(struct buf *out, size_t max)
{
	struct {
		const char *type;
		unsigned long n;
	} top[16] = {{0}};
	size_t i, j, used = 0;

	if (max > 16)
		max = 16;
	for (i = 0; i < PROC_BUCKETS; i++) {
		struct proc *p;

		pthread_mutex_lock(&procs.lock);
		p = procs.table[i];
		pthread_mutex_unlock(&procs.lock);
		/* Records are never freed before shutdown: walking unlocked is safe. */
		for (; p; p = p->next) {
			unsigned long n = atomic_load(&p->asked);

			if (!n || (used == max && n <= top[used - 1].n))
				continue;
			j = used < max ? used++ : used - 1;
			for (; j > 0 && top[j - 1].n < n; j--)
				top[j] = top[j - 1];
			top[j].type = p->type;
			top[j].n = n;
		}
	}
	for (i = 0; i < used; i++)
		buf_printf(out, "hot.%s %lu\n", top[i].type, top[i].n);
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
	buf_printf(out, "admissions_on_record %lu\n", atomic_load(&procs.admissions_on_record));
	buf_printf(out, "syntheses %lu\n", atomic_load(&procs.syntheses));
	buf_printf(out, "calls %lu\n", atomic_load(&procs.calls));
	buf_printf(out, "call_failures %lu\n", atomic_load(&procs.call_failures));
	buf_printf(out, "workers_parked_max %llu\n", (unsigned long long)ss.parked_max);
	buf_printf(out, "synthesis_failures %lu\n", atomic_load(&procs.synth_failures));
	buf_printf(out, "worker_spawns %llu\n", (unsigned long long)ss.spawns);
	buf_printf(out, "worker_runs %llu\n", (unsigned long long)ss.runs);
	/* The process hop a hit on a new input pays, in total: bench/run.py reports
	 * it per run next to the hit latency. */
	buf_printf(out, "worker_run_us %llu\n", (unsigned long long)(ss.run_ns / 1000));
	buf_printf(out, "worker_crashes %llu\n", (unsigned long long)ss.crashes);
	buf_printf(out, "worker_timeouts %llu\n", (unsigned long long)ss.timeouts);
	buf_printf(out, "workers_live %llu\n", (unsigned long long)ss.live_workers);
	/* issue 16: pool hit ratio, forks, evictions; the memo's ratio to size -o memo */
	sandbox_stats_print(out);
	buf_printf(
	    out, "memo_hit_permille %llu\n",
	    (unsigned long long)(ms.hits + ms.misses ? ms.hits * 1000 / (ms.hits + ms.misses) : 0));
}

void proc_shutdown(void)
{
	sandbox_set_call_handler(NULL);
	size_t i;

	/* A synthesis nobody waits for any more still holds its record. */
	pthread_mutex_lock(&synth_jobs_lock);
	while (synth_jobs_running)
		pthread_cond_wait(&synth_jobs_cond, &synth_jobs_lock);
	pthread_mutex_unlock(&synth_jobs_lock);
	proc_flush();
	for (i = 0; i < PROC_BUCKETS; i++) {
		struct proc *p = procs.table[i], *next;

		for (; p; p = next) {
			next = p->next;
			pversion_put(p->cur);
			free(p->calls);
			free(p->callers);
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
