/*
 * retry: the wait an LLM server asks for before the next attempt, from its
 * Retry-After (RFC 9110: delta-seconds or an HTTP-date) or retry-after-ms
 * (OpenAI, Anthropic) header.  Its own module so that the fuzz target and the
 * unit test call the very parser the retry loop in http.c uses.
 */
#ifndef SEGLAM_LLM_RETRY_H
#define SEGLAM_LLM_RETRY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * Every result is at most this.  It is longer than any total LLM timeout (an
 * unsigned number of milliseconds), so a longer wait clamped to it still makes
 * the retry loop give up rather than retry early, and no arithmetic on a server's
 * number can overflow.
 */
#define LLM_RETRY_AFTER_MAX_MS ((int64_t)UINT32_MAX)

/*
 * The header value @val (@len bytes, not NUL-terminated, surrounding white space
 * allowed) in milliseconds, 0 to LLM_RETRY_AFTER_MAX_MS, or -1 when it says
 * nothing usable.  @ms: a retry-after-ms value (a number of milliseconds);
 * otherwise a Retry-After value: a number of seconds, or an HTTP-date taken
 * relative to @now (a date in the past is 0).  Numbers may have a fraction, as
 * the providers' SDKs accept; what is finer than a millisecond is dropped.
 */
int64_t llm_retry_after(const char *val, size_t len, int ms, time_t now);

#endif
