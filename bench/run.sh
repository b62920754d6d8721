#!/usr/bin/env bash
# run.sh - hamnsync against rsync 3 on generated management-node trees.
#
#   bench/run.sh [--quick] [--reps N] [--workloads LIST] [--keep] [--no-netns]
#
# Everything lives in one mktemp folder under $BENCH_DIR (default /tmp),
# removed at the end; every process started here is stopped by its PID;
# traffic stays on 127.0.0.1 (in a private network namespace when run as
# root, so the loopback byte counters count only this benchmark).  The
# table is printed and written to $BENCH_OUT (default
# bench/results-<scale>.md).  See bench/README.md.
set -euo pipefail
export LC_ALL=C
umask 022

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
orig_args=("$@")

usage() {
	cat >&2 <<'EOF'
usage: bench/run.sh [--quick] [--reps N] [--workloads LIST] [--keep] [--no-netns]
  --quick          quick scale (~200 MiB tree, 10,000-file many-files tree)
  --reps N         measured repetitions per tool and workload (default 3;
                   1 with --quick: --quick --reps 3 takes about 2 minutes)
  --workloads LIST comma-separated subset of
                   seed,edit,small,new,nochange,many-seed,many-nochange
                   (incremental workloads need the seed before them)
  --keep           keep the temporary folder (its path is printed)
  --no-netns       do not run in a private network namespace
environment: HS_BIN (default build/bin/hamnsync), BENCH_DIR (default /tmp),
             BENCH_OUT (default bench/results-<scale>.md), BENCH_SEED
EOF
	exit 2
}

scale=full
reps=""
keep=no
netns=auto
wl_list=seed,edit,small,new,nochange,many-seed,many-nochange
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) scale=quick ;;
	--reps) [ $# -ge 2 ] || usage; reps=$2; shift ;;
	--reps=*) reps=${1#--reps=} ;;
	--workloads) [ $# -ge 2 ] || usage; wl_list=$2; shift ;;
	--workloads=*) wl_list=${1#--workloads=} ;;
	--keep) keep=yes ;;
	--no-netns) netns=no ;;
	-h | --help) usage ;;
	*) echo "run.sh: unknown argument $1" >&2; usage ;;
	esac
	shift
done
if [ -z "$reps" ]; then
	if [ "$scale" = quick ]; then reps=1; else reps=3; fi
fi
case "$reps" in
'' | *[!0-9]*) usage ;;
esac
[ "$reps" -ge 1 ] && [ "$reps" -le 20 ] || { echo "run.sh: --reps 1..20" >&2; exit 2; }
IFS=, read -r -a WORKLOADS <<<"$wl_list"
for w in "${WORKLOADS[@]}"; do
	case "$w" in
	seed | edit | small | new | nochange | many-seed | many-nochange) ;;
	*) echo "run.sh: unknown workload $w" >&2; usage ;;
	esac
done

# A private network namespace: only this benchmark's traffic on its lo.
if [ "$netns" = auto ] && [ -z "${BENCH_IN_NETNS:-}" ] && [ "$(id -u)" = 0 ] &&
	command -v unshare >/dev/null && command -v ip >/dev/null &&
	unshare -n true 2>/dev/null; then
	exec unshare -n -- env BENCH_IN_NETNS=1 bash "${BASH_SOURCE[0]}" "${orig_args[@]}"
fi
in_netns=no
if [ -n "${BENCH_IN_NETNS:-}" ]; then
	ip link set lo up
	in_netns=yes
fi

