#!/usr/bin/env bash
# The MySQL/MariaDB driver against two real MariaDB servers (primary's
# and standby's), one driver operation at a time through hs-dbdrv: the
# guide's check (a node row reaches the standby's server), a mark that
# moves on writes only, stable dumps, and each bad input giving a clear
# one-line error while the standby's live schema keeps its rows.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/db_lib.sh"
db_init db_mysql

db_my_start 1
db_my_start 2
MYDB= db_mysql 1 -e "CREATE DATABASE xcatdb"
db_mysql 1 -e "CREATE TABLE nodelist (node varchar(64) PRIMARY KEY,
	groups text) ENGINE=InnoDB; INSERT INTO nodelist VALUES ('cn1', 'compute')"
db_conf "$T/p.conf" mysql "${MY_DSN[1]}"
db_conf "$T/s.conf" mysql "${MY_DSN[2]}"
mkdir "$T/d1" "$T/d2" "$T/d3"

# settled CONF: the mark once InnoDB's background work after the last
# write (purge, statistics) has stopped moving it.
settled() {
	local a b i
	a=$(db_mark "$1")
	for ((i = 0; i < 60; i++)); do
		sleep 0.5
		b=$(db_mark "$1")
		[ "$a" = "$b" ] && { echo "$a"; return 0; }
		a=$b
	done
	hs_fail "the mark kept moving with no writes"
}

echo "== the guide's check: dump, restore into the second server"
db_drv "$T/p.conf" xcat dump "$T/d1" || hs_fail "dump: $DB_ERR"
# The first restore makes the standby's schema: it had none.
db_drv "$T/s.conf" xcat restore "$T/d1" || hs_fail "restore: $DB_ERR"
[ "$(db_mysql 2 -e "SELECT node FROM nodelist")" = cn1 ] ||
	hs_fail "cn1 not on the standby's server"

echo "== a read leaves the mark, a write moves it"
# InnoDB's own work after a write (purge, a checkpoint record) can move
# the mark seconds later, in a pause longer than settled's: a SELECT that
# moved it would do so every time, not once in three.
for ((try = 1; ; try++)); do
	m0=$(settled "$T/p.conf")
	db_mysql 1 -e "SELECT count(*) FROM nodelist" >/dev/null
	db_mysql 1 -e "SELECT * FROM nodelist WHERE node = 'cn1'" >/dev/null
	[ "$(db_mark "$T/p.conf")" = "$m0" ] && break
	[ $try -lt 3 ] || hs_fail "a SELECT moved the mark, three times"
done
db_mysql 1 -e "INSERT INTO nodelist VALUES ('cn2', 'compute')"
m1=$(db_mark "$T/p.conf")
[ "$m1" != "$m0" ] || hs_fail "an INSERT left the mark at $m0"
m1=$(settled "$T/p.conf")
db_mysql 1 -e "UPDATE nodelist SET groups = 'compute,all' WHERE node = 'cn2'"
[ "$(db_mark "$T/p.conf")" != "$m1" ] || hs_fail "an UPDATE left the mark at $m1"

echo "== the new row reaches the standby; a table only it had goes"
db_drv "$T/p.conf" xcat dump "$T/d1" || hs_fail "dump: $DB_ERR"
db_mysql 2 -e "CREATE TABLE stale (a int)"
db_drv "$T/s.conf" xcat restore "$T/d1" || hs_fail "restore: $DB_ERR"
[ "$(db_mysql 2 -e "SELECT concat(node, ':', groups) FROM nodelist
	ORDER BY 1" | tr '\n' ' ')" = "cn1:compute cn2:compute,all " ] ||
	hs_fail "cn2 not on the standby's server"
[ "$(db_mysql 2 -e "SHOW TABLES")" = nodelist ] ||
	hs_fail "the standby's schema is not the snapshot's"
[ -z "$(MYDB= db_mysql 2 -e "SHOW DATABASES LIKE 'xcatdb\_\_hs%'")" ] ||
	hs_fail "a temporary schema was left"

echo "== two dumps of the same data are the same bytes"
db_drv "$T/p.conf" xcat dump "$T/d2" || hs_fail "dump: $DB_ERR"
cmp "$T/d1/dump.sql" "$T/d2/dump.sql" || hs_fail "dumps differ"

echo "== the manager: a snapshot on the primary, restored on the standby"
db_mysql 1 -e "INSERT INTO nodelist VALUES ('cn9', 'service')"
DB_EXTRA="interval = 1s" db_conf "$T/mp.conf" mysql "${MY_DSN[1]}"
"$DBDRV" "$T/mp.conf" xcat run 60 >"$T/run.out" 2>>"$T/run.err" ||
	hs_fail "no snapshot on the primary: $(cat "$T/run.out")"
