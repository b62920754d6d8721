#!/usr/bin/env bash
# test_identity.sh - this node's own identity is wrong: its private key is
# missing, unreadable (a directory in its place; a file this process may
# not read, which a root process only meets inside a user namespace of
# its own), garbage, the key of another certificate, or readable by
# group and others; its certificate is missing or not a certificate; in
# CA mode its CA file is missing or garbage.  For each:
#   - `sync` exits 2 (bad local configuration) with one line naming the
#     file and what is wrong with it, each fault its own line;
#   - `daemon` (detaching, as an administrator starts it), in either role,
#     exits 2 with that line on the terminal and leaves no process behind;
#   - `status` says CRITICAL, names the file, and does not blame the peer
#     (also on a node whose daemon never made an index);
#   - nothing under the standby's target_root changes.
# Then a running primary keeps the identity it loaded: a SIGHUP to a bad
# key is refused and replication goes on, `status` warns that a restart
# would fail; and a good identity still syncs the trees whole.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ -x "$HS_BIN" ] || hs_fail "$HS_BIN is not built"

hs_init identity
hs_gen_tree "$T/src"
hs_setup_pair "$(hs_sets_for "$T/src")"
SOURCES=$(hs_all_sources "$T/src")
PORT2=$(hs_free_port) || hs_fail "no free port"
B=$T/bad
mkdir -p "$B"

hs_start_standby
hs_sync
hs_sync_check "baseline: sync exits 0, standby identical" $SOURCES
[ "$HS_SAME" = 1 ] || hs_fail "the baseline sync did not converge"

# ------------------------------------------------------------ the faults
# Each fault: NAME FILE-IN-CONFIG PHRASE, and how the configs point to it.
mkdir "$B/dir.key"
printf 'this is not a key\n%.0s' 1 2 3 >"$B/garbage.key"
chmod 600 "$B/garbage.key"
# Owned by someone else, 0600: root reads it, a process of a user
# namespace without a mapping for either owner does not.
# Copies of each node's own key, so this is their only fault.
for n in 1 2; do
	cp "$T/pki/mn$n/node.key" "$B/other-owner$n.key"
	chown 12345:12345 "$B/other-owner$n.key"
	chmod 600 "$B/other-owner$n.key"
	cp "$T/pki/mn$n/node.key" "$B/open$n.key"
	chmod 644 "$B/open$n.key"
done
printf 'not a certificate either\n' >"$B/garbage-ca.crt"

