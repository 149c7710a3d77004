# SPDX-License-Identifier: Apache-2.0
# Device authenticity and the inject credential mode (PROTOCOL.md), end to
# end with SoftHSM2, swtpm and kinject sim:
#  - the product matrix names a test device CA; honest devices (a factory
#    certificate from it, PROOF signed on the "chip") COMMIT, counterfeits
#    (a rogue CA's certificate, or the right certificate with the wrong
#    key's signature) get ABORT COUNTERFEIT, are recorded `counterfeit' and
#    do not count against max_failed;
#  - the work order says "credential_mode": "inject": every cred_blob is
#    sealed to the HELLO's device_pubkey and the sim opens and checks each
#    with its device key; the credential plaintext never crosses the socket;
#  - a HELLO without device_pubkey in that job: ABORT PROTOCOL with a
#    message that says why, recorded;
#  - no usable PROOF: the site ABORTs the CHALLENGE (no answer, the
#    connection stays usable), a malformed PROOF or none within the
#    programming limit (ABORT COUNTERFEIT, closed), the site leaves: each
#    recorded `counterfeit';
#  - the evidence bundle with the counterfeit records verifies.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/softhsm.sh"
. "$KJ_TESTS/lib/inputs.sh"
. "$KJ_TESTS/lib/swtpm.sh"
. "$KJ_TESTS/lib/ceremony.sh"

QTY=40
C=$T/in
mkdir -p "$C"
kj_swtpm_start "$T/tpm" >/dev/null || fail "swtpm"
kj_appliance_setup "$T/state" "$C" || fail "key ceremony"
# The silicon vendor's factory CA (a test one).
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$T/devca.key" -subj "/CN=test device CA" -days 30 \
	-out "$T/devca.pem" 2>/dev/null || fail "device CA"
devca=$(openssl x509 -in "$T/devca.pem" -outform DER | base64 -w0)
KJ_FW_SIZE=20000 KJ_CREDS_N=$((QTY + 100)) KJ_WO_QTY=$QTY \
	KJ_WO_EXTRA='"credential_mode": "inject"' \
	KJ_PRODUCT_EXTRA="\"device_ca\": [\"$devca\"]" \
	kj_inputs_all "$C" "$T/state/transport.pem" >/dev/null ||
	fail "making inputs"

"$KINJECT" run --state "$T/state" --operator test \
	--work-order "$C/WO.json" --work-order-sig "$C/WO.json.sig" \
	--product "$C/product.json" --product-sig "$C/product.json.sig" \
	--firmware "$C/FW.cms" --credentials "$C/CREDS.cms" \
	--hsm "$KJ_HSM_URI_P11KIT" --pin-source "$KJ_HSM_PIN_SOURCE" \
	--tpm "$KJ_SWTPM_TCTI" --listen "unix:$T/line.sock" \
	--hello-timeout 10 --program-timeout 3 --checkpoint-interval 50 \
	--json-summary "$T/run.json" >"$T/run.out" 2>"$T/run.err" &
run_pid=$!
kj_track_pid $run_pid
for _ in $(seq 300); do [ -S "$T/line.sock" ] && break; sleep 0.1; done
[ -S "$T/line.sock" ] || fail "no listener: $(cat "$T/run.err")"

# A HELLO without device_pubkey: ABORT PROTOCOL, saying why.
python3 - "$T/line.sock" >"$T/nokey.out" <<'PY' || fail "no-key HELLO: $(cat "$T/nokey.out")"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(sys.argv[1])
uid = b"\xee" * 16
body = (b"\x01" + bytes([5]) + b"line1" + struct.pack(">H", 900) +
        struct.pack(">H", len(uid)) + uid + b"\x01B" + struct.pack(">H", 0))
s.sendall(struct.pack(">IB", len(body) + 1, 1) + body)
buf = b""
while len(buf) < 5 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
    d = s.recv(4096)
    if not d:
        sys.exit("closed without an answer")
    buf += d
n, t = struct.unpack(">IB", buf[:5])
code = struct.unpack(">H", buf[5:7])[0]
msg = buf[8:4 + n].decode()
print(t, code, msg)
sys.exit(0 if t == 6 and code == 1 and "device_pubkey" in msg else 1)
PY
echo "ok: HELLO without device_pubkey: $(cat "$T/nokey.out")"

# No usable PROOF, four ways (a real P-256 point: inject mode checks it).
pub=$(openssl ecparam -genkey -name prime256v1 2>/dev/null |
	openssl ec -pubout -outform DER 2>/dev/null | tail -c 65 | xxd -p | tr -d '\n')
python3 - "$T/line.sock" "$pub" >"$T/noproof.out" 2>&1 <<'PY' ||
import socket, struct, sys, time
path, pub = sys.argv[1], bytes.fromhex(sys.argv[2])
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    return s
def hello(s, n):
    uid = bytes([0xd0, n]) * 8
    body = (b"\x01" + bytes([5]) + b"line1" + struct.pack(">H", 910 + n) +
            struct.pack(">H", len(uid)) + uid + b"\x01B" +
            struct.pack(">H", 65) + pub)
    s.sendall(struct.pack(">IB", len(body) + 1, 1) + body)
