#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The key ceremony (SPEC.md §5, docs/CEREMONY.md) with real SoftHSM2, a
# swtpm with an EK certificate and officer keys made by openssl, officer 5's
# on a second SoftHSM2 token (a smart card's stand-in, signing through
# openssl's pkcs11 engine), 3 of 5:
#  - run refuses an uninitialised appliance, then a pending one;
#  - init: transport key sensitive and never extractable in the token, the
#    AK's residency proven, the transcript quoted (tpm2_checkquote -u ak.pem
#    accepts the quote over the init request's hash), the officer set
#    measured into PCR 14 and journalled; a second init refused;
#  - apply: every refusal of the issue names why (too few signatures, the
#    same officer twice, a signature over other bytes, an unknown officer,
#    a request already applied, another appliance's request);
#  - enrol-customer, enrol-site-ca, set-policy, reset-journal, set-officers
#    take effect; status shows them (text and --json);
#  - inputs from a customer nobody enrolled, or signed by another key, are
#    refused naming the certificate;
#  - a marker PIN appears in no file the ceremony wrote.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/softhsm.sh"
. "$KJ_TESTS/lib/swtpm.sh"
. "$KJ_TESTS/lib/inputs.sh"
. "$KJ_TESTS/lib/ceremony.sh"

S=$T/state
O=$T/officers
pin=KJPIN$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')
kj_swtpm_start "$T/tpm" --ek-cert >/dev/null || fail "swtpm"
KJ_SOFTHSM_PIN=$pin KJ_SOFTHSM_NO_KEY=1 kj_softhsm_init "$T" >/dev/null ||
	fail "softhsm"
kj_officers "$O" 5 || fail "officers"
kj_card_officer "$O" 5 card || fail "officer 5 on a token"
kj_officers "$T/stranger" 1 || fail "stranger"
mkdir -p "$T/in"
kj_customer "$T/in" release
kj_customer "$T/in" other
offs=()
for i in 1 2 3 4 5; do offs+=(--officer "$O/o$i.pem"); done
init() {
	"$KINJECT" ceremony init --state "$S" --hsm "$KJ_HSM_URI_P11KIT" \
		--pin-source "$KJ_HSM_PIN_SOURCE" --tpm "$KJ_SWTPM_TCTI" "$@"
}
run() {
	"$KINJECT" run --state "$S" --operator t --work-order "$T/in/WO.json" \
		--work-order-sig "$T/in/WO.json.sig" \
		--product "$T/in/product.json" \
		--product-sig "$T/in/product.json.sig" \
		--firmware "$T/in/FW.cms" --credentials "$T/in/CREDS.cms" \
		--hsm "$KJ_HSM_URI_P11KIT" --pin-source "$KJ_HSM_PIN_SOURCE" \
		--tpm "$KJ_SWTPM_TCTI" --listen "unix:$T/line.sock"
}
sign() { kj_officer_sign "$1" "$O" "$2" || fail "signing $1 as o$2"; }
apply() { "$KINJECT" ceremony apply --state "$S" "$@"; }

# --- before init ----------------------------------------------------------
mkdir -p "$S"
expect_fail "run: appliance not initialised" run
grep -qF "kinject ceremony init" "$T/err" || fail "does not name the command"
expect_fail "--threshold: \`1' is out of range" init "${offs[@]}" --threshold 1
expect_fail "threshold 6 with 5 officers" init "${offs[@]}" --threshold 6
expect_fail "given twice" init "${offs[@]}" --officer "$O/o1.pem" --threshold 3
[ ! -e "$S/transport.pem" ] || fail "a refused init made a key"

# --- init -------------------------------------------------------------------
init "${offs[@]}" --threshold 3 >"$T/init.out" || fail "init: $(cat "$T/init.out")"
for f in transport.pem ak.pem ak.pub ek.pem ceremony/transcript.json \
	ceremony/init.req ceremony/officers.pem; do
	[ -s "$S/$f" ] || fail "init did not write $f"
done
pkcs11-tool --module "$KJ_HSM_MODULE" --token-label kinject --login \
	--pin "$pin" --list-objects --type privkey >"$T/objs" 2>&1
