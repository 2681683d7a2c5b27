/*
 * test_llm_retry: llm/retry.c, the Retry-After / retry-after-ms parser the retry
 * loop of llm/http.c uses: delta-seconds, milliseconds, HTTP-dates in all three
 * RFC 9110 forms, and hostile values (huge, negative, NUL, junk) bounded by
 * LLM_RETRY_AFTER_MAX_MS.  Prints "ok N - name" / "not ok N - name".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "retry.h"
#include "tap.h"

#define NOW ((time_t)1700000000) /* Tue, 14 Nov 2023 22:13:20 GMT */
#define CAP LLM_RETRY_AFTER_MAX_MS

/* Parse from an exact-size heap copy (no NUL after it: ASan sees overreads). */
static void expect_len(const char *val, size_t len, int ms, int64_t want)
{
	char *copy = malloc(len ? len : 1);
	struct buf name = BUF_INIT;
	int64_t got;

	memcpy(copy, val, len);
	got = llm_retry_after(copy, len, ms, NOW);
	free(copy);
	buf_printf(&name, "%s \"", ms ? "retry-after-ms" : "Retry-After");
	for (size_t i = 0; i < len; i++)
		buf_printf(&name, (unsigned char)val[i] < 0x20 ? "\\x%02x" : "%c",
			   (unsigned char)val[i]);
	buf_printf(&name, "\" -> %lld", (long long)want);
	CHECK(got == want, "%s", buf_str(&name));
	if (got != want)
		tap_diag("got %lld", (long long)got);
	buf_free(&name);
}

static void expect(const char *val, int ms, int64_t want)
{
	expect_len(val, strlen(val), ms, want);
}

int main(void)
{
	/* delta-seconds, as header values arrive (leading space, CRLF) */
	expect(" 1\r\n", 0, 1000);
	expect("0", 0, 0);
	expect("120", 0, 120000);
	expect("1.5", 0, 1500);
	expect("0.0001", 0, 0);
	expect(".25", 0, 250);
	expect("2.", 0, 2000);
	expect("\t 30 \t", 0, 30000);
	/* retry-after-ms; a fraction of a millisecond is dropped */
	expect(" 50\r\n", 1, 50);
	expect("50.9", 1, 50);
	expect("0", 1, 0);
	/* nothing usable: -1, and the loop falls back to its own backoff */
	expect("", 0, -1);
	expect(" \r\n", 1, -1);
	expect(".", 0, -1);
	expect("soon", 0, -1);
	expect("abc", 1, -1);
	expect("-1", 1, -1);
	expect("+5", 1, -1);
	expect("1e3", 1, -1);
	expect("0x10", 1, -1);
	expect("inf", 1, -1);
	expect("nan", 1, -1);
	expect("5 s", 1, -1);
	expect("1.2.3", 1, -1);
	/* an HTTP-date is only a Retry-After */
	expect("Tue, 14 Nov 2023 22:13:50 GMT", 1, -1);
	expect_len("5\0", 2, 0, -1);
	/* magnitude: saturate at the cap, never overflow */
	expect("4294967", 0, 4294967000);
	expect("4294968", 0, CAP);
	expect("4294967294", 1, 4294967294);
	expect("4294967295", 1, CAP);
	expect("99999999999999999999999999999999999999", 0, CAP);
	expect("99999999999999999999999999999999999999", 1, CAP);
	expect("4294967.295999999999999999999999", 0, CAP);
	/* HTTP-date: IMF-fixdate, RFC 850, asctime */
	expect(" Tue, 14 Nov 2023 22:13:50 GMT\r\n", 0, 30000);
	expect("Tue, 14 Nov 2023 22:13:20 GMT", 0, 0);
	expect("Tue, 14 Nov 2023 23:13:20 GMT", 0, 3600000);
	expect("Sun, 06 Nov 1994 08:49:37 GMT", 0, 0);
	expect("Sunday, 06-Nov-94 08:49:37 GMT", 0, 0);
	expect("Sun Nov  6 08:49:37 1994", 0, 0);
	expect("Fri, 31 Dec 9999 23:59:59 GMT", 0, CAP);
	expect("Mon, 01 Jan 2147483647 00:00:00 GMT", 0, CAP);
	expect_len("Tue, 14 Nov 2023 22:13:50\0GMT", 29, 0, -1);
	/* longer than any HTTP-date: not even handed to curl */
	expect("Tue, 14 Nov 2023 22:13:50                                                   GMT", 0,
	       -1);

	return tap_done();
}
