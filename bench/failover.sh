#!/usr/bin/env bash
# failover.sh - the failover targets of issue 18, measured with real
# daemons between two nodes and an observer in network namespaces of its
# own (tests/integ/netns_lib.sh: a bridge, 192.0.2.0/24, a UTS and mount
# namespace per node), against the guide's recipe in the same run:
#
#   1. RTO: from `hamnsync promote` starting on the standby to the service
#      address 192.0.2.10 answering from the new node, as an observer
#      sees it: a prober in the observer's namespace connects to a tiny
#      TCP responder on port 8080 (each node runs one that answers its
#      name) in a tight loop, 50 ms per attempt.  Trivial regenerate and
#      start commands (true).  Each step's time from promote's output.
#      Two kinds of death, N runs each (default 5), median and max:
#        daemon: the primary's daemon is SIGKILLed and its host gives the
#                service address up (an OS that is still up: the probe
#                of preflight is refused at once);
#        node:   the primary's link goes down, then its daemon is
#                SIGKILLed (a dead machine: nothing answers, and the
#                probe of preflight waits its bound).
#      The guide's recipe (section 8, step 4, on Linux): `ip addr add` of
#      the address and `hostname` on the standby, no announcement; timed
#      the same way, 3 runs.
#   2. RPO: a writer on the primary creates a file every 20 ms; the
#      standby's `status --json` promote_ready.rpo_seconds is read, the
#      primary's daemon SIGKILLed right after, its link taken down, and
#      promote run; the files written in the last second before the kill
#      that are absent on the new primary, and the span they cover, are
#      compared with rpo_seconds.  The guide's recipe (a cron'ed rsync)
#      has an RPO of its cron interval: one day in its crontab lines.
#
#   bench/failover.sh [--reps N] [--rpo-reps N] [--peer-timeout S] [--keep]
#
# Runs as root (namespaces).  Everything lives in one mktemp folder under
# /tmp, removed at the end with the namespaces (unless --keep); every
# process started here is stopped by its PID (tests/integ/lib.sh).  The
# report is printed and written to $BENCH_OUT (default
# bench/results-failover.md).
set -euo pipefail
export LC_ALL=C
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
orig_args=("$@")

usage() {
	cat >&2 <<'EOF'
usage: bench/failover.sh [--reps N] [--rpo-reps N] [--peer-timeout S] [--keep]
  --reps N          RTO runs of each kind of death (default 5)
  --rpo-reps N      RPO runs (default 3)
  --peer-timeout S  the nodes' peer_timeout in seconds (default 10, the
                    config's default; preflight probes min(S, 5) s)
  --keep            keep the temporary folder (its path is printed)
environment: HS_BIN (default build/bin/hamnsync), BENCH_OUT (default
             bench/results-failover.md)
EOF
	exit 2
}

reps=5
rpo_reps=3
ptime=10
while [ $# -gt 0 ]; do
	case "$1" in
	--reps) [ $# -ge 2 ] || usage; reps=$2; shift ;;
	--rpo-reps) [ $# -ge 2 ] || usage; rpo_reps=$2; shift ;;
	--peer-timeout) [ $# -ge 2 ] || usage; ptime=$2; shift ;;
	--keep) export HS_KEEP=1 ;;
	-h | --help) usage ;;
	*) echo "failover.sh: unknown argument $1" >&2; usage ;;
	esac
	shift
done
for v in "$reps" "$rpo_reps" "$ptime"; do
	case "$v" in '' | *[!0-9]* | 0) usage ;; esac
done
[ "$(id -u)" = 0 ] || { echo "failover.sh: run as root (network namespaces)" >&2; exit 1; }

