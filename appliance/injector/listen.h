/* SPDX-License-Identifier: Apache-2.0 */
/*
 * --listen unix:PATH | tcp:HOST:PORT | tls:HOST:PORT (SPEC.md §4,
 * PROTOCOL.md).
 *
 * Plain TCP only on loopback: any other TCP address needs TLS 1.3 with
 * client certificates (tls:, docs/TLS.md), so tcp: elsewhere is refused at
 * parse time with an error that says so.  tls: is served on any address;
 * what it needs from the state directory and the HSM is checked by the
 * pre-flight (inputs/tls_key.h) before anything is written.
 *
 * Who binds (docs/ENGINE.md "Listeners"): the keeper creates the listening
 * sockets once, before it forks the first injector, and keeps them only to
 * hand them to injectors (also a fresh one after a crash, so the path and
 * the port never go away and connections in the backlog are not lost).
 * The keeper never accepts on them, never reads or writes a network byte:
 * every connection is accepted by an injector's ring.
 */
#ifndef KINJECT_LISTEN_H
#define KINJECT_LISTEN_H

#include <stdbool.h>
#include <sys/socket.h>

#include "base/kinject.h"

#define KJ_LISTEN_SPEC_MAX 256

struct kj_listen {
	char spec[KJ_LISTEN_SPEC_MAX]; /* as given, for messages */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	bool is_unix;
	bool is_tls;	/* tls:HOST:PORT: TCP with the TLS 1.3 handshake */
};

/*
 * Parse one --listen value.  -EINVAL (logged, quoting spec) for a bad
 * form, a path too long, a bad host or port; -EPERM (logged: "TLS
 * required") for tcp: on a non-loopback address.  HOST is a numeric IPv4
 * or IPv6 address (brackets for IPv6: tcp:[::1]:7000) or "localhost".
 */
KJ_MUST_CHECK int kj_listen_parse(const char *spec, struct kj_listen *out);

/*
 * Create, bind and listen (backlog) one socket, non-blocking, close-on-
 * exec.  unix: a stale socket file at PATH is removed first (anything else
 * there is an error), mode 0660.  Returns the fd or -errno (logged).
 */
KJ_MUST_CHECK int kj_listen_open(const struct kj_listen *l, int backlog);
#define KJ_LISTEN_BACKLOG 4096

/* Close fd; for unix listeners also unlink the path. */
void kj_listen_close(const struct kj_listen *l, int fd);

#endif
