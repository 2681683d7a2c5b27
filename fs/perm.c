/* perm: the kernel's ownership rules for SETATTR, checked by the daemon; see perm.h. */
#include "perm.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

void perm_caller(fuse_req_t req, uid_t *uid, gid_t *gid)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	*uid = ctx ? ctx->uid : 0;
	*gid = ctx ? ctx->gid : 0;
}

bool perm_owner(fuse_req_t req, uid_t owner)
{
	uid_t uid;
	gid_t gid;

	perm_caller(req, &uid, &gid);
	return uid == 0 || uid == owner;
}

/* All of the caller's groups (fuse_req_getgroups says how many there are when
 * the list given is too short: a user may be in hundreds). */
static bool perm_in_group(fuse_req_t req, gid_t want)
{
	gid_t small[64], *groups = small;
	bool found = false;
	uid_t uid;
	gid_t gid;
	int n;

	perm_caller(req, &uid, &gid);
	if (gid == want)
		return true;
	n = fuse_req_getgroups(req, 64, groups);
	if (n > 64) {
		groups = malloc((size_t)n * sizeof(*groups));
		if (!groups)
			return false;
		n = fuse_req_getgroups(req, n, groups);
	}
	for (int i = 0; i < n && !found; i++)
		found = groups[i] == want;
	if (groups != small)
		free(groups);
	return found;
}

static bool perm_may_write(fuse_req_t req, const struct stat *cur)
{
	uid_t uid;
	gid_t gid;

	perm_caller(req, &uid, &gid);
	if (uid == 0)
		return true;
	if (uid == cur->st_uid)
		return cur->st_mode & S_IWUSR;
	if (perm_in_group(req, cur->st_gid))
		return cur->st_mode & S_IWGRP;
	return cur->st_mode & S_IWOTH;
}

int perm_access(fuse_req_t req, const struct stat *st, int mask)
{
	mode_t bits;
	uid_t uid;
	gid_t gid;

	perm_caller(req, &uid, &gid);
	if (uid == 0)
		return !(mask & X_OK) || S_ISDIR(st->st_mode) || (st->st_mode & 0111) ? 0 : -EACCES;
	if (uid == st->st_uid)
		bits = (st->st_mode >> 6) & 7;
	else if (perm_in_group(req, st->st_gid))
		bits = (st->st_mode >> 3) & 7;
	else
		bits = st->st_mode & 7;
	return ((mask & R_OK) && !(bits & 4)) || ((mask & W_OK) && !(bits & 2)) ||
		       ((mask & X_OK) && !(bits & 1))
		   ? -EACCES
		   : 0;
}

int perm_setattr(fuse_req_t req, const struct stat *cur, const struct stat *attr, int to_set)
{
	uid_t uid;
	gid_t gid;
	bool owner;

	perm_caller(req, &uid, &gid);
	if (uid == 0)
		return 0;
	owner = uid == cur->st_uid;
	if ((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != cur->st_uid)
		return -EPERM;
	if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_MODE)) && !owner)
		return -EPERM;
	if ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != cur->st_gid &&
	    !perm_in_group(req, attr->st_gid))
		return -EPERM;
	if (((to_set & FUSE_SET_ATTR_ATIME) && !(to_set & FUSE_SET_ATTR_ATIME_NOW)) ||
	    ((to_set & FUSE_SET_ATTR_MTIME) && !(to_set & FUSE_SET_ATTR_MTIME_NOW)))
		if (!owner)
			return -EPERM;
	if ((to_set & (FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)) && !owner &&
	    !perm_may_write(req, cur))
		return -EACCES;
	return 0;
}
