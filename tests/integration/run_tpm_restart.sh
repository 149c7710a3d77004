#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# EVIDENCE.md §4, the orderly case: a job stopped, the TPM shut down in
# order (TPM2_Shutdown) and started again, the job resumed.  The ORDERLY
# counter was written to NV at the shutdown, so the first checkpoint of the
# new clock run is the previous + 1: the bundle verifies with two clock
# runs, no counter jump and no warning, also with --strict-clock.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 300 4096

kj_run_term_after 100
last=$(kj_sql "select max(nv_counter) from checkpoints")

tpm2_shutdown -c -T "$KJ_SWTPM_TCTI" || fail "tpm2_shutdown"
kj_swtpm_stop "$T/tpm"
kj_swtpm_start "$T/tpm" >/dev/null
kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 32 --devices 0 --timeout 5 >/dev/null 2>&1 || true
wait "$KJ_RUN_PID" || fail "resume after an orderly TPM restart: exit $?: $(tail -3 "$T/run.err")"
grep -q "jumped" "$T/run.err" && fail "the start warned of a jump: $(grep jumped "$T/run.err")"
next=$(kj_sql "select min(nv_counter) from checkpoints where nv_counter > $last")
[ "$next" = $((last + 1)) ] || fail "first checkpoint after the restart: $next, want $((last + 1))"

"$KINJECT" evidence export --state "$KJ_STATE" --job WO-2027-0315 --out "$T/ev.json"
"$KINJECT" verify "$T/ev.json" --ak "$KJ_STATE/ak.pem" --strict-clock --json \
	>"$T/v.json" 2>"$T/v.err" || fail "verify --strict-clock: $(jq -c '.checks[2]' "$T/v.json")"
jq -e '.checks[2].status == "pass" and (.checks[2].details.clock_runs | length) == 2
	and (.checks[2].details.counter_jumps == null)' "$T/v.json" >/dev/null ||
	fail "clock check: $(jq -c '.checks[2]' "$T/v.json")"
grep -q "warning" "$T/v.err" && fail "verify warned: $(cat "$T/v.err")"
echo "run_tpm_restart ok (checkpoint $last -> $next across the restart)"
