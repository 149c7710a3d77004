# SPDX-License-Identifier: Apache-2.0
# A complete job fixture for `kinject run' tests: swtpm, SoftHSM2 token,
# the key ceremony (3 officers, 2 of 3; customer acme enrolled), openssl-made
# inputs encrypted to the ceremony's transport.pem.  Source after common.sh.
#   kj_job_setup DEVICES [FW_SIZE] [CREDS]  -> $T/in (inputs), $KJ_STATE
#   kj_run ARGS...        kinject run in the foreground with the job's flags
#   kj_run_bg ARGS...     same in the background: $KJ_RUN_PID
#   kj_wait_listen        wait until the listening socket exists
#   kj_sim ARGS...        kinject sim against the job's socket
#   kj_sql SQL            query the journal
. "$KJ_TESTS/lib/softhsm.sh"
. "$KJ_TESTS/lib/inputs.sh"
. "$KJ_TESTS/lib/swtpm.sh"
. "$KJ_TESTS/lib/ceremony.sh"

kj_job_setup() {
	local n=$1 size=${2:-4096} creds=${3:-$(($1 + $1 / 2 + 10))}
	KJ_STATE=$T/state
	# KJ_JOB_EK_CERT=1: a TPM with an EK certificate (swtpm's local CA).
	kj_swtpm_start "$T/tpm" ${KJ_JOB_EK_CERT:+--ek-cert} >/dev/null
	kj_appliance_setup "$KJ_STATE" "$T/in" || fail "key ceremony"
	KJ_FW_SIZE=$size KJ_CREDS_N=$creds KJ_CREDS_DISTINCT=4 \
		kj_inputs_all "$T/in" "$KJ_STATE/transport.pem" >/dev/null
	kj_work_order "$T/in" 3.1.5 "$n" >/dev/null
	KJ_SOCK=$T/line.sock
}

kj_run_args() {
	local C=$T/in
	echo --state "$KJ_STATE" --operator tester \
		--work-order "$C/WO.json" --work-order-sig "$C/WO.json.sig" \
		--product "$C/product.json" --product-sig "$C/product.json.sig" \
		--firmware "$C/FW.cms" --credentials "$C/CREDS.cms" \
		--hsm "$KJ_HSM_URI_P11KIT" --pin-source "$KJ_HSM_PIN_SOURCE" \
		--tpm "$KJ_SWTPM_TCTI" --listen "unix:$KJ_SOCK"
}

kj_run() { "$KINJECT" run $(kj_run_args) "$@"; }

kj_run_bg() {
	rm -f "$KJ_SOCK"
	"$KINJECT" run $(kj_run_args) "$@" >"$T/run.out" 2>"$T/run.err" &
	KJ_RUN_PID=$!
	kj_track_pid $KJ_RUN_PID
}

kj_wait_listen() {
	local i
	for i in $(seq 200); do
		[ -S "$KJ_SOCK" ] && return 0
		kill -0 "$KJ_RUN_PID" 2>/dev/null || { cat "$T/run.err"; fail "kinject run died"; }
		sleep 0.05
	done
	fail "kinject run did not listen on $KJ_SOCK"
}

kj_sim() { "$KINJECT" sim --connect "unix:$KJ_SOCK" "$@"; }

kj_sql() { sqlite3 -readonly "$KJ_STATE/journal.db" "$1"; }

# kj_wait_sql QUERY MIN TRIES INTERVAL: poll the journal until QUERY's
# number reaches MIN (a journal being created or locked reads as 0); sets
# KJ_SQL_N to the last value read, returns 1 if MIN was never reached.
kj_wait_sql() {
	local i
	for i in $(seq "$3"); do
		KJ_SQL_N=$(kj_sql "$1" 2>/dev/null || echo 0)
		[ "${KJ_SQL_N:-0}" -ge "$2" ] && return 0
		sleep "$4"
	done
	return 1
}

# kj_run_term_after N [RUN ARGS...]: a job with 32 sites, stopped with
# SIGTERM once N devices are ok; it must exit 3 (stopped, resumable).
kj_run_term_after() {
	local want=$1 rc=0
	shift
	kj_run_bg "$@"
	kj_wait_listen
	kj_sim --hwrev B --sockets 32 --devices 0 --timeout 5 >/dev/null 2>&1 &
	kj_track_pid $!
	kj_wait_sql "select count(*) from records where result='ok'" "$want" \
		1200 0.05 || fail "after 60 s: $KJ_SQL_N devices ok, want $want"
	kill -TERM "$KJ_RUN_PID"
	wait "$KJ_RUN_PID" || rc=$?
	[ $rc -eq 3 ] || fail "SIGTERM: exit $rc, want 3: $(tail -5 "$T/run.err")"
}
