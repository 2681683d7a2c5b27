/*
 * perm: who may change what through the mount (see SECURITY.md, "Several users").
 *
 * With -o allow_other the kernel checks permissions itself (main.c adds
 * default_permissions); these are the same checks done by the daemon, which
 * acts as root, so that it never changes an owner, a mode or a time for a caller
 * the kernel would refuse, whatever the mount options.
 */
#ifndef SEGLAM_PERM_H
#define SEGLAM_PERM_H

#include <stdbool.h>
#include <sys/stat.h>

#include <fuse_lowlevel.h>

/* The caller is root or owns a file owned by @owner. */
bool perm_owner(fuse_req_t req, uid_t owner);

/*
 * May the caller apply the owner, group, mode and time parts of SETATTR (@to_set,
 * @attr) to a file with attributes @cur?  Returns 0 or -EPERM: only root changes
 * an owner; only the owner (or root) changes the mode or the group (to one of
 * their groups) or sets explicit times; "now" needs ownership or write access.
 */
int perm_setattr(fuse_req_t req, const struct stat *cur, const struct stat *attr, int to_set);

/*
 * May the caller access a file with attributes @st for @mask (R_OK, W_OK, X_OK),
 * by its mode bits as the kernel's default_permissions would judge (root: read
 * and write anything, execute what has an x bit)?  0 or -EACCES.
 */
int perm_access(fuse_req_t req, const struct stat *st, int mask);

/* The caller's uid and gid (0, 0 when unknown). */
void perm_caller(fuse_req_t req, uid_t *uid, gid_t *gid);

#endif
