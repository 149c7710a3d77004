// SPDX-License-Identifier: Apache-2.0
/*
 * The "naive line" of QUALITY.md "Performance": a deliberately naive
 * reference appliance, NOT product code.  It exists only so that `make
 * bench' can state kinject's speed-up over the obvious design, so it is
 * written the obvious way on purpose: one thread per accepted connection,
 * blocking I/O, and per device one append + fsync of a record line and
 * one TPM2 quote (ESYS, on the bench's swtpm) before COMMIT.  No batching,
 * no group commit, no checkpoint cadence, no sandbox, no HSM, no journal
 * database.  It speaks PROTOCOL.md to `kinject sim' with the library's
 * frame builders/parsers and readback digest, so the site does exactly the
 * work it does against kinject; firmware is a buffer of --size bytes and
 * the credential a fixed 1.5 KiB blob.  The one non-naive shortcut is
 * kinject's own: the firmware part of the readback digest is hashed once
 * (kj_readback_device), which only makes the naive line faster.
 *
 *   naive --listen PATH --tcti TCTI --record FILE --size BYTES
 *         --devices N
 * prints one JSON line (the pump's shape, scenario "naive") after N
 * COMMITs, the time from the first OFFER to the N-th COMMIT, with the mean
 * time per device in fsync and in the quote (which is serialised: one
 * ESYS context, one TPM).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <openssl/sha.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include "base/util.h"
#include "wire/proto.h"
#include "wire/readback.h"

#define CRED_SIZE 1536

static uint8_t *fw, cred[CRED_SIZE], fw_sha[32];
static uint32_t fw_size;
static struct kj_readback fw_rb;
static unsigned long devices_wanted;
static int record_fd;

static ESYS_CONTEXT *esys;
static ESYS_TR sign_key;
static pthread_mutex_t tpm_lock = PTHREAD_MUTEX_INITIALIZER;

static pthread_mutex_t end_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t end_cond = PTHREAD_COND_INITIALIZER;
static unsigned long done, accepted, live;
static double t_first, t_last;
static atomic_ulong next_attempt, next_leaf;
/* Time spent in fsync and in quotes (under tpm_lock), microseconds. */
static atomic_ulong fsync_us, quote_us;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Blocking send or receive of exactly n bytes: 0, or -1 (EOF, error). */
static int io_all(int fd, void *p, size_t n, int sending)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = sending ? send(fd, b, n, MSG_NOSIGNAL) :
				      recv(fd, b, n, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

static int send_all(int fd, const void *p, size_t n)
{
	return io_all(fd, (void *)p, n, 1);
}

static int recv_all(int fd, void *p, size_t n)
{
	return io_all(fd, p, n, 0);
}

/* One whole frame of type `type' (PROTOCOL.md framing); body in buf. */
static int read_frame(int fd, uint8_t type, uint8_t *buf, uint32_t *len)
{
	uint8_t hdr[KJ_FRAME_HDR_LEN];
	uint32_t n;

	if (recv_all(fd, hdr, sizeof(hdr)) < 0)
		return -1;
	n = kj_get_u32be(hdr);
	if (n < 1 || n - 1 > KJ_PARSER_BUF || hdr[4] != type) {
		fprintf(stderr, "naive: expected %s, got %s of %u bytes\n",
			kj_msg_name(type), kj_msg_name(hdr[4]), n);
		return -1;
	}
	*len = n - 1;
	return recv_all(fd, buf, *len);
}

static int send_stream(int fd, uint8_t stream, const uint8_t *p, uint32_t n)
{
	uint8_t hdr[KJ_DATA_HDR_LEN];

	for (uint32_t off = 0; off < n; off += KJ_DATA_PAYLOAD_MAX) {
		uint32_t k = n - off < KJ_DATA_PAYLOAD_MAX ?
			n - off : KJ_DATA_PAYLOAD_MAX;

		if (kj_data_hdr_build(hdr, stream, off, k) < 0 ||
		    send_all(fd, hdr, sizeof(hdr)) < 0 ||
		    send_all(fd, p + off, k) < 0)
			return -1;
	}
	return 0;
}

/* One quote per device over `data', with the key made at start. */
static int quote(const uint8_t data[32])
{
	TPM2B_DATA qd = { .size = 32 };
	TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_NULL };
	TPML_PCR_SELECTION sel = {
		.count = 1,
		.pcrSelections = { { .hash = TPM2_ALG_SHA256,
				     .sizeofSelect = 3,
				     .pcrSelect = { 0xff } } },
	};
	TPM2B_ATTEST *att = NULL;
	TPMT_SIGNATURE *sig = NULL;
	TSS2_RC rc;
	double t;

	memcpy(qd.buffer, data, 32);
	pthread_mutex_lock(&tpm_lock);
	t = now_s();
	rc = Esys_Quote(esys, sign_key, ESYS_TR_PASSWORD, ESYS_TR_NONE,
			ESYS_TR_NONE, &qd, &scheme, &sel, &att, &sig);
	atomic_fetch_add(&quote_us, (unsigned long)((now_s() - t) * 1e6));
	pthread_mutex_unlock(&tpm_lock);
	Esys_Free(att);
	Esys_Free(sig);
	if (rc != TSS2_RC_SUCCESS) {
		fprintf(stderr, "naive: Esys_Quote: 0x%x\n", rc);
		return -1;
	}
	return 0;
}

