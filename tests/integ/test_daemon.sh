#!/usr/bin/env bash
# Continuous replication: a standby and a primary daemon run side by side;
# each case changes the primary's tree and waits (bounded) until the
# standby's copy is identical again (rsync -naiHAXc as the oracle).  Covers
# edits, appends, creates, nested mkdir races, deletes, renames, sed -i of
# a single-file source, same-second same-size rewrites, metadata, symlinks,
# a slow writer, a 100,000-file storm, a storm that surely overflows the
# inotify queue (the primary SIGSTOPped meanwhile),
# SIGHUP with a new set and SIGTERM.  Latencies of a few single edits are
# printed for information only: nothing here asserts on wall-clock time,
# a bounded wait fails only when convergence never happens.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# wait_same NAME SECONDS STEP SOURCE...: lib.sh's honest wait (status
# says in-sync and promote ready, then the trees are compared once; STEP
# is not used any more); counts the result, leaves it in WS_OK (1
# identical) and always returns 0.
wait_same() {
	local name=$1 secs=$2
	shift 3
	hs_wait_same "$name" "$secs" "$@"
	WS_OK=$HS_SAME
	return 0
}

# count_log PATTERN: how many lines of the primary's log match.
count_log() {
	grep -c -- "$1" "$T/primary.log" 2>/dev/null || true
}

# repair_all: after a failed case, a whole reconciliation (SIGUSR1) so the
# next cases start from identical trees; not counted.
repair_all() {
	local i
	kill -USR1 "$PRIMARY_PID"
	for ((i = 0; i < 60; i++)); do
		if hs_compare $SOURCES 2>/dev/null; then
			echo "info: a whole reconciliation (SIGUSR1) repaired it"
			return 0
		fi
		sleep 1
	done
	echo "info: not even a whole reconciliation (SIGUSR1) repaired it"
}

primary_alive() {
	kill -0 "$PRIMARY_PID" 2>/dev/null
}

start_primary() {
	"$HS_BIN" -c "$C1" daemon --foreground >>"$T/primary.log" 2>&1 &
	PRIMARY_PID=$!
	HS_PIDS+=("$PRIMARY_PID")
}

# expect_watched [WHEN]: the primary's inotify instance holds a watch for every
# directory below the directory sources and for the directory of each
# single-file source (counted from /proc/PID/fdinfo).
expect_watched() {
	local fd want have s
	fd=$(find "/proc/$PRIMARY_PID/fd" -lname 'anon_inode:inotify' \
		-printf '%f\n' 2>/dev/null | head -1)
	if [ -z "$fd" ]; then
		echo "info: no inotify descriptor in /proc/$PRIMARY_PID/fd" \
			"(another watcher backend?): watch count not checked"
		return 0
	fi
	have=$(grep -c '^inotify wd:' "/proc/$PRIMARY_PID/fdinfo/$fd" || true)
	want=0
	for s in $SOURCES; do
		if [ -d "$s" ] && [ ! -L "$s" ]; then
			want=$((want + $(find "$s" -type d | wc -l)))
		fi
	done
	want=$((want + $(for s in $SOURCES; do
		[ -d "$s" ] || dirname "$s"; done | sort -u | wc -l)))
	if [ "$have" -ge "$want" ]; then
		ok "every directory is watched$1 ($have watches, $want directories)"
	else
		bad "watches$1: only $have inotify watches for $want directories:" \
			"$((want - have)) directories are not watched any more"
	fi
}

hs_init daemon
S=$T/src
I=$S/install
hs_gen_tree "$S"
hs_setup_pair "$(hs_sets_for "$S")"
SOURCES=$(hs_all_sources "$S")
hs_start_standby
start_primary

# 0. the first full reconciliation seeds the standby
wait_same "first reconciliation seeds the standby" 60 0.1 $SOURCES
[ $WS_OK -eq 1 ] || { tail -20 "$T/primary.log"; hs_fail "no seed, giving up"; }
grep -q "connected to standby" "$T/primary.log" &&
	ok "primary logged its connection" || bad "no 'connected' log line"

W=10    # seconds a single change may take before the case fails
P=0.02  # poll step

# 1. edits of existing files: in the middle, append, truncate
printf 'X' | dd of="$I/netboot/rhels9/x86_64/compute/rootimg.gz" bs=1 \
	seek=1000000 conv=notrunc status=none
wait_same "edit inside a 3 MB file" $W $P $SOURCES
echo "appended line" >>"$I/postscripts/script9"
wait_same "append" $W $P $SOURCES
truncate -s 100 "$I/netboot/rhels9/x86_64/compute/initrd.img"
wait_same "truncate" $W $P $SOURCES

