#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make vm-test (docs/IMAGE.md): the appliance booted as a real one boots,
# from its disk: OVMF loads the UKI from build/image/esp.img (Debian's
# kernel, the image's initramfs, the command line) under qemu-system-x86_64
# -accel tcg (never KVM), swtpm as its TPM (-tpmdev emulator, -device
# tpm-tis), a real job inside (tests/vm/guest.sh), and the evidence checked
# here on the host: kinject verify --golden with make image's golden.json,
# whose PCRs 4 and 9 were computed from the image's bytes and must be the
# guest's.
#
#   KINJECT=build/kinject IMAGE=build/image KVER=... PROBE=... run.sh
#   KJ_VM_KEEP=DIR keeps the guest's results; KJ_VM_TIMEOUT (s) per boot;
#   KJ_VM_CPU=MODEL the guest CPU (default qemu64, TCG's default: no
#   AES-NI; `max' has aes, avx, avx2: the init loads aesni-intel).
#
# The job's SoftHSM2 token and inputs are made here as tests/lib/ makes them
# for every integration test and travel as the site's configuration: a cpio
# archive on a second disk, which the init measures into PCR 14 and adds
# to the image's files, so the boot disk stays the reproducible one make
# image wrote.  Prints the guest console on failure; every boot has a
# timeout; qemu and swtpm are stopped on every exit.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/softhsm.sh"
. "$KJ_TESTS/lib/inputs.sh"
: "${IMAGE:?}" "${KVER:?}" "${PROBE:?}"
KJ_VM_TIMEOUT=${KJ_VM_TIMEOUT:-600}
KJ_VM_CPU=${KJ_VM_CPU:-qemu64}
ovmf=/usr/share/OVMF
HALF=6
[ -r "$IMAGE/esp.img" ] || fail "$IMAGE/esp.img: missing (make image)"
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
# The key ceremony runs inside the VM (tests/vm/guest.sh), after the init
# measured the code: the AK it makes is bound to this boot's PCRs 4 and 9,
# which exist only once the VM booted.  So the officers' keys (files, as
# tests/lib/ceremony.sh makes them) travel into the VM and sign there with
# openssl, and the customer's inputs travel signed but not yet encrypted:
# the guest encrypts them to the transport certificate its ceremony made.
# Here: swtpm's state with EK certificates, an empty SoftHSM2 token.
. "$KJ_TESTS/lib/swtpm.sh"
. "$KJ_TESTS/lib/ceremony.sh"
kj_swtpm_start "$T/tpm" --ek-cert || fail "swtpm for the VM's TPM state"
tpm2_shutdown -T "$KJ_SWTPM_TCTI" || fail "tpm2_shutdown"
kj_swtpm_stop "$T/tpm"
KJ_SOFTHSM_NO_KEY=1 kj_softhsm_init "$T" >/dev/null || fail "SoftHSM2 token"
kj_officers "$T/officers" 3 || fail "officers"
# The resumed part of the job runs over TLS 1.3 on the guest's loopback
# (kTLS: the init loaded tls.ko): a site CA the guest's officers enrol,
# a site certificate whose CN is the sim's site id.
. "$KJ_TESTS/lib/tls.sh"
kj_tls_ca vmline && kj_tls_site vmsite vm-line vmline ||
	fail "site CA and certificate"
mkdir -p "$T/in"
kj_customer "$T/in" release || fail "customer key"
# A stand-in transport key for kj_inputs_all; the guest re-encrypts.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out "$T/stand-in.key" 2>/dev/null &&
openssl pkey -in "$T/stand-in.key" -pubout -out "$T/stand-in.pub" ||
	fail "stand-in transport key"
KJ_FW_SIZE=8192 KJ_CREDS_N=$((4 * HALF)) KJ_CREDS_DISTINCT=4 \
	KJ_WO_QTY=$((2 * HALF)) kj_inputs_all "$T/in" "$T/stand-in.pub" \
	>/dev/null || fail "inputs"
for f in fw.bin:FW creds.jsonl:CREDS; do
	openssl cms -sign -binary -nodetach -in "$T/in/${f%%:*}" \
		-signer "$T/in/release.pem" -inkey "$T/in/release.key" \
		-outform DER -out "$T/in/${f#*:}.cms.signed" || fail "sign $f"
	rm -f "$T/in/${f#*:}.cms"
