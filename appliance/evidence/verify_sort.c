// SPDX-License-Identifier: Apache-2.0
/*
 * The verifier's disk-backed tables (verify_int.h): checks 6 and 7 of a
 * 1,000,000-device lot need what every ok record said (its attempt, the
 * digests of its uid and serial) when the bundle is read to its end, and
 * hash tables of those grew with the lot (220 bytes a device).  Instead,
 * fixed-size entries are sorted in runs of SORT_BYTES and merged: equal
 * keys come out together, which is all a duplicate or a pairing needs.
 *
 * The merges go in levels so that a lot of any size costs O(n log n)
 * bytes of disk traffic in constant memory: FANIN runs of level L are
 * merged into one run of level L + 1, so an entry is written once per
 * level, log_FANIN(runs) + 1 times (twice at 10,000,000 devices).  Merging
 * every FANIN runs into one that also held everything before (issue 12)
 * copied the whole past again each time: n^2 / FANIN.  Each level lives
 * in one unlinked file in $TMPDIR, emptied as soon as its runs are merged;
 * at the end at most FANIN runs are left (the smallest merged first if
 * more are), read through FANIN buffers.  What reaches the files is
 * digests, indexes and names of records the bundle holds in the clear.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/array.h"
#include "base/log.h"
#include "verify_int.h"

#define SORT_BYTES (1u << 20)   /* one run, sorted in memory */
#define RUN_READ (16u << 10)    /* read buffer of a run while merging */
#define FANIN 64                /* runs merged at once */
#define LEVELS 32               /* 64^31 MiB: never reached */

struct run {
	unsigned lv;            /* its level: in level lv's file */
	uint64_t off, end;      /* bytes of the file left to read */
	uint8_t *b;
	size_t bn, bi;          /* bytes in b, next entry at bi */
};

struct level {
	int fd;                 /* unlinked file, -1 before the first run */
	uint64_t end;           /* bytes written to it */
	unsigned live;          /* runs of it not merged yet */
};

struct kj_xsort {
	size_t esz, klen;
	unsigned fanin;
	uint8_t *buf;           /* the run being filled; a merge's output */
	size_t n, cap;          /* entries in buf */
	struct level lv[LEVELS];
	struct run *runs;       /* levels descending: the lowest last */
	size_t nruns, capruns;
	uint8_t *pool;          /* fanin read buffers, while merging */
	struct run *heap[FANIN];/* the runs being merged, least head first */
	size_t hn;
	bool merging;           /* done: next gives the final merge */
	size_t mi;              /* no run written: next entry of buf */
	struct kj_xsort_stats st;
};

static size_t tune_bytes;       /* kj_xsort_test_tune: 0 = SORT_BYTES */
static unsigned tune_fanin;

void kj_xsort_test_tune(size_t run_bytes, unsigned fanin)
{
	tune_bytes = run_bytes;
	tune_fanin = fanin >= 2 && fanin <= FANIN ? fanin : 0;
}

static const char *tmpdir(void)
{
	const char *dir = getenv("TMPDIR");

	return dir && *dir ? dir : "/tmp";
}

int kj_vtmp_fd(void)
{
	const char *dir = tmpdir();
	char path[PATH_MAX];
	int fd;

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

/* The one message for a temporary file that cannot take need bytes. */
static int no_room(int fd, int err, uint64_t need)
{
	const char *dir = tmpdir();
	struct statvfs fs;
	char free_[48] = "";

	if (err != ENOSPC && err != EDQUOT && err != EFBIG) {
		kj_err("%s: cannot write %" PRIu64 " bytes to the verifier's temporary file: %s",
		       dir, need, strerror(err));
		return -err;
	}
	if (fstatvfs(fd, &fs) == 0)
		snprintf(free_, sizeof(free_), " and %" PRIu64 " are free",
			 (uint64_t)fs.f_bavail * fs.f_frsize);
	kj_err("%s: no room for the verifier's temporary files (checks 6 and 7): %" PRIu64 " bytes more are needed now%s (%s); they take about 120 bytes a device with --work-order, 56 without, up to twice that while merging; set TMPDIR to a directory with room",
	       dir, need, free_, strerror(err));
	return -err;
}

int kj_vtmp_write(int fd, const void *p, size_t len, uint64_t off)
{
	ssize_t w = pwrite(fd, p, len, (off_t)off);
	size_t done = 0;

	/* a short write: the next one says why */
	while (w > 0 && (done += (size_t)w) < len)
		w = pwrite(fd, (const uint8_t *)p + done, len - done,
			   (off_t)(off + done));
	if (done == len)
		return 0;
	return no_room(fd, w < 0 ? errno : ENOSPC, len - done);
}

struct kj_xsort *kj_xsort_new(size_t esz, size_t klen)
{
	struct kj_xsort *s = calloc(1, sizeof(*s));
	size_t bytes = tune_bytes ? tune_bytes : SORT_BYTES;

	if (!s)
		return NULL;
	s->esz = esz;
	s->klen = klen;
	s->fanin = tune_fanin ? tune_fanin : FANIN;
	for (size_t i = 0; i < LEVELS; i++)
		s->lv[i].fd = -1;
	s->cap = bytes / esz ? bytes / esz : 1;
	return s;
}

void kj_xsort_free(struct kj_xsort *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < LEVELS; i++)
		if (s->lv[i].fd >= 0)
			close(s->lv[i].fd);
	free(s->runs);
	free(s->pool);
	free(s->buf);
	free(s);
}

