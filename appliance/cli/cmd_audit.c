// SPDX-License-Identifier: Apache-2.0
/*
 * kinject audit (SPEC.md §6): what quality and compliance read.  This
 * file parses the arguments every action shares, holds the small helpers
 * they share and `verify'; the actions live in cmd_audit_export.c,
 * cmd_audit_report.c and cmd_audit_archive.c.  Read-only on the journal:
 * safe while a job runs (one snapshot per command).
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attest/attest.h"
#include "attest/tpm_defs.h"
#include "base/kinject.h"
#include "base/log.h"
#include "base/util.h"
#include "evidence/audit.h"
#include "journal/record.h"
#include "audit_int.h"
#include "commands.h"

const char cmd_audit_usage[] =
	"Usage: kinject audit export [--format csv|json] [--job ID]\n"
	"                            [--kinds device,job_start,job_end]\n"
	"                            [--since T] [--until T] [--out FILE]\n"
	"       kinject audit jobs   [--format csv|json] [--job ID] [--out FILE]\n"
	"       kinject audit recall [--format csv|json] [--all] [--counts]\n"
	"                            [--out FILE]\n"
	"                            [--firmware-sha256 H] [--firmware-version V]\n"
	"                            [--batch B] [--serial S] [--uid HEX]\n"
	"                            [--job ID] [--since T] [--until T]\n"
	"       kinject audit report  --job ID --out FILE.html\n"
	"       kinject audit archive --job ID --out DIR --work-order WO.json\n"
	"                             --work-order-sig WO.json.sig\n"
	"       kinject audit verify [--ak-pub FILE]\n"
	"  (every action also takes --state DIR, default ./kinject-state)\n\n"
	"The audit trail of the journal (DIR/journal.db, read-only).\n\n"
	"  export   device records (--kinds adds job_start/job_end rows), in log\n"
	"           order; every row starts with the appliance's AK name.  csv:\n"
	"           RFC 4180 with a header, the columns of docs/AUDIT.md; json:\n"
	"           an array of {\"ak_name\", \"record\"} with the record's exact\n"
	"           JCS bytes (the transparency log's leaf).  An unknown --job is\n"
	"           an error.\n"
	"  jobs     one row per job: state, counts, firmware, time span.\n"
	"  recall   the devices matching every criterion given (at least one);\n"
	"           hex, batch and serial compare case-insensitively.  By\n"
	"           default the devices that completed (result ok); --all adds\n"
	"           every failed attempt.  Counts per job go to stderr;\n"
	"           --counts writes only them (ak_name,job,devices), the first\n"
	"           answer to a recall of a whole firmware or batch.\n"
	"  report   one self-contained HTML page of a job for people who are\n"
	"           not engineers: quantity, yield per site and socket, failures\n"
	"           by reason, firmware, hardware revisions, the device rate\n"
	"           over time, the checkpoints.\n"
	"  archive  a job's 10-year retention package (the job must have ended):\n"
	"           evidence bundle, CSV, report, work order and signature, AK\n"
	"           and EK certificates, and a README on verifying it.\n"
	"  verify   records canonical, seq and job_seq gap-free, job_end counts,\n"
	"           the Merkle tree rebuilt from the records equals every\n"
	"           checkpoint root, every record is covered by a checkpoint\n"
	"           (one no quote covers fails), nv_counter increasing, every\n"
	"           quote\n"
	"           verifies (AK public area: --ak-pub, default DIR/ak.pub if\n"
	"           present).  Exit 0 only if every check passes.\n\n"
	"  T is UTC: 2026-11-24, 2026-11-24T10:00:00Z or with .mmm; --since is\n"
	"  inclusive, --until exclusive.\n";

/* ---- shared helpers ------------------------------------------------------ */

