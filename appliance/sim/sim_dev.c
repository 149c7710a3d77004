// SPDX-License-Identifier: Apache-2.0
/*
 * kinject sim: the chip's own key, as a device under programming holds it
 * (PROTOCOL.md device authenticity and the inject mode of cred_blob).
 * Every simulated device gets a fresh P-256 key; with --device-ca its
 * factory certificate is made here, signed by the test device CA, and the
 * device answers CHALLENGE with PROOF.  A counterfeit (--counterfeit-rate)
 * takes one of three forms (kj_sim_dev_proof); each must be refused.
 * In inject mode the device opens its cred_blob with its key and checks
 * what is inside, as the chip would before it stores it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/log.h"
#include "base/util.h"
#include "wire/devcred.h"
#include "wire/proto.h"
#include "sim_int.h"

static EVP_PKEY *ca_key, *rogue_key;
static X509 *ca_cert, *rogue_cert, *issuing_ca;

/* A factory certificate for key, CN = hex uid, signed by (issuer, ikey). */
static X509 *make_cert(EVP_PKEY *key, const uint8_t *uid, size_t uid_len,
		       X509 *issuer, EVP_PKEY *ikey)
{
	char cn[2 * KJ_UID_MAX + 1] = "sim-rogue-ca";
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	bool ok;

	if (uid_len)
		kj_hex_encode(uid, uid_len, cn);
	ok = x && n && X509_set_version(x, 2) &&
	     ASN1_INTEGER_set(X509_get_serialNumber(x),
			      (long)(kj_now_ms() & 0x7fffffff)) &&
	     X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
	     X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365) &&
	     X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
					(const unsigned char *)cn, -1, -1,
					0) &&
	     X509_set_subject_name(x, n) &&
	     X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer)
					    : n) &&
	     X509_set_pubkey(x, key) && X509_sign(x, ikey, EVP_sha256()) > 0;
	X509_NAME_free(n);
	if (!ok) {
		kj_err_ssl("sim: device certificate");
		X509_free(x);
		return NULL;
	}
	return x;
}

static int load_pem(const char *path, const char *flag, X509 **x,
		    EVP_PKEY **key)
{
	FILE *f = fopen(path, "r");

	if (!f) {
		kj_err("%s %s: %s", flag, path, strerror(errno));
		return -errno;
	}
	if (key)
		*key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	else
		*x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (key ? !*key : !*x)
		return kj_err_ssl("%s %s: not a PEM %s", flag, path,
				  key ? "private key" : "certificate");
	return 0;
}

int kj_sim_dev_load(const struct kj_sim_opts *o)
{
	if (!o->device_ca_cert != !o->device_ca_key) {
		kj_err("--device-ca and --device-ca-key go together");
		return -EINVAL;
	}
	if (o->issuing_ca)
		KJ_TRY(load_pem(o->issuing_ca, "--issuing-ca", &issuing_ca,
				NULL));
	if (!o->device_ca_cert)
		return 0;
	KJ_TRY(load_pem(o->device_ca_cert, "--device-ca", &ca_cert, NULL));
	KJ_TRY(load_pem(o->device_ca_key, "--device-ca-key", NULL, &ca_key));
	if (X509_check_private_key(ca_cert, ca_key) != 1) {
		kj_err("--device-ca-key %s is not the key of --device-ca %s",
		       o->device_ca_key, o->device_ca_cert);
		return -EINVAL;
	}
	rogue_key = EVP_EC_gen("prime256v1");
	rogue_cert = rogue_key ? make_cert(rogue_key, NULL, 0, NULL,
					   rogue_key) : NULL;
	if (!rogue_cert)
		return kj_err_ssl("sim: the counterfeiters' CA");
	return 0;
}

void kj_sim_dev_unload(void)
{
	X509_free(ca_cert);
	X509_free(rogue_cert);
	X509_free(issuing_ca);
	issuing_ca = NULL;
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(rogue_key);
	ca_cert = rogue_cert = NULL;
	ca_key = rogue_key = NULL;
}

int kj_sim_dev_begin(struct sim *s, struct conn *c, struct kj_hello *h)
{
	if (!s->o->device_keys && !ca_cert && !s->o->check_inject &&
	    !issuing_ca)
		return 0;
	c->dev_key = EVP_EC_gen("prime256v1");
	if (!c->dev_key || kj_p256_sec1(c->dev_key, h->pubkey) < 0)
		return kj_err_ssl("sim: device key");
	h->pubkey_len = KJ_PUBKEY_LEN;
	return 0;
}

void kj_sim_dev_end(struct conn *c)
{
	EVP_PKEY_free(c->dev_key);
	c->dev_key = NULL;
	if (c->cred)
		explicit_bzero(c->cred, c->cred_cap);
	free(c->cred);
	c->cred = NULL;
	c->cred_cap = 0;
}

/*
 * The PROOF a device sends.  Counterfeits take turns: a certificate from
 * the rogue CA (unchained); the honest certificate signed over by the
 * wrong key; a flawless proof for another key than HELLO's device_pubkey
 * (a certificate and key lifted from a genuine chip).
 */
