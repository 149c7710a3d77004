// SPDX-License-Identifier: Apache-2.0
/*
 * Journal group-commit benchmark: the keeper's pattern without the
 * network.  Each tick reserves `group` new devices and appends the records
 * of the `group` devices reserved in the previous tick, then makes one
 * commit: devices/s, commits/s and fsyncs/s (counted by the SQLite VFS).
 * One JSON line per run, like tests/bench/run.sh expects.  With
 * --sockets S the uids are `kinject sim''s (seed, socket, device number
 * on the socket), the sockets' turns scattered as on a line where devices
 * finish in any order (socket = n * 7919 mod S, a permutation of each
 * round when S is not a multiple of 7919), so uid index inserts land all
 * over the index; without, one counter (sequential).  The
 * job ends after the last commit; its end (one more commit) is timed
 * apart, as end_ms.
 *
 *   bench_journal [--devices N] [--group G] [--sockets S] [--dir DIR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "journal/journal.h"
#include "journal/record.h"

#define MAX_LAT 1000000

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static void hello(struct kj_record *h, unsigned n, unsigned sockets)
{
	memset(h, 0, sizeof(*h));
	h->kind = KJ_REC_DEVICE;
	h->site = "line1-a";
	h->socket = (uint16_t)(n % 1000);
	h->hwrev = "B";
	if (!sockets) {
		kj_put_u32be(h->uid, n);
		kj_put_u32be(h->uid + 4, 0xc0ffee);
		h->uid_len = 8;
		return;
	}
	kj_put_u64be(h->uid, 0x5eed5eed5eed5eedull);
	kj_put_u32be(h->uid + 8, (unsigned)((uint64_t)n * 7919 % sockets));
	kj_put_u32be(h->uid + 12, n / sockets);
	h->uid_len = 16;
}

static int run(const char *dir, unsigned n, unsigned group, unsigned sockets)
{
	struct kj_cred_ref *creds = calloc(n, sizeof(*creds));
	struct kj_record *recs = calloc(2 * (size_t)group, sizeof(*recs));
	struct kj_reservation *res = calloc(2 * (size_t)group, sizeof(*res));
	struct kj_journal_stats st;
	struct kj_journal *j;
	struct kj_job_desc d = {
		.job = "BENCH", .customer = "acme", .product = "acme-sensor",
		.batch = "LOT-1", .operator_id = "bench", .quantity = n,
		.fw_version = "3.1.5", .serial_prefix = "AS",
		.serial_start = 10000, .creds = creds, .n_creds = n,
	};
	unsigned reserved = 0, recorded = 0, cur = 0;
	static double lat[MAX_LAT];
	size_t nlat = 0;
	double t0, t, tc, te;

	if (!creds || !recs || !res)
		return 1;
	for (unsigned i = 0; i < n; i++) {
		creds[i].index = i;
		kj_sha256(&i, sizeof(i), creds[i].cert_sha256);
	}
	if (kj_journal_open(dir, 0, &j) || kj_journal_job_begin(j, &d, NULL) ||
	    kj_journal_commit(j))
		return 1;
	t0 = now_s();
	while (recorded < n) {
		unsigned prev = cur ^ 1;

		/* Records of the devices whose reservation the last
		 * commit made durable (they have been programmed since). */
		for (unsigned k = 0; k < group && recorded < reserved; k++) {
			struct kj_record *r = &recs[prev * group + k];

			r->result = KJ_RES_OK;
			r->has_readback = true;
			memset(r->readback, 0x5a, 32);
			if (kj_journal_append_record(j, r, NULL, NULL))
				return 1;
			recorded++;
		}
		for (unsigned k = 0; k < group && reserved < n; k++) {
			struct kj_record *r = &recs[cur * group + k];
			struct kj_reservation *rv = &res[cur * group + k];

			hello(r, reserved, sockets);
			if (kj_journal_reserve(j, r, rv))
				return 1;
			kj_record_set_reservation(r, rv);
			reserved++;
		}
		tc = now_s();
		if (kj_journal_commit(j))
			return 1;
		tc = now_s() - tc;
		if (nlat < MAX_LAT)
			lat[nlat++] = tc;
		cur ^= 1;
	}
	t = now_s() - t0;
	kj_journal_stats(j, &st);
	te = now_s();
	if (kj_journal_job_end(j, NULL, NULL, NULL) || kj_journal_commit(j))
		return 1;
	te = now_s() - te;
	qsort(lat, nlat, sizeof(*lat), cmp_d);
	printf("{\"scenario\":\"journal\",\"devices\":%u,\"group\":%u,"
	       "\"sockets\":%u,"
	       "\"seconds\":%.3f,\"devices_per_s\":%.0f,\"commits\":%llu,"
	       "\"commits_per_s\":%.0f,\"fsyncs\":%llu,\"fsyncs_per_s\":%.0f,"
	       "\"commit_ms_p50\":%.2f,\"commit_ms_p99\":%.2f,"
	       "\"commit_ms_max\":%.2f,\"end_ms\":%.1f}\n",
	       n, group, sockets, t, n / t, (unsigned long long)st.commits,
	       st.commits / t, (unsigned long long)st.fsyncs, st.fsyncs / t,
	       1e3 * lat[nlat / 2], 1e3 * lat[nlat * 99 / 100],
	       1e3 * lat[nlat - 1], 1e3 * te);
	kj_journal_close(j);
	free(creds);
	free(recs);
	free(res);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t n = 20000, group = 50, sockets = 0;
	char tmpl[] = "/tmp/kj-bench-journal.XXXXXX", cmd[128];
	const char *dir = NULL;
	int rc;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--devices")) {
			if (kj_parse_u64(argv[i + 1], 1, 10000000, argv[i], &n))
				return 2;
		} else if (!strcmp(argv[i], "--group")) {
			if (kj_parse_u64(argv[i + 1], 1, 100000, argv[i],
					 &group))
				return 2;
		} else if (!strcmp(argv[i], "--sockets")) {
			if (kj_parse_u64(argv[i + 1], 0, 1000000, argv[i],
					 &sockets))
				return 2;
		} else if (!strcmp(argv[i], "--dir")) {
			dir = argv[i + 1];
		} else {
			fprintf(stderr, "usage: bench_journal [--devices N] "
				"[--group G] [--sockets S] [--dir DIR]\n");
			return 2;
		}
	}
	if (!dir && !(dir = mkdtemp(tmpl)))
		return 1;
	rc = run(dir, (unsigned)n, (unsigned)group, (unsigned)sockets);
	if (dir == tmpl) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpl);
		if (system(cmd))
			rc = 1;
	}
	return rc;
}
