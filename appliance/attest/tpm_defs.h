/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TPM numbers that both sides share: the appliance, which talks to its TPM
 * (tpm.h), and the offline verifier, which has none and must not link the
 * code that does (attest.h, eventlog.h, evidence.h include this, not
 * tpm.h).  EVIDENCE.md §4.
 */
#ifndef KINJECT_TPM_DEFS_H
#define KINJECT_TPM_DEFS_H

#define KJ_TPM_PCR_COUNT 24
/* PCR selections are bit masks over the SHA-256 bank: bit i = PCR i. */
#define KJ_PCR_BIT(i) (1u << (i))
/* EVIDENCE.md §4 defaults: 13 = appliance code, 14 = policy. */
#define KJ_PCR_CODE 13
#define KJ_PCR_POLICY 14
#define KJ_PCR_DEFAULT_MASK (KJ_PCR_BIT(KJ_PCR_CODE) | KJ_PCR_BIT(KJ_PCR_POLICY))
/*
 * The boot chain the image is booted by (docs/IMAGE.md): UEFI firmware
 * measures the kernel into PCR 4, the kernel's EFI stub the initrd into
 * PCR 9.  Quoted (and bound into the AK's policy) when the image's init
 * measured the code; their values come from the firmware, not from
 * kinject's event log, so a verifier takes them from the checkpoint and
 * compares them with golden.json.
 */
#define KJ_PCR_BOOT_KERNEL 4
#define KJ_PCR_BOOT_INITRD 9
#define KJ_PCR_BOOT_MASK (KJ_PCR_BIT(KJ_PCR_BOOT_KERNEL) | \
			  KJ_PCR_BIT(KJ_PCR_BOOT_INITRD))

/* Marshalled TPM2B_PUBLIC of an ECC AK is ~90 bytes; a generous bound. */
#define KJ_TPM_PUB_MAX 1024
/* nameAlg (2) + SHA-256 (32). */
#define KJ_TPM_NAME_LEN 34

#endif
