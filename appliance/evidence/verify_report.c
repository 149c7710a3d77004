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
