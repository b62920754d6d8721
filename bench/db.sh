#!/usr/bin/env bash
# db.sh - hamnsync's database replication (PostgreSQL) against the
# guide's recipe (pg_dump of the whole database, then scp of the dump),
# in the same run, on 127.0.0.1.
#
#   bench/db.sh [--quick] [--rows N] [--idle MINUTES] [--interval SECONDS]
#               [--scale S] [--keep]
#
# Two PostgreSQL servers (one per node) and the two daemons live in one
# mktemp folder, removed at the end; every process is stopped by its
# PID (tests/integ/lib.sh and db_lib.sh do that).  Run as root: the run
# then happens in a private network namespace whose loopback counters
# count only the daemons' traffic (the servers are reached by their unix
# sockets).  It measures:
#   - RPO: a row committed on the primary -> in the standby's snapshot
#     folder, and -> queryable in the standby's server (continuous);
#     median and max over N rows, each committed at a random point of
#     the interval;
#   - bytes on the wire for one changed row (the primary's sent +
#     received counters, from its metrics file) against the snapshot's
#     size and the guide's pg_dump + scp (the dump's bytes);
#   - idle: the primary's dump count (status --json) over M minutes with
#     nothing written.
# The table is printed and written to $BENCH_OUT (default
# bench/results-db.md, --quick: bench/results-db-quick.md).
set -euo pipefail
export LC_ALL=C
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
orig_args=("$@")

usage() {
	cat >&2 <<'EOF'
usage: bench/db.sh [--quick] [--rows N] [--idle MINUTES] [--interval SECONDS]
                   [--scale S] [--keep]
  --quick          5 rows, 1 idle minute (default 10 rows, 10 minutes)
  --rows N         rows committed one at a time for the RPO and bytes
  --idle MINUTES   the idle window for the dump count
  --interval S     the database's interval (default 5)
  --scale S        pgbench scale of the database (default 5: ~50 MB dump)
  --keep           keep the temporary folder (its path is printed)
environment: HS_BIN (default build/bin/hamnsync), BENCH_OUT
EOF
	exit 2
}

quick=no
rows=""
idle=""
iv=5
scale=5
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=yes ;;
	--rows) [ $# -ge 2 ] || usage; rows=$2; shift ;;
	--idle) [ $# -ge 2 ] || usage; idle=$2; shift ;;
	--interval) [ $# -ge 2 ] || usage; iv=$2; shift ;;
	--scale) [ $# -ge 2 ] || usage; scale=$2; shift ;;
	--keep) export HS_KEEP=1 ;;
	-h | --help) usage ;;
	*) echo "db.sh: unknown argument $1" >&2; usage ;;
	esac
	shift
done
[ -n "$rows" ] || rows=$([ $quick = yes ] && echo 5 || echo 10)
[ -n "$idle" ] || idle=$([ $quick = yes ] && echo 1 || echo 10)
for v in "$rows" "$idle" "$iv" "$scale"; do
	case "$v" in '' | *[!0-9]*) usage ;; esac
done
[ "$iv" -ge 1 ] && [ "$rows" -ge 1 ] || usage
[ "$(id -u)" = 0 ] || { echo "db.sh: run as root (the servers run as postgres)" >&2; exit 1; }

# A private network namespace: only the daemons' traffic on its lo.
if [ -z "${BENCH_IN_NETNS:-}" ] && command -v unshare >/dev/null &&
	unshare -n true 2>/dev/null; then
	exec unshare -n -- env BENCH_IN_NETNS=1 bash "${BASH_SOURCE[0]}" "${orig_args[@]}"
fi
in_netns=no
if [ -n "${BENCH_IN_NETNS:-}" ]; then
	ip link set lo up
	in_netns=yes
fi

. "$here/../tests/integ/lib.sh"
. "$here/../tests/integ/db_lib.sh"
[ -x "$HS_BIN" ] || { echo "db.sh: $HS_BIN missing: run scripts/build.sh plain" >&2; exit 1; }
suffix=""
[ $quick = no ] || suffix=-quick
BENCH_OUT=${BENCH_OUT:-$top/bench/results-db$suffix.md}
db_init bench-db
# A private copy: a rebuild during the run changes nothing.
mkdir -p "$T/bin"
cp "$HS_BIN" "$T/bin/hamnsync"
HS_BIN=$T/bin/hamnsync
[ -z "${HS_KEEP:-}" ] || echo "db.sh: keeping $T" >&2

