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
 * Reply to an input: FRAME_ANSWER, FRAME_REJECTED (bytes = reason),
 * FRAME_TOO_LARGE (no bytes), or FRAME_FAILED (8 bytes: i32 FRAME_FAIL_*, i32
 * wait status of the run's child).
 *
 * Each input runs in a child forked for it by the worker (the "zygote", which
 * never runs procedure code).  The child is forked, and has locked itself down,
 * before the request is sent: it reads the request from fd 0 itself (the zygote
 * never holds an input), closes fd 0 before any procedure code runs, and writes
 * its frames into a pipe of its own.  The zygote reads them, checks each header
 * before its payload, and writes to the daemon: the child's final frame as soon
 * as it is whole (then kills the child), or FRAME_FAILED when the child died or
 * wrote something malformed first.  So every byte on the daemon's pipe was
 * written by the zygote, one final frame per request, and nothing of a run can
 * arrive after its reply (the child can no longer read a later request, and is
 * killed before the next child is forked).  (Before the zygote, the procedure
 * could write to fd 1 itself: an early forged reply, and the real one after the
 * daemon's leftover check, which the next caller then got.)
 *
 * Composition (seglam_call): while it runs an input, the child may send any
 * number of call requests, which the zygote checks (frame_get_call) and relays
 *   worker -> daemon   [i32 FRAME_CALL][u32 len][TYPE NUL INPUT]
 * each answered by one request-shaped frame, which the zygote passes into a
 * second pipe of the child's (its fd 3)
 *   daemon -> worker   [u32 len][len bytes]   the callee's answer, or
 *                      [u32 FRAME_CALL_FAILED]  no bytes: seglam_call returns NULL
 * before the run's final frame (FRAME_ANSWER...) ends the exchange.  A FRAME_CALL
 * outside a run (in reply to the source) or malformed is a protocol violation:
 * the daemon kills the worker.
 *
 * Extending the protocol: keep one final frame per request from the zygote,
 * and never let a child write to the daemon's pipe.
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
	FRAME_FAILED = 3,
	FRAME_CALL = 4, /* a call request during a run (composition) */
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

/* FRAME_FAILED kinds.  The daemon reuses the worker after DIED (the zygote is
 * untouched), and kills it after PROTOCOL. */
enum {
	FRAME_FAIL_DIED = 0,	 /* the child was killed or exited non-zero; see the status */
	FRAME_FAIL_PROTOCOL = 1, /* it exited 0 but wrote other than one valid frame */
};

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
