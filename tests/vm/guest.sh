#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The VM test's appliance service (/etc/kinject/service in the test's
# overlay; tests/vm/run.sh writes /job/env and the inputs next to it).
# Runs inside the booted image as root, under busybox sh:
#   1. arena_probe check: every promise of kinject.ko, against this kernel
#   2. rmmod/insmod 100 times, an arena opened and closed each time, the
#      counters back to zero after each
#   3. a real job: kinject run + kinject sim on loopback, half the devices
#   4. tamper: a process holds an arena, zeroize is written to sysfs: the
#      held arena reads zeros, the running job stops (SIGTERM from the
#      module), its summary records why
#   5. the job resumed to its quantity; evidence exported
# Every result goes to the host as a base64 tar on the second serial port.
. /job/env
set -u
out=/job/out
mkdir -p "$out"
step() { echo "KJ-VM: $*"; }
bad() { echo "KJ-VM: FAIL: $*"; echo "$*" >>"$out/failures"; }
sysk=/sys/class/misc/kinject

send_results() {
	echo "KJ-VM-BEGIN" >/dev/ttyS1
	(cd /job && tar -cf - out) | base64 >/dev/ttyS1
	echo "KJ-VM-END" >/dev/ttyS1
}

step "1 arena_probe check"
arena_probe check || bad "arena_probe check"

step "2 rmmod/insmod x100"
ko=/lib/modules/$(uname -r)/extra/kinject.ko
i=0
while [ $i -lt 100 ]; do
	rmmod kinject || { bad "rmmod $i"; break; }
	[ -e /sys/module/kinject ] && { bad "module still there $i"; break; }
	insmod "$ko" || { bad "insmod $i"; break; }
	arena_probe cycle || { bad "cycle $i"; break; }
	i=$((i + 1))
done
echo "$i" >"$out/load_cycles"
for c in arenas bytes; do
	[ "$(cat $sysk/$c)" = 0 ] || bad "$c is $(cat $sysk/$c) after the loop"
done

run() {
	kinject run --state /job/state --operator vm-test \
		--work-order /job/in/WO.json --work-order-sig /job/in/WO.json.sig \
		--product /job/in/product.json \
		--product-sig /job/in/product.json.sig \
		--firmware /job/in/FW.cms --credentials /job/in/CREDS.cms \
		--hsm "$KJ_HSM_URI" --pin-source file:/job/softhsm/pin \
		--tpm device:/dev/tpmrm0 --listen unix:/run/line.sock "$@"
}

wait_sock() {
	i=0
	while [ ! -S /run/line.sock ]; do
		kill -0 "$1" 2>/dev/null || return 1
		i=$((i + 1))
		[ $i -gt 1200 ] && return 1
		sleep 0.1
	done
}

sim() {
	kinject sim --connect unix:/run/line.sock --hwrev B --site vm-line \
		--sockets 2 --devices "$1" --json-summary "$2"
}

# Part N of the job: kinject run in the background ($rpid), half of the
# devices through kinject sim once it listens.
job_part() {
	rm -f /run/line.sock
	run --json-summary "$out/run$1.json" >"$out/run$1.out" \
		2>"$out/run$1.err" &
	rpid=$!
	wait_sock $rpid || { bad "kinject run $1 did not listen"; return 1; }
	sim "$KJ_HALF" "$out/sim$1.json" >"$out/sim$1.out" 2>&1 ||
		bad "sim $1 exit $?"
}

step "3 job: $KJ_HALF of $KJ_QTY devices"
if job_part 1; then
	step "4 tamper: zeroize while the job runs"
	arena_probe hold >"$out/hold.out" 2>&1 &
	hpid=$!
	while ! grep -q holding "$out/hold.out" 2>/dev/null; do
		kill -0 $hpid 2>/dev/null || break
		sleep 0.1
	done
	before=$(cat $sysk/zeroize_events)
	echo 1 >$sysk/zeroize
	wait $hpid || bad "held arena not zero after zeroize"
	[ "$(cat $sysk/zeroize_events)" = $((before + 1)) ] ||
		bad "zeroize_events did not count"
else
	kill $rpid 2>/dev/null
fi
wait $rpid
echo $? >"$out/run1.rc"

step "5 job resumed to its quantity"
job_part 2 || kill $rpid 2>/dev/null
wait $rpid
echo $? >"$out/run2.rc"
kinject evidence export --state /job/state --job "$KJ_JOB" \
	--out "$out/evidence.json" >"$out/export.out" 2>&1 ||
	bad "evidence export"
cp /job/state/ak.pem "$out/ak.pem" 2>/dev/null || bad "no ak.pem"
for c in arenas bytes; do
	cat $sysk/$c >"$out/$c.after"
done
dmesg >"$out/dmesg.txt"
for p in 4 9; do
	cat /sys/class/tpm/tpm0/pcr-sha256/$p >"$out/pcr$p" 2>/dev/null
done
step "done"
send_results
