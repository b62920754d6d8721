#!/usr/bin/env bash
# A full disk on either node, with both daemons running and a writer adding
# files (issue 14: "promote_ready while files are missing", "Disk full").
#
# The whole test runs in a mount namespace of its own (unshare -m), so the
# small tmpfs mounts below $T are seen by the daemons and by the checks,
# and by nothing on the host.
#   0. The first seed meets a full target_root: both nodes say so and
#      neither says ready or seeding; space returns and the seed ends by
#      itself.
#   1. The standby's target_root is full: no partial file under a final
#      name; status on the standby names the full disk and its node, keeps
#      the set out of in-sync and promote_ready false with a reason in
#      words; the primary says the same of the standby and its lag grows
#      (nothing counts as applied that is not on disk).  Space returns (a
#      filler file is removed): the failed files arrive with no signal and
#      no `sync`, and both nodes say in-sync and promote ready.
#   2. The primary's state_dir is full (its index cannot commit): status
#      says so, naming the node; the files still replicate; once space
#      returns the warning goes and status is OK again, by itself.
#   3. The standby's state_dir is full: status there names it; the files
#      still replicate; space returns and status is OK again.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || hs_fail "needs root: tmpfs mounts in a mount namespace"
if [ -z "${HS_DISKFULL_NS:-}" ]; then
	unshare -m true 2>/dev/null ||
		hs_fail "cannot make a mount namespace (unshare -m)"
	exec unshare -m --propagation private \
		env HS_DISKFULL_NS=1 bash "$0" "$@"
fi

df_cleanup() {
	local rc=$? m
	set +e
	# The daemons hold the mounts: stopped first (only those still ours).
	hs_stop_ours
	for m in "$T/full" "$T/pstate" "$T/sstate"; do
		umount "$m" 2>/dev/null
	done
	(exit $rc)
	hs_cleanup
}

hs_init diskfull
trap df_cleanup EXIT
D=$T/src/data
mkdir -p "$D/sub" "$T/full" "$T/pstate" "$T/sstate"
for i in $(seq 1 20); do
	head -c 4000 /dev/urandom >"$D/sub/f$i"
done
# target_root of the standby, and each node's state_dir, on a tmpfs.
mount -t tmpfs -o size=16m tmpfs "$T/full"
mount -t tmpfs -o size=16m tmpfs "$T/pstate"
mount -t tmpfs -o size=16m tmpfs "$T/sstate"
hs_setup_pair "
[path data]
source = $D"
sed -i -e "s|^state_dir = .*|state_dir = $T/pstate|" "$C1"
sed -i -e "s|^target_root = .*|target_root = $T/full|" \
	-e "s|^state_dir = .*|state_dir = $T/sstate|" "$C2"
# Long enough that a quiet session is never dropped for silence.
sed -i "s|^peer_timeout = .*|peer_timeout = 10s|" "$C1" "$C2"

# same: the standby's copy equals the source (rsync as the oracle).
same() {
	hs_same --modify-window=-1 "$D" "$T/full$D"
}

# q FILE EXPR: a Python expression over the status object j.
q() {
	python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
def state(name):
    return [p["state"] for p in j["paths"] if p["name"] == name][0]
def warn():
    return " | ".join(w["text"] for w in j["warnings"])
def why():
    return " | ".join(j["promote_ready"]["reasons"])
print(eval(sys.argv[2]))' "$1" "$2"
}

# has FILE EXPR PATTERN: q's answer matches PATTERN (grep -e).
has() {
	grep -q -e "$3" <<<"$(q "$1" "$2")"
}

# both_ok SECONDS: until both nodes exit 0, say in-sync, and the standby
# is promote ready; counts the result.
both_ok() {
	local i
	for ((i = 0; i < $1 * 4; i++)); do
		hs_status "$C1" "$T/s1.json"
		local r1=$HS_STATUS_RC
		hs_status "$C2" "$T/s2.json"
		if [ "$r1" = 0 ] && [ "$HS_STATUS_RC" = 0 ] &&
			[ "$(q "$T/s1.json" 'state("data")')" = in-sync ] &&
			[ "$(q "$T/s2.json" 'state("data")')" = in-sync ] &&
			[ "$(q "$T/s2.json" 'j["promote_ready"]["ready"]')" = True ]; then
			hs_ok "$2"
			return 0
		fi
		sleep 0.25
	done
	hs_bad "$2: primary exit $r1 ($(q "$T/s1.json" 'state("data"), warn()')), standby exit $HS_STATUS_RC ($(q "$T/s2.json" 'state("data"), why(), warn()'))"
}

# fill DIR: a filler file takes every free block of DIR's tmpfs.
fill() {
	dd if=/dev/zero of="$1/filler" bs=4k status=none 2>/dev/null || true
	[ "$(stat -f -c %a "$1")" = 0 ] || hs_fail "$1 is not full"
}

