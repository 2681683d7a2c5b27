/*
 * fs: the FUSE low-level operations of the mount (ask/, procs/, query/, stats).
 * fs knows FUSE and nothing about LLMs; it turns names into (type, input) and
 * store paths, and turns -errno results into fuse_reply_err.
 */
#ifndef SEGLAM_FS_H
#define SEGLAM_FS_H

#include <stdbool.h>

#include <fuse_lowlevel.h>

#define FS_DEFAULT_QUERY_MEM_MB 256

struct fs_config {
	double timeout; /* kernel entry/attr cache time for changing objects, seconds */
	bool readonly;
	bool shared;	  /* -o allow_other: several users, kernel-checked permissions */
	size_t query_mem; /* bytes all open query/ handles may buffer together; 0: default */
};

extern const struct fuse_lowlevel_ops fs_ops;

void fs_init(const struct fs_config *cfg);
/* The session, once created: answers are pushed into the kernel's page cache. */
void fs_set_session(struct fuse_session *se);
/* Release the handles the kernel never released (after the session ended). */
void fs_shutdown_handles(void);
/* Start/stop the thread that sends kernel cache invalidations. */
int fs_inval_start(struct fuse_session *se);
void fs_inval_stop(void);
/* Queue invalidation of every cached answer of @type (any thread). */
void fs_inval_type(const char *type);

#endif
