#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make bench: the QUALITY.md scenarios.  One JSON line per scenario, then a
# table.  Real swtpm, SoftHSM2, journal and checkpoints; `kinject sim' on
# the same machine; the pump (no protocol, journal or attestation) as the
# local physical bound.
set -euo pipefail
: "${BUILD:?}"
top=$(cd "$(dirname "$0")/../.." && pwd)
KINJECT=${KJ_BENCH_KINJECT:-$BUILD/kinject}
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
# The load generators, `kinject sim' and the pump's client, run as the same
# number of event loops (threads), by default one per core, so that they
# are not the bound: KJ_BENCH_WORKERS=1 is the single-loop generator of
# earlier tables.  Every JSON line records it.
W=${KJ_BENCH_WORKERS:-$(nproc)}
# (the flag only where it says something: KJ_BENCH_KINJECT may be a build
# from before --workers, for before/after runs of the sim at W = 1)
simw=; [ "$W" = 1 ] || simw="--workers $W"

# inputs DIR FW_SIZE DEVICES STATE
inputs() {
	KJ_FW_SIZE=$2 KJ_CREDS_N=$(($3 + 100)) KJ_CREDS_DISTINCT=4 \
		kj_inputs_all "$1" "$4/transport.pem" >/dev/null
	kj_work_order "$1" 3.1.5 "$3" >/dev/null
}