grep -q "never extractable" "$T/objs" && grep -q "sensitive" "$T/objs" ||
	fail "transport key not sensitive/never extractable: $(cat "$T/objs")"
echo "ok: transport key sensitive, never extractable"
# The TLS key (PROTOCOL.md "TLS"): its own object, never extractable even
# where the transport key is wrappable; tls.pem signed by it.
[ -s "$S/tls.pem" ] || fail "init did not write tls.pem"
pkcs11-tool --module "$KJ_HSM_MODULE" --token-label kinject --login \
	--pin "$pin" --list-objects --type privkey --label kinject-tls \
	>"$T/tlsobj" 2>&1
grep -q "never extractable" "$T/tlsobj" &&
	grep -q "Access: *sensitive" "$T/tlsobj" ||
	fail "TLS key not sensitive/never extractable: $(cat "$T/tlsobj")"
openssl verify -CAfile "$S/tls.pem" -purpose sslserver "$S/tls.pem" \
	>/dev/null || fail "tls.pem is not self-signed by its key for TLS"
openssl x509 -in "$S/tls.pem" -noout -pubkey >"$T/tls.pub"
pkcs11-tool --module "$KJ_HSM_MODULE" --token-label kinject --read-object \
	--type pubkey --label kinject-tls -o "$T/tls.pub.der" >/dev/null 2>&1
cmp -s <(openssl pkey -pubin -inform DER -in "$T/tls.pub.der") "$T/tls.pub" ||
	fail "tls.pem does not carry the HSM's TLS key"
echo "ok: TLS key in the HSM, sensitive, never extractable; tls.pem signed by it"
# The quote over the init request's hash, checked by tpm2-tools alone.
jq -r .quote.attest "$S/ceremony/transcript.json" | base64 -d >"$T/q.msg"
jq -r .quote.signature "$S/ceremony/transcript.json" | base64 -d >"$T/q.sig"
qd=$(sha256sum "$S/ceremony/init.req" | cut -d' ' -f1)
[ "$(jq -r .request "$S/ceremony/transcript.json")" = \
	"$(head -c -1 "$S/ceremony/init.req")" ] || fail "transcript request differs"
tpm2_checkquote -u "$S/ak.pem" -m "$T/q.msg" -s "$T/q.sig" -q "$qd" \
	-g sha256 >/dev/null 2>&1 || fail "tpm2_checkquote rejects the transcript quote"
! tpm2_checkquote -u "$S/ak.pem" -m "$T/q.msg" -s "$T/q.sig" -q "${qd/a/b}" \
	-g sha256 >/dev/null 2>&1 || [ "$qd" = "${qd/a/b}" ] ||
	fail "tpm2_checkquote accepts another hash"
echo "ok: transcript quote verifies with tpm2_checkquote -u ak.pem"
r=$(jq -r .request "$S/ceremony/transcript.json")
[ "$(jq -r .residency.challenge_sha256 <<<"$r")" = \
	"$(jq -r .residency.activated_sha256 <<<"$r")" ] || fail "residency hashes differ"
[ "$(jq -r .residency.ak_name <<<"$r")" = "$(cat "$S/ak.name")" ] ||
	fail "residency proof for another AK name"
[ "$(jq -r .transport.extractable <<<"$r")" = false ] || fail "extractable"
[ "$(jq -r .tls.extractable <<<"$r")" = false ] || fail "TLS key extractable"
jq -e '.ek.certificate | startswith("-----BEGIN CERTIFICATE")' <<<"$r" \
	>/dev/null || fail "no EK certificate in the transcript"
# PCR 14 = extend(0, SHA-256(officers.pem)).
d=$(sha256sum "$S/ceremony/officers.pem" | cut -d' ' -f1)
want=$( (printf '%064d' 0; echo "$d") | xxd -r -p | sha256sum | cut -d' ' -f1)
got=$(tpm2_pcrread sha256:14 -T "$KJ_SWTPM_TCTI" | sed -n 's/.*14 *: *0x//p' |
	tr 'A-F' 'a-f')
[ "$got" = "$want" ] || fail "PCR 14 $got, want $want"
sqlite3 "$S/journal.db" "select value from meta where key='ceremony.officers'" |
	grep -q '"threshold":3' || fail "officer set not in the journal"
