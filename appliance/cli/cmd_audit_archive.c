// SPDX-License-Identifier: Apache-2.0
/*
 * kinject audit archive: what a closed job needs to be checked again in
 * ten years, when this appliance, its software and maybe its vendor are
 * gone (SPEC.md §6, the CRA's retention).  Plain files in one folder:
 * the evidence bundle, the records as CSV, the report, the work order and
 * its signature, the appliance's AK (and EK, transport certificate and
 * ceremony transcript when there are), each checkpoint's quote as the
 * bytes tpm2-tools reads, a README saying how to verify it all, and
 * SHA256SUMS.  Only a job that has ended: an open job's package would be
 * out of date the moment it is written.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/kinject.h"
#include "base/log.h"
#include "base/util.h"
#include "evidence/evidence.h"
#include "audit_int.h"

#define FILE_MAX (64u << 20)

struct pkg {
	const char *dir;
	FILE *sums;            /* SHA256SUMS as it grows (memory stream) */
	char *sums_buf;
	size_t sums_len;
	struct kj_journal_job_info ji;
	char job[256], state[32];
};

/*
 * One file of the package and its SHA256SUMS line.  Written plainly: a
 * long job has tens of thousands of checkpoint files, so one syncfs()
 * before SHA256SUMS (written last, atomically) makes them all durable.
 */
static int put(struct pkg *p, const char *name, const void *data, size_t len)
{
	char path[PATH_MAX], hex[65];
	const uint8_t *b = data;
	uint8_t h[32];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", p->dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		kj_err("archive: %s: %m", path);
		return -errno;
	}
	while (len) {
		ssize_t n = write(fd, b, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			kj_err("archive: %s: write: %m", path);
			close(fd);
			return -EIO;
		}
		b += n;
		len -= (size_t)n;
	}
	if (close(fd)) {
		kj_err("archive: %s: %m", path);
		return -EIO;
	}
	kj_sha256(data, (size_t)(b - (const uint8_t *)data), h);
	kj_hex_encode(h, 32, hex);
	fprintf(p->sums, "%s  %s\n", hex, name);
	return 0;
}

/* Copy src into the package as name; a missing optional file is fine. */
static int copy_in(struct pkg *p, const char *src, const char *name,
		   bool optional)
{
	uint8_t *buf;
	size_t len;
	int rc;

	if (optional && access(src, F_OK) < 0)
		return 0;
	KJ_TRY(kj_read_file(src, FILE_MAX, &buf, &len));
	rc = put(p, name, buf, len);
	free(buf);
	return rc;
}

static int copy_state(struct pkg *p, const char *state, const char *name,
		      bool optional)
{
	char src[PATH_MAX];

	snprintf(src, sizeof(src), "%s/%s", state, name);
	return copy_in(p, src, strrchr(name, '/') ? strrchr(name, '/') + 1
						   : name, optional);
}

/* The SHA256SUMS line of a file written by someone else (the evidence
 * export, which writes it durably itself). */
static int adopt(struct pkg *p, const char *name)
{
	char path[PATH_MAX], hex[65];
	uint8_t *buf, h[32];
	size_t len;

	snprintf(path, sizeof(path), "%s/%s", p->dir, name);
	KJ_TRY(kj_read_file(path, KJ_EVIDENCE_FILE_MAX, &buf, &len));
	kj_sha256(buf, len, h);
	free(buf);
	kj_hex_encode(h, 32, hex);
	fprintf(p->sums, "%s  %s\n", hex, name);
	return 0;
}

/* The CSV or the report through a memory stream, then put(). */
static int put_stream(struct pkg *p, struct kj_journal *j, const char *state,
		      const char *name, bool report)
{
	struct kj_journal_filter f = { .job = p->job, .kinds = KJ_KINDS_ALL };
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	int rc;

	if (!m) {
		kj_err("archive: out of memory");
		return -ENOMEM;
	}
	rc = report ? kj_audit_write_report(j, state, p->job, m)
		    : kj_audit_write_csv(j, state, &f, m);
	if (fclose(m) && rc >= 0)
		rc = -ENOMEM;
	if (rc >= 0)
		rc = put(p, name, buf, len);
	free(buf);
	return rc;
}

/* ---- checkpoints as tpm2_checkquote reads them --------------------------- */

struct ck {
	struct pkg *p;
	uint64_t first_seq, last_seq;
	bool done;
	int n;
};

