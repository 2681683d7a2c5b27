/* usage: stats extras and the per-host history file; see usage.h. */
#include "usage.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomic.h"
#include "log.h"
#include "proc.h"
#include "store.h"
#include "synth.h"

#define USAGE_HOT_MAX 10

struct usage_point {
	struct proc_totals t;
	unsigned long calls, tokens_in, tokens_out;
};

static struct usage_config usage_cfg;
static time_t usage_start;
static struct usage_point usage_last;
/* usage_last and the history file's appends: taken only by the periodic tick (which
 * writes to the store under it), never by a request. */
static pthread_mutex_t usage_lock = PTHREAD_MUTEX_INITIALIZER;

void usage_init(const struct usage_config *cfg)
{
	usage_cfg = *cfg;
	usage_start = time(NULL);
}

static void usage_now(struct usage_point *u)
{
	proc_totals(&u->t);
	synth_totals(&u->calls, &u->tokens_in, &u->tokens_out);
}

static unsigned long usage_cost_micro(unsigned long in, unsigned long out)
{
	/* price per million tokens * tokens / 1e6, in millionths: price * tokens. */
	return (unsigned long)(usage_cfg.price_in * (double)in + usage_cfg.price_out * (double)out +
			       0.5);
}

void usage_stats(struct buf *out)
{
	struct usage_point u;

	usage_now(&u);
	/* llm_calls and tokens come from synth_stats, next to these in stats. */
	buf_printf(out, "uptime_s %ld\n", (long)(time(NULL) - usage_start));
	if (usage_cfg.price_in > 0 || usage_cfg.price_out > 0)
		buf_printf(out, "llm_cost_micro %lu\n",
			   usage_cost_micro(u.tokens_in, u.tokens_out));
	proc_hot(out, USAGE_HOT_MAX);
}

void usage_history_tick(void)
{
	struct usage_point u, d;
	struct buf line = BUF_INIT, path = BUF_INIT;
	char host[256] = "localhost", when[32];
	time_t now = time(NULL);
	struct tm tm;
	struct stat st;
	int fd, ret;

	if (store_readonly())
		return;
	pthread_mutex_lock(&usage_lock);
	usage_now(&u);
	d.t.asks = u.t.asks - usage_last.t.asks;
	d.t.answers = u.t.answers - usage_last.t.answers;
	d.t.rejects = u.t.rejects - usage_last.t.rejects;
	d.t.errors = u.t.errors - usage_last.t.errors;
	d.calls = u.calls - usage_last.calls;
	d.tokens_in = u.tokens_in - usage_last.tokens_in;
	d.tokens_out = u.tokens_out - usage_last.tokens_out;
	if (!d.t.asks && !d.calls)
		goto out;
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	buf_printf(&line,
		   "%s asks=%lu answers=%lu rejected=%lu errors=%lu llm_calls=%lu tokens_in=%lu "
		   "tokens_out=%lu cost_micro=%lu\n",
		   when, d.t.asks, d.t.answers, d.t.rejects, d.t.errors, d.calls, d.tokens_in,
		   d.tokens_out, usage_cost_micro(d.tokens_in, d.tokens_out));
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	ret = store_mkdir("usage", 0755);
	if (ret && ret != -EEXIST) {
		log_warn("usage: cannot create STORE/usage: %s", strerror(-ret));
		goto out;
	}
	/* A host name with a '/' would leave the directory: keep it a plain name. */
	for (char *s = host; *s; s++)
		if (*s == '/' || (s == host && *s == '.'))
			*s = '_';
	buf_printf(&path, "usage/%s", host);
	/* Beneath STORE, never through a symlink (a peer may have planted one). */
	fd = store_open_file(path.data, O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (fd < 0) {
		log_warn("usage: cannot open STORE/%s: %s", path.data, strerror(-fd));
		goto out;
	}
	/* A file with another name too (a hard link planted in the store) is
	 * never written through: the record starts over in a file of its own. */
	if (fstat(fd, &st) == 0 && st.st_nlink != 1) {
		int dirfd = store_open_beneath("usage", O_RDONLY | O_DIRECTORY, 0);

		log_warn("usage: STORE/%s has %ju names (a hard link): replaced by a new file, "
			 "the other left as it was",
			 path.data, (uintmax_t)st.st_nlink);
		if (dirfd < 0 ||
		    atomic_write(dirfd, path.data + strlen("usage/"), line.data, line.len, 0644))
			log_warn("usage: cannot replace STORE/%s", path.data);
		else
			usage_last = u;
		if (dirfd >= 0)
			close(dirfd);
		close(fd);
		goto out;
	}
	/* One write of one whole line: a crash leaves whole lines. */
	if (write(fd, line.data, line.len) != (ssize_t)line.len)
		log_warn("usage: cannot append to STORE/%s: %s", path.data, strerror(errno));
	else
		usage_last = u;
	close(fd);
out:
	pthread_mutex_unlock(&usage_lock);
	buf_free(&line);
	buf_free(&path);
}
