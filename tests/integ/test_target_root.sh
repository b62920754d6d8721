#!/usr/bin/env bash
# A node's copy of a replicated path P is target_root + P in both roles
# (SPEC.md, Failover).  mn1 (target_root /) holds P, mn2 holds
# $T/standby + P.  After mn2 is promoted (the primary killed, then
# `promote --force`), mn2 watches and sends $T/standby + P, and dumps its
# SQLite database from $T/standby + path: a new file and an edit made
# there, and a row added to its database, reach mn1's P and mn1's
# snapshot once mn1 rejoins.  What only mn1's P holds (written after the
# kill) never appears in mn2's copy: it is moved aside by the rejoin.
# Status is checked on both nodes; the trees are compared with rsync.
#
# Host changes: none.  Every wait is bounded.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
HS_NODE=${HS_TOOLS:-$top/build/bin}/hs-node

hs_init target_root
D=$T/src/data # P: mn1's copy
D2=$T/standby$D # mn2's copy of P
B=$T/src/db # the database's path on both nodes
B2=$T/standby$B
mkdir -p "$D/sub" "$B"
for i in $(seq 1 10); do echo "file $i" >"$D/sub/f$i"; done
echo "kept as is" >"$D/keep"
sqlite3 "$B/site.sqlite" \
	"CREATE TABLE site(key TEXT PRIMARY KEY, value TEXT);
	 INSERT INTO site VALUES('master', 'mn1');"
hs_setup_pair "
[path data]
source = $D

[database xcatdb]
type = sqlite
path = $B
interval = 1s"
grep -q "^target_root = /\$" "$C1" && grep -q "^target_root = $T/standby\$" "$C2" ||
	hs_fail "hs_conf: mn1's target_root is not /, or mn2's not $T/standby"

# same NAME: mn1's P equals mn2's copy (rsync prints nothing).
same() { [ -z "$(rsync -naiHAXc --numeric-ids --delete "$D2/" "$D/" 2>&1)" ]; }

# 1. Replicate: mn2's copy of P is $T/standby + P.
hs_start_standby
hs_start_primary
hs_wait_same "the pair replicates into mn2's target_root" 60 "$D"
[ "$HS_SAME" -eq 1 ] || hs_fail "no seed, giving up"
for ((i = 0; i < 300; i++)); do
	[ -f "$T/state2/db/xcatdb/MANIFEST" ] && break
	sleep 0.1
done
[ -f "$T/state2/db/xcatdb/MANIFEST" ] ||
	hs_fail "the database snapshot did not reach the standby"

# 2. The primary dies; something is written at mn1's P only.
hs_stop_pid "$PRIMARY_PID" KILL || hs_fail "the primary did not die"
echo "only at mn1's P, after the kill" >"$D/only-mn1"
set +e
"$HS_BIN" -c "$C2" promote --force >"$T/promote.out" 2>"$T/promote.err"
rc=$?
set -e
if [ "$rc" -eq 0 ] && [ "$("$HS_NODE" "$T/state2")" = "primary 1 0" ]; then
	hs_ok "promote --force: mn2 is primary at epoch 1"
else
	hs_bad "promote exited $rc ($("$HS_NODE" "$T/state2")): $(cat "$T/promote.out" "$T/promote.err")"
	hs_result test_target_root || exit 1
fi
if [ "$(sqlite3 "$B2/site.sqlite" "SELECT value FROM site" 2>&1)" = mn1 ]; then
	hs_ok "promote restored the database into mn2's target_root"
else
	hs_bad "$B2/site.sqlite: $(sqlite3 "$B2/site.sqlite" .dump 2>&1 | head -3)"
fi

# 3. The new primary's own changes, in its copy.
echo "made on mn2 as the new primary" >"$D2/new-on-mn2"
echo "edited on mn2" >"$D2/sub/f3"
sqlite3 "$B2/site.sqlite" "INSERT INTO site VALUES('promoted', 'mn2');"
hs_wait_status "the new primary runs, at epoch 1" 30 "$C2" \
	'd["role"] == "primary" and d["epoch"] == 1 and d["daemon"] == "running"'