echo "ok: officer set measured into PCR 14 and journalled"
expect_fail "initialised already" init "${offs[@]}" --threshold 3
# Pending: not initialised until the officers signed the transcript.
kj_inputs_all "$T/in" "$S/transport.pem" >/dev/null || fail "inputs"
expect_fail "initialisation pending" run
REQ=$T/init.req
cp "$S/ceremony/init.req" "$REQ"
sign "$REQ" 1; sign "$REQ" 2; sign "$REQ" 3
expect_fail "too few signatures: 2 valid, the officers' threshold is 3 of 5" \
	apply "$REQ" "$REQ.1.sig" "$REQ.2.sig"
apply "$REQ" "$REQ.1.sig" "$REQ.2.sig" "$REQ.3.sig" >"$T/apply.out" ||
	fail "init apply: $(cat "$T/apply.out")"
jq -e '.signatures | length == 3' "$S/ceremony/transcript.json" >/dev/null ||
	fail "transcript lacks the 3 signatures"
echo "ok: init applied with 3 of 5"

# --- quorum refusals ----------------------------------------------------------
E=$T/enrol.req
"$KINJECT" ceremony request enrol-customer --state "$S" --name acme \
	--cert "$T/in/release.pem" --out "$E" >/dev/null || fail "request"
for i in 1 2 3 4 5; do sign "$E" "$i"; done
expect_fail "too few signatures" apply "$E" "$E.1.sig" "$E.2.sig"
expect_fail "signed twice" apply "$E" "$E.1.sig" "$E.2.sig" "$E.1.sig"
cp "$E" "$T/other.req"; sed -i 's/"name":"acme"/"name":"evil"/' "$T/other.req"
sign "$T/other.req" 3
expect_fail "$T/other.req.3.sig: content does not match the signed messageDigest" \
	apply "$E" "$E.1.sig" "$E.2.sig" "$T/other.req.3.sig"
openssl cms -sign -binary -in "$E" -signer "$T/stranger/o1.pem" \
	-inkey "$T/stranger/o1.key" -outform DER -out "$E.x.sig" 2>/dev/null
expect_fail "signed by an unknown officer" apply "$E" "$E.1.sig" "$E.2.sig" "$E.x.sig"
[ ! -e "$S/customers/acme" ] || fail "a refused request took effect"
apply "$E" "$E.2.sig" "$E.4.sig" "$E.5.sig" >/dev/null || fail "enrol apply"
[ -s "$S/customers/acme/release.pem" ] || fail "customer not enrolled"
expect_fail "request already applied" apply "$E" "$E.1.sig" "$E.2.sig" "$E.3.sig"
jq -c '.appliance = "'"$(printf '%064d' 7)"'"' "$E" >"$T/elsewhere.req"
for i in 1 2 3; do sign "$T/elsewhere.req" $i; done
expect_fail "request made for appliance 0000" apply "$T/elsewhere.req" \
	"$T/elsewhere.req.1.sig" "$T/elsewhere.req.2.sig" "$T/elsewhere.req.3.sig"
echo "ok: every quorum refusal names why"

# --- the other requests -----------------------------------------------------
req() {
	local kind=$1; shift
	"$KINJECT" ceremony request "$kind" --state "$S" --out "$T/$kind.req" \
		"$@" >/dev/null || fail "request $kind"
	for i in 1 3 5; do sign "$T/$kind.req" $i; done
	apply "$T/$kind.req" "$T/$kind.req.1.sig" "$T/$kind.req.3.sig" \
		"$T/$kind.req.5.sig" >"$T/applied" || fail "apply $kind"
}
req enrol-site-ca --name line1 --cert "$T/in/other.pem"
grep -q "approved by.*officer 5 (card)" "$T/applied" ||
	fail "officer 5's token signature not counted: $(cat "$T/applied")"
[ -s "$S/site-ca/line1.pem" ] || fail "site CA not enrolled"
echo '{"limits": 1}' >"$T/pol.json"
req set-policy --name limits.json --policy "$T/pol.json"
cmp -s "$T/pol.json" "$S/policy/limits.json" || fail "policy not written"
req reset-journal --reason "TPM replaced its counter"
sqlite3 "$S/journal.db" "select value from meta where key='ceremony.reset_journal'" |
	grep -qx "$(sha256sum "$T/reset-journal.req" | cut -d' ' -f1)" ||
	fail "reset-journal approval not recorded"