static int ck_cb(void *ctx, const struct kj_journal_checkpoint *c)
{
	struct ck *k = ctx;
	uint8_t in[20 + 8 + 32 + 8], qd[32];
	char name[64], hex[66];

	if (k->done || c->tree_size <= k->first_seq)
		return 0;
	k->done = c->tree_size > k->last_seq;
	/* qualifyingData, EVIDENCE.md §4. */
	memcpy(in, "KINJECT-CHECKPOINT-1", 20);
	kj_put_u64be(in + 20, c->tree_size);
	memcpy(in + 28, c->root, 32);
	kj_put_u64be(in + 60, c->nv_counter);
	kj_sha256(in, sizeof(in), qd);
	kj_hex_encode(qd, 32, hex);
	hex[64] = '\n';
	hex[65] = '\0';
	snprintf(name, sizeof(name), "checkpoints/%04d.attest", k->n);
	KJ_TRY(put(k->p, name, c->quote_attest, c->attest_len));
	snprintf(name, sizeof(name), "checkpoints/%04d.sig", k->n);
	KJ_TRY(put(k->p, name, c->quote_sig, c->sig_len));
	snprintf(name, sizeof(name), "checkpoints/%04d.qualifying", k->n);
	KJ_TRY(put(k->p, name, hex, 65));
	k->n++;
	return 0;
}

static int put_checkpoints(struct pkg *p, struct kj_journal *j)
{
	struct ck k = { .p = p, .first_seq = p->ji.first_seq,
			.last_seq = p->ji.last_seq };
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s/checkpoints", p->dir);
	KJ_TRY(kj_mkdir_p(dir, 0755));
	KJ_TRY(kj_journal_foreach_checkpoint(j, 0, ck_cb, &k));
	return k.n;
}

static const char readme_fmt[] =
	"Retention package of job %s (kinject %s)\n"
	"============================================================\n\n"
	"What is here\n"
	"  evidence.json        the evidence bundle (EVIDENCE.md section 5):\n"
	"                       every record of the job, its inclusion proof,\n"
	"                       the TPM checkpoints that attest them\n"
	"  records.csv          the same records as CSV (columns: docs/AUDIT.md)\n"
	"  report.html          the job for people: yield, failures, chart\n"
	"  work-order.json      the customer's work order, and its signature\n"
	"  work-order.json.sig  (CMS, DER)\n"
	"  ak.pem, ak.pub       the appliance's TPM attestation key (PEM, and\n"
	"                       TPM2B_PUBLIC as tpm2-tools writes it)\n"
	"  ek.pem               the TPM's endorsement certificate, if it has one\n"
	"  checkpoints/NNNN.*   each checkpoint's quote (.attest, .sig) and the\n"
	"                       qualifying data it must carry (.qualifying, hex)\n"
	"  SHA256SUMS           the SHA-256 of every file above\n\n"
	"1. Nothing changed since archiving\n"
	"     sha256sum -c SHA256SUMS\n\n"
	"2. With kinject (any later version reads this bundle)\n"
	"     kinject verify evidence.json --ak ak.pem --work-order "
	"work-order.json\n"
	"   checks every record's inclusion proof, every quote, the event\n"
	"   log, the counts against the work order.  Exit 0 = all pass.\n\n"
	"3. With tpm2-tools alone (no kinject)\n"
	"   Each quote is signed by the TPM's attestation key and carries as\n"
	"   qualifying data SHA-256(\"KINJECT-CHECKPOINT-1\" || tree_size ||\n"
	"   log root || TPM counter), so a valid quote vouches for the log\n"
	"   root of the records up to that size:\n"
	"     for a in checkpoints/*.attest; do n=${a%%.attest}\n"
	"       tpm2_checkquote -u ak.pem -m $a -s $n.sig -g sha256 \\\n"
	"         -q $(cat $n.qualifying) || echo \"FAILED: $n\"\n"
	"     done\n"
	"   The log root is the RFC 9162 Merkle tree of the records' JCS\n"
	"   bytes (evidence.json: records[].jcs), so any RFC 9162\n"
	"   implementation can recompute it.\n\n"
	"4. The work order is the customer's\n"
	"     openssl cms -verify -binary -inform DER -in work-order.json.sig \\\n"
	"       -content work-order.json -CAfile CUSTOMER-CA.pem -purpose any\n";