/* Record line, fsync, quote: before COMMIT, one device at a time. */
static int make_durable(const struct kj_hello *h, uint64_t attempt,
			const uint8_t digest[32])
{
	char uid[2 * KJ_UID_MAX + 1], dg[65], line[320];
	double t;
	int n;

	kj_hex_encode(h->uid, h->uid_len, uid);
	kj_hex_encode(digest, 32, dg);
	n = snprintf(line, sizeof(line),
		     "{\"attempt\":%llu,\"uid\":\"%s\",\"readback\":\"%s\"}\n",
		     (unsigned long long)attempt, uid, dg);
	if (write(record_fd, line, (size_t)n) != n) {
		fprintf(stderr, "naive: record: %s\n", strerror(errno));
		return -1;
	}
	t = now_s();
	if (fsync(record_fd) < 0) {
		fprintf(stderr, "naive: fsync: %s\n", strerror(errno));
		return -1;
	}
	atomic_fetch_add(&fsync_us, (unsigned long)((now_s() - t) * 1e6));
	return quote(digest);
}

/* HELLO .. COMMIT for one device; 1 committed, 0 aborted, -1 end. */
static int device(int fd, uint8_t *buf)
{
	struct kj_hello h;
	struct kj_offer o = { .fw_size = fw_size, .cred_size = CRED_SIZE };
	uint8_t want[32], got[32], out[KJ_OFFER_FRAME_MAX];
	const char *why;
	uint32_t len;
	int n;

	if (read_frame(fd, KJ_MSG_HELLO, buf, &len) < 0)
		return -1;
	if (kj_hello_parse(buf, len, &h, &why) < 0) {
		fprintf(stderr, "naive: HELLO: %s\n", why);
		return -1;
	}
	o.attempt = atomic_fetch_add(&next_attempt, 1) + 1;
	snprintf(o.serial, sizeof(o.serial), "NAIVE-%llu",
		 (unsigned long long)o.attempt);
	strcpy(o.fw_version, "3.1.5");
	memcpy(o.fw_sha256, fw_sha, 32);
	n = kj_offer_build(out, sizeof(out), &o);
	pthread_mutex_lock(&end_lock);
	if (!t_first)
		t_first = now_s();
	pthread_mutex_unlock(&end_lock);
	if (n < 0 || send_all(fd, out, (size_t)n) < 0 ||
	    send_stream(fd, 0, fw, fw_size) < 0 ||
	    send_stream(fd, 1, cred, CRED_SIZE) < 0 ||
	    read_frame(fd, KJ_MSG_READBACK, buf, &len) < 0)
		return -1;
	if (kj_readback_parse(buf, len, got, &why) < 0) {
		fprintf(stderr, "naive: READBACK: %s\n", why);
		return -1;
	}
	kj_readback_device(&fw_rb, h.uid, h.uid_len, cred, CRED_SIZE, want);
	if (!kj_readback_equal(want, got)) {
		n = kj_abort_build(out, sizeof(out), KJ_ABORT_READBACK,
				   "readback digest differs");
		return n < 0 || send_all(fd, out, (size_t)n) < 0 ? -1 : 0;
	}
	if (make_durable(&h, o.attempt, got) < 0)
		return -1;
	n = kj_commit_build(out, sizeof(out), o.attempt,
			    atomic_fetch_add(&next_leaf, 1));
	return n < 0 || send_all(fd, out, (size_t)n) < 0 ? -1 : 1;
}