if [ -e "$D2/only-mn1" ]; then
	hs_bad "mn1's P leaked into mn2's copy before the rejoin"
else
	hs_ok "nothing of mn1's P is in mn2's copy"
fi

# 4. mn1 comes back, is fenced, and rejoins with its daemon running.
hs_start_primary
hs_wait_status "mn1 meets the primary of epoch 1 and is fenced" 60 "$C1" \
	'd["role"] == "primary" and any("rejoin" in w["text"] for w in d["warnings"])'
set +e
"$HS_BIN" -c "$C1" rejoin >"$T/rj.out" 2>"$T/rj.err"
rc=$?
set -e
if [ "$rc" -eq 0 ] && hs_has "role: done .*the daemon runs as standby" "$T/rj.out"; then
	hs_ok "rejoin: exit 0, the daemon runs as standby"
else
	hs_bad "rejoin exited $rc: $(cat "$T/rj.out" "$T/rj.err")"
fi
K=$T/state1/rejoin-1
if [ "$(cat "$K$D/only-mn1" 2>&1)" = "only at mn1's P, after the kill" ] &&
	[ ! -e "$D/only-mn1" ]; then
	hs_ok "mn1's own file is moved aside under rejoin-1"
else
	hs_bad "rejoin-1: $(find "$K" -type f 2>&1 | tr '\n' ' ')"
fi

# 5. The trees converge, from mn2's copy to mn1's P.
hs_wait_status "the new primary says in-sync" 90 "$C2" \
	'd["role"] == "primary" and d["epoch"] == 1 and all(p["state"] == "in-sync" for p in d["paths"]) and d["lag"]["files_pending"] == 0'
for ((i = 0; i < 300; i++)); do same && break; sleep 0.1; done
if same; then
	hs_ok "mn1's P equals mn2's copy (rsync oracle)"
else
	hs_bad "trees differ: $(rsync -naiHAXc --numeric-ids --delete "$D2/" "$D/" 2>&1 | head -5)"
fi
if [ "$(cat "$D/new-on-mn2" 2>&1)" = "made on mn2 as the new primary" ] &&
	[ "$(cat "$D/sub/f3" 2>&1)" = "edited on mn2" ] &&
	[ "$(cat "$D/keep" 2>&1)" = "kept as is" ]; then
	hs_ok "the new file and the edit reached mn1's P"
else
	hs_bad "mn1's P: new-on-mn2 '$(cat "$D/new-on-mn2" 2>&1)', f3 '$(cat "$D/sub/f3" 2>&1)'"
fi
[ ! -e "$D2/only-mn1" ] && hs_ok "only-mn1 never reached mn2's copy" ||
	hs_bad "only-mn1 is in mn2's copy"
hs_expect_status "mn1 runs as standby at epoch 1" "$C1" \
	'd["role"] == "standby" and d["epoch"] == 1 and d["daemon"] == "running" and not any(w["severity"] == "critical" for w in d["warnings"])'

# 6. mn1's snapshot is mn2's database, dumped from mn2's target_root.
got=
for ((i = 0; i < 300; i++)); do
	f=$T/state1/db/xcatdb/site.sqlite
	got=$(sqlite3 "file:$f?immutable=1" \
		"SELECT value FROM site WHERE key = 'promoted'" 2>/dev/null || true)
	[ "$got" = mn2 ] && break
	sleep 0.1
done
if [ "$got" = mn2 ]; then
	hs_ok "mn1's snapshot holds the row added to mn2's copy of the database"
else
	hs_bad "mn1's snapshot: $(ls "$T/state1/db/xcatdb" 2>&1 | tr '\n' ' ')"
fi
if [ "$(sqlite3 "$B/site.sqlite" "SELECT count(*) FROM site" 2>&1)" = 1 ]; then
	hs_ok "mn1's own database at path is left alone"
else
	hs_bad "$B/site.sqlite: $(sqlite3 "$B/site.sqlite" .dump 2>&1 | head -3)"
fi

hs_result test_target_root
