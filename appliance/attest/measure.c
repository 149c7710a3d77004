// SPDX-License-Identifier: Apache-2.0
/*
 * Job-start measurements (EVIDENCE.md §4, measure.h): epoch decision from
 * the PCRs and the journal's event log, void-entry recovery, and one
 * durable-entry-then-extend step per measured object.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "measure.h"
#include "base/array.h"
#include "base/log.h"
#include "base/util.h"

struct ev_vec {
	struct kj_event *ev;
	size_t n, cap;
};

static int load_cb(void *ctx, uint64_t index, uint32_t epoch, uint32_t pcr,
		   const char *name, const uint8_t digest[32], bool is_void)
{
	struct ev_vec *v = ctx;
	struct kj_event *e;

	if (index != v->n) {
		kj_err("journal: event log entry %" PRIu64 " out of order (expected %zu)",
		       index, v->n);
		return -EBADMSG;
	}
	if (kj_grow(&v->ev, &v->cap, v->n + 1, 16))
		return -ENOMEM;
	e = &v->ev[v->n++];
	memset(e, 0, sizeof(*e));
	e->epoch = epoch;
	e->pcr = pcr;
	if (strlen(name) >= sizeof(e->name)) {
		kj_err("journal: event log entry %" PRIu64 ": name too long",
		       index);
		return -EBADMSG;
	}
	strcpy(e->name, name);
	memcpy(e->digest, digest, 32);
	e->is_void = is_void;
	return 0;
}

int kj_measure_load_events(struct kj_journal *j, struct kj_event **ev,
			   size_t *n)
{
	struct ev_vec v = { 0 };
	int rc = kj_journal_foreach_event(j, load_cb, &v);

	if (rc < 0) {
		free(v.ev);
		return rc;
	}
	*ev = v.ev;
	*n = v.n;
	return 0;
}

int kj_measure_extend(struct kj_tpm *tpm, struct kj_journal *j,
		      uint32_t epoch, uint32_t pcr, const char *name,
		      const uint8_t digest[32])
{
	char hex[65];

	/* §4: the entry is durable before its extend is sent. */
	KJ_TRY(kj_journal_add_event(j, epoch, pcr, name, digest, NULL));
	KJ_TRY(kj_journal_commit(j));
	KJ_TRY(kj_tpm_pcr_extend(tpm, pcr, digest));
	kj_hex_encode(digest, 32, hex);
	kj_info("measured %s into PCR %u (epoch %u): %s", name, pcr, epoch,
		hex);
	return 0;
}

int kj_measure_epoch(struct kj_tpm *tpm, struct kj_journal *j,
		     uint32_t pcr_mask, struct kj_measure_out *out)
{
	uint8_t pcrs[KJ_TPM_PCR_COUNT][32];
	enum kj_epoch_decision d;
	struct kj_event *ev = NULL;
	size_t n = 0, void_index = 0;
	uint32_t epoch;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!pcr_mask)
		pcr_mask = KJ_PCR_DEFAULT_MASK;
	if (kj_journal_pending(j)) {
		kj_err("measure: the journal has uncommitted writes");
		return -EINVAL;
	}
	KJ_TRY(kj_tpm_pcr_read(tpm, pcr_mask, pcrs));
	KJ_TRY(kj_measure_load_events(j, &ev, &n));
	KJ_TRY_GOTO(rc, kj_eventlog_decide(ev, n, pcr_mask, pcrs, &d, &epoch,
					   &void_index), out);
	switch (d) {
	case KJ_EPOCH_BROKEN:
		kj_err("measure: TPM %s: PCRs do not match the journal's event log (%zu entries): the measurement chain is broken; refusing to start",
		       kj_tpm_tcti(tpm), n);
		rc = -EPERM;
		goto out;
	case KJ_EPOCH_CONTINUE_VOID:
		kj_warn("measure: event log entry %zu (%s) never reached the TPM (crash before its extend): marking it void",
			void_index, ev[void_index].name);
		KJ_TRY_GOTO(rc, kj_journal_void_event(j, void_index), out);
		KJ_TRY_GOTO(rc, kj_journal_commit(j), out);
		out->voided = 1;
		break;
	case KJ_EPOCH_NEW:
	case KJ_EPOCH_CONTINUE:
		break;
	default:
		rc = -EINVAL;
		goto out;
	}
	out->decision = d;
	out->epoch = epoch;
	kj_info("measure: epoch %u: %s", epoch, kj_epoch_decision_name(d));
	rc = 0;
out:
	free(ev);
	return rc;
}

/* The module file of the loaded kinject.ko; 0 with *path "" if none. */
static int find_kmod(const struct kj_measure_in *in, char *path, size_t size)
{
	static const char *const subdirs[] = { "extra", "updates" };
	struct utsname u;
	struct stat sb;

	path[0] = 0;
	if (in->kmod_path) {
		if (strlen(in->kmod_path) >= size)
			return -ENAMETOOLONG;
		strcpy(path, in->kmod_path);
		return 0;
	}
	if (stat(KJ_MEASURE_KMOD_SYSFS, &sb) < 0)
		return 0; /* not loaded: nothing to measure */
	if (uname(&u) < 0)
		return -errno;
	for (size_t i = 0; i < KJ_ARRAY_SIZE(subdirs); i++) {
		snprintf(path, size, "/lib/modules/%s/%s/kinject.ko",
			 u.release, subdirs[i]);
		if (!stat(path, &sb))
			return 0;
	}
	kj_err("measure: kinject.ko is loaded (%s) but no module file under /lib/modules/%s/{extra,updates}: loaded code would go unmeasured",
	       KJ_MEASURE_KMOD_SYSFS, u.release);
	return -ENOENT;
}

