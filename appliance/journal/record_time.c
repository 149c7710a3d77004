// SPDX-License-Identifier: Apache-2.0
/*
 * The "time" of a record: RFC 3339 UTC with milliseconds, one fixed shape
 * so it is its own canonical form.  Apart from the JCS bytes because more
 * than they use it: the journal stamps records with the clock, and
 * `kinject audit' prints the times.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "record.h"

uint64_t kj_record_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* v (0 <= v < 10^n) as n decimal digits, zero-padded. */
static void put_dec(char *out, int v, int n)
{
	while (n--) {
		out[n] = (char)('0' + v % 10);
		v /= 10;
	}
}

int kj_record_format_time(uint64_t ms, char *out)
{
	time_t secs = (time_t)(ms / 1000);
	char tmp[80]; /* room for any int, so no truncation to reason about */
	struct tm tm;

	if (ms / 1000 > (uint64_t)INT32_MAX * 128 || !gmtime_r(&secs, &tm) ||
	    tm.tm_year + 1900 > 9999)
		return -EINVAL;
	/* YYYY-MM-DDTHH:MM:SS.mmmZ, every field zero-padded (no printf:
	 * one per record) */
	put_dec(tmp, tm.tm_year + 1900, 4);
	tmp[4] = '-';
	put_dec(tmp + 5, tm.tm_mon + 1, 2);
	tmp[7] = '-';
	put_dec(tmp + 8, tm.tm_mday, 2);
	tmp[10] = 'T';
	put_dec(tmp + 11, tm.tm_hour, 2);
	tmp[13] = ':';
	put_dec(tmp + 14, tm.tm_min, 2);
	tmp[16] = ':';
	put_dec(tmp + 17, tm.tm_sec, 2);
	tmp[19] = '.';
	put_dec(tmp + 20, (int)(ms % 1000), 3);
	tmp[23] = 'Z';
	tmp[24] = 0;
	memcpy(out, tmp, KJ_RECORD_TIME_LEN + 1);
	return 0;
}

static int digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int kj_record_parse_time(const char *s, size_t len, uint64_t *ms)
{
	/* 0123456789012345678901234 */
	/* 2026-11-24T10:00:00.123Z  */
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	int y, mo, d, h, mi, sec, frac;
	char again[KJ_RECORD_TIME_LEN + 1];
	struct tm tm = { 0 };
	time_t t;

	if (len != KJ_RECORD_TIME_LEN)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (shape[i] != 'd' && s[i] != shape[i])
			return -EINVAL;
	if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
	    digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) ||
	    digits(s + 17, 2, &sec) || digits(s + 20, 3, &frac))
		return -EINVAL;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 59)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t < 0)
		return -EINVAL;
	*ms = (uint64_t)t * 1000u + (uint64_t)frac;
	/* timegm normalises 02-31 to 03-03: only a round trip is exact. */
	if (kj_record_format_time(*ms, again) || memcmp(again, s, len))
		return -EINVAL;
	return 0;
}
