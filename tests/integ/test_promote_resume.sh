#!/usr/bin/env bash
# An interrupted `hamnsync promote` resumes at the step that did not
# finish and does not repeat those that did (issue 18, SPEC.md
# "Failover"), tried twice on a pair replicating /etc/xcat and its SQLite
# database, the primary killed and the standby's daemon stopped:
#   1. a regenerate command fails (exit 3 with a message): promote stops
#      at "regenerate" naming the command and its last line, exit 1; the
#      command fixed in the config, promote again prints the earlier
#      steps "done before", resumes at regenerate ("failed before"), and
#      neither `stop` (identity step) nor the database restore runs twice.
#   2. promote killed by SIGKILL while a regenerate command sleeps: the
#      next promote resumes at regenerate ("interrupted before").
# Both end with role primary at epoch 1 and a daemon running as primary.
#
# Host changes: none.  Every wait is bounded.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
HS_NODE=${HS_TOOLS:-$top/build/bin}/hs-node

hs_init promote_resume
hs_setup_xcat_pair
cat >"$T/fail.sh" <<'EOF'
#!/bin/sh
# fail.sh: a regenerate command that fails as makedhcp would.
echo "makedhcp: reading the networks table"
echo "makedhcp: no dynamic range for 192.0.2.0/24"
exit 3
EOF
cat >"$T/slow.sh" <<'EOF'
#!/bin/sh
# slow.sh MARKER: say it began (its process group), then hang.
ps -o pgid= $$ | tr -d ' ' >"$1.tmp" && mv "$1.tmp" "$1"
sleep 120
EOF
chmod +x "$T/fail.sh" "$T/slow.sh"
cp "$C2" "$T/mn2.base"

# failover_conf REGENERATE: the standby's config with [failover] whose
# second regenerate command is REGENERATE.
failover_conf() {
	cp "$T/mn2.base" "$C2"
	cat >>"$C2" <<CONF

[failover]
stop = $T/rec.sh $REC stop
regenerate = $T/rec.sh $REC makedns
regenerate = $1
start = $T/rec.sh $REC xcatd
step_timeout = 30s
CONF
}

# replicate NAME: a fresh pair, replicated; then the primary killed
# (SIGKILL) and the standby's daemon stopped.
replicate() {
	local i
	rm -rf "$T/state1" "$T/state2" "$T/standby" "$REC"
	mkdir -p "$T/state1" "$T/state2" "$T/standby"
	hs_start_standby
	hs_start_primary
	for ((i = 0; i < 300; i++)); do
		[ -f "$T/state2/db/xcatdb/MANIFEST" ] && break
		sleep 0.1
	done
	[ -f "$T/state2/db/xcatdb/MANIFEST" ] ||
		hs_bad "$1: the database snapshot did not reach the standby"
	HS_COMPARE_EXCLUDE='*.sqlite*' hs_wait_same "$1: replicated" 60 "$X"
	hs_stop_pid "$PRIMARY_PID" KILL
	hs_stop_pid "$STANDBY_PID"
}

promote() {
	set +e
	"$HS_BIN" -c "$C2" promote "$@" >"$T/promote.out" 2>"$T/promote.err"
	PROMOTE_RC=$?
	set -e
}

