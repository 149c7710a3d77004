# SPDX-License-Identifier: Apache-2.0
# PROTOCOL.md: a site that breaks the protocol after a valid HELLO (a second
# HELLO where READBACK belongs) gets ABORT PROTOCOL, its connection is
# closed, and the attempt is recorded with result `protocol' (the
# credential burned); the rest of the line is not disturbed.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 40 2048

kj_run_bg
kj_wait_listen
/usr/bin/python3 - "$KJ_SOCK" >"$T/site.out" <<'PY' || fail "scripted site: $(cat "$T/site.out")"
import socket, struct, sys

def frame(t, body):
    return struct.pack(">IB", len(body) + 1, t) + body

def hello(uid):
    s = b"rogue-line"
    return frame(1, bytes([1, len(s)]) + s + struct.pack(">H", 7) +
                 struct.pack(">H", len(uid)) + uid + b"\x01B" + b"\x00\x00")

def read_frame(c):
    hdr = b""
    while len(hdr) < 5:
        d = c.recv(5 - len(hdr))
        if not d:
            return None, None
        hdr += d
    n, t = struct.unpack(">IB", hdr)
    body = b""
    while len(body) < n - 1:
        d = c.recv(n - 1 - len(body))
        if not d:
            return None, None
        body += d
    return t, body

c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(sys.argv[1])
c.sendall(hello(b"\xde\xad\xbe\xef\x00\x01"))
t, _ = read_frame(c)
assert t == 2, "expected OFFER, got %r" % t
while True:                 # the DATA frames of this device
    t, body = read_frame(c)
    if t != 3:
        break
    if body[0] == 1 and len(body) > 5:
        # credential stream seen: now break the order
        c.sendall(hello(b"\xde\xad\xbe\xef\x00\x02"))
while t == 3:
    t, body = read_frame(c)
assert t == 6, "expected ABORT, got %r" % t
code = struct.unpack(">H", body[:2])[0]
assert code == 1, "expected ABORT PROTOCOL (1), got %d" % code
t, _ = read_frame(c)
assert t is None, "connection not closed after ABORT PROTOCOL"
print("ABORT PROTOCOL, closed")
PY
kj_sim --hwrev B --sockets 8 --devices 0 >/dev/null 2>&1 || true
wait "$KJ_RUN_PID" || fail "run exit $?"
r=$(kj_sql "select result, cred_index is not null from records where uid=x'deadbeef0001'")
[ "$r" = "protocol|1" ] || fail "the broken attempt was recorded as '$r', want protocol with its credential"
[ "$(kj_sql "select count(*) from records where result='ok'")" = 40 ] || fail "line disturbed"
echo "run_protocol ok"
