#!/usr/bin/env bash
# `hamnsync switchover` (issue 18, SPEC.md "Failover"): a healthy pair
# swaps roles under a new epoch, identities included, and the old primary
# rejoins.  No change made before the command began is lost; changes made
# on the old primary after the drain's cut are on the new primary or
# kept under state_dir/rejoin-EPOCH/ and listed, never lost silently.
#   1. --dry-run prints the plan and changes nothing.  Refused (one
#      line, roles and epochs unchanged, no command run): on the primary
#      while its standby's daemon is stopped (exit 3) or while the peer
#      is a primary too (exit 1), on the standby while the primary's
#      daemon is stopped (exit 1).
#  1b. Its release command failing after the drain: exit 1, the daemon
#      undrained (a drained one says so in status, critical); a file
#      written afterwards reaches mn2 and status is in-sync.
#   2. From the primary (mn1), a writer changing files in a loop, the
#      command killed as its handover step begins (the drained daemon
#      idles meanwhile) and run again: exit 0;
#      every write completed before the command began is on mn2 with its
#      content; the writes made after it are on mn2 or listed under
#      rejoin-1/; the recorded commands ran in order (stop and release on
#      mn1, then stop, regenerate and start on mn2); status on both: roles
#      swapped at epoch 1; the trees converge and `verify` on mn2 exits 0.
#   3. From the standby (mn1 again): back to mn1 as primary at epoch 2.
#
# Each node holds its copy of the replicated paths at P (target_root /)
# inside a mount namespace of its own, where its tree ($T/n1 or $T/n2) is
# bound on $T/src (as test_rejoin.sh).  The commands a daemon starts
# (promote --force, switchover) run in its namespace.  The `release`
# command of [failover] stands for the service being stopped: it stops
# the writer (and waits for it), so what the writer did is known.
#
# Host changes: none.  Every wait is bounded.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
HS_NODE=${HS_TOOLS:-$top/build/bin}/hs-node

hs_init switchover
mkdir -p "$T/n1" "$T/n2"
hs_gen_tree "$T/n1"
for n in 1 2; do
	mkdir -p "$T/n$n/xcat/db" "$T/n$n/install/w"
	sqlite3 "$T/n$n/xcat/db/site.sqlite" \
		"CREATE TABLE site(key TEXT PRIMARY KEY, value TEXT);
		 INSERT INTO site VALUES('master', 'mn$n');"
done
HS_TARGET_ROOT=/ hs_setup_pair "$(hs_sets_for "$T/src")

[database xcatdb]
type = sqlite
path = $T/src/xcat/db
interval = 1h"
REC=$T/rec.log
cat >"$T/rec.sh" <<'EOF'
#!/bin/sh
# rec.sh LOG NODE NAME: record that NAME ran on NODE, in which step.
echo "$2 $3 $HAMNSYNC_STEP" >>"$1"
EOF
# release.sh LOG NODE: recorded, then the writer is stopped (bounded).
cat >"$T/release.sh" <<EOF
#!/bin/sh
[ -e $T/release.fail ] && { echo "address still in use"; exit 4; }
$T/rec.sh "\$1" "\$2" release
touch $T/writer.stop
i=0
while [ -e $T/writer.running ] && [ ! -e $T/writer.stopped ] &&
	[ \$i -lt 100 ]; do
	sleep 0.1
	i=\$((i + 1))
done
EOF
chmod +x "$T/rec.sh" "$T/release.sh"
for n in 1 2; do
	cat >>"$T/mn$n.conf" <<CONF

[failover]
stop = $T/rec.sh $REC mn$n stop
release_command = $T/release.sh $REC mn$n
regenerate = $T/rec.sh $REC mn$n regenerate
start = $T/rec.sh $REC mn$n start
step_timeout = 30s
CONF
done

# node_daemon N: node N's daemon in the foreground, in its namespace,
# logging to $T/nN.log; its PID in DPID_N.
node_daemon() {
	hs_ns_daemon "$1" "$T/mn$1.conf" "$T/n$1.log"
	eval "DPID_$1=$DPID"
}

