# SPDX-License-Identifier: Apache-2.0
# initramfs/site-install, the image's installer of the site's
# configuration disk (docs/IMAGE.md), on the host under the image's
# busybox (its cpio, find and cp: the ones the init runs): files and
# directories are added; replacing a file of the image, a "../" name, an
# absolute name's escape, a link or a device node is refused and leaves
# the root as it was.
. "$(dirname "$0")/../lib/common.sh"
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] && ! ldd "$bb" >/dev/null 2>&1 ||
	{ echo "skip: no static busybox (make deps)"; exit 77; }
si=$KJ_TESTS/../initramfs/site-install
mkdir -p "$T/bb"
for a in $("$bb" --list); do ln -s "$bb" "$T/bb/$a"; done
inst() { PATH=$T/bb "$bb" sh "$si" "$@"; }

# newc entries by hand (name, mode, data): what a site, or an attacker,
# can put on the disk, "../" and links included.
mkcpio() {
	python3 - "$@" <<'EOF'
import sys
out, args = sys.argv[1], sys.argv[2:]
b = b""
for i in range(0, len(args), 3):
    name, mode, data = args[i], int(args[i + 1], 8), args[i + 2].encode()
    n = name.encode() + b"\0"
    h = "070701" + "".join("%08x" % v for v in
        (i + 1, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(n), 0))
    e = h.encode() + n
    e += b"\0" * (-len(e) % 4) + data + b"\0" * (-len(data) % 4)
    b += e
n = b"TRAILER!!!\0"
e = ("070701" + "%08x" % 0 + "0" * 80 + "%08x" % len(n) + "0" * 8).encode() + n
b += e + b"\0" * (-len(e) % 4)
open(out, "wb").write(b + b"\0" * (-len(b) % 512))
EOF
}

fresh() {
	rm -rf "$T/root"
	mkdir -p "$T/root/run" "$T/root/usr/bin" "$T/root/etc"
	echo image >"$T/root/usr/bin/kinject"
}
snap() { (cd "$T/root" && find . | LC_ALL=C sort && cat usr/bin/kinject); }

fresh
mkcpio "$T/ok.cpio" etc/kinject 040755 "" etc/kinject/env 0100644 \
	"KJ_STATE=/job/state" job 040755 "" job/in 040755 "" \
	job/in/WO.json 0100644 "{}" usr/bin/openssl 0100755 "x"
inst "$T/ok.cpio" "$T/root" 2>"$T/err" || fail "a good archive: $(cat "$T/err")"
[ "$(cat "$T/root/etc/kinject/env")" = "KJ_STATE=/job/state" ] &&
	[ -f "$T/root/job/in/WO.json" ] && [ -x "$T/root/usr/bin/openssl" ] &&
	[ "$(cat "$T/root/usr/bin/kinject")" = image ] ||
	fail "the good archive was not added: $(cd "$T/root" && find .)"
[ -z "$(ls "$T/root/run")" ] || fail "the unpacked copy stayed in run/"
echo "ok: an archive of new files and directories is added to the root"

refuse() {
	local want=$1 name=$2
	shift 2
	fresh
	before=$(snap)
	mkcpio "$T/$name.cpio" "$@"
	if inst "$T/$name.cpio" "$T/root" 2>"$T/err"; then
		fail "$name: installed"
	fi
	grep -qF -- "$want" "$T/err" || fail "$name: $(cat "$T/err")"
	[ "$(snap)" = "$before" ] || fail "$name: the root changed: $(snap)"
	[ ! -e "$T/escaped" ] || fail "$name: wrote outside the root"
	echo "ok: $name refused ($(cat "$T/err"))"
}
refuse "replaces files of the image (./usr/bin/kinject)" replace \
	usr 040755 "" usr/bin 040755 "" usr/bin/kinject 0100755 "forged"
refuse "names with '..'" dotdot \
	../escaped 0100644 "x" ../../usr/bin/kinject 0100755 "forged"
refuse "other than files and directories" symlink \
	lnk 0120777 "$T/root/usr/bin" lnk/kinject 0100755 "forged"
refuse "other than files and directories" device \
	mem 020600 ""
refuse "replaces files of the image (./usr/bin/kinject)" dir-over-file \
	usr/bin/kinject 040755 ""
# An absolute name unpacks below the root (busybox drops the "/"): added.
fresh
mkcpio "$T/abs.cpio" /job 040755 "" /job/x 0100644 "y"
inst "$T/abs.cpio" "$T/root" 2>"$T/err" || fail "absolute names: $(cat "$T/err")"
[ -f "$T/root/job/x" ] || fail "absolute names were not added below the root"
echo "ok: absolute names land below the root"
echo "site_install ok"
