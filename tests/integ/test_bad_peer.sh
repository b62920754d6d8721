#!/usr/bin/env bash
# test_bad_peer.sh - a hostile primary that holds a valid, pinned identity
# (hs-evilpeer) attacks the standby: oversize, cut and unknown frames
# (before and after HELLO), a wrong protocol version or role, zstd bombs,
# paths that try to leave target_root (.., absolute, through symlinks with
# every operation, NUL, too deep, too long, an unknown source index),
# hash, signature and listing requests aimed behind symlinks, a delta
# whose basis is a symlink, a hard link to a file outside, unknown sets
# and foreign sources, lying sizes, hashes and deltas, a 2^62-byte seek.
# After each attack: the daemon is alive and serves a normal sync, its log
# has one clear line about the problem, nothing outside target_root
# changed, nothing on the standby changed but what the normal sync
# intends, no temporary file is left.
# Then: a source whose parent on the standby is a symlink; a second
# primary told busy while a session is open; a standby killed with
# SIGKILL in the middle of a 200 MiB file (keeps the old copy, converges
# after a restart); its session process alone killed; its daemon process
# alone killed (as `kill -9 $(cat hamnsync.pid)` does).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
HS_TOOLS=${HS_TOOLS:-$top/build/bin}
EVIL=$HS_TOOLS/hs-evilpeer
[ -x "$HS_BIN" ] || hs_fail "$HS_BIN is not built"
[ -x "$EVIL" ] || hs_fail "$EVIL is not built"

hs_init bad_peer
hs_gen_tree "$T/src"
# Symlinks the primary really has, replicated as they are: on the standby
# they point outside target_root, at the sentinel folder.
mkdir -p "$T/outside"
echo "victim: must never change" >"$T/outside/victim"
chmod 644 "$T/outside/victim"
ln -s "$T/outside" "$T/src/install/link"
ln -s "$T/outside/victim" "$T/src/install/filelink"
hs_setup_pair "$(hs_sets_for "$T/src")"
SOURCES=$(hs_all_sources "$T/src")
hs_start_standby
hs_sync
# shellcheck disable=SC2086
hs_sync_check "seed sync" $SOURCES
[ "$HS_SAME" -eq 1 ] || { cat "$T/sync.err"; hs_fail "no seed, giving up"; }
[ -L "$T/standby$T/src/install/link" ] || hs_fail "link not replicated"
SD=$T/standby$T/src/install   # the install set on the standby
echo "seeded: standby matches the primary; standby has install/link -> $T/outside"

# The standby's files without directory mtimes: a refused operation may
# create and remove a temporary, which touches its directory's mtime (the
# next sync restores it); file content and metadata must not change.
files_snapshot() {
	(cd "$1" && find . \( -type d -printf '%p d %m %U:%G\n' \) -o \
		\( -printf '%p %y %s %m %U:%G %T@ %l\n' \) | sort &&
		find . -type f -print0 | sort -z | xargs -0r sha256sum)
}

# The sentinel folder, link counts and ctimes included: a hard link made
# to a file outside target_root changes neither content nor mtime.
outside_snapshot() {
	hs_snapshot "$T/outside"
	find "$T/outside" -printf '%p links=%n ctime=%C@\n' | sort
}
STANDBY_SNAP=$(hs_snapshot "$T/standby")
OUTSIDE_SNAP=$(outside_snapshot)

# attack NAME PHRASE EVIL_ARGS...: run hs-evilpeer and check the aftermath.
# PHRASE is a fixed string the standby's log must hold exactly once among
# the lines the attack added ("" = no log check).
attack() {
	local name=$1 phrase=$2 lines out rc n hits
	shift 2
	echo "== [${SECONDS}s] $name"
	lines=$(wc -l <"$T/standby.log")
	set +e
	out=$("$EVIL" -c "$C1" "$@" 2>&1)
	rc=$?
	set -e
	echo "   $out" | head -5
	if [ -n "${POST_EVIL:-}" ]; then
		"$POST_EVIL" "$name"
	fi
	if [ "$rc" -eq 0 ]; then
		hs_ok "$name: standby reacted as the contract says"
	else
		hs_bad "$name: hs-evilpeer exited $rc (standby did not react as expected)"
	fi
	if kill -0 "$STANDBY_PID" 2>/dev/null; then
		hs_ok "$name: standby daemon alive"
	else
		hs_bad "$name: standby daemon DIED"
		tail -20 "$T/standby.log"
		hs_start_standby
	fi
	if [ -n "$phrase" ]; then
		hits=$(tail -n +"$((lines + 1))" "$T/standby.log" | grep -F -- "$phrase" || true)
		n=$(printf '%s' "$hits" | grep -c . || true)
		if [ "$n" -eq 1 ]; then
			hs_ok "$name: one log line: ${hits#* }"
		else
			hs_bad "$name: expected one log line with '$phrase', found $n"
			tail -n +"$((lines + 1))" "$T/standby.log" | sed 's/^/     | /'
		fi
	fi
	check_aftermath "$name"
}

