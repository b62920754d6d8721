#!/usr/bin/env bash
# The delete guard holds right after the seed.  A scoped run weighs its
# deletions against the set's size at the last whole run; that size was
# the standby's file count, which is 0 at the seed, so until the next
# whole run or restart a mass deletion was mirrored with no hold.
#   1. the daemon seeds a set of 40 files;
#   2. 30 of them are removed at once: the deletion is held back, the
#      standby keeps them, status says the set is held;
#   3. the daemon stopped, `sync --allow-deletes SET` mirrors it, and the
#      daemon started again says in sync with equal trees.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

hs_init guard_seed
D=$T/src/data
mkdir -p "$D/sub"
for i in $(seq 1 40); do echo "file $i" >"$D/sub/f$i"; done
hs_setup_pair "
[path data]
source = $D"

hs_start_standby
hs_start_primary
hs_wait_same "seeded by the daemon" 60 "$D"
[ "$HS_SAME" -eq 1 ] || hs_fail "no seed, giving up"

# No whole run in between: the first change after the seed.
rm -f $(seq -f "$D/sub/f%g" 1 30)
hs_wait_log "$T/primary.log" "holding back the deletion" 1 30 &&
	hs_ok "the deletion of 30 of 40 files is held back" ||
	hs_bad "the deletion of 30 of 40 files was not held back"
hs_wait_status "the primary says set data is held" 10 "$C1" \
	'[p["state"] for p in d["paths"]] == ["held"]'
kept=$(find "$T/standby$D/sub" -type f | wc -l)
[ "$kept" -gt 10 ] &&
	hs_ok "the standby keeps $((kept - 10)) of the deleted files" ||
	hs_bad "the standby holds $kept files: the deletion was mirrored"

kill "$PRIMARY_PID"
hs_wait_gone "$PRIMARY_PID" 150 || hs_fail "the primary did not stop"
hs_sync --allow-deletes data
[ "$SYNC_RC" -eq 0 ] && hs_ok "sync --allow-deletes data mirrors it" ||
	hs_bad "sync --allow-deletes: exit $SYNC_RC: $(head -2 "$T/sync.err")"
hs_start_primary
hs_wait_same "released: in sync, the deletion mirrored" 60 "$D"
[ "$(find "$T/standby$D/sub" -type f | wc -l)" -eq 10 ] &&
	hs_ok "the standby holds the 10 files left" ||
	hs_bad "the standby holds $(find "$T/standby$D/sub" -type f | wc -l) files, not 10"

hs_result test_guard_seed
