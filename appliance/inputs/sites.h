/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The --sites file (PROTOCOL.md, UNAUTHORIZED):
 *   {"kinject_sites": 1, "sites": {"line1-a": [0, 1, 2, 3]}}
 * site id -> the socket numbers it may use.  Strict like the work order.
 */
#ifndef KINJECT_SITES_H
#define KINJECT_SITES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/kinject.h"

#define KJ_SITES_FILE_MAX (4 * 1024 * 1024)
#define KJ_SITES_MAX 4096
#define KJ_SITE_ID_MAX 255		/* str8 */

struct kj_site {
	char id[KJ_SITE_ID_MAX + 1];
	size_t id_len;
	size_t n_sockets;
	uint16_t *sockets;		/* sorted, unique */
};

struct kj_sites {
	size_t n;
	struct kj_site *sites;		/* sorted by id (bytes, then length) */
};

KJ_MUST_CHECK int kj_sites_parse(const uint8_t *buf, size_t len,
				 const char *name, struct kj_sites *s);
KJ_MUST_CHECK int kj_sites_load(const char *path, struct kj_sites *s);
void kj_sites_free(struct kj_sites *s);

/*
 * HELLO check: site_id as received (str8, not NUL-terminated) and socket.
 * Exact byte match of the id.  Does not log.
 */
bool kj_sites_allowed(const struct kj_sites *s, const char *site_id,
		      size_t id_len, uint16_t socket);

#endif