int kj_sim_dev_proof(struct sim *s, struct conn *c, const uint8_t *body,
		     size_t len)
{
	unsigned v = c->fault == F_COUNTERFEIT ? 1 + c->dev_seq % 3 : 0;
	EVP_PKEY *subject = v == 3 ? rogue_key : c->dev_key;
	EVP_PKEY *signer = v >= 2 ? rogue_key : c->dev_key;
	uint8_t nonce[KJ_NONCE_LEN], sig[KJ_PROOF_SIG_LEN];
	uint8_t b[KJ_PROOF_FRAME_MAX];
	unsigned char *der = NULL;
	X509 *x;
	int n, rc = -EPROTO;

	if (kj_challenge_parse(body, len, nonce, NULL) < 0 || !c->dev_key ||
	    !ca_cert)
		return -EPROTO; /* no factory key here: see --device-ca */
	x = make_cert(subject, c->uid, c->uid_len,
		      v == 1 ? rogue_cert : ca_cert,
		      v == 1 ? rogue_key : ca_key);
	n = x ? i2d_X509(x, &der) : -1;
	if (n > 0 && kj_devauth_sign(signer, nonce, c->uid, c->uid_len,
				     sig) == 0)
		rc = kj_sim_queue_out(c, b, kj_proof_build(b, sizeof(b), der,
							   (size_t)n, sig));
	OPENSSL_free(der);
	X509_free(x);
	if (rc >= 0) {
		s->r->proofs++;
		kj_sim_flush(s, c);
	}
	return rc < 0 ? -EPROTO : 0;
}

/* Inject mode: keep the credential stream for kj_sim_dev_cred_check. */
int kj_sim_dev_cred(struct conn *c, const struct kj_frame *f)
{
	if (!c->dev_key)
		return 0;
	if (!c->cred) {
		c->cred_cap = c->cred_size;
		c->cred = malloc(c->cred_cap ? c->cred_cap : 1);
		if (!c->cred)
			return -ENOMEM;
	}
	if (f->offset > c->cred_cap || f->len > c->cred_cap - f->offset)
		return -EPROTO;
	memcpy(c->cred + f->offset, f->body, f->len);
	return 0;
}

/* The plaintext must be u32be len ‖ cert DER ‖ u32be len ‖ PKCS#8 DER. */
static bool blob_ok(const uint8_t *p, size_t n)
{
	const unsigned char *q;
	uint32_t cl, kl;
	X509 *x;
	EVP_PKEY *k;

	if (n < 8 || (cl = kj_get_u32be(p)) > n - 8)
		return false;
	kl = kj_get_u32be(p + 4 + cl);
	if (kl != n - 8 - cl)
		return false;
	q = p + 4;
	x = d2i_X509(NULL, &q, cl);
	X509_free(x);
	if (!x || q != p + 4 + cl)
		return false;
	if (!kl)
		return true;
	q = p + 8 + cl;
	k = d2i_AutoPrivateKey(NULL, &q, kl);
	EVP_PKEY_free(k);
	return k && q == p + n;
}

/*
 * Issue mode: u32be len ‖ certificate ‖ u32be 0, the certificate signed by
 * the issuing CA and for this device's own key.
 */
static bool issued_ok(struct conn *c)
{
	const unsigned char *q = c->cred + 4;
	uint8_t want[KJ_PUBKEY_LEN], got[KJ_PUBKEY_LEN];
	uint32_t cl;
	X509 *x;
	bool ok;

	if (c->cred_size < 8 ||
	    (cl = kj_get_u32be(c->cred)) != c->cred_size - 8 ||
	    kj_get_u32be(c->cred + 4 + cl) != 0)
		return false;
	x = d2i_X509(NULL, &q, cl);
	ok = x && q == c->cred + 4 + cl &&
	     X509_verify(x, X509_get0_pubkey(issuing_ca)) == 1 &&
	     X509_check_issued(issuing_ca, x) == X509_V_OK &&
	     kj_p256_sec1(X509_get0_pubkey(x), got) == 0 &&
	     kj_p256_sec1(c->dev_key, want) == 0 && !memcmp(got, want,
							   sizeof(got));
	X509_free(x);
	return ok;
}

void kj_sim_dev_log(struct sim *s, struct conn *c, FILE *f)
{
	uint32_t cl;
	unsigned char *b64;

	if (!issuing_ca || !c->cred || c->cred_size < 8 ||
	    (cl = kj_get_u32be(c->cred)) > c->cred_size - 8)
		return;
	b64 = malloc(4 * ((cl + 2) / 3) + 1);
	if (!b64)
		return;
	EVP_EncodeBlock(b64, c->cred + 4, (int)cl);
	fprintf(f, ",\"cert\":\"%s\"", b64);
	free(b64);
	(void)s;
}

int kj_sim_dev_cred_check(struct sim *s, struct conn *c)
{
	uint8_t *plain;
	int n;
	bool ok;

	if (issuing_ca) {
		if (!c->cred || !issued_ok(c))
			return -EBADMSG;
		s->r->creds_opened++;
		return 0;
	}
	if (!s->o->check_inject)
		return 0;
	if (!c->cred || c->cred_size < KJ_SEAL_OVERHEAD)
		return -EBADMSG;
	plain = malloc(c->cred_size);
	if (!plain)
		return -ENOMEM;
	n = kj_cred_open(c->dev_key, c->uid, c->uid_len, c->cred,
			 c->cred_size, plain, c->cred_size);
	ok = n >= 0 && blob_ok(plain, (size_t)n);
	if (n > 0)
		explicit_bzero(plain, (size_t)n);
	free(plain);
	if (!ok)
		return -EBADMSG;
	s->r->creds_opened++;
	return 0;
}
