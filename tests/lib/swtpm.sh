#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A throwaway software TPM (swtpm) for tests, on free loopback ports with its
# state in a temp dir.
#
# Sourced (integration tests, after common.sh):
#   kj_swtpm_start DIR [--ek-cert]   sets KJ_SWTPM_TCTI, KJ_SWTPM_PID and,
#                                    under common.sh, tracks the pid
#   kj_swtpm_stop DIR
# Executed (C unit tests):
#   tests/lib/swtpm.sh start DIR [--ek-cert]   prints the TCTI string
#   tests/lib/swtpm.sh stop DIR
#
# --ek-cert runs swtpm_setup first: RSA + ECC EKs and their certificates,
# issued by a local CA kept in DIR (never the system's /var/lib one).
# swtpm listens on PORT (TPM) and PORT+1 (control); the swtpm TCTI assumes
# that pairing.  The TPM gets TPM2_Startup(CLEAR) via tpm2_startup -c.

kj_swtpm_setup_certs() {
	local dir=$1
	mkdir -p "$dir/ca"
	cat >"$dir/ca/localca.conf" <<EOC
statedir = $dir/ca
signingkey = $dir/ca/signkey.pem
issuercert = $dir/ca/issuercert.pem
certserial = $dir/ca/certserial
EOC
	cat >"$dir/ca/localca.options" <<EOC
--platform-manufacturer kinject-test
--platform-version 1
--platform-model swtpm
EOC
	cat >"$dir/ca/setup.conf" <<EOC
create_certs_tool = /usr/bin/swtpm_localca
create_certs_tool_config = $dir/ca/localca.conf
create_certs_tool_options = $dir/ca/localca.options
active_pcr_banks = sha256
EOC
	swtpm_setup --tpm2 --tpm-state "$dir/state" --createek \
		--create-ek-cert --config "$dir/ca/setup.conf" \
		--logfile "$dir/setup.log" --overwrite >/dev/null 2>&1 || {
		echo "swtpm.sh: swtpm_setup failed: $(tail -n 5 "$dir/setup.log")" >&2
		return 1
	}
}

kj_swtpm_start() {
	local dir=$1 ekcert=${2:-} port i tcti
	mkdir -p "$dir/state"
	if [ "$ekcert" = --ek-cert ]; then
		kj_swtpm_setup_certs "$dir" || return 1
	fi
	for i in $(seq 1 30); do
		# Even port in the dynamic range; bind failure means try another.
		port=$(( (RANDOM % 10000) * 2 + 30000 ))
		rm -f "$dir/swtpm.pid"
		if swtpm socket --tpm2 --tpmstate dir="$dir/state" \
			--server type=tcp,port=$port,bindaddr=127.0.0.1 \
			--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
			--flags not-need-init --daemon \
			--pid file="$dir/swtpm.pid" \
			--log file="$dir/swtpm.log" 2>>"$dir/swtpm.err"; then
			tcti="swtpm:host=127.0.0.1,port=$port"
			break
		fi
	done
	[ -n "${tcti:-}" ] || { echo "swtpm.sh: no free port pair" >&2; return 1; }
	KJ_SWTPM_PID=$(cat "$dir/swtpm.pid")
	echo "$tcti" >"$dir/tcti"
	if declare -F kj_track_pid >/dev/null; then kj_track_pid "$KJ_SWTPM_PID"; fi
	if ! tpm2_startup -c -T "$tcti" 2>>"$dir/swtpm.err"; then
		echo "swtpm.sh: tpm2_startup -c failed on $tcti" >&2
		kj_swtpm_stop "$dir"
		return 1
	fi
	KJ_SWTPM_TCTI=$tcti
	export KJ_SWTPM_TCTI KJ_SWTPM_PID
}

kj_swtpm_stop() {
	local dir=$1 pid i
	[ -f "$dir/swtpm.pid" ] || return 0
	pid=$(cat "$dir/swtpm.pid")
	kill "$pid" 2>/dev/null || true
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.02
	done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$dir/swtpm.pid"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -u
	case "${1:-}" in
	start) kj_swtpm_start "$2" "${3:-}" && echo "$KJ_SWTPM_TCTI" ;;
	stop) kj_swtpm_stop "$2" ;;
	*) echo "usage: $0 start DIR [--ek-cert] | stop DIR" >&2; exit 2 ;;
	esac
fi

# MAKER: the unit test's evidence state maker (journal, TPM and checkpoint
# APIs as the keeper drives them), beside $KINJECT; skip (77) if unbuilt.
kj_evidence_maker() {
	MAKER=$(dirname "$KINJECT")/tests/test_evidence
	if [ ! -x "$MAKER" ]; then
		echo "skip: $MAKER not built (make check-unit builds it)"
		exit 77
	fi
}
