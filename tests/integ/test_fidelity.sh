#!/usr/bin/env bash
# Full fidelity and deltas: hard links, sparse files, POSIX ACLs, xattrs
# and file capabilities, fifos and device nodes; librsync deltas for edits
# of big files; a standby pre-filled by the old cron `rsync -a`; the delete
# guard.  After each round both trees must be identical (rsync -naiHAXc,
# which also compares hard-link groups), as the sync claimed (exit 0, the
# standby's last_applied), and holes must stay holes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

blocks() { stat -c %b "$1"; }
check_sparse() { # check_sparse FILE: the copy allocates no more than the original
	local a b
	a=$(blocks "$1")
	b=$(blocks "$T/standby$1")
	if [ "$b" -le $((a + 8)) ]; then
		hs_ok "holes kept in ${1##*/} ($a vs $b blocks)"
	else
		hs_bad "holes lost in ${1##*/}: $a blocks on the primary, $b on the standby"
	fi
}

hs_init fidelity
D=$T/src/install
mkdir -p "$D/rpms" "$D/other" "$D/dev" "$D/acl"
# hard links: a pair, and a group of three across directories
echo "pkg" >"$D/rpms/a.rpm"
ln "$D/rpms/a.rpm" "$D/rpms/b.rpm"
echo "three" >"$D/rpms/c"
ln "$D/rpms/c" "$D/other/c2"
ln "$D/rpms/c" "$D/other/c3"
# sparse: 64 MiB with two islands of data
truncate -s 64M "$D/disk.img"
printf 'island one' | dd of="$D/disk.img" bs=1 seek=1048576 conv=notrunc status=none
printf 'island two' | dd of="$D/disk.img" bs=1 seek=40000000 conv=notrunc status=none
# ACLs, xattrs, capabilities
echo acl >"$D/acl/file"
setfacl -m u:1234:rwx,g:5678:r "$D/acl/file"
setfacl -d -m u:1234:rx "$D/acl"
echo x >"$D/xattr-file"
setfattr -n user.xcat -v "node group" "$D/xattr-file"
setfattr -n trusted.hamnsync -v 0x00ff00 "$D/xattr-file"
cp /bin/true "$D/ping-like"
setcap cap_net_raw+ep "$D/ping-like"
# special files, as in a diskless image's /dev
mkfifo "$D/dev/initctl"
mknod "$D/dev/null" c 1 3
mknod "$D/dev/loop0" b 7 0
chmod 666 "$D/dev/null"
# a big file for deltas
head -c 67108864 /dev/urandom >"$D/big.iso"
for i in $(seq 1 300); do echo "file $i" >"$D/other/f$i"; done

hs_setup_pair "
[path install]
source = $D"
hs_start_standby

hs_sync_rc 0 seed
hs_sync_check "seed: hard links, sparse, ACL, xattrs, capability, fifo, devices" "$D"
check_sparse "$D/disk.img"
if [ "$(stat -c %i "$T/standby$D/rpms/a.rpm")" = "$(stat -c %i "$T/standby$D/rpms/b.rpm")" ] &&
	[ "$(stat -c %h "$T/standby$D/other/c3")" = 3 ]; then
	hs_ok "hard links are links on the standby"
else
	hs_bad "hard links copied, not linked"
fi
if getcap "$T/standby$D/ping-like" | hs_has cap_net_raw; then
	hs_ok "file capability kept"
else
	hs_bad "file capability lost"
fi

# Deltas: 3 x 64 KiB edited inside the 64 MiB file travel as a delta.
for off in 1000000 30000000 60000000; do
	head -c 65536 /dev/urandom |
		dd of="$D/big.iso" bs=1 seek=$off conv=notrunc status=none
done
hs_sync --dry-run
if grep -q "^delta .*big.iso" "$T/sync.out"; then
	hs_ok "dry run says delta for the big file"
else
	hs_bad "dry run: $(cat "$T/sync.out")"
fi
hs_sync_rc 0 delta
hs_sync_check "delta of 3 x 64 KiB in 64 MiB" "$D"
wire=$(sed -n 's/.*; \([0-9.]*\) \([KM]i\)B on the wire.*/\1 \2/p' "$T/sync.out")
if grep -q " 1 deltas" "$T/sync.out" && echo "$wire" | awk '$2 == "Ki" || ($2 == "Mi" && $1 < 2) { ok = 1 } END { exit !ok }'; then
	hs_ok "delta sent: $wire on the wire for a 64 MiB file"
else
	hs_bad "delta not used or too big: $(cat "$T/sync.out")"
fi
# an append and a truncation of the big file also go as deltas
head -c 100000 /dev/urandom >>"$D/big.iso"
hs_sync_rc 0 append
hs_sync_check "append to the big file" "$D"
truncate -s 50000000 "$D/big.iso"
hs_sync_rc 0 truncate
hs_sync_check "truncate the big file" "$D"

