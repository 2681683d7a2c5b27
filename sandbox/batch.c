/*
 * batch: sandbox_run_batch (seglam map), see sandbox.h and docs/batch.md; prefix
 * sandbox_.
 *
 * Many inputs go to one worker as one batch request; the worker's records come
 * back in a stream that is parsed in place into the caller's records.  The time
 * limit is per input.  When a worker dies with answers still buffered, the batch
 * goes again answer by answer, so that the input that kills it fails alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "log.h"
#include "sandbox_int.h"

#define SANDBOX_BATCH_PIPE (1 << 20) /* pipe size asked for: one write, one wakeup */
#define SANDBOX_BATCH_BIG 16	     /* batches at once with enlarged pipes (32 MiB) */
#define SANDBOX_BATCH_READ (256u << 10)
#define SANDBOX_BATCH_SLACK_MS 50 /* flush interval + coarse clock granularity */
#define SANDBOX_BATCH_FLUSH_MS 10
#define SANDBOX_BATCH_OUT (1u << 20) /* answers of one batch, bytes (then FRAME_SKIPPED) */

/*
 * Pipe space counts against the user that made the pipe, the daemon's, and once
 * an unprivileged user is past fs.pipe-user-pages-soft (16384 pages by default)
 * every new pipe it makes gets 8 KiB and cannot grow: every new worker's, for
 * ask/ too.  Idle workers keeping 1 MiB pipes (512 pages a worker) got there at
 * 32 workers.  So a batch enlarges its worker's pipes only while it runs, and
 * only SANDBOX_BATCH_BIG batches at once: together at most half of the default
 * quota, however many workers the pool keeps.
 */
static atomic_uint sandbox_batch_big;

struct sandbox_batch_pipes {
	int req, resp; /* the sizes before the batch */
	bool held;     /* counted in sandbox_batch_big */
};

/* Room for a whole batch in each pipe (fewer wakeups both ways), while the budget
 * allows: @need bytes of request, out_max of records. */
static void sandbox_batch_pipes_raise(struct sandbox_worker *w, size_t need,
				      struct sandbox_batch_pipes *p)
{
	p->held = false;
	if (atomic_fetch_add(&sandbox_batch_big, 1) >= SANDBOX_BATCH_BIG) {
		atomic_fetch_sub(&sandbox_batch_big, 1);
		return;
	}
	p->req = fcntl(w->req_fd, F_GETPIPE_SZ);
	p->resp = fcntl(w->resp_fd, F_GETPIPE_SZ);
	if (p->req < 0 || p->resp < 0) {
		atomic_fetch_sub(&sandbox_batch_big, 1);
		return;
	}
	p->held = true;
	/* Failures leave a pipe as it was (EPERM: the user's quota is spent). */
	if (need > (size_t)p->req)
		fcntl(w->req_fd, F_SETPIPE_SZ,
		      need < SANDBOX_BATCH_PIPE ? (int)need : SANDBOX_BATCH_PIPE);
	fcntl(w->resp_fd, F_SETPIPE_SZ, SANDBOX_BATCH_PIPE);
}

/* Back to the sizes before the batch.  Returns 0, or -errno (EBUSY: a pipe is not
 * empty, which an honest worker's are after a batch): the worker is not kept. */
static int sandbox_batch_pipes_restore(struct sandbox_worker *w, struct sandbox_batch_pipes *p)
{
	int ret = 0;

	if (!p->held)
		return 0;
	if (fcntl(w->req_fd, F_SETPIPE_SZ, p->req) < 0)
		ret = -errno;
	if (fcntl(w->resp_fd, F_SETPIPE_SZ, p->resp) < 0)
		ret = -errno;
	atomic_fetch_sub(&sandbox_batch_big, 1);
	p->held = false;
	return ret;
}

static void sandbox_put_le32(char *p, uint32_t v)
{
	p[0] = (char)(v & 0xff);
	p[1] = (char)((v >> 8) & 0xff);
	p[2] = (char)((v >> 16) & 0xff);
	p[3] = (char)(v >> 24);
}

/*
 * Turn the worker records read into @out from @*parse on into batch records,
 * in place: [i32 status][u32 len] native -> [u32 kind][u32 len] little-endian.
 * An answer over the cap becomes a failure with its reason.  Counts complete
 * records in @*got (at most @want).  Returns 0, or -EPROTO for a bad record.
 */
