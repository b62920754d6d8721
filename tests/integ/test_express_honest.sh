#!/usr/bin/env bash
# The express lane's held and failed paths count.  Its runs ignored the
# held and failed counts of their reports: a deletion it held back or a
# path the standby could not apply left the set "catching-up" (its paths
# wait for the bulk lane) until the long bulk run was over, never "held"
# or "error".  While a big file streams in one set (bwlimit makes it take
# seconds), in a second set:
#   1. a file whose copy on the standby cannot be replaced (chattr +i)
#      is edited: the express lane fails it, and the primary says the set
#      is in error while the big file is still in flight; unlocked, the
#      bulk lane's run of the set applies it with no signal;
#   2. 30 of its 40 files are removed at once: the express lane holds the
#      deletion back, and the primary says the set is held while the big
#      file is still in flight; the standby keeps the files.
# Ordering is asserted, never wall-clock time.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BIG_MIB=24
BW_MIB=4

hs_init express_honest
S=$T/src
D=$S/data
mkdir -p "$S/big" "$D/sub"
head -c 100000 /dev/urandom >"$S/big/seed.bin"
for i in $(seq 1 40); do echo "file $i" >"$D/sub/f$i"; done
hs_setup_pair "
[path big]
source = $S/big

[path data]
source = $D"
sed -i "s/^peer_timeout = 5s$/&\nbwlimit = ${BW_MIB}M/" "$C1"
grep -q "^bwlimit = ${BW_MIB}M" "$C1" || hs_fail "bwlimit not set in $C1"
BIGCOPY=$T/standby$S/big
LOCKED=$T/standby$D/sub/f35
# A copy left immutable would outlive the test's folder.
unlock_cleanup() {
	local rc=$?
	chattr -i "$LOCKED" 2>/dev/null || true
	set +e
	(exit $rc)
	hs_cleanup
}
trap unlock_cleanup EXIT

hs_start_standby
hs_start_primary
hs_wait_same "seeded" 120 "$S/big" "$D"
[ "$HS_SAME" -eq 1 ] || hs_fail "no seed: $(tail -5 "$T/primary.log")"
chattr +i "$LOCKED" ||
	hs_fail "needs chattr +i on $T (root, a filesystem that has it)"
chattr -i "$LOCKED"

# stream NAME: a big file in set big; waits (bounded) until it flows.
stream() {
	head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$S/big/$1"
	hs_wait_transfer "$BIGCOPY" -1 15 && return 0
	hs_fail "no transfer of $1 under way: $(tail -5 "$T/primary.log")"
}

# before_big NAME FILE STATE: the primary says set data is STATE before
# the standby's copy of big/FILE is complete.
before_big() {
	local i
	for ((i = 0; i < 600; i++)); do
		if hs_size_is "$BIGCOPY/$2" $((BIG_MIB * 1024 * 1024)); then
			hs_bad "$1: big/$2 complete before set data was $3"
			return 0
		fi
		hs_status "$C1" "$T/before.json"
		if python3 "$HS_CLAIM" expect "$T/before.json" \
			"[p[\"state\"] for p in d[\"paths\"] if p[\"name\"] == \"data\"] == [\"$3\"]" \
			>/dev/null 2>&1; then
			hs_size_is "$BIGCOPY/$2" $((BIG_MIB * 1024 * 1024)) && hs_bad "$1: said after big/$2 was complete" ||
				hs_ok "$1 (big/$2 still in flight)"
			return 0
		fi
		sleep 0.05
	done
	hs_bad "$1: set data never $3"
}

# 1. A path the express lane cannot apply.
chattr +i "$LOCKED"
stream stream1.iso
echo "edited" >"$D/sub/f35"
before_big "failed on the standby: the primary says set data is in error" \
	stream1.iso error
grep -q "express lane to standby .* open" "$T/primary.log" &&
	hs_ok "the express lane carried it" ||
	hs_bad "no express lane in the primary's log"
chattr -i "$LOCKED"
hs_wait_same "unlocked: the bulk lane applies it" 120 "$S/big" "$D"

# 2. A deletion the express lane holds back.
stream stream2.iso
rm -f $(seq -f "$D/sub/f%g" 1 30)
before_big "held back: the primary says set data is held" stream2.iso held
kept=$(find "$T/standby$D/sub" -type f | wc -l)
[ "$kept" -gt 10 ] &&
	hs_ok "the standby keeps $((kept - 10)) of the deleted files" ||
	hs_bad "the standby holds $kept files: the deletion was mirrored"

hs_result test_express_honest
