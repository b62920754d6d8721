#!/usr/bin/env bash
# Drift on the standby (SPEC.md "Drift on the standby is seen"): the
# standby keeps a record (stat fingerprint + content hash) of every file it
# writes.  Before replication replaces or removes a file that something
# else than hamnsync changed on the standby, that version is kept under
# state_dir/drift/ with one line in the standby's log, and `status` on the
# standby warns.  Files hamnsync wrote and nobody touched (edits, chmod,
# hard links, renames) are never taken for drift.  After each round the
# trees must be identical (hs_compare: rsync -naiHAXc as the oracle), as
# the sync (exit 0, the standby's last_applied) or status said first.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# kept_as NAME SHA: the newest drift copy of NAME holds content SHA
kept_as() {
	local k
	k=$(find "$T/state2/drift" -type f -name "$1.*" 2>/dev/null | tail -1 || true)
	KEPT=${k#$T/}
	[ -n "$k" ] && [ "$(sha256sum <"$k")" = "$2" ]
}

hs_init drift
D=$T/src/data
mkdir -p "$D/sub" "$T/standby$D/sub"
printf '10.0.0.%d node%d\n' $(seq 1 200 | awk '{ print $1, $1 }') >"$D/hosts"
echo "template" >"$D/sub/tmpl"
echo "secret" >"$D/sub/cred" && chmod 600 "$D/sub/cred"
echo "to be deleted" >"$D/gone"
echo "linked" >"$D/link-a" && ln "$D/link-a" "$D/link-b"
echo "renamed" >"$D/old-name"
# On the standby before hamnsync ever wrote it (an rsync-era copy): no
# record, so it cannot be told from ours and is replaced without a copy.
echo "pre-existing standby copy" >"$T/standby$D/sub/tmpl"
hs_setup_pair "
[path data]
source = $D"
hs_start_standby

hs_sync_rc 0 "seed"
hs_sync_check "seed: trees equal" "$D"
[ "$(hs_drift_copies)" -eq 0 ] && hs_ok "seed: a file without a record is not drift" ||
	hs_bad "seed: $(hs_drift_copies) drift copies of files hamnsync never wrote"

# 1. our own writes are never drift: edits, chmod, links, renames
echo "edited" >>"$D/hosts"
hs_sync_rc 0 "edit"
chmod 640 "$D/sub/cred"
hs_sync_rc 0 "chmod"
echo "edited after chmod" >>"$D/sub/cred"
echo "one of two links" >>"$D/link-a"
mv "$D/old-name" "$D/new-name"
hs_sync_rc 0 "edit after chmod, link, rename"
echo "again" >>"$D/new-name"
echo "again" >>"$D/link-b"
hs_sync_rc 0 "edit after rename"
hs_sync_check "own writes: trees equal" "$D"
if [ "$(hs_drift_copies)" -eq 0 ] && [ "$(hs_drift_lines)" -eq 0 ]; then
	hs_ok "own writes (edit, chmod, hard link, rename): no drift seen"
else
	hs_bad "own writes taken for drift: $(hs_drift_copies) copies, $(hs_drift_lines) lines"
	grep "changed on this standby" "$T/standby.log" | head -5
fi

# 2. a standby copy edited behind hamnsync's back, then the primary's
echo "added on the standby by hand" >>"$T/standby$D/hosts"
drifted=$(sha256sum <"$T/standby$D/hosts")
echo "next primary edit" >>"$D/hosts"
hs_sync_rc 0 "overwrite of a drifted file"
hs_sync_check "drift: the standby ends equal to the primary" "$D"
if kept_as hosts "$drifted"; then
	hs_ok "drift: the standby's version kept at $KEPT"
else
	hs_bad "drift: no copy of the standby's version of hosts under drift/"
fi
[ "$(hs_drift_lines)" -eq 1 ] && hs_ok "drift: one line in the standby's log" ||
	hs_bad "drift: $(hs_drift_lines) log lines, wanted 1"

# 3. a drifted file the primary deletes: kept before it goes
echo "standby-only change" >>"$T/standby$D/gone"
drifted=$(sha256sum <"$T/standby$D/gone")
rm "$D/gone"
hs_sync_rc 0 "delete of a drifted file"
hs_sync_check "drift delete: trees equal" "$D"
if kept_as gone "$drifted"; then
	hs_ok "drift delete: the standby's version kept at $KEPT"
else
	hs_bad "drift delete: no copy under drift/"
fi

# 4. status on the standby warns about the kept versions (Nagios 1)
set +e
"$HS_BIN" -c "$C2" status --json >"$T/status.json" 2>"$T/status.err"
src=$?
set -e
if [ "$src" -eq 1 ] && python3 - "$T/status.json" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
w = [x for x in st["warnings"] if "changed on this standby" in x["text"]]
sys.exit(0 if w and w[0]["severity"] == "warning" and
         w[0]["text"].startswith("2 ") else 1)
PY
then
	hs_ok "status on the standby warns (exit 1): 2 versions kept"
else
	hs_bad "status: exit $src, $(cat "$T/status.json" "$T/status.err")"
fi

# 5. after the drift is repaired the file is ours again: no new copy
echo "one more primary edit" >>"$D/hosts"
hs_sync_rc 0 "edit after drift"
hs_sync_check "edit after drift: trees equal" "$D"
[ "$(hs_drift_copies)" -eq 2 ] && hs_ok "after the repair, edits are not drift again" ||
	hs_bad "after the repair: $(hs_drift_copies) drift copies, wanted 2"

# 6. drift is kept by the daemon too (a scoped run, not only sync)
hs_start_primary
for ((i = 0; i < 100; i++)); do
	grep -q "in sync\|reconciled" "$T/primary.log" 2>/dev/null && break
	sleep 0.1
done
# a first change opens the set in this session (blind runs need that)
echo "first daemon edit" >>"$D/hosts"
hs_wait_same "daemon: the first edit arrives" 10 "$D"
echo "standby edit while the daemon runs" >>"$T/standby$D/sub/cred"
drifted=$(sha256sum <"$T/standby$D/sub/cred")
echo "primary edit while the daemon runs" >>"$D/sub/cred"
hs_wait_same "daemon: the primary's edit replaces the drifted copy" 10 "$D"
if kept_as cred "$drifted"; then
	hs_ok "daemon: drifted copy kept, then replaced by the primary's"
else
	hs_bad "daemon: drift of sub/cred not kept"
fi
hs_signal TERM "$PRIMARY_PID"
hs_wait_gone "$PRIMARY_PID" 100 || hs_bad "primary did not stop"
# That edit of a small file the standby acknowledged went blind (no
# listing round trip, send.c blind_ok): drift is still seen, by the standby.
blind=$(sed -n 's/.*stopped after [0-9]* reconciliations (\([0-9]*\) without a listing).*/\1/p' \
	"$T/primary.log" | tail -1)
[ "${blind:-0}" -ge 1 ] && hs_ok "daemon: $blind scoped run(s) without a listing" ||
	hs_bad "daemon: no scoped run went without a listing: $(grep 'stopped after' "$T/primary.log")"

hs_result drift