static int sandbox_batch_parse(struct buf *out, size_t *parse, size_t *got, size_t *skipped,
			       size_t want)
{
	while (*got + *skipped < want && out->len - *parse >= FRAME_RESP_HDR) {
		uint8_t *h = (uint8_t *)out->data + *parse;
		int32_t status;
		uint32_t len;

		if (frame_get_response(h, FRAME_SKIPPED, SANDBOX_CALL_CAP, &status, &len) < 0 ||
		    (status != FRAME_CALL && len > sbx.cfg.max_answer &&
		     !(status == FRAME_FAILED && len == 8)) ||
		    (status == FRAME_FAILED && len != 8))
			return -EPROTO;
		if (status == FRAME_CALL || status == FRAME_FAILED) {
			/* the zygote's: handled by the caller once it is whole */
			if (*skipped)
				return -EPROTO;
			if (out->len - *parse - FRAME_RESP_HDR < len)
				break;
			return status;
		}
		if (status == FRAME_SKIPPED) {
			/* no bytes; once skipping, every later input is skipped too */
			if (len)
				return -EPROTO;
			memmove(h, h + FRAME_RESP_HDR, out->len - *parse - FRAME_RESP_HDR);
			out->len -= FRAME_RESP_HDR;
			(*skipped)++;
			continue;
		}
		if (*skipped)
			return -EPROTO;
		if (out->len - *parse - FRAME_RESP_HDR < len)
			break;
		if (status == FRAME_TOO_LARGE) {
			char why[64];
			size_t wl = (size_t)snprintf(why, sizeof(why), "answer exceeds %zu bytes",
						     sbx.cfg.max_answer);
			size_t at = *parse + FRAME_RESP_HDR;

			buf_grow(out, wl);
			memmove(out->data + at + wl, out->data + at, out->len - at);
			memcpy(out->data + at, why, wl);
			out->len += wl;
			h = (uint8_t *)out->data + *parse;
			status = SANDBOX_FAILED;
			len = (uint32_t)wl;
		}
		sandbox_put_le32((char *)h, (uint32_t)status);
		sandbox_put_le32((char *)h + 4, len);
		*parse += FRAME_RESP_HDR + len;
		(*got)++;
	}
	return 0;
}

/*
 * Send @count inputs (@frames, @bytes) as one batch request and read the answers
 * into @out.  *@got counts the inputs answered, even on failure.  Returns 0, or
 * -EIO with the reason in @err and the worker reaped.
 */
static int sandbox_batch_exchange(struct sandbox_worker *w, const char *frames, size_t bytes,
				  size_t count, bool each, struct buf *out, size_t *got,
				  struct buf *err)
{
	uint8_t req[FRAME_RUN_HDR + sizeof(struct frame_batch)];
	uint32_t slot = w->cur;
	struct frame_batch b = {.flags = each ? FRAME_BATCH_EACH : 0,
				.flush_ms = SANDBOX_BATCH_FLUSH_MS,
				.count = (uint32_t)count,
				.bytes = (uint32_t)bytes,
				.out_max = SANDBOX_BATCH_OUT};
	size_t parse = out->len, base = out->len, skipped = 0;
	int64_t deadline = frame_now_ms() + sbx.cfg.timeout_ms + SANDBOX_BATCH_SLACK_MS;
	int wr;

	*got = 0;
	w->end = SANDBOX_END_NONE;
	frame_put_request(req, FRAME_REQ_BATCH);
	memcpy(req + FRAME_REQ_HDR, &slot, sizeof(slot));
	memcpy(req + FRAME_RUN_HDR, &b, sizeof(b));
	wr = frame_write_full(w->req_fd, req, sizeof(req), deadline);
	if (!wr)
		wr = frame_write_full(w->req_fd, frames, bytes, deadline);
	if (wr == -ETIMEDOUT)
		goto timeout;
	/* On a write error (EPIPE) the worker is gone: reading says why. */
	while (*got + skipped < count) {
		struct pollfd p = {.fd = w->resp_fd, .events = POLLIN};
		size_t before = *got;
		int64_t left;
		ssize_t r;
		int rec;

		buf_grow(out, SANDBOX_BATCH_READ);
		r = read(w->resp_fd, out->data + out->len, SANDBOX_BATCH_READ);
		if (r > 0) {
			out->len += (size_t)r;
			/* An honest worker stops at out_max plus one answer. */
			rec = sandbox_batch_parse(out, &parse, got, &skipped, count);
			if (rec < 0 || parse - base > SANDBOX_BATCH_OUT + sbx.cfg.max_answer + 64) {
				buf_adds(err, "protocol violation from the worker");
				goto kill;
			}
			if (rec == FRAME_CALL) {
				/* seglam_call from the current input: answered within its
				 * time limit, which also bounds the callee (sandbox.h) */
				uint32_t len;
				int rc;

				memcpy(&len, out->data + parse + 4, 4);
				sbx_chain.active = true;
				sbx_chain.deadline = deadline;
				rc = sandbox_answer_call(w, w->req_fd,
							 out->data + parse + FRAME_RESP_HDR, len,
							 &deadline, err);
				sbx_chain.active = false;
				memmove(out->data + parse, out->data + parse + FRAME_RESP_HDR + len,
					out->len - parse - FRAME_RESP_HDR - len);
				out->len -= FRAME_RESP_HDR + len;
				if (rc == -ETIMEDOUT)
					goto timeout;
				if (rc < 0)
					goto kill;
				continue;
			}
			if (rec == FRAME_FAILED) {
				/* the zygote's word for the input it was on: its child
				 * died (the reason) or broke the protocol */
				int32_t fail[2];

				memcpy(fail, out->data + parse + FRAME_RESP_HDR, sizeof(fail));
				if (fail[0] == FRAME_FAIL_DIED)
					sandbox_worker_ended(w, SANDBOX_END_CHILD, fail[1], err);
				else
					buf_adds(err, "protocol violation from the procedure");
				pthread_mutex_lock(&sbx.lock);
				sbx.stats.crashes++;
				pthread_mutex_unlock(&sbx.lock);
				goto kill_quiet;
			}
			/* The time limit is per input: it restarts with each answer. */
			if (*got > before)
				deadline =
				    frame_now_ms() + sbx.cfg.timeout_ms + SANDBOX_BATCH_SLACK_MS;
			continue;
		}
		if (r == 0 || (errno != EINTR && errno != EAGAIN))
			goto died;
		if (errno == EINTR)
			continue;
		left = deadline - frame_now_ms();
		if (left <= 0)
			goto timeout;
		if (poll(&p, 1, left > 60000 ? 60000 : (int)left) < 0 && errno != EINTR)
			goto died;
	}
	if (parse == out->len)
		return 0;
	/* Every answer is in, but more bytes came: keep the answers, not the worker. */
	log_error("sandbox: worker %d sent bytes after its last answer: killed", (int)w->pid);
	goto kill;
timeout:
	sandbox_timed_out(err);
	goto kill;
died:
	out->len = parse; /* drop a partial record */
	sandbox_worker_diagnose(w, err);
	pthread_mutex_lock(&sbx.lock);
	sbx.stats.crashes++;
	pthread_mutex_unlock(&sbx.lock);
	return -EIO;
kill:
kill_quiet:
	out->len = parse;
	sandbox_kill_reap(w->pid);
	w->pid = 0;
	return *got + skipped == count ? 0 : -EIO;
}

