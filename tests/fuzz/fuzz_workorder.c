// SPDX-License-Identifier: Apache-2.0
/* libFuzzer: WO.json parser and the per-device revision lookup. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inputs/workorder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kj_work_order *wo = malloc(sizeof(*wo));

	if (!wo)
		return 0;
	if (kj_work_order_parse(data, size, "WO.json", wo) == 0) {
		/* Invariants a caller relies on. */
		if (wo->raw_len != size || memcmp(wo->raw, data, size) ||
		    !wo->n_hwrev || wo->n_hwrev > KJ_WO_MAX_HWREV ||
		    !wo->quantity || !wo->id[0] || !wo->serial_prefix[0])
			abort();
		for (unsigned i = 0; i < wo->n_hwrev; i++)
			if (!kj_order_hwrev_allowed(wo, wo->hwrev[i],
						    strlen(wo->hwrev[i])))
				abort();
		(void)kj_order_hwrev_allowed(wo, (const char *)data,
					     size < 64 ? size : 64);
		kj_work_order_free(wo);
	}
	free(wo);
	return 0;
}