# [PD=MS] scenario NAME FW_SIZE SOCKETS DEVICES [kinject run flags]
# Each scenario is a new appliance: its own state dir and its own TPM (a
# TPM's PCRs and NV counter belong to one journal).  PD: the sim's
# programming delay per device (--program-delay-ms), 0 by default.
scenario() {
	local name=$1 size=$2 sockets=$3 devices=$4 C=$B/in-$1 S=$B/state-$1
	local pd=${PD:-0}
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
	local wrap=() simpd=()
	[ "$pd" = 0 ] || simpd=(--program-delay-ms "$pd")
	bench_lock
	local swrap=()
	[ -n "${KJ_BENCH_WRAP:-}" ] && eval "wrap=($KJ_BENCH_WRAP)"
	[ -n "${KJ_BENCH_SIM_WRAP:-}" ] && eval "swrap=($KJ_BENCH_SIM_WRAP)"
	rm -f "$B/$name.simpid"
	"${wrap[@]}" "$KINJECT" run --state "$S" --operator bench \
		--work-order "$C/WO.json" --work-order-sig "$C/WO.json.sig" \
		--product "$C/product.json" --product-sig "$C/product.json.sig" \
		--firmware "$C/FW.cms" --credentials "$C/CREDS.cms" \
		--hsm "$KJ_HSM_URI_P11KIT" --pin-source "$KJ_HSM_PIN_SOURCE" \
		--tpm "$KJ_SWTPM_TCTI" "${lst[@]}" \
		${KJ_BENCH_MAXCONN:+--max-connections "$KJ_BENCH_MAXCONN"} \
		--json-summary "$B/$name-run.json" "$@" >/dev/null 2>"$B/$name.err" &
	local run=$!
	kj_track_pid $run
	/usr/bin/python3 "$top/tests/bench/procwatch.py" $run "$B/$name.simpid" \
		"$B/$name.proc.json" "${KJ_SWTPM_PID:-}" &
	local watch=$!
	"${swrap[@]}" "$KINJECT" sim "${con[@]}" --hwrev B \
		--sockets "$sockets" --devices "$devices" $simw "${simpd[@]}" \
		${KJ_BENCH_SIM_FLAGS:-} \
		${KJ_BENCH_STAGES:+--device-log "$B/$name-dev.jsonl"} \
		--json-summary "$B/$name-sim.json" >/dev/null 2>&1 &
	echo $! >"$B/$name.simpid"
	wait $! || true
	wait $run || { echo "bench: $name: kinject run failed:" >&2; cat "$B/$name.err" >&2; return 1; }
	wait $watch
	bench_unlock
	local interval=200
	[[ " $* " =~ --checkpoint-interval\ ([0-9]+) ]] &&
		interval=${BASH_REMATCH[1]}
	# Without commit-after-checkpoint no COMMIT waits for a quote.
	[[ " $* " == *" --no-commit-after-checkpoint "* ]] && interval=0
	/usr/bin/python3 - "$name" "$size" "$sockets" "$B/$name-run.json" \
		"$B/$name-sim.json" "$B/$name.proc.json" "$S" "$interval" "$W" \
		"$pd" <<'PY' | tee -a "$out"
import json, os, sqlite3, sys
name, size, sockets, runf, simf, procf, state, interval, workers, pd = \
	sys.argv[1:]
r = json.load(open(runf)); s = json.load(open(simf)); pr = json.load(open(procf))
def transport(r):
	t = r.get("tls", {})
	if not t.get("ktls", 0) + t.get("user_space", 0):
		return "unix"
	return "tls (%s)" % ("kTLS" if t["ktls"] else "user space")
dev = max(r["run_ok"], 1); gb = dev * int(size) / 1e9
secs = r["elapsed_ms"] / 1000.0
# EVIDENCE.md §4: the ORDERLY counter reaches NV every orderly + 1
# increments; one increment per checkpoint.
db = sqlite3.connect("file:%s/journal.db?mode=ro" % state, uri=True)
orderly = int(db.execute("select value from meta where key ="
	" 'tpm_orderly_count'").fetchone()[0])
lo, hi, n = db.execute("select min(nv_counter), max(nv_counter), count(*)"
	" from checkpoints").fetchone()
nv_writes = hi // (orderly + 1) - (lo - 1) // (orderly + 1)
def quote_clock(a):
	# TPMS_ATTEST: magic, type, qualifiedSigner and extraData (TPM2Bs),
	# then clockInfo.clock (ms, big-endian).
	o = 6
	for _ in range(2):
		o += 2 + int.from_bytes(a[o:o + 2], "big")
	return int.from_bytes(a[o:o + 8], "big")
def quote_rate(db):
	c = [quote_clock(a) for (a,) in db.execute(
		"select quote_attest from checkpoints order by id")]
	span = (c[-1] - c[0]) / 1000.0 if len(c) > 1 else 0
	return round((len(c) - 1) / span, 2) if span > 0 else None
print(json.dumps({"scenario": name, "sockets": int(sockets),
	"firmware_bytes": int(size), "devices": r["run_ok"],
	"workers": int(workers),
	"program_delay_ms": int(pd),
	"transport": transport(r),
	"seconds": round(secs, 3),
	# As the sites saw it (the sim, from the first OFFER to the last
	# COMMIT), like the pump's client; the keeper's own rate also counts
	# its wait for the first connection and the 1 s grace at the end.
	"devices_per_s": round(s["devices_per_s"]),
	# Between the first and the last wave (as many COMMITs as sockets
	# done, as many to go): the line in operation, set against the
	# pump's own steady rate.
	"steady_devices_per_s": round(s.get("steady_devices_per_s") or 0)
		or None,
	"bytes_per_s": round(s["devices_per_s"] * int(size)),
	"run_devices_per_s": round(r["devices_per_s"]),
	"p50_ms": s.get("latency_ms", {}).get("p50"),
	"p99_ms": s.get("latency_ms", {}).get("p99"),
	# After each socket's first device: the line in operation, not its
	# start, when every socket's first HELLO goes out at once (SIM.md).
	"p50_steady_ms": s.get("latency_steady_ms", {}).get("p50"),
	"p99_steady_ms": s.get("latency_steady_ms", {}).get("p99"),
	"fsyncs_per_s": round(r["fsyncs"] / secs, 1) if secs else None,
	# The quote rate: quotes after the first over the TPM's own clock
	# from the first quote to the last (the first and the job's final
	# one both in a run of a few seconds made n / run time read above
	# 1/interval although no two quotes start closer than an interval).
	"quotes_per_s": quote_rate(db),
	"quote_ms_mean": round(r["quote_ms_total"] / max(r["checkpoints"], 1), 1),
	"quote_ms_max": r["quote_ms_max"],
	"checkpoint_interval_ms": int(interval) or None,
	# COMMIT waits for a quote covering the record: at most sockets /
	# (interval + quote time) devices/s (QUALITY.md).  With a programming
	# delay the sockets spend their time programming: that bound is not
	# the one that binds (the pump with the same delay is).
	"cadence_bound_per_s": round(int(sockets) / ((int(interval) + r[
		"quote_ms_total"] / max(r["checkpoints"], 1)) / 1000.0))
		if int(interval) and not int(pd) else None,
	"nv_increments": hi - lo + 1, "checkpoints": n, "nv_writes": nv_writes,
	"nv_writes_per_h": round(n / secs * 3600 / (orderly + 1)) if secs else None,
	"keeper_peak_rss_kib": pr["keeper"]["hwm_kib"],
	"injector_peak_rss_kib": pr["injectors"]["hwm_kib"],
	"load1": round(os.getloadavg()[0], 2),
	# CPU (user+sys) per device and per GB, voluntary + involuntary
	# context switches per device, in each process (procwatch.py).
	"per_process": {k: {"cpu_us_per_device": round(v["cpu_s"] / dev * 1e6, 1),
		"sys_share": round(v["sys_s"] / v["cpu_s"], 2) if v["cpu_s"] else 0,
		"cpu_s_per_gb": round(v["cpu_s"] / gb, 3),
		"cs_per_device": round((v["vcs"] + v["nvcs"]) / dev, 3),
		"procs": v["procs"]} for k, v in pr.items()}}))
PY
# KJ_BENCH_STAGES=1: where each device's latency went (stages.py), after
# the scenario's line (the sim's device log costs it a little CPU).
[ -z "${KJ_BENCH_STAGES:-}" ] ||
	/usr/bin/python3 "$top/tests/bench/stages.py" "$B/$name-dev.jsonl" \
		"$S/journal.db" >&2
}

