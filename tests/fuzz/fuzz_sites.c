// SPDX-License-Identifier: Apache-2.0
/* libFuzzer: the --sites file parser and lookups. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "inputs/sites.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kj_sites s;

	if (kj_sites_parse(data, size, "S.json", &s) < 0)
		return 0;
	/* Every listed (site, socket) is allowed; sorted lookups agree. */
	for (size_t i = 0; i < s.n; i++) {
		const struct kj_site *site = &s.sites[i];

		for (size_t j = 0; j < site->n_sockets; j++)
			if (!kj_sites_allowed(&s, site->id, site->id_len,
					      site->sockets[j]))
				abort();
	}
	(void)kj_sites_allowed(&s, (const char *)data, size < 255 ? size : 255,
			       size ? data[0] : 0);
	kj_sites_free(&s);
	return 0;
}
