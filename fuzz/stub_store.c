/*
 * stub_store: an in-memory stand-in for cache/store.c and store_at.c, for the fuzz
 * targets that link cache/meta.c and the files of cache/proc.c.  One file (the
 * meta.json of every type) is held in memory: store_read() returns what the target
 * put there and store_write() keeps what meta_update() writes back.  Everything
 * else answers "not here" without touching the disk.
 */
#include "stub_store.h"

#include <errno.h>
#include <string.h>

#include "store.h"

struct stub_store stub_store;

void stub_store_set(const void *data, size_t len)
{
	buf_reset(&stub_store.file);
	buf_add(&stub_store.file, data, len);
	stub_store.present = true;
	stub_store.writes = 0;
}

void stub_store_free(void)
{
	buf_free(&stub_store.file);
	stub_store.present = false;
}

int store_open(const char *path, bool readonly, struct buf *err)
{
	(void)path;
	(void)err;
	stub_store.readonly = readonly;
	return 0;
}

void store_close(void)
{
}

bool store_readonly(void)
{
	return stub_store.readonly;
}

int store_root_fd(void)
{
	return -1;
}

bool store_type_valid(const char *name, size_t len)
{
	return name && len > 0 && len <= STORE_TYPE_MAX && name[0] != '.';
}

void store_type_dir(const char *type, struct buf *out)
{
	buf_printf(out, "procs/00/00/%s", type);
}

int store_read(const char *type, const char *rel, size_t max, struct buf *out)
{
	(void)type;
	(void)rel;
	if (!stub_store.present)
		return -ENOENT;
	if (stub_store.file.len > max)
		return -EFBIG;
	buf_add(out, stub_store.file.data ? stub_store.file.data : "", stub_store.file.len);
	return 0;
}

/* (as reading through store_root_fd()'s -1 did: the fuzzers never reach a source) */
int store_read_source(const char *type, size_t max, struct buf *out, struct stat *st, uid_t *owner)
{
	(void)type;
	(void)max;
	(void)out;
	(void)st;
	(void)owner;
	return -EBADF;
}

int store_write(const char *type, const char *rel, const void *data, size_t len)
{
	(void)type;
	(void)rel;
	if (stub_store.readonly)
		return -EROFS;
	stub_store_set(data, len);
	stub_store.writes = 1;
	return 0;
}

int store_update(const char *type, const char *rel, const void *data, size_t len)
{
	return store_write(type, rel, data, len);
}

/* Nothing is held back here: synth.c, the one user of store_later_add, is not linked. */
int store_later_flush(struct store_later *l)
{
	(void)l;
	return 0;
}

int store_mkdir_type(const char *type)
{
	(void)type;
	return 0;
}

bool store_type_exists(const char *type)
{
	(void)type;
	return stub_store.present;
}

int store_foreach_type(int (*fn)(const char *type, void *arg), void *arg)
{
	(void)fn;
	(void)arg;
	return 0;
}

void store_clean_type(const char *type)
{
	(void)type;
}

int store_log(const char *type, const char *fmt, ...)
{
	(void)type;
	(void)fmt;
	return 0;
}

int store_open_beneath(const char *rel, int flags, mode_t mode)
{
	(void)rel;
	(void)flags;
	(void)mode;
	return -ENOENT;
}

int store_lstat(const char *rel, struct stat *st)
{
	(void)rel;
	(void)st;
	return -ENOENT;
}