# conf_with BASE OUT KEY=VALUE...: BASE with [node] settings replaced or
# added (a setting not in BASE goes after `name = `).
conf_with() {
	local base=$1 out=$2 kv k v
	shift 2
	cp "$base" "$out"
	for kv in "$@"; do
		k=${kv%%=*}
		v=${kv#*=}
		if grep -q "^$k = " "$out"; then
			sed -i "s|^$k = .*|$k = $v|" "$out"
		else
			sed -i "/^name = /a $k = $v" "$out"
		fi
	done
}

# fault NAME PFILE SFILE PHRASE RUNNER SETTING...: a fault as a primary
# config (its file PFILE) and as a standby config (SFILE) with a state_dir
# and port of its own, so that it fails on the identity, not on a busy
# port or a locked state_dir.  The standby presents mn2's certificate and
# key where the fault leaves them.  RUNNER prefixes every command.
FAULTS=()
fault() {
	local name=$1 pfile=$2 sfile=$3 phrase=$4 runner=$5
	shift 5
	conf_with "$C1" "$T/p-$name.conf" "$@"
	conf_with "$C2" "$T/s-$name.conf" "$@" "state_dir=$T/state-$name" \
		"listen=127.0.0.1:$PORT2"
	FAULTS+=("$name|$pfile|$sfile|$phrase|$runner")
}
fault key-missing "$B/missing.key" "$B/missing.key" \
	"No such file or directory" "" "key=$B/missing.key"
fault key-directory "$B/dir.key" "$B/dir.key" "Is a directory" "" \
	"key=$B/dir.key"
fault key-unreadable "$B/other-owner1.key" "$B/other-owner2.key" \
	"Permission denied" "unshare -U" "key=$B/other-owner1.key"
fault key-garbage "$B/garbage.key" "$B/garbage.key" \
	"not a PEM private key" "" "key=$B/garbage.key"
fault key-open "$B/open1.key" "$B/open2.key" \
	"permissions 0644 are too open" "" "key=$B/open1.key"
fault cert-missing "$B/missing.crt" "$B/missing.crt" \
	"No such file or directory" "" "cert=$B/missing.crt"
fault cert-garbage "$B/garbage.key" "$B/garbage.key" \
	"not a PEM certificate" "" "cert=$B/garbage.key"
fault ca-missing "$B/missing-ca.crt" "$B/missing-ca.crt" \
	"No such file or directory" "" "ca=$B/missing-ca.crt"
fault ca-garbage "$B/garbage-ca.crt" "$B/garbage-ca.crt" \
	"not a PEM certificate" "" "ca=$B/garbage-ca.crt"
# The other node's key with this node's certificate (both fine alone).
fault key-mismatch "$T/pki/mn2/node.key" "$T/pki/mn1/node.key" \
	"does not match the certificate" "" "key=$T/pki/mn2/node.key"
sed -i "s|^key = .*|key = $T/pki/mn1/node.key|" "$T/s-key-mismatch.conf"
sed -i "s|^key = .*|key = $B/other-owner2.key|" "$T/s-key-unreadable.conf"
sed -i "s|^key = .*|key = $B/open2.key|" "$T/s-key-open.conf"

# one_line NAME ERR WANT PHRASE: the error output ERR is one line naming
# WANT (the file) with PHRASE.
one_line() {
	local name=$1 err=$2 want=$3 phrase=$4 n
	n=$(wc -l <"$err")
	if [ "$n" -eq 1 ] && grep -q -F -- "$want" "$err" &&
		grep -q -F -- "$phrase" "$err"; then
		hs_ok "$name: one line: $(cat "$err")"
	else
		hs_bad "$name: want one line naming $want with '$phrase', got $n:"
		sed 's/^/     | /' "$err" | head -5
	fi
}

# untouched NAME BEFORE: nothing under target_root changed.
untouched() {
	if [ "$(hs_snapshot "$T/standby")" = "$2" ]; then
		hs_ok "$1: nothing changed under target_root"
	else
		hs_bad "$1: files CHANGED under target_root"
	fi
}

# left_behind CONF: PIDs of hamnsync processes started with CONF.
left_behind() {
	pgrep -f -- "-c $1 daemon" || true
}

# daemon_fails NAME CONF RUNNER WANT PHRASE: `daemon` (detaching) exits 2
# on the terminal with one line, and no process is left.
daemon_fails() {
	local name=$1 conf=$2 runner=$3 want=$4 phrase=$5 rc pids p
	set +e
	# shellcheck disable=SC2086
	timeout 60 $runner "$HS_BIN" -c "$conf" daemon >"$T/daemon.out" \
		2>"$T/daemon.err"
	rc=$?
	set -e
	if [ "$rc" -eq 2 ]; then
		hs_ok "$name: daemon exits 2 at start"
	else
		hs_bad "$name: daemon exited $rc (want 2)"
	fi
	one_line "$name: daemon" "$T/daemon.err" "$want" "$phrase"
	pids=$(left_behind "$conf")
	if [ -z "$pids" ]; then
		hs_ok "$name: no daemon process left"
	else
		hs_bad "$name: a daemon was left running (pid $(echo $pids))"
		# Ours (its config is this test's): stopped by its PID.
		for p in $pids; do
			kill "$p" 2>/dev/null || true
			hs_wait_gone "$p" 150 || kill -9 "$p" 2>/dev/null || true
		done
	fi
}

MESSAGES=()
for f in "${FAULTS[@]}"; do
	IFS='|' read -r name file sfile phrase runner <<<"$f"
	echo "== $name"
	echo "marker $name" >"$T/src/install/marker-$name"
	before=$(hs_snapshot "$T/standby")

	# sync
	set +e
	# shellcheck disable=SC2086
	timeout 60 $runner "$HS_BIN" -c "$T/p-$name.conf" sync \
		>"$T/sync.out" 2>"$T/sync.err"
	rc=$?
	set -e
	[ "$rc" -eq 2 ] && hs_ok "$name: sync exits 2" ||
		hs_bad "$name: sync exited $rc (want 2)"
	one_line "$name: sync" "$T/sync.err" "$file" "$phrase"
	MESSAGES+=("$(cat "$T/sync.err")")
	untouched "$name: sync" "$before"

	# daemon, either role
	daemon_fails "$name: primary" "$T/p-$name.conf" "$runner" "$file" \
		"$phrase"
	daemon_fails "$name: standby" "$T/s-$name.conf" "$runner" "$sfile" \
		"$phrase"
	untouched "$name: daemons" "$before"

	# status: root reads any file, so the user-namespace fault is none
	# for it (and a user who may not read the key is not its judge).
	if [ -z "$runner" ]; then
		set +e
		"$HS_BIN" -c "$T/p-$name.conf" status >"$T/st.out" 2>"$T/st.err"
		rc=$?
		"$HS_BIN" -c "$T/p-$name.conf" status --json >"$T/st.json" \
			2>/dev/null
		set -e
		if [ "$rc" -eq 2 ] && grep '^CRIT' "$T/st.out" |
			grep -F -- "$file" | hs_has -F -- "$phrase"; then
			hs_ok "$name: status CRITICAL: $(grep -F -- "$file" "$T/st.out" | head -1)"
		else
			hs_bad "$name: status exited $rc without naming $file:"
			sed 's/^/     | /' "$T/st.out" "$T/st.err" | head -12
		fi
		if jq -e --arg f "$file" --arg p "$phrase" '[.warnings[] |
			select(.severity == "critical" and (.text | contains($f))
			and (.text | contains($p)))] | length == 1' \
			"$T/st.json" >/dev/null; then
			hs_ok "$name: status --json has the critical warning"
		else
			hs_bad "$name: status --json: $(jq -c .warnings "$T/st.json")"
		fi
		if grep -E '^(CRIT|WARN)' "$T/st.out" |
			grep -q -i -e unreachable -e standby -e peer; then
			hs_bad "$name: status blames the peer: $(grep -E '^(CRIT|WARN)' "$T/st.out")"
		else
			hs_ok "$name: status does not blame the peer"
		fi
		# The standby config's state_dir never got an index.
		set +e
		"$HS_BIN" -c "$T/s-$name.conf" status >"$T/st.out" 2>"$T/st.err"
		rc=$?
		set -e
		if [ "$rc" -eq 2 ] && [ "$(wc -l <"$T/st.err")" -eq 1 ] &&
			grep -F -- "$sfile" "$T/st.err" | hs_has -F -- "$phrase"; then
			hs_ok "$name: status of a node that never started: $(cat "$T/st.err")"
		else
			hs_bad "$name: status of a node that never started exited $rc:"
			sed 's/^/     | /' "$T/st.out" "$T/st.err" | head -8
		fi
	fi
	rm -f "$T/src/install/marker-$name"
