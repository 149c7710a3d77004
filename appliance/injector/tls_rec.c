// SPDX-License-Identifier: Apache-2.0
/*
 * User-space TLS 1.3 records after the handshake (tls.h), where the kernel
 * has no kTLS: what kTLS does in the kernel, done here with the same keys
 * (RFC 8446 §5.2, TLS_AES_128_GCM_SHA256 only), so the connection's SSL
 * object is freed after the handshake either way.  An SSL kept for its
 * record layer costs about 19 KiB of heap per connection for as long as
 * the connection lives (its handshake state, the peer's certificates,
 * OpenSSL's per-connection tables), which an idle site would hold for its
 * whole HELLO limit; this costs the keys and, only while a record is
 * part-read or part-written, that record's buffer (docs/TLS.md).
 *
 * Exactly the records a site may send after Finished are accepted:
 * application data (possibly empty) and a close_notify alert; any other
 * alert, a KeyUpdate or any post-handshake message, a record that does
 * not authenticate or is too long ends the connection (-EIO), as kTLS
 * does for a record the engine could not take.  Records are read one at a
 * time, header then body (as OpenSSL without read-ahead), so no bytes
 * beyond the record being read leave the socket.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "tls.h"
#include "base/util.h"
#include "tls_int.h"

#define HDR 5
#define TAG 16
#define PLAIN_MAX 16384			/* 2^14 */
#define CIPHER_MAX (PLAIN_MAX + 256)	/* RFC 8446 §5.2 */
#define REC_MAX (HDR + CIPHER_MAX)
#define CT_ALERT 21
#define CT_APPDATA 23

static EVP_CIPHER *aes;
static __thread EVP_CIPHER_CTX *cctx;
static __thread uint8_t *scratch; /* REC_MAX: a record being sealed */

static void fetch_aes(void)
{
	aes = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
}

static EVP_CIPHER_CTX *ctx(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, fetch_aes);
	if (aes && !cctx)
		cctx = EVP_CIPHER_CTX_new();
	return aes ? cctx : NULL;
}

/* RFC 8446 §5.3: the IV XOR the sequence number, left-padded. */
static void nonce(const struct kj_tls_dir *d, uint8_t out[12])
{
	memcpy(out, d->iv, 12);
	for (int i = 0; i < 8; i++)
		out[11 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

/* Seal inner (n bytes, its content type already appended) at rec + HDR. */
static int seal(struct kj_tls_dir *d, uint8_t *rec, size_t n)
{
	EVP_CIPHER_CTX *x = ctx();
	uint8_t iv[12];
	int l1, l2 = 0, ok;

	rec[0] = CT_APPDATA;
	rec[1] = 3;
	rec[2] = 3;
	kj_put_u16be(rec + 3, (uint16_t)(n + TAG));
	nonce(d, iv);
	ok = x && EVP_EncryptInit_ex(x, aes, NULL, d->key, iv) == 1 &&
	     EVP_EncryptUpdate(x, NULL, &l1, rec, HDR) == 1 &&
	     EVP_EncryptUpdate(x, rec + HDR, &l1, rec + HDR, (int)n) == 1 &&
	     EVP_EncryptFinal_ex(x, rec + HDR + l1, &l2) == 1 &&
	     (size_t)(l1 + l2) == n &&
	     EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, TAG,
				 rec + HDR + n) == 1;
	d->seq++; /* a nonce is never used twice, sealed or not */
	return ok ? 0 : -EIO;
}

/* Open the whole record in c->rx: its plaintext at c->rx + HDR. */
static int open_rec(struct kj_tls_conn *c)
{
	EVP_CIPHER_CTX *x = ctx();
	size_t n = c->rx_len - HDR - TAG;
	uint8_t *p = c->rx + HDR, iv[12];
	int l1, l2 = 0, ok;

	nonce(&c->rd, iv);
	ok = x && EVP_DecryptInit_ex(x, aes, NULL, c->rd.key, iv) == 1 &&
	     EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, TAG, p + n) == 1 &&
	     EVP_DecryptUpdate(x, NULL, &l1, c->rx, HDR) == 1 &&
	     EVP_DecryptUpdate(x, p, &l1, p, (int)n) == 1 &&
	     EVP_DecryptFinal_ex(x, p + l1, &l2) == 1;
	c->rd.seq++;
	if (!ok)
		return -EIO; /* not authentic */
	/* TLSInnerPlaintext: content, type, zero padding */
	while (n && !p[n - 1])
		n--;
	if (!n)
		return -EIO;
	if (p[n - 1] == CT_ALERT)
		/* close_notify (warning or fatal level): the site's clean end */
		return n == 3 && p[1] == 0 ? 0 : -EIO;
	if (p[n - 1] != CT_APPDATA)
		return -EIO; /* KeyUpdate, a post-handshake message */
	c->rx_off = HDR;
	c->rx_plain = n - 1;
	return 1;
}