int kj_audit_ak_name(const char *state, char out[KJ_AK_NAME_HEX])
{
	static bool warned;
	char path[PATH_MAX];
	uint8_t *pub = NULL;
	struct kj_ak ak;
	size_t len;
	int rc;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/ak.pub", state);
	if (access(path, F_OK) < 0) {
		if (!warned)
			kj_warn("%s: no AK public area: the ak_name column is "
				"empty (run the ceremony's init first)", path);
		warned = true;
		return 0;
	}
	KJ_TRY(kj_read_file(path, KJ_TPM_PUB_MAX, &pub, &len));
	memset(&ak, 0, sizeof(ak));
	rc = kj_ak_parse(pub, len, &ak, NULL);
	free(pub);
	if (rc < 0) {
		kj_err("%s: not the AK public area this appliance writes",
		       path);
		return rc;
	}
	kj_hex_encode(ak.name, KJ_TPM_NAME_LEN, out);
	kj_ak_free(&ak);
	return 0;
}

FILE *kj_audit_open_out(const char *path)
{
	FILE *f;

	if (!path)
		return stdout;
	f = fopen(path, "w");
	if (!f)
		kj_err("--out %s: %m", path);
	return f;
}

int kj_audit_close_out(FILE *f, const char *path)
{
	int rc = 0;

	if (fflush(f) || ferror(f)) {
		kj_err("%s: write failed: %m", path ? path : "stdout");
		rc = -EIO;
	}
	if (path && fclose(f) && !rc) {
		kj_err("%s: %m", path);
		rc = -EIO;
	}
	return rc;
}

static int exists_cb(void *ctx, const struct kj_journal_job_info *ji)
{
	(void)ctx;
	(void)ji;
	return 0;
}

int kj_audit_job_exists(struct kj_journal *j, const char *job)
{
	int n = kj_journal_foreach_job(j, job, exists_cb, NULL);

	if (n == 0)
		kj_err("--job %s: no such job in this journal; `kinject audit "
		       "jobs' lists them", job);
	return n;
}

static int run_verify(struct kj_journal *j, const struct audit_args *a)
{
	char def[PATH_MAX];
	const char *path = a->ak_pub;
	uint8_t *pub = NULL;
	size_t len = 0;
	int rc;

	if (!path) {
		snprintf(def, sizeof(def), "%s/ak.pub", a->state);
		if (!access(def, R_OK))
			path = def;
	}
	if (path && kj_read_file(path, 4096, &pub, &len))
		return KJ_EXIT_ERROR;
	rc = kj_audit_verify(j, pub, len, stdout);
	free(pub);
	if (rc == -EBADMSG)
		printf("audit verify: FAILED\n");
	else if (!rc)
		printf("audit verify: all checks passed\n");
	return rc ? KJ_EXIT_ERROR : KJ_EXIT_OK;
}

/* ---- arguments ----------------------------------------------------------- */

enum {
	OPT_STATE = 256, OPT_FORMAT, OPT_JOB, OPT_OUT, OPT_ALL, OPT_FW_SHA,
	OPT_FW_VERSION, OPT_BATCH, OPT_SERIAL, OPT_UID, OPT_AK_PUB, OPT_KINDS,
	OPT_SINCE, OPT_UNTIL, OPT_WO, OPT_WO_SIG, OPT_COUNTS,
};

static const struct option audit_options[] = {
	{ "state", required_argument, NULL, OPT_STATE },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "job", required_argument, NULL, OPT_JOB },
	{ "out", required_argument, NULL, OPT_OUT },
	{ "all", no_argument, NULL, OPT_ALL },
	{ "firmware-sha256", required_argument, NULL, OPT_FW_SHA },
	{ "firmware-version", required_argument, NULL, OPT_FW_VERSION },
	{ "batch", required_argument, NULL, OPT_BATCH },
	{ "serial", required_argument, NULL, OPT_SERIAL },
	{ "uid", required_argument, NULL, OPT_UID },
	{ "ak-pub", required_argument, NULL, OPT_AK_PUB },
	{ "kinds", required_argument, NULL, OPT_KINDS },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ "until", required_argument, NULL, OPT_UNTIL },
	{ "work-order", required_argument, NULL, OPT_WO },
	{ "work-order-sig", required_argument, NULL, OPT_WO_SIG },
	{ "counts", no_argument, NULL, OPT_COUNTS },
	{ NULL, 0, NULL, 0 },
};

