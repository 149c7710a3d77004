// SPDX-License-Identifier: Apache-2.0
/*
 * The verifier's memory-bounded indexes (verify_int.h): a record-by-record
 * verifier of a 1,000,000-device lot cannot keep the records, so checks 6
 * and 7 keep fixed-size entries instead (an ok record's attempt, 96-bit
 * digests of uids and serials), in open-addressing tables that never fill
 * beyond 3/4 (docs/EVIDENCE-IMPL.md states the bytes per ok record).
 */
#include <stdlib.h>
#include <string.h>

#include "verify_int.h"

static uint64_t mix(const uint8_t *key)
{
	uint64_t x;

	memcpy(&x, key, sizeof(x));
	/* splitmix64's finaliser: attempt ids are not uniform. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

int kj_vtab_init(struct kj_vtab *t, size_t esz, size_t klen, size_t hint)
{
	size_t cap = hint / 3 * 4 + 64;

	memset(t, 0, sizeof(*t));
	t->esz = esz;
	t->klen = klen;
	t->cap = cap;
	t->e = calloc(cap, esz);
	t->used = calloc(cap, 1);
	if (!t->e || !t->used) {
		kj_vtab_free(t);
		return -ENOMEM;
	}
	return 0;
}

void kj_vtab_free(struct kj_vtab *t)
{
	free(t->e);
	free(t->used);
	memset(t, 0, sizeof(*t));
}

static size_t slot(const struct kj_vtab *t, const void *key)
{
	size_t i = (size_t)(mix(key) % t->cap);

	while (t->used[i] &&
	       memcmp(t->e + i * t->esz, key, t->klen))
		i = i + 1 == t->cap ? 0 : i + 1;
	return i;
}

static int grow(struct kj_vtab *t)
{
	struct kj_vtab n = { .esz = t->esz, .klen = t->klen,
			     .cap = t->cap * 2 };

	n.e = calloc(n.cap, n.esz);
	n.used = calloc(n.cap, 1);
	if (!n.e || !n.used) {
		kj_vtab_free(&n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < t->cap; i++) {
		size_t j;

		if (!t->used[i])
			continue;
		j = slot(&n, t->e + i * t->esz);
		n.used[j] = 1;
		memcpy(n.e + j * n.esz, t->e + i * t->esz, n.esz);
	}
	n.n = t->n;
	kj_vtab_free(t);
	*t = n;
	return 0;
}

void *kj_vtab_find(const struct kj_vtab *t, const void *key)
{
	size_t i;

	if (!t->cap)
		return NULL;
	i = slot(t, key);
	return t->used[i] ? t->e + i * t->esz : NULL;
}

void *kj_vtab_add(struct kj_vtab *t, const void *key, bool *fresh)
{
	size_t i;

	if ((t->n + 1) * 4 > t->cap * 3 && grow(t) < 0)
		return NULL;
	i = slot(t, key);
	*fresh = !t->used[i];
	if (*fresh) {
		t->used[i] = 1;
		t->n++;
		memcpy(t->e + i * t->esz, key, t->klen);
	}
	return t->e + i * t->esz;
}
