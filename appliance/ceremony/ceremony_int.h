/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the ceremony's files share and nobody else needs: paths in the
 * state directory, fingerprints, base64 into JSON.  Defined in request.c.
 */
#ifndef KINJECT_CEREMONY_INT_H
#define KINJECT_CEREMONY_INT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "base/kinject.h"

typedef struct x509_st X509;

/* "state/rel" into buf (PATH_MAX); -ENAMETOOLONG (logged). */
KJ_MUST_CHECK int kj_cer_path(char *buf, const char *state, const char *rel);
/* SHA-256 hex of DIR/transport.pem's certificate: the appliance's id. */
KJ_MUST_CHECK int kj_cer_appliance_id(const char *state, char hex[65]);
/* A certificate as PEM text, malloc'd. */
KJ_MUST_CHECK int kj_cer_cert_pem(X509 *x, char **pem);
/* Base64 of bytes as a JSON string (NULL on no memory). */
json_t *kj_cer_b64(const uint8_t *in, size_t len);
/* Base64 (padded) to bytes, malloc'd; -EINVAL (silent) if not base64. */
KJ_MUST_CHECK int kj_cer_unb64(const char *in, uint8_t **out, size_t *len);
/* Hex of bytes as a JSON string. */
json_t *kj_cer_hex(const uint8_t *in, size_t len);
/* A name used as a directory: KJ_STR_NAME, not "." or "..". */
KJ_MUST_CHECK int kj_cer_check_name(const char *name, const char *what);

#endif