# resumed NAME HOW DBSTAT: the second promote resumed at regenerate
# (HOW: failed, interrupted), did not repeat stop nor the restore (the
# restored file's inode and mtime are still DBSTAT), and finished.
resumed() {
	local s pid
	for s in preflight fence drain database identity; do
		hs_has "^promote: $s: done before$" "$T/promote.out" ||
			hs_bad "$1: no \"$s: done before\""
	done
	if [ "$PROMOTE_RC" -eq 0 ] &&
		hs_has "^promote: resuming at regenerate ($2 before)$" "$T/promote.out" &&
		hs_has '^promote: regenerate: done in ' "$T/promote.out" &&
		hs_has '^promote: start: done in ' "$T/promote.out"; then
		hs_ok "$1: resumed at regenerate ($2 before) and finished"
	else
		hs_bad "$1: exit $PROMOTE_RC: $(cat "$T/promote.out" "$T/promote.err")"
	fi
	if [ "$(grep -c '^stop ' "$REC")" -eq 1 ] &&
		[ "$(grep -c '^xcatd start$' "$REC")" -eq 1 ]; then
		hs_ok "$1: stop ran once (not again on resume), start once"
	else
		hs_bad "$1: recorded: $(tr '\n' ',' <"$REC")"
	fi
	if [ "$(stat -c '%i %y' "$R")" = "$3" ] &&
		[ "$(sqlite3 "$R" "SELECT node FROM nodelist")" = cn001 ]; then
		hs_ok "$1: the database restored once, not again on resume"
	else
		hs_bad "$1: $R: $(stat -c '%i %y' "$R" 2>&1), was $3"
	fi
	if [ "$("$HS_NODE" "$T/state2")" = "primary 1 0" ]; then
		hs_ok "$1: role primary, epoch 1 (raised once)"
	else
		hs_bad "$1: the index says $("$HS_NODE" "$T/state2")"
	fi
	hs_expect_status "$1: status says primary at epoch 1" "$C2" \
		'd["role"] == "primary" and d["epoch"] == 1 and d["daemon"] == "running"'
	pid=$(cat "$T/state2/hamnsync.pid" 2>/dev/null | tr -d ' \n' || true)
	if [ "${pid:-0}" -gt 0 ] && hs_alive "$pid"; then
		HS_PIDS+=("$pid")
		hs_stop_pid "$pid"
	else
		hs_bad "$1: no daemon runs after promote"
	fi
}

# ------------------------------------ 1. a regenerate command that fails
failover_conf "$T/fail.sh"
replicate "1"
promote
why="$T/fail.sh: exit 3: makedhcp: no dynamic range for 192.0.2.0/24"
if [ "$PROMOTE_RC" -eq 1 ] &&
	[ "$(cat "$T/promote.err" | grep -v '^[0-9:.]* hamnsync\[')" = "hamnsync: promote: regenerate: $why" ] &&
	hs_has "^promote: regenerate: FAILED after [0-9.]* s: $why$" "$T/promote.out" &&
	hs_has '^promote: stopped at regenerate; run it again to resume$' "$T/promote.out"; then
	hs_ok "1: stopped at regenerate, naming the command and its last line, exit 1"
else
	hs_bad "1: exit $PROMOTE_RC: $(cat "$T/promote.out" "$T/promote.err")"
fi
if hs_has 'regenerate: .*fail.sh: makedhcp: reading the networks table' "$T/promote.err"; then
	hs_ok "1: the command's output is in the log (stderr)"
else
	hs_bad "1: the command's output is not in the log"
fi
if [ "$("$HS_NODE" "$T/state2")" = "standby 1 2" ] &&
	flock -n -s "$T/state2/hamnsync.pid" true; then
	hs_ok "1: still a standby, fenced at epoch 1, promoting; no daemon started"
else
	hs_bad "1: after the failure: $("$HS_NODE" "$T/state2")"
fi
dbstat=$(stat -c '%i %y' "$R" 2>&1)
failover_conf "$T/rec.sh $REC makedhcp"
promote
resumed "1" failed "$dbstat"

# ------------------------------ 2. promote killed while a command runs
failover_conf "$T/slow.sh $T/marker"
replicate "2"
rm -f "$T/marker"
"$HS_BIN" -c "$C2" promote >"$T/promote.out" 2>"$T/promote.err" &
pp=$!
HS_PIDS+=("$pp")
hs_wait_log "$T/marker" . 1 30 ||
	hs_bad "2: the regenerate command did not start: $(cat "$T/promote.out")"
pgid=$(cat "$T/marker")
hs_stop_pid "$pp" KILL
hs_ours "$pgid" && kill -KILL -- "-$pgid" 2>/dev/null || true
hs_has '^promote: identity: done in ' "$T/promote.out" &&
	! hs_has '^promote: regenerate: ' "$T/promote.out" &&
	hs_ok "2: promote killed inside regenerate" ||
	hs_bad "2: before the kill: $(cat "$T/promote.out")"
