#!/usr/bin/env bash
# test_nodrift.sh - a version hamnsync wrote is never drift.
#
# Both daemons run throughout; sets "big" and "data" on the primary, with
# bwlimit so a big file streams for seconds (the bulk lane busy, the
# express lane carrying small changes beside it).  Each part waits until
# the primary says every set is in sync and, just after, the trees are
# equal (rsync -naiHAXc oracle); hamnsync's own writes must leave nothing
# under state_dir/drift/ and no "changed on this standby" line:
# 1. A file renamed over another one, then edited (the rename carries the
#    record of the version hamnsync wrote to its new path).
# 2. A directory rotated (mv d d.old; mv d.new d), then a file in it edited
#    (the records of the files below move with their directory).
# 3. A chmod applied by a long bulk run, then the same file edited through
#    the express lane before that run ends (the chmod's record is not left
#    for the end of the run).
# 4. A writer creates, changes, chmods, renames and deletes many small
#    files for some seconds while big files stream; the standby's status
#    then carries no drift warning.
# 5. Real drift is still caught: a standby copy changed by hand is kept
#    under drift/ before the primary's edit replaces it, also when the
#    primary renames it or renames another file over it; status warns.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# The writer's time, in seconds, and the big files' size at the bwlimit.
WRITE_SECS=${HS_NODRIFT_SECS:-15}
BIG_MIB=8
BW_MIB=4

hs_init nodrift
S=$T/src
D=$S/data
mkdir -p "$S/big" "$D/a" "$D/b" "$D/c"
head -c 100000 /dev/urandom >"$S/big/seed.bin"
for i in $(seq 1 60); do
	echo "initial $i" >"$D/$(printf 'abc' | cut -c$((i % 3 + 1)))/f$i"
done
mkdir -p "$D/r" "$D/rot/d" "$D/rot/d.new" "$D/m" "$D/h"
echo "x" >"$D/r/x"
echo "y" >"$D/r/y"
echo "the first d/x" >"$D/rot/d/x"
echo "the next d/x" >"$D/rot/d.new/x"
head -c $((2 * 1024 * 1024)) /dev/urandom >"$D/m/p"
head -c 8192 /dev/urandom >"$D/zz-bulk.bin"
for f in u v w z; do echo "$f" >"$D/h/$f"; done
hs_setup_pair "
[path big]
source = $S/big

[path data]
source = $D"
sed -i "s/^peer_timeout = 5s$/&\nbwlimit = ${BW_MIB}M/" "$C1"
grep -q "^bwlimit = ${BW_MIB}M" "$C1" || hs_fail "bwlimit not set in $C1"

# no_drift NAME: nothing new kept under drift/, no new drift line in the
# log since the last no_drift (each part counts on its own).
BASE_COPIES=0
BASE_LINES=0
no_drift() {
	local copies lines
	copies=$(($(hs_drift_copies) - BASE_COPIES))
	lines=$(($(hs_drift_lines) - BASE_LINES))
	if [ "$copies" -eq 0 ] && [ "$lines" -eq 0 ]; then
		hs_ok "$1: no drift seen"
	else
		hs_bad "$1: own writes taken for drift: $copies copies," \
			"$lines lines"
		{ grep "changed on this standby" "$T/standby.log" || true; } |
			tail -n "$lines" | head -3 || true
	fi
	BASE_COPIES=$(hs_drift_copies)
	BASE_LINES=$(hs_drift_lines)
}
# settled NAME: in sync, then the trees equal, bounded.
settled() {
	if in_sync_and_equal 120; then
		hs_ok "$1: in sync just before the trees compared equal"
	else
		hs_bad "$1: no convergence: rc $RC $(cat "$T/p.json")"
		hs_compare "$S/big" "$D" || true
	fi
}
# kept NAME SHA: a copy of NAME with content SHA is under drift/.
kept() {
	local k
	for k in $(find "$T/state2/drift" -type f -name "$1.*" 2>/dev/null); do
		[ "$(sha256sum <"$k")" = "$2" ] && KEPT=${k#$T/} && return 0
	done
	return 1
}

# status_json CONF OUT: `status --json` into OUT; its exit status in RC.
status_json() {
	set +e
	"$HS_BIN" -c "$1" status --json >"$2" 2>"$2.err"
	RC=$?
	set -e
}
# in_sync: the primary says every set in sync with nothing pending.
in_sync() {
	status_json "$C1" "$T/p.json"
	python3 - "$T/p.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
lag = d.get("lag") or {}
sys.exit(0 if lag.get("files_pending") == 0 and d.get("paths") and
         all(p["state"] == "in-sync" for p in d["paths"]) else 1)
PY
}
# drift_warned: the standby's status warns of kept versions.
drift_warned() {
	status_json "$C2" "$T/s.json"
	python3 - "$T/s.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if any("changed on this standby" in w["text"]
                  for w in d.get("warnings", [])) else 1)
