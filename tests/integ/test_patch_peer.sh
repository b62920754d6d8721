#!/usr/bin/env bash
# test_patch_peer.sh - hostile block patches (delta.h) from a
# primary with a valid identity (hs-evilpeer): a block past the final
# size, unsorted blocks, a block larger than the block size, a final size
# past the limits, the last block twice, and a basis token the standby
# does not hold.  Each run first writes a 1 MiB basis the standby records.
# After each: one clear log line naming the path, the basis intact, no
# temporary left, the daemon alive and serving a normal sync that leaves
# the trees equal.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
HS_TOOLS=${HS_TOOLS:-$top/build/bin}
EVIL=$HS_TOOLS/hs-evilpeer
[ -x "$EVIL" ] || hs_fail "$EVIL is not built"

hs_init patch_peer
D=$T/src/data
mkdir -p "$D"
head -c $((2 * 1024 * 1024)) /dev/urandom >"$D/big.bin"
hs_setup_pair "
[path data]
source = $D"
hs_start_standby
hs_sync
[ "$SYNC_RC" -eq 0 ] || hs_fail "seed sync: $(cat "$T/sync.err")"
BASIS=$(head -c $((1024 * 1024 + 100)) /dev/zero | tr '\0' B | sha256sum)
V=$T/standby$D/evil-patch.bin

# patch_attack SCENARIO PHRASE: run it, check the aftermath
patch_attack() {
	local sc=$1 phrase=$2 before out rc
	before=$(wc -l <"$T/standby.log")
	set +e
	out=$("$EVIL" -c "$C1" "$sc" 2>&1)
	rc=$?
	set -e
	if [ "$rc" -eq 0 ]; then hs_ok "$sc: $out"; else hs_bad "$sc ($rc): $out"; fi
	sleep 0.3 # the session child writes its last lines
	if tail -n +"$((before + 1))" "$T/standby.log" |
		grep -F "$phrase" | hs_has -F "evil-patch.bin"; then
		hs_ok "$sc: the log names the path ($phrase)"
	else
		hs_bad "$sc: no log line with '$phrase' naming the path"
		tail -n +"$((before + 1))" "$T/standby.log" | head -5
	fi
	if [ "$(sha256sum <"$V")" = "$BASIS" ]; then hs_ok "$sc: basis intact"; else
		hs_bad "$sc: the standby's copy changed"; fi
	if ls -A "$T/standby$D" | hs_has '^\.hamnsync-tmp\.'; then
		hs_bad "$sc: temporary left"
	else
		hs_ok "$sc: no temporary left"
	fi
	kill -0 "$STANDBY_PID" || hs_fail "$sc: the standby daemon died"
}

patch_attack patch-past-end "past the final size"
patch_attack patch-unsorted "unsorted or overlapping"
patch_attack patch-big-block "not 16384"
patch_attack patch-huge-size "past the limit"
patch_attack patch-overrun "unsorted or overlapping"
patch_attack patch-stale "holds another version than the primary recorded"

# the daemon still serves: a normal sync removes the evil file
hs_sync
hs_sync_check "after the attacks: a normal sync leaves the trees equal" "$D"

hs_result patch_peer
