// SPDX-License-Identifier: Apache-2.0
/*
 * `kinject verify` reads a bundle of any size (issue 12: a 1,000,000-device
 * lot is about 1.9 GB): the top-level object is scanned here, each member
 * but "records" handed to jansson whole and checked by evidence_parse.c,
 * and the records array read one element at a time (each element parsed
 * by jansson and evidence_parse.c as well), so the memory is one record
 * and the small members, whatever the number of records.  The scanner
 * only finds where a value ends; jansson decides whether it is valid JSON
 * (strict: duplicate keys rejected, no trailing bytes).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "evidence.h"
#include "evidence_int.h"

#define BUF_SIZE (1u << 20)
/* A record element: its JCS (KJ_RECORD_MAX, escaped at most 6 bytes a
 * byte) and a proof; a member of the head: KJ_EVIDENCE_FILE_MAX. */
#define ELEM_MAX (8u << 20)

enum { K_VERSION, K_APPLIANCE, K_EVENTS, K_CKPTS, K_RECORDS, K_CONS, K_N };
static const char *const top_keys[K_N] = { "kinject_evidence", "appliance",
	"event_log", "checkpoints", "records", "consistency" };
#define HEAD_BITS ((1u << K_VERSION) | (1u << K_APPLIANCE) | \
		   (1u << K_EVENTS) | (1u << K_CKPTS))

struct kj_ev_stream {
	int fd;
	const char *file;
	uint8_t *buf;
	size_t pos, len;
	uint64_t off;            /* file offset of buf[0] */
	uint8_t *span;           /* the value being captured */
	size_t span_len, span_cap;
	uint64_t span_off;       /* its file offset */
	json_t *root;            /* the members read whole */
	unsigned seen;           /* top_keys seen */
	bool need_comma;         /* between top-level members */
	bool seek;               /* records skipped: seek back to them */
	uint64_t records_off;    /* the records array's '[' */
	size_t i;                /* records read */
	bool started, done;
};

static int fill(struct kj_ev_stream *s)
{
	ssize_t n;

	if (s->pos < s->len)
		return 1;
	s->off += s->len;
	s->pos = s->len = 0;
	do
		n = read(s->fd, s->buf, BUF_SIZE);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		kj_err("%s: read failed: %s", s->file, strerror(errno));
		return -EIO;
	}
	s->len = (size_t)n;
	return n > 0;
}

static uint64_t where(const struct kj_ev_stream *s)
{
	return s->off + s->pos;
}

static int bad_json(const struct kj_ev_stream *s, uint64_t at,
		    const char *what)
{
	kj_err("%s: byte %" PRIu64 ": invalid JSON: %s", s->file, at, what);
	return -EBADMSG;
}

/* The next byte that is not JSON whitespace (not consumed), or < 0 at
 * the end of the file (-ENODATA) or on an error. */
static int peek(struct kj_ev_stream *s)
{
	for (;;) {
		int rc = fill(s);

		if (rc <= 0)
			return rc ? rc : -ENODATA;
		while (s->pos < s->len) {
			uint8_t c = s->buf[s->pos];

			if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
				return c;
			s->pos++;
		}
	}
}

static int expect(struct kj_ev_stream *s, char c, const char *what)
{
	int b = peek(s);

	if (b == -EIO)
		return b;
	if (b != c)
		return bad_json(s, where(s), what);
	s->pos++;
	return 0;
}

static int keep(struct kj_ev_stream *s, const uint8_t *p, size_t n,
		size_t max)
{
	if (s->span_len + n > max)
		return bad_json(s, s->span_off, "value too long for a bundle");
	if (s->span_len + n > s->span_cap) {
		size_t cap = s->span_cap ? s->span_cap : 4096;
		uint8_t *nb;

		while (cap < s->span_len + n)
			cap *= 2;
		nb = realloc(s->span, cap);
		if (!nb)
			return -ENOMEM;
		s->span = nb;
		s->span_cap = cap;
	}
	memcpy(s->span + s->span_len, p, n);
	s->span_len += n;
	return 0;
}

/*
 * Find the end of the value that starts at the next byte: a string, an
 * object or array (brackets counted outside strings), or a scalar (up to
 * a delimiter).  Its bytes go to span when max > 0.
 */