for cmd in rsync openssl perl /usr/bin/time pgrep timeout; do
	command -v "$cmd" >/dev/null ||
		{ echo "run.sh: $cmd missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
HS_BIN=${HS_BIN:-$top/build/bin/hamnsync}
[ -x "$HS_BIN" ] || { echo "run.sh: $HS_BIN missing: run scripts/build.sh plain" >&2; exit 1; }
BENCH_OUT=${BENCH_OUT:-$top/bench/results-$scale.md}
SEED=${BENCH_SEED:-hamnsync}
if [ "$scale" = quick ]; then
	many_scale=manyfiles-quick
	client_timeout=600
else
	many_scale=manyfiles
	client_timeout=7200
fi

B=""
SRV_TPID=""
SRV_DPID=""
SRV_KIDS=""
cleanup() {
	local rc=$?
	if [ -n "$SRV_DPID" ]; then
		kill "$SRV_DPID" 2>/dev/null || true
		wait_gone "$SRV_DPID" 100 || kill -9 "$SRV_DPID" 2>/dev/null || true
	fi
	if [ -n "$SRV_TPID" ]; then
		kill "$SRV_TPID" 2>/dev/null || true
	fi
	if [ -n "$B" ]; then
		if [ "$keep" = yes ]; then
			echo "run.sh: kept $B" >&2
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

B=$(mktemp -d "${BENCH_DIR:-/tmp}/hs-bench.XXXXXX")
mkdir -p "$B/bin" "$B/conf" "$B/log" "$B/t" "$B/state" "$B/pki" "$B/run"
# A private copy: a rebuild of the tree during the run changes nothing.
cp "$HS_BIN" "$B/bin/hamnsync"
HS=$B/bin/hamnsync
SRC=$B/src
MANY=$B/many
RES=$B/results.tsv
: >"$RES"
TFMT='%e %U %S %M'
start_time=$SECONDS
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

say() { echo "bench: $*" >&2; }

wait_gone() {
	local i
	for ((i = 0; i < $2; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

# listening PORT: is something listening on 127.0.0.1:PORT?
listening() {
	local hex
	hex=$(printf '%04X' "$1")
	awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { f = 1 }
		END { exit !f }' /proc/net/tcp
}

free_port() {
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 20000))
		listening "$p" || { echo "$p"; return 0; }
	done
	return 1
}

lo_bytes() {
	if [ "$in_netns" = yes ]; then
		awk '/^ *lo:/ { sub(/.*lo:/, ""); print $1 }' /proc/net/dev
	else
		echo -
	fi
}

# rand_bytes SIZE TAG: SIZE incompressible bytes, a function of SEED and TAG.
rand_bytes() {
	head -c "$1" /dev/zero |
		openssl enc -aes-128-ctr -nosalt -pbkdf2 -iter 1 \
			-pass "pass:$SEED-$2" 2>/dev/null
}

# flush: write back dirty data (syncfs of the filesystem holding $B; no
# cache is dropped), so that no run pays for an earlier one's writeback.
flush() {
	sync -f "$B"
}

# ---------------------------------------------------------------- tools

TOOLS=(hs a fsync z)
declare -A TOOL_NAME=([hs]="hamnsync" [a]="rsync -a" [fsync]="rsync -a --fsync" [z]="rsync -az")
declare -A RSYNC_OPTS=([a]="" [fsync]="--fsync" [z]="-z")
declare -A DIRTY=()

phase_of() {
	case "$1" in
	many-*) echo many ;;
	*) echo main ;;
	esac
}

src_of() {
	if [ "$1" = many ]; then echo "$MANY"; else echo "$SRC"; fi
}

# target TOOL PHASE: the tool's copy (for hamnsync: its target_root).
target() {
	echo "$B/t/$1-$2"
}

hs_sources() {
	if [ "$1" = many ]; then
		echo "$MANY"
	else
		echo "$SRC/etc/xcat/ca $SRC/etc/xcat/cert $SRC/etc/xcat/hostkeys" \
			"$SRC/root/.xcat $SRC/install $SRC/etc/hosts $SRC/etc/resolv.conf"
	fi
}

hs_sets() {
	if [ "$1" = many ]; then
		printf '\n[path many]\nsource = %s\n' "$MANY"
	else
		cat <<EOF

[path credentials]
source = $SRC/etc/xcat/ca
source = $SRC/etc/xcat/cert
source = $SRC/etc/xcat/hostkeys
source = $SRC/root/.xcat

[path install]
source = $SRC/install

[path netconf]
source = $SRC/etc/hosts
source = $SRC/etc/resolv.conf
EOF
	fi
}

# hs_conf PHASE NODE PORT: write $B/conf/PHASE-NODE.conf
hs_conf() {
	local ph=$1 node=$2 port=$3 role peer_name fp
	if [ "$node" = mn1 ]; then
		role=primary peer_name=mn2 fp=$FP2
	else
		role=standby peer_name=mn1 fp=$FP1
	fi
	{
		cat <<EOF
[node]
name = $node
role = $role
state_dir = $B/state/$ph-$node
listen = 127.0.0.1:$port
peer = 127.0.0.1:$port
peer_name = $peer_name
cert = $B/pki/$node/node.crt
key = $B/pki/$node/node.key
peer_fingerprint = $fp
target_root = $(target hs "$ph")
peer_timeout = 60s
EOF
		hs_sets "$ph"
	} >"$B/conf/$ph-$node.conf"
	mkdir -p "$B/state/$ph-$node"
}

rsyncd_conf() {
	local t p
	{
		cat <<EOF
use chroot = no
numeric ids = yes
munge symlinks = no
reverse lookup = no
list = no
max connections = 0
EOF
		# As root, the daemon keeps owners (its default is nobody).
		if [ "$(id -u)" = 0 ]; then printf 'uid = 0\ngid = 0\n'; fi
		for t in a fsync z; do
			for p in main many; do
				printf '\n[%s-%s]\npath = %s\nread only = no\n' \
					"$t" "$p" "$(target "$t" "$p")"
			done
		done
	} >"$B/conf/rsyncd.conf"
}

# child_of PID: the PID of PID's only child (bounded wait).
child_of() {
	local i c
	for ((i = 0; i < 100; i++)); do
		c=$(pgrep -P "$1" | head -1 || true)
		[ -n "$c" ] && { echo "$c"; return 0; }
		kill -0 "$1" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# start_server TOOL PHASE ID: start the tool's server under GNU time;
# sets SRV_TPID (time), SRV_DPID (the daemon), PORT.
start_server() {
	local tool=$1 ph=$2 id=$3 i log=$B/log/$3.server.log
	PORT=$(free_port) || { say "no free port"; return 1; }
	: >"$log"
	if [ "$tool" = hs ]; then
		hs_conf "$ph" mn1 "$PORT"
		hs_conf "$ph" mn2 "$PORT"
		/usr/bin/time -f "$TFMT" -o "$B/run/server.time" \
			"$HS" -c "$B/conf/$ph-mn2.conf" daemon --foreground \
			>>"$log" 2>&1 &
	else
		/usr/bin/time -f "$TFMT" -o "$B/run/server.time" \
			rsync --daemon --no-detach --config="$B/conf/rsyncd.conf" \
			--address=127.0.0.1 --port="$PORT" --log-file="$log" \
			>>"$B/log/$id.server.out" 2>&1 &
	fi
	SRV_TPID=$!
	SRV_DPID=$(child_of "$SRV_TPID") || { cat "$log" >&2; say "server did not start"; return 1; }
	for ((i = 0; i < 200; i++)); do
		if { [ "$tool" = hs ] && grep -q "listening on" "$log"; } ||
			{ [ "$tool" != hs ] && listening "$PORT"; }; then
			SRV_KIDS=$(kids "$SRV_DPID")
			return 0
		fi
		kill -0 "$SRV_DPID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$log" >&2
	say "server $tool did not start listening"
	return 1
}

kids() {
	pgrep -P "$1" | sort | tr '\n' ' ' || true
}

# stop_server: wait for the daemon's session children to end (so that
# they are reaped and count in its rusage: only the children it had when
# it started listening may remain), then SIGTERM it and wait.
stop_server() {
	local i
	for ((i = 0; i < 600; i++)); do
		[ "$(kids "$SRV_DPID")" = "$SRV_KIDS" ] && break
		sleep 0.05
	done
	kill "$SRV_DPID" 2>/dev/null || true
	if ! wait_gone "$SRV_DPID" 300; then
		say "server $SRV_DPID did not stop: killing it"
		kill -9 "$SRV_DPID" 2>/dev/null || true
	fi
	wait "$SRV_TPID" 2>/dev/null || true
	SRV_TPID="" SRV_DPID=""
}

# run_client TOOL PHASE ID: the measured client; sets CLIENT_RC, WALL.
run_client() {
	local tool=$1 ph=$2 id=$3 t0 t1 src
	src=$(src_of "$ph")
	t0=$EPOCHREALTIME
	if [ "$tool" = hs ]; then
		/usr/bin/time -f "$TFMT" -o "$B/run/client.time" \
			timeout -k 10 "$client_timeout" \
			"$HS" -c "$B/conf/$ph-mn1.conf" sync \
			>"$B/log/$id.client.out" 2>"$B/log/$id.client.err" &&
			CLIENT_RC=0 || CLIENT_RC=$?
	else
		# shellcheck disable=SC2086
		/usr/bin/time -f "$TFMT" -o "$B/run/client.time" \
			timeout -k 10 "$client_timeout" \
			rsync -a ${RSYNC_OPTS[$tool]} --sockopts=TCP_NODELAY \
			--numeric-ids --stats "$src/" \
			"rsync://127.0.0.1:$PORT/$tool-$ph/" \
			>"$B/log/$id.client.out" 2>"$B/log/$id.client.err" &&
			CLIENT_RC=0 || CLIENT_RC=$?
	fi
	t1=$EPOCHREALTIME
	WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
}

# verify TOOL PHASE: does the tool's copy equal the source?  Differences
# go to $B/run/verify.out.  hamnsync promises nanosecond mtimes (SPEC.md),
# so its copy is compared to the nanosecond; rsync copies with rsync's own
# default (whole seconds): rsync -a --fsync sometimes leaves a directory
# mtime off by a fraction of a second, and no later run re-sets it.
verify() {
	local tool=$1 ph=$2 src tgt s
	local c=(rsync -naiHc --numeric-ids)
	src=$(src_of "$ph")
	tgt=$(target "$tool" "$ph")
	: >"$B/run/verify.out"
	if [ "$tool" = hs ]; then
		c+=(--modify-window=-1)
		for s in $(hs_sources "$ph"); do
			if [ -d "$s" ]; then
				"${c[@]}" --delete "$s/" "$tgt$s/" \
					>>"$B/run/verify.out" 2>&1 || true
			else
				"${c[@]}" "$s" "$tgt$s" >>"$B/run/verify.out" 2>&1 || true
			fi
		done
	else
		"${c[@]}" --delete "$src/" "$tgt/" >>"$B/run/verify.out" 2>&1 || true
	fi
	# No temporary file may be left anywhere in the copy.
	find "$tgt" -name '.hamnsync-tmp.*' -printf 'left over: %p\n' \
		>>"$B/run/verify.out" 2>&1 || true
	[ ! -s "$B/run/verify.out" ]
}

# bytes from "1.2 MiB"-style text
to_bytes() {
	awk -v v="$1" -v u="$2" 'BEGIN {
		m = 1
		if (u == "KiB") m = 1024; else if (u == "MiB") m = 1048576
		else if (u == "GiB") m = 1073741824; else if (u == "TiB") m = 1099511627776
		printf "%.0f", v * m }'
}

# measure WL TOOL REP [unmeasured]: one run: server, client, checks.
measure() {
	local wl=$1 tool=$2 rep=$3 unmeasured=${4:-} ph id lo0 lo1 lo ct st bout bin ok note
	ph=$(phase_of "$wl")
	id=$wl.$tool.$rep${unmeasured:+.prep}
	flush
	start_server "$tool" "$ph" "$id"
	lo0=$(lo_bytes)
	run_client "$tool" "$ph" "$id"
	lo1=$(lo_bytes)
	stop_server
	[ "$lo0" = - ] && lo=- || lo=$((lo1 - lo0))
	ct=$(tail -1 "$B/run/client.time")
	st=$(tail -1 "$B/run/server.time")
	note=""
	[ "$CLIENT_RC" = 0 ] || note="exit $CLIENT_RC"
	if [ "$tool" = hs ]; then
		local line
		line=$(grep '^sync' "$B/log/$id.client.out" | tail -1 || true)
		if [[ "$line" =~ \;\ ([0-9.]+)\ ([KMGT]?i?B)\ on\ the\ wire ]]; then
			bout=$(to_bytes "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}")
		else
			bout=-
		fi
		bin=-
		if [[ "$line" =~ \;\ ([0-9]+)\ errors ]] && [ "${BASH_REMATCH[1]}" != 0 ]; then
			note="${note:+$note, }${BASH_REMATCH[1]} errors"
		fi
		[ -z "$unmeasured" ] && printf '%s\t%s\n' "$wl" "$line" >>"$B/run/hs-lines"
	else
		bout=$(sed -n 's/^Total bytes sent: *\([0-9,]*\).*/\1/p' "$B/log/$id.client.out" | tr -d ,)
		bin=$(sed -n 's/^Total bytes received: *\([0-9,]*\).*/\1/p' "$B/log/$id.client.out" | tr -d ,)
		[ -n "$bout" ] || bout=-
		[ -n "$bin" ] || bin=-
	fi
	if verify "$tool" "$ph"; then
		ok=ok
		unset "DIRTY[$tool]"
	else
		ok=FAILED
		DIRTY[$tool]=1
		say "$wl rep $rep: ${TOOL_NAME[$tool]}: copy differs from the source:"
		head -10 "$B/run/verify.out" >&2
		if [ -s "$B/log/$id.client.err" ]; then
			say "client stderr:"
			head -10 "$B/log/$id.client.err" >&2
		fi
	fi
	[ -n "${PRESTATE_NOTE:-}" ] && note="${note:+$note, }$PRESTATE_NOTE"
	if [ -n "$unmeasured" ]; then
		say "  (unmeasured re-sync of ${TOOL_NAME[$tool]}: $ok)"
		return 0
	fi
	# wl tool rep wall client(e u s rss) server(e u s rss) out in lo ok note
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$wl" "$tool" \
		"$rep" "$WALL" "${ct// /$'\t'}" "${st// /$'\t'}" "$bout" "$bin" "$lo" \
		"$ok" "${note:--}" >>"$RES"
	say "$(printf '%-14s rep %d  %-17s %8.3f s  %s%s' "$wl" "$rep" \
		"${TOOL_NAME[$tool]}" "$WALL" "$ok" "${note:+ ($note)}")"
}

# ------------------------------------------------------------- workloads

# wipe TOOL PHASE: an empty target (and, for hamnsync, fresh state on
# both nodes: a new standby seeded from scratch).
wipe() {
	local t
	t=$(target "$1" "$2")
	rm -rf "$t"
	mkdir -p "$t"
	if [ "$1" = hs ]; then
		rm -rf "$B/state/$2-mn1" "$B/state/$2-mn2"
	fi
}

CHANGE_N=0
# change WL REP: make the workload's change once on the source.
change() {
	local wl=$1 rep=$2 f k off size n i tm
	CHANGE_N=$((CHANGE_N + 1))
	case "$wl" in
	edit)
		f=$SRC/install/iso/big.iso
		size=$(stat -c %s "$f")
		for k in 0 1 2; do
			case $k in
			0) off=$((size / 8 + 12345)) ;;
			1) off=$((size / 2 + 3 * 4096 + 1)) ;;
			2) off=$((size - 3 * 65536 - 777)) ;;
			esac
			rand_bytes 65536 "edit-$rep-$k" |
				dd of="$f" bs=65536 seek="$off" oflag=seek_bytes \
					conv=notrunc status=none
		done
		# Same size: give it an mtime no earlier edit had (rsync's
		# quick check compares whole seconds).
		touch -d "@$((1700000000 + CHANGE_N))" "$f"
		;;
	small)
		mapfile -t tm < <(find "$SRC/install/custom" -name '*.tmpl' | sort)
		n=${#tm[@]}
		for ((i = 0; i < 100; i++)); do
			f=${tm[$((i * n / 100))]}
			printf '# bench edit %d of rep %d\n' "$i" "$rep" >>"$f"
		done
		;;
	new)
		mkdir -p "$SRC/install/rhels9.4/x86_64/updates"
		for ((i = 0; i < 10; i++)); do
			f=$SRC/install/rhels9.4/x86_64/updates/new-r$rep-$i.rpm
			rand_bytes $((5 * 1024 * 1024)) "new-$rep-$i" >"$f"
		done
		;;
	esac
}

