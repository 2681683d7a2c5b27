/*
 * exchange: one request to a worker and its reply (see sandbox_int.h), prefix sandbox_.
 *
 * sandbox_exchange() writes a frame (sandbox/worker/frame.h) and reads the reply
 * within a deadline; while a run waits for its reply, the worker may send call
 * frames (seglam_call), which are handed to the cache layer's handler with the
 * worker parked and answered on the same pipes.  A worker that stops talking is
 * reaped and its wait status becomes the reason, and is recorded for decisions
 * (sandbox_end_sigkill).  sandbox_run() is a checkout, a start when cold, one
 * exchange and a checkin; the thread's chain keeps a composed run within the time
 * of the top-level one.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "sandbox_int.h"

#define SANDBOX_MAX_INPUT FRAME_REQ_MAX_LEN /* the frame length is a u32 */

_Thread_local struct sandbox_chain sbx_chain;

/* A worker's (or a run's child's) wait status as a reason, appended to @err. */
static void sandbox_describe_status(int status, struct buf *err)
{
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		const char *name = sigabbrev_np(sig);

		if (sig == SIGSYS)
			buf_adds(err, "killed by the sandbox: forbidden system call (SIGSYS)");
		else if (sig == SIGXCPU || sig == SIGKILL)
			buf_printf(err, "killed by SIG%s (CPU or memory limit)", name ? name : "?");
		else
			buf_printf(err, "crashed: SIG%s", name ? name : "?");
	} else if (WEXITSTATUS(status) == WORKER_EXIT_OOM) {
		buf_printf(err, "ran out of memory (limit %zu MiB)", sbx.cfg.mem_limit >> 20);
	} else if (WEXITSTATUS(status) == WORKER_EXIT_SETUP) {
		buf_adds(err, "could not set up the sandbox");
	} else {
		buf_printf(err, "exited with status %d", WEXITSTATUS(status));
	}
}

/* @w, or its run's child (@end says which), ended with the wait @status: record
 * it for the decisions taken on it and append the reason to @err. */
void sandbox_worker_ended(struct sandbox_worker *w, enum sandbox_end end, int status,
			  struct buf *err)
{
	w->end = end;
	w->end_status = status;
	sandbox_describe_status(status, err);
}

/* Did a process of @w end by SIGKILL in its last exchange?  Not one we sent: the
 * OOM killer's, an operator's (or the hard CPU limit's, which a retry meets again). */
static bool sandbox_end_sigkill(const struct sandbox_worker *w)
{
	return w->end != SANDBOX_END_NONE && WIFSIGNALED(w->end_status) &&
	       WTERMSIG(w->end_status) == SIGKILL;
}

/* A run or batch exchange passed its deadline: say so and count it. */
void sandbox_timed_out(struct buf *err)
{
	buf_printf(err, "timed out after %u ms", sbx.cfg.timeout_ms);
	pthread_mutex_lock(&sbx.lock);
	sbx.stats.timeouts++;
	pthread_mutex_unlock(&sbx.lock);
}

/* Why did this worker stop talking?  Reaps it and appends the reason to @err. */
void sandbox_worker_diagnose(struct sandbox_worker *w, struct buf *err)
{
	int64_t deadline = frame_now_ms() + SANDBOX_EXIT_GRACE_MS;
	int status = 0;
	pid_t r;

	/* Its response pipe is closed, so it is exiting; give it a moment to finish. */
	for (;;) {
		r = waitpid(w->pid, &status, WNOHANG);
		if (r != 0 || frame_now_ms() >= deadline)
			break;
		usleep(1000);
	}
	if (r == 0) {
		status = sandbox_kill_reap(w->pid);
		buf_adds(err, "stopped answering and was killed");
	} else if (r < 0) {
		buf_printf(err, "lost: waitpid: %s", strerror(errno));
	} else {
		/* the worker is gone; a run's child it left (if any) goes too */
		sandbox_ended_group(w->pid);
		sandbox_worker_ended(w, SANDBOX_END_WORKER, status, err);
	}
	w->pid = 0;
}

