#!/usr/bin/env bash
# Two primaries at the same epoch (SPEC.md, Failover; issue: "Two
# primaries with the same epoch both refuse to replicate and report split
# brain on both nodes").  Staged with hs-node: mn1 and mn2 both primary
# at epoch 3, each with a tree of its own.  Both must refuse to
# replicate, both statuses must say split brain (CRITICAL, and a reason
# why the node is not ready), and neither tree may change.  Then mn2 is
# staged as a standby of epoch 3 and started as one: the split brain is
# over and replication proceeds until the trees are equal.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
HS_TOOLS=${HS_TOOLS:-$top/build/bin}
NODE=$HS_TOOLS/hs-node

hs_init split_brain
D=$T/src/data
D2=$T/standby$D # mn2's tree: what it holds at target_root + P
mkdir -p "$D/sub" "$D2/sub"
for i in $(seq 1 20); do echo "file $i" >"$D/sub/f$i"; done
for i in $(seq 1 10); do echo "file $i" >"$D2/sub/f$i"; done
echo "written on mn2 while it was primary" >"$D2/sub/f1"
hs_setup_pair "
[path data]
source = $D"
C2P=$C2 # as primary, mn2 reads its copy at target_root + P
"$NODE" "$T/state1" primary 3 0 || hs_fail "hs-node could not stage mn1"
"$NODE" "$T/state2" primary 3 0 || hs_fail "hs-node could not stage mn2"
hs_snapshot "$D" >"$T/mn1-before.snap"
hs_snapshot "$D2" >"$T/mn2-before.snap"

hs_start_primary
"$HS_BIN" -c "$C2P" daemon --foreground >>"$T/mn2.log" 2>&1 &
MN2_PID=$!
HS_PIDS+=("$MN2_PID")

# split_said NAME CONF PEER: the node's status says split brain with PEER.
split_said() {
	hs_wait_status "$1" 30 "$2" \
		"d['role'] == 'primary' and d['epoch'] == 3 and any(w['severity'] == 'critical' and w['text'] == 'split brain: $3 also claims primary at epoch 3' for w in d['warnings']) and 'split brain' in d['promote_ready']['reasons'] and not d['promote_ready']['ready'] and d['peer']['role'] == 'primary' and d['peer']['epoch'] == 3"
}
split_said "mn1 reports split brain (CRITICAL)" "$C1" mn2
split_said "mn2 reports split brain (CRITICAL)" "$C2P" mn1
for c in "$C1" "$C2P"; do
	hs_status "$c" "$T/split.json"
	[ "$HS_STATUS_RC" -eq 2 ] &&
		hs_ok "status of $(basename "$c") exits 2 (CRITICAL)" ||
		hs_bad "status of $(basename "$c") exited $HS_STATUS_RC, wanted 2"
done
for l in primary.log mn2.log; do
	if hs_has "split brain: mn[12] (.*) also claims primary at epoch 3; nothing is replicated" "$T/$l"; then
		hs_ok "$l says why nothing is replicated"
	else
		hs_bad "$l does not say split brain: $(tail -5 "$T/$l")"
	fi
	if hs_has "reconciled\|connected to standby" "$T/$l"; then
		hs_bad "$l shows a session: $(grep "reconciled\|connected to standby" "$T/$l" | head -2)"
	else
		hs_ok "$l: no session, nothing sent"
	fi
done
hs_snapshot "$D" >"$T/mn1-after.snap"
hs_snapshot "$D2" >"$T/mn2-after.snap"
if cmp -s "$T/mn1-before.snap" "$T/mn1-after.snap" &&
	cmp -s "$T/mn2-before.snap" "$T/mn2-after.snap"; then
	hs_ok "neither tree changed"
else
	hs_bad "a tree changed during the split brain"
fi

# mn2 becomes a standby of epoch 3: replication proceeds.
hs_stop_pid "$MN2_PID" || hs_bad "mn2 did not stop"
"$NODE" "$T/state2" standby 3 0 || hs_fail "hs-node could not stage mn2"
hs_start_standby
hs_wait_same "mn2 as a standby: mn1 replicates to it" 60 "$D"
hs_expect_status "mn1 no longer reports split brain" "$C1" \
	"not any('split brain' in w['text'] for w in d['warnings']) and d['peer']['role'] == 'standby' and d['peer']['epoch'] == 3"
if hs_has "is no longer a primary of epoch 3: split brain over" "$T/primary.log"; then
	hs_ok "mn1 logs the end of the split brain"
else
	hs_bad "mn1 did not log the end of the split brain"
fi

# Drained (the verb `drain`, as switchover asks it): nothing after the
# cut is sent, so no set may show in-sync, whatever the standby holds;
# `undrain` returns the daemon to replicating, and in-sync with it.
CTL=$HS_TOOLS/hs-ctl
for ((i = 0; i < 100; i++)); do
	"$CTL" "$T/state1" drain >"$T/drain.json" || break
	grep -q '"drained": *true' "$T/drain.json" && break
	sleep 0.1
done
if grep -q '"drained": *true' "$T/drain.json"; then
	hs_ok "drain answers drained"
else
	hs_bad "drain answered $(cat "$T/drain.json")"
fi
hs_expect_status "drained: no set in-sync, a critical warning" "$C1" \
	"d['peer']['state'] == 'connected' and not any(p['state'] == 'in-sync' for p in d['paths']) and any(w['severity'] == 'critical' and 'drained by a switchover' in w['text'] for w in d['warnings'])"
"$CTL" "$T/state1" undrain >"$T/undrain.json" ||
	hs_bad "no answer to the verb undrain"
hs_wait_status "undrained: in-sync again" 30 "$C1" \
	"[p['state'] for p in d['paths']] == ['in-sync'] and not any('drained' in w['text'] for w in d['warnings'])"

# The verb `role` on a primary whose stored role is standby now: it
# answers, stops as at SIGTERM and runs as a standby in the same process.
"$NODE" "$T/state1" standby 3 0 || hs_fail "hs-node could not stage mn1"
python3 - "$T/state1/hamnsync.sock" >"$T/role.json" <<'PY' ||
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b"HAMNSYNC-CTL/1 role\n")
out = b""
while True:
	b = s.recv(65536)
	if not b:
		break
	out += b
sys.stdout.write(out.decode())
PY
	hs_bad "no answer to the verb role"
if python3 "$HS_CLAIM" expect "$T/role.json" \
	'd == {"role": "standby", "switching": True}' >/dev/null 2>"$T/role.why"; then
	hs_ok "role answers {role: standby, switching: true}"
else
	hs_bad "role answered $(cat "$T/role.json"): $(cat "$T/role.why")"
fi
if hs_wait_log "$T/primary.log" "standby: mn1 listening on 127.0.0.1:$PORT1" 1 30 &&
	hs_alive "$PRIMARY_PID"; then
	hs_ok "the same process (pid $PRIMARY_PID) runs as a standby now"
else
	hs_bad "no standby after the switch: $(tail -5 "$T/primary.log")"
fi
hs_wait_status "its status says standby at epoch 3" 20 "$C1" \
	"d['role'] == 'standby' and d['epoch'] == 3 and d['daemon'] == 'running'"
hs_result split_brain
