/*
 * load: the zygote's compiled types (prefix worker_), one per slot.
 *
 * A zygote holds the compiled images of several types of one owner (the daemon
 * never puts two owners' types in one worker) in its arena (a memfd the daemon
 * made, mapped twice: below).  A load never parses source in the zygote: it goes
 * to the compile child forked ahead, which locked itself down further
 * (worker_compile_lockdown), screens and compiles the source, relocates the image
 * at the address the zygote chose for it inside the arena (a fork has the same
 * address space, so the image works there unchanged), and sends the image's bytes
 * back through a pipe.  The zygote checks the reply's header, writes the bytes and
 * then the slot's entry point into the arena.  So:
 *
 *  - no hostile source, and no tcc exploit it may carry, ever runs in a process
 *    that holds another type's code: the compile child dies with whatever it did;
 *  - the image is bytes the zygote never runs: procedure code only ever runs in a
 *    process that dies after one run, under a run child's filter: a run's child
 *    (serve.c), a fresh copy of the zygote, or for a load that brings the type's
 *    first input, the compile child that made the image (worker_compile_run), so
 *    a procedure that writes over another type's image (RWX, as tcc leaves code)
 *    changes its own copy only;
 *  - an image is copied whole before the zygote answers, so nothing the compile
 *    child does later can change it.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "precheck.h"
#include "worker_int.h"

pid_t _Fork(void);

struct worker_slot {
	char *lo;    /* first byte of the image in the arena (X view), NULL: empty */
	size_t span; /* bytes of arena it takes (whole pages) */
};

/* What a load may bring in the zygote's own buffer: the rest goes to the heap. */
#define WORKER_LOAD_BUF (512u << 10)

/*
 * The zygote's own state, which no child needs: in memory no child gets
 * (worker_private_map), so that no fork write-protects it and the zygote's
 * writes to it on the way to an answer are not page faults (cow.c).
 */
static struct worker_own {
	/* where each slot's image is (for placing the next) */
	struct worker_slot slots[FRAME_SLOTS_MAX];
	struct worker_slot *by_place[FRAME_SLOTS_MAX]; /* worker_arena_gap's sort */
	pid_t compiler; /* the compiler forked ahead (worker_compiler_ahead), 0: none */
	/* a load's source, then its first input (worker_load) */
	char load[WORKER_LOAD_BUF];
	/* the compile request's first write, with the source's head (worker_load):
	 * here and not on the stack, which every child gets a copy of */
	char req[3 * sizeof(uint64_t) + FRAME_REQ_HDR + 4096];
	/* a compile child's message (it may quote the source) or NO_ROOM size, on
	 * its way to the daemon (worker_load_result) */
	char msg[FRAME_MAX_MESSAGE];
} * worker_own;

/*
 * The arena: one memfd mapped twice.  The W view (shared, writable) is the
 * zygote's: it writes the images and the table of entry points through it.  The
 * X view (private, readable, writable and executable, as tcc leaves an image) is
 * where the code runs: a private mapping of a file shows the file's pages until
 * the process writes them, so a child forked before a load sees the new image
 * and entry point there, and what a procedure writes stays in its own copy.
 * No child has the W view (MADV_DONTFORK; where that is refused, children unmap
 * it before anything else: worker_arena_drop), and the memfd is sealed against
 * any new writable shared mapping (F_SEAL_FUTURE_WRITE): no child can get write
 * access to the file again.  The table (the first
 * WORKER_TABLE bytes) holds each slot's entry point, 0 for an empty slot.
 */
static char *worker_arena_w, *worker_arena;
static size_t worker_arena_size, worker_page;
/* The W view is not copied into children (MADV_DONTFORK): they have nothing to unmap. */
static bool worker_arena_w_dontfork;
#define WORKER_TABLE (FRAME_SLOTS_MAX * sizeof(uint64_t))

/* Map the arena from the memfd @fd the daemon made (frame.h) and close it.  It
 * counts against RLIMIT_AS like any mapping (twice: two views): procedures have
 * the rest. */
