#!/usr/bin/env bash
# A dead primary, then `hamnsync promote` on the standby, end to end with
# real daemons in network namespaces of the test's own (netns_lib.sh;
# issue 18's first test).  node1 (mn1) runs the primary daemon, listening
# and connecting on 192.0.2.1, and holds the service address
# 192.0.2.10/24; node2 (mn2) runs the standby on 192.0.2.2, its
# [failover] naming host name mn1, 192.0.2.10/24 on eth1, and stop,
# regenerate and start commands that record their calls.  Each node sees
# its own tree at $T/src (target_root /), bound in its mount namespace.
#   1. The pair replicates; the observer reaches 192.0.2.10 at node1's MAC.
#   2. node1 dies: its daemon SIGKILLed, the service address removed and
#      its link down.  promote on node2 exits 0, every step done; the
#      service address answers from node2 (echo counted on node2, the
#      observer's neighbour entry moved to node2's MAC by the gratuitous
#      ARP alone, arping); node2's host name is mn1; the commands ran in
#      order; node2 is primary at epoch 1 in the same daemon process, and
#      its status says so with nothing but what a primary without its
#      standby says (sets seeding, standby unreachable: CRITICAL, lag);
#      promote changed no file.
#   3. node1 comes back and its daemon starts again as primary at epoch
#      0: it is refused and fenced (log, index, CRITICAL status), node2's
#      status names the refusal, and an edit on node1 never reaches node2,
#      whose tree does not change.
#
# Host changes: none (namespaces only, removed at exit).  Every wait is
# bounded.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns_lib.sh"
HS_TOOLS=${HS_TOOLS:-$top/build/bin}
NODE=$HS_TOOLS/hs-node
SVC=192.0.2.10
HS_PORT=7873

hs_init promote_netns
hs_netns_up
mkdir -p "$T/n1" "$T/n2"
hs_gen_tree "$T/n1"
hs_node_bind 1 "$T/n1" "$T/src"
hs_node_bind 2 "$T/n2" "$T/src"
hs_pki

C1=$T/mn1.conf
C2=$T/mn2.conf
hs_node_conf "$C1" 1 primary "$FP2"
hs_node_conf "$C2" 2 standby "$FP1"
REC=$T/rec.log
cat >"$T/rec.sh" <<'EOF'
#!/bin/sh
# rec.sh LOG NAME: record that NAME ran, in which step, under which name.
echo "$2 $HAMNSYNC_STEP $(hostname)" >>"$1"
EOF
chmod +x "$T/rec.sh"
cat >>"$C2" <<CONF

[failover]
hostname = mn1
service_address = $SVC/24
interface = eth1
stop = $T/rec.sh $REC stop
regenerate = $T/rec.sh $REC makedns
regenerate = $T/rec.sh $REC makedhcp
start = $T/rec.sh $REC xcatd
step_timeout = 30s
CONF
# The stop command runs before the host name is taken, the others after.
WANT_REC="stop identity mn2
makedns regenerate mn1
makedhcp regenerate mn1
xcatd start mn1"
STEPS="preflight fence drain database identity regenerate start"

# node_daemon I CONF LOG: node I's daemon in the foreground, in its
# namespaces; PID in DPID.
node_daemon() {
	hs_node_bg "$1" "$3" "$HS_BIN" -c "$2" daemon --foreground
	DPID=$HS_BG_PID
}

# tree_diff: the oracle: what rsync finds different between node1's and
# node2's copy of each replicated source (empty: the same).  The folders
# above the sources ($T/nI itself, etc/, xcat/) are not replicated.
tree_diff() {
	local s
	for s in xcat/ca/ xcat/cert/ install/ etc/hosts etc/resolv.conf; do
		rsync -naiHAXc --numeric-ids --modify-window=-1 --delete \
			"$T/n1/$s" "$T/n2/$s" 2>&1
	done
}
same_trees() { [ -z "$(tree_diff)" ]; }

