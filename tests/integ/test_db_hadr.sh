#!/usr/bin/env bash
# Databases in the daemons, DB2 (issue 17): DB2 replicates itself with
# HADR; hamnsync reads `db2pd -d DB -hadr` and shows role, state, connect
# status and log gap in status.  DB2 cannot run here: the command_prefix
# of each node is a script that prints one of the db2pd samples of
# tests/unit/fixtures/db2 (the guide's and db2pd 10.5's).
#   - primary in PEER/CONNECTED: state ok, the hadr object, no warning;
#   - standby in REMOTE_CATCHUP: a warning, promote_ready false with the
#     reason, until its db2pd says PEER;
#   - primary disconnected: a warning naming the state, in the human
#     status too.
#
# Host changes: none.  Every wait is bounded.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

hs_init dbhadr
F=$top/tests/unit/fixtures/db2
S=$T/src
mkdir -p "$S/data"
echo "hosts" >"$S/data/hosts"

# Stands for db2pd: the node's sample, named by the prefix's first word.
cat >"$T/db2fake.sh" <<'SH'
#!/bin/bash
out=$1
shift
[ "$1" = db2pd ] && exec cat "$out"
echo "$1: not here" >&2
exit 1
SH
chmod 755 "$T/db2fake.sh"
cp "$F/v105-primary-peer.txt" "$T/mn1.db2pd"
cp "$F/v105-standby-catchup.txt" "$T/mn2.db2pd"

hs_setup_pair "
[path data]
source = $S/data

[database xcatdb]
type = db2
database = XCATDB
instance = xcatdb
command_prefix = $T/db2fake.sh $T/NODE.db2pd
interval = 1s"
sed -i "s|$T/NODE.db2pd|$T/mn1.db2pd|" "$C1"
sed -i "s|$T/NODE.db2pd|$T/mn2.db2pd|" "$C2"
DB='[x for x in d["databases"] if x["name"] == "xcatdb"][0]'
HW='[w["text"] for w in d["warnings"] if "HADR" in w["text"]]'

hs_start_standby
hs_start_primary

hs_wait_status "primary: PEER/CONNECTED, ok, no HADR warning" 30 "$C1" \
	"$DB[\"type\"] == \"db2\" and $DB[\"state\"] == \"ok\" and $DB[\"hadr\"] == {\"role\": \"PRIMARY\", \"state\": \"PEER\", \"connect\": \"CONNECTED\", \"log_gap_bytes\": 0} and $HW == []"
hs_wait_status "standby: REMOTE_CATCHUP, a warning, not ready" 30 "$C2" \
	"$DB[\"hadr\"][\"role\"] == \"STANDBY\" and $DB[\"hadr\"][\"state\"] == \"REMOTE_CATCHUP\" and $DB[\"hadr\"][\"log_gap_bytes\"] == 1097728 and len($HW) == 1 and \"REMOTE_CATCHUP\" in $HW[0] and d[\"promote_ready\"][\"ready\"] is False and any(\"xcatdb\" in r and \"REMOTE_CATCHUP\" in r for r in d[\"promote_ready\"][\"reasons\"])"
# The standby's sample, in PEER: ready, no warning.
sed 's/= PRIMARY$/= STANDBY/' "$F/v105-primary-peer.txt" >"$T/mn2.db2pd.new"
mv "$T/mn2.db2pd.new" "$T/mn2.db2pd"
HS_COMPARE_EXCLUDE= hs_wait_same "standby in PEER: promote ready" 60 "$S/data"
hs_expect_status "standby: no HADR warning" "$C2" \
	"$DB[\"hadr\"][\"state\"] == \"PEER\" and $HW == [] and d[\"promote_ready\"][\"ready\"]"

cp "$F/v105-primary-disconnected.txt" "$T/mn1.db2pd"
hs_wait_status "primary: disconnected, a warning naming the state" 30 "$C1" \
	"$DB[\"hadr\"][\"state\"] == \"DISCONNECTED_PEER\" and len($HW) == 1 and \"DISCONNECTED_PEER\" in $HW[0] and \"DISCONNECTED\" in $HW[0]"
"$HS_BIN" -c "$C1" status >"$T/human.out" 2>&1 || true # WARNING: exit 1
if hs_has "^database xcatdb .* db2, HADR PRIMARY DISCONNECTED_PEER DISCONNECTED" "$T/human.out"; then
	hs_ok "the human status shows the HADR state"
else
	hs_bad "human status: $(grep -i 'database\|hadr' "$T/human.out")"
fi

hs_result test_db_hadr
