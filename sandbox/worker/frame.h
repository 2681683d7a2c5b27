/*
 * frame: the pipe protocol between the daemon (sandbox/exchange.c) and seglam-worker.
 *
 * Kept in one small module with no other dependencies so both sides share one
 * definition and a fuzz target can link it alone.  All integers are native-endian
 * (both ends always run on the same host).
 *
 *   daemon -> worker   [u32 FRAME_REQ_LOAD][u32 slot][u32 len][len bytes of source]
 *                      [u32 len][u32 slot][len bytes of input]
 *   worker -> daemon   [i32 status][u32 len][len bytes]
 *
 * A worker holds compiled types in numbered slots (at most FRAME_SLOTS_MAX; a
 * -o worker_reuse worker holds one, slot 0).  A load compiles a source into a
 * slot (replacing what was there); an input names the slot whose procedure runs
 * it.  The first request to a new worker is a load.  Loads come on a pipe of
 * their own (FRAME_LOAD_FD), which only the zygote reads, and inputs on fd 0,
 * which only a run's child reads (a -o worker_reuse worker takes both on fd 0);
 * the daemon sends one request at a time, whichever pipe.  Reply to a load:
 * FRAME_COMPILED (no bytes), FRAME_COMPILE_ERROR with the message,
 * FRAME_COMPILE_DIED (4 bytes: i32 wait status of the process that compiled),
 * or FRAME_NO_ROOM (8 bytes: u64 size of the image that does not fit the
 * worker's image space; the daemon tries a worker with fewer types).
 * A load may carry the type's first input (FRAME_REQ_LOAD_RUN, below): the
 * process that compiled the type runs it, and one process fewer is made and
 * ended for the first answer of a type.
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
 * daemon's leftover check, which the next caller then got.)  A load's first
 * input (FRAME_REQ_LOAD_RUN) is the exception: the zygote passes it with the
 * source to the compile child (and wipes its copy), which runs it after its
 * reply to the load, locked down as a run child, and is relayed and killed as
 * one; it owes exactly one final frame.
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
 * Batch request (seglam map): a request whose length word is FRAME_REQ_BATCH is
 * followed by the slot, then struct frame_batch and then @bytes of inputs, each [u32 len][len
 * bytes].  One run child serves the whole batch (a batch is one reader's): it
 * answers each input with an ordinary final frame, in order (calls in between
 * as above).  It buffers its replies and writes them out when the buffer fills,
 * at the end of the batch, and before starting an input once @flush_ms have
 * passed since the last write (FRAME_BATCH_EACH: after every answer), so the
 * daemon sees progress at least every flush_ms and times each input, not the
 * batch.  Once the answers of a batch reach @out_max bytes, or the child has run
 * for its share of the CPU backstop (frame_cpu_share_ms, where the vDSO clock
 * is there to tell), the remaining inputs are not run: each gets FRAME_SKIPPED
 * (no bytes) and the daemon sends them again later, which bounds what a batch
 * can make the daemon hold, and keeps its child clear of RLIMIT_CPU.  The zygote passes
 * complete, checked frames on as they come and counts the final ones: after
 * @count the run is over (the child is killed, anything more it wrote is
 * dropped); a child that dies first gets one FRAME_FAILED in place of the input
 * it was on, and the batch ends there.
 *
 * How the zygote knows how many final frames a run owes: before any procedure
 * code runs, the child writes FRAME_START ([i32 FRAME_START][u32 4][u32 count],
 * count 1 for an input, the batch's count for a batch) into its pipe.  Procedure
 * code can only write after it, so the zygote takes the first frame of a run as
 * the truth and any other FRAME_START as a protocol violation.  Not from a
 * compile child running a load's first input (source it compiled may have
 * taken it over before): the zygote knows that count is 1 and holds it to it.  FRAME_START never
 * reaches the daemon.
 *
 * Extending the protocol: keep the final frames per request as the daemon
 * expects them, written by the zygote, and never let a child write to the
 * daemon's pipe.
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
	FRAME_CALL = 4,	   /* a call request during a run (composition) */
	FRAME_SKIPPED = 5, /* batch only: not run, send again */
	FRAME_START = 6,   /* run child -> zygote only: how many final frames follow */
	FRAME_COMPILED = 0,
	FRAME_COMPILE_ERROR = 1,
	FRAME_COMPILE_DIED = 2,
	FRAME_NO_ROOM = 3,
};