# ----------------------------------------------------------------- main

say "folder $B (scale $scale, $reps reps, netns $in_netns)"
say "generating the trees"
gen_t0=$SECONDS
"$top/bench/gen.sh" "$SRC" "$scale" "$SEED" >"$B/log/gen.out"
"$top/bench/gen.sh" "$MANY" "$many_scale" "$SEED" >>"$B/log/gen.out"
cat "$B/log/gen.out" >&2
flush
# Warm-up: read both source trees once so every tool starts from the
# same warm page cache (no tool runs un-measured; nothing is dropped).
find "$SRC" "$MANY" -type f -print0 | xargs -0 -r cat >/dev/null
"$HS" --version >/dev/null
rsync --version >/dev/null
gen_s=$((SECONDS - gen_t0))

mkdir -p "$B/pki/mn1" "$B/pki/mn2"
FP1=$("$HS" keygen --out "$B/pki/mn1" --name mn1)
FP2=$("$HS" keygen --out "$B/pki/mn2" --name mn2)
rsyncd_conf
for tool in "${TOOLS[@]}"; do
	for ph in main many; do
		mkdir -p "$(target "$tool" "$ph")"
	done
done

has_wl() {
	local w
	for w in "${WORKLOADS[@]}"; do [ "$w" = "$1" ] && return 0; done
	return 1
}

