#!/usr/bin/env bash
# Databases in the daemons, SQLite (issue 17, the guide's check 5.1.9):
# an xCAT-like /etc/xcat whose *.sqlite files the [path] set excludes and
# a [database xcatdb] snapshots.  With restore = on-promote the snapshot
# waits in the standby's state_dir/db/xcatdb and no raw database file
# reaches its copy of the set; after a reload with restore = continuous a
# node row added on the primary is queryable in the standby's restored
# file within a bounded wait.  Status on both nodes shows the database
# (state, snapshot, counts) and not its set in `paths`; promote_ready
# counts it.  Snapshots go on across a reload of the primary.  An idle
# database costs no dump.  A standby without the [database] refuses its
# set and says so in its log and status.  A stopped daemon's status
# keeps the databases.
#
# Host changes: none.  Every wait is bounded.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

hs_init dbsqlite
S=$T/src
X=$S/etc/xcat
mkdir -p "$X/cert"
echo "CERT" >"$X/cert/server-cert.pem"
printf 'XCATROOT=/opt/xcat\n' >"$X/xcat.conf"
sqlite3 "$X/site.sqlite" \
	"CREATE TABLE site(key TEXT PRIMARY KEY, value TEXT);
	 INSERT INTO site VALUES('master', '10.0.0.1');"
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
# The standby's copy: the set's files, and the restored databases.
R=$T/standby$X
# The database as status shows it; `d` is the status object.
DB='[x for x in d["databases"] if x["name"] == "xcatdb"][0]'
NOSET='all(p["name"] != "db:xcatdb" for p in d["paths"])'

# nodes_in FILE: the node names of the nodelist table of FILE.
nodes_in() {
	sqlite3 "$1" "SELECT node FROM nodelist ORDER BY node" 2>/dev/null |
		tr '\n' ' ' || true
}

# wait_node NAME SECONDS FILE NODE: until FILE's nodelist has NODE.
wait_node() {
	local i t0
	t0=$(hs_now_ms)
	for ((i = 0; i < $2 * 10; i++)); do
		if nodes_in "$3" | hs_has -w "$4"; then
			hs_ok "$1 (in $(($(hs_now_ms) - t0)) ms)"
			return 0
		fi
		sleep 0.1
	done
	hs_bad "$1: after $2 s, $3 holds: $(nodes_in "$3")"
}

# wait_snapshot NAME SECONDS TEXT: until the standby's snapshot folder
# holds TEXT in its data files (and its manifest is there).
wait_snapshot() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		if [ -f "$T/state2/db/xcatdb/MANIFEST" ] &&
			grep -rqa --exclude=MANIFEST -- "$3" "$T/state2/db/xcatdb"; then
			hs_ok "$1"
			return 0
		fi
		sleep 0.1
	done
	hs_bad "$1: after $2 s, state_dir/db/xcatdb holds: $(ls -la "$T/state2/db/xcatdb" 2>&1 | tr '\n' ' ')"
}

# db_field CONF FIELD: the database's FIELD in the node's status.
db_field() {
	hs_status "$1" "$T/field.json"
	python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print([x for x in d["databases"] if x["name"] == "xcatdb"][0][sys.argv[2]])' \
		"$T/field.json" "$2" 2>/dev/null || echo "?"
}

# ------------------------------------------- 1. restore = on-promote
hs_start_standby
hs_start_primary
wait_snapshot "the snapshot reaches the standby's state_dir/db/xcatdb" 30 cn001
HS_COMPARE_EXCLUDE='*.sqlite*' hs_wait_same "etc-xcat replicated, promote ready" 60 "$X"
n=$(find "$R" -name '*.sqlite*' | wc -l)
if [ "$n" -eq 0 ]; then
	hs_ok "no raw database file in the standby's copy of the set"
else
	hs_bad "raw database files in the standby's copy: $(find "$R" -name '*.sqlite*')"
fi
hs_wait_status "primary: the database is ok, snapshot made" 30 "$C1" \
	"$DB[\"state\"] == \"ok\" and $DB[\"type\"] == \"sqlite\" and $DB[\"dumps\"] >= 1 and $DB[\"last_snapshot\"] is not None and $DB[\"bytes\"] > 0 and $DB[\"error\"] is None and $NOSET"
hs_wait_status "standby: the snapshot is held, not restored, promote ready" 30 "$C2" \
	"$DB[\"state\"] != \"error\" and $DB[\"last_snapshot\"] is not None and $DB[\"restores\"] == 0 and d[\"promote_ready\"][\"ready\"] and $NOSET"

# ------------------------------------------- 2. restore = continuous
echo "restore = continuous" >>"$C2"
hs_signal HUP "$STANDBY_PID"
hs_wait_log "$T/standby.log" "configuration reloaded" 1 10 ||
	hs_bad "the standby did not reload"