# check_aftermath NAME: nothing escaped, no leftovers, the standby was not
# damaged, and a normal sync still works and restores the exact copy.
check_aftermath() {
	local name=$1 found
	if [ "$(outside_snapshot)" = "$OUTSIDE_SNAP" ]; then
		hs_ok "$name: nothing outside target_root changed"
	else
		hs_bad "$name: the sentinel folder outside target_root CHANGED"
		ls -la "$T/outside"
	fi
	found=$(find "$T" \( -name '*evil*' -o -name '*escape*' \) -print | head -5)
	if [ -z "$found" ]; then
		hs_ok "$name: no evil/escape file anywhere"
	else
		hs_bad "$name: files written by the attacker: $found"
	fi
	found=$(find "$T/standby" "$T/outside" -name '.hamnsync-tmp.*' | head -5)
	if [ -z "$found" ]; then
		hs_ok "$name: no temporary file left"
	else
		hs_bad "$name: temporary files left: $found"
	fi
	if [ -n "${EXPECT_CHANGED:-}" ] ||
		[ "$(files_snapshot "$T/standby")" = "$STANDBY_FILES" ]; then
		hs_ok "$name: standby files unchanged before the next sync"
	else
		hs_bad "$name: standby files CHANGED by a refused attack"
		diff <(echo "$STANDBY_FILES") <(files_snapshot "$T/standby") | head -10
	fi
	if [ -n "${PRE_SYNC:-}" ]; then
		"$PRE_SYNC" "$name"
	fi
	hs_sync
	# shellcheck disable=SC2086
	hs_sync_check "$name: a normal sync afterwards leaves the trees equal" \
		$SOURCES
	# The snapshot taken when rsync had found the trees identical; rsync
	# runs again only to show what differs.
	if [ "$(hs_snapshot "$T/standby")" = "$STANDBY_SNAP" ]; then
		hs_ok "$name: standby is again an exact copy"
	else
		hs_bad "$name: standby differs from its state before the attack"
		# shellcheck disable=SC2086
		hs_compare $SOURCES || true
	fi
}
STANDBY_FILES=$(files_snapshot "$T/standby")

INST=(--set install --source "$T/src/install")

# --- frames ---------------------------------------------------------------
attack oversize "malformed frame: size past a hard limit" oversize
attack truncated "malformed frame: malformed message from peer" truncated
attack unknown-type "unexpected message (type 200)" unknown-type
attack oversize-before-hello "handshake failed: handshake: size past a hard limit" \
	oversize --before-hello
attack truncated-before-hello "handshake failed" truncated --before-hello
attack unknown-type-before-hello "unexpected message type 200" \
	unknown-type --before-hello
attack bad-version "peer speaks protocol version 99, this node speaks version 2" \
	bad-version
attack bad-role "serves only a primary" bad-role
attack zstd-bomb "malformed frame: size past a hard limit" zstd-bomb
attack zstd-nosize "malformed frame" zstd-nosize
attack zstd-garbage "malformed frame" zstd-garbage
attack hashreq-bomb "unexpected message (HASH_REQ)" hashreq-bomb "${INST[@]}"

# --- paths ----------------------------------------------------------------
attack dotdot "../escape: path rejected" dotdot "${INST[@]}"
attack absolute "/etc/evil: path rejected" absolute "${INST[@]}"
attack symlink-escape "link/evil: path through a symlink rejected" \
	symlink-escape "${INST[@]}"