static int check_work_order(struct pkg *p, const char *path)
{
	uint8_t *buf, h[32];
	size_t len;
	int rc = 0;

	KJ_TRY(kj_read_file(path, FILE_MAX, &buf, &len));
	kj_sha256(buf, len, h);
	if (memcmp(h, p->ji.work_order_sha256, 32)) {
		kj_err("--work-order %s: not the work order of job %s (its "
		       "SHA-256 differs from the one in the journal)", path,
		       p->job);
		rc = -EINVAL;
	}
	free(buf);
	return rc;
}

static int job_cb(void *ctx, const struct kj_journal_job_info *ji)
{
	struct pkg *p = ctx;

	p->ji = *ji;
	snprintf(p->state, sizeof(p->state), "%s", ji->state);
	p->ji.state = p->state;
	p->ji.job = p->job;
	return 0;
}

/* Everything written so far on DIR's file system, durable at once. */
static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0 || syncfs(fd)) {
		kj_err("archive: %s: sync: %m", dir);
		rc = -EIO;
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

/* DIR must be new or empty: a package is written once, never merged. */
static int fresh_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return kj_mkdir_p(dir, 0755);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			closedir(d);
			kj_err("--out %s: not empty; give a new folder", dir);
			return -EEXIST;
		}
	closedir(d);
	return 0;
}

static int build(struct pkg *p, struct kj_journal *j,
		 const struct audit_args *a)
{
	char path[PATH_MAX], readme[4096];
	int n;

	KJ_TRY(check_work_order(p, a->work_order));
	KJ_TRY(fresh_dir(p->dir));
	snprintf(path, sizeof(path), "%s/evidence.json", p->dir);
	KJ_TRY(kj_evidence_export(a->state, p->job, path));
	KJ_TRY(adopt(p, "evidence.json"));
	KJ_TRY(put_stream(p, j, a->state, "records.csv", false));
	KJ_TRY(put_stream(p, j, a->state, "report.html", true));
	KJ_TRY(copy_in(p, a->work_order, "work-order.json", false));
	KJ_TRY(copy_in(p, a->work_order_sig, "work-order.json.sig", false));
	KJ_TRY(copy_state(p, a->state, "ak.pem", false));
	KJ_TRY(copy_state(p, a->state, "ak.pub", false));
	KJ_TRY(copy_state(p, a->state, "ek.pem", true));
	KJ_TRY(copy_state(p, a->state, "transport.pem", true));
	KJ_TRY(copy_state(p, a->state, "ceremony/transcript.json", true));
	n = put_checkpoints(p, j);
	if (n < 0)
		return n;
	snprintf(readme, sizeof(readme), readme_fmt, p->job, KJ_VERSION);
	KJ_TRY(put(p, "README.txt", readme, strlen(readme)));
	KJ_TRY(sync_dir(p->dir));
	if (fflush(p->sums)) {
		kj_err("archive: out of memory");
		return -ENOMEM;
	}
	snprintf(path, sizeof(path), "%s/SHA256SUMS", p->dir);
	KJ_TRY(kj_write_file_atomic(path, p->sums_buf, p->sums_len, 0644));
	fprintf(stderr, "audit archive: job %s in %s (%d checkpoints); "
		"README.txt says how to verify it\n", p->job, p->dir, n);
	return 0;
}

int kj_audit_archive(struct kj_journal *j, const struct audit_args *a)
{
	struct pkg *p = calloc(1, sizeof(*p));
	int n, rc = KJ_EXIT_ERROR;

	if (!p) {
		kj_err("archive: out of memory");
		return KJ_EXIT_ERROR;
	}
	p->dir = a->out_path;
	p->sums = open_memstream(&p->sums_buf, &p->sums_len);
	if (!p->sums) {
		kj_err("archive: out of memory");
		free(p);
		return KJ_EXIT_ERROR;
	}
	snprintf(p->job, sizeof(p->job), "%s", a->f.job);
	n = kj_journal_foreach_job(j, a->f.job, job_cb, p);
	if (n == 0)
		kj_err("--job %s: no such job in this journal; `kinject audit "
		       "jobs' lists them", a->f.job);
	else if (n > 0 && !strcmp(p->state, "running"))
		kj_err("job %s has not ended (no job_end record): archive it "
		       "once `kinject run' has finished it", a->f.job);
	else if (n > 0 && !build(p, j, a))
		rc = KJ_EXIT_OK;
	fclose(p->sums);
	free(p->sums_buf);
	free(p);
	return rc;
}
