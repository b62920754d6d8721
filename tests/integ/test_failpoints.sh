#!/usr/bin/env bash
# The failpoint walk: every failpoint (common/failpoint.c), with `crash`
# and with `err(ENOSPC)`, on the node it lives on.  Each case:
#   - seeds a small tree with `sync`, then starts both daemons, the one
#     under test with HAMNSYNC_FAILPOINTS=NAME=1*ACTION@8 (fires once, at
#     its 8th hit, HS_FP_HIT);
#   - runs a writer that creates, changes, renames and deletes files (and
#     now and then writes a few MiB, so a long bulk run lets the express
#     lane work) until the failpoint fired (its log line);
#   - for crash: the daemon is gone; it is started again without the
#     variable; the writer goes on for 20 more rounds (HS_FP_AFTER), then
#     stops; for err: the writer stops at once, at its next round (a
#     failed path must be retried by itself, not saved by a later change);
#   - then, with no signal and no manual sync, waits (bounded) until the
#     copy equals the source (oracle: rsync -naiHAXc --numeric-ids
#     --modify-window=-1 --delete), polling `status --json` on both nodes
#     meanwhile: whenever either says in sync (every path in-sync, or
#     promote_ready) while the trees differ, status is asked again at once
#     and the trees compared again (a change read from inotify one loop
#     late is not a lie); a claim that stands is counted as a failure;
#   - and checks: no temporary file under target_root, nothing kept as
#     drift (only hamnsync wrote the copy), status answers on both nodes
#     (not UNKNOWN), and, both daemons stopped, both indexes open
#     (`status` reads them from disk: not UNKNOWN, no damage).
# One case alone: HS_FP_ONLY="NAME:ACTION ..." (ACTION crash or
# err(ENOSPC); NAME alone: both).  HS_FP_CONVERGE: the bound in seconds.
# Also: a bad HAMNSYNC_FAILPOINTS stops the daemon at start with one line
# naming what is wrong.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

FPS_STANDBY="apply.before_write apply.after_write apply.before_rename
apply.after_rename apply.before_delete standby.records_commit
standby.index_commit standby.before_ack"
FPS_PRIMARY="primary.journal_write primary.index_commit express.send
express.ack"
# Walked by the failover tests, not by this walk of the daemons:
# failover.step kills rejoin as a step begins (test_rejoin.sh).
FPS_ELSEWHERE="failover.step"
ACTIONS="crash err(ENOSPC)"
CONVERGE=${HS_FP_CONVERGE:-30}
# The failpoint fires once, on this hit: the writer is well under way.
HIT=${HS_FP_HIT:-8}
# Writer rounds after the firing (and restart) before it stops.
AFTER=${HS_FP_AFTER:-20}

hs_init failpoints
mkdir -p "$T/pki/mn1"
hs_pki

# --------------------------------------------------- start-up refusals

# bad_spec SPEC WORD: the daemon refuses SPEC at start, exit 2, one line
# naming WORD.
bad_spec() {
	local out rc=0
	out=$(HAMNSYNC_FAILPOINTS=$1 "$HS_BIN" -c /nonexistent/hs.conf \
		daemon --foreground 2>&1) || rc=$?
	if grep -q "this build has no failpoints" <<<"$out"; then
		hs_fail "$HS_BIN was built without HS_FAILPOINTS (scripts/build.sh builds with them)"
	fi
	if [ "$rc" -eq 2 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] &&
		grep -qF -- "$2" <<<"$out"; then
		hs_ok "start refuses HAMNSYNC_FAILPOINTS=$1: $out"
	else
		hs_bad "start with HAMNSYNC_FAILPOINTS=$1: exit $rc, said: $out"
	fi
}
bad_spec "apply.before_wirte=crash" '"apply.before_wirte"'
bad_spec "apply.before_write=explode" '"explode"'
bad_spec "apply.before_write=err(ENOSAPCE)" "err(ENOSAPCE)"
bad_spec "apply.before_write=0*crash" "apply.before_write"

# The walk covers every failpoint the program knows (its error lists them).
known=$(HAMNSYNC_FAILPOINTS=x=crash "$HS_BIN" status 2>&1 || true)
known=$(echo "$known" | sed -n 's/.*(known: \(.*\))$/\1/p' |
	tr ' ' '\n' | sort | xargs)
walked=$(echo $FPS_STANDBY $FPS_PRIMARY $FPS_ELSEWHERE | tr ' ' '\n' |
	sort | xargs)
if [ -n "$known" ] && [ "$known" = "$walked" ]; then
	hs_ok "the walk covers every failpoint of $HS_BIN"
else
	hs_bad "failpoints of $HS_BIN: \"$known\"; walked: \"$walked\""
