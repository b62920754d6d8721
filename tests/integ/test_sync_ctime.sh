#!/usr/bin/env bash
# `hamnsync sync` and a same-size rewrite whose mtime was put back (issue
# 14, item 6).  The standby's listing shows the old size and mtime, so
# only the primary's index, which records the ctime (and inode) each
# path had when the standby acknowledged it, tells the rewrite apart.
# Two ways: written in place (same inode, new ctime) and renamed over
# (a new inode), each for a small file (content hashes) and a big one
# (a delta).  The sync must send them: its report counts them, the
# trees compare equal (rsync -c as the oracle) and `verify` agrees.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

hs_init sync_ctime
D=$T/src/data
mkdir -p "$D/sub"
printf 'version one of the hosts table\n' >"$D/sub/hosts"
printf 'version one of the renamed one\n' >"$D/sub/renamed"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$D/sub/image"
for i in $(seq 1 20); do echo "file $i" >"$D/sub/f$i"; done
hs_setup_pair "
[path data]
source = $D"
hs_start_standby
hs_sync
hs_sync_check "seed sync" "$D"
[ "$HS_SAME" = 1 ] || hs_fail "the seed sync did not converge"

# rewrite F CMD: run CMD (which changes F's content, not its size), then
# put F's mtime back; the size and mtime must read as before.
rewrite() {
	local f=$1 before after
	before=$(stat -c '%s %y' "$f")
	cp -p "$f" "$T/mtime.ref"
	eval "$2"
	touch -m -r "$T/mtime.ref" "$f"
	after=$(stat -c '%s %y' "$f")
	[ "$before" = "$after" ] || hs_fail "$f: size or mtime moved: $before / $after"
}
# The rewrite's ctime must differ from the recorded one: on a filesystem
# whose clock is coarse, wait (bounded) until it moved past F's ctime.
clock_past() {
	local i
	for ((i = 0; i < 50; i++)); do
		: >"$T/clock"
		[ "$(stat -c %.9Z "$T/clock")" != "$(stat -c %.9Z "$1")" ] &&
			return 0
		sleep 0.1
	done
	hs_fail "the filesystem's clock did not move in 5 s"
}
clock_past "$D/sub/hosts"
rewrite "$D/sub/hosts" 'printf "version TWO of the hosts table\n" >"$f"'
rewrite "$D/sub/renamed" 'printf "version TWO of the renamed one\n" >"$f.new" && mv "$f.new" "$f"'
rewrite "$D/sub/image" 'printf "XXXXXXXX" | dd of="$f" bs=1 seek=1000000 conv=notrunc status=none'

hs_sync
hs_sync_check "the rewrites whose mtime was put back arrived" "$D"
# sync's report: "sync: N files (...), M deltas (...), ..."
sent() {
	sed -n 's/^sync: \([0-9]*\) files .*, \([0-9]*\) deltas .*/\1 \2/p' "$T/sync.out" "$T/sync.err"
}
if [ "$(sent)" = "2 1" ]; then
	hs_ok "sync's report: the two small files went whole, the big one as a delta"
else
	hs_bad "sync's report: $(cat "$T/sync.out" "$T/sync.err")"
fi
set +e
"$HS_BIN" -c "$C1" verify >"$T/verify.out" 2>&1
vrc=$?
set -e
if [ "$vrc" -eq 0 ]; then hs_ok "verify: identical"; else
	hs_bad "verify rc $vrc: $(head -5 "$T/verify.out")"; fi

# Nothing changed since: the next sync sends nothing (the records now
# hold the new ctimes).
hs_sync
if [ "$SYNC_RC" -eq 0 ] && [ "$(sent)" = "0 0" ]; then
	hs_ok "the next sync sends nothing"
else
	hs_bad "the next sync: rc $SYNC_RC $(cat "$T/sync.out" "$T/sync.err")"
fi
hs_result sync_ctime
