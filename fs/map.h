/*
 * map: MOUNT/map/TYPE, many inputs through one descriptor (`seglam map`).
 *
 * A client opens map/TYPE read-write, writes inputs as frames and reads back
 * one record per input, in order (the framing is documented in README.md):
 *
 *   input   [u32 len][len bytes]
 *   record  [u32 kind][u32 len][len bytes]   kind 0 answer, 1 rejected, 2 failed
 *
 * all integers little-endian.  Inputs are run in batches by the type's worker
 * (proc_map), so a FUSE round trip carries thousands of inputs.  Memory is
 * bounded per descriptor (a write fails with EAGAIN while 4 MiB of input wait
 * unanswered, and answers are made only when read) and for all descriptors
 * together (-o query_mem, else ENOSPC).
 */
#ifndef SEGLAM_MAP_H
#define SEGLAM_MAP_H

#include <stddef.h>

#include <fuse_lowlevel.h>

struct map_stream;

/* Bound the memory of all streams together (bytes; 0 keeps the default 256 MiB). */
void map_init(size_t max_bytes);
/* 0, or -ENOSPC when the streams already open hold the whole budget. */
int map_open(const char *type, struct map_stream **m);
void map_close(struct map_stream *m);
/* The FUSE write and read of a map/TYPE descriptor: they reply to @req. */
void map_write(fuse_req_t req, struct map_stream *m, const char *data, size_t size);
void map_read(fuse_req_t req, struct map_stream *m, size_t size);

#endif
