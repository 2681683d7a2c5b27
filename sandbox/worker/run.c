/*
 * run: one request in the process that runs it (prefix worker_): a run's child
 * forked by the zygote, or a -o worker_reuse worker.  Reads the request from fd
 * 0 (one input, or a batch of one reader's inputs: frame.h), calls the
 * procedure on each input with worker_out, and writes the answer frames to fd 1.
 * Whatever reaches the daemon from a run's child is checked by the zygote first
 * (serve.c).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker_int.h"

/* The length word of the next request on @fd (or a request kind, FRAME_REQ_*). */
uint32_t worker_read_len(int fd)
{
	uint8_t hdr[FRAME_REQ_HDR];
	ssize_t r = frame_read_full(fd, hdr, sizeof(hdr), -1);

	if (r == 0)
		_exit(0); /* the daemon closed the pipe: done */
	if (r != (ssize_t)sizeof(hdr))
		_exit(WORKER_EXIT_IO);
	return frame_get_request(hdr);
}

char *worker_read_body(int fd, uint32_t len)
{
	char *data;

	if (len >= FRAME_REQ_BATCH)
		_exit(WORKER_EXIT_IO); /* a request kind where a length belongs */
	data = worker_malloc((size_t)len + 1);
	if (frame_read_full(fd, data, len, -1) != (ssize_t)len)
		_exit(WORKER_EXIT_IO);
	data[len] = '\0';
	return data;
}

/* ------------------------------------------------------------------------- */
/* Batches (seglam map, frame.h): many inputs per request, answers buffered. */

/* vDSO present: CLOCK_MONOTONIC_COARSE is read without a system call, so the
 * seccomp filter need not allow clock_gettime.  Without it a batch writes each
 * answer out at once (slower, and still timed per input by the daemon). */
bool worker_have_clock;

int64_t worker_coarse_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A batch's answers not written yet (seglam_call writes them before a call, so
 * frames leave in order).  On the heap, made by the first batch, rather than in
 * .bss: a compile child pre-faults all of .bss (load.c), which should be small. */
static char *worker_obuf;
static size_t worker_olen;

void worker_batch_flush(void)
{
	if (worker_olen && frame_write_full(1, worker_obuf, worker_olen, -1) < 0)
		_exit(WORKER_EXIT_IO);
	worker_olen = 0;
}

/* The rest of a batch request (after its length word): the header and the inputs. */
char *worker_batch_read(struct frame_batch *b)
{
	char *data;

	if (frame_read_full(0, b, sizeof(*b), -1) != (ssize_t)sizeof(*b) ||
	    b->bytes > FRAME_BATCH_MAX || b->count > FRAME_BATCH_MAX_COUNT || b->count == 0)
		_exit(WORKER_EXIT_IO);
	data = worker_malloc(b->bytes ? b->bytes : 1);
	if (frame_read_full(0, data, b->bytes, -1) != (ssize_t)b->bytes)
		_exit(WORKER_EXIT_IO);
	return data;
}

