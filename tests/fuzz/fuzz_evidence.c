// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer: the evidence bundle parser and, on what it accepts, every
 * verifier check (no trusted AK: the bundle's own is used), since
 * `kinject verify' runs on files customers receive.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "evidence/evidence.h"
#include "evidence/verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kj_verify_opts o = { 0 };
	struct kj_verify_report *rep = malloc(sizeof(*rep));
	struct kj_evidence ev;
	int rc;

	if (!rep)
		return 0;
	if (kj_evidence_parse(data, size, "evidence.json", &ev) == 0) {
		/* Invariants verify.c relies on. */
		if (!ev.n_checkpoints || !ev.n_records ||
		    ev.n_records > KJ_EVIDENCE_MAX_RECORDS)
			abort();
		for (size_t i = 0; i < ev.n_records; i++)
			if (ev.records[i].checkpoint >= ev.n_checkpoints ||
			    ev.records[i].proof_len > KJ_MTREE_MAX_PROOF)
				abort();
		rc = kj_verify(&ev, &o, rep);
		if (rc == 0) {
			for (int c = 0; c < KJ_VC_COUNT_; c++)
				if (rep->check[c].status == KJ_VS_FAIL)
					abort();
		}
		kj_verify_report_free(rep);
		kj_evidence_free(&ev);
	}
	free(rep);
	return 0;
}
