#!/usr/bin/env bash
# The standby's promote_ready is as strict as the primary's status (issue
# 14, item 4).  The standby follows the in-sync verdict of the primary's
# STATE frames; that verdict ignored deletions held back by the delete
# guard and runs that failed, so the standby said "promote ready" while
# the primary said a set was held or in error.
# Each reason is made here with daemons on both nodes, while a second set
# stays in sync:
#   1. a mass deletion held back by the delete guard (max_delete_percent):
#      a directory of every file of the set moved away, one event, so
#      the run sees it whole; cleared while the daemon runs (the
#      directory comes back and SIGUSR1 asks for a whole run), then made
#      again and released by the documented way: the daemon stopped,
#      `sync --allow-deletes`, the daemon started;
#   2. a standby copy that cannot be replaced (chattr +i, or a read-only
#      bind in the standby's own mount namespace), cleared by unlocking
#      it: the primary's retry applies it with no signal;
#   3. a source missing on the primary (the run fails, the standby's
#      copy is left alone), cleared when the source comes back.
# While a reason stands, the primary says the set is not in-sync and
# the standby says promote_ready false in every sample; once it is
# cleared, both say in-sync and promote ready, and the trees are equal.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null ||
	hs_fail "needs root and unshare -m (the standby's mount namespace)"

hs_init ready_agree
D=$T/src/data
O=$T/src/other
mkdir -p "$D/sub" "$O"
for i in $(seq 1 40); do echo "file $i" >"$D/sub/f$i"; done
for i in 1 2 3; do echo "other $i" >"$O/o$i"; done
hs_setup_pair "
[path data]
source = $D

[path other]
source = $O/o1
source = $O/o2
source = $O/o3"

# The standby runs in a mount namespace of its own (a read-only bind
# made there is gone with it): hs_start_standby_ns, hs_in_standby_ns.

# never_ready NAME SECONDS: the standby's promote_ready is false in every
# sample (every 0.2 s) for SECONDS, and it gives a reason.  The verdict
# it follows comes after the primary's run: a lie shows within them.
never_ready() {
	local i
	for ((i = 0; i < $2 * 5; i++)); do
		hs_status "$C2" "$T/never.json"
		if ! python3 "$HS_CLAIM" expect "$T/never.json" \
			'd["daemon"] == "running" and d["promote_ready"]["ready"] is False and len(d["promote_ready"]["reasons"]) > 0' \
			2>"$T/never.why" >/dev/null; then
			hs_bad "$1: after $((i / 5)).$((i % 5 * 2)) s, $(cat "$T/never.why")"
			return 0
		fi
		sleep 0.2
	done
	hs_ok "$1 (for $2 s: $(python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["promote_ready"]["reasons"][0])' "$T/never.json"))"
}

# The primary's word on the two sets: data in STATE, other in-sync.
DATA_IS='{p["name"]: p["state"] for p in d["paths"]} == {"data": "%s", "other": "in-sync"}'

hs_start_standby_ns
hs_start_primary
hs_wait_same "seeded: both daemons say in sync" 60 "$D" "$O/o1" "$O/o2" "$O/o3"
[ "$HS_SAME" -eq 1 ] || hs_fail "no seed, giving up"
# The guard of scoped runs weighs deletions against the standby's files
# at the last whole run: none at the seed.  A whole run counts them.
runs=$(grep -c "set data reconciled" "$T/primary.log" || true)
hs_signal USR1 "$PRIMARY_PID"
hs_wait_log "$T/primary.log" "set data reconciled" $((runs + 1)) 30 ||
	hs_fail "SIGUSR1 brought no whole run"

# 1. A held deletion: every file of the set, above the 50 % default.
mv "$D/sub" "$T/aside"
hs_wait_log "$T/primary.log" "holding back the deletion" 1 30 ||
	hs_bad "the deletion of the set's 40 files was not held back"
# shellcheck disable=SC2059
hs_wait_status "held: the primary says set data is held" 10 "$C1" \
	"$(printf "$DATA_IS" held)"
never_ready "held: the standby is not promote ready" 3
[ -f "$T/standby$D/sub/f1" ] && hs_ok "held: the standby keeps the files" ||
	hs_bad "held: the standby lost the held files"

# Cleared with the daemon running: the files come back, and a whole run
# (SIGUSR1) finds nothing held any more.
mv "$T/aside" "$D/sub"
hs_signal USR1 "$PRIMARY_PID"
hs_wait_same "files back, a whole run: in-sync and promote ready" 60 "$D"

# Held again, released the documented way.
mv "$D/sub" "$T/aside"
# shellcheck disable=SC2059
hs_wait_status "held again: the primary says set data is held" 30 "$C1" \
	"$(printf "$DATA_IS" held)"
never_ready "held again: the standby is not promote ready" 2
hs_stop_primary
hs_sync --allow-deletes data
[ "$SYNC_RC" -eq 0 ] && hs_ok "sync --allow-deletes data releases it" ||
	hs_bad "sync --allow-deletes: exit $SYNC_RC: $(head -2 "$T/sync.err")"
hs_start_primary
hs_wait_same "released: in-sync and promote ready" 60 "$D"
mv "$T/aside" "$D/sub"
hs_wait_same "the files back: in-sync and promote ready" 60 "$D"

# 2. A standby copy that cannot be replaced.
S=$T/standby$D/sub
if chattr +i "$S/f35" 2>/dev/null; then
	lock() { chattr +i "$1"; }
	unlock() { chattr -i "$1"; }
	lock_how="chattr +i"
else
	lock() {
		hs_in_standby_ns mount --bind "$1" "$1"
		hs_in_standby_ns mount -o remount,bind,ro "$1"
	}
	unlock() { hs_in_standby_ns umount "$1"; }
	lock_how="a read-only bind"
	lock "$S/f35"
fi
# (the flag would keep the cleanup from removing it)
trap 'rc=$?; unlock "$S/f35" 2>/dev/null || true; (exit $rc); hs_cleanup' EXIT
echo "changed on the primary" >>"$D/sub/f35"
# shellcheck disable=SC2059
hs_wait_status "failed ($lock_how): the primary says set data is in error" \
	30 "$C1" "$(printf "$DATA_IS" error)"
never_ready "failed ($lock_how): the standby is not promote ready" 3
unlock "$S/f35"
trap hs_cleanup EXIT
hs_wait_same "unlocked: the retry applies it; in-sync and promote ready" \
	90 "$D"
grep -q "is applied now" "$T/primary.log" &&
	hs_ok "unlocked: the retry came with no signal" ||
	hs_bad "unlocked: no retry applied the failed path"

# 3. A source missing on the primary: the standby's copy is left alone,
# and the set is in error (a failure of the run, not of a path the
# standby could retry).  Cleared when the source comes back.
OTHER_IS='{p["name"]: p["state"] for p in d["paths"]} == {"data": "in-sync", "other": "%s"}'
mv "$O/o2" "$T/o2.aside"
# shellcheck disable=SC2059
hs_wait_status "source missing: the primary says set other is in error" \
	30 "$C1" "$(printf "$OTHER_IS" error)"
never_ready "source missing: the standby is not promote ready" 3
[ -f "$T/standby$O/o2" ] && hs_ok "source missing: the standby keeps its copy" ||
	hs_bad "source missing: the standby lost its copy"
mv "$T/o2.aside" "$O/o2"
hs_wait_same "source back: in-sync and promote ready" 30 "$D" "$O/o1" "$O/o2" "$O/o3"
hs_result ready_agree
