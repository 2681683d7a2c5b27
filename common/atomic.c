/* atomic: temp-file + fsync + rename writes, and whole-file reads; see atomic.h. */
#include "atomic.h"

#include "beneath.h"
#include "xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

static char atomic_host[64];
static pthread_once_t atomic_once = PTHREAD_ONCE_INIT;

static void atomic_init_host(void)
{
	char *dot;

	if (gethostname(atomic_host, sizeof(atomic_host) - 1) != 0 || !atomic_host[0])
		strcpy(atomic_host, "localhost");
	/* Dots separate the fields of a temp name; keep the host short and dot-free. */
	dot = strchr(atomic_host, '.');
	if (dot)
		*dot = '\0';
}

/*
 * When process @pid started: clock ticks since boot, field 22 of /proc/PID/stat.
 * 0 when there is no such process, -1 when it cannot be told (no /proc).  A pid
 * alone does not name a process for long: pid_max may be 32768, and a busy host
 * reuses a dead writer's pid within minutes; the pair does.
 */
static long long atomic_proc_start(long pid)
{
	char path[64], stat[1024]; /* the kernel's line: a comm of 16 bytes, numbers */
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	n = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	if (n <= 0)
		return n == 0 || errno == ESRCH ? 0 : -1;
	stat[n] = '\0';
	/* the comm may hold spaces and parentheses: count fields after its last ')',
	 * where field 3 begins after the first space */
	p = strrchr(stat, ')');
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	return p ? strtoll(p + 1, NULL, 10) : -1;
}

/* This process's start (atomic_proc_start), read again after a fork. */
static long long atomic_self_start(void)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static pid_t pid;
	static long long start;
	long long ret;

	pthread_mutex_lock(&lock);
	if (pid != getpid()) {
		pid = getpid();
		start = atomic_proc_start(pid);
	}
	ret = start;
	pthread_mutex_unlock(&lock);
	return ret;
}

void atomic_tmpname(struct buf *name)
{
	static atomic_ulong counter;
	long long start = atomic_self_start();

	pthread_once(&atomic_once, atomic_init_host);
	if (start > 0)
		buf_printf(name, ATOMIC_TMP_PREFIX "%s.%ld.%lld.%lu", atomic_host, (long)getpid(),
			   start, atomic_fetch_add(&counter, 1));
	else
		buf_printf(name, ATOMIC_TMP_PREFIX "%s.%ld.%lu", atomic_host, (long)getpid(),
			   atomic_fetch_add(&counter, 1));
}

bool atomic_is_tmpname(const char *name)
{
	return strncmp(name, ATOMIC_TMP_PREFIX, strlen(ATOMIC_TMP_PREFIX)) == 0;
}