wait_node "after the reload, the standby restored the snapshot" 30 \
	"$R/nodelist.sqlite" cn001
sqlite3 "$X/nodelist.sqlite" "INSERT INTO nodelist VALUES('cn002', 'compute')"
wait_snapshot "a new node row reaches the standby's snapshot" 30 cn002
wait_node "... and its restored nodelist.sqlite (continuous)" 30 \
	"$R/nodelist.sqlite" cn002
if [ "$(sqlite3 "$R/site.sqlite" "SELECT value FROM site WHERE key = 'master'")" = 10.0.0.1 ]; then
	hs_ok "site.sqlite restored too"
else
	hs_bad "site.sqlite not restored: $(sqlite3 "$R/site.sqlite" .dump 2>&1 | head -3)"
fi
hs_wait_status "standby: restored, ok, promote ready" 30 "$C2" \
	"$DB[\"state\"] == \"ok\" and $DB[\"restores\"] >= 1 and $DB[\"last_restore\"] is not None and $DB[\"error\"] is None and d[\"promote_ready\"][\"ready\"]"
hs_wait_status "primary: a second snapshot" 30 "$C1" \
	"$DB[\"state\"] == \"ok\" and $DB[\"dumps\"] >= 2"
"$HS_BIN" -c "$C2" status >"$T/human.out" 2>&1 || true # a warning: exit 1
if hs_has "^database xcatdb .* ok .*sqlite, snapshot .*restores" "$T/human.out"; then
	hs_ok "the human status has a line for the database"
else
	hs_bad "human status: $(grep database "$T/human.out")"
fi

# ------------------------------------------- 3. the primary reloads
reloads=$(hs_count_log "$T/primary.log" "configuration reloaded")
hs_signal HUP "$PRIMARY_PID"
hs_wait_log "$T/primary.log" "configuration reloaded" $((reloads + 1)) 10 ||
	hs_bad "the primary did not reload"
sqlite3 "$X/nodelist.sqlite" "INSERT INTO nodelist VALUES('cn004', 'compute')"
wait_node "after the primary's reload, snapshots go on" 30 \
	"$R/nodelist.sqlite" cn004

# ------------------------------------------- 4. idle: no dump
# Settled first: a write the last probe caught half done costs one more
# snapshot (its files changed again since), then nothing.
hs_wait_status "primary settled" 30 "$C1" "$DB[\"state\"] == \"ok\""
before=$(db_field "$C1" dumps)
for ((i = 0; i < 30; i++)); do
	sleep 3
	now=$(db_field "$C1" dumps)
	[ "$now" = "$before" ] && break
	before=$now
done
restores=$(db_field "$C2" restores)
sleep 6 # six intervals
after=$(db_field "$C1" dumps)
if [ "$before" = "$after" ] && [ "$before" != "?" ]; then
	hs_ok "idle for 6 intervals: no dump ($after dumps)"
else
	hs_bad "idle database dumped: $before dumps, then $after"
fi
if [ "$(db_field "$C2" restores)" = "$restores" ]; then
	hs_ok "idle: no restore on the standby"
else
	hs_bad "idle: restores went from $restores to $(db_field "$C2" restores)"
fi

# ------------------------------------------- 5. a standby without it
hs_stop_standby
hs_forget "$STANDBY_PID"
C3=$T/mn2-nodb.conf
sed '/^\[database xcatdb\]/,$d' "$C2" >"$C3"
hs_start_standby "$C3"
# A new snapshot: the set goes out again.
sqlite3 "$X/nodelist.sqlite" "INSERT INTO nodelist VALUES('cn003', 'compute')"
hs_wait_log "$T/standby.log" "set db:xcatdb refused: set is not configured" 1 30 &&
	hs_ok "a standby without [database xcatdb] refuses its set (log)" ||
	hs_bad "no refusal in the standby's log"
hs_wait_status "... and says so in its status" 30 "$C3" \
	'd["promote_ready"]["ready"] is False and any("db:xcatdb" in w["text"] and "not configured" in w["text"] for w in d["warnings"]) and d["databases"] == []'
hs_wait_status "the primary's status names the refusal" 30 "$C1" \
	'any("db:xcatdb" in r for r in d["promote_ready"]["reasons"] + [w["text"] for w in d["warnings"]])'

# ------------------------------------------- 6. stopped: kept
# (dumps counts since the start, or since the reload)
hs_stop_primary
hs_forget "$PRIMARY_PID"
hs_expect_status "a stopped primary's status keeps the database" "$C1" \
	"d[\"daemon\"] == \"stopped\" and $DB[\"dumps\"] >= 1 and $DB[\"last_snapshot\"] is not None and $DB[\"snapshot_age_seconds\"] >= 0"

hs_result test_db_sqlite
