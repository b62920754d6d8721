#!/usr/bin/env bash
# Databases in the daemons, failures (issue 17): each is a clear error in
# the log and in status, and the standby keeps its last good snapshot
# and its restored file.
#   - a dump command that fails and one that hangs: [database pgbad] of
#     type postgresql whose command_prefix is a script here that says why
#     and exits 1, or sleeps (timeout 2s: killed); no server is needed,
#     the change probe runs through the prefix;
#   - a snapshot truncated in transit: a data file of the primary's
#     snapshot cut short behind its manifest, shipped as it is;
#   - a restore that fails: the standby's restore folder read-only (a
#     bind mount in the standby's own mount namespace).
# After each, a new row still reaches the standby's restored file.
#
# Host changes: none (the read-only mount lives in the standby's mount
# namespace).  Every wait is bounded.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

hs_init dbfaults
S=$T/src
X=$S/etc/xcat
mkdir -p "$X"
printf 'XCATROOT=/opt/xcat\n' >"$X/xcat.conf"
sqlite3 "$X/nodelist.sqlite" \
	"CREATE TABLE nodelist(node TEXT PRIMARY KEY, groups TEXT);
	 INSERT INTO nodelist VALUES('cn001', 'compute');"

# Stands for psql and pg_dump: what $T/pgmode says.
cat >"$T/pgfake.sh" <<SH
#!/bin/bash
case \$(cat "$T/pgmode") in
hang) exec -a "hs-hang-$T" sleep 3600 ;;
*) echo "\$1: error: connection to server on socket \"$T/.s.PGSQL.5432\" failed: No such file or directory" >&2
   exit 1 ;;
esac
SH
chmod 755 "$T/pgfake.sh"
echo fail >"$T/pgmode"

hs_setup_pair "
[path etc-xcat]
source = $X
exclude = *.sqlite*

[database pgbad]
type = postgresql
dsn = host=$T dbname=xcatdb user=xcat
command_prefix = $T/pgfake.sh
interval = 1s
timeout = 2s

[database xcatdb]
type = sqlite
path = $X
interval = 1s"
echo "restore = continuous" >>"$C2"
R=$T/standby$X
DB='[x for x in d["databases"] if x["name"] == "xcatdb"][0]'
PG='[x for x in d["databases"] if x["name"] == "pgbad"][0]'

nodes_in() {
	sqlite3 "$1" "SELECT node FROM nodelist ORDER BY node" 2>/dev/null |
		tr '\n' ' ' || true
}

# wait_node NAME SECONDS FILE NODE: until FILE's nodelist has NODE.
wait_node() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		if nodes_in "$3" | hs_has -w "$4"; then
			hs_ok "$1"
			return 0
		fi
		sleep 0.1
	done
	hs_bad "$1: after $2 s, $3 holds: $(nodes_in "$3")"
}

# kept: the standby's good snapshot and restored file, hashed.
kept() {
	(cd "$T/state2/db" && find xcatdb.good -type f -print0 | sort -z |
		xargs -0r sha256sum) 2>/dev/null || true
	sha256sum "$R/nodelist.sqlite" 2>/dev/null || true
}

# hangs: how many of the hanging commands run now.
hangs() {
	{ pgrep -f "hs-hang-$T" || true; } | wc -l
}

hs_start_standby_ns
hs_start_primary
wait_node "baseline: the standby restored xcatdb" 60 "$R/nodelist.sqlite" cn001

# ------------------------------------------- 1. a dump command that fails
hs_wait_status "primary: pgbad in error, the command's own words" 30 "$C1" \
	"$PG[\"state\"] == \"error\" and \"No such file or directory\" in $PG[\"error\"] and any(\"pgbad\" in w[\"text\"] and \"No such file\" in w[\"text\"] for w in d[\"warnings\"])"
if grep "pgbad" "$T/primary.log" | hs_has "No such file or directory"; then
	hs_ok "primary log: pgbad's failure, in the command's words"
else
	hs_bad "primary log says nothing of pgbad's failure"
fi
hs_wait_status "primary: xcatdb unaffected" 30 "$C1" "$DB[\"state\"] == \"ok\""
hs_wait_status "standby: not ready, pgbad has no snapshot" 30 "$C2" \
	'd["promote_ready"]["ready"] is False and any("pgbad" in r for r in d["promote_ready"]["reasons"])'

# ------------------------------------------- 2. one that hangs
echo hang >"$T/pgmode"
hs_wait_status "primary: pgbad in error once the hung command is killed" 30 "$C1" \
	"$PG[\"state\"] == \"error\" and \"timed out\" in $PG[\"error\"]"