"$KINJECT" ceremony status --state "$S" >"$T/status.txt" || fail "status"
for want in "appliance: initialised" "officers: 3 of 5" "acme " "line1 " \
	"enrol-customer acme" "reset-journal: TPM replaced" "TLS key (tls.pem): "; do
	grep -qF -- "$want" "$T/status.txt" || fail "status lacks '$want': $(cat "$T/status.txt")"
done
"$KINJECT" ceremony status --state "$S" --json >"$T/status.json" || fail "status --json"
jq -e '.threshold == 3 and .officer_count == 5 and .customers[0].name == "acme"
	and .approvals_total == 5 and (.approvals[1].officers | length) == 3
	and .keys.transport.sha256 != null and .keys.ak_name != null
	and .keys.tls.sha256 != null' \
	"$T/status.json" >/dev/null || fail "status --json: $(cat "$T/status.json")"
echo "ok: requests take effect; status shows them"

# --- customers only through the ceremony ------------------------------------
"$KINJECT" check --state "$S" --work-order "$T/in/WO.json" \
	--work-order-sig "$T/in/WO.json.sig" --product "$T/in/product.json" \
	--product-sig "$T/in/product.json.sig" --firmware "$T/in/FW.cms" \
	--credentials "$T/in/CREDS.cms" --hsm "$KJ_HSM_URI_P11KIT" \
	--pin-source "$KJ_HSM_PIN_SOURCE" >/dev/null || fail "enrolled customer refused"
kj_sign_detached "$T/in/WO.json" "$T/in/other.pem" "$T/in/other.key"
expect_fail "signed by issuer /O=acme/CN=other serial" run
grep -qF "not by the enrolled release certificate (/O=acme/CN=release)" "$T/err" ||
	fail "the refusal does not name the enrolled certificate"
sed -i 's/"customer": "acme"/"customer": "globex"/' "$T/in/WO.json"
kj_sign_detached "$T/in/WO.json" "$T/in/other.pem" "$T/in/other.key"
expect_fail "customer \`globex' is not enrolled" run
echo "ok: inputs of a customer nobody enrolled are refused"

# set-officers last: the new set (2 of 2) governs the next request.
req set-officers --officer "$O/o4.pem" --officer "$O/o5.pem" --threshold 2
"$KINJECT" ceremony status --state "$S" | grep "officers: 2 of 2" >/dev/null ||
	fail "officer set not replaced"
"$KINJECT" ceremony request enrol-customer --state "$S" --name globex \
	--cert "$T/in/other.pem" --out "$T/g.req" >/dev/null
sign "$T/g.req" 1; sign "$T/g.req" 4
expect_fail "signed by an unknown officer" apply "$T/g.req" "$T/g.req.1.sig" "$T/g.req.4.sig"
echo "ok: set-officers replaces the quorum"

# A key made never extractable (the default) cannot be backed up.
expect_fail "the transport key is never extractable" "$KINJECT" ceremony backup \
	--state "$S" --hsm "$KJ_HSM_URI_P11KIT" --pin-source "$KJ_HSM_PIN_SOURCE" \
	--out "$T/bk"
[ ! -e "$T/bk/manifest.json" ] || fail "a refused backup wrote a manifest"

# The AK is the ceremony's: run does not make another when it is gone.
mv "$S/ak.priv" "$T/ak.priv"
expect_fail "ak.priv missing: the AK the officers' transcript names is gone" run
mv "$T/ak.priv" "$S/ak.priv"
jq -r .request "$S/ceremony/transcript.json" |
	jq -e '.actions | index("AK created under the EK")' >/dev/null ||
	fail "transcript does not say what was done"

# --- no secret in any file the ceremony wrote ------------------------------
if grep -rqaF "$pin" "$S" "$O" "$T"/*.req* 2>/dev/null; then
	fail "the HSM PIN appears in a file the ceremony wrote"
fi
grep -rqaF "$pin" "$T/softhsm/pin" || fail "control: marker PIN not found where it is"
echo "ceremony ok"
