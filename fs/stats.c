/*
 * stats: the text of the stats file.
 */
#include "fs_int.h"

#include <stdlib.h>
#include <string.h>

#include "ghost.h"
#include "proc.h"
#include "route.h"
#include "synth.h"
#include "usage.h"
#include "xalloc.h"

void stats_text(struct buf *out)
{
	proc_stats(out);
	route_stats(out);
	synth_stats(out);
	usage_stats(out);
	pthread_mutex_lock(&node_lock);
	buf_printf(out, "inodes %zu\n", node_count());
	buf_printf(out, "inodes_forgotten %zu\n", ghost_count());
	pthread_mutex_unlock(&node_lock);
}

void stats_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	char *data = xmalloc(h->text.len + 1);

	memcpy(data, buf_str(&h->text), h->text.len + 1);
	reply_slice(req, data, h->text.len, size, off);
	free(data);
}

void stats_destroy(struct handle *h)
{
	buf_free(&h->text);
}

/* OPEN of stats: the text as of now, read with direct I/O (its size changes). */
int stats_open(fuse_req_t req, const struct node_open *o, struct fuse_file_info *fi,
	       struct handle **hp)
{
	struct handle *h = *hp = handle_new(H_STATS, o->ino);

	(void)req;
	stats_text(&h->text);
	fi->direct_io = 1;
	fi->noflush = 1;
	return 0;
}