# KJ_BENCH_WORKERS=N: the load generators' event loops (default nproc).
# KJ_BENCH_ONLY="REGEX": run only the scenarios whose name matches (the
# pumps are pump-64k-1000, pump-64k-10000, pump-1m-1000, pump-64k-1000-pd;
# the naive line is naive-64k-1000, naive-64k-10000, naive-1m-1000).
# KJ_BENCH_WRAP: a prefix for `kinject run'
# (e.g. 'perf record -g -o /tmp/$name.data --'), KJ_BENCH_SIM_WRAP the
# same for `kinject sim'.
# KJ_BENCH_LOCK=FILE: hold flock(FILE) while measuring only (not while
# setting up), so that other work sharing the machine waits meanwhile.
bench_lock() { [ -z "${KJ_BENCH_LOCK:-}" ] || { exec 9>"$KJ_BENCH_LOCK" && flock 9; }; }
bench_unlock() { [ -z "${KJ_BENCH_LOCK:-}" ] || exec 9>&-; }
want() { [[ $1 =~ ${KJ_BENCH_ONLY:-.} ]]; }
pump() {
	bench_lock
	"$BUILD/bench/pump" "$@" | /usr/bin/python3 -c 'import json, os, sys
r = json.loads(sys.stdin.read()); r["load1"] = round(os.getloadavg()[0], 2)
print(json.dumps(r))' | tee -a "$out"
	bench_unlock
}
# QUALITY.md's second "pipeline full" shape: 1,000 sockets at true
# default settings, each device held PD_MS ms by its site between the last
# byte received and its READBACK, as a site programming the chip would
# (`kinject sim --program-delay-ms', pump --program-delay-ms).  Why 300 ms
# (docs/PERFORMANCE.md "The pipeline full by a programming delay"): COMMIT
# waits for the next 200 ms checkpoint, so with one fixed delay for every
# device the line locks to the cadence, each socket's cycle a whole number
# of intervals, and kinject's share of the pump is a sawtooth in the delay
# (measured: 51 % at 200 ms, 63 % at 250, 75 % at 300, 84 % at 350, 67 %
# at 400, 82 % at 500).  300 ms is the middle of "a few hundred ms", on
# neither a peak nor a trough, and there the sawtooth equals what a line
# whose programming times vary gets on average: delay / (delay + interval
# / 2).  KJ_BENCH_PD_MS sets another.
PD_MS=${KJ_BENCH_PD_MS:-300}
# The pump at every shape kinject runs at: hashing every byte as a site
# does (the bound for the same load generator work) and bare (--no-hash).
# Selected as pump-64k-1000, pump-64k-10000, pump-1m-1000, pump-64k-1000-pd.
for shape in "64k 1000 30000 65536 0" "64k 10000 40000 65536 0" \
	"1m 1000 5000 1048576 0" "64k 1000 20000 65536 $PD_MS"; do
	set -- $shape
	sel=pump-$1-$2; [ "$5" = 0 ] || sel=$sel-pd
	want "$sel" || continue
	pd=(); [ "$5" = 0 ] || pd=(--program-delay-ms "$5")
	pump --sockets "$2" --devices "$3" --size "$4" --workers "$W" "${pd[@]}"
	pump --sockets "$2" --devices "$3" --size "$4" --workers "$W" \
		"${pd[@]}" --no-hash
