// SPDX-License-Identifier: Apache-2.0
/*
 * Recall benchmark (SPEC.md §6: under a second on 1,000,000 records): a
 * journal generated through the journal's write path (tests/unit/
 * journal_gen.h), then `kinject audit' queries timed end to end, the
 * process start included.  One JSON line per query.
 *
 *   bench_recall --kinject PATH [--records N] [--dir DIR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "../unit/journal_gen.h"

#define JOBS 10

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static const char *const queries[] = {
	"recall --uid DEADBEEF0000002A",
	"recall --serial as50000042",
	"recall --all --serial AS20000007 --firmware-version 3.2.0",
	"recall --firmware-version 3.2.0 --batch lot-1",
	"recall --counts --firmware-sha256 " "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
	"b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2",
	"recall --firmware-sha256 " "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
	"b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2",
	"jobs",
	"export --job JOB-3",
};

static int run(const char *kinject, const char *dir, uint64_t n)
{
	static struct kj_gen_job jobs[JOBS];
	char cmd[4096];
	double t;

	t = now_s();
	if (kj_gen_journal(dir, n, JOBS, jobs))
		return 1;
	fprintf(stderr, "bench_recall: %llu records generated in %.1f s\n",
		(unsigned long long)n, now_s() - t);
	for (size_t i = 0; i < sizeof(queries) / sizeof(*queries); i++) {
		int rc;

		snprintf(cmd, sizeof(cmd), "'%s' audit %s --state '%s' "
			 ">/dev/null 2>&1", kinject, queries[i], dir);
		t = now_s();
		rc = system(cmd);
		t = now_s() - t;
		if (!WIFEXITED(rc) || WEXITSTATUS(rc)) {
			fprintf(stderr, "bench_recall: `%s' failed\n", cmd);
			return 1;
		}
		printf("{\"scenario\":\"recall\",\"records\":%llu,"
		       "\"query\":\"%s\",\"seconds\":%.3f,\"under_1s\":%s}\n",
		       (unsigned long long)n, queries[i], t,
		       t < 1.0 ? "true" : "false");
	}
	return 0;
}

int main(int argc, char **argv)
{
	char tmpl[] = "/tmp/kj-bench-recall.XXXXXX", cmd[128];
	const char *dir = NULL, *kinject = NULL;
	uint64_t n = 1000000;
	int rc;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--records")) {
			if (kj_parse_u64(argv[i + 1], 1000, 100000000, argv[i],
					 &n))
				return 2;
		} else if (!strcmp(argv[i], "--dir")) {
			dir = argv[i + 1];
		} else if (!strcmp(argv[i], "--kinject")) {
			kinject = argv[i + 1];
		} else {
			break;
		}
	}
	if (!kinject) {
		fprintf(stderr, "usage: bench_recall --kinject PATH "
			"[--records N] [--dir DIR]\n");
		return 2;
	}
	if (!dir && !(dir = mkdtemp(tmpl)))
		return 1;
	rc = run(kinject, dir, n);
	if (dir == tmpl) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
		if (system(cmd))
			rc = 1;
	}
	return rc;
}
