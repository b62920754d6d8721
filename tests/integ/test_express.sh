#!/usr/bin/env bash
# test_express.sh - the express lane: small changes overtake a big file.
#
# 1. Session slots on the standby, driven by hs-evilpeer (a primary whose
#    every byte we choose): an express lane needs the session of the same
#    primary; beside it, a second express lane, a third connection and
#    another primary (mn3, also pinned) are told busy.
# 2. Daemons: while a big file streams (bwlimit makes it take seconds),
#    edits of a small file in another set reach the standby before the big
#    file's copy is complete: ordering is asserted, never wall-clock time.
#    With both lanes up, a third connection is busy.
# 3. The express lane's session process on the standby is SIGKILLed while
#    a second big file streams: the bulk lane is not disturbed (its
#    temporary file survives the killed child's clean-up), the lane comes
#    back, and everything converges (rsync oracle); both daemons keep
#    running.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

EVIL=${HS_TOOLS:-$top/build/bin}/hs-evilpeer
[ -x "$EVIL" ] || hs_fail "hs-evilpeer missing ($EVIL): build the tests"

# BIG_MIB at BW_MIB MiB/s: several seconds of transfer, whatever the CPU.
BIG_MIB=24
BW_MIB=4

hs_init express
S=$T/src
mkdir -p "$S/big" "$S/etc"
echo "initial hosts" >"$S/etc/hosts"
head -c 100000 /dev/urandom >"$S/big/seed.bin"
hs_setup_pair "
[path big]
source = $S/big

[path netconf]
source = $S/etc/hosts"
SOURCES="$S/big $S/etc/hosts"
BIGCOPY=$T/standby$S/big
HOSTSCOPY=$T/standby$S/etc/hosts
# The primary paces its sessions, so a big file takes seconds.
sed -i "s/^peer_timeout = 5s$/&\nbwlimit = ${BW_MIB}M/" "$C1"
grep -q "^bwlimit = ${BW_MIB}M" "$C1" || hs_fail "bwlimit not set in $C1"
# A second primary identity, pinned by the standby too.
mkdir -p "$T/pki/mn3" "$T/state3"
FP3=$("$HS_BIN" keygen --out "$T/pki/mn3" --name mn3)
sed -i "s/^peer_fingerprint = .*/&\npeer_fingerprint = $FP3/" "$C2"
C3=$T/mn3.conf
sed -e "s/^name = mn1$/name = mn3/" -e "s#$T/pki/mn1#$T/pki/mn3#" \
	-e "s#$T/state1#$T/state3#" "$C1" >"$C3"

# evil NAME CONF ARGS...: run hs-evilpeer (bounded), output in $T/NAME.out.
evil() {
	local name=$1 conf=$2
	shift 2
	timeout 30 "$EVIL" -c "$conf" "$@" >"$T/$name.out" 2>&1 || true
}

# evil_hold NAME CONF ARGS...: hold a session in the background until
# killed; waits (bounded) until it is open; sets HOLD_PID.
evil_hold() {
	local name=$1 conf=$2 i
	shift 2
	"$EVIL" -c "$conf" "$@" hold 120 >"$T/$name.out" 2>&1 &
	HOLD_PID=$!
	HS_PIDS+=("$HOLD_PID")
	for ((i = 0; i < 100; i++)); do
		grep -qs "session open" "$T/$name.out" && return 0
		kill -0 "$HOLD_PID" 2>/dev/null || break
		sleep 0.1
	done
	return 1
}

expect_busy() {
	if grep -q "BUSY" "$T/$1.out"; then
		hs_ok "$2: told busy"
	else
		hs_bad "$2: not told busy: $(cat "$T/$1.out")"
	fi
}

# ---------------------------------------------------------------- 1. slots
hs_start_standby

evil alone "$C1" --express hold 1
expect_busy alone "an express lane without a session"

if evil_hold h1 "$C1"; then
	hs_ok "a session for mn1"
else
	hs_bad "no session for mn1: $(cat "$T/h1.out")"
fi
H1=$HOLD_PID
if evil_hold h2 "$C1" --express; then
	hs_ok "an express lane beside mn1's session"
else
	hs_bad "no express lane beside mn1's session: $(cat "$T/h2.out")"
fi
H2=$HOLD_PID
evil x2 "$C1" --express hold 1
expect_busy x2 "a second express lane"
evil third "$C1" hold 1
expect_busy third "a third connection"
evil other "$C3" hold 1
expect_busy other "another primary (mn3)"
evil otherx "$C3" --express hold 1
expect_busy otherx "another primary's express lane"
hs_signal TERM "$H1" "$H2"
hs_wait_gone "$H1" 100 || hs_fail "hs-evilpeer $H1 did not stop"
hs_wait_gone "$H2" 100 || hs_fail "hs-evilpeer $H2 did not stop"
kill -0 "$STANDBY_PID" || hs_fail "standby died in part 1"

# ------------------------------------------------------- 2. overtaking
hs_start_primary

