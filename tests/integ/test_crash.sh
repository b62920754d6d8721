#!/usr/bin/env bash
# Deletions across crashes of the primary daemon.  The primary reaches the
# standby through hs-faultproxy (tests/tools), which can hold the
# standby's replies back while the primary's bytes still arrive: the
# standby applies what it was sent, and the primary has not heard so.
#   1. a rename applied on the standby (SET_RENAMES) while the run's
#      listing is held back; the renamed file is deleted on the primary,
#      which is then killed (SIGKILL): the restart must delete it there
#   2. one run deletes a file, makes a directory and sends a big file
#      slowed by bwlimit: the deletion and the directory are applied on
#      the standby, the primary is killed while the file streams, and the
#      directory is removed while it is down
#   3. a run that ends in errors (a standby file made immutable) also
#      makes a new file; the primary is killed and the file deleted
#      while it is down
# (test_crash_writer.sh runs the same checks with a writer that
# creates, changes, renames and deletes while the primary is killed six
# times.)
# After each restart, with no signal and no manual `sync`, the test waits
# (bounded) until the primary's status says in-sync, and the trees must
# then be equal (rsync -naiHAXc --numeric-ids --delete prints nothing).
# Meanwhile both nodes' `status --json` is polled: whenever the primary
# says in-sync or the standby says promote ready, the trees must already
# be equal.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HS_TOOLS=${HS_TOOLS:-$top/build/bin}
FAULTPROXY=$HS_TOOLS/hs-faultproxy
[ -x "$FAULTPROXY" ] || hs_fail "$FAULTPROXY not built"

hs_init crash
S=$T/src
W=$S/work
mkdir -p "$W/base" "$W/det" "$W/det2" "$W/churn"
# A base of files that never changes, so the writer's deletions (about
# 160 a minute) stay far below max_delete_percent of the set: the delete
# guard holding them back is not what this test is about.
for i in $(seq 1 2000); do echo "base $i" >"$W/base/f$i"; done
echo "renamed, then deleted while unacknowledged" >"$W/det/a"
for i in $(seq 1 5); do echo "det2 $i" >"$W/det2/x$i"; done
hs_setup_pair "
[path work]
source = $W"
sed -i 's/^peer_timeout = .*/peer_timeout = 4s/' "$C1" "$C2"
# Slow enough that a 24 MiB file takes seconds: the window of case 2.
sed -i 's/^peer_timeout = .*/&\nbwlimit = 4M/' "$C1"
grep -q "^bwlimit = 4M" "$C1" || hs_fail "could not write $C1"

PPORT=$(hs_free_port) || hs_fail "no free port"
[ "$PPORT" != "$PORT" ] || PPORT=$(hs_free_port)
C1P=$T/mn1-proxy.conf
sed "s/^peer = .*/peer = 127.0.0.1:$PPORT/" "$C1" >"$C1P"
grep -q "^peer = 127.0.0.1:$PPORT\$" "$C1P" || hs_fail "could not write $C1P"
"$FAULTPROXY" "$PPORT" "$PORT" 2>"$T/proxy.log" &
PROXY_PID=$!
HS_PIDS+=("$PROXY_PID")
hs_wait_log "$T/proxy.log" "listening on" 1 10 || hs_fail "proxy did not start"

start_primary() {
	"$HS_BIN" -c "$C1P" daemon --foreground >>"$T/primary.log" 2>&1 &
	PRIMARY_PID=$!
	HS_PIDS+=("$PRIMARY_PID")
}

crash_primary() {
	kill -9 "$PRIMARY_PID"
	hs_wait_gone "$PRIMARY_PID" 100 || hs_fail "primary $PRIMARY_PID survived SIGKILL"
}

# hold: toggle the proxy's hold of the standby's replies; the proxy's log
# says when it took effect.
HOLDS=0
hold() {
	HOLDS=$((HOLDS + 1))
	kill -WINCH "$PROXY_PID"
	hs_wait_log "$T/proxy.log" "hold" "$HOLDS" 10 || hs_fail "proxy: no hold"
}

# What a node's `status --json` says, one word: in-sync (every set, on
# the primary) or ready (promote_ready, on the standby), else "no".
cat >"$T/says.py" <<'PY'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception:
    print("no")
    sys.exit(0)
if j.get("role") == "primary":
    paths = j.get("paths") or []
    ok = paths and all(p.get("state") == "in-sync" for p in paths)
    print("in-sync" if ok else "no")
else:
    print("ready" if (j.get("promote_ready") or {}).get("ready") else "no")
PY
says() {
	"$HS_BIN" -c "$1" status --json >"$T/says.json" 2>/dev/null || true
	python3 "$T/says.py" "$T/says.json"
}

same() {
	[ -z "$(rsync -naiHAXc --numeric-ids --delete "$W/" "$T/standby$W/" 2>&1)" ]
}

# settle NAME SECONDS: poll both nodes' status and the trees until the
# primary says in-sync and the trees are equal; every status that says
# in-sync or ready while the trees differ is a lie (counted once).
settle() {
	local name=$1 secs=$2 i p s lied=0
	for ((i = 0; i < secs * 5; i++)); do
		p=$(says "$C1")
		s=$(says "$C2")
		if same; then
			if [ "$p" = in-sync ]; then
				[ $lied -eq 0 ] && hs_ok "$name: status honest while catching up"
				hs_ok "$name: in-sync and identical after $((i / 5)) s"
				return 0
			fi
		elif [ "$p" = in-sync ] || [ "$s" = ready ]; then
			if [ $lied -eq 0 ]; then
				hs_bad "$name: primary says $p, standby says $s, while the trees differ:"
				rsync -naiHAXc --numeric-ids --delete "$W/" "$T/standby$W/" 2>&1 |
					head -10 | sed 's/^/     /'
			fi
			lied=1
		fi
		sleep 0.2
	done
	hs_bad "$name: not in-sync and identical after ${secs}s (primary: $p)"
	rsync -naiHAXc --numeric-ids --delete "$W/" "$T/standby$W/" 2>&1 | head -20 | sed 's/^/     /'
	return 0
}