hs_has "^state=ok dumps=1 " <"$T/run.out" || hs_fail "primary: $(cat "$T/run.out")"
hs_has "cn9" <"$T/mp.state/db/xcat/dump.sql" || hs_fail "cn9 not in the snapshot"
DB_ROLE=standby DB_EXTRA="restore = continuous" \
	db_conf "$T/ms.conf" mysql "${MY_DSN[2]}"
# The replication's part: the snapshot folder reaches the standby.
mkdir -p "$T/ms.state/db/xcat"
cp -p "$T/mp.state/db/xcat/dump.sql" "$T/ms.state/db/xcat/"
cp -p "$T/mp.state/db/xcat/MANIFEST" "$T/ms.state/db/xcat/"
"$DBDRV" "$T/ms.conf" xcat run 60 >"$T/run.out" 2>>"$T/run.err" ||
	hs_fail "no restore on the standby: $(cat "$T/run.out")"
hs_has "restores=1 " <"$T/run.out" || hs_fail "standby: $(cat "$T/run.out")"
[ "$(db_mysql 2 -e "SELECT groups FROM nodelist WHERE node = 'cn9'")" = service ] ||
	hs_fail "cn9 not in the standby's server"
cmp "$T/mp.state/db/xcat/dump.sql" "$T/ms.state/db/xcat.good/dump.sql" ||
	hs_fail "the standby's good snapshot is not the primary's"

echo "== a password from the option file defaults_file names"
db_mysql 1 -e "CREATE USER hs@localhost IDENTIFIED BY 'not-on-argv';
	GRANT SELECT, LOCK TABLES, SHOW VIEW, PROCESS ON *.* TO hs@localhost"
printf '[client]\npassword=not-on-argv\n' >"$T/hs.cnf"
chmod 600 "$T/hs.cnf"
db_conf "$T/pw.conf" mysql \
	"socket=${MY_SOCK[1]} user=hs dbname=xcatdb defaults_file=$T/hs.cnf"
db_mark "$T/pw.conf" >/dev/null
db_drv "$T/pw.conf" xcat dump "$T/d3" || hs_fail "dump as hs: $DB_ERR"
cmp "$T/mp.state/db/xcat/dump.sql" "$T/d3/dump.sql" ||
	hs_fail "hs's dump differs"
rm "$T/d3/dump.sql"

echo "== an unreachable server: the client's own reason"
db_conf "$T/gone.conf" mysql \
	"host=127.0.0.1 port=$(hs_free_port) user=root dbname=xcatdb"
for op in mark "dump $T/d3" "restore $T/d1"; do
	# shellcheck disable=SC2086
	db_drv "$T/gone.conf" xcat $op && hs_fail "$op on no server worked"
	echo "$DB_ERR" | hs_has -E "^hs-dbdrv: database xcat: [a-z ]+: mysql(dump)?: exit [0-9]+: .*Can't connect to server on '127.0.0.1'" ||
		hs_fail "$op: unclear error: $DB_ERR"
done

echo "== a dsn key the driver does not know: named"
db_conf "$T/key.conf" mysql "${MY_DSN[1]} sslmode=require"
db_drv "$T/key.conf" xcat mark && hs_fail "an unknown dsn key worked"
echo "$DB_ERR" | hs_has "^hs-dbdrv: database xcat: dsn key 'sslmode' is not one of" ||
	hs_fail "unclear error: $DB_ERR"

echo "== a failing dump command: its message"
db_failing_cmd "$T/fail" "mysqldump: out of memory"
db_conf "$T/fail.conf" mysql "${MY_DSN[1]}" "$T/fail"
db_drv "$T/fail.conf" xcat dump "$T/d3" && hs_fail "a failing dump worked"
echo "$DB_ERR" | hs_has "^hs-dbdrv: database xcat: dump failed: .*out of memory$" ||
	hs_fail "unclear error: $DB_ERR"

echo "== a restore with a bad statement: named, the live schema kept"
cp -r "$T/d1" "$T/bad"
printf "INSERT INTO nodelist VALUES ('cn3', 'x');\nSELEC broken;\n" >>"$T/bad/dump.sql"
line=$(wc -l <"$T/bad/dump.sql")
db_drv "$T/s.conf" xcat restore "$T/bad" && hs_fail "a bad restore worked"
echo "$DB_ERR" | hs_has "^hs-dbdrv: database xcat: restore failed: mysql: exit 1: ERROR 1064 (42000) at line $line: .*'SELEC broken'" ||
	hs_fail "unclear error: $DB_ERR"
[ "$(db_mysql 2 -e "SELECT group_concat(node ORDER BY node SEPARATOR ' ')
	FROM nodelist")" = "cn1 cn2 cn9" ] || hs_fail "the standby's live schema changed"
[ -z "$(MYDB= db_mysql 2 -e "SHOW DATABASES LIKE 'xcatdb\_\_hs%'")" ] ||
	hs_fail "xcatdb__hs_new was left"

echo "PASS"
