# SPDX-License-Identifier: Apache-2.0
# SPEC.md §4, issue 11 item 6: a refusal writes nothing.  A malformed
# --sites file, a --listen port already in use and an unreachable TPM are
# each refused with exit 1 and a message naming the cause (and so is an
# older product matrix than the one accepted before), and leave the
# state dir byte for byte, the TPM's PCRs and its NV counter as they were:
# on a state dir that already holds a job (resume) and on a new one (not
# even created).
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
KJ_PRODUCT_VERSION=5 kj_job_setup 20 4096
TCTI=$KJ_SWTPM_TCTI

# A state dir with a journal, an AK, checkpoints: the job stopped midway.
kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 2 --devices 5 >/dev/null 2>&1 || true
kill -TERM "$KJ_RUN_PID"
wait "$KJ_RUN_PID" || [ $? -eq 3 ] || fail "first run failed: $(cat "$T/run.err")"
[ -s "$KJ_STATE/journal.db" ] || fail "the first run left no journal"
tpm2_nvread -T "$TCTI" 0x01004b4a >/dev/null 2>&1 ||
	fail "the first run left no NV counter"

snapshot() {
	{
		if [ -e "$KJ_STATE" ]; then
			(cd "$KJ_STATE" && find . -printf '%p %y %m %s\n' | sort &&
				find . -type f -print0 | sort -z |
				xargs -0 -r sha256sum)
		else
			echo "no state dir"
		fi
		tpm2_pcrread -T "$TCTI" sha256:13,14
		tpm2_nvread -T "$TCTI" 0x01004b4a 2>/dev/null | xxd -p ||
			echo "no NV counter"
	} >"$1"
}

# refuse NAME WANT ARGS...: exit 1, WANT in stderr, nothing changed.
refuse() {
	local name=$1 want=$2 rc=0
	shift 2
	snapshot "$T/before"
	"$KINJECT" run $(kj_run_args) "$@" >"$T/out" 2>"$T/err" || rc=$?
	snapshot "$T/after"
	[ "$rc" -eq 1 ] || fail "$name: exit $rc, not 1: $(cat "$T/err")"
	grep -qF -- "$want" "$T/err" ||
		fail "$name: stderr lacks '$want': $(cat "$T/err")"
	grep -q 'run the same command again' "$T/err" &&
		fail "$name: says to resume, but nothing should have started"
	diff "$T/before" "$T/after" >"$T/diff" ||
		fail "$name: state or TPM changed: $(cat "$T/diff")"
	echo "ok: $name refused ('$want'), state dir, PCRs and NV counter unchanged"
}

printf '{"kinject_sites": 1, "sites": {"line1": [0, 1' >"$T/bad-sites.json"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -c "import socket,time
s=socket.socket(); s.bind(('127.0.0.1',$port)); s.listen()
print('ready', flush=True); time.sleep(3600)" >"$T/holder.out" &
holder=$!
kj_track_pid $holder
for i in $(seq 100); do grep -q ready "$T/holder.out" && break; sleep 0.05; done

for round in resume new; do
	refuse "$round: malformed --sites" "$T/bad-sites.json" \
		--sites "$T/bad-sites.json"
	refuse "$round: port in use" "Address already in use" \
		--listen "tcp:127.0.0.1:$port"
	refuse "$round: unreachable TPM" "is the TPM service running?" \
		--tpm "swtpm:host=127.0.0.1,port=1"
	KJ_STATE=$T/state-new
done
[ -e "$T/state-new" ] && fail "a refused run created the state dir"
# An older signed matrix than the one the first run accepted (item 5).
KJ_STATE=$T/state
KJ_PRODUCT_VERSION=4 kj_product "$T/in" >/dev/null
refuse "older product matrix" "version 4 is older than version 5"
echo "run_refusals ok"