ALL_WL=(seed edit small new nochange many-seed many-nochange)
for wl in "${ALL_WL[@]}"; do
	has_wl "$wl" || continue
	ph=$(phase_of "$wl")
	for ((rep = 1; rep <= reps; rep++)); do
		# Alternate: each repetition starts with the next tool.
		order=()
		for ((i = 0; i < ${#TOOLS[@]}; i++)); do
			order+=("${TOOLS[$(((i + rep - 1) % ${#TOOLS[@]}))]}")
		done
		case "$wl" in
		seed | many-seed) ;;
		*)
			# Every copy must equal the source before the change.
			for tool in "${order[@]}"; do
				[ -n "${DIRTY[$tool]:-}" ] || continue
				PRESTATE_NOTE="" measure "$wl" "$tool" "$rep" unmeasured
			done
			change "$wl" "$rep"
			;;
		esac
		for tool in "${order[@]}"; do
			PRESTATE_NOTE=""
			case "$wl" in
			seed | many-seed) wipe "$tool" "$ph" ;;
			*) [ -n "${DIRTY[$tool]:-}" ] && PRESTATE_NOTE="copy differed before the change" ;;
			esac
			measure "$wl" "$tool" "$rep"
		done
	done
done
total_s=$((SECONDS - start_time))

# ---------------------------------------------------------------- report

