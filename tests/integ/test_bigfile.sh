#!/usr/bin/env bash
# Big files go through two threads on each side: the primary's reader
# (read + hashes ahead of the TLS writes, primary/sendahead.c) and the
# standby's writer (standby/applywr.c).  Their error paths:
#  1. a new file that shrinks while it is read: one line, nothing of it on
#     the standby, the next sync brings it;
#  2. a new file deleted while it is read: one line, nothing on the standby;
#  3. the standby's disk fills up in the middle of a big file (a 36 MiB
#     tmpfs in the standby's own mount namespace; needs root): the file
#     fails with one line, nothing half-written appears, the other files
#     arrive, and after the tmpfs grows the next sync completes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

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
hs_sync_check "seed: big files equal" "$S/big"

# The primary sends slowly from here on: a new file (sent whole, so
# through the reader thread; a file the standby has goes as a delta) is
# changed while it is read.
sed -i "/^\[node\]/a bwlimit = 4M" "$C1"

# mid_read NAME ACTION WHAT: sync while ACTION changes new file NAME
# mid-transfer; one line, nothing of it on the standby, the next sync
# brings what is there now.
mid_read() {
	local f=$S/big/$1 spid n
	head -c $((24 * 1024 * 1024)) /dev/urandom >"$f"
	hs_sync &
	spid=$!
	if hs_wait_transfer "$T/standby$S/big" 1024 10; then eval "$2"; else hs_bad "$3: the transfer did not start"; fi
	wait "$spid" || true
	n=$(grep -c "$1: changed while being read; the standby keeps its previous copy" "$T/sync.err" || true)
	if [ "$n" = 1 ]; then hs_ok "$3: one line"; else
		hs_bad "$3: $n lines: $(cat "$T/sync.err" "$T/sync.out")"; fi
	if [ ! -e "$T/standby$f" ] &&
		[ -z "$(find "$T/standby$S/big" -name '.hamnsync-tmp.*')" ]; then
		hs_ok "$3: nothing of it on the standby"
	else
		hs_bad "$3: a copy or temporary is on the standby"
	fi
	hs_sync
	hs_sync_check "$3: next sync equal" "$S/big"
}
mid_read e.iso 'truncate -s $((2 * 1024 * 1024)) "$f"' "shrink"
mid_read f.iso 'rm "$f"' "delete"
sed -i '/^bwlimit/d' "$C1"

# 3. disk full on the standby, in its own mount namespace
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
	hs_stop_standby
	mkdir -p "$T/full"
	sed "s|^target_root = .*|target_root = $T/full|" "$C2" >"$T/mn2-full.conf"
	cp "$C1" "$T/mn1-full.conf" # the primary's copy stays at P
	rm -rf "$T/state1" "$T/state2"
	mkdir -p "$T/state1" "$T/state2"
	head -c $((16 * 1024 * 1024)) /dev/urandom >"$S/big/d.iso"
	unshare -m --propagation private bash -c \
		"mount -t tmpfs -o size=36m tmpfs '$T/full' && exec '$HS_BIN' -c '$T/mn2-full.conf' daemon --foreground" \
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
	if [ "$SYNC_RC" = 1 ] && [ "$(grep -c "write failed" "$T/sync.err")" = 1 ] &&
		grep -q "d.iso.*write failed" "$T/sync.err"; then
		hs_ok "full: the big file fails with a line"
	else
		hs_bad "full: rc $SYNC_RC: $(cat "$T/sync.err")"
	fi
	if in_ns test ! -e "$T/full$S/big/d.iso" &&
		[ -z "$(in_ns find "$T/full" -name '.hamnsync-tmp.*')" ]; then
		hs_ok "full: nothing half-written"
	else
		hs_bad "full: a partial file or temporary is left"
	fi
	if in_ns cmp -s "$S/big/small.txt" "$T/full$S/big/small.txt"; then
		hs_ok "full: the small file arrived"; else hs_bad "full: small file missing"; fi
	in_ns mount -o remount,size=128m "$T/full"
	C1=$T/mn1-full.conf hs_sync
	# the oracle, inside the standby's mount namespace
	full_compare() {
		local out
		out=$(in_ns rsync -naic --numeric-ids --modify-window=-1 \
			--delete "$1/" "$T/full$1/" 2>&1)
		[ -z "$out" ] || { echo "$out" | head -20 >&2; return 1; }
	}
	HS_STANDBY_CONF=$T/mn2-full.conf HS_COMPARE_FN=full_compare \
		hs_sync_check "full: after growing, equal" "$S/big"
else
	hs_bad "full: needs root and unshare -m"
fi

hs_result test_bigfile
