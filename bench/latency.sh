#!/usr/bin/env bash
# latency.sh - hamnsync's continuous-replication targets (issue 5), measured
# in one run on 127.0.0.1:
#
#   1. change-to-standby latency of a 1 KiB edit: hamnsync daemons, and
#      lsyncd (default.rsync to an rsync daemon, delay = 0) with rsync's
#      defaults and with --sockopts=TCP_NODELAY, on the same edits;
#   2. small edits while a 512 MiB file streams (hamnsync);
#   3. primary daemon restart with nothing changed on the many-files tree,
#      against `rsync -a` with nothing to transfer;
#   4. the idle daemons' CPU and memory;
#   5. an edit of 3 x 64 KiB inside a 512 MiB file, from the write to
#      acknowledged on the standby, against `rsync -a --fsync` of the same
#      edit (wall time and bytes on the loopback).
#
#   bench/latency.sh [--samples N] [--quick] [--only restart|bigedit]
#                    [--reps N] [--keep] [--no-netns]
#
# Conventions of bench/run.sh: everything lives in one mktemp folder under
# $BENCH_DIR (default /tmp), removed at the end; every process started here
# is stopped by its PID; traffic stays on 127.0.0.1 (in a private network
# namespace when run as root); the table is printed and written to
# $BENCH_OUT (default bench/results-latency.md).  See bench/README.md.
set -euo pipefail
export LC_ALL=C
umask 022

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
orig_args=("$@")

usage() {
	cat >&2 <<'EOF'
usage: bench/latency.sh [--samples N] [--quick] [--only restart|bigedit]
                        [--reps N] [--keep] [--no-netns]
  --samples N   1 KiB edits per tool (default 200; 100 with --quick)
  --quick       100 samples, a 128 MiB streaming file, a 10,000-file tree
                (5 x gen.sh manyfiles-quick), 2 restarts: about 1.5 minutes
                (the full run: 512 MiB, 100,000 files, 3 restarts)
  --only restart  part 3 alone (restart with nothing changed against
                rsync -a with nothing to transfer), 5 runs of each,
                alternating: about 30 s with --quick, a few minutes without
  --only bigedit  part 5 alone (a 3 x 64 KiB edit in a big file, from the
                write to acknowledged on the standby, against rsync -a
                --fsync), 5 runs of each, alternating
  --reps N      runs of each in parts 3 and 5 (1..50)
  --keep        keep the temporary folder (its path is printed)
  --no-netns    do not run in a private network namespace
environment: HS_BIN (default build/bin/hamnsync), BENCH_DIR (default /tmp),
             BENCH_OUT (default bench/results-latency.md), BENCH_SEED
EOF
	exit 2
}

scale=full
samples=""
only=""
reps=""
keep=no
netns=auto
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) scale=quick ;;
	--samples) [ $# -ge 2 ] || usage; samples=$2; shift ;;
	--samples=*) samples=${1#--samples=} ;;
	--only) [ $# -ge 2 ] || usage; only=$2; shift ;;
	--only=*) only=${1#--only=} ;;
	--reps) [ $# -ge 2 ] || usage; reps=$2; shift ;;
	--reps=*) reps=${1#--reps=} ;;
	--keep) keep=yes ;;
	--no-netns) netns=no ;;
	-h | --help) usage ;;
	*) echo "latency.sh: unknown argument $1" >&2; usage ;;
	esac
	shift
done
if [ -z "$samples" ]; then
	if [ "$scale" = quick ]; then samples=100; else samples=200; fi
fi
case "$samples" in
'' | *[!0-9]*) usage ;;
esac
case "$only" in
'' | restart | bigedit) ;;
*) echo "latency.sh: --only restart or --only bigedit" >&2; exit 2 ;;
esac
case "$reps" in
'') ;;
*[!0-9]*) usage ;;
*) if [ "$reps" -lt 1 ] || [ "$reps" -gt 50 ]; then
	echo "latency.sh: --reps 1..50" >&2
	exit 2
fi ;;
esac
if [ "$samples" -lt 10 ] || [ "$samples" -gt 5000 ]; then
	echo "latency.sh: --samples 10..5000" >&2
	exit 2
fi

