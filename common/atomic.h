/*
 * atomic: the one way seglamfs writes a file, Maildir style.
 *
 * Data goes to a temporary file with a name unique across hosts, processes and
 * threads (".seglam-tmp.HOST.PID.START.N", START when the process started, so
 * that a later process with the same pid is not taken for the writer), is fsync'ed, then renamed
 * over the target. Readers, rsync and other daemons (also over NFS) therefore see either the old or
 * the new file, never a mix, and a crash leaves at most a temp file that atomic_is_tmpname()
 * recognises and a later mount removes.
 */
#ifndef SEGLAM_ATOMIC_H
#define SEGLAM_ATOMIC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "buf.h"

#define ATOMIC_TMP_PREFIX ".seglam-tmp."

/* Append a fresh unique temp name to @name. */
void atomic_tmpname(struct buf *name);
bool atomic_is_tmpname(const char *name);
/* True when @name is a temp file of this host whose process is gone (its pid is
 * free, or names a process that started at another time). */
bool atomic_tmp_is_stale(const char *name);

/* Write @data to dirfd/@name atomically, with @mode. Returns 0 or -errno. */
int atomic_write(int dirfd, const char *name, const void *data, size_t len, mode_t mode);

/* One file of atomic_write_many; @ret is its outcome (0 or -errno). */
struct atomic_file {
	const char *name;
	const void *data;
	size_t len;
	int ret;
};
/*
 * atomic_write of @n files in @dirfd, with the same guarantee for each, but their
 * data goes to the device together: every temp file is written and its writeback
 * started before the first fsync, rather than one write and flush after another.
 * Renamed in order, then @dirfd is fsync'd, so that the names last too (it must be
 * open for reading, not O_PATH).  Returns the first error (each file's outcome in
 * its @ret).
 */
int atomic_write_many(int dirfd, struct atomic_file *f, size_t n, mode_t mode);

/* Read a whole file (at most @max bytes, else -EFBIG) into @out. Returns 0 or -errno. */
int file_read_all(int dirfd, const char *name, size_t max, struct buf *out);
/* The same, and *@st: the file's status, of the descriptor the bytes came from. */
int file_read_all_st(int dirfd, const char *name, size_t max, struct buf *out, struct stat *st);

#endif
