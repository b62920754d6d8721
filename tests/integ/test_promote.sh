#!/usr/bin/env bash
# `hamnsync promote` (issue 18, SPEC.md "Failover") on a pair replicating
# an xCAT-like /etc/xcat with its SQLite database (restore = on-promote),
# the standby's [failover] stop/regenerate/start commands pointing at a
# recorder that appends its name and $HAMNSYNC_STEP to a file.
#   1. daemon running: --dry-run prints the 7 steps and changes nothing;
#      promote is refused while the primary answers (exit 1, one line,
#      nothing changed); the primary killed (SIGKILL), promote resumes
#      and succeeds: every step "done in", the commands in order, the
#      database restored, role primary at epoch 1, the same daemon PID.
#   2. daemon stopped: the same, and a daemon runs as primary afterwards.
#   3. --force while the primary is alive succeeds and fences it; promote
#      on that fenced old primary is refused (rejoin first).
# Identity is not configured here (test_takeover_netns.sh covers it in
# network namespaces): the step runs `stop` and says so.
#
# Host changes: none.  Every wait is bounded.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
HS_NODE=${HS_TOOLS:-$top/build/bin}/hs-node

hs_init promote
hs_setup_xcat_pair
cat >>"$C2" <<CONF

[failover]
stop = $T/rec.sh $REC stop
regenerate = $T/rec.sh $REC makedns
regenerate = $T/rec.sh $REC makedhcp
start = $T/rec.sh $REC xcatd
step_timeout = 30s
CONF
STEPS="preflight fence drain database identity regenerate start"
WANT_REC="stop identity
makedns regenerate
makedhcp regenerate
xcatd start"

# replicate: a fresh pair, the snapshot at the standby, the trees equal.
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
		hs_bad "the database snapshot did not reach the standby"
	HS_COMPARE_EXCLUDE='*.sqlite*' hs_wait_same "$1: replicated" 60 "$X"
}

# promote ARGS...: run promote on the standby; PROMOTE_RC, output in
# $T/promote.out and $T/promote.err.
promote() {
	set +e
	"$HS_BIN" -c "$C2" promote "$@" >"$T/promote.out" 2>"$T/promote.err"
	PROMOTE_RC=$?
	set -e
}

# daemon_pid STATE_DIR: the pid in its pid file (empty when none).
daemon_pid() {
	cat "$1/hamnsync.pid" 2>/dev/null | tr -d ' \n' || true
}

# state: what promote must not change: the node state and the files of
# state_dir/promote with their contents.
state() {
	"$HS_NODE" "$T/state2"
	find "$T/state2/promote" -type f -exec md5sum {} + 2>/dev/null | sort || true
}

# promoted NAME: promote succeeded and left this node the primary.
promoted() {
	local s
	if [ "$PROMOTE_RC" -eq 0 ]; then
		hs_ok "$1: promote exits 0"
	else
		hs_bad "$1: promote exited $PROMOTE_RC: $(cat "$T/promote.out" "$T/promote.err")"
	fi
	for s in $STEPS; do
		hs_has "^promote: $s: done in [0-9.]* s" "$T/promote.out" ||
			hs_bad "$1: no \"$s: done in\" line"
	done
	[ "$(grep -c ': done in ' "$T/promote.out")" -ge 7 ] &&
		hs_ok "$1: each step printed with its duration"
	if [ "$(cat "$REC" 2>/dev/null)" = "$WANT_REC" ]; then
		hs_ok "$1: stop, regenerate, start ran once each, in order"
	else
		hs_bad "$1: recorded commands: $(tr '\n' ',' <"$REC" 2>/dev/null)"
	fi
	if [ "$(sqlite3 "$R" "SELECT node FROM nodelist" 2>&1)" = cn001 ]; then
		hs_ok "$1: the database was restored and answers a query"
	else
		hs_bad "$1: $R: $(sqlite3 "$R" .dump 2>&1 | head -3)"
	fi
	if [ "$("$HS_NODE" "$T/state2")" = "primary 1 0" ]; then
		hs_ok "$1: the index says primary, epoch 1, no flag"
	else
		hs_bad "$1: the index says $("$HS_NODE" "$T/state2")"
	fi
	hs_expect_status "$1: status says primary at epoch 1, nothing about this node's state" \
		"$C2" 'd["role"] == "primary" and d["epoch"] == 1 and d["daemon"] == "running" and not any(w["severity"] == "critical" and any(k in w["text"] for k in ("rejoin", "split brain", "promot", "fenced")) for w in d["warnings"])'
	if [ -f "$T/state2/promote/promote-last.json" ] &&
		[ ! -e "$T/state2/promote/promote.json" ]; then
		hs_ok "$1: the step state is kept as promote-last.json"
	else
		hs_bad "$1: state_dir/promote holds $(ls "$T/state2/promote" 2>&1)"
	fi
}

# ------------------------------------------------- 1. daemon running
replicate "1"
before=$(state)
promote --dry-run
if [ "$PROMOTE_RC" -eq 0 ] &&
	[ "$(grep -c '^  [1-7]\. [a-z]*: ' "$T/promote.out")" -eq 7 ]; then
	hs_ok "1: --dry-run prints the plan, 7 numbered steps"
else
	hs_bad "1: --dry-run exit $PROMOTE_RC: $(cat "$T/promote.out" "$T/promote.err")"