void worker_arena_map(int fd)
{
	struct stat st;

	worker_page = (size_t)sysconf(_SC_PAGESIZE);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size < FRAME_ARENA_MIN ||
	    (size_t)st.st_size > FRAME_ARENA_MAX || st.st_size % (off_t)worker_page)
		worker_fail(WORKER_EXIT_SETUP, "worker: no arena for compiled types on fd %d", fd);
	worker_arena_size = (size_t)st.st_size;
	worker_own = worker_private_map(sizeof(*worker_own));
	worker_arena_w = mmap(NULL, worker_arena_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (worker_arena_w == MAP_FAILED ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE) < 0)
		worker_fail(WORKER_EXIT_SETUP, "worker: arena for compiled types: %s",
			    strerror(errno));
	/* No child ever gets the W view, not even until its first step: a fork
	 * leaves it out, and a run child has no munmap to make (each costs page
	 * table work and a TLB flush, much of a run's price on some VMs). */
	worker_arena_w_dontfork = madvise(worker_arena_w, worker_arena_size, MADV_DONTFORK) == 0;
	worker_arena =
	    mmap(NULL, worker_arena_size, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE, fd, 0);
	if (worker_arena == MAP_FAILED)
		worker_fail(WORKER_EXIT_SETUP,
			    "worker: arena for compiled types: %s (is vm.memfd_noexec set?)",
			    strerror(errno));
	close(fd);
	/* nothing of an earlier owner: the file is new, and zero */
}

/* Move the load pipe's read end from @fd (frame.h FRAME_LOAD_FD) to
 * WORKER_LOAD_FD, above the fds the zygote's children take. */
void worker_load_pipe(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
		worker_fail(WORKER_EXIT_SETUP, "worker: no load pipe on fd %d", fd);
	if (dup3(fd, WORKER_LOAD_FD, O_CLOEXEC) < 0 || close(fd) < 0)
		worker_fail(WORKER_EXIT_SETUP, "worker: load pipe: %s", strerror(errno));
}

/* In a child, before anything else it does: no write access to the arena. */
void worker_arena_drop(void)
{
	if (worker_arena_w && !worker_arena_w_dontfork &&
	    munmap(worker_arena_w, worker_arena_size) < 0)
		_exit(WORKER_EXIT_SETUP);
	worker_arena_w = NULL;
}

/* In a run's child while it waits: map the table of entry points (a fault per
 * page of it, not taken between the request and the run). */
void worker_arena_prefault(void)
{
	for (size_t off = 0; worker_arena && off < WORKER_TABLE; off += worker_page)
		(void)*(volatile const char *)(worker_arena + off);
}

worker_run_fn worker_slot_run(uint32_t slot)
{
	uint64_t entry;

	if (slot >= FRAME_SLOTS_MAX)
		return NULL;
	entry = ((const volatile uint64_t *)(void *)worker_arena)[slot];
	return entry ? (worker_run_fn)(void *)(uintptr_t)entry : NULL;
}

static void worker_slot_set(uint32_t slot, uint64_t entry)
{
	((volatile uint64_t *)(void *)worker_arena_w)[slot] = entry;
}

/* Empty @s (its bytes stay until the space is used again: nothing runs them). */
static void worker_slot_clear(struct worker_slot *s)
{
	worker_slot_set((uint32_t)(s - worker_own->slots), 0);
	*s = (struct worker_slot){0};
}

