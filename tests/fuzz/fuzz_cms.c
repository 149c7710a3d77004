// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target for der.c and cms.c/cms_signed.c: the AuthEnvelopedData
 * walker and decryption (with a fixed software key, so the seeds in
 * tests/fuzz/corpus/cms/ reach the KDF, unwrap, GCM and the inner
 * SignedData), the attached SignedData splitter and the detached signature
 * check.  The key below is a throw-away fuzzing key, nothing else.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "base/log.h"
#include "inputs/cms.h"
#include "secret/arena.h"

static const char key_pem[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgKAgXRtUWKjrWHRyZ\n"
	"c6Z5LycIwPiws1AsbA3O8ej9nVKhRANCAAScOyr1+U38Ap9ts3tJ6i5oNDwwfEQW\n"
	"qDq6wkWfy4gTy8/7KOmjB0OlUBfaj3SXedVwGBsTa6tbST+2GWIkRxb4\n"
	"-----END PRIVATE KEY-----\n";
static const char cert_pem[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBdDCCARugAwIBAgIUOqoMlwBvgV5RDnmHh9TJJD/wKvkwCgYIKoZIzj0EAwIw\n"
	"DzENMAsGA1UEAwwEZnV6ejAgFw0yNjExMjQwNTI0MjNaGA8yMTI2MTAzMTA1MjQy\n"
	"M1owDzENMAsGA1UEAwwEZnV6ejBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABJw7\n"
	"KvX5TfwCn22ze0nqLmg0PDB8RBaoOrrCRZ/LiBPLz/so6aMHQ6VQF9qPdJd51XAY\n"
	"GxNrq1tJP7YZYiRHFvijUzBRMB0GA1UdDgQWBBQ6KLrvGvF1JLRCrStvyckcqpnP\n"
	"2zAfBgNVHSMEGDAWgBQ6KLrvGvF1JLRCrStvyckcqpnP2zAPBgNVHRMBAf8EBTAD\n"
	"AQH/MAoGCCqGSM49BAMCA0cAMEQCIF+J95ol1YYaIFH2fkb8t0leFDsIWweXPMi1\n"
	"suuAlJCyAiAtwlQuMH1K7Hoid7/7EXB5lp3aP2wvcwjDqjdA4Q8W2w==\n"
	"-----END CERTIFICATE-----\n";

static struct kj_arena arena;
static EVP_PKEY *pkey;
static X509 *cert;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	BIO *b;

	(void)argc;
	(void)argv;
	b = BIO_new_mem_buf(key_pem, -1);
	pkey = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	b = BIO_new_mem_buf(cert_pem, -1);
	cert = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!pkey || !cert || kj_arena_create(&arena, 1 << 20, KJ_ARENA_AUTO))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *plain, *content;
	size_t plen, clen;
	struct kj_ecdh_key key;

	if (size > (1 << 18))
		return 0;
	kj_arena_wipe(&arena);
	/* With the certificate (recipient matching) and without (trial). */
	kj_cms_sw_ecdh_key(pkey, size & 1 ? cert : NULL, &key);
	if (kj_cms_open_envelope(&key, data, size, "fuzz", &arena, &plain,
				 &plen) == 0 &&
	    kj_cms_verify_signed(plain, plen, cert, "fuzz", &content,
				 &clen) == 0 &&
	    (content < plain || content + clen > plain + plen))
		abort();
	if (kj_cms_verify_signed(data, size, cert, "fuzz", &content,
				 &clen) == 0 &&
	    (content < data || content + clen > data + size))
		abort();
	(void)kj_cms_verify_detached((const uint8_t *)"abc", 3, data, size,
				     cert, "fuzz");
	return 0;
}
