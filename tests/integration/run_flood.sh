# SPDX-License-Identifier: Apache-2.0
# QUALITY.md "Hostile sites", issue 11: 4,096 idle connections plus a
# connection flood beyond --max-connections while 60 honest sockets
# (kinject sim) keep >= 80 % of their undisturbed devices/s.  One line of
# 60 sockets runs through three windows measured back to back: calm,
# storm (tests/lib/flood.py holds 4,096 connections that never send a
# byte and keeps 4,096 more knocking: the listen backlog, then EAGAIN),
# calm again; the storm's rate is compared with the calm windows' mean.
# The idle connections must be reaped by the HELLO timeout (closed after
# it, with their ABORT), connections beyond the limit refused at once
# (ABORT "connection limit reached"), and the honest sockets see no
# failure.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
IDLE=4096
HELLO_S=2
CALM_S=4
STORM_S=$((3 * HELLO_S)) # three rounds of the HELLO timeout
kj_job_setup 24000 4096 24000

kj_run_bg --tpm none --hello-timeout $HELLO_S --max-connections 4096 \
	--json-summary "$T/run.json"
kj_wait_listen
kj_sim --hwrev B --sockets 60 --devices 0 --timeout 30 \
	--program-delay-ms 50 \
	--json-summary "$T/line.json" >"$T/line.out" 2>&1 &
line=$!
kj_track_pid $line
ok() { kj_sql "select count(*) from records where result='ok'" 2>/dev/null || echo 0; }
now_ms() { date +%s%3N; }
# window SECONDS: devices/s of the line over that time (a measurement
# window, not a wait for an event).
window() {
	local n0 t0 n1 t1
	n0=$(ok); t0=$(now_ms)
	sleep "$1"
	n1=$(ok); t1=$(now_ms)
	kill -0 $line 2>/dev/null || fail "the honest line ended: $(tail -3 "$T/line.out")"
	echo "window: $((n1 - n0)) devices in $((t1 - t0)) ms" >&2
	echo $(((n1 - n0) * 1000 / (t1 - t0)))
}
until [ "$(ok)" -ge 200 ]; do
	kill -0 $line 2>/dev/null || fail "the honest line ended: $(tail -3 "$T/line.out")"
	sleep 0.05
done
calm1=$(window $CALM_S)

# The storm: 4,096 idle connections, then 4,096 more beyond the limit.
mkfifo "$T/flood.fifo"
python3 "$KJ_TESTS/lib/flood.py" "$KJ_SOCK" $IDLE 4096 \
	>"$T/flood.fifo" 2>"$T/flood.err" &
flood=$!
kj_track_pid $flood
exec 3<"$T/flood.fifo"
read -r -t 120 ready <&3 || fail "flood.py: $(cat "$T/flood.err")"
[ "$ready" = "idle $IDLE" ] || fail "flood.py said '$ready'"
storm=$(window $STORM_S)
kill -TERM $flood
read -r -t 60 stats <&3 || fail "flood.py gave no statistics: $(cat "$T/flood.err")"
wait $flood || fail "flood.py: $(cat "$T/flood.err")"
exec 3<&-
echo "flood: $stats"

calm2=$(window $CALM_S)
kill -INT $line
wait $line || [ $? -eq 3 ] || fail "honest line: $(tail -5 "$T/line.out")"
kill -TERM "$KJ_RUN_PID"
wait "$KJ_RUN_PID" || [ $? -eq 3 ] || fail "run: $(tail -5 "$T/run.err")"

calm=$(((calm1 + calm2) / 2))
echo "devices/s of 60 honest sockets: calm $calm1 and $calm2 (mean $calm), during the storm $storm ($((storm * 100 / calm)) %)"
[ $((storm * 100)) -ge $((calm * 80)) ] ||
	fail "the storm slowed the honest sockets to $storm devices/s, under 80 % of $calm"
# The honest sockets: no failure at all.
for r in timeout disconnected protocol internal; do
	n=$(kj_sql "select count(*) from records where result='$r'")
	[ "$n" = 0 ] || fail "$n honest device(s) recorded $r during the storm"
done
j() { jq -r ".$1" <<<"$stats"; }
# The idle connections were reaped by the HELLO timeout: their ABORT, then
# the close, never before the timeout; the first 4,096 at least.
[ "$(j reaped)" -ge $IDLE ] || fail "only $(j reaped) connections reaped with their ABORT"
awk -v a="$(j reaped_age_min)" -v h=$HELLO_S 'BEGIN { exit !(a >= 0.9 * h) }' ||
	fail "a connection was closed after $(j reaped_age_min) s, before the HELLO timeout"
# Beyond the limit: refused at once with the reason, never served
# seconds later (within 1.5 s: the full worker's 50 ms watch, plus the
# load's slack); nobody waits for more than two HELLO timeouts.
[ "$(j over_limit)" -ge 1 ] ||
	fail "no connection beyond --max-connections was refused with its reason"
awk -v a="$(j over_limit_age_max)" 'BEGIN { exit !(a <= 1.5) }' ||
	fail "a connection over the limit was refused only after $(j over_limit_age_max) s"
for a in reaped_age_max refused_age_max; do
	awk -v a="$(j $a)" -v h=$HELLO_S 'BEGIN { exit !(a == "null" || a <= 2 * h + 4) }' ||
		fail "$a: a connection waited $(j $a) s"
done
echo "run_flood ok"
