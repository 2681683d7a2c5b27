/*
 * precheck: lexical screening of procedure source before tcc sees it.
 *
 * Defence in depth: tcc's preprocessor reads any file named by #include and
 * #pragma comment(option, ...) changes compiler options (or crashes libtcc), so
 * only a fixed set of directives and headers is let through.
 */
#ifndef SEGLAM_PRECHECK_H
#define SEGLAM_PRECHECK_H

#include <stddef.h>

#include "buf.h"

/* Returns 0 when @src may be compiled, or -1 with one "line N: ..." message in @err. */
int worker_precheck(const char *src, size_t len, struct buf *err);

#endif
