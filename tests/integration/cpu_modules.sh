# SPDX-License-Identifier: Apache-2.0
# initramfs/cpu-modules, the init's loader of aesni-intel (docs/IMAGE.md),
# on the host under the image's busybox, with an insmod that records what
# it is asked and fails where told: without the CPU's `aes' flag nothing is
# loaded (`vaes' alone is not `aes'); with it the group loads in order and
# the line names the gcm(aes) driver /proc/crypto ranks first; a failed
# insmod stops the group, exits 0 and says so in one line.  The same image
# booted with and without AES-NI: make vm-test (KJ_VM_CPU).
. "$(dirname "$0")/../lib/common.sh"
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] && ! ldd "$bb" >/dev/null 2>&1 ||
	{ echo "skip: no static busybox (make deps)"; exit 77; }
cm=$KJ_TESTS/../initramfs/cpu-modules
mkdir -p "$T/bb"
for a in $("$bb" --list); do ln -s "$bb" "$T/bb/$a"; done
# insmod: appends its argument to $T/insmod.log; fails for $T/fail's
# name.  A shell function: busybox sh runs its own applets before $PATH.
cat >"$T/stub.sh" <<EOF
insmod() {
	echo "\$1" >>"$T/insmod.log"
	[ -s "$T/fail" ] || return 0
	case "\$1" in *"/\$(cat "$T/fail").ko")
		echo "insmod: can't insert '\$1': No such device" >&2
		return 1 ;;
	esac
}
EOF
k=/lib/modules/6.1.0-test-amd64/kernel
printf '%s\n' "aes $k/crypto/cryptd.ko" "aes $k/crypto/crypto_simd.ko" \
	"aes $k/arch/x86/crypto/aesni-intel.ko" >"$T/boot.cpu"
cpu() { # FLAGS: a two-CPU /proc/cpuinfo
	for i in 0 1; do
		printf 'processor\t: %s\nvendor_id\t: GenuineIntel\n' $i
		printf 'flags\t\t: fpu sse2 %s\nbugs\t\t: spectre_v1\n\n' "$1"
	done >"$T/cpuinfo"
}
# /proc/crypto before kTLS asked for gcm(aes): with aesni-intel its
# internal __gcm(aes) and the simd gcm(aes) at 400, plus another at 100.
cat >"$T/crypto.aesni" <<'EOF'
name         : __gcm(aes)
driver       : __generic-gcm-aesni
priority     : 400

name         : gcm(aes)
driver       : gcm-aes-other
priority     : 100

name         : gcm(aes)
driver       : generic-gcm-aesni
priority     : 400

name         : aes
driver       : aes-generic
priority     : 100
EOF
printf 'name         : aes\ndriver       : aes-generic\npriority     : 100\n' \
	>"$T/crypto.plain"
run() { # CRYPTO: the script's output in $T/out, its exit in $rc
	rm -f "$T/insmod.log"
	rc=0
	PATH=$T/bb "$bb" sh -c '. "$1"; shift; . "$@"' sh "$T/stub.sh" \
		"$cm" "$T/boot.cpu" "$T/cpuinfo" "$T/$1" >"$T/out" 2>&1 ||
		rc=$?
	[ "$rc" -eq 0 ] || fail "exit $rc: $(cat "$T/out")"
	[ "$(wc -l <"$T/out")" -eq 1 ] || fail "not one line: $(cat "$T/out")"
}

# No aes (an emulated qemu64, or a CPU with VAES but not AES-NI's flag).
for f in "avx avx2 pclmulqdq" "vaes avx2" ""; do
	cpu "$f"
	run crypto.plain
	[ ! -e "$T/insmod.log" ] || fail "flags '$f': insmod $(cat "$T/insmod.log")"
	grep -qx 'kinject-init: not loaded, the CPU lacks a flag: cryptd (no aes) crypto_simd (no aes) aesni-intel (no aes): gcm(aes) is the generic code (the gcm template, made on first use)' \
		"$T/out" || fail "flags '$f': $(cat "$T/out")"
done
echo "ok: without the aes flag nothing is loaded, one line says so"

# aes: the three in order, the line names the driver ranked first.
cpu "aes avx avx2"
run crypto.aesni
[ "$(cat "$T/insmod.log")" = "$(cut -d' ' -f2 "$T/boot.cpu")" ] ||
	fail "load order: $(cat "$T/insmod.log")"
grep -qx 'kinject-init: loaded cryptd crypto_simd aesni-intel: gcm(aes) is generic-gcm-aesni (priority 400)' \
	"$T/out" || fail "aes: $(cat "$T/out")"
echo "ok: with aes: cryptd, crypto_simd, aesni-intel loaded; gcm(aes) is generic-gcm-aesni"

# aes, but aesni-intel's insmod fails: not fatal, one line, generic code;
# a failed dependency stops the group before aesni-intel.
echo aesni-intel >"$T/fail"
run crypto.plain
[ "$(wc -l <"$T/insmod.log")" -eq 3 ] || fail "tries: $(cat "$T/insmod.log")"
grep -qx "kinject-init: insmod aesni-intel failed (insmod: can't insert '$k/arch/x86/crypto/aesni-intel.ko': No such device): gcm(aes) is the generic code (the gcm template, made on first use)" \
	"$T/out" || fail "failed insmod: $(cat "$T/out")"
echo cryptd >"$T/fail"
run crypto.plain
[ "$(cat "$T/insmod.log")" = "$k/crypto/cryptd.ko" ] ||
	fail "went on after a failed dependency: $(cat "$T/insmod.log")"
grep -q '^kinject-init: insmod cryptd failed' "$T/out" || fail "$(cat "$T/out")"
echo "ok: a failed insmod exits 0 with one line, the rest of the group untried"

# No cpuinfo at all (no /proc): nothing loaded, still exit 0.
rm -f "$T/cpuinfo" "$T/fail"
run crypto.plain
[ ! -e "$T/insmod.log" ] || fail "no cpuinfo: insmod $(cat "$T/insmod.log")"
echo "cpu_modules ok"
