// SPDX-License-Identifier: Apache-2.0
/*
 * The TLS listener's pieces end to end over real TCP on loopback, with
 * the signature made in a real SoftHSM2 token: the ceremony's TLS key
 * (sensitive, never extractable, as pkcs11-tool shows it), tls.pem signed
 * by it, the injector's TLS 1.3 server (injector/tls.c) whose
 * CertificateVerify is signed by the keeper's check (keeper/keeper_sign.c)
 * in the HSM, the simulated site's client (sim/sim_tls.c), kTLS when the
 * kernel has it (else user-space records, tested against OpenSSL's:
 * partial writes, pieces, close_notify, forged records); refused: a site
 * certificate of another CA, an expired one, TLS 1.2 offered, no ALPN; the
 * keeper's check refuses what is not a server CertificateVerify input and
 * rate-limits; the keeper's SIGN handler (keeper_tls.c) answers SIGNED
 * with a signature tls.pem's key verifies, or with none over the limit,
 * and treats any other input as a hostile injector; site_id = CN.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/util.h"
#include "wire/ipc.h"
#include "hsm/hsm.h"
#include "injector/tls.h"
#include "inputs/tls_key.h"
#include "keeper/keeper_int.h"
#include "keeper/keeper_sign.h"
#include "sim/sim_tls.h"
#include "kj_testutil.h"

static char dir[] = "/tmp/kj-test-tls.XXXXXX";
static char uri[1024], pin_source[300], module[300];
static struct kj_hsm *hsm;
static struct kj_tls_key tk;
static struct kj_tls_server *srv;
static struct kj_sign_limit limit;
static int ktls_seen = -1;

#define sh(...) kj_test_bash(dir, __VA_ARGS__)

#define read_line(name, buf, cap) kj_test_read_line(dir, name, buf, cap)

static int write_pem(const char *name, X509 *x, EVP_PKEY *k)
{
	char path[300];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return -1;
	ok = x ? PEM_write_X509(f, x) : PEM_write_PrivateKey(f, k, NULL, NULL,
							    0, NULL, NULL);
	fclose(f);
	return ok ? 0 : -1;
}

/* A certificate for k named cn, by ca/cakey (NULL: self-signed CA),
 * valid from `from' to `to' days from now. */
static X509 *cert(EVP_PKEY *k, const char *cn, X509 *ca, EVP_PKEY *cakey,
		  long from, long to)
{
	static long serial = 1;
	X509 *x = X509_new();

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), from * 86400);
	X509_gmtime_adj(X509_getm_notAfter(x), to * 86400);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
				   MBSTRING_ASC, (const unsigned char *)cn,
				   -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(ca ? ca : x));
	X509_set_pubkey(x, k);
	if (ca) {
		kj_x509_add_ext(x, ca, NID_basic_constraints, "CA:FALSE");
		kj_x509_add_ext(x, ca, NID_ext_key_usage, "clientAuth");
	} else {
		kj_x509_add_ext(x, NULL, NID_basic_constraints,
				"critical,CA:TRUE");
		kj_x509_add_ext(x, NULL, NID_key_usage,
				"critical,keyCertSign,cRLSign");
	}
	assert_true(X509_sign(x, cakey ? cakey : k, EVP_sha256()) > 0);
	return x;
}

/* Site certificates: line1-a by the enrolled CA, by another CA, expired. */
static int make_sites(void)
{
	EVP_PKEY *ca_k = EVP_EC_gen("P-256"), *oth_k = EVP_EC_gen("P-256");
	EVP_PKEY *site_k = EVP_EC_gen("P-256");
	X509 *ca = cert(ca_k, "site CA", NULL, NULL, 0, 30);
	X509 *oth = cert(oth_k, "other CA", NULL, NULL, 0, 30);
	X509 *good = cert(site_k, "line1-a", ca, ca_k, 0, 30);
	X509 *foreign = cert(site_k, "line1-a", oth, oth_k, 0, 30);
	X509 *expired = cert(site_k, "line1-a", ca, ca_k, -10, -1);
	int rc = 0;

	rc |= write_pem("state/site-ca/plant1.pem", ca, NULL);
	rc |= write_pem("site.key", NULL, site_k);
	rc |= write_pem("site.pem", good, NULL);
	rc |= write_pem("foreign.pem", foreign, NULL);
	rc |= write_pem("expired.pem", expired, NULL);
	X509_free(ca);
	X509_free(oth);
	X509_free(good);
	X509_free(foreign);
	X509_free(expired);
	EVP_PKEY_free(ca_k);
	EVP_PKEY_free(oth_k);
	EVP_PKEY_free(site_k);
	return rc;
}

