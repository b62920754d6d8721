#!/usr/bin/env bash
# A standby that acknowledges a run with another sequence than the one it
# was sent (issue 5: "a standby that acknowledges a sequence it never
# received").  A primary daemon seeds the real standby; the standby is
# stopped and hs-evilstandby takes its place (same address, same pinned
# identity): it claims no run of the primary's index, takes a whole run
# and answers its SET_END with a SET_DONE naming first a sequence ahead of
# it (+1000), then, in a second session, the run before it (-1); in a
# third it first claims exactly the run the real standby recorded (its
# index id and sequence, read with mdb_dump), so the primary resumes from
# its index and sends a run of only what changed, acknowledged +1000.  Each
# time the primary must log one clear line, drop the session, leave its
# index's acknowledged sequence (journal/acked, read with mdb_dump) where
# it was, and keep running.  Then the real standby returns: what changed
# meanwhile arrives, the acknowledged sequence moves on, and `hamnsync
# verify` exits 0.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
HS_TOOLS=${HS_TOOLS:-$top/build/bin}
EVIL=$HS_TOOLS/hs-evilstandby
[ -x "$EVIL" ] || hs_fail "$EVIL is not built"
command -v mdb_dump >/dev/null || hs_fail "mdb_dump (lmdb-utils) is missing"

# acked STATE: the primary's acknowledged run sequence (journal/acked in
# the meta database, a little-endian u64), read beside the running daemon.
acked() {
	local v
	v=$(mdb_dump -s meta "$1/index" | awk -v k=" $(hs_hex journal/acked)" \
		'f { print $1; exit } $0 == k { f = 1 }')
	[ ${#v} -eq 16 ] || { echo "?"; return; }
	printf '%d\n' "0x${v:14:2}${v:12:2}${v:10:2}${v:8:2}${v:6:2}${v:4:2}${v:2:2}${v:0:2}"
}

lies() { grep -c "was sent: not trusting it" "$T/primary.log" || true; }

# lie DELTA [ARGS]: run hs-evilstandby (with ARGS) for one session
# acknowledging seq+DELTA; checks its verdict, the primary's one line and
# its index.
lie() {
	local delta=$1 before lines_before rc i
	shift
	before=$(acked "$T/state1")
	lines_before=$(lies)
	"$EVIL" -c "$C2" --ack-delta "$delta" --sessions 1 --seconds 60 "$@" \
		>>"$T/evil.out" 2>&1 &
	EVIL_PID=$!
	HS_PIDS+=("$EVIL_PID")
	echo "changed while a liar stands by ($delta)" >>"$D/sub/f1"
	echo "created while a liar stands by ($delta)" >"$D/liar$delta"
	hs_wait_gone "$EVIL_PID" 700 || hs_bad "hs-evilstandby still running after 70 s"
	set +e
	wait "$EVIL_PID"
	rc=$?
	set -e
	tail -1 "$T/evil.out" | sed 's/^/     /'
	[ "$rc" -eq 0 ] &&
		hs_ok "ack $delta: the primary dropped the session after the false acknowledgement" ||
		hs_bad "ack $delta: hs-evilstandby exit $rc: $(tail -2 "$T/evil.out")"
	for ((i = 0; i < 50; i++)); do
		[ "$(lies)" -gt "$lines_before" ] && break
		sleep 0.1
	done
	if [ "$(lies)" -eq $((lines_before + 1)) ]; then
		hs_ok "ack $delta: one clear line in the primary's log"
		grep "was sent: not trusting it" "$T/primary.log" | tail -1 | sed 's/^/     /'
	else
		hs_bad "ack $delta: $(($(lies) - lines_before)) 'not trusting it' lines"
	fi
	[ "$(acked "$T/state1")" = "$before" ] &&
		hs_ok "ack $delta: the index's acknowledged run stays $before" ||
		hs_bad "ack $delta: acknowledged run moved from $before to $(acked "$T/state1")"
	kill -0 "$PRIMARY_PID" 2>/dev/null && hs_ok "ack $delta: the primary keeps running" ||
		hs_bad "ack $delta: the primary died"
}

hs_init bad_ack
D=$T/src/data
mkdir -p "$D/sub" "$D/etc"
for i in $(seq 1 40); do echo "file $i" >"$D/sub/f$i"; done
head -c 300000 /dev/urandom >"$D/blob"
printf '10.0.0.1 mn1\n' >"$D/etc/hosts"
hs_setup_pair "
[path data]
source = $D

[path other]
source = $T/src/other"
mkdir -p "$T/src/other" && echo "other" >"$T/src/other/x"
hs_start_standby
hs_start_primary
hs_wait_same "the daemon seeds the standby" 60 "$D" "$T/src/other"
# The seed's last run is acknowledged (SET_DONE before the index commit
# returns): wait until the primary's index says so.
for ((i = 0; i < 100; i++)); do
	a=$(acked "$T/state1")
	[ "$a" != "?" ] && [ "$a" -ge 1 ] && break
	sleep 0.1
done
echo "     acknowledged after the seed: $(acked "$T/state1")"

hs_stop_standby
lie 1000
lie -1

# What the real standby recorded: applied/primary in its meta database,
# the primary's index id (16 bytes) and a little-endian u64 sequence.
v=$(mdb_dump -s meta "$T/state2/index" | awk -v k=" $(hs_hex applied/primary)" \
	'f { print $1; exit } $0 == k { f = 1 }')
[ ${#v} -eq 48 ] || hs_fail "the standby's applied/primary record: '$v'"
seq=$((16#${v:46:2}${v:44:2}${v:42:2}${v:40:2}${v:38:2}${v:36:2}${v:34:2}${v:32:2}))
whole_before=$(grep -c "reconciling every set whole" "$T/primary.log" || true)
lie 1000 --journal "${v:0:32}:$seq"
[ "$(grep -c "reconciling every set whole" "$T/primary.log" || true)" -eq "$whole_before" ] &&
	hs_ok "claiming the recorded run $seq, the liar got a resumed (not whole) run" ||
	hs_bad "the primary reconciled whole although the liar claimed run $seq"

# The real standby returns: everything converges, acks move on.
before=$(acked "$T/state1")
hs_start_standby
echo "after the liar" >"$D/after"
hs_wait_same "converges once the real standby is back" 60 "$D" "$T/src/other"
for ((i = 0; i < 100; i++)); do
	a=$(acked "$T/state1")
	[ "$a" != "?" ] && [ "$a" -gt "$before" ] && break
	sleep 0.1
done
[ "$(acked "$T/state1")" != "?" ] && [ "$(acked "$T/state1")" -gt "$before" ] &&
	hs_ok "runs are acknowledged again ($before -> $(acked "$T/state1"))" ||
	hs_bad "no run acknowledged after the real standby returned ($(acked "$T/state1"))"
hs_signal TERM "$PRIMARY_PID"
hs_wait_gone "$PRIMARY_PID" 150 || hs_bad "the primary did not stop on SIGTERM"
"$HS_BIN" -c "$C1" verify >"$T/verify.out" 2>&1 &&
	hs_ok "hamnsync verify exits 0" || hs_bad "verify: $(tail -3 "$T/verify.out")"
kill -0 "$STANDBY_PID" && hs_ok "the standby kept running" || hs_bad "the standby died"
hs_result bad_ack