# on N CMD ARGS...: `hamnsync CMD` on node N; RC, $T/cmd.out, $T/cmd.err.
on() {
	local n=$1
	shift
	set +e
	nsenter -t "$(eval echo "\$NS_$n")" -m "$HS_BIN" -c "$T/mn$n.conf" \
		"$@" >"$T/cmd.out" 2>"$T/cmd.err"
	RC=$?
	set -e
}

# tree_diff A B: what rsync finds between node A's and node B's copies.
tree_diff() {
	local s
	for s in install xcat/ca xcat/cert; do
		rsync -naiHAXc --numeric-ids --delete "$T/n$1/$s/" "$T/n$2/$s/" 2>&1
	done
	for s in etc/hosts etc/resolv.conf; do
		rsync -naiHAXc --numeric-ids "$T/n$1/$s" "$T/n$2/$s" 2>&1
	done
}

nodes() { echo "$("$HS_NODE" "$T/state1") / $("$HS_NODE" "$T/state2")"; }

# in_sync N ROLE EPOCH: node N's status says ROLE at EPOCH, every set
# in-sync, nothing pending.
in_sync() {
	hs_wait_status "$4" 120 "$T/mn$1.conf" \
		"d['role'] == '$2' and d['epoch'] == $3 and d['daemon'] == 'running' and all(p['state'] == 'in-sync' for p in d['paths']) and d['lag']['files_pending'] == 0"
}

# converged A B NAME: the trees of A (primary) and B are identical.
converged() {
	local i
	for ((i = 0; i < 300; i++)); do
		[ -z "$(tree_diff "$1" "$2")" ] && break
		sleep 0.1
	done
	if [ -z "$(tree_diff "$1" "$2")" ]; then
		hs_ok "$3: the trees are identical (rsync oracle)"
	else
		hs_bad "$3: the trees differ: $(tree_diff "$1" "$2" | head -5)"
	fi
}

# The writer: on mn1's tree, file w/N holds "N SHA256(N)"; each completed
# write is logged.  It stops at $T/writer.stop and says so.
writer() {
	local i=0 sum
	touch "$T/writer.running"
	# A file it keeps open and appends to: the watcher holds it back
	# until it is quiet, so one is held back at the drain's cut.
	exec 7>>"$T/n1/install/held-open"
	while [ ! -e "$T/writer.stop" ]; do
		i=$((i + 1))
		echo "$i" >&7
		sum=$(printf '%s' "$i" | sha256sum | cut -c1-64)
		printf '%s %s\n' "$i" "$sum" >"$T/n1/install/w/$i"
		echo "$i" >>"$T/writes.log"
		sleep 0.02
	done
	exec 7>&-
	touch "$T/writer.stopped"
	rm -f "$T/writer.running"
}

# cpu_ticks PID: the user and system time the process used, in ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

hs_ns_hold 1
hs_ns_hold 2
node_daemon 2
hs_wait_log "$T/n2.log" "listening on" 1 30 ||
	hs_fail "mn2 did not start: $(tail -3 "$T/n2.log")"
node_daemon 1
in_sync 1 primary 0 "the pair replicates: mn1 primary, in-sync"
converged 1 2 "before"

# ------------------------------------------------------ 1. refusals
# refused NAME CODE TEXT: the command exited CODE with one error line
# holding TEXT, and nothing changed: node states and no command ran.
refused() {
	local line
	line=$(grep '^hamnsync: ' "$T/cmd.err" || true)
	if [ "$RC" -eq "$2" ] && [ "$(echo "$line" | wc -l)" -eq 1 ] &&
		echo "$line" | hs_has -F -- "$3"; then
		hs_ok "1: $1: exit $2 ($line)"
	else
		hs_bad "1: $1: exit $RC: $(cat "$T/cmd.out" "$T/cmd.err")"
	fi
	if [ "$(nodes)" = "$before" ] && [ ! -e "$REC" ]; then
		hs_ok "1: $1: nothing changed ($(nodes)), no command ran"
	else
		hs_bad "1: $1: changed: $(nodes); $(cat "$REC" 2>/dev/null)"
	fi
}
before=$(nodes)
on 1 switchover --dry-run
if [ "$RC" -eq 0 ] && [ "$(grep -c '^  [1-6]\. [a-z]*: ' "$T/cmd.out")" -eq 6 ] &&
	[ "$(nodes)" = "$before" ] && [ ! -e "$REC" ] &&
	[ ! -e "$T/state1/promote/switchover.json" ]; then
	hs_ok "1: --dry-run prints the plan in 6 steps and changes nothing"
