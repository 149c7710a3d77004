// SPDX-License-Identifier: Apache-2.0
/*
 * The stages of `kinject demo' that make keys and inputs (demo_int.h):
 * the HSM token with its transport key, the ceremony, and the customer's
 * side, all with the same tools and formats a real plant and customer use
 * (SoftHSM2 through PKCS#11, the openssl command line, SPEC.md §3), so
 * each printed command is one a newcomer can reuse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "base/log.h"
#include "base/util.h"
#include "demo_int.h"

#define CREDS_DISTINCT 4

static const char *const softhsm_modules[] = {
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/softhsm/libsofthsm2.so",
};

int kj_demo_step_hsm(struct kj_demo *d)
{
	const char *module = NULL, *conf;
	char text[PATH_MAX + 128];

	for (size_t i = 0; i < sizeof(softhsm_modules) / sizeof(char *); i++)
		if (!access(softhsm_modules[i], R_OK))
			module = softhsm_modules[i];
	if (!module) {
		kj_err("demo: no SoftHSM2 module (apt-get install softhsm2)");
		return -ENOENT;
	}
	kj_demo_say("a SoftHSM2 token stands in for the appliance's HSM; "
		    "the ceremony generates the transport key inside it");
	KJ_TRY(kj_mkdir_p(kj_demo_path(d, "softhsm/tokens"), 0700));
	snprintf(text, sizeof(text),
		 "directories.tokendir = %s/softhsm/tokens\n"
		 "objectstore.backend = file\nlog.level = ERROR\n", d->dir);
	KJ_TRY(kj_demo_write(d, "softhsm/softhsm2.conf", text, strlen(text),
			     "where the token lives"));
	KJ_TRY(kj_demo_write(d, "softhsm/pin", "123456\n", 7,
			     "the user PIN (--pin-source file:...)"));
	conf = kj_demo_path(d, "softhsm/softhsm2.conf");
	printf("$ export SOFTHSM2_CONF=%s\n", conf);
	if (setenv("SOFTHSM2_CONF", conf, 1)) {
		kj_err("demo: setenv: %m");
		return -errno;
	}
	KJ_TRY(kj_demo_run(d, NULL, (const char *[]){ "softhsm2-util",
			   "--init-token", "--free", "--label", "kinject",
			   "--so-pin", "12345678", "--pin", "123456", NULL }));
	snprintf(d->hsm_uri, sizeof(d->hsm_uri),
		 "pkcs11:token=kinject;object=transport;id=%%01");
	snprintf(d->pin_source, sizeof(d->pin_source), "file:%s/softhsm/pin",
		 d->dir);
	return 0;
}

static int openssl_key_cert(struct kj_demo *d, const char *key,
			    const char *cert, const char *subj,
			    const char *form)
{
	return kj_demo_run(d, NULL, (const char *[]){ "openssl", "req",
			   "-x509", "-new", "-newkey", "ec", "-pkeyopt",
			   "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
			   "-subj", subj, "-days", "3650", "-outform", form,
			   "-out", cert, NULL });
}

#define OFFICERS 5
#define QUORUM 3

/* Officers 1..QUORUM sign req exactly as officers do, then apply it. */
static int officers_approve(struct kj_demo *d, const char *req)
{
	const char *argv[6 + QUORUM + 1];
	char sig[QUORUM][PATH_MAX + 16];
	int n = 0;

	for (int i = 0; i < QUORUM; i++) {
		snprintf(sig[i], sizeof(sig[i]), "%s.%d.sig", req, i + 1);
		KJ_TRY(kj_demo_run(d, NULL, (const char *[]){ "openssl", "cms",
				   "-sign", "-binary", "-in", req, "-signer",
				   kj_demo_path(d, "officers/o%d.pem", i + 1),
				   "-inkey",
				   kj_demo_path(d, "officers/o%d.key", i + 1),
				   "-outform", "DER", "-out", sig[i], NULL }));
	}
	argv[n++] = d->self;
	argv[n++] = "ceremony";
	argv[n++] = "apply";
	argv[n++] = "--state";
	argv[n++] = d->state;
	argv[n++] = req;
	for (int i = 0; i < QUORUM; i++)
		argv[n++] = sig[i];
	argv[n] = NULL;
	return kj_demo_run(d, NULL, argv);
}

/*
 * The key ceremony (docs/CEREMONY.md): five officers with keys made by
 * openssl, init with a quorum of three (transport key in the HSM, AK in
 * the TPM, the transcript), then the customer enrolled by three of them.
 * The customer's release key is made here because enrolment needs its
 * certificate.
 */
