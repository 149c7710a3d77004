/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A large journal made through the journal's own write path (reserve,
 * append, commit: the records are canonical and `audit verify' would
 * accept their order), for the recall test and the recall benchmark
 * (SPEC.md §6: under a second on 1,000,000 records).
 *
 * Jobs JOB-0..J-1; job k: firmware 3.1.5 (even k) or 3.2.0 (odd k), each
 * with its own SHA-256, batch LOT-(k % 5), serials AS + (k+1)*10^7 + i.
 * Every 50th device fails readback (after the offer).  Planted: the uid
 * KJ_GEN_UID completes in jobs 1, 4 and 7 and also fails readback once in
 * job 4 (a device reprogrammed across jobs).
 */
#ifndef KJ_JOURNAL_GEN_H
#define KJ_JOURNAL_GEN_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "journal/journal.h"
#include "journal/record.h"

#define KJ_GEN_UID "deadbeef0000002a"
#define KJ_GEN_T0_MS 1793527200000ull /* 2026-11-01T10:00:00Z */

struct kj_gen_job {
	uint64_t devices, ok;
	bool has_planted;
};

static inline void kj_gen_fw_sha(unsigned k, uint8_t out[32])
{
	memset(out, k % 2 ? 0xb2 : 0xa1, 32);
}

static inline bool kj_gen_is_planted(unsigned job)
{
	return job == 1 || job == 4 || job == 7;
}

static inline int kj_gen_device(struct kj_journal *j, unsigned k, uint64_t i,
				bool planted, enum kj_result res)
{
	struct kj_record r = { .kind = KJ_REC_DEVICE };
	struct kj_reservation rv;

	r.site = i % 2 ? "line1-b" : "line1-a";
	r.socket = (uint16_t)(i % 16);
	r.hwrev = i % 3 ? "B" : "C";
	r.uid_len = 8;
	if (planted) {
		if (kj_hex_decode(KJ_GEN_UID, r.uid, 8))
			return -1;
	} else {
		kj_put_u32be(r.uid, k);
		kj_put_u32be(r.uid + 4, (uint32_t)i);
	}
	if (kj_journal_reserve(j, &r, &rv))
		return -1;
	kj_record_set_reservation(&r, &rv);
	r.result = res;
	r.has_readback = res == KJ_RES_OK;
	memset(r.readback, 0x5a, 32);
	r.time_ms = KJ_GEN_T0_MS + k * 3600000ull + i * 2;
	return kj_journal_append_record(j, &r, NULL, NULL);
}

/* One job of n devices; *out gets its counts. */
static inline int kj_gen_job(struct kj_journal *j, unsigned k, uint64_t n,
			     struct kj_cred_ref *creds, struct kj_gen_job *out)
{
	char id[32], batch[32];
	struct kj_job_desc d = {
		.job = id, .customer = "acme", .product = "acme-sensor",
		.batch = batch, .operator_id = "gen",
		.fw_version = k % 2 ? "3.2.0" : "3.1.5", .serial_prefix = "AS",
		.serial_start = (k + 1) * 10000000ull, .creds = creds,
		.n_creds = n,
	};
	bool planted = kj_gen_is_planted(k);
	uint64_t ok = 0;

	snprintf(id, sizeof(id), "JOB-%u", k);
	snprintf(batch, sizeof(batch), "LOT-%u", k % 5);
	kj_gen_fw_sha(k, d.fw_sha256);
	kj_sha256(id, strlen(id), d.work_order_sha256);
	for (uint64_t i = 0; i < n; i++)
		ok += i % 50 != 49;
	d.quantity = ok;
	if (kj_journal_job_begin(j, &d, NULL))
		return -1;
	for (uint64_t i = 0; i < n; i++) {
		bool p = planted && (i == 10 || (k == 4 && i == 49));

		if (kj_gen_device(j, k, i, p, i % 50 == 49 ? KJ_RES_READBACK
							   : KJ_RES_OK))
			return -1;
		if (i % 20000 == 19999 && kj_journal_commit(j))
			return -1;
	}
	if (kj_journal_job_end(j, NULL, NULL, NULL) || kj_journal_commit(j))
		return -1;
	out->devices = n;
	out->ok = ok;
	out->has_planted = planted;
	return 0;
}

/* n_records in total over n_jobs jobs (2 job records each). */
static inline int kj_gen_journal(const char *dir, uint64_t n_records,
				 unsigned n_jobs, struct kj_gen_job *jobs)
{
	uint64_t per = n_records / n_jobs - 2;
	struct kj_cred_ref *creds = calloc(per, sizeof(*creds));
	struct kj_journal *j;
	int rc = creds ? 0 : -1;

	/* One job per handle, as the keeper runs them; each its own batch
	 * (a certificate is used once, ever: SPEC.md §3.2). */
	for (unsigned k = 0; k < n_jobs && !rc; k++) {
		for (uint64_t i = 0; i < per; i++) {
			creds[i].index = i;
			kj_put_u64be(creds[i].cert_sha256, k);
			kj_put_u64be(creds[i].cert_sha256 + 8, i);
		}
		rc = kj_journal_open(dir, 0, &j);
		if (!rc)
			rc = kj_gen_job(j, k, per, creds, &jobs[k]);
		kj_journal_close(j);
	}
	free(creds);
	return rc;
}

#endif
