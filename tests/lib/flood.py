#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Idle connections and a connection flood against a unix socket, for
tests/integration/run_flood.sh (QUALITY.md "Hostile sites").

  flood.py PATH IDLE EXTRA

Opens IDLE connections that never send a byte and prints "idle IDLE" once
the kernel took them all (connect returned), then keeps trying to hold
IDLE + EXTRA open: every connection the appliance closes is replaced, and
a connect the full backlog refuses (EAGAIN) is counted and retried 10 ms
later.  Nothing is ever written.  On SIGTERM prints one JSON line:
connects; refused_at_connect (EAGAIN: the backlog is full); reaped (the
appliance sent its ABORT, then closed) with the ages of those (connect to
EOF, seconds: reaped_age_min, reaped_age_max); over_limit (the ABORT said
"connection limit reached": refused at once over --max-connections) with
over_limit_age_max; refused (closed without a byte) with
refused_age_max; open at the end.
"""
import errno
import json
import os
import resource
import select
import signal
import socket
import sys
import time


def main():
    path, idle, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = idle + extra + 64
    if hard != resource.RLIM_INFINITY and hard < want:
        sys.exit(f"flood.py: RLIMIT_NOFILE hard limit {hard} < {want}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    ep = select.epoll()
    conns = {}  # fd -> [socket, connect time, bytes received]
    st = {"connects": 0, "refused_at_connect": 0, "reaped": 0,
          "over_limit": 0, "refused": 0}
    ages = {"reaped": [], "over_limit": [], "refused": []}
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    announced = False
    backoff_until = 0.0

    def connect_one():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
        except OSError as e:
            s.close()
            if e.errno in (errno.EAGAIN, errno.ECONNREFUSED):
                st["refused_at_connect"] += 1
                return False
            raise
        st["connects"] += 1
        conns[s.fileno()] = [s, time.monotonic(), b""]
        ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
        return True

    while not stop:
        now = time.monotonic()
        target = idle + (extra if announced else 0)
        if now >= backoff_until:
            # At most 512 connects a turn: the flood is steady, not a
            # busy loop that takes a core from the line.
            for _ in range(min(512, target - len(conns))):
                if not connect_one():
                    backoff_until = now + 0.01
                    break
        if not announced and len(conns) >= idle:
            print(f"idle {idle}", flush=True)
            announced = True
        try:
            events = ep.poll(0.01)
        except InterruptedError:
            continue
        for fd, _ in events:
            c = conns.get(fd)
            if c is None:
                continue
            try:
                data = c[0].recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                c[2] = (c[2] + data)[:512]
                continue
            ep.unregister(fd)
            kind = ("refused" if not c[2] else "over_limit"
                    if b"connection limit reached" in c[2] else "reaped")
            st[kind] += 1
            ages[kind].append(time.monotonic() - c[1])
            c[0].close()
            del conns[fd]
    r = ages["reaped"]
    st["reaped_age_min"] = round(min(r), 3) if r else None
    for k, v in ages.items():
        st[k + "_age_max"] = round(max(v), 3) if v else None
    st["open"] = len(conns)
    print(json.dumps(st), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
