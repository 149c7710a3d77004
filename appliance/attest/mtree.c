// SPDX-License-Identifier: Apache-2.0
/*
 * RFC 9162 §2.1 Merkle tree (EVIDENCE.md §3).  levels[k] holds the hashes of
 * the complete, aligned subtrees of 2^k leaves: levels[0] are the leaf
 * hashes, levels[k][i] covers leaves [i·2^k, (i+1)·2^k).  Any MTH(D[a:b])
 * that the RFC recursion asks for splits into O(log n) of those.
 *
 * A tree made by kj_mtree_new_file keeps each level in an unlinked temporary
 * file instead (evidence export of a 1,000,000-record log: 64 MB held
 * otherwise): the last WIN hashes of a level in memory, where appends go,
 * and two read windows of WIN hashes per level, since a proof reads near
 * its leaf and near the right edge of the tree it proves against.  The
 * hashes are those of public records: nothing secret reaches the disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "mtree.h"
#include "base/array.h"
#include "base/log.h"

#define MAX_LEVELS 64
#define WIN 1024        /* hashes per window and per in-memory tail */

struct level {
	uint8_t (*h)[32];   /* all hashes, or (file) those from flushed on */
	uint64_t n;
	size_t cap;
};

struct win {
	uint64_t first, tick;
	size_t n;
	uint8_t (*h)[32];
};

/* File mode: mutable through a const tree (reads fill windows). */
struct disk {
	char dir[PATH_MAX];
	int fd[MAX_LEVELS];
	uint64_t flushed[MAX_LEVELS];
	struct win w[MAX_LEVELS][2];
	uint64_t tick;
	int err;
};

struct kj_mtree {
	uint64_t size;
	struct level lv[MAX_LEVELS];
	struct disk *d;
};

void kj_mtree_leaf_hash(const void *data, size_t len, uint8_t out[32])
{
	static const uint8_t prefix = 0x00;
	uint8_t buf[1024];
	EVP_MD_CTX *ctx;

	/* Records are short: one copy beats a digest context allocation. */
	if (len < sizeof(buf)) {
		buf[0] = prefix;
		memcpy(buf + 1, data, len);
		SHA256(buf, len + 1, out);
		return;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(ctx, &prefix, 1) ||
	    !EVP_DigestUpdate(ctx, data, len) ||
	    !EVP_DigestFinal_ex(ctx, out, NULL))
		abort(); /* SHA-256 fails only on memory exhaustion */
	EVP_MD_CTX_free(ctx);
}

void kj_mtree_node_hash(const uint8_t left[32], const uint8_t right[32],
			uint8_t out[32])
{
	uint8_t buf[65];

	buf[0] = 0x01;
	memcpy(buf + 1, left, 32);
	memcpy(buf + 33, right, 32);
	SHA256(buf, sizeof(buf), out);
}

struct kj_mtree *kj_mtree_new(void)
{
	struct kj_mtree *t = calloc(1, sizeof(*t));

	if (!t)
		kj_err("transparency log: out of memory");
	return t;
}

struct kj_mtree *kj_mtree_new_file(const char *dir)
{
	struct kj_mtree *t = kj_mtree_new();

	if (!t)
		return NULL;
	t->d = calloc(1, sizeof(*t->d));
	if (!t->d) {
		kj_err("transparency log: out of memory");
		free(t);
		return NULL;
	}
	snprintf(t->d->dir, sizeof(t->d->dir), "%s", dir);
	for (int k = 0; k < MAX_LEVELS; k++)
		t->d->fd[k] = -1;
	return t;
}

void kj_mtree_free(struct kj_mtree *t)
{
	if (!t)
		return;
	for (int k = 0; k < MAX_LEVELS; k++)
		free(t->lv[k].h);
	if (t->d) {
		for (int k = 0; k < MAX_LEVELS; k++) {
			if (t->d->fd[k] >= 0)
				close(t->d->fd[k]);
			free(t->d->w[k][0].h);
			free(t->d->w[k][1].h);
		}
		free(t->d);
	}
	free(t);
}

