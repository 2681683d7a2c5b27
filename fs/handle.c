/*
 * handle: the registry of open handles (saved and freed at shutdown if the
 * kernel never released them) and the interruption of requests that may wait.
 */
#include "fs_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "map.h"
#include "proc.h"
#include "xalloc.h"

/* Every live handle, so that those the kernel never released (a lazy unmount
 * racing RELEASE) are still saved and freed at shutdown. */
static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(, handle) handles = LIST_HEAD_INITIALIZER(handles);

struct handle *handle_new(enum handle_kind kind, uint64_t ino)
{
	struct handle *h = xcalloc(1, sizeof(*h));

	h->kind = kind;
	h->ino = ino;
	pthread_mutex_lock(&handles_lock);
	LIST_INSERT_HEAD(&handles, h, link);
	pthread_mutex_unlock(&handles_lock);
	return h;
}

static void handle_forget(struct handle *h)
{
	pthread_mutex_lock(&handles_lock);
	LIST_REMOVE(h, link);
	pthread_mutex_unlock(&handles_lock);
}

/* Free a handle that never got anything to release (an open that failed). */
void handle_free(struct handle *h)
{
	handle_forget(h);
	free(h);
}

/*
 * A request that may wait for the LLM (a miss) can be interrupted: the reader's
 * Ctrl-C or kill makes the kernel send INTERRUPT, libfuse calls fs_intr_func on
 * another thread, and proc's wait returns -EINTR.  fs_intr_end must come before
 * the reply (after it the request is freed); it waits out a running callback.
 */
static void fs_intr_func(fuse_req_t req, void *data)
{
	(void)req;
	atomic_store((atomic_bool *)data, true);
}

void fs_intr_begin(fuse_req_t req, atomic_bool *flag)
{
	atomic_init(flag, false);
	fuse_req_interrupt_func(req, fs_intr_func, flag);
	proc_set_interrupt(flag);
}

void fs_intr_end(fuse_req_t req)
{
	proc_set_interrupt(NULL);
	fuse_req_interrupt_func(req, NULL, NULL);
}

void reply_slice(fuse_req_t req, const char *data, size_t len, size_t size, off_t off)
{
	if ((size_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, data + off,
			       len - (size_t)off < size ? len - (size_t)off : size);
}

static void map_handle_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	(void)off; /* a stream: map.c keeps its own position */
	map_read(req, h->map, size);
}

static void map_handle_write(fuse_req_t req, struct handle *h, const char *data, size_t size,
			     off_t off)
{
	(void)off;
	map_write(req, h->map, data, size);
}

static void map_handle_destroy(struct handle *h)
{
	map_close(h->map);
}

const struct handle_ops handle_ops[] = {
    [H_ANSWER] = {.read = ask_read, .destroy = ask_destroy},
    [H_QUERY] = {.read = query_read, .write = query_write, .destroy = query_destroy},
    [H_STATS] = {.read = stats_read, .destroy = stats_destroy},
    [H_PFILE] = {.read = pfile_read,
		 .write = pfile_write,
		 .flush = pfile_save,
		 .fsync = pfile_fsync,
		 .destroy = pfile_destroy},
    [H_DIR] = {.destroy = dir_destroy},
    [H_MAP] = {.read = map_handle_read, .write = map_handle_write, .destroy = map_handle_destroy},
};

/* Release a handle: save what a procs file still holds, free everything. */
void handle_destroy(struct handle *h)
{
	if (handle_ops[h->kind].destroy)
		handle_ops[h->kind].destroy(h);
	handle_forget(h);
	free(h);
}

void fs_shutdown_handles(void)
{
	struct handle *h;

	for (;;) {
		pthread_mutex_lock(&handles_lock);
		h = LIST_FIRST(&handles);
		pthread_mutex_unlock(&handles_lock);
		if (!h)
			break;
		handle_destroy(h);
	}
}
