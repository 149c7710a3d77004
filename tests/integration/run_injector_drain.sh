#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# EVIDENCE.md §2, the injector's side: an injector dies with OUTCOMEs still
# queued for the keeper.  The keeper drains them (the devices' `ok' records
# are journaled) but their COMMITs have nowhere to go: each gets its
# `withdrawn' record, so the sites' COMMITs are exactly the ok records not
# withdrawn (the "76 ok vs 72 COMMITs" found before), and the job completes.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 200 4096

kj_run_bg --workers 1
kj_wait_listen
kj_sim --hwrev B --sockets 16 --devices 0 --program-delay-ms 200 --timeout 10 \
	--device-log "$T/dev1.jsonl" >/dev/null 2>&1 &
sim=$!
kj_track_pid $sim
kj_wait_sql "select count(*) from records where result='ok'" 30 1200 0.05 ||
	fail "after 60 s: select count(*) from records where result='ok': $KJ_SQL_N, want >= 30"
# Devices being programmed: their OFFERs went out after this commit.
kj_wait_sql "select count(*) from reservations where state='reserved' and attempt not in (select attempt from records where attempt is not null)" 4 6000 0.01 ||
	fail "after 60 s: select count(*) from reservations where state='reserved' and attempt not in (select attempt from records where attempt is not null): $KJ_SQL_N, want >= 4"
# Devices move in waves (COMMITs leave together at each checkpoint): the
# wave just reserved gets its OFFERs after the commit.  Half its 200 ms of
# programming later they are out and the wave is mid-programming, so the
# stop below catches devices that will queue OUTCOMEs (under ASan the
# commit-to-OFFER gap once swallowed the whole wave: nothing drained).
sleep 0.1
# The injector by its entry point: no other child of the keeper may be
# taken for it (the kill below must land on the process holding the
# devices in flight).
inj=$(pgrep -P "$KJ_RUN_PID" -f " __injector " || true)
[ -n "$inj" ] && [ "$(wc -w <<<"$inj")" = 1 ] ||
	fail "not one injector process under the keeper: '$inj' (children: $(pgrep -a -P "$KJ_RUN_PID" | tr '\n' ';'))"
# The keeper stops reading; the devices finish programming and the
# injector queues their OUTCOMEs on its channel to the keeper.
kill -STOP "$KJ_RUN_PID"
# Bytes queued for the keeper on its channels.  Something queued is not
# enough (a COUNTERS or ADMIT message is not an OUTCOME): wait until the
# queue stopped growing for 0.5 s, longer than a device's programming
# time, so the devices in flight at the stop have queued their OUTCOMEs.
queued() {
	ss -xpn 2>/dev/null | grep "pid=$KJ_RUN_PID," |
		awk '$1 == "u_seq" { n += $3 } END { print n + 0 }'
}
q=0 prev=-1 still=0
for i in $(seq 1000); do
	q=$(queued)
	if [ "$q" -gt 0 ] && [ "$q" = "$prev" ]; then
		still=$((still + 1))
	else
		still=0
	fi
	[ $still -ge 25 ] && break
	prev=$q
	sleep 0.02
done
queued=$q
[ "$queued" -ge 1 ] || { kill -CONT "$KJ_RUN_PID"; fail "nothing queued for the keeper"; }
kill -9 "$inj" || fail "kill -9 of injector $inj failed"
# Dead (a zombie: its end of the channel closed) before the keeper goes on.
for i in $(seq 400); do
	[ "$(awk '{ print $3 }' "/proc/$inj/stat" 2>/dev/null)" = Z ] && break
	sleep 0.01
done
kill -CONT "$KJ_RUN_PID"
for i in $(seq 200); do kill -0 "$sim" 2>/dev/null || break; sleep 0.05; done
kill -INT "$sim" 2>/dev/null || true
wait "$sim" 2>/dev/null || true
kj_sim --hwrev B --sockets 16 --devices 0 --timeout 10 --device-log "$T/dev2.jsonl" \
	>/dev/null 2>&1 || true
wait "$KJ_RUN_PID" || fail "run exit $?: $(tail -5 "$T/run.err")"

wd=$(kj_sql "select count(*) from records where result='withdrawn'")
[ "$wd" -ge 1 ] || fail "no drained OUTCOME was withdrawn: the test proves nothing: $(kj_sql "select result, count(*) from records group by 1" | tr "\n" " "); injector $inj, $queued bytes queued; $(grep -v "measured\|clock run\|progress" "$T/run.err" | tail -8)"
ok=$(kj_sql "select count(*) from records where result='ok'")
[ $((ok - wd)) = 200 ] || fail "job did not complete: $ok ok, $wd withdrawn"
kj_sql "select seq from records r where result='ok' and not exists
	(select 1 from records w where w.attempt = r.attempt and
	 w.result = 'withdrawn') order by seq" >"$T/ok.txt"
cat "$T/dev1.jsonl" "$T/dev2.jsonl" | grep '"outcome":"committed"' |
	grep -o '"leaf_index":[0-9]*' | cut -d: -f2 | sort -n >"$T/commit.txt"
cmp -s "$T/ok.txt" "$T/commit.txt" ||
	fail "sites saw $(wc -l <"$T/commit.txt") COMMITs, $(wc -l <"$T/ok.txt") ok records not withdrawn: $(diff "$T/ok.txt" "$T/commit.txt" | head -5)"
echo "run_injector_drain ok ($wd withdrawn, $(wc -l <"$T/commit.txt") COMMITs)"
