#!/usr/bin/env bash
# Deletions across crashes of the primary daemon.  The primary reaches the
# standby through hs-faultproxy (tests/tools), which can hold the
# standby's replies back while the primary's bytes still arrive: the
# standby applies what it was sent, and the primary has not heard so.
#   1. a rename applied on the standby (SET_RENAMES) while the run's
#      listing is held back; the renamed file is deleted on the primary,
#      which is then killed (SIGKILL): its saved status must not say
#      in-sync, and the restart must delete the file on the standby
#   2. one run deletes a file, makes a directory and sends a big file
#      slowed by bwlimit: the deletion and the directory are applied on
#      the standby, the primary is killed while the file streams, and the
#      directory is removed while it is down
#   3. a run that ends in errors (a standby file made immutable) also
#      makes a new file; the primary is killed and the file deleted
#      while it is down
# (test_crash_writer.sh runs the same checks with a writer that
# creates, changes, renames and deletes while the primary is killed six
# times.)
# After each restart, with no signal and no manual `sync`, the test waits
# (bounded) until the primary's status says in-sync, and the trees must
# then be equal (rsync -naiHAXc --numeric-ids --delete prints nothing).
# Meanwhile both nodes' `status --json` is polled: whenever the primary
# says in-sync or the standby says promote ready, the trees must already
# be equal.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
CRASH_NAME=crash
. "$(dirname "$0")/crash_lib.sh"

# --- 1. rename applied on the standby, unacknowledged, then deleted ----
# The hold must catch the run's listing, not the PONG of a heartbeat: a
# ping whose answer is held times the session out before the renames go,
# and no handshake completes while the hold lasts, so the rename would
# never reach the standby.  The primary is stopped while the hold begins
# and the file is renamed (a ping sent just before the stop is answered
# meanwhile), and on waking its first step is the run of the renames;
# should a heartbeat still be caught (the primary logs it), the hold is
# lifted and the case is tried again under another name.
# rename_held FROM TO: 0 once TO replaced FROM on the standby, the hold
# on; 1 when a heartbeat was caught instead.
rename_held() {
	local beats i
	beats=$(hs_count_log "$T/primary.log" "in heartbeat: gone")
	kill -STOP "$PRIMARY_PID"
	sleep 0.5
	hold
	mv "$W/det/$1" "$W/det/$2"
	kill -CONT "$PRIMARY_PID"
	for ((i = 0; i < 300; i++)); do
		[ -e "$T/standby$W/det/$2" ] && [ ! -e "$T/standby$W/det/$1" ] &&
			return 0
		[ "$(hs_count_log "$T/primary.log" "in heartbeat: gone")" -gt \
			"$beats" ] && return 1
		sleep 0.1
	done
	hs_fail "the standby never applied the rename of det/$1 to det/$2"
}
# The idle primary saves its status (status.json, what `status` shows of
# a stopped node) every 5 s: wait until it says in-sync, so the check
# after the kill below shows that the run replaced it.
for ((i = 0; i < 150; i++)); do
	grep -q '"state":"in-sync"' "$T/state1/status.json" 2>/dev/null && break
	sleep 0.1
done
grep -q '"state":"in-sync"' "$T/state1/status.json" ||
	hs_fail "the idle primary never saved an in-sync status"
from=a
for to in b c d ""; do
	[ -n "$to" ] || hs_fail "the hold caught a heartbeat three times"
	rename_held "$from" "$to" && break
	echo "     the hold caught a heartbeat, not the run: trying again"
	hold
	settle "det/$to, after a heartbeat caught by the hold" 60
	from=$to
done
hs_ok "the rename is applied on the standby while its run waits"
rm "$W/det/$to"
crash_primary
# Killed with a run under way: what it saved must not say in-sync.
hs_expect_status "the killed primary's saved status does not say in-sync" \
	"$C1" 'd["daemon"] == "stopped" and all(p["state"] != "in-sync" for p in d["paths"])'
