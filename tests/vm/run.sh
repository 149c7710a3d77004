#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make vm-test (docs/IMAGE.md): the appliance image booted with Debian's
# kernel under qemu-system-x86_64 -accel tcg (never KVM), swtpm as its TPM
# (-tpmdev emulator, -device tpm-tis), a real job inside (tests/vm/guest.sh),
# and the evidence checked here on the host: kinject verify --golden.
#
#   KINJECT=build/kinject IMAGE=build/image KVER=... PROBE=... run.sh
#   KJ_VM_KEEP=DIR keeps the guest's results; KJ_VM_TIMEOUT (s) per boot;
#   KJ_VM_FIRMWARE=ovmf (default: UEFI, the boot chain measured into PCRs
#   4 and 9) or none (SeaBIOS, quicker, nothing below PCR 13 measured).
#
# The job's SoftHSM2 token and inputs are made here as tests/lib/ makes them
# for every integration test and travel in a second cpio archive appended
# to the image's (the kernel unpacks both), so the image itself stays the
# reproducible one make image wrote.  Prints the guest console on failure;
# every boot has a timeout; qemu and swtpm are stopped on every exit.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/softhsm.sh"
. "$KJ_TESTS/lib/inputs.sh"
: "${IMAGE:?}" "${KVER:?}" "${PROBE:?}"
KJ_VM_TIMEOUT=${KJ_VM_TIMEOUT:-600}
KJ_VM_FIRMWARE=${KJ_VM_FIRMWARE:-ovmf}
ovmf=/usr/share/OVMF
HALF=6
kernel=/boot/vmlinuz-$KVER
[ -r "$kernel" ] || fail "$kernel: missing (make deps installs linux-image-amd64)"
command -v qemu-system-x86_64 >/dev/null ||
	fail "qemu-system-x86_64 missing (make deps)"

show_console() {
	echo "---- guest console ($T/console.log) ----" >&2
	tr -d '\r' <"$T/console.log" | tail -n 150 >&2 || true
	echo "---- end of guest console ----" >&2
}
on_exit() {
	local rc=$?
	[ "$rc" -eq 0 ] || show_console
	kj_cleanup
	exit "$rc"
}
trap on_exit EXIT

# ---- the job's parts, as the integration tests make them ----
# The key ceremony runs on the host against the TPM state the VM will boot
# with (the AK lives under that TPM's EK), then swtpm shuts down in order
# and the same state becomes the VM's TPM; the appliance's state dir
# travels into the VM with the job.
. "$KJ_TESTS/lib/swtpm.sh"
. "$KJ_TESTS/lib/ceremony.sh"
kj_swtpm_start "$T/tpm" --ek-cert || fail "swtpm for the ceremony"
kj_appliance_setup "$T/state" "$T/in" || fail "key ceremony"
KJ_FW_SIZE=8192 KJ_CREDS_N=$((4 * HALF)) KJ_CREDS_DISTINCT=4 \
	KJ_WO_QTY=$((2 * HALF)) kj_inputs_all "$T/in" \
	"$T/state/transport.pem" >/dev/null
tpm2_shutdown -T "$KJ_SWTPM_TCTI" || fail "tpm2_shutdown after the ceremony"
kj_swtpm_stop "$T/tpm"
job=$(jq -r .id "$T/in/WO.json")

ov=$T/overlay
mkdir -p "$ov/job" "$ov/etc/kinject" "$ov/usr/bin"
cp -R "$T/state" "$ov/job/state"
cp -R "$T/in" "$ov/job/in"
cp -R "$T/softhsm" "$ov/job/softhsm"
sed -i "s|^directories.tokendir = .*|directories.tokendir = /job/softhsm/tokens|" \
	"$ov/job/softhsm/softhsm2.conf"