src_info=$(sed -n 's/^gen: [^:]*: //p' "$B/log/gen.out" | paste -sd ';' | sed 's/;/; /g')
{
	echo "# hamnsync vs rsync: $scale scale"
	echo
	echo "- command: \`bench/run.sh${orig_args[*]:+ ${orig_args[*]}}\`, $(date -u '+%Y-%m-%d %H:%M UTC'), run took ${total_s} s (tree generation ${gen_s} s)"
	echo "- load average (1, 5, 15 min) at start: $load_start, at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews wall times)"
	echo "- machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r), $(df -T "$B" | awk 'NR == 2 { print $2 }') under $(dirname "$B")"
	echo "- $("$HS" --version | head -1); $(rsync --version | head -1 | sed 's/  */ /g'); $(openssl version | cut -d' ' -f1-2)"
	echo "- trees (seed $SEED): $src_info"
	echo "- $reps measured repetition(s) per tool and workload, tools alternating (each repetition starts with the next tool); servers restarted for every run; loopback traffic in a private network namespace: $in_netns"
	echo
} >"$B/run/head.md"

perl - "$RES" "$B/run/hs-lines" >"$B/run/table.md" <<'PERL'
use strict;
use warnings;

my ($res, $lines) = @ARGV;
my @wl_order = qw(seed edit small new nochange many-seed many-nochange);
my %wl_desc = (
	'seed' => 'initial seed',
	'edit' => '3 x 64 KiB edit in big.iso',
	'small' => '100 small edits',
	'new' => '10 new 5 MiB files',
	'nochange' => 'no-change re-sync',
	'many-seed' => 'many-files seed',
	'many-nochange' => 'many-files no change',
);
my @tools = qw(hs a fsync z);
my %name = (hs => 'hamnsync', a => 'rsync -a', fsync => 'rsync -a --fsync', z => 'rsync -az');
my (%r, %seen);
open(my $fh, '<', $res) or die "$res: $!\n";
while (<$fh>) {
	chomp;
	my ($wl, $tool, $rep, $wall, $ce, $cu, $cs, $cm, $se, $su, $ss, $sm,
	    $out, $in, $lo, $ok, $note) = split /\t/;
	push @{$r{$wl}{$tool}}, {
		wall => $wall, ccpu => $cu + $cs, scpu => $su + $ss,
		crss => $cm / 1024, srss => $sm / 1024,
		out => $out, in => $in, lo => $lo, ok => $ok, note => $note };
	$seen{$wl} = 1;
}
sub median {
	my @v = sort { $a <=> $b } grep { $_ ne '-' } @_;
	return undef unless @v;
	return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}
