// SPDX-License-Identifier: Apache-2.0
/* Release versions and version rules; grammar in semver.h. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "semver.h"
#include "base/log.h"

/*
 * One numeric component at *pp, up to (not including) end.  semver 2.0 §2:
 * no leading zeros; we also bound it to 32 bits.  Advances *pp.
 */
static int parse_num(const char **pp, const char *end, uint32_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;

	if (p >= end || *p < '0' || *p > '9')
		return -EINVAL;
	if (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9')
		return -EINVAL;
	while (p < end && *p >= '0' && *p <= '9') {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return -EINVAL;
		p++;
	}
	*out = (uint32_t)v;
	*pp = p;
	return 0;
}

/* Exactly one version in [s, end). */
static int parse_span(const char *s, const char *end, struct kj_semver *v)
{
	const char *p = s;

	if (parse_num(&p, end, &v->major) || p >= end || *p++ != '.' ||
	    parse_num(&p, end, &v->minor) || p >= end || *p++ != '.' ||
	    parse_num(&p, end, &v->patch) || p != end)
		return -EINVAL;
	return 0;
}

int kj_semver_parse(const char *s, const char *what, struct kj_semver *out)
{
	if (parse_span(s, s + strlen(s), out) < 0) {
		kj_err("%s: expected a version MAJOR.MINOR.PATCH (decimal, no "
		       "leading zeros, no pre-release suffix), got `%.64s'",
		       what, s);
		return -EINVAL;
	}
	return 0;
}

static const char *parse_op(const char *p, enum kj_semver_op *op)
{
	if (p[0] == '>' && p[1] == '=') {
		*op = KJ_OP_GE;
		return p + 2;
	}
	if (p[0] == '<' && p[1] == '=') {
		*op = KJ_OP_LE;
		return p + 2;
	}
	switch (p[0]) {
	case '>':
		*op = KJ_OP_GT;
		return p + 1;
	case '<':
		*op = KJ_OP_LT;
		return p + 1;
	case '=':
		*op = KJ_OP_EQ;
		return p + 1;
	default:
		*op = KJ_OP_EQ; /* a bare version means "=" */
		return p;
	}
}

static int range_error(const char *s, const char *what, const char *why)
{
	kj_err("%s: rule `%.255s': %s; expected space-separated comparators "
	       "like `>=3.0.0 <4.0.0' (operators >= > <= < =)", what, s, why);
	return -EINVAL;
}

int kj_semver_range_parse(const char *s, const char *what,
			  struct kj_semver_range *out)
{
	const char *p = s;

	memset(out, 0, sizeof(*out));
	if (*p == ' ' || !*p)
		return range_error(s, what, *p ? "leading space" : "empty");
	while (*p) {
		struct kj_semver_cmp *c;
		const char *end;

		if (out->n == KJ_RANGE_MAX)
			return range_error(s, what, "too many comparators");
		c = &out->c[out->n];
		p = parse_op(p, &c->op);
		end = strchr(p, ' ');
		if (!end)
			end = p + strlen(p);
		if (parse_span(p, end, &c->v) < 0)
			return range_error(s, what, "not a comparator "
					   "followed by MAJOR.MINOR.PATCH");
		out->n++;
		p = end;
		while (*p == ' ')
			p++;
		if (!*p && p != end)
			return range_error(s, what, "trailing space");
	}
	return 0;
}

int kj_semver_cmp(const struct kj_semver *a, const struct kj_semver *b)
{
	if (a->major != b->major)
		return a->major < b->major ? -1 : 1;
	if (a->minor != b->minor)
		return a->minor < b->minor ? -1 : 1;
	if (a->patch != b->patch)
		return a->patch < b->patch ? -1 : 1;
	return 0;
}

static bool cmp_holds(const struct kj_semver_cmp *c, const struct kj_semver *v)
{
	int r = kj_semver_cmp(v, &c->v);

	switch (c->op) {
	case KJ_OP_EQ:
		return r == 0;
	case KJ_OP_GE:
		return r >= 0;
	case KJ_OP_GT:
		return r > 0;
	case KJ_OP_LE:
		return r <= 0;
	case KJ_OP_LT:
		return r < 0;
	default:
		return false;
	}
}

bool kj_semver_range_match(const struct kj_semver_range *r,
			   const struct kj_semver *v)
{
	if (!r->n)
		return false; /* never parsed: admit nothing */
	for (unsigned i = 0; i < r->n; i++)
		if (!cmp_holds(&r->c[i], v))
			return false;
	return true;
}

void kj_semver_format(const struct kj_semver *v, char *buf)
{
	snprintf(buf, KJ_SEMVER_STR_MAX, "%u.%u.%u", v->major, v->minor,
		 v->patch);
}