/* An unlinked file in dir: O_TMPFILE, or mkstemp and unlink where the
 * file system has no O_TMPFILE. */
static int tmp_file(const char *dir)
{
	char path[PATH_MAX];
	int fd;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR &&
			 errno != EINVAL))
		return fd < 0 ? -errno : fd;
	if ((size_t)snprintf(path, sizeof(path), "%s/.kinject-tree.XXXXXX",
			     dir) >= sizeof(path))
		return -ENAMETOOLONG;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	return fd;
}

/* File mode: level k's full tail of WIN hashes goes to its file. */
static int flush_tail(struct kj_mtree *t, int k)
{
	struct disk *d = t->d;
	size_t len = WIN * 32;
	ssize_t w;

	if (d->fd[k] < 0) {
		d->fd[k] = tmp_file(d->dir);
		if (d->fd[k] < 0) {
			kj_err("%s: cannot create a temporary file for the transparency log's tree: %s (the directory must be writable)",
			       d->dir, strerror(-d->fd[k]));
			return d->fd[k];
		}
	}
	w = pwrite(d->fd[k], t->lv[k].h, len, (off_t)(d->flushed[k] * 32));
	if (w != (ssize_t)len) {
		kj_err("%s: cannot write the transparency log's tree to a temporary file: %s",
		       d->dir, w < 0 ? strerror(errno) : "short write");
		return w < 0 ? -errno : -EIO;
	}
	d->flushed[k] += WIN;
	return 0;
}

/* File mode: hash i < flushed of level k through its two windows. */
static void read_win(const struct kj_mtree *t, int k, uint64_t i,
		     uint8_t out[32])
{
	struct disk *d = t->d;
	struct win *w = d->w[k];
	ssize_t r;

	for (int j = 0; j < 2; j++) {
		if (w[j].h && i >= w[j].first && i < w[j].first + w[j].n) {
			w[j].tick = ++d->tick;
			memcpy(out, w[j].h[i - w[j].first], 32);
			return;
		}
	}
	w = w[0].tick <= w[1].tick ? &w[0] : &w[1];
	if (!w->h && !(w->h = malloc(WIN * 32))) {
		d->err = -ENOMEM;
		goto fail;
	}
	w->first = i / WIN * WIN;
	w->n = WIN; /* whole windows only: flushed is a multiple of WIN */
	w->tick = ++d->tick;
	r = pread(d->fd[k], w->h, WIN * 32, (off_t)(w->first * 32));
	if (r == WIN * 32) {
		memcpy(out, w->h[i - w->first], 32);
		return;
	}
	d->err = r < 0 ? -errno : -EIO;
	w->n = 0;
	if (d->err != -ENOMEM)
		kj_err("%s: cannot read the transparency log's tree back from its temporary file: %s",
		       d->dir, strerror(-d->err));
fail:
	memset(out, 0, 32);
}

/* Hash i of level k. */
static void node(const struct kj_mtree *t, int k, uint64_t i, uint8_t out[32])
{
	if (!t->d || i >= t->d->flushed[k]) {
		memcpy(out, t->lv[k].h[i - (t->d ? t->d->flushed[k] : 0)], 32);
		return;
	}
	read_win(t, k, i, out);
}

/* File mode: a read failed (named where it did); 0 otherwise. */
static int disk_err(const struct kj_mtree *t)
{
	return t->d ? t->d->err : 0;
}

uint64_t kj_mtree_size(const struct kj_mtree *t)
{
	return t->size;
}

static int level_push(struct kj_mtree *t, int k, const uint8_t h[32])
{
	struct level *l = &t->lv[k];
	uint64_t off = t->d ? t->d->flushed[k] : 0;

	/* A full tail is flushed only now: the parent of its last two
	 * hashes was made from memory. */
	if (t->d && l->n - off == WIN) {
		KJ_TRY(flush_tail(t, k));
		off += WIN;
	}
	if (kj_grow(&l->h, &l->cap, l->n - off + 1, t->d ? WIN : 1024)) {
		kj_err("transparency log: out of memory at %llu leaves",
		       (unsigned long long)l->n);
		return -ENOMEM;
	}
	memcpy(l->h[l->n++ - off], h, 32);
	return 0;
}

