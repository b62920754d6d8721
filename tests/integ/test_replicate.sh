#!/usr/bin/env bash
# Seed a standby with `hamnsync sync`, then mutate the primary in every way
# the foundation mirrors and check after each round that both trees are
# identical in content and every attribute (rsync -naiHAXc as the oracle),
# as the sync claimed first (exit 0, the standby's last_applied).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

pass=0
fail=0
check() { # check NAME: what the last sync claimed, then all sources compared
	hs_sync_check "$1" $SOURCES
}
sync_ok() { # sync_ok NAME: sync must exit 0
	hs_sync
	if [ "$SYNC_RC" -ne 0 ]; then
		echo "FAIL $1: sync exited $SYNC_RC"
		cat "$T/sync.out" "$T/sync.err"
		fail=$((fail + 1))
	fi
}

hs_init replicate
S=$T/src
hs_gen_tree "$S"
mkdir -p "$S/linked-real/sub"
echo "behind a symlinked source" >"$S/linked-real/sub/file"
ln -s linked-real "$S/linked"
hs_setup_pair "$(hs_sets_for "$S")

[path linked]
source = $S/linked"
SOURCES="$(hs_all_sources "$S") $S/linked-real"
hs_start_standby

# The standby copy of a symlinked source holds the target's contents.
compare_linked() {
	rsync -naiHAXc --numeric-ids --modify-window=-1 --delete \
		"$S/linked-real/" "$T/standby$S/linked/"
}

sync_ok seed
SOURCES="$(hs_all_sources "$S")"
check "seed"
if [ -z "$(compare_linked)" ]; then
	pass=$((pass + 1)); echo "ok   symlinked source replicated as its tree"
else
	fail=$((fail + 1)); echo "FAIL symlinked source"; compare_linked
fi

# A re-sync with nothing changed sends nothing and says so.
sync_ok nochange
if grep -q "^sync: 0 files" "$T/sync.out"; then
	pass=$((pass + 1)); echo "ok   no-change sync sends no file"
else
	fail=$((fail + 1)); echo "FAIL no-change sync: $(cat "$T/sync.out")"
fi

# 1. content edits
I=$S/install
printf 'X' | dd of="$I/netboot/rhels9/x86_64/compute/rootimg.gz" bs=1 \
	seek=1000000 conv=notrunc status=none
echo "appended line" >>"$S/etc/hosts"
truncate -s 100 "$I/netboot/rhels9/x86_64/compute/initrd.img"
for i in $(seq 1 20); do echo "edit $i" >>"$I/postscripts/script$i"; done
sync_ok edits
check "edit inside, append, truncate, many small edits"

# 2. same size, same second: a rewrite that keeps the size
f=$I/postscripts/script30
sz=$(stat -c %s "$f")
head -c "$sz" /dev/urandom >"$f"
sync_ok samesize
check "same-size rewrite"

# 3. mtime-only change: content equal, so only metadata travels
touch -d '2001-02-03 04:05:06.7' "$I/custom/install/rh/compute2.tmpl"
sync_ok mtime
check "mtime-only change"
if grep -q " 1 metadata" "$T/sync.out"; then
	pass=$((pass + 1)); echo "ok   mtime-only change sent as metadata"
else
	fail=$((fail + 1)); echo "FAIL mtime-only: $(cat "$T/sync.out")"
fi

# 4. chmod, chown, setuid kept across the owner change
chmod 640 "$I/postscripts/script3"
chown 4321:8765 "$I/postscripts/script4"
chown 99:99 "$I/postscripts/script2" && chmod 4755 "$I/postscripts/script2"
chmod 2750 "$I/custom"
sync_ok meta
check "chmod, chown, setuid/setgid"

# 5. new files, deletes, renames of files and directories
mkdir -p "$I/new/deep/er"
echo n1 >"$I/new/deep/er/n1"
echo n2 >"$I/new/n2"
rm "$I/postscripts/script5" "$I/postscripts/script6"
mv "$I/postscripts/script7" "$I/postscripts/script7.renamed"
mv "$I/custom/install" "$I/custom/moved"
sync_ok newdel
check "new files, deletes, renames"

# 6. symlink retargeted, file <-> directory, dir <-> symlink
ln -sfn /elsewhere "$S/xcat/cert/current.pem"
rm "$I/postscripts/script8" && mkdir "$I/postscripts/script8" &&
	echo inside >"$I/postscripts/script8/f"