else
	hs_bad "1: --dry-run: exit $RC: $(cat "$T/cmd.out" "$T/cmd.err")"
fi

hs_stop_pid "$DPID_2"
on 1 switchover
refused "the standby's daemon stopped, on the primary" 3 \
	"preflight: peer mn2 (127.0.0.1:$PORT) did not answer"

# The peer is a primary too (staged with hs-node: split brain).
"$HS_NODE" "$T/state2" primary 0 0
node_daemon 2
hs_wait_log "$T/n2.log" "listening on" 2 30 ||
	hs_fail "mn2 did not start again: $(tail -3 "$T/n2.log")"
before=$(nodes)
on 1 switchover
refused "the peer is not a standby" 1 \
	"mn2 answers as primary at epoch 0, not as the standby of this node's epoch 0"
hs_stop_pid "$DPID_2"
"$HS_NODE" "$T/state2" standby 0 0
before=$(nodes)
node_daemon 2
hs_wait_log "$T/n2.log" "listening on" 3 30 ||
	hs_fail "mn2 did not start again: $(tail -3 "$T/n2.log")"
in_sync 1 primary 0 "1: the pair replicates again"

# ------------------------- 1b. a release that fails leaves no drain
# Drained, then the release command fails: the switchover stops there
# and undrains the daemon; a file written afterwards reaches mn2, and
# status says in-sync, not drained.
touch "$T/release.fail"
on 1 switchover
rm -f "$T/release.fail"
if [ "$RC" -eq 1 ] && hs_has "^switchover: drain: done in" "$T/cmd.out" &&
	hs_has "^switchover: release: FAILED .*address still in use" "$T/cmd.out" &&
	hs_has "^switchover: the daemon was drained: it replicates again$" "$T/cmd.out" &&
	[ "$(nodes)" = "primary 0 0 / standby 0 0" ]; then
	hs_ok "1b: release failed: exit 1, the daemon undrained, roles unchanged"
else
	hs_bad "1b: exit $RC: $(cat "$T/cmd.out" "$T/cmd.err")"
fi
echo "after a failed switchover" >"$T/n1/install/after-fail"
hs_wait_log "$T/n2/install/after-fail" "after a failed switchover" 1 30 &&
	hs_ok "1b: a file written after it reached mn2" ||
	hs_bad "1b: a file written after it never reached mn2"
in_sync 1 primary 0 "1b: mn1 replicates, in-sync"
hs_expect_status "1b: no drain warning on mn1" "$C1" \
	'not any("drained" in w["text"] for w in d["warnings"])'
# Given up: the next switchover starts afresh, its commands recorded anew.
rm -f "$T/state1/promote/switchover.json" "$REC"

hs_stop_pid "$DPID_1"
hs_wait_status "mn2 sees its primary gone" 30 "$C2" \
	'd["peer"]["state"] != "connected"'
on 2 switchover
refused "the primary's daemon stopped, on the standby" 1 \
	"this standby is not connected to its primary"
node_daemon 1
in_sync 1 primary 0 "1: the pair replicates again"

# ---------------------------------- 2. from the primary, under a writer
writer &
WRITER=$!
HS_PIDS+=("$WRITER")
hs_wait_log "$T/writes.log" "^20$" 1 30 || hs_fail "the writer did not write"
# A change of the database that only the drain's snapshot carries
# (interval 1h: the last one was made at start).
sqlite3 "$T/n1/xcat/db/site.sqlite" \
	"UPDATE site SET value = 'mn1, changed before switchover'"
BEGAN=$(wc -l <"$T/writes.log")
# Killed (SIGKILL, a failpoint) as its handover step begins: drained,
# released, the peer not asked yet.  Run again, it resumes there.
export HAMNSYNC_FAILPOINTS='failover.step=1*crash@5'
on 1 switchover
unset HAMNSYNC_FAILPOINTS
cp "$T/cmd.out" "$T/so0.out"
sed 's/^/     /' "$T/so0.out"
if [ "$RC" -eq 137 ] && hs_has "^switchover: release: done in" "$T/so0.out" &&
	! hs_has "^switchover: handover" "$T/so0.out" &&
	[ "$(nodes)" = "primary 0 0 / standby 0 0" ]; then
	hs_ok "2: switchover killed as its handover began; roles unchanged"
