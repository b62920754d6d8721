#!/usr/bin/env bash
# The standby's side of a failover, with real daemons on 127.0.0.1:
# - a probe (PROTO_HELLO_F_PROBE) of a standby busy with a primary's
#   session gets the standby's HELLO, and the session goes on;
# - verb `fence` after the standby's epoch was raised (hs-node, as
#   promote does) ends the session of a primary replicating a stream of
#   edits; from then on that primary is refused (both logs name the
#   epochs) and nothing it sends lands; no file on the standby is torn;
# - while a promote is under way (IDX_NODE_F_PROMOTING) every primary is
#   refused, whatever its epoch, and status says "promote in progress"
#   and not ready; a refused primary is named in promote_ready's reasons;
# - verb `role` once the stored role is primary: the same PID runs as
#   primary, keeps its pid file locked, and connects to its peer.
# - verb `role` on that primary once the stored role is standby again:
#   the same PID runs as standby and serves mn1 (hs_pidfile_handover).
# Each node listens on a port of its own (lib.sh), so a standby that
# becomes primary connects to the other node, not to its own old port.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

TOOLS=${HS_TOOLS:-$top/build/bin}
NFILES=12
FILE_KIB=192

hs_init fence
DATA=$T/src/data
mkdir -p "$DATA" "$T/tmp"
hs_setup_pair "
[path data]
source = $DATA"
grep -q "^listen = 127.0.0.1:$PORT1\$" "$C1" && [ "$PORT1" != "$PORT" ] ||
	hs_fail "the nodes do not listen on ports of their own"
# Slow enough that a big file is still in flight when the fence comes.
sed -i "s/^peer_timeout = .*/&\nbwlimit = 8M/" "$C1"
BIG_MIB=24
COPY=$T/standby$DATA

# gen K N: version N of file fK, self-describing: its first line names
# the version and the rest is derived from it alone, so a file mixing
# two versions (torn) does not equal gen of the version it names.
gen() {
	printf 'f%s v%s\n' "$1" "$2"
	# Not a pipe: pipefail would count yes's SIGPIPE as a failure.
	head -c $((FILE_KIB * 1024)) < <(yes "f$1 v$2 ................................")
}

# gen_big: the one version of the big file, self-describing as gen's,
# and incompressible (AES-CTR of zeros), so bwlimit slows it on the wire.
gen_big() {
	printf 'big v1\n'
	head -c $((BIG_MIB * 1024 * 1024)) /dev/zero |
		openssl enc -aes-128-ctr -nosalt -K 00112233445566778899aabbccddeeff -iv 0
}

# write_version K N: the primary's fK becomes version N, by rename (the
# primary reads whole versions only).
write_version() {
	gen "$1" "$2" >"$T/tmp/f$1"
	mv "$T/tmp/f$1" "$DATA/f$1"
}

