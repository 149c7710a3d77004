// SPDX-License-Identifier: Apache-2.0
/*
 * RFC 9162 Merkle tree: the certificate-transparency golden vectors (the
 * 8-leaf reference tree of RFC 6962 implementations), a cross-check of every
 * root and proof for all 0 <= m <= n <= 64 against a naive recursive
 * reference, corrupted proofs, the file-backed tree (kj_mtree_new_file)
 * giving the in-memory tree's roots and proofs across its window edges,
 * and the append rate for 1M leaves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "attest/mtree.h"
#include "base/util.h"

static const char *const ct_leaves[8] = {
	"", "00", "10", "2021", "3031", "40414243", "5051525354555657",
	"606162636465666768696a6b6c6d6e6f",
};

/* MTH of the first n leaves, n = 0..8. */
static const char *const ct_roots[9] = {
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

struct vec {
	uint64_t a, n; /* (leaf index, size) or (m, n) */
	int len;
	const char *proof[3];
};

static const struct vec ct_inclusion[] = {
	{ 0, 8, 3, { "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
		     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" } },
	{ 5, 8, 3, { "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
		     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
		     "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
	{ 2, 3, 1, { "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125" } },
	{ 1, 5, 3, { "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b" } },
	{ 0, 1, 0, { NULL } },
};

static const struct vec ct_consistency[] = {
	{ 1, 1, 0, { NULL } },
	{ 1, 8, 3, { "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
		     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4" } },
	{ 6, 8, 3, { "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
		     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
		     "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7" } },
	{ 2, 5, 2, { "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
		     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b" } },
};

static void unhex(const char *s, uint8_t *out, size_t len)
{
	assert_int_equal(strlen(s), 2 * len);
	assert_int_equal(kj_hex_decode(s, out, len), 0);
}

static struct kj_mtree *ct_tree(void)
{
	struct kj_mtree *t = kj_mtree_new();
	uint8_t buf[16];

	assert_non_null(t);
	for (int i = 0; i < 8; i++) {
		size_t len = strlen(ct_leaves[i]) / 2;

		unhex(ct_leaves[i], buf, len);
		assert_int_equal(kj_mtree_append(t, buf, len), 0);
	}
	return t;
}

static void test_ct_roots(void **state)
{
	struct kj_mtree *t = ct_tree();
	uint8_t root[32], want[32];

	(void)state;
	assert_int_equal(kj_mtree_size(t), 8);
	for (uint64_t n = 0; n <= 8; n++) {
		unhex(ct_roots[n], want, 32);
		assert_int_equal(kj_mtree_root(t, n, root), 0);
		assert_memory_equal(root, want, 32);
	}
	assert_int_equal(kj_mtree_root(t, 9, root), -ERANGE);
	kj_mtree_free(t);
}

static void test_ct_inclusion(void **state)
{
	struct kj_mtree *t = ct_tree();
	uint8_t proof[KJ_MTREE_MAX_PROOF][32], want[3][32], root[32], leaf[32];

	(void)state;
	for (size_t v = 0; v < KJ_ARRAY_SIZE(ct_inclusion); v++) {
		const struct vec *c = &ct_inclusion[v];
		int len = kj_mtree_inclusion_proof(t, c->a, c->n, proof);

		assert_int_equal(len, c->len);
		for (int i = 0; i < len; i++) {
			unhex(c->proof[i], want[i], 32);
			assert_memory_equal(proof[i], want[i], 32);
		}
		unhex(ct_roots[c->n], root, 32);
		assert_int_equal(kj_mtree_leaf(t, c->a, leaf), 0);
		assert_int_equal(kj_mtree_verify_inclusion(c->a, c->n, leaf,
				 (const uint8_t(*)[32])want, (size_t)len,
				 root), 0);
	}
	kj_mtree_free(t);
}

static void test_ct_consistency(void **state)
{
	struct kj_mtree *t = ct_tree();
	uint8_t proof[KJ_MTREE_MAX_PROOF][32], want[3][32], r1[32], r2[32];

	(void)state;
	for (size_t v = 0; v < KJ_ARRAY_SIZE(ct_consistency); v++) {
		const struct vec *c = &ct_consistency[v];
		int len = kj_mtree_consistency_proof(t, c->a, c->n, proof);

		assert_int_equal(len, c->len);
		for (int i = 0; i < len; i++) {
			unhex(c->proof[i], want[i], 32);
			assert_memory_equal(proof[i], want[i], 32);
		}
		unhex(ct_roots[c->a], r1, 32);
		unhex(ct_roots[c->n], r2, 32);
		assert_int_equal(kj_mtree_verify_consistency(c->a, c->n, r1, r2,
				 (const uint8_t(*)[32])want, (size_t)len), 0);
		if (len)
			assert_int_equal(kj_mtree_verify_consistency(c->a, c->n,
					 r2, r1, (const uint8_t(*)[32])want,
					 (size_t)len), -EBADMSG);
	}
	kj_mtree_free(t);
}

/* The naive reference: RFC 9162 §2.1 straight from the definitions. */
#define N_MAX 64
static uint8_t ref_leaf[N_MAX][32];

static uint64_t ref_k(uint64_t n)
{
	uint64_t k = 1;

	while (k * 2 < n)
		k *= 2;
	return k;
}

static void ref_mth(uint64_t a, uint64_t n, uint8_t out[32])
{
	uint8_t l[32], r[32];
	uint64_t k;

	if (n == 1) {
		memcpy(out, ref_leaf[a], 32);
		return;
	}
	k = ref_k(n);
	ref_mth(a, k, l);
	ref_mth(a + k, n - k, r);
	kj_mtree_node_hash(l, r, out);
}

static void ref_path(uint64_t m, uint64_t a, uint64_t n, uint8_t p[][32],
		     int *len)
{
	uint64_t k;

	if (n == 1)
		return;
	k = ref_k(n);
	if (m < k) {
		ref_path(m, a, k, p, len);
		ref_mth(a + k, n - k, p[(*len)++]);
	} else {
		ref_path(m - k, a + k, n - k, p, len);
		ref_mth(a, k, p[(*len)++]);
	}
}

static void ref_sub(uint64_t m, uint64_t a, uint64_t n, int b, uint8_t p[][32],
		    int *len)
{
	uint64_t k;

	if (m == n) {
		if (!b)
			ref_mth(a, m, p[(*len)++]);
		return;
	}
	k = ref_k(n);
	if (m <= k) {
		ref_sub(m, a, k, b, p, len);
		ref_mth(a + k, n - k, p[(*len)++]);
	} else {
		ref_sub(m - k, a + k, n - k, 0, p, len);
		ref_mth(a, k, p[(*len)++]);
	}
}

static void test_cross_check(void **state)
{
	uint8_t proof[KJ_MTREE_MAX_PROOF][32], ref[KJ_MTREE_MAX_PROOF][32];
	uint8_t roots[N_MAX + 1][32], want[32];
	struct kj_mtree *t = kj_mtree_new();
	unsigned seed = 20261124;

	(void)state;
	for (int i = 0; i < N_MAX; i++) {
		uint8_t rec[40];
		size_t len = (size_t)(rand_r(&seed) % sizeof(rec));

		for (size_t j = 0; j < len; j++)
			rec[j] = (uint8_t)rand_r(&seed);
		kj_mtree_leaf_hash(rec, len, ref_leaf[i]);
		assert_int_equal(kj_mtree_append(t, rec, len), 0);
	}
	for (uint64_t n = 0; n <= N_MAX; n++) {
		assert_int_equal(kj_mtree_root(t, n, roots[n]), 0);
		if (n) {
			ref_mth(0, n, want);
			assert_memory_equal(roots[n], want, 32);
		}
	}
	for (uint64_t n = 1; n <= N_MAX; n++) {
		for (uint64_t i = 0; i < n; i++) {
			int len = kj_mtree_inclusion_proof(t, i, n, proof);
			int rlen = 0;

			ref_path(i, 0, n, ref, &rlen);
			assert_int_equal(len, rlen);
			assert_memory_equal(proof, ref, (size_t)len * 32);
			assert_int_equal(kj_mtree_verify_inclusion(i, n,
					 ref_leaf[i], (const uint8_t(*)[32])proof,
					 (size_t)len, roots[n]), 0);
			/* Wrong index, wrong size, flipped bit, short proof. */
			assert_int_not_equal(kj_mtree_verify_inclusion(i ^ 1, n,
					 ref_leaf[i], (const uint8_t(*)[32])proof,
					 (size_t)len, roots[n]), 0);
			assert_int_not_equal(kj_mtree_verify_inclusion(i, 2 * n,
					 ref_leaf[i], (const uint8_t(*)[32])proof,
					 (size_t)len, roots[n]), 0);
			for (int j = 0; j < len; j++) {
				proof[j][j % 32] ^= 0x10;
				assert_int_equal(kj_mtree_verify_inclusion(i, n,
						 ref_leaf[i],
						 (const uint8_t(*)[32])proof,
						 (size_t)len, roots[n]), -EBADMSG);
				proof[j][j % 32] ^= 0x10;
			}
			if (len)
				assert_int_equal(kj_mtree_verify_inclusion(i, n,
						 ref_leaf[i],
						 (const uint8_t(*)[32])proof,
						 (size_t)len - 1, roots[n]), -EBADMSG);
		}
		for (uint64_t m = 0; m <= n; m++) {
			int len = kj_mtree_consistency_proof(t, m, n, proof);
			int rlen = 0;

			if (m > 0 && m < n)
				ref_sub(m, 0, n, 1, ref, &rlen);
			assert_int_equal(len, rlen);
			assert_memory_equal(proof, ref, (size_t)len * 32);
			assert_int_equal(kj_mtree_verify_consistency(m, n,
					 roots[m], roots[n],
					 (const uint8_t(*)[32])proof, (size_t)len),
					 0);
			if (m == n)
				continue;
			/* A different old root must not link. */
			assert_int_equal(kj_mtree_verify_consistency(m, n,
					 roots[n], roots[n],
					 (const uint8_t(*)[32])proof, (size_t)len),
					 -EBADMSG);
			for (int j = 0; j < len; j++) {
				proof[j][0] ^= 0x10;
				assert_int_equal(kj_mtree_verify_consistency(m,
						 n, roots[m], roots[n],
						 (const uint8_t(*)[32])proof,
						 (size_t)len), -EBADMSG);
				proof[j][0] ^= 0x10;
			}
			if (len > 1)
				assert_int_equal(kj_mtree_verify_consistency(m,
						 n, roots[m], roots[n],
						 (const uint8_t(*)[32])proof,
						 (size_t)len - 1), -EBADMSG);
		}
	}
	/* Requests beyond the tree are refused. */
	assert_int_equal(kj_mtree_inclusion_proof(t, 5, 5, proof), -ERANGE);
	assert_int_equal(kj_mtree_consistency_proof(t, 3, N_MAX + 1, proof),
			 -ERANGE);
	assert_int_equal(kj_mtree_consistency_proof(t, 9, 8, proof), -ERANGE);
	kj_mtree_free(t);
}

/* Append rate and proof cost at 1M leaves (reported, not asserted). */
/* kj_mtree_new_file: the same hashes, whatever level is on disk. */
static void test_file_tree(void **state)
{
	struct kj_mtree *m = kj_mtree_new(), *f;
	uint8_t pm[KJ_MTREE_MAX_PROOF][32], pf[KJ_MTREE_MAX_PROOF][32];
	uint8_t rm[32], rf[32], leaf[8];
	const uint64_t n = 5000;  /* levels 0-2 spill past 1,024 hashes */
	char dir[] = "/tmp/kj-mtree-XXXXXX";

	(void)state;
	assert_non_null(mkdtemp(dir));
	f = kj_mtree_new_file(dir);
	assert_non_null(m);
	assert_non_null(f);
	for (uint64_t i = 0; i < n; i++) {
		kj_put_u64be(leaf, i * 2654435761u);
		assert_int_equal(kj_mtree_append(m, leaf, sizeof(leaf)), 0);
		assert_int_equal(kj_mtree_append(f, leaf, sizeof(leaf)), 0);
	}
	for (uint64_t s = 1; s <= n; s += s < 2100 ? 97 : 613) {
		assert_int_equal(kj_mtree_root(m, s, rm), 0);
		assert_int_equal(kj_mtree_root(f, s, rf), 0);
		assert_memory_equal(rm, rf, 32);
		for (uint64_t i = 0; i < s; i += 1 + s / 7) {
			int a = kj_mtree_inclusion_proof(m, i, s, pm);
			int b = kj_mtree_inclusion_proof(f, i, s, pf);

			assert_true(a >= 0);
			assert_int_equal(a, b);
			assert_memory_equal(pm, pf, (size_t)a * 32);
			a = kj_mtree_consistency_proof(m, i + 1, s, pm);
			b = kj_mtree_consistency_proof(f, i + 1, s, pf);
			assert_true(a >= 0);
			assert_int_equal(a, b);
			assert_memory_equal(pm, pf, (size_t)a * 32);
		}
		assert_int_equal(kj_mtree_leaf(m, s - 1, rm), 0);
		assert_int_equal(kj_mtree_leaf(f, s - 1, rf), 0);
		assert_memory_equal(rm, rf, 32);
	}
	kj_mtree_free(m);
	kj_mtree_free(f);
	/* Unlinked files: nothing is left in the directory. */
	assert_int_equal(rmdir(dir), 0);

	/* A directory that cannot take the files: the append fails. */
	f = kj_mtree_new_file("/nonexistent/kj-mtree");
	assert_non_null(f);
	for (uint64_t i = 0; i < 1024; i++)
		assert_int_equal(kj_mtree_append(f, "x", 1), 0);
	assert_int_equal(kj_mtree_append(f, "x", 1), -ENOENT);
	kj_mtree_free(f);
}

static void test_bench_1m(void **state)
{
	uint8_t proof[KJ_MTREE_MAX_PROOF][32], root[32], leaf[32];
	struct kj_mtree *t = kj_mtree_new();
#ifdef __SANITIZE_ADDRESS__
	const uint64_t n = 100000; /* ASan: the rate means nothing, keep it quick */
#else
	const uint64_t n = 1000000;
#endif
	char rec[200];
	struct timespec a, b;
	double s;

	(void)state;
	memset(rec, 'x', sizeof(rec));
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (uint64_t i = 0; i < n; i++) {
		memcpy(rec, &i, sizeof(i));
		assert_int_equal(kj_mtree_append(t, rec, sizeof(rec)), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("mtree: %llu appends (200-byte leaves) in %.3f s: %.0f appends/s\n",
	       (unsigned long long)n, s, (double)n / s);

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (uint64_t i = 0; i < 10000; i++) {
		uint64_t size = n - i * 7, idx = (i * 7919) % size;
		int len = kj_mtree_inclusion_proof(t, idx, size, proof);

		assert_true(len > 0);
		assert_int_equal(kj_mtree_root(t, size, root), 0);
		assert_int_equal(kj_mtree_leaf(t, idx, leaf), 0);
		assert_int_equal(kj_mtree_verify_inclusion(idx, size, leaf,
				 (const uint8_t(*)[32])proof, (size_t)len,
				 root), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("mtree: 10000 x (root + inclusion proof + verify) at ~%llu leaves: %.1f us each\n",
	       (unsigned long long)n, s * 1e6 / 10000);
	kj_mtree_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ct_roots),
		cmocka_unit_test(test_ct_inclusion),
		cmocka_unit_test(test_ct_consistency),
		cmocka_unit_test(test_cross_check),
		cmocka_unit_test(test_file_tree),
		cmocka_unit_test(test_bench_1m),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