bool atomic_tmp_is_stale(const char *name)
{
	const char *host, *pid_s;
	size_t hostlen;
	long long start = -1, now;
	long pid;
	char *end, *end2;

	if (!atomic_is_tmpname(name))
		return false;
	pthread_once(&atomic_once, atomic_init_host);
	host = name + strlen(ATOMIC_TMP_PREFIX);
	pid_s = strchr(host, '.');
	if (!pid_s)
		return true; /* not one of ours in any format we write: litter */
	hostlen = (size_t)(pid_s - host);
	/* Another host's temp file may belong to a live writer there: leave it. */
	if (hostlen != strlen(atomic_host) || strncmp(host, atomic_host, hostlen) != 0)
		return false;
	pid = strtol(pid_s + 1, &end, 10);
	if (end == pid_s + 1 || pid <= 0)
		return true;
	/* HOST.PID.START.N names the process by its start too; HOST.PID.N (older
	 * daemons, or no /proc) by its pid only */
	if (*end == '.') {
		long long v = strtoll(end + 1, &end2, 10);

		if (end2 != end + 1 && *end2 == '.' && v > 0)
			start = v;
	}
	if (start > 0) {
		now = pid == (long)getpid() ? atomic_self_start() : atomic_proc_start(pid);
		if (now >= 0)
			return now != start; /* gone, or its pid is another process's now */
	}
	if (pid == (long)getpid())
		return false;
	return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static int write_full(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int atomic_write(int dirfd, const char *name, const void *data, size_t len, mode_t mode)
{
	struct buf tmp = BUF_INIT;
	int fd = -1, ret;

	/* One name in @dirfd: a path would resolve through whatever its directories are. */
	if (strchr(name, '/'))
		return -EINVAL;
	atomic_tmpname(&tmp);
	fd = openat(dirfd, tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	ret = write_full(fd, data, len);
	/* fsync before rename: otherwise a crash can leave the new name on empty data. */
	if (!ret && fsync(fd) != 0)
		ret = -errno;
	if (close(fd) != 0 && !ret)
		ret = -errno;
	fd = -1;
	if (!ret && renameat(dirfd, tmp.data, dirfd, name) != 0)
		ret = -errno;
	if (ret)
		unlinkat(dirfd, tmp.data, 0);
out:
	buf_free(&tmp);
	return ret;
}

int atomic_write_many(int dirfd, struct atomic_file *f, size_t n, mode_t mode)
{
	struct buf *tmp = xcalloc(n ? n : 1, sizeof(*tmp));
	int *fd = xcalloc(n ? n : 1, sizeof(*fd));
	int ret = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		tmp[i] = (struct buf)BUF_INIT;
		fd[i] = -1;
		f[i].ret = strchr(f[i].name, '/') ? -EINVAL : 0;
		if (f[i].ret)
			continue;
		atomic_tmpname(&tmp[i]);
		fd[i] = openat(dirfd, tmp[i].data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
		if (fd[i] < 0) {
			f[i].ret = -errno;
			continue;
		}
		f[i].ret = write_full(fd[i], f[i].data, f[i].len);
		/* Start the writeback now (where it is not supported, fsync does it all). */
		if (!f[i].ret)
			sync_file_range(fd[i], 0, 0, SYNC_FILE_RANGE_WRITE);
	}
	for (i = 0; i < n; i++) {
		if (fd[i] < 0)
			goto next;
		/* fsync before rename, as atomic_write: never a new name on empty data. */
		if (!f[i].ret && fsync(fd[i]) != 0)
			f[i].ret = -errno;
		if (close(fd[i]) != 0 && !f[i].ret)
			f[i].ret = -errno;
		if (!f[i].ret && renameat(dirfd, tmp[i].data, dirfd, f[i].name) != 0)
			f[i].ret = -errno;
		if (f[i].ret)
			unlinkat(dirfd, tmp[i].data, 0);
	next:
		if (f[i].ret && !ret)
			ret = f[i].ret;
		buf_free(&tmp[i]);
	}
	/* The names too, once for all of them (held-back records, written after the
	 * answers: off any reader's path). */
	if (n && fsync(dirfd) != 0 && !ret)
		ret = -errno;
	free(tmp);
	free(fd);
	return ret;
}

int file_read_all(int dirfd, const char *name, size_t max, struct buf *out)
{
	struct stat st;

	return file_read_all_st(dirfd, name, max, out, &st);
}

int file_read_all_st(int dirfd, const char *name, size_t max, struct buf *out, struct stat *stp)
{
	char chunk[65536];
	int fd, ret = 0;
	size_t total = 0;
	struct stat st;

	/* O_NONBLOCK: opening a FIFO (say tests/x.in in a store restored with
	 * rsync -a) must not wait for a writer; then only regular files are read.
	 * No symlink on the way is followed, and no ".." leaves @dirfd. */
	fd = beneath_open(dirfd, name, O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		ret = -errno;
	else if (!S_ISREG(st.st_mode))
		ret = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	if (ret) {
		close(fd);
		return ret;
	}
	*stp = st;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		total += (size_t)n;
		if (total > max) {
			ret = -EFBIG;
			break;
		}
		buf_add(out, chunk, (size_t)n);
	}
	close(fd);
	return ret;
}