MAC1=$(hs_node_mac 1)
MAC2=$(hs_node_mac 2)
[ -n "$MAC1" ] && [ -n "$MAC2" ] && [ "$MAC1" != "$MAC2" ] ||
	hs_fail "the nodes' MACs: '$MAC1' '$MAC2'"

# ------------------------------------------------ 1. a replicating pair
hs_node_run 1 ip addr add "$SVC/24" dev eth1
hs_obs_ping "$SVC" || hs_fail "node1 does not answer on $SVC"
[ "$(hs_obs_neigh "$SVC")" = "$MAC1" ] ||
	hs_fail "the observer maps $SVC to '$(hs_obs_neigh "$SVC")', not node1's $MAC1"
hs_ok "1: the observer reaches $SVC at node1's $MAC1"

node_daemon 2 "$C2" "$T/standby.log"
STANDBY_PID=$DPID
hs_wait_log "$T/standby.log" "listening on 192.0.2.2:$HS_PORT" 1 30 ||
	hs_fail "the standby did not start: $(tail -3 "$T/standby.log")"
node_daemon 1 "$C1" "$T/primary.log"
PRIMARY_PID=$DPID
hs_wait_status "1: the pair replicates across the bridge" 90 "$C1" \
	'all(p["state"] == "in-sync" for p in d["paths"]) and d["lag"]["files_pending"] == 0 and d["peer"]["state"] == "connected"'
hs_wait_status "1: the standby is promote ready" 30 "$C2" \
	'd["promote_ready"]["ready"] and d["role"] == "standby" and d["epoch"] == 0'
if same_trees; then
	hs_ok "1: the trees are equal"
else
	hs_bad "1: the trees differ: $(tree_diff | head -5 | tr '\n' ' ')"
fi

# ------------------------------------------- 2. node1 dies; promote
hs_stop_pid "$PRIMARY_PID" KILL
hs_node_run 1 ip addr del "$SVC/24" dev eth1
ip -n "${HS_NS_N[1]}" link set eth1 down
hs_wait_status "2: the standby sees its primary gone: not promote ready" 30 \
	"$C2" 'not d["promote_ready"]["ready"]'
hs_snapshot "$T/n2" >"$T/n2-before-promote.snap"

set +e
hs_node_run 2 "$HS_BIN" -c "$C2" promote >"$T/promote.out" 2>"$T/promote.err"
PROMOTE_RC=$?
set -e
if [ "$PROMOTE_RC" -eq 0 ]; then
	hs_ok "2: promote exits 0"
else
	hs_bad "2: promote exited $PROMOTE_RC: $(cat "$T/promote.out" "$T/promote.err")"
fi
for s in $STEPS; do
	hs_has "^promote: $s: done in [0-9.]* s" <"$T/promote.out" ||
		hs_bad "2: no \"$s: done in\" line"
done
[ "$(grep -c '^promote: [a-z]*: done in ' "$T/promote.out")" -eq 7 ] &&
	hs_ok "2: each of the 7 steps printed done, with its duration"
if hs_has "^promote: preflight: done in [0-9.]* s: primary unreachable: peer mn1 " \
	<"$T/promote.out"; then
	hs_ok "2: preflight: $(grep '^promote: preflight: done' "$T/promote.out" | cut -d: -f3-)"
else
	hs_bad "2: preflight: $(grep preflight "$T/promote.out")"
fi
if hs_has "^promote: identity: done in .*$SVC" <"$T/promote.out"; then
	hs_ok "2: identity: $(grep '^promote: identity: done' "$T/promote.out" | cut -d: -f3-)"
else
	hs_bad "2: identity: $(grep identity "$T/promote.out")"
fi

# The service address, from the observer: no traffic to it since node1
# answered, so only the announcement can have moved the entry.
if hs_node_has_addr 2 "$SVC/24"; then
	hs_ok "2: $SVC/24 is on node2's eth1"
else
	hs_bad "2: node2's eth1: $(ip -n "${HS_NS_N[2]}" -o addr show dev eth1 | awk '{print $4}' | tr '\n' ' ')"
