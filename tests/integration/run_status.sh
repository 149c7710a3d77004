#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What the operator and the plant see (SPEC.md §4, docs/RUN.md "Progress
# and log lines").  Off a terminal: every stderr line is one JSON object
# (the keeper's and the injectors' log lines, the progress events with
# their stable keys).  On a terminal (tmux, read back with capture-pane
# mid-job): the status screen at the bottom with the budget, failures
# apart from refusals, per-site/per-socket state and the last error, and
# every log line above it, none inside it.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
command -v tmux >/dev/null || { echo "skip: no tmux"; exit 77; }
TS=kj-status-$$
trap 'tmux -L "$TS" kill-server 2>/dev/null || true; kj_cleanup' EXIT
kj_job_setup 400 4096

# 1. Off a terminal: JSON lines.
kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 4 --site line1-a --devices 60 >/dev/null 2>&1 ||
	fail "sim (json phase)"
until grep -q '"event":"progress"' "$T/run.err"; do
	kill -0 "$KJ_RUN_PID" 2>/dev/null || fail "run died: $(tail -3 "$T/run.err")"
	sleep 0.1
done
kill -TERM "$KJ_RUN_PID"
rc=0; wait "$KJ_RUN_PID" || rc=$?
[ $rc -eq 3 ] || fail "SIGTERM: exit $rc: $(tail -3 "$T/run.err")"
/usr/bin/python3 - "$T/run.err" <<'PY' || fail "JSON lines: see above"
import json, sys
n = {"log": 0, "progress": 0}
for i, line in enumerate(open(sys.argv[1]), 1):
    e = json.loads(line)        # every line, the injectors' too
    assert e["event"] in n and e["ts"].endswith("Z"), (i, line)
    n[e["event"]] += 1
    if e["event"] == "log":
        assert set(e) == {"ts", "event", "level", "message"}, line
    else:
        for k in ("job", "quantity", "ok", "run_ok", "in_flight",
                  "devices_per_s", "failed_after_offer", "max_failed",
                  "connections", "issuing", "failures", "refused"):
            assert k in e, (k, line)
        assert e["quantity"] == 400 and e["max_failed"] == 200, line
assert n["log"] >= 3 and n["progress"] >= 1, n
print("ok: %d log and %d progress JSON lines" % (n["log"], n["progress"]))
PY
grep -q 'sandbox: entered' "$T/run.err" || fail "no injector line"
# A message quoting a file name with a quote and a backslash stays one
# valid JSON line, the name intact.
weird=$T/we\"ird\\name.json
rc=0; "$KINJECT" run $(kj_run_args) --work-order "$weird" 2>"$T/weird.err" || rc=$?
[ $rc -eq 1 ] || fail "missing work order: exit $rc"
/usr/bin/python3 - "$T/weird.err" "$weird" <<'PY' || fail "$(cat "$T/weird.err")"
import json, sys
msgs = [json.loads(l)["message"] for l in open(sys.argv[1])]
assert any(sys.argv[2] in m for m in msgs), msgs
PY
echo "ok: a file name with \" and \\ survives the JSON log line"

# 2. On a terminal: the status screen.
tmux -L "$TS" new-session -d -x 150 -y 50 \
	"$(printf '%q ' "$KINJECT" run $(kj_run_args)) ; echo RUN-EXIT=\$?; sleep 600"
kj_wait_sock() {
	local i
	for i in $(seq 400); do [ -S "$KJ_SOCK" ] && return 0; sleep 0.05; done
	fail "no socket: $(tmux -L "$TS" capture-pane -p | tail -5)"
}
kj_wait_sock
kj_sim --hwrev B --sockets 4 --site line1-a --devices 0 --timeout 5 \
	--program-delay-ms 150 >/dev/null 2>&1 &
kj_track_pid $!
kj_sim --hwrev B --sockets 3 --site line2-b --devices 0 --timeout 5 \
	--program-delay-ms 150 --bad-readback-rate 0.1 --expect readback \
	>/dev/null 2>&1 &
kj_track_pid $!
got=
for i in $(seq 600); do
	tmux -L "$TS" capture-pane -p >"$T/pane" 2>/dev/null || true
	if grep -Eq 'line1-a .* (programming|idle) ' "$T/pane" &&
		grep -Eq 'line2-b .* (programming|idle) ' "$T/pane" &&
		grep -q ' programming ' "$T/pane" &&
		grep -q 'last error: readback at line2-b' "$T/pane" &&
		grep -q '/400 ok' "$T/pane"; then
		got=1; break
	fi
	grep -q RUN-EXIT "$T/pane" && break
	sleep 0.1
done
[ -n "$got" ] || fail "no status screen with both sites mid-job: $(cat "$T/pane")"
cp "$T/pane" "$T/mid"; [ -n "${KJ_KEEP_PANE:-}" ] && cp "$T/mid" "$KJ_KEEP_PANE"
/usr/bin/python3 - "$T/mid" <<'PY' || fail "screen layout: $(cat "$T/mid")"
import re, sys
lines = open(sys.argv[1]).read().split("\n")
head = [i for i, l in enumerate(lines) if l.startswith(" kinject  job WO-")]
assert len(head) == 1, "one screen header"
screen, log = lines[head[0]:], lines[:head[0]]
# The screen: bar, budget, failures apart from refusals, sockets.
assert re.match(r"\[#*\.*\] \d+/400 ok", screen[1]), screen[1]
assert re.match(r"failure budget \(max_failed\): \d+ used of 200, \d+ left",
                screen[2]), screen[2]
assert screen[3].startswith("failures after offer (this run): readback"), screen[3]
assert screen[4].startswith("refused before offer"), screen[4]
assert screen[5].startswith("last error: readback at line2-b socket"), screen[5]
assert screen[7].split()[:3] == ["site", "socket", "state"], screen[7]
socks = [l.split() for l in screen[8:] if re.match(r"line\d-[ab] ", l)]
assert len(socks) == 7, socks
assert {s[0] for s in socks} == {"line1-a", "line2-b"}, socks
assert {s[2] for s in socks} <= {"programming", "idle"}, socks
assert sorted(socks) == socks, "steady order: " + repr(socks)
# No log line inside the screen; log lines above it.
for l in screen:
    assert "kinject:" not in l and "sandbox" not in l, "log in screen: " + l
assert any(l.startswith("kinject: ") for l in log), "no log above"
print("ok: status screen: %d sockets, log above it" % len(socks))
PY
for i in $(seq 1200); do
	tmux -L "$TS" capture-pane -p -S -100 >"$T/pane"
	grep -q RUN-EXIT "$T/pane" && break
	sleep 0.1
done
grep -q 'RUN-EXIT=0' "$T/pane" || fail "run did not complete: $(tail -20 "$T/pane")"
grep -q 'job WO-2027-0315: completed' "$T/pane" || fail "no summary: $(cat "$T/pane")"
grep -q 'refused: ' "$T/pane" || fail "summary lacks refusals line"
echo "run_status ok"
