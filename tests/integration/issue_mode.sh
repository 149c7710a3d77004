# SPDX-License-Identifier: Apache-2.0
# Issue mode (PROTOCOL.md cred_blob, SPEC.md §3.2): the work order says
# "credential_mode": "issue", the batch carries no keys, the officers
# enrolled an issuing CA whose key was generated in the HSM (SoftHSM2, not
# extractable) and is certified by the customer's root; per device the
# appliance issues a certificate for the HELLO's device_pubkey, signed in
# the HSM:
#  - every device COMMITs, and the sim checks its certificate is the CA's
#    and carries its own key;
#  - `openssl verify` accepts the issued certificates against root + CA,
#    and refuses them against another CA;
#  - the journal's cert_sha256 is the issued certificate's;
#  - a batch with keys in an issue job is refused before anything starts.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/softhsm.sh"
. "$KJ_TESTS/lib/inputs.sh"
. "$KJ_TESTS/lib/swtpm.sh"
. "$KJ_TESTS/lib/ceremony.sh"

QTY=20
C=$T/in
mkdir -p "$C"
kj_swtpm_start "$T/tpm" >/dev/null || fail "swtpm"
kj_appliance_setup "$T/state" "$C" || fail "key ceremony"
pin=$(cat "$KJ_HSM_DIR/pin")
p11() { pkcs11-tool --module "$KJ_HSM_MODULE" --token-label kinject "$@"; }

# The issuing CA's key, generated in the HSM; never extractable.
kj_issuing_ca "$T/state" "$T" || fail "issuing CA"
p11 --login --pin "$pin" --list-objects --type privkey --label issuing \
	>"$T/objs.txt" 2>&1 || fail "list-objects"
grep -q "never extractable" "$T/objs.txt" || fail "issuing key: $(cat "$T/objs.txt")"
grep -q "sensitive" "$T/objs.txt" || fail "issuing key: $(cat "$T/objs.txt")"

KJ_FW_SIZE=10000 KJ_CREDS_N=$((QTY + 40)) KJ_WO_QTY=$QTY KJ_CREDS_NOKEY=1 \
	KJ_WO_EXTRA='"credential_mode": "issue"' \
	kj_inputs_all "$C" "$T/state/transport.pem" >/dev/null ||
	fail "making inputs"
run_args=(--state "$T/state" --operator test
	--work-order "$C/WO.json" --work-order-sig "$C/WO.json.sig"
	--product "$C/product.json" --product-sig "$C/product.json.sig"
	--firmware "$C/FW.cms" --hsm "$KJ_HSM_URI_P11KIT"
	--pin-source "$KJ_HSM_PIN_SOURCE" --tpm "$KJ_SWTPM_TCTI")

# A batch with keys in an issue job: refused, nothing started.
mkdir -p "$T/keyed"
cp "$C"/release.* "$C/transport.pem" "$T/keyed/"
(KJ_CREDS_DISTINCT=1 kj_creds "$T/keyed" $((QTY + 40)) 0) >/dev/null ||
	fail "keyed batch"
rc=0
"$KINJECT" run "${run_args[@]}" --credentials "$T/keyed/CREDS.cms" \
	--listen "unix:$T/x.sock" >/dev/null 2>"$T/keyed.err" || rc=$?
[ "$rc" -eq 1 ] || fail "keyed batch in issue mode: exit $rc"
grep -q "carry a private key.*credential_mode issue" "$T/keyed.err" ||
	fail "keyed batch message: $(cat "$T/keyed.err")"
echo "ok: a batch with keys in an issue job is refused: $(head -c 160 "$T/keyed.err")"

"$KINJECT" run "${run_args[@]}" --credentials "$C/CREDS.cms" \
	--listen "unix:$T/line.sock" --checkpoint-interval 50 \
	--json-summary "$T/run.json" >"$T/run.out" 2>"$T/run.err" &
run_pid=$!
kj_track_pid $run_pid
rc=0
"$KINJECT" sim --connect "unix:$T/line.sock" --hwrev B --site line1 \
	--sockets 4 --devices $QTY --cred-mode issue \
	--issuing-ca "$T/issuing.pem" --timeout 120 --connect-wait 60 \
	--json-summary "$T/line.json" --device-log "$T/dev.jsonl" \
	>"$T/line.out" 2>&1 || rc=$?
cat "$T/line.out"
[ "$rc" -eq 0 ] || fail "sim exit $rc: $(cat "$T/line.out") $(cat "$T/run.err")"
grep -qF "\"creds_opened\":$QTY," "$T/line.json" ||
	fail "issued certificates checked: $(cat "$T/line.json")"
rc=0; wait $run_pid || rc=$?
[ "$rc" -eq 0 ] || fail "kinject run exit $rc: $(cat "$T/run.err")"

# openssl verify: root + issuing CA accept every issued certificate.
n=0
while read -r line; do
	b64=$(printf '%s' "$line" | sed -n 's/.*"cert":"\([^"]*\)".*/\1/p')
	uid=$(printf '%s' "$line" | sed -n 's/.*"uid":"\([0-9a-f]*\)".*/\1/p')
	[ -n "$b64" ] || continue
	printf '%s' "$b64" | base64 -d >"$T/d.der"
	openssl x509 -inform DER -in "$T/d.der" -out "$T/d.pem"
	openssl verify -CAfile "$T/root.pem" -untrusted "$T/issuing.pem" \
		"$T/d.pem" >"$T/v.out" 2>&1 || fail "openssl verify: $(cat "$T/v.out")"
	if openssl verify -CAfile "$C/test-ca.pem" "$T/d.pem" >/dev/null 2>&1 ||
		openssl verify -CAfile "$T/root.pem" "$T/d.pem" >/dev/null 2>&1; then
		fail "an issued certificate verifies without its issuing CA"
	fi
	openssl x509 -in "$T/d.pem" -noout -pubkey |
		openssl pkey -pubin -outform DER | sha256sum >>"$T/pubkeys"
	sha=$(sha256sum "$T/d.der" | cut -d' ' -f1)
	"$KINJECT" audit export --state "$T/state" --format json \
		--out "$T/rec.json" 2>/dev/null || fail "audit export"
	grep "\"uid\":\"$uid\"" "$T/rec.json" | grep -q "\"cert_sha256\":\"$sha\"" ||
		fail "journal cert_sha256 for $uid is not the issued certificate's"
	n=$((n + 1))
done < <(grep '"outcome":"committed"' "$T/dev.jsonl" | head -5)
[ "$n" -eq 5 ] || fail "issued certificates in the device log: $n"
# Each certificate carries its own device's key (the sim compared them).
[ "$(sort -u "$T/pubkeys" | wc -l)" -eq 5 ] || fail "device keys repeat"
echo "ok: $QTY devices issued certificates; 5 checked with openssl verify and against the journal"
echo "issue_mode ok"