. "$here/../tests/integ/lib.sh"
. "$here/../tests/integ/netns_lib.sh"
HS_TOOLS=$(dirname "$HS_BIN")
[ -x "$HS_BIN" ] && [ -x "$HS_TOOLS/hs-node" ] || {
	echo "failover.sh: $HS_BIN or hs-node missing: run scripts/build.sh plain" >&2
	exit 1
}
BENCH_OUT=${BENCH_OUT:-$top/bench/results-failover.md}
hs_init bench-failover
# A private copy: a rebuild during the run changes nothing.
mkdir -p "$T/bin"
cp "$HS_BIN" "$T/bin/hamnsync"
HS_BIN=$T/bin/hamnsync
[ -z "${HS_KEEP:-}" ] || echo "failover.sh: keeping $T" >&2
hs_netns_up

say() { echo "bench: $*" >&2; }
SVC=192.0.2.10
HS_PORT=7873
RESP_PORT=8080
MAC1=$(hs_node_mac 1)
MAC2=$(hs_node_mac 2)

# --------------------------------------------------------------- helpers
# The responder: answers each connection with its node's name.
cat >"$T/responder.py" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[2])))
s.listen(64)
while True:
    c, _ = s.accept()
    try:
        c.sendall((sys.argv[1] + "\n").encode())
    except OSError:
        pass
    c.close()
EOF
# The prober: connects to ADDR:PORT in a tight loop (50 ms per attempt)
# and appends "CLOCK_MONOTONIC answer" to OUT at each change of answer
# ("-" for none); exits once it heard STOP_AT.
cat >"$T/prober.py" <<'EOF'
import socket, sys, time
addr, port, out, stop_at = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
last = None
with open(out, "w", buffering=1) as f:
    while True:
        try:
            s = socket.create_connection((addr, port), timeout=0.05)
            s.settimeout(0.2)
            r = s.recv(64).decode().strip() or "-"
            s.close()
        except OSError:
            r = "-"
            time.sleep(0.002)
        t = time.monotonic()
        if r != last:
            f.write("%.6f %s\n" % (t, r))
            last = r
        if r == stop_at:
            break
EOF
# The launcher: CLOCK_MONOTONIC before and after CMD, in OUT.
cat >"$T/timed.py" <<'EOF'
import subprocess, sys, time
t0 = time.monotonic()
r = subprocess.run(sys.argv[2:])
t1 = time.monotonic()
open(sys.argv[1], "w").write("%.6f %.6f %d\n" % (t0, t1, r.returncode))
sys.exit(r.returncode)
EOF
# The writer and the kill (RPO): a file every 20 ms into DIR, with its
# CLOCK_MONOTONIC in LOG; after SECONDS, the standby's status --json is
# read, the primary (PID) SIGKILLed right after and the writer stopped.
# Prints "t_status_start t_status_end t_kill rpo_seconds".
cat >"$T/rpo.py" <<'EOF'
import json, os, signal, subprocess, sys, threading, time
d, log, secs, pid, hs, conf = sys.argv[1:7]
os.makedirs(d, exist_ok=True)
stop = threading.Event()
def writer():
    with open(log, "w") as lf:
        i, nxt = 0, time.monotonic()
        while not stop.is_set():
            t = time.monotonic()
            with open(os.path.join(d, "f%06d" % i), "w") as f:
                f.write("written at %.6f\n" % t)
            lf.write("%d %.6f\n" % (i, t))
            i += 1
            nxt += 0.02
            time.sleep(max(0, nxt - time.monotonic()))
w = threading.Thread(target=writer)
w.start()
time.sleep(float(secs))
ts0 = time.monotonic()
st = json.loads(subprocess.run([hs, "-c", conf, "status", "--json"],
                               capture_output=True).stdout)
ts1 = time.monotonic()
os.kill(int(pid), signal.SIGKILL)
tk = time.monotonic()
stop.set()
w.join()
print("%.6f %.6f %.6f %s" % (ts0, ts1, tk, st["promote_ready"]["rpo_seconds"]))
EOF

mkdir -p "$T/n1" "$T/n2"
hs_gen_tree "$T/n1"
hs_node_bind 1 "$T/n1" "$T/src"
hs_node_bind 2 "$T/n2" "$T/src"
hs_pki