for lib in "$KJ_HSM_MODULE" $(ldd "$KJ_HSM_MODULE" |
	sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p'); do
	mkdir -p "$ov$(dirname "$lib")"
	cp -L "$lib" "$ov$lib"
done
cat >"$ov/job/env" <<EOF
export SOFTHSM2_CONF=/job/softhsm/softhsm2.conf
KJ_HSM_URI='$KJ_HSM_URI_P11KIT?module-path=$KJ_HSM_MODULE'
KJ_JOB='$job'
KJ_HALF=$HALF
KJ_QTY=$((2 * HALF))
EOF
echo "KJ_STATE=/job/state" >"$ov/etc/kinject/env"
install -m 0755 "$KJ_TESTS/vm/guest.sh" "$ov/etc/kinject/service"
install -m 0755 "$PROBE" "$ov/usr/bin/arena_probe"
(cd "$ov" && find . -mindepth 1 | LC_ALL=C sort |
	cpio -o -H newc --owner=0:0 --quiet) | gzip -n >"$T/overlay.cpio.gz"
cat "$IMAGE/initramfs.cpio.gz" "$T/overlay.cpio.gz" >"$T/initrd"

# ---- swtpm as the VM's TPM ----
swtpm socket --tpm2 --tpmstate dir="$T/tpm/state" --terminate \
	--ctrl type=unixio,path="$T/swtpm.sock" \
	--log file="$T/swtpm.log" &
kj_track_pid $!
for _ in $(seq 200); do
	[ -S "$T/swtpm.sock" ] && break
	sleep 0.05
done
[ -S "$T/swtpm.sock" ] || fail "swtpm did not create $T/swtpm.sock"

# ---- boot: through OVMF (UEFI, measures the kernel and initrd) or not ----
machine=(-machine pc)
if [ "$KJ_VM_FIRMWARE" = ovmf ]; then
	[ -r "$ovmf/OVMF_CODE_4M.fd" ] ||
		fail "$ovmf/OVMF_CODE_4M.fd: missing (make deps installs ovmf)"
	cp "$ovmf/OVMF_VARS_4M.fd" "$T/vars.fd"
	machine=(-machine q35
		-drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf/OVMF_CODE_4M.fd"
		-drive "if=pflash,format=raw,unit=1,file=$T/vars.fd")
fi
echo "vm-test: booting $kernel (TCG, firmware $KJ_VM_FIRMWARE) with the image + the job overlay"
start=$(date +%s)
timeout -k 10 "$KJ_VM_TIMEOUT" qemu-system-x86_64 "${machine[@]}" \
	-accel tcg -m 1024 -smp 1 -no-reboot -display none -vga none \
	-monitor none -kernel "$kernel" -initrd "$T/initrd" \
	-append "console=ttyS0 panic=-1 loglevel=6" \
	-serial "file:$T/console.log" -serial "file:$T/results.b64" \
	-chardev socket,id=chrtpm,path="$T/swtpm.sock" \
	-tpmdev emulator,id=tpm0,chardev=chrtpm \
	-device tpm-tis,tpmdev=tpm0 &
qpid=$!
kj_track_pid $qpid
qrc=0
wait $qpid || qrc=$?
echo "vm-test: the VM ran $(($(date +%s) - start)) s"
[ "$qrc" -eq 0 ] || fail "qemu exit $qrc (124: no power-off in ${KJ_VM_TIMEOUT} s)"
grep -q '^KJ-VM-END' <(tr -d '\r' <"$T/results.b64") ||
	fail "the guest sent no results"
mkdir -p "$T/res"
# Between the markers: the firmware may write to the port before Linux.
tr -d '\r' <"$T/results.b64" |
	sed -n '/KJ-VM-BEGIN$/,/^KJ-VM-END$/{/KJ-VM-BEGIN$/d;/^KJ-VM-END$/d;p}' |
	base64 -d | tar -x -C "$T/res"
R=$T/res/out
# KJ_VM_KEEP=DIR keeps the guest's results and console there.
if [ -n "${KJ_VM_KEEP:-}" ]; then
	mkdir -p "$KJ_VM_KEEP"
	cp -R "$R/." "$T/console.log" "$KJ_VM_KEEP/"
fi
tr -d '\r' <"$T/console.log" | grep '^KJ-VM' || true

# ---- checks ----
[ ! -s "$R/failures" ] || fail "in the guest: $(cat "$R/failures")"
[ "$(cat "$R/load_cycles")" = 100 ] || fail "load cycles: $(cat "$R/load_cycles")"
echo "ok: kinject.ko checks, 100 load/unload cycles, counters at zero"
[ "$(cat "$R/run1.rc")" = 3 ] ||
	fail "the zeroized job ended with $(cat "$R/run1.rc"), not 3 (stopped): $(cat "$R/run1.err")"
jq -e '.outcome == "stopped (resumable)"' "$R/run1.json" >/dev/null ||
	fail "run 1 summary: $(cat "$R/run1.json")"
grep -q 'zeroize: every arena wiped' "$R/dmesg.txt" || fail "no zeroize in dmesg"
echo "ok: zeroize wiped the held arena and stopped the running job (exit 3, $(jq -r .outcome "$R/run1.json"))"
[ "$(cat "$R/run2.rc")" = 0 ] || fail "the resumed job: exit $(cat "$R/run2.rc"): $(cat "$R/run2.err")"
jq -e '.appliance.secret_memory == "kmod"' "$R/evidence.json" >/dev/null ||
	fail "evidence secret_memory: $(jq -c .appliance.secret_memory "$R/evidence.json")"
"$KINJECT" verify "$R/evidence.json" --ak "$R/ak.pem" \
	--golden "$IMAGE/golden.json" --work-order "$T/in/WO.json" \
	>"$T/verify.out" 2>&1 || { cat "$T/verify.out"; fail "kinject verify --golden"; }
echo "ok: evidence from the VM verified on the host with --golden (secret memory kmod)"
# The init measured the code before any job: the VM's boot is the epoch
# after the ceremony's (epoch 0, on the host), and its log starts with the
# init's entries.
[ "$(jq -r '[.event_log[] | select(.epoch == 1)][0,1] |
	"\(.epoch)/\(.pcr)/\(.name)"' "$R/evidence.json" | paste -sd' ')" = \
	"1/13/kinject 1/13/kinject.ko" ] ||
	fail "the boot's epoch does not start with the init's measurement: $(jq -c '.event_log[0:3]' "$R/evidence.json")"
tr -d '\r' <"$T/console.log" | grep -q 'boot: measured code into PCR 13' ||
	fail "no boot measurement on the console"
echo "ok: the init measured kinject and kinject.ko into PCR 13 before the job (epoch 1), the jobs continued that log"

# A digest that is not golden must fail the same check.
jq '.measurements.kinject = ["'"$(printf '0%.0s' $(seq 64))"'"]' \
	"$IMAGE/golden.json" >"$T/bad-golden.json"
if "$KINJECT" verify "$R/evidence.json" --ak "$R/ak.pem" \
	--golden "$T/bad-golden.json" >/dev/null 2>&1; then
	fail "verify passed against a golden.json without the binary's digest"
fi
echo "ok: a golden.json without the binary's digest fails verify"
if [ "$KJ_VM_FIRMWARE" = ovmf ]; then
	# The boot chain: OVMF measured the kernel (PCR 4), the EFI stub the
	# initrd (PCR 9); a kernel booted without them leaves both zero.
	for p in 4 9; do
		v=$(cat "$R/pcr$p")
		[ -n "$v" ] && [ "$v" != "$(printf '0%.0s' $(seq 64))" ] ||
			fail "PCR $p was not measured by the boot chain: '$v'"
	done
	echo "ok: the firmware measured the kernel (PCR 4 $(cut -c1-16 "$R/pcr4")...) and the initrd (PCR 9 $(cut -c1-16 "$R/pcr9")...)"
fi
echo "vm-test: passed"
