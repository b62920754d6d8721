#!/bin/bash
# test_ocf.sh - the OCF resource agent ocf:hamnsync:hamnsync (etc/ocf/hamnsync),
# run from the tree on a real pair of daemons: ocf-tester's checks of a
# resource agent, then Pacemaker's crm_resource --force-* driving start,
# check, promote, demote and stop without a cluster, with each exit code
# and what `status` says afterwards; bad configuration and a missing
# executable give the OCF codes and one line naming them.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

AGENT=$top/etc/ocf/hamnsync
HS_NODE=${HS_TOOLS:-$top/build/bin}/hs-node
export OCF_ROOT=/usr/lib/ocf

hs_init ocf
hs_gen_tree "$T/src"
hs_setup_pair "$(hs_sets_for "$T/src")"
# Each node listens on a port of its own (both roles listen).
if [ "$(grep '^listen' "$C1")" = "$(grep '^listen' "$C2")" ]; then
	PORT1=$(hs_free_port) || hs_fail "no free port"
	sed -i "s/^listen = .*/listen = 127.0.0.1:$PORT1/" "$C1"
	sed -i "s/^peer = .*/peer = 127.0.0.1:$PORT1/" "$C2"
fi
# A node's copy of a path P is target_root + P: mn1's is P itself ($T/src),
# mn2's is under $T/standby, so the roles can swap without sharing a tree.
sed -i "s|^target_root = .*|target_root = /|" "$C1"
SOURCES=$(hs_all_sources "$T/src")

# ocf_track CONF STATE_DIR: a daemon the agent started detaches; its PID
# (from its pid file) joins HS_PIDS so that the cleanup stops it.
ocf_track() {
	local pid

	pid=$(head -n 1 "$1/hamnsync.pid" 2>/dev/null || true)
	[ -n "$pid" ] && hs_ours "$pid" && HS_PIDS+=("$pid")
	return 0
}

# ocf_pid STATE_DIR: the pid in its pid file while that process runs.
ocf_pid() {
	local pid

	pid=$(head -n 1 "$1/hamnsync.pid" 2>/dev/null || true)
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
	return 0
}

# agent ACTION CONF [VAR=VALUE...]: the agent run directly as an OCF
# caller runs it; exit code in AG_RC, stderr in $T/agent.err.
agent() {
	local action=$1 conf=$2

	shift 2
	set +e
	env OCF_RESOURCE_INSTANCE=hs OCF_RESKEY_config="$conf" \
		OCF_RESKEY_binary="$HS_BIN" "$@" "$AGENT" "$action" \
		>"$T/agent.out" 2>"$T/agent.err"
	AG_RC=$?
	set -e
}

# crm ACTION CONF: crm_resource --force-ACTION (or --validate) on the
# primitive defined on its command line.  Pacemaker looks agents up only
# below /usr/lib/ocf/resource.d, whatever OCF_ROOT says: crm_resource runs
# in a mount namespace of its own where a folder of $T (holding
# hamnsync/hamnsync, a link to the agent in the tree) is bound there; the
# host's folder is untouched.  Exit code in CRM_RC, its output in
# $T/crm.out.
mkdir -p "$T/resource.d/hamnsync"
ln -s "$AGENT" "$T/resource.d/hamnsync/hamnsync"
crm() {
	local action=$1 conf=$2

	set +e
	unshare -m --propagation private sh -c '
		mount --bind "$1" /usr/lib/ocf/resource.d || exit 99
		shift
		exec crm_resource "$@"' sh "$T/resource.d" \
		--class ocf --provider hamnsync --agent hamnsync \
		--option config="$conf" --option binary="$HS_BIN" \
		--option CRM_meta_promotable=true --timeout 60s \
		"--$action" >"$T/crm.out" 2>&1
	CRM_RC=$?
	set -e
}

