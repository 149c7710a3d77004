// SPDX-License-Identifier: Apache-2.0
/*
 * Large-lot benchmark (issue 12: a 1,000,000-device job is a normal lot):
 * a real job's state made with the journal, TPM and checkpoint APIs the
 * keeper uses (tests/unit/evidence_job.h: swtpm quotes, real Merkle
 * leaves), then `kinject evidence export` and `kinject verify
 * --work-order` timed end to end, each one's peak RSS from wait4() and
 * the bytes it wrote (/proc/PID/io wchar: verify writes nothing but its
 * sort files in $TMPDIR and a page of output).  With --compare, the same
 * bundle is verified by a second kinject right after (an older build: the
 * before and after of a change at the same load), and the outputs are
 * compared.  One JSON line; exit 1 if export or verify fails or the
 * verdict is not PASS.  $KJ_BENCH_LOCK: hold flock(FILE) while timing
 * only.  --reuse: keep DIR's job if a finished one is there.
 *
 *   bench_evidence --kinject PATH [--devices N] [--checkpoints C]
 *                  [--dir DIR] [--compare PATH] [--reuse]
 * Run from the repository root (tests/lib/swtpm.sh starts the TPM).
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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

struct timed {
	double secs;
	long rss_kib;
	long long wchar;        /* bytes written (write, pwrite, ...) */
};