int kj_demo_step_ceremony(struct kj_demo *d)
{
	const char *argv[16 + 2 * OFFICERS];
	char thr[8];
	int n = 0;

	KJ_TRY(kj_mkdir_p(kj_demo_path(d, "officers"), 0700));
	KJ_TRY(kj_mkdir_p(kj_demo_path(d, "customer"), 0700));
	kj_demo_say("five security officers, each with a key and certificate "
		    "(on a real line: their smart cards)");
	for (int i = 1; i <= OFFICERS; i++) {
		char subj[48];

		snprintf(subj, sizeof(subj), "/O=kinject demo/CN=officer %d",
			 i);
		KJ_TRY(openssl_key_cert(d,
					kj_demo_path(d, "officers/o%d.key", i),
					kj_demo_path(d, "officers/o%d.pem", i),
					subj, "PEM"));
	}
	kj_demo_say("init: %d of %d officers must approve every privileged act",
		    QUORUM, OFFICERS);
	snprintf(thr, sizeof(thr), "%d", QUORUM);
	argv[n++] = d->self;
	argv[n++] = "ceremony";
	argv[n++] = "init";
	argv[n++] = "--state";
	argv[n++] = d->state;
	argv[n++] = "--hsm";
	argv[n++] = d->hsm_uri;
	argv[n++] = "--pin-source";
	argv[n++] = d->pin_source;
	argv[n++] = "--tpm";
	argv[n++] = d->tcti;
	for (int i = 1; i <= OFFICERS; i++) {
		argv[n++] = "--officer";
		argv[n++] = kj_demo_path(d, "officers/o%d.pem", i);
	}
	argv[n++] = "--threshold";
	argv[n++] = thr;
	argv[n] = NULL;
	KJ_TRY(kj_demo_run(d, kj_demo_path(d, "officers/init.log"), argv));
	KJ_TRY(kj_demo_run(d, NULL, (const char *[]){ "cp",
			   kj_demo_path(d, "state/ceremony/init.req"),
			   kj_demo_path(d, "officers/init.req"), NULL }));
	kj_demo_say("three officers sign the init request; the appliance is "
		    "initialised once they apply it");
	KJ_TRY(officers_approve(d, kj_demo_path(d, "officers/init.req")));
	kj_demo_say("the customer's release (signing) key and certificate");
	KJ_TRY(openssl_key_cert(d, kj_demo_path(d, "customer/release.key"),
				kj_demo_path(d, "customer/release.pem"),
				"/O=acme/CN=release", "PEM"));
	kj_demo_say("enrol the customer: the appliance accepts inputs signed "
		    "by this certificate once three officers approve");
	KJ_TRY(kj_demo_run(d, NULL, (const char *[]){ d->self, "ceremony",
			   "request", "enrol-customer", "--state", d->state,
			   "--name", "acme", "--cert",
			   kj_demo_path(d, "customer/release.pem"), "--out",
			   kj_demo_path(d, "officers/enrol-acme.req"), NULL }));
	KJ_TRY(officers_approve(d, kj_demo_path(d, "officers/enrol-acme.req")));
	kj_demo_say("the customer encrypts to the appliance's transport "
		    "certificate, made by the ceremony");
	return kj_demo_run(d, NULL, (const char *[]){ "cp",
			   kj_demo_path(d, "state/transport.pem"),
			   kj_demo_path(d, "customer/transport.pem"), NULL });
}

/* SPEC.md §3.1: sign (attached, binary), then encrypt to the appliance. */
static int envelope(struct kj_demo *d, const char *in, const char *out)
{
	char signed_path[PATH_MAX + 8];

	snprintf(signed_path, sizeof(signed_path), "%s.signed", out);
	KJ_TRY(kj_demo_run(d, NULL, (const char *[]){ "openssl", "cms",
			   "-sign", "-binary", "-nodetach", "-in", in,
			   "-signer", kj_demo_path(d, "customer/release.pem"),
			   "-inkey", kj_demo_path(d, "customer/release.key"),
			   "-outform", "DER", "-out", signed_path, NULL }));
	KJ_TRY(kj_demo_run(d, NULL, (const char *[]){ "openssl", "cms",
			   "-encrypt", "-binary", "-aes-256-gcm", "-recip",
			   kj_demo_path(d, "customer/transport.pem"), "-keyopt",
			   "ecdh_kdf_md:sha256", "-in", signed_path,
			   "-outform", "DER", "-out", out, NULL }));
	return unlink(signed_path) ? -errno : 0;
}

