# SPDX-License-Identifier: Apache-2.0
# Customer inputs made with the openssl command line exactly as SPEC.md §3
# shows (docs/INPUTS.md).  Source it, then call the functions; every file is
# written under the directory given.  Fast: one key pair per customer, the
# device credentials reuse a few key pairs (KJ_CREDS_DISTINCT), each with a
# certificate of its own.
#
#   kj_transport_cert DIR PUB.pem            -> DIR/transport.pem
#   kj_customer DIR [NAME]                   -> DIR/NAME.key, DIR/NAME.pem
#   kj_envelope IN OUT TRANSPORT SIGNER KEY  sign (attached) + encrypt
#   kj_firmware DIR [SIZE] [MARKER]          -> DIR/fw.bin, DIR/FW.cms
#   kj_creds DIR [N] [START]                 -> DIR/creds.jsonl, DIR/CREDS.cms
#   kj_sign_detached FILE SIGNER KEY         -> FILE.sig
#   kj_work_order DIR [VERSION] [QTY] [HWREVS] -> DIR/WO.json + .sig
#   kj_product DIR [MIN] [RULE_B] [RULE_C]   -> DIR/product.json + .sig
#   kj_inputs_all DIR TRANSPORT              everything above with defaults
#                      (env: KJ_FW_SIZE, KJ_FW_MARKER, KJ_CREDS_N,
#                       KJ_CREDS_DISTINCT, KJ_WO_VERSION, KJ_WO_QTY;
#                       KJ_CREDS_NOKEY=1: no "key" in the batch;
#                       KJ_WO_EXTRA / KJ_PRODUCT_EXTRA: more JSON members,
#                       e.g. '"credential_mode": "inject"')
#
# The release key is DIR/release.{key,pem} (kept if it exists: the officers
# may have enrolled it already).  TRANSPORT is the appliance's transport.pem
# (the ceremony's, copied to DIR) or, for tests without an appliance, a
# public key PEM: transport.pem is then issued by a throw-away test CA.

KJ_INPUTS_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kj_ossl() { openssl "$@" 2>"${KJ_OSSL_ERR:-/dev/null}"; }

kj_transport_cert() {
	local dir=$1 pub=$2
	kj_ossl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -keyout "$dir/test-ca.key" -subj "/CN=kinject test CA" \
		-days 3650 -out "$dir/test-ca.pem" || return 1
	printf '%s\n' "subjectKeyIdentifier=hash" \
		"keyUsage=critical,keyAgreement" >"$dir/transport.ext"
	kj_ossl x509 -new -subj "/CN=kinject transport" -force_pubkey "$pub" \
		-CA "$dir/test-ca.pem" -CAkey "$dir/test-ca.key" \
		-set_serial 0x"$(openssl rand -hex 8)" -days 3650 \
		-extfile "$dir/transport.ext" -out "$dir/transport.pem"
}

kj_customer() {
	local dir=$1 name=${2:-release}
	kj_ossl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -keyout "$dir/$name.key" -subj "/O=acme/CN=$name" \
		-days 3650 -out "$dir/$name.pem"
}

# SPEC.md §3.1: sign attached binary, then AES-256-GCM to the transport key.
kj_envelope() {
	local in=$1 out=$2 transport=$3 signer=$4 key=$5
	kj_ossl cms -sign -binary -nodetach -in "$in" -signer "$signer" \
		-inkey "$key" -outform DER -out "$out.signed" || return 1
	kj_ossl cms -encrypt -binary -aes-256-gcm -recip "$transport" \
		-keyopt ecdh_kdf_md:sha256 -in "$out.signed" -outform DER \
		-out "$out" || return 1
	rm -f "$out.signed"
}

