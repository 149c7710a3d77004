#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# SPEC.md §5 backup and restore with real SoftHSM2 tokens and swtpm, 3 of 5
# officers (officer 5's key on its own token, a smart card's stand-in, for
# signing and for opening its share): the transport key (init
# --backup-capable) wrapped in the HSM
# under a fresh AES-256 key split by Shamir, one CMS-encrypted share per
# officer; restore onto a new token and TPM with an approved restore
# request and any 3 shares; 2 shares fail; a tampered share fails naming
# it; inputs encrypted to the original transport key decrypt after the
# restore; the HSM PIN and the shares' plaintext appear in no file.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/softhsm.sh"
. "$KJ_TESTS/lib/swtpm.sh"
. "$KJ_TESTS/lib/inputs.sh"
. "$KJ_TESTS/lib/ceremony.sh"

O=$T/officers
B=$T/backup
pin=KJPIN$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')
kj_officers "$O" 5 || fail "officers"
offs=()
for i in 1 2 3 4 5; do offs+=(--officer "$O/o$i.pem"); done

# One SoftHSM2 store holds every token: the appliances' and officer 5's.
KJ_SOFTHSM_PIN=$pin KJ_SOFTHSM_NO_KEY=1 kj_softhsm_init "$T" >/dev/null ||
	fail "softhsm"
kj_card_officer "$O" 5 card || fail "officer 5 on a token"
# new_appliance DIR TOKEN: a fresh TPM and an empty token TOKEN.
new_appliance() {
	kj_swtpm_start "$1/tpm" >/dev/null || fail "swtpm"
	[ "$2" = kinject ] || softhsm2-util --init-token --free --label "$2" \
		--so-pin 12345678 --pin "$pin" >/dev/null || fail "token $2"
	KJ_HSM_URI_P11KIT="pkcs11:token=$2;object=transport;id=%01"
}
sigs() { local r=$1 i; shift; for i; do kj_officer_sign "$r" "$O" "$i"; echo "$r.$i.sig"; done; }
check_inputs() {
	"$KINJECT" check --state "$1" --work-order "$T/in/WO.json" \
		--work-order-sig "$T/in/WO.json.sig" \
		--product "$T/in/product.json" \
		--product-sig "$T/in/product.json.sig" --firmware "$T/in/FW.cms" \
		--credentials "$T/in/CREDS.cms" --hsm "$KJ_HSM_URI_P11KIT" \
		--pin-source "$KJ_HSM_PIN_SOURCE"
}

# --- the original appliance --------------------------------------------------
mkdir -p "$T/a" "$T/in"
new_appliance "$T/a" kinject
S=$T/a/state
"$KINJECT" ceremony init --state "$S" --hsm "$KJ_HSM_URI_P11KIT" \
	--pin-source "$KJ_HSM_PIN_SOURCE" --tpm "$KJ_SWTPM_TCTI" "${offs[@]}" \
	--threshold 3 --backup-capable >/dev/null 2>&1 || fail "init"
cp "$S/ceremony/init.req" "$T/init.req"
"$KINJECT" ceremony apply --state "$S" "$T/init.req" $(sigs "$T/init.req" 1 2 3) \
	>/dev/null || fail "init apply"
kj_customer "$T/in" release
kj_enrol_customer "$S" "$O" 3 acme "$T/in/release.pem" >/dev/null || fail "enrol"
KJ_CREDS_N=20 KJ_WO_QTY=10 kj_inputs_all "$T/in" "$S/transport.pem" >/dev/null || fail "inputs"
check_inputs "$S" >/dev/null || fail "inputs refused on the original"
"$KINJECT" ceremony backup --state "$S" --hsm "$KJ_HSM_URI_P11KIT" \
	--pin-source "$KJ_HSM_PIN_SOURCE" --out "$B" >"$T/backup.out" ||
	fail "backup: $(cat "$T/backup.out")"
for i in 1 2 3 4 5; do [ -s "$B/share-$i.cms" ] || fail "no share $i"; done
jq -e '.threshold == 3 and (.shares | length) == 5' "$B/manifest.json" \
	>/dev/null || fail "manifest: $(cat "$B/manifest.json")"
# Each share opens with its officer's key (openssl cms), and only with it.
openssl cms -decrypt -binary -inform DER -in "$B/share-2.cms" \
	-recip "$O/o2.pem" -inkey "$O/o2.key" 2>/dev/null | wc -c |
	grep -qx 33 || fail "share 2 is not 33 bytes for officer 2"
openssl cms -decrypt -binary -inform DER -in "$B/share-2.cms" \
	-recip "$O/o3.pem" -inkey "$O/o3.key" >/dev/null 2>&1 &&
	fail "officer 3 opened officer 2's share"