PY
}
# in_sync_and_equal SECONDS: until the primary says in sync and, just after, the
# trees are equal; bounded.
in_sync_and_equal() {
	local i
	for ((i = 0; i < $1 * 5; i++)); do
		if in_sync && hs_compare "$S/big" "$D" 2>/dev/null; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# churn SECONDS: many small changes of every kind under $D.
churn() {
	local end=$((SECONDS + $1)) i=0 d f g
	while [ $SECONDS -lt $end ]; do
		for d in a b c; do
			i=$((i + 1))
			f=$D/$d/f$((RANDOM % 60))
			g=$D/$d/f$((RANDOM % 60))
			case $((RANDOM % 8)) in
			0 | 1) echo "edit $i" >"$f" ;;
			2) echo "more $i" >>"$f" ;;
			3) [ -f "$f" ] && [ "$f" != "$g" ] && mv "$f" "$g" ;;
			4) rm -f "$f" ;;
			5) [ -f "$f" ] && chmod $((RANDOM % 2 ? 600 : 644)) "$f" ;;
			6) head -c $((RANDOM % 20000)) /dev/urandom >"$f" ;;
			7) echo "new $i" >"$D/$d/t$i" && mv "$D/$d/t$i" "$g" ;;
			esac || true
		done
		sleep 0.01
	done
}

# bigs SECONDS: a new big file whenever the last one is on the standby,
# so the bulk lane stays in long runs.
bigs() {
	local end=$((SECONDS + $1)) k=0
	while [ $SECONDS -lt $end ]; do
		k=$((k + 1))
		head -c $((BIG_MIB * 1024 * 1024)) /dev/urandom >"$S/big/b$k.iso"
		rm -f "$S/big/b$((k - 2)).iso"
		while [ $SECONDS -lt $end ] &&
			! [ "$(stat -c %s "$T/standby$S/big/b$k.iso" 2>/dev/null)" = \
				$((BIG_MIB * 1024 * 1024)) ]; do
			sleep 0.1
		done
	done
}

hs_start_standby
hs_start_primary
in_sync_and_equal 120 || hs_fail "no seed: $(tail -5 "$T/primary.log")"
hs_ok "seeded"

# ------------------------------------------- 1. a file renamed over another
mv "$D/r/x" "$D/r/y"
settled "rename over a file"
echo "edited after the rename" >>"$D/r/y"
settled "edit after the rename"
no_drift "rename over a file, then an edit"

# ----------------------------------------------- 2. a directory rotated
mv "$D/rot/d" "$D/rot/d.old"
mv "$D/rot/d.new" "$D/rot/d"
settled "directory rotation"
echo "edited after the rotation" >>"$D/rot/d/x"
echo "edited after the rotation" >>"$D/rot/d.old/x"
settled "edits after the rotation"
no_drift "directory rotation, then edits"

# ------------------------------- 3. a chmod, then an edit beside a long run
# m/p is above the express lane's file limit, so its chmod waits for the
# bulk lane.  While the bulk lane streams big/long.iso, m/p is chmodded
# and data/zz-bulk.bin grows: the bulk lane's next run of set data
# applies the chmod, then sends zz-bulk.bin as a delta (deltas go after
# every other operation of a run) for seconds.  Meanwhile m/p is
# rewritten small, which the express lane carries.
tmp_in() { ls -a "$1" 2>/dev/null | hs_has '^\.hamnsync-tmp\.'; }
head -c $((3 * BIG_MIB * 1024 * 1024)) /dev/urandom >"$S/big/long.iso"
for ((i = 0; i < 600; i++)); do
	tmp_in "$T/standby$S/big" && break
	sleep 0.05
