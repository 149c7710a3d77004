/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The credential batch (SPEC.md §3.2): JSON Lines, one device per line,
 *   {"index":N,"cert":"<base64 DER X.509>","key":"<base64 DER PKCS#8>"}
 * "key" optional.  The plaintext is secret, so this is not jansson (it would
 * copy private keys into the heap): a small strict parser decodes base64
 * straight into the secret arena and builds there, for every device, the
 * ready-to-send cred_blob of PROTOCOL.md:
 *   u32be len(cert) || cert DER || u32be len(key) || key DER
 * (with KJ_CRED_SEAL_HEAD/TAIL bytes of room around it) plus a table the
 * injector reads through its read-only mapping of the
 * arena.  Everything in the table is an offset from the arena base, never a
 * pointer.  Grammar and limits: docs/INPUT-FORMATS.md.
 */
#ifndef KINJECT_CREDS_H
#define KINJECT_CREDS_H

#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"
#include "secret/arena.h"

#define KJ_CREDS_MAGIC 0x3153444552434a4bULL /* "KJCREDS1" little-endian */
#define KJ_CREDS_MAX_LINES (16u * 1024 * 1024)
#define KJ_CRED_CERT_MAX (32 * 1024)	/* DER bytes */
#define KJ_CRED_KEY_MAX (16 * 1024)
#define KJ_CRED_INDEX_MAX ((1ULL << 53) - 1) /* exact in JSON/JCS numbers */
/*
 * Room left around every blob so that the keeper can seal it to the device
 * in place (inject mode, PROTOCOL.md): the ephemeral P-256 key (65 bytes)
 * before it, the AES-GCM tag (16) after it.  The plaintext is then
 * overwritten by its ciphertext: a credential is used once, ever.
 */
#define KJ_CRED_SEAL_HEAD 65
#define KJ_CRED_SEAL_TAIL 16

/* One device credential; 64 bytes, in the arena. */
struct kj_cred {
	uint64_t index;
	uint64_t blob_off;	/* arena offset of this device's cred_blob */
	uint32_t blob_len;	/* 8 + cert_len + key_len */
	uint32_t cert_len;	/* cert DER starts at blob_off + 4 */
	uint32_t key_len;	/* 0: no key in the batch for this device */
	uint32_t line;		/* 1-based line of the batch, for messages */
	uint8_t cert_sha256[32]; /* record's cert_sha256 (EVIDENCE.md §2) */
};

struct kj_cred_table {
	uint64_t magic;		/* KJ_CREDS_MAGIC */
	uint64_t count;
	uint64_t n_keys;	/* entries with key_len > 0 */
	uint64_t reserved;
	struct kj_cred cred[];	/* sorted by index, indexes unique */
};

/* What the owner (keeper) gets; table_off/table_size go to the injector. */
struct kj_creds {
	size_t table_off;	/* arena offset of struct kj_cred_table */
	size_t table_size;
	size_t count;
	size_t n_keys;
	size_t blob_bytes;	/* arena bytes reserved for the blobs */
	const struct kj_cred_table *table; /* in the owner's mapping */
};

/*
 * Arena bytes kj_creds_parse() needs at most for this batch (blobs and
 * table, alignment included); size the arena with it.
 */
size_t kj_creds_arena_need(const uint8_t *text, size_t len);

/*
 * Parse the batch text (itself typically in the arena) into arena a.  Every
 * certificate must parse as X.509, every key as a PKCS#8 PrivateKeyInfo
 * structure, indexes unique, certificates unique (by SHA-256: the refusal
 * names both indexes).  Errors name `name', the line and the field, never
 * the secret content; -EINVAL (bad batch) or -ENOMEM (arena full).
 * On failure what was written to the arena is wiped (the bump allocator is
 * not rewound).
 */
KJ_MUST_CHECK int kj_creds_parse(struct kj_arena *a, const uint8_t *text,
				 size_t len, const char *name,
				 struct kj_creds *out);

/*
 * Injector side: the table at table_off of a (read-only) mapping of size
 * bytes, after checking magic and bounds; NULL (logged) if inconsistent.
 */
const struct kj_cred_table *kj_creds_table(const uint8_t *base, size_t size,
					   size_t table_off);

/* Binary search by index; NULL when the batch has no such index. */
const struct kj_cred *kj_creds_find(const struct kj_cred_table *t,
				    uint64_t index);
/*
 * The same over any array of n elements of size bytes that start with a
 * uint64_t index and are sorted by it (the keeper's private copy of the
 * table too); NULL when index is not there.
 */
const void *kj_index_find(const void *v, size_t n, size_t size,
			  uint64_t index);

/* The cred_blob of c inside the mapping, bounds-checked; NULL if outside. */
const uint8_t *kj_cred_blob(const uint8_t *base, size_t size,
			    const struct kj_cred *c);

#endif
