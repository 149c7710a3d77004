/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The monotonic clock, on its own so that log.c (the rate limiter) and
 * util.c (whose errors go through log.c) do not depend on each other.
 */
#ifndef KINJECT_CLOCK_H
#define KINJECT_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic milliseconds, for timeouts and rates. */
static inline uint64_t kj_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