# ------------------------------------- 0. the first seed into a full disk
fill "$T/full"
: >"$T/standby.log"
hs_start_standby
hs_start_primary
hs_wait_log "$T/primary.log" "No space left on device" 1 30 ||
	hs_fail "the primary never heard of the standby's full disk"
said=0
for ((i = 0; i < 4; i++)); do
	hs_status "$C1" "$T/z1.json"
	r1=$HS_STATUS_RC
	hs_status "$C2" "$T/z2.json"
	[ "$r1" != 0 ] && [ "$HS_STATUS_RC" != 0 ] &&
		[ "$(q "$T/z1.json" 'state("data")')" = error ] &&
		has "$T/z1.json" 'why()' "set data .*standby mn2: .*No space left on device" &&
		[ "$(q "$T/z2.json" 'j["promote_ready"]["ready"]')" = False ] &&
		has "$T/z2.json" 'why()' "set data .*this standby (mn2): .*No space left on device" &&
		said=$((said + 1))
	sleep 0.5
done
[ "$said" = 4 ] && hs_ok "seed into a full disk: both nodes say why, none says ready or seeding" ||
	hs_bad "seed into a full disk: said $said times of 4: primary $(q "$T/z1.json" 'state("data"), why()'), standby $(q "$T/z2.json" 'j["promote_ready"], warn()')"
rm -f "$T/full/filler"
for ((i = 0; i < 900; i++)); do same && break; sleep 0.1; done
same || hs_fail "the first seed did not arrive 90 s after space returned"
both_ok 30 "seeded by itself once space returned: both nodes OK and in-sync, standby promote ready"

# ---------------------------------------------- 1. standby target_root full
fill "$T/full"
errs=$(grep -c "standby: .*No space left on device" "$T/primary.log" || true)
mkdir -p "$D/new"
for i in $(seq 1 12); do
	head -c 100000 /dev/urandom >"$D/new/f$i"
	sleep 0.2
done
hs_wait_log "$T/primary.log" "standby: .*No space left on device" $((errs + 1)) 30 ||
	hs_fail "the primary never heard of the standby's failures"

# While the disk stays full, the files are missing and every status says
# so, with the node and the reason.  Polled for 4 s (retries happen).
said_ready=0
said_sync=0
named=0
pwhy=0
lagged=0
for ((i = 0; i < 8; i++)); do
	hs_status "$C2" "$T/f2.json"
	r2=$HS_STATUS_RC
	hs_status "$C1" "$T/f1.json"
	r1=$HS_STATUS_RC
	[ "$(q "$T/f2.json" 'j["promote_ready"]["ready"]')" = True ] &&
		said_ready=$((said_ready + 1))
	[ "$(q "$T/f2.json" 'state("data")')" = in-sync ] ||
		[ "$(q "$T/f1.json" 'state("data")')" = in-sync ] &&
		said_sync=$((said_sync + 1))
	has "$T/f2.json" 'why()' "paths of set data failed to apply on this standby (mn2): .*No space left on device" &&
		has "$T/f2.json" 'warn()' "target_root $T/full on mn2 is full" &&
		[ "$r2" != 0 ] && named=$((named + 1))
	has "$T/f1.json" 'warn()' "paths of set data failed to apply on standby mn2: .*No space left on device (first: $D/new/" &&
		has "$T/f1.json" 'why()' "failed to apply on standby mn2" &&
		[ "$(q "$T/f1.json" 'state("data")')" = error ] && [ "$r1" != 0 ] &&
		pwhy=$((pwhy + 1))
	[ "$(q "$T/f1.json" 'j["lag"]["seconds"] > 0')" = True ] &&
		[ "$(q "$T/f2.json" 'j["lag"]["seconds"] is None or j["lag"]["seconds"] > 0')" = True ] &&
		lagged=$((lagged + 1))
	sleep 0.5
done
same && hs_fail "the standby's copy is complete although its disk is full"
[ "$said_ready" = 0 ] && hs_ok "full: the standby never said promote ready" ||
	hs_bad "full: the standby said promote ready $said_ready times of 8 with files missing ($(q "$T/f2.json" 'j["promote_ready"]'))"
[ "$said_sync" = 0 ] && hs_ok "full: neither node said in-sync" ||
	hs_bad "full: in-sync said $said_sync times of 8 with files missing"
[ "$named" = 8 ] && hs_ok "full: the standby names its full target_root, the failed paths and why" ||
	hs_bad "full: the standby said it $named times of 8: $(q "$T/f2.json" 'why(), warn()')"
