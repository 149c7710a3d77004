# SPDX-License-Identifier: Apache-2.0
# kinject measure (the image's init, docs/IMAGE.md): the binary goes into
# PCR 13 with its event log entry in the state dir's journal before any
# job, and the job's run continues that epoch.  Without --tpm it refuses.
# --site: the site's configuration archive goes into PCR 14 ("site").
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 20 4096

expect_fail "--tpm is required" "$KINJECT" measure --state "$KJ_STATE"
mkdir -p "$KJ_STATE"
expect_fail "$T/none: cannot open for measurement" "$KINJECT" measure \
	--state "$KJ_STATE" --tpm "$KJ_SWTPM_TCTI" --site "$T/none"
head -c 3000 /dev/urandom >"$T/site.cpio"
"$KINJECT" measure --state "$KJ_STATE" --tpm "$KJ_SWTPM_TCTI" \
	--site "$T/site.cpio" 2>"$T/m.err" ||
	fail "kinject measure: $(cat "$T/m.err")"
site=$(sha256sum "$T/site.cpio" | cut -d' ' -f1)
[ "$(kj_sql "select epoch || '/' || name || '/' || lower(hex(digest)) from event_log where pcr = 14 and name = 'site'")" = "0/site/$site" ] ||
	fail "site entry: $(kj_sql "select epoch, pcr, name, hex(digest) from event_log")"
echo "ok: kinject measure --site logged the site archive into PCR 14"
digest=$(sha256sum "$KINJECT" | cut -d' ' -f1)
# The ceremony measured the officer set into PCR 14 in epoch 0: the boot
# measurement continues that epoch.
[ "$(kj_sql "select count(*) from event_log where pcr = 13")" = 1 ] ||
	fail "event log: $(kj_sql "select epoch, pcr, name from event_log")"
[ "$(kj_sql "select epoch || '/' || pcr || '/' || name || '/' || lower(hex(digest)) from event_log where pcr = 13")" = "0/13/kinject/$digest" ] ||
	fail "event log entry: $(kj_sql "select epoch, pcr, name, hex(digest) from event_log")"
# PCR 13 = SHA-256(0^32 || digest): the extend happened.
want=$( (printf '%064d' 0; echo "$digest") | xxd -r -p | sha256sum | cut -d' ' -f1)
got=$(tpm2_pcrread -T "$KJ_SWTPM_TCTI" sha256:13 | sed -n 's/.*13 *: *0x//p' | tr 'A-F' 'a-f')
[ "$got" = "$want" ] || fail "PCR 13 is $got, want $want"
echo "ok: kinject measure extended PCR 13 and logged it (epoch 0)"

kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 4 --devices 0 --timeout 5 >/dev/null 2>&1 || true
wait "$KJ_RUN_PID" || fail "run after the boot measurement: exit $?: $(tail -5 "$T/run.err")"
grep -q 'epoch 0: continue' "$T/run.err" ||
	fail "the run did not continue the boot's epoch: $(grep measure "$T/run.err")"
[ "$(kj_sql "select count(distinct epoch) from event_log")" = 1 ] ||
	fail "more than one epoch: $(kj_sql "select epoch, pcr, name from event_log")"
echo "ok: kinject run continued the boot measurement's event log"

# The ceremony ran before the boot measurement here: a plain AK.  The job
# still knows the init measured its code (quotes cover PCRs 4 and 9), and
# verify --golden with the boot chain passes with a warning about the AK.
grep -q 'measured the code in epoch 0: not measured again' "$T/run.err" ||
	fail "the job measured its code again"
job=$(jq -r .id "$T/in/WO.json")
"$KINJECT" evidence export --state "$KJ_STATE" --job "$job" \
	--out "$T/ev.json" >/dev/null || fail "evidence export"
[ "$(jq -r .appliance.code_measured_by "$T/ev.json")" = boot ] ||
	fail "code_measured_by: $(jq .appliance.code_measured_by "$T/ev.json")"
z=$(printf '0%.0s' $(seq 64))
jq -n --arg k "$digest" --arg z "$z" '{kinject_golden: 1,
	measurements: {kinject: [$k]}, pcrs: {"4": [$z], "9": [$z]}}' \
	>"$T/golden.json"
"$KINJECT" verify "$T/ev.json" --ak "$KJ_STATE/ak.pem" \
	--golden "$T/golden.json" >"$T/v.out" 2>&1 ||
	fail "verify --golden: $(cat "$T/v.out")"
grep -q '\[warn   \] 8 golden .*WARNING: the AK has no boot policy' "$T/v.out" ||
	fail "no warning for an AK without boot policy: $(cat "$T/v.out")"
echo "ok: a plain AK with the boot chain quoted: verify --golden warns"
echo "measure_boot ok"
