/*
 * handle: the registry of open handles (saved and freed at shutdown if the
 * kernel never released them) and the interruption of requests that may wait.
 */
#include "fs_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "atomic.h"
#include "log.h"
#include "map.h"
#include "name.h"
#include "node.h"
#include "perm.h"
#include "proc.h"
#include "route.h"
#include "store.h"
#include "store_edit.h"
#include "synth.h"
#include "usage.h"

/* Every live handle, so that those the kernel never released (a lazy unmount
 * racing RELEASE) are still saved and freed at shutdown. */
static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;
static struct handle handles = {.next = &handles, .prev = &handles};

struct handle *handle_new(enum handle_kind kind, uint64_t ino)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		abort();
	h->kind = kind;
	h->ino = ino;
	pthread_mutex_lock(&handles_lock);
	h->next = handles.next;
	h->prev = &handles;
	handles.next->prev = h;
	handles.next = h;
	pthread_mutex_unlock(&handles_lock);
	return h;
}

static void handle_forget(struct handle *h)
{
	pthread_mutex_lock(&handles_lock);
	h->prev->next = h->next;
	h->next->prev = h->prev;
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

/* Release a handle: save what a procs file still holds, free everything. */
void handle_destroy(struct handle *h)
{
	switch (h->kind) {
	case H_ANSWER:
		if (h->paged) {
			struct node *n;

			pthread_mutex_lock(&node_lock);
			n = node_by_ino(h->ino);
			if (n && n->page_opens)
				n->page_opens--;
			pthread_mutex_unlock(&node_lock);
		}
		answer_put(h->ans);
		break;
	case H_QUERY:
		answer_put(h->q.ans);
		atomic_fetch_sub(&fs_query_bytes, h->q.input.len);
		buf_free(&h->q.input);
		buf_free(&h->q.reply);
		pthread_mutex_destroy(&h->q.lock);
		break;
	case H_STATS:
		buf_free(&h->text);
		break;
	case H_MAP:
		map_close(h->map);
		break;
	case H_PFILE:
		pfile_save(h);
		pthread_mutex_lock(&node_lock);
		{
			struct node *n = node_by_ino(h->ino);

			if (n && n->writer == &h->pf)
				n->writer = NULL;
		}
		pthread_mutex_unlock(&node_lock);
		if (h->pf.shadow >= 0) {
			close(h->pf.shadow);
			store_unlink(h->pf.shadow_path.data, 0);
		}
		if (h->pf.fd >= 0)
			close(h->pf.fd);
		buf_free(&h->pf.shadow_path);
		pthread_mutex_destroy(&h->pf.lock);
		break;
	case H_DIR:
		for (size_t i = 0; i < h->dir.n; i++)
			free(h->dir.ents[i].name);
		free(h->dir.ents);
		break;
	}
	handle_forget(h);
	free(h);
}

void fs_shutdown_handles(void)
{
	struct handle *h;

	for (;;) {
		pthread_mutex_lock(&handles_lock);
		h = handles.next == &handles ? NULL : handles.next;
		pthread_mutex_unlock(&handles_lock);
		if (!h)
			break;
		handle_destroy(h);
	}
}
