# SPDX-License-Identifier: Apache-2.0
# Issue 11 item 8: `kinject check' decrypts firmware and keys, so the
# pre-flight hardens the process before it reads a secret input, in check
# as in run: no core dumps (RLIMIT_CORE 0) and the arena's fatal-signal
# wipe installed.  The firmware is a FIFO, so the check waits in open(2),
# after the hardening, while this test looks at it.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"

ulimit -c unlimited 2>/dev/null || ulimit -c "$(ulimit -H -c)"
[ "$(ulimit -c)" != 0 ] || { echo "core dumps cannot be enabled here"; exit 77; }
kj_job_setup 10
I=$T/in
mkfifo "$T/fw.fifo"
"$KINJECT" check --work-order "$I/WO.json" --work-order-sig "$I/WO.json.sig" \
	--product "$I/product.json" --product-sig "$I/product.json.sig" \
	--firmware "$T/fw.fifo" --credentials "$I/CREDS.cms" \
	--state "$KJ_STATE" \
	--hsm "$KJ_HSM_URI_P11KIT" --pin-source "$KJ_HSM_PIN_SOURCE" \
	>"$T/out" 2>"$T/err" &
pid=$!
kj_track_pid $pid
# Blocked in open(2) of the FIFO until a writer comes.
for i in $(seq 400); do
	[ "$(cat "/proc/$pid/wchan" 2>/dev/null)" = wait_for_partner ] && break
	kill -0 "$pid" 2>/dev/null || fail "check ended early: $(cat "$T/err")"
	sleep 0.05
done
[ "$(cat "/proc/$pid/wchan")" = wait_for_partner ] ||
	fail "check never opened the firmware FIFO"
core=$(awk '/^Max core file size/ {print $5}' "/proc/$pid/limits")
[ "$core" = 0 ] || fail "kinject check runs with core dumps allowed ($core)"
sigcgt=$(awk '/^SigCgt/ {print $2}' "/proc/$pid/status")
(( (0x$sigcgt >> (11 - 1)) & 1 )) ||
	fail "kinject check has no SIGSEGV handler (arena wipe): SigCgt $sigcgt"
kill "$pid"
wait "$pid" || true
echo "check_hardened ok"