fi

# ------------------------------------------------------------- one case

# fp_conf FILE NAME ROLE STATE CERTDIR PEERFP: the config of one node of
# case $CD (hs_conf's, port $PORT, target_root $CD/root), with its sets.
fp_conf() {
	HS_TARGET_ROOT=$CD/root hs_conf "$@"
	cat >>"$1" <<CONF
max_delete_percent = 100

[path data]
source = $CD/src/data

[path conf]
source = $CD/src/conf
CONF
}

# gen_tree: 160 small files in 8 folders, a 1 MiB file, 5 config files.
gen_tree() {
	local i
	mkdir -p "$CD/src/data/new" "$CD/src/data/moved" "$CD/src/conf" \
		"$CD/root"
	for i in $(seq 0 7); do
		mkdir -p "$CD/src/data/d$i"
	done
	for i in $(seq 0 159); do
		printf 'file %d\n' "$i" >"$CD/src/data/d$((i % 8))/f$i"
	done
	head -c 1048576 /dev/urandom >"$CD/src/data/big"
	for i in $(seq 0 4); do
		printf 'key%d = value\n' "$i" >"$CD/src/conf/c$i.conf"
	done
}

# writer [LOG PATTERN]: until $CD/stop exists (at most 1200 rounds), or
# LOG has a line with PATTERN: create, change, rename, delete (and a few
# MiB now and then, for the express lane).
writer() {
	local d=$CD/src i=0 k
	while [ ! -e "$CD/stop" ] && [ $i -lt 1200 ]; do
		[ -n "${1:-}" ] && grep -qF -- "$2" "$1" && break
		i=$((i + 1))
		echo "$i" >"$CD/rounds"
		k=$((i % 40))
		printf 'created %d\n' "$i" >"$d/data/new/n$k"
		printf 'change %d\n' "$i" >>"$d/data/d$((i % 8))/f$((i % 160))"
		[ -e "$d/data/new/n$(((i + 20) % 40))" ] &&
			mv "$d/data/new/n$(((i + 20) % 40))" "$d/data/moved/m$((i % 30))"
		((i % 2 == 0)) && rm -f "$d/data/moved/m$(((i + 15) % 30))"
		printf 'key = %d\n' "$i" >"$d/conf/c$((i % 5)).conf"
		# Short-lived: made in one round, gone three rounds later.
		printf 'brief %d\n' "$i" >"$d/data/new/brief$i"
		rm -f "$d/data/new/brief$((i - 3))"
		if ((i % 12 == 3)); then
			head -c 4194304 /dev/urandom >"$CD/scratch"
			mv "$CD/scratch" "$d/data/big$((i % 2))"
		fi
		sleep 0.05
	done
}

# start_node WHO SPEC: start the primary (1) or the standby (2) daemon,
# HAMNSYNC_FAILPOINTS=SPEC when SPEC is not empty; its PID in PID1/PID2.
start_node() {
	local conf log pid
	conf=$CD/mn$1.conf
	log=$T/$CASE_NO-$([ "$1" = 1 ] && echo primary || echo standby).log
	if [ -n "$2" ]; then
		HAMNSYNC_FAILPOINTS=$2 "$HS_BIN" -c "$conf" daemon --foreground \
			>>"$log" 2>&1 &
	else
		"$HS_BIN" -c "$conf" daemon --foreground >>"$log" 2>&1 &
	fi
	pid=$!
	HS_PIDS+=("$pid")
	eval "PID$1=$pid"
}

# start_standby SPEC: start it and wait until it listens.
start_standby() {
	local before
	before=$(grep -c "listening on" "$T/$CASE_NO-standby.log" 2>/dev/null || true)
	start_node 2 "$1"
	hs_wait_log "$T/$CASE_NO-standby.log" "listening on" \
		$((${before:-0} + 1)) 20 ||
		return 1
}

# rounds_after N SECONDS: wait until the writer did N more rounds.
rounds_after() {
	local from i
	from=$(cat "$CD/rounds" 2>/dev/null || echo 0)
	for ((i = 0; i < $2 * 20; i++)); do
		[ "$(cat "$CD/rounds" 2>/dev/null || echo 0)" -ge $((from + $1)) ] &&
			return 0
		sleep 0.05
	done
	return 1
}

# oracle: the differences between each source and its copy (none:
# empty).
oracle() {
	local s
	for s in data conf; do
		rsync -naiHAXc --numeric-ids --modify-window=-1 --delete \
			"$CD/src/$s/" "$CD/root$CD/src/$s/" 2>&1 | sed "s|^|$s: |" ||
			true
	done
}