static int setup(void **state)
{
	const char *src = getenv("KJ_SRCDIR") ? getenv("KJ_SRCDIR") : ".";
	char conf[300], path[300];
	unsigned long key;
	uint8_t pt[65];
	X509 *x = NULL;
	FILE *f;

	(void)state;
	if (!mkdtemp(dir))
		return -1;
	if (sh(". %s/tests/lib/softhsm.sh && cd %s && "
	       "KJ_SOFTHSM_NO_KEY=1 kj_softhsm_init . >/dev/null && "
	       "echo \"$KJ_HSM_URI\" >uri && echo \"$SOFTHSM2_CONF\" >conf && "
	       "echo \"$KJ_HSM_PIN_SOURCE\" >pin_source && "
	       "echo \"$KJ_HSM_MODULE\" >module && mkdir -p state/site-ca",
	       src, dir) != 0)
		return -1;
	if (read_line("uri", uri, sizeof(uri)) ||
	    read_line("conf", conf, sizeof(conf)) ||
	    read_line("module", module, sizeof(module)) ||
	    read_line("pin_source", pin_source, sizeof(pin_source)))
		return -1;
	setenv("SOFTHSM2_CONF", conf, 1);
	if (kj_hsm_open(&hsm, uri, pin_source) < 0 ||
	    kj_hsm_generate_tls_key(hsm, pt, &key) < 0 ||
	    kj_hsm_tls_cert(hsm, key, pt, "kinject appliance", 30, &x) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/state/tls.pem", dir);
	f = fopen(path, "w");
	if (!f || !PEM_write_X509(f, x))
		return -1;
	fclose(f);
	X509_free(x);
	snprintf(path, sizeof(path), "%s/state", dir);
	if (make_sites() || kj_tls_key_load(path, hsm, &tk) < 0 ||
	    kj_tls_server_new(tk.cert_pem, tk.site_cas_pem, &srv) < 0)
		return -1;
	kj_sign_limit_init(&limit, KJ_SIGN_RATE_DEFAULT,
			   KJ_SIGN_BURST_DEFAULT, 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	kj_tls_server_free(srv);
	kj_tls_key_free(&tk);
	kj_hsm_close(hsm);
	sh("rm -rf %s %s.sh", dir, dir);
	return 0;
}

/* After the handshake, test_user_records' sites send: */
enum { REC_NONE, REC_BULK, REC_FORGED, REC_KEYUPDATE };
#define BULK_OUT 200000 /* appliance -> site: 13 records, partial writes */
#define BULK_IN 40000	/* site -> appliance: 3 records, read in pieces */

struct site {
	const char *cert; /* in dir */
	bool tls12, no_alpn;
	int records;
};

static uint8_t pattern(size_t i, unsigned k)
{
	return (uint8_t)((i * k) >> 3);
}

/* The site of test_user_records, OpenSSL's record layer: exit status. */
static int records_site(SSL *s, int fd, int mode)
{
	static uint8_t b[BULK_OUT];
	size_t got = 0;
	int n;

	if (mode == REC_FORGED) /* a record that does not authenticate */
		n = write(fd, "\x17\x03\x03\x00\x20" "0123456789abcdef"
			  "0123456789abcdef", 37) == 37 ? 0 : 5;
	else if (mode == REC_KEYUPDATE)
		n = SSL_key_update(s, SSL_KEY_UPDATE_NOT_REQUESTED) == 1 &&
		    SSL_write(s, "x", 1) == 1 ? 0 : 5;
	else
		n = 0;
	if (mode != REC_BULK) {
		while (read(fd, b, sizeof(b)) > 0)
			; /* until the appliance closes */
		return n;
	}
	while (got < BULK_OUT && (n = SSL_read(s, b + got,
					       (int)(BULK_OUT - got))) > 0)
		got += (size_t)n;
	for (size_t i = 0; i < BULK_OUT; i++)
		if (b[i] != pattern(i, 7))
			return 6;
	for (size_t i = 0; i < BULK_IN; i++)
		b[i] = pattern(i, 11);
	if (SSL_write(s, b, BULK_IN) != BULK_IN || SSL_shutdown(s) < 0)
		return 7;
	while (read(fd, b, sizeof(b)) > 0)
		;
	return 0;
}

/* The site in a child: handshake, read "ok-from-appliance", answer. */
static void site_child(int port, const struct site *st)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port) };
	char cpath[300], kpath[300], capath[300], buf[32] = "";
	struct kj_sim_tls_opts o = { .cert = cpath, .key = kpath,
				     .ca = capath, .tls12 = st->tls12,
				     .no_alpn = st->no_alpn };
	int fd = socket(AF_INET, SOCK_STREAM, 0), n;
	SSL_CTX *ctx;
	SSL *s;

	snprintf(cpath, sizeof(cpath), "%s/%s", dir, st->cert);
	snprintf(kpath, sizeof(kpath), "%s/site.key", dir);
	snprintf(capath, sizeof(capath), "%s/state/tls.pem", dir);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    kj_sim_tls_ctx(&o, &ctx) < 0 || kj_sim_tls_connect(ctx, fd, &s))
		_exit(2);
	if (st->records)
		_exit(records_site(s, fd, st->records));
	n = SSL_read(s, buf, sizeof(buf) - 1);
	if (n != 17 || memcmp(buf, "ok-from-appliance", 17))
		_exit(3);
	if (SSL_write(s, "ok-from-site", 12) != 12)
		_exit(4);
	_exit(0);
}

