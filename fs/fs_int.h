/*
 * fs_int: what the files of fs/ share (not for outside fs/; fs.h is the interface).
 *
 * fs.c holds the libfuse op table and the node_ops table; handle.c the handle_ops;
 * each other file is one view (ask.c, query.c, stats.c, procs.c) or one mechanism
 * (handle.c, attr.c, lookup.c, dir.c, pfile.c).
 */
#ifndef SEGLAM_FS_INT_H
#define SEGLAM_FS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>

#include "answer.h"
#include "buf.h"
#include "fs.h"
#include "map.h"
#include "node.h"

#define FS_FIXED_TIMEOUT 3600.0
#define FS_QUERY_MAX (64u << 20)
#define QUERY_STATUS_DIR ".status"

extern struct fs_config fs_cfg;
/* Bytes buffered by all open query/ handles, bounded by fs_cfg.query_mem. */
extern _Atomic size_t fs_query_bytes;
extern struct fuse_session *fs_session;
extern struct timespec fs_mounted; /* the times of the directories the mount makes */

enum handle_kind { H_ANSWER, H_QUERY, H_STATS, H_PFILE, H_DIR, H_MAP };

struct pfile {
	/* Every field below, for this open file only: held across its own store I/O
	 * (read, write, shadow, commit), which only requests on this handle wait for;
	 * taken before node_lock, never after. */
	pthread_mutex_t lock;
	int fd;			/* the file as opened (or the last committed shadow) */
	int shadow;		/* temp copy taking writes, or -1 */
	struct buf shadow_path; /* store-relative */
	bool writable;
	bool dirty;
	int error; /* a write failed: nothing of this handle is ever committed, and every
		    * later write, flush, fsync and close fails with it (pfile_failed) */
};

struct dirent_snap {
	char *name;
	mode_t type;
	uint64_t ino;
};

struct handle {
	enum handle_kind kind;
	bool paged; /* H_ANSWER through the page cache: counted in node->page_opens */
	union {
		struct answer *ans;
		struct {
			/* The fields below, for this handle only; held while the first
			 * read runs the procedure (only this handle's reads wait);
			 * taken before node_lock, never after. */
			pthread_mutex_t lock;
			struct buf input;
			struct answer *ans;
			int err;
			bool sealed;
			bool status;	  /* query/.status/TYPE: a status line, then the body */
			struct buf reply; /* status mode: what follows the input */
		} q;
		struct buf text;
		struct map_stream *map;
		struct pfile pf;
		struct {
			struct dirent_snap *ents;
			size_t n;
		} dir;
	};
	uint64_t ino;
	LIST_ENTRY(handle) link; /* in handle.c's registry, under its handles_lock */
};

/*
 * What each kind of handle does: fs.c dispatches READ, WRITE, FLUSH and FSYNC, and
 * handle_destroy RELEASE, through handle_ops[kind].  A NULL entry takes the
 * default: EISDIR for a read, EBADF for a write, nothing to save or free.
 */
struct handle_ops {
	void (*read)(fuse_req_t req, struct handle *h, size_t size, off_t off);
	void (*write)(fuse_req_t req, struct handle *h, const char *data, size_t size, off_t off);
	int (*flush)(struct handle *h); /* 0 or -errno */
	int (*fsync)(struct handle *h);
	void (*destroy)(struct handle *h);
};

extern const struct handle_ops handle_ops[];

/* What an OPEN needs of its node, copied out from under node_lock. */
struct node_open {
	fuse_ino_t ino;
	fuse_ino_t parent_ino; /* 0 for the root */
	const char *type;      /* the node's type, if it has one (ask/, query/, map/) */
	const char *input;     /* ask/TYPE/INPUT: the decoded input */
	size_t inlen;
};

/*
 * What each kind of node does: LOOKUP, GETATTR, OPEN and OPENDIR dispatch through
 * node_ops[kind] (fs.c), one row per enum node_kind, so that the kinds are not
 * switched on in every operation.  A NULL entry: ENOTDIR for lookup and opendir,
 * EISDIR for open.
 */
struct node_ops {
	/* Attributes; node_lock held, may be dropped and retaken (answers run
	 * procedures), and must be dropped for store I/O; @n is pinned by node_attr.
	 * *@timeout comes in as fs_cfg.timeout. */
	int (*attr)(struct node *n, struct stat *st, double *timeout);
	/* Child @name, its lookup not counted; node_lock held, may be dropped (and is,
	 * for store I/O); @parent must then be pinned unless fixed. */
	int (*lookup)(struct node *parent, const char *name, struct node **out);
	/* A new handle in *@hp (freed by fs_open on failure); node_lock not held. */
	int (*open)(fuse_req_t req, const struct node_open *o, struct fuse_file_info *fi,
		    struct handle **hp);
	/* The entries after "." and ".."; node_lock not held. */
	int (*opendir)(fuse_req_t req, struct handle *h, enum node_kind kind, const char *path);
	bool in_store; /* a directory in the store: opendir gets its store path */
};

extern const struct node_ops node_ops[];

