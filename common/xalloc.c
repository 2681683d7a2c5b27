/* xalloc: allocation that logs and aborts on failure; see xalloc.h. */
#include "xalloc.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static void __attribute__((noreturn)) xalloc_fail(const char *what, size_t n)
{
	char msg[96];

	/* log_msg() allocates; this path must not. */
	snprintf(msg, sizeof(msg), "%s: out of memory (%zu bytes); aborting", what, n);
	log_emergency(msg);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		xalloc_fail("malloc", n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		xalloc_fail("calloc", n * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		xalloc_fail("realloc", n);
	return q;
}

void *xreallocarray(void *p, size_t n, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(n, size, &total))
		xalloc_fail("reallocarray", SIZE_MAX);
	return xrealloc(p, total);
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		xalloc_fail("strdup", strlen(s) + 1);
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (!p)
		xalloc_fail("strndup", n + 1);
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		xalloc_fail("asprintf", strlen(fmt));
	return p;
}
