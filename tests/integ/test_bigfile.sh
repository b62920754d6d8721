#!/usr/bin/env bash
# Big files go through two threads on each side: the primary's reader
# (read + hashes ahead of the TLS writes, syncd/sendahead.c) and the
# standby's writer (syncd/applywr.c).  Their error paths:
#  1. a file that shrinks while it is read: one line, the standby keeps its
#     previous copy, the next sync brings the new one;
#  2. a file deleted while it is read: one line, the old copy stays until
#     the next sync deletes it;
#  3. the standby's disk fills up in the middle of a big file (a 12 MiB
#     tmpfs in the standby's own mount namespace; needs root): the file
#     fails with one line, nothing half-written appears, the other files
#     arrive, and after the tmpfs grows the next sync completes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }

hs_init bigfile
S=$T/src
mkdir -p "$S/big"
head -c $((24 * 1024 * 1024)) /dev/urandom >"$S/big/a.iso"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$S/big/b.rpm"
echo small >"$S/big/small.txt"
hs_setup_pair "[path big]
source = $S/big"
hs_start_standby

hs_sync
if [ "$SYNC_RC" -eq 0 ] && hs_compare "$S/big"; then ok "seed: big files equal"; else
	bad "seed: rc $SYNC_RC $(cat "$T/sync.err")"; fi

# wait_tmp: until the standby has a temporary with data (bounded, 10 s).
wait_tmp() {
	local i
	for ((i = 0; i < 200; i++)); do
		if [ -n "$(find "$T/standby$S/big" -name '.hamnsync-tmp.*' -size +1k 2>/dev/null)" ]; then
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# The primary sends slowly from here on: the file is changed mid-read.
sed -i "/^\[node\]/a bwlimit = 4M" "$C1"
old=$(sha256sum <"$T/standby$S/big/a.iso")

# 1. shrinks while read
head -c $((24 * 1024 * 1024)) /dev/urandom >"$S/big/a.iso.new"
mv "$S/big/a.iso.new" "$S/big/a.iso"
hs_sync &
spid=$!
if wait_tmp; then truncate -s $((2 * 1024 * 1024)) "$S/big/a.iso"; else
	bad "shrink: the transfer did not start"; fi
wait "$spid" || true
n=$(grep -c "a.iso: changed while being read; the standby keeps its previous copy" "$T/sync.err" || true)
if [ "$n" = 1 ]; then ok "shrink: one line"; else
	bad "shrink: $n lines: $(cat "$T/sync.err" "$T/sync.out")"; fi
if [ "$(sha256sum <"$T/standby$S/big/a.iso")" = "$old" ]; then
	ok "shrink: the standby keeps its previous copy"
else
	bad "shrink: the standby's copy changed"
fi
if [ -z "$(find "$T/standby$S/big" -name '.hamnsync-tmp.*')" ]; then
	ok "shrink: no temporary left"; else bad "shrink: a temporary is left"; fi
hs_sync
if [ "$SYNC_RC" -eq 0 ] && hs_compare "$S/big"; then ok "shrink: next sync equal"; else
	bad "shrink: next sync rc $SYNC_RC $(cat "$T/sync.err")"; fi

# 2. deleted while read
head -c $((24 * 1024 * 1024)) /dev/urandom >"$S/big/c.iso"
hs_sync
old=$(sha256sum <"$T/standby$S/big/c.iso")
head -c $((24 * 1024 * 1024)) /dev/urandom >"$S/big/c.iso.new"
mv "$S/big/c.iso.new" "$S/big/c.iso"
hs_sync &
spid=$!
if wait_tmp; then rm "$S/big/c.iso"; else bad "delete: the transfer did not start"; fi
wait "$spid" || true
n=$(grep -c "c.iso: changed while being read; the standby keeps its previous copy" "$T/sync.err" || true)
if [ "$n" = 1 ]; then ok "delete: one line"; else
	bad "delete: $n lines: $(cat "$T/sync.err" "$T/sync.out")"; fi
if [ "$(sha256sum <"$T/standby$S/big/c.iso")" = "$old" ]; then
	ok "delete: the standby keeps its previous copy"
else
	bad "delete: the standby's copy changed"
fi
hs_sync
if [ "$SYNC_RC" -eq 0 ] && hs_compare "$S/big"; then ok "delete: next sync equal"; else
	bad "delete: next sync rc $SYNC_RC $(cat "$T/sync.err")"; fi
sed -i '/^bwlimit/d' "$C1"

# 3. disk full on the standby, in its own mount namespace
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
	hs_stop_standby
	mkdir -p "$T/full"
	sed "s|^target_root = .*|target_root = $T/full|" "$C2" >"$T/mn2-full.conf"
	sed "s|^target_root = .*|target_root = $T/full|" "$C1" >"$T/mn1-full.conf"
	rm -rf "$T/state1" "$T/state2"
	mkdir -p "$T/state1" "$T/state2"
	head -c $((16 * 1024 * 1024)) /dev/urandom >"$S/big/d.iso"
	unshare -m --propagation private bash -c \
		"mount -t tmpfs -o size=12m tmpfs '$T/full' && exec '$HS_BIN' -c '$T/mn2-full.conf' daemon --foreground" \
		>>"$T/standby.log" 2>&1 &
	STANDBY_PID=$!
	HS_PIDS+=("$STANDBY_PID")
	for ((i = 0; i < 100; i++)); do
		[ "$(grep -c "listening on" "$T/standby.log")" -ge 2 ] && break
		sleep 0.1
	done
	in_ns() { nsenter -t "$STANDBY_PID" -m "$@"; }
	set +e
	"$HS_BIN" -c "$T/mn1-full.conf" sync >"$T/sync.out" 2>"$T/sync.err"
	SYNC_RC=$?
	set -e
	if [ "$SYNC_RC" = 1 ] && [ "$(grep -c "d.iso.*write failed" "$T/sync.err")" = 1 ]; then
		ok "full: the big file fails with a line"
	else
		bad "full: rc $SYNC_RC: $(cat "$T/sync.err")"
	fi
	if in_ns test ! -e "$T/full$S/big/d.iso" &&
		[ -z "$(in_ns find "$T/full" -name '.hamnsync-tmp.*')" ]; then
		ok "full: nothing half-written"
	else
		bad "full: a partial file or temporary is left"
	fi
	if in_ns cmp -s "$S/big/small.txt" "$T/full$S/big/small.txt"; then
		ok "full: the small file arrived"; else bad "full: small file missing"; fi
	in_ns mount -o remount,size=128m "$T/full"
	set +e
	"$HS_BIN" -c "$T/mn1-full.conf" sync >"$T/sync.out" 2>"$T/sync.err"
	SYNC_RC=$?
	set -e
	out=$(in_ns rsync -naic --numeric-ids --modify-window=-1 --delete "$S/big/" "$T/full$S/big/" 2>&1)
	if [ "$SYNC_RC" = 0 ] && [ -z "$out" ]; then ok "full: after growing, equal"; else
		bad "full: after growing rc $SYNC_RC $out $(cat "$T/sync.err")"; fi
else
	bad "full: needs root and unshare -m"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