C1=$T/mn1.conf
C2=$T/mn2.conf
hs_node_conf "$C1" 1 primary "$FP2" "${ptime}s"
hs_node_conf "$C2" 2 standby "$FP1" "${ptime}s"
cat >>"$C2" <<CONF

[failover]
hostname = mn1
service_address = $SVC/24
interface = eth1
stop = true
regenerate = true
start = true
step_timeout = 30s
CONF

for i in 1 2; do
	hs_node_bg "$i" "$T/responder$i.log" python3 "$T/responder.py" "node$i" "$RESP_PORT"
done

# wait_file_has FILE PATTERN SECONDS: until FILE has a line matching.
wait_file_has() { hs_wait_log "$1" "$2" 1 "$3"; }

# fresh_pair: node1 holds the service address and runs the primary, node2
# the standby, state dirs new; returns once the standby is promote ready.
fresh_pair() {
	hs_node_run 2 ip addr del "$SVC/24" dev eth1 2>/dev/null || true
	hs_node_run 2 hostname mn2
	ip -n "${HS_NS_N[1]}" link set eth1 up
	hs_node_run 1 ip addr add "$SVC/24" dev eth1 2>/dev/null || true
	ip -n "$HS_NS_OBS" neigh flush to "$SVC" 2>/dev/null || true
	rm -rf "$T/state1" "$T/state2"
	mkdir -p "$T/state1" "$T/state2"
	: >"$T/standby.log"
	hs_node_bg 2 "$T/standby.log" "$HS_BIN" -c "$C2" daemon --foreground
	STANDBY_PID=$HS_BG_PID
	hs_wait_log "$T/standby.log" "listening on" 1 30 ||
		hs_fail "the standby did not start: $(tail -3 "$T/standby.log")"
	hs_node_bg 1 "$T/primary.log" "$HS_BIN" -c "$C1" daemon --foreground
	PRIMARY_PID=$HS_BG_PID
	local i
	for ((i = 0; i < 600; i++)); do
		hs_status "$C2" "$T/ready.json"
		python3 -c 'import json, sys
sys.exit(not json.load(open(sys.argv[1]))["promote_ready"]["ready"])' \
			"$T/ready.json" 2>/dev/null && return 0
		sleep 0.1
	done
	hs_fail "the standby was not promote ready within 60 s: $(cat "$T/ready.json")"
}

# prober_start RUN: the prober in the observer, until it hears node2;
# returns once it heard node1 (the observer has node1's MAC).
prober_start() {
	ip netns exec "$HS_NS_OBS" python3 "$T/prober.py" "$SVC" "$RESP_PORT" \
		"$T/probe-$1" node2 &
	PROBER_PID=$!
	HS_PIDS+=("$PROBER_PID")
	disown "$PROBER_PID"
	wait_file_has "$T/probe-$1" " node1$" 10 ||
		hs_fail "the observer never reached node1 on $SVC: $(cat "$T/probe-$1")"
}

# kill_node HOW: the primary dies: "daemon" (SIGKILL, then its host gives
# the address up) or "node" (its link down, then SIGKILL).
kill_node() {
	if [ "$1" = node ]; then
		ip -n "${HS_NS_N[1]}" link set eth1 down
		hs_stop_pid "$PRIMARY_PID" KILL
	else
		hs_stop_pid "$PRIMARY_PID" KILL
		hs_node_run 1 ip addr del "$SVC/24" dev eth1
	fi
	# As an administrator would: the standby says its primary is gone.
	local i
	for ((i = 0; i < 300; i++)); do
		hs_status "$C2" "$T/gone.json"
		python3 -c 'import json, sys
sys.exit(json.load(open(sys.argv[1]))["promote_ready"]["ready"])' \
			"$T/gone.json" 2>/dev/null && return 0
		sleep 0.1
	done
	hs_fail "the standby still says ready 30 s after the kill"
}