# A private network namespace: nothing else on its loopback.  With a
# private mount namespace too, the primary's side of parts 1 and 2 gets a
# filesystem of its own (see PRIM below).
if [ "$netns" = auto ] && [ -z "${BENCH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ] &&
	command -v unshare >/dev/null && command -v ip >/dev/null &&
	unshare -n true 2>/dev/null; then
	if unshare -n -m --propagation private true 2>/dev/null; then
		exec unshare -n -m --propagation private -- \
			env BENCH_IN_NETNS=1 \
			BENCH_IN_MNTNS="$(readlink /proc/self/ns/mnt)" \
			bash "${BASH_SOURCE[0]}" "${orig_args[@]}"
	fi
	exec unshare -n -- env BENCH_IN_NETNS=1 bash "${BASH_SOURCE[0]}" "${orig_args[@]}"
fi
in_netns=no
if [ -n "${BENCH_IN_NETNS:-}" ]; then
	ip link set lo up
	in_netns=yes
fi

needs="rsync python3 perl openssl pgrep timeout"
[ -n "$only" ] || needs="$needs lsyncd"
for cmd in $needs; do
	command -v "$cmd" >/dev/null ||
		{ echo "latency.sh: $cmd missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
HS_BIN=${HS_BIN:-$top/build/bin/hamnsync}
[ -x "$HS_BIN" ] || { echo "latency.sh: $HS_BIN missing: run scripts/build.sh plain" >&2; exit 1; }
if [ -n "$only" ]; then
	BENCH_OUT=${BENCH_OUT:-$top/bench/results-$only.md}
else
	BENCH_OUT=${BENCH_OUT:-$top/bench/results-latency.md}
fi
SEED=${BENCH_SEED:-hamnsync}
case "$SEED" in
*[!A-Za-z0-9._-]*) echo "latency.sh: BENCH_SEED may hold only A-Za-z0-9._-" >&2; exit 2 ;;
esac
if [ "$scale" = quick ]; then
	stream_mib=128
	restart_reps=2
else
	stream_mib=512
	restart_reps=3
fi
edit_reps=3
if [ -n "$only" ]; then
	restart_reps=5
	edit_reps=5
fi
[ -z "$reps" ] || restart_reps=$reps
[ -z "$reps" ] || edit_reps=$reps
idle_s=10
# status asked every 10 ms after a restart, on the control socket
RESTART_POLL=0.01

B=""
prim_fs=shared # tmpfs once the primary's side has one (below)
PIDS=() # every long-running process started here
cleanup() {
	local rc=$? p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait_gone "$p" 150 || kill -9 "$p" 2>/dev/null || true
	done
	if [ -n "$B" ]; then
		# (a daemon killed above may hold it a moment: then lazily)
		[ "$prim_fs" != tmpfs ] || umount "$B/prim" 2>/dev/null ||
			umount -l "$B/prim" 2>/dev/null || true
		if [ "$keep" = yes ]; then
			echo "latency.sh: kept $B (not the primary's tmpfs of parts 1 and 2)" >&2
		else
			rm -rf "$B"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM

wait_gone() {
	local i
	for ((i = 0; i < $2; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

B=$(mktemp -d "${BENCH_DIR:-/tmp}/hs-latency.XXXXXX")
mkdir -p "$B/bin" "$B/conf" "$B/log" "$B/t" "$B/state" "$B/pki" "$B/run" "$B/res"
# A private copy: a rebuild of the tree during the run changes nothing.
cp "$HS_BIN" "$B/bin/hamnsync"
HS=$B/bin/hamnsync
# The primary's side of parts 1 and 2 (its sources and state_dir) on a
# tmpfs of its own when a private mount namespace allows: on two machines
# the primary's disk is not the standby's.  On one shared ext4, a source
# write (the edit's own O_TRUNC and close) waited up to 135 ms for the
# journal commits of the standby's fsyncs, and that wait counted in the
# edit's latency.  The standby's target and state, the disk-alone rows and
# parts 3 and 4 stay on $BENCH_DIR's filesystem.
PRIM=$B
# (BENCH_IN_MNTNS: the mount namespace we left; never mount in that one)
if [ -n "${BENCH_IN_MNTNS:-}" ] &&
	[ "$(readlink /proc/self/ns/mnt)" != "$BENCH_IN_MNTNS" ] &&
	mkdir -p "$B/prim" &&
	mount -t tmpfs -o size=4g,mode=0755 hs-bench-primary "$B/prim" 2>/dev/null; then
	prim_fs=tmpfs
	PRIM=$B/prim
	mkdir -p "$PRIM/state"
fi
SRC=$PRIM/src  # the small management-node tree (parts 1 and 2)
MANY=$B/many   # the many-files tree (parts 3 and 4)
PY=$B/bin/lat.py
start_time=$SECONDS
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
TICK=$(getconf CLK_TCK)

say() { echo "latency: $*" >&2; }
die() { say "$*"; exit 1; }

# listening PORT: is something listening on 127.0.0.1:PORT?
listening() {
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 }
		END { exit !f }' /proc/net/tcp
}

# port_used PORT: does any socket (any state: TIME_WAIT too) use it?
port_used() {
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" 'substr($2, length($2) - 4) == p { f = 1 }
		END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# free_port: a port below the ephemeral range (the many rsync and lsyncd
# connections would otherwise leave it in TIME_WAIT) that nothing uses.
free_port() {
	local p i lo
	lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	[ "$lo" -gt 21000 ] 2>/dev/null || lo=40000
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % (lo - 20000)))
		port_used "$p" || { echo "$p"; return 0; }
	done
	return 1
}

# wait_listen PORT PID LOG: bounded wait until PID listens on PORT.
wait_listen() {
	local i
	for ((i = 0; i < 200; i++)); do
		listening "$1" && return 0
		kill -0 "$2" 2>/dev/null || { tail -5 "$3" >&2; die "process $2 exited (log $3)"; }
		sleep 0.05
	done
	die "nothing listens on 127.0.0.1:$1 (log $3)"
}

# stop PID: SIGTERM, bounded wait, SIGKILL; forget the PID.
stop() {
	local p=$1 q keep=()
	kill "$p" 2>/dev/null || true
	if ! wait_gone "$p" 300; then
		say "process $p did not stop: killing it"
		kill -9 "$p" 2>/dev/null || true
	fi
	wait "$p" 2>/dev/null || true
	for q in "${PIDS[@]}"; do
		[ "$q" = "$p" ] || keep+=("$q")
	done
	PIDS=("${keep[@]}")
}

flush() {
	sync -f "$B"
}

# ------------------------------------------------------- the python helper

cat >"$PY" <<'PYEOF'
#!/usr/bin/env python3
"""lat.py - the measuring side of bench/latency.sh.

edits FILE COPY N SEED OUT
    closed loop: N edits of FILE, a 1 KiB file holding a unique token
    (1024 and 1023 bytes in turn), each timed on CLOCK_MONOTONIC right
    before the file is opened for writing; COPY is then read every 0.2 ms
    until it holds the token (5 s at most), and a random 20-50 ms pause
    follows.  OUT: one line per sample: index, write time (ns), latency
    (ns, -1 on timeout).
stream FILE COPY SEED OUT BIG BIGCOPY SIZE
    open loop: starts `head -c SIZE /dev/urandom > BIG` in the background
    and edits FILE every 20-50 ms (not waiting for the copy) until BIGCOPY
    has SIZE bytes and 1.5 s more have passed (300 s at most); a second
    thread reads COPY every 0.2 ms: when it holds edit i, every edit up to
    i has arrived (a newer version replaces an older one).  OUT as above;
    OUT.json: when BIG was written and when BIGCOPY was complete.
stats OUT...
    p50 p90 p99 max mean timeouts samples of each OUT (ms, nearest rank;
    a timeout counts as 5 s).
floor DIR N SEED OUT [BIG SIZE]
    the disk alone, as the standby replaces a small file: N times a 1 KiB
    file written to DIR/.floor-tmp, fsynced and renamed over DIR/hosts,
    timed from the open to the rename (when a reader would see it), then
    DIR fsynced and a random 20-50 ms pause.  With BIG: meanwhile
    `head -c SIZE /dev/urandom > BIG`, then a copy of BIG beside it,
    synced (what the primary's writer and the standby write of part 2),
    and samples are taken until 1.5 s after the copy is synced (N is
    ignored).  OUT as for edits.
streamstats OUT OUT.json
    the same for the edits made while BIG was written, while it was
    transferred (written .. copy complete) and after; plus the slowest.
waitsync HS CONF TIMEOUT POLL_S
    polls `HS -c CONF status --json` every POLL_S seconds until the daemon runs,
    its peer is connected, lag is 0 and every path is in-sync; prints the
    wall clock (time.time()) of that answer; exit 1 on timeout.
restartwait SOCK READY GO TIMEOUT POLL_S
    waitsync for a daemon about to start, without the poller's own start
    in the measurement: creates READY, waits for GO to exist (the daemon
    has been started), then for its control socket SOCK, then asks it for
    its status every POLL_S seconds itself (the protocol `hamnsync status`
    speaks: one line "HAMNSYNC-CTL/1 status", one JSON line back), so no
    process is started while the daemon starts on the same two cores (a
    `hamnsync status` every 20 ms took a third of a core from it).
"""
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

TIMEOUT_NS = 5_000_000_000
POLL_S = 0.0002


def token_for(seed, i, rng):
    return "L%06d:%08x:%s" % (i, rng.getrandbits(32), seed)


def content(token, size):
    line = (token + "\n").encode()
    return (line * (size // len(line) + 1))[:size]


def write_file(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_copy(copy):
    try:
        fd = os.open(copy, os.O_RDONLY)
    except FileNotFoundError:
        return b""
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def one_edit(path, copy, token, size):
    data = content(token, size)
    tok = token.encode()
    t0 = time.monotonic_ns()
    write_file(path, data)
    deadline = t0 + TIMEOUT_NS
    while True:
        if tok in read_copy(copy):
            return t0, time.monotonic_ns() - t0
        if time.monotonic_ns() > deadline:
            return t0, -1
        time.sleep(POLL_S)


def cmd_edits(a):
    path, copy, n, seed, out = a[0], a[1], int(a[2]), a[3], a[4]
    label = os.path.basename(out)
    rng = random.Random("%s-edits" % seed)
    with open(out, "w") as f:
        for i in range(n):
            # 1024 and 1023 bytes in turn: rsync's quick check (size and
            # whole-second mtime) skips a same-size rewrite within a second
            t0, lat = one_edit(path, copy, token_for(seed, i, rng),
                               1024 - i % 2)
            f.write("%d\t%d\t%d\n" % (i, t0, lat))
            if (i + 1) % 50 == 0 or i + 1 == n:
                f.flush()
                print("lat.py: %s: %d/%d samples" % (label, i + 1, n),
                      file=sys.stderr)
            time.sleep(rng.uniform(0.020, 0.050))


def cmd_stream(a):
    path, copy, seed, out, big, bigcopy, size = (
        a[0], a[1], a[2], a[3], a[4], a[5], int(a[6]))
    rng = random.Random("%s-stream" % seed)
    tokens, t0s, arrived = [], [], []
    ev = {}
    done = threading.Event()
    lock = threading.Lock()
    t_start = time.monotonic_ns()
    w = subprocess.Popen(["sh", "-c", 'exec head -c "$1" /dev/urandom > "$2"',
                          "sh", str(size), big])

    def poller():
        seen = -1
        while not done.is_set():
            got = read_copy(copy)
            now = time.monotonic_ns()
            if got[:1] == b"L":
                try:
                    i = int(got[1:7])
                except ValueError:
                    i = -1
                with lock:
                    if seen < i < len(tokens) and \
                            got.startswith(tokens[i].encode()):
                        for j in range(seen + 1, i + 1):
                            arrived[j] = now
                        seen = i
            if "written" not in ev and w.poll() is not None:
                ev["written"] = now
            if "landed" not in ev:
                try:
                    if os.stat(bigcopy).st_size == size:
                        ev["landed"] = now
                except FileNotFoundError:
                    pass
            time.sleep(POLL_S)

    th = threading.Thread(target=poller, daemon=True)
    th.start()
    i = 0
    limit = t_start + 300_000_000_000
    while time.monotonic_ns() < limit:
        landed = ev.get("landed")
        if landed and time.monotonic_ns() > landed + 1_500_000_000:
            break
        tok = token_for(seed, i, rng)
        data = content(tok, 1024 - i % 2)
        with lock:
            tokens.append(tok)
            arrived.append(None)
            t0s.append(time.monotonic_ns())
        write_file(path, data)
        i += 1
        time.sleep(rng.uniform(0.020, 0.050))
    t_edits = time.monotonic_ns()
    # the last edit gets up to 5 s to arrive
    while arrived[-1] is None and time.monotonic_ns() < t_edits + TIMEOUT_NS:
        time.sleep(0.001)
    done.set()
    th.join(10)
    if w.poll() is None:
        w.kill()
    w.wait()
    with open(out, "w") as f:
        for j in range(len(tokens)):
            lat = arrived[j] - t0s[j] if arrived[j] is not None else -1
            f.write("%d\t%d\t%d\n" % (j, t0s[j], lat))
    res = {"start": t_start, "edits_end": t_edits,
           "written": ev.get("written"), "landed": ev.get("landed"),
           "writer_rc": w.returncode}
    with open(out + ".json", "w") as f:
        json.dump(res, f)
    print("lat.py: %s: %d edits" % (os.path.basename(out), len(tokens)),
          file=sys.stderr)


def floor_one(d, token, size):
    data = content(token, size)
    tmp, dst = os.path.join(d, ".floor-tmp"), os.path.join(d, "hosts")
    t0 = time.monotonic_ns()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, dst)
    lat = time.monotonic_ns() - t0
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return t0, lat


def cmd_floor(a):
    d, n, seed, out = a[0], int(a[1]), a[2], a[3]
    rng = random.Random("%s-floor" % seed)
    w = None
    if len(a) > 4:
        big, size = a[4], int(a[5])
        w = subprocess.Popen(
            ["sh", "-c", 'head -c "$1" /dev/urandom > "$2" && '
             'cat "$2" > "$2.copy" && sync "$2.copy"', "sh", str(size), big])
        n = 1 << 30
    done_at = None
    limit = time.monotonic_ns() + 300_000_000_000
    with open(out, "w") as f:
        for i in range(n):
            if w is not None:
                if done_at is None and w.poll() is not None:
                    done_at = time.monotonic_ns()
                if (done_at and time.monotonic_ns() > done_at +
                        1_500_000_000) or time.monotonic_ns() > limit:
                    break
            t0, lat = floor_one(d, token_for(seed, i, rng), 1024 - i % 2)
            f.write("%d\t%d\t%d\n" % (i, t0, lat))
            time.sleep(rng.uniform(0.020, 0.050))
    if w is not None:
        if w.poll() is None:
            w.kill()
        w.wait()
        for p in (a[4], a[4] + ".copy"):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


def pct(v, p):
    # nearest rank
    if not v:
        return float("nan")
    k = max(1, -(-len(v) * p // 100))
    return v[int(k) - 1]


def stats_of(lines):
    lat = [int(x[2]) for x in lines]
    ok = sorted(x / 1e6 for x in lat if x >= 0)
    to = sum(1 for x in lat if x < 0)
    allv = ok + [TIMEOUT_NS / 1e6] * to
    return {"p50": pct(allv, 50), "p90": pct(allv, 90), "p99": pct(allv, 99),
            "max": allv[-1] if allv else float("nan"),
            "mean": sum(allv) / len(allv) if allv else float("nan"),
            "timeouts": to, "n": len(allv)}


def read_tsv(path):
    with open(path) as f:
        return [l.split("\t") for l in f.read().split("\n") if l]


def fmt(s):
    return "%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d" % (
        s["p50"], s["p90"], s["p99"], s["max"], s["mean"], s["timeouts"],
        s["n"])


def cmd_stats(a):
    for path in a:
        print(fmt(stats_of(read_tsv(path))))


def cmd_streamstats(a):
    rows = read_tsv(a[0])
    with open(a[1]) as f:
        ev = json.load(f)
    big = 1 << 62
    written = ev["written"] or big
    landed = ev["landed"] or big
    ms = lambda t: "%.0f" % ((t - ev["start"]) / 1e6) if t else "n/a"
    print("events\t%s\t%s\t%s" % (ms(ev["written"]), ms(ev["landed"]),
                                  ms(ev["edits_end"])))
    parts = (("while streaming (write start .. copy complete)",
              [r for r in rows if int(r[1]) < landed]),
             ("- while the file is written",
              [r for r in rows if int(r[1]) < written]),
             ("- while it is transferred (written .. copy complete)",
              [r for r in rows if written <= int(r[1]) < landed]),
             ("after (copy complete .. +1.5 s)",
              [r for r in rows if int(r[1]) >= landed]))
    for name, part in parts:
        if part:
            print("%s\t%s" % (name, fmt(stats_of(part))))
        else:
            print("%s\t-\t-\t-\t-\t-\t0\t0" % name)
    slow = sorted(rows, key=lambda r: -int(r[2]) if int(r[2]) >= 0 else -1e18)
    print("slowest\t" + "; ".join(
        "edit at %s ms: %s" % (ms(int(r[1])),
                               "%.0f ms" % (int(r[2]) / 1e6)
                               if int(r[2]) >= 0 else "timeout")
        for r in slow[:5]))


def status_ok(j):
    if j.get("daemon") != "running":
        return False
    if (j.get("peer") or {}).get("state") != "connected":
        return False
    lag = (j.get("lag") or {}).get("seconds")
    if lag is None or lag != 0:
        return False
    paths = j.get("paths") or []
    return bool(paths) and all(p.get("state") == "in-sync" for p in paths)


def cmd_waitsync(a):
    hs, conf, timeout, poll = a[0], a[1], float(a[2]), float(a[3])
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        t = time.monotonic()
        r = subprocess.run([hs, "-c", conf, "status", "--json"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            j = json.loads(r.stdout)
            last = r.stdout.decode(errors="replace")
            if status_ok(j):
                print("%.6f" % time.time())
                return 0
        except ValueError:
            pass
        time.sleep(max(0.0, poll - (time.monotonic() - t)))
    print("lat.py: waitsync: not in sync after %.0f s; last status: %s"
          % (timeout, last.strip()[:2000]), file=sys.stderr)
    return 1


def wait_path(path, timeout):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def ctl_status(sock):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(sock)
        s.sendall(b"HAMNSYNC-CTL/1 status\n")
        got = b""
        while not got.endswith(b"\n"):
            b = s.recv(65536)
            if not b:
                break
            got += b
        return json.loads(got)
    finally:
        s.close()


def cmd_restartwait(a):
    sock, ready, go, timeout, poll = a[0], a[1], a[2], float(a[3]), float(a[4])
    with open(ready, "w"):
        pass
    if not wait_path(go, 60):
        print("lat.py: restartwait: %s never appeared" % go, file=sys.stderr)
        return 1
    if not wait_path(sock, timeout):
        print("lat.py: restartwait: no control socket %s" % sock,
              file=sys.stderr)
        return 1
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        t = time.monotonic()
        try:
            last = ctl_status(sock)
            if status_ok(last):
                print("%.6f" % time.time())
                return 0
        except (OSError, ValueError):
            pass
        time.sleep(max(0.0, poll - (time.monotonic() - t)))
    print("lat.py: restartwait: not in sync after %.0f s; last status: %s"
          % (timeout, json.dumps(last)[:2000]), file=sys.stderr)
    return 1


def lo_bytes():
    """Bytes sent on this network namespace's loopback (/proc/net is the
    namespace's own; /sys/class/net is the one sysfs was mounted in)."""
    with open("/proc/net/dev") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                return int(rest.split()[8])
    return 0


def big_edits(path, seed):
    """3 x 64 KiB at 10, 50 and 90 % of the file, in place (no
    truncation, as a database or an image is edited): [(offset, bytes)]."""
    size = os.path.getsize(path)
    rng = random.Random("%s-bigedit" % seed)
    out = []
    for frac in (0.1, 0.5, 0.9):
        off = int(size * frac) // 4096 * 4096
        out.append((off, bytes(rng.getrandbits(8) for _ in range(65536))))
    return out


def apply_edits(path, edits):
    fd = os.open(path, os.O_WRONLY)
    try:
        for off, data in edits:
            os.pwrite(fd, data, off)
    finally:
        os.close(fd)


def copy_has(copy, edits):
    with open(copy, "rb") as f:
        for off, data in edits:
            f.seek(off)
            if f.read(len(data)) != data:
                return False
    return True


def copy_id(copy):
    """The standby replaces its copy by a rename: a new inode (or mtime)
    is the moment to read it again, not every poll (the reads would take
    CPU from the daemons on this 2-core machine)."""
    st = os.stat(copy)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def cmd_bigedit(a):
    """hs PATH COPY SOCK SEED | rsync PATH URL SEED: one edit, timed from
    before the write to acknowledged on the standby (hs: its copy holds
    the edit and the primary's status says in sync, lag 0) or to rsync's
    exit; prints wall seconds and loopback bytes."""
    tool = a[0]
    if tool == "hs":
        path, copy, sock, seed = a[1], a[2], a[3], a[4]
    else:
        path, url, seed = a[1], a[2], a[3]
    edits = big_edits(path, seed)
    if tool == "hs":
        seen = copy_id(copy)  # it must be there: an error says why
    b0 = lo_bytes()
    t0 = time.monotonic()
    apply_edits(path, edits)
    if tool == "hs":
        deadline = t0 + 600
        last = None
        while True:
            now = copy_id(copy)
            if now != seen:
                seen = now
                if copy_has(copy, edits):
                    break
            if time.monotonic() > deadline:
                print("lat.py: bigedit: the edit never arrived at %s"
                      % copy, file=sys.stderr)
                return 1
            time.sleep(0.001)
        while True:
            try:
                last = ctl_status(sock)
                if status_ok(last):
                    break
            except (OSError, ValueError) as e:
                last = repr(e)
            if time.monotonic() > deadline:
                print("lat.py: bigedit: never acknowledged; last status: %s"
                      % json.dumps(last)[:2000], file=sys.stderr)
                return 1
            time.sleep(0.002)
    else:
        r = subprocess.run(["rsync", "-a", "--fsync", "--numeric-ids",
                            "--sockopts=TCP_NODELAY", path, url],
                           stdout=subprocess.DEVNULL)
        if r.returncode != 0:
            print("lat.py: bigedit: rsync exited %d" % r.returncode,
                  file=sys.stderr)
            return 1
    t1 = time.monotonic()
    print("%.3f\t%d" % (t1 - t0, lo_bytes() - b0))
    return 0


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    fn = {"edits": cmd_edits, "stream": cmd_stream, "stats": cmd_stats,
          "floor": cmd_floor,
          "streamstats": cmd_streamstats, "waitsync": cmd_waitsync,
          "restartwait": cmd_restartwait, "bigedit": cmd_bigedit}[cmd]
    sys.exit(fn(a) or 0)


main()
PYEOF

# ------------------------------------------------------------ the trees

# The small tree: /etc/hosts-like 1 KiB file (the edited one), resolv.conf,
# and an /install with templates and postscripts.
gen_small() {
	local i d
	mkdir -p "$SRC/etc" "$SRC/install/custom" "$SRC/install/postscripts" "$SRC/install/iso"
	python3 - "$SRC/etc/hosts" <<'EOF'
import sys
line = b"lat-initial-content\n"
open(sys.argv[1], "wb").write((line * 60)[:1024])
EOF
	printf 'search cluster.example.com\nnameserver 10.0.0.1\n' >"$SRC/etc/resolv.conf"
	for ((i = 0; i < 200; i++)); do
		d=$SRC/install/custom/os$((i % 4))
		mkdir -p "$d"
		head -c $((1024 + (i * 37) % 7000)) /dev/zero | tr '\0' 'x' >"$d/compute.$i.tmpl"
	done
	for ((i = 0; i < 50; i++)); do
		printf '#!/bin/sh\necho postscript %d\n' "$i" >"$SRC/install/postscripts/script$i"
		chmod 755 "$SRC/install/postscripts/script$i"
	done
}

gen_many() {
	local k
	if [ "$scale" = quick ]; then
		# 5 x gen.sh's manyfiles-quick: 10,000 files in 1,000 directories
		for ((k = 0; k < 5; k++)); do
			"$top/bench/gen.sh" "$MANY/part$k" manyfiles-quick "$SEED-$k"
		done
	else
		"$top/bench/gen.sh" "$MANY" manyfiles "$SEED"
	fi
}

# -------------------------------------------------------------- hamnsync

# hs_conf FILE NAME ROLE PORT STATE TROOT CERTDIR PEERFP SETS
hs_conf() {
	cat >"$1" <<EOF
[node]
name = $2
role = $3
state_dir = $5
listen = 127.0.0.1:$4
peer = 127.0.0.1:$4
peer_name = $([ "$2" = mn1 ] && echo mn2 || echo mn1)
cert = $7/node.crt
key = $7/node.key
peer_fingerprint = $8
target_root = $6
peer_timeout = 5s
EOF
	printf '%s\n' "$9" >>"$1"
}

# hs_pair NAME SETS: configs $B/conf/NAME-mn1.conf and -mn2.conf.
declare -A HPORT=()
hs_pair() {
	local name=$1 sets=$2 port
	port=$(free_port) || die "no free port"
	mkdir -p "$B/t/$name"
	# The small-tree pair's primary keeps its index beside its sources.
	local pstate=$B/state
	[ "$name" != lat ] || pstate=$PRIM/state
	hs_conf "$B/conf/$name-mn1.conf" mn1 primary "$port" "$pstate/$name-mn1" \
		"$B/t/$name" "$B/pki/mn1" "$FP2" "$sets"
	hs_conf "$B/conf/$name-mn2.conf" mn2 standby "$port" "$B/state/$name-mn2" \
		"$B/t/$name" "$B/pki/mn2" "$FP1" "$sets"
	HPORT[$name]=$port
}

# hs_start NAME ROLE(mn1|mn2): start a daemon in the foreground; sets
# DPID.  The standby is waited for until it listens.
hs_start() {
	local name=$1 node=$2 log
	log=$B/log/$name-$node.log
	echo "--- start $(date -u +%H:%M:%S.%3N)" >>"$log"
	"$HS" -c "$B/conf/$name-$node.conf" daemon --foreground >>"$log" 2>&1 &
	DPID=$!
	PIDS+=("$DPID")
	if [ "$node" = mn2 ]; then
		wait_listen "${HPORT[$name]}" "$DPID" "$log"
	fi
}

# hs_wait NAME TIMEOUT [POLL_S]: wait until the primary of pair NAME is in
# sync (status asked every POLL_S, default 0.05); sets SYNCED_AT (wall
# clock, s).
hs_wait() {
	SYNCED_AT=$(python3 "$PY" waitsync "$HS" "$B/conf/$1-mn1.conf" "$2" "${3:-0.05}") ||
		{ tail -20 "$B/log/$1-mn1.log" >&2; die "pair $1 not in sync after $2 s"; }
}

# hs_restart NAME: start the primary of pair NAME, its poller already
# running (restartwait); sets DPID, T0 (before the start) and SYNCED_AT.
hs_restart() {
	local run=$B/run/restart i wpid
	rm -rf "$run"
	mkdir -p "$run"
	python3 "$PY" restartwait "$B/state/$1-mn1/hamnsync.sock" \
		"$run/ready" "$run/go" 3600 "$RESTART_POLL" >"$run/synced" &
	wpid=$!
	for ((i = 0; i < 600; i++)); do
		[ -e "$run/ready" ] && break
		sleep 0.05
	done
	[ -e "$run/ready" ] || die "the status poller did not start"
	sleep 0.2 # its interpreter settles before the clock starts
	T0=$EPOCHREALTIME
	hs_start "$1" mn1
	: >"$run/go"
	wait "$wpid" || { tail -20 "$B/log/$1-mn1.log" >&2; die "pair $1 not in sync after a restart"; }
	SYNCED_AT=$(cat "$run/synced")
}

# ----------------------------------------------------------------- rsync

# rsyncd_conf NAME SOCKOPTS MODULE...: an rsyncd.conf, modules in $B/t.
rsyncd_conf() {
	local name=$1 sockopts=$2 m
	shift 2
	{
		echo "use chroot = no"
		echo "numeric ids = yes"
		echo "munge symlinks = no"
		echo "max connections = 0"
		echo "log file = $B/log/rsyncd-$name.log"
		[ -n "$sockopts" ] && echo "socket options = $sockopts"
		if [ "$(id -u)" = 0 ]; then
			echo "uid = 0"
			echo "gid = 0"
		fi
		for m in "$@"; do
			mkdir -p "$B/t/$m"
			printf '[%s]\n\tpath = %s\n\tread only = false\n' "$m" "$B/t/$m"
		done
	} >"$B/conf/rsyncd-$name.conf"
}

# start_rsyncd NAME: sets RPORT[NAME] and RSYNCD_PID[NAME].
declare -A RPORT=() RSYNCD_PID=()
start_rsyncd() {
	local port pid
	port=$(free_port) || die "no free port"
	rsync --daemon --no-detach --address=127.0.0.1 --port="$port" \
		--config="$B/conf/rsyncd-$1.conf" >>"$B/log/rsyncd-$1.out" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	wait_listen "$port" "$pid" "$B/log/rsyncd-$1.out"
	RPORT[$1]=$port
	RSYNCD_PID[$1]=$pid
}

# lsyncd_start NAME PORT RSYNC_TABLE: lsyncd on $SRC pushing to module
# NAME of the rsync daemon on PORT; waits (bounded) for its startup rsync.
lsyncd_start() {
	local name=$1 port=$2 rs=$3 log=$B/log/lsyncd-$1.log i
	cat >"$B/conf/lsyncd-$name.lua" <<EOF
settings {
	nodaemon = true,
	statusInterval = 1,
}
sync {
	default.rsync,
	source = "$SRC",
	target = "rsync://127.0.0.1:$port/$name/",
	delay = 0,
	rsync = $rs,
}
EOF
	lsyncd "$B/conf/lsyncd-$name.lua" >"$log" 2>&1 &
	LPID=$!
	PIDS+=("$LPID")
	for ((i = 0; i < 1200; i++)); do
		grep -qs 'Startup of .* finished' "$log" && return 0
		kill -0 "$LPID" 2>/dev/null || { cat "$log" >&2; die "lsyncd exited"; }
		sleep 0.05
	done
	die "lsyncd startup did not finish in 60 s (log $log)"
}

# ------------------------------------------------------------- /proc

# cpu_ticks PID...: utime + stime of the processes (clock ticks).
cpu_ticks() {
	local p s=0 f
	for p in "$@"; do
		f=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
		# after "pid (comm) ": state is field 1, utime 12, stime 13
		s=$((s + $(echo "$f" | awk '{ print $12 + $13 }')))
	done
	echo "$s"
}

# mem PID: "VmRSS VmHWM" in MiB
mem() {
	awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 }
		END { printf "%.1f %.1f", r / 1024, h / 1024 }' "/proc/$1/status"
}

# log_offsets LOG: for the last "--- start" marker of a daemon log, the
# milliseconds from it to the first line matching each of the patterns
# that follow (same clock: UTC wall time, ms).
log_offsets() {
	local log=$1
	shift
	awk -v pats="$(printf '%s\n' "$@")" '
		function ms(t, a) { split(t, a, ":"); return (a[1] * 3600 + a[2] * 60 + a[3]) * 1000 }
		BEGIN { n = split(pats, P, "\n") }
		/^--- start / { t0 = ms($3); delete got; next }
		{ for (i = 1; i <= n; i++) if (P[i] != "" && !(i in got) && index($0, P[i])) {
			d = ms($1) - t0; if (d < 0) d += 86400000; got[i] = d } }
		END { for (i = 1; i <= n; i++) if (P[i] != "") printf "%s%s", (i > 1 ? " " : ""), ((i in got) ? got[i] : "-"); print "" }
	' "$log"
}

# ----------------------------------------------------------------- main

say "folder $B ($scale, $samples samples, netns $in_netns)"
gen_t0=$SECONDS
[ "$only" = restart ] || gen_small
mkdir -p "$MANY"
if [ "$only" != bigedit ]; then
	say "generating the many-files tree"
	gen_many >"$B/log/gen.out"
	cat "$B/log/gen.out" >&2
fi
mkdir -p "$SRC"
find "$MANY" "$SRC" -type f -print0 | xargs -0 -r cat >/dev/null
gen_s=$((SECONDS - gen_t0))
many_files=$(find "$MANY" -type f | wc -l)
many_dirs=$(find "$MANY" -type d | wc -l)
src_files=$(find "$SRC" -type f | wc -l)

mkdir -p "$B/pki/mn1" "$B/pki/mn2"
FP1=$("$HS" keygen --out "$B/pki/mn1" --name mn1)
FP2=$("$HS" keygen --out "$B/pki/mn2" --name mn2)
hs_pair lat "
[path netconf]
source = $SRC/etc/hosts
source = $SRC/etc/resolv.conf

[path install]
source = $SRC/install"
hs_pair many "
[path many]
source = $MANY"
# two rsync daemons: rsync's defaults, and TCP_NODELAY on the daemon's side
rsyncd_conf plain "" lsd lsn rsmany rsedit
rsyncd_conf nodelay TCP_NODELAY lsb
start_rsyncd plain
[ -n "$only" ] || start_rsyncd nodelay

EDIT=$SRC/etc/hosts
flush

# parts 1 and 2 (all of it up to part 3) run only in the full run
if [ -z "$only" ]; then
# ---- 1a + 2: hamnsync
say "1. hamnsync: seeding the small tree"
hs_start lat mn2
S_LAT=$DPID
hs_start lat mn1
P_LAT=$DPID
hs_wait lat 120
sleep 1
say "1. hamnsync: $samples edits"
python3 "$PY" edits "$EDIT" "$B/t/lat$EDIT" "$samples" "$SEED" "$B/res/hs.tsv"
# the disk's own share: the same replace, no network, no hamnsync
mkdir -p "$B/t/floor"
python3 "$PY" floor "$B/t/floor" "$samples" "$SEED" "$B/res/floor.tsv"

say "2. hamnsync: edits every 20-50 ms while a $stream_mib MiB file streams"
flush
sleep 1
python3 "$PY" stream "$EDIT" "$B/t/lat$EDIT" "$SEED-stream" \
	"$B/res/stream.tsv" "$SRC/install/iso/stream.iso" \
	"$B/t/lat$SRC/install/iso/stream.iso" $((stream_mib * 1024 * 1024))
hs_wait lat 300
stop "$P_LAT"
stop "$S_LAT"
stream_log=$(grep -E 'errors|changed|held|reconnect|timed out' "$B/log/lat-mn1.log" "$B/log/lat-mn2.log" |
	grep -v ' 0 errors' | sed 's/^[^:]*: *//' | head -5 || true)
rm -f "$SRC/install/iso/stream.iso"
flush
sleep 1
say "2. the disk alone: small replaces while $stream_mib MiB are written twice"
python3 "$PY" floor "$B/t/floor" 0 "$SEED" "$B/res/floor-stream.tsv" \
	"$B/t/floor/big" $((stream_mib * 1024 * 1024))
flush

# ---- 1b, 1c, 1d: lsyncd
for v in lsd lsn lsb; do
	case $v in
	lsd) rs='{ archive = true }'; port=${RPORT[plain]} ;;
	lsn) rs='{ archive = true, _extra = { "--sockopts=TCP_NODELAY" } }'; port=${RPORT[plain]} ;;
	lsb) rs='{ archive = true, _extra = { "--sockopts=TCP_NODELAY" } }'; port=${RPORT[nodelay]} ;;
	esac
	say "1. lsyncd ($v): startup"
	lsyncd_start "$v" "$port" "$rs"
	sleep 1
	say "1. lsyncd ($v): $samples edits"
	python3 "$PY" edits "$EDIT" "$B/t/$v/etc/hosts" "$samples" "$SEED" "$B/res/$v.tsv"
	stop "$LPID"
	flush
done
fi # parts 1 and 2

# ---- 5: a 3 x 64 KiB edit inside a big file, from the write to
# acknowledged on the standby, against `rsync -a --fsync` of the same
# edit to its own copy (outside the watched sources); they alternate.
if [ -z "$only" ] || [ "$only" = bigedit ]; then
BIG=$SRC/install/iso/edit.iso
RSBIG=$PRIM/rs-edit.iso
say "5. a $stream_mib MiB file for the big-file edit: seeding both copies"
head -c $((stream_mib * 1024 * 1024)) /dev/urandom >"$BIG"
cp "$BIG" "$RSBIG"
rsync -a "$RSBIG" "rsync://127.0.0.1:${RPORT[plain]}/rsedit/" >"$B/log/rsync-edit-seed.out" 2>&1 ||
	die "rsync seed of the big file failed"
hs_start lat mn2
S_LAT=$DPID
hs_start lat mn1
P_LAT=$DPID
hs_wait lat 900
: >"$B/res/bigedit.tsv"
for ((r = 1; r <= edit_reps; r++)); do
	flush
	sleep 1
	out=$(python3 "$PY" bigedit hs "$BIG" "$B/t/lat$BIG" \
		"$PRIM/state/lat-mn1/hamnsync.sock" "$SEED-$r") ||
		{ tail -20 "$B/log/lat-mn1.log" >&2; die "big-file edit $r: hamnsync"; }
	printf 'hs\t%d\t%s\n' "$r" "$out" >>"$B/res/bigedit.tsv"
	say "   hamnsync edit $r: $(echo "$out" | tr '\t' ' ') (s, loopback bytes)"
	flush
	sleep 1
	out=$(python3 "$PY" bigedit rsync "$RSBIG" \
		"rsync://127.0.0.1:${RPORT[plain]}/rsedit/" "$SEED-$r") ||
		die "big-file edit $r: rsync"
	printf 'rsync\t%d\t%s\n' "$r" "$out" >>"$B/res/bigedit.tsv"
	say "   rsync -a --fsync edit $r: $(echo "$out" | tr '\t' ' ')"
done
stop "$P_LAT"
stop "$S_LAT"
rm -f "$BIG" "$RSBIG"
flush
fi # part 5

if [ "$only" != bigedit ]; then
# ---- 3: restart with nothing changed, against rsync -a with nothing to
# transfer; the two alternate, and only one of them runs at a time (the
# standby daemon idles meanwhile).
say "3. many-files tree: seeding with the primary daemon"
hs_start many mn2
S_MANY=$DPID
t0=$EPOCHREALTIME
hs_start many mn1
P_MANY=$DPID
hs_wait many 3600
seed_s=$(awk -v a="$t0" -v b="$SYNCED_AT" 'BEGIN { printf "%.3f", b - a }')
say "   seeded in $seed_s s"
say "3. rsync -a: seeding its copy (not measured)"
rsync -a "$MANY/" "rsync://127.0.0.1:${RPORT[plain]}/rsmany/" >"$B/log/rsync-seed.out" 2>&1 ||
	die "rsync seed failed"
: >"$B/res/restart.tsv"
for ((r = 1; r <= restart_reps; r++)); do
	stop "$P_MANY"
	flush
	sleep 1
	t0=$EPOCHREALTIME
	rsync -a "$MANY/" "rsync://127.0.0.1:${RPORT[plain]}/rsmany/" >>"$B/log/rsync-nochange.out" 2>&1 ||
		die "rsync no-change run failed"
	t1=$EPOCHREALTIME
	w=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	printf 'rsync\t%d\t%s\n' "$r" "$w" >>"$B/res/restart.tsv"
	say "   rsync -a no change $r: $w s"
	flush
	sleep 1
	hs_restart many
	P_MANY=$DPID
	w=$(awk -v a="$T0" -v b="$SYNCED_AT" 'BEGIN { printf "%.3f", b - a }')
	# the daemon's own word: its log line saying the set matches the index
	read -r lo_watch lo_conn lo_done <<<"$(log_offsets "$B/log/many-mn1.log" \
		'directories watched' 'connected to standby' 'set many')"
	printf 'hs\t%d\t%s\t%s\n' "$r" "$w" "$lo_done" >>"$B/res/restart.tsv"
	say "   restart $r: in sync after $w s (its log: $lo_done ms)"
done

watches=$(grep -o '[0-9]* directories watched' "$B/log/many-mn1.log" | tail -1 | cut -d' ' -f1)
if [ -z "$only" ]; then
# ---- 4: idle (the many-files pair just restarted, so the primary's HWM
# includes its reconciliation of the whole tree)
sleep 2
S_KIDS=$(pgrep -P "$S_MANY" | tr '\n' ' ' || true)
say "4. idle: $idle_s s (primary $P_MANY, standby $S_MANY, session ${S_KIDS:-none})"
c0_p=$(cpu_ticks "$P_MANY")
c0_s=$(cpu_ticks "$S_MANY")
# shellcheck disable=SC2086
c0_k=$(cpu_ticks $S_KIDS)
sleep "$idle_s"
c1_p=$(cpu_ticks "$P_MANY")
c1_s=$(cpu_ticks "$S_MANY")
# shellcheck disable=SC2086
c1_k=$(cpu_ticks $S_KIDS)
S_KIDS1=$(pgrep -P "$S_MANY" | tr '\n' ' ' || true)
read -r rss_p hwm_p <<<"$(mem "$P_MANY")"
read -r rss_s hwm_s <<<"$(mem "$S_MANY")"
rss_k=- hwm_k=-
for k in $S_KIDS; do
	read -r rss_k hwm_k <<<"$(mem "$k")"
done
kids_note=""
[ "$S_KIDS" = "$S_KIDS1" ] || kids_note=" Session processes changed during the idle period: '$S_KIDS' -> '$S_KIDS1'."
fi # part 4
stop "$P_MANY"
stop "$S_MANY"
flush
fi # parts 3 and 4

stop "${RSYNCD_PID[plain]}"
[ -n "$only" ] || stop "${RSYNCD_PID[nodelay]}"
total_s=$((SECONDS - start_time))

# ---------------------------------------------------------------- report

declare -A ST
if [ -z "$only" ]; then
	for t in hs lsd lsn lsb floor floor-stream; do
		ST[$t]=$(python3 "$PY" stats "$B/res/$t.tsv")
	done
	python3 "$PY" streamstats "$B/res/stream.tsv" "$B/res/stream.tsv.json" >"$B/res/stream.txt"
fi

median() {
	sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan";
		else if (NR % 2) print v[(NR + 1) / 2];
		else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
: >>"$B/res/restart.tsv"
: >>"$B/res/bigedit.tsv"
hs_restart=$(awk -F'\t' '$1 == "hs" { print $3 }' "$B/res/restart.tsv" | median)
rs_restart=$(awk -F'\t' '$1 == "rsync" { print $3 }' "$B/res/restart.tsv" | median)
hs_restart_all=$(awk -F'\t' '$1 == "hs" { print $3 }' "$B/res/restart.tsv" | paste -sd, | sed 's/,/, /g')
rs_restart_all=$(awk -F'\t' '$1 == "rsync" { print $3 }' "$B/res/restart.tsv" | paste -sd, | sed 's/,/, /g')

# (sed, not head: an early-closed pipe would fail the command)
ver_hs=$("$HS" --version 2>&1 | sed -n 1p)
ver_rs=$(rsync --version 2>&1 | sed -n '1s/  */ /gp')
ver_ls=n/a
[ -n "$only" ] || ver_ls=$(lsyncd --version 2>&1 | sed -n '1s/^Version: //p')
hs_restart_log=$(awk -F'\t' '$1 == "hs" { print $4 }' "$B/res/restart.tsv" | median)
hs_restart_log_all=$(awk -F'\t' '$1 == "hs" { print $4 }' "$B/res/restart.tsv" | paste -sd, | sed 's/,/, /g')

{
	echo "# hamnsync continuous-replication latency: $scale scale"
	echo
	echo "- command: \`bench/latency.sh${orig_args[*]:+ ${orig_args[*]}}\`, $(date -u '+%Y-%m-%d %H:%M UTC'), run took ${total_s} s (tree generation ${gen_s} s)"
	echo "- load average (1, 5, 15 min) at start: $load_start, at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the numbers)"
	echo "- machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r), $(df -T "$B" | awk 'NR == 2 { print $2 }') under $(dirname "$B"); private network namespace: $in_netns"
	if [ "$only" = bigedit ] && [ "$prim_fs" = tmpfs ]; then
		echo "- part 5: the primary's sources and state_dir, and rsync's source file, on a tmpfs of their own; the standby's target_root and state_dir and rsync's module on $(df -T "$B" | awk 'NR == 2 { print $2 }')"
	elif [ -n "$only" ]; then
		: # parts 1 and 2 did not run
	elif [ "$prim_fs" = tmpfs ]; then
		echo "- parts 1 and 2: the primary's sources and state_dir on a tmpfs of their own (on two machines the primary's disk is not the standby's: on one shared ext4 an edit's own write waited for the journal commits of the standby's fsyncs); the standby's target_root and state_dir, lsyncd's and rsync's targets and the disk-alone rows on $(df -T "$B" | awk 'NR == 2 { print $2 }')"
	else
		echo "- parts 1 and 2: sources, both state_dirs and targets on one $(df -T "$B" | awk 'NR == 2 { print $2 }') (no private mount namespace): an edit's own write may wait for the journal commits of the standby's fsyncs"
	fi
	echo "- $ver_hs; lsyncd $ver_ls; $ver_rs"
	if [ -z "$only" ]; then
	echo
	echo "## 1. Change-to-standby latency of a 1 KiB edit"
	echo
	echo "$samples edits of \`etc/hosts\` in a small tree ($src_files files), each a new token repeated to"
	echo "1024 and 1023 bytes in turn (rsync's quick check would skip a same-size rewrite within"
	echo "the same second); the clock starts right before the file is opened for writing and stops"
	echo "when a read of the standby's copy (every 0.2 ms) returns the token; then a 20-50 ms"
	echo "random pause. The same edits (tokens, sizes, pauses) for every tool, one tool at a time."
	echo "hamnsync: primary daemon → standby daemon (sets \`netconf\` = etc/hosts + etc/resolv.conf,"
	echo "\`install\`). lsyncd: \`default.rsync\` on the tree, \`delay = 0\`, \`rsync = { archive = true }\`,"
	echo "pushing to an rsync daemon on 127.0.0.1."
	echo
	echo "| tool | p50 ms | p90 ms | p99 ms | max ms | mean ms | timeouts (5 s) | samples |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	for t in hs lsd lsn lsb floor; do
		case $t in
		floor) n="the disk alone: 1 KiB written to a new file, fsync, rename (no network, no hamnsync)" ;;
		hs) n="hamnsync" ;;
		lsd) n="lsyncd, rsync defaults" ;;
		lsn) n="lsyncd, rsync \`--sockopts=TCP_NODELAY\`" ;;
		lsb) n="lsyncd, rsync \`--sockopts=TCP_NODELAY\` + rsyncd \`socket options = TCP_NODELAY\`" ;;
		esac
		IFS=$'\t' read -r p50 p90 p99 mx mean to n_ <<<"${ST[$t]}"
		echo "| $n | $p50 | $p90 | $p99 | $mx | $mean | $to | $n_ |"
	done
	IFS=$'\t' read -r h50 _ h99 _ <<<"${ST[hs]}"
	IFS=$'\t' read -r d50 _ d99 _ <<<"${ST[lsd]}"
	IFS=$'\t' read -r n50 _ n99 _ <<<"${ST[lsn]}"
	IFS=$'\t' read -r b50 _ b99 _ <<<"${ST[lsb]}"
	IFS=$'\t' read -r fl50 _ fl99 _ <<<"${ST[floor]}"
	awk -v h50="$h50" -v h99="$h99" -v d50="$d50" -v d99="$d99" -v n50="$n50" -v n99="$n99" \
		-v b50="$b50" -v b99="$b99" 'BEGIN {
		# the faster of the issue'"'"'s two variants: lower p50
		if (n50 <= d50) { f = "--sockopts=TCP_NODELAY"; f50 = n50; f99 = n99 } else { f = "defaults"; f50 = d50; f99 = d99 }
		printf "\nhamnsync against the faster lsyncd of the issue'"'"'s two (%s): p50 %.1fx lower, p99 %.1fx lower", f, f50 / h50, f99 / h99
		printf " (against TCP_NODELAY on both ends: p50 %.1fx, p99 %.1fx).\n", b50 / h50, b99 / h99
		printf "Targets: p50 < 5 ms: %s; p99 < 25 ms: %s; >= 3x lower than the faster lsyncd at p50: %s, at p99: %s.\n",
			(h50 < 5 ? "met" : "NOT met"), (h99 < 25 ? "met" : "NOT met"),
			(f50 / h50 >= 3 ? "met" : "NOT met"), (f99 / h99 >= 3 ? "met" : "NOT met")
	}'
	echo "The standby makes each file durable before it shows it (SPEC: temporary file, fsync, rename),"
	echo "so a hamnsync edit costs at least the disk-alone row, which lsyncd's rsync (no fsync) does not"
	echo "pay: here the disk alone has p50 $fl50 ms and p99 $fl99 ms."
	echo
	echo "## 2. Small edits while a $stream_mib MiB file streams (hamnsync)"
	echo
	read -r _ ev_w ev_l ev_e < <(grep '^events' "$B/res/stream.txt" | tr '\t' ' ')
	echo "A background \`head -c ${stream_mib}M /dev/urandom\` writes \`install/iso/stream.iso\` (set \`install\`);"
	echo "meanwhile \`etc/hosts\` (set \`netconf\`) is rewritten every 20-50 ms (open loop: edits do not wait"
	echo "for each other) and its standby copy read every 0.2 ms: an edit has arrived when the copy holds"
	echo "it or a later edit. From the start of the write: file written (closed) after $ev_w ms, its copy"
	echo "complete on the standby after $ev_l ms, last edit at $ev_e ms."
	echo
	echo "| edits made | p50 ms | p90 ms | p99 ms | max ms | mean ms | timeouts (5 s) | samples |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	grep -v '^events\|^slowest' "$B/res/stream.txt" | while IFS=$'\t' read -r k p50 p90 p99 mx mean to n_; do
		echo "| $k | $p50 | $p90 | $p99 | $mx | $mean | $to | $n_ |"
	done
	IFS=$'\t' read -r p50 p90 p99 mx mean to n_ <<<"${ST[floor-stream]}"
	echo "| the disk alone (no hamnsync): 1 KiB replaces as in part 1 while ${stream_mib} MiB are written, copied and synced | $p50 | $p90 | $p99 | $mx | $mean | $to | $n_ |"
	echo
	echo "Slowest: $(sed -n 's/^slowest\t//p' "$B/res/stream.txt")."
	[ -n "$stream_log" ] && echo "Daemon log during the run: $(echo "$stream_log" | paste -sd';' | sed 's/;/; /g')."
	IFS=$'\t' read -r _ _ _ dp99 _ <<<"$(grep '^while streaming' "$B/res/stream.txt")"
	awk -v p="$dp99" 'BEGIN { if (p == "-") print "\nNo edit fell in the streaming window.";
		else printf "\nTarget: p99 < 50 ms while the file streams: %s (%s ms).\n",
			(p + 0 < 50 ? "met" : "NOT met"), p }'
	fi # parts 1 and 2
	if [ -z "$only" ] || [ "$only" = bigedit ]; then
	hs_ew=$(awk -F'\t' '$1 == "hs" { print $3 }' "$B/res/bigedit.tsv" | median)
	rs_ew=$(awk -F'\t' '$1 == "rsync" { print $3 }' "$B/res/bigedit.tsv" | median)
	hs_eb=$(awk -F'\t' '$1 == "hs" { print $4 }' "$B/res/bigedit.tsv" | median)
	rs_eb=$(awk -F'\t' '$1 == "rsync" { print $4 }' "$B/res/bigedit.tsv" | median)
	hs_ew_all=$(awk -F'\t' '$1 == "hs" { print $3 }' "$B/res/bigedit.tsv" | paste -sd, | sed 's/,/, /g')
	rs_ew_all=$(awk -F'\t' '$1 == "rsync" { print $3 }' "$B/res/bigedit.tsv" | paste -sd, | sed 's/,/, /g')
	echo
	echo "## 5. A 3 x 64 KiB edit inside a $stream_mib MiB file"
	echo
	echo "\`install/iso/edit.iso\` ($stream_mib MiB of random bytes, set \`install\`) is edited in place: 64 KiB"
	echo "written at 10, 50 and 90 % of it (pwrite, no truncation, new random bytes each run). hamnsync: the"
	echo "daemons run; the clock starts before the first write and stops when the standby's copy"
	echo "holds all three regions and the primary's status (control socket, every 2 ms) says in sync"
	echo "with lag 0, i.e. the standby acknowledged the run durable. rsync: the same edit to its own"
	echo "copy of the file, then \`rsync -a --fsync --sockopts=TCP_NODELAY FILE rsync://127.0.0.1/MOD/\`"
	echo "to a running rsync daemon holding the previous version; the clock runs from before the write"
	echo "to rsync's exit. Bytes: the private namespace's loopback (tx), both directions, TLS and TCP"
	echo "headers included. The two alternate, one at a time; medians of $edit_reps runs each."
	echo
	echo "| tool | wall s (median) | runs s | loopback (median) |"
	echo "|---|---:|---|---:|"
	echo "| hamnsync daemons, write → acknowledged | $hs_ew | $hs_ew_all | $(awk -v b="$hs_eb" 'BEGIN { printf "%.1f KiB", b / 1024 }') |"
	echo "| rsync -a --fsync | $rs_ew | $rs_ew_all | $(awk -v b="$rs_eb" 'BEGIN { printf "%.1f KiB", b / 1024 }') |"
	awk -v h="$hs_ew" -v r="$rs_ew" -v hb="$hs_eb" -v rb="$rs_eb" 'BEGIN {
		if (r + 0 <= 0 || rb + 0 <= 0) { print "\n(no rsync runs to compare with)"; exit }
		printf "\nhamnsync / rsync -a --fsync: wall %.2f (target: at most 0.70: %s), bytes %.2f (target: at most 1.00: %s).\n",
			h / r, (h / r <= 0.7 ? "met" : "NOT met"), hb / rb, (hb / rb <= 1.0 ? "met" : "NOT met") }'
	fi # part 5
	if [ "$only" != bigedit ]; then
	echo
	echo "## 3. Primary daemon restart with nothing changed (many-files tree)"
	echo
	echo "Tree: $many_files files in $many_dirs directories. hamnsync: the primary daemon is stopped (SIGTERM)"
	echo "and started again, the standby keeps running; measured from the start until \`status --json\`"
	echo "(asked every $(awk -v p="$RESTART_POLL" 'BEGIN { printf "%d", p * 1000 }') ms on the daemon's control socket, as \`hamnsync status\` asks, by a poller started"
	echo "before the daemon, once the socket exists) says daemon running, peer connected, lag 0"
	echo "and every path in-sync; also, from the primary's log, the milliseconds from its start to the line"
	echo "saying the set matches its index (the moment status turns in-sync, without the polling's granularity)."
	echo "rsync: \`rsync -a TREE/ rsync://127.0.0.1:PORT/MOD/\` to a running rsync daemon whose copy is"
	echo "already complete. The two alternate, one at a time; medians of $restart_reps runs each; page cache warm;"
	echo "writeback flushed and 1 s of pause before each run."
	echo
	echo "| tool | wall s (median) | runs s |"
	echo "|---|---:|---|"
	echo "| hamnsync daemon restart → in sync (status polled) | $hs_restart | $hs_restart_all |"
	echo "| hamnsync daemon restart → in sync (its log, ms) | $hs_restart_log | $hs_restart_log_all |"
	echo "| rsync -a, nothing to transfer | $rs_restart | $rs_restart_all |"
	awk -v h="$hs_restart" -v r="$rs_restart" 'BEGIN {
		printf "\nhamnsync / rsync -a: %.2f (target: at most 0.20: %s).\n", h / r, (h / r <= 0.2 ? "met" : "NOT met") }'
	awk -v h="$hs_restart_log" -v r="$rs_restart" 'BEGIN {
		printf "By the daemon'"'"'s log: %.2f.\n", h / 1000 / r }'
	echo "Last restart, from the primary's log: $lo_watch ms to set up its $watches inotify watches, $lo_conn ms to"
	echo "connect (TLS), $lo_done ms to finish comparing the set with the index, or reconciling it whole (then status says in-sync)."
	echo "The initial seed of the tree by the primary daemon took $seed_s s."
	fi # part 3
	echo
	if [ -z "$only" ]; then
	echo "## 4. Idle daemons (many-files pair, after the last restart)"
	echo
	echo "CPU over $idle_s idle seconds (utime + stime from /proc/PID/stat, $TICK ticks/s, so 0.01 s"
	echo "resolution); memory from /proc/PID/status. The primary watches $watches directories; its HWM"
	echo "includes the restart's whole-tree reconciliation. The standby forks one session process per"
	echo "connection.$kids_note"
	echo
	echo "| process | CPU s in ${idle_s} s | CPU % | VmRSS MiB | VmHWM MiB |"
	echo "|---|---:|---:|---:|---:|"
	awk -v a="$c0_p" -v b="$c1_p" -v t="$TICK" -v i="$idle_s" -v r="$rss_p" -v h="$hwm_p" 'BEGIN {
		printf "| primary daemon | %.2f | %.2f | %s | %s |\n", (b - a) / t, 100 * (b - a) / t / i, r, h }'
	awk -v a="$c0_s" -v b="$c1_s" -v t="$TICK" -v i="$idle_s" -v r="$rss_s" -v h="$hwm_s" 'BEGIN {
		printf "| standby daemon | %.2f | %.2f | %s | %s |\n", (b - a) / t, 100 * (b - a) / t / i, r, h }'
	awk -v a="$c0_k" -v b="$c1_k" -v t="$TICK" -v i="$idle_s" -v r="$rss_k" -v h="$hwm_k" 'BEGIN {
		printf "| standby session process | %.2f | %.2f | %s | %s |\n", (b - a) / t, 100 * (b - a) / t / i, r, h }'
	echo
	echo "Targets: no CPU between changes; RSS under 64 MiB."
	echo
	fi # part 4
	echo "## Caveats"
	echo
	if [ "$only" = restart ]; then
	echo "- One tool runs at a time, on a machine shared with other work (load average above); the"
	echo "  status poller (python, a question on the control socket every $(awk -v p="$RESTART_POLL" 'BEGIN { printf "%d", p * 1000 }') ms) runs on the same cores."
	echo "- Page cache warm: neither side reads a disk."
	elif [ "$only" = bigedit ]; then
	echo "- One tool runs at a time, on a machine shared with other work (load average above)."
	echo "- Both write a new copy of the whole file on the standby's disk and fsync it (hamnsync copies"
	echo "  its old copy in the kernel and writes the changed blocks; rsync rebuilds it from its delta):"
	echo "  this disk's speed dominates both."
	else
	echo "- One tool runs at a time, on a machine shared with other work (load average above); the"
	echo "  poller (python, a read every 0.2 ms) runs on the same cores."
	echo "- hamnsync makes each file durable on the standby (fsync, rename, directory fsync) before"
	echo "  its copy appears; rsync under lsyncd does not fsync."
	echo "- The edits alternate between two sizes: with same-size rewrites, rsync's whole-second mtime"
	echo "  check leaves some of them off lsyncd's copy until a later change (not a latency; a miss)."
	echo "- Part 1 is closed loop (one edit in flight); part 2 is open loop."
	fi
	echo "- See bench/README.md."
} >"$B/run/report.md"

mkdir -p "$(dirname "$BENCH_OUT")"
cp "$B/run/report.md" "$BENCH_OUT"
cat "$BENCH_OUT"
say "written to $BENCH_OUT; took ${total_s} s"
