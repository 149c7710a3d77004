// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer: the credential batch parser, into a real secret arena, then
 * the injector-side table checks over what it built.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "inputs/creds.h"
#include "secret/arena.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ARENA_SIZE (1u << 20)

static void check_table(const struct kj_arena *a, const struct kj_creds *c)
{
	const struct kj_cred_table *t =
		kj_creds_table(a->base, a->size, c->table_off);

	if (!t || t != c->table || t->count != c->count || !t->count)
		abort();
	for (size_t i = 0; i < t->count; i++) {
		const struct kj_cred *e = &t->cred[i];
		const uint8_t *blob = kj_cred_blob(a->base, a->size, e);

		if (!blob || (i && e->index <= t->cred[i - 1].index) ||
		    kj_creds_find(t, e->index) != e ||
		    kj_get_u32be(blob) != e->cert_len ||
		    kj_get_u32be(blob + 4 + e->cert_len) != e->key_len)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kj_arena a;
	struct kj_creds c;

	if (!a.base && kj_arena_create(&a, ARENA_SIZE, KJ_ARENA_AUTO) < 0)
		abort();
	if (kj_creds_arena_need(data, size) > a.size)
		return 0;
	if (kj_creds_parse(&a, data, size, "CREDS", &c) == 0)
		check_table(&a, &c);
	kj_arena_wipe(&a);
	return 0;
}
