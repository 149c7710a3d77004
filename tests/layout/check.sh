#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The boundaries of docs/HACKING.md "Map", checked on every `make test`.
#
#   tests/layout/check.sh [ROOT]        check ROOT (default: this tree)
#   tests/layout/check.sh --self-test   show that each rule catches a breach
#
# Rule 1 (direct #include lines, `../` and <> forms included): a folder of
# appliance/ may include headers only from itself and the folders listed
# for it; the injector sees the arena and the IPC, wire/ nothing of ours
# but base/, and no folder includes one further down the data path.
# Rule 2 (what the compiler really opens, via -MM): the offline verifier
# reaches no TPM, HSM or journal code.  Rule 3: no source file over
# MAX_LINES, in appliance/ and in tests/unit/ (a test program too large to
# read is split by theme, what its parts share in a tests/unit/*.h).  A
# folder missing from the table is an error, not a pass.
set -uo pipefail

# folder -> the folders it may include besides itself (HACKING.md "Map";
# cli/ may include anything and is not listed)
declare -A allow=(
	[base]=""
	[wire]="base"
	[secret]="base"
	[hsm]="base"
	[inputs]="base hsm secret"
	[injector]="base wire secret"
	[journal]="base"
	[attest]="base journal"
	[ceremony]="base secret hsm inputs journal attest"
	[keeper]="base wire secret inputs injector journal"
	[evidence]="base inputs journal attest"
	[sim]="base wire"
)
verifier="cli/cmd_verify.c evidence/verify.c evidence/verify_log.c
	evidence/verify_report.c evidence/verify_job.c evidence/verify_set.c
	evidence/evidence_parse.c evidence/evidence_stream.c
	evidence/evidence_fast.c"
verifier_deny='appliance/(hsm/|journal/journal|attest/tpm\.h|keeper/|injector/)'
MAX_LINES=${MAX_LINES:-700}

check() {
	local root=$1 bad=0 f d inc target dir n folders deps sized=()
	folders=$(cd "$root/appliance" && ls -d */ | tr -d / | paste -sd'|')
	for d in ${folders//|/ }; do
		[ "$d" = cli ] || [ -n "${allow[$d]+set}" ] && continue
		echo "layout: appliance/$d/ is not in tests/layout/check.sh's" \
			"table: say what it may include (and add its row to" \
			"docs/HACKING.md)"
		bad=1
	done
	for d in "${!allow[@]}"; do
		for f in "$root"/appliance/"$d"/*.[ch]; do
			[ -e "$f" ] || continue
			while IFS= read -r inc; do
				# "x.h" resolves next to f; "dir/x.h" from appliance/
				target=${inc#appliance/}
				while [[ $target == ../* ]]; do target=${target#../}; done
				[[ $target == */* ]] || continue
				dir=${target%%/*}
				[[ " $d ${allow[$d]} " == *" $dir "* ]] && continue
				echo "layout: ${f#"$root"/}: includes \"$inc\":" \
					"appliance/$d/ may include only from" \
					"${allow[$d]:-nothing but itself} (docs/HACKING.md)"
				bad=1
			done < <(sed -n -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*["<]([^">]+)[">].*/\1/p' "$f" |
				grep -E "^(\.\./)*(appliance/)?($folders)/")
		done
	done
	for f in $verifier; do
		[ -e "$root/appliance/$f" ] || continue
		# shellcheck disable=SC2086 # PKG_CFLAGS is a list of flags
		if ! deps=$(cd "$root" && ${CC:-cc} -MM -D_GNU_SOURCE \
			-Iappliance ${PKG_CFLAGS:-} "appliance/$f"); then
			echo "layout: appliance/$f: cc -MM failed (above)"
			bad=1
			continue
		fi
		n=$(tr ' \\' '\n\n' <<< "$deps" | grep -E "$verifier_deny" |
			head -1)
		if [ -n "$n" ]; then
			echo "layout: appliance/$f reaches $n: the offline verifier" \
				"must need no TPM, HSM or journal (docs/HACKING.md)"
			bad=1
		fi
	done
	for f in "$root"/appliance/*.c "$root"/appliance/*/*.[ch] \
		"$root"/tests/unit/*.[ch]; do
		[ -e "$f" ] && sized+=("$f")
	done
	while read -r n f; do
		[ "$f" = total ] && continue
		if [ "$n" -gt "$MAX_LINES" ]; then
			echo "layout: ${f#"$root"/}: $n lines, over $MAX_LINES:" \
				"split it by concern (docs/HACKING.md)"
			bad=1
		fi
	done < <(wc -l "${sized[@]}")
	return $bad
}

self_test() {
	local t rc=0 src out f
	src=$(cd "$(dirname "$0")/../.." && pwd)
	t=$(mktemp -d) || return 1
	breach() {	# FILE LINE WHAT: the check must fail, naming FILE and WHAT
		rm -rf "$t/tree"; cp -r "$src/appliance" "$t/tree-src"
		mkdir -p "$t/tree"; mv "$t/tree-src" "$t/tree/appliance"
		mkdir -p "$(dirname "$t/tree/appliance/$1")"
		printf '%s\n' "$2" >> "$t/tree/appliance/$1"
		out=$(check "$t/tree" 2>&1)
		if grep -F "appliance/${1%/*}/" <<< "$out" |
			grep -q -F "$3"; then
			echo "layout: self-test: caught $1 + '${2%%$'\n'*}'"
		else
			echo "layout: self-test: MISSED $1 + '${2%%$'\n'*}'"; rc=1
		fi
	}
	breach injector/engine.c '#include "hsm/hsm.h"' '"hsm/hsm.h"'
	breach injector/engine.c '#include "../keeper/keeper.h"' keeper.h
	breach wire/proto.c '#include <journal/record.h>' journal/record.h
	breach wire/ipc.h '#include "secret/arena.h"' secret/arena.h
	breach journal/record.h '#include "attest/mtree.h"' attest/mtree.h
	breach hsm/hsm.c '#include "inputs/cms.h"' inputs/cms.h
	breach evidence/verify.c '#include "attest/tpm.h"' attest/tpm.h
	breach cli/cmd_verify.c '#include "evidence/evidence.h"
#include "attest/measure.h"' journal/journal.h
	breach evidence/verify_log.c '#include "no_such.h"' 'cc -MM failed'
	breach tls/tls.c '/* a stage nobody placed */' 'not in tests/layout'
	breach base/log.c "$(printf '/* %s */\n' $(seq 800))" lines
	# a test program or helper of tests/unit/ over the limit
	for f in test_proto.c kj_testutil.h; do
		rm -rf "$t/tree"; mkdir -p "$t/tree/tests"
		cp -r "$src/appliance" "$t/tree/appliance"
		cp -r "$src/tests/unit" "$t/tree/tests/unit"
		printf '/* %s */\n' $(seq 800) >> "$t/tree/tests/unit/$f"
		out=$(check "$t/tree" 2>&1)
		if grep -F "tests/unit/$f:" <<< "$out" |
			grep -q -F "over $MAX_LINES"; then
			echo "layout: self-test: caught tests/unit/$f + 800 lines"
		else
			echo "layout: self-test: MISSED tests/unit/$f + 800 lines"
			rc=1
		fi
	done
	rm -rf "$t"
	return $rc
}

if [ "${1:-}" = --self-test ]; then
	self_test
	exit
fi
check "${1:-$(cd "$(dirname "$0")/../.." && pwd)}" || exit 1
echo "layout: boundaries and file sizes kept"
