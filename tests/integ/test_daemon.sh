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
		hs_ok "every directory is watched$1 ($have watches, $want directories)"
	else
		hs_bad "watches$1: only $have inotify watches for $want directories:" \
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
hs_start_primary

# 0. the first full reconciliation seeds the standby
hs_wait_same "first reconciliation seeds the standby" 60 $SOURCES
[ $HS_SAME -eq 1 ] || { tail -20 "$T/primary.log"; hs_fail "no seed, giving up"; }
grep -q "connected to standby" "$T/primary.log" &&
	hs_ok "primary logged its connection" || hs_bad "no 'connected' log line"

W=10    # seconds a single change may take before the case fails

# 1. edits of existing files: in the middle, append, truncate
printf 'X' | dd of="$I/netboot/rhels9/x86_64/compute/rootimg.gz" bs=1 \
	seek=1000000 conv=notrunc status=none
hs_wait_same "edit inside a 3 MB file" $W $SOURCES
echo "appended line" >>"$I/postscripts/script9"
hs_wait_same "append" $W $SOURCES
truncate -s 100 "$I/netboot/rhels9/x86_64/compute/initrd.img"
hs_wait_same "truncate" $W $SOURCES

# 2. new files, and new nested directories filled right after mkdir
echo "new file" >"$I/newfile"
hs_wait_same "new file" $W $SOURCES
mkdir -p "$I/a/b/c" && echo "born with its directory" >"$I/a/b/c/f"
hs_wait_same "mkdir -p a/b/c; file in it at once" $W $SOURCES
for i in $(seq 1 20); do
	mkdir -p "$I/race$i/x/y/z" && echo "$i" >"$I/race$i/x/y/z/f$i" &&
		echo "$i" >"$I/race$i/g$i"
done
hs_wait_same "20 nested mkdir races" $W $SOURCES
mkdir "$I/deep" && (cd "$I/deep" && for i in $(seq 1 30); do
	mkdir "d$i" && cd "d$i" && echo "$i" >f; done)
hs_wait_same "30-level chain created while watching" $W $SOURCES

# 3. deletes of files and of whole trees
rm "$I/postscripts/script10" "$I/newfile"
hs_wait_same "delete files" $W $SOURCES
rm -rf "$I/race1" "$I/race2" "$I/a"
hs_wait_same "rm -rf directory trees" $W $SOURCES

# 4. renames of files and whole directories
mv "$I/postscripts/script11" "$I/postscripts/script11.renamed"
hs_wait_same "rename a file" $W $SOURCES
mv "$I/custom/install" "$I/custom/moved"
hs_wait_same "rename a directory" $W $SOURCES
mv "$I/race3" "$I/deep/d1/race3-moved-below"
hs_wait_same "move a directory into another one" $W $SOURCES
mkdir "$I/outside-swap" && mv "$I/race4" "$I/outside-swap/" &&
	mv "$I/outside-swap" "$I/swapped"
hs_wait_same "rename a directory just after moving into it" $W $SOURCES

# 5. sed -i of a single-file source (temporary file renamed over it)
sed -i 's/node0001 /node0001-renamed /' "$S/etc/hosts"
hs_wait_same "sed -i on the hosts file (single-file source)" $W $SOURCES
sed -i '$a 10.9.9.9 added-by-sed' "$S/etc/resolv.conf"
hs_wait_same "sed -i on resolv.conf" $W $SOURCES

# 6. a same-size rewrite within the same second: size and whole-second
#    mtime look unchanged (rsync's quick check misses it)
f=$I/samesize
printf 'AAAAAAAAAAAAAAAA\n' >"$f"
hs_wait_same "same-size: first version" $W $SOURCES
printf 'BBBBBBBBBBBBBBBB\n' >"$f"
hs_wait_same "same-size rewrite right after" $W $SOURCES
#    forced into one second: .100 then .900 of the same second
printf 'CCCCCCCCCCCCCCCC\n' >"$f"
touch -d '2024-05-06 07:08:09.100000000' "$f"
hs_wait_same "same-size: version with mtime hh:mm:09.1" $W $SOURCES
printf 'DDDDDDDDDDDDDDDD\n' >"$f"
touch -d '2024-05-06 07:08:09.900000000' "$f"
hs_wait_same "same-size rewrite, mtime in the same second (09.9)" $W $SOURCES
#    even the nanosecond mtime put back: only ctime (and the content) tell
printf 'EEEEEEEEEEEEEEEE\n' >"$f"
touch -d '2024-05-06 07:08:09.900000000' "$f"
hs_wait_same "same-size rewrite with the mtime put back exactly" $W $SOURCES
#    a file of the same size and the same nanosecond mtime renamed over it:
#    only inode, ctime and content differ
printf 'FFFFFFFFFFFFFFFF\n' >"$T/samesize.new"
touch -d '2024-05-06 07:08:09.900000000' "$T/samesize.new"
mv "$T/samesize.new" "$f"
hs_wait_same "same size and mtime, renamed over it" $W $SOURCES
if [ $HS_SAME -eq 0 ]; then
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
hs_wait_same "same-size file rewritten with another size" $W $SOURCES

