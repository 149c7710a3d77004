/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the unit test programs (each includes what it uses). */
#ifndef KJ_TESTUTIL_H
#define KJ_TESTUTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

/*
 * Run the formatted text as a bash script written to SCRATCH.sh (the
 * helpers in tests/lib are bash; system() alone would use /bin/sh).
 * Returns what system() returns.
 */
static inline int kj_test_vbash(const char *scratch, const char *fmt,
				va_list ap)
{
	char script[256], cmd[300];
	FILE *f;

	snprintf(script, sizeof(script), "%s.sh", scratch);
	f = fopen(script, "w");
	if (!f)
		return -1;
	vfprintf(f, fmt, ap);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "bash %s", script);
	return system(cmd);
}

/* kj_test_vbash with the arguments inline. */
static inline int __attribute__((format(printf, 2, 3)))
kj_test_bash(const char *scratch, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = kj_test_vbash(scratch, fmt, ap);
	va_end(ap);
	return rc;
}

/* A text file into buf (NUL-terminated, at most cap - 1 bytes); its
 * length, or -1 if it cannot be opened. */
static inline long kj_test_slurp(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
	return (long)n;
}

/* The first line of DIR/NAME into buf, without its newline; -1 if the
 * file cannot be read or is empty. */
static inline int kj_test_read_line(const char *dir, const char *name,
				    char *buf, size_t cap)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (kj_test_slurp(path, buf, cap) <= 0)
		return -1;
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* A self-signed device certificate ("CN=dev", one day) for key k. */
/* Self-signed by k with serial number serial (distinct certificates). */
static inline X509 *kj_test_self_signed_serial(EVP_PKEY *k, long serial)
{
	X509 *x = X509_new();

	if (!x)
		return NULL;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
				   MBSTRING_ASC, (const unsigned char *)"dev",
				   -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, k);
	if (!X509_sign(x, k, EVP_sha256())) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static inline X509 *kj_test_self_signed(EVP_PKEY *k)
{
	return kj_test_self_signed_serial(k, 1);
}

#endif