hs_status "$C1" "$T/hang.json"
echo "     pgbad: $(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print([x for x in d["databases"] if x["name"] == "pgbad"][0]["error"])' "$T/hang.json")"
most=0
for ((i = 0; i < 30; i++)); do
	n=$(hangs)
	[ "$n" -gt "$most" ] && most=$n
	sleep 0.2
done
if [ "$most" -eq 1 ]; then
	hs_ok "a hung command is killed at its timeout (at most $most at a time)"
else
	hs_bad "$most hung commands at once (1 wanted: probes hang, each killed at its timeout)"
fi
echo fail >"$T/pgmode"
for ((i = 0; i < 100 && $(hangs) > 0; i++)); do sleep 0.1; done
[ "$(hangs)" -eq 0 ] && hs_ok "no hung command left" ||
	hs_bad "$(hangs) hung commands left 10 s after the last"

# ------------------------------------------- 3. truncated in transit
# A new snapshot made while the standby is down, cut short behind its
# manifest: it arrives so when the standby is back.
before=$(kept)
hs_stop_pid "$STANDBY_PID" || hs_bad "standby did not stop"
dumps=$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print([x for x in d["databases"] if x["name"] == "xcatdb"][0]["dumps"])' \
	"$T/hang.json")
sqlite3 "$X/nodelist.sqlite" "INSERT INTO nodelist VALUES('cn009', 'compute')"
hs_wait_status "primary: a snapshot made while the standby is down" 30 "$C1" \
	"$DB[\"dumps\"] > $dumps and $DB[\"state\"] == \"ok\""
f=$(find "$T/state1/db/xcatdb" -maxdepth 1 -type f ! -name MANIFEST \
	! -name '.*' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
[ -n "$f" ] || hs_fail "no data file in the primary's snapshot"
truncate -s 100 "$f"
hs_start_standby_ns
hs_wait_status "standby: xcatdb in error, the snapshot does not match" 30 "$C2" \
	"$DB[\"state\"] == \"error\" and \"$(basename "$f")\" in $DB[\"error\"] and any(\"xcatdb\" in w[\"text\"] for w in d[\"warnings\"])"
if grep "xcatdb" "$T/standby.log" | hs_has -F "$(basename "$f")"; then
	hs_ok "standby log: the truncated snapshot, naming its file"
else
	hs_bad "standby log says nothing of the truncated snapshot"
fi
if [ "$(kept)" = "$before" ]; then
	hs_ok "the last good snapshot and restored file are kept"
else
	hs_bad "a truncated snapshot replaced the good one or the restore"
fi
if nodes_in "$R/nodelist.sqlite" | hs_has -w cn009; then
	hs_bad "the truncated snapshot's row was restored"
else
	hs_ok "the restored file is the last good one: $(nodes_in "$R/nodelist.sqlite")"
fi
sqlite3 "$X/nodelist.sqlite" "INSERT INTO nodelist VALUES('cn002', 'compute')"
wait_node "a new snapshot heals it" 30 "$R/nodelist.sqlite" cn002
hs_wait_status "standby: xcatdb ok again" 30 "$C2" "$DB[\"state\"] == \"ok\""

# ------------------------------------------- 4. a restore that fails
hs_in_standby_ns mount --bind "$R" "$R"
hs_in_standby_ns mount -o remount,bind,ro "$R"
before=$(sha256sum "$R/nodelist.sqlite")
sqlite3 "$X/nodelist.sqlite" "INSERT INTO nodelist VALUES('cn003', 'compute')"
hs_wait_status "standby: the restore fails, said in status" 30 "$C2" \
	"$DB[\"state\"] == \"error\" and \"ead-only\" in $DB[\"error\"]"
if grep "xcatdb" "$T/standby.log" | hs_has "ead-only"; then
	hs_ok "standby log: the failed restore and why"
else
	hs_bad "standby log says nothing of the failed restore"
fi
if [ "$(sha256sum "$R/nodelist.sqlite")" = "$before" ]; then
	hs_ok "the restored file is the previous one"
else
	hs_bad "a failed restore changed the restored file"
fi
if grep -rqa -- cn003 "$T/state2/db/xcatdb.good"; then
	hs_ok "the snapshot that failed to restore is the good one"
else
	hs_bad "the good snapshot lacks cn003"
fi
hs_in_standby_ns umount "$R"
sqlite3 "$X/nodelist.sqlite" "INSERT INTO nodelist VALUES('cn004', 'compute')"
wait_node "writable again: the next restore has every row" 30 \
	"$R/nodelist.sqlite" cn004
hs_wait_status "standby: xcatdb ok again" 30 "$C2" "$DB[\"state\"] == \"ok\""

hs_result test_db_faults