kj_firmware() {
	local dir=$1 size=${2:-1048576} marker=${3:-}
	head -c "$size" /dev/urandom >"$dir/fw.bin"
	# A marker planted in the middle, for "plaintext only in the arena".
	[ -z "$marker" ] || printf '%s' "$marker" |
		dd of="$dir/fw.bin" bs=1 seek=$((size / 2)) conv=notrunc \
			status=none
	kj_envelope "$dir/fw.bin" "$dir/FW.cms" "$dir/transport.pem" \
		"$dir/release.pem" "$dir/release.key"
}

# N lines, indexes START..START+N-1, KJ_CREDS_DISTINCT key pairs cycled,
# a certificate of its own per line (tests/lib/gencreds.py).
kj_creds() {
	local dir=$1 n=${2:-1000} start=${3:-0} k=${KJ_CREDS_DISTINCT:-4}
	python3 "$KJ_INPUTS_LIB/gencreds.py" "$dir/creds.jsonl" "$n" "$start" \
		"$k" ${KJ_CREDS_NOKEY:+nokey} || return 1
	kj_envelope "$dir/creds.jsonl" "$dir/CREDS.cms" "$dir/transport.pem" \
		"$dir/release.pem" "$dir/release.key"
}

kj_sign_detached() {
	local file=$1 signer=$2 key=$3
	kj_ossl cms -sign -binary -in "$file" -signer "$signer" -inkey "$key" \
		-outform DER -out "$file.sig"
}

# SPEC.md §3.3.  HWREVS is a JSON list body, e.g. '"B", "C"'.
kj_work_order() {
	local dir=$1 version=${2:-3.1.5} qty=${3:-800} hw=${4:-'"B", "C"'}
	local sha
	sha=$(sha256sum "$dir/fw.bin" | cut -d' ' -f1)
	cat >"$dir/WO.json" <<-JSON
	{"kinject_work_order": 1, "id": "WO-2027-0315", "customer": "acme",
	 "product": "acme-sensor", "batch": "LOT-2027-0315", "quantity": $qty,
	 "max_failed": ${KJ_WO_MAX_FAILED:-200}, "hardware_revisions": [$hw],
	 "firmware": {"version": "$version", "sha256": "$sha"},
	 "serial": {"prefix": "AS", "start": 10000}${KJ_WO_EXTRA:+, $KJ_WO_EXTRA}}
	JSON
	kj_sign_detached "$dir/WO.json" "$dir/release.pem" "$dir/release.key"
}

# SPEC.md §3.4.  KJ_PRODUCT_VERSION: the matrix "version" (default 1).
kj_product() {
	local dir=$1 min=${2:-3.0.0} rb=${3:-'>=3.0.0 <4.0.0'} rc=${4:-'>=3.1.0'}
	cat >"$dir/product.json" <<-JSON
	{"kinject_product": 1, "product": "acme-sensor", "customer": "acme",
	 "version": ${KJ_PRODUCT_VERSION:-1}, "min_firmware": "$min",
	 "hardware": {"B": {"firmware": "$rb"}, "C": {"firmware": "$rc"}}${KJ_PRODUCT_EXTRA:+, $KJ_PRODUCT_EXTRA}}
	JSON
	kj_sign_detached "$dir/product.json" "$dir/release.pem" \
		"$dir/release.key"
}

# Everything, with defaults (see the environment variables above).
kj_inputs_all() {
	local dir=$1 tr=$2
	mkdir -p "$dir"
	if grep -q "BEGIN CERTIFICATE" "$tr"; then
		cp "$tr" "$dir/transport.pem"
	else
		kj_transport_cert "$dir" "$tr"
	fi || return 1
	[ -e "$dir/release.key" ] || kj_customer "$dir" release || return 1
	kj_firmware "$dir" "${KJ_FW_SIZE:-1048576}" "${KJ_FW_MARKER:-}" &&
	kj_creds "$dir" "${KJ_CREDS_N:-1000}" 0 &&
	kj_work_order "$dir" "${KJ_WO_VERSION:-3.1.5}" "${KJ_WO_QTY:-800}" &&
	kj_product "$dir"
}