# valid FILE: FILE equals the version it names, one the primary wrote.
valid() {
	local k n
	read -r k n <"$1" || return 1
	[ "$k" = "$(basename "$1")" ] || return 1
	n=${n#v}
	[ "$n" -le "$(cat "$T/written")" ] || return 1
	cmp -s "$1" <(gen "${k#f}" "$n")
}

# writer: rewrites every file in turn, one version after another, until
# $T/stop-writer exists (bounded: 2000 versions); the last version made
# is in $T/written.
writer() {
	local n
	for ((n = 1; n <= 2000; n++)); do
		[ -e "$T/stop-writer" ] && return 0
		for ((k = 0; k < NFILES; k++)); do
			write_version "$k" "$n"
		done
		echo "$n" >"$T/written"
		sleep 0.05
	done
}

# tree_sum DIR: every file's name, size and content hash, in order.
tree_sum() {
	(cd "$1" && find . -type f -printf '%p %s\n' | sort &&
		find . -type f -exec sha256sum {} + | sort)
}

# ctl VERB: the standby daemon's answer (JSON on one line).
ctl() { "$TOOLS/hs-ctl" "$T/state2" "$1"; }

# json_get JSON KEY: one value of a flat object.
json_get() {
	python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}

for ((k = 0; k < NFILES; k++)); do write_version "$k" 0; done
echo 0 >"$T/written"
hs_start_standby
hs_start_primary
hs_wait_log "$T/standby.log" "session with primary mn1" 1 30 ||
	hs_fail "no session: $(tail -5 "$T/primary.log")"
hs_wait_same "primary and standby in sync before the failover" 60 "$DATA"

# ---------------------------------------------------------------- probe
sessions=$(hs_count_log "$T/standby.log" "session with primary mn1")
if out=$("$TOOLS/hs-probe" "$C1" 2>"$T/probe.err"); then
	if [ "$out" = "mn2 standby 0 0" ]; then
		hs_ok "probe of the busy standby answered: $out"
	else
		hs_bad "probe answered '$out', wanted 'mn2 standby 0 0'"
	fi
else
	hs_bad "probe of the busy standby: $(cat "$T/probe.err")"
fi
hs_wait_log "$T/standby.log" "probe from mn1" 1 10 &&
	hs_ok "the standby logged the prober" ||
	hs_bad "no 'probe from mn1' in the standby's log"
write_version 0 1
echo 1 >"$T/written"
hs_wait_same "the session goes on after the probe" 30 "$DATA"
if [ "$(hs_count_log "$T/standby.log" "session with primary mn1")" -eq "$sessions" ] &&
	[ "$(hs_count_log "$T/standby.log" "told busy\|session ended")" -eq 0 ]; then
	hs_ok "the probe neither ended the session nor was told busy"
else
	hs_bad "the session was disturbed by the probe: $(grep 'session\|busy' "$T/standby.log" | tail -3)"
fi

# ---------------------------------------------------------------- fence
writer &
WRITER_PID=$!
HS_PIDS+=("$WRITER_PID")
# The stream is flowing: versions beyond the first have landed.
for ((i = 0; i < 300; i++)); do
	n=$(head -1 "$COPY/f$((NFILES - 1))" 2>/dev/null | sed 's/.* v//')
	[ "${n:-0}" -ge 3 ] && break
	sleep 0.1
done
[ "${n:-0}" -ge 3 ] || hs_fail "the edits do not reach the standby"
# A big file in flight (its temporary on the standby grows) is cut by
# the fence: it must not appear, whole or torn, under its name.
gen_big >"$T/tmp/big"
mv "$T/tmp/big" "$DATA/big"
hs_wait_transfer "$COPY" $((1024 * 1024)) 60 ||
	hs_fail "the big file never was in flight"
"$TOOLS/hs-node" "$T/state2" standby 1 0
reply=$(ctl fence) || hs_fail "fence: no answer"
[ "$(json_get "$reply" epoch)" = 1 ] &&
	hs_ok "fence took the stored epoch: $reply" ||
	hs_bad "fence answered $reply, wanted epoch 1"
for ((i = 0; i < 200; i++)); do
	[ "$(json_get "$reply" sessions)" = 0 ] && break
	sleep 0.1
	reply=$(ctl fence)
done
if [ "$(json_get "$reply" sessions)" = 0 ]; then
	hs_ok "the drain: sessions reached 0 ($((i)) more asks)"
else
	hs_bad "sessions still $(json_get "$reply" sessions) after 20 s"
fi
grep -q "fence: ending the session of primary mn1 (epoch 0, this node's 1)" \
	"$T/standby.log" && hs_ok "the standby logged the session it ended" ||
	hs_bad "no fence line in the standby's log"
# From now on the primary is refused, and says the epochs in its log.
refusal="peer mn1 has epoch 0, older than this node's epoch 1"
hs_wait_log "$T/standby.log" "$refusal" 1 60 &&
	hs_ok "the primary's reconnect is refused" ||
	hs_bad "no refusal in the standby's log: $(tail -3 "$T/standby.log")"
epochs="epoch 1, newer than ours (0)\\|epoch 1, newer than this node's 0"
hs_wait_log "$T/primary.log" "$epochs" 1 30 &&
	hs_ok "the primary's log names both epochs: $(grep -m1 "$epochs" "$T/primary.log" | cut -c1-160)" ||
	hs_bad "the primary's log does not name the epochs: $(tail -3 "$T/primary.log")"
before=$(tree_sum "$COPY")
written=$(cat "$T/written")
served=$(hs_count_log "$T/standby.log" "with primary mn1")
# More versions are made (a few seconds of edits); none lands.
for ((i = 0; i < 300; i++)); do
	[ "$(cat "$T/written")" -ge $((written + 30)) ] && break
	sleep 0.1
done
# The writer ends its round, so $T/written names every version made.
touch "$T/stop-writer"
wait "$WRITER_PID" || true
hs_forget "$WRITER_PID"
if [ "$(cat "$T/written")" -gt "$written" ] && [ "$(tree_sum "$COPY")" = "$before" ] &&
	[ "$(hs_count_log "$T/standby.log" "with primary mn1")" -eq "$served" ]; then
	hs_ok "nothing the fenced primary sent landed ($written -> $(cat "$T/written") versions made)"
else
	hs_bad "the standby's copy changed or a session began after the fence, or the writer stalled"
fi
torn=0
for f in "$COPY"/f*; do
	valid "$f" || { torn=$((torn + 1)); echo "     torn or unknown: $f: $(head -1 "$f")"; }
done
left=$(find "$COPY" -name '.hamnsync-tmp.*' | wc -l)
if [ -e "$COPY/big" ] && ! cmp -s "$COPY/big" <(gen_big); then
	torn=$((torn + 1))
	echo "     torn: $COPY/big"
fi
[ ! -e "$COPY/big" ] && hs_ok "the big file cut by the fence is not under its name"
if [ "$torn" -eq 0 ] && [ "$left" -eq 0 ] &&
	[ "$(find "$COPY" -maxdepth 1 -name 'f*' | wc -l)" -eq "$NFILES" ]; then
	hs_ok "every file on the standby is a whole version the primary wrote"
else
	hs_bad "$torn torn files, $left temporaries left"
fi
hs_expect_status "standby status after the fence: standby at epoch 1" "$C2" \
	'd["role"] == "standby" and d["epoch"] == 1'
# The primary still knocks and is refused: status says so, not ready.
hs_expect_status "status names the refused primary and is not ready" "$C2" \
	'not d["promote_ready"]["ready"] and any(r.startswith("primary refused: peer mn1 has epoch 0") for r in d["promote_ready"]["reasons"]) and all(p["state"] != "in-sync" for p in d["paths"])'

# ------------------------------------------------------------ promoting
# A primary even at the new epoch is refused while a promote is under way.
hs_stop_pid "$PRIMARY_PID" || hs_bad "primary did not stop"
"$TOOLS/hs-node" "$T/state1" primary 2 0
"$TOOLS/hs-node" "$T/state2" standby 2 2
reply=$(ctl fence)
[ "$reply" = '{"epoch":2,"sessions":0}' ] &&
	hs_ok "fence while promoting: $reply" || hs_bad "fence answered $reply"
hs_start_primary
hs_wait_log "$T/standby.log" "mn2 is being promoted at epoch 2: primary mn1 (epoch 2) is refused" 1 60 &&
	hs_ok "a primary of the same epoch is refused while promoting" ||
	hs_bad "no promoting refusal: $(tail -3 "$T/standby.log")"
hs_expect_status "status says promote in progress" "$C2" \
	'd["role"] == "standby" and d["epoch"] == 2 and any(w["text"].startswith("promote in progress") for w in d["warnings"])'
hs_expect_status "status while promoting: not ready, saying why" "$C2" \
	'not d["promote_ready"]["ready"] and d["promote_ready"]["reasons"][0].startswith("promote in progress") and all(p["state"] != "in-sync" for p in d["paths"])'
hs_stop_pid "$PRIMARY_PID" || hs_bad "primary did not stop"
# The same node state with no daemon (a promote that stopped midway).
C4=$T/stopped-promote.conf
mkdir -p "$T/state4"
sed "s|^state_dir = .*|state_dir = $T/state4|" "$C2" >"$C4"
"$TOOLS/hs-node" "$T/state4" standby 2 2
hs_expect_status "a stopped daemon's status names the promote to resume" "$C4" \
	'not d["promote_ready"]["ready"] and any("hamnsync promote" in r for r in d["promote_ready"]["reasons"])'

# ----------------------------------------------------------------- role
# A node to replicate to once mn2 is primary: mn1's identity, as standby,
# on mn1's port, with a state and a target_root of its own.
C3=$T/mn1-standby.conf
mkdir -p "$T/state3" "$T/old"
sed "s/^role = .*/role = standby/; s|^state_dir = .*|state_dir = $T/state3|; s|^target_root = .*|target_root = $T/old|" \
	"$C1" >"$C3"
"$HS_BIN" -c "$C3" daemon --foreground >>"$T/standby3.log" 2>&1 &
S3_PID=$!
HS_PIDS+=("$S3_PID")
hs_wait_log "$T/standby3.log" "listening on" 1 30 || hs_fail "mn1 as standby did not start"

reply=$(ctl role)
[ "$reply" = '{"role":"standby","switching":false}' ] &&
	hs_ok "role while the stored role is standby: $reply" ||
	hs_bad "role answered $reply"
"$TOOLS/hs-node" "$T/state2" primary 2 0
reply=$(ctl role)
[ "$reply" = '{"role":"primary","switching":true}' ] &&
	hs_ok "role answered before switching: $reply" ||
	hs_bad "role answered $reply"
hs_wait_log "$T/standby.log" "mn2 runs as primary now, epoch 2, in the same process" 1 30 &&
	hs_ok "the daemon says it runs as primary now" ||
	hs_bad "no switch in the log: $(tail -3 "$T/standby.log")"
hs_wait_status "the same daemon answers status as primary" 30 "$C2" \
	'd["role"] == "primary" and d["epoch"] == 2'
if kill -0 "$STANDBY_PID" 2>/dev/null &&
	[ "$(cat "$T/state2/hamnsync.pid")" = "$STANDBY_PID" ]; then
	hs_ok "the same PID $STANDBY_PID runs the primary and holds the pid file"
else
	hs_bad "PID $STANDBY_PID gone, or the pid file says $(cat "$T/state2/hamnsync.pid")"
fi
if "$HS_BIN" -c "$C2" daemon --foreground >"$T/second.out" 2>&1; then
	hs_bad "a second daemon started on the same state_dir"
else
	grep -q "another daemon (pid $STANDBY_PID)" "$T/second.out" &&
		hs_ok "a second daemon is refused: the pid file stayed locked" ||
		hs_bad "a second daemon failed otherwise: $(cat "$T/second.out")"
fi
hs_wait_log "$T/standby3.log" "session with primary mn2" 1 60 &&
	hs_ok "the new primary connects to its peer, mn1 as standby" ||
	hs_bad "mn2 as primary never reached mn1: $(tail -3 "$T/standby.log")"
hs_wait_status "status of mn1 as standby: it hears mn2 at epoch 2" 30 "$C3" \
	'd["role"] == "standby" and d["peer"]["name"] == "mn2" and d["peer"]["epoch"] == 2'

# ------------------------------------------------- and back to standby
# mn1 is staged as the primary of a newer epoch; mn2's daemon, a primary
# now, is switched back to standby and serves it.
hs_stop_pid "$S3_PID" || hs_bad "mn1 as standby did not stop"
"$TOOLS/hs-node" "$T/state3" primary 3 0
"$TOOLS/hs-node" "$T/state2" standby 3 0
reply=$("$TOOLS/hs-ctl" "$T/state2" role)
[ "$(json_get "$reply" switching)" = True ] &&
	hs_ok "the primary answered role: $reply" || hs_bad "role answered $reply"
hs_wait_log "$T/standby.log" "mn2 runs as standby now, epoch 3, in the same process" 1 30 &&
	hs_ok "the daemon says it runs as standby again" ||
	hs_bad "no switch back in the log: $(tail -3 "$T/standby.log")"
hs_wait_status "the same daemon answers status as standby" 30 "$C2" \
	'd["role"] == "standby" and d["epoch"] == 3'
C3P=$T/mn1-primary.conf
sed "s/^role = .*/role = primary/" "$C3" >"$C3P"
served=$(hs_count_log "$T/standby.log" "session with primary mn1")
"$HS_BIN" -c "$C3P" daemon --foreground >>"$T/primary3.log" 2>&1 &
P3_PID=$!
HS_PIDS+=("$P3_PID")
hs_wait_log "$T/standby.log" "session with primary mn1" $((served + 1)) 60 &&
	hs_ok "the switched-back standby serves mn1 at epoch 3" ||
	hs_bad "mn1 as primary was not served: $(tail -3 "$T/standby.log")"
if kill -0 "$STANDBY_PID" 2>/dev/null &&
	[ "$(cat "$T/state2/hamnsync.pid")" = "$STANDBY_PID" ]; then
	hs_ok "still PID $STANDBY_PID, in the pid file"
else
	hs_bad "PID $STANDBY_PID gone, or the pid file says $(cat "$T/state2/hamnsync.pid")"
fi
hs_stop_pid "$P3_PID" || hs_bad "mn1 as primary did not stop"
hs_stop_pid "$STANDBY_PID" && hs_ok "the switched daemon stops at SIGTERM" ||
	hs_bad "the switched daemon did not stop"
[ ! -e "$T/state2/hamnsync.pid" ] && hs_ok "its pid file is removed at the clean stop" ||
	hs_bad "pid file left after a clean stop"

hs_result test_standby_fence
