/*
 * retry: parsing Retry-After and retry-after-ms, see retry.h.  The values come
 * from whatever answers at SEGLAM_LLM_URL (a proxy, a hostile server), so nothing
 * here trusts their length or magnitude: numbers saturate instead of overflowing,
 * and strtod is avoided (locale-dependent, and it takes "inf", "nan", hex).
 */
#include "retry.h"

#include <string.h>

#include <curl/curl.h>

/* An IMF-fixdate is 29 bytes, the obsolete forms are shorter than this. */
#define LLM_RETRY_DATE_MAX 64

static int llm_retry_ows(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * DIGITS[.DIGITS] (at least one digit in all) times @scale milliseconds, clamped
 * to the cap; -1 for anything else.
 */
static int64_t llm_retry_number(const char *s, size_t len, int64_t scale)
{
	int64_t whole = 0, frac = 0, fscale = 1, ms;
	size_t i = 0, digits = 0;

	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++)
		if (whole <= LLM_RETRY_AFTER_MAX_MS) /* beyond: it only saturates */
			whole = whole * 10 + (s[i] - '0');
	if (i < len && s[i] == '.')
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++)
			if (fscale < scale) {
				frac = frac * 10 + (s[i] - '0');
				fscale *= 10;
			}
	if (!digits || i != len)
		return -1;
	if (whole > LLM_RETRY_AFTER_MAX_MS / scale)
		return LLM_RETRY_AFTER_MAX_MS;
	ms = whole * scale + frac * (scale / fscale);
	return ms < LLM_RETRY_AFTER_MAX_MS ? ms : LLM_RETRY_AFTER_MAX_MS;
}

static int64_t llm_retry_date(const char *s, size_t len, time_t now)
{
	char date[LLM_RETRY_DATE_MAX];
	uint64_t ahead;
	time_t t;

	/* curl_getdate reads a C string: a NUL inside would cut the value short. */
	if (len >= sizeof(date) || memchr(s, '\0', len))
		return -1;
	memcpy(date, s, len);
	date[len] = '\0';
	/* -1 is curl's failure; it turns a real 1969-12-31 23:59:59 into 0. */
	t = curl_getdate(date, NULL);
	if (t == -1)
		return -1;
	if (t <= now)
		return 0;
	/* Unsigned: a date at the far end of time_t minus a negative now. */
	ahead = (uint64_t)t - (uint64_t)now;
	if (ahead > (uint64_t)LLM_RETRY_AFTER_MAX_MS / 1000)
		return LLM_RETRY_AFTER_MAX_MS;
	return (int64_t)ahead * 1000;
}

int64_t llm_retry_after(const char *val, size_t len, int ms, time_t now)
{
	int64_t n;

	while (len && llm_retry_ows(*val)) {
		val++;
		len--;
	}
	while (len && llm_retry_ows(val[len - 1]))
		len--;
	if (!len)
		return -1;
	n = llm_retry_number(val, len, ms ? 1 : 1000);
	if (n >= 0 || ms)
		return n;
	return llm_retry_date(val, len, now);
}
