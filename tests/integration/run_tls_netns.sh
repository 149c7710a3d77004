# SPDX-License-Identifier: Apache-2.0
# A TLS job across a network, as on the production line (docs/TLS.md):
# the test makes two network namespaces joined by a veth pair, the
# appliance's (10.213.0.1/30) and the site's (10.213.0.2/30), and uses no
# other address.  In the appliance's namespace: swtpm, the ceremony and
# `kinject run --listen tls:10.213.0.1:PORT`; plain `tcp:` on that address
# is refused (TLS required).  From the site's namespace `kinject sim
# --connect tls:' commits every device, a site certificate of another CA is
# refused and counted; `kinject verify' passes.  Skipped (77) without root
# or `ip netns'; the namespaces (and with them the veth pair) are deleted
# on every exit.
set -euo pipefail
: "${KINJECT:?KINJECT must point to the kinject binary}"

if [ -z "${KJ_NETNS_SITE:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "skip: needs root for ip netns"; exit 77; }
	command -v ip >/dev/null || { echo "skip: no ip(8)"; exit 77; }
	APP=kj-app-$$
	SITE=kj-site-$$
	inner=
	cleanup() {
		# The test inside first: its own trap stops what it started.
		if [ -n "$inner" ]; then
			kill -TERM "$inner" 2>/dev/null || true
			wait "$inner" 2>/dev/null || true
		fi
		ip netns del "$APP" 2>/dev/null || true
		ip netns del "$SITE" 2>/dev/null || true
	}
	trap cleanup EXIT
	trap 'exit 130' INT TERM HUP
	ip netns add "$APP" 2>/dev/null || { echo "skip: ip netns add"; exit 77; }
	ip netns add "$SITE"
	ip link add kja$$ netns "$APP" type veth peer name kjs$$ netns "$SITE"
	ip -n "$APP" addr add 10.213.0.1/30 dev kja$$
	ip -n "$SITE" addr add 10.213.0.2/30 dev kjs$$
	for ns in "$APP" "$SITE"; do
		ip -n "$ns" link set lo up
	done
	ip -n "$APP" link set kja$$ up
	ip -n "$SITE" link set kjs$$ up
	# The rest of this script, inside the appliance's namespace.
	KJ_NETNS_SITE=$SITE ip netns exec "$APP" bash "$0" &
	inner=$!
	rc=0
	wait "$inner" || rc=$?
	inner=
	exit $rc
fi

. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
. "$KJ_TESTS/lib/tls.sh"

APP_ADDR=10.213.0.1
N=30
kj_job_setup $N 65536
S=$KJ_STATE
kj_tls_ca line1 && kj_tls_ca other || fail "site CAs"
kj_tls_enrol "$S" line1 || fail "enrol-site-ca"
kj_tls_site honest line1-a line1 && kj_tls_site rogue line1-a other ||
	fail "site certificates"
PORT=$(kj_free_port)

rc=0; kj_run --listen "tcp:$APP_ADDR:$PORT" >/dev/null 2>"$T/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "TLS required.*--listen tls:$APP_ADDR:$PORT" \
	"$T/err" || fail "plain tcp on $APP_ADDR: exit $rc: $(cat "$T/err")"
echo "ok: plain TCP on $APP_ADDR refused, naming tls:"

kj_run_bg --listen "tls:$APP_ADDR:$PORT" --json-summary "$T/run.json"
kj_wait_listen
ss -tln | grep -q "$APP_ADDR:$PORT" || fail "not listening on $APP_ADDR:$PORT"
site_sim() { # NAME CERT ARGS...: kinject sim in the site's namespace
	local name=$1 cert=$2; shift 2
	ip netns exec "$KJ_NETNS_SITE" "$KINJECT" sim \
		--connect "tls:$APP_ADDR:$PORT" --cert "$T/$cert.pem" \
		--key "$T/$cert.key" --ca "$S/tls.pem" --site line1-a \
		--hwrev B --json-summary "$T/$name.json" "$@" \
		>"$T/$name.out" 2>&1
}
rc=0; site_sim rogue rogue --sockets 1 --devices 1 || rc=$?
[ "$rc" -ne 0 ] && [ "$(jq .errors.tls "$T/rogue.json")" -ge 1 ] ||
	fail "another CA's site certificate: exit $rc: $(cat "$T/rogue.out")"
rc=0; site_sim honest honest --sockets 4 --devices $N || rc=$?
[ "$rc" -eq 0 ] || fail "site sim exit $rc: $(cat "$T/honest.out")"
rc=0; wait "$KJ_RUN_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "run exit $rc: $(tail -20 "$T/run.err")"
jq -e ".ok == $N and .tls.refused >= 1 and .tls.ktls + .tls.user_space >= 4" \
	"$T/run.json" >/dev/null || fail "summary: $(cat "$T/run.json")"
grep -q "TLS handshake refused: unable to get local issuer certificate" \
	"$T/run.err" || fail "the refusal is not logged: $(grep TLS "$T/run.err")"
echo "ok: $N devices from the site's namespace over TLS 1.3, another CA refused"

kj_tls_verify "$S"
echo "run_tls_netns ok"