static void sandbox_batch_failed(struct buf *out, const struct buf *why)
{
	char h[8];

	sandbox_put_le32(h, SANDBOX_FAILED);
	sandbox_put_le32(h + 4, (uint32_t)why->len);
	buf_add(out, h, sizeof(h));
	buf_add(out, why->data ? why->data : "", why->len);
}

int sandbox_run_batch(uid_t owner, const char *source, size_t srclen, const char *frames,
		      size_t bytes, size_t count, struct buf *out, size_t *ran, struct buf *err)
{
	struct buf why = BUF_INIT;
	size_t done = 0, off = 0, mark = out->len;
	bool each = false;
	int ret = 0;

	if (srclen > SANDBOX_MAX_SOURCE) {
		buf_printf(err, "source is larger than %u bytes", SANDBOX_MAX_SOURCE);
		return -EIO;
	}
	if (bytes > FRAME_BATCH_MAX || count > FRAME_BATCH_MAX_COUNT) {
		buf_printf(err, "batch larger than %u bytes or %u inputs", FRAME_BATCH_MAX,
			   FRAME_BATCH_MAX_COUNT);
		return -EIO;
	}
	while (done < count) {
		struct sandbox_worker *w = NULL;
		struct sandbox_batch_pipes pipes;
		struct timespec t0, t1;
		size_t got = 0;
		bool loaded, keep;

		ret = sandbox_prepare(owner, source, srclen, NULL, &w, &loaded, err);
		if (ret < 0)
			break;
		sandbox_batch_pipes_raise(
		    w, FRAME_RUN_HDR + sizeof(struct frame_batch) + bytes - off, &pipes);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		buf_reset(&why);
		ret = sandbox_batch_exchange(w, frames + off, bytes - off, count - done, each, out,
					     &got, &why);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		pthread_mutex_lock(&sbx.lock);
		sbx.stats.runs += got;
		sbx.stats.run_ns +=
		    (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
		pthread_mutex_unlock(&sbx.lock);
		keep = ret == 0 && w->pid > 0 && sandbox_worker_clean(w);
		/* an idle worker holds default pipes (kept or not: closed on checkin) */
		if (sandbox_batch_pipes_restore(w, &pipes) < 0)
			keep = false;
		sandbox_checkin(w, keep);
		for (size_t i = 0; i < got; i++)
			off += FRAME_REQ_HDR + frame_get_request((const uint8_t *)frames + off);
		done += got;
		if (ret == 0 && done < count && !got) {
			/* an honest worker always runs the first input of a batch */
			buf_adds(err, "protocol violation from the worker (skipped every input)");
			ret = -EIO;
			break;
		}
		if (ret == 0)
			break; /* all answered, or the rest skipped (out_max): sent again */
		ret = 0;
		if (!each && count - done > 1) {
			/* Buffered answers died with the worker: go again answer by
			 * answer, so the input that kills it is known. */
			each = true;
			continue;
		}
		/* Answer by answer (or with one input left), the first input not
		 * answered is the culprit.  The rest of this batch stays answer by
		 * answer: where one input failed, the next failure costs one run. */
		sandbox_batch_failed(out, &why);
		off += FRAME_REQ_HDR + frame_get_request((const uint8_t *)frames + off);
		done++;
		each = true;
	}
	if (ret < 0) {
		out->len = mark;
		done = 0;
	}
	*ran = done;
	buf_free(&why);
	return ret;
}
