/*
 * inval: the thread that drops kernel caches of changed types.
 *
 * fuse_lowlevel_notify_inval_* must not be sent from inside a request handler
 * (the kernel may wait on the very request being handled: deadlock), so handlers
 * and the cache layer only queue a type name here, and this thread sends the
 * invalidations for ask/TYPE and every answer the kernel may hold under it.
 */
#include "fs.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "hmap.h"
#include "log.h"
#include "node.h"
#include "xalloc.h"

struct inval_item {
	char *type;
	STAILQ_ENTRY(inval_item) link;
};

struct inval_target {
	uint64_t parent, ino;
	char *name;
};

static bool inval_has_type(const void *item, const void *key)
{
	return !strcmp(((const struct inval_item *)item)->type, key);
}

/* lock: the queue, its index, running and stop (memory only: the kernel is told
 * without it, and node_lock is never taken under it). */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	STAILQ_HEAD(, inval_item) queue; /* in order of arrival */
	struct hmap pending;		 /* type -> its item in queue: one per type */
	struct fuse_session *se;
	pthread_t thread;
	bool running, stop;
} inval = {.lock = PTHREAD_MUTEX_INITIALIZER,
	   .cond = PTHREAD_COND_INITIALIZER,
	   .queue = STAILQ_HEAD_INITIALIZER(inval.queue),
	   .pending = HMAP_INIT(inval_has_type)};

void fs_inval_type(const char *type)
{
	uint64_t h = hmap_hash_str(type);
	struct inval_item *it;

	pthread_mutex_lock(&inval.lock);
	if (!inval.running)
		goto out;
	/* Coalesce: one pending entry per type is enough (an rsync of thousands of
	 * types queues each once, found in O(1)). */
	if (hmap_find(&inval.pending, h, type))
		goto out;
	it = xcalloc(1, sizeof(*it));
	it->type = xstrdup(type);
	hmap_insert(&inval.pending, h, it);
	STAILQ_INSERT_TAIL(&inval.queue, it, link);
	pthread_cond_signal(&inval.cond);
out:
	pthread_mutex_unlock(&inval.lock);
}

struct collect {
	struct inval_target *t;
	size_t n, cap;
};

static void collect_add(struct collect *c, uint64_t parent, uint64_t ino, const char *name)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->t = xreallocarray(c->t, c->cap, sizeof(*c->t));
	}
	c->t[c->n].parent = parent;
	c->t[c->n].ino = ino;
	c->t[c->n].name = xstrdup(name);
	c->n++;
}

static void collect_child(struct node *child, void *arg)
{
	collect_add(arg, child->parent->ino, child->ino, child->name);
}

static void inval_one(const char *type)
{
	struct collect c = {0};
	struct node *ask, *qry, *t;
	size_t i;

	pthread_mutex_lock(&node_lock);
	ask = node_by_ino(INO_ASK);
	t = ask ? node_child(ask, type) : NULL;
	if (t) {
		node_foreach_child(t, collect_child, &c);
		collect_add(&c, INO_ASK, t->ino, type);
	}
	qry = node_by_ino(INO_QUERY);
	t = qry ? node_child(qry, type) : NULL;
	if (t)
		collect_add(&c, INO_QUERY, t->ino, type);
	/* A question may be answered by any type, or route elsewhere after a change. */
	t = node_by_ino(INO_Q);
	if (t)
		node_foreach_child(t, collect_child, &c);
	pthread_mutex_unlock(&node_lock);

	for (i = 0; i < c.n; i++) {
		/*
		 * Attributes only: a name under ask/ keeps its inode when its procedure
		 * changes, only its size does.  Cached pages need no invalidation here:
		 * an open checks the version they were read from (answer_open_mode in
		 * ask.c) and drops or replaces them.  Not inval_entry: it takes the parent's lock,
		 * which a LOOKUP waiting on this daemon holds (after a kill -9 that wait never
		 * ends), and it makes the kernel forget inodes NFS clients hold handles for. ENOENT
		 * just means the kernel had already forgotten the inode.
		 */
		fuse_lowlevel_notify_inval_inode(inval.se, c.t[i].ino, -1, 0);
		free(c.t[i].name);
	}
	free(c.t);
}

static void *inval_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&inval.lock);
	for (;;) {
		struct inval_item *it;

		while (STAILQ_EMPTY(&inval.queue) && !inval.stop)
			pthread_cond_wait(&inval.cond, &inval.lock);
		if (inval.stop)
			break;
		it = STAILQ_FIRST(&inval.queue);
		STAILQ_REMOVE_HEAD(&inval.queue, link);
		/* a change from now on queues the type again */
		hmap_remove(&inval.pending, hmap_hash_str(it->type), it->type);
		pthread_mutex_unlock(&inval.lock);
		inval_one(it->type);
		free(it->type);
		free(it);
		pthread_mutex_lock(&inval.lock);
	}
	pthread_mutex_unlock(&inval.lock);
	return NULL;
}

int fs_inval_start(struct fuse_session *se)
{
	int ret;

	inval.se = se;
	inval.stop = false;
	ret = pthread_create(&inval.thread, NULL, inval_main, NULL);
	if (ret)
		return -ret;
	pthread_mutex_lock(&inval.lock);
	inval.running = true;
	pthread_mutex_unlock(&inval.lock);
	return 0;
}

void fs_inval_stop(void)
{
	struct inval_item *it;

	pthread_mutex_lock(&inval.lock);
	if (!inval.running) {
		pthread_mutex_unlock(&inval.lock);
		return;
	}
	inval.stop = true;
	inval.running = false;
	pthread_cond_signal(&inval.cond);
	pthread_mutex_unlock(&inval.lock);
	pthread_join(inval.thread, NULL);
	while ((it = STAILQ_FIRST(&inval.queue))) {
		STAILQ_REMOVE_HEAD(&inval.queue, link);
		free(it->type);
		free(it);
	}
	hmap_destroy(&inval.pending, NULL);
}