# 7. metadata: chmod, chown, directories included
chmod 600 "$I/postscripts/script12"
hs_wait_same "chmod a file" $W $SOURCES
chown 4321:8765 "$I/postscripts/script13"
hs_wait_same "chown a file" $W $SOURCES
chmod 2750 "$I/custom" && chown 77:88 "$I/custom"
hs_wait_same "chmod/chown a directory" $W $SOURCES
touch -d '2001-02-03 04:05:06.7' "$I/postscripts/script14"
hs_wait_same "touch (mtime only)" $W $SOURCES

# 8. symlinks: created, retargeted, replaced by a file
ln -s postscripts/script15 "$I/link1"
hs_wait_same "symlink created" $W $SOURCES
ln -sfn /elsewhere/entirely "$I/link1"
hs_wait_same "symlink retargeted" $W $SOURCES
ln -sfn server-cert.pem.new "$S/xcat/cert/current.pem"
hs_wait_same "symlink retargeted in another set" $W $SOURCES
rm "$I/link1" && echo "now a file" >"$I/link1"
hs_wait_same "symlink replaced by a file" $W $SOURCES

# 9. a file kept open and written slowly ends identical after close
exec 3>"$I/slow.log"
echo "first part" >&3
sleep 2.5     # past the watcher's bound for open files: a partial copy may go
echo "second part" >&3
sleep 0.5
echo "third part" >&3
exec 3>&-
hs_wait_same "file written slowly while open, after close" $W $SOURCES

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
if printf '%s\n' "${lat[@]}" | hs_has lost; then
	hs_bad "a latency probe never arrived"
else
	hs_ok "10 latency probes arrived"
fi

# 11. a 100,000-file create storm in a fresh tree, while the primary runs
#     flat out (whether its queue overflows depends on how fast it reads)
expect_watched " before the storm"
ovf_before=$(hs_count_log "$T/primary.log" "queue overflowed")
full_before=$(hs_count_log "$T/primary.log" "set install reconciled")
mkdir -p "$I/storm"
for d in $(seq -w 0 9); do
	mkdir "$I/storm/d$d"
	(cd "$I/storm/d$d" && seq -f "f%05g" 1 10000 | xargs touch)
done
[ "$(find "$I/storm" -type f | wc -l)" -eq 100000 ] ||
	hs_bad "storm: did not create 100000 files"
hs_wait_same "100,000-file storm" 90 $SOURCES
if [ $HS_SAME -eq 0 ]; then
	echo "storm: files missing on the standby, per directory:"
	for d in "$I"/storm/d*; do
		echo "  ${d##*/}: $(find "$d" -type f | wc -l) on the primary," \
			"$(find "$T/standby$d" -type f 2>/dev/null | wc -l) on the standby"
	done
	grep -n "overflow\|reconciled\|whole" "$T/primary.log" | tail -8
fi
echo "info: storm: $(($(hs_count_log "$T/primary.log" "queue overflowed") - ovf_before)) queue" \
	"overflows, $(($(hs_count_log "$T/primary.log" "set install reconciled") - full_before))" \
	"whole reconciliations of the set"
# Every directory must still be watched: one lost in an overflow would
# hide every later change below it.
expect_watched " after the storm"
for d in "$I"/storm/d*; do echo "after the storm" >"$d/after"; done
hs_wait_same "a new file in each storm directory after the storm" $W $SOURCES
[ $HS_SAME -eq 1 ] || repair_all
primary_alive && hs_ok "primary still running after the storm" ||
	hs_bad "primary died during the storm"

