# SPDX-License-Identifier: Apache-2.0
# kinject run --tls-sign-rate N --tls-sign-burst B (docs/TLS.md): the
# keeper signs at most B TLS handshakes at once, then N a second; a
# handshake over the limit is refused, counted (summary tls.sign_limited)
# and logged with the limit.  8 sites handshake at once against a burst
# of 2 at 1 a second: 2 are signed at once, and only a spread of the 8
# over 6 s could avoid a refusal; every handshake is asked for once (the
# sim does not retry a refused one), the signed sites commit the job.
# The flags' range errors name the flag: run_usage.sh.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
. "$KJ_TESTS/lib/tls.sh"

N=6
kj_job_setup $N 4096
S=$KJ_STATE
PORT=$(kj_free_port)
kj_tls_ca line1 && kj_tls_enrol "$S" line1 &&
	kj_tls_site site line1-a line1 || fail "site CA and certificate"
kj_run_bg --listen "tls:127.0.0.1:$PORT" --json-summary "$T/run.json" \
	--tls-sign-rate 1 --tls-sign-burst 2
kj_wait_listen
# Exit 1: the refused sites failed their sockets; checked below.
"$KINJECT" sim --connect "tls:127.0.0.1:$PORT" --cert "$T/site.pem" \
	--key "$T/site.key" --ca "$S/tls.pem" --site line1-a --hwrev B \
	--sockets 8 --devices $N --json-summary "$T/sim.json" \
	>"$T/sim.out" 2>&1 || true
rc=0; wait "$KJ_RUN_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "run exit $rc: $(tail -5 "$T/run.err")"
tls=$(jq -c .tls "$T/run.json")
jq -e ".ok == $N and .tls.signed >= 2 and .tls.sign_limited >= 1 and
	.tls.signed + .tls.sign_limited == 8" "$T/run.json" >/dev/null ||
	fail "summary: $tls, ok $(jq .ok "$T/run.json")"
[ "$(jq .errors.tls "$T/sim.json")" = "$(jq .tls.sign_limited "$T/run.json")" ] ||
	fail "the sites saw $(jq .errors.tls "$T/sim.json") refused handshakes: $tls"
grep -q 'TLS handshake signatures over the limit (1/s, burst 2): handshake refused' \
	"$T/run.err" || fail "no over-the-limit line: $(grep -i limit "$T/run.err")"
grep -q "TLS: .*, $(jq .tls.signed "$T/run.json") signatures, $(jq .tls.sign_limited "$T/run.json") over the rate limit" \
	"$T/run.out" || fail "text summary: $(grep TLS "$T/run.out")"
echo "run_tls_sign_limit ok ($tls)"
