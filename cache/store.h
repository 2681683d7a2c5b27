/*
 * store: the on-disk store, a plain directory that rsync, NFS and people can use.
 *
 *   STORE/seglamfs-store            format marker: "seglamfs-store 1"
 *   STORE/procs/HH/HH/TYPE/         one directory per type; HHHH are the first four hex
 *                                   digits of XXH3_64(TYPE), so no directory grows huge
 *   STORE/procs/HH/HH/TYPE/source.c, spec, tests/, meta.json, log, history/ ...
 *
 * Nothing is read at open beyond the marker: types are found lazily by name,
 * which is what lets a store of a million procedures mount in constant time.
 * All writes go through atomic_write() (temp + fsync + rename).
 */
#ifndef SEGLAM_STORE_H
#define SEGLAM_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"

#define STORE_FORMAT_VERSION 1
#define STORE_TYPE_MAX 128

/* Opens (and, if @create and empty, initialises) the store. */
int store_open(const char *path, bool readonly, struct buf *err);
void store_close(void);
bool store_readonly(void);
/* The store's root directory fd (O_PATH-free, usable with *at() calls). */
int store_root_fd(void);

/*
 * Every path the daemon resolves in STORE goes through these: relative to the
 * store root, never through a symlink or ".." (common/beneath.h), the last
 * component acted on without following it.  A refusal (-ELOOP, -EXDEV) is logged.
 * All return 0 (or an fd, or a length) or -errno.
 */
int store_open_beneath(const char *rel, int flags, mode_t mode);
/* A regular file only: a FIFO or device is refused (-EACCES) without waiting on it. */
int store_open_file(const char *rel, int flags, mode_t mode);
/* An O_PATH fd of the directory holding @rel's last component, named by *@base. */
int store_parent_fd(const char *rel, const char **base);
int store_lstat(const char *rel, struct stat *st);
/* The same, and the file's birth time (ns since the epoch), 0 where the filesystem
 * reports none (an NFS mount may not): with st_ino and st_dev, which file it is,
 * even after a deleted file's number went to a new one (ext4 gives it to the next). */
int store_lstat_born(const char *rel, struct stat *st, int64_t *born_ns);
/* fstat of @fd, and its birth time as store_lstat_born gives it. */
int store_fstat_born(int fd, struct stat *st, int64_t *born_ns);
int store_unlink(const char *rel, int flags);
int store_rename(const char *from, const char *to, unsigned int flags);
int store_link(const char *from, const char *to);
/* mkdir, chmod: without setuid, setgid or sticky bits, whatever @mode says. */
int store_mkdir(const char *rel, mode_t mode);
int store_chmod(const char *rel, mode_t mode);
int store_chown(const char *rel, uid_t uid, gid_t gid);
int store_utimens(const char *rel, const struct timespec ts[2]);
int store_symlink(const char *target, const char *rel);
ssize_t store_readlink(const char *rel, char *buf, size_t size);

/* 1..128 bytes of A-Z a-z 0-9 . _ + -, not starting with '.'. */
bool store_type_valid(const char *name, size_t len);

/* Append the store-relative directory of @type ("procs/ab/cd/TYPE") to @out. */
void store_type_dir(const char *type, struct buf *out);

/* Read procs/../TYPE/@rel into @out (at most @max bytes). Returns 0 or -errno. */
int store_read(const char *type, const char *rel, size_t max, struct buf *out);
/*
 * Read TYPE's source.c (at most @max bytes) into @out, with the file's stat in
 * @st, and whose code it is in @owner: the file's owner, except a file of the
 * daemon's own user in a type directory someone else owns, which is that
 * user's (they could have renamed any file of the daemon's there, such as a
 * history/ copy of their own code: SECURITY.md point 3).  Both from the
 * descriptors the bytes came through.  Returns 0 or -errno.
 */
int store_read_source(const char *type, size_t max, struct buf *out, struct stat *st, uid_t *owner);
/* Atomically write procs/../TYPE/@rel, creating the type directory if needed. */
int store_write(const char *type, const char *rel, const void *data, size_t len);
/* The same into a type directory that exists: -ENOENT, and nothing made, if the
 * type is gone (deleted while the daemon was busy with it). */
int store_update(const char *type, const char *rel, const void *data, size_t len);
/*
 * Writes held back to be made later, by store_later_flush: each as store_write
 * makes it (temp, fsync, rename; those of one type with their data sent to the
 * device together), in order, but only into a type directory that still exists
 * (a type deleted meanwhile is not made again).  Names in the type's directory
 * only (no slash).  Adding the same type and name again replaces the data.
 * Start from {0}; owned by one thread.
 */
struct store_later {
	struct store_later_write *w;
	size_t n;
};
void store_later_add(struct store_later *l, const char *type, const char *rel, const void *data,
		     size_t len);
/* Make the writes and forget them; returns the first error (0 or -errno). */
int store_later_flush(struct store_later *l);
/* Create the type directory (and its bucket directories). */
int store_mkdir_type(const char *type);
bool store_type_exists(const char *type);

/* Call @fn for every type in the store (walks the buckets; not for hot paths). */
int store_foreach_type(int (*fn)(const char *type, void *arg), void *arg);

/* Remove this host's stale temp files in one type's directory tree. */
void store_clean_type(const char *type);

/* Append a whole line to procs/../TYPE/log in place (O_APPEND, locked), keeping the
 * log bounded by rotating it (by rename, under the same name) past 64 KiB.  The type
 * directory must exist (-ENOENT): a log line never makes a type. */
int store_log(const char *type, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
