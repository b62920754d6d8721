#!/usr/bin/env bash
# Crashes and network faults under the continuous-replication daemons.
# The primary reaches the standby through hs-faultproxy (tests/tools), which
# can cut the link (RST) or stall it (no byte moves, no FIN).  Every case
# ends with identical trees (rsync -naiHAXc as the oracle) within a bounded
# wait:
#   - SIGKILL of the primary with a change not yet delivered, then restart
#   - SIGKILL of the standby while a 300 MiB file streams: the old copy
#     stays intact, the restarted standby gets the new one
#   - the link cut for 10 s while files change
#   - a link that stalls without FIN, idle and in the middle of a transfer:
#     the primary notices within a few peer_timeouts (5 s here; the bound
#     is 4 x) and reconnects after the stall
#   - a standby restart (SIGTERM, start again)
#   - the standby's session processes stopped and continued (SIGSTOP/CONT)
# Nothing asserts on wall-clock time beyond bounded waits that fail only
# when something never happens.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HS_TOOLS=${HS_TOOLS:-$top/build/bin}
FAULTPROXY=$HS_TOOLS/hs-faultproxy
[ -x "$FAULTPROXY" ] || hs_fail "$FAULTPROXY not built"

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# wait_same NAME SECONDS STEP SOURCE...: lib.sh's honest wait (status
# says in-sync and promote ready, then the trees are compared once; STEP
# is not used any more); counts the result, sets WS_OK, returns 0.
wait_same() {
	local name=$1 secs=$2
	shift 3
	hs_wait_same "$name" "$secs" "$@"
	WS_OK=$HS_SAME
	return 0
}

# count_log FILE PATTERN: how many lines match (0 when none).
count_log() {
	grep -c -- "$2" "$1" 2>/dev/null || true
}

# wait_log FILE PATTERN MIN SECONDS: wait until more than MIN lines match;
# sets WL_MS to the time it took, returns 1 on timeout.
wait_log() {
	local t0 i
	t0=$(now_ms)
	for ((i = 0; i < $4 * 20; i++)); do
		if [ "$(count_log "$1" "$2")" -gt "$3" ]; then
			WL_MS=$(($(now_ms) - t0))
			return 0
		fi
		sleep 0.05
	done
	WL_MS=$(($(now_ms) - t0))
	return 1
}

start_primary() {
	"$HS_BIN" -c "$C1P" daemon --foreground >>"$T/primary.log" 2>&1 &
	PRIMARY_PID=$!
	HS_PIDS+=("$PRIMARY_PID")
}

# A standby restart keeps the old log under another name: hs_start_standby
# waits for "listening on" in a fresh standby.log.
RUN=0
restart_standby() {
	RUN=$((RUN + 1))
	mv "$T/standby.log" "$T/standby-run$RUN.log"
	hs_start_standby
}

# The standby daemon and its session children, by PID.
standby_tree() {
	local kids
	kids=$(ps -o pid= --ppid "$STANDBY_PID" 2>/dev/null | tr -d ' ' | tr '\n' ' ')
	echo "$STANDBY_PID $kids"
}

hs_init daemon-faults
S=$T/src
I=$S/install
hs_gen_tree "$S"
hs_setup_pair "$(hs_sets_for "$S")"
SOURCES=$(hs_all_sources "$S")

# The primary's config: the same, but its peer is the proxy.
PPORT=$(hs_free_port) || hs_fail "no free port"
[ "$PPORT" != "$PORT" ] || PPORT=$(hs_free_port)
C1P=$T/mn1-proxy.conf
sed "s/^peer = .*/peer = 127.0.0.1:$PPORT/" "$C1" >"$C1P"
grep -q "^peer = 127.0.0.1:$PPORT\$" "$C1P" || hs_fail "could not write $C1P"
HS_PRIMARY_CONF=$C1P # the status that hs_wait_same asks

"$FAULTPROXY" "$PPORT" "$PORT" >"$T/proxy.log" 2>&1 &
PROXY_PID=$!
HS_PIDS+=("$PROXY_PID")
for ((i = 0; i < 100; i++)); do
	grep -q "listening on" "$T/proxy.log" && break
	kill -0 "$PROXY_PID" 2>/dev/null || { cat "$T/proxy.log"; hs_fail "proxy exited"; }
	sleep 0.05
done
grep -q "listening on" "$T/proxy.log" || hs_fail "proxy did not start"

