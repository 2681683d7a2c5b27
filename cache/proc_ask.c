/*
 * proc_ask: the answer path of the proc module (proc_int.h): one input (proc_ask,
 * proc_peek, through the memo) or a batch (proc_map, no memo), the counters of
 * stats, and the rate-limited log of per-input failures.
 */
#include "proc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "log.h"
#include "proc_int.h"
#include "sandbox.h"
#include "store.h"

/* At most this many per-input failures are written to a type's log per second. */
#define PROC_LOG_BURST 5

/* Log a per-input failure, at most PROC_LOG_BURST a second per type. */
void proc_log_input(struct proc *p, const char *what, const char *in, size_t len,
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

/*
 * A run of @p found its source not compiling (sandbox_run's -ENOEXEC), though it
 * was admitted on record without a compile here (admit.c).  Have it admitted
 * again at the next look, compiling first: the verdict and its reason then go to
 * the record, the log and the reader, as for any source that does not compile.
 * Once per type: after that its admissions compile first, and a compile that
 * fails in a later run (a crash that comes and goes) fails that read only.
 * Returns whether it is to be admitted again.  (A revalidation running meanwhile
 * writes its own key back: proc_revalidate keeps it stale then.)
 */
static bool proc_compile_failed(struct proc *p)
{
	bool again;

	pthread_mutex_lock(&p->lock);
	again = !p->compile_first;
	if (again) {
		p->compile_first = true;
		p->admitted_key = 0;
		p->stale = true;
	}
	pthread_mutex_unlock(&p->lock);
	return again;
}

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
	bool readmitted = false;
	int ret;

	*ans = NULL;
	if (!proc_depth)
		proc_chain_synths = 0; /* a new top-level read */
	p = proc_find(type, true);
again:
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

		ret = sandbox_run(v->owner, v->src, v->len, in, len, &out, &err);
		proc_pop(pushed);
		if (ret == -ENOEXEC && !readmitted && proc_compile_failed(p)) {
			readmitted = true;
			pversion_put(v);
			v = NULL;
			buf_reset(&out);
			buf_reset(&err);
			goto again;
		}
		if (ret == -EIO || ret == -ENOEXEC) {
			ret = -EIO;
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

		ret = sandbox_run_batch(v->owner, v->src, v->len, frames, bytes, count, out, ran,
					err);
		proc_pop(pushed);
		if (ret == -ENOEXEC) {
			/* (the next read or map admits it again: proc_compile_failed) */
			proc_compile_failed(p);
			ret = -EIO;
		}
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