void worker_batch_run(worker_run_fn run, const struct frame_batch *b, char *data)
{
	static char *in;
	static size_t incap;
	size_t off = 0, produced = 0;
	bool each, enough = false;
	int64_t last, stop_at;

	if (!worker_obuf)
		worker_obuf = worker_malloc(WORKER_BATCH_OUT);
	each = (b->flags & FRAME_BATCH_EACH) || !worker_have_clock;
	last = worker_have_clock ? worker_coarse_ms() : 0;
	/* Past its share of the CPU backstop this process skips the rest, which a
	 * new child runs: at 65536 inputs of 5 ms a batch would meet RLIMIT_CPU,
	 * and the input it was on would die of SIGXCPU.  (Without a clock the
	 * daemon's time limit per input is all there is.) */
	stop_at = last + frame_cpu_share_ms(worker_cpu_s);
	for (uint32_t i = 0; i < b->count; i++) {
		uint8_t hdr[FRAME_RESP_HDR];
		uint32_t len;
		int32_t status;
		int rc;

		if (b->bytes - off < FRAME_REQ_HDR)
			_exit(WORKER_EXIT_IO);
		len = frame_get_request((const uint8_t *)data + off);
		off += FRAME_REQ_HDR;
		if (len > b->bytes - off)
			_exit(WORKER_EXIT_IO);
		/* (the first input always runs: a batch makes progress) */
		if (i > 0 && !enough && worker_have_clock)
			enough = worker_coarse_ms() >= stop_at;
		if (produced >= b->out_max || enough) {
			/* enough for the daemon to hold, or for this process: the rest
			 * comes again later */
			frame_put_response(hdr, FRAME_SKIPPED, 0);
			if (sizeof(hdr) > WORKER_BATCH_OUT - worker_olen)
				worker_batch_flush();
			memcpy(worker_obuf + worker_olen, hdr, sizeof(hdr));
			worker_olen += sizeof(hdr);
			off += len;
			continue;
		}
		/* Progress before a new input, so the daemon can time this one alone. */
		if (!each && worker_olen && worker_coarse_ms() - last >= (int64_t)b->flush_ms) {
			worker_batch_flush();
			last = worker_coarse_ms();
		}
		/* A private NUL-terminated copy: a procedure scribbling on its input
		 * must not change the inputs that follow. */
		if (len + 1 > incap) {
			free(in);
			incap = len + 1 > 4096 ? len + 1 : 4096;
			in = worker_malloc(incap);
		}
		memcpy(in, data + off, len);
		in[len] = '\0';
		off += len;
		worker_out.len = 0;
		worker_out.overflow = false;
		worker_out.data[0] = '\0';
		rc = run(in, len, &worker_out);
		if (worker_out.overflow) {
			status = FRAME_TOO_LARGE;
			worker_out.len = 0;
		} else {
			status = rc ? FRAME_REJECTED : FRAME_ANSWER;
		}
		frame_put_response(hdr, status, (uint32_t)worker_out.len);
		produced += sizeof(hdr) + worker_out.len;
		if (sizeof(hdr) + worker_out.len > WORKER_BATCH_OUT - worker_olen)
			worker_batch_flush();
		if (sizeof(hdr) + worker_out.len <= WORKER_BATCH_OUT) {
			memcpy(worker_obuf + worker_olen, hdr, sizeof(hdr));
			memcpy(worker_obuf + worker_olen + sizeof(hdr), worker_out.data,
			       worker_out.len);
			worker_olen += sizeof(hdr) + worker_out.len;
		} else if (frame_write_full(1, hdr, sizeof(hdr), -1) < 0 ||
			   frame_write_full(1, worker_out.data, worker_out.len, -1) < 0) {
			_exit(WORKER_EXIT_IO);
		}
		if (each)
			worker_batch_flush();
	}
	worker_batch_flush();
}

/* Before any procedure code: tell the zygote how many final frames this run
 * owes (FRAME_START, frame.h), so that nothing the procedure writes can say it. */
void worker_send_start(uint32_t count)
{
	uint8_t start[FRAME_RESP_HDR + 4];

	frame_put_response(start, FRAME_START, 4);
	memcpy(start + FRAME_RESP_HDR, &count, 4);
	if (frame_write_full(1, start, sizeof(start), -1) < 0)
		_exit(WORKER_EXIT_IO);
}

/* One input: its answer (or rejection) as a frame written in one write, so the
 * reader wakes up once. */
void worker_run_one(worker_run_fn run, char *in, uint32_t len)
{
	int32_t status;
	int rc;

	worker_out.len = 0;
	worker_out.overflow = false;
	worker_out.data[0] = '\0';
	rc = run(in, len, &worker_out);
	if (worker_out.overflow) {
		status = FRAME_TOO_LARGE;
		worker_out.len = 0;
	} else {
		status = rc ? FRAME_REJECTED : FRAME_ANSWER;
	}
	frame_put_response((uint8_t *)worker_out.data - FRAME_RESP_HDR, status,
			   (uint32_t)worker_out.len);
	if (frame_write_full(1, worker_out.data - FRAME_RESP_HDR, FRAME_RESP_HDR + worker_out.len,
			     -1) < 0)
		_exit(WORKER_EXIT_IO);
}