static void rx_drop(struct kj_tls_conn *c)
{
	if (c->rx)
		explicit_bzero(c->rx, REC_MAX);
	free(c->rx);
	c->rx = NULL;
	c->rx_len = c->rx_plain = 0;
}

/* Read the rest of the record in c->rx: 1 whole, -EAGAIN, 0 EOF, < 0. */
static int fill(struct kj_tls_conn *c)
{
	size_t want = HDR;
	ssize_t n;

	for (;;) {
		if (c->rx_len >= HDR) {
			want = HDR + kj_get_u16be(c->rx + 3);
			if (c->rx[0] != CT_APPDATA || c->rx[1] != 3 ||
			    c->rx[2] != 3 || want > REC_MAX ||
			    want < HDR + TAG + 1)
				return -EIO;
		}
		if (c->rx_len == want)
			return 1;
		n = read(c->fd, c->rx + c->rx_len, want - c->rx_len);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? -EAGAIN :
			       -EIO;
		if (n == 0)
			return c->rx_len ? -EIO : 0; /* mid-record: cut */
		c->rx_len += (size_t)n;
	}
}

ssize_t kj_tls_read(struct kj_tls_conn *c, void *buf, size_t len)
{
	ssize_t rc;
	size_t n;

	while (!c->rx_plain) {
		if (!c->rx && !(c->rx = malloc(REC_MAX)))
			return -ENOMEM;
		rc = fill(c);
		if (rc == 1)
			rc = open_rec(c);
		if (rc == 1 && !c->rx_plain)
			rc = 2; /* empty application data: the next one */
		if (rc != 1) {
			if (rc == -EAGAIN && c->rx_len)
				return -EAGAIN; /* keep the part read */
			rx_drop(c);
			if (rc != 2)
				return rc;
		}
	}
	n = len < c->rx_plain ? len : c->rx_plain;
	memcpy(buf, c->rx + c->rx_off, n);
	c->rx_off += n;
	c->rx_plain -= n;
	if (!c->rx_plain)
		rx_drop(c);
	return (ssize_t)n;
}

bool kj_tls_pending(const struct kj_tls_conn *c)
{
	return c->rx_plain > 0;
}

/* Write what is left of c->tx: 0 all written (c->tx freed), -EAGAIN, < 0. */
static int flush(struct kj_tls_conn *c)
{
	ssize_t n;

	while (c->tx_off < c->tx_len) {
		n = write(c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? -EAGAIN :
			       -EPIPE;
		c->tx_off += (size_t)n;
	}
	free(c->tx);
	c->tx = NULL;
	c->tx_len = c->tx_off = 0;
	return 0;
}

/*
 * One record of up to 2^14 bytes of buf.  Its plaintext length is
 * returned once the whole record is on the socket; until then -EAGAIN,
 * and the caller comes back with the same bytes (the sealed record is
 * kept, never sealed again).
 */
ssize_t kj_tls_write(struct kj_tls_conn *c, const void *buf, size_t len)
{
	size_t m = len < PLAIN_MAX ? len : PLAIN_MAX, total;
	ssize_t n;
	int rc;

	if (c->tx) {
		rc = flush(c);
		return rc < 0 ? rc : (ssize_t)c->tx_plain;
	}
	if (!len)
		return 0;
	if (!scratch && !(scratch = malloc(REC_MAX)))
		return -ENOMEM;
	memcpy(scratch + HDR, buf, m);
	scratch[HDR + m] = CT_APPDATA;
	if (seal(&c->wr, scratch, m + 1) < 0)
		return -EIO;
	total = HDR + m + 1 + TAG;
	n = write(c->fd, scratch, total);
	if (n == (ssize_t)total)
		return (ssize_t)m;
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		return -EPIPE;
	/* The socket took part or none: keep the rest for the next call. */
	n = n < 0 ? 0 : n;
	c->tx_len = total - (size_t)n;
	c->tx_off = 0;
	c->tx_plain = m;
	c->tx = malloc(c->tx_len);
	if (!c->tx)
		return -ENOMEM;
	memcpy(c->tx, scratch + n, c->tx_len);
	return -EAGAIN;
}

void kj_tls_rec_free(struct kj_tls_conn *c)
{
	rx_drop(c);
	free(c->tx);
	c->tx = NULL;
	explicit_bzero(&c->rd, sizeof(c->rd));
	explicit_bzero(&c->wr, sizeof(c->wr));
}