int kj_mtree_append_hash(struct kj_mtree *t, const uint8_t leaf_hash[32])
{
	uint8_t h[32];
	int k = 0;

	if (t->size == UINT64_MAX >> 1)
		return -EOVERFLOW;
	KJ_TRY(level_push(t, 0, leaf_hash));
	t->size++;
	/* Each time a level gets an even count, a new parent is complete
	 * (in file mode both hashes are still in the tail). */
	while (k + 1 < MAX_LEVELS && t->lv[k].n % 2 == 0) {
		struct level *l = &t->lv[k];
		uint64_t off = t->d ? t->d->flushed[k] : 0;

		kj_mtree_node_hash(l->h[l->n - 2 - off], l->h[l->n - 1 - off],
				   h);
		KJ_TRY(level_push(t, k + 1, h));
		k++;
	}
	return 0;
}

int kj_mtree_append(struct kj_mtree *t, const void *data, size_t len)
{
	uint8_t h[32];

	kj_mtree_leaf_hash(data, len, h);
	return kj_mtree_append_hash(t, h);
}

int kj_mtree_leaf(const struct kj_mtree *t, uint64_t index, uint8_t out[32])
{
	if (index >= t->size) {
		kj_err("transparency log: leaf %llu is beyond the tree size %llu",
		       (unsigned long long)index, (unsigned long long)t->size);
		return -ERANGE;
	}
	node(t, 0, index, out);
	return disk_err(t);
}

/* Largest power of two strictly less than n (n >= 2). */
static uint64_t split_point(uint64_t n)
{
	return (uint64_t)1 << (63 - __builtin_clzll(n - 1));
}

/*
 * MTH(D[start:start+len]), len >= 1, inside the current tree.  The RFC
 * recursion only asks for ranges whose left parts are aligned, so a
 * power-of-two range is one stored node; otherwise split and recurse on the
 * right part only (depth <= 64).
 */
static void subtree(const struct kj_mtree *t, uint64_t start, uint64_t len,
		    uint8_t out[32])
{
	uint8_t l[32], r[32];
	uint64_t k;

	if ((len & (len - 1)) == 0 && start % len == 0) {
		int lvl = __builtin_ctzll(len);

		node(t, lvl, start >> lvl, out);
		return;
	}
	k = split_point(len);
	subtree(t, start, k, l);
	subtree(t, start + k, len - k, r);
	kj_mtree_node_hash(l, r, out);
}

int kj_mtree_root(const struct kj_mtree *t, uint64_t n, uint8_t root[32])
{
	if (n > t->size) {
		kj_err("transparency log: no tree of size %llu, only %llu leaves",
		       (unsigned long long)n, (unsigned long long)t->size);
		return -ERANGE;
	}
	if (n == 0) {
		SHA256((const uint8_t *)"", 0, root);
		return 0;
	}
	subtree(t, 0, n, root);
	return disk_err(t);
}

/* RFC 9162 §2.1.3.1 PATH(m, D[start:start+n]); appends at proof[*len]. */
static void path(const struct kj_mtree *t, uint64_t m, uint64_t start,
		 uint64_t n, uint8_t proof[][32], size_t *len)
{
	uint64_t k;

	if (n == 1)
		return;
	k = split_point(n);
	if (m < k) {
		path(t, m, start, k, proof, len);
		subtree(t, start + k, n - k, proof[(*len)++]);
	} else {
		path(t, m - k, start + k, n - k, proof, len);
		subtree(t, start, k, proof[(*len)++]);
	}
}

int kj_mtree_inclusion_proof(const struct kj_mtree *t, uint64_t index,
			     uint64_t n, uint8_t proof[][32])
{
	size_t len = 0;

	if (n > t->size || index >= n) {
		kj_err("transparency log: no inclusion proof for leaf %llu in a tree of size %llu (%llu leaves)",
		       (unsigned long long)index, (unsigned long long)n,
		       (unsigned long long)t->size);
		return -ERANGE;
	}
	path(t, index, 0, n, proof, &len);
	return disk_err(t) ? disk_err(t) : (int)len;
}