/* Bytes the (exited, not yet reaped) process pid wrote, or -1. */
static long long wchar_of(pid_t pid)
{
	char path[64], line[128];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "wchar: %lld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* Run argv with stdout to out (or /dev/null), under $KJ_BENCH_LOCK. */
static int timed(char *const argv[], const char *out, struct timed *m)
{
	const char *lock = getenv("KJ_BENCH_LOCK");
	struct rusage ru;
	siginfo_t si;
	double t;
	int st, lfd = -1;
	pid_t pid;

	if (lock && *lock &&
	    ((lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0666)) < 0 ||
	     flock(lfd, LOCK_EX) < 0)) {
		perror(lock);
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	t = now_s();
	pid = fork();
	if (pid < 0) {
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	if (pid == 0) {
		if (!freopen(out ? out : "/dev/null", "w", stdout))
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	/* exited but not reaped: its /proc/PID/io is still there */
	m->secs = -1;
	m->wchar = -1;
	memset(&ru, 0, sizeof(ru));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) == 0) {
		m->secs = now_s() - t;
		m->wchar = wchar_of(pid);
	}
	if (wait4(pid, &st, 0, &ru) != pid)
		st = -1;
	if (lfd >= 0)
		close(lfd);
	m->rss_kib = ru.ru_maxrss;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static double load1(void)
{
	double l[1] = { -1 };

	return getloadavg(l, 1) == 1 ? l[0] : -1;
}

/* The two files have the same bytes. */
static bool same_file(const char *a, const char *b)
{
	FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
	bool same = fa && fb;
	int ca, cb;

	while (same) {
		ca = getc(fa);
		cb = getc(fb);
		same = ca == cb;
		if (ca == EOF)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

struct args {
	const char *kinject, *compare, *dir;
	unsigned n, cks;
	bool reuse;
};

/* The job's state in dir/state (swtpm quotes), unless --reuse finds it. */
static int make(const struct args *a, const char *state, const char *wo,
		struct ej_result *r)
{
	struct ej_opts o = { .n_devices = a->n, .every = a->n / a->cks };
	char made[600];
	struct test_swtpm sw;
	struct stat sb;
	double t;
	FILE *f;
	int rc;

	snprintf(made, sizeof(made), "%s/made", a->dir);
	if (a->reuse && (f = fopen(made, "r"))) {
		rc = fscanf(f, "%u %llu %llu", &o.n_devices,
			    (unsigned long long *)&r->records,
			    (unsigned long long *)&r->checkpoints);
		fclose(f);
		if (rc == 3 && o.n_devices == a->n && !stat(state, &sb))
			return 0;
	}
	if (test_swtpm_start(&sw, 0) < 0) {
		fprintf(stderr, "bench_evidence: cannot start swtpm\n");
		return -1;
	}
	o.dir = state;
	o.tcti = sw.tcti;
	o.wo_path = wo;
	t = now_s();
	rc = ej_make_job(&o, r);
	test_swtpm_stop(&sw);
	if (rc < 0) {
		fprintf(stderr, "bench_evidence: making the job failed\n");
		return -1;
	}
	fprintf(stderr, "bench_evidence: %u devices, %llu records, %llu checkpoints made in %.1f s\n",
		a->n, (unsigned long long)r->records,
		(unsigned long long)r->checkpoints, now_s() - t);
	f = fopen(made, "w");
	if (f) {
		fprintf(f, "%u %llu %llu\n", a->n,
			(unsigned long long)r->records,
			(unsigned long long)r->checkpoints);
		fclose(f);
	}
	return 0;
}

static int verify(const char *kinject, const char *ev, const char *ak,
		  const char *wo, const char *out, struct timed *m)
{
	char *const v[] = { (char *)kinject, "verify", (char *)ev, "--ak",
		(char *)ak, "--work-order", (char *)wo, NULL };

	if (timed(v, out, m) < 0) {
		fprintf(stderr, "bench_evidence: %s verify failed (%s)\n",
			kinject, out);
		return -1;
	}
	return 0;
}

static int bench(const struct args *a)
{
	char state[512], wo[600], ev[600], ak[600], vout[600], cout[600];
	struct timed x, v, c = { 0 };
	struct ej_result r;
	struct stat sb;

	snprintf(state, sizeof(state), "%s/state", a->dir);
	snprintf(wo, sizeof(wo), "%s/WO.json", a->dir);
	snprintf(ev, sizeof(ev), "%s/evidence.json", a->dir);
	snprintf(ak, sizeof(ak), "%s/ak.pem", state);
	snprintf(vout, sizeof(vout), "%s/verify.out", a->dir);
	snprintf(cout, sizeof(cout), "%s/verify-compare.out", a->dir);
	if (make(a, state, wo, &r) < 0)
		return 1;
	{
		char *const xa[] = { (char *)a->kinject, "evidence", "export",
			"--state", state, "--job", "WO-2027-0315", "--out", ev,
			NULL };

		if (timed(xa, NULL, &x) < 0) {
			fprintf(stderr, "bench_evidence: export failed\n");
			return 1;
		}
	}
	if (stat(ev, &sb) < 0 || verify(a->kinject, ev, ak, wo, vout, &v) < 0)
		return 1;
	if (a->compare && verify(a->compare, ev, ak, wo, cout, &c) < 0)
		return 1;
	printf("{\"scenario\":\"evidence\",\"devices\":%u,\"records\":%llu,"
	       "\"checkpoints\":%llu,\"bundle_bytes\":%lld,"
	       "\"export_s\":%.2f,\"export_peak_rss_kib\":%ld,"
	       "\"verify_s\":%.2f,\"verify_peak_rss_kib\":%ld,"
	       "\"verify_written_bytes\":%lld",
	       a->n, (unsigned long long)r.records,
	       (unsigned long long)r.checkpoints, (long long)sb.st_size,
	       x.secs, x.rss_kib, v.secs, v.rss_kib, v.wchar);
	if (a->compare)
		printf(",\"compare_verify_s\":%.2f,"
		       "\"compare_verify_peak_rss_kib\":%ld,"
		       "\"compare_verify_written_bytes\":%lld,"
		       "\"same_output\":%s",
		       c.secs, c.rss_kib, c.wchar,
		       same_file(vout, cout) ? "true" : "false");
	printf(",\"load1\":%.2f}\n", load1());
	return 0;
}

int main(int argc, char **argv)
{
	char tmpl[] = "/tmp/kj-bench-evidence.XXXXXX", cmd[128];
	struct args a = { .n = 1000000, .cks = 20 };
	unsigned long n = a.n, cks = a.cks;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--reuse"))
			a.reuse = true;
		else if (i + 1 == argc)
			break;
		else if (!strcmp(argv[i], "--devices"))
			n = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--checkpoints"))
			cks = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--dir"))
			a.dir = argv[++i];
		else if (!strcmp(argv[i], "--kinject"))
			a.kinject = argv[++i];
		else if (!strcmp(argv[i], "--compare"))
			a.compare = argv[++i];
	}
	if (!a.kinject || n < 100 || n > 10000000 || !cks || cks > n) {
		fprintf(stderr, "usage: %s --kinject PATH [--devices N] [--checkpoints C] [--dir DIR] [--compare PATH] [--reuse]\n",
			argv[0]);
		return 2;
	}
	a.n = (unsigned)n;
	a.cks = (unsigned)cks;
	if (!a.dir && !(a.dir = mkdtemp(tmpl))) {
		perror("mkdtemp");
		return 1;
	}
	rc = bench(&a);
	if (a.dir == tmpl) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
		if (system(cmd) != 0)
			fprintf(stderr, "bench_evidence: cannot remove %s\n",
				tmpl);
	}
	return rc;
}