# promote_timed RUN: promote on node2, timed; then the RTO line into
# $T/rto-KIND: "run rto total step..." (seconds).
promote_timed() {
	local run=$1 kind=$2
	set +e
	hs_node_run 2 python3 "$T/timed.py" "$T/timed-$run" "$HS_BIN" -c "$C2" \
		promote >"$T/promote-$run.out" 2>"$T/promote-$run.err"
	local rc=$?
	set -e
	[ "$rc" -eq 0 ] || hs_fail "promote ($run) exited $rc: $(cat "$T/promote-$run.out" "$T/promote-$run.err")"
	hs_wait_gone "$PROBER_PID" 300 ||
		hs_fail "the observer never reached node2 on $SVC ($run): $(cat "$T/probe-$run")"
	python3 - "$T/timed-$run" "$T/probe-$run" "$T/promote-$run.out" \
		"$run" >>"$T/rto-$kind" <<'EOF'
import re, sys
t0, t1, rc = open(sys.argv[1]).read().split()
t2 = [float(l.split()[0]) for l in open(sys.argv[2]) if l.split()[1] == "node2"][0]
steps = dict(re.findall(r"^promote: ([a-z]+): done in ([0-9.]+) s", open(sys.argv[3]).read(), re.M))
order = "preflight fence drain database identity regenerate start".split()
print(sys.argv[4], "%.3f" % (t2 - float(t0)), "%.3f" % (float(t1) - float(t0)),
      " ".join(steps.get(s, "?") for s in order))
EOF
}

# stop_pair: both daemons stopped, by PID.
stop_pair() {
	hs_stop_pid "$STANDBY_PID" || true
	hs_stop_pid "$PRIMARY_PID" || true
}

# ------------------------------------------------------------- 1. RTO
: >"$T/rto-daemon"
: >"$T/rto-node"
for ((r = 1; r <= reps; r++)); do
	for kind in daemon node; do
		say "RTO $kind $r/$reps"
		fresh_pair
		prober_start "$kind$r"
		kill_node "$kind"
		promote_timed "$kind$r" "$kind"
		stop_pair
		tail -1 "$T/rto-$kind" >&2
	done
done

# ------------------------------------------- the guide's step 4 (RTO)
: >"$T/rto-guide"
for ((r = 1; r <= 3; r++)); do
	say "the guide's step 4, $r/3"
	hs_node_run 2 ip addr del "$SVC/24" dev eth1 2>/dev/null || true
	hs_node_run 2 hostname mn2
	ip -n "${HS_NS_N[1]}" link set eth1 up
	hs_node_run 1 ip addr add "$SVC/24" dev eth1 2>/dev/null || true
	ip -n "$HS_NS_OBS" neigh flush to "$SVC" 2>/dev/null || true
	prober_start "guide$r"
	ip -n "${HS_NS_N[1]}" link set eth1 down
	hs_node_run 2 python3 "$T/timed.py" "$T/timed-guide$r" sh -c \
		"ip addr add $SVC/24 dev eth1 && hostname mn1"
	hs_wait_gone "$PROBER_PID" 1200 ||
		hs_fail "the observer never reached node2 after the guide's step 4 (120 s)"
	python3 - "$T/timed-guide$r" "$T/probe-guide$r" >>"$T/rto-guide" <<'EOF'
import sys
t0, t1, rc = open(sys.argv[1]).read().split()
t2 = [float(l.split()[0]) for l in open(sys.argv[2]) if l.split()[1] == "node2"][0]
print("%.3f %.3f" % (t2 - float(t0), float(t1) - float(t0)))
EOF
	tail -1 "$T/rto-guide" >&2
done
hs_node_run 2 ip addr del "$SVC/24" dev eth1 2>/dev/null || true
ip -n "${HS_NS_N[1]}" link set eth1 up

