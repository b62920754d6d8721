#!/usr/bin/env bash
# A primary that meets a peer of a newer epoch is fenced (SPEC.md,
# Failover; issue: "The old primary restarted afterwards as primary is
# refused").  A pair replicates; both stop; the standby is staged as the
# new primary at epoch 1 (hs-node: what promote leaves) and started; the
# old primary comes back at epoch 0.  It must be refused, persist
# IDX_NODE_F_REJOIN, say why in its log and in a CRITICAL status naming
# the new primary and "rejoin", while the new primary's status warns that
# the old one runs and was refused.  An edit on the old primary's source
# never reaches the new primary's tree, and a restart keeps it fenced.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
HS_TOOLS=${HS_TOOLS:-$top/build/bin}
NODE=$HS_TOOLS/hs-node

hs_init fence
D=$T/src/data
mkdir -p "$D/sub"
for i in $(seq 1 20); do echo "file $i" >"$D/sub/f$i"; done
hs_setup_pair "
[path data]
source = $D"
# mn1's listen port is taken at first: one warning, tried again, never
# fatal; replication goes on meanwhile.
python3 -c 'import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
print("held", flush=True)
time.sleep(300)' "$PORT1" >"$T/holder.out" 2>&1 &
HOLDER_PID=$!
HS_PIDS+=("$HOLDER_PID")
hs_wait_log "$T/holder.out" "held" 1 10 || hs_fail "could not hold port $PORT1"
hs_start_standby
hs_start_primary
hs_wait_same "the pair replicates" 60 "$D"
[ "$HS_SAME" -eq 1 ] || hs_fail "no seed, giving up"
if [ "$(hs_count_log "$T/primary.log" "primary: listen 127.0.0.1:$PORT1: .*in use; trying again")" -eq 1 ]; then
	hs_ok "a listen port in use: one warning, the primary runs on"
else
	hs_bad "listen port in use: $(grep "listen 127" "$T/primary.log" | head -3)"
fi
hs_stop_pid "$HOLDER_PID" || true
if hs_wait_log "$T/primary.log" "listening on 127.0.0.1:$PORT1" 1 40; then
	hs_ok "once the port is free the primary listens"
else
	hs_bad "the primary did not bind its port once free"
fi
hs_stop_pid "$PRIMARY_PID" || hs_fail "the primary did not stop"
hs_stop_pid "$STANDBY_PID" || hs_fail "the standby did not stop"

# The new primary serves its copies (target_root + P) with its own
# config, once its index holds role primary at epoch 1.
C2P=$C2
"$NODE" "$T/state2" primary 1 0 || hs_fail "hs-node could not stage mn2"
"$HS_BIN" -c "$C2P" daemon --foreground >>"$T/mn2.log" 2>&1 &
NEW_PID=$!
HS_PIDS+=("$NEW_PID")
hs_wait_log "$T/mn2.log" "listening on 127.0.0.1:$PORT" 1 30 ||
	hs_fail "the new primary does not listen: $(tail -5 "$T/mn2.log")"
hs_snapshot "$T/standby" >"$T/new-before.snap"

# The old primary comes back as primary, epoch 0.
hs_start_primary
if hs_wait_log "$T/primary.log" "mn2 (.*) is primary at epoch 1, newer than this node's 0: fenced" 1 30; then
	hs_ok "the old primary logs why it is fenced"
else
	hs_bad "the old primary did not log its fence: $(tail -5 "$T/primary.log")"
fi
if [ "$("$NODE" "$T/state1")" = "primary 0 1" ]; then
	hs_ok "the fence is persisted (hs-node: primary 0 1)"
else
	hs_bad "node state of the old primary: $("$NODE" "$T/state1" 2>&1)"
fi
hs_wait_status "the old primary's status: CRITICAL, needs rejoin, names mn2" 20 "$C1" \
	'any(w["severity"] == "critical" and w["text"] == "needs rejoin: mn2 is primary at epoch 1 (this node: 0); run hamnsync rejoin" for w in d["warnings"]) and d["role"] == "primary" and d["epoch"] == 0 and not d["promote_ready"]["ready"] and d["peer"]["role"] == "primary" and d["peer"]["epoch"] == 1'
hs_status "$C1" "$T/old.json"
if [ "$HS_STATUS_RC" -eq 2 ]; then
	hs_ok "status of the old primary exits 2 (CRITICAL)"
else
	hs_bad "status of the old primary exited $HS_STATUS_RC, wanted 2"
