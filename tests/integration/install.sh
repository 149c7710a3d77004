#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make install' puts the binary and kinject(1) under DESTDIR/PREFIX; the
# man page renders without a warning and names every command the binary
# lists in `kinject --help'.
. "$(dirname "$0")/../lib/common.sh"
top=$(cd "$KJ_TESTS/.." && pwd)
build=$(cd "$(dirname "$KINJECT")" && pwd)
make -s -C "$top" -o "$build/kinject" BUILD="$build" DESTDIR="$T/root" \
	PREFIX=/usr install >"$T/make.out" 2>&1 || fail "make install: $(cat "$T/make.out")"
[ -x "$T/root/usr/bin/kinject" ] || fail "no binary installed"
cmp -s "$T/root/usr/bin/kinject" "$KINJECT" || fail "installed binary differs"
page=$T/root/usr/share/man/man1/kinject.1
[ -s "$page" ] || fail "no man page installed"
if command -v groff >/dev/null; then
	groff -man -Tutf8 -ww -z "$page" 2>"$T/groff.err"
	[ ! -s "$T/groff.err" ] || fail "groff warnings: $(cat "$T/groff.err")"
	groff -man -Tutf8 "$page" 2>/dev/null | col -b >"$T/page.txt"
	for c in $("$KINJECT" --help | sed -n 's/^  \([a-z]*\) .*/\1/p'); do
		grep -q "^       $c\b" "$T/page.txt" ||
			grep -q "^       $c [a-z]" "$T/page.txt" ||
			fail "the man page lacks the command $c"
	done
	echo "ok: kinject(1) renders cleanly and names every command"
fi
echo "install ok"