hold
standby_alone
hs_start_primary "$C1P"
settle "renamed, deleted, killed before the acknowledgement" 60
[ ! -e "$T/standby$W/det/$to" ] && hs_ok "the renamed and deleted file is gone from the standby" ||
	hs_bad "det/$to, renamed then deleted on the primary, stays on the standby"

# --- 2. a run applied in part on the standby, never acknowledged ----------
# One run deletes det2/x1, makes det2/a-dir and sends a big file, slowed
# by bwlimit: the deletion and the directory are applied on the standby
# at once, and the primary is killed while the big file still streams.
# While it is down, the new directory goes away again.
head -c $((24 * 1024 * 1024)) /dev/urandom >"$T/z-big"
kill -STOP "$PRIMARY_PID" # the changes go out as one run
rm "$W/det2/x1"
mkdir "$W/det2/a-dir"
echo "made by an unacknowledged run" >"$W/det2/a-dir/f"
mv "$T/z-big" "$W/det2/z-big"
kill -CONT "$PRIMARY_PID"
for ((i = 0; i < 300; i++)); do
	[ ! -e "$T/standby$W/det2/x1" ] && [ -d "$T/standby$W/det2/a-dir" ] && break
	sleep 0.1
done
[ ! -e "$T/standby$W/det2/x1" ] && [ -d "$T/standby$W/det2/a-dir" ] ||
	hs_fail "the standby never applied the deletion and the new directory"
[ -e "$T/standby$W/det2/z-big" ] && hs_fail "the big file arrived too soon"
hs_ok "deletion and new directory applied on the standby, the run unacknowledged"
crash_primary
rm -r "$W/det2/a-dir"
rm "$W/det2/x2"
standby_alone
hs_start_primary "$C1P"
settle "run applied in part, killed, its directory removed" 90
[ ! -e "$T/standby$W/det2/a-dir" ] && hs_ok "the directory made by the lost run is gone" ||
	hs_bad "det2/a-dir, made by an unacknowledged run and removed, stays on the standby"

# --- 3. a run that ends in errors, then a deletion while down ------------
# The standby cannot replace err/locked (immutable there), so the run that
# also makes err/new1 ends in errors; what it touched must not be taken
# for absent from the standby.  err/new1 is deleted while the primary is
# down: the restart must delete it there.
mkdir "$W/err"
echo "locked v1" >"$W/err/locked"
settle "before the failing run" 60
chattr +i "$T/standby$W/err/locked" || hs_fail "chattr +i on the standby copy"
errs=$(grep -c "errors, .* deletions held" "$T/primary.log" || true)
kill -STOP "$PRIMARY_PID" # one run for both
echo "new, in a run that ends in errors" >"$W/err/new1"
echo "locked v2, cannot replace the standby's" >"$W/err/locked"
kill -CONT "$PRIMARY_PID"
hs_wait_log "$T/primary.log" "errors, .* deletions held" $((errs + 1)) 30 ||
	{ chattr -i "$T/standby$W/err/locked"; hs_fail "the run did not end in errors"; }
[ -e "$T/standby$W/err/new1" ] || { chattr -i "$T/standby$W/err/locked"; hs_fail "err/new1 did not arrive"; }
chattr -i "$T/standby$W/err/locked"
hs_ok "a run ended in errors, err/new1 on the standby"
crash_primary
rm "$W/err/new1"
standby_alone
hs_start_primary "$C1P"
settle "run with errors, its new file deleted while down" 60
[ ! -e "$T/standby$W/err/new1" ] && hs_ok "the new file of the failed run is gone from the standby" ||
	hs_bad "err/new1, made by a run with errors and deleted while down, stays on the standby"

if grep -q "paths differ from the index" "$T/primary.log"; then
	grep "paths differ from the index\|reconciling every set whole" "$T/primary.log" |
		tail -8 | sed 's/^/     /'
fi
kill -0 "$STANDBY_PID" && hs_ok "the standby kept running" || hs_bad "the standby died"
hs_result crash