#define FRAME_REQ_HDR 4
/* Length words from here up are request kinds, not lengths (inputs are shorter). */
#define FRAME_REQ_BATCH 0xfffffff0u
#define FRAME_REQ_LOAD 0xfffffff1u
/* A load with the type's first input: [FRAME_REQ_LOAD_RUN][slot][len][source]
 * [u32 inlen][input], on the load pipe.  The reply to the load comes first; after
 * FRAME_COMPILED the input's final frame follows (calls in between as in a run,
 * their answers sent on the load pipe), run by the process that compiled it. */
#define FRAME_REQ_LOAD_RUN 0xfffffff2u
#define FRAME_REQ_MAX_LEN (FRAME_REQ_BATCH - 1u)
/* A run or batch request: the length word (or FRAME_REQ_BATCH), then the slot. */
#define FRAME_RUN_HDR 8
/* A load request: FRAME_REQ_LOAD, the slot, the source's length. */
#define FRAME_LOAD_HDR 12
/* Slots a worker may hold (the daemon's -o worker_types is at most this). */
#define FRAME_SLOTS_MAX 1024u
#define FRAME_BATCH_EACH 1u	     /* flag: write each answer out at once */
#define FRAME_BATCH_MAX (4u << 20)   /* largest batch payload, bytes */
#define FRAME_BATCH_MAX_COUNT 65536u /* most inputs in one batch */

/*
 * The wall time, in ms, that one process serves inputs for before it stops: a
 * batch's process skips the rest (FRAME_SKIPPED: sent again, to a new child), and
 * the daemon retires a -o worker_reuse worker once busy that long.  A quarter of
 * the CPU backstop (RLIMIT_CPU, argv "cpu=S") that such a process sets once for
 * its whole life: wall time bounds its CPU time (one thread), so the input in
 * progress (a time limit, at most half the backstop) ends before the backstop.
 */
#define FRAME_CPU_BACKSTOP_S 300 /* the least backstop, and a worker's without "cpu=" */
static inline int64_t frame_cpu_share_ms(unsigned backstop_s)
{
	return (int64_t)backstop_s * 250;
}

struct frame_batch {
	uint32_t flags;
	uint32_t flush_ms;
	uint32_t count;
	uint32_t bytes;
	uint32_t out_max;
};
#define FRAME_RESP_HDR 8
/* Reply length meaning "the call failed" (seglam_call returns NULL). */
#define FRAME_CALL_FAILED UINT32_MAX
/* A callee's type name is at most this long (docs/DESIGN.md: 1 to 128 bytes). */
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
 * payload allowed.  A FRAME_TOO_LARGE reply to a run (@max_status from
 * FRAME_CALL up) must carry no bytes.
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

/*
 * A new worker's fds (worker/mother.c): the read end of its request pipe, the
 * write end of its response pipe, the memfd of its arena (load.c), which the
 * daemon makes (a worker may not size a file: RLIMIT_FSIZE is 0) and seals
 * against shrinking and growing, and the read end of its load pipe.  The
 * mother's request is one byte with them as SCM_RIGHTS, on the SOCK_SEQPACKET
 * socket @sock (the daemon's to the mother, the mother's to its spare).  Returns
 * 1 (the byte sent) or -errno.
 */
#define FRAME_WORKER_FDS 4
ssize_t frame_send_fds(int sock, const int fds[FRAME_WORKER_FDS]);

/* A new worker (spawned, or forked by the mother) finds its arena's memfd and
 * its load pipe here; a -o worker_reuse worker has neither. */
#define FRAME_ARENA_FD 3
#define FRAME_LOAD_FD 4
/* The arena's size for a worker of RLIMIT_AS @mem: a sixteenth of it (it is
 * mapped twice), at most FRAME_ARENA_MAX, at least the table of entry points
 * (FRAME_SLOTS_MAX u64s) and one page. */
#define FRAME_ARENA_MAX (16u << 20)
#define FRAME_ARENA_MIN (FRAME_SLOTS_MAX * 8u + 4096u)
static inline size_t frame_arena_size(size_t mem)
{
	size_t n = (mem / 16 < FRAME_ARENA_MAX ? mem / 16 : FRAME_ARENA_MAX) & ~(size_t)4095;

	return n < FRAME_ARENA_MIN ? FRAME_ARENA_MIN : n;
}

#endif