rm -r "$I/new/deep" && echo "now a file" >"$I/new/deep"
rm -r "$I/empty-dir" && ln -s postscripts "$I/empty-dir"
sync_ok types
check "symlink retarget, type changes"

# 7. awkward names: newline, invalid UTF-8, 255 bytes, spaces, leading dash
long=$(printf 'n%.0s' $(seq 1 255))
echo a >"$I/$long"
echo b >"$I/"$'new\nline'
echo c >"$I/"$'bad\xff\xfeutf8'
echo d >"$I/with space"
echo e >"$I/-dash"
sync_ok names
check "names of any bytes"

# 8. excludes: not sent, and an excluded file on the standby is not deleted
echo swap >"$S/xcat/cert/.server.swp"
echo standby-own >"$T/standby$S/xcat/ca/local.swp"
sync_ok excludes
if [ ! -e "$T/standby$S/xcat/cert/.server.swp" ] &&
	[ -e "$T/standby$S/xcat/ca/local.swp" ]; then
	pass=$((pass + 1)); echo "ok   excludes neither sent nor deleted"
	HS_COMPARE_EXCLUDE='*.swp' 
else
	fail=$((fail + 1)); echo "FAIL excludes"
fi

# 9. single-file sources replaced by rename, like sed -i
sed -i 's/node0001/node0001-renamed/' "$S/etc/hosts"
sync_ok sed
check "sed -i of a single-file source"

# 10. drift on the standby is overwritten by the next sync
echo "drift" >"$T/standby$I/postscripts/script9"
rm -f "$T/standby$I/postscripts/script10"
sync_ok drift
check "standby drift repaired"

# 10b. verify: identical after a sync; drift found, listed, and JSON
verify_rc() {
	set +e
	"$HS_BIN" -c "$C1" verify "$@" >"$T/verify.out" 2>"$T/verify.err"
	VERIFY_RC=$?
	set -e
}
verify_rc
if [ "$VERIFY_RC" -eq 0 ] && grep -q "identical" "$T/verify.out"; then
	pass=$((pass + 1)); echo "ok   verify: identical"
else
	fail=$((fail + 1)); echo "FAIL verify after sync: rc $VERIFY_RC $(cat "$T/verify.out" "$T/verify.err")"
fi
f=$I/postscripts/script11
printf 'X' | dd of="$T/standby$f" bs=1 seek=2 conv=notrunc status=none
touch -r "$f" "$T/standby$f"            # same size, same mtime: only the hash tells
verify_rc
if [ "$VERIFY_RC" -eq 1 ] && grep -q "script11: content differs" "$T/verify.out"; then
	pass=$((pass + 1)); echo "ok   verify finds same-size, same-mtime drift by hash"
else
	fail=$((fail + 1)); echo "FAIL verify drift: rc $VERIFY_RC $(cat "$T/verify.out")"
fi
verify_rc --json
if [ "$VERIFY_RC" -eq 1 ] && python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["identical"] is False
assert any(x["path"].endswith("script11") and x["reason"] == "content differs" for x in d["differences"])
' "$T/verify.out"; then
	pass=$((pass + 1)); echo "ok   verify --json parses and lists the drift"
else
	fail=$((fail + 1)); echo "FAIL verify --json: $(cat "$T/verify.out")"
fi
# sync does not see it (same size and mtime: like rsync), but a content
# change the primary makes later repairs it; put it back by hand here
cp -p "$f" "$T/standby$f"

# 10c. a listing of several frames (the standby sends 64 KiB at a time
# while it walks): 2,500 entries with long names span a few; drift put on
# the standby throughout them is found and repaired
L=$I/listing-frames
mkdir -p "$L"
for i in $(seq 1 2500); do
	printf 'entry %d\n' "$i" >"$L/a-fairly-long-file-name-to-fill-listing-frames-$i.cfg"
done
sync_ok frames
check "a set listed in several frames"
for i in $(seq 7 97 2500); do
	g="$T/standby$L/a-fairly-long-file-name-to-fill-listing-frames-$i.cfg"
	if [ $((i % 2)) -eq 0 ]; then rm -f "$g"; else echo "drifted" >>"$g"; fi
