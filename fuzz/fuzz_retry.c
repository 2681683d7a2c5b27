/*
 * fuzz retry: llm/retry.c llm_retry_after, the Retry-After / retry-after-ms
 * parser of llm/http.c, on header values as any server may send them.
 *
 * Input: [u8 flags][value...]; flags bit 0: a retry-after-ms value (else
 * Retry-After); bits 1-2 pick "now" (see fuzz_retry_now).
 *
 * Invariants: the result is -1 or in [0, LLM_RETRY_AFTER_MAX_MS]; surrounding
 * white space changes nothing; a number (DIGITS[.DIGITS]) gives exactly its
 * value in milliseconds, clamped, computed here with strtoull on at most 12
 * digits; anything else in retry-after-ms is -1; anything else in Retry-After is
 * what curl_getdate makes of it, relative to now, computed here in 128 bits.
 */
#include "fuzz.h"

#include <string.h>

#include <curl/curl.h>

#include "retry.h"

static const time_t fuzz_retry_now[] = {
    1700000000,	 /* 2023-11-14 */
    0,		 /* the epoch: every past date is 0 */
    4102444800,	 /* 2100-01-01 */
    253402300799 /* 9999-12-31 23:59:59, the last IMF-fixdate year */
};

static int fuzz_retry_ows(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int64_t fuzz_retry_clamp(__int128 ms)
{
	return ms > LLM_RETRY_AFTER_MAX_MS ? LLM_RETRY_AFTER_MAX_MS : (int64_t)ms;
}

/* The expected value of a DIGITS[.DIGITS] value @s[@n], or -2 when it is not one. */
static int64_t fuzz_retry_number(const uint8_t *s, size_t n, int ms)
{
	size_t dot = n, digits = 0, i;
	char ip[16] = "0", frac[4] = "000";
	__int128 v;

	for (i = 0; i < n; i++) {
		if (s[i] == '.' && dot == n)
			dot = i;
		else if (s[i] >= '0' && s[i] <= '9')
			digits++;
		else
			return -2;
	}
	if (!digits)
		return -2;
	/* leading zeros say nothing; 13 digits or more are past the cap anyway */
	for (i = 0; i < dot && s[i] == '0'; i++)
		;
	if (dot - i > 12)
		return LLM_RETRY_AFTER_MAX_MS;
	if (dot > i) {
		memcpy(ip, s + i, dot - i);
		ip[dot - i] = '\0';
	}
	for (size_t k = 0; k < 3 && dot + 1 + k < n; k++)
		frac[k] = (char)s[dot + 1 + k];
	v = (__int128)strtoull(ip, NULL, 10);
	if (!ms)
		v = v * 1000 + (__int128)strtoull(frac, NULL, 10);
	return fuzz_retry_clamp(v);
}

static int64_t fuzz_retry_date(const uint8_t *s, size_t n, time_t now)
{
	char date[64];
	time_t t;

	if (n >= sizeof(date) || memchr(s, '\0', n))
		return -1;
	memcpy(date, s, n);
	date[n] = '\0';
	t = curl_getdate(date, NULL);
	if (t == -1)
		return -1;
	return t <= now ? 0 : fuzz_retry_clamp(((__int128)t - now) * 1000);
}

/* llm_retry_after on an exact-size heap copy (ASan sees any read past the value). */
static int64_t fuzz_retry_call(const uint8_t *s, size_t n, int ms, time_t now)
{
	char *copy = malloc(n ? n : 1);
	int64_t r;

	FUZZ_CHECK(copy);
	memcpy(copy, s, n);
	r = llm_retry_after(copy, n, ms, now);
	free(copy);
	return r;
}

int fuzz_retry(const uint8_t *data, size_t size)
{
	const uint8_t *s;
	uint8_t *padded;
	size_t n, b, e;
	int64_t r, want;
	time_t now;
	int ms;

	if (size < 1)
		return 0;
	ms = data[0] & 1;
	now = fuzz_retry_now[(data[0] >> 1) & 3];
	s = data + 1;
	n = size - 1;

	r = fuzz_retry_call(s, n, ms, now);
	FUZZ_CHECK(r == -1 || (r >= 0 && r <= LLM_RETRY_AFTER_MAX_MS));

	/* as a header line arrives: " value\r\n" */
	padded = malloc(n + 3);
	FUZZ_CHECK(padded);
	padded[0] = ' ';
	memcpy(padded + 1, s, n);
	memcpy(padded + 1 + n, "\r\n", 2);
	FUZZ_CHECK(fuzz_retry_call(padded, n + 3, ms, now) == r);
	free(padded);

	for (b = 0; b < n && fuzz_retry_ows(s[b]); b++)
		;
	for (e = n; e > b && fuzz_retry_ows(s[e - 1]); e--)
		;
	if (b == e) {
		want = -1;
	} else {
		want = fuzz_retry_number(s + b, e - b, ms);
		if (want == -2)
			want = ms ? -1 : fuzz_retry_date(s + b, e - b, now);
	}
	FUZZ_CHECK(r == want);
	return 0;
}

FUZZ_MAIN(retry)
