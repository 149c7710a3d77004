/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fixture of the test_journal*.c programs: a state dir in /tmp, a
 * batch whose order is not index order, a job opened on it, devices
 * reserved and recorded, and a pass over the records that checks seq,
 * job_seq and that no credential index is used twice.  Shared so that the
 * journal's tests can stand in one program per theme.
 */
#ifndef KJ_TEST_JOURNAL_FX_H
#define KJ_TEST_JOURNAL_FX_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "evidence/audit.h"
#include "journal/journal.h"
#include "journal/record.h"

#define NCREDS 64

static char dir[64];
static struct kj_cred_ref creds[NCREDS];

static inline int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/kj-journal.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	/* Batch order is not index order: the journal must follow the file. */
	for (int i = 0; i < NCREDS; i++) {
		creds[i].index = (uint64_t)((i * 37) % NCREDS) + 1000;
		memset(creds[i].cert_sha256, (int)creds[i].index & 0xff, 32);
	}
	return 0;
}

static inline int teardown(void **state)
{
	char cmd[256];

	(void)state;
	snprintf(cmd, sizeof(cmd), "umount -l '%s/full' 2>/dev/null; "
		 "rm -rf '%s'", dir, dir);
	return system(cmd) == 0 ? 0 : -1;
}

static inline void desc(struct kj_job_desc *d, const char *job, uint8_t wo)
{
	memset(d, 0, sizeof(*d));
	d->job = job;
	d->customer = "acme";
	d->product = "acme-sensor";
	d->batch = "LOT-1";
	d->operator_id = "op1";
	memset(d->work_order_sha256, wo, 32);
	d->quantity = 40;
	d->fw_version = "3.1.5";
	memset(d->fw_sha256, 0xf0, 32);
	d->serial_prefix = "AS";
	d->serial_start = 10000;
	d->creds = creds;
	d->n_creds = NCREDS;
}

static inline void hello(struct kj_record *h, unsigned n)
{
	memset(h, 0, sizeof(*h));
	h->kind = KJ_REC_DEVICE;
	h->site = "line1";
	h->socket = (uint16_t)(n % 8);
	h->uid[0] = (uint8_t)(n >> 8);
	h->uid[1] = (uint8_t)n;
	h->uid[2] = 0x5a;
	h->uid_len = 3;
	h->hwrev = "B";
}

static inline struct kj_journal *
open_job(const char *job, struct kj_job_state *st)
{
	struct kj_journal *j;
	struct kj_job_desc d;

	assert_int_equal(kj_journal_open(dir, 0, &j), 0);
	desc(&d, job, 0x11);
	assert_int_equal(kj_journal_job_begin(j, &d, st), 0);
	assert_int_equal(kj_journal_commit(j), 0);
	return j;
}

/* Reserve for device n and commit (the credential may now leave). */
static inline void
reserve(struct kj_journal *j, unsigned n, struct kj_record *r,
	struct kj_reservation *res)
{
	hello(r, n);
	assert_int_equal(kj_journal_reserve(j, r, res), 0);
	kj_record_set_reservation(r, res);
}

static inline void finish(struct kj_journal *j, struct kj_record *r,
			  enum kj_result result)
{
	r->result = result;
	r->has_readback = result == KJ_RES_OK;
	memset(r->readback, 0xdd, 32);
	assert_int_equal(kj_journal_append_record(j, r, NULL, NULL), 0);
}

struct collect {
	uint64_t n;
	uint64_t job_seq_next;
	uint64_t ok, interrupted;
	uint64_t used[NCREDS + 8];
	size_t n_used;
	bool have_end;
};

static inline int
collect_cb(void *ctx, uint64_t seq, const uint8_t *jcs, size_t len)
{
	struct collect *c = ctx;
	struct kj_record r;

	assert_int_equal(seq, c->n);
	assert_int_equal(kj_record_parse(jcs, len, &r), 0);
	assert_int_equal(r.seq, seq);
	assert_int_equal(r.job_seq, c->job_seq_next);
	c->n++;
	c->job_seq_next++;
	if (r.kind == KJ_REC_DEVICE && r.has_cred) {
		for (size_t i = 0; i < c->n_used; i++)
			if (c->used[i] == r.cred_index)
				fail_msg("credential %llu used twice",
					 (unsigned long long)r.cred_index);
		assert_true(c->n_used < KJ_ARRAY_SIZE(c->used));
		c->used[c->n_used++] = r.cred_index;
	}
	c->ok += r.result == KJ_RES_OK;
	c->interrupted += r.result == KJ_RES_INTERRUPTED;
	c->have_end |= r.kind == KJ_REC_JOB_END;
	kj_record_release(&r);
	return 0;
}


#endif
