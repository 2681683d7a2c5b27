/*
 * sandbox: daemon side of compiling and running procedures, see sandbox.h; prefix
 * sandbox_.
 *
 * This file holds the pool's state (sbx) and the entry points that are not a run:
 * init and shutdown, compile, the call handler, statistics.  The rest of the daemon
 * side is split by responsibility (the list is in sandbox_int.h): pool.c keeps the
 * live seglam-worker processes (sandbox/worker/), spawn.c starts them, exchange.c
 * talks to them over the pipe protocol (sandbox/worker/frame.h) and runs, batch.c
 * runs batches.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xxhash.h>

#include "log.h"
#include "sandbox_int.h"

struct sandbox_state sbx = {.lock = PTHREAD_MUTEX_INITIALIZER,
			    .returned = PTHREAD_COND_INITIALIZER,
			    .idle = {.q = TAILQ_HEAD_INITIALIZER(sbx.idle.q)},
			    .busy = {.q = TAILQ_HEAD_INITIALIZER(sbx.busy.q)},
			    .exiting = TAILQ_HEAD_INITIALIZER(sbx.exiting),
			    .reap = PTHREAD_COND_INITIALIZER};

int sandbox_init(const struct sandbox_config *cfg)
{
	int ret = 0;

	pthread_mutex_lock(&sbx.lock);
	if (sbx.ready) {
		ret = -EALREADY;
		goto out;
	}
	if (!cfg || !cfg->worker_path || !cfg->include_dir) {
		ret = -EINVAL;
		goto out;
	}
	sbx.cfg = *cfg;
	if (!sbx.cfg.timeout_ms)
		sbx.cfg.timeout_ms = SANDBOX_DEFAULT_TIMEOUT_MS;
	if (!sbx.cfg.max_answer)
		sbx.cfg.max_answer = SANDBOX_DEFAULT_MAX_ANSWER;
	if (sbx.cfg.max_answer > UINT32_MAX - 1)
		sbx.cfg.max_answer = UINT32_MAX - 1;
	if (!sbx.cfg.mem_limit)
		sbx.cfg.mem_limit = (size_t)SANDBOX_DEFAULT_MEM_MB << 20;
	if (!sbx.cfg.max_workers)
		sbx.cfg.max_workers = SANDBOX_DEFAULT_WORKERS;
	if (!sbx.cfg.worker_types)
		sbx.cfg.worker_types = SANDBOX_DEFAULT_WORKER_TYPES;
	if (sbx.cfg.worker_types > SANDBOX_MAX_WORKER_TYPES)
		sbx.cfg.worker_types = SANDBOX_MAX_WORKER_TYPES;
	/* A compile and the first input it runs take a time limit each: the
	 * backstop is past both, with room for a quarter's worth of one process's
	 * batch inputs (sandbox.h). */
	if (!sbx.cfg.cpu_backstop_s) {
		uint64_t twice = 2 * (((uint64_t)sbx.cfg.timeout_ms + 999) / 1000) + 10;

		sbx.cfg.cpu_backstop_s =
		    twice > FRAME_CPU_BACKSTOP_S ? (unsigned)twice : FRAME_CPU_BACKSTOP_S;
	}
	sandbox_codes_init();
	sbx.worker_path = strdup(cfg->worker_path);
	sbx.include_dir = strdup(cfg->include_dir);
	if (!sbx.worker_path || !sbx.include_dir) {
		free(sbx.worker_path);
		free(sbx.include_dir);
		ret = -ENOMEM;
		goto out;
	}
	sbx.mem_live = 0;
	sbx.cfg.worker_path = sbx.worker_path;
	sbx.cfg.include_dir = sbx.include_dir;
	memset(&sbx.stats, 0, sizeof(sbx.stats));
	sbx.ready = true;
	/* The workers enforce it (they see the same kernel); say it once here too. */
	if (syscall(SYS_landlock_create_ruleset, NULL, 0, 1UL /* _VERSION */) < 0) {
		if (sbx.cfg.allow_no_landlock)
			log_warn("sandbox: Landlock is not available (%s): compiles are guarded "
				 "by the precheck alone (-o allow_no_landlock)",
				 strerror(errno));
		else
			log_error("sandbox: Landlock is not available (%s): every compile will "
				  "be refused; use a kernel of 5.13 or later with landlock in its "
				  "lsm= list, or accept the risk with -o allow_no_landlock",
				  strerror(errno));
	}
