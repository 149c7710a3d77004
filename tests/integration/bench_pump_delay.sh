# SPDX-License-Identifier: Apache-2.0
# The bench pump's --program-delay-ms (tests/bench/pump.c): its client holds
# every device for the delay between the last payload byte and its answer,
# as `kinject sim --program-delay-ms' does, so `make bench' can set kinject
# with a programming delay against a pump with the same one.  Each socket
# then does at most one device per delay: 20 sockets, 200 ms, 100 devices
# (5 per socket) take at least 1 s, i.e. at most sockets / delay = 100
# devices/s.  A correctness test, not a timing one: only that upper bound is
# asserted (with 5 % for rounding of the clock), in both client shapes
# (one hashing loop; two bare loops).  Without the delay the same run does
# thousands of devices/s.
. "$(dirname "$0")/../lib/common.sh"

PUMP=$(dirname "$KINJECT")/bench/pump
[ -x "$PUMP" ] ||
	fail "$PUMP is missing: make check-integration builds it (or make $PUMP)"

SOCKETS=20 DELAY=200 DEVICES=100
check() {
	local out=$T/pump.json
	"$PUMP" --sockets $SOCKETS --devices $DEVICES --size 65536 \
		--program-delay-ms $DELAY "$@" >"$out" ||
		fail "pump $*: exit $?"
	cat "$out"
	jq -e --argjson d $DELAY --argjson n $DEVICES \
		'.program_delay_ms == $d and .devices == $n' "$out" >/dev/null ||
		fail "pump $*: did not report $DEVICES devices at $DELAY ms: $(cat "$out")"
	# sockets / delay, and the time it implies for the devices (rounds)
	jq -e --argjson s $SOCKETS --argjson d $DELAY \
		'.devices_per_s <= 1.05 * $s * 1000 / $d and
		 .seconds >= 0.95 * (.devices / $s) * $d / 1000' \
		"$out" >/dev/null ||
		fail "pump $*: faster than $SOCKETS sockets / $DELAY ms allow: $(cat "$out")"
	echo "ok: pump $*: $(jq -r .devices_per_s "$out") devices/s" \
		"<= $((SOCKETS * 1000 / DELAY))"
}
check --workers 1
check --workers 2 --no-hash
