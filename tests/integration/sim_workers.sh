# SPDX-License-Identifier: Apache-2.0
# kinject sim --workers against kinject run (real SoftHSM2, swtpm, journal,
# unix sockets): the workers share one COMMIT budget and one summary, so
#  - 4 workers over 40 sockets commit exactly --devices 500: each device
#    counted once in the merged summary, in the device log and in the
#    journal, and every worker's quarter of the sockets did devices;
#  - the summary's busy time is the union of the workers' (not their sum);
#  - SIGTERM stops every worker: the process exits promptly with its
#    merged counts (interrupted, committed = the device log's commits).
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"

QTY=2000
kj_job_setup $QTY 16384
kj_run_bg --checkpoint-interval 50
kj_wait_listen
ok_count() { kj_sql "select count(*) from records where result='ok'"; }
num() { jq -r "$2" "$1"; }

rc=0
kj_sim --hwrev B --sockets 40 --workers 4 --devices 500 \
	--device-log "$T/w.jsonl" --json-summary "$T/w.json" \
	>"$T/w.out" 2>&1 || rc=$?
[ $rc -eq 0 ] || fail "sim --workers 4: exit $rc: $(cat "$T/w.out")"
cat "$T/w.out"
for k in committed attempted intended; do
	[ "$(num "$T/w.json" ".$k")" = 500 ] ||
		fail "$k $(num "$T/w.json" ".$k"), want 500: $(cat "$T/w.json")"
done
[ "$(num "$T/w.json" .unexpected)" = 0 ] || fail "unexpected: $(cat "$T/w.json")"
[ "$(wc -l <"$T/w.jsonl")" -eq 500 ] || fail "device log: $(wc -l <"$T/w.jsonl") lines"
[ "$(grep -c '"outcome":"committed"' "$T/w.jsonl")" -eq 500 ] ||
	fail "device log: not 500 commits"
[ "$(jq -r .uid "$T/w.jsonl" | sort -u | wc -l)" -eq 500 ] ||
	fail "device log: uids repeat"
[ "$(ok_count)" -eq 500 ] || fail "journal: $(ok_count) ok records, want 500"
for q in 0 1 2 3; do
	n=$(jq -r "select(.socket >= $((q * 10)) and .socket < $((q * 10 + 10))) | .uid" \
		"$T/w.jsonl" | wc -l)
	[ "$n" -gt 0 ] || fail "worker $q (sockets $((q * 10))-$((q * 10 + 9))) committed nothing"
	echo "ok: worker $q: $n devices"
done
jq -e '.busy_seconds <= .seconds and .latency_ms.p50 <= .latency_ms.p99 and
	.latency_ms.p99 <= .latency_ms.max' "$T/w.json" >/dev/null ||
	fail "busy time or percentiles: $(cat "$T/w.json")"
echo "ok: 4 workers, 500 devices, each counted once (summary, device log, journal)"
# Each committed device's wall-clock stamps (HELLO, OFFER, READBACK, COMMIT)
# are in order and bracket the keeper's reservation and record times in
# the journal (ms, so 1 ms of slack), and stages.py reads them.
jq -r 'select(.outcome == "committed") | [.uid, (.t_us | map(tostring) | join(" "))] | join(" ")' \
	"$T/w.jsonl" >"$T/stamps"
[ "$(wc -l <"$T/stamps")" -eq 500 ] || fail "device log: $(wc -l <"$T/stamps") lines with t_us"
kj_sql "select hex(r.uid), v.time_ms, r.time_ms from records r join reservations v
	on v.attempt = r.attempt where r.result = 'ok'" | tr '|' ' ' >"$T/jtimes"
/usr/bin/python3 - "$T/stamps" "$T/jtimes" <<'PY' || fail "stamps out of order or not bracketing the journal's times"
import sys
st = {}
for line in open(sys.argv[1]):
    u, *t = line.split()
    t = [int(x) for x in t]
    assert len(t) == 4 and t == sorted(t) and t[0] > 1.6e15, line
    st[u.upper()] = t
n = 0
for line in open(sys.argv[2]):
    u, resv, rec = line.split()
    t = st[u]
    assert t[0] // 1000 - 1 <= int(resv) <= t[1] // 1000 + 1, (line, t)
    assert t[2] // 1000 - 1 <= int(rec) <= t[3] // 1000 + 1, (line, t)
    n += 1
assert n == 500, n
PY
/usr/bin/python3 "$KJ_TESTS/bench/stages.py" "$T/w.jsonl" "$KJ_STATE/journal.db" >"$T/stages" ||
	fail "stages.py: $(cat "$T/stages")"
grep -q '(500 devices, ms)' "$T/stages" &&
	grep -q '^HELLO -> COMMIT ' "$T/stages" || fail "stages.py: $(cat "$T/stages")"
cat "$T/stages"
echo "ok: device log stamps in order, bracketing the journal's times"

# SIGTERM: every worker stops, the process exits, the counts merge.
# (the binary itself in the background: a function would be a subshell)
"$KINJECT" sim --connect "unix:$KJ_SOCK" --hwrev B --sockets 8 --workers 4 \
	--devices 0 --program-delay-ms 20 \
	--device-log "$T/t.jsonl" \
	--json-summary "$T/t.json" >"$T/t.out" 2>&1 &
sim=$!
kj_track_pid $sim
# (grep, not jq: the log is written in stdio blocks, its last line may
# be cut short)
quarters() {
	local q n=0
	for q in 0 1 2 3; do
		grep -qE "\"socket\":($((2 * q))|$((2 * q + 1))),.*\"committed\"" \
			"$T/t.jsonl" && n=$((n + 1))
	done
	echo $n
}
for i in $(seq 1200); do
	[ -s "$T/t.jsonl" ] && [ "$(quarters)" -eq 4 ] && break
	kill -0 $sim 2>/dev/null || fail "sim --devices 0 ended: $(cat "$T/t.out")"
	sleep 0.05
done
[ "$(quarters)" -eq 4 ] || fail "after 60 s not every worker logged a device"
kill -TERM $sim
for i in $(seq 600); do
	kill -0 $sim 2>/dev/null || break
	sleep 0.05
done
kill -0 $sim 2>/dev/null && fail "30 s after SIGTERM the sim still runs"
rc=0; wait $sim || rc=$?
[ $rc -eq 0 ] || fail "sim after SIGTERM: exit $rc: $(cat "$T/t.out")"
[ "$(num "$T/t.json" .interrupted)" = true ] || fail "not interrupted: $(cat "$T/t.json")"
c=$(grep -c '"outcome":"committed"' "$T/t.jsonl")
[ "$(num "$T/t.json" .committed)" = "$c" ] ||
	fail "summary committed $(num "$T/t.json" .committed), device log $c"
echo "ok: SIGTERM stopped all 4 workers; $c devices, summary and log agree"

kill -TERM "$KJ_RUN_PID"
rc=0; wait "$KJ_RUN_PID" || rc=$?
[ $rc -eq 3 ] || fail "kinject run after SIGTERM: exit $rc, want 3"
echo "sim_workers ok"
