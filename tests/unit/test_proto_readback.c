// SPDX-License-Identifier: Apache-2.0
/*
 * The readback digest (PROTOCOL.md, wire/readback.h) against golden
 * vectors derived with coreutils, not with this code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/util.h"
#include "wire/proto.h"
#include "wire/readback.h"

/* ---- readback digest: golden vectors ---- */

/*
 * Derived independently of this code with coreutils (run once, pasted):
 *  v1: printf 'KINJECT-READBACK-1\x00\x01\x01' | sha256sum
 *      (empty firmware, uid = 01, empty cred_blob)
 *  v2: printf 'KINJECT-READBACK-1firmware-image-v1\x00\x08\x01\x02\x03'\
 *             '\x04\x05\x06\x07\x08\x00\x00\x00\x03CRT\x00\x00\x00\x00' |
 *      sha256sum
 *      (fw "firmware-image-v1", uid 01..08, cred_blob = u32be(3) "CRT"
 *       u32be(0): a 3-byte cert and no key)
 *  v3: { printf 'KINJECT-READBACK-1'; head -c 70000 /dev/zero | tr '\0' A;
 *        printf '\x00\x40'; head -c 64 /dev/zero | tr '\0' '\377';
 *        head -c 1500 /dev/zero | tr '\0' c; } | sha256sum
 *      (70000 x 'A' firmware, 64 x 0xff uid, 1500 x 'c' cred_blob)
 */
static const char *const golden[] = {
	"e9cc7a71c8c30fb4b925bd39b7e5d87f0cc9a8a79f4036c2d3b952e55f78e2a0",
	"798ededdef414b608ea0de8929246e191ce5154bdbc61b05df0e913b43901c02",
	"c4fa2e13ff5841ed174c247ba8e24d647d1379fffabdc40ba0923f82af6372d5",
};

struct vec {
	uint8_t *fw, *uid, *cred;
	size_t fw_len, uid_len, cred_len;
};

static void make_vec(int i, struct vec *v)
{
	static const uint8_t cred2[] = "\x00\x00\x00\x03" "CRT\x00\x00\x00\x00";

	memset(v, 0, sizeof(*v));
	switch (i) {
	case 0:
		v->uid_len = 1;
		v->uid = calloc(1, 1);
		v->uid[0] = 1;
		break;
	case 1:
		v->fw_len = 17;
		v->fw = (uint8_t *)strdup("firmware-image-v1");
		v->uid_len = 8;
		v->uid = malloc(8);
		for (int k = 0; k < 8; k++)
			v->uid[k] = (uint8_t)(k + 1);
		v->cred_len = sizeof(cred2) - 1;
		v->cred = malloc(v->cred_len);
		memcpy(v->cred, cred2, v->cred_len);
		break;
	default:
		v->fw_len = 70000;
		v->fw = malloc(v->fw_len);
		memset(v->fw, 'A', v->fw_len);
		v->uid_len = 64;
		v->uid = malloc(64);
		memset(v->uid, 0xff, 64);
		v->cred_len = 1500;
		v->cred = malloc(1500);
		memset(v->cred, 'c', 1500);
		break;
	}
}

static void test_readback_golden(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++) {
		struct kj_readback fw, s;
		uint8_t want[32], got[32], again[32];
		struct vec v;

		make_vec(i, &v);
		assert_int_equal(kj_hex_decode(golden[i], want, 32), 0);
		/* precomputed firmware part, per-device copy */
		kj_readback_begin(&fw);
		kj_readback_update(&fw, v.fw, v.fw_len);
		kj_readback_device(&fw, v.uid, v.uid_len, v.cred, v.cred_len,
				   got);
		assert_memory_equal(got, want, 32);
		/* the precomputed state is reusable: same again */
		kj_readback_device(&fw, v.uid, v.uid_len, v.cred, v.cred_len,
				   again);
		assert_memory_equal(again, want, 32);
		assert_true(kj_readback_equal(again, want));
		again[31] ^= 1;
		assert_false(kj_readback_equal(again, want));
		kj_readback_wipe(&fw);
		/* streaming, odd chunks, as a site computes it */
		kj_readback_begin(&s);
		for (size_t off = 0; off < v.fw_len; off += 777)
			kj_readback_update(&s, v.fw + off,
					   v.fw_len - off < 777 ?
						   v.fw_len - off : 777);
		kj_readback_add_uid(&s, v.uid, v.uid_len);
		for (size_t off = 0; off < v.cred_len; off += 5)
			kj_readback_update(&s, v.cred + off,
					   v.cred_len - off < 5 ?
						   v.cred_len - off : 5);
		kj_readback_final(&s, got);
		assert_memory_equal(got, want, 32);
		free(v.fw);
		free(v.uid);
		free(v.cred);
	}
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_readback_golden),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
