# SPDX-License-Identifier: Apache-2.0
# The key ceremony for tests and the demo (docs/CEREMONY.md): officers made
# with openssl, `kinject ceremony init', the init request and every later
# request signed by M officers with openssl cms exactly as officers do.
# Source after softhsm.sh and swtpm.sh (needs $KINJECT).
#
#   kj_officers DIR N              -> DIR/o1.{key,pem} .. DIR/oN.{key,pem}
#   kj_card_officer DIR I TOKEN    officer I's key made on a second SoftHSM2
#                                  token TOKEN (a smart card's stand-in):
#                                  DIR/oI.pem, DIR/oI.uri (for openssl's
#                                  engine), DIR/oI.kjuri (for kinject: PIN
#                                  by ?pin-source=), no oI.key
#   kj_officer_sign REQ DIR I      -> REQ.I.sig, signed by officer I (with
#                                  openssl's pkcs11 engine for a card)
#   kj_ceremony_init STATE DIR N M init with officers 1..N of DIR, then
#                                  apply init.req signed by officers 1..M
#   kj_enrol_customer STATE DIR M NAME CERT
#                                  request enrol-customer, signed by 1..M,
#                                  applied
#   kj_ceremony_all STATE DIR [N] [M] [NAME] [CERT]
#                                  officers + init + enrol (default 3, 2,
#                                  acme, DIR/../release.pem unless given)
#   kj_issuing_ca STATE DIR        issue mode's CA: its key generated in
#                                  the token (label issuing, id 42),
#                                  certified by a customer root made with
#                                  openssl (DIR/root.{key,pem}, DIR/
#                                  issuing.pem), enrolled by officers 1..2
#                                  of $T/officers (after kj_appliance_setup)
#   kj_appliance_setup STATE INPUTS
#                                  the usual test appliance: an empty
#                                  SoftHSM2 token under $T, 3 officers
#                                  (2 of 3) in $T/officers, init, customer
#                                  acme's release key in INPUTS enrolled
#                                  (swtpm must be started)
# Uses KJ_HSM_URI_P11KIT, KJ_HSM_PIN_SOURCE, KJ_SWTPM_TCTI.

kj_officers() {
	local dir=$1 n=$2 i
	mkdir -p "$dir"
	for ((i = 1; i <= n; i++)); do
		openssl req -x509 -new -newkey ec \
			-pkeyopt ec_paramgen_curve:P-256 -nodes \
			-keyout "$dir/o$i.key" -subj "/O=kinject/CN=officer $i" \
			-days 3650 -out "$dir/o$i.pem" 2>/dev/null || return 1
	done
}

# Needs SOFTHSM2_CONF and KJ_HSM_MODULE (kj_softhsm_init) for the card.
kj_card_officer() {
	local dir=$1 i=$2 token=$3 pin=24682468
	softhsm2-util --init-token --free --label "$token" --so-pin 87654321 \
		--pin "$pin" >/dev/null &&
	pkcs11-tool --module "$KJ_HSM_MODULE" --token-label "$token" --login \
		--pin "$pin" --keypairgen --key-type EC:prime256v1 \
		--label "officer$i" --id 0$i >/dev/null || return 1
	echo "pkcs11:token=$token;object=officer$i;type=private;pin-value=$pin" \
		>"$dir/o$i.uri"
	(umask 077 && echo "$pin" >"$dir/o$i.pin")
	echo "pkcs11:token=$token;object=officer$i?pin-source=file:$dir/o$i.pin" \
		>"$dir/o$i.kjuri"
	rm -f "$dir/o$i.key"
	PKCS11_MODULE_PATH=$KJ_HSM_MODULE openssl req -new -x509 \
		-engine pkcs11 -keyform engine -key "$(cat "$dir/o$i.uri")" \
		-subj "/O=kinject/CN=officer $i (card)" -days 3650 \
		-out "$dir/o$i.pem" >/dev/null 2>&1
}

kj_officer_sign() {
	local req=$1 dir=$2 i=$3
	if [ -e "$dir/o$i.uri" ]; then
		PKCS11_MODULE_PATH=$KJ_HSM_MODULE openssl cms -sign -binary \
			-engine pkcs11 -keyform engine \
			-inkey "$(cat "$dir/o$i.uri")" -in "$req" \
			-signer "$dir/o$i.pem" -outform DER \
			-out "$req.$i.sig" 2>/dev/null
		return
	fi
	openssl cms -sign -binary -in "$req" -signer "$dir/o$i.pem" \
		-inkey "$dir/o$i.key" -outform DER -out "$req.$i.sig"
}

