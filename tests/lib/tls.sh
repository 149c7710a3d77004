# SPDX-License-Identifier: Apache-2.0
# Site CAs and site certificates for `--listen tls:' tests (docs/TLS.md),
# made with the openssl CLI.  Source after job.sh (needs $T, $KINJECT and
# the officers of kj_appliance_setup in $T/officers).
#   kj_tls_ca NAME               -> $T/NAME.{pem,key}, a P-256 site CA
#   kj_tls_enrol STATE NAME      enrol $T/NAME.pem (officers 1 and 2)
#   kj_tls_site FILE CN CA       -> $T/FILE.{pem,key}: client certificate
#                                   with subject CN, signed by $T/CA
#   kj_tls_expired FILE CN CA    the same, valid from 3 to 2 days ago
#   kj_free_port                 a TCP port free on 127.0.0.1 just now
#   kj_tls_verify STATE          the job of $T/in/WO.json exported and
#                                   `kinject verify' passing

kj_tls_ca() {
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
		-nodes -keyout "$T/$1.key" -subj "/O=site/CN=$1 CA" \
		-days 30 -out "$T/$1.pem" 2>/dev/null
}

kj_tls_enrol() {
	"$KINJECT" ceremony request enrol-site-ca --state "$1" --name "$2" \
		--cert "$T/$2.pem" --out "$T/site-$2.req" >/dev/null &&
	kj_sign_apply "$1" "$T/site-$2.req" "$T/officers" 2 >/dev/null
}

kj_tls_client_ext() {
	printf '%s\n' 'basicConstraints=critical,CA:FALSE' \
		'keyUsage=critical,digitalSignature' \
		'extendedKeyUsage=clientAuth' >"$T/client.ext"
}

kj_tls_site() {
	kj_tls_client_ext
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$T/$1.key" -subj "/O=site/CN=$2" -out "$T/$1.csr" \
		2>/dev/null &&
	openssl x509 -req -in "$T/$1.csr" -CA "$T/$3.pem" -CAkey "$T/$3.key" \
		-CAcreateserial -days 30 -extfile "$T/client.ext" \
		-out "$T/$1.pem" 2>/dev/null
}

# openssl x509 cannot backdate; openssl ca sets both dates.
kj_tls_expired() {
	local d=$T/ca-$3
	mkdir -p "$d" && : >"$d/index.txt" && echo 01 >"$d/serial" &&
	printf '%s\n' '[ca]' 'default_ca = c' '[c]' "database = $d/index.txt" \
		"new_certs_dir = $d" "serial = $d/serial" 'default_md = sha256' \
		'policy = p' 'x509_extensions = ext' '[p]' \
		'commonName = supplied' 'organizationName = optional' '[ext]' \
		'basicConstraints = critical,CA:FALSE' \
		'keyUsage = critical,digitalSignature' \
		'extendedKeyUsage = clientAuth' >"$d/ca.cnf" &&
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$T/$1.key" -subj "/O=site/CN=$2" -out "$T/$1.csr" \
		2>/dev/null &&
	openssl ca -batch -config "$d/ca.cnf" -cert "$T/$3.pem" \
		-keyfile "$T/$3.key" -in "$T/$1.csr" -out "$T/$1.pem" \
		-startdate "$(date -u -d '-3 days' +%Y%m%d%H%M%SZ)" \
		-enddate "$(date -u -d '-2 days' +%Y%m%d%H%M%SZ)" >/dev/null 2>&1
}

kj_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

kj_tls_verify() {
	local job
	job=$(jq -r .id "$T/in/WO.json")
	"$KINJECT" evidence export --state "$1" --job "$job" --out "$T/ev.json" \
		>/dev/null 2>&1 || fail "evidence export"
	"$KINJECT" verify "$T/ev.json" --ak "$1/ak.pem" >"$T/v.out" 2>&1 ||
		fail "verify: $(cat "$T/v.out")"
	echo "ok: kinject verify passes"
}
