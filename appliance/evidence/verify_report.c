// SPDX-License-Identifier: Apache-2.0
/*
 * The verify report (verify.h): names of checks and outcomes, and how a
 * check records its first failing item or its summary.  Both halves of
 * the checks use it; kept out of verify.c, which calls verify_log.c, so
 * that verify_log.c needs nothing back from verify.c.
 */
#include <stdarg.h>
#include <stdio.h>

#include "verify.h"
#include "verify_int.h"

const char *kj_vcheck_name(enum kj_vcheck c)
{
	switch (c) {
	case KJ_VC_QUOTES: return "quotes";
	case KJ_VC_PCRS: return "pcrs";
	case KJ_VC_CLOCK: return "clock";
	case KJ_VC_CONSISTENCY: return "consistency";
	case KJ_VC_INCLUSION: return "inclusion";
	case KJ_VC_COMPLETENESS: return "completeness";
	case KJ_VC_WORK_ORDER: return "work-order";
	case KJ_VC_GOLDEN: return "golden";
	case KJ_VC_CEREMONY: return "ceremony";
	default: return "unknown";
	}
}

const char *kj_vstatus_name(enum kj_vstatus s)
{
	switch (s) {
	case KJ_VS_PASS: return "pass";
	case KJ_VS_WARN: return "warn";
	case KJ_VS_FAIL: return "FAIL";
	case KJ_VS_SKIPPED: return "skipped";
	default: return "unknown";
	}
}

void kj_vfail(struct kj_verify_report *rep, enum kj_vcheck c,
	      const char *fmt, ...)
{
	struct kj_vresult *r = &rep->check[c];
	va_list ap;

	if (r->status == KJ_VS_FAIL)
		return; /* the first failing item is the one named */
	r->status = KJ_VS_FAIL;
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
}

json_t *kj_vdetail(struct kj_verify_report *rep, enum kj_vcheck c)
{
	if (!rep->check[c].json)
		rep->check[c].json = json_object();
	return rep->check[c].json;
}

void kj_vdetail_push(struct kj_verify_report *rep, enum kj_vcheck c,
		     const char *key, json_t *v)
{
	json_t *d = kj_vdetail(rep, c), *a;
	char more[64];

	if (!d || !v) {
		json_decref(v);
		return;
	}
	a = json_object_get(d, key);
	if (!a) {
		a = json_array();
		if (!a || json_object_set_new(d, key, a) < 0) {
			json_decref(v);
			return;
		}
	}
	if (json_array_size(a) < KJ_VDETAIL_MAX) {
		json_array_append_new(a, v);
		return;
	}
	json_decref(v);
	snprintf(more, sizeof(more), "%s_more", key);
	json_object_set_new(d, more, json_integer(json_integer_value(
					   json_object_get(d, more)) + 1));
}

static void vfail_item(struct kj_verify_report *rep, enum kj_vcheck c,
		       const char *key, size_t i, const char *fmt, va_list ap)
{
	struct kj_vresult *r = &rep->check[c];

	kj_vdetail_push(rep, c, key, json_integer((json_int_t)i));
	if (r->status == KJ_VS_FAIL)
		return;
	r->status = KJ_VS_FAIL;
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
}

void kj_vfail_rec(struct kj_verify_report *rep, enum kj_vcheck c, size_t i,
		  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_item(rep, c, "failing_records", i, fmt, ap);
	va_end(ap);
}

void kj_vfail_ckpt(struct kj_verify_report *rep, enum kj_vcheck c, size_t i,
		   const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail_item(rep, c, "failing_checkpoints", i, fmt, ap);
	va_end(ap);
}

void kj_verify_report_free(struct kj_verify_report *rep)
{
	for (int c = 0; c < KJ_VC_COUNT_; c++) {
		json_decref(rep->check[c].json);
		rep->check[c].json = NULL;
	}
}

void kj_vpass(struct kj_verify_report *rep, enum kj_vcheck c,
	      const char *fmt, ...)
{
	struct kj_vresult *r = &rep->check[c];
	va_list ap;

	if (r->status == KJ_VS_FAIL)
		return;
	va_start(ap, fmt);
	vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
	va_end(ap);
}