done
# Default settings.  1,000 sockets, zero programming time: COMMIT waits for
# the covering quote (200 ms), so the line tops out at the cadence bound
# sockets / (interval + quote time) by design.  10,000 sockets and 1 MiB:
# the pipeline is full.
want kinject-64k && scenario kinject-64k 65536 1000 20000
# A line of 10,000 sockets raises --max-connections above PROTOCOL.md's
# default of 4,096 (beyond it a connection is refused at once).
want kinject-64k-10k && scenario kinject-64k-10k 65536 10000 40000 --max-connections 10016
want kinject-1m && scenario kinject-1m 1048576 1000 5000
# 1,000 sockets, 64 KiB, every device programmed for PD_MS ms by its site:
# the pipeline full at true default settings (no flag on `kinject run').
want kinject-64k-pd && PD=$PD_MS scenario kinject-64k-pd 65536 1000 20000
want kinject-64k-cp50 && scenario kinject-64k-cp50 65536 1000 30000 --checkpoint-interval 50
want kinject-64k-nocac && scenario kinject-64k-nocac 65536 1000 30000 --no-commit-after-checkpoint
# The same over TLS 1.3 on loopback (docs/TLS.md): the handshakes signed in
# SoftHSM2 by the keeper, the records as the kernel allows.
want kinject-64k-tls && scenario kinject-64k-tls 65536 1000 20000
want kinject-64k-nocac-tls && scenario kinject-64k-nocac-tls 65536 1000 30000 --no-commit-after-checkpoint
# The naive line (QUALITY.md; tests/bench/naive.c): one thread per socket,
# an fsync and a TPM quote per device, on its own swtpm, driven by the same
# sim as kinject, at each of kinject's shapes without a programming delay
# (naive-64k-1000, naive-64k-10000, naive-1m-1000; `naive' selects all
# three).  Its rate is its own, first OFFER to last COMMIT (the sim's, the
# same window, beside it); table.py states the speed-up.  Its quotes are
# serialised on one TPM, so it runs at about 1,000-2,000 devices/s whatever
# the shape: the device counts below keep each run to about 15 s or less
# (10,000 sockets: two devices per socket), KJ_BENCH_NAIVE_DEVICES
# overrides them all.  They run after kinject's scenarios: 10,000 threads
# waiting in fsync (uninterruptible sleep) can raise the load average by
# tens for a minute or more, so a load1 after naive-64k-10000 measures the naive
# line itself, not the machine's other work (load1_before does).
naive_shape() {
	local name=naive-$1-$2 sockets=$2 devices=${KJ_BENCH_NAIVE_DEVICES:-$3}
	local size=$4
	want "$name" || return 0
	[ -n "${KJ_SWTPM_PID:-}" ] && kj_swtpm_stop "$B/tpm" >/dev/null 2>&1
	rm -rf "$B/tpm" "$B/naive.records"
	kj_swtpm_start "$B/tpm" >/dev/null
	bench_lock
	local before; before=$(cut -d' ' -f1 /proc/loadavg)
	"$BUILD/bench/naive" --listen "$B/naive.sock" --tcti "$KJ_SWTPM_TCTI" \
		--record "$B/naive.records" --size "$size" \
		--devices "$devices" >"$B/$name.json" 2>"$B/$name.err" &
	local naive=$!
	kj_track_pid $naive
	"$KINJECT" sim --connect "unix:$B/naive.sock" --hwrev B \
		--sockets "$sockets" --devices "$devices" $simw \
		${KJ_BENCH_SIM_FLAGS:-} \
		--json-summary "$B/$name-sim.json" >/dev/null 2>&1 || true
	wait $naive || {
		echo "bench: $name failed:" >&2; cat "$B/$name.err" >&2; exit 1
	}
	bench_unlock
	/usr/bin/python3 -c 'import json, os, sys
r = json.load(open(sys.argv[1])); s = json.load(open(sys.argv[2]))
r["scenario"] = sys.argv[4]
r["sim_devices_per_s"] = round(s["devices_per_s"])
r["workers"] = int(sys.argv[3])
r["devices_chosen_for"] = "a run of about 15 s or less at the naive rate"
r["load1"] = round(os.getloadavg()[0], 2)
r["load1_before"] = float(sys.argv[5])
print(json.dumps(r))' "$B/$name.json" "$B/$name-sim.json" "$W" "$name" \
		"$before" | tee -a "$out"
}
naive_shape 64k 1000 20000 65536
naive_shape 64k 10000 20000 65536
naive_shape 1m 1000 10000 1048576
# RSS growth per idle connection (QUALITY.md: <= 16 KiB): 2,000 idle
# connections to the keeper and injectors of test_engine_bench.
if want idle-rss; then
	bench_lock
	KJ_TEST=test_idle_rss "$BUILD/tests/test_engine_bench" 2>&1 |
		sed -n 's/^idle: .*, \([0-9.]*\) KiB per connection$/\1/p' |
		/usr/bin/python3 -c 'import json, os, sys
