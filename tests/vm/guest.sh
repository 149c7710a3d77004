#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The VM test's appliance service (/etc/kinject/service in the test's
# site disk; tests/vm/run.sh writes /job/env and the inputs next to it).
# Runs inside the booted image as root, under busybox sh:
#   0. the key ceremony, after the init measured the code: the AK is bound
#      to this boot's PCRs 4 and 9; officers sign with openssl here; the
#      inputs are encrypted to the transport certificate it made
#   1. arena_probe check: every promise of kinject.ko, against this kernel
#   2. rmmod/insmod 100 times, an arena opened and closed each time, the
#      counters back to zero after each
#   3. a real job: kinject run + kinject sim on loopback, half the devices
#   4. tamper: a process holds an arena, zeroize is written to sysfs: the
#      held arena reads zeros, the running job stops (SIGTERM from the
#      module), its summary records why
#   5. the job resumed to its quantity over TLS 1.3 on loopback (kTLS:
#      the init loaded tls.ko; a site CA enrolled in step 0); evidence
#      exported
#   6. root extends PCR 4 by hand (a raw TPM2_PCR_Extend): a second job
#      cannot take a checkpoint, the AK's policy refuses to quote
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

st=/job/state
off=/job/officers
# Officers 1 and 2 of 3 sign REQ, then it is applied.
approve() {
	for i in 1 2; do
		openssl cms -sign -binary -in "$1" -signer $off/o$i.pem \
			-inkey $off/o$i.key -outform DER -out "$1.$i.sig" ||
			return 1
	done
	kinject ceremony apply --state $st "$1" "$1.1.sig" "$1.2.sig"
}

step "0 key ceremony inside the measured boot"
{
	kinject ceremony init --state $st --hsm "$KJ_HSM_URI" \
		--pin-source file:/job/softhsm/pin --tpm device:/dev/tpmrm0 \
		--officer $off/o1.pem --officer $off/o2.pem \
		--officer $off/o3.pem --threshold 2 &&
	cp $st/ceremony/init.req /job/init.req && approve /job/init.req &&
	kinject ceremony request enrol-customer --state $st --name acme \
		--cert /job/in/release.pem --out /job/enrol.req &&
	approve /job/enrol.req &&
	kinject ceremony request enrol-site-ca --state $st --name vmline \
		--cert /job/tls/vmline.pem --out /job/siteca.req &&
	approve /job/siteca.req
} >"$out/ceremony.out" 2>&1 || bad "key ceremony"
for f in FW CREDS; do
	openssl cms -encrypt -binary -aes-256-gcm -recip $st/transport.pem \
		-keyopt ecdh_kdf_md:sha256 -in /job/in/$f.cms.signed \
		-outform DER -out /job/in/$f.cms || bad "encrypt $f"
done

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

wo=WO
run() {
	kinject run --state /job/state --operator vm-test \
		--work-order /job/in/$wo.json \
		--work-order-sig /job/in/$wo.json.sig \
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

# sim DEVICES SUMMARY [SIM ARGS]: a site of 2 sockets, unix by default.
sim() {
	n=$1 js=$2
	shift 2
	timeout 90 kinject sim --connect unix:/run/line.sock --hwrev B \
		--site vm-line --sockets 2 --devices "$n" --json-summary "$js" \
		"$@"
}
tls=tls:127.0.0.1:7443
tls_site="--connect $tls --cert /job/tls/vmsite.pem --key /job/tls/vmsite.key
	--ca $st/tls.pem"

# Part N of the job: kinject run in the background ($rpid), half of the
# devices through kinject sim once it listens; "tls": the sim over TLS.
job_part() {
	ra= sa=
	[ "${2:-}" = tls ] && ra="--listen $tls" sa=$tls_site
	rm -f /run/line.sock
	run --json-summary "$out/run$1.json" $ra >"$out/run$1.out" \
		2>"$out/run$1.err" &
	rpid=$!
	wait_sock $rpid || { bad "kinject run $1 did not listen"; return 1; }
	sim "$KJ_HALF" "$out/sim$1.json" $sa >"$out/sim$1.out" 2>&1 ||
		{ bad "sim $1 exit $?"; return 1; }
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

step "5 job resumed to its quantity, over TLS"
cat /proc/sys/net/ipv4/tcp_available_ulp >"$out/ulp" 2>&1
t0=$(date +%s)
job_part 2 tls || kill $rpid 2>/dev/null
wait $rpid
echo $? >"$out/run2.rc"
# The CPU's aes flag and the gcm(aes) kTLS got: the one of highest
# priority in /proc/crypto (the generic template is listed once used).
grep -m 1 '^flags' /proc/cpuinfo >"$out/cpuflags"
awk -F ' *: *' '$1 == "name" { n = $2 } $1 == "driver" { d = $2 }
	$1 == "priority" && n == "gcm(aes)" && $2 + 0 > best {
		best = $2 + 0; pick = d } END { print pick }' /proc/crypto \
	>"$out/gcm_driver"
lsmod >"$out/lsmod"
step "5 took $(($(date +%s) - t0)) s"
kinject evidence export --state /job/state --job "$KJ_JOB" \
	--out "$out/evidence.json" >"$out/export.out" 2>&1 ||
	bad "evidence export"
cp /job/state/ak.pem "$out/ak.pem" 2>/dev/null || bad "no ak.pem"
for c in arenas bytes; do
	cat $sysk/$c >"$out/$c.after"
done
for p in 4 9; do
	cat /sys/class/tpm/tpm0/pcr-sha256/$p >"$out/pcr$p" 2>/dev/null
done
# The firmware's event log (UEFI only), for the host to show on failure.
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
cp /sys/kernel/security/tpm0/binary_bios_measurements "$out/bios.log" \
	2>/dev/null

step "6 root extends PCR 4 by hand: the AK must not quote"
printf "$KJ_EXTEND4" >/dev/tpmrm0
cat /sys/class/tpm/tpm0/pcr-sha256/4 >"$out/pcr4.extended"
rm -f /run/line.sock
wo=WO2
run >"$out/run3.out" 2>"$out/run3.err" &
rpid=$!
wait_sock $rpid && sim 2 "$out/sim3.json" >"$out/sim3.out" 2>&1
wait $rpid
echo $? >"$out/run3.rc"
dmesg >"$out/dmesg.txt"
step "done"
send_results
