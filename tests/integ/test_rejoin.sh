#!/usr/bin/env bash
# `hamnsync rejoin` (SPEC.md "Failover"): a former primary becomes the
# standby of the node that replaced it.  Its own changes made after the
# fence, which the new primary never received, are moved into
# state_dir/rejoin-EPOCH/ and listed (stdout and LIST), its daemon runs as
# standby, and the new primary re-syncs the tree by deltas: only what
# differs travels.  Refused (exit 1, nothing moved, role unchanged) when
# the peer answers as a standby; exit 3 when it does not answer; a second
# rejoin says "already a standby" and exits 0.
#
# Each node holds its copy of the replicated paths at P (target_root /)
# inside a mount namespace of its own, where its tree ($T/n1 or $T/n2) is
# bound on $T/src: a primary reads P and a standby writes P, as on two
# machines, and the two trees stay apart.  The promote is staged with
# hs-node (stop the standby, store primary epoch 1, start it again).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
HS_TOOLS=${HS_TOOLS:-$top/build/bin}

hs_init rejoin
mkdir -p "$T/n1" "$T/n2"
hs_gen_tree "$T/n1"
# An xCAT database on both nodes (each primary snapshots its own).
for n in 1 2; do
	mkdir -p "$T/n$n/xcat/db"
	sqlite3 "$T/n$n/xcat/db/site.sqlite" \
		"CREATE TABLE site(key TEXT PRIMARY KEY, value TEXT);
		 INSERT INTO site VALUES('master', 'mn$n');"
done
HS_TARGET_ROOT=/ hs_setup_pair "$(hs_sets_for "$T/src")

[database xcatdb]
type = sqlite
path = $T/src/xcat/db
interval = 1s"
echo "metrics_file = $T/metrics2.prom" >"$T/metrics.line"
sed -i "/^peer_timeout/r $T/metrics.line" "$C2"

# node_daemon N CONF LOG: hs_ns_daemon (lib.sh); PID in DPID.
node_daemon() { hs_ns_daemon "$@"; }

# rejoin_mn1 [ARGS]: rejoin on node 1; RJ_RC, $T/rj.out and $T/rj.err.
rejoin_mn1() {
	set +e
	nsenter -t "$NS_1" -m "$HS_BIN" -c "$C1" rejoin "$@" >"$T/rj.out" \
		2>"$T/rj.err"
	RJ_RC=$?
	set -e
}

# tree_diff: the oracle: what rsync finds between the two nodes' copies
# of each replicated source (their parents are not replicated).
tree_diff() {
	local s
	for s in install xcat/ca xcat/cert; do
		rsync -naiHAXc --numeric-ids --delete "$T/n2/$s/" "$T/n1/$s/" 2>&1
	done
	for s in etc/hosts etc/resolv.conf; do
		rsync -naiHAXc --numeric-ids "$T/n2/$s" "$T/n1/$s" 2>&1
	done
}
same_trees() { [ -z "$(tree_diff)" ]; }

node1() { "$HS_TOOLS/hs-node" "$T/state1"; }

hs_ns_hold 1
hs_ns_hold 2
node_daemon 2 "$C2" "$T/standby.log"
STANDBY_PID=$DPID
hs_wait_log "$T/standby.log" "listening on" 1 30 ||
	hs_fail "standby did not start: $(tail -3 "$T/standby.log")"
node_daemon 1 "$C1" "$T/primary.log"
PRIMARY_PID=$DPID

# 1. The pair replicates: status says in-sync, then the trees are equal.
hs_wait_status "pair replicating" 90 "$C1" \
	'all(p["state"] == "in-sync" for p in d["paths"]) and d["lag"]["files_pending"] == 0'
if same_trees; then hs_ok "trees equal before the failover"; else
	hs_bad "trees differ before the failover"
	tree_diff | head
fi

# 2. The primary dies.  Its administrator edits it after the fence: a
# changed file, a new file, a deleted file.
hs_stop_pid "$PRIMARY_PID" KILL
P=$T/src/install
echo "edited on mn1 after the fence" >>"$T/n1/install/postscripts/script3"
echo "made on mn1 after the fence" >"$T/n1/install/local-new"
rm "$T/n1/install/custom/install/rh/compute2.tmpl"
SUM3=$(sha256sum <"$T/n1/install/postscripts/script3")
touch -d '2021-02-03 04:05:06.123456789' "$T/n1/install/postscripts/script3"
chown 4321:8765 "$T/n1/install/postscripts/script3"
STAT3=$(stat -c '%a %u %g %y' "$T/n1/install/postscripts/script3")
before=$(hs_snapshot "$T/n1")