# standby_alone: wait (bounded) until the standby no longer counts the
# killed primary's session as connected.
standby_alone() {
	local i
	for ((i = 0; i < 100; i++)); do
		"$HS_BIN" -c "$C2" status --json >"$T/alone.json" 2>/dev/null || true
		python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["peer"]["state"] != "connected" else 1)' \
			"$T/alone.json" 2>/dev/null && return 0
		sleep 0.1
	done
	hs_fail "the standby still counts the killed primary as connected"
}

hs_start_standby
start_primary
settle "seed" 60

# --- 1. rename applied on the standby, unacknowledged, then deleted ----
hold
mv "$W/det/a" "$W/det/b"
for ((i = 0; i < 300; i++)); do
	[ -e "$T/standby$W/det/b" ] && [ ! -e "$T/standby$W/det/a" ] && break
	sleep 0.1
done
[ -e "$T/standby$W/det/b" ] || hs_fail "the standby never applied the rename"
hs_ok "the rename is applied on the standby while its run waits"
rm "$W/det/b"
crash_primary
hold
standby_alone
start_primary
settle "renamed, deleted, killed before the acknowledgement" 60
[ ! -e "$T/standby$W/det/b" ] && hs_ok "the renamed and deleted file is gone from the standby" ||
	hs_bad "det/b, renamed then deleted on the primary, stays on the standby"

# --- 2. a run applied in part on the standby, never acknowledged ----------
# One run deletes det2/x1, makes det2/a-dir and sends a big file, slowed
# by bwlimit: the deletion and the directory are applied on the standby
# at once, and the primary is killed while the big file still streams.
# While it is down, the new directory goes away again.
head -c $((24 * 1024 * 1024)) /dev/urandom >"$T/z-big"
kill -STOP "$PRIMARY_PID" # the changes go out as one run
rm "$W/det2/x1"
mkdir "$W/det2/a-dir"
echo "made by an unacknowledged run" >"$W/det2/a-dir/f"
mv "$T/z-big" "$W/det2/z-big"
kill -CONT "$PRIMARY_PID"
for ((i = 0; i < 300; i++)); do
	[ ! -e "$T/standby$W/det2/x1" ] && [ -d "$T/standby$W/det2/a-dir" ] && break
	sleep 0.1
done
[ ! -e "$T/standby$W/det2/x1" ] && [ -d "$T/standby$W/det2/a-dir" ] ||
	hs_fail "the standby never applied the deletion and the new directory"
[ -e "$T/standby$W/det2/z-big" ] && hs_fail "the big file arrived too soon"
hs_ok "deletion and new directory applied on the standby, the run unacknowledged"
crash_primary
rm -r "$W/det2/a-dir"
rm "$W/det2/x2"
standby_alone
start_primary
settle "run applied in part, killed, its directory removed" 90
[ ! -e "$T/standby$W/det2/a-dir" ] && hs_ok "the directory made by the lost run is gone" ||
	hs_bad "det2/a-dir, made by an unacknowledged run and removed, stays on the standby"

# --- 3. a run that ends in errors, then a deletion while down ------------
# The standby cannot replace err/locked (immutable there), so the run that
# also makes err/new1 ends in errors; what it touched must not be taken
# for absent from the standby.  err/new1 is deleted while the primary is
# down: the restart must delete it there.
mkdir "$W/err"
echo "locked v1" >"$W/err/locked"
settle "before the failing run" 60
chattr +i "$T/standby$W/err/locked" || hs_fail "chattr +i on the standby copy"
errs=$(grep -c "errors, .* deletions held" "$T/primary.log" || true)
kill -STOP "$PRIMARY_PID" # one run for both
echo "new, in a run that ends in errors" >"$W/err/new1"
echo "locked v2, cannot replace the standby's" >"$W/err/locked"
kill -CONT "$PRIMARY_PID"
hs_wait_log "$T/primary.log" "errors, .* deletions held" $((errs + 1)) 30 ||
	{ chattr -i "$T/standby$W/err/locked"; hs_fail "the run did not end in errors"; }
[ -e "$T/standby$W/err/new1" ] || { chattr -i "$T/standby$W/err/locked"; hs_fail "err/new1 did not arrive"; }
chattr -i "$T/standby$W/err/locked"
hs_ok "a run ended in errors, err/new1 on the standby"
crash_primary
rm "$W/err/new1"
standby_alone
start_primary
settle "run with errors, its new file deleted while down" 60
[ ! -e "$T/standby$W/err/new1" ] && hs_ok "the new file of the failed run is gone from the standby" ||
	hs_bad "err/new1, made by a run with errors and deleted while down, stays on the standby"

if grep -q "paths differ from the index" "$T/primary.log"; then
	grep "paths differ from the index\|reconciling every set whole" "$T/primary.log" |
		tail -8 | sed 's/^/     /'
fi
kill -0 "$STANDBY_PID" && hs_ok "the standby kept running" || hs_bad "the standby died"
hs_result crash