attack symlink-escape-mkdir "link/evildir: path through a symlink rejected" \
	symlink-escape "${INST[@]}" --op dir --path link/evildir
attack symlink-escape-symlink "link/evil: path through a symlink rejected" \
	symlink-escape "${INST[@]}" --op symlink
attack symlink-escape-delete "link/victim: path through a symlink rejected" \
	symlink-escape "${INST[@]}" --op delete --path link/victim
attack symlink-meta-through-link "filelink: cannot set owner, mode or time" \
	symlink-escape "${INST[@]}" --op meta --path filelink
attack bad-src "no such source in set" bad-src "${INST[@]}"
attack deep-path "path rejected: size past a hard limit" deep-path "${INST[@]}"
attack long-name "path rejected: size past a hard limit" long-name "${INST[@]}"
# SPEC: NUL is rejected "with an error that names the path; the session
# continues" - the same as '..'.
attack nul-path "path contains a NUL byte: rejected" nul-path "${INST[@]}"

# The standby must never list, nor hash, what lies behind a symlink.
echo "== [${SECONDS}s] listing does not follow symlinks"
out=$("$EVIL" -c "$C1" list "${INST[@]}" 2>&1) || true
echo "   $(echo "$out" | head -1)"
if grep -q '  listed: \[0\] link$' <<<"$out" &&
	! grep -q 'link/victim' <<<"$out"; then
	hs_ok "listing: link listed as itself, nothing behind it"
else
	hs_bad "listing: wrong view of link: $(echo "$out" | grep link)"
fi
attack hash-probe-through-dir "link/victim: path through a symlink rejected" \
	hash-probe "${INST[@]}" --path link/victim
attack hash-probe-final-link "" hash-probe "${INST[@]}" --path filelink
attack sig-probe-through-dir "link/victim: path through a symlink rejected" \
	sig-probe "${INST[@]}" --path link/victim
attack sig-probe-final-link "" sig-probe "${INST[@]}" --path filelink
attack delta-basis-symlink "filelink: delta basis is gone or not a regular file" \
	delta-basis-symlink "${INST[@]}"
attack hardlink-escape "link/victim: path through a symlink rejected" \
	hardlink-escape "${INST[@]}" --path link/victim
echo "== [${SECONDS}s] a scoped listing does not follow symlinks"
out=$("$EVIL" -c "$C1" scoped-list "${INST[@]}" --path link 2>&1) || true
echo "   $(echo "$out" | tail -1)"
if grep -q '  listed: \[0\] link$' <<<"$out" &&
	! grep -q 'link/' <<<"$out"; then
	hs_ok "scoped listing of link: link itself, nothing behind it"
else
	hs_bad "scoped listing of link: $(echo "$out" | grep link)"
fi
attack scoped-list-escape "path escapes its confinement" \
	scoped-list "${INST[@]}" --path ../x

# A file sent where the standby has a symlink replaces the link; the file
# the link points to is untouched.
link_replaced() {
	if [ -f "$SD/filelink" ] && [ ! -L "$SD/filelink" ] &&
		grep -q "hs-evilpeer" "$SD/filelink"; then
		hs_ok "$1: the symlink itself was replaced by the file"
	else
		hs_bad "$1: filelink is not the new file: $(ls -l "$SD/filelink")"
	fi
}
EXPECT_CHANGED=1 PRE_SYNC=link_replaced attack file-replaces-symlink "done: 1 applied, 0 errors" \
	put "${INST[@]}" --path filelink

# --- sets -----------------------------------------------------------------
attack unknown-set "set no-such-set refused: set is not configured" \
	unknown-set "${INST[@]}"

# --- lying sizes and hashes on an existing file ---------------------------
VICTIM=$SD/postscripts/script3
VSUM=$(sha256sum <"$VICTIM")
attack data-overrun "more data than the 10 bytes announced" \
	data-overrun "${INST[@]}" --path postscripts/script3
[ "$(sha256sum <"$VICTIM")" = "$VSUM" ] && hs_ok "data-overrun: old copy intact" ||
	hs_bad "data-overrun: old copy CHANGED"
attack short-data "fewer bytes than announced; old copy kept" \
	short-data "${INST[@]}" --path postscripts/script3