# claims: the nodes whose status (in $CD/st1.json, $CD/st2.json) says in
# sync: every path in-sync, or promote_ready.
claims() {
	python3 - "$CD/st1.json" "$CD/st2.json" <<'PY'
import json, sys
for node, f in zip(("primary", "standby"), sys.argv[1:]):
    try:
        j = json.load(open(f))
    except Exception:
        continue
    paths = j.get("paths") or []
    said = []
    if paths and all(p.get("state") == "in-sync" for p in paths):
        said.append("every path in-sync")
    if (j.get("promote_ready") or {}).get("ready") is True:
        said.append("promote ready")
    if said:
        print("%s said %s" % (node, " and ".join(said)))
PY
}

ask_status() {
	"$HS_BIN" -c "$CD/mn1.conf" status --json >"$CD/st1.json" 2>/dev/null || true
	"$HS_BIN" -c "$CD/mn2.conf" status --json >"$CD/st2.json" 2>/dev/null || true
}

# converge: wait at most CONVERGE s for identical trees, checking what
# status says meanwhile.  Sets CONVERGED, CONVERGE_MS and LIE.
converge() {
	local t0 end said d
	CONVERGED=0
	LIE=""
	t0=$(hs_now_ms)
	end=$((t0 + CONVERGE * 1000))
	while :; do
		if [ -z "$(oracle)" ]; then
			CONVERGED=1
			break
		fi
		ask_status
		said=$(claims)
		if [ -n "$said" ] && [ -n "$(oracle)" ]; then
			# Once more: a status one loop behind inotify corrects
			# itself at the next question.
			ask_status
			said=$(claims)
			d=$(oracle)
			if [ -n "$said" ] && [ -n "$d" ] && [ -z "$LIE" ]; then
				LIE="$(echo "$said" | tr '\n' ';') while: $(echo "$d" |
					head -3 | tr '\n' ' ')"
			fi
		fi
		[ "$(hs_now_ms)" -ge "$end" ] && break
		sleep 0.2
	done
	CONVERGE_MS=$(($(hs_now_ms) - t0))
}

# show_logs: the tail of the case's logs, after a failure.
show_logs() {
	local f
	for f in "$T/$CASE_NO"-*.log; do
		echo "    --- $(basename "$f") (last lines)"
		tail -n 8 "$f" | sed 's/^/    /'
	done
}