static int worker_cmp_slot(const void *a, const void *b)
{
	const struct worker_slot *x = *(struct worker_slot *const *)a;
	const struct worker_slot *y = *(struct worker_slot *const *)b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* The largest free stretch of the arena: its start in *@at, its length returned. */
static size_t worker_arena_gap(char **at)
{
	struct worker_slot **used = worker_own->by_place;
	size_t n = 0, best = 0;
	/* images start on a page (their spans are whole pages): past the table,
	 * which is less than a page where pages are 16 KiB or more */
	char *pos = worker_arena + ((WORKER_TABLE + worker_page - 1) & ~(worker_page - 1));
	char *end = worker_arena + worker_arena_size;

	for (size_t i = 0; i < FRAME_SLOTS_MAX; i++)
		if (worker_own->slots[i].lo)
			used[n++] = &worker_own->slots[i];
	qsort(used, n, sizeof(used[0]), worker_cmp_slot);
	*at = pos;
	for (size_t i = 0; i <= n; i++) {
		char *next = i < n ? used[i]->lo : end;

		if (next > pos && (size_t)(next - pos) > best) {
			best = (size_t)(next - pos);
			*at = pos;
		}
		if (i < n)
			pos = used[i]->lo + used[i]->span;
	}
	return best;
}

/* After a load, off the path of its answer: the first pages where the next image
 * will go, present in the W view now (the zygote's copy of that image into them
 * would otherwise allocate them: a page fault each, costly on some hosts, cow.c). */
static void worker_arena_ahead(void)
{
	char *at;
	size_t room = worker_arena_gap(&at), ahead = 2 * worker_page;
	char *w = worker_arena_w + (at - worker_arena);

	worker_populate(w, w + (room < ahead ? room : ahead));
}

/* The compile child's reply to the zygote, on fd 1 (the result pipe): one write,
 * so the zygote wakes up once. */
static void worker_compile_send(int32_t status, const void *a, size_t alen, const void *b,
				size_t blen)
{
	char *msg = malloc(FRAME_RESP_HDR + alen + blen);

	if (!msg)
		_exit(WORKER_EXIT_OOM);
	frame_put_response((uint8_t *)msg, status, (uint32_t)(alen + blen));
	if (alen)
		memcpy(msg + FRAME_RESP_HDR, a, alen);
	if (blen)
		memcpy(msg + FRAME_RESP_HDR + alen, b, blen);
	if (frame_write_full(1, msg, FRAME_RESP_HDR + alen + blen, -1) < 0)
		_exit(WORKER_EXIT_IO);
	free(msg);
}

static void __attribute__((noreturn))
worker_compile_reply(int32_t status, const void *a, size_t alen, const void *b, size_t blen)
{
	worker_compile_send(status, a, alen, b, blen);
	_exit(0);
}

/*
 * A load's first input (FRAME_REQ_LOAD_RUN), run by the compile child that made
 * the image, once the image is on its way to the zygote: the run child forked
 * ahead goes on waiting, so a type's first answer costs one process, not two.
 * The image is at @run's address in this process already (tcc relocated it
 * there).  Before any procedure code, this process takes the filter of a run's
 * child on top of its own: what the procedure can do here is what it could do
 * in a run child (no executable memory, no files, no fork), and what it could
 * do before (the source, and a tcc exploit it carries, ran here anyway) only
 * concerned this type.  Then it is a run child: FRAME_START, the answer on fd 1,
 * call answers on fd 3 (the zygote passes them from the load pipe), and wait to
 * be killed.
 */
static void __attribute__((noreturn)) worker_compile_run(worker_run_fn run, char *in, uint32_t len)
{
	char c;

	/* A run child's fds and no other: tcc may have left a file it read open */
	for (int fd = 0; fd < 16; fd++)
		if (fd != 1 && fd != 2 && fd != WORKER_CHILD_FD)
			close(fd);
	worker_child_lockdown();
	worker_send_start(1);
	worker_run_one(run, in, len);
	while (read(WORKER_CHILD_FD, &c, 1) < 0 && errno == EINTR)
		;
	_exit(0);
}

bool worker_touch_costly;
/* How long a compile child waits for a load before it rehearses (worker_compile_warm). */
#define WORKER_REHEARSAL_DELAY_MS 3

/*
 * In a process still fresh (a spare just forked by the mother, else a zygote just
 * forked or spawned; once, the first call decides): whether the first touch of a
 * page costs so much here that a fresh fork's compile is mostly that.  On a PVM
 * guest (the guest's page tables shadowed by the host) a forked process pays about
 * 5 µs for the first read of a page and 20 µs for the first write, against well
 * under one on most hosts; a compile touches hundreds.  Timed by reading a byte of
 * each page of the process's own .data and .bss, before anything writes them (on
 * most hosts a read of a page the fork mapped costs a TLB miss, tens of
 * nanoseconds; on a PVM guest about 5 µs): more than 1.5 µs a page is costly.  Then
 * they are copied from the parent at once rather than on first writes (it writes
 * them anyway).  It decides how children get ready (worker_compile_warm, serve.c):
 * rehearse on such a machine, where a rehearsal saves more than it takes, and not
 * elsewhere, where it took the CPU the next cold start needed.
 */
void worker_touch_measure(void)
{
	extern char __data_start[], end[];
	static bool measured;
	struct timespec a, b;
	size_t pages = 0;
	double ns;

	if (measured)
		return;
	measured = true;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (const char *p = __data_start; p < end; p += 4096, pages++)
		(void)*(const volatile char *)p;
	clock_gettime(CLOCK_MONOTONIC, &b);
	ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
	worker_touch_costly = pages && ns / (double)pages > 1500.0;
	worker_populate(__data_start, end);
}

/* Whether the zygote has written this compile child's load, waiting up to @ms
 * for it: then the child stops getting ready. */
static bool worker_load_waiting(int ms)
{
	struct pollfd p = {.fd = WORKER_CHILD_FD, .events = POLLIN};

	while (poll(&p, 1, ms) < 0)
		if (errno != EINTR)
			return true;
	return p.revents != 0;
}

/*
 * What a compile child does while it waits, so that it is not on the cold path.
 * A fresh fork pays for the first touch of every page it uses: a page fault
 * where it writes, and where worker_touch_costly (a PVM guest) about a quarter of
 * that again for every page it only reads.  A compile touches hundreds (tcc's
 * code, tables and globals, the heap of a translation unit).  The child
 *  - copies every page of .data and .bss from the zygote now rather than on the
 *    first write to each (they hold tcc's globals; the worker keeps its large
 *    buffers on the heap so that this stays small);
 *  - keeps freed memory in its heap;
 *  - where first touches are costly, compiles a fixed, trusted procedure
 *    (worker_compile_rehearse), so that the real compile finds tcc's code and
 *    tables mapped and its allocations land on pages already there: measured on
 *    a 2-core PVM guest, the compile child's part of a load went from about 3.3
 *    to about 0.9 ms;
 *  - elsewhere only grows the heap by the two buffers libtcc (0.9.27) allocates
 *    for each translation unit and pre-faults their start, which is all a
 *    procedure's compile uses of them (a rehearsal there took the CPU the next
 *    cold start needed: 300 stored types asked once each, p50 1.25 ms with a
 *    rehearsal of the parse only, 1.00-1.06 ms without);
 *  - sets up the compiler for its load (worker_compiler_new: options, our
 *    symbols).
 * A load that has come meanwhile is not kept waiting for the rehearsal or the
 * buffers (a poll of the pipe first).
 */
static struct TCCState *worker_compile_warm(const char *include_dir, const char *libtcc1)
{
	extern char __data_start[], end[];
	enum { tcc_buffer = 768 << 10, used = 64 << 10 };
	struct TCCState *s;
	char *a, *b;

	mallopt(M_MMAP_THRESHOLD, 4 * tcc_buffer);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	worker_populate(__data_start, end);
	if (worker_touch_costly) {
		/* Not when types are asked one after another: a load that comes
		 * within a few ms would wait for the rehearsal, which takes about as
		 * long as the compile it saves (docs/long-tail.md). */
		if (!worker_load_waiting(WORKER_REHEARSAL_DELAY_MS))
			worker_compile_rehearse(include_dir, libtcc1);
		return worker_compiler_new(include_dir);
	}
	s = worker_compiler_new(include_dir);
	if (worker_load_waiting(0))
		return s;
	a = malloc(tcc_buffer);
	b = malloc(tcc_buffer);
	if (a && b) {
		worker_populate(a, a + used);
		worker_populate(b, b + used);
	}
	free(b);
	free(a);
	return s;
}

/*
 * A compile child: forked by the zygote ahead of the load it will serve, with
 * the reply pipe as fd 1 and the request pipe as fd 3 (WORKER_CHILD_FD, where a
 * run child reads call answers: with a first input, its call answers come there
 * too, and the procedure sees the fds of a run child) and nothing else.  It
 * holds the other types' images too (a fork), which is why it locks itself down
 * before anything else: no fork, no kill, no pipe, no writes but to fd 1.  Then
 * it waits for [u64 at][u64 room][u64 first][u32 len][source], compiles that one
 * source, replies and exits, or (with @first) reads [u32 inlen][input] and runs
 * that input (worker_compile_run).  The input comes only once the image is the
 * zygote's: a tcc exploit in the source could otherwise write the input into the
 * image, where every later run of the type would find it.
 */
static void __attribute__((noreturn))
worker_compile_child(const char *include_dir, const char *libtcc1)
{
	struct buf err = BUF_INIT;
	worker_run_fn run;
	size_t size = 0, room;
	uint64_t meta[2], head[3];
	uint32_t len, inlen;
	char *src, *at, *in;
	struct TCCState *tcc;

	worker_arena_drop();
	for (int fd = WORKER_CHILD_FD + 1; fd < 16; fd++)
		close(fd);
	worker_limit_cpu();
	worker_compile_lockdown();
	tcc = worker_compile_warm(include_dir, libtcc1);
	if (frame_read_full(WORKER_CHILD_FD, head, sizeof(head), -1) != (ssize_t)sizeof(head))
		_exit(0); /* the zygote is gone, or never needed us */
	at = (char *)(uintptr_t)head[0];
	room = (size_t)head[1];
	len = worker_read_len(WORKER_CHILD_FD);
	src = worker_read_body(WORKER_CHILD_FD, len);
	if (!head[2])
		close(WORKER_CHILD_FD);
	if (worker_precheck(src, len, &err) < 0)
		worker_compile_reply(FRAME_COMPILE_ERROR, err.data, err.len, NULL, 0);
	run = worker_compile(tcc, src, include_dir, libtcc1, at, room, &size, &err);
	if (!run && size > room) {
		meta[0] = size;
		worker_compile_reply(FRAME_NO_ROOM, meta, 8, NULL, 0);
	}
	if (!run) {
		if (err.len > FRAME_MAX_MESSAGE)
			buf_truncate(&err, FRAME_MAX_MESSAGE);
		worker_compile_reply(FRAME_COMPILE_ERROR, err.data, err.len, NULL, 0);
	}
	meta[0] = (uint64_t)((char *)run - at);
	meta[1] = size;
	if (!head[2])
		worker_compile_reply(FRAME_COMPILED, meta, sizeof(meta), at, size);
	worker_compile_send(FRAME_COMPILED, meta, sizeof(meta), at, size);
	inlen = worker_read_len(WORKER_CHILD_FD);
	in = worker_read_body(WORKER_CHILD_FD, inlen);
	worker_compile_run(run, in, inlen);
}

/* Put @fd on @target (close-on-exec) and close @fd. */
static void worker_fd_move(int fd, int target)
{
	if (fd != target && (dup3(fd, target, O_CLOEXEC) < 0 || close(fd) < 0))
		_exit(WORKER_EXIT_IO);
}

/*
 * Fork the compiler for the next load now (worker_load: while the current one
 * compiles), so that it gets ready before that load comes.  Its request pipe's
 * write end goes to WORKER_COMPILER_FD (the zygote's filter names it), its reply
 * pipe's read end to WORKER_COMPILER_IN_FD.
 */
void worker_compiler_ahead(const char *include_dir, const char *libtcc1)
{
	int req[2], resp[2], a, b;
	pid_t pid;

	if (worker_own->compiler)
		return;
	if (pipe2(req, O_CLOEXEC) < 0 || pipe2(resp, O_CLOEXEC) < 0)
		_exit(WORKER_EXIT_IO);
	pid = _Fork();
	if (pid < 0)
		_exit(WORKER_EXIT_IO);
	if (pid == 0) {
		/* (the reply first: the request's pipe may be on fd 3 already) */
		if (dup2(resp[1], 1) < 0 || dup2(req[0], WORKER_CHILD_FD) < 0 || close(0) < 0)
			_exit(WORKER_EXIT_IO);
		worker_compile_child(include_dir, libtcc1);
	}
	close(req[0]);
	close(resp[1]);
	/* above every fd in use, then down to their places (RLIMIT_NOFILE is 16) */
	a = fcntl(req[1], F_DUPFD_CLOEXEC, WORKER_COMPILER_FD + 2);
	b = fcntl(resp[0], F_DUPFD_CLOEXEC, WORKER_COMPILER_FD + 2);
	if (a < 0 || b < 0)
		_exit(WORKER_EXIT_IO);
	close(req[1]);
	close(resp[0]);
	worker_fd_move(a, WORKER_COMPILER_FD);
	worker_fd_move(b, WORKER_COMPILER_IN_FD);
	worker_own->compiler = pid;
}

/* At the end: the compiler waiting for a load that will not come. */
void worker_compiler_end(void)
{
	if (!worker_own->compiler)
		return;
	kill(worker_own->compiler, SIGKILL);
	worker_reap(worker_own->compiler);
	worker_own->compiler = 0;
}

/* Reply to the daemon's load request. */
static void worker_load_reply(int32_t status, const void *p, size_t len)
{
	uint8_t hdr[FRAME_RESP_HDR];

	frame_put_response(hdr, status, (uint32_t)len);
	if (frame_write_full(1, hdr, sizeof(hdr), -1) < 0 ||
	    (len && frame_write_full(1, p, len, -1) < 0))
		_exit(WORKER_EXIT_IO);
}

/*
 * Read the compile child's reply from @fd and act on it: the image into @at, or
 * the message (or the size that did not fit) to the daemon.  Returns the reply to
 * send: 0 for an image in place (FRAME_COMPILED), or a status with *@msglen bytes
 * in worker_own->msg; -1 when the child broke the protocol (it is then killed and
 * its wait status is the answer).  *@msglen is what worker_msg_wipe must wipe,
 * set before the read: a message cut short (its child died) left bytes there too.
 */
static int worker_load_result(int fd, struct worker_slot *s, char *at, size_t room, size_t *msglen)
{
	uint8_t hdr[FRAME_RESP_HDR];
	uint64_t meta[2];
	int32_t status;
	uint32_t len;

	if (frame_read_full(fd, hdr, sizeof(hdr), -1) != (ssize_t)sizeof(hdr) ||
	    frame_get_response(hdr, FRAME_NO_ROOM,
			       FRAME_MAX_MESSAGE + sizeof(meta) + (uint32_t)room, &status,
			       &len) < 0)
		return -1;
	if (status == FRAME_COMPILE_ERROR || status == FRAME_NO_ROOM) {
		if (len > FRAME_MAX_MESSAGE || (status == FRAME_NO_ROOM && len != 8))
			return -1;
		*msglen = len;
		if (frame_read_full(fd, worker_own->msg, len, -1) != (ssize_t)len)
			return -1;
		return status;
	}
	if (status != FRAME_COMPILED || len < sizeof(meta) ||
	    frame_read_full(fd, meta, sizeof(meta), -1) != (ssize_t)sizeof(meta) || meta[1] == 0 ||
	    meta[1] > room || meta[0] >= meta[1] || len - sizeof(meta) != meta[1])
		return -1;
	/* (the W view's address of @at: the same offset in the other mapping) */
	if (frame_read_full(fd, worker_arena_w + (at - worker_arena), meta[1], -1) !=
	    (ssize_t)meta[1]) {
		/* An image cut short (its child died or lied) is no type's: none of
		 * its bytes stay where the next image goes and every child maps. */
		explicit_bzero(worker_arena_w + (at - worker_arena), meta[1]);
		return -1;
	}
	s->lo = at;
	s->span = (meta[1] + worker_page - 1) & ~(worker_page - 1);
	/* the image first, then its entry: a child reads the entry, then the code */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	worker_slot_set((uint32_t)(s - worker_own->slots), (uint64_t)(uintptr_t)(at + meta[0]));
	return FRAME_COMPILED;
}

/* The compile child @child died, or lied, before its image was whole: nothing of
 * it is kept, and the daemon is told why.  Returns 0 (reaped). */
static pid_t worker_load_failed(struct worker_slot *s, pid_t child)
{
	int st;

	worker_slot_clear(s);
	kill(child, SIGKILL);
	st = worker_reap(child);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		static const char bad[] = "the compiler broke the protocol";

		worker_load_reply(FRAME_COMPILE_ERROR, bad, sizeof(bad) - 1);
	} else {
		int32_t v = st;

		worker_load_reply(FRAME_COMPILE_DIED, &v, sizeof(v));
	}
	return 0;
}