attack hash-mismatch "content hash mismatch; old copy kept" \
	hash-mismatch "${INST[@]}" --path postscripts/script3
[ "$(sha256sum <"$VICTIM")" = "$VSUM" ] && hs_ok "hash-mismatch: old copy intact" ||
	hs_bad "hash-mismatch: old copy CHANGED"
attack delta-bad-offset "outside the" \
	delta-bad-offset "${INST[@]}" --path postscripts/script3
attack delta-huge-literal "delta produces more than the 100 bytes announced" \
	delta-huge-literal "${INST[@]}" --path postscripts/script3
[ "$(sha256sum <"$VICTIM")" = "$VSUM" ] && hs_ok "delta lies: old copy intact" ||
	hs_bad "delta lies: old copy CHANGED"

# A file of 2^62 bytes announced, and one OP_SEEK to its end: 24 bytes on
# the wire.  The standby must answer at once (RELIABILITY 3: offsets are
# checked before anything is looped over), not spin hashing zeros while
# its one session slot turns every real primary away as busy.
reap_spinner() {
	local kid
	sleep 1 # the peer is gone: a healthy session process ends now
	kid=$(pgrep -P "$STANDBY_PID" || true)
	if [ -n "$kid" ]; then
		hs_bad "$1: session process $kid still busy after the peer left ($(ps -o pcpu= -p "$kid" | tr -d ' ')% CPU); stopped with SIGKILL"
		# shellcheck disable=SC2086
		kill -9 $kid
		sleep 0.3
		find "$T/standby" -name '.hamnsync-tmp.*' -delete
	else
		hs_ok "$1: no session process left behind"
	fi
}
POST_EVIL=reap_spinner attack seek-bomb "" seek-bomb "${INST[@]}" --timeout 3000

# --- the standby's side: a source's parent that is a symlink --------------
echo "== [${SECONDS}s] a source whose parent on the standby is a symlink"
lines=$(wc -l <"$T/standby.log")
touch -r "$T/standby$T/src" "$T/srcdir.ref"
mv "$T/standby$T/src/etc" "$T/standby$T/src/etc.real"
ln -s "$T/outside" "$T/standby$T/src/etc"
hs_sync
if [ "$SYNC_RC" -eq 1 ] && grep -q "refused set netconf" "$T/sync.err"; then
	hs_ok "parent-symlink: sync exits 1, set netconf refused: $(grep -m1 netconf "$T/sync.err")"
else
	hs_bad "parent-symlink: sync exited $SYNC_RC: $(cat "$T/sync.err")"
fi
if tail -n +"$((lines + 1))" "$T/standby.log" | hs_has "a component is a symlink"; then
	hs_ok "parent-symlink: logged: $(tail -n +"$((lines + 1))" "$T/standby.log" | grep -m1 "a component is a symlink" | cut -d' ' -f3-)"
else
	hs_bad "parent-symlink: no log line"
fi
[ "$(outside_snapshot)" = "$OUTSIDE_SNAP" ] &&
	hs_ok "parent-symlink: nothing written through it" ||
	hs_bad "parent-symlink: outside folder CHANGED"
rm "$T/standby$T/src/etc"
mv "$T/standby$T/src/etc.real" "$T/standby$T/src/etc"
# The test itself touched $T/src on the standby, which no set covers.
touch -r "$T/srcdir.ref" "$T/standby$T/src"
check_aftermath parent-symlink

# --- a second primary while a session is active ---------------------------
echo "== [${SECONDS}s] a second primary is told busy"
"$EVIL" -c "$C1" hold 3 >"$T/hold.out" 2>&1 &
HOLD_PID=$!
HS_PIDS+=("$HOLD_PID")
for ((i = 0; i < 50; i++)); do
	grep -q "session open" "$T/hold.out" 2>/dev/null && break
	sleep 0.1
done
grep -q "session open" "$T/hold.out" || hs_bad "hold: no session: $(cat "$T/hold.out")"
lines=$(wc -l <"$T/standby.log")
hs_sync
if [ "$SYNC_RC" -eq 3 ] && grep -qi busy "$T/sync.err"; then
	hs_ok "busy: sync exits 3: $(cat "$T/sync.err")"
else
	hs_bad "busy: sync exited $SYNC_RC: $(cat "$T/sync.err")"
