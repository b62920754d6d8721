#!/bin/bash
# test_rejoin_symlink_meta.sh - a symlink whose owner or times alone the
# primary changed (touch -h) is set again on the standby in place: its
# ctime moves, and the standby's record of what it wrote must follow,
# or a later rejoin takes that symlink, untouched since, for the node's
# own change and moves it aside.  mn2's copy of P is under $T/standby.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

HS_NODE=${HS_TOOLS:-$top/build/bin}/hs-node

hs_init rejoin_symlink_meta
hs_gen_tree "$T/src"
LINK=$T/src/xcat/cert/current.pem
[ -L "$LINK" ] || hs_fail "the generated tree has no symlink $LINK"
hs_setup_pair "$(hs_sets_for "$T/src")"
sed -i "s|^target_root = .*|target_root = /|" "$C1"
SOURCES=$(hs_all_sources "$T/src")

# 1. The pair replicates; then the symlink's time alone changes.
hs_start_standby
hs_start_primary
hs_wait_same "the pair replicates, mn1 primary" 60 $SOURCES
touch -h -d '2020-01-02 03:04:05' "$LINK"
want=$(stat -c %Y "$LINK")
for ((i = 0; i < 300; i++)); do
	[ "$(stat -c %Y "$T/standby$LINK")" = "$want" ] && break
	sleep 0.1
done
[ "$(stat -c %Y "$T/standby$LINK")" = "$want" ] &&
	hs_ok "the standby's symlink took the primary's time" ||
	hs_bad "the standby's symlink kept its time: $(stat -c %y "$T/standby$LINK")"
hs_wait_same "the pair is in sync again" 60 $SOURCES
hs_stop_primary
hs_stop_standby

# 2. mn2 was promoted (epoch 1), changed nothing, then was fenced by a
# promote of mn1 (epoch 2).
"$HS_NODE" "$T/state2" primary 1 1 >/dev/null
"$HS_NODE" "$T/state1" primary 2 0 >/dev/null
hs_start_primary
"$HS_BIN" -c "$C2" daemon --foreground >>"$T/mn2.log" 2>&1 &
MN2_PID=$!
HS_PIDS+=("$MN2_PID")
hs_wait_status "mn2 runs as the fenced primary" 30 "$C2" \
	'd["role"] == "primary" and any("rejoin" in w["text"] for w in d["warnings"] if w["severity"] == "critical")'

# 3. rejoin on mn2: nothing of its own, so nothing goes aside.
set +e
"$HS_BIN" -c "$C2" rejoin >"$T/rj.out" 2>"$T/rj.err"
rc=$?
set -e
[ "$rc" -eq 0 ] && hs_ok "rejoin of mn2 exits 0" ||
	hs_bad "rejoin of mn2 exited $rc: $(cat "$T/rj.err")"
K=$T/state2/rejoin-2
! [ -e "$K$LINK" ] && ! [ -L "$K$LINK" ] &&
	! grep -qxF "$LINK" "$K/LIST" 2>/dev/null &&
	hs_ok "the symlink whose time mn2 was sent is not moved aside" ||
	hs_bad "the symlink whose time mn2 was sent was moved aside: $(cat "$K/LIST" 2>/dev/null | head -5)"

hs_result test_rejoin_symlink_meta