# 2. new files, and new nested directories filled right after mkdir
echo "new file" >"$I/newfile"
wait_same "new file" $W $P $SOURCES
mkdir -p "$I/a/b/c" && echo "born with its directory" >"$I/a/b/c/f"
wait_same "mkdir -p a/b/c; file in it at once" $W $P $SOURCES
for i in $(seq 1 20); do
	mkdir -p "$I/race$i/x/y/z" && echo "$i" >"$I/race$i/x/y/z/f$i" &&
		echo "$i" >"$I/race$i/g$i"
done
wait_same "20 nested mkdir races" $W $P $SOURCES
mkdir "$I/deep" && (cd "$I/deep" && for i in $(seq 1 30); do
	mkdir "d$i" && cd "d$i" && echo "$i" >f; done)
wait_same "30-level chain created while watching" $W $P $SOURCES

# 3. deletes of files and of whole trees
rm "$I/postscripts/script10" "$I/newfile"
wait_same "delete files" $W $P $SOURCES
rm -rf "$I/race1" "$I/race2" "$I/a"
wait_same "rm -rf directory trees" $W $P $SOURCES

# 4. renames of files and whole directories
mv "$I/postscripts/script11" "$I/postscripts/script11.renamed"
wait_same "rename a file" $W $P $SOURCES
mv "$I/custom/install" "$I/custom/moved"
wait_same "rename a directory" $W $P $SOURCES
mv "$I/race3" "$I/deep/d1/race3-moved-below"
wait_same "move a directory into another one" $W $P $SOURCES
mkdir "$I/outside-swap" && mv "$I/race4" "$I/outside-swap/" &&
	mv "$I/outside-swap" "$I/swapped"
wait_same "rename a directory just after moving into it" $W $P $SOURCES

# 5. sed -i of a single-file source (temporary file renamed over it)
sed -i 's/node0001 /node0001-renamed /' "$S/etc/hosts"
wait_same "sed -i on the hosts file (single-file source)" $W $P $SOURCES
sed -i '$a 10.9.9.9 added-by-sed' "$S/etc/resolv.conf"
wait_same "sed -i on resolv.conf" $W $P $SOURCES

# 6. a same-size rewrite within the same second: size and whole-second
#    mtime look unchanged (rsync's quick check misses it)
f=$I/samesize
printf 'AAAAAAAAAAAAAAAA\n' >"$f"
wait_same "same-size: first version" $W $P $SOURCES
printf 'BBBBBBBBBBBBBBBB\n' >"$f"
wait_same "same-size rewrite right after" $W $P $SOURCES
#    forced into one second: .100 then .900 of the same second
printf 'CCCCCCCCCCCCCCCC\n' >"$f"
touch -d '2024-05-06 07:08:09.100000000' "$f"
wait_same "same-size: version with mtime hh:mm:09.1" $W $P $SOURCES
printf 'DDDDDDDDDDDDDDDD\n' >"$f"
touch -d '2024-05-06 07:08:09.900000000' "$f"
wait_same "same-size rewrite, mtime in the same second (09.9)" $W $P $SOURCES
#    even the nanosecond mtime put back: only ctime (and the content) tell
printf 'EEEEEEEEEEEEEEEE\n' >"$f"
touch -d '2024-05-06 07:08:09.900000000' "$f"
wait_same "same-size rewrite with the mtime put back exactly" $W $P $SOURCES
#    a file of the same size and the same nanosecond mtime renamed over it:
#    only inode, ctime and content differ
printf 'FFFFFFFFFFFFFFFF\n' >"$T/samesize.new"
touch -d '2024-05-06 07:08:09.900000000' "$T/samesize.new"
mv "$T/samesize.new" "$f"
wait_same "same size and mtime, renamed over it" $W $P $SOURCES
if [ $WS_OK -eq 0 ]; then
	# Does a whole reconciliation see it?  (information for the report)
	kill -USR1 "$PRIMARY_PID"
	sleep 2
	if hs_compare "$f" 2>/dev/null; then
		echo "info: a whole reconciliation (SIGUSR1) repaired it"
	else
		echo "info: not even a whole reconciliation (SIGUSR1) repaired it"
	fi
fi
#    a rewrite with another size repairs the copy for the cases below
printf 'GGGGGGGGGGGGGGGGGGGGGG\n' >"$f"
wait_same "same-size file rewritten with another size" $W $P $SOURCES

# 7. metadata: chmod, chown, directories included
chmod 600 "$I/postscripts/script12"
wait_same "chmod a file" $W $P $SOURCES
chown 4321:8765 "$I/postscripts/script13"
wait_same "chown a file" $W $P $SOURCES
chmod 2750 "$I/custom" && chown 77:88 "$I/custom"
wait_same "chmod/chown a directory" $W $P $SOURCES
touch -d '2001-02-03 04:05:06.7' "$I/postscripts/script14"
wait_same "touch (mtime only)" $W $P $SOURCES