done
sync_ok frames-drift
check "drift across listing frames repaired"
# every frame arrived: nothing is sent again (a lost frame would make
# its entries look missing on the standby, and the sync resend them)
sync_ok frames-nochange
if grep -q "^sync: 0 files (0 B), 0 deltas" "$T/sync.out"; then
	pass=$((pass + 1)); echo "ok   no-change sync after a listing of several frames"
else
	fail=$((fail + 1)); echo "FAIL listing frames: $(cat "$T/sync.out")"
fi

# 11. the standby daemon restarted between syncs changes nothing
hs_stop_standby
hs_start_standby
sync_ok restart
check "after a standby restart"

# 11b. --progress: a line with files, bytes, rate and ETA on a terminal
# (script(1) gives it a pty), nothing when stdout is not a terminal
head -c 20000000 /dev/urandom >"$I/progress.img"
script -qec "$HS_BIN -c $C1 sync --progress" /dev/null >"$T/progress.tty" 2>&1 || true
echo more >>"$I/progress.img"
hs_sync --progress
if grep -q "files .* MiB/s ETA" "$T/progress.tty" &&
	! grep -q "MiB/s" "$T/sync.out"; then
	pass=$((pass + 1)); echo "ok   --progress on a terminal only"
else
	fail=$((fail + 1)); echo "FAIL --progress: $(tr '\r' '\n' <"$T/progress.tty" | tail -3)"
fi
check "after the progress syncs"

# 12. an unreachable standby: exit 3 and one line saying so
hs_stop_standby
hs_sync
if [ "$SYNC_RC" -eq 3 ] && [ "$(wc -l <"$T/sync.err")" -eq 1 ] &&
	grep -q "^hamnsync: sync: cannot connect" "$T/sync.err"; then
	pass=$((pass + 1)); echo "ok   unreachable standby: $(cat "$T/sync.err")"
else
	fail=$((fail + 1)); echo "FAIL unreachable: rc $SYNC_RC $(cat "$T/sync.err")"
fi

# 13. the daemon detaches without --foreground and writes its pid file
"$HS_BIN" -c "$C2" daemon || fail=$((fail + 1))
for ((i = 0; i < 50; i++)); do
	[ -s "$T/state2/hamnsync.pid" ] && break
	sleep 0.1
done
dpid=$(cat "$T/state2/hamnsync.pid" 2>/dev/null || echo 0)
HS_PIDS+=("$dpid")
hs_sync
if [ "$dpid" -gt 0 ] && kill -0 "$dpid" && [ "$SYNC_RC" -eq 0 ]; then
	pass=$((pass + 1)); echo "ok   detached daemon (pid $dpid) serves"
else
	fail=$((fail + 1)); echo "FAIL detached daemon: pid $dpid rc $SYNC_RC"
fi
# a second daemon on the same state_dir refuses to start
if "$HS_BIN" -c "$C2" daemon --foreground 2>"$T/second.err"; then
	fail=$((fail + 1)); echo "FAIL second daemon started"
else
	pass=$((pass + 1)); echo "ok   second daemon refused: $(tail -1 "$T/second.err")"
fi
# the primary detached too: its index is opened again after the fork
# (LMDB forbids using an environment across fork()); a change arrives
"$HS_BIN" -c "$C1" daemon || fail=$((fail + 1))
for ((i = 0; i < 50; i++)); do
	[ -s "$T/state1/hamnsync.pid" ] && break
	sleep 0.1
done
ppid_=$(cat "$T/state1/hamnsync.pid" 2>/dev/null || echo 0)
HS_PIDS+=("$ppid_")
f=$S/install/detached-edit
echo "written while both daemons are detached" >"$f"
[ "$ppid_" -gt 0 ] || { fail=$((fail + 1)); echo "FAIL detached primary: no pid file"; }
STANDBY_PID=$dpid # the standby's status is asked too
hs_wait_same "detached primary (pid $ppid_) replicates" 10 "$S/install"
kill "$ppid_" 2>/dev/null || true
hs_wait_gone "$ppid_" 100 || { fail=$((fail + 1)); echo "FAIL primary did not stop"; }
kill "$dpid"
hs_wait_gone "$dpid" 100 || { fail=$((fail + 1)); echo "FAIL daemon did not stop"; }
[ ! -e "$T/state2/hamnsync.pid" ] || { fail=$((fail + 1)); echo "FAIL pid file left"; }

pass=$((pass + HS_PASSED))
fail=$((fail + HS_FAILED))
echo "test_replicate: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
