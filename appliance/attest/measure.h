/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Job-start measurements (EVIDENCE.md §4).  Before a job runs, the keeper
 * reads the policy PCRs, decides the epoch from the journal's event log
 * (eventlog.h: new / continue / continue with the last entry voided /
 * broken), then measures:
 *
 *   PCR 13 (code):   "kinject"    SHA-256 of /proc/self/exe (the running
 *                                 binary, not the path it was started as)
 *                    "kinject.ko" SHA-256 of the module file, when the module
 *                                 is loaded (/sys/module/kinject exists)
 *   PCR 14 (policy): "work_order" SHA-256 of the work order bytes
 *                    "product"    SHA-256 of the product matrix bytes
 *                    "officers"   SHA-256 of DIR/KJ_MEASURE_OFFICERS, when
 *                                 the state dir has an officer set
 *
 * Each entry is made durable in the journal (add_event + commit) BEFORE its
 * TPM2_PCR_Extend is sent, so a crash leaves at worst one entry whose extend
 * never happened: the next start finds PCRs equal to the replay without it
 * and marks it void (durably) before going on.  A broken chain refuses to
 * start (-EPERM, logged, saying so).  The same function serves the image's
 * init (boot-time code measurement, kj_measure_boot: `kinject measure`)
 * and `kinject run`: one code path.
 */
#ifndef KINJECT_MEASURE_H
#define KINJECT_MEASURE_H

#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "journal/journal.h"
#include "eventlog.h"
#include "tpm.h"

/* The officer set of the ceremony, relative to the state dir. */
#define KJ_MEASURE_OFFICERS "ceremony/officers.pem"
/* Present while the kernel module is loaded. */
#define KJ_MEASURE_KMOD_SYSFS "/sys/module/kinject"

/*
 * Journal meta: the epoch whose code the image's init measured (`kinject
 * measure'), and who measured the code of the last job start: "boot" (the
 * init, this epoch: the job does not measure it again) or "self" (the job
 * itself, outside the image).  The bundle's appliance.code_measured_by.
 */
#define KJ_META_BOOT_EPOCH "code_boot_epoch"
#define KJ_META_CODE_BY "code_measured_by"

/* Event log entry names (golden.json lists "kinject" and "kinject.ko"). */
#define KJ_EV_KINJECT "kinject"
#define KJ_EV_KMOD "kinject.ko"
#define KJ_EV_WORK_ORDER "work_order"
#define KJ_EV_PRODUCT "product"
#define KJ_EV_OFFICERS "officers"
#define KJ_EV_SITE "site"

struct kj_measure_in {
	uint32_t pcr_mask;        /* policy PCRs; 0: KJ_PCR_DEFAULT_MASK */
	const char *exe_path;     /* NULL: /proc/self/exe */
	/*
	 * The module file to measure.  NULL: when KJ_MEASURE_KMOD_SYSFS
	 * exists, /lib/modules/$(uname -r)/{extra,updates}/kinject.ko (the
	 * first that exists; loaded but not found is an error: loaded code
	 * would go unmeasured).  "" : never measure a module.
	 */
	const char *kmod_path;
	const uint8_t *work_order; /* NULL: no policy measurement */
	size_t work_order_len;
	const uint8_t *product;    /* NULL: skipped */
	size_t product_len;
	const char *state_dir;     /* for the officer set; NULL: skipped */
	bool boot;                 /* the image's init: KJ_META_BOOT_EPOCH */
};

struct kj_measure_out {
	enum kj_epoch_decision decision; /* what the PCRs said (never BROKEN) */
	uint32_t epoch;                  /* the epoch the entries carry */
	uint64_t voided;                 /* entries voided: 0 or 1 */
	uint64_t added;                  /* entries added and extended */
	bool code_by_boot;               /* the init measured the code */
};

/*
 * Decide the epoch and measure as above.  Returns 0, -EPERM (chain
 * broken: refuse to start), or the error of the TPM / journal.  The
 * journal must be writable and have nothing pending (-EINVAL otherwise):
 * the commits here would otherwise make the caller's writes durable early.
 */
KJ_MUST_CHECK int kj_measure_job_start(struct kj_tpm *tpm,
				       struct kj_journal *j,
				       const struct kj_measure_in *in,
				       struct kj_measure_out *out);

/*
 * The lower-level step, for callers measuring something else: decide the
 * epoch (voiding an entry if needed, committed) without extending.
 */
KJ_MUST_CHECK int kj_measure_epoch(struct kj_tpm *tpm, struct kj_journal *j,
				   uint32_t pcr_mask,
				   struct kj_measure_out *out);

/* One measurement: durable entry (add_event + commit), then the extend. */
KJ_MUST_CHECK int kj_measure_extend(struct kj_tpm *tpm, struct kj_journal *j,
				    uint32_t epoch, uint32_t pcr,
				    const char *name,
				    const uint8_t digest[32]);

/*
 * At boot, in the image (measure_boot.c): open the journal of state_dir
 * and the TPM at tcti, check them as `kinject run' does, and measure the
 * code (PCR 13: the running binary and the loaded module) with
 * kj_measure_job_start(), so the keeper continues the same event log;
 * then, if site is not NULL, the site's configuration archive (the file's
 * SHA-256) into PCR 14 as KJ_EV_SITE.
 */
KJ_MUST_CHECK int kj_measure_boot(const char *tcti, const char *state_dir,
				  const char *site,
				  struct kj_measure_out *out);

/*
 * Whether the image's init measured the code in the current epoch (the
 * PCRs decide it as kj_measure_epoch does): the ceremony binds the AK to
 * the boot chain then.
 */
KJ_MUST_CHECK int kj_measure_code_by_boot(struct kj_tpm *tpm,
					  struct kj_journal *j, bool *boot);

/* Load the journal's event log into a malloc'd array (*n entries). */
KJ_MUST_CHECK int kj_measure_load_events(struct kj_journal *j,
					 struct kj_event **ev, size_t *n);

#endif