/* @w waits on a call (@on), or is back from one: see sandbox.h for why a parked
 * worker is not counted against the cap. */
static void sandbox_park(struct sandbox_worker *w, bool on)
{
	pthread_mutex_lock(&sbx.lock);
	w->parked = on;
	if (on) {
		sbx.parked++;
		sbx.stats.calls++;
		if (sbx.parked > sbx.stats.parked_max)
			sbx.stats.parked_max = sbx.parked;
		/* its slot under the cap is free for the callee (or anyone) now */
		pthread_cond_broadcast(&sbx.returned);
	} else {
		sbx.parked--;
	}
	pthread_mutex_unlock(&sbx.lock);
}

/*
 * Serve one call frame of @rlen bytes from @w (its header already read): read the
 * request, ask the handler (the worker parked meanwhile), write the answer frame
 * on @fd (the pipe the run's request went on).
 * *@deadline follows the chain's (a suspension for admitting the callee moved it).
 * Returns 0; -ETIMEDOUT; -EPROTO (a malformed request, @err says so); or -EIO when
 * the worker stopped talking.
 */
static int sandbox_serve_call(struct sandbox_worker *w, int fd, uint32_t rlen, int64_t *deadline,
			      struct buf *err)
{
	struct buf req = BUF_INIT;
	ssize_t r;
	int ret;

	buf_grow(&req, rlen);
	r = frame_read_full(w->resp_fd, req.data, rlen, *deadline);
	if (r < 0 || r != (ssize_t)rlen)
		ret = r == -ETIMEDOUT ? -ETIMEDOUT : -EIO;
	else
		ret = sandbox_answer_call(w, fd, req.data, rlen, deadline, err);
	buf_free(&req);
	return ret;
}

/* The part of sandbox_serve_call after the request is read: @req, @rlen bytes
 * (a batch has it in its buffer already). */
int sandbox_answer_call(struct sandbox_worker *w, int fd, const char *req, size_t rlen,
			int64_t *deadline, struct buf *err)
{
	struct buf ans = BUF_INIT, why = BUF_INIT;
	uint8_t hdr[FRAME_REQ_HDR];
	const char *type, *in;
	size_t inlen;
	int ret, rc = -ENOSYS;

	if (frame_get_call(req, rlen, &type, &in, &inlen) < 0) {
		buf_adds(err, "protocol violation from the worker (malformed call)");
		ret = -EPROTO;
		goto out;
	}
	if (sbx.call_fn) {
		sandbox_park(w, true);
		rc = sbx.call_fn(type, in, inlen, &ans, &why);
		sandbox_park(w, false);
		if (sbx_chain.active)
			*deadline = sbx_chain.deadline;
		/* The chain's time is spent (a callee timed out, say): the whole read
		 * fails, whatever the caller would do with a NULL. */
		if (frame_now_ms() >= *deadline) {
			ret = -ETIMEDOUT;
			goto out;
		}
	}
	if (rc == 0 && ans.len > sbx.cfg.max_answer)
		rc = -EFBIG; /* the callee's own cap is the same: defensive */
	frame_put_request(hdr, rc == 0 ? (uint32_t)ans.len : FRAME_CALL_FAILED);
	ret = frame_write_full(fd, hdr, sizeof(hdr), *deadline);
	if (!ret && rc == 0 && ans.len)
		ret = frame_write_full(fd, ans.data, ans.len, *deadline);
	/* A write error (EPIPE) is not final here either: the reply read tells. */
	if (ret != -ETIMEDOUT)
		ret = 0;
out:
	buf_free(&ans);
	buf_free(&why);
	return ret;
}

/*
 * A batch's FRAME_SKIPPED as a run's reply (@max_status from FRAME_CALL up: a
 * run, not a load) where no batch runs: the zygote passes it on as in a batch
 * (the run child reads the request, so the zygote cannot tell the two apart),
 * and no worker code writes it outside a batch, so the procedure did.
 */