/* A compiler's message may quote its source.  It is read into memory no child
 * gets (worker_own), so no child forked while it is there has a copy, and not
 * into the heap, which every child gets a copy of; wiped once it is sent all the
 * same. */
static void worker_msg_wipe(size_t msglen)
{
	explicit_bzero(worker_own->msg, msglen);
}

/* Read @len bytes of a load from the load pipe: into the zygote's own buffer
 * after the *@buffered bytes already there, or into the heap when they do not
 * fit (*@heap says which, for worker_load_drop: an address cannot, since an
 * empty read that just fits points one past the buffer). */
static char *worker_load_read(uint32_t len, size_t *buffered, bool *heap)
{
	char *p;

	if (len >= FRAME_REQ_BATCH)
		_exit(WORKER_EXIT_IO); /* a request kind where a length belongs */
	*heap = len > WORKER_LOAD_BUF - *buffered;
	if (!*heap) {
		p = worker_own->load + *buffered;
		*buffered += len;
	} else {
		p = worker_malloc((size_t)len + 1);
	}
	if (frame_read_full(WORKER_LOAD_FD, p, len, -1) != (ssize_t)len)
		_exit(WORKER_EXIT_IO);
	return p;
}

/* Wipe @len bytes from worker_load_read, and free them if they are on the heap. */
static void worker_load_drop(char *p, uint32_t len, bool heap)
{
	explicit_bzero(p, len);
	if (heap)
		free(p);
}

