// SPDX-License-Identifier: Apache-2.0
/*
 * kinject audit export, recall and jobs: rows for the quality team's own
 * tools (SPEC.md §6).  Every row carries the appliance's AK name, so the
 * exports of several appliances can be concatenated and still tell which
 * appliance (and which TPM) attests each device.  The CSV columns are a
 * contract, listed in docs/AUDIT.md: new columns go at the end.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/kinject.h"
#include "base/log.h"
#include "base/util.h"
#include "journal/record.h"
#include "audit_int.h"

struct out {
	FILE *f;
	const char *state;
	const char *ak_name;
	bool json;
	uint64_t n;
};

/* ---- CSV (RFC 4180) ------------------------------------------------------ */

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
	"ak_name,seq,time,kind,job,job_seq,customer,product,batch,operator,"
	"result,site,socket,uid,hwrev,attempt,serial,cred_index,cert_sha256,"
	"fw_version,fw_sha256,readback,site_code,work_order_sha256,quantity,"
	"ok_count,failed_count\r\n";

static void csv_device(FILE *f, const struct kj_record *r, bool dev)
{
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
}

static void csv_row(FILE *f, const char *ak_name, const struct kj_record *r)
{
	bool dev = r->kind == KJ_REC_DEVICE;
	bool start = r->kind == KJ_REC_JOB_START;
	bool end = r->kind == KJ_REC_JOB_END;
	char t[KJ_RECORD_TIME_LEN + 1] = "";

	if (kj_record_format_time(r->time_ms, t))
		t[0] = '\0'; /* a parsed record always has a valid time */
	fprintf(f, "%s,%llu,%s,%s,", ak_name, (unsigned long long)r->seq, t,
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
	csv_device(f, r, dev);
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
	fputs("\r\n", f);
}

/* s as a JSON string (jansson escapes it); malloc'd, NULL on ENOMEM. */
static char *json_quote(const char *s)
{
	json_t *v = json_string(s);
	char *e = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;

	json_decref(v);
	return e;
}

/* ---- rows ---------------------------------------------------------------- */

static int emit_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	struct out *o = ctx;
	struct kj_record r;

	/* Parsing checks every leaf on the way: an export never carries a
	 * record the verifier would refuse. */
	if (kj_record_parse(jcs, len, &r)) {
		kj_err("%s: record %llu is not canonical: run `kinject audit "
		       "verify'", o->state, (unsigned long long)seq);
		return -EBADMSG;
	}
	if (o->json) {
		/* The leaf verbatim, so a row can be checked against the
		 * evidence bundle byte for byte. */
		fprintf(o->f, "%s{\"ak_name\":\"%s\",\"record\":",
			o->n ? ",\n" : "\n", o->ak_name);
		fwrite(jcs, 1, len, o->f);
		fputc('}', o->f);
	} else {
		csv_row(o->f, o->ak_name, &r);
	}
	o->n++;
	kj_record_release(&r);
	return 0;
}

static int write_rows(struct kj_journal *j, struct out *o,
		      const struct kj_journal_filter *flt)
{
	int rc;

	fputs(o->json ? "[" : csv_header, o->f);
	rc = kj_journal_query(j, flt, emit_cb, o);
	if (o->json)
		fputs(o->n ? "\n]\n" : "]\n", o->f);
	return rc;
}

int kj_audit_write_csv(struct kj_journal *j, const char *state,
		       const struct kj_journal_filter *flt, FILE *f)
{
	char ak[KJ_AK_NAME_HEX];
	struct out o = { .f = f, .state = state, .ak_name = ak };

	KJ_TRY(kj_audit_ak_name(state, ak));
	KJ_TRY(write_rows(j, &o, flt));
	return (int)o.n;
}

static int count_cb(void *ctx, const char *job, uint64_t n)
{
	FILE *f = ctx;

	fputs("  ", f);
	csv_str(f, job);
	fprintf(f, ": %llu\n", (unsigned long long)n);
	return 0;
}

static int count_row(void *ctx, const char *job, uint64_t n)
{
	struct out *o = ctx;

	if (o->json) {
		char *e = json_quote(job);

		if (!e)
			return -ENOMEM;
		fprintf(o->f, "%s{\"ak_name\":\"%s\",\"job\":%s,"
			"\"devices\":%llu}", o->n ? ",\n" : "\n", o->ak_name,
			e, (unsigned long long)n);
		free(e);
	} else {
		fprintf(o->f, "%s,", o->ak_name);
		csv_str(o->f, job);
		fprintf(o->f, ",%llu\r\n", (unsigned long long)n);
	}
	o->n++;
	return 0;
}

/* recall --counts: the jobs concerned and how many devices each. */
static int write_counts(struct kj_journal *j, struct out *o,
			const struct kj_journal_filter *flt)
{
	int rc;

	fputs(o->json ? "[" : "ak_name,job,devices\r\n", o->f);
	rc = kj_journal_query_counts(j, flt, count_row, o);
	if (o->json)
		fputs(o->n ? "\n]\n" : "]\n", o->f);
	return rc < 0 ? rc : 0;
}