# run_case NAME ACTION NODE(1 primary, 2 standby)
run_case() {
	local fp=$1 action=$2 node=$3 spec what failed=0 rc pid t0 left
	CASE_NO=$((CASE_NO + 1))
	CD=$T/c$CASE_NO
	what="$fp:$action"
	spec="$fp=1*$action@$HIT"
	t0=$(hs_now_ms)
	mkdir -p "$CD"
	PORT=$(hs_free_port) || hs_fail "no free port"
	fp_conf "$CD/mn1.conf" mn1 primary "$CD/state1" "$T/pki/mn1" "$FP2"
	fp_conf "$CD/mn2.conf" mn2 standby "$CD/state2" "$T/pki/mn2" "$FP1"
	gen_tree
	PID1="" PID2=""

	# The seed, without the failpoint.
	start_standby "" || { hs_bad "$what: standby did not start"; show_logs; return; }
	set +e
	"$HS_BIN" -c "$CD/mn1.conf" sync >"$T/$CASE_NO-sync.out" 2>&1
	rc=$?
	set -e
	if [ "$rc" -ne 0 ]; then
		hs_bad "$what: seeding sync exited $rc"
		cat "$T/$CASE_NO-sync.out"
		hs_stop_pid "$PID2" || true
		return
	fi
	if [ "$node" = 2 ]; then
		hs_stop_pid "$PID2" || true
		start_standby "$spec" ||
			{ hs_bad "$what: standby did not start"; show_logs; return; }
		start_node 1 ""
	else
		start_node 1 "$spec"
	fi
	hs_wait_log "$T/$CASE_NO-primary.log" "connected to standby" 1 20 ||
		{ hs_bad "$what: the primary never connected"; failed=1; }

	rm -f "$CD/stop"
	local log=$T/$CASE_NO-$([ "$node" = 1 ] && echo primary || echo standby).log
	if [ "$action" = crash ]; then
		writer &
	else
		writer "$log" "failpoint $fp fired" &
	fi
	local wpid=$!
	HS_PIDS+=("$wpid")
	if ! hs_wait_log "$log" "failpoint $fp fired" 1 40; then
		hs_bad "$what: never fired while the writer ran"
		failed=1
	elif [ "$action" = crash ]; then
		pid=$([ "$node" = 1 ] && echo "$PID1" || echo "$PID2")
		if hs_wait_gone "$pid" 100; then
			wait "$pid" 2>/dev/null || true
			hs_forget "$pid"
		else
			hs_bad "$what: the daemon still runs after its crash"
			failed=1
			hs_stop_pid "$pid" || true
		fi
		# Started again without the variable: it must not fire again.
		if [ "$node" = 1 ]; then
			start_node 1 ""
			hs_wait_log "$T/$CASE_NO-primary.log" "connected to standby" \
				2 30 || { hs_bad "$what: the restarted primary never connected"; failed=1; }
		else
			start_standby "" ||
				{ hs_bad "$what: the standby did not start again"; failed=1; }
		fi
	fi
	# After a crash, some more changes with every daemon up again.  After
	# an error, none: a path that failed must be retried by itself, not
	# sent again because the writer happened to change it once more.
	if [ "$action" = crash ]; then
		rounds_after "$AFTER" 30 ||
			{ hs_bad "$what: the writer stalled"; failed=1; }
	fi
	touch "$CD/stop"
	wait "$wpid" 2>/dev/null || true
	hs_forget "$wpid"

	converge
	if [ "$CONVERGED" = 1 ]; then
		:
	else
		hs_bad "$what: copy differs from the source after ${CONVERGE}s without a signal or sync:"
		oracle | head -8 | sed 's/^/    /'
		failed=1
	fi
	if [ -n "$LIE" ]; then
		hs_bad "$what: status said in sync while the trees differed: $LIE"
		failed=1
	fi
	left=$(find "$CD/root" -name '.hamnsync-tmp.*' 2>/dev/null | head -3 || true)
	if [ -n "$left" ]; then
		hs_bad "$what: temporary files left under target_root: $left"
		failed=1
	fi
	# Nothing but hamnsync wrote the copy: no version of it is drift.
	left=$(find "$CD/state2/drift" -type f 2>/dev/null | head -3 || true)
	if [ -n "$left" ]; then
		hs_bad "$what: versions hamnsync wrote were kept as drift: $left"
		failed=1
	fi
	for n in 1 2; do
		set +e
		"$HS_BIN" -c "$CD/mn$n.conf" status >"$CD/status$n.out" 2>&1
		rc=$?
		set -e
		if [ "$rc" -eq 3 ]; then
			hs_bad "$what: status on mn$n (running) is UNKNOWN: $(head -c 300 "$CD/status$n.out")"
			failed=1
		fi
	done
	# Both stopped: `status` opens each index from disk.
	hs_stop_pid "$PID1" || { hs_bad "$what: the primary did not stop"; failed=1; }
	hs_stop_pid "$PID2" || { hs_bad "$what: the standby did not stop"; failed=1; }
	for n in 1 2; do
		set +e
		"$HS_BIN" -c "$CD/mn$n.conf" status >"$CD/status$n.out" 2>&1
		rc=$?
		set -e
		if [ "$rc" -eq 3 ] || grep -q "damaged" "$CD/status$n.out"; then
			hs_bad "$what: index of mn$n does not open once stopped (status exit $rc): $(head -c 300 "$CD/status$n.out")"
			failed=1
		fi
	done
	if [ "$failed" = 0 ]; then
		hs_ok "$what on $([ "$node" = 1 ] && echo primary || echo standby): fired, converged in ${CONVERGE_MS} ms, status honest, indexes open ($(($(hs_now_ms) - t0)) ms)"
		[ -n "${HS_KEEP:-}" ] || rm -rf "$CD" "$T/$CASE_NO"-*.log
	else
		show_logs
		FAILED_CASES+=("$what")
	fi
}

# wanted NAME ACTION: is this case in HS_FP_ONLY (or is it unset)?
wanted() {
	local w
	[ -z "${HS_FP_ONLY:-}" ] && return 0
	for w in $HS_FP_ONLY; do
		[ "$w" = "$1:$2" ] || [ "$w" = "$1" ] && return 0
	done
	return 1
}

CASE_NO=0
FAILED_CASES=()
RAN=0
for fp in $FPS_STANDBY $FPS_PRIMARY; do
	node=2
	case " $(echo $FPS_PRIMARY) " in *" $fp "*) node=1 ;; esac
	for action in $ACTIONS; do
		wanted "$fp" "$action" || continue
		RAN=$((RAN + 1))
		run_case "$fp" "$action" "$node"
	done
done
[ "$RAN" -gt 0 ] || hs_fail "HS_FP_ONLY=$HS_FP_ONLY names no case"
if [ "${#FAILED_CASES[@]}" -gt 0 ]; then
	echo "failing cases: ${FAILED_CASES[*]}"
fi
hs_result test_failpoints
