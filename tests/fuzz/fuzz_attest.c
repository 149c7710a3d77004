// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for the quote and AK parsers of attest.c: the bytes a
 * customer's verifier takes from an evidence bundle (TPMS_ATTEST,
 * TPMT_SIGNATURE, TPM2B_PUBLIC).  The first byte picks the entry point:
 *   0: kj_quote_parse(rest)
 *   1: kj_ak_parse(rest)
 *   2: kj_quote_verify under a fixed real AK, rest = u16be attest length,
 *      attest, signature
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest/attest.h"
#include "base/log.h"
#include "base/util.h"

/*
 * A TPM2B_PUBLIC written by tpm2_createak -G ecc -s ecdsa (swtpm); the seed
 * corpus/fuzz_attest/verify is its tpm2_quote over sha256:13,14 (zero) with
 * 32 zero bytes of qualifying data, so mutations start from a valid quote.
 */
static const char ak_hex[] =
	"00580023000b00050072000000100018000b000300100020f77b9aa5ed63"
	"e80d6a9c874d3a7f747fb73131047c61c4e041ffc0055c1c279d0020fa9e"
	"c4c36e526bdfe55f6170dc4219d6e440515ee8e20bd0250923d6c57d9896";

static struct kj_ak ak;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void init(void)
{
	uint8_t pub[sizeof(ak_hex) / 2];

	if (ak.pkey)
		return;
	if (kj_hex_decode(ak_hex, pub, sizeof(pub)) < 0 ||
	    kj_ak_parse(pub, sizeof(pub), &ak, NULL) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t pcrs[KJ_TPM_PCR_COUNT][32];
	static const uint8_t qd[32];
	struct kj_quote_info qi;
	struct kj_ak a;
	size_t alen;

	init();
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		(void)kj_quote_parse(data + 1, size - 1, &qi, NULL);
		break;
	case 1:
		if (kj_ak_parse(data + 1, size - 1, &a, NULL) == 0)
			kj_ak_free(&a);
		break;
	default:
		if (size < 3)
			return 0;
		alen = kj_get_u16be(data + 1);
		if (alen > size - 3)
			return 0;
		(void)kj_quote_verify(&ak, data + 3, alen, data + 3 + alen,
				      size - 3 - alen, qd, KJ_PCR_DEFAULT_MASK,
				      pcrs, &qi, NULL);
		break;
	}
	return 0;
}