/*
 * The rest of a load with its first input @in (worker_load, @in_heap as
 * worker_load_read says): the compile child's reply; once the image is in its
 * slot, the input to the child (not before: worker_compile_child), wiped here at
 * once; FRAME_COMPILED to the daemon, then the child's run of the input, relayed
 * as a run child's is (serve.c), with the daemon's answers to its calls passed
 * from the load pipe to its fd 3.  The compiler for the next load is forked
 * after that by serve.c, off the path of this answer, and not from here: the
 * frames of this function and its caller hold the input's length (a process
 * forked now would copy it with the stack), which serve.c wipes first.
 */
static pid_t worker_load_first(char *relay, pid_t child, struct worker_slot *s, char *at,
			       size_t room, char *in, uint32_t inlen, bool in_heap)
{
	static const struct worker_run_pipes first_run = {.frames = WORKER_COMPILER_IN_FD,
							  .answers_in = WORKER_LOAD_FD,
							  .answers_out = WORKER_COMPILER_FD,
							  .loads = false};
	size_t msglen = 0;
	int r = worker_load_result(WORKER_COMPILER_IN_FD, s, at, room, &msglen);

	if (r == FRAME_COMPILED) {
		uint8_t hdr[FRAME_REQ_HDR];

		/* (a child that died meanwhile: the write fails, SIGPIPE is
		 * ignored, and the relay below finds it dead) */
		frame_put_request(hdr, inlen);
		if (frame_write_full(WORKER_COMPILER_FD, hdr, sizeof(hdr), -1) == 0)
			frame_write_full(WORKER_COMPILER_FD, in, inlen, -1);
	}
	/* The zygote holds no input longer than it takes to pass it on. */
	worker_load_drop(in, inlen, in_heap);
	if (r < 0) {
		child = worker_load_failed(s, child);
	} else {
		worker_load_reply(r, worker_own->msg, r == FRAME_COMPILED ? 0 : msglen);
		if (r == FRAME_COMPILED) {
			if (worker_relay(&first_run, child, relay) == WORKER_RUN_DONE)
				kill(child, SIGKILL);
			else
				child = 0; /* reaped */
		}
	}
	worker_msg_wipe(msglen);
	close(WORKER_COMPILER_FD);
	close(WORKER_COMPILER_IN_FD);
	worker_arena_ahead();
	return child;
}

