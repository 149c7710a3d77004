// SPDX-License-Identifier: Apache-2.0
/* Strict field helpers over jansson; see json.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"

#define QUOTE_MAX 48

static const char *type_name(json_type t)
{
	switch (t) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	default:
		return "a JSON value";
	}
}

/* Printable copy of untrusted bytes for a message: controls become '?'. */
const char *kj_json_printable(const char *s, size_t len, char *buf,
			      size_t size)
{
	size_t n = len < size - 4 ? len : size - 4, i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (n < len)
		buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
	buf[i] = '\0';
	return buf;
}

/* The offending value, compact and shortened, for quoting in a message. */
static void quote_value(const json_t *v, char *buf, size_t size)
{
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

	if (!s) {
		snprintf(buf, size, "%s", type_name(json_typeof(v)));
		return;
	}
	if (strlen(s) > QUOTE_MAX)
		snprintf(buf, size, "%.*s...", QUOTE_MAX, s);
	else
		snprintf(buf, size, "%s", s);
	free(s);
}

int kj_json_load(const uint8_t *buf, size_t len, const char *file,
		 json_t **out)
{
	json_error_t e;
	json_t *root;

	/* Without JSON_DISABLE_EOF_CHECK jansson rejects trailing data. */
	root = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &e);
	if (!root) {
		kj_err("%s: line %d, column %d: invalid JSON: %s", file, e.line,
		       e.column, e.text);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		kj_err("%s: expected a JSON object at the top level", file);
		json_decref(root);
		return -EINVAL;
	}
	*out = root;
	return 0;
}

const char *kj_json_path(char *buf, size_t size, const char *parent,
			 const char *key)
{
	if (parent && *parent)
		snprintf(buf, size, "%s.%s", parent, key);
	else
		snprintf(buf, size, "%s", key);
	return buf;
}

int kj_json_only_keys(const json_t *obj, const char *file, const char *path,
		      const char *const *keys)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)obj, k, v) {
		const char *const *p;
		char full[256], pk[QUOTE_MAX + 4];

		for (p = keys; *p; p++)
			if (!strcmp(*p, k))
				break;
		if (*p)
			continue;
		kj_json_printable(k, strlen(k), pk, sizeof(pk));
		kj_err("%s: field \"%s\": unknown field", file,
		       kj_json_path(full, sizeof(full), path, pk));
		return -EINVAL;
	}
	return 0;
}

static int bad_value(const json_t *v, const char *file, const char *path,
		     const char *expected)
{
	char q[QUOTE_MAX + 8];

	quote_value(v, q, sizeof(q));
	kj_err("%s: field \"%s\": expected %s, got `%s'", file, path, expected,
	       q);
	return -EINVAL;
}

const json_t *kj_json_get(const json_t *obj, const char *file,
			  const char *parent, const char *key, json_type type)
{
	const json_t *v = json_object_get(obj, key);
	char path[256];

	kj_json_path(path, sizeof(path), parent, key);
	if (!v) {
		kj_err("%s: field \"%s\": missing", file, path);
		return NULL;
	}
	if (json_typeof(v) != type) {
		(void)bad_value(v, file, path, type_name(type));
		return NULL;
	}
	return v;
}

int kj_json_u64_value(const json_t *v, const char *file, const char *path,
		      uint64_t min, uint64_t max, uint64_t *out)
{
	char expected[96];
	json_int_t i;

	snprintf(expected, sizeof(expected), "an integer %llu..%llu",
		 (unsigned long long)min, (unsigned long long)max);
	if (!json_is_integer(v))
		return bad_value(v, file, path, expected);
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
		return bad_value(v, file, path, expected);
	*out = (uint64_t)i;
	return 0;
}

int kj_json_u64(const json_t *obj, const char *file, const char *parent,
		const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
	const json_t *v = json_object_get(obj, key);
	char path[256];

	kj_json_path(path, sizeof(path), parent, key);
	if (!v) {
		kj_err("%s: field \"%s\": missing", file, path);
		return -EINVAL;
	}
	return kj_json_u64_value(v, file, path, min, max, out);
}

static bool byte_ok(unsigned char c, enum kj_str_class cls, bool first)
{
	bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
		     (c >= 'A' && c <= 'Z');

	switch (cls) {
	case KJ_STR_NAME:
		return alnum || (!first && (c == '.' || c == '_' || c == '-'));
	case KJ_STR_LABEL:
		return c >= 0x20 && c <= 0x7e;
	case KJ_STR_TEXT:
		return c >= 0x20 && c != 0x7f; /* UTF-8 checked by jansson */
	default:
		return false;
	}
}

static const char *class_desc(enum kj_str_class cls)
{
	switch (cls) {
	case KJ_STR_NAME:
		return "letters, digits, '.', '_', '-', starting with a "
		       "letter or digit";
	case KJ_STR_LABEL:
		return "printable ASCII without leading or trailing spaces";
	default:
		return "no control characters";
	}
}

int kj_json_check_str(const char *s, size_t len, const char *file,
		      const char *path, enum kj_str_class cls, size_t max_len)
{
	const char *why = NULL;
	char q[QUOTE_MAX + 4];

	if (!len)
		why = "is empty";
	else if (len > max_len)
		why = "is too long";
	else if (cls == KJ_STR_LABEL && (s[0] == ' ' || s[len - 1] == ' '))
		why = "has leading or trailing spaces";
	for (size_t i = 0; !why && i < len; i++)
		if (!byte_ok((unsigned char)s[i], cls, i == 0))
			why = "has a character outside the allowed set";
	if (!why)
		return 0;
	kj_err("%s: field \"%s\": string %s (1..%zu bytes, %s), got `%s'",
	       file, path, why, max_len, class_desc(cls),
	       kj_json_printable(s, len, q, sizeof(q)));
	return -EINVAL;
}

int kj_json_str(const json_t *obj, const char *file, const char *parent,
		const char *key, enum kj_str_class cls, size_t max_len,
		char *out)
{
	const json_t *v = kj_json_get(obj, file, parent, key, JSON_STRING);
	char path[256];
	size_t len;

	if (!v)
		return -EINVAL;
	kj_json_path(path, sizeof(path), parent, key);
	len = json_string_length(v);
	KJ_TRY(kj_json_check_str(json_string_value(v), len, file, path, cls,
				 max_len));
	memcpy(out, json_string_value(v), len);
	out[len] = '\0';
	return 0;
}

int kj_json_version(const json_t *obj, const char *file, const char *key,
		    uint64_t want)
{
	const json_t *v = json_object_get(obj, key);
	char expected[48];

	if (!v) {
		kj_err("%s: field \"%s\": missing (the format version, %llu)",
		       file, key, (unsigned long long)want);
		return -EINVAL;
	}
	snprintf(expected, sizeof(expected), "format version %llu",
		 (unsigned long long)want);
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) != want)
		return bad_value(v, file, key, expected);
	return 0;
}