# Mutations of fidelity attributes
ln "$D/other/f1" "$D/other/f1-link"                  # hard link added
cp --preserve=all "$D/rpms/b.rpm" "$D/rpms/b.tmp" && mv "$D/rpms/b.tmp" "$D/rpms/b.rpm"  # link broken
fallocate -p -o 0 -l 4096 "$D/other/f2" 2>/dev/null || true
truncate -s 8M "$D/other/f3" && fallocate -p -o 0 -l 1M "$D/other/f3"   # hole punched
setfattr -n user.xcat -v "changed" "$D/xattr-file"   # xattr changed
setfattr -x trusted.hamnsync "$D/xattr-file"          # xattr removed
setfacl -m u:4321:r "$D/acl/file"                     # ACL changed
rm "$D/dev/initctl" && echo "was a fifo" >"$D/dev/initctl"   # fifo -> file
rm "$D/dev/loop0" && mknod "$D/dev/loop0" b 7 1       # device number changed
mkfifo "$D/dev/newfifo"
hs_sync_rc 0 mutations
hs_sync_check "link added and broken, hole punched, xattr and ACL changed, specials" "$D"
check_sparse "$D/other/f3"
if [ "$(stat -c %i "$T/standby$D/other/f1")" = "$(stat -c %i "$T/standby$D/other/f1-link")" ] &&
	[ "$(stat -c %i "$T/standby$D/rpms/a.rpm")" != "$(stat -c %i "$T/standby$D/rpms/b.rpm")" ]; then
	hs_ok "new link made, broken link broken"
else
	hs_bad "hard-link changes not mirrored"
fi

# A standby filled by the old cron `rsync -a` needs no re-copy.
rm -rf "$T/standby$D"
mkdir -p "$T/standby$D"
rsync -aHAXS --numeric-ids "$D/" "$T/standby$D/"
hs_sync --dry-run; cp "$T/sync.out" "$T/dry-after-rsync"
hs_sync_rc 0 after-rsync
if grep -q "^sync: 0 files (0 B), 0 deltas" "$T/sync.out"; then
	hs_ok "standby pre-filled by rsync -a: nothing re-sent"
else
	hs_bad "after rsync -a: $(cat "$T/sync.out" "$T/dry-after-rsync")"
fi
hs_sync_check "after rsync -a" "$D"

# The delete guard: an emptied /install is held back, then released.
mkdir -p "$T/stash"
mv "$D/other" "$T/stash/"
hs_sync_rc 1 guard
if grep -q "holding back the deletion" "$T/sync.err" &&
	[ -e "$T/standby$D/other/f100" ]; then
	hs_ok "mass delete held: $(head -1 "$T/sync.err")"
else
	hs_bad "mass delete not held"
fi
hs_sync --dry-run
if grep -q "^held .*other/f100" "$T/sync.out"; then
	hs_ok "dry run lists held deletions"
else
	hs_bad "dry run does not list held deletions"
fi
hs_sync_rc 0 release --allow-deletes install
if [ ! -e "$T/standby$D/other" ]; then
	hs_ok "--allow-deletes install releases the deletion"
else
	hs_bad "deletion not released"
fi
hs_sync_check "after released deletion" "$D"
hs_sync --allow-deletes nosuchset
[ "$SYNC_RC" -eq 2 ] && hs_ok "--allow-deletes of an unknown set is a usage error" ||
	hs_bad "--allow-deletes nosuchset exited $SYNC_RC"

# The extended-attribute cache (tree.h): a whole listing reads
# the attributes only of entries whose inode, ctime, mtime or size moved
# since the last one; entries changed in the last 2 s are always read, so
# the tree is left to age first.
sleep 3
hs_sync_rc 0 xcache-fill
xc1=$T/state1/xattr-cache/install
xc2=$T/state2/xattr-cache/install
if [ -s "$xc1" ] && [ -s "$xc2" ]; then
	hs_ok "xattr caches written on both nodes"
else
	hs_bad "xattr caches missing: $(ls -l "$T/state1" "$T/state2" 2>&1 | tr '\n' ' ')"
fi
m1=$(stat -c %y "$xc1" "$xc2")
HAMNSYNC_DEBUG=1 "$HS_BIN" -c "$C1" sync >"$T/sync.out" 2>"$T/sync.err" || true
if grep -q "xcache: .*install: [0-9]* entries kept, 0 had their attributes read" "$T/sync.err" &&
	[ "$(stat -c %y "$xc1" "$xc2")" = "$m1" ]; then
	hs_ok "a sync with nothing changed read no extended attribute on either node"
else
	hs_bad "nothing changed, yet attributes were read: $(grep xcache "$T/sync.err") (caches $m1 -> $(stat -c %y "$xc1" "$xc2" | tr '\n' ' '))"
fi
# Attributes changed behind the cache's back: on the primary, and on the
# standby's copy (drift), ACL included.
setfattr -n user.cachetest -v "primary" "$D/rpms/a.rpm"
setfattr -n user.drift -v "standby" "$T/standby$D/disk.img"
setfacl -m u:4322:rw "$T/standby$D/acl/file"
hs_sync_rc 0 xcache-changes
hs_sync_check "xattr and ACL changes on either node found past the cache" "$D"
# A damaged cache is no cache: every attribute is read again.  The tree
# ages first, so the previous sync left complete caches to damage.
sleep 3
hs_sync_rc 0 xcache-refill
setfattr -n user.after -v "damage" "$T/standby$D/rpms/c"
printf 'garbage' >"$xc1"
head -c 4096 /dev/urandom >"$xc2"
HAMNSYNC_DEBUG=1 hs_sync
n_read=$(sed -n 's/.*xcache: .*install: [0-9]* entries kept, \([0-9]*\) had their attributes read.*/\1/p' "$T/sync.err" | head -1)
n_all=$(find "$D" ! -type l | wc -l)
if [ -n "$n_read" ] && [ "$n_read" -ge $((n_all - 1)) ]; then
	hs_ok "damaged cache on the primary: $n_read of $n_all entries read again"
else
	hs_bad "damaged cache: ${n_read:-no} entries read of $n_all: $(grep xcache "$T/sync.err")"
fi
hs_sync_check "damaged caches: the standby's drifted attribute found, all in place" "$D"

hs_result test_fidelity