hs_start_standby
start_primary
wait_same "seed through the proxy" 60 0.1 $SOURCES
[ $WS_OK -eq 1 ] || { tail -20 "$T/primary.log"; hs_fail "no seed, giving up"; }

# --- 1. SIGKILL of the primary with changes not delivered -------------------
# (a) guaranteed undelivered: the link stalls first, so whatever the
#     primary sends sits in buffers; it is killed there.
kill -HUP "$PROXY_PID"       # stall
sleep 0.3
echo "made before the kill" >"$I/killed-a.txt"
rm "$I/postscripts/script20"
mv "$I/postscripts/script21" "$I/postscripts/script21.moved"
chmod 700 "$I/postscripts/script22"
sleep 0.5                    # the watcher saw it; the send is stuck
kill -9 "$PRIMARY_PID"
hs_wait_gone "$PRIMARY_PID" 50 || bad "primary survived SIGKILL"
if [ -e "$T/standby$I/killed-a.txt" ]; then
	echo "info: the change reached the standby before the kill after all"
else
	echo "info: the change had not reached the standby when the primary died"
fi
kill -HUP "$PROXY_PID"       # stall over (the dead session's bytes flow out)
start_primary
wait_same "SIGKILL primary with a change held in a stalled link, restart" \
	60 0.1 $SOURCES

# (b) the plain race: a burst of changes, the last ones (shell builtins
#     and one rm, within a millisecond or two) right before the kill
mkdir -p "$I/burst"
for i in $(seq 1 300); do echo "burst $i" >"$I/burst/f$i"; done
echo "last edit before the kill" >"$I/burst/f300"
echo "appended before kill" >>"$S/etc/hosts"
rm -rf "$I/custom"
kill -9 "$PRIMARY_PID"
hs_wait_gone "$PRIMARY_PID" 50 || bad "primary survived SIGKILL"
if [ -d "$T/standby$I/custom" ] ||
	[ "$(cat "$T/standby$I/burst/f300" 2>/dev/null)" != "last edit before the kill" ]; then
	echo "info: the last changes had not all reached the standby when the primary died"
else
	echo "info: the last changes reached the standby before the kill after all"
fi
start_primary
wait_same "SIGKILL primary right after 300 creates, an edit and an rm -rf, restart" \
	60 0.1 $SOURCES
# (c) changes made while no primary runs at all
kill -9 "$PRIMARY_PID"
hs_wait_gone "$PRIMARY_PID" 50 || bad "primary survived SIGKILL"
echo "made while the primary was down" >"$I/while-down.txt"
rm "$I/burst/f1" "$I/burst/f2"
mv "$I/burst/f3" "$I/burst/f3.moved"
start_primary
wait_same "changes made while the primary was down arrive after restart" \
	60 0.1 $SOURCES

# --- 2. SIGKILL of the standby while a 300 MiB file streams -----------------
BIG=$I/big.img
head -c 300M /dev/urandom >"$T/big.v1"
head -c 300M /dev/urandom >"$T/big.v2"
mv "$T/big.v1" "$BIG"
wait_same "300 MiB file, first version" 180 1 $SOURCES
sum_old=$(sha256sum <"$T/standby$BIG" | cut -d' ' -f1)
sum_v2=$(sha256sum <"$T/big.v2" | cut -d' ' -f1)
runs_before=$(count_log "$T/primary.log" "connected to standby")
mv "$T/big.v2" "$BIG"        # one rename: the transfer starts at once
streaming=0
for ((i = 0; i < 600; i++)); do # up to 30 s for the transfer to be under way
	sz=$(find "$T/standby$I" -maxdepth 1 -name '.hamnsync-tmp.*' \
		-printf '%s\n' 2>/dev/null | sort -n | tail -1)
	if [ -n "$sz" ] && [ "$sz" -gt $((20 * 1024 * 1024)) ]; then
		streaming=1
		break
	fi
	sleep 0.05
done
victims=$(standby_tree)
kill -9 $victims 2>/dev/null || true
for p in $victims; do hs_wait_gone "$p" 50 || bad "pid $p survived SIGKILL"; done
if [ $streaming -eq 1 ]; then
	ok "standby killed mid-transfer ($((sz / 1024 / 1024)) MiB of 300 in its temporary file)"
else
	bad "could not catch the 300 MiB transfer in flight (no growing temporary file)"