say() { echo "bench: $*" >&2; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
lo_bytes() {
	if [ "$in_netns" = yes ]; then
		awk '/^ *lo:/ { sub(/.*lo:/, ""); print $1 }' /proc/net/dev
	else
		echo 0
	fi
}
# wire: the primary's bytes sent + received, TLS included (its metrics
# file, rewritten every 2 s).
wire() {
	awk '/^hamnsync_(sent|received)_bytes_total / { s += $2 }
		END { printf "%d\n", s }' "$T/primary.prom" 2>/dev/null || echo 0
}
# db_status CONF FIELD: the database's FIELD in the node's status.
db_status() {
	"$HS_BIN" -c "$1" status --json 2>/dev/null | python3 -c 'import json, sys
d = json.load(sys.stdin)
print([x for x in d["databases"] if x["name"] == "xcatdb"][0][sys.argv[1]])' "$2" ||
		echo "?"
}
on_standby() {
	[ "$(db_psql 2 -c "SELECT count(*) FROM nodelist WHERE node = '$1'" \
		2>/dev/null)" = 1 ]
}
in_snapshot() {
	[ -f "$T/state2/db/xcatdb/MANIFEST" ] &&
		grep -qF -- "$1" "$T/state2/db/xcatdb/dump.sql" 2>/dev/null
}
# wait_until SECONDS CMD...: poll CMD every 50 ms; 1 when it never held.
wait_until() {
	local end=$(($(now_ms) + $1 * 1000))
	shift
	until "$@"; do
		[ "$(now_ms)" -lt "$end" ] || return 1
		sleep 0.05
	done
}
# stats FILE: "median max" of the numbers in FILE (ms -> s).
stats() {
	python3 -c 'import statistics, sys
v = [float(x) / 1000 for x in open(sys.argv[1]).read().split()]
print("%.2f %.2f" % (statistics.median(v), max(v)))' "$1"
}

# ---------------------------------------------------------------- servers
say "two PostgreSQL servers, pgbench scale $scale on the primary's"
db_pg_start 1
db_pg_start 2
PGDB=postgres db_psql 1 -c "CREATE DATABASE xcatdb"
"$PG_BIN/pgbench" -i -q -s "$scale" -h "$T/pg1" -p "${PG_PORT[1]}" \
	-U postgres xcatdb >"$T/pgbench.log" 2>&1 ||
	hs_fail "pgbench -i: $(tail -3 "$T/pgbench.log")"
db_psql 1 -c "CREATE TABLE nodelist (node text PRIMARY KEY, groups text)" \
	-c "INSERT INTO nodelist VALUES ('cn0001', 'compute')" \
	-c "VACUUM ANALYZE"
# A fresh cluster's first autovacuum round analyzes every database's
# catalogs and takes transaction ids, which the change mark counts
# cluster-wide: done here, as a long-lived server has done it.
"$PG_BIN/vacuumdb" --all --analyze -q -h "$T/pg1" -p "${PG_PORT[1]}" \
	-U postgres >>"$T/pgbench.log" 2>&1 || hs_fail "vacuumdb --all failed"

# ---------------------------------------------------------------- guide
say "the guide's recipe: pg_dump of the whole database, a copy of the dump"
mkdir -p "$T/guide/mn2"
t0=$(now_ms)
"$PG_BIN/pg_dump" -h "$T/pg1" -p "${PG_PORT[1]}" -U postgres \
	-f "$T/guide/xcatdb.sql" xcatdb || hs_fail "pg_dump failed"
guide_dump_ms=$(($(now_ms) - t0))
t0=$(now_ms)
cp "$T/guide/xcatdb.sql" "$T/guide/mn2/"
sync -f "$T/guide/mn2/xcatdb.sql"
guide_copy_ms=$(($(now_ms) - t0))
guide_bytes=$(stat -c %s "$T/guide/xcatdb.sql")
say "pg_dump $guide_dump_ms ms, copy $guide_copy_ms ms, $guide_bytes bytes"

# ---------------------------------------------------------------- daemons
hs_setup_pair "
[path etc-xcat]
source = $T/src"
echo "XCATROOT=/opt/xcat" >"$T/src/xcat.conf"
sed -i "/^peer_timeout/a metrics_file = $T/primary.prom" "$C1"
printf '\n[database xcatdb]\ntype = postgresql\ndsn = %s\ninterval = %ss\n' \
	"${PG_DSN[1]}" "$iv" >>"$C1"
printf '\n[database xcatdb]\ntype = postgresql\ndsn = %s\ninterval = %ss\nrestore = continuous\n' \
	"${PG_DSN[2]}" "$iv" >>"$C2"
hs_start_standby
t0=$(now_ms)
hs_start_primary
say "first snapshot: dump, seed, restore"
wait_until 600 on_standby cn0001 || hs_fail "the first snapshot never reached the standby's server"
first_ms=$(($(now_ms) - t0))
snap_bytes=$(stat -c %s "$T/state1/db/xcatdb/dump.sql")
say "first snapshot restored after $first_ms ms ($snap_bytes bytes)"
sleep 3

# ---------------------------------------------------------------- rows
: >"$T/rpo-snap"
: >"$T/rpo-query"
: >"$T/wire"
: >"$T/lo"
for ((i = 1; i <= rows; i++)); do
	node=$(printf 'bench%04d' "$i")
	# Somewhere in the interval: no row rides on the last one's timing.
	sleep "$(python3 -c "import random; print(round(random.uniform(0, $iv), 2))")"
	w0=$(wire)
	l0=$(lo_bytes)
	t0=$(now_ms)
	db_psql 1 -c "INSERT INTO nodelist VALUES ('$node', 'compute')"
	wait_until $((iv + 120)) in_snapshot "$node" ||
		hs_fail "$node: not in the standby's snapshot"
	echo $(($(now_ms) - t0)) >>"$T/rpo-snap"
	wait_until $((iv + 120)) on_standby "$node" ||
		hs_fail "$node: not in the standby's server"
	echo $(($(now_ms) - t0)) >>"$T/rpo-query"
	sleep 2.5 # the metrics file: rewritten every 2 s
	echo $(($(wire) - w0)) >>"$T/wire"
	echo $(($(lo_bytes) - l0)) >>"$T/lo"
	say "$node: snapshot $(tail -1 "$T/rpo-snap") ms, queryable $(tail -1 "$T/rpo-query") ms, wire $(tail -1 "$T/wire") B"
done
snap_bytes=$(stat -c %s "$T/state1/db/xcatdb/dump.sql")
read -r snap_med snap_max < <(stats "$T/rpo-snap")
read -r q_med q_max < <(stats "$T/rpo-query")
wire_med=$(sort -n "$T/wire" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
wire_max=$(sort -n "$T/wire" | tail -1)
lo_med=$(sort -n "$T/lo" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')

# ---------------------------------------------------------------- idle
say "idle for $idle min"
sleep 3
d0=$(db_status "$C1" dumps)
r0=$(db_status "$C2" restores)
w0=$(wire)
l0=$(lo_bytes)
sleep $((idle * 60))
d1=$(db_status "$C1" dumps)
r1=$(db_status "$C2" restores)
idle_wire=$(($(wire) - w0))
idle_lo=$(($(lo_bytes) - l0))
state1=$(db_status "$C1" state)
state2=$(db_status "$C2" state)

# ---------------------------------------------------------------- table
pct() { python3 -c "print('%.2f' % (100.0 * $1 / $2))"; }
pass() { python3 -c "print('yes' if $1 else 'NO')"; }
lo_note=$([ "$in_netns" = yes ] && echo "" || echo " (no netns: not measured)")
{
	echo "# Database replication, PostgreSQL (bench/db.sh)"
	echo
	echo "$(date -u +%Y-%m-%d), $(nproc) cores, load at the end $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "Command: \`bench/db.sh$([ ${#orig_args[@]} -eq 0 ] || printf ' %s' "${orig_args[@]}")\`;"
	echo "pgbench scale $scale + a nodelist table, interval = ${iv}s, restore = continuous, $rows rows, idle $idle min."
	echo
	echo "| measure | hamnsync | target | met |"
	echo "|---|---|---|---|"
	echo "| RPO, committed -> standby's snapshot folder (median / max) | ${snap_med} s / ${snap_max} s | interval + 2 s = $((iv + 2)) s | $(pass "$snap_max <= $iv + 2") |"
	echo "| RPO, committed -> queryable on the standby's server (median / max) | ${q_med} s / ${q_max} s | interval + 5 s = $((iv + 5)) s | $(pass "$q_max <= $iv + 5") |"
	echo "| one changed row: bytes on the wire, sent + received (median / max) | $wire_med B / $wire_max B | | |"
	echo "| ... against the snapshot's size ($snap_bytes B) | $(pct "$wire_med" "$snap_bytes") % / $(pct "$wire_max" "$snap_bytes") % | <= 2 % | $(pass "$wire_max <= 0.02 * $snap_bytes") |"
	echo "| ... against pg_dump + scp of the whole dump ($guide_bytes B) | $(pct "$wire_med" "$guide_bytes") % / $(pct "$wire_max" "$guide_bytes") % | <= 2 % | $(pass "$wire_max <= 0.02 * $guide_bytes") |"
	echo "| one changed row: loopback bytes, all packets (median)$lo_note | $lo_med B | | |"
	echo "| idle $idle min: primary dumps / standby restores | $((d1 - d0)) / $((r1 - r0)) | 0 | $(pass "$d1 == $d0") |"
	echo "| idle $idle min: the primary's byte counters (moved by runs only) / loopback bytes (heartbeats) | $idle_wire B / $idle_lo B | | |"
	echo "| first snapshot: dump + seed + restore | $((first_ms / 1000)).$(printf '%03d' $((first_ms % 1000))) s | | |"
	echo
	echo "| the guide's recipe (same run) | time | bytes |"
	echo "|---|---|---|"
	echo "| pg_dump of the whole database (plain) | $((guide_dump_ms / 1000)).$(printf '%03d' $((guide_dump_ms % 1000))) s | $guide_bytes |"
	echo "| copy of the dump (scp's payload; cp + fsync here) | $((guide_copy_ms / 1000)).$(printf '%03d' $((guide_copy_ms % 1000))) s | $guide_bytes |"
	echo
	echo "States at the end: primary $state1, standby $state2."
	echo "Per row (ms to snapshot, ms to queryable, wire bytes):"
	echo
	echo '```'
	paste "$T/rpo-snap" "$T/rpo-query" "$T/wire"
	echo '```'
} >"$T/results.md"
cat "$T/results.md"
cp "$T/results.md" "$BENCH_OUT"
say "written to $BENCH_OUT"
