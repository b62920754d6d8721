#!/usr/bin/env bash
# The two lanes weigh each other's deletions.  A scoped run counted its
# deletions into the guard's window only when it ended, and took its
# share of the window when it began: deletions the express lane sent
# while a bulk run of the same set streamed a big file (or the reverse)
# were weighed alone, so 30 of 40 files went in two halves of 15.
#   1. one set of 40 files is seeded;
#   2. with the primary stopped, 15 are removed and a big file is added:
#      started again, its one scoped run (the index comparison) deletes
#      the 15 and streams the file (bwlimit makes it take seconds);
#   3. while it streams, 15 more are removed: the deletion is held back,
#      the primary says the set is held, and the standby keeps them.
# Ordering is asserted, never wall-clock time.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BIG_MIB=24
BW_MIB=4

hs_init guard_lanes
D=$T/src/data
mkdir -p "$D/sub"
for i in $(seq 1 40); do echo "file $i" >"$D/sub/f$i"; done
hs_setup_pair "
[path data]
source = $D"
sed -i "s/^peer_timeout = 5s$/&\nbwlimit = ${BW_MIB}M/" "$C1"
grep -q "^bwlimit = ${BW_MIB}M" "$C1" || hs_fail "bwlimit not set in $C1"
BIGCOPY=$T/standby$D/big.iso
SUB=$T/standby$D/sub

hs_start_standby
hs_start_primary
hs_wait_same "seeded" 60 "$D"
[ "$HS_SAME" -eq 1 ] || hs_fail "no seed: $(tail -5 "$T/primary.log")"

# Stopped, so that the deletions and the file go in one run.
kill "$PRIMARY_PID"
hs_wait_gone "$PRIMARY_PID" 150 || hs_fail "the primary did not stop"
rm -f $(seq -f "$D/sub/f%g" 1 15)
head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$D/big.iso"
hs_start_primary
hs_wait_transfer "$T/standby$D" -1 30 ||
	hs_fail "no transfer of big.iso under way: $(tail -5 "$T/primary.log")"
for ((i = 0; i < 600; i++)); do
	[ "$(find "$SUB" -type f | wc -l)" -le 25 ] && break
	sleep 0.05
done
left=$(find "$SUB" -type f | wc -l)
hs_size_is "$BIGCOPY" $((BIG_MIB * 1024 * 1024)) &&
	hs_fail "big.iso arrived before the first 15 deletions: nothing tested"
[ "$left" -eq 25 ] &&
	hs_ok "the first 15 deletions are mirrored while big.iso streams" ||
	hs_fail "the standby holds $left files, not 25: nothing tested"

rm -f $(seq -f "$D/sub/f%g" 16 30)
for ((i = 0; i < 600; i++)); do
	if hs_size_is "$BIGCOPY" $((BIG_MIB * 1024 * 1024)); then
		hs_bad "big.iso complete before set data was held"
		break
	fi
	hs_status "$C1" "$T/held.json"
	if python3 "$HS_CLAIM" expect "$T/held.json" \
		'[p["state"] for p in d["paths"]] == ["held"]' >/dev/null 2>&1; then
		hs_ok "30 of 40 in two halves: the primary says set data is held"
		break
	fi
	sleep 0.05
done
[ "$i" -lt 600 ] || hs_bad "set data never held"
# The watcher sees the 15 removals one by one, and the express lane may
# mirror the first few of them before the rest arrive: that is the guard
# working (at most max_delete_percent of the set goes).  What the guard
# promises: no more than 20 of the 40 are ever mirrored, and the hold
# weighs both halves (more than 20 counted together).
hs_wait_log "$T/primary.log" "holding back the deletion of" 1 30 ||
	hs_bad "no hold in the log"
held=$(grep -m1 -o 'holding back the deletion of [0-9]* of 40' \
	"$T/primary.log" | awk '{print $6}')
[ "${held:-0}" -gt 20 ] &&
	hs_ok "the log weighs the two halves together ($held of 40)" ||
	hs_bad "the hold counted ${held:-nothing} of 40: $(grep -m2 'holding back' "$T/primary.log" || true)"
kept=$(find "$SUB" -type f | wc -l)
[ "$kept" -ge 20 ] &&
	hs_ok "the standby keeps $kept of 40: at most half was mirrored" ||
	hs_bad "the standby holds $kept files: more than half was mirrored"
hs_result test_guard_lanes