else
	hs_bad "2: switchover with a crash at step 5: exit $RC: $(cat "$T/cmd.err")"
fi
# Drained, with a file held back at the cut: the daemon drives neither
# the watcher nor its timers any more, so it idles until the resume.
c0=$(cpu_ticks "$DPID_1")
sleep 3
used=$(($(cpu_ticks "$DPID_1") - c0))
if [ "$used" -lt 60 ]; then
	hs_ok "2: the drained daemon idles ($used ticks of CPU in 3 s)"
else
	hs_bad "2: the drained daemon used $used ticks of CPU in 3 s"
fi
hs_expect_status "2: status on the drained mn1 says so (critical)" "$C1" \
	'any(w["severity"] == "critical" and "drained by a switchover" in w["text"] for w in d["warnings"])'
on 1 switchover
cp "$T/cmd.out" "$T/so1.out"
sed 's/^/     /' "$T/so1.out"
if [ "$RC" -eq 0 ]; then hs_ok "2: switchover on mn1 again: exit 0"; else
	hs_bad "2: switchover: exit $RC: $(cat "$T/cmd.err")"
	tail -20 "$T/n1.log" "$T/n2.log" "$T/state2/promote/promote.out" 2>/dev/null
	hs_result test_switchover || exit 1
fi
wait "$WRITER" || true
hs_forget "$WRITER"
if [ "$(grep -c ': done before$' "$T/so1.out")" -eq 4 ] &&
	hs_has "^switchover: resuming at handover (interrupted before)" "$T/so1.out"; then
	hs_ok "2: it resumed at handover; the steps done were not run again"
else
	hs_bad "2: the resume: $(head -6 "$T/so1.out")"
fi
for s in preflight stop drain release handover rejoin; do
	cat "$T/so0.out" "$T/so1.out" | hs_has "^switchover: $s: done in [0-9.]* s" ||
		hs_bad "2: no \"$s: done in\" line"
done
if [ "$(nodes)" = "standby 1 0 / primary 1 0" ]; then
	hs_ok "2: the indexes say mn1 standby, mn2 primary, epoch 1"
else
	hs_bad "2: the indexes say $(nodes)"
fi
in_sync 2 primary 1 "2: mn2 is the primary at epoch 1, in-sync"
hs_expect_status "2: mn1 is its standby at epoch 1" "$C1" \
	'd["role"] == "standby" and d["epoch"] == 1 and d["daemon"] == "running"'
want="mn1 stop stop
mn1 release identity
mn2 stop identity
mn2 regenerate regenerate
mn2 start start"
if [ "$(cat "$REC")" = "$want" ]; then
	hs_ok "2: the commands ran in order: stop, release on mn1; stop, regenerate, start on mn2"
else
	hs_bad "2: recorded commands: $(tr '\n' ',' <"$REC")"
fi
if [ "$(sqlite3 "$T/n2/xcat/db/site.sqlite" "SELECT value FROM site" 2>&1)" = \
	"mn1, changed before switchover" ]; then
	hs_ok "2: mn2's database holds mn1's last change, snapshotted by the drain"
else
	hs_bad "2: mn2's database: $(sqlite3 "$T/n2/xcat/db/site.sqlite" .dump 2>&1 | head -3)"
fi

# Every write: on mn2 with its content, or kept aside and listed; those
# completed before the command began on mn2.
K=$T/state1/rejoin-1
W=$T/src/install/w
lost=0 aside=0 early_missing=0
total=$(wc -l <"$T/writes.log")
while read -r i; do
	want="$i $(printf '%s' "$i" | sha256sum | cut -c1-64)"
	if [ "$(cat "$T/n2/install/w/$i" 2>/dev/null)" = "$want" ]; then
		continue
	fi
	[ "$i" -le "$BEGAN" ] && early_missing=$((early_missing + 1))
	if [ "$(cat "$K$W/$i" 2>/dev/null)" = "$want" ] &&
		grep -qx "$W/$i" "$K/LIST"; then
		aside=$((aside + 1))
	else
		lost=$((lost + 1))
	fi
