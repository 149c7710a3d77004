/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strict field access over jansson for the customer's JSON inputs (work
 * order, product matrix, sites).  Every helper logs, on failure,
 *   <file>: field "<path>": <problem>, got `<value>'
 * where path is the dotted path from the document root ("firmware.sha256").
 */
#ifndef KINJECT_JSON_H
#define KINJECT_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "kinject.h"

/* Charset classes for strings that end up in records and str8 fields. */
enum kj_str_class {
	/* [A-Za-z0-9._-], first byte alphanumeric: ids, file-name safe */
	KJ_STR_NAME,
	/* printable ASCII 0x20..0x7e, no leading or trailing space */
	KJ_STR_LABEL,
	/* anything but control characters (C0, DEL): semver rules etc. */
	KJ_STR_TEXT,
};

/*
 * Decode a whole document: one JSON object, duplicate keys rejected, no
 * trailing data, valid UTF-8, no NUL.  Caller json_decref()s *out.
 */
KJ_MUST_CHECK int kj_json_load(const uint8_t *buf, size_t len,
			       const char *file, json_t **out);

/* "parent.key" (or "key" when parent is empty) into buf. */
const char *kj_json_path(char *buf, size_t size, const char *parent,
			 const char *key);

/* Reject any key of obj not in the NULL-terminated list `keys`. */
KJ_MUST_CHECK int kj_json_only_keys(const json_t *obj, const char *file,
				    const char *path,
				    const char *const *keys);

/* Member key of obj, which must be present and of type; NULL (logged). */
const json_t *kj_json_get(const json_t *obj, const char *file,
			  const char *parent, const char *key, json_type type);

/* Integer member in [min, max]. */
KJ_MUST_CHECK int kj_json_u64(const json_t *obj, const char *file,
			      const char *parent, const char *key,
			      uint64_t min, uint64_t max, uint64_t *out);

/* Check an integer value (e.g. an array element) named by path. */
KJ_MUST_CHECK int kj_json_u64_value(const json_t *v, const char *file,
				    const char *path, uint64_t min,
				    uint64_t max, uint64_t *out);

/*
 * String member of 1..max_len bytes in class cls, copied NUL-terminated
 * into out (at least max_len + 1 bytes).
 */
KJ_MUST_CHECK int kj_json_str(const json_t *obj, const char *file,
			      const char *parent, const char *key,
			      enum kj_str_class cls, size_t max_len, char *out);

/* Same check for a string value (array element, object key) named by path. */
KJ_MUST_CHECK int kj_json_check_str(const char *s, size_t len,
				    const char *file, const char *path,
				    enum kj_str_class cls, size_t max_len);

/*
 * Printable copy of untrusted bytes for a message (control characters become
 * '?', cut with "..." to fit size >= 8).  Returns buf.
 */
const char *kj_json_printable(const char *s, size_t len, char *buf,
			      size_t size);

/* Format-version member: must be exactly the integer want. */
KJ_MUST_CHECK int kj_json_version(const json_t *obj, const char *file,
				  const char *key, uint64_t want);

#endif
