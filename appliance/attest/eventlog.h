/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PCR event log and its epochs (EVIDENCE.md §4).  An entry records one
 * TPM2_PCR_Extend of the SHA-256 bank: PCR_new = SHA-256(PCR_old ‖ digest).
 * `epoch` numbers PCR lifetimes from 0 (a TPM reset/restart starts the next
 * one).  An entry is made durable before its extend is sent; one whose
 * extend never happened (crash in between) is marked void and skipped.
 *
 * The journal stores entries; this module replays them and decides, from
 * the PCRs read before extending, whether the epoch goes on, a new one
 * starts, or the measurement chain is broken.
 */
#ifndef KINJECT_EVENTLOG_H
#define KINJECT_EVENTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "tpm_defs.h"

#define KJ_EVENT_NAME_MAX 64

/* JSON form: {"epoch":E,"pcr":13,"name":"kinject","digest":"<hex>"}
 * plus "void":true when voided. */
struct kj_event {
	uint32_t epoch;
	uint32_t pcr;                    /* 0..23 */
	char name[KJ_EVENT_NAME_MAX];    /* "kinject", "kinject.ko", ... */
	uint8_t digest[32];              /* SHA-256 of the measured bytes */
	bool is_void;                    /* extend never reached the TPM */
};

/*
 * Replay the first n entries that have `epoch` and are not void into
 * pcrs[] (indexed by PCR number, all start at zero).  Entries of other
 * epochs are skipped.  -EINVAL (logged) if an entry names a PCR >= 24.
 */
KJ_MUST_CHECK int kj_eventlog_replay(const struct kj_event *ev, size_t n,
				     uint32_t epoch,
				     uint8_t pcrs[KJ_TPM_PCR_COUNT][32]);

enum kj_epoch_decision {
	KJ_EPOCH_CONTINUE,      /* PCRs == replay of the current epoch */
	KJ_EPOCH_CONTINUE_VOID, /* == replay without the last entry: void it */
	KJ_EPOCH_NEW,           /* all zero: start epoch `epoch` */
	KJ_EPOCH_BROKEN,        /* anything else: refuse to run */
};
const char *kj_epoch_decision_name(enum kj_epoch_decision d);

/*
 * Decide from the PCRs in mask read from the TPM (pcrs indexed by PCR)
 * what to do before extending, EVIDENCE.md §4.  Rules, in order:
 *   all zero                                                -> NEW
 *     (*epoch = last epoch + 1, or 0 on an empty log)
 *   equal to the replay of the current (last) epoch         -> CONTINUE
 *   equal to it without its last non-void entry             -> CONTINUE_VOID
 *     (*void_index = that entry's index: the caller marks it void durably
 *     before extending anything)
 *   otherwise                                               -> BROKEN (logged)
 * Returns 0 with *decision set, or -EINVAL (logged) for a malformed log
 * (PCR >= 24, epochs going down).
 * *epoch is the epoch new entries must carry.
 */
KJ_MUST_CHECK int kj_eventlog_decide(const struct kj_event *ev, size_t n,
				     uint32_t mask,
				     const uint8_t pcrs[KJ_TPM_PCR_COUNT][32],
				     enum kj_epoch_decision *decision,
				     uint32_t *epoch, size_t *void_index);

/* PCR_new = SHA-256(PCR_old ‖ digest) in place. */
void kj_pcr_extend_sw(uint8_t pcr[32], const uint8_t digest[32]);

/* SHA-256 of a file's bytes (streamed): the digest of a measurement. */
KJ_MUST_CHECK int kj_measure_file(const char *path, uint8_t digest[32]);

#endif
