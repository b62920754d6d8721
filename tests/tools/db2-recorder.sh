#!/bin/sh
# db2-recorder.sh - stands in for DB2's commands, which cannot run in the
# test suite: point a [database] section's command_prefix at this script
# and the db2 driver's commands (db2pd, db2) become its arguments.
#
# It appends the command line it was given to $HS_DB2_LOG, as
# "DB2INSTANCE=<value> <words>", one line per call, so a test can check
# exactly what would have run and as which instance.  Then it does what
# the test chose, from these variables (each may be given for one
# command only as HS_DB2_<COMMAND>_<NAME>, e.g. HS_DB2_DB2PD_OUT, which
# wins over HS_DB2_<NAME>):
#   OUT     a file whose content is printed on stdout (a db2pd output)
#   SAY     a line printed on stdout after it (the db2 command line
#           processor prints its messages there: "SQL1770N ...")
#   STDERR  a line printed on stderr
#   SLEEP   seconds to sleep first (a command that hangs)
#   EXIT    the exit code (default 0)
set -u

cmd=$(basename -- "${1:-none}" | tr 'a-z' 'A-Z' | tr -c 'A-Z0-9\n' '_')

# The variable HS_DB2_<cmd>_<name>, else HS_DB2_<name>, else "".
pick() {
	eval "v=\${HS_DB2_${cmd}_$1-\${HS_DB2_$1-}}"
	printf '%s' "$v"
}

if [ -n "${HS_DB2_LOG-}" ]; then
	printf 'DB2INSTANCE=%s %s\n' "${DB2INSTANCE-}" "$*" >>"$HS_DB2_LOG"
fi
sleep_s=$(pick SLEEP)
[ -n "$sleep_s" ] && sleep "$sleep_s"
out=$(pick OUT)
[ -n "$out" ] && cat -- "$out"
say=$(pick SAY)
[ -n "$say" ] && printf '%s\n' "$say"
err=$(pick STDERR)
[ -n "$err" ] && printf '%s\n' "$err" >&2
code=$(pick EXIT)
exit "${code:-0}"
