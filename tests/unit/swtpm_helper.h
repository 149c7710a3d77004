/* SPDX-License-Identifier: Apache-2.0 */
/*
 * For unit tests that need a real TPM: start a throwaway swtpm through
 * tests/lib/swtpm.sh (free loopback ports, temp state dir) and stop it.
 * Run from the repository root, as `make check-unit` does.
 */
#ifndef KJ_TEST_SWTPM_HELPER_H
#define KJ_TEST_SWTPM_HELPER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_swtpm {
	char dir[64];
	char tcti[128];
};

/* 0 on success; ek_cert: also run swtpm_setup for EK certificates. */
static inline int test_swtpm_start(struct test_swtpm *s, int ek_cert)
{
	char cmd[256];
	FILE *p;
	size_t n;

	strcpy(s->dir, "/tmp/kinject-swtpm.XXXXXX");
	if (!mkdtemp(s->dir))
		return -1;
	snprintf(cmd, sizeof(cmd), "bash tests/lib/swtpm.sh start %s %s", s->dir,
		 ek_cert ? "--ek-cert" : "");
	p = popen(cmd, "r");
	if (!p)
		return -1;
	if (!fgets(s->tcti, sizeof(s->tcti), p)) {
		pclose(p);
		return -1;
	}
	n = strlen(s->tcti);
	if (n && s->tcti[n - 1] == '\n')
		s->tcti[n - 1] = 0;
	return pclose(p) == 0 ? 0 : -1;
}

static inline void test_swtpm_stop(struct test_swtpm *s)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd),
		 "bash tests/lib/swtpm.sh stop %s; rm -rf %s", s->dir, s->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "swtpm stop failed for %s\n", s->dir);
}

/* Run a shell command line; its exit status. */
static inline int test_sh(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static inline int test_sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	return rc == -1 ? -1 : WEXITSTATUS(rc);
}

#endif
