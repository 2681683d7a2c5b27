/*
 * tap: the Test Anything Protocol output every C unit test uses.
 *
 *	CHECK(cond, "printf format", ...);	"ok N - what" or "not ok N - what"
 *	tap_diag("got %d", x);			"# got 5" (a comment line)
 *	return tap_done();			"1..N"; exit status 1 if any failed
 *
 * A failed check also says where it is (file:line).  Output goes to stdout, or to
 * tap_out when a test points it elsewhere (test_llm_http sends fd 1 and 2 to a log).
 * Header-only: each test is one program, so the counters are per test.
 */
#ifndef SEGLAM_TAP_H
#define SEGLAM_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

static struct {
	int count, failed;
} tap __attribute__((unused));
static FILE *tap_out __attribute__((unused));

static inline FILE *tap_stream(void)
{
	return tap_out ? tap_out : stdout;
}

static inline void tap_check_at(bool ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline void tap_check_at(bool ok, const char *file, int line, const char *fmt, ...)
{
	FILE *f = tap_stream();
	va_list ap;

	tap.count++;
	fprintf(f, "%s %d - ", ok ? "ok" : "not ok", tap.count);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	if (!ok) {
		tap.failed++;
		fprintf(f, "#   at %s:%d\n", file, line);
	}
	fflush(f);
}

#define CHECK(cond, ...) tap_check_at(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

static inline void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void tap_diag(const char *fmt, ...)
{
	FILE *f = tap_stream();
	va_list ap;

	fputs("# ", f);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fflush(f);
}

/* The plan, last; the exit status of the test. */
static inline int tap_done(void)
{
	FILE *f = tap_stream();

	if (tap.failed)
		fprintf(f, "# %d of %d checks failed\n", tap.failed, tap.count);
	fprintf(f, "1..%d\n", tap.count);
	fflush(f);
	return tap.failed ? 1 : 0;
}

#endif
