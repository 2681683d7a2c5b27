/*
 * clock: the one place that reads the clocks.
 *
 * Durations, deadlines and revalidation intervals use the monotonic clock
 * (clock_mono_*), which never jumps; only timestamps meant for people and files
 * (meta.json, logs) use the real time (clock_real_ns).  The coarse variant is for
 * hot paths that need no better than a few milliseconds (the answer path checks
 * whether a revalidation is due on every read).
 */
#ifndef SEGLAM_CLOCK_H
#define SEGLAM_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_ns_of(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t clock_mono_ns(void)
{
	return clock_ns_of(CLOCK_MONOTONIC);
}

static inline uint64_t clock_mono_coarse_ns(void)
{
	return clock_ns_of(CLOCK_MONOTONIC_COARSE);
}

static inline uint64_t clock_mono_ms(void)
{
	return clock_mono_ns() / 1000000u;
}

/* Nanoseconds since the Epoch. */
static inline uint64_t clock_real_ns(void)
{
	return clock_ns_of(CLOCK_REALTIME);
}

#endif