static int sign_detached(struct kj_demo *d, const char *file, char *sig,
			 size_t cap)
{
	snprintf(sig, cap, "%s.sig", file);
	return kj_demo_run(d, NULL, (const char *[]){ "openssl", "cms",
			   "-sign", "-binary", "-in", file, "-signer",
			   kj_demo_path(d, "customer/release.pem"), "-inkey",
			   kj_demo_path(d, "customer/release.key"), "-outform",
			   "DER", "-out", sig, NULL });
}

static int firmware(struct kj_demo *d, uint8_t sha[32])
{
	size_t len = 65536;
	uint8_t *fw = malloc(len);
	int rc;

	if (!fw || RAND_bytes(fw, (int)len) != 1) {
		free(fw);
		kj_err("demo: cannot make the firmware image");
		return -ENOMEM;
	}
	kj_sha256(fw, len, sha);
	rc = kj_demo_write(d, "customer/fw.bin", fw, len,
			   "the firmware image (64 KiB of random bytes)");
	free(fw);
	KJ_TRY(rc);
	return envelope(d, kj_demo_path(d, "customer/fw.bin"), d->fw);
}

/*
 * Device i's certificate for key k, base64 DER: self-signed, CN "device
 * i", a random serial.  Every index needs a certificate of its own (the
 * appliance refuses a batch that repeats one); made here rather than by
 * one openssl run per device, to stay quick.
 */
static char *device_cert(EVP_PKEY *k, unsigned i)
{
	X509 *x = X509_new();
	X509_NAME *nm = x ? X509_get_subject_name(x) : NULL;
	uint8_t *der = NULL;
	char cn[32], *b = NULL;
	uint64_t sn;
	int n = 0;

	snprintf(cn, sizeof(cn), "device %u", i);
	if (nm && RAND_bytes((uint8_t *)&sn, sizeof(sn)) == 1 &&
	    X509_set_version(x, 2) &&
	    ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), sn >> 1 | 1) &&
	    X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
	    X509_gmtime_adj(X509_getm_notAfter(x), 3650L * 86400) &&
	    X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_ASC,
				       (const unsigned char *)"acme", -1, -1,
				       0) &&
	    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
				       (const unsigned char *)cn, -1, -1, 0) &&
	    X509_set_issuer_name(x, nm) && X509_set_pubkey(x, k) &&
	    X509_sign(x, k, EVP_sha256()) > 0 && (n = i2d_X509(x, &der)) > 0)
		b = kj_demo_base64(der, (size_t)n);
	OPENSSL_free(der);
	X509_free(x);
	if (!b)
		kj_err("demo: cannot make the certificate of device %u", i);
	return b;
}

static EVP_PKEY *read_key(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;

	if (f)
		fclose(f);
	if (!k)
		kj_err("demo: cannot read the device key %s", path);
	return k;
}

/* One credential line per device (SPEC.md §3.2): index, certificate and
 * key as base64 DER; CREDS_DISTINCT key pairs cycled, to stay quick, each
 * device with a certificate of its own. */
