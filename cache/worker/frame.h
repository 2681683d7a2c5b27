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
 * Composition (seglam_call, an addition that leaves the frames above unchanged):
 * while it runs an input, the worker may send any number of call requests
 *   worker -> daemon   [i32 FRAME_CALL][u32 len][TYPE NUL INPUT]
 * each answered by one request-shaped frame
 *   daemon -> worker   [u32 len][len bytes]   the callee's answer, or
 *                      [u32 FRAME_CALL_FAILED]  no bytes: seglam_call returns NULL
 * before the run's own reply (FRAME_ANSWER...) ends the exchange.  The worker
 * only ever reads fd 0 and writes fd 1, so the seccomp filter is unchanged.  A
 * FRAME_CALL outside a run (in reply to the source) is a protocol violation.
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
	FRAME_CALL = 3, /* a call request during a run (composition) */
	FRAME_COMPILED = 0,
	FRAME_COMPILE_ERROR = 1,
};

#define FRAME_REQ_HDR 4
#define FRAME_RESP_HDR 8
/* Reply length meaning "the call failed" (seglam_call returns NULL). */
#define FRAME_CALL_FAILED UINT32_MAX
/* A callee's type name is at most this long (DESIGN.md: 1 to 128 bytes). */
#define FRAME_CALL_TYPE_MAX 128
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

/*
 * Split the payload of an untrusted FRAME_CALL: TYPE (1..FRAME_CALL_TYPE_MAX bytes,
 * no NUL) NUL INPUT.  Returns 0 with @type pointing into @p (NUL-terminated there)
 * and @in/@inlen the rest, or -EPROTO.
 */
int frame_get_call(const char *p, size_t len, const char **type, const char **in, size_t *inlen);

#endif
