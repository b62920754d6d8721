#!/usr/bin/env bash
# Block patches (delta.h): a big file edited in place travels as
# its changed blocks against the block record of what the standby holds;
# grown and shrunk files too.  A standby copy edited behind hamnsync's back
# (drift), or one the standby has no record of, is kept under
# state_dir/drift/ and the file sent again; a standby killed mid-patch
# keeps its old copy.  After each round both trees must be identical
# (hs_compare: rsync -naiHAXc as the oracle), as the sync claimed (exit 0,
# the standby's last_applied).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# wire_kib: TLS bytes the last sync wrote, in KiB.
wire_kib() {
	sed -n 's/.*; \([0-9.]*\) \([KMG]*i*\)B on the wire.*/\1 \2/p' \
		"$T/sync.out" | awk '{ m = $2 == "Ki" ? 1 : $2 == "Mi" ?
		1024 : $2 == "Gi" ? 1048576 : 1 / 1024; printf "%d\n", $1 * m }'
}
patched() { grep -q "1 by blocks" "$T/sync.out"; }
overwrite() { # overwrite FILE OFFSET_KIB: 64 KiB of new random bytes in place
	head -c 65536 /dev/urandom | dd of="$1" bs=1024 seek="$2" \
		conv=notrunc status=none
}

hs_init patch
D=$T/src/data
mkdir -p "$D"
head -c $((48 * 1024 * 1024)) /dev/urandom >"$D/big.iso"
echo small >"$D/small"
# a hard-linked pair: linking on the standby must not look like drift
head -c $((4 * 1024 * 1024)) /dev/urandom >"$D/linked-a.img"
ln "$D/linked-a.img" "$D/linked-b.img"
hs_setup_pair "
[path data]
source = $D"
hs_start_standby

hs_sync_rc 0 "seed"
hs_sync_check "seed: trees equal" "$D"

# 1. three 64 KiB edits in place: only the changed blocks travel
overwrite "$D/big.iso" 100
overwrite "$D/big.iso" 20000
overwrite "$D/big.iso" 40000
hs_sync_rc 0 "edit"
k=$(wire_kib)
if patched && [ "$k" -lt 1024 ]; then
	hs_ok "3 x 64 KiB edit sent as blocks: $k KiB on the wire"
else
	hs_bad "edit not patched or too big ($k KiB): $(cat "$T/sync.out")"
fi
hs_sync_check "edit: trees equal" "$D"
if grep -q "standby's copy is not the one recorded" "$T/sync.err"; then
	hs_bad "edit: stale reported: $(cat "$T/sync.err")"
fi

# 1b. an edit of the hard-linked pair: the leader patched, no drift seen
overwrite "$D/linked-a.img" 1024
hs_sync_rc 0 "linked edit"
if patched && ! grep -q "changed on this standby" "$T/standby.log"; then
	hs_ok "hard-linked file patched, its link not taken for drift"
else
	hs_bad "hard-linked edit: $(cat "$T/sync.out" "$T/sync.err")"
fi
hs_sync_check "linked edit: trees equal (links included)" "$D"

# 2. grown at the end, then shrunk
head -c 300000 /dev/urandom >>"$D/big.iso"
hs_sync_rc 0 "grow"
if patched; then hs_ok "grown file sent as blocks ($(wire_kib) KiB)"; else
	hs_bad "grow not patched: $(cat "$T/sync.out")"; fi
hs_sync_check "grow: trees equal" "$D"
truncate -s $((40 * 1024 * 1024 + 12345)) "$D/big.iso"
hs_sync_rc 0 "shrink"
if patched; then hs_ok "shrunk file sent as blocks ($(wire_kib) KiB)"; else
	hs_bad "shrink not patched: $(cat "$T/sync.out")"; fi
hs_sync_check "shrink: trees equal" "$D"

