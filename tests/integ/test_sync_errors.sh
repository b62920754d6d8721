#!/usr/bin/env bash
# A `sync` that ends in errors leaves an index that opens (issue 14, items
# 1 and 8).  LMDB's meta page may name a last page past the end of
# data.mdb (pages allocated and freed within one transaction are never
# written); the probe took that for damage, and after a sync with errors
# the next sync exited 2, the daemon refused to start and status said
# UNKNOWN.  Each way a sync can end in errors is walked here, and after
# each the primary's index must open for every command that opens it:
# `sync` (exit 1, differences listed, never 2), `status --json` (never
# UNKNOWN), the daemon's start (it compares its sources with the index)
# and its clean stop (which probes the index to mark it clean).  Ways:
#   - a standby file that cannot be replaced, small and big (chattr +i;
#     where the filesystem has no such flag, a read-only bind mount of
#     its directory in the standby's own mount namespace),
#   - a standby directory nothing can be created in or deleted from,
#   - a standby disk that ran full (a small tmpfs as target_root, in a
#     mount namespace this test creates): a new file, a delta and a big
#     file's changed blocks fail with ENOSPC, and the failure is named as
#     such, never "malformed delta".
#   - deletions held back (more than max_delete_percent of the set),
#   - the standby killed in the middle of a transfer (exit 3).
# Then the faults go away and one sync converges (rsync -c as the oracle).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null ||
	hs_fail "needs root and unshare -m (mount namespaces for the full disk)"

hs_init sync_errors
D=$T/src/data
mkdir -p "$D/sub" "$D/big" "$D/locked"
for i in $(seq 1 40); do echo "file $i" >"$D/sub/f$i"; done
for i in 1 2 3; do head -c $((200 * 1024)) /dev/urandom >"$D/sub/m$i"; done
for i in 1 2; do head -c $((3 * 1024 * 1024)) /dev/urandom >"$D/big/b$i"; done
for i in 1 2 3; do echo "locked $i" >"$D/locked/l$i"; done
hs_setup_pair "
[path data]
source = $D"

# The standby runs in a mount namespace of its own (its mounts are gone
# with it): hs_start_standby_ns, hs_in_standby_ns.

# next_opens NAME [RC]: after a sync that ended in errors (exit RC,
# default 1), every command that opens the primary's index works.
next_opens() {
	local name=$1 want=${2:-1} rc
	if [ "$SYNC_RC" -eq "$want" ] && ! grep -q "is damaged" "$T/sync.err"; then
		hs_ok "$name: sync exits $want and says why"
	else
		hs_bad "$name: sync rc $SYNC_RC: $(tail -5 "$T/sync.err")"
	fi
	hs_sync
	if [ "$SYNC_RC" -eq "$want" ] && ! grep -q "is damaged" "$T/sync.err"; then
		hs_ok "$name: the next sync opens the index (exit $want: the fault stays)"
	else
		hs_bad "$name: next sync rc $SYNC_RC: $(tail -5 "$T/sync.err")"
	fi
	set +e
	"$HS_BIN" -c "$C1" status --json >"$T/status.out" 2>"$T/status.err"
	rc=$?
	set -e
	if [ "$rc" -ne 3 ] && ! grep -q "is damaged" "$T/status.err" &&
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["role"] == "primary" and d["daemon"] == "stopped"' \
			"$T/status.out" 2>/dev/null; then
		hs_ok "$name: status reads the index (exit $rc, daemon stopped)"
	else
		hs_bad "$name: status rc $rc: $(head -c 300 "$T/status.out") $(cat "$T/status.err")"
	fi
	: >"$T/primary.log"
	hs_start_primary
	if hs_wait_log "$T/primary.log" "sources compared with the index" 1 60 &&
		kill -0 "$PRIMARY_PID" 2>/dev/null; then
		hs_ok "$name: the daemon starts on the index"
	else
		hs_bad "$name: the daemon did not start: $(tail -5 "$T/primary.log")"
	fi
	# Its stop probes the index to mark it clean (when it was not
	# written in the last 2 s): no damage there either.
	sleep 3
	kill "$PRIMARY_PID" 2>/dev/null || true
	hs_wait_gone "$PRIMARY_PID" 150 || hs_bad "$name: the daemon did not stop"
	if ! grep -q "is damaged" "$T/primary.log"; then
		hs_ok "$name: the daemon's stop finds its index whole"
	else
		hs_bad "$name: $(grep "is damaged" "$T/primary.log" | head -1)"
	fi
}

hs_start_standby_ns "$C2" ""
hs_sync
hs_sync_check "seed sync" "$D"
[ "$HS_SAME" = 1 ] || hs_fail "the seed sync did not converge"

# 1. Standby files and a directory that cannot be changed.  chattr +i
# where the filesystem has it, else read-only bind mounts (the standby's
# namespace only: the test's own view stays writable).
S=$T/standby$D
if chattr +i "$S/sub/f1" 2>/dev/null; then
	chattr -i "$S/sub/f1"
	lock() { chattr +i "$@"; }
	unlock() { chattr -i "$@"; }
	lock_how="chattr +i"
else
	# A bind mount of a file or directory onto itself, remounted ro.
	lock() {
		local p
		for p; do
			hs_in_standby_ns mount --bind "$p" "$p"
			hs_in_standby_ns mount -o remount,bind,ro "$p"
		done
	}
	unlock() {
		local p
		for p; do hs_in_standby_ns umount "$p"; done
	}
	lock_how="read-only bind mounts"
fi
# (the flag would keep the cleanup from removing them)
trap 'rc=$?; unlock "$S/sub/f2" "$S/big/b1" "$S/locked" 2>/dev/null || true
	(exit $rc); hs_cleanup' EXIT