# 8. symlinks: created, retargeted, replaced by a file
ln -s postscripts/script15 "$I/link1"
wait_same "symlink created" $W $P $SOURCES
ln -sfn /elsewhere/entirely "$I/link1"
wait_same "symlink retargeted" $W $P $SOURCES
ln -sfn server-cert.pem.new "$S/xcat/cert/current.pem"
wait_same "symlink retargeted in another set" $W $P $SOURCES
rm "$I/link1" && echo "now a file" >"$I/link1"
wait_same "symlink replaced by a file" $W $P $SOURCES

# 9. a file kept open and written slowly ends identical after close
exec 3>"$I/slow.log"
echo "first part" >&3
sleep 2.5     # past the watcher's bound for open files: a partial copy may go
echo "second part" >&3
sleep 0.5
echo "third part" >&3
exec 3>&-
wait_same "file written slowly while open, after close" $W $P $SOURCES

# 10. latency of single small edits (information only, no assertion)
lat=()
for i in $(seq 1 10); do
	tok="token-$i-$RANDOM$RANDOM"
	t0=$(date +%s%N)
	printf '%s\n' "$tok" >"$I/latency.txt"
	seen=0
	for ((k = 0; k < 200000; k++)); do
		line=""
		{ read -r line <"$T/standby$I/latency.txt"; } 2>/dev/null || true
		if [ "$line" = "$tok" ]; then
			seen=1
			break
		fi
		[ $((k % 1000)) -eq 999 ] &&
			[ $(($(date +%s%N) - t0)) -gt 10000000000 ] && break
	done
	t1=$(date +%s%N)
	if [ $seen -eq 1 ]; then
		lat+=("$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.1f", d / 1e6 }')")
	else
		lat+=("lost")
	fi
	sleep 0.05
done
echo "info: single-edit latency (ms, write to visible on the standby): ${lat[*]}"
if printf '%s\n' "${lat[@]}" | grep -q lost; then
	bad "a latency probe never arrived"
else
	ok "10 latency probes arrived"
fi

# 11. a 100,000-file create storm in a fresh tree, while the primary runs
#     flat out (whether its queue overflows depends on how fast it reads)
expect_watched " before the storm"
ovf_before=$(count_log "queue overflowed")
full_before=$(count_log "set install reconciled")
mkdir -p "$I/storm"
for d in $(seq -w 0 9); do
	mkdir "$I/storm/d$d"
	(cd "$I/storm/d$d" && seq -f "f%05g" 1 10000 | xargs touch)
done
[ "$(find "$I/storm" -type f | wc -l)" -eq 100000 ] ||
	bad "storm: did not create 100000 files"
wait_same "100,000-file storm" 90 1 $SOURCES
if [ $WS_OK -eq 0 ]; then
	echo "storm: files missing on the standby, per directory:"
	for d in "$I"/storm/d*; do
		echo "  ${d##*/}: $(find "$d" -type f | wc -l) on the primary," \
			"$(find "$T/standby$d" -type f 2>/dev/null | wc -l) on the standby"
	done
	grep -n "overflow\|reconciled\|whole" "$T/primary.log" | tail -8
fi
echo "info: storm: $(($(count_log "queue overflowed") - ovf_before)) queue" \
	"overflows, $(($(count_log "set install reconciled") - full_before))" \
	"whole reconciliations of the set"
# Every directory must still be watched: one lost in an overflow would
# hide every later change below it.
expect_watched " after the storm"
for d in "$I"/storm/d*; do echo "after the storm" >"$d/after"; done
wait_same "a new file in each storm directory after the storm" $W $P $SOURCES
[ $WS_OK -eq 1 ] || repair_all
primary_alive && ok "primary still running after the storm" ||
	bad "primary died during the storm"

# 11b. a storm that surely overflows the queue: the primary is stopped
#      (SIGSTOP) while a watched directory gets more files than the queue
#      holds events; then new directories are made and filled, their
#      creation events lost in the overflow
maxq=$(cat /proc/sys/fs/inotify/max_queued_events 2>/dev/null || echo 16384)
[ "$maxq" -gt 200000 ] && maxq=200000
mkdir -p "$I/storm2"
wait_same "storm 2: its directory is there" $W $P $SOURCES
ovf_before=$(count_log "queue overflowed")
full_before=$(count_log "set install reconciled")
kill -STOP "$PRIMARY_PID"
(cd "$I/storm2" && seq -f "fill%06g" 1 "$maxq" | xargs touch)
for d in 1 2 3 4 5; do
	mkdir -p "$I/storm2/d$d/sub"
	(cd "$I/storm2/d$d" && seq -f "g%05g" 1 2000 | xargs touch)
	echo "$d" >"$I/storm2/d$d/sub/f"
