// SPDX-License-Identifier: Apache-2.0
/*
 * The boot chain in check 8 (--golden): golden.json's optional "pcrs"
 * lists the values PCRs 4 (kernel) and 9 (initrd) have when the image
 * boots (docs/IMAGE.md).  kinject's event log cannot replay them (the
 * firmware measured them), so each checkpoint records them and its
 * pcrDigest binds them (check 2); here they are compared with the golden
 * ones, and the AK's policy with the policy those values give: an AK bound
 * to the golden boot chain signs nowhere else, so a root user who boots
 * another system cannot quote, whatever he extends by hand.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <tss2/tss2_mu.h>

#include "attest/tpm_defs.h"
#include "base/log.h"
#include "base/util.h"
#include "verify_int.h"

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/*
 * The AK's authPolicy for PCR 4 = k, PCR 9 = i (tpm_ak.c makes it in a
 * trial session): PolicyPCR over SHA-256 {4, 9}, then PolicyCommandCode
 * (TPM2_Quote); each step is H(old ‖ u32be(cc) ‖ its arguments).
 */
void kj_boot_policy_digest(const uint8_t k[32], const uint8_t i[32],
			   uint8_t out[32])
{
	/* TPML_PCR_SELECTION: count 1, SHA-256, 3 bytes, bits 4 and 9. */
	static const uint8_t sel[] = { 0, 0, 0, 1, 0x00, 0x0b, 3,
				       1u << KJ_PCR_BOOT_KERNEL,
				       1u << (KJ_PCR_BOOT_INITRD - 8), 0 };
	uint8_t buf[32 + 4 + sizeof(sel) + 32], pcrs[64];

	memset(buf, 0, 32);
	put_u32(buf + 32, 0x0000017f); /* TPM_CC_PolicyPCR */
	memcpy(buf + 36, sel, sizeof(sel));
	memcpy(pcrs, k, 32);
	memcpy(pcrs + 32, i, 32);
	kj_sha256(pcrs, sizeof(pcrs), buf + 36 + sizeof(sel));
	kj_sha256(buf, sizeof(buf), out);
	memcpy(buf, out, 32);
	put_u32(buf + 32, 0x0000016c); /* TPM_CC_PolicyCommandCode */
	put_u32(buf + 36, 0x00000158); /* TPM_CC_Quote */
	kj_sha256(buf, 40, out);
}

/* 1: bound to a golden pair; 0: not bound (no policy); -1: bound else. */
static int ak_bound(const struct kj_evidence *ev, const json_t *k,
		    const json_t *i)
{
	TPM2B_PUBLIC p = { 0 };
	size_t off = 0, a, b;
	uint8_t vk[32], vi[32], d[32];
	json_t *x, *y;

	if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(ev->ak_public, ev->ak_public_len,
					   &off, &p) != 0)
		return -1;
	if (!p.publicArea.authPolicy.size)
		return 0;
	if (p.publicArea.objectAttributes & TPMA_OBJECT_USERWITHAUTH ||
	    p.publicArea.authPolicy.size != 32)
		return -1; /* its password would still sign anywhere */
	json_array_foreach(k, a, x) {
		json_array_foreach(i, b, y) {
			if (kj_hex_decode(json_string_value(x), vk, 32) < 0 ||
			    kj_hex_decode(json_string_value(y), vi, 32) < 0)
				return -1;
			kj_boot_policy_digest(vk, vi, d);
			if (!memcmp(d, p.publicArea.authPolicy.buffer, 32))
				return 1;
		}
	}
	return -1;
}

static const json_t *pcr_list(const json_t *pcrs, const char *file,
			      unsigned pcr)
{
	char key[4];
	const json_t *l;

	snprintf(key, sizeof(key), "%u", pcr);
	l = json_object_get(pcrs, key);
	if (!json_is_array(l) || !json_array_size(l)) {
		kj_err("%s: pcrs.%s: expected a non-empty array of hex values",
		       file, key);
		return NULL;
	}
	return l;
}

int kj_verify_golden_boot(const struct kj_evidence *ev, const json_t *g,
			  const char *file, struct kj_verify_report *rep,
			  char *note, size_t size)
{
	const json_t *pcrs = json_object_get(g, "pcrs"), *k, *i;
	int bound;

	snprintf(note, size, "; boot chain not in %s", file);
	if (!pcrs)
		return 0;
	if (!json_is_object(pcrs) || json_object_size(pcrs) != 2 ||
	    !(k = pcr_list(pcrs, file, KJ_PCR_BOOT_KERNEL)) ||
	    !(i = pcr_list(pcrs, file, KJ_PCR_BOOT_INITRD))) {
		kj_err("%s: pcrs: expected {\"4\": [...], \"9\": [...]}", file);
		return -EINVAL;
	}
	if (!ev->code_measured_by || strcmp(ev->code_measured_by, "boot")) {
		kj_vfail(rep, KJ_VC_GOLDEN,
			 "%s lists boot-chain PCRs, but the code was measured by %s, not by the image's init",
			 file, ev->code_measured_by ? ev->code_measured_by
						    : "(not recorded)");
		return 0;
	}
	for (size_t c = 0; c < ev->n_checkpoints; c++) {
		const struct kj_ev_checkpoint *e = &ev->checkpoints[c];

		if ((e->pcr_mask & KJ_PCR_BOOT_MASK) != KJ_PCR_BOOT_MASK ||
		    !kj_golden_has(k, e->pcrs[KJ_PCR_BOOT_KERNEL]) ||
		    !kj_golden_has(i, e->pcrs[KJ_PCR_BOOT_INITRD])) {
			kj_vfail(rep, KJ_VC_GOLDEN,
				 "checkpoint %zu: PCR 4 (kernel) or 9 (initrd) not quoted or not in %s: another boot chain",
				 c, file);
			return 0;
		}
	}
	bound = ak_bound(ev, k, i);
	if (bound < 0) {
		kj_vfail(rep, KJ_VC_GOLDEN,
			 "the AK's policy is not PolicyPCR(4, 9 = golden) + PolicyCommandCode(Quote) without userWithAuth");
		return 0;
	}
	snprintf(note, size,
		 "; PCRs 4 and 9 golden in %zu checkpoints; %s",
		 ev->n_checkpoints,
		 bound ? "the AK quotes only in that boot chain (its policy)"
		       : "WARNING: the AK has no boot policy (its ceremony ran outside the image)");
	return bound ? 0 : 1;
}
