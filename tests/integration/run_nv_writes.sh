#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# EVIDENCE.md §4, the ORDERLY NV counter on a real (software) TPM: a
# 10,000-device run at the default cadence increments the counter once per
# checkpoint, and the TPM writes it to NV only every TPM_PT_ORDERLY_COUNT +
# 1 increments: after a power loss (swtpm killed, no TPM2_Shutdown) the
# counter comes back moved past every value it may have reached, by at
# most TPM_PT_ORDERLY_COUNT + 1 (a plain counter would come back
# unchanged).  Prints the NV writes the run cost.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
kj_job_setup 10000 4096

kj_run_bg --json-summary "$T/run.json"
kj_wait_listen
kj_sim --hwrev B --sockets 256 --devices 10000 --timeout 10 >/dev/null 2>&1 ||
	fail "sim: the run did not program 10,000 devices"
wait "$KJ_RUN_PID" || fail "run: exit $?: $(tail -3 "$T/run.err")"

orderly=$(kj_sql "select value from meta where key='tpm_orderly_count'")
prop=$(tpm2_getcap -T "$KJ_SWTPM_TCTI" properties-fixed |
	awk '/TPM2_PT_ORDERLY_COUNT/ { getline; print $2 }')
[ -n "$orderly" ] && [ "$((prop))" = "$orderly" ] ||
	fail "journaled tpm_orderly_count '$orderly', the TPM says '$prop'"
read -r n lo hi < <(kj_sql "select count(*), min(nv_counter), max(nv_counter)
	from checkpoints" | tr '|' ' ')
[ $((hi - lo + 1)) = "$n" ] || fail "$n checkpoints used counter values $lo..$hi: not one increment each"
secs=$(jq '.elapsed_ms / 1000' "$T/run.json")
writes=$((hi / (orderly + 1) - (lo - 1) / (orderly + 1)))
echo "$n checkpoints in ${secs}s, counter $lo..$hi, orderly count $orderly:" \
	"$writes NV write(s) (a plain counter: $n);" \
	"$(jq -n "$n / $secs * 3600 / ($orderly + 1) | floor") NV writes/h at this cadence"

# Power loss: the TPM did not store the last values; it moves past them.
kill -9 "$KJ_SWTPM_PID"
kj_swtpm_start "$T/tpm" >/dev/null
v=$((16#$(tpm2_nvread -T "$KJ_SWTPM_TCTI" 0x01004b4a -s 8 | xxd -p)))
jump=$((v - hi))
echo "after a power loss the counter reads $v: + $jump"
[ "$jump" -ge 1 ] || fail "the counter came back at $v after $hi: not an ORDERLY counter"
[ "$jump" -le $((orderly + 1)) ] ||
	fail "the counter jumped by $jump, over tpm_orderly_count + 1 = $((orderly + 1))"
echo "run_nv_writes ok"