static inline struct handle *fi_handle(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

/* handle.c */
struct handle *handle_new(enum handle_kind kind, uint64_t ino);
void handle_free(struct handle *h);
void fs_intr_begin(fuse_req_t req, atomic_bool *flag);
void fs_intr_end(fuse_req_t req);
void handle_destroy(struct handle *h);
void reply_slice(fuse_req_t req, const char *data, size_t len, size_t size, off_t off);

/* ask.c */
int fs_ask(const char *type, const char *in, size_t len, struct answer **ans);
int fs_peek(const char *type, const char *in, size_t len, struct answer **ans);
void ask_read(fuse_req_t req, struct handle *h, size_t size, off_t off);
void ask_destroy(struct handle *h);
int ask_open(fuse_req_t req, const struct node_open *o, struct fuse_file_info *fi,
	     struct handle **hp);

/* attr.c */
void attr_dir(struct stat *st, uint64_t ino, mode_t mode);
double entry_timeout(double attr_timeout);
int node_attr(struct node *n, struct stat *st, double *timeout);
int reply_node(fuse_req_t req, struct node *n);
void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
int attr_root(struct node *n, struct stat *st, double *timeout);
int attr_view(struct node *n, struct stat *st, double *timeout);
int attr_procs(struct node *n, struct stat *st, double *timeout);
int attr_stats(struct node *n, struct stat *st, double *timeout);
int attr_ask_type(struct node *n, struct stat *st, double *timeout);
int attr_query_type(struct node *n, struct stat *st, double *timeout);
int attr_answer_node(struct node *n, struct stat *st, double *timeout);
int attr_procs_type(struct node *n, struct stat *st, double *timeout);
int attr_pfile(struct node *n, struct stat *st, double *timeout);

/* stats.c */
void stats_text(struct buf *out);
void stats_read(fuse_req_t req, struct handle *h, size_t size, off_t off);
void stats_destroy(struct handle *h);
int stats_open(fuse_req_t req, const struct node_open *o, struct fuse_file_info *fi,
	       struct handle **hp);

/* lookup.c */
bool type_name_ok(const char *name);
bool procs_dot_name(fuse_ino_t parent, const char *name);
int lookup_store_child(struct node *parent, const char *name, struct node **out);
void fs_lookup(fuse_req_t req, fuse_ino_t parent_ino, const char *name);
void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *list);
void reply_new_entry(fuse_req_t req, fuse_ino_t parent_ino, const char *name);
int lookup_root(struct node *parent, const char *name, struct node **out);
int lookup_view(struct node *parent, const char *name, struct node **out);
int lookup_procs(struct node *parent, const char *name, struct node **out);
int lookup_ask_type(struct node *parent, const char *name, struct node **out);
int lookup_store(struct node *parent, const char *name, struct node **out);

/* dir.c */
void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void dir_destroy(struct handle *h);
int dir_root(fuse_req_t req, struct handle *h, enum node_kind kind, const char *path);
int dir_types(fuse_req_t req, struct handle *h, enum node_kind kind, const char *path);
int dir_ask_type(fuse_req_t req, struct handle *h, enum node_kind kind, const char *path);
int dir_store(fuse_req_t req, struct handle *h, enum node_kind kind, const char *path);

/* procs.c */
int procs_path(fuse_ino_t ino, const char *name, struct buf *path, struct buf *type);
/*
 * Before an operation on procs/TYPE or below (@ino, or @ino's child @name):
 * wait until the records of TYPE's last synthesis are in the store
 * (proc_records_wait).  Takes and drops node_lock: call it without.
 */
void procs_records_barrier(fuse_ino_t ino, const char *name);
void procs_changed(const char *type);
/*
 * May the caller of @req use @fd, opened by the store path of node @ino, for
 * @mask (R_OK, W_OK, X_OK; 0: no check)?  The kernel checked access on the
 * attributes it had for the node; the daemon opens by name, as root, and a user
 * who may rename in the directory can put another user's file under the name in
 * between.  So with several users (fs_cfg.shared: default_permissions) the check
 * is done again, on what was opened (perm_access): 0 or -EACCES (-ESTALE: the
 * node is gone).  *@replaced (if given): @fd is not the file the node stood for
 * (node_is_backing), whose size the kernel may have cached.
 */
int procs_may_use(fuse_req_t req, fuse_ino_t ino, int fd, int mask, bool *replaced);
#define PROCS_FD_PATH 32
void procs_fd_path(int fd, char out[PROCS_FD_PATH]);
int check_writable(void);
void chown_to_caller(fuse_req_t req, int fd);
void made_mode(int fd, mode_t mode);
void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void fs_readlink(fuse_req_t req, fuse_ino_t ino);
void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char *name);
void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
	       const char *newname, unsigned int flags);

/* pfile.c */
int pfile_save(struct handle *h);
void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi);
void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi);
void pfile_read(fuse_req_t req, struct handle *h, size_t size, off_t off);
void pfile_write(fuse_req_t req, struct handle *h, const char *data, size_t size, off_t off);
int pfile_fsync(struct handle *h);
void pfile_destroy(struct handle *h);
int pfile_node_open(fuse_req_t req, const struct node_open *o, struct fuse_file_info *fi,
		    struct handle **hp);

/* query.c */
void query_read(fuse_req_t req, struct handle *h, size_t size, off_t off);
void query_write(fuse_req_t req, struct handle *h, const char *data, size_t size, off_t off);
void query_destroy(struct handle *h);
int query_open(fuse_req_t req, const struct node_open *o, struct fuse_file_info *fi,
	       struct handle **hp);

#endif
