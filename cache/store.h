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

#include "buf.h"

#define STORE_FORMAT_VERSION 1
#define STORE_TYPE_MAX 128

/* Opens (and, if @create and empty, initialises) the store. */
int store_open(const char *path, bool readonly, struct buf *err);
void store_close(void);
bool store_readonly(void);
/* The store's root directory fd (O_PATH-free, usable with *at() calls). */
int store_root_fd(void);

/* 1..128 bytes of A-Z a-z 0-9 . _ + -, not starting with '.'. */
bool store_type_valid(const char *name, size_t len);

/* Append the store-relative directory of @type ("procs/ab/cd/TYPE") to @out. */
void store_type_dir(const char *type, struct buf *out);

/* Read procs/../TYPE/@rel into @out (at most @max bytes). Returns 0 or -errno. */
int store_read(const char *type, const char *rel, size_t max, struct buf *out);
/* Atomically write procs/../TYPE/@rel, creating the type directory if needed. */
int store_write(const char *type, const char *rel, const void *data, size_t len);
/* Create the type directory (and its bucket directories). */
int store_mkdir_type(const char *type);
bool store_type_exists(const char *type);

/* Call @fn for every type in the store (walks the buckets; not for hot paths). */
int store_foreach_type(int (*fn)(const char *type, void *arg), void *arg);

/* Remove this host's stale temp files in one type's directory tree. */
void store_clean_type(const char *type);

/* Append a whole line to procs/../TYPE/log in place (O_APPEND, locked), keeping the
 * log bounded by rotating it (by rename, under the same name) past 64 KiB. */
int store_log(const char *type, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
