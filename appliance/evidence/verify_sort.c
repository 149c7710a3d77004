// SPDX-License-Identifier: Apache-2.0
/*
 * The verifier's disk-backed tables (verify_int.h): checks 6 and 7 of a
 * 1,000,000-device lot need what every ok record said (its attempt, the
 * digests of its uid and serial) when the bundle is read to its end, and
 * hash tables of those grew with the lot (220 bytes a device).  Instead,
 * fixed-size entries are sorted in runs of SORT_BYTES, written to an
 * unlinked temporary file, and merged in one pass: equal keys come out
 * together, which is all a duplicate or a pairing needs.  When FANIN runs
 * are written they are merged into one (appended, the old ones' space
 * punched out), so memory stays the run buffer and FANIN read buffers
 * however many entries come.  What reaches the file is digests, indexes
 * and names of records the bundle holds in the clear.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/array.h"
#include "base/log.h"
#include "verify_int.h"

#define SORT_BYTES (1u << 20)   /* one run, sorted in memory */
#define RUN_READ (16u << 10)    /* read buffer of a run while merging */
#define FANIN 64                /* runs merged at once */

struct run {
	uint64_t off, end;      /* bytes of the file left to read */
	uint8_t *b;
	size_t bn, bi;          /* bytes in b, next entry at bi */
};

struct kj_xsort {
	size_t esz, klen;
	uint8_t *buf;           /* the run being filled; then the only run */
	size_t n, cap;          /* entries in buf */
	int fd;
	uint64_t end;
	struct run *runs;
	size_t nruns, capruns;
	size_t mi;              /* no run written: next entry of buf */
};

int kj_vtmp_fd(void)
{
	const char *dir = getenv("TMPDIR");
	char path[PATH_MAX];
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR ||
		       errno == EINVAL) &&
	    (size_t)snprintf(path, sizeof(path), "%s/kinject-verify.XXXXXX",
			     dir) < sizeof(path)) {
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0)
			unlink(path);
	}
	if (fd < 0) {
		fd = -errno;
		kj_err("%s: cannot create the verifier's temporary file: %s (set TMPDIR to a writable directory)",
		       dir, strerror(errno));
	}
	return fd;
}

struct kj_xsort *kj_xsort_new(size_t esz, size_t klen)
{
	struct kj_xsort *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->esz = esz;
	s->klen = klen;
	s->fd = -1;
	s->cap = SORT_BYTES / esz;
	return s;
}

void kj_xsort_free(struct kj_xsort *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nruns; i++)
		free(s->runs[i].b);
	free(s->runs);
	free(s->buf);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

static int cmp(const void *a, const void *b, void *klen)
{
	return memcmp(a, b, *(size_t *)klen);
}

static int io_err(ssize_t r)
{
	int rc = r < 0 ? -errno : -EIO;

	kj_err("the verifier's temporary file: %s (TMPDIR full?)",
	       strerror(-rc));
	return rc;
}

static int cascade(struct kj_xsort *s);

/* The full buffer, sorted, becomes a run at the end of the file. */
static int spill(struct kj_xsort *s)
{
	size_t len = s->n * s->esz;
	ssize_t w;

	if (s->fd < 0 && (s->fd = kj_vtmp_fd()) < 0)
		return s->fd;
	if (kj_grow(&s->runs, &s->capruns, s->nruns + 1, 16))
		return -ENOMEM;
	qsort_r(s->buf, s->n, s->esz, cmp, &s->klen);
	w = pwrite(s->fd, s->buf, len, (off_t)s->end);
	if (w != (ssize_t)len)
		return io_err(w);
	s->runs[s->nruns++] = (struct run){ .off = s->end,
					    .end = s->end + len };
	s->end += len;
	s->n = 0;
	return s->nruns == FANIN ? cascade(s) : 0;
}

/* Every run gets its read buffer (those it has kept). */
static int read_bufs(struct kj_xsort *s)
{
	for (size_t i = 0; i < s->nruns; i++)
		if (!s->runs[i].b && !(s->runs[i].b = malloc(RUN_READ)))
			return -ENOMEM;
	return 0;
}

/* The FANIN runs merged into one at the end of the file (buf, empty
 * after spill, is the write buffer); their space is given back. */
static int cascade(struct kj_xsort *s)
{
	uint64_t from = s->end, start = s->runs[0].off;
	size_t n = 0;
	ssize_t w;
	int rc;

	KJ_TRY(read_bufs(s));
	for (;;) {
		rc = kj_xsort_next(s, s->buf + n * s->esz);
		if (rc < 0)
			return rc;
		if (rc)
			n++;
		if (n == s->cap || (!rc && n)) {
			w = pwrite(s->fd, s->buf, n * s->esz, (off_t)s->end);
			if (w != (ssize_t)(n * s->esz))
				return io_err(w);
			s->end += n * s->esz;
			n = 0;
		}
		if (!rc)
			break;
	}
	for (size_t i = 1; i < s->nruns; i++)
		free(s->runs[i].b);
	s->runs[0] = (struct run){ .off = from, .end = s->end,
				   .b = s->runs[0].b };
	s->nruns = 1;
	/* Disk space only: a file system without holes keeps the bytes. */
	(void)fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			(off_t)start, (off_t)(from - start));
	return 0;
}

int kj_xsort_add(struct kj_xsort *s, const void *e)
{
	if (!s->buf && !(s->buf = malloc(s->cap * s->esz)))
		return -ENOMEM;
	if (s->n == s->cap)
		KJ_TRY(spill(s));
	memcpy(s->buf + s->n++ * s->esz, e, s->esz);
	return 0;
}

int kj_xsort_done(struct kj_xsort *s)
{
	if (!s->nruns) {
		if (s->n)
			qsort_r(s->buf, s->n, s->esz, cmp, &s->klen);
		return 0;
	}
	if (s->n)
		KJ_TRY(spill(s));
	free(s->buf);
	s->buf = NULL;
	return read_bufs(s);
}

/* Run r's next entry is at b + bi (refilled); 0 when it has none. */
static int head(struct kj_xsort *s, struct run *r, const uint8_t **e)
{
	size_t want = RUN_READ / s->esz * s->esz;
	ssize_t got;

	if (r->bi == r->bn) {
		if (r->off == r->end)
			return 0;
		if (want > r->end - r->off)
			want = (size_t)(r->end - r->off);
		got = pread(s->fd, r->b, want, (off_t)r->off);
		if (got != (ssize_t)want)
			return io_err(got);
		r->off += want;
		r->bn = want;
		r->bi = 0;
	}
	*e = r->b + r->bi;
	return 1;
}

int kj_xsort_next(struct kj_xsort *s, void *out)
{
	const uint8_t *best = NULL, *e = NULL;
	struct run *br = NULL;
	int rc;

	if (!s->nruns) {
		if (s->mi == s->n)
			return 0;
		memcpy(out, s->buf + s->mi++ * s->esz, s->esz);
		return 1;
	}
	/* Few runs (one a MiB of entries): a linear scan of their heads. */
	for (size_t i = 0; i < s->nruns; i++) {
		rc = head(s, &s->runs[i], &e);
		if (rc < 0)
			return rc;
		if (rc && (!best || memcmp(e, best, s->klen) < 0)) {
			best = e;
			br = &s->runs[i];
		}
	}
	if (!best)
		return 0;
	memcpy(out, best, s->esz);
	br->bi += s->esz;
	return 1;
}
