/*
 * xalloc: allocation that cannot fail.
 *
 * The daemon cannot do anything useful without memory, and a NULL check after
 * every malloc hides the logic it guards (buf.h makes the same choice).  These
 * wrappers log one clear line ("out of memory: N bytes") and abort().  Code that
 * must survive a huge, attacker-sized request checks the size first, not the
 * result.
 */
#ifndef SEGLAM_XALLOC_H
#define SEGLAM_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n) __attribute__((malloc, returns_nonnull));
void *xcalloc(size_t n, size_t size) __attribute__((malloc, returns_nonnull));
void *xrealloc(void *p, size_t n) __attribute__((returns_nonnull));
/* realloc(p, n * size), aborting on overflow as on failure. */
void *xreallocarray(void *p, size_t n, size_t size) __attribute__((returns_nonnull));
char *xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
char *xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2), returns_nonnull));

#endif
