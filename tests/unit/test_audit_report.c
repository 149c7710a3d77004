// SPDX-License-Identifier: Apache-2.0
/*
 * kinject audit report and archive on a real job (the journal, TPM and
 * checkpoint code the keeper uses, quoted by swtpm): the report parses as
 * HTML with Python's html5lib in strict mode and with xmllint --html, and
 * shows the job's numbers; the archive holds what SPEC.md §6 lists, its
 * SHA256SUMS check, its bundle passes `kinject verify', its quotes pass
 * tpm2_checkquote as its README says, and it refuses an open job, a
 * work order that is not the job's, and a folder that is not empty.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "evidence_job.h"
#include "kj_testutil.h"
#include "swtpm_helper.h"

#define JOB "WO-2027-0315"

static char dir[64], kinject[PATH_MAX];
static bool have_job;

static int setup(void **state)
{
	struct ej_opts o = { .n_devices = 120, .every = 40 };
	char self[PATH_MAX], wo[128];
	struct test_swtpm sw;
	struct ej_result res;
	ssize_t n;

	(void)state;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return -1;
	self[n] = '\0';
	snprintf(kinject, sizeof(kinject), "%s/../kinject", dirname(self));
	snprintf(dir, sizeof(dir), "/tmp/kj-report.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	if (access(kinject, X_OK) || test_swtpm_start(&sw, 0))
		return 0; /* the tests skip */
	snprintf(wo, sizeof(wo), "%s/WO.json", dir);
	o.dir = dir;
	o.tcti = sw.tcti;
	o.wo_path = wo;
	have_job = ej_make_job(&o, &res) == 0;
	test_swtpm_stop(&sw);
	return have_job ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* bash script (printf format) with $K = kinject and $D = the dir. */
static int sh(const char *fmt, ...)
{
	char scratch[96], body[4096];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	snprintf(scratch, sizeof(scratch), "%s/script", dir);
	rc = kj_test_bash(scratch, "set -e; K='%s'; D='%s'; cd \"$D\"\n%s\n",
			  kinject, dir, body);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_report(void **state)
{
	(void)state;
	if (!have_job)
		skip();
	assert_int_equal(sh("$K audit report --state . --job %s --out r.html",
			    JOB), 0);
	/* Well-formed HTML 5: html5lib strict raises on any parse error. */
	assert_int_equal(sh("/usr/bin/python3 -c 'import html5lib,sys\n"
			    "html5lib.HTMLParser(strict=True).parse("
			    "open(sys.argv[1], \"rb\"))' r.html"), 0);
	/* libxml2's HTML parser is HTML 4: it knows no inline SVG, and
	 * says so; anything else it says is a fault of ours. */
	assert_int_equal(sh("xmllint --html --noout r.html 2>x.err; "
			    "! grep 'error' x.err | grep -Ev 'Tag (svg|rect|"
			    "line|text) invalid'"), 0);
	/* The job's numbers: 118 ok of 120 ordered, 2 locked_out refusals
	 * (before the offer), one site, the chart, the checkpoints. */
	assert_int_equal(sh("grep -q '<td>118 of 120 ordered</td>' r.html"), 0);
	assert_int_equal(sh("grep -q '<td class=\"bad\">locked_out</td>"
			    "<td>refused before</td><td class=\"n\">2</td>' "
			    "r.html"), 0);
	assert_int_equal(sh("grep -q '<td>line1</td><td class=\"n\">1</td>' "
			    "r.html"), 0);
	assert_int_equal(sh("grep -q '<svg ' r.html && grep -c '<rect ' r.html"
			    " | grep -qv '^0$'"), 0);
	assert_int_equal(sh("grep -q '<th>Log root</th>' r.html && "
			    "! grep -q 'not covered' r.html"), 0);
	/* No script, no external reference. */
	assert_int_equal(sh("! grep -Eqi '<script|src=|href=|url\\(' r.html"),
			 0);
	assert_int_equal(sh("$K audit report --state . --job NOPE --out n.html"
			    " 2>/dev/null"), 1);
	assert_int_equal(sh("[ ! -e n.html ]"), 0);
}

static void test_archive(void **state)
{
	(void)state;
	if (!have_job)
		skip();
	assert_int_equal(sh("$K audit archive --state . --job %s --out a "
			    "2>/dev/null", JOB), 2);
	assert_int_equal(sh("echo '{}' >bad.json; ! $K audit archive --state . "
			    "--job %s --out a --work-order bad.json "
			    "--work-order-sig bad.json 2>e; grep -q 'not the "
			    "work order of job' e", JOB), 0);
	assert_int_equal(sh("printf sig >WO.json.sig; $K audit archive "
			    "--state . --job %s --out a --work-order WO.json "
			    "--work-order-sig WO.json.sig", JOB), 0);
	assert_int_equal(sh("cd a; for f in evidence.json records.csv "
			    "report.html work-order.json work-order.json.sig "
			    "ak.pem ak.pub README.txt SHA256SUMS "
			    "checkpoints/0000.attest; do [ -s $f ]; done; "
			    "sha256sum --quiet -c SHA256SUMS"), 0);
	assert_int_equal(sh("cd a; $K verify evidence.json --ak ak.pem "
			    ">/dev/null"), 0);
	/* tpm2-tools alone, as README.txt says. */
	assert_int_equal(sh("cd a; n=0; for a in checkpoints/*.attest; do "
			    "c=${a%%.attest}; tpm2_checkquote -u ak.pem -m $a "
			    "-s $c.sig -g sha256 -q $(cat $c.qualifying) "
			    ">/dev/null; n=$((n+1)); done; [ $n -ge 2 ]"), 0);
	/* A written package is never merged into. */
	assert_int_equal(sh("! $K audit archive --state . --job %s --out a "
			    "--work-order WO.json --work-order-sig WO.json.sig "
			    "2>e; grep -q 'not empty' e", JOB), 0);
	/* An open job has no archive yet. */
	assert_int_equal(sh("sqlite3 journal.db \"UPDATE jobs SET state = "
			    "'running'\"; ! $K audit archive --state . --job "
			    "%s --out b --work-order WO.json --work-order-sig "
			    "WO.json.sig 2>e; grep -q 'has not ended' e; "
			    "[ ! -e b ]", JOB), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_report),
		cmocka_unit_test(test_archive),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
