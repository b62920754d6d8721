#!/usr/bin/env bash
# Demo: install what is needed, build, then run a standby and a primary on
# 127.0.0.1 with temporary state, replicate a generated sample tree and
# show what happened.  Everything is removed at the end.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh" plain >/dev/null
. "$top/tests/integ/lib.sh"

hs_init demo
echo "== demo folder: $T"
hs_gen_tree "$T/src"
hs_setup_pair "$(hs_sets_for "$T/src")"
echo "== keys: mn1 $FP1"
echo "          mn2 $FP2"
hs_start_standby
echo "== standby mn2 listening on 127.0.0.1:$PORT, target_root $T/standby"

echo "== first sync (seed)"
hs_sync
cat "$T/sync.out" "$T/sync.err"
[ "$SYNC_RC" -eq 0 ] || hs_fail "sync exited $SYNC_RC"
hs_compare $(hs_all_sources "$T/src") && echo "== trees identical (rsync -naiHAXc finds nothing)"

echo "== changing the primary: edit hosts, delete a postscript, add a file"
echo "10.0.9.9 newnode" >>"$T/src/etc/hosts"
rm "$T/src/install/postscripts/script40"
echo new >"$T/src/install/postscripts/new-script"
hs_sync --dry-run
echo "-- dry run:"
cat "$T/sync.out"
hs_sync
cat "$T/sync.out" "$T/sync.err"
hs_compare $(hs_all_sources "$T/src") && echo "== trees identical again"
echo "== standby log:"
sed 's/^/   /' "$T/standby.log"
hs_stop_standby
echo "== demo done"