static int wait_fd(int fd, short ev)
{
	struct pollfd p = { .fd = fd, .events = ev };

	return poll(&p, 1, 20000) == 1 ? 0 : -ETIMEDOUT;
}

/* kj_tls_read until it returns something but -EAGAIN. */
static ssize_t read_wait(struct kj_tls_conn *c, int fd, void *b, size_t len)
{
	ssize_t n;

	while ((n = kj_tls_read(c, b, len)) == -EAGAIN)
		assert_int_equal(wait_fd(fd, POLLIN), 0);
	return n;
}

/* The appliance's side of test_user_records (kj_tls_read/kj_tls_write). */
static void serve_records(struct kj_tls_conn *c, int fd, int mode)
{
	static uint8_t b[BULK_OUT];
	unsigned again = 0, pending = 0;
	int sndbuf = 4096;
	size_t off = 0;
	ssize_t n;

	assert_int_equal(kj_tls_user_records(c), 0);
	if (mode != REC_BULK) { /* refused: the connection is unusable */
		assert_int_equal(read_wait(c, fd, b, sizeof(b)), -EIO);
		return;
	}
	/* A small send buffer: records are part-written, then finished. */
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	for (size_t i = 0; i < BULK_OUT; i++)
		b[i] = pattern(i, 7);
	while (off < BULK_OUT) {
		n = kj_tls_write(c, b + off, BULK_OUT - off);
		if (n == -EAGAIN) {
			again++;
			assert_int_equal(wait_fd(fd, POLLOUT), 0);
			continue;
		}
		assert_true(n > 0 && n <= 16384);
		off += (size_t)n;
	}
	assert_true(again > 0);
	/* 1000 bytes at a time: a record's rest is pending, no wait. */
	for (off = 0; off < BULK_IN; off += (size_t)n) {
		n = read_wait(c, fd, b, 1000);
		assert_true(n > 0 && off + (size_t)n <= BULK_IN);
		for (ssize_t i = 0; i < n; i++)
			assert_int_equal(b[i], pattern(off + (size_t)i, 11));
		pending += kj_tls_pending(c);
	}
	assert_true(pending > 0);
	assert_int_equal(read_wait(c, fd, b, 1000), 0); /* close_notify */
}

