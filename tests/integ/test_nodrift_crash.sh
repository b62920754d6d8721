#!/usr/bin/env bash
# test_nodrift_crash.sh - a version hamnsync wrote is never drift, also
# when the standby dies between putting it in place and committing its
# record (apply_flush renames, then apply_recs_commit).
#
# For each failpoint of that window (apply.after_rename: after the
# renames, before the records; standby.records_commit: at the records'
# commit), with both daemons running and a seeded tree:
# 1. Own write: file `own` is edited on the primary; the standby,
#    started with the failpoint armed for its first hit, dies with the
#    new version in place and the old record.  Started again, it gets
#    `own` again (re-sent, then edited once more): nothing may be kept
#    under drift/ and no "changed on this standby" line logged.
# 2. Real drift in the same window: file `hand` is edited on the primary,
#    the standby dies as above; while it is down, its copy of `hand` is
#    changed by hand (same size, same inode).  Started again, the
#    primary's next version must not replace that copy before it is kept
#    under drift/.
# Each round ends with the primary saying in sync and the trees equal.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

FAILPOINTS=${HS_NDC_FPS:-"apply.after_rename standby.records_commit"}

hs_init nodrift_crash
D=$T/src/data
mkdir -p "$D"
echo "own, as seeded" >"$D/own"
echo "hand, as seeded" >"$D/hand"
echo "mv1, as seeded" >"$D/mv1"
for i in $(seq 1 10); do echo "other $i" >"$D/f$i"; done
hs_setup_pair "
[path data]
source = $D"
COPY=$T/standby$D

# start_armed SPEC: the standby daemon with HAMNSYNC_FAILPOINTS=SPEC,
# waiting (bounded) until it listens; its PID in STANDBY_PID.
start_armed() {
	local before i
	before=$(grep -c "listening on" "$T/standby.log" 2>/dev/null || true)
	HAMNSYNC_FAILPOINTS=$1 "$HS_BIN" -c "$C2" daemon --foreground \
		>>"$T/standby.log" 2>&1 &
	STANDBY_PID=$!
	HS_PIDS+=("$STANDBY_PID")
	for ((i = 0; i < 200; i++)); do
		[ "$(grep -c "listening on" "$T/standby.log" || true)" -gt \
			"${before:-0}" ] && return 0
		sleep 0.1
	done
	hs_fail "armed standby did not start listening"
}

# crash_on FP FILE TEXT: arm FP on a fresh standby, write TEXT to FILE on
# the primary, and wait until the standby fired FP and is gone.
crash_on() {
	local fired
	hs_stop_standby
	wait "$STANDBY_PID" 2>/dev/null || true
	fired=$(grep -c "failpoint $1 fired" "$T/standby.log" || true)
	start_armed "$1=1*crash"
	# The primary reconnects: let that settle before the edit.
	hs_wait_same "$1: armed standby connected" 60 "$D"
	echo "$3" >"$D/$2"
	hs_wait_log "$T/standby.log" "failpoint $1 fired" $((fired + 1)) 60 ||
		hs_fail "$1: the failpoint did not fire for $2"
	hs_wait_gone "$STANDBY_PID" 100 || hs_fail "$1: the standby did not die"
	wait "$STANDBY_PID" 2>/dev/null || true
}

hs_start_standby
hs_start_primary
hs_wait_same "seeded" 60 "$D"

for fp in $FAILPOINTS; do
	# ------------------------------------------------- 1. own write
	copies=$(hs_drift_copies)
	lines=$(hs_drift_lines)
	crash_on "$fp" own "own, written before the crash at $fp"
	if [ "$(cat "$COPY/own")" = "own, written before the crash at $fp" ]; then
		hs_ok "$fp: the standby died with the new version of own in place"
	else
		hs_bad "$fp: the standby died before own was in place"
	fi
	hs_start_standby
	hs_wait_same "$fp: converged after the restart" 60 "$D"
	echo "own, edited after the crash at $fp" >"$D/own"
	hs_wait_same "$fp: own edited after the restart" 60 "$D"
	if [ "$(hs_drift_copies)" -eq "$copies" ] && [ "$(hs_drift_lines)" -eq "$lines" ]; then
		hs_ok "$fp: own write not taken for drift"
	else
		hs_bad "$fp: own write taken for drift:" \
			"$(($(hs_drift_copies) - copies)) copies, $(($(hs_drift_lines) - lines)) lines"
		grep "changed on this standby" "$T/standby.log" | tail -2 || true
	fi

	# ------------------------------- 2. own write, renamed, then edited
	copies=$(hs_drift_copies)
	lines=$(hs_drift_lines)
	crash_on "$fp" mv1 "mv1, written before the crash at $fp"
	mv "$D/mv1" "$D/mv2"
	hs_start_standby
	hs_wait_same "$fp: mv1 renamed to mv2 after the crash" 60 "$D"
	echo "mv2, edited after the crash at $fp" >"$D/mv2"
	hs_wait_same "$fp: mv2 edited" 60 "$D"
	mv "$D/mv2" "$D/mv1"
	hs_wait_same "$fp: mv2 renamed back to mv1" 60 "$D"
	if [ "$(hs_drift_copies)" -eq "$copies" ] && [ "$(hs_drift_lines)" -eq "$lines" ]; then
		hs_ok "$fp: own write, renamed, not taken for drift"
	else
		hs_bad "$fp: own write, renamed, taken for drift:" \
			"$(($(hs_drift_copies) - copies)) copies, $(($(hs_drift_lines) - lines)) lines"
		grep "changed on this standby" "$T/standby.log" | tail -2 || true
	fi

	# ------------------------------------------- 3. real drift, same window
	crash_on "$fp" hand "hand, written before the crash at $fp"
	# Same size, same inode: only the content tells it from hamnsync's.
	before=$(stat -c '%i %s' "$COPY/hand")
	hand_text=$(cat "$COPY/hand" | tr 'a-z' 'A-Z')
	printf '%s\n' "$hand_text" >"$COPY/hand"
	[ "$(stat -c '%i %s' "$COPY/hand")" = "$before" ] ||
		hs_fail "$fp: the hand edit changed the inode or size"
	want=$(sha256sum <"$COPY/hand" | cut -d' ' -f1)
	hs_start_standby
	echo "hand, edited after the crash at $fp" >"$D/hand"
	hs_wait_same "$fp: hand edited after the restart" 60 "$D"
	found=0
	while IFS= read -r f; do
		[ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$want" ] && found=1
	done < <(find "$T/state2/drift" -type f -name 'hand.*' 2>/dev/null || true)
	if [ "$found" = 1 ]; then
		hs_ok "$fp: a hand edit in the window is still kept under drift/"
	else
		hs_bad "$fp: the hand-edited copy of hand was not kept under drift/"
	fi
done

hs_result test_nodrift_crash