static int scan_value(struct kj_ev_stream *s, size_t max)
{
	int first = peek(s), depth = 0, rc;
	bool in_str = false, esc = false, scalar, done = false;

	if (first < 0)
		return first == -EIO ? first :
			bad_json(s, where(s), "a value was expected");
	scalar = first != '{' && first != '[' && first != '"';
	s->span_len = 0;
	s->span_off = where(s);
	while (!done) {
		size_t p;

		rc = fill(s);
		if (rc <= 0) {
			if (rc < 0)
				return rc;
			if (scalar)
				break;
			return bad_json(s, s->span_off,
					"the file ends inside a value");
		}
		for (p = s->pos; p < s->len && !done; p++) {
			uint8_t c = s->buf[p];

			if (scalar) {
				if (c == ',' || c == ']' || c == '}' ||
				    c == ' ' || c == '\t' || c == '\n' ||
				    c == '\r') {
					done = true;
					p--;
				}
			} else if (in_str) {
				if (esc)
					esc = false;
				else if (c == '\\')
					esc = true;
				else if (c == '"')
					in_str = false;
				done = !in_str && !depth;
			} else if (c == '"') {
				in_str = true;
			} else if (c == '{' || c == '[') {
				depth++;
			} else if (c == '}' || c == ']') {
				done = --depth <= 0;
			}
		}
		if (max && (rc = keep(s, s->buf + s->pos, p - s->pos, max)))
			return rc;
		s->pos = p;
	}
	return 0;
}

/* The captured span as JSON (any value), or NULL (logged). */
static json_t *span_json(struct kj_ev_stream *s)
{
	json_error_t e;
	json_t *v = json_loadb((const char *)s->span, s->span_len,
			       JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);

	if (!v)
		(void)bad_json(s, s->span_off + (uint64_t)e.position, e.text);
	return v;
}

/* One top-level key: its index in top_keys, or < 0 (logged). */
static int read_key(struct kj_ev_stream *s)
{
	json_t *k;
	int rc = -EBADMSG;

	if (peek(s) != '"')
		return bad_json(s, where(s), "a key was expected");
	KJ_TRY(scan_value(s, 4096));
	k = span_json(s);
	if (!k)
		return -EBADMSG;
	for (int i = 0; i < K_N; i++)
		if (!strcmp(json_string_value(k), top_keys[i]))
			rc = i;
	if (rc < 0)
		kj_err("%s: field \"%s\": unknown field", s->file,
		       json_string_value(k));
	else if (s->seen & (1u << rc))
		rc = bad_json(s, s->span_off, "duplicate object key");
	json_decref(k);
	return rc;
}

/*
 * Top-level members until the object ends (0) or, with at_records, until
 * the records array when the members it needs came before it (1: the
 * stream is at its '[').  Records met earlier are skipped and sought back
 * to later.
 */
static int members(struct kj_ev_stream *s, bool at_records)
{
	json_t *v;
	int k, c;

	for (;;) {
		c = peek(s);
		if (c == '}') {
			s->pos++;
			c = peek(s);
			if (c != -ENODATA)
				return c == -EIO ? c : bad_json(s, where(s),
					"end of file expected");
			return 0;
		}
		if (s->need_comma)
			KJ_TRY(expect(s, ',', "',' or '}' expected"));
		k = read_key(s);
		if (k < 0)
			return k;
		KJ_TRY(expect(s, ':', "':' expected"));
		s->seen |= 1u << k;
		s->need_comma = true;
		if (k == K_RECORDS) {
			if (peek(s) != '[') {
				kj_err("%s: field \"records\": expected an array",
				       s->file);
				return -EBADMSG;
			}
			s->records_off = where(s);
			if (at_records && (s->seen & HEAD_BITS) == HEAD_BITS)
				return 1;
			s->seek = true;
			KJ_TRY(scan_value(s, 0));
			continue;
		}
		KJ_TRY(scan_value(s, KJ_EVIDENCE_FILE_MAX));
		v = span_json(s);
		if (!v)
			return -EBADMSG;
		if (json_object_set_new(s->root, top_keys[k], v) < 0)
			return -ENOMEM;
	}
}