# kj_sign_apply STATE REQ DIR M: officers 1..M sign, then apply.
kj_sign_apply() {
	local state=$1 req=$2 dir=$3 m=$4 i
	local -a sigs=()
	for ((i = 1; i <= m; i++)); do
		kj_officer_sign "$req" "$dir" "$i" || return 1
		sigs+=("$req.$i.sig")
	done
	"$KINJECT" ceremony apply --state "$state" "$req" "${sigs[@]}"
}

kj_ceremony_init() {
	local state=$1 dir=$2 n=$3 m=$4 i
	local -a offs=()
	for ((i = 1; i <= n; i++)); do offs+=(--officer "$dir/o$i.pem"); done
	"$KINJECT" ceremony init --state "$state" --hsm "$KJ_HSM_URI_P11KIT" \
		--pin-source "$KJ_HSM_PIN_SOURCE" --tpm "$KJ_SWTPM_TCTI" \
		"${offs[@]}" --threshold "$m" || return 1
	cp "$state/ceremony/init.req" "$dir/init.req" &&
	kj_sign_apply "$state" "$dir/init.req" "$dir" "$m"
}

kj_enrol_customer() {
	local state=$1 dir=$2 m=$3 name=$4 cert=$5
	"$KINJECT" ceremony request enrol-customer --state "$state" \
		--name "$name" --cert "$cert" --out "$dir/enrol-$name.req" &&
	kj_sign_apply "$state" "$dir/enrol-$name.req" "$dir" "$m"
}

kj_ceremony_all() {
	local state=$1 dir=$2 n=${3:-3} m=${4:-2} name=${5:-acme} cert=${6:-}
	kj_officers "$dir" "$n" &&
	kj_ceremony_init "$state" "$dir" "$n" "$m" || return 1
	[ -z "$cert" ] || kj_enrol_customer "$state" "$dir" "$m" "$name" \
		"$cert"
}

kj_appliance_setup() {
	local state=$1 in=$2
	KJ_SOFTHSM_NO_KEY=1 kj_softhsm_init "$T" >/dev/null || return 1
	mkdir -p "$in"
	kj_customer "$in" release || return 1
	kj_ceremony_all "$state" "$T/officers" 3 2 acme "$in/release.pem" \
		>"$T/ceremony.out" 2>&1 || {
		cat "$T/ceremony.out" >&2
		return 1
	}
}

kj_issuing_ca() {
	local state=$1 dir=$2 pin
	pin=$(cat "$KJ_HSM_DIR/pin")
	pkcs11-tool --module "$KJ_HSM_MODULE" --token-label kinject --login \
		--pin "$pin" --keypairgen --key-type EC:prime256v1 \
		--label issuing --id 42 --usage-sign >/dev/null 2>&1 &&
	pkcs11-tool --module "$KJ_HSM_MODULE" --token-label kinject \
		--read-object --type pubkey --id 42 \
		-o "$dir/issuing.pub.der" >/dev/null 2>&1 &&
	openssl pkey -pubin -inform DER -in "$dir/issuing.pub.der" \
		-out "$dir/issuing.pub.pem" || return 1
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -keyout "$dir/root.key" \
		-subj "/O=acme/CN=acme device root" -days 30 \
		-out "$dir/root.pem" 2>/dev/null || return 1
	printf '%s\n' "basicConstraints=critical,CA:TRUE,pathlen:0" \
		"keyUsage=critical,keyCertSign,cRLSign" \
		"subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" \
		>"$dir/ca.ext"
	openssl x509 -new -subj "/O=acme/CN=acme device issuing CA" \
		-force_pubkey "$dir/issuing.pub.pem" -CA "$dir/root.pem" \
		-CAkey "$dir/root.key" -set_serial 7 -days 20 \
		-extfile "$dir/ca.ext" -out "$dir/issuing.pem" 2>/dev/null &&
	"$KINJECT" ceremony request enrol-issuing-ca --state "$state" \
		--name acme-devices --cert "$dir/issuing.pem" \
		--out "$dir/enrol-ica.req" >/dev/null 2>&1 &&
	kj_sign_apply "$state" "$dir/enrol-ica.req" "$T/officers" 2 \
		>/dev/null 2>&1
}