/* UTC date, date-time or date-time with milliseconds, "Z" suffix. */
static int parse_time(const char *flag, const char *v, uint64_t *ms)
{
	struct tm tm = { 0 };
	const char *end;
	time_t t;

	if (!kj_record_parse_time(v, strlen(v), ms))
		return 0;
	end = strptime(v, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end) {
		memset(&tm, 0, sizeof(tm));
		end = strptime(v, "%Y-%m-%d", &tm);
	}
	if (!end || *end || (t = timegm(&tm)) < 0) {
		kj_err("%s: `%s' is not a UTC time like 2026-11-24 or "
		       "2026-11-24T10:00:00Z", flag, v);
		return -EINVAL;
	}
	*ms = (uint64_t)t * 1000;
	return 0;
}

static int parse_kinds(const char *v, unsigned *kinds)
{
	char buf[128], *save = NULL, *tok;

	*kinds = 0;
	snprintf(buf, sizeof(buf), "%s", v);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		int k;

		for (k = KJ_REC_JOB_START; k <= KJ_REC_JOB_END; k++)
			if (!strcmp(tok, kj_record_kind_name(k)))
				break;
		if (k > KJ_REC_JOB_END) {
			kj_err("--kinds: `%s' is not device, job_start or "
			       "job_end", tok);
			return -EINVAL;
		}
		*kinds |= KJ_KIND_BIT(k);
	}
	if (!*kinds) {
		kj_err("--kinds: give a comma-separated list of device, "
		       "job_start, job_end");
		return -EINVAL;
	}
	return 0;
}

static int set_hex(const char *flag, const char *v, uint8_t *out, size_t min,
		   size_t max, size_t *len)
{
	size_t n = strlen(v);

	if (n % 2 || n < 2 * min || n > 2 * max ||
	    kj_hex_decode(v, out, n / 2)) {
		kj_err("%s: `%s' is not %zu..%zu bytes of hex", flag, v, min,
		       max);
		return -EINVAL;
	}
	if (len)
		*len = n / 2;
	return 0;
}

static int parse_criterion(struct audit_args *a, int c, const char *v)
{
	struct kj_journal_filter *f = &a->f;

	a->n_criteria++;
	switch (c) {
	case OPT_FW_SHA:
		f->has_fw_sha256 = true;
		return set_hex("--firmware-sha256", v, f->fw_sha256, 32, 32,
			       NULL);
	case OPT_FW_VERSION: f->fw_version = v; return 0;
	case OPT_BATCH: f->batch = v; return 0;
	case OPT_SERIAL: f->serial = v; return 0;
	case OPT_UID:
		f->uid = a->uid;
		return set_hex("--uid", v, a->uid, 1, KJ_RECORD_UID_MAX,
			       &f->uid_len);
	default:
		return -EINVAL;
	}
}

static int parse_opt(struct audit_args *a, int c, const char *v)
{
	switch (c) {
	case OPT_STATE: a->state = v; return 0;
	case OPT_JOB: a->f.job = v; return 0;
	case OPT_OUT: a->out_path = v; return 0;
	case OPT_AK_PUB: a->ak_pub = v; return 0;
	case OPT_WO: a->work_order = v; return 0;
	case OPT_WO_SIG: a->work_order_sig = v; return 0;
	case OPT_ALL: a->all = true; return 0;
	case OPT_COUNTS: a->counts = true; return 0;
	case OPT_SINCE: return parse_time("--since", v, &a->f.since_ms);
	case OPT_UNTIL: return parse_time("--until", v, &a->f.until_ms);
	case OPT_KINDS:
		a->kinds_set = true;
		return parse_kinds(v, &a->f.kinds);
	case OPT_FORMAT:
		if (strcmp(v, "csv") && strcmp(v, "json")) {
			kj_err("--format: `%s' is neither csv nor json", v);
			return -EINVAL;
		}
		a->json = !strcmp(v, "json");
		return 0;
	default:
		return parse_criterion(a, c, v);
	}
}

#define B(o) (1u << ((o) - OPT_STATE))
#define B_CRITERIA (B(OPT_FW_SHA) | B(OPT_FW_VERSION) | B(OPT_BATCH) | \
		    B(OPT_SERIAL) | B(OPT_UID))