/* RFC 9162 §2.1.4.1 SUBPROOF(m, D[start:start+n], b). */
static void subproof(const struct kj_mtree *t, uint64_t m, uint64_t start,
		     uint64_t n, bool complete, uint8_t proof[][32],
		     size_t *len)
{
	uint64_t k;

	if (m == n) {
		if (!complete)
			subtree(t, start, m, proof[(*len)++]);
		return;
	}
	k = split_point(n);
	if (m <= k) {
		subproof(t, m, start, k, complete, proof, len);
		subtree(t, start + k, n - k, proof[(*len)++]);
	} else {
		subproof(t, m - k, start + k, n - k, false, proof, len);
		subtree(t, start, k, proof[(*len)++]);
	}
}

int kj_mtree_consistency_proof(const struct kj_mtree *t, uint64_t m,
			       uint64_t n, uint8_t proof[][32])
{
	size_t len = 0;

	if (n > t->size || m > n) {
		kj_err("transparency log: no consistency proof from size %llu to %llu (%llu leaves)",
		       (unsigned long long)m, (unsigned long long)n,
		       (unsigned long long)t->size);
		return -ERANGE;
	}
	if (m == 0 || m == n)
		return 0;
	subproof(t, m, 0, n, true, proof, &len);
	return disk_err(t) ? disk_err(t) : (int)len;
}

static bool hash_eq(const uint8_t a[32], const uint8_t b[32])
{
	return CRYPTO_memcmp(a, b, 32) == 0;
}

int kj_mtree_verify_inclusion(uint64_t index, uint64_t n,
			      const uint8_t leaf_hash[32],
			      const uint8_t proof[][32], size_t proof_len,
			      const uint8_t root[32])
{
	uint64_t fn = index, sn;
	uint8_t r[32];

	if (index >= n)
		return -EBADMSG;
	sn = n - 1;
	memcpy(r, leaf_hash, 32);
	for (size_t i = 0; i < proof_len; i++) {
		if (sn == 0)
			return -EBADMSG;
		if ((fn & 1) || fn == sn) {
			kj_mtree_node_hash(proof[i], r, r);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			kj_mtree_node_hash(r, proof[i], r);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && hash_eq(r, root) ? 0 : -EBADMSG;
}

int kj_mtree_verify_consistency(uint64_t m, uint64_t n,
				const uint8_t root_m[32],
				const uint8_t root_n[32],
				const uint8_t proof[][32], size_t proof_len)
{
	uint8_t fr[32], sr[32], empty[32];
	uint64_t fn, sn;
	size_t i = 0;

	if (m > n)
		return -EBADMSG;
	if (m == n)
		return proof_len == 0 && hash_eq(root_m, root_n) ? 0 : -EBADMSG;
	if (m == 0) {
		SHA256((const uint8_t *)"", 0, empty);
		return proof_len == 0 && hash_eq(root_m, empty) ? 0 : -EBADMSG;
	}
	/* RFC 9162 §2.1.4.2 */
	if (proof_len == 0)
		return -EBADMSG;
	if ((m & (m - 1)) == 0) {
		/* m is a power of two: root_m is the implicit first element. */
		memcpy(fr, root_m, 32);
	} else {
		memcpy(fr, proof[0], 32);
		i = 1;
	}
	memcpy(sr, fr, 32);
	fn = m - 1;
	sn = n - 1;
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	for (; i < proof_len; i++) {
		if (sn == 0)
			return -EBADMSG;
		if ((fn & 1) || fn == sn) {
			kj_mtree_node_hash(proof[i], fr, fr);
			kj_mtree_node_hash(proof[i], sr, sr);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			kj_mtree_node_hash(sr, proof[i], sr);
		}
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && hash_eq(fr, root_m) && hash_eq(sr, root_n) ?
		       0 : -EBADMSG;
}
