// SPDX-License-Identifier: Apache-2.0
/*
 * How tests/unit/data/journal_v1.sql was made (`sqlite3 DIR/journal.db
 * .dump`, then `PRAGMA user_version = 1;` appended): by the journal of schema
 * version 1 (kinject before the cert_used change, commit 4795535), so
 * test_journal_schema.c checks the migration on bytes the old code wrote,
 * not on a reconstruction.  Not built by make; to remake the fixture,
 * build this against that commit's libkinject.a:
 *
 *   cc -std=gnu11 -D_GNU_SOURCE -Iappliance tests/unit/data/journal_v1.c \
 *      build/libkinject.a $(LIBS) -o mk && ./mk DIR
 *
 * Job WO-A: 2 devices ok, 1 failed, an event and a checkpoint, then job
 * WO-B on the same batch (skips WO-A's 3 certificates): 1 ok, and one
 * reservation left open, as a crash leaves it.  Certificates 0xa0 + i.
 */
#include <stdio.h>
#include <string.h>

#include "journal/journal.h"
#include "journal/record.h"

static struct kj_cred_ref creds[8];

static void desc(struct kj_job_desc *d, const char *job, int wo)
{
	memset(d, 0, sizeof(*d));
	d->job = job;
	d->customer = "acme";
	d->product = "acme-sensor";
	d->batch = "LOT-1";
	d->operator_id = "op1";
	memset(d->work_order_sha256, wo, 32);
	memset(d->creds_sha256, 0xc1, 32);
	d->quantity = 5;
	d->fw_version = "3.1.5";
	memset(d->fw_sha256, 0xf0, 32);
	d->serial_prefix = "AS";
	d->serial_start = 100;
	d->creds = creds;
	d->n_creds = 8;
}

static int device(struct kj_journal *j, unsigned n, enum kj_result res,
		  bool finish)
{
	struct kj_reservation rv;
	struct kj_record r;

	memset(&r, 0, sizeof(r));
	r.kind = KJ_REC_DEVICE;
	r.site = "line1";
	r.socket = (uint16_t)n;
	r.uid[0] = 0x10;
	r.uid[1] = (uint8_t)n;
	r.uid_len = 2;
	r.hwrev = "B";
	r.time_ms = 1796300000000ull + n;
	if (kj_journal_reserve(j, &r, &rv) || kj_journal_commit(j))
		return 1;
	if (!finish)
		return 0;
	kj_record_set_reservation(&r, &rv);
	r.result = res;
	r.has_readback = res == KJ_RES_OK;
	memset(r.readback, 0xdd, 32);
	return kj_journal_append_record(j, &r, NULL, NULL);
}

int main(int argc, char **argv)
{
	static const uint8_t attest[] = { 1, 2, 3 }, sig[] = { 4, 5 };
	struct kj_journal_checkpoint c = {
		.tree_size = 3, .nv_counter = 7, .epoch = 1,
		.event_log_length = 1, .quote_attest = attest,
		.attest_len = sizeof(attest), .quote_sig = sig,
		.sig_len = sizeof(sig), .pcr_mask = 1u << 15,
		.time_ms = 1796300000500ull,
	};
	uint8_t dg[32] = { 0xee };
	struct kj_journal *j;
	struct kj_job_desc d;

	if (argc != 2)
		return 2;
	for (unsigned i = 0; i < 8; i++) {
		creds[i].index = 500 + i;
		memset(creds[i].cert_sha256, 0xa0 + (int)i, 32);
	}
	desc(&d, "WO-A", 0x11);
	if (kj_journal_open(argv[1], 0, &j) || kj_journal_job_begin(j, &d, NULL) ||
	    device(j, 1, KJ_RES_OK, true) || device(j, 2, KJ_RES_OK, true) ||
	    device(j, 3, KJ_RES_READBACK, true) ||
	    kj_journal_add_event(j, 1, 15, "boot", dg, NULL) ||
	    kj_journal_commit(j) || kj_journal_add_checkpoint(j, &c) ||
	    kj_journal_commit(j))
		return 1;
	kj_journal_close(j);
	desc(&d, "WO-B", 0x22);
	if (kj_journal_open(argv[1], 0, &j) || kj_journal_job_begin(j, &d, NULL) ||
	    device(j, 4, KJ_RES_OK, true) || device(j, 5, KJ_RES_OK, false) ||
	    kj_journal_commit(j))
		return 1;
	kj_journal_close(j);
	return 0;
}
