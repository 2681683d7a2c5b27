/*
 * store_edit: edits of store files made from outside the cache (the mount's procs/
 * view), by the atomic-rename protocol of common/atomic.h.
 *
 * A file is never written in place: an edit writes a "shadow", a temp file beside
 * the target (named by atomic_tmpname(), so a crash leaves only a temp file that a
 * later mount removes), and a commit fsyncs it and renames it over the target.
 * Readers, rsync and other daemons therefore see the old file or the new one,
 * never a mix.  Every path is store-relative and resolved by the store_* beneath
 * functions (store.h): no symlink is followed out of STORE.
 * All return 0 (or an fd) or -errno.
 */
#ifndef SEGLAM_STORE_EDIT_H
#define SEGLAM_STORE_EDIT_H

#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "buf.h"

/*
 * Make a shadow of store file @target: a new temp file in its directory with the
 * mode (never setuid, setgid or sticky) and, when the daemon is root, the owner of
 * @src (an fd of the current file, or -1 for 0644), and @src's data when @copy.
 * Returns the shadow's fd, its store-relative name in @shadow_path (reset first).
 */
int store_edit_shadow(int src, const char *target, bool copy, struct buf *shadow_path);
/*
 * Make the shadow the file: fsync it, rename it over @target; when @gone (the name
 * was unlinked meanwhile) remove the shadow instead, so a save does not resurrect
 * the name.  On failure the shadow stays, and the old file is unchanged.
 */
int store_edit_commit(int shadow, const char *shadow_path, const char *target, bool gone);
/* Drop a shadow that must never be committed: close and remove it. */
void store_edit_discard(int shadow, const char *shadow_path);
/* truncate(2) of the store file at @path, which @src has open (and keeps), for a
 * caller without a descriptor of its own: the kept prefix goes to a shadow, which
 * is committed; *@made (if given) is then the file at @path (st_ino 0: unknown),
 * and *@made_born its birth time (store_lstat_born). */
int store_edit_truncate(int src, const char *path, off_t size, struct stat *made,
			int64_t *made_born);
/*
 * Rename type directory @from to @to (rename(2) @flags).  Without RENAME_EXCHANGE
 * the bucket directories of @to are made first, and an empty @to removed (as
 * rename(2) replaces an empty directory).
 */
int store_edit_rename_type(const char *from, const char *to, unsigned int flags);

#endif
