#!/usr/bin/env bash
# A frozen peer (SIGSTOP: its TCP connection stays open, its kernel still
# acknowledges, the process answers nothing) is noticed, and status says
# so, with peer_timeout 3 s:
#   1. the standby frozen while idle: the primary logs the standby gone
#      (naming it and how long it was silent), drops the session, and its
#      status is CRITICAL, not connected and not in sync; after SIGCONT
#      the pair reconnects and converges
#   2. the standby frozen while the primary waits on it in a run (it sent
#      a change and waits for the listing or the acknowledgement): the
#      same within a few peer_timeouts, not 10 x
#   3. the standby frozen while a 200 MiB file streams: the same
#   4. the primary frozen: `status` on it says once that the daemon does
#      not answer (CRITICAL), never "running" next to "stopped"; the
#      standby ends the silent session, logs it, and is not promote ready
#      (4b: the standby daemon frozen without its session process: its
#      status says it does not answer; replication goes on meanwhile)
# After every case, once status says in sync and connected, the trees are
# identical (rsync as the oracle).  Waits are bounded and poll conditions.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

hs_init frozen
S=$T/src
I=$S/install
hs_gen_tree "$S"
hs_setup_pair "$(hs_sets_for "$S")"
SOURCES=$(hs_all_sources "$S")
for c in "$C1" "$C2"; do
	sed -i 's/^peer_timeout = .*/peer_timeout = 3s\nheartbeat = 1s/' "$c"
	grep -q '^peer_timeout = 3s$' "$c" || hs_fail "could not set peer_timeout in $c"
done