lock "$S/sub/f2" "$S/big/b1" "$S/locked"
echo "changed on the primary" >>"$D/sub/f2"
printf 'changed block' | dd of="$D/big/b1" bs=1 seek=1500000 conv=notrunc status=none
echo "new in a locked directory" >"$D/locked/new"
rm "$D/locked/l1"
echo "changed, not locked" >>"$D/sub/f3"
hs_sync
grep -q "f2" "$T/sync.err" && grep -q "b1" "$T/sync.err" &&
	grep -q "locked/new" "$T/sync.err" &&
	hs_ok "files that cannot be replaced ($lock_how): each named" ||
	hs_bad "not every failed path named: $(cat "$T/sync.err")"
cmp -s "$D/sub/f3" "$S/sub/f3" && hs_ok "the other change arrived" ||
	hs_bad "sub/f3 did not arrive"
next_opens "locked files ($lock_how)"
unlock "$S/sub/f2" "$S/big/b1" "$S/locked"
trap hs_cleanup EXIT
hs_sync
hs_sync_check "unlocked: one sync converges" "$D"

# 2. Deletions held back: more than max_delete_percent (50) of the set.
for i in $(seq 1 40); do rm "$D/sub/f$i"; done
hs_sync
grep -q "held" "$T/sync.out" "$T/sync.err" &&
	hs_ok "held deletions: reported" ||
	hs_bad "held deletions: $(cat "$T/sync.out" "$T/sync.err")"
next_opens "held deletions"
hs_sync --allow-deletes data
hs_sync_check "held deletions: --allow-deletes converges" "$D"

# 3. The standby gone in the middle of a transfer (SIGKILL): sync exits 3.
sed -i "/^\[node\]/a bwlimit = 2M" "$C1"
head -c $((16 * 1024 * 1024)) /dev/urandom >"$D/big/huge"
set +e
"$HS_BIN" -c "$C1" sync >"$T/sync.out" 2>"$T/sync.err" &
spid=$!
mid=0
for ((i = 0; i < 300; i++)); do
	[ -n "$(find "$S/big" -name '.hamnsync-tmp.*' 2>/dev/null)" ] &&
		mid=1 && break
	sleep 0.1
done
kill -9 "$STANDBY_PID"
hs_wait_gone "$STANDBY_PID" 100 || hs_fail "the standby did not die"
wait "$spid"
SYNC_RC=$?
set -e
[ "$mid" = 1 ] && hs_ok "the standby was killed while writing big/huge" ||
	hs_bad "no transfer seen under way before the kill"
next_opens "standby killed mid-transfer" 3
sed -i '/^bwlimit/d' "$C1"
hs_start_standby_ns "$C2" ""
hs_sync
hs_sync_check "standby back: one sync converges" "$D"
[ -z "$(find "$S" -name '.hamnsync-tmp.*')" ] &&
	hs_ok "standby back: no temporary left" ||
	hs_bad "standby back: temporaries left: $(find "$S" -name '.hamnsync-tmp.*')"

# 4. A standby disk that ran full.  target_root on a 48 MiB tmpfs in the
# standby's namespace; seeded, then filled to the last byte.
hs_stop_standby
F=$T/full
mkdir -p "$F"
sed "s|^target_root = .*|target_root = $F|" "$C2" >"$T/mn2-full.conf"
hs_start_standby_ns "$T/mn2-full.conf" "mount -t tmpfs -o size=48m tmpfs '$F' &&"
hs_sync
[ "$SYNC_RC" -eq 0 ] || hs_fail "seed onto the tmpfs: rc $SYNC_RC $(cat "$T/sync.err")"
hs_in_standby_ns sh -c "cat /dev/zero >'$F/filler'" 2>/dev/null || true
[ "$(hs_in_standby_ns df --output=avail -B1 "$F" | tail -1)" -lt 4096 ] ||
	hs_fail "the tmpfs is not full: $(hs_in_standby_ns df -h "$F" | tail -1)"
head -c 300000 /dev/urandom >"$D/sub/new-whole"
printf 'a changed middle' | dd of="$D/sub/m1" bs=1 seek=100000 conv=notrunc status=none
printf 'changed block' | dd of="$D/big/b2" bs=1 seek=2500000 conv=notrunc status=none
hs_sync
if grep -q "new-whole: write failed: No space left on device" "$T/sync.err" &&
	grep -q "sub/m1: write failed: No space left on device" "$T/sync.err"; then
	hs_ok "disk full: the whole file and the delta name ENOSPC"
else
	hs_bad "disk full: $(cat "$T/sync.err")"
fi
if grep -qi "malformed" "$T/sync.err" "$T/standby.log"; then
	hs_bad "a full disk reported as malformed: $(grep -hi malformed "$T/sync.err" "$T/standby.log" | head -2)"
else
	hs_ok "disk full: nothing called malformed"
fi
grep "m1" "$T/standby.log" | hs_has "No space left on device" &&
	hs_ok "disk full: the standby's log names the full disk" ||
	hs_bad "disk full: standby log: $(grep m1 "$T/standby.log" | tail -2)"
if [ -z "$(hs_in_standby_ns find "$F" -name '.hamnsync-tmp.*')" ]; then
	hs_ok "disk full: no temporary file left"
else
	hs_bad "disk full: temporary files left"
fi
next_opens "full disk"
hs_in_standby_ns rm -f "$F/filler"
hs_sync
out=$(hs_in_standby_ns rsync -naiHAXc --numeric-ids --modify-window=-1 --delete "$D/" "$F$D/" 2>&1)
if [ "$SYNC_RC" -eq 0 ] && [ -z "$out" ]; then
	hs_ok "space back: one sync converges"
else
	hs_bad "space back: sync rc $SYNC_RC $out $(tail -5 "$T/sync.err")"
fi
hs_result sync_errors