done
# A second job, started after PCR 4 is extended by hand: it must not quote.
sed 's/"WO-2027-0315"/"WO-2027-0316"/' "$T/in/WO.json" >"$T/in/WO2.json"
kj_sign_detached "$T/in/WO2.json" "$T/in/release.pem" "$T/in/release.key" ||
	fail "WO2"
rm -f "$T/in/release.key" "$T/in/test-ca.key"
job=$(jq -r .id "$T/in/WO.json")

# TPM2_PCR_Extend(PCR 4, SHA-256 0x01 * 32) as the bytes of the command
# (password session), in printf's octal escapes: root's hand in the guest.
pcr4_extend_cmd() {
	printf '8002 00000041 00000182 00000004 00000009 40000009 0000 00 0000
		00000001 000b %s' "$(printf '01%.0s' $(seq 32))" |
		xxd -r -p | od -An -v -to1 | tr -s ' \n' ' ' |
		sed 's/ \([0-7]\)/\\\1/g; s/ //g'
}

ov=$T/overlay
mkdir -p "$ov/job/state" "$ov/etc/kinject" "$ov/usr/bin" "$ov/usr/lib/ssl"
cp -R "$T/officers" "$ov/job/officers"
cp -R "$T/in" "$ov/job/in"
cp -R "$T/softhsm" "$ov/job/softhsm"
mkdir -p "$ov/job/tls"
cp "$T/vmline.pem" "$T/vmsite.pem" "$T/vmsite.key" "$ov/job/tls/"
sed -i "s|^directories.tokendir = .*|directories.tokendir = /job/softhsm/tokens|" \
	"$ov/job/softhsm/softhsm2.conf"
ossl=$(command -v openssl)
# The site archive may only add files: the libraries the image has stay.
zcat "$IMAGE/initramfs.cpio.gz" | cpio -t --quiet | sed 's|^\.*|/|' \
	>"$T/image.files"
