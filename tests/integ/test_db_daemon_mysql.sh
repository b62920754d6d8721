#!/usr/bin/env bash
# Databases in the daemons, MariaDB (issue 17, the guide's check 5.1.9):
# two real servers, one per node.  The primary's [database xcatdb]
# (type mysql) snapshots its server every second; the standby restores
# each snapshot into its own server (restore = continuous).
#   - a node row inserted on the primary's server is queryable in the
#     standby's server within a bounded wait; status on both nodes shows
#     the database ok with dumps and restores counted, and the standby
#     promote_ready;
#   - the standby's server stopped: the restore fails, status names the
#     error, the snapshot is kept; the server started again, the next
#     restore brings the rows in.
#
# Host changes: none (servers in $T, stopped by PID).  Every wait is
# bounded.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/db_lib.sh"
db_init dbdaemonmy

db_my_start 1
db_my_start 2
MYDB=mysql db_mysql 1 -e "CREATE DATABASE xcatdb"
db_mysql 1 -e "CREATE TABLE nodelist (node varchar(64) PRIMARY KEY,
	groups text) ENGINE=InnoDB; INSERT INTO nodelist VALUES ('cn001', 'compute')"
mkdir -p "$T/src/etc/xcat"
printf 'XCATROOT=/opt/xcat\n' >"$T/src/etc/xcat/xcat.conf"

hs_setup_pair "
[path etc-xcat]
source = $T/src/etc/xcat"
# Each node names its own server.
db_section() {
	printf '\n[database xcatdb]\ntype = mysql\ndsn = %s\ninterval = 1s\n' "$1"
}
db_section "${MY_DSN[1]}" >>"$C1"
db_section "${MY_DSN[2]}" >>"$C2"
echo "restore = continuous" >>"$C2"
DB='[x for x in d["databases"] if x["name"] == "xcatdb"][0]'

# nodes_on N: the node names in server N's nodelist (empty when none).
nodes_on() {
	db_mysql "$1" -e "SELECT node FROM nodelist ORDER BY node" \
		2>/dev/null | tr '\n' ' ' | sed 's/ $//' || true
}

# wait_node NAME SECONDS NODE: until the standby's server has NODE.
wait_node() {
	local i t0
	t0=$(hs_now_ms)
	for ((i = 0; i < $2 * 10; i++)); do
		if nodes_on 2 | hs_has -w "$3"; then
			hs_ok "$1 (in $(($(hs_now_ms) - t0)) ms)"
			return 0
		fi
		sleep 0.1
	done
	hs_bad "$1: after $2 s, the standby's nodelist: $(nodes_on 2)"
}

# ------------------------------------------- 1. the guide's check
hs_start_standby
hs_start_primary
wait_node "the first snapshot is restored into the standby's server" 30 cn001
db_mysql 1 -e "INSERT INTO nodelist VALUES ('cn002', 'compute')"
wait_node "a node row added on the primary is queryable on the standby" 15 cn002
hs_wait_status "primary: the database ok, dumps counted" 15 "$C1" \
	"${DB}[\"state\"] == \"ok\" and ${DB}[\"type\"] == \"mysql\" and ${DB}[\"dumps\"] >= 2 and ${DB}[\"bytes\"] > 0 and ${DB}[\"error\"] is None"
hs_wait_status "standby: the database ok, restores counted, promote ready" 15 "$C2" \
	"${DB}[\"state\"] == \"ok\" and ${DB}[\"restores\"] >= 2 and ${DB}[\"last_restore\"] is not None and ${DB}[\"error\"] is None and d[\"promote_ready\"][\"ready\"]"

# ------------------------------------------- 2. the standby's server down
pid2=$(cat "$T/my2/server.pid")
hs_stop_pid "$pid2" TERM 300 || hs_bad "my2 did not stop at once"
db_mysql 1 -e "INSERT INTO nodelist VALUES ('cn003', 'service')"
hs_wait_status "standby: a failed restore is an error naming the server" 20 "$C2" \
	"${DB}[\"state\"] == \"error\" and \"restore\" in ${DB}[\"error\"] and \"$T/my2/sock\" in ${DB}[\"error\"]"
if hs_has "database xcatdb: .*restore.*$T/my2/sock" "$T/standby.log"; then
	hs_ok "the standby's log names the failed restore"
else
	hs_bad "no failed restore in the standby's log: $(grep -i xcatdb "$T/standby.log" | tail -3)"
fi
if [ -f "$T/state2/db/xcatdb.good/MANIFEST" ]; then
	hs_ok "the good snapshot is kept"
else
	hs_bad "no good snapshot: $(ls "$T/state2/db" | tr '\n' ' ')"
fi

# The same server again: its dsn names the socket, any free port will do.
mariadbd --no-defaults --datadir="$T/my2/data" --socket="$T/my2/sock" \
	--port="$(hs_free_port)" --bind-address=127.0.0.1 --user=root \
	--pid-file="$T/my2/server.pid" --log-error="$T/my2/server.log" \
	--innodb-flush-log-at-trx-commit=2 --skip-log-bin \
	>>"$T/my2/server.log" 2>&1 &
DB_PIDS+=("TERM:$!")
HS_PIDS+=("$!")
# A failed restore is tried again within 30 s (or at the next snapshot).
wait_node "started again, the standby's server gets the new row" 40 cn003
hs_wait_status "standby: ok again, promote ready" 15 "$C2" \
	"${DB}[\"state\"] == \"ok\" and ${DB}[\"error\"] is None and d[\"promote_ready\"][\"ready\"]"
[ "$(nodes_on 2)" = "cn001 cn002 cn003" ] && hs_ok "all three rows, no others" ||
	hs_bad "the standby's nodelist: $(nodes_on 2)"

hs_result test_db_daemon_mysql
