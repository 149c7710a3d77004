# SPDX-License-Identifier: Apache-2.0
# A throw-away SoftHSM2 token with the EC P-256 transport key generated
# inside it (sensitive, never extractable), for tests and the demo.
#
#   . tests/lib/softhsm.sh
#   kj_softhsm_init DIR [TOKEN_LABEL] [KEY_LABEL]
#
# Exports: SOFTHSM2_CONF (the token lives under DIR/softhsm), KJ_HSM_MODULE,
# KJ_HSM_URI (pkcs11:token=...;object=...;id=%01?module-path=...),
# KJ_HSM_URI_P11KIT (same without module-path: p11-kit's registered modules),
# KJ_HSM_PIN_SOURCE (file:DIR/softhsm/pin), KJ_HSM_SO_PIN.
# Writes DIR/softhsm/transport.pub.pem (the public key, read from the token).
# KJ_SOFTHSM_NO_KEY=1: an empty token (the key ceremony generates the
# transport key: `kinject ceremony init', tests/lib/ceremony.sh).
# KJ_SOFTHSM_PIN: the user PIN (default 123456).

kj_softhsm_module() {
	local m
	for m in /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
		/usr/lib/softhsm/libsofthsm2.so \
		/usr/lib/"$(uname -m)"-linux-gnu/softhsm/libsofthsm2.so; do
		[ -e "$m" ] && { echo "$m"; return 0; }
	done
	echo "softhsm.sh: libsofthsm2.so not found (apt-get install softhsm2)" >&2
	return 1
}

kj_softhsm_init() {
	local dir=$1 token=${2:-kinject} key=${3:-transport} d
	d=$(cd "$dir" && pwd)/softhsm
	mkdir -p "$d/tokens"
	chmod 700 "$d"
	KJ_HSM_MODULE=$(kj_softhsm_module) || return 1
	cat >"$d/softhsm2.conf" <<-CONF
	directories.tokendir = $d/tokens
	objectstore.backend = file
	log.level = ERROR
	slots.removable = false
	CONF
	export SOFTHSM2_CONF=$d/softhsm2.conf
	KJ_HSM_SO_PIN=12345678
	local pin=${KJ_SOFTHSM_PIN:-123456}
	(umask 077 && printf '%s\n' "$pin" >"$d/pin")
	softhsm2-util --init-token --free --label "$token" \
		--so-pin "$KJ_HSM_SO_PIN" --pin "$pin" >/dev/null || return 1
	if [ "${KJ_SOFTHSM_NO_KEY:-}" != 1 ]; then
		pkcs11-tool --module "$KJ_HSM_MODULE" --token-label "$token" \
			--login --pin "$pin" --keypairgen \
			--key-type EC:prime256v1 --label "$key" --id 01 \
			--usage-derive --usage-sign >/dev/null || return 1
		pkcs11-tool --module "$KJ_HSM_MODULE" --token-label "$token" \
			--read-object --type pubkey --label "$key" \
			-o "$d/transport.pub.der" >/dev/null 2>&1 || return 1
		openssl pkey -pubin -inform DER -in "$d/transport.pub.der" \
			-out "$d/transport.pub.pem" || return 1
	fi
	export KJ_HSM_MODULE KJ_HSM_SO_PIN
	export KJ_HSM_URI_P11KIT="pkcs11:token=$token;object=$key;id=%01"
	export KJ_HSM_URI="$KJ_HSM_URI_P11KIT?module-path=$KJ_HSM_MODULE"
	export KJ_HSM_PIN_SOURCE="file:$d/pin"
	KJ_HSM_DIR=$d
	export KJ_HSM_DIR
}