done
kill -CONT "$PRIMARY_PID"
wait_same "storm of $((maxq + 10005)) files while the primary was stopped" \
	120 1 $SOURCES
if [ "$(count_log "queue overflowed")" -gt "$ovf_before" ]; then
	ok "storm 2: the primary saw the inotify queue overflow"
elif [ "$(count_log "set install reconciled")" -gt "$full_before" ] ||
	[ "$(count_log "reconciling it whole")" -gt 0 ]; then
	ok "storm 2: no overflow logged, but a whole reconciliation ran"
else
	bad "storm 2: neither an overflow nor a whole reconciliation logged"
fi
expect_watched " after the overflow"
for d in 1 2 3 4 5; do
	echo "after the overflow" >"$I/storm2/d$d/after"
	echo "after the overflow" >"$I/storm2/d$d/sub/after"
done
wait_same "new files in directories created during the overflow" $W $P $SOURCES
[ $WS_OK -eq 1 ] || repair_all
primary_alive && ok "primary still running after the overflow" ||
	bad "primary died after the overflow"

# 12. SIGHUP with a new [path] set (standby first): the new set seeds itself
X=$S/extra
mkdir -p "$X/sub"
for i in $(seq 1 50); do echo "extra $i" >"$X/sub/e$i"; done
ln -s sub/e1 "$X/link"
NEWSET="
[path extra]
source = $X"
printf '%s\n' "$NEWSET" >>"$C2"
kill -HUP "$STANDBY_PID"
for ((i = 0; i < 100; i++)); do
	grep -q "standby: configuration reloaded" "$T/standby.log" && break
	sleep 0.1
done
grep -q "standby: configuration reloaded" "$T/standby.log" ||
	bad "standby did not log its reload"
printf '%s\n' "$NEWSET" >>"$C1"
kill -HUP "$PRIMARY_PID"
wait_same "SIGHUP: a new set seeds itself" 60 0.1 "$X"
grep -q "primary: configuration reloaded" "$T/primary.log" &&
	ok "primary logged its reload" || bad "no reload line in the primary log"
echo "changed after reload" >"$X/sub/e2"
wait_same "the new set is watched after the reload" $W $P "$X"
echo "old set still watched" >>"$S/xcat/ca/private/ca-key.pem"
wait_same "old sets still watched after the reload" $W $P "$S/xcat/ca"

# 13. SIGUSR1: reconcile every set now (a change the watcher cannot see:
#     made on the standby's copy, i.e. drift, is repaired by a full run)
echo "drift" >>"$T/standby$S/xcat/cert/server-cert.pem"
kill -USR1 "$PRIMARY_PID"
wait_same "SIGUSR1 reconciles every set (repairs drift)" 30 0.1 "$S/xcat/cert"

# 14. SIGTERM: what changed just before goes out, then exit 0
for i in $(seq 1 20); do echo "last words $i" >"$S/xcat/cert/term$i.pem"; done
echo "last hosts line" >>"$S/etc/hosts"
kill -TERM "$PRIMARY_PID"
if hs_wait_gone "$PRIMARY_PID" 150; then
	set +e
	wait "$PRIMARY_PID"
	rc=$?
	set -e
	[ "$rc" -eq 0 ] && ok "SIGTERM: primary exited 0" ||
		bad "SIGTERM: primary exited $rc"
else
	bad "SIGTERM: primary still running after 15 s"
fi
# What the stopped primary saved at its clean stop: every set in-sync.
hs_expect_status "SIGTERM: the stopped primary's last status says every set in-sync" \
	"$C1" 'd["daemon"] == "stopped" and all(p["state"] == "in-sync" for p in d["paths"])'
if hs_compare "$S/xcat/cert" "$S/etc/hosts"; then
	ok "SIGTERM: changes made just before the TERM are on the standby"
else
	bad "SIGTERM: changes made just before the TERM are missing"
fi
grep -q "primary: stopped" "$T/primary.log" &&
	ok "primary logged its stop" || bad "no stop line in the primary log"

kill -0 "$STANDBY_PID" 2>/dev/null && ok "standby still running" ||
	bad "standby died"

pass=$((pass + HS_PASSED))
fail=$((fail + HS_FAILED))
if [ $fail -gt 0 ]; then
	echo "--- primary log (tail)"
	tail -30 "$T/primary.log"
	echo "--- standby log (tail)"
	tail -30 "$T/standby.log"
fi
echo "test_daemon: $pass passed, $fail failed"
[ $fail -eq 0 ]