static int credentials(struct kj_demo *d)
{
	char *b64[CREDS_DISTINCT][2] = { { NULL } }, line[4096], subj[64];
	EVP_PKEY *keys[CREDS_DISTINCT] = { NULL };
	unsigned n = d->devices + d->devices / 5 + 10;
	FILE *m = NULL;
	char *text = NULL;
	size_t len = 0;
	int rc = 0;

	for (int i = 0; i < CREDS_DISTINCT && !rc; i++) {
		const char *key = kj_demo_path(d, "customer/dev%d.key", i);
		const char *der = kj_demo_path(d, "customer/dev%d.der", i);
		const char *p8 = kj_demo_path(d, "customer/dev%d.p8", i);
		uint8_t *buf;
		size_t blen;

		snprintf(subj, sizeof(subj), "/O=acme/CN=device %d", i);
		rc = openssl_key_cert(d, key, der, subj, "DER");
		if (!rc)
			rc = kj_demo_run(d, NULL, (const char *[]){ "openssl",
					 "pkcs8", "-topk8", "-nocrypt", "-in",
					 key, "-outform", "DER", "-out", p8,
					 NULL });
		if (!rc && !(keys[i] = read_key(key)))
			rc = -EINVAL;
		/* The key only: each device's certificate is made below. */
		if (!rc)
			rc = kj_read_file(p8, 65536, &buf, &blen);
		if (!rc) {
			b64[i][1] = kj_demo_base64(buf, blen);
			explicit_bzero(buf, blen); /* a device key */
			free(buf);
			rc = b64[i][1] ? 0 : -ENOMEM;
		}
	}
	if (!rc && !(m = open_memstream(&text, &len)))
		rc = -ENOMEM;
	for (unsigned i = 0; i < n && !rc; i++) {
		char *cert = device_cert(keys[i % CREDS_DISTINCT], i);

		if (!cert) {
			rc = -EIO;
			break;
		}
		snprintf(line, sizeof(line), "{\"index\":%u,\"cert\":\"%s\","
			 "\"key\":\"%s\"}\n", i, cert,
			 b64[i % CREDS_DISTINCT][1]);
		free(cert);
		fputs(line, m);
	}
	if (m && fclose(m))
		rc = -ENOMEM;
	if (!rc) {
		snprintf(line, sizeof(line), "%u device credentials, one JSON "
			 "line each: index, certificate and key (base64 DER)",
			 n);
		rc = kj_demo_write(d, "customer/creds.jsonl", text, len, line);
	}
	if (text)
		explicit_bzero(text, len);
	free(text);
	for (int i = 0; i < CREDS_DISTINCT; i++) {
		EVP_PKEY_free(keys[i]);
		free(b64[i][0]);
		if (b64[i][1])
			explicit_bzero(b64[i][1], strlen(b64[i][1]));
		free(b64[i][1]);
	}
	KJ_TRY(rc);
	return envelope(d, kj_demo_path(d, "customer/creds.jsonl"), d->creds);
}

static int work_order(struct kj_demo *d, const uint8_t sha[32])
{
	char hex[65], text[1024];

	kj_hex_encode(sha, 32, hex);
	snprintf(text, sizeof(text), "{\"kinject_work_order\": 1, \"id\": \""
		 KJ_DEMO_JOB "\", \"customer\": \"acme\",\n \"product\": "
		 "\"acme-sensor\", \"batch\": \"LOT-2027-0315\", \"quantity\": "
		 "%u,\n \"max_failed\": 200, \"hardware_revisions\": [\"B\", "
		 "\"C\"],\n \"firmware\": {\"version\": \"3.1.5\", \"sha256\": "
		 "\"%s\"},\n \"serial\": {\"prefix\": \"AS\", \"start\": "
		 "10000}}\n", d->devices, hex);
	KJ_TRY(kj_demo_write(d, "customer/WO.json", text, strlen(text),
			     "the work order: quantity, firmware hash, serials "
			     "(SPEC.md §3.3)"));
	KJ_TRY(sign_detached(d, d->wo, d->wo_sig, sizeof(d->wo_sig)));
	snprintf(text, sizeof(text), "{\"kinject_product\": 1, \"product\": "
		 "\"acme-sensor\", \"customer\": \"acme\", \"version\": 1,\n "
		 "\"min_firmware\": \"3.0.0\",\n \"hardware\": {\"B\": "
		 "{\"firmware\": \">=3.0.0 <4.0.0\"}, \"C\": {\"firmware\": "
		 "\">=3.1.0\"}}}\n");
	KJ_TRY(kj_demo_write(d, "customer/product.json", text, strlen(text),
			     "the product matrix: which firmware each "
			     "hardware revision takes (SPEC.md §3.4)"));
	return sign_detached(d, d->product, d->product_sig,
			     sizeof(d->product_sig));
}

int kj_demo_step_customer(struct kj_demo *d)
{
	uint8_t sha[32];

	snprintf(d->fw, sizeof(d->fw), "%s/customer/FW.cms", d->dir);
	snprintf(d->creds, sizeof(d->creds), "%s/customer/CREDS.cms", d->dir);
	snprintf(d->wo, sizeof(d->wo), "%s/customer/WO.json", d->dir);
	snprintf(d->product, sizeof(d->product), "%s/customer/product.json",
		 d->dir);
	kj_demo_say("the firmware, signed by the customer and encrypted to "
		    "the appliance's transport key");
	KJ_TRY(firmware(d, sha));
	kj_demo_say("the device credentials, the same way");
	KJ_TRY(credentials(d));
	kj_demo_say("the work order and the product matrix, signed (detached)");
	return work_order(d, sha);
}
