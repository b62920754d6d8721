#!/usr/bin/env bash
# A held deletion clears by itself once the files are back.  The hold
# used to clear only in a whole run, which came only with SIGUSR1, a
# `sync` or a restart: an unmounted /install mounted again left both
# nodes "not ready" until someone asked.  The primary now runs a held
# set whole again with the retry backoff (1 s doubling to 60 s).
#   1. the daemons seed a set of 40 files and a second set;
#   2. the set's directory is moved away (one event): the deletion is
#      held, the standby keeps the files and is not promote ready, and
#      stays so while the directory is away (the retries hold again);
#      its reason does not claim changes in flight (none are);
#   3. the directory comes back, no signal is sent: within a bounded wait
#      the primary says every set in-sync, the standby promote ready,
#      and the trees are equal.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

hs_init held_retry
D=$T/src/data
O=$T/src/other
mkdir -p "$D/sub" "$O"
for i in $(seq 1 40); do echo "file $i" >"$D/sub/f$i"; done
echo other >"$O/o1"
hs_setup_pair "
[path data]
source = $D

[path other]
source = $O/o1"

hs_start_standby
hs_start_primary
hs_wait_same "seeded by the daemons" 60 "$D" "$O/o1"
[ "$HS_SAME" -eq 1 ] || hs_fail "no seed, giving up"

mv "$D/sub" "$T/aside"
hs_wait_status "the primary says set data is held" 30 "$C1" \
	'{p["name"]: p["state"] for p in d["paths"]} == {"data": "held", "other": "in-sync"}'
[ -f "$T/standby$D/sub/f1" ] && hs_ok "the standby keeps the files" ||
	hs_bad "the standby lost the held files"
# While the files are away, the retried whole runs hold again.
runs=$(grep -c "holding back the deletion" "$T/primary.log" || true)
hs_wait_log "$T/primary.log" "holding back the deletion" $((runs + 1)) 10 &&
	hs_ok "a whole run of the held set comes by itself and holds again" ||
	hs_bad "no whole run of the held set within 10 s"
hs_expect_status "still held: the standby is not promote ready" "$C2" \
	'd["promote_ready"]["ready"] is False'
# Nothing is in flight: the standby does not say so.
hs_expect_status "still held: the standby's reason is not \"in flight\"" \
	"$C2" '" ".join(d["promote_ready"]["reasons"]).find("does not call every set in sync") >= 0 and "in flight" not in " ".join(d["promote_ready"]["reasons"])'
[ -f "$T/standby$D/sub/f1" ] && hs_ok "still held: the standby keeps the files" ||
	hs_bad "still held: the standby lost the files"

# The files come back; no signal, no sync.
mv "$T/aside" "$D/sub"
hs_wait_same "the files back: in-sync and promote ready by itself" 90 \
	"$D" "$O/o1"

hs_result test_held_retry
