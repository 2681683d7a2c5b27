/*
 * admit: admission of a type's source, part of the proc module (proc_int.h).
 *
 * proc_admit compiles a source and runs it on the type's cases in the sandbox and
 * returns an enum proc_verdict, which decides meta.json's compile/tests fields; an
 * admission meta.json already records (same source and tests hashes) is trusted
 * without running the tests again.  proc_revalidate_store is the store side of a
 * revalidation: it re-reads source.c when its identity changed, keeps the replaced
 * source in history/, and re-admits when the source or tests/ changed.  All of it
 * runs with no lock held (the record is marked reval_busy by proc.c).
 */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include "proc_int.h"
#include "sandbox.h"
#include "store.h"
#include "xalloc.h"

/* The biggest source.c read. */
#define PROC_SOURCE_MAX (1024 * 1024)

/*
 * Run the procedure on every case.  Returns 0, or -EIO with the first failure in
 * @why ("test NAME: input '...': expected '...', got '...'").
 */
static int proc_run_cases(uid_t owner, const char *src, size_t srclen, const struct llm_case *cases,
			  size_t n, struct buf *why)
{
	struct buf out = BUF_INIT, err = BUF_INIT;
	int ret = 0;
	size_t i;

	for (i = 0; i < n && !ret; i++) {
		const struct llm_case *c = &cases[i];
		int rc;

		buf_reset(&out);
		buf_reset(&err);
		rc = sandbox_run(owner, src, srclen, c->in.data ? c->in.data : "", c->in.len, &out,
				 &err);
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

	/* a candidate: the daemon's own once admitted (SECURITY.md) */
	ret = sandbox_compile(geteuid(), src, len, &err);
	if (ret)
		buf_printf(why, "compile failed: %s", buf_str(&err));
	else
		ret = proc_run_cases(geteuid(), src, len, cases, n, why);
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
	return proc_run_cases(a->v->owner, a->v->src, a->v->len, c, 1, a->why);
}

/*
 * Compile and test @v, the cases loaded and run one at a time; the reason of a
 * failure goes to @reason.  No lock held: this is store I/O, a compilation and
 * every test run (the record is marked reval_busy by the caller).
 */
static enum proc_verdict proc_admit(struct proc *p, const struct pversion *v, bool quiet,
				    bool defer_compile, struct buf *reason)
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
		/*
		 * On record, the compile is left to the first run: the load then
		 * carries that input, and the process that compiles the type answers
		 * it (sandbox.h), one process fewer on a type's cold path.  These very
		 * bytes compiled before; should they not compile here (another
		 * seglamfs, other headers), sandbox_run says so (-ENOEXEC) and the
		 * type is admitted again, compiling first (proc_ask.c).
		 */
		ret = quiet && defer_compile ? 0 : sandbox_compile(v->owner, v->src, v->len, &err);
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
			struct buf toobig = BUF_INIT;

			ret =
			    proc_foreach_case(fd, proc_tests_max(), admit_case, &a, &cut, &toobig);
			if (ret == -EFBIG && toobig.len)
				buf_printf(reason,
					   "tests/%s: over 1 MiB, the most one case may be: it "
					   "cannot be run, so the source is not admitted (make the "
					   "case smaller)",
					   toobig.data);
			if (ret)
				verdict = VERDICT_TEST;
			buf_free(&toobig);
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
			/* (debug: a line per type on every first read after a mount is
			 * noise in a store of thousands, and a write on the cold path) */
			log_debug("procs/%s: source %016llx admitted: its tests passed on record",
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
	if (store_update(p->type, name.data, old->src, old->len) != 0)
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
 * The store part of a revalidation: re-read source.c if its identity changed,
 * re-admit when the source or tests changed.  No lock held (store I/O, compile,
 * tests): @r starts as a copy of the record and only this thread touches it.
 */
void proc_revalidate_store(struct proc *p, struct reval *r)
{
	struct buf path = BUF_INIT, src = BUF_INIT;
	enum proc_verdict verdict;
	struct stat st, lst;
	uid_t owner = 0;
	uint64_t tests_id, key;
	bool known, missing, changed;
	int ret;

	store_type_dir(p->type, &path);
	buf_adds(&path, "/source.c");
	/*
	 * A source seen before is compared by a stat of its name first, so that an
	 * unchanged one is not read again.  A source is read (the first look, or a
	 * change) through one descriptor, and its identity and owner are that
	 * descriptor's: a stat of the name and a read of it could see two files (a
	 * writer renaming another over it in between), and the owner decides whose
	 * worker runs the code.
	 */
	if (r->src_seen) {
		missing = store_lstat(path.data, &st) != 0 || !S_ISREG(st.st_mode);
		changed =
		    !missing && (st.st_ino != r->src_st.st_ino || st.st_dev != r->src_st.st_dev ||
				 st.st_size != r->src_st.st_size ||
				 st.st_mtim.tv_sec != r->src_st.st_mtim.tv_sec ||
				 st.st_mtim.tv_nsec != r->src_st.st_mtim.tv_nsec ||
				 st.st_ctim.tv_nsec != r->src_st.st_ctim.tv_nsec);
	} else {
		missing = false;
		changed = true;
	}
	if (changed) {
		ret = store_read_source(p->type, PROC_SOURCE_MAX, &src, &st, &owner);
		if (ret && (store_lstat(path.data, &lst) != 0 || !S_ISREG(lst.st_mode))) {
			missing = true; /* gone, or never a regular file */
		} else if (ret) {
			r->reason_set = true;
			buf_printf(&r->reason, "cannot read source.c: %s", strerror(-ret));
			r->state = PROC_FAILING;
			goto out;
		}
	}
	if (missing) {
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
	if (changed) {
		r->src_seen = true;
		r->src_st = st;
		uint64_t hash = XXH3_64bits(src.data ? src.data : "", src.len);

		/* (a new owner of the same bytes is a new version too: whose code it
		 * is decides which worker runs it) */
		if (!r->cur || r->cur->hash != hash || r->cur->owner != owner) {
			struct pversion *v = xmalloc(sizeof(*v) + src.len + 1);

			atomic_init(&v->refs, 1);
			v->hash = hash;
			v->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
			v->len = src.len;
			v->owner = owner;
			v->calls = memmem(buf_str(&src), src.len, "seglam_call", 11) != NULL;
			memcpy(v->src, buf_str(&src), src.len + 1);
			if (r->cur) {
				if (!store_readonly())
					proc_keep_history(p, r->cur);
				sandbox_forget(r->cur->owner, r->cur->src, r->cur->len);
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
	verdict = proc_admit(p, r->cur, known, r->defer_compile, &r->reason);
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