fi
hs_wait_status "the new primary warns that mn1 was refused" 30 "$C2P" \
	'any(w["severity"] == "warning" and w["text"] == "mn1 (epoch 0) runs as primary and was refused: it must rejoin" for w in d["warnings"]) and d["role"] == "primary" and d["epoch"] == 1 and not any(w["severity"] == "critical" and "split brain" in w["text"] for w in d["warnings"])'
if hs_wait_log "$T/mn2.log" "mn1 (.*) runs as primary at epoch 0, older than this node's 1: refused" 1 10; then
	hs_ok "the new primary logs the refusal"
else
	hs_bad "the new primary did not log the refusal: $(tail -5 "$T/mn2.log")"
fi

# An edit on the old primary: seen by its watcher, never sent.
echo "edited on the fenced primary" >"$D/sub/f1"
echo "new on the fenced primary" >"$D/sub/new"
hs_wait_status "the fenced primary sees its edits pending" 20 "$C1" \
	'd["lag"]["files_pending"] >= 1'
hs_snapshot "$T/standby" >"$T/new-after.snap"
if cmp -s "$T/new-before.snap" "$T/new-after.snap"; then
	hs_ok "no file on the new primary changed"
else
	hs_bad "the new primary's tree changed: $(diff "$T/new-before.snap" "$T/new-after.snap" | head -5)"
fi
if ! hs_has "connected to standby" < <(sed -n '/fenced, nothing is sent/,$p' "$T/primary.log"); then
	hs_ok "the fenced primary connected to nothing after its fence"
else
	hs_bad "the fenced primary connected after its fence"
fi

# A restart keeps it fenced; a stopped one's status says the same.
hs_stop_pid "$PRIMARY_PID" || hs_bad "the fenced primary did not stop"
hs_expect_status "a stopped fenced primary: CRITICAL, needs rejoin" "$C1" \
	'any(w["severity"] == "critical" and w["text"] == "needs rejoin: mn2 is primary at epoch 1 (this node: 0); run hamnsync rejoin" for w in d["warnings"]) and d["daemon"] == "stopped"'
hs_start_primary
if hs_wait_log "$T/primary.log" "needs rejoin: mn2 is primary at epoch 1 (this node: 0); run hamnsync rejoin; nothing is sent" 1 30; then
	hs_ok "restarted, it starts fenced"
else
	hs_bad "the restart did not start fenced: $(tail -5 "$T/primary.log")"
fi
hs_wait_status "the restarted primary's status is still CRITICAL" 20 "$C1" \
	'any(w["severity"] == "critical" and w["text"].startswith("needs rejoin: mn2 is primary at epoch 1") for w in d["warnings"]) and d["daemon"] == "running"'
[ "$("$NODE" "$T/state1")" = "primary 0 1" ] &&
	hs_ok "still stored as fenced" || hs_bad "node state: $("$NODE" "$T/state1")"
hs_snapshot "$T/standby" >"$T/new-end.snap"
cmp -s "$T/new-before.snap" "$T/new-end.snap" &&
	hs_ok "the new primary's tree is still untouched" ||
	hs_bad "the new primary's tree changed after the restart"

# A standby of a newer epoch (a promote under way fenced it first) fences
# the primary too.  Staged afresh: mn1 primary 0, mn2 standby 1.
hs_stop_pid "$PRIMARY_PID" || hs_bad "the fenced primary did not stop"
hs_stop_pid "$NEW_PID" || hs_bad "the new primary did not stop"
"$NODE" "$T/state1" primary 0 0 || hs_fail "hs-node could not stage mn1"
"$NODE" "$T/state2" standby 1 0 || hs_fail "hs-node could not stage mn2"
hs_start_standby
hs_snapshot "$T/standby" >"$T/standby-before.snap"
hs_start_primary
hs_wait_status "a standby of epoch 1 fences the primary of epoch 0" 30 "$C1" \
	'any(w["severity"] == "critical" and w["text"] == "needs rejoin: mn2 is standby at epoch 1 (this node: 0); run hamnsync rejoin" for w in d["warnings"])'
[ "$("$NODE" "$T/state1")" = "primary 0 1" ] &&
	hs_ok "stored as fenced (hs-node: primary 0 1)" ||
	hs_bad "node state: $("$NODE" "$T/state1")"
echo "edited after the standby's fence" >"$D/sub/f2"
hs_wait_status "the fenced primary sees its edit pending" 20 "$C1" \
	'd["lag"]["files_pending"] >= 1'
hs_snapshot "$T/standby" >"$T/standby-after.snap"
cmp -s "$T/standby-before.snap" "$T/standby-after.snap" &&
	hs_ok "the standby's tree is untouched" ||
	hs_bad "the standby's tree changed after the fence"

