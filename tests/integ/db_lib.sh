# db_lib.sh - real database servers for the database tests, sourced after
# lib.sh.  Each server lives in its own folder under $T (data, socket,
# log), listens on 127.0.0.1 only on a port of its own, and is stopped
# by its PID when the test ends.  No system-wide server is touched.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
# The servers, as SIGNAL:PID: PostgreSQL takes SIGINT as "fast shutdown"
# (SIGTERM would wait for its sessions to end); MariaDB ignores SIGINT
# and shuts down on SIGTERM.
DB_PIDS=()

# db_cleanup: stop the servers, then lib.sh's own cleanup with the
# test's exit status.
db_cleanup() {
	local rc=$? p
	# Not under errexit: the status handed on below is a failure.
	set +e
	for p in "${DB_PIDS[@]}"; do
		hs_stop_pid "${p#*:}" "${p%%:*}" 300
	done
	(exit $rc)
	hs_cleanup
}

# db_init NAME: hs_init, with the servers stopped before the folder goes.
db_init() {
	hs_init "$1"
	trap db_cleanup EXIT
}

# db_pg_start N: a PostgreSQL server in $T/pgN, owned by the postgres
# user (initdb and the server refuse root); its port in PG_PORT[N], its
# dsn (database xcatdb) in PG_DSN[N].
declare -A PG_PORT PG_DSN
db_pg_start() {
	local n=$1 d=$T/pg$1 port pid
	# The postgres user must reach its folder: $T is 0700 (mktemp).
	chmod 0755 "$T"
	mkdir "$d"
	chown postgres: "$d"
	runuser -u postgres -- "$PG_BIN/initdb" -A trust -U postgres \
		-D "$d/data" >"$d/initdb.log" 2>&1 ||
		hs_fail "initdb pg$n: $(tail -3 "$d/initdb.log")"
	port=$(hs_free_port) || hs_fail "no free port"
	runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$d/data" -l "$d/server.log" \
		-w -t 60 -o "-k $d -h 127.0.0.1 -p $port -c fsync=off" start \
		>"$d/pg_ctl.log" 2>&1 ||
		hs_fail "pg$n did not start: $(tail -3 "$d/server.log")"
	pid=$(head -1 "$d/data/postmaster.pid")
	DB_PIDS+=("INT:$pid")
	HS_PIDS+=("$pid")
	PG_PORT[$n]=$port
	PG_DSN[$n]="host=$d port=$port dbname=xcatdb user=postgres"
}

# db_psql N SQL...: run SQL in server N's xcatdb (or PGDB), unaligned
# tuples only.
db_psql() {
	local n=$1
	shift
	"$PG_BIN/psql" -XAtq -v ON_ERROR_STOP=1 \
		--dbname="host=$T/pg$n port=${PG_PORT[$n]} user=postgres dbname=${PGDB-xcatdb}" \
		"$@"
}

# db_my_start N: a MariaDB server in $T/myN, root by the unix socket
# only; its socket in MY_SOCK[N], its dsn (database xcatdb) in MY_DSN[N].
declare -A MY_SOCK MY_DSN
db_my_start() {
	local n=$1 d=$T/my$1 port i
	mkdir "$d"
	mariadb-install-db --no-defaults --datadir="$d/data" --user=root \
		--auth-root-authentication-method=socket --skip-test-db \
		>"$d/install.log" 2>&1 ||
		hs_fail "mariadb-install-db my$n: $(tail -3 "$d/install.log")"
	port=$(hs_free_port) || hs_fail "no free port"
	mariadbd --no-defaults --datadir="$d/data" --socket="$d/sock" \
		--port="$port" --bind-address=127.0.0.1 --user=root \
		--pid-file="$d/server.pid" --log-error="$d/server.log" \
		--innodb-flush-log-at-trx-commit=2 --skip-log-bin \
		>>"$d/server.log" 2>&1 &
	DB_PIDS+=("TERM:$!")
	HS_PIDS+=("$!")
	MY_SOCK[$n]=$d/sock
	MY_DSN[$n]="socket=$d/sock user=root dbname=xcatdb"
	for ((i = 0; i < 300; i++)); do
		mysql --no-defaults --socket="$d/sock" -u root -e 'SELECT 1' \
			>/dev/null 2>&1 && return 0
		sleep 0.1
	done
	hs_fail "my$n did not answer: $(tail -3 "$d/server.log")"
}

# db_mysql N SQL...: run mysql against server N's xcatdb (or MYDB),
# batch output without column names.
db_mysql() {
	local n=$1
	shift
	mysql --no-defaults --socket="${MY_SOCK[$n]}" -u root -N -B \
		"${MYDB-xcatdb}" "$@"
}

# db_conf FILE TYPE DSN [PREFIX [TIMEOUT]]: a config whose [database
# xcat] has TYPE and DSN (and command_prefix PREFIX, timeout TIMEOUT),
# for hs-dbdrv.  Its [node] only has to load: hs-dbdrv starts no
# daemon.  DB_ROLE (primary) is the node's role, DB_EXTRA more lines for
# the database (interval = 1s, restore = continuous).
db_conf() {
	local state=${1%.conf}.state
	mkdir -p "$state/db"
	cat >"$1" <<CONF
[node]
name = mn1
role = ${DB_ROLE:-primary}
state_dir = $state
listen = 127.0.0.1:1
peer = 127.0.0.1:1
cert = $T/none.crt
key = $T/none.key
peer_fingerprint = sha256:$(printf 'ab%.0s' {1..32})

[database xcat]
type = $2
dsn = $3
CONF
	[ -z "${4:-}" ] || echo "command_prefix = $4" >>"$1"
	[ -z "${5:-}" ] || echo "timeout = $5" >>"$1"
	[ -z "${DB_EXTRA:-}" ] || printf '%s\n' "$DB_EXTRA" >>"$1"
}

DBDRV=${HS_TOOLS:-$top/build/bin}/hs-dbdrv

# db_drv CONF OP [DIR]: hs-dbdrv, its stdout in DB_OUT and its last
# stderr line (the driver's reason) in DB_ERR; returns its exit status.
db_drv() {
	local rc=0
	DB_OUT=$("$DBDRV" "$@" 2>"$T/dbdrv.err") || rc=$?
	DB_ERR=$(tail -1 "$T/dbdrv.err")
	return $rc
}

# db_mark CONF: the change mark, or fail.
db_mark() {
	db_drv "$1" xcat mark || hs_fail "mark: $DB_ERR"
	echo "${DB_OUT#mark }"
}

# db_failing_cmd FILE MESSAGE: a command that writes MESSAGE on stderr
# and exits 1, to put before a driver's commands (command_prefix).
db_failing_cmd() {
	printf '#!/bin/sh\necho "%s" >&2\nexit 1\n' "$2" >"$1"
	chmod +x "$1"
}
