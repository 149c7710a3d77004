# SPDX-License-Identifier: Apache-2.0
# --listen tls: served by a real job (docs/TLS.md, PROTOCOL.md "TLS"):
# the key ceremony's TLS key in SoftHSM2, a site CA enrolled by the
# officers, site certificates made with openssl.  `kinject sim --connect
# tls:' commits every device over TLS 1.3 and `kinject verify' passes;
# meanwhile a site certificate of another CA, an expired one and a TLS 1.2
# client are refused in the handshake and counted (summary tls.refused,
# the log names each reason), a certificate whose CN is not the HELLO's
# site_id gets ABORT UNAUTHORIZED, recorded; the summary and the log say
# which record layer ran (kTLS or user space).
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"

N=40
kj_job_setup $N 65536
S=$KJ_STATE

# Site CAs: line1's is enrolled by two officers, "other" never is.
ca() {
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -keyout "$T/$1.key" -subj "/O=site/CN=$1 CA" \
		-days 30 -out "$T/$1.pem" 2>/dev/null || fail "CA $1"
}
ca line1
ca other
"$KINJECT" ceremony request enrol-site-ca --state "$S" --name line1 \
	--cert "$T/line1.pem" --out "$T/site.req" >/dev/null ||
	fail "request enrol-site-ca"
kj_sign_apply "$S" "$T/site.req" "$T/officers" 2 >/dev/null ||
	fail "enrol-site-ca apply"

# site NAME CN CA [DAYS]: a client certificate for a site.
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' \
	>"$T/client.ext"
site() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$T/$1.key" -subj "/O=site/CN=$2" -out "$T/$1.csr" \
		2>/dev/null &&
	openssl x509 -req -in "$T/$1.csr" -CA "$T/$3.pem" -CAkey "$T/$3.key" \
		-CAcreateserial -days "${4:-30}" -extfile "$T/client.ext" \
		-out "$T/$1.pem" 2>/dev/null || fail "site certificate $1"
}
site honest line1-a line1
site rogue line1-a other
site mismatch line1-b line1
# Expired: valid yesterday for one day (openssl ca sets the dates).
mkdir -p "$T/ca"
: >"$T/ca/index.txt"
cat >"$T/ca.cnf" <<EOF
[ca]
default_ca = c
[c]
database = $T/ca/index.txt
new_certs_dir = $T/ca
serial = $T/ca/serial
default_md = sha256
policy = p
copy_extensions = none
x509_extensions = ext
[p]
commonName = supplied
organizationName = optional
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
EOF
echo 01 >"$T/ca/serial"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout "$T/expired.key" -subj "/O=site/CN=line1-a" \
	-out "$T/expired.csr" 2>/dev/null || fail "expired csr"
openssl ca -batch -config "$T/ca.cnf" -cert "$T/line1.pem" \
	-keyfile "$T/line1.key" -in "$T/expired.csr" -out "$T/expired.pem" \
	-startdate "$(date -u -d '-3 days' +%Y%m%d%H%M%SZ)" \
	-enddate "$(date -u -d '-2 days' +%Y%m%d%H%M%SZ)" >/dev/null 2>&1 ||
	fail "expired certificate"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
kj_run_bg --listen "tls:127.0.0.1:$PORT" --json-summary "$T/run.json" \
	--hello-timeout 20
kj_wait_listen
tsim() { # NAME CERT ARGS...: kinject sim over TLS as site line1-a
	local name=$1 cert=$2; shift 2
	"$KINJECT" sim --connect "tls:127.0.0.1:$PORT" --cert "$T/$cert.pem" \
		--key "$T/$cert.key" --ca "$S/tls.pem" --site line1-a \
		--hwrev B --json-summary "$T/$name.json" "$@" \
		>"$T/$name.out" 2>&1
}

# Refused in the handshake: another CA, expired, TLS 1.2.
for c in rogue expired; do
	rc=0; tsim "$c" "$c" --sockets 1 --devices 1 || rc=$?
	[ "$rc" -ne 0 ] || fail "$c: the sim was served: $(cat "$T/$c.out")"
	[ "$(jq .errors.tls "$T/$c.json")" -ge 1 ] ||
		fail "$c: no TLS error at the site: $(cat "$T/$c.json")"
done
rc=0
openssl s_client -connect "127.0.0.1:$PORT" -tls1_2 -alpn kinject/1 \
	-cert "$T/honest.pem" -key "$T/honest.key" -CAfile "$S/tls.pem" \
	</dev/null >"$T/tls12.out" 2>&1 || rc=$?