fi
[ "$(state)" = "$before" ] && [ ! -e "$REC" ] &&
	hs_ok "1: --dry-run changed nothing (node state, state_dir/promote)" ||
	hs_bad "1: --dry-run changed: $(state)"

promote
line="hamnsync: promote: preflight: mn1 still answers as primary at epoch 0: use \`hamnsync switchover\` for a planned swap, or promote --force"
# stderr is the log too (its lines begin with the time): one error line.
if [ "$PROMOTE_RC" -eq 1 ] &&
	[ "$(grep -v '^[0-9:.]* hamnsync\[' "$T/promote.err")" = "$line" ]; then
	hs_ok "1: refused while the primary answers: exit 1, one line"
else
	hs_bad "1: promote with the primary alive: exit $PROMOTE_RC: $(cat "$T/promote.err")"
fi
if [ "$("$HS_NODE" "$T/state2")" = "standby 0 0" ] && [ ! -e "$REC" ] &&
	[ "$(ls "$T/state2/promote" | grep -vx lock)" = promote.json ] &&
	python3 -c 'import json, sys
s = json.load(open(sys.argv[1]))["steps"]
sys.exit(list(s) != ["preflight"] or s["preflight"]["state"] != "failed")' \
		"$T/state2/promote/promote.json"; then
	hs_ok "1: refused: epoch, role unchanged, only preflight's record"
else
	hs_bad "1: refused, yet: $("$HS_NODE" "$T/state2"); $(ls "$T/state2/promote")"
fi

pid=$STANDBY_PID
hs_stop_pid "$PRIMARY_PID" KILL
hs_wait_status "1: the standby sees its primary gone: not promote ready" 30 \
	"$C2" 'not d["promote_ready"]["ready"]'
promote
promoted "1 (daemon running)"
if hs_has '^promote: preflight: warning: not ready, rpo [0-9.a-z ]*: .*primary' "$T/promote.out"; then
	hs_ok "1: preflight warns that this standby was not ready, with the rpo"
else
	hs_bad "1: no readiness warning: $(grep preflight "$T/promote.out")"
fi
if hs_has '^promote: resuming at preflight (failed before)' "$T/promote.out"; then
	hs_ok "1: the refused preflight is run again"
else
	hs_bad "1: no resume line: $(head -2 "$T/promote.out")"
fi
if [ "$(daemon_pid "$T/state2")" = "$pid" ] && hs_alive "$pid"; then
	hs_ok "1: the same daemon process ($pid) now runs as primary"
else
	hs_bad "1: daemon pid $(daemon_pid "$T/state2"), was $pid"
fi
promote
if [ "$PROMOTE_RC" -eq 0 ] &&
	hs_has '^promote: this node is already the primary (epoch 1)$' "$T/promote.out"; then
	hs_ok "1: promote again: already the primary, exit 0"
else
	hs_bad "1: promote again: exit $PROMOTE_RC: $(cat "$T/promote.out" "$T/promote.err")"
fi
hs_stop_pid "$STANDBY_PID"

# ------------------------------------------------- 2. daemon stopped
replicate "2"
hs_stop_pid "$PRIMARY_PID" KILL
hs_stop_pid "$STANDBY_PID"
promote
promoted "2 (daemon stopped)"
if hs_has '^promote: preflight: done in [0-9.]* s: primary unreachable: peer mn1 .*refused' "$T/promote.out"; then
	hs_ok "2: preflight says the primary is unreachable, and goes on"
else
	hs_bad "2: preflight: $(grep preflight "$T/promote.out")"
fi
pid=$(daemon_pid "$T/state2")
if [ "${pid:-0}" -gt 0 ] && hs_alive "$pid"; then
	HS_PIDS+=("$pid")
	hs_ok "2: promote started the daemon (pid $pid)"
else
	hs_bad "2: no daemon runs after promote"
fi
hs_stop_pid "$pid"

# --------------------------------- 3. --force while the primary answers
replicate "3"
promote --force
promoted "3 (--force)"
if hs_has '^promote: preflight: done in .*mn1 answers as primary at epoch 0; --force' "$T/promote.out"; then
	hs_ok "3: preflight says the primary answered and --force went on"
else
	hs_bad "3: preflight: $(grep preflight "$T/promote.out")"
fi
for ((i = 0; i < 300; i++)); do
	[ "$("$HS_NODE" "$T/state1" 2>/dev/null)" = "primary 0 1" ] && break
	sleep 0.1
done
if [ "$("$HS_NODE" "$T/state1" 2>/dev/null)" = "primary 0 1" ]; then
	hs_ok "3: the old primary is fenced (needs rejoin)"
else
	hs_bad "3: the old primary's state: $("$HS_NODE" "$T/state1" 2>&1)"
fi

set +e
"$HS_BIN" -c "$C1" promote >"$T/promote.out" 2>"$T/promote.err"
PROMOTE_RC=$?
set -e
if [ "$PROMOTE_RC" -eq 1 ] &&
	[ "$(grep -v '^[0-9:.]* hamnsync\[' "$T/promote.err")" = "hamnsync: promote: this node is a primary fenced by a newer epoch (this node: 0): run \`hamnsync rejoin\` first" ] &&
	[ "$("$HS_NODE" "$T/state1")" = "primary 0 1" ]; then
	hs_ok "3: promote on the fenced old primary: exit 1, rejoin first"
else
	hs_bad "3: promote on the fenced primary: exit $PROMOTE_RC: $(cat "$T/promote.out" "$T/promote.err")"
fi

hs_result test_promote