# 11b. a storm that surely overflows the queue: the primary is stopped
#      (SIGSTOP) while a watched directory gets more files than the queue
#      holds events; then new directories are made and filled, their
#      creation events lost in the overflow
maxq=$(cat /proc/sys/fs/inotify/max_queued_events 2>/dev/null || echo 16384)
[ "$maxq" -gt 200000 ] && maxq=200000
mkdir -p "$I/storm2"
hs_wait_same "storm 2: its directory is there" $W $SOURCES
ovf_before=$(hs_count_log "$T/primary.log" "queue overflowed")
full_before=$(hs_count_log "$T/primary.log" "set install reconciled")
kill -STOP "$PRIMARY_PID"
(cd "$I/storm2" && seq -f "fill%06g" 1 "$maxq" | xargs touch)
for d in 1 2 3 4 5; do
	mkdir -p "$I/storm2/d$d/sub"
	(cd "$I/storm2/d$d" && seq -f "g%05g" 1 2000 | xargs touch)
	echo "$d" >"$I/storm2/d$d/sub/f"
done
kill -CONT "$PRIMARY_PID"
hs_wait_same "storm of $((maxq + 10005)) files while the primary was stopped" \
	120 $SOURCES
if [ "$(hs_count_log "$T/primary.log" "queue overflowed")" -gt "$ovf_before" ]; then
	hs_ok "storm 2: the primary saw the inotify queue overflow"
elif [ "$(hs_count_log "$T/primary.log" "set install reconciled")" -gt "$full_before" ] ||
	[ "$(hs_count_log "$T/primary.log" "reconciling it whole")" -gt 0 ]; then
	hs_ok "storm 2: no overflow logged, but a whole reconciliation ran"
else
	hs_bad "storm 2: neither an overflow nor a whole reconciliation logged"
fi
expect_watched " after the overflow"
for d in 1 2 3 4 5; do
	echo "after the overflow" >"$I/storm2/d$d/after"
	echo "after the overflow" >"$I/storm2/d$d/sub/after"
done
hs_wait_same "new files in directories created during the overflow" $W $SOURCES
[ $HS_SAME -eq 1 ] || repair_all
primary_alive && hs_ok "primary still running after the overflow" ||
	hs_bad "primary died after the overflow"

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
	hs_bad "standby did not log its reload"
printf '%s\n' "$NEWSET" >>"$C1"
kill -HUP "$PRIMARY_PID"
hs_wait_same "SIGHUP: a new set seeds itself" 60 "$X"
grep -q "primary: configuration reloaded" "$T/primary.log" &&
	hs_ok "primary logged its reload" || hs_bad "no reload line in the primary log"
echo "changed after reload" >"$X/sub/e2"
hs_wait_same "the new set is watched after the reload" $W "$X"
echo "old set still watched" >>"$S/xcat/ca/private/ca-key.pem"
hs_wait_same "old sets still watched after the reload" $W "$S/xcat/ca"

# 13. SIGUSR1: reconcile every set now (a change the watcher cannot see:
#     made on the standby's copy, i.e. drift, is repaired by a full run)
echo "drift" >>"$T/standby$S/xcat/cert/server-cert.pem"
kill -USR1 "$PRIMARY_PID"
hs_wait_same "SIGUSR1 reconciles every set (repairs drift)" 30 "$S/xcat/cert"

# 14. SIGTERM: what changed just before goes out, then exit 0
for i in $(seq 1 20); do echo "last words $i" >"$S/xcat/cert/term$i.pem"; done
echo "last hosts line" >>"$S/etc/hosts"
hs_signal TERM "$PRIMARY_PID"
if hs_wait_gone "$PRIMARY_PID" 150; then
	set +e
	wait "$PRIMARY_PID"
	rc=$?
	set -e
	[ "$rc" -eq 0 ] && hs_ok "SIGTERM: primary exited 0" ||
		hs_bad "SIGTERM: primary exited $rc"
else
	hs_bad "SIGTERM: primary still running after 15 s"
fi
# What the stopped primary saved at its clean stop: every set in-sync.
hs_expect_status "SIGTERM: the stopped primary's last status says every set in-sync" \
	"$C1" 'd["daemon"] == "stopped" and all(p["state"] == "in-sync" for p in d["paths"])'
if hs_compare "$S/xcat/cert" "$S/etc/hosts"; then
	hs_ok "SIGTERM: changes made just before the TERM are on the standby"
else
	hs_bad "SIGTERM: changes made just before the TERM are missing"
fi
grep -q "primary: stopped" "$T/primary.log" &&
	hs_ok "primary logged its stop" || hs_bad "no stop line in the primary log"

kill -0 "$STANDBY_PID" 2>/dev/null && hs_ok "standby still running" ||
	hs_bad "standby died"

if [ "$HS_FAILED" -gt 0 ]; then
	echo "--- primary log (tail)"
	tail -30 "$T/primary.log"
	echo "--- standby log (tail)"
	tail -30 "$T/standby.log"
fi
hs_result test_daemon