grep -q 'Cipher is (NONE)\|alert protocol version\|no protocols available' \
	"$T/tls12.out" || fail "TLS 1.2 was not refused: $(cat "$T/tls12.out")"
echo "ok: another CA, an expired certificate and TLS 1.2 refused"

# The CN is line1-b, the HELLO says line1-a: UNAUTHORIZED, recorded.
rc=0; tsim mismatch mismatch --sockets 1 --devices 1 \
	--expect unauthorized || rc=$?
[ "$rc" -eq 3 ] || fail "CN mismatch: exit $rc: $(cat "$T/mismatch.out")"
[ "$(jq .aborts_received.unauthorized "$T/mismatch.json")" -ge 1 ] ||
	fail "CN mismatch: $(cat "$T/mismatch.json")"
echo "ok: a CN that is not the HELLO's site_id gets UNAUTHORIZED"

# Not TLS at all, and a connection that never starts its handshake: the
# first is refused at once, the second must not hold the job's end up
# (its HELLO limit is 20 s; the job ends by closing it).
exec 3<>"/dev/tcp/127.0.0.1/$PORT" || fail "connect"
exec 4<>"/dev/tcp/127.0.0.1/$PORT" || fail "connect"
printf 'GET / HTTP/1.0\r\n\r\n' >&3
t0=$(date +%s)

# The honest line: every device over TLS 1.3.
rc=0; tsim honest honest --sockets 8 --devices $N || rc=$?
[ "$rc" -eq 0 ] || fail "honest sim exit $rc: $(cat "$T/honest.out")"
rc=0; wait "$KJ_RUN_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "run exit $rc: $(tail -20 "$T/run.err")"
[ $(($(date +%s) - t0)) -lt 15 ] ||
	fail "the job waited for the idle handshake's HELLO limit"
exec 3>&- 4>&-
cat "$T/run.out"
jq -e ".ok == $N" "$T/run.json" >/dev/null ||
	fail "run summary: $(cat "$T/run.json")"
echo "ok: $N devices committed over TLS 1.3"

# Counted and logged: four handshakes refused (not TLS at all too), each reason named; the
# CN mismatch is a record; the record layer is named.
[ "$(jq .tls.refused "$T/run.json")" -ge 4 ] ||
	fail "tls.refused: $(jq -c .tls "$T/run.json")"
for why in 'unable to get local issuer certificate' \
	'certificate has expired' 'TLS 1.3' 'wrong version number\|not TLS\|handshake failed'; do
	grep -q "TLS handshake refused: .*$why" "$T/run.err" ||
		fail "no refusal naming \`$why' in the log: $(grep TLS "$T/run.err")"
done
[ "$(jq .results.unauthorized "$T/run.json")" -ge 1 ] ||
	fail "unauthorized not recorded: $(jq -c .results "$T/run.json")"
[ "$(kj_sql "select count(*) from records where result = 'unauthorized'")" -ge 1 ] ||
	fail "no unauthorized record in the journal"
ktls=$(jq .tls.ktls "$T/run.json")
user=$(jq .tls.user_space "$T/run.json")
[ $((ktls + user)) -ge 9 ] || fail "handshakes: $(jq -c .tls "$T/run.json")"
if [ "$ktls" -gt 0 ]; then layer='in the kernel (kTLS)'; else layer='in user space'; fi
grep -q "TLS 1.3 with site line1-.: records $layer" "$T/run.err" ||
	fail "the log does not say the record layer: $(grep TLS "$T/run.err")"
grep -q "TLS: .*records" "$T/run.out" || fail "summary: $(cat "$T/run.out")"
[ "$(jq .tls.signed "$T/run.json")" -ge 9 ] ||
	fail "handshake signatures: $(jq -c .tls "$T/run.json")"
echo "ok: refusals counted and named; records $layer ($ktls kTLS, $user user space)"

job=$(jq -r .id "$T/in/WO.json")
"$KINJECT" evidence export --state "$S" --job "$job" --out "$T/ev.json" \
	>/dev/null 2>&1 || fail "evidence export"
"$KINJECT" verify "$T/ev.json" --ak "$S/ak.pem" >"$T/v.out" 2>&1 ||
	fail "verify: $(cat "$T/v.out")"
echo "ok: kinject verify passes"
echo "run_tls ok"
