// SPDX-License-Identifier: Apache-2.0
/*
 * The image's boot-time code measurement (measure.h, `kinject measure'):
 * the init measures the kinject binary and kinject.ko into PCR 13 before
 * any job starts, through the same kj_measure_job_start() as `kinject
 * run', so the event log it writes is the one the keeper continues (the
 * next run finds the PCRs equal to the replay: same epoch).  The journal
 * and the TPM are opened and checked here as a run opens them: a restored
 * or foreign journal is refused before anything is extended.
 */
#include "measure.h"
#include "base/log.h"
#include "checkpoint_int.h"

int kj_measure_boot(const char *tcti, const char *state_dir,
		    struct kj_measure_out *out)
{
	struct kj_measure_in in = { .pcr_mask = KJ_PCR_BIT(KJ_PCR_CODE),
				    .boot = true };
	struct kj_journal *j = NULL;
	struct kj_tpm *tpm = NULL;
	int rc;

	KJ_TRY(kj_journal_open(state_dir, 0, &j));
	KJ_TRY_GOTO(rc, kj_tpm_open(tcti, &tpm), out);
	KJ_TRY_GOTO(rc, kj_checkpoint_check(tpm, j), out);
	KJ_TRY_GOTO(rc, kj_measure_job_start(tpm, j, &in, out), out);
	kj_info("boot: measured code into PCR %u (epoch %u, %s, %llu entries added)",
		KJ_PCR_CODE, out->epoch, kj_epoch_decision_name(out->decision),
		(unsigned long long)out->added);
out:
	kj_tpm_close(tpm);
	kj_journal_close(j);
	return rc;
}
