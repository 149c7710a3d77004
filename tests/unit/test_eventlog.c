// SPDX-License-Identifier: Apache-2.0
/*
 * eventlog.c: replay PCR_new = SHA-256(PCR_old ‖ digest) per epoch, void
 * entries skipped, and the epoch decision of EVIDENCE.md §4 (new /
 * continue / continue with the last entry void / broken).  That the replay
 * equals a real TPM's PCRs is shown by test_attest (pcrDigest of a swtpm
 * quote over a replayed log).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "attest/eventlog.h"
#include "base/util.h"

#define MASK KJ_PCR_DEFAULT_MASK

static struct kj_event entry(uint32_t epoch, uint32_t pcr, const char *name)
{
	struct kj_event e = { .epoch = epoch, .pcr = pcr };

	snprintf(e.name, sizeof(e.name), "%s", name);
	kj_sha256(name, strlen(name), e.digest);
	return e;
}

static void test_replay(void **st)
{
	struct kj_event ev[4] = {
		entry(0, 13, "kinject"), entry(0, 13, "kinject.ko"),
		entry(1, 13, "kinject"), entry(0, 14, "work order"),
	};
	uint8_t pcrs[KJ_TPM_PCR_COUNT][32], want[32] = { 0 }, buf[64];

	(void)st;
	assert_int_equal(kj_eventlog_replay(ev, 4, 0, pcrs), 0);
	for (int i = 0; i < 2; i++) {
		memcpy(buf, want, 32);
		memcpy(buf + 32, ev[i].digest, 32);
		kj_sha256(buf, 64, want);
	}
	assert_memory_equal(pcrs[13], want, 32);
	memset(buf, 0, 32);
	memcpy(buf + 32, ev[3].digest, 32);
	kj_sha256(buf, 64, want);
	assert_memory_equal(pcrs[14], want, 32);
	/* Only the first n entries; only the epoch asked for. */
	assert_int_equal(kj_eventlog_replay(ev, 3, 0, pcrs), 0);
	memset(want, 0, 32);
	assert_memory_equal(pcrs[14], want, 32);
	assert_int_equal(kj_eventlog_replay(ev, 4, 1, pcrs), 0);
	memcpy(buf + 32, ev[2].digest, 32);
	kj_sha256(buf, 64, want);
	assert_memory_equal(pcrs[13], want, 32);
	/* Void entries are skipped. */
	ev[1].is_void = true;
	assert_int_equal(kj_eventlog_replay(ev, 2, 0, pcrs), 0);
	memcpy(buf + 32, ev[0].digest, 32);
	kj_sha256(buf, 64, want);
	assert_memory_equal(pcrs[13], want, 32);
	ev[0].pcr = 24;
	assert_int_equal(kj_eventlog_replay(ev, 1, 0, pcrs), -EINVAL);
}

static void decide(const struct kj_event *ev, size_t n,
		   uint8_t pcrs[KJ_TPM_PCR_COUNT][32],
		   enum kj_epoch_decision want, uint32_t want_epoch)
{
	enum kj_epoch_decision d;
	uint32_t epoch = 99;
	size_t vi = 99;

	assert_int_equal(kj_eventlog_decide(ev, n, MASK, pcrs, &d, &epoch,
					    &vi), 0);
	if (d != want)
		fail_msg("decided %s, want %s", kj_epoch_decision_name(d),
			 kj_epoch_decision_name(want));
	assert_int_equal(epoch, want_epoch);
	if (want == KJ_EPOCH_CONTINUE_VOID)
		assert_int_equal(vi, n - 1);
}

static void test_decide(void **st)
{
	struct kj_event ev[5] = {
		entry(0, 13, "kinject"), entry(0, 14, "work order"),
		entry(1, 13, "kinject"), entry(1, 14, "work order"),
		entry(1, 14, "officers"),
	};
	uint8_t pcrs[KJ_TPM_PCR_COUNT][32] = { { 0 } };

	(void)st;
	/* Fresh appliance: zero PCRs start epoch 0; anything else is not
	 * ours. */
	decide(ev, 0, pcrs, KJ_EPOCH_NEW, 0);
	pcrs[14][0] = 1;
	decide(ev, 0, pcrs, KJ_EPOCH_BROKEN, 0);
	pcrs[14][0] = 0;
	/* A reset after epoch 0: epoch 1. */
	decide(ev, 2, pcrs, KJ_EPOCH_NEW, 1);
	/* Still running epoch 1: it goes on. */
	assert_int_equal(kj_eventlog_replay(ev, 5, 1, pcrs), 0);
	decide(ev, 5, pcrs, KJ_EPOCH_CONTINUE, 1);
	/* Crash after the durable entry 4, before its extend. */
	assert_int_equal(kj_eventlog_replay(ev, 4, 1, pcrs), 0);
	decide(ev, 5, pcrs, KJ_EPOCH_CONTINUE_VOID, 1);
	/* Once voided, the same PCRs are a plain continue. */
	ev[4].is_void = true;
	decide(ev, 5, pcrs, KJ_EPOCH_CONTINUE, 1);
	ev[4].is_void = false;
	/* Two entries missing from the TPM, or a foreign extend: broken. */
	assert_int_equal(kj_eventlog_replay(ev, 3, 1, pcrs), 0);
	decide(ev, 5, pcrs, KJ_EPOCH_BROKEN, 1);
	assert_int_equal(kj_eventlog_replay(ev, 5, 1, pcrs), 0);
	pcrs[13][5] ^= 1;
	decide(ev, 5, pcrs, KJ_EPOCH_BROKEN, 1);
	/* An old journal against a TPM of epoch 1 PCRs: epoch 0's replay
	 * does not match. */
	assert_int_equal(kj_eventlog_replay(ev, 5, 1, pcrs), 0);
	decide(ev, 2, pcrs, KJ_EPOCH_BROKEN, 0);
}

static void test_decide_malformed(void **st)
{
	struct kj_event ev[2] = { entry(1, 13, "a"), entry(0, 13, "b") };
	uint8_t pcrs[KJ_TPM_PCR_COUNT][32] = { { 0 } };
	enum kj_epoch_decision d;
	uint32_t epoch;

	(void)st;
	assert_int_equal(kj_eventlog_decide(ev, 2, MASK, pcrs, &d, &epoch,
					    NULL), -EINVAL);
	ev[1] = entry(1, 30, "c");
	assert_int_equal(kj_eventlog_decide(ev, 2, MASK, pcrs, &d, &epoch,
					    NULL), -EINVAL);
}

static void test_measure_file(void **st)
{
	char path[] = "/tmp/kinject-measure.XXXXXX";
	static uint8_t data[200000];
	uint8_t d[32], want[32];
	int fd = mkstemp(path);

	(void)st;
	assert_true(fd >= 0);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	close(fd);
	assert_int_equal(kj_measure_file(path, d), 0);
	kj_sha256(data, sizeof(data), want);
	assert_memory_equal(d, want, 32);
	unlink(path);
	assert_int_equal(kj_measure_file(path, d), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_decide),
		cmocka_unit_test(test_decide_malformed),
		cmocka_unit_test(test_measure_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
