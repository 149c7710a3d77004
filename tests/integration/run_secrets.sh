# SPDX-License-Identifier: Apache-2.0
# QUALITY.md "Secrets": a random marker planted in the firmware, and a
# device private key, appear in no file under the state dir and in no
# readable memory of any `kinject run' process (keeper and injectors),
# during the job and after it.  Only memfd_secret hides arena pages from
# /proc/PID/mem, so the test needs that backend.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
# Text, so the shell carries it intact (a NUL byte would be dropped).
marker_text=KINJECT-MARKER-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
marker=$(printf '%s' "$marker_text" | xxd -p | tr -d '\n')
# Only the input maker sees the marker: an exported variable would sit in
# kinject's own environment block.
KJ_FW_MARKER=$marker_text kj_job_setup 400 65536
# The control run's appliance: the same ceremony, before any job.
cp -a "$KJ_STATE" "$T/state-control"
# The private scalar of the first credential's key (PKCS#8 EC: 02 01 01 04 20 ‖ d).
key=$(head -1 "$T/in/creds.jsonl" | sed 's/.*"key":"\([^"]*\)".*/\1/' |
	base64 -d | xxd -p | tr -d '\n' | sed -n 's/.*020101 *0420\(.\{64\}\).*/\1/p')
[ ${#key} -eq 64 ] || fail "could not find the private scalar in the test key"
rm -f "$T/in/creds.jsonl" "$T/in/fw.bin"   # the plaintext inputs, customer side

kj_run_bg
kj_wait_listen
# The listener is bound before the job starts (every check before the
# first write): wait for the line that names the arena backend.
for i in $(seq 200); do
	grep -q 'secret memory: ' "$T/run.err" && break
	sleep 0.05
done
grep -q 'secret memory: memfd_secret' "$T/run.err" || {
	echo "arena backend is not memfd_secret: $(grep -o 'secret memory: [a-z_]*' "$T/run.err")"
	exit 77; }
kj_sim --hwrev B --sockets 16 --devices 0 --program-delay-ms 100 \
	>/dev/null 2>&1 &
kj_track_pid $!
sleep 1.5
pids="$KJ_RUN_PID $(pgrep -P "$KJ_RUN_PID" | tr '\n' ' ')"
echo "scanning kinject run processes: $pids"
"$KJ_TESTS/lib/memscan.py" $pids -- "$marker" "$key" >"$T/scan.out" ||
	fail "secret found in process memory: $(cat "$T/scan.out")"
cat "$T/scan.out"
grep -q ' 0 unreadable' "$T/scan.out" && grep -c 'unreadable' "$T/scan.out" |
	grep -qx 1 && fail "no region was unreadable: the arena is not secret memory"
wait "$KJ_RUN_PID" || fail "run exit $?"

# Searched as bytes: a pattern given to grep -F is split at newline
# bytes, and a random key holds one about one time in eight, leaving
# fragments short enough to match anywhere.
found=$(/usr/bin/python3 - "$KJ_STATE" "$marker" "$key" <<'PY'
import os, sys
needles = [bytes.fromhex(h) for h in sys.argv[2:]]
for d, _, files in os.walk(sys.argv[1]):
	for f in files:
		p = os.path.join(d, f)
		try:
			data = open(p, "rb").read()
		except OSError:
			continue
		if any(n in data for n in needles):
			print(p)
PY
) || fail "could not scan the state dir"
[ -z "$found" ] || fail "secret bytes found in a file under the state dir: $found"
# Control: with the mlock arena (readable through /proc/PID/mem) the same
# scan must find the firmware marker, or this test could never fail.
KJ_STATE=$T/state-control
KINJECT_ARENA=mlock kj_run_bg --tpm none
kj_wait_listen
kj_sim --hwrev B --sockets 4 --devices 0 --program-delay-ms 100 \
	>/dev/null 2>&1 &
kj_track_pid $!
sleep 1
"$KJ_TESTS/lib/memscan.py" "$KJ_RUN_PID" -- "$marker" >"$T/control.out" &&
	fail "control: the scan missed the marker in a readable arena"
kill -TERM "$KJ_RUN_PID"; wait "$KJ_RUN_PID" || true
echo "run_secrets ok"
