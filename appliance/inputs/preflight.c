// SPDX-License-Identifier: Apache-2.0
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "preflight.h"
#include "base/log.h"
#include "base/util.h"
#include "hsm/hsm.h"
#include "cms.h"

#define KJ_CMS_FILE_MAX (1ULL << 32)

static void fact(const struct kj_preflight_args *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void fact(const struct kj_preflight_args *a, const char *fmt, ...)
{
	va_list ap;

	if (!a->print)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static const char *subject(X509 *x, char *buf, size_t cap)
{
	X509_NAME_oneline(X509_get_subject_name(x), buf, (int)cap);
	return buf;
}

/* A customer name from a signed-to-be file becomes a path: keep it tame. */
static int customer_path(const char *state, const char *customer, char *out,
			 size_t cap)
{
	for (const char *c = customer; *c; c++)
		if (*c == '/' || (c == customer && *c == '.')) {
			kj_err("work order: customer `%s' cannot name a "
			       "directory under %s/customers", customer, state);
			return -EINVAL;
		}
	if ((size_t)snprintf(out, cap, "%s/customers/%s/release.pem", state,
			     customer) >= cap) {
		kj_err("--state: path too long");
		return -EINVAL;
	}
	return 0;
}

static int check_sig(const char *data_path, const uint8_t *data, size_t len,
		     const char *sig_path, X509 *signer)
{
	uint8_t *sig;
	size_t sig_len;
	int rc;

	KJ_TRY(kj_read_file(sig_path, 1 << 20, &sig, &sig_len));
	rc = kj_cms_verify_detached(data, len, sig, sig_len, signer, sig_path);
	free(sig);
	(void)data_path;
	return rc;
}

static int work_order(const struct kj_preflight_args *a, struct kj_preflight *p)
{
	const char *state = a->state_dir ? a->state_dir : "./kinject-state";
	char path[4096], who[256];
	struct kj_work_order *wo = &p->wo;

	/* Strict parse first: the customer named inside picks the key. */
	KJ_TRY(kj_work_order_load(a->work_order, wo));
	/* Customers exist only through the ceremony (SPEC.md §3.4, §5). */
	KJ_TRY(customer_path(state, wo->customer, path, sizeof(path)));
	if (access(path, R_OK) != 0) {
		kj_err("%s: customer `%s' is not enrolled (no release "
		       "certificate); the officers enrol it with `kinject "
		       "ceremony request enrol-customer --name %s --cert "
		       "release.pem' and `kinject ceremony apply'", path,
		       wo->customer, wo->customer);
		return -EPERM;
	}
	KJ_TRY(kj_cert_load(path, &p->release_cert));
	KJ_TRY(check_sig(a->work_order, wo->raw, wo->raw_len,
			 a->work_order_sig, p->release_cert));
	fact(a, "work order %s: signature OK (%s, %s)", a->work_order,
	     subject(p->release_cert, who, sizeof(who)), path);
	fact(a, "work order: id %s, customer %s, product %s, batch %s, "
		"quantity %llu, max_failed %llu, firmware %s",
	     wo->id, wo->customer, wo->product, wo->batch,
	     (unsigned long long)wo->quantity,
	     (unsigned long long)wo->max_failed, wo->fw_version_str);
	return 0;
}

static int product(const struct kj_preflight_args *a, struct kj_preflight *p)
{
	struct kj_product *pm = &p->pm;

	KJ_TRY(kj_product_load(a->product, pm));
	KJ_TRY(check_sig(a->product, pm->raw, pm->raw_len, a->product_sig,
			 p->release_cert));
	fact(a, "product matrix %s: signature OK", a->product);
	KJ_TRY(kj_product_version_check(a->state_dir ? a->state_dir :
					"./kinject-state", pm));
	fact(a, "product matrix: version %llu, not older than any accepted",
	     (unsigned long long)pm->version);
	KJ_TRY(kj_order_check(&p->wo, pm));
	fact(a, "product matrix: firmware %s >= min_firmware %s",
	     p->wo.fw_version_str, pm->min_firmware_str);
	for (unsigned i = 0; i < p->wo.n_hwrev; i++) {
		const struct kj_product_hw *hw =
			kj_product_find_hw(pm, p->wo.hwrev[i]);

		fact(a, "product matrix: revision %s rule \"%s\" admits %s",
		     p->wo.hwrev[i], hw ? hw->rule : "?",
		     p->wo.fw_version_str);
	}
	if (pm->n_device_ca)
		fact(a, "product matrix: device authenticity: %u device CA(s), "
		     "every device proves a factory key before OFFER",
		     pm->n_device_ca);
	fact(a, "work order: credential_mode %s",
	     kj_cred_mode_name(p->wo.cred_mode));
	return 0;
}

/* transport.pem must be the certificate of the key the HSM holds. */
static int transport(const struct kj_preflight_args *a, struct kj_preflight *p)
{
	const char *state = a->state_dir ? a->state_dir : "./kinject-state";
	char path[4096];
	uint8_t point[133], *cert_pt = NULL;
	size_t plen, clen;
	EVP_PKEY *pk;
	int rc;

	if (a->transport_cert) {
		snprintf(path, sizeof(path), "%s", a->transport_cert);
	} else {
		snprintf(path, sizeof(path), "%s/transport.pem", state);
		if (access(path, F_OK) != 0) {
			fact(a, "transport certificate: none (%s missing); "
				"trying every key-agreement recipient", path);
			return 0;
		}
	}
	KJ_TRY(kj_cert_load(path, &p->transport_cert));
	pk = X509_get0_pubkey(p->transport_cert);
	clen = pk ? EVP_PKEY_get1_encoded_public_key(pk, &cert_pt) : 0;
	rc = kj_hsm_public_point(p->hsm, point, sizeof(point), &plen);
	if (rc == 0 && (clen != plen || memcmp(cert_pt, point, plen))) {
		kj_err("%s: its public key is not the HSM's transport key (%s)",
		       path, kj_hsm_uri(p->hsm));
		rc = -EPERM;
	} else if (rc == 0) {
		fact(a, "transport certificate %s: matches the HSM key", path);
	}
	OPENSSL_free(cert_pt);
	return rc;
}

/* Arena bytes: both plaintexts, and the credential table built from them. */
static size_t arena_size(const struct kj_preflight_args *a,
			 const struct kj_preflight *p, size_t fw_cms,
			 size_t creds_cms)
{
	size_t n = a->max_connections ? a->max_connections : 4096;

	return fw_cms + 4 * creds_cms + (1u << 20) +
	       (p->wo.cred_mode == KJ_CRED_ISSUE ?
		(n + KJ_ISSUE_POOL_EXTRA) * KJ_ISSUE_BLOB_MAX : 0);
}

/* credential_mode issue: no keys in the batch, the CA's key in the HSM. */
static int issue_mode(const struct kj_preflight_args *a,
		      struct kj_preflight *p)
{
	const char *state = a->state_dir ? a->state_dir : "./kinject-state";

	if (p->wo.cred_mode != KJ_CRED_ISSUE)
		return 0;
	if (p->creds.n_keys) {
		kj_err("%s: %zu credentials carry a private key, but work "
		       "order %s says credential_mode issue (the key stays "
		       "on the chip): use inject, or a batch without keys",
		       a->credentials, p->creds.n_keys, p->wo.id);
		return -EINVAL;
	}
	KJ_TRY(kj_issuer_load(state, p->hsm, &p->issuer));
	fact(a, "issuing CA %s: its key is in the HSM", p->issuer.path);
	return 0;
}

static int firmware(const struct kj_preflight_args *a, struct kj_preflight *p,
		    const struct kj_ecdh_key *key, const uint8_t *der,
		    size_t len)
{
	const uint8_t *plain;
	size_t plain_len;
	uint8_t dig[32];
	char hex[65];

	KJ_TRY(kj_cms_open_envelope(key, der, len, a->firmware, &p->arena,
				    &plain, &plain_len));
	KJ_TRY(kj_cms_verify_signed(plain, plain_len, p->release_cert,
				    a->firmware, &p->fw, &p->fw_len));
	kj_sha256(p->fw, p->fw_len, dig);
	kj_hex_encode(dig, sizeof(dig), hex);
	if (CRYPTO_memcmp(dig, p->wo.fw_sha256, sizeof(dig))) {
		kj_err("%s: firmware SHA-256 %s differs from the work order's "
		       "firmware.sha256 (%s)", a->firmware, hex, a->work_order);
		p->fw = NULL;
		return -EBADMSG;
	}
	fact(a, "firmware %s: AES-GCM tag OK, signature OK, %zu bytes, "
		"sha256 %s = work order", a->firmware, p->fw_len, hex);
	return 0;
}

static int credentials(const struct kj_preflight_args *a,
		       struct kj_preflight *p, const struct kj_ecdh_key *key,
		       const uint8_t *der, size_t len)
{
	const uint8_t *plain, *text;
	size_t plain_len, text_len;
	const struct kj_cred_table *t;
	int rc;

	KJ_TRY(kj_cms_open_envelope(key, der, len, a->credentials, &p->arena,
				    &plain, &plain_len));
	rc = kj_cms_verify_signed(plain, plain_len, p->release_cert,
				  a->credentials, &text, &text_len);
	if (rc == 0)
		rc = kj_creds_parse(&p->arena, text, text_len, a->credentials,
				    &p->creds);
	/* The JSON text is no longer needed: only the blobs stay. */
	explicit_bzero((void *)plain, plain_len);
	if (rc < 0)
		return rc;
	t = p->creds.table;
	if (!p->creds.count) {
		kj_err("%s: the credential batch is empty", a->credentials);
		return -EINVAL;
	}
	p->first_index = t->cred[0].index;
	p->last_index = t->cred[p->creds.count - 1].index;
	if (p->creds.count < p->wo.quantity) {
		kj_err("%s: %zu credentials, fewer than the work order's "
		       "quantity %llu", a->credentials, p->creds.count,
		       (unsigned long long)p->wo.quantity);
		return -EINVAL;
	}
	if (p->creds.count < p->wo.quantity + p->wo.max_failed)
		kj_warn("%s: %zu credentials for quantity %llu: the job "
			"cannot reach its quantity after %llu failed devices "
			"(each burns a credential), max_failed is %llu",
			a->credentials, p->creds.count,
			(unsigned long long)p->wo.quantity,
			(unsigned long long)(p->creds.count - p->wo.quantity),
			(unsigned long long)p->wo.max_failed);
	fact(a, "credentials %s: AES-GCM tag OK, signature OK, %zu lines, "
		"indexes %llu..%llu unique, %zu with a private key",
	     a->credentials, p->creds.count,
	     (unsigned long long)p->first_index,
	     (unsigned long long)p->last_index, p->creds.n_keys);
	return 0;
}

static int secrets(const struct kj_preflight_args *a, struct kj_preflight *p)
{
	uint8_t *fw_der = NULL, *cr_der = NULL;
	size_t fw_len, cr_len;
	struct kj_ecdh_key key;
	int rc;

	KJ_TRY_GOTO(rc, kj_read_file(a->firmware, KJ_CMS_FILE_MAX, &fw_der,
				     &fw_len), out);
	KJ_TRY_GOTO(rc, kj_read_file(a->credentials, KJ_CMS_FILE_MAX, &cr_der,
				     &cr_len), out);
	kj_sha256(cr_der, cr_len, p->creds_sha256);
	KJ_TRY_GOTO(rc, kj_hsm_open(&p->hsm, a->hsm_uri, a->pin_source), out);
	KJ_TRY_GOTO(rc, kj_hsm_check_key(p->hsm), out);
	fact(a, "hsm %s: token found, logged in, transport key present",
	     a->hsm_uri);
	KJ_TRY_GOTO(rc, transport(a, p), out);
	KJ_TRY_GOTO(rc, kj_arena_create(&p->arena,
					arena_size(a, p, fw_len, cr_len),
					KJ_ARENA_AUTO), out);
	fact(a, "secret arena: %s, %zu bytes",
	     kj_arena_backend_name(p->arena.backend), p->arena.size);
	kj_hsm_ecdh_key(p->hsm, p->transport_cert, &key);
	KJ_TRY_GOTO(rc, firmware(a, p, &key, fw_der, fw_len), out);
	KJ_TRY_GOTO(rc, credentials(a, p, &key, cr_der, cr_len), out);
	KJ_TRY_GOTO(rc, issue_mode(a, p), out);
	if (a->tls) {
		/* --listen tls: its key must be in this HSM, a site CA
		 * enrolled: refused here, before anything is written. */
		KJ_TRY_GOTO(rc, kj_tls_key_load(a->state_dir ? a->state_dir :
						"./kinject-state", p->hsm,
						&p->tls), out);
		fact(a, "TLS %s: its key is in the HSM, %u site CA(s) "
			"enrolled", p->tls.path, p->tls.n_site_cas);
	}
out:
	free(fw_der);
	free(cr_der);
	return rc;
}

/*
 * Before anything is decrypted, in every command that decrypts (run and
 * check alike): not dumpable (no core, no ptrace by same-uid processes),
 * fatal signals wipe the arena, RLIMIT_MEMLOCK as high as allowed.
 */
static int harden(void)
{
	struct rlimit core0 = { 0, 0 }, memlock;
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 ||
	    setrlimit(RLIMIT_CORE, &core0) < 0) {
		kj_err("pre-flight: cannot make this process non-dumpable: %s",
		       strerror(errno));
		return -errno;
	}
	KJ_TRY(kj_arena_install_signal_wipe());
	/* Without CAP_SYS_RESOURCE only the soft limit can move (up to the
	 * hard one); with CAP_IPC_LOCK the limit does not apply at all. */
	if (setrlimit(RLIMIT_MEMLOCK, &unlimited) < 0 &&
	    (getrlimit(RLIMIT_MEMLOCK, &memlock) < 0 ||
	     (memlock.rlim_cur = memlock.rlim_max,
	      setrlimit(RLIMIT_MEMLOCK, &memlock) < 0)))
		kj_warn("pre-flight: cannot raise RLIMIT_MEMLOCK (%s): large "
			"inputs may not fit in secret memory", strerror(errno));
	return 0;
}

int kj_preflight_run(const struct kj_preflight_args *a, struct kj_preflight *p)
{
	int rc;

	memset(p, 0, sizeof(*p));
	p->arena.fd = -1;
	KJ_TRY(harden());
	KJ_TRY_GOTO(rc, work_order(a, p), fail);
	KJ_TRY_GOTO(rc, product(a, p), fail);
	KJ_TRY_GOTO(rc, secrets(a, p), fail);
	/*
	 * In plain and inject modes the HSM was needed to unwrap the inputs
	 * only: close the session and finalize the module now, so no
	 * logged-in session (nor, with SoftHSM2, the unwrapped token key)
	 * lives on through the job.  Issue mode signs every device's
	 * certificate with the issuing CA's key in the HSM: its session
	 * stays, in the keeper alone (injectors are exec'd without it).
	 * So does a TLS listener's: the keeper signs every handshake's
	 * CertificateVerify with the TLS key in the HSM (docs/TLS.md).
	 */
	if (p->wo.cred_mode != KJ_CRED_ISSUE && !a->tls) {
		kj_hsm_close(p->hsm);
		p->hsm = NULL;
	}
	return 0;
fail:
	kj_preflight_free(p);
	return rc;
}

void kj_preflight_free(struct kj_preflight *p)
{
	if (p->arena.base)
		kj_arena_destroy(&p->arena);
	kj_issuer_free(&p->issuer);
	kj_tls_key_free(&p->tls);
	kj_hsm_close(p->hsm);
	X509_free(p->release_cert);
	X509_free(p->transport_cert);
	if (p->wo.raw)
		kj_work_order_free(&p->wo);
	if (p->pm.raw)
		kj_product_free(&p->pm);
	memset(p, 0, sizeof(*p));
	p->arena.fd = -1;
}