/* The appliance's side of one connection; the step it ended with. */
static enum kj_tls_step serve(int fd, const char **why, int records)
{
	struct kj_tls_conn *c;
	enum kj_tls_step st;
	uint8_t sig[KJ_TLS_SIG_MAX];
	const uint8_t *in;
	size_t len, slen;

	assert_int_equal(kj_tls_conn_new(srv, fd, &c), 0);
	for (;;) {
		st = kj_tls_handshake(c);
		if (st == KJ_TLS_WANT_READ)
			assert_int_equal(wait_fd(fd, POLLIN), 0);
		else if (st == KJ_TLS_WANT_WRITE)
			assert_int_equal(wait_fd(fd, POLLOUT), 0);
		else if (st == KJ_TLS_WANT_SIGN) {
			in = kj_tls_sign_input(c, &len);
			if (kj_keeper_tls_sign(&tk, &limit, 0, 0, in, len,
					       sig, &slen) < 0)
				slen = 0;
			kj_tls_signed(c, sig, slen);
		} else {
			break;
		}
	}
	*why = st == KJ_TLS_FAILED ? kj_tls_failure(c) : NULL;
	if (st == KJ_TLS_DONE && records) {
		serve_records(c, fd, records);
	} else if (st == KJ_TLS_DONE) {
		char buf[32] = "";
		int k = kj_tls_ktls(c);
		ssize_t n;

		assert_string_equal(kj_tls_peer_cn(c), "line1-a");
		assert_true(k >= 0);
		ktls_seen = k;
		fcntl(fd, F_SETFL, 0);
		if (k == 1) {
			/* The kernel's record layer: plain write and read. */
			assert_int_equal(write(fd, "ok-from-appliance", 17),
					 17);
			n = read(fd, buf, sizeof(buf));
		} else {
			assert_int_equal(kj_tls_write(c, "ok-from-appliance",
						      17), 17);
			n = kj_tls_read(c, buf, sizeof(buf));
		}
		assert_int_equal(n, 12);
		assert_memory_equal(buf, "ok-from-site", 12);
	}
	kj_tls_conn_free(c);
	return st;
}

static enum kj_tls_step one(const struct site *st, int *child_rc,
			    const char **why)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), fd, ws;
	enum kj_tls_step step;
	pid_t pid;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 4), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		site_child(ntohs(a.sin_port), st);
	fd = accept(l, NULL, NULL);
	assert_true(fd >= 0);
	close(l);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	step = serve(fd, why, st->records);
	close(fd);
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	*child_rc = WIFEXITED(ws) ? WEXITSTATUS(ws) : 99;
	return step;
}

static void test_handshake_signed_in_hsm(void **state)
{
	struct site st = { .cert = "site.pem" };
	uint64_t before = limit.signed_n;
	const char *why;
	int rc;

	(void)state;
	if (one(&st, &rc, &why) != KJ_TLS_DONE)
		fail_msg("handshake failed: %s", why);
	assert_int_equal(rc, 0);
	assert_int_equal(limit.signed_n, before + 1);
	printf("record layer after the handshake: %s\n",
	       ktls_seen == 1 ? "kTLS" : "user space");
}

/*
 * User-space records (tls_rec.c) against OpenSSL's: 200,000 bytes out
 * through a small send buffer (records part-written and resumed), 40,000
 * in, read 1,000 bytes at a time (a record's rest pending), the site's
 * close_notify as the end; a forged record and a KeyUpdate end the
 * connection.
 */
static void test_user_records(void **state)
{
	static const int modes[] = { REC_BULK, REC_FORGED, REC_KEYUPDATE };
	const char *why;
	int rc;

	(void)state;
	for (unsigned i = 0; i < 3; i++) {
		struct site st = { .cert = "site.pem", .records = modes[i] };

		if (one(&st, &rc, &why) != KJ_TLS_DONE)
			fail_msg("handshake failed: %s", why);
		if (rc != 0)
			fail_msg("site %u: exit %d", modes[i], rc);
	}
}

