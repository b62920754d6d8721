# lib.sh - shared helpers for hamnsync's integration tests and the demo.
# Everything lives in one temporary folder ($T) that is removed at exit;
# processes started here are stopped by their PID.  Nothing else on the
# host is touched; network traffic stays on 127.0.0.1.

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HS_BIN=${HS_BIN:-$top/build/bin/hamnsync}
T=""
HS_PIDS=()

hs_fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# hs_has GREP-ARGS...: does stdin hold a match?  Like grep -q, but reads
# all of it: grep -q leaves at the first match, and under pipefail the
# writer's SIGPIPE would then fail the whole pipeline.
hs_has() { grep -c "$@" >/dev/null; }

# hs_ours PID: PID is still a process this test started: a child of
# this shell, or one whose command line names the test's folder (a
# detached daemon's -c $T/...).  PIDs wrap (pid_max may be 32768) while
# the suite runs tests side by side: a PID recorded for a process that
# has since died may now be another test's, which must not be signalled.
hs_ours() {
	local ppid
	[ -r "/proc/$1/stat" ] || return 1
	ppid=$(sed 's/^.*) [A-Za-z] \([0-9]*\) .*/\1/' "/proc/$1/stat" 2>/dev/null)
	[ "$ppid" = "$$" ] && return 0
	[ -n "$T" ] && { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null | hs_has -F -- "$T"
}

# hs_signal SIGNAL PID...: send SIGNAL to each PID that is still ours
# (hs_ours); a PID whose process has ended is left alone.
hs_signal() {
	local sig=$1 p
	shift
	for p in "$@"; do
		hs_ours "$p" && kill -"$sig" "$p" 2>/dev/null || true
	done
}

# hs_forget PID: it ended and was reaped; the cleanup must not signal
# whatever gets its number next.
hs_forget() {
	local p keep=()
	for p in "${HS_PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	HS_PIDS=("${keep[@]}")
}

# hs_stop_ours: SIGTERM to every process of HS_PIDS the test still owns,
# one bounded wait for them all (the daemons give a stuck session 10 s
# before they kill it: 15 s, by the clock, not by rounds that a loaded
# machine stretches), then SIGKILL to those left.  Ownership is asked
# again at every look: a process that ends during the wait may hand its
# PID to another test's, which is neither waited for nor killed.
hs_stop_ours() {
	local p end left
	hs_signal TERM "${HS_PIDS[@]}"
	end=$(($(date +%s) + 15))
	while :; do
		left=()
		for p in "${HS_PIDS[@]}"; do
			hs_alive "$p" && left+=("$p")
		done
		[ ${#left[@]} -eq 0 ] && break
		if [ "$(date +%s)" -ge "$end" ]; then
			hs_signal KILL "${left[@]}"
			break
		fi
		sleep 0.1
	done
	HS_PIDS=()
}

hs_cleanup() {
	local rc=$?
	# A sanitizer report anywhere (a forked session child included) fails
	# the test even if every check passed.
	if [ -n "$T" ] && grep -l "runtime error:\|Sanitizer" "$T"/*.log \
		"$T"/*.err "$T"/*.out 2>/dev/null; then
		echo "FAIL: sanitizer report in the files above" >&2
		grep -h -A5 "runtime error:\|Sanitizer" "$T"/*.log "$T"/*.err \
			"$T"/*.out 2>/dev/null | head -40 >&2
		rc=1
	fi
	hs_stop_ours
	if [ -n "$T" ] && [ -z "${HS_KEEP:-}" ]; then
		rm -rf "$T"
	fi
	exit $rc
}

# hs_init NAME: make the temporary folder and arrange its removal.
hs_init() {
	T=$(mktemp -d "/tmp/hs-${1:-test}.XXXXXX")
	trap hs_cleanup EXIT
	mkdir -p "$T/src" "$T/standby" "$T/state1" "$T/state2" "$T/pki"
}

# hs_alive PID: the process runs and is still ours.  A PID that is no
# longer ours (hs_ours) belongs to a process that has ended: its number
# may already be another test's.
hs_alive() {
	kill -0 "$1" 2>/dev/null && hs_ours "$1"
}

# hs_wait_gone PID TENTHS: wait for a process to end, bounded.
hs_wait_gone() {
	local i
	for ((i = 0; i < $2; i++)); do
		hs_alive "$1" || return 0
		sleep 0.1
	done
	return 1
}

# hs_wait_log FILE PATTERN COUNT SECONDS: until FILE has COUNT lines
# matching PATTERN (grep -e), checked every 0.1 s; 1 on timeout.
hs_wait_log() {
	local i n
	for ((i = 0; i < $4 * 10; i++)); do
		# A file not made yet counts none (grep prints nothing then).
		n=$(grep -c -e "$2" "$1" 2>/dev/null || true)
		[ "${n:-0}" -ge "$3" ] && return 0
		sleep 0.1
	done
	return 1
}

# hs_count_log FILE PATTERN: how many lines of FILE match PATTERN (0
# when none, or no FILE yet).
hs_count_log() {
	grep -c -- "$2" "$1" 2>/dev/null || true
}

# hs_now_ms: the wall clock in milliseconds.
hs_now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# hs_size_is FILE BYTES: is FILE a regular file of exactly BYTES?
hs_size_is() { [ -f "$1" ] && [ "$(stat -c %s "$1")" -eq "$2" ]; }

# hs_wait_transfer DIR BYTES SECONDS: until a temporary file directly in
# DIR holds more than BYTES (a transfer in flight), checked every 0.05 s;
# 1 on timeout.  HS_TMP_SIZE: the largest one's size (empty: none).
hs_wait_transfer() {
	local i
	for ((i = 0; i < $3 * 20; i++)); do
		HS_TMP_SIZE=$(find "$1" -maxdepth 1 -name '.hamnsync-tmp.*' \
			-printf '%s\n' 2>/dev/null | sort -n | tail -1 || true)
		if [ -n "$HS_TMP_SIZE" ] && [ "$HS_TMP_SIZE" -gt "$2" ]; then
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# hs_standby_tree: the standby daemon and its session processes, by PID.
hs_standby_tree() {
	echo "$STANDBY_PID $(ps -o pid= --ppid "$STANDBY_PID" 2>/dev/null |
		tr -d ' ' | tr '\n' ' ')"
}

# hs_hex STRING: STRING's bytes in hex, as mdb_dump prints a key.
hs_hex() {
	printf '%s' "$1" | od -An -tx1 | tr -d ' \n'
}

# hs_free_port: print a TCP port on 127.0.0.1 that nothing listens on.
hs_free_port() {
	local p i
	for ((i = 0; i < 50; i++)); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# hs_pki: keys and certificates for mn1 (primary) and mn2 (standby).
hs_pki() {
	FP1=$("$HS_BIN" keygen --out "$T/pki/mn1" --name mn1 2>&1) ||
		{ mkdir -p "$T/pki/mn1" && FP1=$("$HS_BIN" keygen --out "$T/pki/mn1" --name mn1); }
	mkdir -p "$T/pki/mn2"
	FP2=$("$HS_BIN" keygen --out "$T/pki/mn2" --name mn2)
}

# hs_conf FILE NAME ROLE STATE CERTDIR PEERFP: a [node] section; the
# caller appends [path] sections.  Each node has a listen port of its
# own (the primary listens too, to answer probes): mn2 listens on $PORT,
# mn1 on $PORT1 (picked here when unset), and each one's peer is the
# other's.  A node's copy of P is target_root + P in both roles: mn1's
# target_root is /, so its copy is P; mn2's is HS_TARGET_ROOT
# ($T/standby unless set).
hs_conf() {
	local mine=$PORT theirs=${PORT1:-} root=${HS_TARGET_ROOT:-$T/standby}

	if [ -z "$theirs" ] || [ "$theirs" = "$PORT" ]; then
		PORT1=$(hs_free_port) || hs_fail "no free port"
		[ "$PORT1" != "$PORT" ] || PORT1=$(hs_free_port)
		theirs=$PORT1
	fi
	[ "$2" = mn1 ] && { mine=$PORT1; theirs=$PORT; root=/; }
	cat >"$1" <<CONF
[node]
name = $2
role = $3
state_dir = $4
listen = 127.0.0.1:$mine
peer = 127.0.0.1:$theirs
peer_name = $([ "$2" = mn1 ] && echo mn2 || echo mn1)
cert = $5/node.crt
key = $5/node.key
peer_fingerprint = $6
target_root = $root
peer_timeout = 5s
CONF
}

# hs_setup_pair SETS_TEXT: PKI, configs for both nodes with the given
# [path] sections, in $C1 (primary) and $C2 (standby).
hs_setup_pair() {
	PORT=$(hs_free_port) || hs_fail "no free port"
	mkdir -p "$T/pki/mn1"
	hs_pki
	C1=$T/mn1.conf
	C2=$T/mn2.conf
	hs_conf "$C1" mn1 primary "$T/state1" "$T/pki/mn1" "$FP2"
	hs_conf "$C2" mn2 standby "$T/state2" "$T/pki/mn2" "$FP1"
	printf '%s\n' "$1" >>"$C1"
	printf '%s\n' "$1" >>"$C2"
}

# hs_setup_xcat_pair: hs_setup_pair for the failover command tests: an
# xCAT folder X=$T/src/etc/xcat (S=$T/src) with xcat.conf and a nodelist
# database (node cn001), replicated as one set and the database
# snapshotted every second; R the standby's copy of that database (what
# a promote restores).  REC=$T/rec.log, and $T/rec.sh LOG NAME, a step
# command that records NAME and the step it ran in ($HAMNSYNC_STEP).
hs_setup_xcat_pair() {
	S=$T/src
	X=$S/etc/xcat
	mkdir -p "$X"
	printf 'XCATROOT=/opt/xcat\n' >"$X/xcat.conf"
	sqlite3 "$X/nodelist.sqlite" \
		"CREATE TABLE nodelist(node TEXT PRIMARY KEY, groups TEXT);
		 INSERT INTO nodelist VALUES('cn001', 'compute');"
	hs_setup_pair "
[path etc-xcat]
source = $X
exclude = *.sqlite*

[database xcatdb]
type = sqlite
path = $X
interval = 1s"
	R=$T/standby$X/nodelist.sqlite
	REC=$T/rec.log
	cat >"$T/rec.sh" <<'EOF'
#!/bin/sh
# rec.sh LOG NAME: record that NAME ran, and in which step.
echo "$2 $HAMNSYNC_STEP" >>"$1"
EOF
	chmod +x "$T/rec.sh"
}

# hs_start_standby [CONF]: start the standby in the foreground, logging
# to $T/standby.log; waits (bounded) until it listens.
hs_start_standby() {
	local conf=${1:-$C2} i before
	# The log is appended to: wait for a new "listening" line, not an old one.
	# Made first: the loop below may look before the daemon's shell does.
	: >>"$T/standby.log"
	before=$(grep -c "listening on" "$T/standby.log" 2>/dev/null || true)
	"$HS_BIN" -c "$conf" daemon --foreground >>"$T/standby.log" 2>&1 &
	STANDBY_PID=$!
	HS_PIDS+=("$STANDBY_PID")
	for ((i = 0; i < 100; i++)); do
		if [ "$(grep -c "listening on" "$T/standby.log" 2>/dev/null || true)" \
			-gt "${before:-0}" ]; then
			return 0
		fi
		kill -0 "$STANDBY_PID" 2>/dev/null ||
			{ cat "$T/standby.log" >&2; hs_fail "standby exited"; }
		sleep 0.1
	done
	hs_fail "standby did not start listening"
}

# hs_start_primary [CONF]: start the primary daemon in the foreground,
# appending to $T/primary.log; its PID in PRIMARY_PID.
hs_start_primary() {
	"$HS_BIN" -c "${1:-$C1}" daemon --foreground >>"$T/primary.log" 2>&1 &
	PRIMARY_PID=$!
	HS_PIDS+=("$PRIMARY_PID")
}
# hs_start_standby_ns [CONF [PRE]]: the standby daemon (CONF, default
# $C2) in a mount namespace of its own, so a test can bind or mount
# below its target_root (hs_in_standby_ns) without touching the host.
# PRE: shell commands run in the namespace first.
hs_start_standby_ns() {
	local conf=${1:-$C2} pre=${2:-} before
	touch "$T/standby.log"
	before=$(grep -c "listening on" "$T/standby.log" 2>/dev/null || true)
	unshare -m --propagation private bash -c \
		"$pre exec '$HS_BIN' -c '$conf' daemon --foreground" \
		>>"$T/standby.log" 2>&1 &
	STANDBY_PID=$!
	HS_PIDS+=("$STANDBY_PID")
	disown "$STANDBY_PID" # may be killed on purpose: no job notice
	hs_wait_log "$T/standby.log" "listening on" $((before + 1)) 30 ||
		hs_fail "standby did not start: $(tail -5 "$T/standby.log")"
}

# hs_in_standby_ns CMD...: run CMD in that standby's mount namespace.
hs_in_standby_ns() { nsenter -t "$STANDBY_PID" -m "$@"; }


# hs_ns_hold N: node N's machine for a test of two nodes on one host: a
# process whose mount namespace binds $T/nN on $T/src, so each node has
# its own copy at the path both replicate; its PID in NS_N.  Every
# command of node N runs in it (hs_ns_daemon, nsenter -t "$NS_N" -m).
hs_ns_hold() {
	local i
	unshare -m --propagation private bash -c \
		"mount --bind '$T/n$1' '$T/src' && exec sleep 100000" &
	eval "NS_$1=$!"
	HS_PIDS+=("$!")
	for ((i = 0; i < 50; i++)); do
		nsenter -t "$!" -m findmnt "$T/src" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	hs_fail "namespace of node $1 not ready"
}

# hs_ns_daemon N CONF LOG: node N's daemon in the foreground, in its mount
# namespace (hs_ns_hold), appending to LOG; its PID in DPID.
hs_ns_daemon() {
	local ns=NS_$1
	nsenter -t "${!ns}" -m "$HS_BIN" -c "$2" daemon --foreground \
		>>"$3" 2>&1 &
	DPID=$!
	HS_PIDS+=("$DPID")
}

# hs_stop_pid PID [SIGNAL [TENTHS]]: SIGNAL (TERM) to PID if it is still
# ours, a bounded wait (TENTHS, 200: the daemons give a session 10 s),
# then SIGKILL and 1 if it had not ended; reaped and forgotten either way.
hs_stop_pid() {
	local rc=0
	[ -n "$1" ] || return 0
	hs_signal "${2:-TERM}" "$1"
	if ! hs_wait_gone "$1" "${3:-200}"; then
		hs_signal KILL "$1"
		rc=1
	fi
	wait "$1" 2>/dev/null || true
	hs_forget "$1"
	return $rc
}

hs_stop_standby() {
	hs_signal TERM "$STANDBY_PID"
	hs_wait_gone "$STANDBY_PID" 100 || hs_fail "standby did not stop"
}

hs_stop_primary() {
	hs_signal TERM "$PRIMARY_PID"
	hs_wait_gone "$PRIMARY_PID" 150 || hs_fail "primary did not stop"
}

# hs_sync [ARGS]: run sync on the primary; sets SYNC_RC, output in
# $T/sync.out and $T/sync.err; HS_SYNC_T0 is when it began (epoch s).
hs_sync() {
	HS_SYNC_T0=$(date +%s.%N)
	set +e
	"$HS_BIN" -c "$C1" sync "$@" >"$T/sync.out" 2>"$T/sync.err"
	SYNC_RC=$?
	set -e
}

# hs_sync_rc WANT NAME [ARGS]: hs_sync ARGS; a sync that does not exit
# WANT is a failed check (its output follows).
hs_sync_rc() {
	local want=$1 name=$2
	shift 2
	hs_sync "$@"
	if [ "$SYNC_RC" -ne "$want" ]; then
		hs_bad "$name: sync exited $SYNC_RC, wanted $want"
		cat "$T/sync.out" "$T/sync.err"
	fi
}

# hs_compare SOURCE...: each source equals its copy under target_root, in
# content and every attribute (rsync as an independent oracle, nanosecond
# mtimes, numeric ids).  Prints the differences and fails on any.
# HS_COMPARE_EXCLUDE, if set, is one rsync --exclude pattern (the sets'
# excludes: such files are neither sent nor deleted).
hs_compare() {
	local s out rc=0 ex=()
	[ -n "${HS_COMPARE_EXCLUDE:-}" ] && ex=(--exclude="$HS_COMPARE_EXCLUDE")
	for s in "$@"; do
		if [ -d "$s" ] && [ ! -L "$s" ]; then
			out=$(rsync -naiHAXc --numeric-ids --modify-window=-1 \
				"${ex[@]}" --delete "$s/" "$T/standby$s/" 2>&1)
		else
			out=$(rsync -naiHAXc --numeric-ids --modify-window=-1 \
				"${ex[@]}" "$s" "$T/standby$s" 2>&1)
		fi
		if [ -n "$out" ]; then
			echo "differences for $s:" >&2
			echo "$out" | head -20 >&2
			rc=1
		fi
	done
	return $rc
}

# hs_same [RSYNC_OPTION...] SOURCE COPY: the folder COPY equals SOURCE,
# in content and every attribute, nothing more in it (rsync as the
# oracle); quiet, for a poll.
hs_same() {
	local n=$#
	[ -z "$(rsync -naiHAXc --numeric-ids --delete "${@:1:n-2}" \
		"${@:n-1:1}/" "${@:n:1}/" 2>&1)" ]
}

# hs_snapshot DIR: a listing of every file's path, type, size, mode,
# owner, mtime and content hash under DIR (to prove nothing changed).
hs_snapshot() {
	(cd "$1" && find . -printf '%p %y %s %m %U:%G %T@ %l\n' | sort &&
		find . -type f -print0 | sort -z | xargs -0r sha256sum)
}

# hs_gen_tree DIR: a small management-node-like tree.
hs_gen_tree() {
	local d=$1 i
	mkdir -p "$d/install/netboot/rhels9/x86_64/compute" \
		"$d/install/postscripts" "$d/install/custom/install/rh" \
		"$d/xcat/cert" "$d/xcat/ca/private" "$d/etc"
	for i in $(seq 1 200); do
		printf '10.0.%d.%d node%04d node%04d.cluster\n' \
			$((i / 250)) $((i % 250)) "$i" "$i"
	done >"$d/etc/hosts"
	printf 'search cluster\nnameserver 10.0.0.1\n' >"$d/etc/resolv.conf"
	for i in $(seq 1 40); do
		printf '#!/bin/sh\n# postscript %d\necho configure %d\n' "$i" "$i" \
			>"$d/install/postscripts/script$i"
		chmod 755 "$d/install/postscripts/script$i"
	done
	for i in $(seq 1 20); do
		printf 'template %d\n%%packages\n@core\n' "$i" \
			>"$d/install/custom/install/rh/compute$i.tmpl"
	done
	head -c 3000000 /dev/urandom >"$d/install/netboot/rhels9/x86_64/compute/rootimg.gz"
	head -c 2000000 < <(yes 'compressible kernel line') \
		>"$d/install/netboot/rhels9/x86_64/compute/initrd.img"
	printf 'KEY\n' >"$d/xcat/ca/private/ca-key.pem"
	chmod 600 "$d/xcat/ca/private/ca-key.pem"
	chmod 700 "$d/xcat/ca/private"
	printf 'CERT\n' >"$d/xcat/cert/server-cert.pem"
	ln -s server-cert.pem "$d/xcat/cert/current.pem"
	ln -s /nonexistent/target "$d/install/dangling"
	chown 1234:5678 "$d/install/postscripts/script1"
	chmod 4755 "$d/install/postscripts/script2"
	touch -d '2020-01-02 03:04:05.123456789' "$d/install/custom/install/rh/compute1.tmpl"
	: >"$d/install/empty-file"
	mkdir -p "$d/install/empty-dir"
}

hs_sets_for() {
	local d=$1
	cat <<SETS

[path credentials]
source = $d/xcat/ca
source = $d/xcat/cert
exclude = *.swp

[path install]
source = $d/install

[path netconf]
source = $d/etc/hosts
source = $d/etc/resolv.conf
SETS
}

hs_all_sources() {
	local d=$1
	echo "$d/xcat/ca $d/xcat/cert $d/install $d/etc/hosts $d/etc/resolv.conf"
}

# Checks of a test: hs_ok and hs_bad print one line each and count it;
# hs_result NAME prints the totals and fails when any check failed.
HS_PASSED=0
HS_FAILED=0
hs_ok() {
	HS_PASSED=$((HS_PASSED + 1))
	echo "ok   $*"
}
hs_bad() {
	HS_FAILED=$((HS_FAILED + 1))
	echo "FAIL $*"
}
hs_result() {
	echo "$1: $HS_PASSED passed, $HS_FAILED failed"
	[ "$HS_FAILED" -eq 0 ]
}

# hs_drift_copies, hs_drift_lines: the versions the standby kept under
# state_dir/drift, and the lines of its log that say so.
hs_drift_copies() {
	{ find "$T/state2/drift" -type f 2>/dev/null || true; } | wc -l
}
hs_drift_lines() {
	grep -c "changed on this standby since hamnsync wrote it" \
		"$T/standby.log" || true
}

# The honesty checks: wherever a test compares trees, it first asserts
# what `hamnsync status --json` (or a one-shot sync) claimed, and the
# claim must be true.  tests/integ/status_claim.py reads and judges it.
HS_CLAIM="$top/tests/integ/status_claim.py"

# hs_status CONF OUT: the node's `status --json` into OUT; its exit
# code in HS_STATUS_RC.
hs_status() {
	set +e
	"$HS_BIN" -c "$1" status --json >"$2" 2>"$2.err"
	HS_STATUS_RC=$?
	set -e
}

# hs_expect_status NAME CONF EXPR: the node's status, judged by the
# python expression EXPR (`d` is the status object); counts the result.
# For the states a test must see where the trees differ on purpose
# (held, catching-up, not ready).
hs_expect_status() {
	local said
	hs_status "$2" "$T/expect.json"
	if said=$(python3 "$HS_CLAIM" expect "$T/expect.json" "$3" \
		2>"$T/expect.why"); then
		hs_ok "$1 ($said)"
	else
		hs_bad "$1: $(cat "$T/expect.why") (wanted: $3)"
	fi
}

# hs_last_applied: the standby's lag.last_applied as its status says it
# (None when it says null, ? when there is no status).
hs_last_applied() {
	hs_status "${HS_STANDBY_CONF:-$C2}" "$T/last-applied.json"
	python3 -c 'import json, sys
print(json.load(open(sys.argv[1]))["lag"]["last_applied"])' \
		"$T/last-applied.json" 2>/dev/null || echo "?"
}

# hs_wait_status NAME SECONDS CONF EXPR: as hs_expect_status, but polls
# (every 0.1 s, bounded) until the status satisfies EXPR: for a state
# that comes once a run is over (held, error).
hs_wait_status() {
	local said end=$((SECONDS + $2))
	# Bounded by the clock: a status call may take up to 2 s itself.
	while ((SECONDS < end)); do
		hs_status "$3" "$T/expect.json"
		if said=$(python3 "$HS_CLAIM" expect "$T/expect.json" "$4" \
			2>"$T/expect.why"); then
			hs_ok "$1 ($said)"
			return 0
		fi
		sleep 0.1
	done
	hs_bad "$1: after $2 s, $(cat "$T/expect.why") (wanted: $4)"
	return 0
}

# hs_wait_same NAME SECONDS SOURCE...: the honest wait of a running
# primary daemon.  Polls (bounded by SECONDS) until the primary's status
# says every set holding a SOURCE is in-sync with no file pending, and,
# while the standby daemon ($STANDBY_PID) runs, the standby's says
# promote_ready once the primary says every set in-sync; then compares
# the trees ONCE: status claiming in-sync while they differ is a failure,
# not a reason to wait longer.  Counts the result, HS_SAME 1 when both
# held, and returns 0.  HS_PRIMARY_CONF and HS_STANDBY_CONF replace $C1
# and $C2; HS_STANDBY_CONF=- leaves the standby's status out (a test
# that froze its daemon).
hs_wait_same() {
	local name=$1 secs=$2 sc=- t0 said
	shift 2
	HS_SAME=0
	if [ -n "${STANDBY_PID:-}" ] && kill -0 "$STANDBY_PID" 2>/dev/null; then
		sc=${HS_STANDBY_CONF:-$C2}
	fi
	mkdir -p "$T/claim"
	t0=$(date +%s%N)
	if ! python3 "$HS_CLAIM" wait "$HS_BIN" "${HS_PRIMARY_CONF:-$C1}" \
		"$sc" "$secs" "$T/claim" "$@" 2>"$T/claim/why"; then
		hs_bad "$name: status did not say in-sync within ${secs}s"
		sed 's/^/     /' "$T/claim/why"
		hs_compare "$@" || true
		return 0
	fi
	said="status said in-sync$([ "$sc" = - ] || echo ", promote ready")"
	if hs_compare "$@"; then
		HS_SAME=1
		hs_ok "$name ($said in $((($(date +%s%N) - t0) / 1000000)) ms; trees equal)"
	else
		hs_bad "$name: $said, but the trees differ (status lied)"
		python3 "$HS_CLAIM" show "$T/claim/primary.json" \
			"$T/claim/standby.json" | sed 's/^/     /'
	fi
	return 0
}

# hs_wait_converge NAME SECONDS EXPR SOURCE...: trees that converge while
# status may not claim they do (e.g. subtrees seen only by the rescan).
# Polls, bounded by SECONDS, until the trees are equal; before each
# comparison the primary's status must satisfy EXPR (a python expression
# on `d`, as hs_expect_status): a status that breaks it fails at once.
# Counts the result, HS_SAME 1 when equal; returns 0.
hs_wait_converge() {
	local name=$1 secs=$2 expr=$3 said rc end=$((SECONDS + $2))
	shift 3
	HS_SAME=0
	# Bounded by the clock: each round runs status and a tree comparison.
	while ((SECONDS < end)); do
		hs_status "${HS_PRIMARY_CONF:-$C1}" "$T/converge.json"
		rc=0
		said=$(python3 "$HS_CLAIM" expect "$T/converge.json" "$expr" \
			2>"$T/converge.why") || rc=$?
		if [ "$rc" -eq 3 ]; then
			sleep 0.1 # UNKNOWN (not up yet): it claims nothing
			continue
		elif [ "$rc" -ne 0 ]; then
			hs_bad "$name: $(cat "$T/converge.why") (wanted: $expr)"
			return 0
		fi
		if hs_compare "$@" 2>/dev/null; then
			HS_SAME=1
			hs_ok "$name (status said $said; trees equal)"
			return 0
		fi
		sleep 0.1
	done
	hs_bad "$name: not identical after ${secs}s"
	hs_compare "$@" || true
	return 0
}

# hs_sync_check NAME SOURCE...: after hs_sync (a one-shot sync, no
# primary daemon), what the run claimed: exit 0 ("standby matches") and
# a summary with 0 errors and 0 held; while the standby daemon runs, its
# status (within 10 s: its session reports after the acknowledgement):
# last_applied at or after the sync began and no set in "error".
# Then the trees are compared once (HS_COMPARE_FN SOURCE..., hs_compare
# unless set); a claim that does not hold fails.  Counts the result,
# HS_SAME 1 when all held; returns 0.
hs_sync_check() {
	local name=$1 said la i
	shift
	HS_SAME=0
	if [ "$SYNC_RC" -ne 0 ] ||
		! grep -q ' 0 held, .* 0 errors$' "$T/sync.out"; then
		hs_bad "$name: sync exit $SYNC_RC: $(tail -2 "$T/sync.out" "$T/sync.err" | tr '\n' ' ')"
		"${HS_COMPARE_FN:-hs_compare}" "$@" || true
		return 0
	fi
	said="sync exit 0, 0 errors"
	if [ -n "${STANDBY_PID:-}" ] && kill -0 "$STANDBY_PID" 2>/dev/null; then
		# Its session reports after the acknowledgement the sync saw
		# (releasing replaced files first): bounded, it says so.
		for ((i = 0; i < 100; i++)); do
			hs_status "${HS_STANDBY_CONF:-$C2}" "$T/sync-standby.json"
			la=$(python3 "$HS_CLAIM" applied "$T/sync-standby.json" \
				"$HS_SYNC_T0" 2>"$T/sync-standby.why") && break
			la=""
			sleep 0.1
		done
		if [ -z "$la" ]; then
			hs_bad "$name: sync exit 0, but the standby's status does not show its runs applied: $(cat "$T/sync-standby.why")"
			"${HS_COMPARE_FN:-hs_compare}" "$@" || true
			return 0
		fi
		said="$said; standby applied at $la"
	fi
	if "${HS_COMPARE_FN:-hs_compare}" "$@"; then
		HS_SAME=1
		hs_ok "$name ($said; trees equal)"
	else
		hs_bad "$name: $said, but the trees differ (the sync's claim is false)"
	fi
	return 0
}