/*
 * Read a load request from the load pipe, compile the source into its slot in a
 * child and answer the daemon; with a first input (FRAME_REQ_LOAD_RUN), relay
 * that child's run of it too (@relay: serve.c's buffer), and say so in *@ran.
 * Returns the compile child's pid, still to be reaped (its exit is not waited
 * for on the way to the answer), or 0.  End of file before a request: the
 * daemon is done with this worker (the first request).  The caller wipes the
 * stack below it before it forks again: it held the load's lengths, and a
 * first input's.
 */
pid_t worker_load(char *relay, const char *include_dir, const char *libtcc1, bool *ran)
{
	uint32_t head[2], len, slot, kind, inlen = 0;
	uint64_t where[3];
	struct worker_slot *s;
	size_t room, buffered = 0, msglen = 0;
	char *src, *at, *in = NULL;
	bool src_heap, in_heap = false;
	int r, in_fd;
	pid_t child;

	kind = worker_read_len(WORKER_LOAD_FD);
	if ((kind != FRAME_REQ_LOAD && kind != FRAME_REQ_LOAD_RUN) ||
	    frame_read_full(WORKER_LOAD_FD, head, sizeof(head), -1) != (ssize_t)sizeof(head))
		_exit(WORKER_EXIT_IO);
	slot = head[0];
	len = head[1];
	if (slot >= FRAME_SLOTS_MAX || len >= FRAME_REQ_BATCH)
		_exit(WORKER_EXIT_IO); /* the daemon is out of step */
	src = worker_load_read(len, &buffered, &src_heap);
	/* The compiler, when none was forked ahead (the first load; where first
	 * touches are costly, a load right after a load): forked before the first
	 * input is read, since what does not fit worker_own->load after the source
	 * goes to the heap, which a fork copies, and the input must not reach the
	 * compile child before its image is the zygote's (worker_compile_child).
	 * After the source, which is that child's own: so it finds its request
	 * waiting when it is ready (else, where first touches are costly, it
	 * rehearses first, worker_compile_warm). */
	worker_compiler_ahead(include_dir, libtcc1);
	if (kind == FRAME_REQ_LOAD_RUN) {
		inlen = worker_read_len(WORKER_LOAD_FD);
		in = worker_load_read(inlen, &buffered, &in_heap);
	}
	s = &worker_own->slots[slot];
	worker_slot_clear(s);
	room = worker_arena_gap(&at);
	child = worker_own->compiler;
	worker_own->compiler = 0;
	/* The compiler reads while we write (a source may be larger than the pipe);
	 * if it died, the write fails (SIGPIPE is ignored) and its reply says why. */
	where[0] = (uint64_t)(uintptr_t)at;
	where[1] = room;
	where[2] = in != NULL;
	{
		/* one write for the compiler to wake up to (the rest of a source
		 * longer than that follows) */
		char *req = worker_own->req;
		size_t first = len < 4096 ? len : 4096;

		_Static_assert(sizeof(worker_own->req) == sizeof(where) + FRAME_REQ_HDR + 4096,
			       "the request's first write fits worker_own->req");

		memcpy(req, where, sizeof(where));
		frame_put_request((uint8_t *)req + sizeof(where), len);
		memcpy(req + sizeof(where) + FRAME_REQ_HDR, src, first);
		if (frame_write_full(WORKER_COMPILER_FD, req, sizeof(where) + FRAME_REQ_HDR + first,
				     -1) == 0 &&
		    len != first)
			frame_write_full(WORKER_COMPILER_FD, src + first, len - first, -1);
		explicit_bzero(req + sizeof(where) + FRAME_REQ_HDR, first);
	}
	worker_load_drop(src, len, src_heap);
	*ran = in != NULL;
	if (in)
		return worker_load_first(relay, child, s, at, room, in, inlen, in_heap);
	close(WORKER_COMPILER_FD);
	/*
	 * The compiler for the next load is forked now, while this one compiles and
	 * the zygote would only wait: after the run that follows, the zygote has a
	 * run child to fork and one to end, and a next load asked right away (types
	 * read one after another) found it still busy with those.  Its pipes take
	 * the usual fds, so this reply's pipe moves out of their way first (the new
	 * child closes it: worker_compile_child).  Not where first touches are
	 * costly: there the new child's rehearsal took the CPU from this compile (the
	 * scheduler put both on the zygote's CPU), so it is forked after the run
	 * (serve.c), when the zygote has nothing else to do.
	 */
	in_fd = fcntl(WORKER_COMPILER_IN_FD, F_DUPFD_CLOEXEC, WORKER_COMPILER_FD + 2);
	if (in_fd < 0 || close(WORKER_COMPILER_IN_FD) < 0)
		_exit(WORKER_EXIT_IO);
	if (!worker_touch_costly)
		worker_compiler_ahead(include_dir, libtcc1);
	r = worker_load_result(in_fd, s, at, room, &msglen);
	close(in_fd);
	if (r < 0) {
		child = worker_load_failed(s, child);
	} else {
		worker_load_reply(r, worker_own->msg, r == FRAME_COMPILED ? 0 : msglen);
		/* It has said all it may, and an honest one is exiting.  One that
		 * stays (a tcc exploit) would otherwise run on until the next load,
		 * up to its CPU backstop; reaped as before (serve.c). */
		kill(child, SIGKILL);
	}
	worker_msg_wipe(msglen);
	worker_arena_ahead();
	return child;
}