static bool sandbox_skip_forged(const uint8_t resp[FRAME_RESP_HDR], int32_t max_status)
{
	int32_t status;

	memcpy(&status, resp, sizeof(status));
	return max_status >= FRAME_CALL && max_status < FRAME_SKIPPED && status == FRAME_SKIPPED;
}

/*
 * Send one request on @fd (the worker's request pipe, or for a load its load
 * pipe: frame.h), @hdr (@hlen bytes) then @msg (none when @hdr is NULL: it is in
 * the pipe already), and read the reply, within @deadline.  Answers to the
 * worker's calls meanwhile go on @fd too.  Returns the frame
 * status with the payload in @data, or -EIO with the reason in @err; on -EIO the
 * worker process is gone (reaped).
 */
int sandbox_exchange(struct sandbox_worker *w, int fd, const void *hdr, size_t hlen,
		     const void *msg, size_t len, int32_t max_status, uint32_t cap,
		     int64_t deadline, struct buf *data, struct buf *err)
{
	uint8_t resp[FRAME_RESP_HDR], small[1024];
	int32_t status;
	uint32_t rlen;
	ssize_t r;
	int wr;

	w->end = SANDBOX_END_NONE;
	if (!hdr)
		goto again; /* written already (spawn.c sandbox_load) */
	if (hlen + len <= sizeof(small)) {
		/* One write for a small request: the worker wakes up once. */
		memcpy(small, hdr, hlen);
		if (len)
			memcpy(small + hlen, msg, len);
		wr = frame_write_full(fd, small, hlen + len, deadline);
	} else {
		wr = frame_write_full(fd, hdr, hlen, deadline);
		if (!wr)
			wr = frame_write_full(fd, msg, len, deadline);
	}
	/* A write error (EPIPE) is not final: the worker may have replied first. */
	if (wr == -ETIMEDOUT)
		goto timeout;
again:
	r = frame_read_full(w->resp_fd, resp, sizeof(resp), deadline);
	if (r == -ETIMEDOUT)
		goto timeout;
	if (r != (ssize_t)sizeof(resp))
		goto died;
	if (frame_get_response(resp, max_status, max_status >= FRAME_CALL ? SANDBOX_CALL_CAP : cap,
			       &status, &rlen) < 0 ||
	    (status != FRAME_CALL && rlen > cap)) {
		buf_adds(err, sandbox_skip_forged(resp, max_status)
				  ? "protocol violation from the procedure"
				  : "protocol violation from the worker");
		goto kill;
	}
	if (status == FRAME_CALL) {
		r = sandbox_serve_call(w, fd, rlen, &deadline, err);
		if (r == -ETIMEDOUT)
			goto timeout;
		if (r == -EPROTO)
			goto kill;
		if (r < 0)
			goto died;
		goto again;
	}
	buf_reset(data);
	buf_grow(data, rlen);
	r = frame_read_full(w->resp_fd, data->data, rlen, deadline);
	if (r == -ETIMEDOUT)
		goto timeout;
	if (r != (ssize_t)rlen)
		goto died;
	data->len = rlen;
	data->data[rlen] = '\0';
	return status;
timeout:
	sandbox_timed_out(err);
	goto kill;
died:
	sandbox_worker_diagnose(w, err);
	pthread_mutex_lock(&sbx.lock);
	sbx.stats.crashes++;
	pthread_mutex_unlock(&sbx.lock);
	return -EIO;
kill:
	sandbox_kill_reap(w->pid);
	w->pid = 0;
	return -EIO;
}

/* Anything readable after a reply (extra bytes, or EOF) means: do not reuse. */
bool sandbox_worker_clean(struct sandbox_worker *w)
{
	struct pollfd p = {.fd = w->resp_fd, .events = POLLIN};

	return poll(&p, 1, 0) == 0;
}