dbstat=$(stat -c '%i %y' "$R" 2>&1)
failover_conf "$T/rec.sh $REC makedhcp"
promote
resumed "2" interrupted "$dbstat"

# ------------------------------------------ 3. bad inputs, one line each
# nolog: stderr without the log's (timestamped) lines.
nolog() { grep -v '^[0-9:.]* hamnsync\[' "$T/promote.err" || true; }
"$HS_NODE" "$T/state2" standby 1 2
mkdir -p "$T/state2/promote"
echo "{ not json" >"$T/state2/promote/promote.json"
ran=$(grep -c . "$REC")
promote
if [ "$PROMOTE_RC" -eq 2 ] && [ "$(nolog | wc -l)" -eq 1 ] &&
	nolog | hs_has "^hamnsync: promote: $T/state2/promote/promote.json: unreadable (.*); remove it to start the command afresh$" &&
	[ "$("$HS_NODE" "$T/state2")" = "standby 1 2" ] && [ "$(grep -c . "$REC")" -eq "$ran" ]; then
	hs_ok "3: a damaged step state: exit 2, one line naming it, nothing run"
else
	hs_bad "3: damaged step state: exit $PROMOTE_RC: $(cat "$T/promote.err")"
fi
rm "$T/state2/promote/promote.json"
grep -v '^peer = ' "$C2" >"$T/nopeer.conf"
set +e
"$HS_BIN" -c "$T/nopeer.conf" promote >"$T/promote.out" 2>"$T/promote.err"
PROMOTE_RC=$?
set -e
if [ "$PROMOTE_RC" -eq 2 ] && [ "$(nolog | wc -l)" -eq 1 ] &&
	nolog | hs_has "^hamnsync: .*peer" &&
	[ "$("$HS_NODE" "$T/state2")" = "standby 1 2" ]; then
	hs_ok "3: no peer in the config: exit 2, one line ($(nolog))"
else
	hs_bad "3: no peer: exit $PROMOTE_RC: $(cat "$T/promote.out" "$T/promote.err")"
fi

# ------------- 4. killed before fence, then the primary is back: refused
# Preflight found the primary dead; promote died before fence stored
# anything.  The primary back, a rerun resumed at fence asks it again.
replicate "4"
set +e
HAMNSYNC_FAILPOINTS='failover.step=1*crash@2' "$HS_BIN" -c "$C2" promote \
	>"$T/promote.out" 2>"$T/promote.err"
set -e
if hs_has '^promote: preflight: done in ' "$T/promote.out" &&
	! hs_has '^promote: fence: ' "$T/promote.out" &&
	[ "$("$HS_NODE" "$T/state2")" = "standby 0 0" ]; then
	hs_ok "4: promote killed after preflight, before fence"
else
	hs_bad "4: before the kill: $(cat "$T/promote.out") $("$HS_NODE" "$T/state2")"
fi
n=$(hs_count_log "$T/primary.log" "listening on")
hs_start_primary
hs_wait_log "$T/primary.log" "listening on" $((n + 1)) 10 ||
	hs_bad "4: the primary did not listen again"
: >>"$REC"
ran=$(grep -c . "$REC" || true)
promote
if [ "$PROMOTE_RC" -eq 1 ] && [ "$(nolog | wc -l)" -eq 1 ] &&
	nolog | hs_has '^hamnsync: promote: fence: .* still answers as primary at epoch 0: ' &&
	[ "$("$HS_NODE" "$T/state2")" = "standby 0 0" ] &&
	[ "$("$HS_NODE" "$T/state1")" = "primary 0 0" ] &&
	[ "$(grep -c . "$REC" || true)" -eq "$ran" ]; then
	hs_ok "4: resumed at fence, the primary probed again: refused, exit 1"
else
	hs_bad "4: exit $PROMOTE_RC: $(cat "$T/promote.out" "$T/promote.err") $("$HS_NODE" "$T/state2")"
fi
hs_expect_status "4: the primary still says primary at epoch 0" "$C1" \
	'd["role"] == "primary" and d["epoch"] == 0'
hs_stop_pid "$PRIMARY_PID"

hs_result test_promote_resume