fi
if hs_obs_wait_neigh "$SVC" "$MAC2" 5; then
	hs_ok "2: the observer's entry for $SVC moved to node2's $MAC2 (gratuitous ARP)"
else
	hs_bad "2: the observer maps $SVC to '$(hs_obs_neigh "$SVC")' (node2: $MAC2)"
fi
e0=$(hs_node_echoes 2 4)
if hs_obs_ping "$SVC" && e1=$(hs_node_echoes 2 4) && [ "$e1" -gt "$e0" ]; then
	hs_ok "2: an echo to $SVC is answered by node2 ($e0 -> $e1 replies)"
else
	hs_bad "2: no echo from node2 on $SVC"
fi
if hs_obs_run arping -c 1 -w 2 -I br0 "$SVC" 2>&1 | hs_has -i -F "[$MAC2]"; then
	hs_ok "2: arping $SVC: node2 answers"
else
	hs_bad "2: arping $SVC: no answer from node2 ($MAC2)"
fi
if [ "$(hs_node_run 2 hostname)" = mn1 ] && [ "$(hostname)" != mn1 ]; then
	hs_ok "2: node2's host name is mn1 (the host's is untouched)"
else
	hs_bad "2: node2's host name: $(hs_node_run 2 hostname)"
fi
if [ "$(cat "$REC" 2>/dev/null)" = "$WANT_REC" ]; then
	hs_ok "2: stop, makedns, makedhcp, xcatd ran once each, in order"
else
	hs_bad "2: recorded commands: $(tr '\n' ',' <"$REC" 2>/dev/null)"
fi
if [ "$("$NODE" "$T/state2")" = "primary 1 0" ]; then
	hs_ok "2: node2's index: primary, epoch 1, no flag (was standby 0 0)"
else
	hs_bad "2: node2's index: $("$NODE" "$T/state2" 2>&1)"
fi
if hs_alive "$STANDBY_PID" &&
	[ "$(tr -d ' \n' <"$T/state2/hamnsync.pid")" = "$STANDBY_PID" ]; then
	hs_ok "2: the same daemon process ($STANDBY_PID) runs as primary"
else
	hs_bad "2: daemon pid $(cat "$T/state2/hamnsync.pid" 2>&1), was $STANDBY_PID"
fi
# Its status: primary at epoch 1 in the same process, and what a primary
# without a standby says, nothing else (no fence, promote, rejoin or
# split brain): each set "seeding" (never sent to a standby yet), one
# warning per set "set NAME: seeding", the CRITICAL "standby
# 192.0.2.1:7873 unreachable for N s (peer_timeout 5 s)" once
# peer_timeout has passed, and "lag N s over 30 s" once the lag (counted
# on this daemon's clock from its start) exceeds 30 s.  The critical one
# makes it exit 2.
GONE='standby 192\.0\.2\.1:'$HS_PORT' unreachable for [0-9]+ s \(peer_timeout 5 s\)'
NEW_OK='d["role"] == "primary" and d["epoch"] == 1 and d["daemon"] == "running" and sorted(p["name"] for p in d["paths"]) == ["credentials", "install", "netconf"] and all(p["state"] == "seeding" for p in d["paths"]) and d["lag"]["files_pending"] == 0 and d["peer"]["state"] == "disconnected" and any(w["severity"] == "critical" and __import__("re").fullmatch(r"'"$GONE"'", w["text"]) for w in d["warnings"]) and all(__import__("re").fullmatch(r"critical '"$GONE"'|warning set (credentials|install|netconf): seeding|warning lag [0-9.]+ s over 30 s", w["severity"] + " " + w["text"]) for w in d["warnings"])'
hs_wait_status "2: the new primary's status: primary at epoch 1; sets seeding, its standby unreachable, nothing else" \
	20 "$C2" "$NEW_OK"
hs_status "$C2" "$T/new.json"
if [ "$HS_STATUS_RC" -eq 2 ]; then
	hs_ok "2: its status exits 2 (CRITICAL: $(python3 -c 'import json, sys