# 3. Refused while the peer answers as a standby: exit 1, one line,
# nothing moved, role unchanged.
rejoin_mn1
if [ "$RJ_RC" -eq 1 ] && [ "$(grep -c '^hamnsync: ' "$T/rj.err")" -eq 1 ] &&
	hs_has "answers as standby at epoch 0: nothing to rejoin" "$T/rj.err"; then
	hs_ok "refused: the peer is a standby ($(grep '^hamnsync: ' "$T/rj.err"))"
else
	hs_bad "rejoin with a standby peer: exit $RJ_RC: $(cat "$T/rj.out" "$T/rj.err")"
fi
if [ "$(hs_snapshot "$T/n1")" = "$before" ] &&
	! ls -d "$T"/state1/rejoin-* >/dev/null 2>&1 &&
	[ "$(node1)" = "primary 0 0" ]; then
	hs_ok "refused: nothing moved, role unchanged ($(node1))"
else
	hs_bad "refused, but something changed: $(node1)"
fi

# 4. The peer does not answer: exit 3, naming it.
hs_stop_pid "$STANDBY_PID"
rejoin_mn1
if [ "$RJ_RC" -eq 3 ] && hs_has "peer mn2 (127.0.0.1:$PORT) did not answer" \
	"$T/rj.err"; then
	hs_ok "peer unreachable: exit 3 ($(grep '^hamnsync: ' "$T/rj.err"))"
else
	hs_bad "rejoin with no peer: exit $RJ_RC: $(cat "$T/rj.out" "$T/rj.err")"
fi
if [ "$(hs_snapshot "$T/n1")" = "$before" ] && [ "$(node1)" = "primary 0 0" ]; then
	hs_ok "unreachable peer: nothing moved, role unchanged"
else
	hs_bad "unreachable peer, but something changed: $(node1)"
fi

# 5. The standby becomes the primary at epoch 1 and makes changes of its
# own: a new file, an edit.
"$HS_TOOLS/hs-node" "$T/state2" primary 1 0
node_daemon 2 "$C2" "$T/primary2.log"
NEWP_PID=$DPID
echo "made on mn2 as the new primary" >"$T/n2/install/new-on-mn2"
echo "10.9.9.9 added-by-mn2" >>"$T/n2/etc/hosts"
hs_wait_log "$T/primary2.log" "primary" 1 30 ||
	hs_fail "new primary did not start: $(tail -3 "$T/primary2.log")"

declare -A INO
for f in netboot/rhels9/x86_64/compute/rootimg.gz \
	netboot/rhels9/x86_64/compute/initrd.img; do
	INO[$f]=$(stat -c %i "$T/n1/install/$f")
done

# --dry-run: the plan, five numbered steps, and nothing changes.
before=$(hs_snapshot "$T/n1")
rejoin_mn1 --dry-run
if [ "$RJ_RC" -eq 0 ] && [ "$(grep -c '^  [1-5]\. ' "$T/rj.out")" -eq 5 ] &&
	[ "$(hs_snapshot "$T/n1")" = "$before" ] &&
	[ "$(node1)" = "primary 0 0" ] && ! ls -d "$T"/state1/rejoin-* >/dev/null 2>&1; then
	hs_ok "--dry-run: the plan in 5 steps, nothing changed"
else
	hs_bad "--dry-run: exit $RJ_RC: $(cat "$T/rj.out" "$T/rj.err")"
fi

# mn1's own snapshot, made as the primary of epoch 0.
[ -f "$T/state1/db/xcatdb/MANIFEST" ] ||
	hs_bad "mn1 had made no snapshot of its database"
: >"$T/state1/db/xcatdb/made-by-mn1"

# 6. rejoin with its daemon stopped, killed (SIGKILL, a failpoint) as
# its database step begins, then run again: it resumes there, exit 0;
# the changed and the new file are kept under rejoin-1 with their
# content and listed.
export HAMNSYNC_FAILPOINTS='failover.step=1*crash@4'
rejoin_mn1
unset HAMNSYNC_FAILPOINTS
cp "$T/rj.out" "$T/rj1.out"
sed 's/^/     /' "$T/rj1.out"
if [ "$RJ_RC" -eq 137 ] && hs_has "^rejoin: aside: done in" "$T/rj1.out" &&
	! hs_has "^rejoin: database" "$T/rj1.out"; then
	hs_ok "rejoin killed as the database step began"
else
	hs_bad "rejoin with a crash at step 4: exit $RJ_RC: $(cat "$T/rj.err")"
fi
rejoin_mn1
K=$T/state1/rejoin-1
if [ "$RJ_RC" -eq 0 ]; then hs_ok "rejoin again: exit 0"; else
	hs_bad "rejoin: exit $RJ_RC: $(cat "$T/rj.out" "$T/rj.err")"
	hs_result test_rejoin || exit 1
