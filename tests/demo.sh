#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make demo: the main job on embedded defaults, from nothing.
#   a throw-away swtpm (with an EK certificate) and an empty SoftHSM2 token,
#   five officer keys and the key ceremony (3 of 5: init, then the demo
#   customer enrolled; docs/CEREMONY.md), customer inputs made with the
#   openssl CLI as SPEC.md §3 shows,
#   `kinject run' serving 64 simulated sockets (`kinject sim') for 1,000
#   devices, then the evidence exported and verified offline.
# KJ_DEMO_DIR keeps everything there (default: a new temp dir, kept).
# Every process started here is stopped on exit, also on Ctrl-C.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
KINJECT=${KINJECT:-$top/build/kinject}
DEVICES=${KJ_DEMO_DEVICES:-1000}
SOCKETS=${KJ_DEMO_SOCKETS:-64}
D=${KJ_DEMO_DIR:-$(mktemp -d /tmp/kinject-demo.XXXXXX)}
mkdir -p "$D"
D=$(cd "$D" && pwd)
pids=()

cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "${KJ_SWTPM_PID:-}" ] && kj_swtpm_stop "$D/tpm" 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM
kj_track_pid() { pids+=("$1"); }

. "$top/tests/lib/softhsm.sh"
. "$top/tests/lib/inputs.sh"
. "$top/tests/lib/swtpm.sh"
. "$top/tests/lib/ceremony.sh"

step() { printf '\n== %s\n' "$*"; }

step "software TPM (swtpm) and HSM token (SoftHSM2) under $D"
kj_swtpm_start "$D/tpm" --ek-cert >/dev/null
KJ_SOFTHSM_NO_KEY=1 kj_softhsm_init "$D" >/dev/null
echo "TPM:  $KJ_SWTPM_TCTI (EK certificate from swtpm's local CA)"
echo "HSM:  $KJ_HSM_URI_P11KIT (empty token)"

step "key ceremony: 5 officers, threshold 3 (docs/CEREMONY.md)"
O=$D/officers
kj_officers "$O" 5
kj_ceremony_init "$D/state" "$O" 5 3
C=$D/customer
mkdir -p "$C"
kj_customer "$C" release
echo "-- officers 1-3 enrol the demo customer acme"
kj_enrol_customer "$D/state" "$O" 3 acme "$C/release.pem"
"$KINJECT" ceremony status --state "$D/state"

step "customer inputs with the openssl command line (SPEC.md §3)"
KJ_FW_SIZE=65536 KJ_CREDS_N=$((DEVICES + DEVICES / 5)) \
	kj_inputs_all "$C" "$D/state/transport.pem"
kj_work_order "$C" 3.1.5 "$DEVICES"
ls "$C" | tr '\n' ' '; echo

step "kinject run: $DEVICES devices over $SOCKETS simulated sockets"
"$KINJECT" run --state "$D/state" --operator demo \
	--work-order "$C/WO.json" --work-order-sig "$C/WO.json.sig" \
	--product "$C/product.json" --product-sig "$C/product.json.sig" \
	--firmware "$C/FW.cms" --credentials "$C/CREDS.cms" \
	--hsm "$KJ_HSM_URI_P11KIT" --pin-source "$KJ_HSM_PIN_SOURCE" \
	--tpm "$KJ_SWTPM_TCTI" --listen "unix:$D/line.sock" \
	--json-summary "$D/run-summary.json" >"$D/run.out" 2>"$D/run.err" &
run_pid=$!
kj_track_pid $run_pid
"$KINJECT" sim --connect "unix:$D/line.sock" --hwrev B --site demo-line \
	--sockets "$SOCKETS" --devices "$DEVICES" \
	--json-summary "$D/sim-summary.json" || sim_rc=$?
run_rc=0
wait $run_pid || run_rc=$?
cat "$D/run.out"
[ "$run_rc" -eq 0 ] || { cat "$D/run.err"; echo "demo: kinject run exit $run_rc"; exit 1; }
[ "${sim_rc:-0}" -eq 0 ] || [ "${sim_rc:-0}" -eq 3 ] ||
	{ echo "demo: kinject sim exit $sim_rc"; exit 1; }

if "$KINJECT" help evidence >/dev/null 2>&1; then
	step "evidence export and offline verification (EVIDENCE.md §5-6)"
	job=$(sed -n 's/.*"id": *"\([^"]*\)".*/\1/p' "$C/WO.json")
	"$KINJECT" evidence export --state "$D/state" --job "$job" \
		--out "$D/evidence.json"
	# --ek-ca: swtpm's local CA stands in for the TPM vendor's.
	"$KINJECT" verify "$D/evidence.json" --ak "$D/state/ak.pem" \
		--work-order "$C/WO.json" --ek-ca "$D/tpm/ca/issuercert.pem"
fi

step "where things are"
echo "journal:   $D/state/journal.db   (sqlite3 $D/state/journal.db 'select count(*) from records')"
echo "summary:   $D/run-summary.json"
[ -e "$D/evidence.json" ] && echo "evidence:  $D/evidence.json (AK: $D/state/ak.pem)"
echo "inputs:    $C"
