/* stub_store: the in-memory store of the fuzz targets, see stub_store.c. */
#ifndef SEGLAM_FUZZ_STUB_STORE_H
#define SEGLAM_FUZZ_STUB_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

struct stub_store {
	struct buf file; /* meta.json (of any type) */
	bool present;
	bool readonly;
	unsigned writes; /* store_write() calls since the last stub_store_set() */
};
extern struct stub_store stub_store;

/* Make @data the file's contents. */
void stub_store_set(const void *data, size_t len);
void stub_store_free(void);

#endif
