/*
 * worker_int: what the files of seglam-worker share (prefix worker_).  Only the
 * worker's own files include it; the daemon knows the worker by frame.h alone.
 *
 *   main.c     the start-up sequence, step by step (the security argument)
 *   confine.c  fds, privileges, rlimits, Landlock, warm-up, the seccomp filters
 *   precheck.c the lexical screen of the source (precheck.h)
 *   compile.c  libtcc: compile, relocate, check every symbol the image uses
 *   load.c     the zygote's compiled types (slots in an arena) and the compile
 *              child that makes each one
 *   abi.c      what procedures call: seglam_write/printf, allocation, seglam_call
 *   run.c      one request in the process that runs it: an input or a batch
 *   serve.c    the request loops: the zygote (a child per run, forked one run
 *              ahead, and the relay of its frames) and -o worker_reuse
 *   mother.c   the mother: warm-up once, then a worker per type (CLONE_PARENT)
 *   cow.c      the zygote's memory and copy-on-write: what children never get
 *
 * The worker is one thread: nothing here is locked.
 */
#ifndef SEGLAM_WORKER_INT_H
#define SEGLAM_WORKER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "buf.h"
#include "frame.h"

/* The zygote's ends of a run child's two pipes, at fixed numbers so that the
 * zygote's filter can name them: the read end of the child's response pipe (the
 * child's fd 1), and the write end of the pipe the child reads as its fd 3
 * (WORKER_CHILD_FD there too), which the child reads for call answers and, after
 * its final frame, blocks on until the zygote kills it. */
#define WORKER_CHILD_FD 3
#define WORKER_CALL_FD 4
/* The same two for the child forked ahead, until it becomes the current one. */
#define WORKER_NEXT_CHILD_FD 5
#define WORKER_NEXT_CALL_FD 6
/* The zygote's ends of the pipes to the compiler forked ahead (load.c): the
 * request (the source) and the reply (the image). */
#define WORKER_COMPILER_FD 7
#define WORKER_COMPILER_IN_FD 8
/* The read end of the daemon's load pipe (frame.h FRAME_LOAD_FD at start), moved
 * up out of the way of the numbers above; the zygote's alone: every child closes
 * it first. */
#define WORKER_LOAD_FD 15

#define WORKER_BATCH_OUT (256u << 10) /* reply buffer; written out when full */
/* The largest frame a child may send: a call request (frame.h). */
#define WORKER_RELAY_MAX(cap) (FRAME_RESP_HDR + FRAME_CALL_TYPE_MAX + 1 + (cap))
/* The zygote's buffer for a child's frames: the largest frame (a call request)
 * and a batch's buffer of answers. */
#define WORKER_RELAY_ROOM(cap) (WORKER_RELAY_MAX(cap) + WORKER_BATCH_OUT)

/* The answer being built by one run.  Preallocated at cap + 1 bytes (pages are
 * only touched as they are written) so seglam_write never allocates. */
typedef struct seglam_out seglam_out;
struct seglam_out {
	char *data;
	size_t len;
	size_t cap;
	bool overflow;
};

/* A compiled procedure's entry point, seglam_run (include/seglam.h). */
typedef int (*worker_run_fn)(const char *in, size_t len, seglam_out *out);

/* main.c */
void __attribute__((noreturn, format(printf, 2, 3))) worker_fail(int code, const char *fmt, ...);

/* cow.c */
/* Make the whole pages from @lo to @hi present and writable in this process now. */
void worker_populate(char *lo, char *hi);
/* @size bytes of zeroed memory that no child of this process gets (or it dies). */
void *worker_private_map(size_t size);

/* confine.c: the steps of main() that shut this process in, in the order main() takes them */
void worker_close_fds(int from);
void worker_drop_privileges(void);
void worker_set_limits(rlim_t mem);
void worker_limit_cpu(void);
extern unsigned worker_cpu_s;
void worker_landlock(const char *include_dir, const char *libtcc1, bool allow_missing);
void worker_warm_up(void);
int worker_seccomp_reuse(void);
int worker_seccomp(void);
void worker_seccomp_prepare(void);
void worker_child_lockdown(void);
void worker_compile_lockdown(void);

/* compile.c: @s from worker_compiler_new (or NULL: made here), always consumed;
 * relocated at @at (at most @room bytes: else NULL, *@image says the size) or,
 * @at NULL, anywhere */
struct TCCState;
struct TCCState *worker_compiler_new(const char *include_dir);
void worker_compile_rehearse(const char *include_dir, const char *libtcc1);
worker_run_fn worker_compile(struct TCCState *s, const char *src, const char *include_dir,
			     const char *libtcc1, char *at, size_t room, size_t *image,
			     struct buf *err);

/* load.c */
void worker_arena_map(int fd);
void worker_arena_drop(void);
void worker_arena_prefault(void);
worker_run_fn worker_slot_run(uint32_t slot);
pid_t worker_load(char *relay, const char *include_dir, const char *libtcc1, bool *ran);
void worker_compiler_ahead(const char *include_dir, const char *libtcc1);
extern bool worker_touch_costly; /* load.c: first touches of a page cost much here */
void worker_touch_measure(void);
void worker_load_pipe(int fd);
void worker_compiler_end(void);

/* abi.c */
struct worker_sym {
	const char *name;
	const void *addr;
};

extern const struct worker_sym worker_syms[]; /* all a procedure may link against */
extern const size_t worker_nsyms;
extern struct seglam_out worker_out; /* the answer buffer, allocated by main() */
extern int worker_call_fd; /* where call answers come from: WORKER_CHILD_FD, or fd 0 (reuse) */
void *worker_malloc(size_t n);
void worker_held_free(void);

/* run.c */
extern bool worker_have_clock;
int64_t worker_coarse_ms(void);
uint32_t worker_read_len(int fd);
char *worker_read_body(int fd, uint32_t len);
char *worker_batch_read(struct frame_batch *b);
void worker_batch_flush(void);
void worker_batch_run(worker_run_fn run, const struct frame_batch *b, char *data);
void worker_send_start(uint32_t count);
void worker_run_one(worker_run_fn run, char *in, uint32_t len);

/* serve.c */
/* The pipes of one run, for worker_relay: where the running process's frames
 * come from, where the daemon's answers to its calls come from and go to, and
 * whether a load may come instead of the run's request (a run child forked
 * ahead; not a load's first input, which the compile child was handed). */
struct worker_run_pipes {
	int frames, answers_in, answers_out;
	bool loads;
};
enum { WORKER_RUN_DONE, WORKER_RUN_REAPED, WORKER_RUN_EOF, WORKER_RUN_LOAD };
int worker_relay(const struct worker_run_pipes *rp, pid_t child, char *relay);
/* After a relay, before the next fork: its dead frames wiped (serve.c). */
void worker_stack_wipe(void);
int worker_reap(pid_t child);
void __attribute__((noreturn)) worker_serve_reuse(worker_run_fn run);
void __attribute__((noreturn))
worker_serve(char *relay, const char *include_dir, const char *libtcc1);

/* mother.c */
extern bool worker_warmed;
void worker_mother(char *argv0, const char *include_dir);

#endif