def frame(s):
    buf = b""
    while len(buf) < 5 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
        d = s.recv(1)
        if not d:
            return None
        buf += d
    return buf[4], buf[5:]
def expect(s, t, what):
    f = frame(s)
    if not f or f[0] != t:
        sys.exit("%s: got %r" % (what, f))
    return f[1]
s = conn()
hello(s, 1)
expect(s, 7, "CHALLENGE 1")
ab = b"\x00\x07\x00"   # the site ABORTs (INTERNAL, no message)
s.sendall(struct.pack(">IB", 4, 6) + ab)
hello(s, 2)            # same connection: still usable, no frame between
expect(s, 7, "CHALLENGE 2 (after the site's ABORT)")
bad = struct.pack(">H", 0) + b"\x00" * 64   # certificate length 0
s.sendall(struct.pack(">IB", len(bad) + 1, 8) + bad)
b = expect(s, 6, "ABORT after a malformed PROOF")
if struct.unpack(">H", b[:2])[0] != 10:
    sys.exit("malformed PROOF: ABORT code %d" % struct.unpack(">H", b[:2])[0])
if frame(s) is not None:
    sys.exit("not closed after a malformed PROOF")
s = conn()
hello(s, 3)
expect(s, 7, "CHALLENGE 3")
t0 = time.time()
b = expect(s, 6, "ABORT when no PROOF came")
if struct.unpack(">H", b[:2])[0] != 10 or time.time() - t0 < 2:
    sys.exit("no PROOF: %r after %.1f s" % (b, time.time() - t0))
s = conn()
hello(s, 4)
expect(s, 7, "CHALLENGE 4")
s.close()              # the site leaves
print("site abort, malformed, timeout, disconnect: answered")
PY
	fail "no usable PROOF: $(cat "$T/noproof.out")"
echo "ok: $(cat "$T/noproof.out")"

rc=0
"$KINJECT" sim --connect "unix:$T/line.sock" --hwrev B --site line1 \
	--sockets 8 --devices $QTY --counterfeit-rate 0.25 \
	--device-ca "$T/devca.pem" --device-ca-key "$T/devca.key" \
	--cred-mode inject --timeout 120 --json-summary "$T/line.json" \
	--device-log "$T/dev.jsonl" >"$T/line.out" 2>&1 || rc=$?
cat "$T/line.out"
[ "$rc" -eq 0 ] || fail "sim exit $rc: $(cat "$T/line.out")"
num() { sed -n "s/.*\"$2\":\\([0-9]*\\).*/\\1/p" "$1"; }
cf=$(num "$T/line.json" counterfeit)
[ "$cf" -ge 3 ] || fail "too few counterfeits drawn ($cf): $(cat "$T/line.json")"
grep -q '"unexpected":0,' "$T/line.json" || fail "sim: $(cat "$T/line.json")"
[ "$(num "$T/line.json" creds_opened)" -eq $QTY ] ||
	fail "inject blobs opened: $(cat "$T/line.json")"
grep -qF "\"counterfeit\":$cf}" "$T/line.json" ||
	fail "ABORT COUNTERFEIT received != counterfeits: $(cat "$T/line.json")"
echo "ok: $QTY honest devices COMMITted with sealed credentials, $cf counterfeits refused"

rc=0; wait $run_pid || rc=$?
[ "$rc" -eq 0 ] || fail "kinject run exit $rc: $(cat "$T/run.err")"
grep -qF "\"ok\":$QTY," "$T/run.json" || fail "run summary: $(cat "$T/run.json")"
grep -qF "\"counterfeit\":$((cf + 4))" "$T/run.json" ||
	fail "run summary: $(cat "$T/run.json")"
grep -qF '"failed_after_offer":0,' "$T/run.json" ||
	fail "counterfeits counted against max_failed: $(cat "$T/run.json")"

"$KINJECT" audit export --state "$T/state" --format json --out "$T/rec.json" \
	2>/dev/null || fail "audit export"
n() { grep -c "\"kind\":\"device\".*\"result\":\"$1\"" "$T/rec.json" || true; }
[ "$(n ok)" -eq $QTY ] || fail "ok records $(n ok)"
[ "$(n counterfeit)" -eq $((cf + 4)) ] ||
	fail "counterfeit records $(n counterfeit), want $cf + 4"
[ "$(n protocol)" -eq 1 ] || fail "protocol records $(n protocol)"
# A counterfeit got nothing: no attempt, no serial, no credential.
if grep '"result":"counterfeit"' "$T/rec.json" | grep -q '"cred_index":[0-9]'; then
	fail "a counterfeit record names a credential"
fi
echo "ok: journal: ok $(n ok), counterfeit $(n counterfeit), protocol $(n protocol)"

"$KINJECT" evidence export --state "$T/state" --job WO-2027-0315 \
	--out "$T/ev.json" 2>"$T/err" || fail "evidence export: $(cat "$T/err")"
"$KINJECT" verify "$T/ev.json" --ak "$T/state/ak.pem" \
	--work-order "$C/WO.json" >"$T/verify.out" 2>&1 ||
	fail "verify: $(cat "$T/verify.out")"
grep -q counterfeit "$T/ev.json" || fail "no counterfeit record in the bundle"
echo "ok: evidence with counterfeit records verifies"
echo "device_auth ok"