fi
sed 's/^/     /' "$T/rj.out"
if [ "$(grep -c ': done before$' "$T/rj.out")" -eq 3 ] &&
	hs_has "^rejoin: resuming at database (interrupted before)" "$T/rj.out" &&
	! hs_has "moved aside" "$T/rj.out"; then
	hs_ok "it resumed at the database step; the aside was not run again"
else
	hs_bad "the resume: $(cat "$T/rj.out")"
fi
if [ "$(sha256sum <"$K$P/postscripts/script3")" = "$SUM3" ] &&
	[ "$(cat "$K$P/local-new")" = "made on mn1 after the fence" ]; then
	hs_ok "the changed and the new file are kept under rejoin-1"
	# $T/src is a mount of its own there: the move was a copy.
	if [ "$(stat -c '%a %u %g %y' "$K$P/postscripts/script3")" = "$STAT3" ] &&
		[ -z "$(find "$K" -name '*.hamnsync-tmp')" ]; then
		hs_ok "the copy kept mode, owner and times ($STAT3)"
	else
		hs_bad "mode, owner or times not kept: $(stat -c '%a %u %g %y' "$K$P/postscripts/script3") != $STAT3"
	fi
else
	hs_bad "not kept under rejoin-1: $(find "$K" -type f 2>&1 | head)"
fi
want=$(printf '%s\n' "$P/local-new" "$P/postscripts/script3")
if [ "$(cat "$K/LIST" 2>&1)" = "$want" ] &&
	[ "$(sed -n 's/^rejoin: moved aside: //p' "$T/rj1.out")" = "$want" ]; then
	hs_ok "listed in stdout and LIST, nothing else"
else
	hs_bad "list: LIST: $(head -5 "$K/LIST" 2>&1), stdout: $(grep 'moved aside' "$T/rj1.out" | head -5)"
fi
REJOINED=$(cat "$T/state1/hamnsync.pid" 2>/dev/null || true)
[ -n "$REJOINED" ] && HS_PIDS+=("$REJOINED")
hs_expect_status "the rejoined node runs as standby at epoch 1" "$C1" \
	'd["role"] == "standby" and d["epoch"] == 1 and d["daemon"] == "running"'

# 7. The trees converge (rsync prints nothing), as status says.
hs_wait_status "the new primary says in-sync" 90 "$C2" \
	'all(p["state"] == "in-sync" for p in d["paths"]) and d["lag"]["files_pending"] == 0 and d["role"] == "primary"'
for ((i = 0; i < 300; i++)); do same_trees && break; sleep 0.1; done
if same_trees; then hs_ok "trees identical after the rejoin (rsync oracle)"; else
	hs_bad "trees differ after the rejoin"
	tree_diff | head
fi
if [ "$(cat "$T/n1/install/new-on-mn2" 2>&1)" = "made on mn2 as the new primary" ] &&
	[ ! -e "$T/n1/install/local-new" ]; then
	hs_ok "the new primary's own changes reached the rejoined node"
else
	hs_bad "the new primary's changes did not reach the rejoined node"
fi

# Its database snapshot is the new primary's: its own went at the
# database step, and the new primary's arrives whole.
if hs_has "database: done .*removed the snapshots of 1 database" "$T/rj.out" &&
	[ ! -e "$T/state1/db/xcatdb/made-by-mn1" ]; then
	hs_ok "mn1's own database snapshot was removed"
else
	hs_bad "mn1's own database snapshot: $(grep database "$T/rj.out"; ls "$T/state1/db/xcatdb")"
fi
for ((i = 0; i < 300; i++)); do
	cmp -s "$T/state1/db/xcatdb/MANIFEST" "$T/state2/db/xcatdb/MANIFEST" &&
		break
	sleep 0.1
done
if cmp -s "$T/state1/db/xcatdb/MANIFEST" "$T/state2/db/xcatdb/MANIFEST"; then
	hs_ok "the new primary's database snapshot arrived"
else
	hs_bad "the new primary's database snapshot did not arrive"
fi

# 8. Deltas, not a copy: the big files that did not change were not
# written again (same inode: the standby replaces a file by a rename),
# and the new primary sent far less than the tree (its metrics, written
# every 2 s: a write after the convergence counts every byte of it).
for f in netboot/rhels9/x86_64/compute/rootimg.gz \
	netboot/rhels9/x86_64/compute/initrd.img; do
	if [ "$(stat -c %i "$T/n1/install/$f")" = "${INO[$f]}" ]; then
		hs_ok "install/$f was not written again"
	else
		hs_bad "install/$f was copied again"
	fi
done
size=$(du -sb "$T/n2" | cut -f1)
m0=$(stat -c %Y.%y "$T/metrics2.prom" 2>/dev/null || true)
for ((i = 0; i < 100; i++)); do
	[ "$(stat -c %Y.%y "$T/metrics2.prom" 2>/dev/null || true)" != "$m0" ] &&
		break
	sleep 0.1
