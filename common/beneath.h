/*
 * beneath: resolving a relative path under a directory fd without ever leaving it.
 *
 * Every path the daemon resolves in STORE comes from names other people chose
 * (local users through the mount, NFS peers writing STORE directly), so no
 * component may be a symlink and no ".." may climb out: openat2() with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS (Linux >= 5.6), else a walk that opens
 * one component at a time with O_NOFOLLOW.  A symlink anywhere on the way,
 * including the last component, is ELOOP; ".." is EXDEV.
 *
 * The *at() calls that act on a name (stat, unlink, rename, mkdir, chmod...)
 * take the parent directory from beneath_parent() and the last component with
 * AT_SYMLINK_NOFOLLOW (or an operation that never follows it).
 */
#ifndef SEGLAM_BENEATH_H
#define SEGLAM_BENEATH_H

#include <stdbool.h>
#include <sys/types.h>

/* Open @path under @dirfd with open(2) @flags (O_CLOEXEC | O_NOFOLLOW added).
 * Returns an fd or -errno. */
int beneath_open(int dirfd, const char *path, int flags, mode_t mode);

/* Open the directory holding the last component of @path (an O_PATH fd, usable
 * with every *at() call) and point *@base at that component.  Returns an fd or
 * -errno (-EINVAL for an empty, "." or ".." last component). */
int beneath_parent(int dirfd, const char *path, const char **base);

/* Tests only: pretend the kernel has no openat2, to exercise the walk. */
void beneath_force_walk(bool on);

#endif
