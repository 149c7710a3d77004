# SPDX-License-Identifier: Apache-2.0
# Issue 11 item 2: the injector is exec'd, not just forked, so it holds
# none of the keeper's memory.  While a job runs: no injector holds the
# HSM PIN or the keeper's command line (a marker from the keeper's heap
# and stack) anywhere in its readable memory; the keeper does hold the
# command line (the control, so the scan can fail); and no process of the
# job, keeper included, still has the PKCS#11 module (libsofthsm2) mapped;
# an injector has only stderr (and stdout on the same file), its keeper
# channel, the arena, the listeners and its ring open, not stdin.
. "$(dirname "$0")/../lib/common.sh"
. "$KJ_TESTS/lib/job.sh"
pin=KJPIN$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')
KJ_SOFTHSM_PIN=$pin kj_job_setup 200 8192
hex() { printf '%s' "$1" | xxd -p | tr -d '\n'; }

kj_run_bg
kj_wait_listen
kj_sim --hwrev B --sockets 4 --devices 0 --program-delay-ms 100 \
	>/dev/null 2>&1 &
kj_track_pid $!
inj=""
for i in $(seq 200); do
	inj=$(pgrep -P "$KJ_RUN_PID" | tr "\n" " " || true)
	[ -n "$inj" ] && grep -q 'sandbox: entered' "$T/run.err" && break
	sleep 0.05
done
[ -n "$inj" ] || fail "no injector process under $KJ_RUN_PID"
echo "keeper $KJ_RUN_PID, injectors: $inj"

# The pre-flight closes the HSM once the inputs are unwrapped: not even
# the keeper keeps the module (and SoftHSM2's token key) through the job.
grep -q libsofthsm2 "/proc/$KJ_RUN_PID/maps" &&
	fail "the keeper still has the PKCS#11 module mapped during the job"
for p in $inj; do
	grep -q libsofthsm2 "/proc/$p/maps" &&
		fail "injector $p has the PKCS#11 module mapped"
	[ "$(tr '\0' ' ' <"/proc/$p/cmdline")" = "kinject __injector $(
		tr '\0' ' ' <"/proc/$p/cmdline" | cut -d' ' -f3) " ] ||
		fail "injector $p was not exec'd: $(tr '\0' ' ' <"/proc/$p/cmdline")"
	# fd 0 was closed before the exec; the number may be reused by a
	# ring or a socket, never by the keeper's stdin.
	[ "$(readlink "/proc/$p/fd/0" || true)" = "$(readlink "/proc/$KJ_RUN_PID/fd/0")" ] &&
		fail "injector $p has the keeper's stdin"
	# Sockets (channel, listener, devices), the ring, the log: nothing
	# else (the arena fd is closed once mapped).
	for f in /proc/$p/fd/*; do
		t=$(readlink "$f" || true)
		case $t in
		socket:* | anon_inode:\[io_uring\] | "$T/run.err") ;;
		*) fail "injector $p holds fd ${f##*/} -> $t" ;;
		esac
	done
done

# The HSM URI is on the keeper's command line: a forked child has it too.
marker=$(hex "$KJ_HSM_URI_P11KIT")
"$KJ_TESTS/lib/memscan.py" "$KJ_RUN_PID" -- "$marker" >"$T/control.out" &&
	fail "control: the keeper's memory lacks its own command line"
"$KJ_TESTS/lib/memscan.py" $inj -- "$(hex "$pin")" "$marker" >"$T/scan.out" ||
	fail "keeper memory found in an injector: $(cat "$T/scan.out")"
cat "$T/scan.out"
kill -TERM "$KJ_RUN_PID"
wait "$KJ_RUN_PID" || true
echo "run_injector_exec ok"
