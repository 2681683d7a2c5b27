/*
 * store_int: what store.c and store_at.c share, and nothing else includes.
 */
#ifndef SEGLAM_STORE_INT_H
#define SEGLAM_STORE_INT_H

/* Log that @path was refused with @err (-ELOOP, -EXDEV, -ENOTDIR; others are not
 * refusals and say nothing), a few times a second at most. */
void store_refused(const char *path, int err);

/*
 * mkdir -p for @path relative to the directory @base (store_mkdirs_fd: to the
 * store's root), one component at a time, never through a symlink; returns an fd
 * of the last directory (O_PATH) or -errno.
 */
int store_mkdirs_at(int base, const char *path);
int store_mkdirs_fd(const char *path);

#endif
