// SPDX-License-Identifier: Apache-2.0
/*
 * The image's boot-time code measurement (measure.h, `kinject measure'):
 * the init measures the kinject binary and kinject.ko into PCR 13 before
 * any job starts, through the same kj_measure_job_start() as `kinject
 * run', so the event log it writes is the one the keeper continues (the
 * next run finds the PCRs equal to the replay: same epoch).  The journal
 * and the TPM are opened and checked here as a run opens them: a restored
 * or foreign journal is refused before anything is extended.  The site's
 * configuration archive (not part of the image, whose bytes give the boot
 * chain's golden PCRs) goes into PCR 14 after the code, in the same
 * epoch, before any of it runs: the evidence names the configuration the
 * jobs ran under.
 */
#include "measure.h"
#include "base/log.h"
#include "checkpoint_int.h"
#include "eventlog.h"

int kj_measure_boot(const char *tcti, const char *state_dir,
		    const char *site, struct kj_measure_out *out)
{
	struct kj_measure_in in = { .pcr_mask = KJ_PCR_BIT(KJ_PCR_CODE),
				    .boot = true };
	struct kj_journal *j = NULL;
	struct kj_tpm *tpm = NULL;
	uint8_t d[32];
	int rc;

	/* Read before anything is extended: a refusal leaves the PCRs. */
	if (site)
		KJ_TRY(kj_measure_file(site, d));
	KJ_TRY(kj_journal_open(state_dir, 0, &j));
	KJ_TRY_GOTO(rc, kj_tpm_open(tcti, &tpm), out);
	KJ_TRY_GOTO(rc, kj_checkpoint_check(tpm, j), out);
	KJ_TRY_GOTO(rc, kj_measure_job_start(tpm, j, &in, out), out);
	kj_info("boot: measured code into PCR %u (epoch %u, %s, %llu entries added)",
		KJ_PCR_CODE, out->epoch, kj_epoch_decision_name(out->decision),
		(unsigned long long)out->added);
	if (site) {
		KJ_TRY_GOTO(rc, kj_measure_extend(tpm, j, out->epoch,
						  KJ_PCR_POLICY, KJ_EV_SITE, d),
			    out);
		out->added++;
		kj_info("boot: measured the site's configuration %s into PCR %u",
			site, KJ_PCR_POLICY);
	}
out:
	kj_tpm_close(tpm);
	kj_journal_close(j);
	return rc;
}
