# SPDX-License-Identifier: Apache-2.0
# SIGTERM finishes the devices in flight and exits 3 (resumable) with a
# summary; the rerun completes the job.  A journal restored from an old
# copy is refused: the TPM's NV counter is ahead of it (EVIDENCE.md §4).
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 400 8192

kj_run_term_after 100 --json-summary "$T/first.json"
grep -q '"outcome":"stopped' "$T/first.json" || fail "summary: $(cat "$T/first.json")"
grep -q 'stopped' "$T/run.out" || fail "no summary printed on stop"
[ "$(kj_sql "select count(*) from reservations where state='reserved' and attempt not in (select attempt from records where attempt is not null)")" = 0 ] ||
	fail "a stop left reservations open: in-flight devices were not finished"
[ "$(kj_sql "select count(*) from records where kind='job_end'")" = 0 ] ||
	fail "a stopped job got a job_end record"
sleep 0.5
cp "$KJ_STATE/journal.db" "$T/old.db"

kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 32 --devices 0 --timeout 5 >/dev/null 2>&1 || true
wait "$KJ_RUN_PID" || fail "resume: exit $?: $(tail -5 "$T/run.err")"
[ "$(kj_sql "select count(*) from records where result='ok'")" = 400 ] || fail "resume did not complete"

# An old copy of the journal on the same TPM.
rm -f "$KJ_STATE"/journal.db-wal "$KJ_STATE"/journal.db-shm
cp "$T/old.db" "$KJ_STATE/journal.db"
rc=0; kj_run >/dev/null 2>"$T/err" || rc=$?
[ $rc -eq 1 ] || fail "restored old journal: exit $rc, want 1"
grep -qi 'counter' "$T/err" || fail "refusal does not explain: $(cat "$T/err")"
echo "run_stop ok"