# crm_expect NAME ACTION CONF CODE: crm_resource ACTION exits CODE (its
# exit codes for an agent's result are the OCF codes); CRM_OK 1 if so.
crm_expect() {
	crm "$2" "$3"
	CRM_OK=0
	if [ "$CRM_RC" -eq "$4" ]; then
		CRM_OK=1
		hs_ok "$1 (crm_resource --$2 exit $4)"
	else
		hs_bad "$1: crm_resource --$2 exited $CRM_RC, wanted $4: $(tr '\n' ' ' <"$T/crm.out")"
	fi
}

# crm_must NAME ACTION CONF CODE: crm_expect, for a step the rest builds
# on: when it fails, what follows would only repeat that failure (and
# wait out its bounds), so the test ends there, failed.
crm_must() {
	crm_expect "$@"
	if [ "$CRM_OK" -ne 1 ]; then
		echo "the checks below depend on the failed step: not run" >&2
		hs_result test_ocf || true
		exit 1
	fi
}

# --- bad inputs: clear OCF codes, one line naming the thing, no daemon ----
cp "$C2" "$T/bad.conf"
printf 'bogus_key = 1\n' >>"$T/bad.conf"
agent validate-all "$T/bad.conf"
if [ "$AG_RC" -eq 6 ] && hs_has -F "config $T/bad.conf does not load" "$T/agent.err" &&
	hs_has -F "unknown key 'bogus_key'" "$T/agent.err"; then
	hs_ok "validate-all of a config that does not load: OCF_ERR_CONFIGURED, named"
else
	hs_bad "validate-all of a bad config: rc $AG_RC: $(cat "$T/agent.err")"
fi
agent start "$T/bad.conf"
if [ "$AG_RC" -eq 6 ] && [ -z "$(ocf_pid "$T/state2")" ]; then
	hs_ok "start with a bad config: OCF_ERR_CONFIGURED, no daemon started"
else
	hs_bad "start with a bad config: rc $AG_RC, daemon pid '$(ocf_pid "$T/state2")'"
fi
agent validate-all "$T/missing.conf"
if [ "$AG_RC" -eq 6 ] && hs_has -F "config $T/missing.conf: not readable" "$T/agent.err"; then
	hs_ok "validate-all of a missing config: OCF_ERR_CONFIGURED, named"
else
	hs_bad "validate-all of a missing config: rc $AG_RC: $(cat "$T/agent.err")"
fi
set +e
env OCF_RESOURCE_INSTANCE=hs OCF_RESKEY_config="$C2" \
	OCF_RESKEY_binary="$T/no-such-hamnsync" "$AGENT" start \
	>"$T/agent.out" 2>"$T/agent.err"
AG_RC=$?
set -e
if [ "$AG_RC" -eq 5 ] && hs_has -F "$T/no-such-hamnsync" "$T/agent.err"; then
	hs_ok "start with a missing executable: OCF_ERR_INSTALLED, named"
else
	hs_bad "start with a missing executable: rc $AG_RC: $(cat "$T/agent.err")"
fi
agent monitor "$C2"
[ "$AG_RC" -eq 7 ] && hs_ok "monitor of a daemon never started: OCF_NOT_RUNNING" ||
	hs_bad "monitor of a daemon never started: rc $AG_RC (wanted 7)"

# --- ocf-tester on the standby, the primary running -----------------------
hs_start_primary "$C1"
set +e
ocf-tester -n hs -o config="$C2" -o binary="$HS_BIN" "$AGENT" \
	>"$T/ocf-tester.out" 2>"$T/ocf-tester.err"
rc=$?
set -e
ocf_track "$T/state2"
if [ "$rc" -eq 0 ] && hs_has -F "passed all tests" "$T/ocf-tester.out" &&
	! [ -s "$T/ocf-tester.err" ]; then
	hs_ok "ocf-tester passes, nothing on its stderr"
else
	hs_bad "ocf-tester exited $rc"
	sed 's/^/     /' "$T/ocf-tester.out" "$T/ocf-tester.err"
fi
# Outside a promotable clone a primitive has no promoted role: ocf-tester
# found promote/demote unimplemented there (they are tested below).
hs_has -F "does not support promotable clones" "$T/ocf-tester.out" &&
	hs_ok "ocf-tester: promote/demote only in a promotable clone" ||
	hs_bad "ocf-tester did not see promote/demote as promotable-only"
