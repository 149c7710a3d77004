// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer: the keeper's check of what an injector asks the TLS key to
 * sign (keeper/keeper_sign.c).  Accepted means exactly the RFC 8446
 * §4.4.3 server CertificateVerify layout; anything accepted is checked
 * against it again here, so a check that lets other bytes through aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keeper/keeper_sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char ctx[] = KJ_TLS_CV_CONTEXT;
	const char *why = NULL;

	if (kj_tls_cv_check(data, size, &why) < 0) {
		if (!why)
			abort();
		return 0;
	}
	if (size != 64 + sizeof(ctx) + 32 ||
	    memcmp(data + 64, ctx, sizeof(ctx)))
		abort();
	for (size_t i = 0; i < 64; i++)
		if (data[i] != 0x20)
			abort();
	return 0;
}
