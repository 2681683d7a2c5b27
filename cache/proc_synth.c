/*
 * proc_synth: the hand-off to the synthesizer (proc_config.synth) on a miss or a
 * failing source, once at a time per type, on a thread of its own; part of the
 * proc module (proc_int.h).  Readers of the type wait on the record's flag
 * synth_busy and share the outcome; their inputs become the examples of the prompt
 * (proc_waiting_inputs).
 */
#include "proc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "proc_int.h"
#include "sandbox.h"
#include "store.h"
#include "xalloc.h"

/* The biggest spec shown to the synthesizer. */
#define PROC_SPEC_MAX (64 * 1024)

/* Read spec and tests for the synthesizer. */
static void proc_material_load(struct proc *p, struct proc_material *m, struct buf *spec,
			       struct llm_case **cases)
{
	memset(m, 0, sizeof(*m));
	m->type = p->type;
	if (store_read(p->type, "spec", PROC_SPEC_MAX, spec) == 0)
		m->spec = buf_str(spec);
	m->tests_id = proc_tests_id(p->type);
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
/* Protects synth_jobs_running (memory only; taken under a record's lock). */
static pthread_mutex_t synth_jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t synth_jobs_cond = PTHREAD_COND_INITIALIZER; /* the count fell */
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
	struct store_later later = {0};
	bool records;
	int ret;

	proc_material_load(p, &m, &spec, &cases);
	m.later = &later;
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
		p->synth_fail_until =
		    clock_mono_coarse_ns() + (uint64_t)procs.cfg.fail_ttl_ms * 1000000ull;
		buf_reset(&p->synth_reason);
		buf_add(&p->synth_reason, failure.data, failure.len);
	} else {
		p->synth_fail_until = 0;
		p->stale = true;
	}
	/*
	 * The readers go on now; the records of the exchanges (fsync'd writes, none
	 * of which an answer needs) are written after.  records_pending is set in
	 * the same critical section that ends the synthesis, so nobody sees it over
	 * without seeing the records pending: the mount waits for them before it
	 * shows procs/TYPE, and the next synthesis of the type before it starts.
	 */
	records = later.n > 0;
	if (records) {
		p->records_pending = true;
		atomic_fetch_add(&procs.records_pending, 1);
	}
	p->synth_busy = false;
	p->nwaiting = 0;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (records) {
		store_later_flush(&later);
		pthread_mutex_lock(&p->lock);
		p->records_pending = false;
		atomic_fetch_sub(&procs.records_pending, 1);
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
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

int proc_synthesize(struct proc *p, const char *in, size_t len, struct buf *why)
{
	uint64_t key = p->admitted_key;
	const atomic_bool *intr = proc_intr;
	struct sandbox_chain_saved chain;
	int ret;

	if (!p->synth_busy && p->records_pending) {
		/* The last synthesis is still writing its records, which this one would
		 * write too; it has just ended, so the state is worth a second look. */
		while (p->records_pending)
			pthread_cond_wait(&p->cond, &p->lock);
		return 0;
	}
	if (!p->synth_busy) {
		struct synth_job *job;
		pthread_attr_t attr;
		pthread_t tid;
		bool started = false;

		if (p->synth_fail_until && clock_mono_coarse_ns() < p->synth_fail_until &&
		    p->synth_key == key) {
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

bool proc_records_pending(void)
{
	return atomic_load(&procs.records_pending) != 0;
}

void proc_records_wait(const char *type)
{
	struct proc *p;

	if (!proc_records_pending())
		return;
	p = proc_find(type, false);
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	while (p->records_pending)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

void proc_synth_drain(void)
{
	pthread_mutex_lock(&synth_jobs_lock);
	while (synth_jobs_running)
		pthread_cond_wait(&synth_jobs_cond, &synth_jobs_lock);
	pthread_mutex_unlock(&synth_jobs_lock);
}
