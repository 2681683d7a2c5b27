/*
 * proc_stats: the counters of the proc module (proc_int.h): the `name value` lines
 * of the stats file, the hot types, and the hit counts flushed to meta.json.
 */
#include "proc.h"

#include <stdatomic.h>

#include "meta.h"
#include "proc_int.h"
#include "sandbox.h"
#include "store.h"

struct meta_counts {
	unsigned long hits, misses;
};

static void meta_edit_counts(cJSON *meta, void *arg)
{
	struct meta_counts *c = arg;

	meta_add_counts(meta, c->hits, c->misses);
}

static void proc_flush_one(struct proc *p, void *arg)
{
	struct meta_counts c;

	(void)arg;
	c.hits = atomic_exchange(&p->hits, 0);
	c.misses = atomic_exchange(&p->misses, 0);
	if ((c.hits || c.misses) && store_type_exists(p->type) &&
	    meta_update(p->type, meta_edit_counts, &c) != 0) {
		atomic_fetch_add(&p->hits, c.hits);
		atomic_fetch_add(&p->misses, c.misses);
	}
}

void proc_flush(void)
{
	if (!store_readonly())
		proc_each(proc_flush_one, NULL);
}

void proc_totals(struct proc_totals *t)
{
	t->asks = atomic_load(&procs.asks);
	t->answers = atomic_load(&procs.answers);
	t->rejects = atomic_load(&procs.rejects);
	t->errors = atomic_load(&procs.errors);
}

/* The @max most asked types, most first. */
struct proc_top {
	struct {
		const char *type;
		unsigned long n;
	} top[16];
	size_t used, max;
};

static void proc_hot_one(struct proc *p, void *arg)
{
	struct proc_top *t = arg;
	unsigned long n = atomic_load(&p->asked);
	size_t j;

	if (!n || (t->used == t->max && n <= t->top[t->used - 1].n))
		return;
	j = t->used < t->max ? t->used++ : t->used - 1;
	for (; j > 0 && t->top[j - 1].n < n; j--)
		t->top[j] = t->top[j - 1];
	t->top[j].type = p->type;
	t->top[j].n = n;
}

void proc_hot(struct buf *out, size_t max)
{
	struct proc_top t = {.max = max > 16 ? 16 : max};

	if (!t.max)
		return;
	proc_each(proc_hot_one, &t);
	for (size_t i = 0; i < t.used; i++)
		buf_printf(out, "hot.%s %lu\n", t.top[i].type, t.top[i].n);
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
