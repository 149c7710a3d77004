# SPDX-License-Identifier: Apache-2.0
# kinject sim against kinject run (real SoftHSM2, swtpm, journal, unix
# sockets), the hostile-site bar of QUALITY.md and the ABORT codes of
# PROTOCOL.md at the command line:
#  - 60 sockets complete 300 devices with every fault knob on (bad readback,
#    disconnect mid-stream, wrong hwrev, duplicate uid, site ABORT) while
#    garbage, 4 GiB length, slow-loris, vanishing and half-open sites and an
#    unauthorized site hammer the same listener: every outcome as intended;
#  - more sockets than devices left: exactly the quantity is committed, the
#    rest get QUOTA;
#  - the journal holds each outcome with its result, and every committed
#    device's record carries the digest the site computed.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/softhsm.sh"
. "$KJ_TESTS/lib/inputs.sh"
. "$KJ_TESTS/lib/swtpm.sh"
. "$KJ_TESTS/lib/ceremony.sh"

QTY=600
C=$T/in
mkdir -p "$C"
kj_swtpm_start "$T/tpm" >/dev/null || fail "swtpm"
kj_appliance_setup "$T/state" "$C" || fail "key ceremony"
KJ_FW_SIZE=65536 KJ_CREDS_N=$((QTY + 200)) KJ_WO_QTY=$QTY \
	kj_inputs_all "$C" "$T/state/transport.pem" >/dev/null ||
	fail "making inputs"
printf '{"kinject_sites": 1, "sites": {"line1": [%s]}}\n' \
	"$(seq -s, 0 199)" >"$T/sites.json"

"$KINJECT" run --state "$T/state" --operator test \
	--work-order "$C/WO.json" --work-order-sig "$C/WO.json.sig" \
	--product "$C/product.json" --product-sig "$C/product.json.sig" \
	--firmware "$C/FW.cms" --credentials "$C/CREDS.cms" \
	--hsm "$KJ_HSM_URI_P11KIT" --pin-source "$KJ_HSM_PIN_SOURCE" \
	--tpm "$KJ_SWTPM_TCTI" --listen "unix:$T/line.sock" \
	--sites "$T/sites.json" --hello-timeout 2 --program-timeout 2 \
	--checkpoint-interval 50 --json-summary "$T/run.json" \
	>"$T/run.out" 2>"$T/run.err" &
run_pid=$!
kj_track_pid $run_pid

sim=("$KINJECT" sim --connect "unix:$T/line.sock" --hwrev B --site line1)

# Hostile sites, each its own process on its own socket numbers.
declare -A hpid
start_hostile() {
	local name=$1; shift
	"${sim[@]}" --socket-base "$1" --sockets 1 "${@:2}" \
		--json-summary "$T/h-$name.json" >"$T/h-$name.out" 2>&1 &
	hpid[$name]=$!
	kj_track_pid $!
}
start_hostile garbage 100 --garbage --devices 40
start_hostile huge 101 --huge-length --devices 40
start_hostile loris 102 --slow-loris --slow-loris-ms 500 --devices 2
start_hostile vanish 103 --vanish --devices 5
start_hostile halfopen 104 --half-open --devices 0
"$KINJECT" sim --connect "unix:$T/line.sock" --hwrev B --site evil \
	--sockets 2 --devices 2 --expect unauthorized \
	--json-summary "$T/h-evil.json" >"$T/h-evil.out" 2>&1 &
hpid[evil]=$!
kj_track_pid $!

# The line: 60 sockets, 300 devices, every fault knob, while the hostile
# sites are at it (the slow-loris and half-open ones wait for their 2 s
# timeouts meanwhile).
sleep 1
rc=0
"${sim[@]}" --sockets 60 --devices 300 --program-delay-ms 100 --bad-readback-rate 0.03 \
	--disconnect-rate 0.03 --wrong-hwrev-rate 0.03 --duplicate-rate 0.03 \
	--site-abort-rate 0.03 --device-log "$T/dev.jsonl" \
	--json-summary "$T/line.json" >"$T/line.out" 2>&1 || rc=$?
cat "$T/line.out"
[ "$rc" -eq 0 ] || fail "line sim exit $rc: $(cat "$T/line.out")"

# Hostile sims end by themselves (half-open needs a signal), as intended.
for name in garbage huge loris vanish evil halfopen; do
	[ "$name" = halfopen ] && kill -TERM "${hpid[$name]}"
	rc=0; wait "${hpid[$name]}" || rc=$?
	want=0; [ "$name" = evil ] && want=3 # UNAUTHORIZED ends its sockets
	[ "$rc" -eq "$want" ] ||
		fail "hostile $name: exit $rc, want $want: $(cat "$T/h-$name.out")"
	grep -q '"unexpected":0,' "$T/h-$name.json" ||
		fail "hostile $name: $(cat "$T/h-$name.json")"
	echo "ok: hostile $name: $(grep '^sim: hostile' "$T/h-$name.out" || true)"