static int finish(struct kj_evidence *ev)
{
	struct kj_ev_stream *s = ev->stream;

	if (!(s->seen & (1u << K_RECORDS))) {
		kj_err("%s: field \"records\": missing", s->file);
		return -EBADMSG;
	}
	return kj_ev_parse_tail(s->root, s->file, ev);
}

int kj_evidence_load(const char *path, struct kj_evidence *ev)
{
	struct kj_ev_stream *s;
	int rc, at;

	memset(ev, 0, sizeof(*ev));
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	ev->stream = s;
	s->fd = -1;
	s->file = path;
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0) {
		rc = -errno;
		kj_err("%s: cannot open: %s", path, strerror(errno));
		goto fail;
	}
	(void)posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	s->buf = malloc(BUF_SIZE);
	s->root = json_object();
	rc = -ENOMEM;
	if (!s->buf || !s->root)
		goto fail;
	if (peek(s) != '{') {
		kj_err("%s: expected a JSON object at the top level", path);
		rc = -EBADMSG;
		goto fail;
	}
	s->pos++;
	at = members(s, true);
	if (at < 0) {
		rc = at;
		goto fail;
	}
	KJ_TRY_GOTO(rc, kj_ev_parse_head(s->root, path, ev), fail);
	/* Copied out: only "consistency" is still to be parsed. */
	for (int k = 0; k < K_RECORDS; k++)
		(void)json_object_del(s->root, top_keys[k]);
	/* At the records: the rest is parsed when they end. */
	if (!at)
		KJ_TRY_GOTO(rc, finish(ev), fail);
	return 0;
fail:
	kj_evidence_free(ev);
	return rc < 0 ? rc : -EBADMSG;
}

static int start(struct kj_ev_stream *s)
{
	s->started = true;
	if (s->seek) {
		if (lseek(s->fd, (off_t)s->records_off, SEEK_SET) < 0) {
			kj_err("%s: cannot seek: %s", s->file, strerror(errno));
			return -EIO;
		}
		s->off = s->records_off;
		s->pos = s->len = 0;
	}
	return expect(s, '[', "'[' expected");
}

/* The records array ended: the rest of the file, then its members. */
static int end(struct kj_evidence *ev)
{
	struct kj_ev_stream *s = ev->stream;

	s->done = true;
	if (!s->i) {
		kj_err("%s: field \"records\": no record", s->file);
		return -EBADMSG;
	}
	if (s->seek)
		return 0;
	KJ_TRY(members(s, false));
	return finish(ev);
}

int kj_evidence_next_record(struct kj_evidence *ev, struct kj_ev_record *r)
{
	struct kj_ev_stream *s = ev->stream;
	json_t *o;
	int c, rc;

	memset(r, 0, sizeof(*r));
	if (!s || s->done)
		return 0;
	if (!s->started)
		KJ_TRY(start(s));
	c = peek(s);
	if (c == ']') {
		s->pos++;
		return end(ev);
	}
	if (s->i)
		KJ_TRY(expect(s, ',', "',' or ']' expected"));
	if (s->i >= KJ_EVIDENCE_MAX_RECORDS) {
		kj_err("%s: field \"records\": too many elements", s->file);
		return -EBADMSG;
	}
	KJ_TRY(scan_value(s, ELEM_MAX));
	if (!kj_ev_fast_record(s->span, s->span_len, ev->n_checkpoints, r)) {
		s->i++;
		return 1;
	}
	o = span_json(s);
	if (!o)
		return -EBADMSG;
	rc = kj_ev_parse_record(o, s->file, s->i, ev->n_checkpoints, r);
	json_decref(o);
	if (rc < 0) {
		kj_ev_record_release(r);
		return rc;
	}
	s->i++;
	return 1;
}

void kj_ev_record_release(struct kj_ev_record *r)
{
	free(r->jcs);
	free(r->proof);
	memset(r, 0, sizeof(*r));
}

void kj_ev_stream_close(struct kj_ev_stream *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	json_decref(s->root);
	free(s->buf);
	free(s->span);
	free(s);
}