/* One exchange with a started worker; sets *@reuse when it may serve again. */
static int sandbox_run_once(struct sandbox_worker *w, const char *in, size_t inlen, struct buf *out,
			    struct buf *err, bool *reuse)
{
	struct timespec t0, t1;
	int64_t deadline;
	bool chain_top;
	int ret;

	/* The time limit covers the run only, not the compile before it.  One clock
	 * read serves the limit and the run_ns statistic (frame_now_ms's clock). */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	deadline = (int64_t)t0.tv_sec * 1000 + t0.tv_nsec / 1000000 + sbx.cfg.timeout_ms;
	/* A callee gets what is left of the top-level run's time (sandbox.h). */
	chain_top = !sbx_chain.active;
	if (chain_top) {
		sbx_chain.active = true;
		sbx_chain.deadline = deadline;
	} else if (sbx_chain.deadline < deadline) {
		deadline = sbx_chain.deadline;
	}
	/* FRAME_FAILED carries 8 bytes even when the answer cap is smaller.  A
	 * first input that went with the load is running already: only its reply
	 * is read, and its calls are answered on the load pipe (frame.h). */
	ret = sandbox_exchange(w, w->first_sent ? w->load_fd : w->req_fd,
			       w->first_sent ? NULL : (uint32_t[2]){(uint32_t)inlen, w->cur},
			       FRAME_RUN_HDR, in, inlen, FRAME_CALL,
			       (uint32_t)(sbx.cfg.max_answer < 8 ? 8 : sbx.cfg.max_answer),
			       deadline, out, err);
	w->first_sent = false;
	if (chain_top)
		sbx_chain.active = false;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_mutex_lock(&sbx.lock);
	sbx.stats.runs++;
	sbx.stats.run_ns +=
	    (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
	pthread_mutex_unlock(&sbx.lock);
	*reuse = false;
	if ((ret == FRAME_ANSWER || ret == FRAME_REJECTED) && out->len > sbx.cfg.max_answer)
		ret = FRAME_TOO_LARGE;
	switch (ret) {
	case FRAME_ANSWER:
		*reuse = sandbox_worker_clean(w);
		return 0;
	case FRAME_REJECTED:
		*reuse = sandbox_worker_clean(w);
		return -EINVAL;
	case FRAME_TOO_LARGE:
		buf_reset(out);
		buf_printf(err, "answer exceeds %zu bytes", sbx.cfg.max_answer);
		return -EIO;
	case FRAME_FAILED: {
		int32_t fail[2];

		if (out->len != sizeof(fail)) {
			buf_adds(err, "protocol violation from the worker");
		} else {
			memcpy(fail, out->data, sizeof(fail));
			if (fail[0] == FRAME_FAIL_DIED) {
				/* the zygote is untouched: it may serve again */
				sandbox_worker_ended(w, SANDBOX_END_CHILD, fail[1], err);
				*reuse = sandbox_worker_clean(w);
			} else {
				buf_adds(err, "protocol violation from the procedure");
			}
		}
		buf_reset(out);
		pthread_mutex_lock(&sbx.lock);
		sbx.stats.crashes++;
		pthread_mutex_unlock(&sbx.lock);
		return -EIO;
	}
	default:
		buf_reset(out);
		return -EIO;
	}
}

void sandbox_chain_suspend(struct sandbox_chain_saved *saved)
{
	saved->active = sbx_chain.active;
	saved->deadline = sbx_chain.deadline;
	saved->since = frame_now_ms();
	sbx_chain.active = false;
}

void sandbox_chain_resume(const struct sandbox_chain_saved *saved)
{
	sbx_chain.active = saved->active;
	/* the time spent suspended is not the chain's */
	sbx_chain.deadline = saved->deadline + (frame_now_ms() - saved->since);
}

/*
 * Check out a worker with @source compiled in its current slot: a hit, or a load
 * (sandbox_load) into the slot the pool chose, with @first (or NULL) as the
 * type's first input, retried in another worker when the image did not fit.
 * Returns 0 with *@out checked out (*@loaded: compiled just now; (*@out)->
 * first_sent: @first is running there), -ENOEXEC with @err when the source does
 * not compile, or -EIO with @err.
 */
int sandbox_prepare(uid_t owner, const char *source, size_t srclen,
		    const struct sandbox_input *first, struct sandbox_worker **out, bool *loaded,
		    struct buf *err)
{
	struct sandbox_worker *w;
	int ret;