[ -z "$(ocf_pid "$T/state2")" ] && hs_ok "ocf-tester left the standby stopped" ||
	hs_bad "a daemon still runs after ocf-tester's last stop"
hs_expect_status "status after ocf-tester: stopped standby" "$C2" \
	'd["daemon"] == "stopped" and d["role"] == "standby"'

# --- a primary fenced by a newer epoch, staged: failed master -------------
# (mn1 is the primary at epoch 0; mn2, stopped, is staged as a primary
# that an epoch newer than its own fenced, then put back as the standby.)
"$HS_NODE" "$T/state2" primary 0 1 >/dev/null
crm_must "start of a primary staged as fenced" force-start "$C2" 0
ocf_track "$T/state2"
crm_expect "check of a primary fenced by a newer epoch: failed master" force-check "$C2" 9
hs_expect_status "its status is CRITICAL and says rejoin" "$C2" \
	'd["role"] == "primary" and any("rejoin" in w["text"] for w in d["warnings"] if w["severity"] == "critical")'
crm_must "stop of the fenced primary" force-stop "$C2" 0
"$HS_NODE" "$T/state2" standby 0 0 >/dev/null

# --- crm_resource --force-* on the standby, as Pacemaker would ------------
crm_expect "check of a stopped standby: not running" force-check "$C2" 7
crm_must "start of the standby" force-start "$C2" 0
ocf_track "$T/state2"
hs_expect_status "started: mn2 runs as standby" "$C2" \
	'd["daemon"] == "running" and d["role"] == "standby"'
STANDBY_PID=$(ocf_pid "$T/state2")
hs_wait_same "the agent's standby replicates" 60 $SOURCES
crm_expect "check of a running standby: running" force-check "$C2" 0
crm validate "$C2"
[ "$CRM_RC" -eq 0 ] && hs_ok "crm_resource --validate (validate-all)" ||
	hs_bad "crm_resource --validate exited $CRM_RC: $(tr '\n' ' ' <"$T/crm.out")"

echo "changed before promote" >"$T/src/install/hosts.extra"
printf 'one more host\n' >>"$T/src/etc/hosts"
hs_wait_same "the last change before promote reached the standby" 60 $SOURCES
pid_before=$(ocf_pid "$T/state2")
crm_must "promote of the standby (promote --force)" force-promote "$C2" 0
ocf_track "$T/state2"
hs_expect_status "promoted: mn2 is primary at epoch 1" "$C2" \
	'd["daemon"] == "running" and d["role"] == "primary" and d["epoch"] == 1'
crm_expect "check of the new primary: promoted" force-check "$C2" 8
[ "$(ocf_pid "$T/state2")" = "$pid_before" ] &&
	hs_ok "the role changed in the same daemon (pid $pid_before)" ||
	hs_bad "promote replaced the daemon: pid $pid_before, now '$(ocf_pid "$T/state2")'"

# mn1 was fenced by the newer epoch: the agent on mn1 sees a failed master.
hs_wait_status "the old primary mn1 knows it needs rejoin" 30 "$C1" \
	'd["role"] == "primary" and any("rejoin" in w["text"] for w in d["warnings"] if w["severity"] == "critical")'
crm_expect "check of the fenced old primary: failed master" force-check "$C1" 9

# A demote with no newer primary on the peer is refused, nothing changes.
hs_snapshot "$T/standby$T/src" >"$T/mn2-tree.before"
crm_expect "demote of mn2 while no newer primary exists is refused" force-demote "$C2" 1
hs_has -F "rejoin" "$T/crm.out" && hs_ok "the refusal names rejoin: $(grep -m1 -F rejoin "$T/crm.out")" ||
	hs_bad "the refused demote does not say why: $(tr '\n' ' ' <"$T/crm.out")"