# The session children hold the slots (the first one after the seed): the
# standby refuses a third connection until then, so wait for the seed
# (lib.sh's honest wait: status in-sync and promote ready, then compared).
hs_wait_same "seeded" 120 $SOURCES
[ "$HS_SAME" -eq 1 ] || hs_fail "no seed: $(tail -5 "$T/primary.log")"

# edit TOKEN: rewrite the small file; wait (bounded) until its copy holds
# TOKEN; EDIT_OK=1 then.
edit() {
	local i
	EDIT_OK=0
	echo "$1" >"$S/etc/hosts"
	for ((i = 0; i < 1200; i++)); do
		if [ "$(cat "$HOSTSCOPY" 2>/dev/null)" = "$1" ]; then
			EDIT_OK=1
			return 0
		fi
		sleep 0.01
	done
}

head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$S/big/stream1.iso"
hs_wait_transfer "$BIGCOPY" -1 15 || hs_fail "no transfer of stream1.iso under way: $(tail -5 "$T/primary.log")"
# While its run is under way the set is not in-sync, on either node.
hs_expect_status "stream1.iso under way: the primary says set big is not in-sync" \
	"$C1" '[p["state"] for p in d["paths"] if p["name"] == "big"] == ["catching-up"]'
hs_expect_status "stream1.iso under way: the standby is not promote ready" \
	"$C2" 'd["promote_ready"]["ready"] is False'
hs_size_is "$BIGCOPY/stream1.iso" $((BIG_MIB * 1024 * 1024)) && hs_bad "stream1.iso was complete before status was asked"
overtook=0
for k in 1 2 3 4 5; do
	hs_size_is "$BIGCOPY/stream1.iso" $((BIG_MIB * 1024 * 1024)) && break
	edit "edit $k during stream1"
	[ $EDIT_OK -eq 1 ] || { hs_bad "edit $k never reached the standby"; break; }
	hs_size_is "$BIGCOPY/stream1.iso" $((BIG_MIB * 1024 * 1024)) || overtook=$((overtook + 1))
done
if [ $overtook -ge 1 ]; then
	hs_ok "$overtook edits overtook the big file (copy incomplete when they landed)"
else
	hs_bad "no edit overtook the big file"
	grep -i express "$T/primary.log" "$T/standby.log" | tail -5
fi
grep -q "express lane to standby .* open" "$T/primary.log" &&
	hs_ok "the primary logged its express lane" ||
	hs_bad "no express lane in the primary's log"
grep -q "express lane with primary mn1" "$T/standby.log" &&
	hs_ok "the standby logged the express lane" ||
	hs_bad "no express lane in the standby's log"

# Both lanes up (the express lane stays open, pinged): a third is busy.
evil third2 "$C1" hold 1
expect_busy third2 "a third connection beside both lanes"
evil third2x "$C1" --express hold 1
expect_busy third2x "a second express lane beside both lanes"

hs_wait_same "identical after the first big file" 120 $SOURCES

# ------------------------------------------- 3. the express lane killed
XPID=$(grep "express lane with primary mn1" "$T/standby.log" | tail -1 |
	sed -n 's/.*hamnsync\[\([0-9]*\)\].*/\1/p')
head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$S/big/stream2.iso"
hs_wait_transfer "$BIGCOPY" -1 15 || hs_fail "no transfer of stream2.iso under way"
# Only the standby's own child, checked by its parent pid.
if [ -n "$XPID" ] && [ "$(awk '{ print $4 }' "/proc/$XPID/stat" 2>/dev/null)" = "$STANDBY_PID" ]; then
	kill -KILL "$XPID"
	hs_ok "express lane's session process $XPID killed mid-transfer"
else
	hs_bad "no express session process to kill (pid '${XPID}')"
fi
echo "edit after the kill" >"$S/etc/hosts"
sleep 1
edit "edit after the backoff"
[ $EDIT_OK -eq 1 ] || hs_bad "the edit after the kill never reached the standby"
if hs_size_is "$BIGCOPY/stream2.iso" $((BIG_MIB * 1024 * 1024)); then
	echo "info: the bulk lane had finished stream2.iso when the edit landed"
else
	hs_ok "the express lane came back and overtook again"
fi
hs_wait_same "identical after the express lane was killed" 120 $SOURCES
if grep -q "cannot rename into place\|stream2.iso: changed while" "$T/primary.log"; then
	hs_bad "the bulk lane's transfer was disturbed: $(grep 'cannot rename\|stream2.iso: changed' "$T/primary.log" | head -2)"
else
	hs_ok "the bulk lane's transfer was not disturbed by the killed express child"
fi
kill -0 "$PRIMARY_PID" 2>/dev/null && hs_ok "primary still running" ||
	hs_bad "primary died"
kill -0 "$STANDBY_PID" 2>/dev/null && hs_ok "standby still running" ||
	hs_bad "standby died"

if [ "$HS_FAILED" -gt 0 ]; then
	echo "--- primary log (tail)"
	tail -25 "$T/primary.log"
	echo "--- standby log (tail)"
	tail -25 "$T/standby.log"
fi
hs_result test_express