	*out = NULL;
	*loaded = false;
	if (srclen > SANDBOX_MAX_SOURCE) {
		buf_printf(err, "source is larger than %u bytes", SANDBOX_MAX_SOURCE);
		return -EIO;
	}
	for (int attempt = 0;; attempt++) {
		ret = sandbox_checkout(owner, source, srclen, &w);
		if (ret == -ESHUTDOWN) {
			/* (strerror's "Cannot send after transport endpoint shutdown"
			 * says nothing to whoever reads it in a procedure's log) */
			buf_adds(err, "sandbox: stopped: the daemon is unmounting");
			return -EIO;
		}
		if (ret < 0) {
			buf_printf(err, "sandbox: %s", strerror(-ret));
			return -EIO;
		}
		if (w->slots[w->cur].loaded) {
			*out = w;
			return 0;
		}
		ret = sandbox_load(w, first, err);
		sandbox_loaded(w, ret == 0);
		if (ret == 0) {
			*loaded = true;
			*out = w;
			return 0;
		}
		if (ret == -ENOSPC && attempt < 2 && w->nused > 0) {
			/* full of other types: end it, and try one with room */
			sandbox_checkin(w, false);
			buf_reset(err);
			continue;
		}
		if (ret == -EIO && attempt == 0 && w->pid <= 0 && sandbox_end_sigkill(w)) {
			/* The worker itself was SIGKILLed (a spare killed from outside just
			 * before it was handed over, the OOM killer): not this source's
			 * fault, once.  A compiler that died is not this case. */
			sandbox_checkin(w, false);
			buf_reset(err);
			continue;
		}
		/* A compile error leaves a zygote as it was: it may serve again. */
		sandbox_checkin(w, w->pid > 0 && !sbx.cfg.worker_reuse && sandbox_worker_clean(w));
		return ret == -ENOEXEC ? ret : -EIO;
	}
}

int sandbox_run(uid_t owner, const char *source, size_t srclen, const char *in, size_t inlen,
		struct buf *out, struct buf *err)
{
	struct sandbox_worker *w = NULL;
	bool reuse = false;
	int ret;

	if (inlen > SANDBOX_MAX_INPUT) {
		buf_printf(err, "input is larger than %u bytes", SANDBOX_MAX_INPUT);
		return -EIO;
	}
	for (int attempt = 0;; attempt++) {
		bool fresh;

		ret = sandbox_prepare(owner, source, srclen,
				      inlen <= SANDBOX_FIRST_INPUT_MAX
					  ? &(struct sandbox_input){.data = in, .len = inlen}
					  : NULL,
				      &w, &fresh, err);
		if (ret < 0)
			return ret;
		ret = sandbox_run_once(w, in, inlen, out, err, &reuse);
		/* A pooled worker killed from outside while idle (SIGKILL: the OOM killer,
		 * an operator) is not this input's fault: try once more in a fresh one.
		 * Nor is the zygote itself SIGKILLed during the run, fresh or not: the
		 * procedure runs in the run's child, whose SIGKILL (its CPU or memory
		 * limit) comes back as SANDBOX_END_CHILD and is the input's.  Taken for
		 * the input's, such a kill during an admission's test would fail the
		 * source (and with an LLM, start a repair); a few tries, then it is. */
		if (ret != -EIO || !sandbox_end_sigkill(w))
			break;
		if (w->end == SANDBOX_END_WORKER ? attempt >= 2 : fresh || attempt > 0)
			break;
		sandbox_checkin(w, false);
		w = NULL;
		buf_reset(err);
		buf_reset(out);
	}
	if (w)
		sandbox_checkin(w, reuse);
	return ret;
}
