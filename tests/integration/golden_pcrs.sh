# SPDX-License-Identifier: Apache-2.0
# golden.json's boot-chain PCRs (docs/IMAGE.md, initramfs/bootchain.py),
# on the host, in seconds: the Authenticode digest equals osslsigncode's
# on Debian's signed kernel; a UKI assembled twice is the same bytes; one
# changed byte of the initrd, the kernel or the command line gives another
# PCR 4 (the UKI's digest) and, for the initrd and the command line,
# another PCR 9; PCR 9 is recomputed here with the shell's tools.  (That
# the guest's PCRs equal the computed ones is make vm-test's check.)
. "$(dirname "$0")/../lib/common.sh"
bc=$KJ_TESTS/../initramfs/bootchain.py
stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
vmlinuz=$(ls /boot/vmlinuz-* 2>/dev/null | head -1)
[ -r "$stub" ] && [ -n "$vmlinuz" ] && command -v objcopy >/dev/null ||
	{ echo "skip: no systemd EFI stub or kernel (make deps)"; exit 77; }
command -v osslsigncode >/dev/null ||
	{ echo "skip: osslsigncode missing (make deps)"; exit 77; }

# Authenticode by hand = osslsigncode's (Debian signs its kernels).
# (verify itself fails: Debian's CA is not in its store; the digest is
# printed before that.)
osslsigncode verify -in "$vmlinuz" >"$T/ossl.out" 2>&1 || true
want=$(sed -n 's/^Calculated message digest *: *\([0-9A-F]*\).*/\1/p' \
	"$T/ossl.out" | tr 'A-F' 'a-f')
[ -n "$want" ] || fail "osslsigncode printed no digest for $vmlinuz"
got=$(python3 "$bc" authenticode "$vmlinuz")
[ "$got" = "$want" ] ||
	fail "Authenticode of $vmlinuz: bootchain.py $got, osslsigncode $want"
echo "ok: bootchain.py's Authenticode digest of $vmlinuz equals osslsigncode's"

cmdline="console=ttyS0 panic=-1 loglevel=6"
head -c 100000 /dev/urandom >"$T/initrd"
cp "$vmlinuz" "$T/vmlinuz"
uki() { python3 "$bc" uki "$stub" "$1" "$2" "$3" 0 "$4"; }
pcr() { python3 "$bc" pcrs "$1" | sed -n "s/^$2 //p"; }
uki "$T/vmlinuz" "$T/initrd" "$cmdline" "$T/a.efi" || fail "uki a"
sleep 1 # objcopy writes the current second; bootchain.py replaces it
uki "$T/vmlinuz" "$T/initrd" "$cmdline" "$T/a2.efi" || fail "uki a2"
cmp "$T/a.efi" "$T/a2.efi" || fail "two UKIs from the same inputs differ"
echo "ok: a UKI assembled twice from the same inputs is the same bytes"

# PCR 9 with sha256sum, iconv and xxd: the load options (UTF-16LE, final
# NUL), then the initrd.
ext() { printf '%s%s' "$1" "$2" | xxd -r -p | sha256sum | cut -d' ' -f1; }
opts=$( (printf '%s' "$cmdline" | iconv -f ASCII -t UTF-16LE; printf '\0\0') |
	sha256sum | cut -d' ' -f1)
p9=$(ext "$(ext "$(printf '0%.0s' $(seq 64))" "$opts")" \
	"$(sha256sum <"$T/initrd" | cut -d' ' -f1)")
[ "$(pcr "$T/a.efi" 9)" = "$p9" ] ||
	fail "PCR 9: bootchain.py $(pcr "$T/a.efi" 9), shell $p9"
echo "ok: PCR 9 from bootchain.py equals the shell's"

# One byte: of the initrd, of the kernel (in a section), of the command line.
cp "$T/initrd" "$T/initrd.b"
printf '\x5a' | dd of="$T/initrd.b" bs=1 seek=5000 conv=notrunc 2>/dev/null
cmp -s "$T/initrd" "$T/initrd.b" &&
	printf '\xa5' | dd of="$T/initrd.b" bs=1 seek=5000 conv=notrunc 2>/dev/null
uki "$T/vmlinuz" "$T/initrd.b" "$cmdline" "$T/b.efi" || fail "uki b"
cp "$vmlinuz" "$T/vmlinuz.c"
off=$(($(stat -c %s "$vmlinuz") / 2))
b=$(xxd -s "$off" -l 1 -p "$vmlinuz")
printf "\\x$(printf '%02x' $((0x$b ^ 1)))" |
	dd of="$T/vmlinuz.c" bs=1 seek="$off" conv=notrunc 2>/dev/null
uki "$T/vmlinuz.c" "$T/initrd" "$cmdline" "$T/c.efi" || fail "uki c"
uki "$T/vmlinuz" "$T/initrd" "${cmdline/6/7}" "$T/d.efi" || fail "uki d"
a4=$(pcr "$T/a.efi" 4) a9=$(pcr "$T/a.efi" 9)
for x in b:initrd c:kernel d:cmdline; do
	[ "$(pcr "$T/${x%%:*}.efi" 4)" != "$a4" ] ||
		fail "a changed ${x#*:} byte left PCR 4 as it was"
done
[ "$(pcr "$T/b.efi" 9)" != "$a9" ] || fail "a changed initrd byte left PCR 9"
[ "$(pcr "$T/d.efi" 9)" != "$a9" ] || fail "another command line left PCR 9"
[ "$(pcr "$T/c.efi" 9)" = "$a9" ] || fail "the kernel changed PCR 9"
echo "ok: one changed byte of the initrd, the kernel or the command line gives another PCR 4; of the initrd or the command line another PCR 9"

# golden.json keeps its measurements and gains pcrs.
printf '{"kinject_golden": 1, "measurements": {"kinject": ["%s"]}}\n' \
	"$(printf 'ab%.0s' $(seq 32))" >"$T/g.json"
python3 "$bc" golden "$T/g.json" "$T/g2.json" "$T/a.efi" || fail "golden"
[ "$(jq -c '[.measurements.kinject[0][0:4], .pcrs."4", .pcrs."9"]' \
	"$T/g2.json")" = "[\"abab\",[\"$a4\"],[\"$a9\"]]" ] ||
	fail "golden.json: $(cat "$T/g2.json")"
echo "ok: bootchain.py golden adds pcrs 4 and 9 to golden.json"
echo "golden_pcrs ok"