static int measure_code(struct kj_tpm *tpm, struct kj_journal *j,
			const struct kj_measure_in *in, uint32_t epoch,
			uint64_t *added)
{
	const char *exe = in->exe_path ? in->exe_path : "/proc/self/exe";
	char kmod[PATH_MAX];
	uint8_t d[32];

	KJ_TRY(kj_measure_file(exe, d));
	KJ_TRY(kj_measure_extend(tpm, j, epoch, KJ_PCR_CODE, KJ_EV_KINJECT,
				 d));
	(*added)++;
	KJ_TRY(find_kmod(in, kmod, sizeof(kmod)));
	if (kmod[0]) {
		KJ_TRY(kj_measure_file(kmod, d));
		KJ_TRY(kj_measure_extend(tpm, j, epoch, KJ_PCR_CODE,
					 KJ_EV_KMOD, d));
		(*added)++;
	}
	return 0;
}

static int measure_policy(struct kj_tpm *tpm, struct kj_journal *j,
			  const struct kj_measure_in *in, uint32_t epoch,
			  uint64_t *added)
{
	char path[PATH_MAX];
	struct stat sb;
	uint8_t d[32];

	if (in->work_order) {
		kj_sha256(in->work_order, in->work_order_len, d);
		KJ_TRY(kj_measure_extend(tpm, j, epoch, KJ_PCR_POLICY,
					 KJ_EV_WORK_ORDER, d));
		(*added)++;
	}
	if (in->product) {
		kj_sha256(in->product, in->product_len, d);
		KJ_TRY(kj_measure_extend(tpm, j, epoch, KJ_PCR_POLICY,
					 KJ_EV_PRODUCT, d));
		(*added)++;
	}
	if (!in->state_dir)
		return 0;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", in->state_dir,
			     KJ_MEASURE_OFFICERS) >= sizeof(path))
		return -ENAMETOOLONG;
	if (stat(path, &sb) < 0)
		return 0; /* no ceremony yet: no officer set to measure */
	KJ_TRY(kj_measure_file(path, d));
	KJ_TRY(kj_measure_extend(tpm, j, epoch, KJ_PCR_POLICY, KJ_EV_OFFICERS,
				 d));
	(*added)++;
	return 0;
}

/* KJ_META_BOOT_EPOCH names this epoch (and it is not a new one). */
static int boot_epoch_is(struct kj_journal *j,
			 const struct kj_measure_out *out, bool *boot)
{
	uint8_t *v = NULL;
	size_t len = 0;
	char want[16];
	int rc;

	*boot = false;
	if (out->decision == KJ_EPOCH_NEW)
		return 0;
	rc = kj_journal_meta_get(j, KJ_META_BOOT_EPOCH, &v, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	snprintf(want, sizeof(want), "%u", out->epoch);
	*boot = len == strlen(want) && !memcmp(v, want, len);
	free(v);
	return 0;
}

int kj_measure_code_by_boot(struct kj_tpm *tpm, struct kj_journal *j,
			    bool *boot)
{
	struct kj_measure_out out;

	KJ_TRY(kj_measure_epoch(tpm, j, KJ_PCR_DEFAULT_MASK, &out));
	return boot_epoch_is(j, &out, boot);
}

/* Who measured the code: the init (KJ_META_BOOT_EPOCH) or this job. */
static int record_code_by(struct kj_journal *j, const struct kj_measure_in *in,
			  const struct kj_measure_out *out)
{
	char v[16];
	const char *key = in->boot ? KJ_META_BOOT_EPOCH : KJ_META_CODE_BY;

	if (in->boot)
		snprintf(v, sizeof(v), "%u", out->epoch);
	else
		strcpy(v, out->code_by_boot ? "boot" : "self");
	KJ_TRY(kj_journal_meta_set(j, key, v, strlen(v)));
	return kj_journal_commit(j);
}

int kj_measure_job_start(struct kj_tpm *tpm, struct kj_journal *j,
			 const struct kj_measure_in *in,
			 struct kj_measure_out *out)
{
	uint32_t mask = in->pcr_mask ? in->pcr_mask : KJ_PCR_DEFAULT_MASK;

	/* The epoch is decided on both PCRs even when measuring one. */
	KJ_TRY(kj_measure_epoch(tpm, j, mask | KJ_PCR_DEFAULT_MASK, out));
	if (!in->boot)
		KJ_TRY(boot_epoch_is(j, out, &out->code_by_boot));
	if (out->code_by_boot)
		kj_info("measure: the image's init measured the code in epoch %u: not measured again",
			out->epoch);
	else if (mask & KJ_PCR_BIT(KJ_PCR_CODE))
		KJ_TRY(measure_code(tpm, j, in, out->epoch, &out->added));
	if (mask & KJ_PCR_BIT(KJ_PCR_CODE))
		KJ_TRY(record_code_by(j, in, out));
	if (mask & KJ_PCR_BIT(KJ_PCR_POLICY))
		KJ_TRY(measure_policy(tpm, j, in, out->epoch, &out->added));
	return 0;
}
