/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Backup and restore of the appliance's HSM keys (SPEC.md §5,
 * docs/CEREMONY.md).  backup: a fresh AES-256 backup key (getrandom, in the
 * secret arena) wraps the transport private key inside the HSM
 * (C_WrapKey, CKM_AES_KEY_WRAP_PAD); the backup key is split with Shamir
 * into one share per officer, each share encrypted (CMS
 * AuthEnvelopedData, AES-256-GCM) to that officer's certificate.  BDIR:
 *
 *   manifest.json   {"kinject_backup":1, time, appliance, threshold,
 *                    officers (PEM), transport_cert (PEM), wrapped (base64),
 *                    shares: [{file, officer, subject, x, sha256}]}
 *   share-N.cms     officer N's share, 1 + 32 bytes (x, y...)
 *
 * restore: an approved `restore' request (its "backup" is the manifest's
 * text), M officers' share files each with that officer's key (the share
 * is decrypted into the arena, checked against the manifest's SHA-256),
 * the backup key rebuilt, the transport key unwrapped into a fresh token;
 * then the rest is an init on the new TPM (ceremony.h) with the backup's
 * officer set, pending the officers' signatures like any init.
 */
#ifndef KINJECT_BACKUP_H
#define KINJECT_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "ceremony.h"

/* kinject ceremony backup. */
KJ_MUST_CHECK int kj_ceremony_backup(const char *state, const char *hsm_uri,
				     const char *pin_source,
				     const char *out_dir);

struct kj_restore_args {
	struct kj_ceremony_init_args init; /* state, hsm, pin, tcti */
	const char *backup;		   /* BDIR */
	const char *request;		   /* the approved restore request */
	const char *const *sigs;
	unsigned nsig;
	const char *const *shares;	   /* share-N.cms files */
	const char *const *keys;	   /* each one's officer key (PEM) */
	unsigned nshares;
};

/* kinject ceremony restore. */
KJ_MUST_CHECK int kj_ceremony_restore(const struct kj_restore_args *a);

#endif
