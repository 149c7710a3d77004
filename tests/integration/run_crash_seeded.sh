# SPDX-License-Identifier: Apache-2.0
# QUALITY.md fault tests, issue 11: kill -9 of the keeper at 20 seeded
# random points of a 5,000-device job, each followed by a resume; then,
# on a second job, kill -9 of an injector at 20 seeded points while the
# job runs.  After each job: every device ok, no credential index used
# twice, `kinject audit verify' and `kinject verify' pass.
# KJ_SEED=N repeats a run (the seed is printed).
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
N=5000
seed=${KJ_SEED:-$(od -An -tu4 -N4 /dev/urandom | tr -d ' ')}
echo "seed $seed"
RANDOM=$((seed % 32768))
# Each crash burns the credentials in flight: room for 20 of them.
kj_job_setup $N 4096 $((N + 1500))

JOB=WO-2027-0315
ok_count() { kj_sql "select count(*) from records where result='ok' and job='$JOB'" 2>/dev/null || echo 0; }
# 20 seeded points, each 1..80 devices after where the job stands then
# (devices finish in waves: an absolute point could already be passed).
delta() { echo $((RANDOM % 80 + 1)); }
line() { # [PROGRAM_DELAY_MS [SOCKETS]]: slow enough that kills land near p
	# Not the kj_sim function: $! must be the sim itself, to kill it.
	"$KINJECT" sim --connect "unix:$KJ_SOCK" --hwrev B \
		--sockets "${2:-16}" --devices 0 --timeout 10 --reconnect \
		--program-delay-ms "${1:-50}" \
		--connect-wait 30 >/dev/null 2>&1 &
	sim=$!
	kj_track_pid $sim
}
wait_ok() {
	until [ "$(ok_count)" -ge "$1" ]; do
		kill -0 "$KJ_RUN_PID" 2>/dev/null || {
			wait "$KJ_RUN_PID"; rc=$?
			fail "kinject run ended (exit $rc) before $1 ok: $(tail -3 "$T/run.err") $(tail -3 "$T/run.out")"; }
		sleep 0.02
	done
}
check_job() {
	local job=$1 dups
	[ "$(kj_sql "select count(*) from records where result='ok' and job='$job'")" = $N ] ||
		fail "$job: not every device ok"
	dups=$(kj_sql "select cred_index from records where cred_index is not null
		group by job, cred_index having count(*) > 1")
	[ -z "$dups" ] || fail "$job: credential indexes used twice: $dups"
	"$KINJECT" audit verify --state "$KJ_STATE" >"$T/audit.out" 2>&1 ||
		fail "$job: audit verify: $(tail -5 "$T/audit.out")"
	"$KINJECT" evidence export --state "$KJ_STATE" --job "$job" \
		--out "$T/$job.json" 2>"$T/export.err" ||
		fail "$job: export: $(cat "$T/export.err")"
	"$KINJECT" verify "$T/$job.json" --ak "$KJ_STATE/ak.pem" \
		>"$T/verify.out" 2>&1 || fail "$job: verify: $(tail -5 "$T/verify.out")"
}

# ---- the keeper, 20 times ----
for k in $(seq 20); do
	p=$(($(ok_count) + $(delta)))
	kj_run_bg
	kj_wait_listen
	line
	wait_ok "$p"
	kill -9 "$KJ_RUN_PID"
	wait "$KJ_RUN_PID" 2>/dev/null || true
	kill "$sim" 2>/dev/null || true
	wait "$sim" 2>/dev/null || true
	# The TPM's resource manager (/dev/tpmrm0, tpm2-abrmd) flushes a
	# dead client's transient objects; swtpm on a raw TCTI has none, so
	# the killed keeper's AK stays loaded until we do it.
	tpm2_flushcontext -t -T "$KJ_SWTPM_TCTI" 2>/dev/null || true
	echo "keeper killed at $(ok_count) ok (point $p)"
done
kj_run_bg
kj_wait_listen
line 0 32
wait "$KJ_RUN_PID" || fail "final resume: exit $?: $(tail -5 "$T/run.err")"
kill "$sim" 2>/dev/null || true
check_job WO-2027-0315
echo "ok: keeper killed at 20 points, job complete and verified"

# ---- an injector, 20 times, in a second job (its own batch) ----
KJ_CREDS_DISTINCT=4 kj_creds "$T/in" $((N + 1500)) 100000 >/dev/null
# Each crash fails the devices in flight (`internal'): room for 20.
sed -i -e 's/"WO-2027-0315"/"WO-2027-0316"/' \
	-e 's/"max_failed": 200/"max_failed": 2000/' "$T/in/WO.json"
JOB=WO-2027-0316
kj_sign_detached "$T/in/WO.json" "$T/in/release.pem" "$T/in/release.key"
kj_run_bg --json-summary "$T/inj.json" --workers 1
kj_wait_listen
line 200 8
# Seeded points in time (50..450 ms apart): a count-based point lags the
# journal by a whole commit wave here.
for k in $(seq 20); do
	sleep "0.$((RANDOM % 40 + 5))"
	[ "$(ok_count)" -lt $((N - 100)) ] ||
		fail "kill $k would land after the job's end: too fast a line"
	inj=$(pgrep -P "$KJ_RUN_PID" | shuf -n1 --random-source=<(yes "$k$seed"))
	[ -n "$inj" ] && kill -9 "$inj"
	echo "injector $inj killed at $(ok_count) ok"
	# Its successor must be up before the next kill counts.
	for i in $(seq 100); do
		[ "$(pgrep -P "$KJ_RUN_PID" | wc -l)" -ge 1 ] && break
		sleep 0.02
	done
done
# The rest of the job at full speed.
kill "$sim" 2>/dev/null || true
wait "$sim" 2>/dev/null || true
line 0 32
wait "$KJ_RUN_PID" || fail "injector crashes: exit $?: $(tail -5 "$T/run.err")"
kill "$sim" 2>/dev/null || true
r=$(sed -n 's/.*"injector_restarts":\([0-9]*\).*/\1/p' "$T/inj.json")
[ "${r:-0}" -ge 15 ] || fail "only ${r:-0} injector restarts for 20 kills"
check_job WO-2027-0316
echo "run_crash_seeded ok (seed $seed, $r injector restarts)"