static void refused(const char *cert, bool tls12, bool no_alpn,
		    const char *want)
{
	struct site st = { .cert = cert, .tls12 = tls12, .no_alpn = no_alpn };
	const char *why = NULL;
	int rc;

	assert_int_equal(one(&st, &rc, &why), KJ_TLS_FAILED);
	assert_int_not_equal(rc, 0);
	assert_non_null(why);
	if (!strstr(why, want))
		fail_msg("refusal \"%s\" does not name \"%s\"", why, want);
}

static void test_refusals(void **state)
{
	(void)state;
	refused("foreign.pem", false, false, "local issuer");
	refused("expired.pem", false, false, "expired");
	refused("site.pem", true, false, "TLS 1.3");
	refused("site.pem", false, true, "ALPN");
}

/* pkcs11-tool: the TLS key is sensitive and never extractable. */
static void test_key_not_extractable(void **state)
{
	(void)state;
	assert_int_equal(sh("set -e; pkcs11-tool --module %s --login "
			    "--pin \"$(cat %s/softhsm/pin)\" --list-objects "
			    "--type privkey --label kinject-tls >%s/p11 "
			    "2>&1; grep -q 'never extractable' %s/p11 && "
			    "grep -q 'Access: *sensitive' %s/p11",
			    module, dir, dir, dir, dir), 0);
}

static void test_cv_check(void **state)
{
	uint8_t in[KJ_TLS_CV_LEN + 1], sig[KJ_TLS_SIG_MAX];
	static const char cli[] = "TLS 1.3, client CertificateVerify";
	struct kj_sign_limit l;
	const char *why;
	size_t slen;

	(void)state;
	memset(in, 0x20, 64);
	memcpy(in + 64, KJ_TLS_CV_CONTEXT, sizeof(KJ_TLS_CV_CONTEXT));
	memset(in + 64 + sizeof(KJ_TLS_CV_CONTEXT), 0xab, 32);
	assert_int_equal(kj_tls_cv_check(in, KJ_TLS_CV_LEN, &why), 0);
	/* a SHA-384 transcript, one byte short, a client's input */
	assert_int_equal(kj_tls_cv_check(in, KJ_TLS_CV_LEN + 1, &why),
			 -EBADMSG);
	assert_int_equal(kj_tls_cv_check(in, KJ_TLS_CV_LEN - 1, &why),
			 -EBADMSG);
	in[3] = 0;
	assert_int_equal(kj_tls_cv_check(in, KJ_TLS_CV_LEN, &why), -EBADMSG);
	in[3] = 0x20;
	memcpy(in + 64, cli, sizeof(cli));
	assert_int_equal(kj_tls_cv_check(in, KJ_TLS_CV_LEN, &why), -EBADMSG);
	assert_int_equal(kj_keeper_tls_sign(&tk, &limit, 0, 1, in,
					    KJ_TLS_CV_LEN, sig, &slen),
			 -EBADMSG);
	memcpy(in + 64, KJ_TLS_CV_CONTEXT, sizeof(KJ_TLS_CV_CONTEXT));
	/* rate: 2/s, burst 2: two now, the third waits half a second */
	kj_sign_limit_init(&l, 2, 2, 1000);
	assert_int_equal(kj_keeper_tls_sign(&tk, &l, 1000, 0, in,
					    KJ_TLS_CV_LEN, sig, &slen), 0);
	assert_int_equal(kj_keeper_tls_sign(&tk, &l, 1000, 0, in,
					    KJ_TLS_CV_LEN, sig, &slen), 0);
	assert_int_equal(kj_keeper_tls_sign(&tk, &l, 1100, 0, in,
					    KJ_TLS_CV_LEN, sig, &slen),
			 -EBUSY);
	assert_int_equal(kj_keeper_tls_sign(&tk, &l, 1500, 0, in,
					    KJ_TLS_CV_LEN, sig, &slen), 0);
	assert_int_equal(l.signed_n, 3);
	assert_int_equal(l.limited_n, 1);
}

