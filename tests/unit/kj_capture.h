/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit-test helper: capture what the code under test logs to stderr, so a
 * test can assert that an error names the file, field or line at fault.
 *   cap_start(); rc = f(...); const char *err = cap_end();
 */
#ifndef KJ_TEST_CAPTURE_H
#define KJ_TEST_CAPTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int kj_cap_saved = -1, kj_cap_fd = -1;
static char kj_cap_buf[16384];

static inline void cap_start(void)
{
	fflush(stderr);
	kj_cap_saved = dup(2);
	kj_cap_fd = memfd_create("kj-capture", MFD_CLOEXEC);
	if (kj_cap_saved < 0 || kj_cap_fd < 0 || dup2(kj_cap_fd, 2) < 0)
		abort();
}

static inline const char *cap_end(void)
{
	ssize_t n;

	fflush(stderr);
	dup2(kj_cap_saved, 2);
	close(kj_cap_saved);
	n = pread(kj_cap_fd, kj_cap_buf, sizeof(kj_cap_buf) - 1, 0);
	close(kj_cap_fd);
	kj_cap_buf[n > 0 ? n : 0] = '\0';
	/* Show it too: a failing assertion is easier to read with it. */
	fputs(kj_cap_buf, stderr);
	return kj_cap_buf;
}

/* Assert that the captured text contains want. */
#define assert_logged(text, want)                                           \
	do {                                                                \
		if (!strstr((text), (want)))                                \
			fail_msg("expected message containing `%s', got `%s'", \
				 (want), (text));                           \
	} while (0)

#endif