#define B_TIME (B(OPT_SINCE) | B(OPT_UNTIL))

struct action {
	const char *name;
	unsigned allowed;  /* besides --state */
	unsigned required;
	int (*run)(struct kj_journal *j, const struct audit_args *a);
};

static const struct action actions[] = {
	{ "export", B(OPT_FORMAT) | B(OPT_JOB) | B(OPT_OUT) | B(OPT_KINDS) |
	  B_TIME, 0, kj_audit_export },
	{ "jobs", B(OPT_FORMAT) | B(OPT_JOB) | B(OPT_OUT), 0, kj_audit_jobs },
	{ "recall", B(OPT_FORMAT) | B(OPT_JOB) | B(OPT_OUT) | B(OPT_ALL) |
	  B(OPT_COUNTS) | B_TIME | B_CRITERIA, 0, kj_audit_export },
	{ "report", B(OPT_JOB) | B(OPT_OUT), B(OPT_JOB) | B(OPT_OUT),
	  kj_audit_report },
	{ "archive", B(OPT_JOB) | B(OPT_OUT) | B(OPT_WO) | B(OPT_WO_SIG),
	  B(OPT_JOB) | B(OPT_OUT) | B(OPT_WO) | B(OPT_WO_SIG),
	  kj_audit_archive },
	{ "verify", B(OPT_AK_PUB), 0, run_verify },
};

static int check_flags(const struct action *act, unsigned seen)
{
	for (const struct option *o = audit_options; o->name; o++) {
		unsigned b = B(o->val);

		if (o->val == OPT_STATE)
			continue;
		if ((seen & b) && !(act->allowed & b)) {
			kj_err("audit %s: --%s does not apply here; see "
			       "`kinject audit --help'", act->name, o->name);
			return -EINVAL;
		}
		if ((act->required & b) && !(seen & b)) {
			kj_err("audit %s: --%s is required", act->name,
			       o->name);
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_args(int argc, char **argv, const struct action *act,
		      struct audit_args *a)
{
	unsigned seen = 0;
	int c;

	a->state = "./kinject-state";
	a->action = act->name;
	opterr = 1;
	optind = 2; /* argv[0] = "audit", argv[1] = the action */
	while ((c = getopt_long(argc, argv, "", audit_options, NULL)) != -1) {
		if (c == '?')
			return -EINVAL;
		if (c != OPT_STATE && (seen & B(c))) {
			kj_err("audit %s: --%s given twice", act->name,
			       audit_options[c - OPT_STATE].name);
			return -EINVAL;
		}
		seen |= B(c);
		KJ_TRY(parse_opt(a, c, optarg));
	}
	if (optind < argc) {
		kj_err("audit %s: unexpected argument `%s'", act->name,
		       argv[optind]);
		return -EINVAL;
	}
	KJ_TRY(check_flags(act, seen));
	if (!strcmp(act->name, "recall") && !a->n_criteria) {
		kj_err("audit recall: give at least one of --firmware-sha256, "
		       "--firmware-version, --batch, --serial, --uid");
		return -EINVAL;
	}
	if (!a->kinds_set)
		a->f.kinds = KJ_KIND_BIT(KJ_REC_DEVICE);
	a->f.ok_only = !strcmp(act->name, "recall") && !a->all;
	return 0;
}

int cmd_audit_main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "";
	const struct action *act = NULL;
	struct audit_args a = { 0 };
	struct kj_journal *j;
	int rc;

	for (size_t i = 0; i < KJ_ARRAY_SIZE(actions); i++)
		if (!strcmp(name, actions[i].name))
			act = &actions[i];
	if (!act) {
		kj_err("audit: unknown action `%s': export, jobs, recall, "
		       "report, archive or verify", name);
		kj_print_usage(kj_find_command("audit"), 1);
		return KJ_EXIT_USAGE;
	}
	if (parse_args(argc, argv, act, &a))
		return KJ_EXIT_USAGE;
	if (kj_journal_open(a.state, KJ_JOURNAL_RDONLY, &j))
		return KJ_EXIT_ERROR;
	rc = act->run(j, &a);
	kj_journal_close(j);
	return rc;
}
