/*
 * frame: the pipe protocol between the daemon (cache/sandbox.c) and seglam-worker.
 *
 * Kept in one small module with no other dependencies so both sides share one
 * definition and a fuzz target can link it alone.  All integers are native-endian
 * (both ends always run on the same host).
 *
 *   daemon -> worker   [u32 len][len bytes]           first the source, then inputs
 *   worker -> daemon   [i32 status][u32 len][len bytes]
 *
 * Reply to the source: FRAME_COMPILED, or FRAME_COMPILE_ERROR with the message.
 * Reply to an input: FRAME_ANSWER, FRAME_REJECTED (bytes = reason), or
 * FRAME_TOO_LARGE (no bytes).
 *
 * Batch request (seglam map): a request whose length word is FRAME_REQ_BATCH is
 * followed by struct frame_batch and then @bytes of inputs, each [u32 len][len
 * bytes].  The worker answers each input with an ordinary response frame, in
 * order.  It buffers its replies and writes them out when the buffer fills, at
 * the end of the batch, and before starting an input once @flush_ms have passed
 * since the last write (FRAME_BATCH_EACH: after every answer), so the daemon
 * sees progress at least every flush_ms and times each input, not the batch.
 * Once the answers of a batch reach @out_max bytes, the remaining inputs are not
 * run: each gets FRAME_SKIPPED (no bytes) and the daemon sends them again later,
 * which bounds what a batch can make the daemon hold.
 */
#ifndef SEGLAM_FRAME_H
#define SEGLAM_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum {
	FRAME_ANSWER = 0,
	FRAME_REJECTED = 1,
	FRAME_TOO_LARGE = 2,
	FRAME_SKIPPED = 3, /* batch only: not run, send again */
	FRAME_COMPILED = 0,
	FRAME_COMPILE_ERROR = 1,
};

#define FRAME_REQ_HDR 4
/* Length words from here up are request kinds, not lengths (inputs are shorter). */
#define FRAME_REQ_BATCH 0xfffffff0u
#define FRAME_REQ_MAX_LEN (FRAME_REQ_BATCH - 1u)
#define FRAME_BATCH_EACH 1u	     /* flag: write each answer out at once */
#define FRAME_BATCH_MAX (4u << 20)   /* largest batch payload, bytes */
#define FRAME_BATCH_MAX_COUNT 65536u /* most inputs in one batch */

struct frame_batch {
	uint32_t flags;
	uint32_t flush_ms;
	uint32_t count;
	uint32_t bytes;
	uint32_t out_max;
};
#define FRAME_RESP_HDR 8
/* Compiler messages longer than this are truncated by the worker. */
#define FRAME_MAX_MESSAGE (64 * 1024)

/* Exit codes of seglam-worker that the daemon turns into reasons. */
enum {
	WORKER_EXIT_USAGE = 64, /* bad argv: a bug in the daemon */
	WORKER_EXIT_SETUP = 65, /* could not drop privileges / lock down */
	WORKER_EXIT_OOM = 66,	/* an allocation failed under RLIMIT_AS */
	WORKER_EXIT_IO = 67,	/* the request pipe broke or was malformed */
};

/* Monotonic clock in milliseconds, for deadlines. */
int64_t frame_now_ms(void);

/*
 * Read exactly @n bytes.  @deadline_ms < 0 means block in plain read() (the
 * worker, whose seccomp filter does not allow poll); otherwise poll() until the
 * monotonic deadline, which needs a non-blocking fd.
 * Returns the number of bytes read (less than @n only at EOF), -ETIMEDOUT, or -errno.
 */
ssize_t frame_read_full(int fd, void *buf, size_t n, int64_t deadline_ms);

/* Write all @n bytes, same deadline convention.  Returns 0, -ETIMEDOUT or -errno
 * (-EPIPE when the reader is gone; the caller must have SIGPIPE ignored). */
int frame_write_full(int fd, const void *buf, size_t n, int64_t deadline_ms);

void frame_put_request(uint8_t hdr[FRAME_REQ_HDR], uint32_t len);
uint32_t frame_get_request(const uint8_t hdr[FRAME_REQ_HDR]);
void frame_put_response(uint8_t hdr[FRAME_RESP_HDR], int32_t status, uint32_t len);

/*
 * Decode and validate a response header from an untrusted worker.
 * @max_status is the highest status valid in this context, @cap the largest
 * payload allowed.  A FRAME_TOO_LARGE reply must carry no bytes.
 * Returns 0, or -EPROTO with nothing assigned.
 */
int frame_get_response(const uint8_t hdr[FRAME_RESP_HDR], int32_t max_status, uint32_t cap,
		       int32_t *status, uint32_t *len);

#endif