done
[ $i -lt 600 ] || hs_bad "chmod: big/long.iso never streamed"
chmod 640 "$D/m/p"
head -c $((3 * BIG_MIB * 1024 * 1024)) /dev/urandom >>"$D/zz-bulk.bin"
for ((i = 0; i < 1200; i++)); do
	[ "$(stat -c %a "$T/standby$D/m/p")" = 640 ] && tmp_in "$T/standby$D" &&
		break
	sleep 0.05
done
[ $i -lt 1200 ] || hs_bad "chmod: not applied while zz-bulk.bin streams"
echo "rewritten small beside the long run" >"$D/m/p"
for ((i = 0; i < 600; i++)); do
	cmp -s "$D/m/p" "$T/standby$D/m/p" && break
	sleep 0.05
done
if [ "$(stat -c %s "$T/standby$D/zz-bulk.bin")" -eq 8192 ]; then
	hs_ok "chmod: the edit overtook the bulk run that applied the chmod"
else
	hs_bad "chmod: zz-bulk.bin arrived before the edit (no express lane?)"
fi
settled "chmod, then an edit"
no_drift "chmod by a long run, then an edit by the express lane"

# ---------------------------------------------------- 4. a busy writer
bigs "$WRITE_SECS" &
BIGS_PID=$!
HS_PIDS+=("$BIGS_PID")
churn "$WRITE_SECS"
wait "$BIGS_PID" || true

settled "busy writer"
grep -q "express lane to standby .* open" "$T/primary.log" &&
	hs_ok "the express lane was used" ||
	hs_bad "no express lane in the primary's log"
no_drift "busy writer, both lanes"
if drift_warned; then
	hs_bad "the standby's status warns of drift: $(grep '"text"' "$T/s.json")"
else
	hs_ok "the standby's status has no drift warning (exit $RC)"
fi

# ------------------------------------------- 5. real drift is still seen
# outside PATH...: change these standby copies by hand.
outside() {
	local f
	for f in "$@"; do
		echo "changed on the standby by hand" >>"$T/standby$D/$f"
	done
}
# expect_kept NAME SHA WHAT: a copy of NAME with SHA is under drift/.
expect_kept() {
	local i
	for ((i = 0; i < 600; i++)); do
		kept "$1" "$2" && break
		sleep 0.1
	done
	if kept "$1" "$2"; then
		hs_ok "$3: the standby's version kept at $KEPT"
	else
		hs_bad "$3: the standby's version of $1 is not under drift/"
	fi
}
# An edit of a drifted file.
outside h/z
sha_z=$(sha256sum <"$T/standby$D/h/z")
echo "the primary's next edit" >>"$D/h/z"
expect_kept z "$sha_z" "drifted file edited"
# A drifted file renamed, then edited: the drift moves with it.
outside h/u
sha_u=$(sha256sum <"$T/standby$D/h/u")
mv "$D/h/u" "$D/h/u2"
settled "rename of a drifted file"
echo "the primary's edit after the rename" >>"$D/h/u2"
expect_kept u2 "$sha_u" "drifted file renamed, then edited"
# A file renamed over a drifted one: that version is kept first.
outside h/w
sha_w=$(sha256sum <"$T/standby$D/h/w")
mv "$D/h/v" "$D/h/w"
expect_kept w "$sha_w" "file renamed over a drifted one"
settled "after the outside changes"
drift_warned && hs_ok "the standby's status warns of the kept versions" ||
	hs_bad "no drift warning: $(cat "$T/s.json")"

if [ "$HS_FAILED" -ne 0 ]; then
	echo "--- standby log (tail)"
	tail -15 "$T/standby.log"
fi
hs_result nodrift
