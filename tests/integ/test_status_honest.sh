#!/usr/bin/env bash
# The primary's status never calls a set in-sync while the standby may
# miss a change of it (SPEC.md, status).  Two moments where it did:
#
# 1. A change the kernel has queued but the daemon has not read yet.  The
#    writer's inotify event is queued when its write returns; a status
#    request answered before the loop reads the event said in-sync.  Made
#    certain here: the primary is stopped (SIGSTOP), a file is written, a
#    status request is sent on the control socket, and only then is the
#    primary continued: its loop wakes with both the control socket and
#    the inotify descriptor readable, and answers status first.
# 2. A primary started while its standby is down: every set seeded before
#    (recorded in the index) was called in-sync although no standby had
#    been reached and changes made while it was down had not gone out.
#
# Each time the set must be "catching-up", and once the standby has the
# change, hs_wait_same's honest wait (in-sync first, then the trees
# compared once) must pass.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

hs_init status_honest
D=$T/src/data
mkdir -p "$D/sub"
for i in $(seq 1 20); do echo "file $i" >"$D/sub/f$i"; done
hs_setup_pair "
[path data]
source = $D"
hs_start_standby
hs_start_primary
hs_wait_same "the daemon seeds the standby" 60 "$D"
[ "$HS_SAME" -eq 1 ] || hs_fail "no seed, giving up"

# raw_status PID OUT: send a status request to the primary's control
# socket while PID is stopped, continue PID, and save the answer.
cat >"$T/raw.py" <<'PY'
import os, signal, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b"HAMNSYNC-CTL/1 status\n")
os.kill(int(sys.argv[2]), signal.SIGCONT)
out = b""
while True:
	b = s.recv(65536)
	if not b:
		break
	out += b
sys.stdout.write(out.decode())
PY

# 1. an event queued in the kernel, not read yet
kill -STOP "$PRIMARY_PID"
echo "written while the daemon sleeps" >"$D/sub/f1"
python3 "$T/raw.py" "$T/state1/hamnsync.sock" "$PRIMARY_PID" >"$T/raw.json" ||
	{ kill -CONT "$PRIMARY_PID"; hs_fail "no status answer"; }
if python3 "$HS_CLAIM" expect "$T/raw.json" \
	'[p["state"] for p in d["paths"]] == ["catching-up"]' 2>"$T/raw.why"; then
	hs_ok "a change queued in the kernel, unread: the set is catching-up"
else
	hs_bad "a change queued in the kernel, unread, yet $(cat "$T/raw.why")"
fi
hs_wait_same "the change arrives, and status says so" 30 "$D"

# 2. a primary started while the standby is down
hs_signal TERM "$PRIMARY_PID"
hs_wait_gone "$PRIMARY_PID" 150 || hs_fail "the primary did not stop"
hs_stop_standby
echo "changed while both were down" >"$D/sub/f2"
tries=$(grep -c "primary: standby 127.0.0.1:$PORT" "$T/primary.log" || true)
hs_start_primary
hs_wait_log "$T/primary.log" "primary: standby 127.0.0.1:$PORT" \
	$((tries + 1)) 30 || hs_fail "the primary never tried its standby"
hs_expect_status "standby down since the start: the set is not in-sync" \
	"$C1" 'd["daemon"] == "running" and d["peer"]["state"] == "disconnected" and [p["state"] for p in d["paths"]] == ["catching-up"]'
hs_start_standby
hs_wait_same "once the standby is up, the change arrives" 60 "$D"
hs_result status_honest
