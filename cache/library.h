/*
 * library: installing the bundled procedures (library/ of the source tree, or the
 * installed copy) into a store.  Only types the store lacks are copied, so a
 * person's edits and LLM-written procedures are never overwritten.
 */
#ifndef SEGLAM_LIBRARY_H
#define SEGLAM_LIBRARY_H

#include "buf.h"

int library_install(const char *libdir, struct buf *err);

#endif