print(json.dumps({"scenario": "idle-rss", "connections": 2000,
	"kib_per_connection": float(sys.stdin.read()),
	"load1": round(os.getloadavg()[0], 2)}))' | tee "$B/idle.json"
	bench_unlock
fi
# Traceability: recall on 1,000,000 records (its own table below).
want recall && "$BUILD/bench/bench_recall" --kinject "$KINJECT" | tee "$B/recall.jsonl"
# Evidence of a 1,000,000-device lot: export and verify, time and peak RSS.
want evidence && "$BUILD/bench/bench_evidence" --kinject "$KINJECT" --dir "$B/lot" \
	--devices "${KJ_BENCH_LOT:-1000000}" | tee "$B/evidence.jsonl"

echo
[ -s "$out" ] && /usr/bin/python3 "$top/tests/bench/table.py" "$out"
[ -s "$B/idle.json" ] && /usr/bin/python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
print("RSS per idle connection (%d connections): %.1f KiB (target <= 16)" % (
	r["connections"], r["kib_per_connection"]))' "$B/idle.json"
if [ -s "$B/recall.jsonl" ]; then
echo
/usr/bin/python3 - "$B/recall.jsonl" <<'PY'
import json, sys
print("%-66s %8s %s" % ("audit query on 1,000,000 records", "seconds", "< 1 s"))
for r in (json.loads(l) for l in open(sys.argv[1])):
	print("%-66s %8.3f %s" % (r["query"][:66], r["seconds"],
	      "yes" if r["under_1s"] else "NO"))
PY
fi
[ -s "$B/evidence.jsonl" ] || exit 0
echo
/usr/bin/python3 - "$B/evidence.jsonl" <<'PY'
import json, sys
print("%-30s %8s %8s %11s %8s %11s %11s" % ("evidence of one lot", "bundle",
      "export", "export RSS", "verify", "verify RSS", "to TMPDIR"))
for r in (json.loads(l) for l in open(sys.argv[1])):
	print("%-30s %6d MB %6.1f s %8d MB %6.1f s %8d MB %8d MB" % (
	      "%d devices, %d checkpoints" % (r["devices"], r["checkpoints"]),
	      r["bundle_bytes"] >> 20, r["export_s"],
	      r["export_peak_rss_kib"] >> 10, r["verify_s"],
	      r["verify_peak_rss_kib"] >> 10,
	      r["verify_written_bytes"] >> 20))
PY