fi
if tail -n +"$((lines + 1))" "$T/standby.log" | hs_has "told busy"; then
	hs_ok "busy: logged: $(tail -n +"$((lines + 1))" "$T/standby.log" | grep -m1 "told busy" | cut -d' ' -f3-)"
else
	hs_bad "busy: no log line"
fi
hs_wait_gone "$HOLD_PID" 150 || hs_bad "hold did not end"
wait "$HOLD_PID" && hs_ok "busy: the held session ended cleanly: $(tail -1 "$T/hold.out")" ||
	hs_bad "busy: the held session failed: $(cat "$T/hold.out")"
check_aftermath busy

# --- SIGKILL in the middle of a large file --------------------------------
# big.img (200 MiB) is on both nodes; each round changes it on the primary
# (2 MiB in two places, so the standby rebuilds all 200 MiB from a delta
# into its temporary file), starts a sync and kills part of the standby
# once that temporary file holds more than 1 MiB.  Checksums are BLAKE2
# (b2sum): as strong as SHA-256 here and three times faster on 200 MiB.
BIG=$T/src/install/big.img
digest() { b2sum <"$1" | cut -c1-64; }

NLOG=1
# try_start_standby: hs_start_standby with a fresh log (hs_start_standby
# would find the old "listening on"), returning 1 instead of failing the
# whole test when the daemon does not come up.
try_start_standby() {
	local i
	NLOG=$((NLOG + 1))
	mv "$T/standby.log" "$T/standby-$NLOG.log"
	: >"$T/standby.log"
	"$HS_BIN" -c "$C2" daemon --foreground >>"$T/standby.log" 2>&1 &
	STANDBY_PID=$!
	HS_PIDS+=("$STANDBY_PID")
	for ((i = 0; i < 50; i++)); do
		grep -q "listening on" "$T/standby.log" && return 0
		kill -0 "$STANDBY_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# big_transfer: change big.img on the primary, start a sync in the
# background and wait (bounded) until the standby's temporary file holds
# more than 1 MiB.  Sets OLD_SUM (the standby's copy), NEW_SUM, SYNC_PID,
# TMP (the temporary file, "" if none was seen).
big_transfer() {
	local i
	OLD_SUM=$(digest "$SD/big.img")
	dd if=/dev/urandom of="$BIG" bs=1M count=1 seek=$((RANDOM % 90)) \
		conv=notrunc status=none
	dd if=/dev/urandom of="$BIG" bs=1M count=1 seek=$((100 + RANDOM % 90)) \
		conv=notrunc status=none
	NEW_SUM=$(digest "$BIG")
	"$HS_BIN" -c "$C1" sync >"$T/sync-bg.out" 2>&1 &
	SYNC_PID=$!
	HS_PIDS+=("$SYNC_PID")
	TMP=""
	for ((i = 0; i < 1500; i++)); do
		TMP=$(find "$SD" -maxdepth 1 -name '.hamnsync-tmp.*' -size +1M -print -quit)
		[ -n "$TMP" ] && break
		kill -0 "$SYNC_PID" 2>/dev/null || break
		sleep 0.01
	done
	if [ -n "$TMP" ]; then
		hs_ok "$1: caught $(basename "$TMP") holding $(stat -c %s "$TMP" 2>/dev/null || echo '?') bytes"
	else
		hs_bad "$1: no temporary file seen before the kill (sync: $(tail -1 "$T/sync-bg.out"))"
	fi
}

# big_wait_sync NAME: the interrupted background sync must fail, bounded.
big_wait_sync() {
	local rc
	hs_wait_gone "$SYNC_PID" 300 || hs_bad "$1: the sync did not notice"
	set +e
	wait "$SYNC_PID" 2>/dev/null
	rc=$?
	set -e
	[ "$rc" -ne 0 ] && hs_ok "$1: the interrupted sync exits $rc: $(tail -1 "$T/sync-bg.out")" ||
		hs_bad "$1: the interrupted sync exited 0"
}

# big_converge NAME: a sync exits 0 and the trees are identical.
big_converge() {
	hs_sync
	# shellcheck disable=SC2086
	hs_sync_check "$1: the next sync: trees identical (rsync -c finds nothing)" \
		$SOURCES
	[ "$(digest "$SD/big.img")" = "$NEW_SUM" ] && hs_ok "$1: the new copy is in place" ||
		hs_bad "$1: the new copy is not in place"
}

echo "== [${SECONDS}s] standby killed with SIGKILL in the middle of a 200 MiB file"
head -c $((200 * 1024 * 1024)) /dev/urandom >"$BIG"
hs_sync
[ "$SYNC_RC" -eq 0 ] || hs_bad "big: first sync exited $SYNC_RC"
[ "$(digest "$SD/big.img")" = "$(digest "$BIG")" ] || hs_bad "big: no old copy on the standby"
big_transfer crash
# The whole standby, daemon and session process, by their PIDs: what a
# crash of the machine or of the service does.
kids=$(pgrep -P "$STANDBY_PID" || true)
disown "$STANDBY_PID" 2>/dev/null || true # no "Killed" report from bash
# shellcheck disable=SC2086
kill -9 "$STANDBY_PID" $kids 2>/dev/null || true
hs_wait_gone "$STANDBY_PID" 50 || hs_bad "crash: the standby survived SIGKILL"
big_wait_sync crash
got=$(digest "$SD/big.img")
if [ "$got" = "$OLD_SUM" ]; then
	hs_ok "crash: the standby still holds the old copy, intact"
elif [ -z "$TMP" ] && [ "$got" = "$NEW_SUM" ]; then
	hs_ok "crash: the standby holds the new copy (renamed before the kill)"
else
	hs_bad "crash: the standby's copy is TORN (neither old nor new)"
fi
echo "   temporary files left by the crash: $(find "$T/standby" -name '.hamnsync-tmp.*' | wc -l)"
try_start_standby || hs_fail "the standby does not restart after the crash"
left=$(find "$T/standby" -name '.hamnsync-tmp.*' | wc -l)
[ "$left" -eq 0 ] && hs_ok "crash: the restart removed the leftovers: $(grep -m1 'temporary files' "$T/standby.log" | cut -d' ' -f3- || echo none)" ||
	hs_bad "crash: $left temporary files still there after the restart"
big_converge crash

# The next two faults hit one part of the standby only.  The transfer in
# flight is a well-formed 4 MiB file that hs-evilpeer sends slowly (1 MiB/s)
# over rootimg.gz, so the fault lands in the middle of it every time.
SLOW_REL=netboot/rhels9/x86_64/compute/rootimg.gz
SLOW=$SD/$SLOW_REL
# slow_transfer NAME: start it; wait (bounded) for a temporary > 1 MiB.
slow_transfer() {
	local i
	OLD_SUM=$(digest "$SLOW")
	"$EVIL" -c "$C1" slow-file "${INST[@]}" --path "$SLOW_REL" \
		>"$T/slow.out" 2>&1 &
	SLOW_PID=$!
	HS_PIDS+=("$SLOW_PID")
	TMP=""
	for ((i = 0; i < 500; i++)); do
		TMP=$(find "$(dirname "$SLOW")" -maxdepth 1 -name '.hamnsync-tmp.*' \
			-size +1M -print -quit)
		[ -n "$TMP" ] && break
		kill -0 "$SLOW_PID" 2>/dev/null || break
		sleep 0.02
	done
	if [ -n "$TMP" ]; then
		hs_ok "$1: caught $(basename "$TMP") holding $(stat -c %s "$TMP" 2>/dev/null || echo '?') of 4194304 bytes"
	else
		hs_bad "$1: no temporary file seen: $(cat "$T/slow.out")"
	fi
}

echo "== [${SECONDS}s] the session process alone killed with SIGKILL (as the OOM killer would)"
slow_transfer session-kill
kid=$(pgrep -P "$STANDBY_PID" | head -1 || true)
lines=$(wc -l <"$T/standby.log")
[ -n "$kid" ] && kill -9 "$kid"
hs_wait_gone "$SLOW_PID" 100 || hs_bad "session-kill: the sender did not notice"
if kill -0 "$STANDBY_PID" 2>/dev/null; then
	hs_ok "session-kill: the daemon survives its session process"
else
	hs_bad "session-kill: the daemon died with its session process"
	try_start_standby || hs_fail "the standby does not restart"
fi
line=""
for ((i = 0; i < 20; i++)); do
	line=$(tail -n +"$((lines + 1))" "$T/standby.log" | grep -m1 "killed by signal 9" || true)
	[ -n "$line" ] && break
	sleep 0.1
done
[ -n "$line" ] && hs_ok "session-kill: logged: $(echo "$line" | cut -d' ' -f3-)" ||
	hs_bad "session-kill: no log line about the killed session process"
[ "$(digest "$SLOW")" = "$OLD_SUM" ] &&
	hs_ok "session-kill: the old copy is intact" || hs_bad "session-kill: the copy CHANGED"
hs_sync
[ "$SYNC_RC" -eq 0 ] && hs_ok "session-kill: the next sync exits 0" ||
	hs_bad "session-kill: the next sync exited $SYNC_RC: $(head -3 "$T/sync.err")"
# RELIABILITY 6: after the fault and quiet, rsync finds nothing.  The dead
# session's temporary file (as big as the file was) must not stay in the
# tree until the daemon happens to restart.
left=$(find "$T/standby" -name '.hamnsync-tmp.*')
if [ -z "$left" ]; then
	hs_ok "session-kill: no temporary file left in the standby's tree"
else
	hs_bad "session-kill: the killed session's temporary file stays until a restart: $(du -h $left | tr '\t\n' '  ')"
	rm -f $left # so that what follows sees the other faults only,
	hs_sync     # and the directory's mtime is the primary's again
fi
# shellcheck disable=SC2086
hs_sync_check "session-kill: trees identical (rsync -c finds nothing)" $SOURCES

echo "== [${SECONDS}s] kill -9 of the daemon's PID (state_dir/hamnsync.pid) alone"
slow_transfer daemon-kill
pid=$(cat "$T/state2/hamnsync.pid")
kid=$(pgrep -P "$pid" | head -1 || true)
disown "$pid" 2>/dev/null || true
kill -9 "$pid"
hs_wait_gone "$pid" 50 || hs_bad "daemon-kill: the daemon survived SIGKILL"
# What an administrator (or a supervisor) does next: start it again.
if try_start_standby; then
	hs_ok "daemon-kill: the standby restarts at once"
	restarted=1
else
	hs_bad "daemon-kill: the standby does not restart: $(head -1 "$T/standby.log" | cut -d' ' -f3-)"
	restarted=0
fi
# The session gets SIGTERM when the daemon dies and stops at the next
# frame, removing its temporary file: bounded wait for it.
if [ -n "$kid" ] && ! hs_wait_gone "$kid" 50; then
	hs_bad "daemon-kill: session process $kid outlives the daemon and goes on writing under target_root"
else
	hs_ok "daemon-kill: the session process ended with the daemon"
fi
# Bounded: the orphan ends with the slow transfer (4 s); then stop both
# by PID, and start the standby if it is not running.
hs_wait_gone "$SLOW_PID" 100 || kill "$SLOW_PID" 2>/dev/null || true
[ -n "$kid" ] && { hs_wait_gone "$kid" 50 || kill -9 "$kid" 2>/dev/null || true; }
if [ "$restarted" -eq 0 ]; then
	try_start_standby || hs_fail "the standby does not restart"
fi
echo "   the slow sender saw: $(tail -1 "$T/slow.out")"
got=$(digest "$SLOW")
[ "$got" = "$OLD_SUM" ] || [ "$(stat -c %s "$SLOW")" -eq 4194304 ] &&
	hs_ok "daemon-kill: the standby's copy is whole (old, or the orphan's complete file)" ||
	hs_bad "daemon-kill: the copy is TORN"
[ -z "$(find "$T/standby" -name '.hamnsync-tmp.*')" ] &&
	hs_ok "daemon-kill: no temporary file left after the restart" ||
	hs_bad "daemon-kill: temporary files left after the restart"
hs_sync
[ "$SYNC_RC" -eq 0 ] && hs_ok "daemon-kill: the next sync exits 0" ||
	hs_bad "daemon-kill: the next sync exited $SYNC_RC: $(head -3 "$T/sync.err")"
# shellcheck disable=SC2086
hs_sync_check "daemon-kill: trees identical (rsync -c finds nothing)" $SOURCES

hs_result test_bad_peer