for lib in "$KJ_HSM_MODULE" $(ldd "$KJ_HSM_MODULE" "$ossl" |
	sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p' | sort -u); do
	grep -qxF "$lib" "$T/image.files" && continue
	mkdir -p "$ov$(dirname "$lib")"
	cp -L "$lib" "$ov$lib"
done
cp "$ossl" "$ov/usr/bin/openssl"
cp -L /usr/lib/ssl/openssl.cnf "$ov/usr/lib/ssl/openssl.cnf"
cat >"$ov/job/env" <<EOF
export SOFTHSM2_CONF=/job/softhsm/softhsm2.conf
KJ_HSM_URI='$KJ_HSM_URI_P11KIT?module-path=$KJ_HSM_MODULE'
KJ_JOB='$job'
KJ_HALF=$HALF
KJ_QTY=$((2 * HALF))
KJ_EXTEND4='$(pcr4_extend_cmd)'
EOF
echo "KJ_STATE=/job/state" >"$ov/etc/kinject/env"
install -m 0755 "$KJ_TESTS/vm/guest.sh" "$ov/etc/kinject/service"
install -m 0755 "$PROBE" "$ov/usr/bin/arena_probe"
# The site disk: the archive, uncompressed, in whole sectors.
(cd "$ov" && find . -mindepth 1 | LC_ALL=C sort |
	cpio -o -H newc --owner=0:0 --quiet) >"$T/site.img"
truncate -s %512 "$T/site.img"

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

# ---- boot: OVMF (UEFI, fresh variables) boots the ESP's UKI ----
[ -r "$ovmf/OVMF_CODE_4M.fd" ] ||
	fail "$ovmf/OVMF_CODE_4M.fd: missing (make deps installs ovmf)"
# vm_boot SITE_DISK CONSOLE RESULTS [QEMU ARGS]: esp.img and SITE_DISK as
# read-only virtio disks, the serial ports into CONSOLE and RESULTS.
vm_boot() {
	local site=$1 con=$2 res=$3 qpid rc=0
	shift 3
	cp "$ovmf/OVMF_VARS_4M.fd" "$T/vars.fd"
	timeout -k 10 "$KJ_VM_TIMEOUT" qemu-system-x86_64 -machine q35 \
		-drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf/OVMF_CODE_4M.fd" \
		-drive "if=pflash,format=raw,unit=1,file=$T/vars.fd" \
		-accel tcg -cpu "$KJ_VM_CPU" -m 1024 -smp 1 -no-reboot \
		-display none -vga none \
		-monitor none -nic none \
		-drive "if=none,id=esp,format=raw,readonly=on,file=$IMAGE/esp.img" \
		-device virtio-blk-pci,drive=esp,bootindex=0 \
		-drive "if=none,id=site,format=raw,readonly=on,file=$site" \
		-device virtio-blk-pci,drive=site \
		-serial "file:$con" -serial "file:$res" "$@" &
	qpid=$!
	kj_track_pid $qpid
	wait $qpid || rc=$?
	return $rc
}
echo "vm-test: booting $IMAGE/esp.img (OVMF, TCG, -cpu $KJ_VM_CPU) with the job on the site disk"
start=$(date +%s)
qrc=0
vm_boot "$T/site.img" "$T/console.log" "$T/results.b64" \
	-chardev socket,id=chrtpm,path="$T/swtpm.sock" \
	-tpmdev emulator,id=tpm0,chardev=chrtpm \
	-device tpm-tis,tpmdev=tpm0 || qrc=$?
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
# The recorded reason: the module's tamper response, not an operator's stop.
jq -e '.outcome | test("^stopped: tamper response, kinject.ko zeroized")' \
	"$R/run1.json" >/dev/null ||
	fail "run 1 summary: $(cat "$R/run1.json")"
grep -q 'zeroize: every arena wiped' "$R/dmesg.txt" || fail "no zeroize in dmesg"
grep -q 'tamper response' "$R/run1.err" ||
	fail "the run's log does not name the tamper response: $(tail -3 "$R/run1.err")"
echo "ok: zeroize wiped the held arena and stopped the running job (exit 3, $(jq -r .outcome "$R/run1.json"))"
[ "$(cat "$R/run2.rc")" = 0 ] || fail "the resumed job: exit $(cat "$R/run2.rc"): $(cat "$R/run2.err")"
# The resumed part ran over TLS with the kernel's record layer.
jq -e ".committed == $HALF and .errors.tls == 0" "$R/sim2.json" >/dev/null ||
	fail "the TLS site: $(cat "$R/sim2.json")"
jq -e '.tls.ktls >= 2 and .tls.user_space == 0 and .tls.refused == 0' \
	"$R/run2.json" >/dev/null ||
	fail "the resumed job's TLS: $(jq -c .tls "$R/run2.json") (ULPs: $(cat "$R/ulp"))"
grep -q 'TLS 1.3 with site vm-line: records in the kernel (kTLS)' \
	"$R/run2.err" || fail "the log does not name kTLS: $(grep TLS "$R/run2.err")"
echo "ok: the resumed job's $HALF devices came over TLS 1.3 with kTLS ($(jq -c .tls "$R/run2.json"))"
# AES-NI: the init loaded aesni-intel exactly when the guest CPU has the
# aes flag (initramfs/cpu-modules), never stopping the boot, and kTLS's
# gcm(aes) was then the AES-NI one, else the generic template's.
if grep -qw aes "$R/cpuflags"; then
	aesni=yes want='generic-gcm-aesni'
	line='kinject-init: loaded cryptd crypto_simd aesni-intel: gcm(aes) is generic-gcm-aesni (priority 400)'
else
	aesni=no want='gcm_base(ctr(aes-generic),ghash-generic)'
	line='kinject-init: not loaded, the CPU lacks a flag: .*aesni-intel (no aes)'
fi
tr -d '\r' <"$T/console.log" | grep -q "^$line" ||
	fail "CPU aes=$aesni: the init's line is not \`$line': $(tr -d '\r' <"$T/console.log" | grep 'kinject-init')"
[ "$(cat "$R/gcm_driver")" = "$want" ] ||
	fail "CPU aes=$aesni: kTLS's gcm(aes) is \`$(cat "$R/gcm_driver")', not $want"
{ grep -qw '^aesni_intel' "$R/lsmod" && [ $aesni = yes ]; } ||
	{ ! grep -qw '^aesni_intel' "$R/lsmod" && [ $aesni = no ]; } ||
	fail "CPU aes=$aesni, but lsmod: $(grep -w aesni_intel "$R/lsmod")"
echo "ok: -cpu $KJ_VM_CPU (aes: $aesni): kTLS's gcm(aes) was $want"
jq -e '.appliance.secret_memory == "kmod"' "$R/evidence.json" >/dev/null ||
	fail "evidence secret_memory: $(jq -c .appliance.secret_memory "$R/evidence.json")"
"$KINJECT" verify "$R/evidence.json" --ak "$R/ak.pem" \
	--golden "$IMAGE/golden.json" --work-order "$T/in/WO.json" \
	>"$T/verify.out" 2>&1 || { cat "$T/verify.out"; fail "kinject verify --golden"; }
echo "ok: evidence from the VM verified on the host with --golden (secret memory kmod)"
# The init measured the code before anything else (epoch 0: the TPM is
# fresh), the ceremony and the jobs continued that log, and the jobs did
# not measure the code again: PCR 13 holds exactly the init's two entries.
[ "$(jq -r '[.event_log[] | select(.pcr == 13) |
	"\(.epoch)/\(.pcr)/\(.name)"] | join(" ")' "$R/evidence.json")" = \
	"0/13/kinject 0/13/kinject.ko" ] ||
	fail "PCR 13 entries are not the init's two: $(jq -c '[.event_log[] | select(.pcr == 13)]' "$R/evidence.json")"
[ "$(jq -r '.event_log[0,1] | .name' "$R/evidence.json" | paste -sd' ')" = \
	"kinject kinject.ko" ] ||
	fail "the log does not start with the init's measurement: $(jq -c '.event_log[0:3]' "$R/evidence.json")"
tr -d '\r' <"$T/console.log" | grep -q 'boot: measured code into PCR 13' ||
	fail "no boot measurement on the console"
grep -q 'measured the code in epoch 0: not measured again' "$R/run1.err" ||
	fail "the job measured its code again: $(grep measure "$R/run1.err")"
echo "ok: the init measured kinject and kinject.ko into PCR 13 before the ceremony and the jobs, which did not measure them again"

# The ceremony ran after the boot measurement: the AK is bound to PCRs 4, 9.
grep -q 'the AK is bound to PCRs 4 and 9' "$R/ceremony.out" ||
	fail "the ceremony in the VM made a plain AK: $(cat "$R/ceremony.out")"
jq -e '.appliance.code_measured_by == "boot"' "$R/evidence.json" \
	>/dev/null || fail "code_measured_by: $(jq -c .appliance.code_measured_by "$R/evidence.json")"
[ "$(jq -r '[.checkpoints[].pcrs | keys | join(",")] | unique | join(" ")' \
	"$R/evidence.json")" = "13,14,4,9" ] ||
	fail "quoted PCRs: $(jq -c '[.checkpoints[].pcrs | keys] | unique' "$R/evidence.json")"
echo "ok: the ceremony in the VM bound the AK to PCRs 4 and 9; every quote covers PCRs 4, 9, 13, 14; code_measured_by boot"

# golden.json's PCRs 4 and 9, computed by make image from the UKI's bytes
# (initramfs/bootchain.py), are the ones this boot left (read in the guest
# before step 6).
for p in 4 9; do
	want=$(jq -r ".pcrs.\"$p\"[0]" "$IMAGE/golden.json")
	got=$(tr 'A-F' 'a-f' <"$R/pcr$p")
	[ "$got" = "$want" ] || {
		tpm2_eventlog "$R/bios.log" 2>&1 | grep -B2 -A12 "PCRIndex: $p\$" >&2
		fail "PCR $p in the guest ($got) is not golden.json's, computed from the image ($want)"
	}
done
echo "ok: PCRs 4 and 9 in the guest equal golden.json's, computed from the image's bytes by make image"
grep -q 'PCRs 4 and 9 golden in .* the AK quotes only in that boot chain' \
	"$T/verify.out" || fail "verify --golden did not check PCRs 4 and 9: $(cat "$T/verify.out")"
echo "ok: verify --golden checks PCRs 4 and 9 of every quote and the AK's policy against golden.json"
# The site's configuration (the second disk) is in PCR 14, once, in the
# boot's epoch, before the ceremony's officer set.
site=$(sha256sum "$T/site.img" | cut -d' ' -f1)
[ "$(jq -r '[.event_log[] | select(.name == "site") |
	"\(.epoch)/\(.pcr)/\(.digest)"] | join(" ")' "$R/evidence.json")" = \
	"0/14/$site" ] ||
	fail "the site disk is not measured once into PCR 14: $(jq -c '[.event_log[] | select(.pcr == 14)]' "$R/evidence.json")"
echo "ok: the init measured the site's configuration disk into PCR 14 (${site:0:16}...)"
# Another boot's PCR 9 (here PCR 4's value) in golden.json fails verify.
jq --arg v "$(jq -r '.pcrs."4"[0]' "$IMAGE/golden.json")" '.pcrs."9" = [$v]' \
	"$IMAGE/golden.json" >"$T/golden-other.json"
if "$KINJECT" verify "$R/evidence.json" --ak "$R/ak.pem" \
	--golden "$T/golden-other.json" >"$T/verify-other.out" 2>&1; then
	fail "verify passed with another boot's PCR 9"
fi
grep -q 'not quoted or not in' "$T/verify-other.out" ||
	fail "$(cat "$T/verify-other.out")"
echo "ok: another boot's PCR 9 in golden.json fails verify"

# Step 6: root extended PCR 4 by hand; the bound AK refused to quote.
[ "$(cat "$R/pcr4.extended")" != "$(cat "$R/pcr4")" ] ||
	fail "the hand-made TPM2_PCR_Extend did not change PCR 4"
[ "$(cat "$R/run3.rc")" != 0 ] && [ "$(cat "$R/run3.rc")" != 3 ] ||
	fail "a job ran with PCR 4 changed: exit $(cat "$R/run3.rc")"
grep -q "TPM2_Quote (the AK's policy" "$R/run3.err" ||
	fail "no policy refusal: $(tail -5 "$R/run3.err")"
echo "ok: after PCR 4 was extended by hand the AK did not quote (the next job exit $(cat "$R/run3.rc"))"

# A digest that is not golden must fail the same check.
jq '.measurements.kinject = ["'"$(printf '0%.0s' $(seq 64))"'"]' \
	"$IMAGE/golden.json" >"$T/bad-golden.json"
if "$KINJECT" verify "$R/evidence.json" --ak "$R/ak.pem" \
	--golden "$T/bad-golden.json" >/dev/null 2>&1; then
	fail "verify passed against a golden.json without the binary's digest"
fi
echo "ok: a golden.json without the binary's digest fails verify"

# A site archive may only add files: one that brings its own kinject is
# refused before anything of it runs or is measured (a short boot, no TPM).
mkdir -p "$T/forged/usr/bin"
printf '#!/bin/sh\necho forged\n' >"$T/forged/usr/bin/kinject"
chmod 0755 "$T/forged/usr/bin/kinject"
(cd "$T/forged" && find . -mindepth 1 | LC_ALL=C sort |
	cpio -o -H newc --owner=0:0 --quiet) >"$T/forged.img"
truncate -s %512 "$T/forged.img"
start=$(date +%s)
vm_boot "$T/forged.img" "$T/console2.log" /dev/null ||
	fail "qemu exit $? on the forged site disk"
tr -d '\r' <"$T/console2.log" >"$T/console2.txt"
grep -q 'the site archive replaces files of the image (./usr/bin/kinject)' \
	"$T/console2.txt" &&
	! grep -q 'measured kinject into PCR' "$T/console2.txt" || {
	tail -n 30 "$T/console2.txt" >&2
	fail "a site archive with its own /usr/bin/kinject was not refused"
}
echo "ok: a site disk that replaces /usr/bin/kinject is refused at boot ($(($(date +%s) - start)) s)"
echo "vm-test: passed"
