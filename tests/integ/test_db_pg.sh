#!/usr/bin/env bash
# The PostgreSQL driver against two real servers (primary's and
# standby's), one driver operation at a time through hs-dbdrv: the
# guide's check (a node row reaches the standby's server), a mark that
# moves on writes only, stable dumps, and each bad input giving a clear
# one-line error while the standby's live database keeps its rows.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/db_lib.sh"
db_init db_pg

db_pg_start 1
db_pg_start 2
PGDB=postgres db_psql 1 -c "CREATE DATABASE xcatdb"
db_psql 1 -c "CREATE TABLE nodelist (node text PRIMARY KEY, groups text)" \
	-c "INSERT INTO nodelist VALUES ('cn1', 'compute')"
db_conf "$T/p.conf" postgresql "${PG_DSN[1]}"
db_conf "$T/s.conf" postgresql "${PG_DSN[2]}"
mkdir "$T/d1" "$T/d2" "$T/d3"

echo "== the guide's check: dump, restore into the second server"
m0=$(db_mark "$T/p.conf")
db_drv "$T/p.conf" xcat dump "$T/d1" || hs_fail "dump: $DB_ERR"
# The first restore makes the standby's database: it had none.
db_drv "$T/s.conf" xcat restore "$T/d1" || hs_fail "restore: $DB_ERR"
[ "$(db_psql 2 -c "SELECT node FROM nodelist")" = cn1 ] ||
	hs_fail "cn1 not on the standby's server"

echo "== a read leaves the mark, a write moves it"
db_psql 1 -c "SELECT count(*) FROM nodelist" >/dev/null
db_psql 1 -c "SELECT * FROM nodelist WHERE node = 'cn1'" >/dev/null
[ "$(db_mark "$T/p.conf")" = "$m0" ] || hs_fail "a SELECT moved the mark"
db_psql 1 -c "INSERT INTO nodelist VALUES ('cn2', 'compute')"
m1=$(db_mark "$T/p.conf")
[ "$m1" != "$m0" ] || hs_fail "an INSERT left the mark at $m0"
db_psql 1 -c "UPDATE nodelist SET groups = 'compute,all' WHERE node = 'cn2'"
m2=$(db_mark "$T/p.conf")
[ "$m2" != "$m1" ] || hs_fail "an UPDATE left the mark at $m1"

echo "== the new row reaches the standby; a session there is ended"
db_drv "$T/p.conf" xcat dump "$T/d1" || hs_fail "dump: $DB_ERR"
# A client holding the live database open must not stop the swap.
db_psql 2 -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
sleeper=$!
for ((i = 0; ; i++)); do
	[ "$(PGDB=postgres db_psql 2 -c "SELECT count(*) FROM pg_stat_activity
		WHERE datname = 'xcatdb' AND query LIKE '%pg_sleep(60)%'
		AND pid <> pg_backend_pid()")" = 1 ] && break
	[ $i -lt 100 ] || hs_fail "the sleeping session did not start"
	sleep 0.1
done
db_drv "$T/s.conf" xcat restore "$T/d1" || hs_fail "restore: $DB_ERR"
wait "$sleeper" 2>/dev/null && hs_fail "the session on the old database lived on"
[ "$(db_psql 2 -c "SELECT node || ':' || groups FROM nodelist ORDER BY 1" |
	tr '\n' ' ')" = "cn1:compute cn2:compute,all " ] ||
	hs_fail "cn2 not on the standby's server"
[ "$(PGDB=postgres db_psql 2 -c "SELECT count(*) FROM pg_database
	WHERE datname LIKE 'xcatdb__hs%'")" = 0 ] ||
	hs_fail "a temporary database was left"

echo "== two dumps of the same data are the same bytes"
db_drv "$T/p.conf" xcat dump "$T/d2" || hs_fail "dump: $DB_ERR"
cmp "$T/d1/dump.sql" "$T/d2/dump.sql" || hs_fail "dumps differ"

echo "== the manager: a snapshot on the primary, restored on the standby"
db_psql 1 -c "INSERT INTO nodelist VALUES ('cn9', 'service')"
DB_EXTRA="interval = 1s" db_conf "$T/mp.conf" postgresql "${PG_DSN[1]}"
"$DBDRV" "$T/mp.conf" xcat run 60 >"$T/run.out" 2>>"$T/run.err" ||
	hs_fail "no snapshot on the primary: $(cat "$T/run.out")"
hs_has "^state=ok dumps=1 " <"$T/run.out" || hs_fail "primary: $(cat "$T/run.out")"
hs_has "cn9" <"$T/mp.state/db/xcat/dump.sql" || hs_fail "cn9 not in the snapshot"
DB_ROLE=standby DB_EXTRA="restore = continuous" \
	db_conf "$T/ms.conf" postgresql "${PG_DSN[2]}"