# 3. metadata only: the record follows, the next edit still patches
chmod 640 "$D/big.iso"
touch -d '2021-05-06 07:08:09' "$D/big.iso"
hs_sync_rc 0 "meta"
hs_sync_check "meta: trees equal" "$D"
overwrite "$D/big.iso" 5000
hs_sync_rc 0 "edit after meta"
if patched; then hs_ok "edit after a metadata change still patched"; else
	hs_bad "edit after meta not patched: $(cat "$T/sync.out" "$T/sync.err")"; fi
hs_sync_check "edit after meta: trees equal" "$D"

# 4. drift: the standby's copy edited behind our back, then the primary's
overwrite "$T/standby$D/big.iso" 300
drifted=$(sha256sum <"$T/standby$D/big.iso")
overwrite "$D/big.iso" 9000
hs_sync_rc 0 "drift"
hs_sync_check "drift: the standby ends equal to the primary" "$D"
kept=$(find "$T/state2/drift" -type f -name 'big.iso.*' 2>/dev/null | head -1)
if [ -n "$kept" ] && [ "$(sha256sum <"$kept")" = "$drifted" ]; then
	hs_ok "drift: the standby's version kept at ${kept#$T/}"
else
	hs_bad "drift: no copy of the standby's version under state_dir/drift"
fi
if grep -q "changed on this standby since hamnsync wrote it" "$T/standby.log"; then
	hs_ok "drift: one line in the standby's log"
else
	hs_bad "drift: not logged"
fi
# the file went the long way once; the next edit patches again
overwrite "$D/big.iso" 30000
hs_sync_rc 0 "edit after drift"
if patched; then hs_ok "edit after drift patched again"; else
	hs_bad "edit after drift not patched: $(cat "$T/sync.out" "$T/sync.err")"; fi
hs_sync_check "edit after drift: trees equal" "$D"

# 5. the standby killed mid-patch: its old copy stays whole
before=$(sha256sum <"$T/standby$D/big.iso")
overwrite "$D/big.iso" 1000
overwrite "$D/big.iso" 38000
"$HS_BIN" -c "$C1" sync >"$T/sync.out" 2>"$T/sync.err" &
spid=$!
for ((i = 0; i < 200; i++)); do
	ls "$T/standby$D"/.hamnsync-tmp.* >/dev/null 2>&1 && break
	sleep 0.01
done
for c in $(pgrep -P "$STANDBY_PID"); do kill -KILL "$c" 2>/dev/null || true; done
kill -KILL "$STANDBY_PID" 2>/dev/null || true
wait "$spid" || true
hs_wait_gone "$STANDBY_PID" 50 || true
now=$(sha256sum <"$T/standby$D/big.iso")
if [ "$now" = "$before" ] || cmp -s "$D/big.iso" "$T/standby$D/big.iso"; then
	hs_ok "killed mid-patch: old (or complete new) copy, never torn"
else
	hs_bad "killed mid-patch: the standby's copy is torn"
fi
hs_start_standby
if ls "$T/standby$D"/.hamnsync-tmp.* >/dev/null 2>&1; then
	hs_bad "temporaries left after restart"
else
	hs_ok "no temporaries after restart"
fi
hs_sync_rc 0 "after kill"
hs_sync_check "after kill: trees equal" "$D"

# 6. the standby lost its records (index moved away): a patch finds no
# record, the copy is kept as drift and the file goes again
hs_stop_standby
mv "$T/state2/index" "$T/state2/index.lost"
hs_start_standby
n_before=$(find "$T/state2/drift" -type f | wc -l)
overwrite "$D/big.iso" 7000
hs_sync_rc 0 "no record"
hs_sync_check "no record: trees equal" "$D"
if grep -q "no record of what was written here" "$T/standby.log" &&
	[ "$(find "$T/state2/drift" -type f | wc -l)" -gt "$n_before" ]; then
	hs_ok "no record: stale, logged, its copy kept"
else
	hs_bad "no record: not reported as stale or not kept"
fi

hs_result patch
