// SPDX-License-Identifier: Apache-2.0
/*
 * Large-lot benchmark (issue 12: a 1,000,000-device job is a normal lot):
 * a real job's state made with the journal, TPM and checkpoint APIs the
 * keeper uses (tests/unit/evidence_job.h: swtpm quotes, real Merkle
 * leaves), then `kinject evidence export` and `kinject verify
 * --work-order` timed end to end, each one's peak RSS from wait4().  One
 * JSON line; exit 1 if export or verify fails or the verdict is not PASS.
 *
 *   bench_evidence --kinject PATH [--devices N] [--checkpoints C]
 *                  [--dir DIR]
 * Run from the repository root (tests/lib/swtpm.sh starts the TPM).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../unit/evidence_job.h"
#include "../unit/swtpm_helper.h"

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* Run argv with stdout to out (or /dev/null): seconds, peak RSS (KiB). */
static int timed(char *const argv[], const char *out, double *secs,
		 long *rss_kib)
{
	struct rusage ru;
	double t = now_s();
	int st;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (!freopen(out ? out : "/dev/null", "w", stdout))
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	if (wait4(pid, &st, 0, &ru) != pid)
		return -1;
	*secs = now_s() - t;
	*rss_kib = ru.ru_maxrss;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int bench(const char *kinject, const char *dir, unsigned n,
		 unsigned cks)
{
	struct ej_opts o = { .n_devices = n, .every = n / cks };
	char state[512], wo[600], ev[600], ak[600], vout[600];
	struct test_swtpm sw;
	struct ej_result r;
	double t, xs, vs;
	long xr, vr;
	struct stat sb;
	int rc;

	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(wo, sizeof(wo), "%s/WO.json", dir);
	snprintf(ev, sizeof(ev), "%s/evidence.json", dir);
	snprintf(ak, sizeof(ak), "%s/ak.pem", state);
	snprintf(vout, sizeof(vout), "%s/verify.out", dir);
	if (test_swtpm_start(&sw, 0) < 0) {
		fprintf(stderr, "bench_evidence: cannot start swtpm\n");
		return 1;
	}
	o.dir = state;
	o.tcti = sw.tcti;
	o.wo_path = wo;
	t = now_s();
	rc = ej_make_job(&o, &r);
	test_swtpm_stop(&sw);
	if (rc < 0) {
		fprintf(stderr, "bench_evidence: making the job failed\n");
		return 1;
	}
	fprintf(stderr, "bench_evidence: %u devices, %llu records, %llu checkpoints made in %.1f s\n",
		n, (unsigned long long)r.records,
		(unsigned long long)r.checkpoints, now_s() - t);
	{
		char *const x[] = { (char *)kinject, "evidence", "export",
			"--state", state, "--job", "WO-2027-0315", "--out", ev,
			NULL };
		char *const v[] = { (char *)kinject, "verify", ev, "--ak", ak,
			"--work-order", wo, NULL };

		if (timed(x, NULL, &xs, &xr) < 0) {
			fprintf(stderr, "bench_evidence: export failed\n");
			return 1;
		}
		if (stat(ev, &sb) < 0 || timed(v, vout, &vs, &vr) < 0) {
			fprintf(stderr, "bench_evidence: verify failed (%s)\n",
				vout);
			return 1;
		}
	}
	printf("{\"scenario\":\"evidence\",\"devices\":%u,\"records\":%llu,"
	       "\"checkpoints\":%llu,\"bundle_bytes\":%lld,"
	       "\"export_s\":%.2f,\"export_peak_rss_kib\":%ld,"
	       "\"verify_s\":%.2f,\"verify_peak_rss_kib\":%ld}\n",
	       n, (unsigned long long)r.records,
	       (unsigned long long)r.checkpoints, (long long)sb.st_size, xs, xr,
	       vs, vr);
	return 0;
}

int main(int argc, char **argv)
{
	char tmpl[] = "/tmp/kj-bench-evidence.XXXXXX", cmd[128];
	const char *dir = NULL, *kinject = NULL;
	unsigned long n = 1000000, cks = 20;
	int rc;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--devices"))
			n = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--checkpoints"))
			cks = strtoul(argv[i + 1], NULL, 10);
		else if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
		else if (!strcmp(argv[i], "--kinject"))
			kinject = argv[i + 1];
	}
	if (!kinject || n < 100 || n > 10000000 || !cks || cks > n) {
		fprintf(stderr, "usage: %s --kinject PATH [--devices N] [--checkpoints C] [--dir DIR]\n",
			argv[0]);
		return 2;
	}
	if (!dir && !(dir = mkdtemp(tmpl))) {
		perror("mkdtemp");
		return 1;
	}
	rc = bench(kinject, dir, (unsigned)n, (unsigned)cks);
	if (dir == tmpl) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
		if (system(cmd) != 0)
			fprintf(stderr, "bench_evidence: cannot remove %s\n",
				tmpl);
	}
	return rc;
}