/* The SIGNED entry the keeper queued for the injector: its sig_len. */
static int signed_entry(struct inj *in, struct kj_ipc_signed *out)
{
	struct kj_ipc_iter it;
	const uint8_t *body;
	const char *why;
	unsigned type;
	size_t len;

	if (!in->cur)
		return -1;
	kj_ipc_iter_init(&it, in->cur->b.p, in->cur->b.len);
	if (kj_ipc_next(&it, &type, &body, &len, &why) != 1 ||
	    type != KJ_IPC_SIGNED)
		return -1;
	memcpy(out, body, sizeof(*out));
	in->cur->b.len = 0; /* taken */
	in->cur->b.n = 0;
	return out->sig_len;
}

static void test_keeper_sign_ipc(void **state)
{
	struct kj_job job = { .tls = &tk };
	static struct keeper k;
	struct kslot slots[4] = { 0 };
	struct inj in = { .worker = 3, .state = I_RUN, .max_conns = 4,
			  .slots = slots };
	uint8_t ent[sizeof(struct kj_ipc_sign) + KJ_TLS_CV_LEN];
	struct kj_ipc_sign m = { .tag = 2, .len = KJ_TLS_CV_LEN };
	struct kj_ipc_signed r;
	uint8_t *cv = ent + sizeof(m);
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	(void)state;
	k.job = &job;
	k.rl = (struct kj_ratelimit)KJ_RATELIMIT_INIT(5000, 10);
	/* One token, refilled only an hour from now: deterministic. */
	kj_sign_limit_init(&k.sign, 1, 1, kj_now_ms() + 3600000);
	memset(cv, 0x20, 64);
	memcpy(cv + 64, KJ_TLS_CV_CONTEXT, sizeof(KJ_TLS_CV_CONTEXT));
	memset(cv + 64 + sizeof(KJ_TLS_CV_CONTEXT), 0x5a, 32);
	memcpy(ent, &m, sizeof(m));
	/* Signed in the HSM; tls.pem's key verifies it over the input. */
	assert_int_equal(kj_kp_on_sign(&k, &in, ent, sizeof(ent)), 0);
	assert_true(signed_entry(&in, &r) > 0);
	assert_int_equal(r.tag, 2);
	assert_true(md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
					       X509_get0_pubkey(tk.cert)) == 1);
	assert_int_equal(EVP_DigestVerify(md, r.sig, r.sig_len, cv,
					  KJ_TLS_CV_LEN), 1);
	EVP_MD_CTX_free(md);
	/* Burst 1: the next one at once is refused, and says so. */
	assert_int_equal(kj_kp_on_sign(&k, &in, ent, sizeof(ent)), 0);
	assert_int_equal(signed_entry(&in, &r), 0);
	assert_int_equal(k.sign.limited_n, 1);
	/* A client CertificateVerify input: a hostile injector. */
	memcpy(cv + 64, "TLS 1.3, client", 15);
	assert_int_equal(kj_kp_on_sign(&k, &in, ent, sizeof(ent)), -EPROTO);
	assert_int_equal(signed_entry(&in, &r), -1);
	memcpy(cv + 64, KJ_TLS_CV_CONTEXT, sizeof(KJ_TLS_CV_CONTEXT));
	/* A slot with a device, a tag out of range, a job without tls:. */
	slots[2].state = K_RESERVED;
	assert_int_equal(kj_kp_on_sign(&k, &in, ent, sizeof(ent)), -EPROTO);
	slots[2].state = K_FREE;
	m.tag = 4;
	memcpy(ent, &m, sizeof(m));
	assert_int_equal(kj_kp_on_sign(&k, &in, ent, sizeof(ent)), -EPROTO);
	m.tag = 2;
	memcpy(ent, &m, sizeof(m));
	job.tls = NULL;
	assert_int_equal(kj_kp_on_sign(&k, &in, ent, sizeof(ent)), -EPROTO);
	job.tls = &tk;
	/* site_id = the client certificate's CN (PROTOCOL.md "TLS"). */
	strcpy(slots[0].site, "line1-a");
	assert_int_equal(kj_kp_site_cn_check(&k, &slots[0],
					     (const uint8_t *)"line1-a", 7), 0);
	assert_int_equal(kj_kp_site_cn_check(&k, &slots[0],
					     (const uint8_t *)"line1-b", 7),
			 KJ_ABORT_UNAUTHORIZED);
	assert_int_equal(kj_kp_site_cn_check(&k, &slots[0],
					     (const uint8_t *)"line1-a!", 8),
			 KJ_ABORT_UNAUTHORIZED);
	assert_int_equal(kj_kp_site_cn_check(&k, &slots[0],
					     (const uint8_t *)"line\0-a", 7),
			 -EPROTO);
	assert_int_equal(kj_kp_site_cn_check(&k, &slots[0], NULL, 0), 0);
	job.tls = NULL;
	assert_int_equal(kj_kp_site_cn_check(&k, &slots[0],
					     (const uint8_t *)"line1-a", 7),
			 -EPROTO);
	free(in.cur);
}

