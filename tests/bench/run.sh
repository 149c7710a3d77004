#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make bench: the QUALITY.md scenarios.  One JSON line per scenario, then a
# table.  Real swtpm, SoftHSM2, journal and checkpoints; `kinject sim' on
# the same machine; the pump (no protocol, journal or attestation) as the
# local physical bound.
set -euo pipefail
: "${BUILD:?}"
top=$(cd "$(dirname "$0")/../.." && pwd)
KINJECT=$BUILD/kinject
B=$(mktemp -d /tmp/kinject-bench.XXXXXX)
pids=()
kj_track_pid() { pids+=("$1"); }
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	kj_swtpm_stop "$B/tpm" 2>/dev/null || true
	rm -rf "$B"
}
trap cleanup EXIT
. "$top/tests/lib/softhsm.sh"
. "$top/tests/lib/inputs.sh"
. "$top/tests/lib/swtpm.sh"
. "$top/tests/lib/ceremony.sh"
T=$B # tests/lib/tls.sh makes its files in $T
. "$top/tests/lib/tls.sh"
ulimit -n "$(ulimit -Hn)"

kj_officers "$B/officers" 3 >/dev/null
mkdir -p "$B/customer"
kj_customer "$B/customer" release
# TLS scenarios (NAME ending -tls): a site CA each appliance enrols, and
# the sims' certificate (CN "sim", the sim's default site id).
kj_tls_ca siteca && kj_tls_site site sim siteca

# appliance STATE NAME: a new token, the key ceremony (2 of 3 officers),
# customer acme enrolled.  A transport key is made once per appliance, so
# each scenario's inputs are encrypted to its own.
appliance() {
	KJ_SOFTHSM_NO_KEY=1 kj_softhsm_init "$B/hsm-$2" >/dev/null &&
	kj_ceremony_all "$1" "$B/officers" 3 2 acme \
		"$B/customer/release.pem" >"$B/$2-ceremony.out" 2>&1
}
out=$B/results.jsonl

# inputs DIR FW_SIZE DEVICES STATE
inputs() {
	KJ_FW_SIZE=$2 KJ_CREDS_N=$(($3 + 100)) KJ_CREDS_DISTINCT=4 \
		kj_inputs_all "$1" "$4/transport.pem" >/dev/null
	kj_work_order "$1" 3.1.5 "$3" >/dev/null
}

# Peak VmHWM (KiB) of the keeper and of its injector children.
rss_watch() {
	local pid=$1 k=0 i=0 v
	while kill -0 "$pid" 2>/dev/null; do
		v=$(awk '/VmHWM/{print $2}' /proc/$pid/status 2>/dev/null || echo 0)
		[ "${v:-0}" -gt "$k" ] && k=$v
		for c in $(pgrep -P "$pid" 2>/dev/null); do
			v=$(awk '/VmHWM/{print $2}' /proc/$c/status 2>/dev/null || echo 0)
			[ "${v:-0}" -gt "$i" ] && i=$v
		done
		sleep 0.2
	done
	echo "$k $i"
}