static void *conn_thread(void *arg)
{
	int fd = (int)(intptr_t)arg, r;
	uint8_t buf[KJ_PARSER_BUF];

	while ((r = device(fd, buf)) >= 0) {
		if (!r)
			continue;
		pthread_mutex_lock(&end_lock);
		if (++done == devices_wanted) {
			t_last = now_s();
			pthread_cond_signal(&end_cond);
		}
		pthread_mutex_unlock(&end_lock);
	}
	close(fd);
	pthread_mutex_lock(&end_lock);
	live--;
	pthread_cond_signal(&end_cond);
	pthread_mutex_unlock(&end_lock);
	return NULL;
}

/*
 * 10,000 sockets are 10,000 threads: each gets a small stack, so that the
 * threads cost little address space and memory (its frame buffer, ESYS's
 * marshalling and libc need a few KiB: all three shapes of `make bench'
 * ran with 32 KiB stacks; this is twice that; 10,000 threads, peak RSS
 * about 190 MB).  The sim connects all its sockets at once: the backlog is
 * whatever the kernel allows (net.core.somaxconn), the sim waits in line
 * when it is full, and a shortage of descriptors or memory at accept is
 * waited out, not fatal.
 */
#define NAIVE_STACK (64 << 10)

static void *accept_thread(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	pthread_attr_t at;
	pthread_t t;
	unsigned warned = 0;

	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, NAIVE_STACK);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				if (!warned++)
					fprintf(stderr, "naive: accept: %s (at "
						"%lu connections; waiting)\n",
						strerror(errno), accepted);
				usleep(10000);
				continue;
			}
			fprintf(stderr, "naive: accept: %s\n", strerror(errno));
			exit(1);
		}
		pthread_mutex_lock(&end_lock);
		accepted++;
		live++;
		pthread_mutex_unlock(&end_lock);
		if (pthread_create(&t, &at, conn_thread,
				   (void *)(intptr_t)fd)) {
			fprintf(stderr, "naive: pthread_create failed at %lu "
				"threads (raise ulimit -u or use fewer "
				"sockets)\n", accepted);
			exit(1);
		}
	}
	return NULL;
}