[ "$pwhy" = 8 ] && hs_ok "full: the primary says which paths failed on standby mn2 and why" ||
	hs_bad "full: the primary said it $pwhy times of 8: $(q "$T/f1.json" 'state("data"), why(), warn()')"
[ "$lagged" = 8 ] && hs_ok "full: the lag counts the missing files" ||
	hs_bad "full: lag 0 in $((8 - lagged)) of 8 polls: $(q "$T/f1.json" 'j["lag"]')"

# No partial file under a final name: what is there is the whole file.
torn=0
for f in "$T/full$D/new"/*; do
	[ -e "$f" ] || continue
	case ${f##*/} in .hamnsync-tmp.*) continue ;; esac
	cmp -s "$f" "$D/new/${f##*/}" || { torn=1; echo "torn: $f"; }
done
[ "$torn" = 0 ] && hs_ok "full: no partial file under a final name" ||
	hs_bad "full: a partial file under a final name"

# Space returns: the retries bring the files, with no signal and no sync.
rm -f "$T/full/filler"
for ((i = 0; i < 900; i++)); do same && break; sleep 0.1; done
same && hs_ok "full: space returned: the files arrived by themselves" ||
	hs_bad "full: not identical 90 s after space returned: $(rsync -naiHAXc --numeric-ids --delete "$D/" "$T/full$D/" | head -5)"
both_ok 30 "full: after space returned both nodes say OK, in-sync, promote ready"
left=$(find "$T/full$D" -name '.hamnsync-tmp.*' | wc -l)
[ "$left" = 0 ] && hs_ok "full: no temporary file left" ||
	hs_bad "full: $left temporary files left"

# ------------------------------------------------ 2. primary state_dir full
fill "$T/pstate"
mkdir -p "$D/many"
for i in $(seq 1 1500); do echo "file $i" >"$D/many/m$i"; done
for ((i = 0; i < 300; i++)); do same && break; sleep 0.1; done
same && hs_ok "primary state_dir full: the files still replicate" ||
	hs_bad "primary state_dir full: the files did not replicate"
named=0
for ((i = 0; i < 100; i++)); do
	hs_status "$C1" "$T/p1.json"
	if [ "$HS_STATUS_RC" != 0 ] &&
		has "$T/p1.json" 'warn()' "state_dir $T/pstate on mn1 is full" &&
		has "$T/p1.json" 'warn()' "the index in $T/pstate on mn1 cannot be written: "; then
		named=1
		break
	fi
	sleep 0.2
done
[ "$named" = 1 ] && hs_ok "primary state_dir full: status names it and the index" ||
	hs_bad "primary state_dir full: status said exit $HS_STATUS_RC: $(q "$T/p1.json" 'warn()')"
rm -f "$T/pstate/filler"
echo "after" >"$D/many/after"
for ((i = 0; i < 300; i++)); do same && break; sleep 0.1; done
both_ok 90 "primary state_dir: space returned: both nodes OK again by themselves"
grep -q "the index in $T/pstate is written again" "$T/primary.log" &&
	hs_ok "primary state_dir: the index is written again" ||
	hs_bad "primary state_dir: the index was not written again"

# ------------------------------------------------ 3. standby state_dir full
fill "$T/sstate"
mkdir -p "$D/more"
for i in $(seq 1 300); do echo "more $i" >"$D/more/m$i"; done
for ((i = 0; i < 300; i++)); do same && break; sleep 0.1; done
same && hs_ok "standby state_dir full: the files still replicate" ||
	hs_bad "standby state_dir full: the files did not replicate"
named=0
for ((i = 0; i < 50; i++)); do
	hs_status "$C2" "$T/q2.json"
	if [ "$HS_STATUS_RC" != 0 ] &&
		has "$T/q2.json" 'warn()' "state_dir $T/sstate on mn2 is full"; then
		named=1
		break
	fi
	sleep 0.2
done
[ "$named" = 1 ] && hs_ok "standby state_dir full: status names it" ||
	hs_bad "standby state_dir full: status said exit $HS_STATUS_RC: $(q "$T/q2.json" 'warn()')"
rm -f "$T/sstate/filler"
echo "after" >"$D/more/after"
for ((i = 0; i < 300; i++)); do same && break; sleep 0.1; done
same && hs_ok "standby state_dir: identical after space returned" ||
	hs_bad "standby state_dir: not identical after space returned"
both_ok 60 "standby state_dir: space returned: both nodes OK again by themselves"

kill -0 "$PRIMARY_PID" 2>/dev/null && kill -0 "$STANDBY_PID" 2>/dev/null &&
	hs_ok "both daemons still run" || hs_bad "a daemon died"
! grep -q "SIGUSR1\|reconciling every set whole" "$T/primary.log" ||
	echo "note: the primary reconciled whole: $(grep -c "reconciling every set whole" "$T/primary.log")"
hs_result diskfull
