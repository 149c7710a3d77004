// SPDX-License-Identifier: Apache-2.0
/*
 * kinject audit: export the journal (CSV, JSON), recall devices by firmware,
 * batch, serial or uid, and verify journal ↔ log ↔ checkpoints (SPEC.md
 * §4).  Read-only: safe while a job runs.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/kinject.h"
#include "base/log.h"
#include "base/util.h"
#include "evidence/audit.h"
#include "journal/journal.h"
#include "journal/record.h"
#include "commands.h"

const char cmd_audit_usage[] =
	"Usage: kinject audit export [--state DIR] [--format csv|json]\n"
	"                            [--job ID] [--out FILE]\n"
	"       kinject audit recall [--state DIR] [--format csv|json] [--all]\n"
	"                            [--out FILE] --firmware-sha256 H |\n"
	"                            --firmware-version V | --batch B |\n"
	"                            --serial S | --uid HEX\n"
	"       kinject audit verify [--state DIR] [--ak-pub FILE]\n\n"
	"The audit trail of the journal (DIR/journal.db, read-only).\n\n"
	"  export   every record (of one job with --job), in log order.\n"
	"           json: an array of the records' exact JCS bytes (the\n"
	"           transparency log's leaves), one per line; csv: one row per\n"
	"           record, empty cells for null, cells a spreadsheet would run\n"
	"           as a formula (= + - @) prefixed with '.\n"
	"  recall   the device records matching one criterion: by default the\n"
	"           devices that completed (result ok); --all adds every failed\n"
	"           attempt (a failed attempt after OFFER also received bytes).\n"
	"  verify   records canonical, seq and job_seq gap-free, job_end counts,\n"
	"           the Merkle tree rebuilt from the records equals every\n"
	"           checkpoint root, every record is covered by a checkpoint\n"
	"           (one no quote covers fails), nv_counter increasing, every\n"
	"           quote\n"
	"           verifies (AK public area: --ak-pub, default DIR/ak.pub if\n"
	"           present).  Exit 0 only if every check passes.\n\n"
	"  --state DIR   appliance state (default ./kinject-state)\n"
	"  --format F    csv (default) or json\n"
	"  --out FILE    write there instead of stdout\n";

enum filter_kind { F_NONE, F_FW_SHA, F_FW_VERSION, F_BATCH, F_SERIAL, F_UID };

struct audit_args {
	const char *state, *job, *out_path, *ak_pub;
	bool json, all, recall;
	enum filter_kind fk;
	const char *fval;
	uint8_t fbin[KJ_RECORD_UID_MAX];
	size_t fbin_len;
};

struct out {
	FILE *f;
	const struct audit_args *a;
	uint64_t n;
};

/* ---- CSV -------------------------------------------------------------------- */