# The replication's part: the snapshot folder reaches the standby.
mkdir -p "$T/ms.state/db/xcat"
cp -p "$T/mp.state/db/xcat/dump.sql" "$T/ms.state/db/xcat/"
cp -p "$T/mp.state/db/xcat/MANIFEST" "$T/ms.state/db/xcat/"
"$DBDRV" "$T/ms.conf" xcat run 60 >"$T/run.out" 2>>"$T/run.err" ||
	hs_fail "no restore on the standby: $(cat "$T/run.out")"
hs_has "restores=1 " <"$T/run.out" || hs_fail "standby: $(cat "$T/run.out")"
[ "$(db_psql 2 -c "SELECT groups FROM nodelist WHERE node = 'cn9'")" = service ] ||
	hs_fail "cn9 not in the standby's server"
cmp "$T/mp.state/db/xcat/dump.sql" "$T/ms.state/db/xcat.good/dump.sql" ||
	hs_fail "the standby's good snapshot is not the primary's"

echo "== an unreachable server: the client's own reason"
db_conf "$T/gone.conf" postgresql \
	"host=127.0.0.1 port=$(hs_free_port) dbname=xcatdb user=postgres"
for op in mark "dump $T/d3" "restore $T/d1"; do
	# shellcheck disable=SC2086
	db_drv "$T/gone.conf" xcat $op && hs_fail "$op on no server worked"
	# psql's last line on stderr: the failure, or libpq's hint after it.
	echo "$DB_ERR" | hs_has -E "^hs-dbdrv: database xcat: [a-z ]+: (psql|pg_dump): exit [12]: .*(connection to server at \"127.0.0.1\".* failed|Is the server running on that host)" ||
		hs_fail "$op: unclear error: $DB_ERR"
done

echo "== a failing dump command: its message"
db_failing_cmd "$T/fail" "pg_dump: out of shared memory"
db_conf "$T/fail.conf" postgresql "${PG_DSN[1]}" "$T/fail"
db_drv "$T/fail.conf" xcat dump "$T/d3" && hs_fail "a failing dump worked"
echo "$DB_ERR" | hs_has "^hs-dbdrv: database xcat: dump failed: .*out of shared memory$" ||
	hs_fail "unclear error: $DB_ERR"

echo "== a dump command that hangs: killed at the timeout"
printf '#!/bin/sh\necho $$ >"%s"\nexec sleep 60\n' "$T/hang.pid" >"$T/hang"
chmod +x "$T/hang"
db_conf "$T/hang.conf" postgresql "${PG_DSN[1]}" "$T/hang" 1s
t0=$(date +%s)
db_drv "$T/hang.conf" xcat dump "$T/d3" && hs_fail "a hanging dump worked"
echo "$DB_ERR" | hs_has "^hs-dbdrv: dump timed out after 1 s, killed" ||
	hs_fail "unclear error: $DB_ERR"
[ $(($(date +%s) - t0)) -lt 10 ] || hs_fail "the hanging dump was not cut"
# The pg_dump --help probe and the dump: both hang, the first is killed.
# (Not hs_wait_gone: the sleep is the job's, not this shell's child.)
hang=$(cat "$T/hang.pid")
for ((i = 0; i < 50; i++)); do
	kill -0 "$hang" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$hang" 2>/dev/null; then
	kill -KILL "$hang"
	hs_fail "the hanging command lives on"
fi

echo "== a restore with a bad statement: named, the live database kept"
cp -r "$T/d1" "$T/bad"
printf "INSERT INTO public.nodelist VALUES ('cn3', 'x');\nSELEC broken;\n" >>"$T/bad/dump.sql"
line=$(wc -l <"$T/bad/dump.sql")
db_drv "$T/s.conf" xcat restore "$T/bad" && hs_fail "a bad restore worked"
echo "$DB_ERR" | hs_has "^hs-dbdrv: database xcat: restore failed: .*dump.sql:$line: ERROR: .*\"SELEC\"" ||
	hs_fail "unclear error: $DB_ERR"
[ "$(db_psql 2 -c "SELECT string_agg(node, ' ' ORDER BY node) FROM nodelist")" = "cn1 cn2 cn9" ] ||
	hs_fail "the standby's live database changed"
[ "$(PGDB=postgres db_psql 2 -c "SELECT count(*) FROM pg_database
	WHERE datname LIKE 'xcatdb__hs%'")" = 0 ] ||
	hs_fail "xcatdb__hs_new was left"

echo "== a dsn without dbname cannot be restored into"
db_conf "$T/nodb.conf" postgresql "host=$T/pg2 port=${PG_PORT[2]} user=postgres"
db_drv "$T/nodb.conf" xcat restore "$T/d1" && hs_fail "restore without dbname worked"
echo "$DB_ERR" | hs_has "^hs-dbdrv: database xcat: its dsn names no dbname" ||
	hs_fail "unclear error: $DB_ERR"

echo "PASS"