done
grep -qF '"unauthorized":2,' "$T/h-evil.json" || fail "evil: $(cat "$T/h-evil.json")"

# More sockets than devices left: exactly the rest is committed.
rc=0
"${sim[@]}" --sockets 64 --devices $((QTY + 100)) --json-summary "$T/quota.json" \
	>"$T/quota.out" 2>&1 || rc=$?
[ "$rc" -eq 3 ] || fail "quota sim exit $rc, want 3: $(cat "$T/quota.out")"
grep -qF "\"committed\":$((QTY - 300))," "$T/quota.json" ||
	fail "quota sim committed: $(cat "$T/quota.json")"
rc=0; wait $run_pid || rc=$?
[ "$rc" -eq 0 ] || fail "kinject run exit $rc: $(cat "$T/run.err")"
grep -qF "\"ok\":$QTY," "$T/run.json" || fail "run summary: $(cat "$T/run.json")"
echo "ok: quantity $QTY reached, never exceeded"

# The journal: one record per outcome, with its result.
"$KINJECT" audit export --state "$T/state" --format json --out "$T/rec.json" \
	2>/dev/null || fail "audit export"
n() { grep -c "\"kind\":\"device\".*\"result\":\"$1\"" "$T/rec.json" || true; }
num() { sed -n "s/.*\"$2\":\\([0-9]*\\).*/\\1/p" "$1"; }
faults=$T/line.json
[ "$(n ok)" -eq "$QTY" ] || fail "ok records $(n ok), want $QTY"
[ "$(n readback)" -eq "$(num "$faults" bad_readback)" ] ||
	fail "readback records $(n readback)"
[ "$(n locked_out)" -eq "$(num "$faults" wrong_hwrev)" ] ||
	fail "locked_out records $(n locked_out)"
[ "$(n duplicate)" -eq "$(num "$faults" duplicate)" ] ||
	fail "duplicate records $(n duplicate)"
[ "$(n site_abort)" -eq "$(num "$faults" site_abort)" ] ||
	fail "site_abort records $(n site_abort)"
[ "$(n disconnected)" -ge $(($(num "$faults" disconnect) + 5)) ] ||
	fail "disconnected records $(n disconnected)"
[ "$(n unauthorized)" -ge 2 ] || fail "unauthorized records $(n unauthorized)"
[ "$(n timeout)" -ge 1 ] || fail "timeout records (half-open) $(n timeout)"
[ "$(n quota)" -ge 1 ] || fail "quota records $(n quota)"
echo "ok: journal: ok $(n ok), readback $(n readback), locked_out $(n locked_out)," \
	"duplicate $(n duplicate), site_abort $(n site_abort)," \
	"disconnected $(n disconnected), unauthorized $(n unauthorized)," \
	"timeout $(n timeout), quota $(n quota)"

# Distinct uids, serials and credential indexes among the ok records.
ok=$T/ok.json
grep '"kind":"device".*"result":"ok"' "$T/rec.json" >"$ok"
for f in uid serial cred_index; do
	d=$(sed -n "s/.*\"$f\":\\(\"[^\"]*\"\\|[0-9]*\\).*/\\1/p" "$ok" | sort | uniq -d)
	[ -z "$d" ] || fail "$f repeated among ok records: $d"
	[ "$(sed -n "s/.*\"$f\":\\(\"[^\"]*\"\\|[0-9]*\\).*/\\1/p" "$ok" | wc -l)" -eq "$QTY" ] ||
		fail "$f missing in ok records"
done
# Each committed device's record carries the digest its site computed.
sed -n 's/.*"readback":"\([0-9a-f]*\)".*"uid":"\([0-9a-f]*\)".*/\2 \1/p' "$ok" |
	sort >"$T/journal.dig"
grep '"outcome":"committed"' "$T/dev.jsonl" |
	sed -n 's/.*"uid":"\([0-9a-f]*\)".*"digest":"\([0-9a-f]*\)".*/\1 \2/p' |
	sort >"$T/site.dig"
[ "$(wc -l <"$T/site.dig")" -eq 300 ] || fail "device log: $(wc -l <"$T/site.dig") commits"
[ -z "$(comm -23 "$T/site.dig" "$T/journal.dig")" ] ||
	fail "site digests not in the journal: $(comm -23 "$T/site.dig" "$T/journal.dig" | head -3)"
echo "ok: uids, serials, credential indexes distinct; 300 site digests match the journal"
echo "sim_run ok"
