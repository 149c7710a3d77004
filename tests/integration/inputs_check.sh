# SPDX-License-Identifier: Apache-2.0
# kinject check against a real SoftHSM2 token and inputs made by the openssl
# CLI (SPEC.md §3) on an appliance set up by the key ceremony (customer acme
# enrolled by 2 of 3 officers): the good set passes with every fact
# printed; each bad input is refused with a clear message, exit 1, and
# nothing written.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/softhsm.sh"
. "$KJ_TESTS/lib/inputs.sh"
. "$KJ_TESTS/lib/swtpm.sh"
. "$KJ_TESTS/lib/ceremony.sh"

kj_swtpm_start "$T/tpm" >/dev/null || fail "swtpm"
I=$T/in
kj_appliance_setup "$T/state" "$I" || fail "key ceremony"
mkdir -p "$T/cwd"
kj_inputs_all "$I" "$T/state/transport.pem" || fail "making inputs"
kj_customer "$I" other || fail "other customer key"
state_sum() { (cd "$T/state" && find . -type f | sort | xargs sha256sum); }
state_sum >"$T/state.before"
cd "$T/cwd"

# check [DIR] [extra flags...]: the inputs of DIR (default $I).
check() {
	local d=$I
	if [ $# -gt 0 ] && [ -d "$1" ]; then d=$1; shift; fi
	"$KINJECT" check --work-order "$d/WO.json" \
		--work-order-sig "$d/WO.json.sig" --product "$d/product.json" \
		--product-sig "$d/product.json.sig" --firmware "$d/FW.cms" \
		--credentials "$d/CREDS.cms" --state "${ST:-$T/state}" "$@"
}
hsm=(--hsm "$KJ_HSM_URI" --pin-source "$KJ_HSM_PIN_SOURCE")

# A copy of the good inputs to spoil one of.
variant() {
	rm -rf "$T/v"
	cp -r "$I" "$T/v"
	echo "$T/v"
}

# --- the good set -------------------------------------------------------
check "${hsm[@]}" --transport-cert "$I/transport.pem" >"$T/ok" ||
	fail "good inputs refused: $(cat "$T/ok")"
for want in "work order $I/WO.json: signature OK" \
	"quantity 800" "revision B rule \">=3.0.0 <4.0.0\" admits 3.1.5" \
	"revision C rule \">=3.1.0\" admits 3.1.5" \
	"matches the HSM key" "AES-GCM tag OK, signature OK, 1048576 bytes" \
	"= work order" "1000 lines, indexes 0..999 unique" \
	"all inputs verified"; do
	grep -qF -- "$want" "$T/ok" || fail "output lacks '$want': $(cat "$T/ok")"
done
echo "ok: good inputs verified"

# p11-kit's registered modules (no module-path), PIN from the environment.
KJ_PIN=$(cat "$KJ_HSM_DIR/pin") check --hsm "$KJ_HSM_URI_P11KIT" \
	--pin-source env:KJ_PIN >/dev/null || fail "p11-kit module lookup"
echo "ok: registered p11-kit modules, env: PIN"

# The release certificate is the one the officers enrolled, and nothing
# else: no flag names another; an appliance without a ceremony refuses.
check "${hsm[@]}" >"$T/ok" || fail "state dir layout refused: $(cat "$T/ok")"
grep -qF "$T/state/customers/acme/release.pem" "$T/ok" || fail "release cert path"
grep -qF "transport certificate $T/state/transport.pem: matches" "$T/ok" ||
	fail "transport cert from the state dir: $(cat "$T/ok")"
rc=0; check "${hsm[@]}" --release-cert "$I/other.pem" 2>"$T/err" || rc=$?
[ "$rc" -eq 2 ] || fail "--release-cert: exit $rc, want 2 (no such flag)"
cp -r "$T/state" "$T/st"
rm "$T/st/customers/acme/release.pem"
ST=$T/st expect_fail "customer \`acme' is not enrolled" check "${hsm[@]}"
grep -qF "kinject ceremony request enrol-customer" "$T/err" ||
	fail "not-enrolled message does not say how to enrol"
rm -rf "$T/st"
mkdir "$T/st"
ST=$T/st expect_fail "check: appliance not initialised" check "${hsm[@]}"
grep -qF "kinject ceremony init" "$T/err" || fail "does not name the command"
rm -rf "$T/st"
echo "ok: enrolled customers only"

# --- HSM and flags --------------------------------------------------------
echo 999999 >"$T/badpin"; chmod 600 "$T/badpin"
expect_fail "C_Login: CKR_PIN_INCORRECT" check --hsm "$KJ_HSM_URI" \
	--pin-source "file:$T/badpin"
expect_fail "no token matches the URI" check --hsm \
	"pkcs11:token=nosuch;object=transport?module-path=$KJ_HSM_MODULE" \
	--pin-source "$KJ_HSM_PIN_SOURCE"
expect_fail "no EC private key with this label/id" check --hsm \
	"pkcs11:token=kinject;object=nokey?module-path=$KJ_HSM_MODULE" \
	--pin-source "$KJ_HSM_PIN_SOURCE"
rc=0; check --hsm "$KJ_HSM_URI" --pin-source 123456 2>"$T/err" || rc=$?
[ "$rc" -eq 2 ] || fail "PIN on the command line: exit $rc, want 2"
! grep -q 123456 "$T/err" || fail "a PIN-like --pin-source was echoed"
rc=0; "$KINJECT" check --firmware x 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || fail "missing flags: exit $rc, want 2"
expect_fail "is not the HSM's transport key" check "${hsm[@]}" \
	--transport-cert "$I/other.pem"
echo "ok: HSM and flag errors"

# --- envelopes ------------------------------------------------------------
v=$(variant)
n=$(stat -c %s "$v/FW.cms")
printf '\x5a' | dd of="$v/FW.cms" bs=1 seek=$((n - 5000)) conv=notrunc \
	status=none
expect_fail "authentication failed (AES-GCM tag mismatch)" check "$v" "${hsm[@]}"

v=$(variant)
kj_envelope "$v/fw.bin" "$v/FW.cms" "$v/other.pem" "$v/release.pem" \
	"$v/release.key"
expect_fail "not encrypted to this appliance's transport key" \
	check "$v" "${hsm[@]}" --transport-cert "$I/transport.pem"
expect_fail "not encrypted to this appliance's transport key" \
	check "$v" "${hsm[@]}"

v=$(variant)
kj_envelope "$v/fw.bin" "$v/FW.cms" "$v/transport.pem" "$v/other.pem" \
	"$v/other.key"
expect_fail "not by the enrolled release certificate" check "$v" "${hsm[@]}"

v=$(variant)
openssl cms -encrypt -binary -aes-256-gcm -recip "$v/transport.pem" \
	-keyopt ecdh_kdf_md:sha256 -in "$v/fw.bin" -outform DER \
	-out "$v/FW.cms" 2>/dev/null
expect_fail "unsigned content is refused" check "$v" "${hsm[@]}"

v=$(variant)
openssl cms -encrypt -binary -aes-256-cbc -recip "$v/transport.pem" \
	-keyopt ecdh_kdf_md:sha256 -in "$v/fw.bin" -outform DER \
	-out "$v/FW.cms" 2>/dev/null
expect_fail "needs AuthEnvelopedData" check "$v" "${hsm[@]}"

v=$(variant)
head -c 1000 /dev/urandom >"$v/FW.cms"
expect_fail "malformed CMS" check "$v" "${hsm[@]}"

v=$(variant)
kj_envelope "$v/creds.jsonl" "$v/CREDS.cms" "$v/transport.pem" \
	"$v/other.pem" "$v/other.key"
expect_fail "CREDS.cms: signed by" check "$v" "${hsm[@]}"
echo "ok: envelope errors"

# --- work order and product matrix ----------------------------------------
v=$(variant)
head -c 1000 /dev/urandom >"$v/fw.bin"
kj_work_order "$v" # signed, but for another image than FW.cms holds
cp "$I/fw.bin" "$v/fw.bin"
expect_fail "differs from the work order's firmware.sha256" \
	check "$v" "${hsm[@]}"

v=$(variant)
sed -i 's/"quantity": 800/"quantity": 9000/' "$v/WO.json"
expect_fail "WO.json.sig: content does not match the signed messageDigest" \
	check "$v" "${hsm[@]}"

v=$(variant)
kj_sign_detached "$v/WO.json" "$v/other.pem" "$v/other.key"
expect_fail "not by the enrolled release certificate" check "$v" "${hsm[@]}"

v=$(variant)
kj_work_order "$v" 3.0.5
expect_fail "hardware revision \"C\": firmware 3.0.5 not allowed by rule" \
	check "$v" "${hsm[@]}"

v=$(variant)
kj_product "$v" 3.2.0 ">=3.0.0" ">=3.0.0"
expect_fail "below min_firmware 3.2.0" check "$v" "${hsm[@]}"

v=$(variant)
printf '{"kinject_work_order": 1, "id": ' >"$v/WO.json"
kj_sign_detached "$v/WO.json" "$v/release.pem" "$v/release.key"
expect_fail "invalid JSON" check "$v" "${hsm[@]}"
echo "ok: work order and product matrix errors"

# --- credential lines -----------------------------------------------------
v=$(variant)
sed -i '5s/"index":4,/"index":3,/' "$v/creds.jsonl"
kj_envelope "$v/creds.jsonl" "$v/CREDS.cms" "$v/transport.pem" \
	"$v/release.pem" "$v/release.key"
expect_fail "line 5: field \"index\": 3 already used on line 4" \
	check "$v" "${hsm[@]}"

v=$(variant)
sed -i '7s/"cert":"MII/"cert":"AAA/' "$v/creds.jsonl"
kj_envelope "$v/creds.jsonl" "$v/CREDS.cms" "$v/transport.pem" \
	"$v/release.pem" "$v/release.key"
expect_fail "line 7: field \"cert\"" check "$v" "${hsm[@]}"
echo "ok: credential errors"

# --- nothing written anywhere ---------------------------------------------
state_sum | cmp -s - "$T/state.before" || fail "check changed the state dir"
[ -z "$(ls -A "$T/cwd")" ] || fail "check wrote into the cwd: $(ls -A "$T/cwd")"
echo "inputs_check ok"