sub max { my $m; for (@_) { $m = $_ if !defined $m || $_ > $m } return $m; }
sub min { my $m; for (@_) { $m = $_ if !defined $m || $_ < $m } return $m; }
sub human {
	my ($n) = @_;
	return 'n/a' unless defined $n;
	my @u = ('B', 'KiB', 'MiB', 'GiB');
	my $i = 0;
	while ($n >= 1024 && $i < 3) { $n /= 1024; $i++; }
	return $i ? sprintf('%.1f %s', $n, $u[$i]) : sprintf('%d B', $n);
}
sub ratio {
	my ($x, $y) = @_;
	return 'n/a' unless defined $x && defined $y && $y > 0;
	return sprintf('%.2f', $x / $y);
}
my %m;
for my $wl (@wl_order) {
	next unless $seen{$wl};
	for my $t (@tools) {
		my $v = $r{$wl}{$t} or next;
		my @ok = grep { $_->{ok} ne 'ok' } @$v;
		my %notes = map { $_->{note} => 1 } grep { $_->{note} ne '-' } @$v;
		$m{$wl}{$t} = {
			wall => median(map { $_->{wall} } @$v),
			wmin => min(map { $_->{wall} } @$v),
			wmax => max(map { $_->{wall} } @$v),
			ccpu => median(map { $_->{ccpu} } @$v),
			scpu => median(map { $_->{scpu} } @$v),
			crss => max(map { $_->{crss} } @$v),
			srss => max(map { $_->{srss} } @$v),
			out => median(map { $_->{out} } @$v),
			in => median(map { $_->{in} } @$v),
			lo => median(map { $_->{lo} } @$v),
			check => (@ok ? sprintf('FAILED %d/%d', scalar @ok, scalar @$v) : 'ok') .
			    (%notes ? ' (' . join('; ', sort keys %notes) . ')' : ''),
		};
	}
}
print "## Results (medians over repetitions; RSS: maximum)\n\n";
print "| workload | tool | wall s | wall min-max | CPU client s | CPU server s | RSS client MiB | RSS server MiB | sent | received | loopback | check |\n";
print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
for my $wl (@wl_order) {
	next unless $seen{$wl};
	for my $t (@tools) {
		my $x = $m{$wl}{$t} or next;
		printf "| %s | %s | %.3f | %.3f-%.3f | %.2f | %.2f | %.1f | %.1f | %s | %s | %s | %s |\n",
		    $wl_desc{$wl}, $name{$t}, $x->{wall}, $x->{wmin}, $x->{wmax},
		    $x->{ccpu}, $x->{scpu}, $x->{crss}, $x->{srss},
		    human($x->{out}), human($x->{in}), human($x->{lo}), $x->{check};
	}
}
print "\n## Ratios hamnsync / rsync (below 1.00: hamnsync better)\n\n";
print "| workload | wall /-a | wall /-a --fsync | wall /-az | CPU /-a | CPU /-a --fsync | CPU /-az | sent /-a | sent /-a --fsync | sent /-az | loopback /-a | loopback /-a --fsync | loopback /-az |\n";
print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
for my $wl (@wl_order) {
	next unless $seen{$wl} && $m{$wl}{hs};
	my $h = $m{$wl}{hs};
	my @c;
	for my $k (qw(wall cpu out lo)) {
		for my $t (qw(a fsync z)) {
			my $x = $m{$wl}{$t};
			if (!$x) { push @c, 'n/a'; next; }
			if ($k eq 'cpu') {
				push @c, ratio($h->{ccpu} + $h->{scpu}, $x->{ccpu} + $x->{scpu});
			} else {
				push @c, ratio($h->{$k}, $x->{$k});
			}
		}
	}
	print "| $wl_desc{$wl} | ", join(' | ', @c), " |\n";
}
if (open(my $lf, '<', $lines)) {
	my %last;
	while (<$lf>) { chomp; my ($wl, $l) = split /\t/, $_, 2; $last{$wl} = $l; }
	print "\n## hamnsync summary lines (last repetition)\n\n";
	for my $wl (@wl_order) {
		next unless defined $last{$wl};
		print "- $wl_desc{$wl}: `$last{$wl}`\n";
	}
}
PERL