static void csv_str(FILE *f, const char *s)
{
	bool quote;

	if (!s)
		return;
	quote = strpbrk(s, ",\"\r\n") != NULL;
	if (quote)
		fputc('"', f);
	/* A spreadsheet would run the cell as a formula (CSV injection). */
	if (s[0] && strchr("=+-@\t\r", s[0]))
		fputc('\'', f);
	if (!quote) {
		fputs(s, f);
		return;
	}
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void csv_hex(FILE *f, const uint8_t *b, size_t n, bool present)
{
	char hex[2 * KJ_RECORD_UID_MAX + 1];

	if (!present)
		return;
	kj_hex_encode(b, n, hex);
	fputs(hex, f);
}

static void csv_u64(FILE *f, uint64_t v, bool present)
{
	if (present)
		fprintf(f, "%llu", (unsigned long long)v);
}

static const char csv_header[] =
	"seq,time,kind,job,job_seq,customer,product,batch,operator,result,"
	"site,socket,uid,hwrev,attempt,serial,cred_index,cert_sha256,"
	"fw_version,fw_sha256,readback,site_code,work_order_sha256,quantity,"
	"ok_count,failed_count\n";

static void csv_row(FILE *f, const struct kj_record *r)
{
	bool dev = r->kind == KJ_REC_DEVICE, start = r->kind == KJ_REC_JOB_START;
	bool end = r->kind == KJ_REC_JOB_END;
	char t[KJ_RECORD_TIME_LEN + 1] = "";

	if (kj_record_format_time(r->time_ms, t))
		t[0] = '\0'; /* a parsed record always has a valid time */
	fprintf(f, "%llu,%s,%s,", (unsigned long long)r->seq, t,
		kj_record_kind_name(r->kind));
	csv_str(f, r->job);
	fprintf(f, ",%llu,", (unsigned long long)r->job_seq);
	csv_str(f, r->customer);
	fputc(',', f);
	csv_str(f, r->product);
	fputc(',', f);
	csv_str(f, r->batch);
	fputc(',', f);
	csv_str(f, r->operator_id);
	fprintf(f, ",%s,", start ? "" : kj_result_name(r->result));
	csv_str(f, dev ? r->site : NULL);
	fputc(',', f);
	csv_u64(f, r->socket, dev);
	fputc(',', f);
	csv_hex(f, r->uid, r->uid_len, dev);
	fputc(',', f);
	csv_str(f, dev ? r->hwrev : NULL);
	fputc(',', f);
	csv_u64(f, r->attempt, dev && r->has_attempt);
	fputc(',', f);
	csv_str(f, dev ? r->serial : NULL);
	fputc(',', f);
	csv_u64(f, r->cred_index, dev && r->has_cred);
	fputc(',', f);
	csv_hex(f, r->cert_sha256, 32, dev && r->has_cred);
	fputc(',', f);
	csv_str(f, end ? NULL : r->fw_version);
	fputc(',', f);
	csv_hex(f, r->fw_sha256, 32, !end);
	fputc(',', f);
	csv_hex(f, r->readback, 32, dev && r->has_readback);
	fputc(',', f);
	csv_u64(f, r->site_code, dev && r->result == KJ_RES_SITE_ABORT);
	fputc(',', f);
	csv_hex(f, r->work_order_sha256, 32, start);
	fputc(',', f);
	csv_u64(f, r->quantity, start);
	fputc(',', f);
	csv_u64(f, r->ok_count, end);
	fputc(',', f);
	csv_u64(f, r->failed_count, end);
	fputc('\n', f);
}

/* ---- export / recall ---------------------------------------------------------- */

static bool matches(const struct audit_args *a, const struct kj_record *r)
{
	char hex[65];

	if (a->fk == F_NONE)
		return true;
	if (r->kind != KJ_REC_DEVICE || (!a->all && r->result != KJ_RES_OK))
		return false;
	switch (a->fk) {
	case F_FW_SHA:
		kj_hex_encode(r->fw_sha256, 32, hex);
		return !strcmp(hex, a->fval);
	case F_FW_VERSION:
		return !strcmp(r->fw_version, a->fval);
	case F_BATCH:
		return !strcmp(r->batch, a->fval);
	case F_SERIAL:
		return r->serial && !strcmp(r->serial, a->fval);
	case F_UID:
		return r->uid_len == a->fbin_len &&
		       !memcmp(r->uid, a->fbin, r->uid_len);
	default:
		return false;
	}
}

static int emit_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	struct out *o = ctx;
	struct kj_record r;

	/* Parsing checks every leaf on the way: an export never carries a
	 * record the verifier would refuse. */
	if (kj_record_parse(jcs, len, &r)) {
		kj_err("%s: record %llu is not canonical: run `kinject audit "
		       "verify'", o->a->state, (unsigned long long)seq);
		return -EBADMSG;
	}
	if (matches(o->a, &r)) {
		if (o->a->json) {
			fputs(o->n ? ",\n" : "\n", o->f);
			fwrite(jcs, 1, len, o->f);
		} else {
			csv_row(o->f, &r);
		}
		o->n++;
	}
	kj_record_release(&r);
	return 0;
}