/*
 * kinject run --tls-sign-rate N --tls-sign-burst B reach the keeper's
 * limit through its job's limits (kj_kp_sign_setup): a limit of N is
 * exactly N signatures a window, the (N+1)th refused over the limit
 * (SIGNED without a signature); 0 is the documented default.
 */
static void test_sign_limit_setting(void **state)
{
	struct kj_job job = { .tls = &tk };
	static struct keeper k;
	struct kslot slots[1] = { 0 };
	struct inj in = { .state = I_RUN, .max_conns = 1, .slots = slots };
	uint8_t ent[sizeof(struct kj_ipc_sign) + KJ_TLS_CV_LEN];
	struct kj_ipc_sign m = { .tag = 0, .len = KJ_TLS_CV_LEN };
	struct kj_ipc_signed r;
	uint8_t *cv = ent + sizeof(m), sig[KJ_TLS_SIG_MAX];
	size_t slen;

	(void)state;
	memcpy(ent, &m, sizeof(m));
	memset(cv, 0x20, 64);
	memcpy(cv + 64, KJ_TLS_CV_CONTEXT, sizeof(KJ_TLS_CV_CONTEXT));
	memset(cv + 64 + sizeof(KJ_TLS_CV_CONTEXT), 0x3c, 32);
	k.job = &job;
	k.rl = (struct kj_ratelimit)KJ_RATELIMIT_INIT(5000, 10);
	kj_kp_sign_setup(&k, 0);
	assert_int_equal(k.sign.rate, KJ_SIGN_RATE_DEFAULT);
	assert_int_equal(k.sign.burst, KJ_SIGN_BURST_DEFAULT);
	for (unsigned n = 1; n <= 3; n++) {
		/* Burst n, rate n a second: two windows, the clock given. */
		job.limits.tls_sign_rate = job.limits.tls_sign_burst = n;
		kj_kp_sign_setup(&k, 1000);
		for (uint64_t t = 1000; t <= 2000; t += 1000) {
			for (unsigned i = 0; i < n; i++)
				assert_int_equal(kj_keeper_tls_sign(&tk,
					&k.sign, t, 0, cv, KJ_TLS_CV_LEN, sig,
					&slen), 0);
			assert_int_equal(kj_keeper_tls_sign(&tk, &k.sign, t, 0,
					 cv, KJ_TLS_CV_LEN, sig, &slen), -EBUSY);
		}
		assert_int_equal(k.sign.signed_n, 2 * n);
		assert_int_equal(k.sign.limited_n, 2);
		/* The SIGN handler on the real clock: full an hour ahead. */
		kj_kp_sign_setup(&k, kj_now_ms() + 3600000);
		for (unsigned i = 0; i <= n; i++) {
			assert_int_equal(kj_kp_on_sign(&k, &in, ent,
						       sizeof(ent)), 0);
			assert_int_equal(signed_entry(&in, &r) > 0, i < n);
		}
		assert_int_equal(k.sign.limited_n, 1);
	}
	free(in.cur);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_not_extractable),
		cmocka_unit_test(test_cv_check),
		cmocka_unit_test(test_keeper_sign_ipc),
		cmocka_unit_test(test_sign_limit_setting),
		cmocka_unit_test(test_handshake_signed_in_hsm),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_user_records),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