out:
	pthread_mutex_unlock(&sbx.lock);
	return ret;
}

void sandbox_shutdown(void)
{
	struct sandbox_tailq dead = TAILQ_HEAD_INITIALIZER(dead);

	pthread_mutex_lock(&sbx.lock);
	if (!sbx.ready) {
		pthread_mutex_unlock(&sbx.lock);
		return;
	}
	sbx.ready = false;
	sandbox_trim(0, &dead);
	/* Busy workers belong to requests still running: they are killed when
	 * checked in (sbx.ready is false); wait for them so nothing outlives us. */
	pthread_cond_broadcast(&sbx.returned);
	while (sbx.busy.n)
		pthread_cond_wait(&sbx.returned, &sbx.lock);
	sandbox_update_live();
	pthread_mutex_unlock(&sbx.lock);
	sandbox_kill_chain(&dead);
	sandbox_reaper_stop();
	/* every worker is gone, and its slots with it: the map is empty */
	hmap_destroy(&sbx.codes, NULL);
	sandbox_mother_shutdown();
	free(sbx.worker_path);
	free(sbx.include_dir);
	sbx.worker_path = sbx.include_dir = NULL;
}

int sandbox_compile(uid_t owner, const char *source, size_t srclen, struct buf *err)
{
	struct sandbox_worker *w = NULL;
	bool loaded;
	int ret;

	ret = sandbox_prepare(owner, source, srclen, NULL, &w, &loaded, err);
	if (w)
		sandbox_checkin(w, true);
	return ret == -ENOEXEC ? -EIO : ret;
}

void sandbox_set_call_handler(sandbox_call_fn fn)
{
	pthread_mutex_lock(&sbx.lock);
	sbx.call_fn = fn;
	pthread_mutex_unlock(&sbx.lock);
}

void sandbox_get_stats(struct sandbox_stats *st)
{
	pthread_mutex_lock(&sbx.lock);
	*st = sbx.stats;
	st->live_workers = sbx.idle.n + sbx.busy.n;
	st->mem_live = sbx.mem_live;
	pthread_mutex_unlock(&sbx.lock);
}

void sandbox_stats_print(struct buf *out)
{
	struct sandbox_stats st;
	uint64_t asked;

	sandbox_get_stats(&st);
	asked = st.pool_hits + st.pool_misses;
	buf_printf(out, "worker_forks %llu\n", (unsigned long long)st.forks);
	buf_printf(out, "worker_mother_spawns %llu\n", (unsigned long long)st.mother_spawns);
	buf_printf(out, "worker_compiles %llu\n", (unsigned long long)st.compiles);
	buf_printf(out, "worker_evictions %llu\n", (unsigned long long)st.evictions);
	buf_printf(out, "worker_pool_hits %llu\n", (unsigned long long)st.pool_hits);
	buf_printf(out, "worker_pool_misses %llu\n", (unsigned long long)st.pool_misses);
	/* stats values are integers: the ratio in thousandths */
	buf_printf(out, "worker_pool_hit_permille %llu\n",
		   (unsigned long long)(asked ? st.pool_hits * 1000 / asked : 0));
	buf_printf(out, "workers_max %u\n", sbx.cfg.max_workers);
	buf_printf(out, "worker_types_max %u\n", sbx.cfg.worker_types);
	buf_printf(out, "worker_types_cached %llu\n", (unsigned long long)st.types_cached);
	buf_printf(out, "worker_type_evictions %llu\n", (unsigned long long)st.type_evictions);
	/* with -o workers_mem: what the live workers hold, and the budget (KiB) */
	buf_printf(out, "workers_mem_kb %llu\n", (unsigned long long)(st.mem_live >> 10));
	buf_printf(out, "workers_mem_budget_kb %llu\n",
		   (unsigned long long)(sbx.cfg.mem_budget >> 10));
}