static int run_export(struct kj_journal *j, const struct audit_args *a)
{
	struct out o = { .f = stdout, .a = a };
	int rc;

	if (a->out_path && !(o.f = fopen(a->out_path, "w"))) {
		kj_err("%s: %m", a->out_path);
		return KJ_EXIT_ERROR;
	}
	fputs(a->json ? "[" : csv_header, o.f);
	rc = kj_journal_foreach_record(j, 0, a->job, emit_cb, &o);
	if (a->json)
		fputs(o.n ? "\n]\n" : "]\n", o.f);
	if (fflush(o.f) || ferror(o.f)) {
		kj_err("%s: write failed: %m", a->out_path ? a->out_path
							   : "stdout");
		rc = -EIO;
	}
	if (a->out_path && fclose(o.f) && !rc) {
		kj_err("%s: %m", a->out_path);
		rc = -EIO;
	}
	if (!rc)
		kj_info("audit: %llu records", (unsigned long long)o.n);
	return rc ? KJ_EXIT_ERROR : KJ_EXIT_OK;
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

/* ---- arguments ------------------------------------------------------------------- */

enum {
	OPT_STATE = 256, OPT_FORMAT, OPT_JOB, OPT_OUT, OPT_ALL, OPT_FW_SHA,
	OPT_FW_VERSION, OPT_BATCH, OPT_SERIAL, OPT_UID, OPT_AK_PUB,
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
	{ NULL, 0, NULL, 0 },
};

static int set_filter(struct audit_args *a, enum filter_kind k, const char *v)
{
	uint8_t h[32];
	size_t n = strlen(v);

	if (a->fk != F_NONE) {
		kj_err("audit recall: give one of --firmware-sha256, "
		       "--firmware-version, --batch, --serial, --uid");
		return -EINVAL;
	}
	if (k == F_FW_SHA && (n != 64 || kj_hex_decode(v, h, 32) ||
			      strspn(v, "0123456789abcdef") != 64)) {
		kj_err("--firmware-sha256: `%s' is not 64 lowercase hex "
		       "digits", v);
		return -EINVAL;
	}
	if (k == F_UID) {
		if (n % 2 || n < 2 || n > 2 * KJ_RECORD_UID_MAX ||
		    kj_hex_decode(v, a->fbin, n / 2)) {
			kj_err("--uid: `%s' is not 1..64 bytes of hex", v);
			return -EINVAL;
		}
		a->fbin_len = n / 2;
	}
	a->fk = k;
	a->fval = v;
	return 0;
}

static int parse_opt(struct audit_args *a, int c, const char *v)
{
	switch (c) {
	case OPT_STATE: a->state = v; return 0;
	case OPT_JOB: a->job = v; return 0;
	case OPT_OUT: a->out_path = v; return 0;
	case OPT_AK_PUB: a->ak_pub = v; return 0;
	case OPT_ALL: a->all = true; return 0;
	case OPT_FW_SHA: return set_filter(a, F_FW_SHA, v);
	case OPT_FW_VERSION: return set_filter(a, F_FW_VERSION, v);
	case OPT_BATCH: return set_filter(a, F_BATCH, v);
	case OPT_SERIAL: return set_filter(a, F_SERIAL, v);
	case OPT_UID: return set_filter(a, F_UID, v);
	case OPT_FORMAT:
		if (strcmp(v, "csv") && strcmp(v, "json")) {
			kj_err("--format: `%s' is neither csv nor json", v);
			return -EINVAL;
		}
		a->json = !strcmp(v, "json");
		return 0;
	default:
		return -EINVAL;
	}
}

static int parse_args(int argc, char **argv, const char *action,
		      struct audit_args *a)
{
	int c;

	a->state = "./kinject-state";
	opterr = 1;
	optind = 2; /* argv[0] = "audit", argv[1] = the action */
	while ((c = getopt_long(argc, argv, "", audit_options, NULL)) != -1)
		if (c == '?' || parse_opt(a, c, optarg))
			return -EINVAL;
	if (optind < argc) {
		kj_err("audit %s: unexpected argument `%s'", action,
		       argv[optind]);
		return -EINVAL;
	}
	a->recall = !strcmp(action, "recall");
	if (a->recall != (a->fk != F_NONE) || (!a->recall && a->all)) {
		kj_err("audit %s: %s", action, a->recall
		       ? "needs one of --firmware-sha256, --firmware-version, "
			 "--batch, --serial, --uid"
		       : "recall criteria and --all belong to `audit recall'");
		return -EINVAL;
	}
	return 0;
}

int cmd_audit_main(int argc, char **argv)
{
	struct audit_args a = { 0 };
	struct kj_journal *j;
	const char *action = argc > 1 ? argv[1] : "";
	int rc;

	if (strcmp(action, "export") && strcmp(action, "recall") &&
	    strcmp(action, "verify")) {
		kj_err("audit: unknown action `%s': export, recall or verify",
		       action);
		kj_print_usage(kj_find_command("audit"), 1);
		return KJ_EXIT_USAGE;
	}
	if (parse_args(argc, argv, action, &a))
		return KJ_EXIT_USAGE;
	if (!strcmp(action, "verify") && (a.job || a.out_path || a.json)) {
		kj_err("audit verify: takes --state and --ak-pub only");
		return KJ_EXIT_USAGE;
	}
	if (kj_journal_open(a.state, KJ_JOURNAL_RDONLY, &j))
		return KJ_EXIT_ERROR;
	if (!strcmp(action, "verify"))
		rc = run_verify(j, &a);
	else
		rc = run_export(j, &a);
	kj_journal_close(j);
	return rc;
}