int kj_audit_export(struct kj_journal *j, const struct audit_args *a)
{
	char ak[KJ_AK_NAME_HEX];
	struct out o = { .state = a->state, .ak_name = ak, .json = a->json };
	bool recall = !strcmp(a->action, "recall");
	int rc;

	if (a->f.job && kj_audit_job_exists(j, a->f.job) <= 0)
		return KJ_EXIT_ERROR;
	if (kj_audit_ak_name(a->state, ak) < 0)
		return KJ_EXIT_ERROR;
	if (!(o.f = kj_audit_open_out(a->out_path)))
		return KJ_EXIT_ERROR;
	rc = a->counts ? write_counts(j, &o, &a->f) : write_rows(j, &o, &a->f);
	if (kj_audit_close_out(o.f, a->out_path) < 0 && !rc)
		rc = -EIO;
	if (rc)
		return KJ_EXIT_ERROR;
	if (a->counts)
		return KJ_EXIT_OK;
	fprintf(stderr, "audit %s: %llu %s%s\n", a->action,
		(unsigned long long)o.n, recall ? "device" : "record",
		o.n == 1 ? "" : "s");
	/* A recall is answered per job: the job names the batch, the
	 * customer and the work order to call back. */
	if (recall && o.n && kj_journal_query_counts(j, &a->f, count_cb,
						     stderr) < 0)
		return KJ_EXIT_ERROR;
	return KJ_EXIT_OK;
}

/* ---- jobs ---------------------------------------------------------------- */

static int job_row(void *ctx, const struct kj_journal_job_info *ji)
{
	char fw[65], wo[65], t0[KJ_RECORD_TIME_LEN + 1] = "";
	char t1[KJ_RECORD_TIME_LEN + 1] = "";
	struct out *o = ctx;
	const char *s[] = { ji->job, ji->state, ji->customer, ji->product,
			    ji->batch, ji->operator_id, ji->fw_version };

	kj_hex_encode(ji->fw_sha256, 32, fw);
	kj_hex_encode(ji->work_order_sha256, 32, wo);
	if (ji->records && (kj_record_format_time(ji->first_ms, t0) ||
			    kj_record_format_time(ji->last_ms, t1)))
		t0[0] = t1[0] = '\0';
	if (o->json) {
		fprintf(o->f, "%s{\"ak_name\":\"%s\"", o->n ? ",\n" : "\n",
			o->ak_name);
		for (size_t i = 0; i < KJ_ARRAY_SIZE(s); i++) {
			static const char *const k[] = {
				"job", "state", "customer", "product", "batch",
				"operator", "fw_version" };
			char *e = json_quote(s[i]);

			if (!e)
				return -ENOMEM;
			fprintf(o->f, ",\"%s\":%s", k[i], e);
			free(e);
		}
	} else {
		fprintf(o->f, "%s", o->ak_name);
		for (size_t i = 0; i < KJ_ARRAY_SIZE(s); i++) {
			fputc(',', o->f);
			csv_str(o->f, s[i]);
		}
	}
	fprintf(o->f, o->json ? ",\"fw_sha256\":\"%s\",\"work_order_sha256\":"
		"\"%s\",\"quantity\":%llu,\"ok\":%llu,\"failed\":%llu,"
		"\"records\":%llu,\"first_time\":\"%s\",\"last_time\":\"%s\"}"
		: ",%s,%s,%llu,%llu,%llu,%llu,%s,%s\r\n", fw, wo,
		(unsigned long long)ji->quantity, (unsigned long long)ji->ok,
		(unsigned long long)ji->failed,
		(unsigned long long)ji->records, t0, t1);
	o->n++;
	return 0;
}

int kj_audit_jobs(struct kj_journal *j, const struct audit_args *a)
{
	char ak[KJ_AK_NAME_HEX];
	struct out o = { .state = a->state, .ak_name = ak, .json = a->json };
	int rc;

	if (kj_audit_ak_name(a->state, ak) < 0 ||
	    !(o.f = kj_audit_open_out(a->out_path)))
		return KJ_EXIT_ERROR;
	fputs(a->json ? "[" : "ak_name,job,state,customer,product,batch,"
	      "operator,fw_version,fw_sha256,work_order_sha256,quantity,ok,"
	      "failed,records,first_time,last_time\r\n", o.f);
	rc = kj_journal_foreach_job(j, a->f.job, job_row, &o);
	if (a->json)
		fputs(o.n ? "\n]\n" : "]\n", o.f);
	if (kj_audit_close_out(o.f, a->out_path) < 0 && rc >= 0)
		rc = -EIO;
	return rc < 0 ? KJ_EXIT_ERROR : KJ_EXIT_OK;
}
