// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer: the user-space TLS 1.3 records (injector/tls_rec.c), the one
 * place after the handshake where a site's bytes are parsed before the
 * frame parser.  Input byte 0, bit 0 clear: the rest is the stream a site
 * sent (headers, lengths, tags as they come).  Set: the rest is chunks
 * (u16be length, bytes) sealed by kj_tls_write with the reader's keys,
 * then an optional u32be position and a byte XORed into the sealed stream
 * there.  A stream read back unchanged must give exactly the chunks'
 * bytes; a changed one must not give other bytes, whatever it gives.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/util.h"
#include "injector/tls_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t seal_chunks(struct kj_tls_conn *w, const uint8_t *p, size_t n,
			  uint8_t *plain, size_t *plain_len)
{
	size_t used = 0;

	while (n - used >= 2) {
		size_t len = kj_get_u16be(p + used), off = 0;

		if (len > n - used - 2)
			break;
		used += 2;
		while (off < len) {
			ssize_t k = kj_tls_write(w, p + used + off, len - off);

			if (k <= 0)
				abort(); /* a file takes every byte */
			off += (size_t)k;
		}
		memcpy(plain + *plain_len, p + used, len);
		*plain_len += len;
		used += len;
	}
	return used;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t secret[32] = { 1, 2, 3 };
	static uint8_t plain[65536], got[65536 + 1024];
	struct kj_tls_conn w = { .fd = -1 }, r = { .fd = -1 };
	size_t plain_len = 0, got_len = 0, used;
	bool sealed = size && (data[0] & 1), changed = false;
	ssize_t k = 1;
	int fd;

	if (!size)
		return 0;
	fd = memfd_create("fuzz_tls_rec", 0);
	if (fd < 0 || kj_tls_traffic_keys(secret, &w.wr) < 0)
		abort();
	r.rd = w.wr; /* the site's write keys are the reader's */
	w.fd = r.fd = fd;
	if (sealed) {
		used = 1 + seal_chunks(&w, data + 1, size - 1, plain,
				       &plain_len);
		off_t end = lseek(fd, 0, SEEK_CUR);

		if (size - used >= 5 && end > 0) {
			uint8_t b;
			off_t at = (off_t)(kj_get_u32be(data + used) %
					   (uint64_t)end);

			if (pread(fd, &b, 1, at) != 1)
				abort();
			b ^= data[used + 4];
			changed = data[used + 4] != 0;
			if (pwrite(fd, &b, 1, at) != 1)
				abort();
		}
	} else if (size > 1 &&
		   write(fd, data + 1, size - 1) != (ssize_t)(size - 1)) {
		abort();
	}
	lseek(fd, 0, SEEK_SET);
	/* At most one byte more than a record holds per read: no overrun. */
	while (k > 0 && got_len + 700 <= sizeof(got)) {
		k = kj_tls_read(&r, got + got_len, 700);
		if (k > 700)
			abort();
		if (k > 0)
			got_len += (size_t)k;
	}
	if (sealed && !changed &&
	    (k != 0 || got_len != plain_len || memcmp(got, plain, got_len)))
		abort();
	/* Changed: GCM lets no altered byte through, at most a prefix. */
	if (sealed && (got_len > plain_len || memcmp(got, plain, got_len)))
		abort();
	kj_tls_rec_free(&r);
	kj_tls_rec_free(&w);
	close(fd);
	return 0;
}