# A fence read from the index (`fence`) while a run is under way: the
# session ends only once that set is acknowledged, but from the verb on
# no set may show in-sync and no further set is sent.  Three sets, fresh
# nodes at epoch 0; the standby sleeps before each acknowledgement, so a
# run of set a lasts long enough to fence the primary inside it.
hs_stop_pid "$PRIMARY_PID" || hs_bad "the fenced primary did not stop"
hs_stop_pid "$STANDBY_PID" || hs_bad "the standby did not stop"
for s in a b c; do
	mkdir -p "$T/src/$s"
	echo "first" >"$T/src/$s/f1"
done
mkdir -p "$T/standby-mid"
C1=$T/mn1-mid.conf
C2=$T/mn2-mid.conf
HS_TARGET_ROOT=$T/standby-mid hs_conf "$C2" mn2 standby "$T/state2-mid" \
	"$T/pki/mn2" "$FP1"
hs_conf "$C1" mn1 primary "$T/state1-mid" "$T/pki/mn1" "$FP2"
for c in "$C1" "$C2"; do
	sed -i 's/^peer_timeout = .*/peer_timeout = 30s/' "$c"
	printf '[path %s]\nsource = %s\n' a "$T/src/a" b "$T/src/b" \
		c "$T/src/c" >>"$c"
done
HAMNSYNC_FAILPOINTS="standby.before_ack=sleep(6000)" hs_start_standby "$C2"
hs_start_primary "$C1"
hs_wait_status "three sets seeded, every one in-sync" 90 "$C1" \
	"[p['state'] for p in d['paths']] == ['in-sync'] * 3"
acks=$(hs_count_log "$T/standby.log" "failpoint standby.before_ack fired")
echo "second" >"$T/src/a/f1"
for ((i = 0; i < 100; i++)); do
	[ "$(hs_count_log "$T/standby.log" "failpoint standby.before_ack fired")" -gt "$acks" ] && break
	sleep 0.1
done
"$NODE" "$T/state1-mid" primary 0 1 || hs_fail "hs-node could not fence mn1"
"$HS_TOOLS/hs-ctl" "$T/state1-mid" fence >"$T/mid-fence.json" ||
	hs_bad "no answer to the verb fence"
echo "after the fence" >"$T/src/c/f1"
hs_expect_status "fenced during a run: connected still, no set in-sync" "$C1" \
	"d['peer']['state'] == 'connected' and not any(p['state'] == 'in-sync' for p in d['paths']) and any(w['severity'] == 'critical' and w['text'].startswith('needs rejoin') for w in d['warnings'])"
hs_wait_status "the session ends once set a is acknowledged" 30 "$C1" \
	"d['peer']['state'] == 'disconnected'"
if [ "$(cat "$T/standby-mid$T/src/c/f1")" = "first" ]; then
	hs_ok "set c, changed after the fence, was not sent"
else
	hs_bad "the fenced primary sent set c: $(cat "$T/standby-mid$T/src/c/f1")"
fi

# A standby that answers and refuses this node without a newer epoch (a
# promote under way on it, IDX_NODE_F_PROMOTING): the primary says so,
# with the standby's reason (its ERROR follows its HELLO), in its log and
# at once in its status, not as silence.
hs_stop_pid "$PRIMARY_PID" || hs_bad "the fenced primary did not stop"
hs_stop_pid "$STANDBY_PID" || hs_bad "the standby did not stop"
"$NODE" "$T/state1-mid" primary 0 0 || hs_fail "hs-node could not stage mn1"
"$NODE" "$T/state2-mid" standby 0 2 || hs_fail "hs-node could not stage mn2"
hs_start_standby "$C2"
hs_start_primary "$C1"
if hs_wait_log "$T/primary.log" "primary: standby 127.0.0.1:$PORT: mn2 is being promoted at epoch 0: primary mn1 (epoch 0) is refused" 1 20; then
	hs_ok "the primary logs the standby's own reason"
else
	hs_bad "the standby's reason is lost: $(grep "standby 127.0.0.1:$PORT:" "$T/primary.log" | tail -1)"
fi
hs_wait_status "a standby being promoted refuses: said, with its reason" 20 "$C1" \
	"d['peer']['state'] == 'disconnected' and any(w['severity'] == 'warning' and w['text'].startswith('standby 127.0.0.1:$PORT refuses this node: ') and 'mn2 is being promoted at epoch 0' in w['text'] for w in d['warnings']) and not any(p['state'] == 'in-sync' for p in d['paths'])"
hs_result fence