openssl cms -cmsout -print -inform DER -in "$B/share-2.cms" |
	grep -q "dhSinglePass-stdDH-sha256kdf-scheme" || fail "share KDF is not SHA-256"
echo "ok: backup: wrapped key and 5 encrypted shares"

# --- restore ------------------------------------------------------------------
"$KINJECT" ceremony request restore --backup "$B" --out "$T/r.req" >/dev/null ||
	fail "restore request"
mkdir -p "$T/b"
new_appliance "$T/b" kinjectb
N=$T/b/state
restore() {
	"$KINJECT" ceremony restore --state "$N" --hsm "$KJ_HSM_URI_P11KIT" \
		--pin-source "$KJ_HSM_PIN_SOURCE" --tpm "$KJ_SWTPM_TCTI" \
		--backup "$B" --request "$T/r.req" "$@"
}
rs=(); for s in $(sigs "$T/r.req" 2 4 5); do rs+=(--sig "$s"); done
share() {
	local k=$O/o$1.key
	[ -e "$O/o$1.kjuri" ] && k=$(cat "$O/o$1.kjuri")
	echo --share "$B/share-$1.cms" --key "$k"
}
expect_fail "too few shares: 2 given, the backup needs 3 of 5" \
	restore "${rs[@]}" $(share 2) $(share 4)
expect_fail "too few signatures" restore --sig "$T/r.req.2.sig" $(share 2) \
	$(share 4) $(share 5)
cp "$B/share-4.cms" "$T/share-4.cms"
n=$(stat -c %s "$T/share-4.cms")
printf '\x5a' | dd of="$B/share-4.cms" bs=1 seek=$((n - 20)) conv=notrunc status=none
expect_fail "$B/share-4.cms: authentication failed" \
	restore "${rs[@]}" $(share 2) $(share 4) $(share 5)
cp "$T/share-4.cms" "$B/share-4.cms"
expect_fail "$B/share-4.cms: $O/o2.key is not the key of the share's officer (/O=kinject/CN=officer 4)" \
	restore "${rs[@]}" $(share 2) --share "$B/share-4.cms" --key "$O/o2.key" $(share 5)
[ ! -e "$N/transport.pem" ] || fail "a refused restore wrote state"
echo "ok: restore refusals"
restore "${rs[@]}" $(share 2) $(share 4) $(share 5) >"$T/restore.out" 2>&1 ||
	fail "restore: $(cat "$T/restore.out")"
cmp -s "$S/transport.pem" "$N/transport.pem" || fail "another transport.pem"
expect_fail "initialisation pending" check_inputs "$N"
cp "$N/ceremony/init.req" "$T/init2.req"
"$KINJECT" ceremony apply --state "$N" "$T/init2.req" \
	$(sigs "$T/init2.req" 1 3 5) >/dev/null || fail "restored init apply"
"$KINJECT" ceremony status --state "$N" | grep "restore: transport key from a backup" >/dev/null ||
	fail "the restore approval is not in the journal"
jq -r .request "$N/ceremony/transcript.json" | jq -e '.restored_from.backup_manifest_sha256' \
	>/dev/null || fail "transcript does not say it was restored"
kj_enrol_customer "$N" "$O" 3 acme "$T/in/release.pem" >/dev/null || fail "enrol on restored"
check_inputs "$N" >"$T/check.out" || fail "restored appliance cannot decrypt: $(cat "$T/check.out")"
grep -q "AES-GCM tag OK, signature OK" "$T/check.out" || fail "check output"
echo "ok: restored with shares 2, 4, 5 (5 opened on officer 5's token): the original inputs decrypt"

# Another subset onto a third token.
mkdir -p "$T/c"
new_appliance "$T/c" kinjectc
N=$T/c/state
restore "${rs[@]}" $(share 5) $(share 1) $(share 3) >/dev/null 2>&1 ||
	fail "restore with shares 5, 1, 3"
cmp -s "$S/transport.pem" "$N/transport.pem" || fail "another transport.pem"
echo "ok: restored with shares 5, 1, 3"

# --- no secret in any file -----------------------------------------------------
if grep -rqaF "$pin" "$B" "$T/a/state" "$T/b/state" "$T/c/state"; then
	fail "the HSM PIN appears in a file"
fi
share_hex=$(openssl cms -decrypt -binary -inform DER -in "$B/share-1.cms" \
	-recip "$O/o1.pem" -inkey "$O/o1.key" 2>/dev/null | xxd -p | tr -d '\n')
[ ${#share_hex} -eq 66 ] || fail "control: share 1 did not decrypt"
for f in $(find "$B" "$T/a/state" "$T/b/state" "$T/c/state" -type f); do
	xxd -p "$f" | tr -d '\n' | grep -q "${share_hex:2}" &&
		fail "share 1 in plaintext in $f"
done
echo "ceremony_backup ok"
