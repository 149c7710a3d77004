/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The transparency log's Merkle tree, RFC 9162 §2.1 hashing (EVIDENCE.md §3):
 *   leaf hash = SHA-256(0x00 ‖ leaf bytes)
 *   node hash = SHA-256(0x01 ‖ left ‖ right)
 *   MTH({}) = SHA-256("")
 *
 * The tree keeps every complete subtree hash (all levels) in memory, so an
 * append costs O(log n) hashing at worst (O(1) amortised) and the root,
 * inclusion proof and consistency proof for ANY earlier tree size n <= size
 * cost O(log n): evidence export proves records against old checkpoints.
 * Memory: about 64 bytes per leaf (1M leaves: 64 MiB).
 *
 * Proofs are arrays of 32-byte hashes in RFC 9162 order (from the leaf
 * upward), written to a caller array of KJ_MTREE_MAX_PROOF entries; the
 * functions return the number of hashes written or a negative errno.
 */
#ifndef KINJECT_MTREE_H
#define KINJECT_MTREE_H

#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"

#define KJ_MTREE_HASH_LEN 32
/* 2 * 64 levels: a consistency proof is at most ~2 log2(n) hashes. */
#define KJ_MTREE_MAX_PROOF 128

struct kj_mtree;

/* A new empty tree; NULL (logged) on allocation failure. */
struct kj_mtree *kj_mtree_new(void);
/*
 * The same tree with its levels in unlinked temporary files in dir (the
 * memory it holds is at most 96 KB a level, 2 MB at a million leaves); a read or write failure is logged and returned by the call that
 * met it.  For exports of large logs: the hashes are of public records.
 */
struct kj_mtree *kj_mtree_new_file(const char *dir);
void kj_mtree_free(struct kj_mtree *t);

/* Number of leaves appended so far. */
uint64_t kj_mtree_size(const struct kj_mtree *t);

/* Append the leaf whose bytes are data (the record's JCS bytes). */
KJ_MUST_CHECK int kj_mtree_append(struct kj_mtree *t, const void *data,
				  size_t len);
/* Append an already computed leaf hash (reloading from the journal). */
KJ_MUST_CHECK int kj_mtree_append_hash(struct kj_mtree *t,
				       const uint8_t leaf_hash[32]);

/* Leaf hash of index < size, as stored. */
KJ_MUST_CHECK int kj_mtree_leaf(const struct kj_mtree *t, uint64_t index,
				uint8_t out[32]);

/* MTH of the first n leaves, 0 <= n <= size. */
KJ_MUST_CHECK int kj_mtree_root(const struct kj_mtree *t, uint64_t n,
				uint8_t root[32]);

/* RFC 9162 §2.1.3.1 PATH(index, D[0:n]), index < n <= size. */
KJ_MUST_CHECK int kj_mtree_inclusion_proof(const struct kj_mtree *t,
					   uint64_t index, uint64_t n,
					   uint8_t proof[][32]);

/*
 * RFC 9162 §2.1.4.1 PROOF(m, D[0:n]), 0 <= m <= n <= size.  m == 0 and
 * m == n give an empty proof (there is nothing to prove).
 */
KJ_MUST_CHECK int kj_mtree_consistency_proof(const struct kj_mtree *t,
					     uint64_t m, uint64_t n,
					     uint8_t proof[][32]);

/* The hashing primitives, for verifiers. */
void kj_mtree_leaf_hash(const void *data, size_t len, uint8_t out[32]);
void kj_mtree_node_hash(const uint8_t left[32], const uint8_t right[32],
			uint8_t out[32]);

/*
 * RFC 9162 §2.1.3.2: 0 if proof shows leaf_hash at index in the tree of
 * size n with root, else -EBADMSG.  Silent: the caller names the record.
 */
KJ_MUST_CHECK int kj_mtree_verify_inclusion(uint64_t index, uint64_t n,
					    const uint8_t leaf_hash[32],
					    const uint8_t proof[][32],
					    size_t proof_len,
					    const uint8_t root[32]);

/*
 * RFC 9162 §2.1.4.2: 0 if proof shows the tree (m, root_m) is a prefix of
 * (n, root_n), else -EBADMSG.  m == n needs an empty proof and equal roots;
 * m == 0 needs an empty proof and root_m = SHA-256("").  Silent.
 */
KJ_MUST_CHECK int kj_mtree_verify_consistency(uint64_t m, uint64_t n,
					      const uint8_t root_m[32],
					      const uint8_t root_n[32],
					      const uint8_t proof[][32],
					      size_t proof_len);

#endif