fi
sum_now=$(sha256sum <"$T/standby$BIG" | cut -d' ' -f1)
if [ "$sum_now" = "$sum_old" ]; then
	ok "standby's old copy intact after SIGKILL mid-transfer"
elif [ "$sum_now" = "$sum_v2" ]; then
	bad "the new copy was complete before the kill: nothing was tested"
else
	bad "standby's copy is torn after SIGKILL mid-transfer"
fi
echo "made while the standby was dead" >"$I/standby-down.txt"
restart_standby
grep -q "removed .* temporary files" "$T/standby.log" &&
	ok "restarted standby removed the interrupted transfer's temporary file" ||
	echo "info: the restarted standby logged no temporary-file cleanup"
wait_same "after the standby restart, the new 300 MiB version arrives" \
	180 1 $SOURCES
[ "$(sha256sum <"$T/standby$BIG" | cut -d' ' -f1)" = "$sum_v2" ] &&
	ok "standby's copy is the new version" || bad "standby's copy is not the new version"
[ "$(count_log "$T/primary.log" "connected to standby")" -gt "$runs_before" ] &&
	ok "the primary reconnected by itself" || bad "no reconnection in the primary log"
left=$(find "$T/standby" -name '.hamnsync-tmp.*' | wc -l)
[ "$left" -eq 0 ] && ok "no temporary files left on the standby" ||
	bad "$left temporary files left on the standby"
rm -f "$BIG"
wait_same "the 300 MiB file deleted" 30 0.1 $SOURCES

# --- 3. the link cut for 10 s while files change ----------------------------
drops=$(count_log "$T/primary.log" "reconnecting")
conns=$(count_log "$T/primary.log" "connected to standby")
kill -USR1 "$PROXY_PID"      # cut: RST, new connections refused
for r in $(seq 1 10); do
	mkdir -p "$I/cut/r$r"
	for i in $(seq 1 20); do echo "round $r file $i" >"$I/cut/r$r/f$i"; done
	echo "round $r" >>"$S/etc/hosts"
	[ "$r" -gt 2 ] && rm -rf "$I/cut/r$((r - 2))"
	[ "$r" -eq 5 ] && mv "$I/postscripts" "$I/postscripts.cut"
	sleep 1
done
kill -USR2 "$PROXY_PID"      # heal
wait_same "link cut for 10 s while files changed, healed" 60 0.2 $SOURCES
[ "$(count_log "$T/primary.log" "reconnecting")" -gt "$drops" ] &&
	ok "cut: the primary logged the lost session" ||
	bad "cut: the primary did not log the lost session"
[ "$(count_log "$T/primary.log" "connected to standby")" -gt "$conns" ] &&
	ok "cut: the primary logged the reconnection" ||
	bad "cut: no reconnection in the primary log"

# --- 4. a link that stalls without FIN --------------------------------------
# (a) idle: the heartbeat finds the silence
drops=$(count_log "$T/primary.log" "reconnecting")
conns=$(count_log "$T/primary.log" "connected to standby")
kill -HUP "$PROXY_PID"       # stall
if wait_log "$T/primary.log" "reconnecting" "$drops" 20; then
	ok "idle stall: the primary declared the standby gone (after ${WL_MS} ms; peer_timeout 5 s)"
else
	bad "idle stall: the primary did not notice within 20 s (4 x peer_timeout)"
fi
echo "changed during the stall" >"$I/stall-a.txt"
rm -rf "$I/cut"
kill -HUP "$PROXY_PID"       # stall over
wait_same "idle stall, then healed" 60 0.2 $SOURCES
[ "$(count_log "$T/primary.log" "connected to standby")" -gt "$conns" ] &&
	ok "idle stall: the primary logged the reconnection" ||
	bad "idle stall: no reconnection in the primary log"

# (b) a transfer in flight: the primary is inside a reconciliation,
#     streaming a 200 MiB file, when the link stalls
head -c 200M /dev/urandom >"$T/big.v3"
sleep 1.5                    # a quiet, connected session again
drops=$(count_log "$T/primary.log" "reconnecting")
conns=$(count_log "$T/primary.log" "connected to standby")
mv "$T/big.v3" "$I/stall-big.img"
streaming=0
for ((i = 0; i < 600; i++)); do # up to 30 s for the transfer to be under way
	sz=$(find "$T/standby$I" -maxdepth 1 -name '.hamnsync-tmp.*' \
		-printf '%s\n' 2>/dev/null | sort -n | tail -1)
	if [ -n "$sz" ] && [ "$sz" -gt $((10 * 1024 * 1024)) ]; then
		streaming=1
		break
	fi
	sleep 0.05
