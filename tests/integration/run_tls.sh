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
. "$KJ_TESTS/lib/tls.sh"

N=40
kj_job_setup $N 65536
S=$KJ_STATE

PORT=$(kj_free_port)

# Pre-flight, before anything is written: no tls.pem, then no site CA.
preflight_refuses() { # WANT-REGEX
	local rc=0 n
	n=$(kj_sql 'select count(*) from records')
	kj_run --listen "tls:127.0.0.1:$PORT" >/dev/null 2>"$T/err" || rc=$?
	[ "$rc" -eq 1 ] && grep -q "$1" "$T/err" ||
		fail "pre-flight: exit $rc, want \`$1': $(cat "$T/err")"
	[ "$(kj_sql 'select count(*) from records')" = "$n" ] ||
		fail "a refused TLS job wrote records"
}
mv "$S/tls.pem" "$T/tls.pem.away"
preflight_refuses "tls.pem: missing: this appliance has no TLS key"
mv "$T/tls.pem.away" "$S/tls.pem"
preflight_refuses "site-ca: no site CA enrolled.*enrol-site-ca"
echo "ok: the pre-flight names a missing tls.pem and a missing site CA"

# Site CAs: line1's is enrolled by two officers, "other" never is.
kj_tls_ca line1 && kj_tls_ca other || fail "site CAs"
kj_tls_enrol "$S" line1 || fail "enrol-site-ca"
kj_tls_site honest line1-a line1 && kj_tls_site rogue line1-a other &&
	kj_tls_site mismatch line1-b line1 &&
	kj_tls_expired expired line1-a line1 || fail "site certificates"

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

# Refused in the handshake, each reason logged (the log is rate-limited:
# 10 lines in 5 s, and a refused sim retries, so the last one's reason is
# read at the site, from the appliance's alert): not TLS at all, TLS 1.2,
# an expired certificate, another CA.
exec 3<>"/dev/tcp/127.0.0.1/$PORT" || fail "connect"
# OpenSSL refuses on the record header and closes with the rest unread:
# the connection is reset while printf may still be writing.
(printf 'GET / HTTP/1.0\r\n\r\n' >&3) 2>/dev/null || true
IFS= read -r -t 20 reply <&3 || true # the alert, or EOF: refused
exec 3>&-
rc=0
openssl s_client -connect "127.0.0.1:$PORT" -tls1_2 -alpn kinject/1 \
	-cert "$T/honest.pem" -key "$T/honest.key" -CAfile "$S/tls.pem" \
	</dev/null >"$T/tls12.out" 2>&1 || rc=$?
grep -q 'Cipher is (NONE)\|alert protocol version\|no protocols available' \
	"$T/tls12.out" || fail "TLS 1.2 was not refused: $(cat "$T/tls12.out")"
for c in expired rogue; do
	rc=0; tsim "$c" "$c" --sockets 1 --devices 1 || rc=$?
	[ "$rc" -ne 0 ] || fail "$c: the sim was served: $(cat "$T/$c.out")"
	[ "$(jq .errors.tls "$T/$c.json")" -ge 1 ] ||
		fail "$c: no TLS error at the site: $(cat "$T/$c.json")"
done
echo "ok: another CA, an expired certificate and TLS 1.2 refused"

# The CN is line1-b, the HELLO says line1-a: UNAUTHORIZED, recorded.
rc=0; tsim mismatch mismatch --sockets 1 --devices 1 \
	--expect unauthorized || rc=$?
[ "$rc" -eq 3 ] || fail "CN mismatch: exit $rc: $(cat "$T/mismatch.out")"
[ "$(jq .aborts_received.unauthorized "$T/mismatch.json")" -ge 1 ] ||
	fail "CN mismatch: $(cat "$T/mismatch.json")"
echo "ok: a CN that is not the HELLO's site_id gets UNAUTHORIZED"

# A connection that never starts its handshake must not hold the job's
# end up (its HELLO limit is 20 s; the job ends by closing it).
exec 4<>"/dev/tcp/127.0.0.1/$PORT" || fail "connect"
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
jq -e ".ok == $N and .injector_restarts == 0 and .sandbox_violations == 0" \
	"$T/run.json" >/dev/null ||
	fail "run summary: $(cat "$T/run.json")"
echo "ok: $N devices committed over TLS 1.3"

# Counted and logged: four handshakes refused (not TLS at all too), each reason named; the
# CN mismatch is a record; the record layer is named.
[ "$(jq .tls.refused "$T/run.json")" -ge 4 ] ||
	fail "tls.refused: $(jq -c .tls "$T/run.json")"
grep -q 'alert unknown ca' "$T/rogue.out" ||
	fail "another CA: the site was not told: $(cat "$T/rogue.out")"
for why in 'certificate has expired' 'TLS 1.3' 'http request'; do
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

kj_tls_verify "$S"

# The TLS key gone from the HSM: refused before anything, naming it.
pkcs11-tool --module "$KJ_HSM_MODULE" --token-label kinject --login \
	--pin "${KJ_SOFTHSM_PIN:-123456}" --delete-object --type privkey \
	--label kinject-tls >/dev/null 2>&1 || fail "deleting the TLS key"
preflight_refuses "tls.pem: the TLS private key is not in the HSM"
echo "ok: the pre-flight names a TLS key missing from the HSM"
echo "run_tls ok"
