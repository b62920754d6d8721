#!/bin/bash
# test_rejoin_written.sh - rejoin on a node whose primary tenure never had
# an acknowledged run: what it holds as the old primary's standby wrote
# it, untouched since (regular files and symlinks alike), is not its own
# change and stays; only what it changed itself is moved aside (kept,
# listed), and the new primary then sends its versions back.  mn1's copy
# of P is P (target_root /), mn2's is under $T/standby.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

HS_NODE=${HS_TOOLS:-$top/build/bin}/hs-node

hs_init rejoin_written
hs_gen_tree "$T/src"
RH=$T/src/install/custom/install/rh
ln -s compute1.tmpl "$RH/latest.tmpl"
hs_setup_pair "$(hs_sets_for "$T/src")"
sed -i "s|^target_root = .*|target_root = /|" "$C1"
SOURCES=$(hs_all_sources "$T/src")
RESOLV=$T/src/etc/resolv.conf

# 1. The pair replicates, mn1 primary: mn2 writes every entry.
hs_start_standby
hs_start_primary
hs_wait_same "the pair replicates, mn1 primary" 60 $SOURCES
hs_stop_primary
hs_stop_standby

# 2. mn2 was promoted (epoch 1) and changed two entries, a symlink and a
# file, with no run of its own ever acknowledged; then mn1 was promoted
# at epoch 2, which fenced mn2.
ln -sfn compute2.tmpl "$T/standby$RH/latest.tmpl"
printf 'nameserver 10.0.0.2\n' >>"$T/standby$RESOLV"
SUM=$(sha256sum <"$T/standby$RESOLV")
"$HS_NODE" "$T/state2" primary 1 1 >/dev/null
"$HS_NODE" "$T/state1" primary 2 0 >/dev/null

hs_start_primary
"$HS_BIN" -c "$C2" daemon --foreground >>"$T/mn2.log" 2>&1 &
MN2_PID=$!
HS_PIDS+=("$MN2_PID")
hs_wait_status "mn2 runs as the fenced primary" 30 "$C2" \
	'd["role"] == "primary" and any("rejoin" in w["text"] for w in d["warnings"] if w["severity"] == "critical")'

# 3. rejoin on mn2: exactly its two changes go aside, whole.
set +e
"$HS_BIN" -c "$C2" rejoin >"$T/rj.out" 2>"$T/rj.err"
rc=$?
set -e
[ "$rc" -eq 0 ] && hs_ok "rejoin of mn2 exits 0" ||
	hs_bad "rejoin of mn2 exited $rc: $(cat "$T/rj.err")"
printf '%s\n' "$RESOLV" "$RH/latest.tmpl" | sort >"$T/list.want"
if diff -u "$T/list.want" "$T/state2/rejoin-2/LIST" >"$T/list.diff" 2>&1; then
	hs_ok "only mn2's own changes are listed, nothing it was sent"
else
	hs_bad "rejoin-2/LIST is not mn2's two changes: $(tr '\n' ' ' <"$T/list.diff")"
fi
K=$T/state2/rejoin-2
if [ "$(readlink "$K$RH/latest.tmpl")" = compute2.tmpl ] &&
	[ "$(sha256sum <"$K$RESOLV" 2>/dev/null)" = "$SUM" ]; then
	hs_ok "both changes are kept whole in rejoin-2"
else
	hs_bad "a change of mn2's was not kept: $(ls -lR "$K" | head -20)"
fi
for p in "$T/src/xcat/cert/current.pem" "$T/src/install/dangling"; do
	! [ -e "$K$p" ] && ! [ -L "$K$p" ] &&
		hs_ok "the symlink $p, as mn2 was sent it, is not moved aside" ||
		hs_bad "the symlink $p, as mn2 was sent it, was moved aside"
done
hs_expect_status "mn2 is a standby at epoch 2" "$C2" \
	'd["daemon"] == "running" and d["role"] == "standby" and d["epoch"] == 2'

# 4. mn1 sends its versions back: the pair is in sync, status says so.
STANDBY_PID=$MN2_PID hs_wait_same "the pair replicates again, mn1 primary" 60 $SOURCES
[ "$(readlink "$T/standby$RH/latest.tmpl")" = compute1.tmpl ] &&
	hs_ok "mn2's symlink points where mn1's does again" ||
	hs_bad "mn2's symlink was not replaced by mn1's"

hs_result test_rejoin_written