void kj_xsort_stats(const struct kj_xsort *s, struct kj_xsort_stats *st)
{
	*st = s->st;
}

static int cmp(const void *a, const void *b, void *klen)
{
	return memcmp(a, b, *(size_t *)klen);
}

/* len bytes of p appended to level l's file (made on first use). */
static int append(struct kj_xsort *s, unsigned l, const void *p, size_t len)
{
	struct level *v = &s->lv[l];

	if (v->fd < 0 && (v->fd = kj_vtmp_fd()) < 0)
		return v->fd;
	KJ_TRY(kj_vtmp_write(v->fd, p, len, v->end));
	v->end += len;
	s->st.bytes_written += len;
	return 0;
}

/* Bytes [off, end) of level l's file join the runs, after the higher. */
static int add_run(struct kj_xsort *s, unsigned l, uint64_t off)
{
	size_t p = s->nruns;

	if (kj_grow(&s->runs, &s->capruns, s->nruns + 1, 16))
		return -ENOMEM;
	while (p && s->runs[p - 1].lv < l)
		p--;
	memmove(s->runs + p + 1, s->runs + p,
		(s->nruns - p) * sizeof(*s->runs));
	s->nruns++;
	s->runs[p] = (struct run){ .lv = l, .off = off, .end = s->lv[l].end };
	s->lv[l].live++;
	if (l + 1 > s->st.levels)
		s->st.levels = l + 1;
	return 0;
}

/* ---- the heap of runs being merged ---------------------------------- */

/* Run r's next entry at b + bi (refilled): 1, or 0 when it has none. */
static int head(struct kj_xsort *s, struct run *r)
{
	size_t want = RUN_READ / s->esz * s->esz;
	ssize_t got;

	if (r->bi < r->bn)
		return 1;
	if (r->off == r->end)
		return 0;
	if (want > r->end - r->off)
		want = (size_t)(r->end - r->off);
	got = pread(s->lv[r->lv].fd, r->b, want, (off_t)r->off);
	if (got != (ssize_t)want) {
		kj_err("%s: cannot read the verifier's temporary file back: %s",
		       tmpdir(), got < 0 ? strerror(errno) : "short read");
		return got < 0 ? -errno : -EIO;
	}
	s->st.bytes_read += want;
	r->off += want;
	r->bn = want;
	r->bi = 0;
	return 1;
}

static bool less(const struct kj_xsort *s, const struct run *a,
		 const struct run *b)
{
	return memcmp(a->b + a->bi, b->b + b->bi, s->klen) < 0;
}

static void sift(struct kj_xsort *s, size_t i)
{
	struct run **h = s->heap, *t;

	for (size_t c; (c = 2 * i + 1) < s->hn; i = c) {
		if (c + 1 < s->hn && less(s, h[c + 1], h[c]))
			c++;
		if (!less(s, h[c], h[i]))
			return;
		t = h[i];
		h[i] = h[c];
		h[c] = t;
	}
}

/* The k runs from runs + first onto the heap, each with a read buffer. */
static int heap_init(struct kj_xsort *s, size_t first, size_t k)
{
	int rc;

	if (!s->pool && !(s->pool = malloc((size_t)s->fanin * RUN_READ)))
		return -ENOMEM;
	s->hn = 0;
	for (size_t i = 0; i < k; i++) {
		struct run *r = &s->runs[first + i];

		r->b = s->pool + i * RUN_READ;
		r->bn = r->bi = 0;
		rc = head(s, r);
		if (rc < 0)
			return rc;
		if (rc)
			s->heap[s->hn++] = r;
	}
	for (size_t i = s->hn; i-- > 0;)
		sift(s, i);
	return 0;
}

/* The least entry of the heap's runs into out: 1, or 0 when none. */
static int heap_pop(struct kj_xsort *s, void *out)
{
	struct run *r;
	int rc;

	if (!s->hn)
		return 0;
	r = s->heap[0];
	memcpy(out, r->b + r->bi, s->esz);
	r->bi += s->esz;
	rc = head(s, r);
	if (rc < 0)
		return rc;
	if (!rc)
		s->heap[0] = s->heap[--s->hn];
	sift(s, 0);
	return 1;
}

