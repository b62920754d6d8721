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

# A standby restart keeps the old log under another name: hs_start_standby
# waits for "listening on" in a fresh standby.log.
RUN=0
restart_standby() {
	RUN=$((RUN + 1))
	mv "$T/standby.log" "$T/standby-run$RUN.log"
	hs_start_standby
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
hs_start_primary "$C1P"
hs_wait_same "seed through the proxy" 60 $SOURCES
[ $HS_SAME -eq 1 ] || { tail -20 "$T/primary.log"; hs_fail "no seed, giving up"; }

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
hs_wait_gone "$PRIMARY_PID" 50 || hs_bad "primary survived SIGKILL"
if [ -e "$T/standby$I/killed-a.txt" ]; then
	echo "info: the change reached the standby before the kill after all"
else
	echo "info: the change had not reached the standby when the primary died"
fi
kill -HUP "$PROXY_PID"       # stall over (the dead session's bytes flow out)
hs_start_primary "$C1P"
hs_wait_same "SIGKILL primary with a change held in a stalled link, restart" \
	60 $SOURCES

# (b) the plain race: a burst of changes, the last ones (shell builtins
#     and one rm, within a millisecond or two) right before the kill
mkdir -p "$I/burst"
for i in $(seq 1 300); do echo "burst $i" >"$I/burst/f$i"; done
echo "last edit before the kill" >"$I/burst/f300"
echo "appended before kill" >>"$S/etc/hosts"
rm -rf "$I/custom"
kill -9 "$PRIMARY_PID"
hs_wait_gone "$PRIMARY_PID" 50 || hs_bad "primary survived SIGKILL"
if [ -d "$T/standby$I/custom" ] ||
	[ "$(cat "$T/standby$I/burst/f300" 2>/dev/null)" != "last edit before the kill" ]; then
	echo "info: the last changes had not all reached the standby when the primary died"
else
	echo "info: the last changes reached the standby before the kill after all"
fi
hs_start_primary "$C1P"
hs_wait_same "SIGKILL primary right after 300 creates, an edit and an rm -rf, restart" \
	60 $SOURCES
# (c) changes made while no primary runs at all
kill -9 "$PRIMARY_PID"
hs_wait_gone "$PRIMARY_PID" 50 || hs_bad "primary survived SIGKILL"
echo "made while the primary was down" >"$I/while-down.txt"
rm "$I/burst/f1" "$I/burst/f2"
mv "$I/burst/f3" "$I/burst/f3.moved"
hs_start_primary "$C1P"
hs_wait_same "changes made while the primary was down arrive after restart" \
	60 $SOURCES

# --- 2. SIGKILL of the standby while a 300 MiB file streams -----------------
BIG=$I/big.img
head -c 300M /dev/urandom >"$T/big.v1"
head -c 300M /dev/urandom >"$T/big.v2"
mv "$T/big.v1" "$BIG"
hs_wait_same "300 MiB file, first version" 180 $SOURCES
sum_old=$(sha256sum <"$T/standby$BIG" | cut -d' ' -f1)
sum_v2=$(sha256sum <"$T/big.v2" | cut -d' ' -f1)
runs_before=$(hs_count_log "$T/primary.log" "connected to standby")
mv "$T/big.v2" "$BIG"        # one rename: the transfer starts at once
streaming=0
hs_wait_transfer "$T/standby$I" $((20 << 20)) 30 && streaming=1 # under way within 30 s
sz=${HS_TMP_SIZE:-0}
victims=$(hs_standby_tree)
kill -9 $victims 2>/dev/null || true
for p in $victims; do hs_wait_gone "$p" 50 || hs_bad "pid $p survived SIGKILL"; done
if [ $streaming -eq 1 ]; then
	hs_ok "standby killed mid-transfer ($((sz / 1024 / 1024)) MiB of 300 in its temporary file)"
else
	hs_bad "could not catch the 300 MiB transfer in flight (no growing temporary file)"
fi
sum_now=$(sha256sum <"$T/standby$BIG" | cut -d' ' -f1)
if [ "$sum_now" = "$sum_old" ]; then
	hs_ok "standby's old copy intact after SIGKILL mid-transfer"
elif [ "$sum_now" = "$sum_v2" ]; then
	hs_bad "the new copy was complete before the kill: nothing was tested"
else
	hs_bad "standby's copy is torn after SIGKILL mid-transfer"
fi
echo "made while the standby was dead" >"$I/standby-down.txt"
restart_standby
grep -q "removed .* temporary files" "$T/standby.log" &&
	hs_ok "restarted standby removed the interrupted transfer's temporary file" ||
	echo "info: the restarted standby logged no temporary-file cleanup"
hs_wait_same "after the standby restart, the new 300 MiB version arrives" \
	180 $SOURCES
[ "$(sha256sum <"$T/standby$BIG" | cut -d' ' -f1)" = "$sum_v2" ] &&
	hs_ok "standby's copy is the new version" || hs_bad "standby's copy is not the new version"
[ "$(hs_count_log "$T/primary.log" "connected to standby")" -gt "$runs_before" ] &&
	hs_ok "the primary reconnected by itself" || hs_bad "no reconnection in the primary log"
left=$(find "$T/standby" -name '.hamnsync-tmp.*' | wc -l)
[ "$left" -eq 0 ] && hs_ok "no temporary files left on the standby" ||
	hs_bad "$left temporary files left on the standby"
rm -f "$BIG"
hs_wait_same "the 300 MiB file deleted" 30 $SOURCES

# --- 3. the link cut for 10 s while files change ----------------------------
drops=$(hs_count_log "$T/primary.log" "reconnecting")
conns=$(hs_count_log "$T/primary.log" "connected to standby")
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
hs_wait_same "link cut for 10 s while files changed, healed" 60 $SOURCES
[ "$(hs_count_log "$T/primary.log" "reconnecting")" -gt "$drops" ] &&
	hs_ok "cut: the primary logged the lost session" ||
	hs_bad "cut: the primary did not log the lost session"
[ "$(hs_count_log "$T/primary.log" "connected to standby")" -gt "$conns" ] &&
	hs_ok "cut: the primary logged the reconnection" ||
	hs_bad "cut: no reconnection in the primary log"

# --- 4. a link that stalls without FIN --------------------------------------
# (a) idle: the heartbeat finds the silence
drops=$(hs_count_log "$T/primary.log" "reconnecting")
conns=$(hs_count_log "$T/primary.log" "connected to standby")
kill -HUP "$PROXY_PID"       # stall
t0=$(hs_now_ms)
if hs_wait_log "$T/primary.log" "reconnecting" $((drops + 1)) 20; then
	hs_ok "idle stall: the primary declared the standby gone (after $(($(hs_now_ms) - t0)) ms; peer_timeout 5 s)"
else
	hs_bad "idle stall: the primary did not notice within 20 s (4 x peer_timeout)"
fi
echo "changed during the stall" >"$I/stall-a.txt"
rm -rf "$I/cut"
kill -HUP "$PROXY_PID"       # stall over
hs_wait_same "idle stall, then healed" 60 $SOURCES
[ "$(hs_count_log "$T/primary.log" "connected to standby")" -gt "$conns" ] &&
	hs_ok "idle stall: the primary logged the reconnection" ||
	hs_bad "idle stall: no reconnection in the primary log"

# (b) a transfer in flight: the primary is inside a reconciliation,
#     streaming a 200 MiB file, when the link stalls
head -c 200M /dev/urandom >"$T/big.v3"
sleep 1.5                    # a quiet, connected session again
drops=$(hs_count_log "$T/primary.log" "reconnecting")
conns=$(hs_count_log "$T/primary.log" "connected to standby")
mv "$T/big.v3" "$I/stall-big.img"
streaming=0
hs_wait_transfer "$T/standby$I" $((10 << 20)) 30 && streaming=1 # under way within 30 s
sz=${HS_TMP_SIZE:-0}
kill -HUP "$PROXY_PID"       # stall
[ $streaming -eq 1 ] &&
	echo "info: stalled with $((sz / 1024 / 1024)) MiB of 200 on the standby" ||
	hs_bad "could not catch the 200 MiB transfer in flight"
echo "10.1.1.1 stalled-edit" >>"$S/etc/hosts"
noticed=0
t0=$(hs_now_ms)
if hs_wait_log "$T/primary.log" "reconnecting" $((drops + 1)) 20; then
	hs_ok "stall mid-transfer: the primary declared the standby gone (after $(($(hs_now_ms) - t0)) ms)"
	noticed=1
else
	hs_bad "stall mid-transfer: the primary did not notice within 20 s (4 x peer_timeout)"
	tail -3 "$T/primary.log"
fi
kill -HUP "$PROXY_PID"       # stall over
hs_wait_same "stall mid-transfer, then healed" 120 $SOURCES
if [ $noticed -eq 1 ]; then
	[ "$(hs_count_log "$T/primary.log" "connected to standby")" -gt "$conns" ] &&
		hs_ok "stall mid-transfer: the primary logged the reconnection" ||
		hs_bad "stall mid-transfer: no reconnection in the primary log"
elif [ "$(hs_count_log "$T/primary.log" "reconnecting")" -eq "$drops" ]; then
	echo "info: the stalled session simply resumed after the stall"
fi
rm -f "$I/stall-big.img"

# --- 5. a standby restart (SIGTERM, start again) ----------------------------
conns=$(hs_count_log "$T/primary.log" "connected to standby")
hs_stop_standby
echo "made while the standby was stopped" >"$I/standby-stopped.txt"
mv "$I/postscripts.cut" "$I/postscripts"
restart_standby
hs_wait_same "standby restarted (SIGTERM, start): the primary catches up" \
	60 $SOURCES
[ "$(hs_count_log "$T/primary.log" "connected to standby")" -gt "$conns" ] &&
	hs_ok "standby restart: the primary reconnected by itself" ||
	hs_bad "standby restart: no reconnection in the primary log"
echo "after the restart" >"$I/after-restart.txt"
hs_wait_same "changes flow again after the standby restart" 10 $SOURCES

# --- 6. the standby's session processes stopped and continued ---------------
# (kill -STOP / -CONT, or a debugger attaching): with socket timeouts set,
# the kernel fails the blocked read with EINTR instead of restarting it;
# that is no reason to end the session
conns=$(hs_count_log "$T/primary.log" "connected to standby")
ended=$(hs_count_log "$T/standby.log" "session ended")
kids=$(ps -o pid= --ppid "$STANDBY_PID" 2>/dev/null | tr -d ' ' | tr '\n' ' ')
if [ -n "$kids" ]; then
	# shellcheck disable=SC2086
	kill -STOP $kids
	sleep 0.3
	# shellcheck disable=SC2086
	kill -CONT $kids
	sleep 0.3
	echo "after a stop and continue" >"$I/after-stop-cont.txt"
	hs_wait_same "changes flow after the standby's session was stopped and continued" \
		10 $SOURCES
	if [ "$(hs_count_log "$T/standby.log" "session ended")" -eq "$ended" ] &&
		[ "$(hs_count_log "$T/primary.log" "connected to standby")" -eq "$conns" ]; then
		hs_ok "stop and continue: the same session goes on"
	else
		hs_bad "stop and continue ended the session: $(grep 'session ended' "$T/standby.log" | tail -1)"
	fi
else
	hs_bad "no standby session process to stop"
fi

kill -0 "$PRIMARY_PID" 2>/dev/null && hs_ok "primary still running" ||
	hs_bad "primary died"
hs_signal TERM "$PRIMARY_PID"
hs_wait_gone "$PRIMARY_PID" 150 && hs_ok "primary stopped on SIGTERM" ||
	hs_bad "primary did not stop on SIGTERM"

if [ "$HS_FAILED" -gt 0 ]; then
	echo "--- primary log (tail)"
	tail -40 "$T/primary.log"
	echo "--- standby log (tail)"
	tail -20 "$T/standby.log"
	echo "--- proxy log (tail)"
	tail -20 "$T/proxy.log"
fi
hs_result test_daemon_faults