done

n=$(printf '%s\n' "${MESSAGES[@]}" | sed "s|$T||g" | sort -u | wc -l)
[ "$n" -eq "${#MESSAGES[@]}" ] &&
	hs_ok "every fault has its own message (${#MESSAGES[@]})" ||
	hs_bad "only $n different messages for ${#MESSAGES[@]} faults"

# ------------------------------------------ a running primary keeps its own
echo "== a running primary and a bad key on disk"
: >"$T/primary.log"
hs_start_primary
hs_wait_log "$T/primary.log" "connected to standby" 1 60 ||
	hs_fail "the primary daemon did not connect: $(tail -5 "$T/primary.log")"
cp "$C1" "$T/mn1-good.conf"
conf_with "$T/mn1-good.conf" "$C1" "key=$B/open1.key"
kill -HUP "$PRIMARY_PID"
if hs_wait_log "$T/primary.log" "reload refused.*$B/open1.key: permissions 0644" 1 30; then
	hs_ok "reload to a too-open key refused: $(grep 'reload refused' "$T/primary.log" | tail -1 | cut -d' ' -f3-)"
else
	hs_bad "reload to a too-open key not refused"
fi
set +e
"$HS_BIN" -c "$C1" status >"$T/st.out" 2>&1
rc=$?
set -e
if grep '^WARN' "$T/st.out" | grep -F "$B/open1.key" | hs_has "restart would fail" &&
	grep -q 'daemon running' "$T/st.out"; then
	hs_ok "status of the running primary warns: $(grep -F "$B/open1.key" "$T/st.out")"
else
	hs_bad "status of the running primary (exit $rc) does not warn:"
	sed 's/^/     | /' "$T/st.out"
fi
echo "after the refused reload" >"$T/src/install/after-reload"
hs_wait_same "the primary replicates with the identity it loaded" 60 $SOURCES
cp "$T/mn1-good.conf" "$C1"
hs_signal TERM "$PRIMARY_PID"
hs_wait_gone "$PRIMARY_PID" 150 || hs_fail "the primary did not stop"

# ------------------------------------------------------------ nothing lost
echo "== the good identity still works"
hs_sync
hs_sync_check "sync exits 0, standby identical" $SOURCES
kill -0 "$STANDBY_PID" && hs_ok "the standby daemon stayed up" ||
	hs_bad "the standby daemon died"

hs_result test_identity
