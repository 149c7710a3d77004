# SPDX-License-Identifier: Apache-2.0
# kinject sim: flags, usage errors (exit 2), a refused connection (exit 1)
# and its JSON summary.  The runs against the appliance are sim_run_*.sh.
. "$(dirname "$0")/../lib/common.sh"

"$KINJECT" sim --help | grep '^Usage: kinject sim' >/dev/null || fail "sim --help"

usage() {
	local want=$1 rc=0; shift
	"$KINJECT" sim "$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" -eq 2 ] || fail "sim $*: exit $rc, want 2"
	grep -qF -- "$want" "$T/err" || fail "sim $*: stderr lacks '$want': $(cat "$T/err")"
}
usage "--connect and --hwrev are required" --connect unix:$T/s
usage "--connect: \`udp:1': expected unix:PATH, tcp:HOST:PORT or tls:HOST:PORT" --connect udp:1 --hwrev B
usage "plain TCP is only for loopback" --connect tcp:192.0.2.1:1 --hwrev B
usage "--sockets: \`many' is not a decimal number" --connect unix:$T/s --hwrev B --sockets many
usage "--bad-readback-rate: \`1.5' is not a rate 0..1" --connect unix:$T/s --hwrev B --bad-readback-rate 1.5
usage "fault rates add up to" --connect unix:$T/s --hwrev B --bad-readback-rate 0.5 --disconnect-rate 0.5
usage "only one hostile mode" --connect unix:$T/s --hwrev B --garbage --vanish
usage "--expect: \`nope' is not an ABORT code name" --connect unix:$T/s --hwrev B --expect readback,nope
usage "unknown option" --connect unix:$T/s --hwrev B --frobnicate
usage "--workers: \`0' is out of range 1..64" --connect unix:$T/s --hwrev B --workers 0
usage "--workers 3: more than --sockets 2" --connect unix:$T/s --hwrev B --workers 3 --sockets 2

# Nobody listening: exit 1, the error names the address, the summary says so.
rc=0
"$KINJECT" sim --connect "unix:$T/none.sock" --hwrev B --sockets 4 \
	--connect-wait 0 --json-summary "$T/sum.json" >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" -eq 1 ] || fail "refused: exit $rc, want 1"
grep -qF "unix:$T/none.sock: connect:" "$T/err" || fail "refused: $(cat "$T/err")"
for want in '"kinject_sim":1,' '"exit":1}' '"connect":4,' '"sockets_failed":4,' \
	'"committed":0,' '"unauthorized":0,' '"counterfeit":0}'; do
	grep -qF "$want" "$T/sum.json" || fail "summary lacks $want: $(cat "$T/sum.json")"
done
echo "sim cli ok"
