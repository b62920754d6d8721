#!/usr/bin/env bash
# A standby stores the epoch of the primary it replicates from, so that a
# promote raises the epoch above that primary's even when the primary is
# dead and cannot be asked.  Without it, a standby rebuilt at epoch 0
# beside a primary at epoch 2 was promoted to epoch 1: the old primary,
# back, fenced the new one and the pair rolled back.
#   1. mn1 is staged as primary at epoch 2 (hs-node), mn2 is a new
#      standby (epoch 0); they replicate: mn2's index says epoch 2;
#   2. mn1 is killed; promote on mn2 (its preflight cannot reach mn1)
#      gives epoch 3;
#   3. mn1 restarts as primary at epoch 2: it is the one fenced, and
#      mn2 stays primary with its tree unchanged.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
HS_TOOLS=${HS_TOOLS:-$top/build/bin}
NODE=$HS_TOOLS/hs-node

hs_init epoch_adopt
D=$T/src/data
mkdir -p "$D"
for i in $(seq 1 10); do echo "file $i" >"$D/f$i"; done
hs_setup_pair "
[path data]
source = $D"
"$NODE" "$T/state1" primary 2 0 || hs_fail "hs-node could not stage mn1"
hs_start_standby
hs_start_primary
hs_wait_same "the pair replicates" 60 "$D"
[ "$HS_SAME" -eq 1 ] || hs_fail "no seed, giving up"
hs_expect_status "the standby shows epoch 2, its primary's" "$C2" \
	'd["epoch"] == 2 and d["role"] == "standby"'
[ "$("$NODE" "$T/state2")" = "standby 2 0" ] &&
	hs_ok "the standby's index holds epoch 2 (hs-node: standby 2 0)" ||
	hs_bad "the standby's node state: $("$NODE" "$T/state2" 2>&1)"

hs_stop_pid "$PRIMARY_PID" KILL || true
"$HS_BIN" -c "$C2" promote >"$T/promote.out" 2>"$T/promote.err" &&
	hs_ok "promote with the primary dead: exit 0" ||
	hs_bad "promote exited $?: $(cat "$T/promote.out" "$T/promote.err")"
[ "$("$NODE" "$T/state2")" = "primary 3 0" ] &&
	hs_ok "the new primary is at epoch 3, above the dead one's 2" ||
	hs_bad "the new primary's node state: $("$NODE" "$T/state2" 2>&1)"
hs_snapshot "$T/standby" >"$T/new-before.snap"

echo "edited on the old primary" >"$D/f1"
hs_start_primary
if hs_wait_log "$T/primary.log" "is primary at epoch 3, newer than this node's 2: fenced" 1 30; then
	hs_ok "the old primary, back at epoch 2, is the one fenced"
else
	hs_bad "the old primary was not fenced: $(tail -5 "$T/primary.log")"
fi
[ "$("$NODE" "$T/state1")" = "primary 2 1" ] &&
	hs_ok "its fence is stored (hs-node: primary 2 1)" ||
	hs_bad "the old primary's node state: $("$NODE" "$T/state1" 2>&1)"
hs_expect_status "mn2 stays primary at epoch 3" "$C2" \
	'd["role"] == "primary" and d["epoch"] == 3'
hs_wait_status "the old primary's status says it needs rejoin" 20 "$C1" \
	'any(w["severity"] == "critical" and "needs rejoin" in w["text"] for w in d["warnings"])'
hs_snapshot "$T/standby" >"$T/new-after.snap"
cmp -s "$T/new-before.snap" "$T/new-after.snap" &&
	hs_ok "no file of the new primary changed" ||
	hs_bad "the new primary's tree changed: $(diff "$T/new-before.snap" "$T/new-after.snap" | head -5)"
hs_result test_epoch_adopt