# ------------------------------------------------------------- 2. RPO
: >"$T/rpo"
for ((r = 1; r <= rpo_reps; r++)); do
	say "RPO $r/$rpo_reps"
	fresh_pair
	prober_start "rpo$r"
	# The guide's cron fires as the writer starts (a copy of the folder
	# as it is then): what it would hold at the kill.
	hs_node_run 1 python3 "$T/rpo.py" "$T/src/install/rpo-$r" \
		"$T/writes-$r" 4 "$PRIMARY_PID" "$HS_BIN" "$C2" \
		>"$T/rpo-kill-$r" 2>"$T/rpo-kill-$r.err" ||
		hs_fail "the writer ($r): $(cat "$T/rpo-kill-$r.err")"
	ip -n "${HS_NS_N[1]}" link set eth1 down
	hs_stop_pid "$PRIMARY_PID" KILL || true
	promote_timed "rpo$r" rpo-rto
	python3 - "$T/rpo-kill-$r" "$T/writes-$r" "$T/n2/install/rpo-$r" \
		>>"$T/rpo" <<'EOF'
import os, sys
ts0, ts1, tk, rpo = open(sys.argv[1]).read().split()
tk = float(tk)
writes = [(l.split()[0], float(l.split()[1])) for l in open(sys.argv[2])]
have = set(os.listdir(sys.argv[3])) if os.path.isdir(sys.argv[3]) else set()
last = [(i, t) for i, t in writes if tk - 1.0 <= t <= tk]
absent = [(i, t) for i, t in writes if "f%06d" % int(i) not in have]
absent_last = [x for x in absent if tk - 1.0 <= x[1]]
span = tk - min(t for _, t in absent) if absent else 0.0
# They agree when they differ by less than the grain: a write's period
# and the time from the status read to the kill.
agree = abs(span - float(rpo)) <= 0.020 + (tk - float(ts0))
print(len(writes), len(last), len(absent_last), len(absent) - len(absent_last),
      "%.3f" % span, "%.3f" % float(rpo), "%.3f" % (tk - float(ts0)),
      "%.3f" % (float(ts1) - float(ts0)), "yes" if agree else "NO")
EOF
	stop_pair
	tail -1 "$T/rpo" >&2
done