/* ESYS on the TCTI and a primary ECC P-256 signing key (an AK), once. */
static void tpm_open(const char *tcti_conf)
{
	TSS2_TCTI_CONTEXT *tcti;
	TPM2B_SENSITIVE_CREATE in_s = { 0 };
	TPM2B_PUBLIC in_p = { .publicArea = {
		.type = TPM2_ALG_ECC, .nameAlg = TPM2_ALG_SHA256,
		.objectAttributes = TPMA_OBJECT_SIGN_ENCRYPT |
			TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_FIXEDTPM |
			TPMA_OBJECT_FIXEDPARENT |
			TPMA_OBJECT_SENSITIVEDATAORIGIN |
			TPMA_OBJECT_USERWITHAUTH,
		.parameters.eccDetail = {
			.symmetric.algorithm = TPM2_ALG_NULL,
			.scheme = { .scheme = TPM2_ALG_ECDSA,
				    .details.ecdsa.hashAlg = TPM2_ALG_SHA256 },
			.curveID = TPM2_ECC_NIST_P256,
			.kdf.scheme = TPM2_ALG_NULL } } };
	TPM2B_DATA outside = { 0 };
	TPML_PCR_SELECTION none = { 0 };
	TSS2_RC rc;

	rc = Tss2_TctiLdr_Initialize(tcti_conf, &tcti);
	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_Initialize(&esys, tcti, NULL);
	if (rc == TSS2_RC_SUCCESS)
		rc = Esys_CreatePrimary(esys, ESYS_TR_RH_OWNER,
					ESYS_TR_PASSWORD, ESYS_TR_NONE,
					ESYS_TR_NONE, &in_s, &in_p, &outside,
					&none, &sign_key, NULL, NULL, NULL,
					NULL);
	if (rc != TSS2_RC_SUCCESS) {
		fprintf(stderr, "naive: TPM on --tcti %s: 0x%x\n", tcti_conf,
			rc);
		exit(1);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: naive --listen PATH --tcti TCTI --record FILE "
		"--size BYTES --devices N\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *path = NULL, *tcti = NULL, *rec = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct rlimit rl;
	struct rusage ru;
	pthread_t at;
	int lfd;

	for (int i = 1; i + 1 < argc; i += 2) {
		const char *v = argv[i + 1];

		if (!strcmp(argv[i], "--listen"))
			path = v;
		else if (!strcmp(argv[i], "--tcti"))
			tcti = v;
		else if (!strcmp(argv[i], "--record"))
			rec = v;
		else if (!strcmp(argv[i], "--size"))
			fw_size = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(argv[i], "--devices"))
			devices_wanted = strtoul(v, NULL, 10);
		else
			usage();
	}
	if (!path || !tcti || !rec || !devices_wanted || argc % 2 == 0 ||
	    strlen(path) >= sizeof(sa.sun_path))
		usage();
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	fw = malloc(fw_size ? fw_size : 1);
	if (!fw)
		return 1;
	for (uint32_t i = 0; i < fw_size; i++)
		fw[i] = (uint8_t)(i * 131 + 7);
	/* cred_blob: u32be len(cert) || "cert" || u32be 0 (no key) */
	kj_put_u32be(cred, CRED_SIZE - 8);
	memset(cred + 4, 0x30, CRED_SIZE - 8);
	kj_put_u32be(cred + CRED_SIZE - 4, 0);
	SHA256(fw, fw_size, fw_sha);
	kj_readback_begin(&fw_rb);
	kj_readback_update(&fw_rb, fw, fw_size);
	record_fd = open(rec, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (record_fd < 0) {
		fprintf(stderr, "naive: --record %s: %s\n", rec,
			strerror(errno));
		return 1;
	}
	tpm_open(tcti);
	memcpy(sa.sun_path, path, strlen(path));
	unlink(path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (void *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 65535) < 0) {
		fprintf(stderr, "naive: --listen %s: %s\n", path,
			strerror(errno));
		return 1;
	}
	if (pthread_create(&at, NULL, accept_thread, (void *)(intptr_t)lfd))
		return 1;
	pthread_mutex_lock(&end_lock);
	while (done < devices_wanted && !(accepted && !live))
		pthread_cond_wait(&end_cond, &end_lock);
	if (done < devices_wanted)
		t_last = now_s();
	if (getrusage(RUSAGE_SELF, &ru) < 0)
		ru.ru_maxrss = 0;
	printf("{\"scenario\":\"naive\",\"sockets\":%lu,\"firmware_bytes\":%u,"
	       "\"devices\":%lu,\"seconds\":%.3f,\"devices_per_s\":%.0f,"
	       "\"fsync_ms_mean\":%.3f,\"quote_ms_mean\":%.3f,"
	       "\"thread_stack_kib\":%d,\"peak_rss_kib\":%ld}\n",
	       accepted, fw_size, done, t_last - t_first,
	       done / (t_last - t_first),
	       done ? atomic_load(&fsync_us) / 1e3 / done : 0.0,
	       done ? atomic_load(&quote_us) / 1e3 / done : 0.0,
	       NAIVE_STACK >> 10, ru.ru_maxrss);
	fflush(stdout);
	_exit(done < devices_wanted);
}