hs_expect_status "mn2 still primary at epoch 1 after the refusal" "$C2" \
	'd["role"] == "primary" and d["epoch"] == 1'
hs_snapshot "$T/standby$T/src" | diff -q "$T/mn2-tree.before" - >/dev/null &&
	hs_ok "the refused demote changed no file on mn2" ||
	hs_bad "files on mn2 changed at the refused demote"

# The other instance, mn1, through the agent too: demote (rejoin mn2),
# then promote: it becomes the newer primary, and mn2 is fenced.
crm_must "demote of the fenced mn1 (rejoin)" force-demote "$C1" 0
ocf_track "$T/state1"
hs_expect_status "mn1 rejoined as standby at epoch 1" "$C1" \
	'd["daemon"] == "running" and d["role"] == "standby" and d["epoch"] == 1'
HS_PRIMARY_CONF=$C2 HS_STANDBY_CONF=$C1 STANDBY_PID=$(ocf_pid "$T/state1") \
	hs_wait_converge "mn1 caught up with the new primary" 60 \
	'd["role"] == "primary"' $SOURCES
crm_must "promote of mn1 back" force-promote "$C1" 0
hs_expect_status "mn1 is primary at epoch 2" "$C1" \
	'd["role"] == "primary" and d["epoch"] == 2'
hs_wait_status "mn2 knows it needs rejoin" 30 "$C2" \
	'd["role"] == "primary" and any("rejoin" in w["text"] for w in d["warnings"] if w["severity"] == "critical")'
crm_expect "check of the fenced mn2: failed master" force-check "$C2" 9
crm_must "demote of mn2 (rejoin mn1)" force-demote "$C2" 0
hs_expect_status "demoted: mn2 is standby again at epoch 2" "$C2" \
	'd["daemon"] == "running" and d["role"] == "standby" and d["epoch"] == 2'
crm_expect "check of the demoted mn2: running unpromoted" force-check "$C2" 0
STANDBY_PID=$(ocf_pid "$T/state2")
hs_wait_same "the pair replicates again, mn1 primary" 60 $SOURCES
[ "$(cat "$T/standby$T/src/install/hosts.extra" 2>/dev/null)" = "changed before promote" ] &&
	hs_ok "the change made before the promotes survived both" ||
	hs_bad "the change made before the promotes is gone"

# A switchover's drain makes the primary's status CRITICAL ("drained by a
# switchover") with no fence or split brain: the agent still sees the
# running master (a failed master would have Pacemaker recover it in the
# middle of the handover), and so it does once undrained.
HS_CTL=${HS_TOOLS:-$top/build/bin}/hs-ctl
"$HS_CTL" "$T/state1" drain >"$T/ctl.out" 2>&1 ||
	hs_bad "hs-ctl drain on mn1: $(cat "$T/ctl.out")"
hs_wait_status "mn1 drained: CRITICAL, drained by a switchover" 30 "$C1" \
	'd["role"] == "primary" and any(w["severity"] == "critical" and "drained by a switchover" in w["text"] for w in d["warnings"])'
crm_expect "check of the drained primary mn1: still promoted" force-check "$C1" 8
"$HS_CTL" "$T/state1" undrain >"$T/ctl.out" 2>&1 ||
	hs_bad "hs-ctl undrain on mn1: $(cat "$T/ctl.out")"
hs_wait_status "mn1 undrained: no drain warning" 30 "$C1" \
	'not any("drained" in w["text"] for w in d["warnings"])'
crm_expect "check of the undrained mn1: promoted" force-check "$C1" 8

crm_expect "stop of mn2" force-stop "$C2" 0
[ -z "$(ocf_pid "$T/state2")" ] && hs_ok "mn2's daemon ended" ||
	hs_bad "mn2's daemon still runs after stop"
hs_expect_status "stopped: mn2's daemon is stopped" "$C2" \
	'd["daemon"] == "stopped"'
crm_expect "check of the stopped mn2: not running" force-check "$C2" 7
crm_expect "stop of a stopped mn2 succeeds" force-stop "$C2" 0

hs_result test_ocf