done
sent=$(awk '/^hamnsync_sent_bytes_total/ { print int($2) }' \
	"$T/metrics2.prom" 2>/dev/null || true)
if [ -n "$sent" ] && [ "$sent" -gt 0 ] && [ "$sent" -lt $((size / 10)) ]; then
	hs_ok "the new primary sent $sent bytes for a tree of $size"
else
	hs_bad "the new primary sent ${sent:-?} bytes for a tree of $size"
fi

# 9. A second rejoin: already a standby, exit 0, nothing moved.
rejoin_mn1
if [ "$RJ_RC" -eq 0 ] &&
	hs_has "rejoin: this node is already a standby (epoch 1)" "$T/rj.out"; then
	hs_ok "second rejoin: $(cat "$T/rj.out")"
else
	hs_bad "second rejoin: exit $RJ_RC: $(cat "$T/rj.out" "$T/rj.err")"
fi

# 10. With its daemon running.  The roles swap back (mn1 the primary of
# epoch 2, mn2 its standby) and replicate; then mn2 is staged as the
# primary of epoch 3 while mn1's daemon runs on.  rejoin fences that
# daemon, moves its local edit aside, and the same process runs on as
# the standby of epoch 3.
hs_stop_pid "$REJOINED"
hs_stop_pid "$NEWP_PID"
"$HS_TOOLS/hs-node" "$T/state1" primary 2 0
"$HS_TOOLS/hs-node" "$T/state2" standby 2 0
node_daemon 2 "$C2" "$T/standby.log"
STANDBY_PID=$DPID
hs_wait_log "$T/standby.log" "listening on" 2 30 ||
	hs_fail "standby did not start: $(tail -3 "$T/standby.log")"
echo "a change while mn1 is the primary of epoch 2" >"$T/n1/install/epoch2"
node_daemon 1 "$C1" "$T/primary.log"
RUNNING=$DPID
hs_wait_status "mn1, the primary of epoch 2, replicates" 60 "$C1" \
	'd["role"] == "primary" and d["epoch"] == 2 and all(p["state"] == "in-sync" for p in d["paths"]) and d["lag"]["files_pending"] == 0'
if same_trees; then hs_ok "trees equal while mn1 is the primary of epoch 2"; else
	hs_bad "trees differ while mn1 is the primary of epoch 2"
fi
hs_stop_pid "$STANDBY_PID"
"$HS_TOOLS/hs-node" "$T/state2" primary 3 0
node_daemon 2 "$C2" "$T/primary3.log"
NEWP_PID=$DPID
hs_wait_status "mn1 meets the primary of epoch 3 and is fenced" 60 "$C1" \
	'any("rejoin" in w["text"] for w in d["warnings"])'
echo "made on mn1 while its daemon ran" >"$T/n1/install/round2-local"
rejoin_mn1
K=$T/state1/rejoin-3
if [ "$RJ_RC" -eq 0 ] && hs_has "the running daemon is fenced" "$T/rj.out" &&
	hs_has "role: done .*the daemon runs as standby" "$T/rj.out"; then
	hs_ok "rejoin with the daemon running: exit 0"
else
	hs_bad "rejoin with the daemon running: exit $RJ_RC: $(cat "$T/rj.out" "$T/rj.err")"
fi
if [ "$(cat "$K/LIST" 2>&1)" = "$P/round2-local" ] &&
	[ "$(cat "$K$P/round2-local" 2>&1)" = "made on mn1 while its daemon ran" ]; then
	hs_ok "the edit made while the daemon ran is kept under rejoin-3"
else
	hs_bad "rejoin-3: $(find "$K" -type f 2>&1 | tr '\n' ' ')"
fi
hs_expect_status "the same process runs as standby at epoch 3" "$C1" \
	'd["role"] == "standby" and d["epoch"] == 3 and d["daemon"] == "running"'
if [ "$(cat "$T/state1/hamnsync.pid" 2>/dev/null)" = "$RUNNING" ] &&
	hs_alive "$RUNNING"; then
	hs_ok "the same daemon process ($RUNNING) runs as standby"
else
	hs_bad "the daemon is not the same process"
fi
hs_wait_status "the primary of epoch 3 says in-sync" 60 "$C2" \
	'all(p["state"] == "in-sync" for p in d["paths"]) and d["lag"]["files_pending"] == 0'
for ((i = 0; i < 300; i++)); do same_trees && break; sleep 0.1; done
if same_trees; then hs_ok "trees identical after the second rejoin"; else
	hs_bad "trees differ after the second rejoin"
	tree_diff | head
fi

hs_result test_rejoin
