#!/usr/bin/env bash
# test_bad_peer.sh - a hostile primary that holds a valid, pinned identity
# (hs-evilpeer) attacks the standby: oversize, cut and unknown frames, a
# wrong protocol version, zstd bombs, paths that try to leave target_root
# (.., absolute, through symlinks, NUL, too deep, too long), unknown sets
# and sources, lying sizes and hashes.  After each attack: the daemon is
# alive and serves a normal sync, its log has one clear line about the
# problem, nothing outside target_root changed, nothing on the standby
# changed but what the normal sync intends, no temporary file is left.
# Then: a second primary is told busy while a session is open, and a
# standby killed with SIGKILL in the middle of a 200 MiB file keeps the
# old copy and converges after a restart.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
HS_TOOLS=${HS_TOOLS:-$top/build/bin}
EVIL=$HS_TOOLS/hs-evilpeer
[ -x "$HS_BIN" ] || hs_fail "$HS_BIN is not built"
[ -x "$EVIL" ] || hs_fail "$EVIL is not built"

PASSED=0
FAILED=0
ok() {
	echo "  ok: $*"
	PASSED=$((PASSED + 1))
}
bad() {
	echo "  FAIL: $*"
	FAILED=$((FAILED + 1))
}

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
[ "$SYNC_RC" -eq 0 ] || { cat "$T/sync.err"; hs_fail "seed sync exited $SYNC_RC"; }
# shellcheck disable=SC2086
hs_compare $SOURCES || hs_fail "seed sync left differences"
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

STANDBY_SNAP=$(hs_snapshot "$T/standby")
OUTSIDE_SNAP=$(hs_snapshot "$T/outside")

# attack NAME PHRASE EVIL_ARGS...: run hs-evilpeer and check the aftermath.
# PHRASE is a fixed string the standby's log must hold exactly once among
# the lines the attack added ("" = no log check).
attack() {
	local name=$1 phrase=$2 lines out rc n hits
	shift 2
	echo "== $name"
	lines=$(wc -l <"$T/standby.log")
	set +e
	out=$("$EVIL" -c "$C1" "$@" 2>&1)
	rc=$?
	set -e
	echo "   $out" | head -5
	if [ "$rc" -eq 0 ]; then
		ok "$name: standby reacted as the contract says"
	else
		bad "$name: hs-evilpeer exited $rc (standby did not react as expected)"
	fi
	if kill -0 "$STANDBY_PID" 2>/dev/null; then
		ok "$name: standby daemon alive"
	else
		bad "$name: standby daemon DIED"
		tail -20 "$T/standby.log"
		hs_start_standby
	fi
	if [ -n "$phrase" ]; then
		hits=$(tail -n +"$((lines + 1))" "$T/standby.log" | grep -F -- "$phrase" || true)
		n=$(printf '%s' "$hits" | grep -c . || true)
		if [ "$n" -eq 1 ]; then
			ok "$name: one log line: ${hits#* }"
		else
			bad "$name: expected one log line with '$phrase', found $n"
			tail -n +"$((lines + 1))" "$T/standby.log" | sed 's/^/     | /'
		fi
	fi
	check_aftermath "$name"
}

