/*
 * calls: composition, part of the proc module (proc_int.h).
 *
 * A procedure calls another with seglam_call(); the sandbox hands the call to
 * proc_call, which asks the callee as a read would.  Each call is an edge of the
 * calls/callers graph: in memory (under procs.graph_lock) for invalidation, where
 * a change of a type bumps the dep_gen of every type calling it, transitively,
 * and in the store (the caller's meta.json "calls", the callee's `callers` file)
 * for people and other daemons.  See docs/composition.md.
 */
#include "proc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "meta.h"
#include "proc_int.h"
#include "sandbox.h"
#include "store.h"
#include "xalloc.h"

/* The biggest `callers` file read. */
#define PROC_CALLERS_MAX (64 * 1024)

/* Add the names of the array @calls that are not in @keep[0..nkeep) to @d. */
void proc_dropped_collect(const cJSON *calls, const char *const *keep, size_t nkeep,
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
		if (!kept)
			d->names[d->n++] = xstrdup(it->valuestring);
	}
}

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
void proc_changed_callers(struct proc *p)
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
void proc_refresh_callees(struct proc *p)
{
	struct proc *seen[PROC_GRAPH_MAX];
	uint64_t now;
	size_t n;

	if (!atomic_load(&p->has_calls))
		return;
	n = proc_walk(p, false, seen);
	now = clock_mono_coarse_ns();
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
			if (store_type_valid(line, strlen(line)) &&
			    (!caller || strcmp(line, caller)) && proc_meta_calls(line, callee))
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
		store_update(callee, "callers", out.data, out.len);
	buf_free(&old2);
	buf_free(&old);
	buf_free(&out);
}

/* Rewrite the callers files of callees a caller no longer lists; frees @d's names. */
void proc_dropped_apply(struct proc_dropped *d)
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
int proc_call(const char *type, const char *in, size_t len, struct buf *out, struct buf *why)
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