FROZEN=()
# freeze PID...: SIGSTOP, remembered so that the exit continues them.
freeze() {
	FROZEN+=("$@")
	kill -STOP "$@"
}
thaw() {
	kill -CONT "$@" 2>/dev/null || true
}
cleanup_frozen() {
	local rc=$?
	[ ${#FROZEN[@]} -eq 0 ] || kill -CONT "${FROZEN[@]}" 2>/dev/null || true
	(exit $rc) # hs_cleanup exits with the status it is called with
	hs_cleanup
}
trap cleanup_frozen EXIT

# st EXPR: evaluate a python expression over the JSON (as j) in $T/st.json.
st() {
	python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
print(eval(sys.argv[2]))' "$T/st.json" "$1" 2>/dev/null || echo "?"
}

# wait_status CONF SECONDS EXPR: poll status until EXPR is True, for at
# most SECONDS of wall-clock time (a status call that hangs counts); 1 on
# timeout.
wait_status() {
	local end=$((SECONDS + $2))
	while :; do
		hs_status "$1" "$T/st.json"
		[ "$(st "$3")" = "True" ] && return 0
		[ $SECONDS -lt $end ] || return 1
		sleep 0.2
	done
}

IN_SYNC='j["peer"]["state"] == "connected" and all(p["state"] == "in-sync" for p in j["paths"]) and j["lag"]["files_pending"] == 0 and j["lag"]["seconds"] == 0'
GONE='j["peer"]["state"] != "connected" and not any(p["state"] == "in-sync" for p in j["paths"])'

# converged NAME: status on the primary says connected and in sync, and
# then (honesty) the trees are identical.
converged() {
	if ! wait_status "$C1" 90 "$IN_SYNC"; then
		hs_bad "$1: the primary never said connected and in sync again"
		cat "$T/st.json" >&2
		return 0
	fi
	hs_ok "$1: the primary says connected and in sync"
	if hs_compare $SOURCES; then
		hs_ok "$1: the trees are identical when status says in sync"
	else
		# A change may still be on its way; give it a bounded moment.
		hs_wait_same "$1: trees identical" 30 $SOURCES
	fi
}

# gone_checks NAME DROPS: the primary logged one more "gone" line within
# 4 x peer_timeout, and its status became CRITICAL and not connected.
gone_checks() {
	local name=$1 before=$2 line
	if hs_wait_log "$T/primary.log" "standby mn2 .* silent for .* gone; reconnecting" \
		$((before + 1)) 12; then
		line=$(grep "standby mn2 .* silent for .* gone" "$T/primary.log" | tail -1)
		hs_ok "$name: the primary declared the standby gone: ${line#*primary: }"
	else
		hs_bad "$name: no 'standby mn2 ... silent for ... gone' line within 12 s (4 x peer_timeout)"
		tail -5 "$T/primary.log"
	fi
	if wait_status "$C1" 12 "$GONE"' and j["daemon"] == "running" and any(w["severity"] == "critical" for w in j["warnings"])'; then
		if [ "$HS_STATUS_RC" -eq 2 ]; then
			hs_ok "$name: primary status CRITICAL (exit 2), peer $(st 'j["peer"]["state"]'): $(st '[w["text"] for w in j["warnings"]]')"
		else
			hs_bad "$name: primary status exit $HS_STATUS_RC, not 2 (CRITICAL)"
			cat "$T/st.json" >&2
		fi
	else
		hs_bad "$name: the primary's status is not CRITICAL, or still says connected or in sync"
		cat "$T/st.json" >&2
	fi
}

hs_start_standby
hs_start_primary
hs_wait_same "seed" 60 $SOURCES
converged "seed"

# --- 1. the standby frozen while idle ---------------------------------------
drops=$(hs_count_log "$T/primary.log" "gone; reconnecting")
conns=$(hs_count_log "$T/primary.log" "connected to standby")
victims=$(hs_standby_tree)
# shellcheck disable=SC2086
freeze $victims
gone_checks "idle standby frozen" "$drops"
echo "made while the standby was frozen" >"$I/frozen-idle.txt"
# shellcheck disable=SC2086
thaw $victims
hs_wait_log "$T/primary.log" "connected to standby" $((conns + 1)) 30 &&
	hs_ok "idle: the primary reconnected after SIGCONT" ||
	hs_bad "idle: no reconnection within 30 s of SIGCONT"
converged "idle standby frozen, continued"

# --- 2. the standby frozen while the primary waits on it in a run ----------
# Frozen first, then a change: the primary's run sends it and waits for
# the standby's answer, which never comes.
drops=$(hs_count_log "$T/primary.log" "gone; reconnecting")
conns=$(hs_count_log "$T/primary.log" "connected to standby")
victims=$(hs_standby_tree)
# shellcheck disable=SC2086
freeze $victims
echo "10.9.9.9 frozen-run" >>"$S/etc/hosts"
mkdir -p "$I/frozen-run"
for i in $(seq 1 20); do echo "file $i" >"$I/frozen-run/f$i"; done
gone_checks "standby frozen while a run waits on it" "$drops"
# shellcheck disable=SC2086
thaw $victims
hs_wait_log "$T/primary.log" "connected to standby" $((conns + 1)) 30 &&
	hs_ok "run: the primary reconnected after SIGCONT" ||
	hs_bad "run: no reconnection within 30 s of SIGCONT"
converged "standby frozen in a run, continued"

# --- 3. the standby frozen while a 200 MiB file streams ---------------------
head -c 200M /dev/urandom >"$T/big.tmp"
drops=$(hs_count_log "$T/primary.log" "gone; reconnecting")
conns=$(hs_count_log "$T/primary.log" "connected to standby")
mv "$T/big.tmp" "$I/frozen-big.img"
streaming=0
hs_wait_transfer "$T/standby$I" $((10 << 20)) 30 && streaming=1 # under way within 30 s
sz=${HS_TMP_SIZE:-0}
victims=$(hs_standby_tree)
# shellcheck disable=SC2086
freeze $victims
if [ $streaming -eq 1 ]; then
	hs_ok "transfer: standby frozen with $((sz / 1024 / 1024)) MiB of 200 in its temporary file"
else
	hs_bad "transfer: could not catch the 200 MiB transfer in flight"
fi
gone_checks "standby frozen mid-transfer" "$drops"
# shellcheck disable=SC2086
thaw $victims
hs_wait_log "$T/primary.log" "connected to standby" $((conns + 1)) 30 &&
	hs_ok "transfer: the primary reconnected after SIGCONT" ||
	hs_bad "transfer: no reconnection within 30 s of SIGCONT"
converged "standby frozen mid-transfer, continued"
rm -f "$I/frozen-big.img"
converged "the big file deleted"

# --- 4. the primary frozen --------------------------------------------------
ended=$(hs_count_log "$T/standby.log" "primary mn1 silent for .* gone; session ended")
conns=$(hs_count_log "$T/primary.log" "connected to standby")
freeze "$PRIMARY_PID"
# The standby: the silent session ends, said once, and it is not ready.
if hs_wait_log "$T/standby.log" "primary mn1 silent for .* gone; session ended" \
	$((ended + 1)) 12; then
	hs_ok "frozen primary: the standby ended the silent session: $(grep 'primary mn1 silent for' "$T/standby.log" | tail -1 | sed 's/.*recv: //')"
else
	hs_bad "frozen primary: the standby logged no 'primary mn1 silent for ... gone' within 12 s"
	tail -5 "$T/standby.log"
fi
if wait_status "$C2" 12 'j["promote_ready"]["ready"] == False and j["peer"]["state"] != "connected"' &&
	wait_status "$C2" 6 'any(w["severity"] == "critical" for w in j["warnings"])'; then
	[ "$HS_STATUS_RC" -eq 2 ] &&
		hs_ok "frozen primary: standby status CRITICAL, not promote ready: $(st 'j["promote_ready"]["reasons"]')" ||
		hs_bad "frozen primary: standby status exit $HS_STATUS_RC, not 2"
else
	hs_bad "frozen primary: the standby's status still claims a live primary"
	cat "$T/st.json" >&2
fi
# The primary's own status: one verdict about its daemon.
hs_status "$C1" "$T/st.json"
daemon=$(st 'j["daemon"]')
reasons=$(st 'j["promote_ready"]["reasons"]')
if [ "$HS_STATUS_RC" -eq 2 ] && [ "$daemon" = "not answering" ] &&
	! grep -q "stopped on this node" "$T/st.json"; then
	hs_ok "frozen primary: status --json exit 2, daemon \"$daemon\": $reasons"
else
	hs_bad "frozen primary: status --json exit $HS_STATUS_RC, daemon \"$daemon\", reasons $reasons"
fi
set +e
"$HS_BIN" -c "$C1" status >"$T/st.txt" 2>&1
rc=$?
set -e
if [ $rc -eq 2 ] && grep -q "daemon not answering" "$T/st.txt" &&
	! grep -q "daemon running" "$T/st.txt" &&
	! grep -q "stopped on this node" "$T/st.txt" &&
	grep -q "is stopped (SIGSTOP" "$T/st.txt"; then
	hs_ok "frozen primary: status says once that the daemon does not answer"
else
	hs_bad "frozen primary: status (exit $rc) does not say one thing:"
	cat "$T/st.txt"
fi
echo "made while the primary was frozen" >"$I/frozen-primary.txt"
thaw "$PRIMARY_PID"
hs_wait_log "$T/primary.log" "connected to standby" $((conns + 1)) 30 &&
	hs_ok "frozen primary: reconnected after SIGCONT" ||
	hs_bad "frozen primary: no reconnection within 30 s of SIGCONT"
converged "primary frozen, continued"

# --- 4b. only the standby daemon frozen, not its session process ----------
# The session process goes on applying (replication does not stop for
# it), but the daemon cannot answer: `status` on the standby says so.
freeze "$STANDBY_PID"
hs_status "$C2" "$T/st.json"
if [ "$HS_STATUS_RC" -eq 2 ] && [ "$(st 'j["daemon"]')" = "not answering" ]; then
	hs_ok "standby daemon frozen: its status says not answering (exit 2)"
else
	hs_bad "standby daemon frozen: status exit $HS_STATUS_RC, daemon \"$(st 'j["daemon"]')\""
	cat "$T/st.json" >&2
fi
echo "made while the standby daemon was frozen" >"$I/frozen-standby-parent.txt"
# Its status cannot answer: the primary's claim alone.
HS_STANDBY_CONF=- hs_wait_same "standby daemon frozen: its session process still applies" 30 $SOURCES
thaw "$STANDBY_PID"
converged "standby daemon continued"

# --- 5. slow but alive is not gone ------------------------------------------
# bwlimit 64 KiB/s: one 256 KiB data frame takes 4 s on the wire, longer
# than peer_timeout; the standby, reading it, must not call the primary
# gone, nor the primary the standby.  A 768 KiB file takes ~12 s.
hs_signal TERM "$PRIMARY_PID"
hs_wait_gone "$PRIMARY_PID" 150 || hs_fail "primary did not stop"
printf 'bwlimit = 64K\n' >"$T/bw.ini"
sed -i "/^heartbeat = /r $T/bw.ini" "$C1"
grep -q '^bwlimit = 64K$' "$C1" || hs_fail "could not set bwlimit in $C1"
hs_start_primary
converged "restarted with bwlimit 64K"
gone_p=$(hs_count_log "$T/primary.log" "gone; reconnecting")
gone_s=$(hs_count_log "$T/standby.log" "session ended")
conns=$(hs_count_log "$T/primary.log" "connected to standby")
head -c 786432 /dev/urandom >"$T/slow.tmp"
mv "$T/slow.tmp" "$I/slow.img"
t0=$SECONDS
hs_wait_same "slow transfer (bwlimit 64K) arrives" 120 $SOURCES
echo "info: 768 KiB took $((SECONDS - t0)) s at bwlimit 64K"
[ "$(hs_count_log "$T/primary.log" "gone; reconnecting")" -eq "$gone_p" ] &&
	[ "$(hs_count_log "$T/standby.log" "session ended")" -eq "$gone_s" ] &&
	[ "$(hs_count_log "$T/primary.log" "connected to standby")" -eq "$conns" ] &&
	hs_ok "slow transfer: the same session all along, nobody called gone" ||
	hs_bad "slow transfer: the session was dropped: $(grep -h 'gone\|session ended' "$T/primary.log" "$T/standby.log" | tail -2)"
converged "slow transfer"

kill -0 "$PRIMARY_PID" 2>/dev/null && hs_ok "primary still running" ||
	hs_bad "primary died"
kill -0 "$STANDBY_PID" 2>/dev/null && hs_ok "standby still running" ||
	hs_bad "standby died"
if [ "$HS_FAILED" -gt 0 ]; then
	echo "--- primary log (tail)"
	tail -30 "$T/primary.log"
	echo "--- standby log (tail)"
	tail -20 "$T/standby.log"
fi
hs_result test_frozen