# check_aftermath NAME: nothing escaped, no leftovers, the standby was not
# damaged, and a normal sync still works and restores the exact copy.
check_aftermath() {
	local name=$1 found
	if [ "$(hs_snapshot "$T/outside")" = "$OUTSIDE_SNAP" ]; then
		ok "$name: nothing outside target_root changed"
	else
		bad "$name: the sentinel folder outside target_root CHANGED"
		ls -la "$T/outside"
	fi
	found=$(find "$T" \( -name '*evil*' -o -name '*escape*' \) -print | head -5)
	if [ -z "$found" ]; then
		ok "$name: no evil/escape file anywhere"
	else
		bad "$name: files written by the attacker: $found"
	fi
	found=$(find "$T/standby" "$T/outside" -name '.hamnsync-tmp.*' | head -5)
	if [ -z "$found" ]; then
		ok "$name: no temporary file left"
	else
		bad "$name: temporary files left: $found"
	fi
	if [ -n "${EXPECT_CHANGED:-}" ] ||
		[ "$(files_snapshot "$T/standby")" = "$STANDBY_FILES" ]; then
		ok "$name: standby files unchanged before the next sync"
	else
		bad "$name: standby files CHANGED by a refused attack"
		diff <(echo "$STANDBY_FILES") <(files_snapshot "$T/standby") | head -10
	fi
	if [ -n "${PRE_SYNC:-}" ]; then
		"$PRE_SYNC" "$name"
	fi
	hs_sync
	if [ "$SYNC_RC" -eq 0 ]; then
		ok "$name: a normal sync afterwards exits 0"
	else
		bad "$name: a normal sync afterwards exited $SYNC_RC: $(head -3 "$T/sync.err")"
	fi
	# shellcheck disable=SC2086
	if hs_compare $SOURCES && [ "$(hs_snapshot "$T/standby")" = "$STANDBY_SNAP" ]; then
		ok "$name: standby is again an exact copy"
	else
		bad "$name: standby differs from its state before the attack"
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
attack bad-version "peer speaks protocol version 99, this node speaks version 1" \
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
attack nul-path "OP_FILE" nul-path "${INST[@]}"

# The standby must never list, nor hash, what lies behind a symlink.
echo "== listing does not follow symlinks"
out=$("$EVIL" -c "$C1" list "${INST[@]}" 2>&1) || true
echo "   $(echo "$out" | head -1)"
if echo "$out" | grep -q '  listed: \[0\] link$' &&
	! echo "$out" | grep -q 'link/victim'; then
	ok "listing: link listed as itself, nothing behind it"
else
	bad "listing: wrong view of link: $(echo "$out" | grep link)"
fi
attack hash-probe-through-dir "link/victim: path through a symlink rejected" \
	hash-probe "${INST[@]}" --path link/victim
attack hash-probe-final-link "" hash-probe "${INST[@]}" --path filelink

# A file sent where the standby has a symlink replaces the link; the file
# the link points to is untouched.
link_replaced() {
	if [ -f "$SD/filelink" ] && [ ! -L "$SD/filelink" ] &&
		grep -q "hs-evilpeer" "$SD/filelink"; then
		ok "$1: the symlink itself was replaced by the file"
	else
		bad "$1: filelink is not the new file: $(ls -l "$SD/filelink")"
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
[ "$(sha256sum <"$VICTIM")" = "$VSUM" ] && ok "data-overrun: old copy intact" ||
	bad "data-overrun: old copy CHANGED"
attack short-data "fewer bytes than announced; old copy kept" \
	short-data "${INST[@]}" --path postscripts/script3
attack hash-mismatch "content hash mismatch; old copy kept" \
	hash-mismatch "${INST[@]}" --path postscripts/script3
[ "$(sha256sum <"$VICTIM")" = "$VSUM" ] && ok "hash-mismatch: old copy intact" ||
	bad "hash-mismatch: old copy CHANGED"

# --- the standby's side: a source's parent that is a symlink --------------
echo "== a source whose parent on the standby is a symlink"
lines=$(wc -l <"$T/standby.log")
touch -r "$T/standby$T/src" "$T/srcdir.ref"
mv "$T/standby$T/src/etc" "$T/standby$T/src/etc.real"
ln -s "$T/outside" "$T/standby$T/src/etc"
hs_sync
if [ "$SYNC_RC" -eq 1 ] && grep -q "refused set netconf" "$T/sync.err"; then
	ok "parent-symlink: sync exits 1, set netconf refused: $(grep -m1 netconf "$T/sync.err")"
else
	bad "parent-symlink: sync exited $SYNC_RC: $(cat "$T/sync.err")"
fi
if tail -n +"$((lines + 1))" "$T/standby.log" | grep -q "a component is a symlink"; then
	ok "parent-symlink: logged: $(tail -n +"$((lines + 1))" "$T/standby.log" | grep -m1 "a component is a symlink" | cut -d' ' -f3-)"
else
	bad "parent-symlink: no log line"
fi
[ "$(hs_snapshot "$T/outside")" = "$OUTSIDE_SNAP" ] &&
	ok "parent-symlink: nothing written through it" ||
	bad "parent-symlink: outside folder CHANGED"
rm "$T/standby$T/src/etc"
mv "$T/standby$T/src/etc.real" "$T/standby$T/src/etc"
# The test itself touched $T/src on the standby, which no set covers.
touch -r "$T/srcdir.ref" "$T/standby$T/src"
check_aftermath parent-symlink

# --- a second primary while a session is active ---------------------------
echo "== a second primary is told busy"
"$EVIL" -c "$C1" hold 6 >"$T/hold.out" 2>&1 &
HOLD_PID=$!
HS_PIDS+=("$HOLD_PID")
for ((i = 0; i < 50; i++)); do
	grep -q "session open" "$T/hold.out" 2>/dev/null && break
	sleep 0.1
done
grep -q "session open" "$T/hold.out" || bad "hold: no session: $(cat "$T/hold.out")"
lines=$(wc -l <"$T/standby.log")
hs_sync
if [ "$SYNC_RC" -eq 3 ] && grep -qi busy "$T/sync.err"; then
	ok "busy: sync exits 3: $(cat "$T/sync.err")"
else
	bad "busy: sync exited $SYNC_RC: $(cat "$T/sync.err")"
fi
if tail -n +"$((lines + 1))" "$T/standby.log" | grep -q "told busy"; then
	ok "busy: logged: $(tail -n +"$((lines + 1))" "$T/standby.log" | grep -m1 "told busy" | cut -d' ' -f3-)"
else
	bad "busy: no log line"
fi
hs_wait_gone "$HOLD_PID" 150 || bad "hold did not end"
wait "$HOLD_PID" && ok "busy: the held session ended cleanly: $(tail -1 "$T/hold.out")" ||
	bad "busy: the held session failed: $(cat "$T/hold.out")"
check_aftermath busy

# --- SIGKILL in the middle of a large file --------------------------------
echo "== standby killed with SIGKILL in the middle of a 200 MiB file"
BIG=$T/src/install/big.img
head -c $((200 * 1024 * 1024)) /dev/urandom >"$BIG"
hs_sync
[ "$SYNC_RC" -eq 0 ] || bad "big: first sync exited $SYNC_RC"
OLD_SUM=$(sha256sum <"$BIG")
[ "$(sha256sum <"$SD/big.img")" = "$OLD_SUM" ] || bad "big: old copy not on the standby"
head -c $((200 * 1024 * 1024)) /dev/urandom >"$BIG"
NEW_SUM=$(sha256sum <"$BIG")
"$HS_BIN" -c "$C1" sync >"$T/sync-bg.out" 2>&1 &
SYNC_PID=$!
HS_PIDS+=("$SYNC_PID")
tmp=""
for ((i = 0; i < 1000; i++)); do
	tmp=$(find "$SD" -maxdepth 1 -name '.hamnsync-tmp.*' -size +1M -print -quit)
	[ -n "$tmp" ] && break
	sleep 0.01
done
# The whole standby: the daemon and its session process (a crash of the
# machine or of the service), by their PIDs.
kids=$(pgrep -P "$STANDBY_PID" || true)
# shellcheck disable=SC2086
kill -9 "$STANDBY_PID" $kids 2>/dev/null || true
hs_wait_gone "$STANDBY_PID" 50 || bad "big: standby survived SIGKILL"
if [ -n "$tmp" ]; then
	ok "big: killed while $(basename "$tmp") held $(stat -c %s "$tmp" 2>/dev/null || echo '?') bytes"
else
	bad "big: no temporary file seen before the kill (transfer too fast?)"
fi
hs_wait_gone "$SYNC_PID" 300 || bad "big: sync did not notice the standby's death"
set +e
wait "$SYNC_PID"
rc=$?
set -e
[ "$rc" -ne 0 ] && ok "big: interrupted sync exits $rc: $(tail -1 "$T/sync-bg.out")" ||
	bad "big: interrupted sync exited 0"
got=$(sha256sum <"$SD/big.img")
if [ "$got" = "$OLD_SUM" ]; then
	ok "big: the standby still holds the old copy, intact"
elif [ -z "$tmp" ] && [ "$got" = "$NEW_SUM" ]; then
	ok "big: the standby holds the new copy (it was renamed before the kill)"
else
	bad "big: the standby's copy is TORN (neither old nor new)"
fi
left=$(find "$T/standby" -name '.hamnsync-tmp.*' | wc -l)
echo "   temporary files left by the crash: $left"
mv "$T/standby.log" "$T/standby.log.1"
hs_start_standby
left=$(find "$T/standby" -name '.hamnsync-tmp.*' | wc -l)
[ "$left" -eq 0 ] && ok "big: restart removed the leftovers: $(grep -m1 'temporary files' "$T/standby.log" | cut -d' ' -f3- || echo none)" ||
	bad "big: $left temporary files still there after the restart"
hs_sync
[ "$SYNC_RC" -eq 0 ] && ok "big: sync after the restart exits 0" ||
	bad "big: sync after the restart exited $SYNC_RC: $(head -3 "$T/sync.err")"
# shellcheck disable=SC2086
hs_compare $SOURCES && ok "big: trees identical (rsync -c finds nothing)" ||
	bad "big: trees differ after the restart"
[ "$(sha256sum <"$SD/big.img")" = "$NEW_SUM" ] && ok "big: new copy in place" ||
	bad "big: new copy not in place"

echo "test_bad_peer: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