/* ---- the merges ------------------------------------------------------- */

/* A level's runs are all merged: its file is emptied for the next ones. */
static void release(struct kj_xsort *s, unsigned l)
{
	struct level *v = &s->lv[l];

	if (--v->live)
		return;
	/* space only: a file that cannot shrink is freed at close */
	if (ftruncate(v->fd, 0) == 0)
		v->end = 0;
}

/*
 * The last k runs (the lowest levels, the smallest) merged into one run
 * of the level above the highest of them, buf (empty) as write buffer.
 */
static int merge_tail(struct kj_xsort *s, size_t k)
{
	size_t first = s->nruns - k, n = 0;
	uint64_t from, bytes = 0;
	struct level *v;
	unsigned l = 0;
	int rc;

	for (size_t i = first; i < s->nruns; i++)
		if (s->runs[i].lv + 1 > l)
			l = s->runs[i].lv + 1;

	if (l >= LEVELS) {
		kj_err("the verifier's sort: more than %d levels of runs", LEVELS);
		return -E2BIG;
	}
	v = &s->lv[l];
	for (size_t i = first; i < s->nruns; i++)
		bytes += s->runs[i].end - s->runs[i].off;
	if (v->fd < 0 && (v->fd = kj_vtmp_fd()) < 0)
		return v->fd;
	/* the room first: a full disk is told before the merge, not in it */
	if (fallocate(v->fd, FALLOC_FL_KEEP_SIZE, (off_t)v->end,
		      (off_t)bytes) < 0 &&
	    (errno == ENOSPC || errno == EDQUOT || errno == EFBIG))
		return no_room(v->fd, errno, bytes);
	from = v->end;
	KJ_TRY(heap_init(s, first, k));
	while ((rc = heap_pop(s, s->buf + n * s->esz)) > 0)
		if (++n == s->cap) {
			KJ_TRY(append(s, l, s->buf, n * s->esz));
			n = 0;
		}
	if (rc < 0)
		return rc;
	if (n)
		KJ_TRY(append(s, l, s->buf, n * s->esz));
	/* the other sort fills its run buffer meanwhile: 1 MiB less */
	free(s->pool);
	s->pool = NULL;
	for (size_t i = first; i < s->nruns; i++)
		release(s, s->runs[i].lv);
	s->nruns = first;
	s->st.merges++;
	return add_run(s, l, from);
}

/* Level l has fanin runs (the last ones): merged, and upwards. */
static int cascade(struct kj_xsort *s)
{
	for (;;) {
		unsigned l = s->runs[s->nruns - 1].lv;
		size_t k = 0;

		while (k < s->nruns && s->runs[s->nruns - 1 - k].lv == l)
			k++;
		if (k < s->fanin)
			return 0;
		KJ_TRY(merge_tail(s, k));
	}
}

/* The full buffer, sorted, becomes a run of level 0. */
static int spill(struct kj_xsort *s)
{
	uint64_t off = s->lv[0].end;

	qsort_r(s->buf, s->n, s->esz, cmp, &s->klen);
	KJ_TRY(append(s, 0, s->buf, s->n * s->esz));
	s->n = 0;
	s->st.runs++;
	KJ_TRY(add_run(s, 0, off));
	return cascade(s);
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

/* Runs by bytes, the largest first (qsort). */
static int larger(const void *a, const void *b)
{
	const struct run *x = a, *y = b;
	uint64_t nx = x->end - x->off, ny = y->end - y->off;

	return nx < ny ? 1 : nx > ny ? -1 : 0;
}

int kj_xsort_done(struct kj_xsort *s)
{
	size_t over;

	if (!s->nruns) {
		if (s->n)
			qsort_r(s->buf, s->n, s->esz, cmp, &s->klen);
		return 0;
	}
	if (s->n)
		KJ_TRY(spill(s));
	/*
	 * Up to fanin - 1 runs a level are left; the final merge takes
	 * fanin.  The smallest are merged first until that many are left:
	 * the first merge takes just enough that the others take fanin each
	 * (each merge of k runs leaves k - 1 fewer), as in Huffman's code.
	 */
	while (s->nruns > s->fanin) {
		over = (s->nruns - s->fanin) % (s->fanin - 1);
		qsort(s->runs, s->nruns, sizeof(*s->runs), larger);
		KJ_TRY(merge_tail(s, over ? over + 1 : s->fanin));
	}
	free(s->buf);
	s->buf = NULL;
	s->merging = true;
	return heap_init(s, 0, s->nruns);
}

int kj_xsort_next(struct kj_xsort *s, void *out)
{
	if (s->merging)
		return heap_pop(s, out);
	if (s->mi == s->n)
		return 0;
	memcpy(out, s->buf + s->mi++ * s->esz, s->esz);
	return 1;
}