done <"$T/writes.log"
if [ "$early_missing" -eq 0 ]; then
	hs_ok "2: all $BEGAN writes made before switchover began are on mn2, content checked"
else
	hs_bad "2: $early_missing writes made before switchover are missing on mn2"
fi
if [ "$lost" -eq 0 ]; then
	hs_ok "2: of $total writes, none lost: $aside kept under rejoin-1 and listed"
else
	hs_bad "2: $lost of $total writes neither on mn2 nor under rejoin-1"
fi
converged 2 1 "2"
# verify wants the primary's daemon stopped (it opens the session itself).
hs_stop_pid "$DPID_2"
on 2 verify
if [ "$RC" -eq 0 ] && hs_has "^verify: identical" "$T/cmd.out"; then
	hs_ok "2: verify on mn2 exits 0: $(cat "$T/cmd.out")"
else
	hs_bad "2: verify on mn2: exit $RC: $(cat "$T/cmd.out" "$T/cmd.err" | tail -n 3)"
fi
node_daemon 2
if [ -f "$T/state1/promote/switchover-last.json" ] &&
	[ -f "$T/state2/promote/promote-last.json" ]; then
	hs_ok "2: the step states are kept (switchover-last, promote-last)"
else
	hs_bad "2: state_dir/promote: $(ls "$T/state1/promote" "$T/state2/promote" 2>&1)"
fi

# ---------------------------------- 3. from the standby, back to mn1
echo "made on mn2 as the primary" >"$T/n2/install/from-mn2"
sqlite3 "$T/n2/xcat/db/site.sqlite" "UPDATE site SET value = 'mn2, as primary'"
in_sync 2 primary 1 "3: mn2 sent its own change"
: >"$REC"
rm -f "$T/writer.stop" "$T/writer.stopped"
on 1 switchover
cp "$T/cmd.out" "$T/so2.out"
sed 's/^/     /' "$T/so2.out"
if [ "$RC" -eq 0 ] &&
	hs_has "^switchover: done: this node is the primary at epoch 2" "$T/so2.out"; then
	hs_ok "3: switchover on the standby mn1: exit 0, it says it is the primary"
else
	hs_bad "3: switchover on mn1: exit $RC: $(cat "$T/cmd.err")"
	tail -20 "$T/n1.log" "$T/n2.log" "$T/state2/promote/switchover.out" \
		"$T/state1/promote/promote.out" 2>/dev/null
fi
if [ "$(nodes)" = "primary 2 0 / standby 2 0" ]; then
	hs_ok "3: the indexes say mn1 primary, mn2 standby, epoch 2"
else
	hs_bad "3: the indexes say $(nodes)"
fi
in_sync 1 primary 2 "3: mn1 is the primary at epoch 2, in-sync"
hs_expect_status "3: mn2 is its standby at epoch 2" "$C2" \
	'd["role"] == "standby" and d["epoch"] == 2 and d["daemon"] == "running"'
if [ "$(cat "$T/n1/install/from-mn2" 2>&1)" = "made on mn2 as the primary" ]; then
	hs_ok "3: mn2's change made as the primary is on mn1"
else
	hs_bad "3: mn2's change is not on mn1"
fi
if [ "$(sqlite3 "$T/n1/xcat/db/site.sqlite" "SELECT value FROM site" 2>&1)" = \
	"mn2, as primary" ]; then
	hs_ok "3: mn1's database holds mn2's last change"
else
	hs_bad "3: mn1's database: $(sqlite3 "$T/n1/xcat/db/site.sqlite" .dump 2>&1 | head -3)"
fi
want="mn2 stop stop
mn2 release identity
mn1 stop identity
mn1 regenerate regenerate
mn1 start start"
if [ "$(cat "$REC")" = "$want" ]; then
	hs_ok "3: the commands ran in order, on mn2 then on mn1"
else
	hs_bad "3: recorded commands: $(tr '\n' ',' <"$REC")"
fi
converged 1 2 "3"

# What the commands the daemons started said, where the cleanup looks
# for sanitizer reports too.
for n in 1 2; do
	for f in "$T/state$n/promote/"*.out; do
		[ -e "$f" ] && cp "$f" "$T/started-by-mn$n-$(basename "$f")"
	done
done
hs_result test_switchover
