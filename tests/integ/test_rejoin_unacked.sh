#!/bin/bash
# test_rejoin_unacked.sh - the aftermath of a promote that came between a
# run's apply on the standby and its acknowledgement on the primary (what
# a promote right after the trees look equal can meet): the old primary
# mn1 holds an edit that its record says was never acknowledged, the new
# primary mn2 holds the same edit.  rejoin on mn1 moves the edit aside
# (kept, listed), and mn2, which reads its copy of each path P at its
# target_root + P, sends its own version back: the pair converges and
# status says so.  mn1's copy of P is P (target_root /), mn2's is under
# $T/standby: a new primary that read P itself would find nothing there.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

HS_NODE=${HS_TOOLS:-$top/build/bin}/hs-node

hs_init rejoin_unacked
hs_gen_tree "$T/src"
hs_setup_pair "$(hs_sets_for "$T/src")"
sed -i "s|^target_root = .*|target_root = /|" "$C1"
SOURCES=$(hs_all_sources "$T/src")
HOSTS=$T/src/etc/hosts

# 1. The pair replicates, mn1 primary.
hs_start_standby
hs_start_primary
hs_wait_same "the pair replicates, mn1 primary" 60 $SOURCES
hs_stop_primary
hs_stop_standby

# 2. An edit applied on the standby whose acknowledgement the primary
# never read: on both copies, newer than mn1's record.  mn2 was promoted
# (epoch 1), mn1 fenced by it.
printf 'added before the promote\n' >>"$HOSTS"
cp -p "$HOSTS" "$T/standby$HOSTS"
SUM=$(sha256sum <"$HOSTS")
"$HS_NODE" "$T/state2" primary 1 0 >/dev/null
"$HS_NODE" "$T/state1" primary 0 1 >/dev/null

# 3. Both daemons run: mn2 as the new primary, mn1 as the fenced one.
"$HS_BIN" -c "$C2" daemon --foreground >>"$T/mn2.log" 2>&1 &
MN2_PID=$!
HS_PIDS+=("$MN2_PID")
hs_wait_log "$T/mn2.log" "replicating" 1 30 ||
	hs_fail "mn2 did not start as primary: $(tail -3 "$T/mn2.log")"
"$HS_BIN" -c "$C1" daemon --foreground >>"$T/mn1.log" 2>&1 &
MN1_PID=$!
HS_PIDS+=("$MN1_PID")
hs_wait_status "mn1 runs as the fenced primary" 30 "$C1" \
	'd["role"] == "primary" and any("rejoin" in w["text"] for w in d["warnings"] if w["severity"] == "critical")'

# 4. rejoin on mn1: the unacknowledged edit is moved aside, whole.
set +e
"$HS_BIN" -c "$C1" rejoin >"$T/rj.out" 2>"$T/rj.err"
rc=$?
set -e
[ "$rc" -eq 0 ] && hs_ok "rejoin of mn1 exits 0" ||
	hs_bad "rejoin of mn1 exited $rc: $(cat "$T/rj.err")"
KEPT=$T/state1/rejoin-1$HOSTS
if hs_has -Fx "rejoin: moved aside: $HOSTS" "$T/rj.out" &&
	hs_has -Fx "$HOSTS" "$T/state1/rejoin-1/LIST" &&
	[ "$(sha256sum <"$KEPT")" = "$SUM" ]; then
	hs_ok "the unacknowledged edit is kept in rejoin-1 and listed"
else
	hs_bad "the unacknowledged edit was not kept: $(cat "$T/rj.out")"
fi
hs_expect_status "mn1 is a standby at epoch 1" "$C1" \
	'd["daemon"] == "running" and d["role"] == "standby" and d["epoch"] == 1'

# 5. mn2 sends what it holds: mn1 gets the edit back, status agrees.
HS_PRIMARY_CONF=$C2 HS_STANDBY_CONF=$C1 STANDBY_PID=$MN1_PID \
	hs_wait_converge "mn1 caught up with the new primary" 60 \
	'd["role"] == "primary" and d["epoch"] == 1' $SOURCES
HS_PRIMARY_CONF=$C2 HS_STANDBY_CONF=$C1 STANDBY_PID=$MN1_PID \
	hs_wait_same "mn2 says the pair is in sync" 60 $SOURCES
[ "$(sha256sum <"$HOSTS" 2>/dev/null)" = "$SUM" ] &&
	hs_ok "mn1's copy holds the edit again, from mn2" ||
	hs_bad "mn1's copy of $HOSTS is not the edited one"
if hs_has -F "source missing on the primary" "$T/mn2.log"; then
	hs_bad "mn2 read a path it does not hold: $(grep -m1 -F 'source missing' "$T/mn2.log")"
else
	hs_ok "mn2 found every source in its own copy"
fi

hs_result test_rejoin_unacked
