#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A TLS 1.3 site that misbehaves on purpose, for the `--listen tls:'
tests (tests/integration/run_tls_idle.sh, run_tls_hello.sh; docs/TLS.md).
`kinject sim' is an honest site; this one holds connections idle after
their handshake, or handshakes late and sends its HELLO later still.

  tls_site.py idle HOST PORT CERT KEY CA N
      N connections, at most 64 handshakes at a time, each finished and
      then idle: no HELLO.  Prints "idle N" once all are up and the
      appliance has read every byte they sent (its side of each
      connection on PORT has an empty receive queue: it processed the
      client's Finished), then waits for stdin to close and prints one
      JSON line: {"open": connections the appliance has not closed}.

  tls_site.py slow-hello HOST PORT CERT KEY CA SITE HWREV HS_AT HELLO_AT
      One connection: TCP connect at t = 0, the TLS handshake started at
      HS_AT seconds, HELLO sent at HELLO_AT seconds unless the appliance
      spoke or closed first.  Prints one JSON line: handshake (t when it
      finished, or null: refused), hello_sent (t, or null), first (the
      first frame's type, or null), code (an ABORT's code), at (t when
      that frame or the close came), eof (the appliance closed).
"""
import json
import resource
import select
import socket
import ssl
import struct
import sys
import time


def context(cert, key, ca):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # the appliance is pinned by its key
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["kinject/1"])
    return ctx


def handshake_all(ctx, host, port, n):
    """n finished handshakes, 64 in flight at a time (non-blocking)."""
    done, pending, started = [], {}, 0
    ep = select.epoll()
    while len(done) < n:
        while started < n and len(pending) < 64:
            s = socket.create_connection((host, port), timeout=60)
            s.setblocking(False)
            t = ctx.wrap_socket(s, do_handshake_on_connect=False)
            pending[t.fileno()] = t
            ep.register(t.fileno(), select.EPOLLIN | select.EPOLLOUT)
            started += 1
        ready = ep.poll(60)
        if not ready:
            sys.exit(f"tls_site.py: handshakes stalled at {len(done)}/{n}")
        for fd, _ in ready:
            t = pending[fd]
            try:
                t.do_handshake()
            except ssl.SSLWantReadError:
                ep.modify(fd, select.EPOLLIN)
                continue
            except ssl.SSLWantWriteError:
                ep.modify(fd, select.EPOLLOUT)
                continue
            ep.unregister(fd)
            del pending[fd]
            done.append(t)
    ep.close()
    return done


def server_side(port):
    """(established, with unread bytes) of the sockets bound to :port."""
    est = unread = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(name).read().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            f = ln.split()
            if int(f[1].rsplit(":", 1)[1], 16) != port or f[3] != "01":
                continue
            est += 1
            unread += int(f[4].split(":")[1], 16) > 0
    return est, unread


def idle(host, port, cert, key, ca, n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = int(n) + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    conns = handshake_all(context(cert, key, ca), host, int(port), int(n))
    # The appliance finished a handshake when it read the client's last
    # flight: wait (60 s at most) until nothing is left unread.
    for _ in range(600):
        est, unread = server_side(int(port))
        if est >= len(conns) and not unread:
            break
        time.sleep(0.1)
    else:
        sys.exit(f"tls_site.py: the appliance left bytes unread: {est} "
                 f"established, {unread} with bytes queued")
    print(f"idle {len(conns)}", flush=True)
    sys.stdin.read()
    still = 0
    for t in conns:
        r, _, _ = select.select([t], [], [], 0)
        if not r:
            still += 1  # no alert, no EOF: still open
    print(json.dumps({"open": still}), flush=True)


def hello_frame(site, hwrev):
    s, h, uid = site.encode(), hwrev.encode(), b"slow-hello-uid"
    body = (struct.pack(">BB", 1, len(s)) + s + struct.pack(">HH", 0, len(uid))
            + uid + struct.pack(">B", len(h)) + h + struct.pack(">H", 0))
    return struct.pack(">IB", len(body) + 1, 0x01) + body


def read_frame(t):
    """One whole frame (type, body) from t, or None at EOF."""
    buf = b""
    while True:
        if len(buf) >= 4:
            n = struct.unpack(">I", buf[:4])[0]
            if len(buf) >= 4 + n:
                return buf[4], buf[5:4 + n]
        try:
            chunk = t.recv(65536)
        except (ConnectionError, ssl.SSLError):
            return None
        if not chunk:
            return None
        buf += chunk


def slow_hello(host, port, cert, key, ca, site, hwrev, hs_at, hello_at):
    res = {"handshake": None, "hello_sent": None, "first": None,
           "code": None, "at": None, "eof": False}
    t0 = time.monotonic()
    s = socket.create_connection((host, int(port)), timeout=120)
    time.sleep(max(0.0, float(hs_at) - (time.monotonic() - t0)))
    try:
        t = context(cert, key, ca).wrap_socket(s)
    except (OSError, ssl.SSLError):
        res["at"] = round(time.monotonic() - t0, 3)
        print(json.dumps(res), flush=True)
        return
    res["handshake"] = round(time.monotonic() - t0, 3)
    # Wait for HELLO_AT, watching for the appliance speaking first.
    left = float(hello_at) - (time.monotonic() - t0)
    early = left > 0 and (t.pending() or select.select([t], [], [], left)[0])
    if not early:
        try:
            t.sendall(hello_frame(site, hwrev))
            res["hello_sent"] = round(time.monotonic() - t0, 3)
        except (OSError, ssl.SSLError):
            pass
    f = read_frame(t)
    res["at"] = round(time.monotonic() - t0, 3)
    if f is None:
        res["eof"] = True
    else:
        res["first"] = f[0]
        if f[0] == 0x06 and len(f[1]) >= 2:
            res["code"] = struct.unpack(">H", f[1][:2])[0]
        res["eof"] = read_frame(t) is None if f[0] == 0x06 else False
    print(json.dumps(res), flush=True)


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "idle" and len(args) == 6:
        idle(*args)
    elif mode == "slow-hello" and len(args) == 9:
        slow_hello(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