# scenario NAME FW_SIZE SOCKETS DEVICES [kinject run flags]
# Each scenario is a new appliance: its own state dir and its own TPM (a
# TPM's PCRs and NV counter belong to one journal).
scenario() {
	local name=$1 size=$2 sockets=$3 devices=$4 C=$B/in-$1 S=$B/state-$1
	shift 4
	[ -n "${KJ_SWTPM_PID:-}" ] && kj_swtpm_stop "$B/tpm" >/dev/null 2>&1
	rm -rf "$B/tpm"
	kj_swtpm_start "$B/tpm" >/dev/null
	mkdir -p "$B/hsm-$name" "$C"
	appliance "$S" "$name" || { cat "$B/$name-ceremony.out"; exit 1; }
	cp "$B/customer/release.key" "$B/customer/release.pem" "$C/"
	inputs "$C" "$size" "${KJ_BENCH_CREDS:-45000}" "$S"
	kj_work_order "$C" 3.1.5 "$devices" >/dev/null
	local lst=(--listen "unix:$B/$name.sock") con=(--connect "unix:$B/$name.sock")
	if [ "${name%-tls}" != "$name" ]; then
		# --listen tls: beside unix: TLS 1.3, records as the kernel allows
		kj_tls_enrol "$S" siteca || exit 1
		local port; port=$(kj_free_port)
		lst+=(--listen "tls:127.0.0.1:$port")
		con=(--connect "tls:127.0.0.1:$port" --cert "$B/site.pem"
		     --key "$B/site.key" --ca "$S/tls.pem")
	fi
	"$KINJECT" run --state "$S" --operator bench \
		--work-order "$C/WO.json" --work-order-sig "$C/WO.json.sig" \
		--product "$C/product.json" --product-sig "$C/product.json.sig" \
		--firmware "$C/FW.cms" --credentials "$C/CREDS.cms" \
		--hsm "$KJ_HSM_URI_P11KIT" --pin-source "$KJ_HSM_PIN_SOURCE" \
		--tpm "$KJ_SWTPM_TCTI" "${lst[@]}" \
		--max-connections $((sockets + 16)) \
		--json-summary "$B/$name-run.json" "$@" >/dev/null 2>"$B/$name.err" &
	local run=$!
	kj_track_pid $run
	rss_watch $run >"$B/$name.rss" &
	"$KINJECT" sim "${con[@]}" --hwrev B \
		--sockets "$sockets" --devices "$devices" \
		--json-summary "$B/$name-sim.json" >/dev/null 2>&1 || true
	wait $run || { echo "bench: $name: kinject run failed:" >&2; cat "$B/$name.err" >&2; return 1; }
	wait
	read -r krss irss <"$B/$name.rss"
	/usr/bin/python3 - "$name" "$size" "$sockets" "$B/$name-run.json" \
		"$B/$name-sim.json" "$krss" "$irss" "$S" <<'PY' | tee -a "$out"
import json, sqlite3, sys
name, size, sockets, runf, simf, krss, irss, state = sys.argv[1:]
r = json.load(open(runf)); s = json.load(open(simf))
secs = r["elapsed_ms"] / 1000.0
def transport(r):
	t = r.get("tls", {})
	if not t.get("ktls", 0) + t.get("user_space", 0):
		return "unix"
	return "tls (%s)" % ("kTLS" if t["ktls"] else "user space")
# EVIDENCE.md §4: the ORDERLY counter reaches NV every orderly + 1
# increments; one increment per checkpoint.
db = sqlite3.connect("file:%s/journal.db?mode=ro" % state, uri=True)
orderly = int(db.execute("select value from meta where key ="
	" 'tpm_orderly_count'").fetchone()[0])
lo, hi, n = db.execute("select min(nv_counter), max(nv_counter), count(*)"
	" from checkpoints").fetchone()
nv_writes = hi // (orderly + 1) - (lo - 1) // (orderly + 1)
print(json.dumps({"scenario": name, "sockets": int(sockets),
	"firmware_bytes": int(size), "devices": r["run_ok"],
	"transport": transport(r),
	"seconds": round(secs, 3), "devices_per_s": round(r["devices_per_s"]),
	"bytes_per_s": round(r["devices_per_s"] * int(size)),
	"sim_devices_per_s": s.get("devices_per_s"),
	"p50_ms": s.get("latency_ms", {}).get("p50"),
	"p99_ms": s.get("latency_ms", {}).get("p99"),
	"fsyncs_per_s": round(r["fsyncs"] / secs, 1) if secs else None,
	"quotes_per_s": round(r["checkpoints"] / secs, 1) if secs else None,
	"nv_increments": hi - lo + 1, "checkpoints": n, "nv_writes": nv_writes,
	"nv_writes_per_h": round(n / secs * 3600 / (orderly + 1)) if secs else None,
	"keeper_peak_rss_kib": int(krss), "injector_peak_rss_kib": int(irss)}))
PY
}

"$BUILD/bench/pump" --sockets 1000 --devices 30000 --size 65536 | tee -a "$out"
"$BUILD/bench/pump" --sockets 1000 --devices 3000 --size 1048576 | tee -a "$out"
# Default cadence: COMMIT waits for the covering quote (200 ms), so with
# zero programming time a line tops out near sockets / 0.2 s.
scenario kinject-64k 65536 1000 20000
# The same over TLS 1.3 on loopback (docs/TLS.md): the handshakes signed in
# SoftHSM2 by the keeper, the records as the kernel allows.
scenario kinject-64k-tls 65536 1000 20000
scenario kinject-64k-cp50 65536 1000 30000 --checkpoint-interval 50
scenario kinject-64k-nocac 65536 1000 30000 --no-commit-after-checkpoint
scenario kinject-64k-nocac-tls 65536 1000 30000 --no-commit-after-checkpoint
scenario kinject-1m 1048576 1000 3000
scenario kinject-10k-sockets 65536 10000 40000
# Traceability: recall on 1,000,000 records (its own table below).
"$BUILD/bench/bench_recall" --kinject "$KINJECT" | tee "$B/recall.jsonl"

echo
/usr/bin/python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
pump = {r["firmware_bytes"]: r for r in rows if r["scenario"] == "pump"}
print("%-22s %7s %9s %10s %7s %7s %7s %8s %8s %7s  %s" % ("scenario",
      "sockets", "fw_bytes", "devices/s", "% pump", "p50ms", "p99ms",
      "fsync/s", "quote/s", "NVwr/h", "transport"))
for r in rows:
	p = pump.get(r["firmware_bytes"])
	frac = "" if r["scenario"] == "pump" or not p else "%.0f" % (
		100.0 * r["devices_per_s"] / p["devices_per_s"])
	print("%-22s %7d %9d %10d %7s %7s %7s %8s %8s %7s  %s" % (r["scenario"],
	      r["sockets"], r["firmware_bytes"], r["devices_per_s"], frac,
	      r.get("p50_ms", ""), r.get("p99_ms", ""),
	      r.get("fsyncs_per_s", ""), r.get("quotes_per_s", ""),
	      r.get("nv_writes_per_h", ""), r.get("transport", "")))
PY
echo
/usr/bin/python3 - "$B/recall.jsonl" <<'PY'
import json, sys
print("%-66s %8s %s" % ("audit query on 1,000,000 records", "seconds", "< 1 s"))
for r in (json.loads(l) for l in open(sys.argv[1])):
	print("%-66s %8.3f %s" % (r["query"][:66], r["seconds"],
	      "yes" if r["under_1s"] else "NO"))
PY