done
kill -HUP "$PROXY_PID"       # stall
[ $streaming -eq 1 ] &&
	echo "info: stalled with $((sz / 1024 / 1024)) MiB of 200 on the standby" ||
	bad "could not catch the 200 MiB transfer in flight"
echo "10.1.1.1 stalled-edit" >>"$S/etc/hosts"
noticed=0
if wait_log "$T/primary.log" "reconnecting" "$drops" 20; then
	ok "stall mid-transfer: the primary declared the standby gone (after ${WL_MS} ms)"
	noticed=1
else
	bad "stall mid-transfer: the primary did not notice within 20 s (4 x peer_timeout)"
	tail -3 "$T/primary.log"
fi
kill -HUP "$PROXY_PID"       # stall over
wait_same "stall mid-transfer, then healed" 120 1 $SOURCES
if [ $noticed -eq 1 ]; then
	[ "$(count_log "$T/primary.log" "connected to standby")" -gt "$conns" ] &&
		ok "stall mid-transfer: the primary logged the reconnection" ||
		bad "stall mid-transfer: no reconnection in the primary log"
elif [ "$(count_log "$T/primary.log" "reconnecting")" -eq "$drops" ]; then
	echo "info: the stalled session simply resumed after the stall"
fi
rm -f "$I/stall-big.img"

# --- 5. a standby restart (SIGTERM, start again) ----------------------------
conns=$(count_log "$T/primary.log" "connected to standby")
hs_stop_standby
echo "made while the standby was stopped" >"$I/standby-stopped.txt"
mv "$I/postscripts.cut" "$I/postscripts"
restart_standby
wait_same "standby restarted (SIGTERM, start): the primary catches up" \
	60 0.2 $SOURCES
[ "$(count_log "$T/primary.log" "connected to standby")" -gt "$conns" ] &&
	ok "standby restart: the primary reconnected by itself" ||
	bad "standby restart: no reconnection in the primary log"
echo "after the restart" >"$I/after-restart.txt"
wait_same "changes flow again after the standby restart" 10 0.02 $SOURCES

# --- 6. the standby's session processes stopped and continued ---------------
# (kill -STOP / -CONT, or a debugger attaching): with socket timeouts set,
# the kernel fails the blocked read with EINTR instead of restarting it;
# that is no reason to end the session
conns=$(count_log "$T/primary.log" "connected to standby")
ended=$(count_log "$T/standby.log" "session ended")
kids=$(ps -o pid= --ppid "$STANDBY_PID" 2>/dev/null | tr -d ' ' | tr '\n' ' ')
if [ -n "$kids" ]; then
	# shellcheck disable=SC2086
	kill -STOP $kids
	sleep 0.3
	# shellcheck disable=SC2086
	kill -CONT $kids
	sleep 0.3
	echo "after a stop and continue" >"$I/after-stop-cont.txt"
	wait_same "changes flow after the standby's session was stopped and continued" \
		10 0.02 $SOURCES
	if [ "$(count_log "$T/standby.log" "session ended")" -eq "$ended" ] &&
		[ "$(count_log "$T/primary.log" "connected to standby")" -eq "$conns" ]; then
		ok "stop and continue: the same session goes on"
	else
		bad "stop and continue ended the session: $(grep 'session ended' "$T/standby.log" | tail -1)"
	fi
else
	bad "no standby session process to stop"
fi

kill -0 "$PRIMARY_PID" 2>/dev/null && ok "primary still running" ||
	bad "primary died"
kill -TERM "$PRIMARY_PID"
hs_wait_gone "$PRIMARY_PID" 150 && ok "primary stopped on SIGTERM" ||
	bad "primary did not stop on SIGTERM"

pass=$((pass + HS_PASSED))
fail=$((fail + HS_FAILED))
if [ $fail -gt 0 ]; then
	echo "--- primary log (tail)"
	tail -40 "$T/primary.log"
	echo "--- standby log (tail)"
	tail -20 "$T/standby.log"
	echo "--- proxy log (tail)"
	tail -20 "$T/proxy.log"
fi
echo "test_daemon_faults: $pass passed, $fail failed"
[ $fail -eq 0 ]