# ------------------------------------------------------------ the report
stats() { # FILE COLUMN: "median max" of a column
	python3 -c 'import statistics, sys
v = [float(l.split()[int(sys.argv[2])]) for l in open(sys.argv[1]) if l.strip()]
print("%.3f %.3f" % (statistics.median(v), max(v)))' "$1" "$2"
}
# less FILE: "median max" of the RTO less preflight's time
less_pre() {
	python3 -c 'import statistics, sys
v = [float(l.split()[1]) - float(l.split()[3]) for l in open(sys.argv[1]) if l.strip()]
print("%.3f %.3f" % (statistics.median(v), max(v)))' "$1"
}
read -r d_med d_max < <(stats "$T/rto-daemon" 1)
read -r n_med n_max < <(stats "$T/rto-node" 1)
read -r nl_med nl_max < <(less_pre "$T/rto-node")
read -r g_med g_max < <(stats "$T/rto-guide" 0)
pass() { python3 -c "print('yes' if $1 else 'NO')"; }
rto_rows() { # FILE KIND
	local run rto total p f dr db id rg st
	while read -r run rto total p f dr db id rg st; do
		echo "| $2 | ${run//[a-z-]/} | $p | $f | $dr | $db | $id | $rg | $st | $total | **$rto** |"
	done <"$1"
}
{
	echo "# Failover: RTO and RPO (bench/failover.sh)"
	echo
	echo "$(date -u +%Y-%m-%d), $(nproc) cores, load at the end $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "Command: \`bench/failover.sh$([ ${#orig_args[@]} -eq 0 ] || printf ' %s' "${orig_args[@]}")\`;"
	echo "two nodes and an observer in network namespaces on a bridge (veth), the"
	echo "xCAT sets of a small tree (tests/integ/lib.sh hs_gen_tree, ~5 MB),"
	echo "peer_timeout = ${ptime}s, regenerate/start/stop = \`true\`, the daemon"
	echo "running on the standby (promote switches it in its process)."
	echo
	echo "## RTO: promote -> $SVC answers from the new node"
	echo
	echo "Seen by the observer: a TCP connect to port $RESP_PORT of $SVC every"
	echo "50 ms at most, answered by a responder naming its node; the time is"
	echo "from promote's start to the first answer from node2.  Steps in"
	echo "seconds, from promote's own \"done in\" lines."
	echo
	echo "| death | run | preflight | fence | drain | database | identity | regenerate | start | promote exits | **RTO** |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	rto_rows "$T/rto-daemon" daemon
	rto_rows "$T/rto-node" node
	echo
	echo "| death | RTO median | RTO max | target | met |"
	echo "|---|---|---|---|---|"
	echo "| daemon killed, host up (preflight refused at once) | $d_med s | $d_max s | <= 2 s | $(pass "$d_max <= 2") |"
	echo "| node dead (link down; promote once the standby says its primary is gone: preflight's probe waits 1 s) | $n_med s | $n_max s | <= 2 s | $(pass "$n_max <= 2") |"
	echo "| node dead, less preflight's probe | $nl_med s | $nl_max s | | |"
	echo "| the guide's step 4 by hand, scripted (\`ip addr add\` + \`hostname\`, no announcement; node dead) | $g_med s | $g_max s | | |"
	echo
	echo "A dead node answers nothing: preflight's probe of it (to refuse a"
	echo "promote while the primary lives) ends only at its bound, 1 s once"
	echo "this node has seen the primary silent past peer_timeout (as here:"
	echo "promote runs when the standby says it is gone), else"
	echo "min(peer_timeout, 5 s) (the RPO runs below, which promote at once)."
	echo "That probe is most of the RTO.  \"start\" runs"
	echo "after the address answers; with a dead node it lasts peer_timeout:"
	echo "the daemon, switched to primary, first connects to its standby (the"
	echo "dead node) and answers \`status\` as primary, which promote waits"
	echo "for, only once that connect gives up (its log: \"cannot connect:"
	echo "Connection timed out\", peer_timeout after the switch)."
	echo
	echo "The guide's figure leaves out the other seven manual steps (database"
	echo "takeover, stopping the database, updating its config, xcatd, makedns,"
	echo "makedhcp, makeconservercf): an administrator's minutes, not measured."
	echo "Without an announcement the observer keeps the dead node's MAC until"
	echo "its neighbour entry times out and is probed again."
	echo
	echo "## RPO: unplanned failover under a writer"
	echo
	echo "A file every 20 ms into the \`install\` set on the primary; after 4 s"
	echo "the standby's \`status --json\` is read, the primary's daemon SIGKILLed"
	echo "right after, its link taken down, promote run on the standby.  \"span\""
	echo "is the time from the first absent file's write to the kill (0 when"
	echo "none is absent); the grain is the 20 ms between writes plus the"
	echo "time from the status read to the kill: the two agree when they"
	echo "differ by less."
	echo
	echo "| run | files written | in the last 1 s | absent of those | absent, older | span of the absent | rpo_seconds (status) | status read -> kill | status took | agree within the grain |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	r=0
	while read -r nw nl al ao span rpo sk st ag; do
		r=$((r + 1))
		echo "| $r | $nw | $nl | **$al** | $ao | **${span} s** | **${rpo} s** | ${sk} s | ${st} s | $ag |"
	done <"$T/rpo"
	echo
	echo "The guide's recipe: \`rsync -az\` from cron (\`0 2 * * *\` for /install,"
	echo "\`0 1 * * *\` for the credentials): its RPO is the cron interval, up to"
	echo "one day of changes (every file this writer made would be absent)."
	echo
	echo "Promote under the RPO runs (run, RTO, promote, steps):"
	echo
	echo '```'
	cat "$T/rto-rpo-rto"
	echo '```'
} >"$T/results.md"
cat "$T/results.md"
cp "$T/results.md" "$BENCH_OUT"
say "written to $BENCH_OUT"
