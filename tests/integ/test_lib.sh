#!/usr/bin/env bash
# lib.sh's handling of the processes a test started.  PIDs wrap (pid_max
# may be 32768) while the suite runs tests side by side, so a recorded
# PID whose process has ended may be another test's by now:
#   1. hs_stop_standby and hs_wait_gone leave a PID that is not ours
#      alone: no signal, no wait (a foreign process here is a sleep whose
#      parent has gone; it is stopped by this test at the end);
#   2. the cleanup waits once for all its processes, bounded by the
#      clock: three that ignore SIGTERM are SIGKILLed after one bound,
#      not after one bound each.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

FOREIGN=""
lib_cleanup() {
	local rc=$?
	# Started by this test, though not its child any more: by its PID.
	[ -z "$FOREIGN" ] || kill "$FOREIGN" 2>/dev/null || true
	(exit $rc)
	hs_cleanup
}

hs_init lib
trap lib_cleanup EXIT

# A process that is not ours: its parent, a subshell, has ended, and its
# command line does not name $T.
(sleep 300 & echo $! >"$T/foreign.pid")
FOREIGN=$(cat "$T/foreign.pid")
kill -0 "$FOREIGN" || hs_fail "the foreign sleep did not start"
hs_ours "$FOREIGN" && hs_fail "a sleep whose parent ended counts as ours"

# --- 1. a PID that is not ours is neither signalled nor waited for ----------
STANDBY_PID=$FOREIGN
(hs_stop_standby) || true
if kill -0 "$FOREIGN" 2>/dev/null; then
	hs_ok "hs_stop_standby left a PID that is not ours alone"
else
	hs_bad "hs_stop_standby signalled a PID that is not ours"
	(sleep 300 & echo $! >"$T/foreign.pid")
	FOREIGN=$(cat "$T/foreign.pid")
fi
if hs_wait_gone "$FOREIGN" 30; then
	hs_ok "hs_wait_gone: a PID that is not ours has ended"
else
	hs_bad "hs_wait_gone waited 3 s for a PID that is not ours"
fi

# --- 2. the cleanup: one bound for all, by the clock ------------------------
# Three processes of ours that ignore SIGTERM (the disposition survives
# exec), and the foreign one recorded as if it had been ours once.
deaf=()
for i in 1 2 3; do
	sh -c 'trap "" TERM; exec sleep 300' &
	deaf+=($!)
	HS_PIDS+=($!)
done
HS_PIDS+=("$FOREIGN")
sleep 0.3 # the traps are set
t0=$(date +%s)
# In a subshell: the cleanup exits; $$ stays this shell, and HS_KEEP
# keeps the folder.
(
	trap - EXIT
	HS_KEEP=1
	hs_cleanup
) || true
took=$(($(date +%s) - t0))
if [ "$took" -le 25 ]; then
	hs_ok "the cleanup stopped three processes deaf to SIGTERM in ${took} s"
else
	hs_bad "the cleanup took ${took} s for three processes deaf to SIGTERM (one bound each?)"
fi
for p in "${deaf[@]}"; do
	hs_wait_gone "$p" 20 && hs_ok "process $p was killed" ||
		hs_bad "process $p survived the cleanup"
	wait "$p" 2>/dev/null || true
done
kill -0 "$FOREIGN" 2>/dev/null &&
	hs_ok "the cleanup left a PID that is not ours alone" ||
	hs_bad "the cleanup signalled a PID that is not ours"
HS_PIDS=()

hs_result test_lib