print("; ".join(w["text"] for w in json.load(open(sys.argv[1]))["warnings"] if w["severity"] == "critical"))' "$T/new.json"))"
else
	hs_bad "2: the new primary's status exited $HS_STATUS_RC: $(cat "$T/new.json")"
fi
hs_snapshot "$T/n2" >"$T/n2-after-promote.snap"
if cmp -s "$T/n2-before-promote.snap" "$T/n2-after-promote.snap" &&
	same_trees; then
	hs_ok "2: promote changed no file; node2's tree is still node1's"
else
	hs_bad "2: node2's tree changed during promote: $(diff "$T/n2-before-promote.snap" "$T/n2-after-promote.snap" | head -5 | tr '\n' ' ')"
fi

# ---------------- 3. node1 comes back and starts again as primary
hs_snapshot "$T/n2" >"$T/n2-before.snap"
ip -n "${HS_NS_N[1]}" link set eth1 up
node_daemon 1 "$C1" "$T/primary.log"
PRIMARY_PID=$DPID
if hs_wait_log "$T/primary.log" "mn2 (.*) is primary at epoch 1, newer than this node's 0: fenced" 1 30; then
	hs_ok "3: the old primary logs why it is fenced"
else
	hs_bad "3: the old primary did not log its fence: $(tail -5 "$T/primary.log")"
fi
if [ "$("$NODE" "$T/state1")" = "primary 0 1" ]; then
	hs_ok "3: its fence is persisted (hs-node: primary 0 1)"
else
	hs_bad "3: node1's index: $("$NODE" "$T/state1" 2>&1)"
fi
hs_wait_status "3: the old primary's status: CRITICAL, needs rejoin, names mn2" 20 "$C1" \
	'any(w["severity"] == "critical" and w["text"] == "needs rejoin: mn2 is primary at epoch 1 (this node: 0); run hamnsync rejoin" for w in d["warnings"]) and d["role"] == "primary" and d["epoch"] == 0 and d["peer"]["role"] == "primary" and d["peer"]["epoch"] == 1'
hs_status "$C1" "$T/old.json"
if [ "$HS_STATUS_RC" -eq 2 ]; then
	hs_ok "3: the old primary's status exits 2 (CRITICAL)"
else
	hs_bad "3: the old primary's status exited $HS_STATUS_RC, wanted 2"
fi
hs_wait_status "3: the new primary's status names the refused mn1" 30 "$C2" \
	'any(w["severity"] == "warning" and w["text"] == "mn1 (epoch 0) runs as primary and was refused: it must rejoin" for w in d["warnings"]) and d["role"] == "primary" and d["epoch"] == 1 and not any("split brain" in w["text"] for w in d["warnings"])'
if hs_wait_log "$T/standby.log" "mn1 (.*) runs as primary at epoch 0, older than this node's 1: refused" 1 10; then
	hs_ok "3: the new primary logs the refusal"
else
	hs_bad "3: the new primary did not log the refusal: $(tail -5 "$T/standby.log")"
fi

# An edit on node1 after its fence: seen there, never sent.
echo "edited on the fenced primary" >>"$T/n1/etc/hosts"
echo "new on the fenced primary" >"$T/n1/install/postscripts/fenced-new"
hs_wait_status "3: the fenced primary sees its edits pending" 20 "$C1" \
	'd["lag"]["files_pending"] >= 1'
hs_snapshot "$T/n2" >"$T/n2-after.snap"
if cmp -s "$T/n2-before.snap" "$T/n2-after.snap"; then
	hs_ok "3: no file on the new primary changed"
else
	hs_bad "3: the new primary's tree changed: $(diff "$T/n2-before.snap" "$T/n2-after.snap" | head -5 | tr '\n' ' ')"
fi
if [ "$(hs_obs_neigh "$SVC")" = "$MAC2" ] && ! hs_node_has_addr 1 "$SVC/24" &&
	hs_obs_ping "$SVC"; then
	hs_ok "3: $SVC still answers at node2's $MAC2"
else
	hs_bad "3: $SVC: observer maps it to '$(hs_obs_neigh "$SVC")'"
fi
hs_result promote_netns
