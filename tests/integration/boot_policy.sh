# SPDX-License-Identifier: Apache-2.0
# The appliance as the image runs it (docs/IMAGE.md, "Boot chain"), on a
# swtpm: the init's `kinject measure' first, then the key ceremony, then a
# job.  Shows that
#   - the ceremony binds the AK to PCRs 4 and 9 (PolicyPCR + PolicyCommandCode
#     Quote, no userWithAuth);
#   - the job does not measure its code again (one `kinject' entry), its
#     quotes cover PCRs 4, 9, 13, 14, the bundle says code_measured_by boot;
#   - verify --golden checks PCRs 4 and 9 and the AK's policy against
#     golden.json's "pcrs", and fails for other values;
#   - after PCR 4 is extended by hand (as root on another boot would have to),
#     the AK no longer quotes: the next job cannot take a checkpoint.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"

KJ_STATE=$T/state
KJ_SOCK=$T/line.sock
kj_swtpm_start "$T/tpm" >/dev/null
mkdir -p "$KJ_STATE"
"$KINJECT" measure --state "$KJ_STATE" --tpm "$KJ_SWTPM_TCTI" \
	2>"$T/m.err" || fail "kinject measure: $(cat "$T/m.err")"
kj_appliance_setup "$KJ_STATE" "$T/in" || fail "key ceremony"
grep -q 'the AK is bound to PCRs 4 and 9' "$T/ceremony.out" ||
	fail "the ceremony after the boot measurement made a plain AK: $(cat "$T/ceremony.out")"
tpm2_print -t TPM2B_PUBLIC "$KJ_STATE/ak.pub" >"$T/ak.txt"
grep -q userwithauth "$T/ak.txt" && fail "the bound AK keeps userWithAuth"
pol=$(sed -n 's/^authorization policy: *//p' "$T/ak.txt")
[ ${#pol} = 64 ] || fail "the bound AK has no authPolicy: $(cat "$T/ak.txt")"
echo "ok: ceremony inside the measured boot: the AK has a policy ($pol), no userWithAuth"

KJ_FW_SIZE=4096 KJ_CREDS_N=40 KJ_CREDS_DISTINCT=4 \
	kj_inputs_all "$T/in" "$KJ_STATE/transport.pem" >/dev/null
kj_work_order "$T/in" 3.1.5 20 >/dev/null
kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 2 --devices 10 >"$T/sim.out" 2>&1 ||
	fail "sim: $(tail -5 "$T/sim.out")"
kill -TERM "$KJ_RUN_PID"
rc=0; wait "$KJ_RUN_PID" || rc=$?
[ "$rc" = 3 ] || fail "run: exit $rc: $(tail -5 "$T/run.err")"
grep -q 'measured the code in epoch 0: not measured again' "$T/run.err" ||
	fail "the job measured its code again: $(grep measure "$T/run.err")"
[ "$(kj_sql "select count(*) from event_log where name = 'kinject'")" = 1 ] ||
	fail "duplicate code entries: $(kj_sql "select epoch, pcr, name from event_log")"
job=$(jq -r .id "$T/in/WO.json")
"$KINJECT" evidence export --state "$KJ_STATE" --job "$job" \
	--out "$T/ev.json" >/dev/null || fail "evidence export"
[ "$(jq -r .appliance.code_measured_by "$T/ev.json")" = boot ] ||
	fail "code_measured_by: $(jq .appliance.code_measured_by "$T/ev.json")"
[ "$(jq -r '[.checkpoints[].pcrs | keys | join(",")] | unique | join(" ")' \
	"$T/ev.json")" = "13,14,4,9" ] ||
	fail "quoted PCRs: $(jq -c '[.checkpoints[].pcrs | keys]' "$T/ev.json")"
grep -q 'FlushContext' "$T/run.err" &&
	fail "policy sessions not flushed cleanly: $(grep FlushContext "$T/run.err")"
echo "ok: the job did not measure itself again; its quotes cover PCRs 4, 9, 13, 14; code_measured_by boot"

pcr() {
	tpm2_pcrread -T "$KJ_SWTPM_TCTI" "sha256:$1" |
		sed -n "s/.* $1 *: *0x//p" | tr 'A-F' 'a-f'
}
p4=$(pcr 4) p9=$(pcr 9)
golden() {
	jq -n --arg k "$(sha256sum "$KINJECT" | cut -d' ' -f1)" \
		--arg p4 "$1" --arg p9 "$2" \
		'{kinject_golden: 1, measurements: {kinject: [$k]},
		  pcrs: {"4": [$p4], "9": [$p9]}}' >"$3"
}
golden "$p4" "$p9" "$T/golden.json"
# The job was stopped, not ended: its bundle is partial.
"$KINJECT" verify "$T/ev.json" --ak "$KJ_STATE/ak.pem" --partial \
	--golden "$T/golden.json" >"$T/v.out" 2>&1 ||
	fail "verify --golden: $(cat "$T/v.out")"
grep -q 'code measured by boot' "$T/v.out" || fail "$(cat "$T/v.out")"
grep -q 'PCRs 4 and 9 golden in .* the AK quotes only in that boot chain' \
	"$T/v.out" || fail "golden boot chain not shown: $(cat "$T/v.out")"
echo "ok: verify --golden: PCRs 4 and 9 and the AK's policy match golden.json"
other=$(printf '%064d' 1)
golden "$other" "$p9" "$T/g4.json"
if "$KINJECT" verify "$T/ev.json" --ak "$KJ_STATE/ak.pem" --partial \
	--golden "$T/g4.json" >"$T/v4.out" 2>&1; then
	fail "verify passed with another golden PCR 4"
fi
grep -q 'PCR 4 (kernel) or 9 (initrd) not quoted or not in' "$T/v4.out" ||
	fail "$(cat "$T/v4.out")"
echo "ok: another kernel's PCR 4 in golden.json fails verify"

# Root on another boot extends PCR 4 by hand: the AK refuses to quote.
tpm2_pcrextend -T "$KJ_SWTPM_TCTI" "4:sha256=$other" || fail "pcrextend"
kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 2 --devices 2 --timeout 20 >/dev/null 2>&1 || true
rc=0; wait "$KJ_RUN_PID" || rc=$?
[ "$rc" != 0 ] && [ "$rc" != 3 ] ||
	fail "run quoted after PCR 4 changed: exit $rc: $(tail -5 "$T/run.err")"
grep -q "TPM2_Quote (the AK's policy" "$T/run.err" ||
	fail "no policy failure: $(tail -5 "$T/run.err")"
echo "ok: with PCR 4 extended by hand the AK does not quote (run exit $rc)"
# Init accepted a journal with only the boot measurement; one with a job
# in it is an appliance already used: refused.
mkdir -p "$T/s2"
cp "$KJ_STATE/journal.db" "$T/s2/"
expect_fail "journal.db: exists" "$KINJECT" ceremony init --state "$T/s2" \
	--hsm "$KJ_HSM_URI_P11KIT" --pin-source "$KJ_HSM_PIN_SOURCE" \
	--tpm "$KJ_SWTPM_TCTI" --officer "$T/officers/o1.pem" \
	--officer "$T/officers/o2.pem" --threshold 2
echo "ok: ceremony init refuses a journal that holds more than the boot measurement"
echo "boot_policy ok"