cat >"$B/run/foot.md" <<'EOF'

Columns: wall = client wall time (the `sync` command or the rsync client,
from start to exit); CPU = user + system seconds of the client, and of the
server (hamnsync standby daemon with its session process, or rsync daemon
with its receiver processes), each under GNU time, servers restarted for
every run; RSS = peak resident set of the largest process in the client or
server tree; sent/received = bytes the primary wrote/read: hamnsync from its
summary line ("on the wire", TLS bytes written; bytes read are not printed,
hence n/a), rsync from `--stats`; loopback = all bytes through the private
namespace's lo during the client run (both directions, IP headers and ACKs
included), the same measure for every tool; CPU ratio = (client + server)
CPU. check = the copy equals the source after the run (`rsync -naiHc
--numeric-ids --delete`; for hamnsync also `--modify-window=-1`, as it
promises nanosecond mtimes). See bench/README.md for caveats.
EOF

mkdir -p "$(dirname "$BENCH_OUT")"
cat "$B/run/head.md" "$B/run/table.md" "$B/run/foot.md" >"$BENCH_OUT"
cat "$BENCH_OUT"
say "written to $BENCH_OUT; took ${total_s} s"
if grep -q $'\tFAILED\t' "$RES"; then
	say "some runs FAILED: see the check column"
	exit 1
fi
