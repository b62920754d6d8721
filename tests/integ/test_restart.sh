#!/usr/bin/env bash
# Restarts against the file index and the change journal.  A primary
# daemon seeds the standby; then, with the daemon stopped, the primary's
# tree changes in every way (edit, create, delete, rmdir, chmod, rename, a
# same-size rewrite with its mtime put back); the restarted daemon must
# find exactly those paths by comparing stat with its index (no whole
# reconciliation) and the trees end identical.  Then: a restart with
# nothing changed sends nothing; SIGKILL of the primary while a run waits
# for its acknowledgement, restart, nothing lost; a standby whose index
# claims a run it never received (edited offline with mdb_dump/mdb_load)
# and a journal entry naming a path outside the sources (same way) each
# get one clear log line and a safe whole reconciliation; a damaged
# index is refused at start with a line naming the file.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

# meta_edit STATE KEY_HEX NEW_VALUE_HEX: replace one record of the meta
# database of an index, offline, with LMDB's own dump and load tools.
meta_edit() {
	local dir=$1/index
	mdb_dump -s meta "$dir" >"$T/meta.dump"
	awk -v k=" $2" -v v=" $3" '
		skip { skip = 0; print v; next }
		$0 == k { print; skip = 1; next }
		{ print }' "$T/meta.dump" >"$T/meta.new"
	cmp -s "$T/meta.dump" "$T/meta.new" && hs_fail "meta_edit: key $2 not found"
	mdb_load -s meta "$dir" <"$T/meta.new" 2>>"$T/mdb_load.out"
}

hs_init restart
S=$T/src
I=$S/install
hs_gen_tree "$S"
# Enough files that a whole reconciliation and a diff differ in kind.
mkdir -p "$I/many"
for d in $(seq 1 20); do
	mkdir -p "$I/many/d$d"
	for f in $(seq 1 50); do echo "$d $f" >"$I/many/d$d/f$f"; done
done
hs_setup_pair "$(hs_sets_for "$S")"
SOURCES=$(hs_all_sources "$S")
hs_start_standby
hs_start_primary
hs_wait_same "the daemon seeds the standby" 60 $SOURCES
hs_wait_log "$T/primary.log" "set install reconciled" 1 30 || hs_bad "no whole run logged at seed"

# 1. changes while the primary is down, found from the index
hs_stop_primary
echo "edited while down" >>"$I/postscripts/script3"
echo "new while down" >"$I/many/d1/new"
rm "$I/many/d2/f7"
rm -r "$I/many/d3"
chmod 600 "$I/postscripts/script4"
mv "$I/many/d4/f1" "$I/many/d4/renamed"
f="$I/custom/install/rh/compute2.tmpl"
touch -r "$f" "$T/mtime.ref"
printf 'TEMPLATE 2\n%%packages\n@core\n' >"$f" # same size, other bytes
touch -r "$T/mtime.ref" "$f"
full_before=$(hs_count_log "$T/primary.log" "reconciled:")
hs_start_primary
hs_wait_same "changes made while the primary was down arrive" 60 $SOURCES
if hs_wait_log "$T/primary.log" "set install: [0-9]* paths differ from the index" 1 10; then
	n=$(grep -o "set install: [0-9]* paths differ" "$T/primary.log" | tail -1 | grep -o '[0-9]*')
	# edit, new + its dir, deleted + its dir, d3 and its 50 files + the
	# parent, chmod, renamed from + to + dir, the rewrite and its dir
	if [ "$n" -ge 6 ] && [ "$n" -le 80 ]; then
		hs_ok "restart compared stat with the index: $n paths differ"
	else
		hs_bad "restart: $n paths differ from the index, expected 6..80"
	fi
else
	hs_bad "restart did not compare with the index"
	tail -5 "$T/primary.log"
fi
[ "$(hs_count_log "$T/primary.log" "reconciled:")" -eq "$full_before" ] &&
	hs_ok "no set was reconciled whole at restart" ||
	hs_bad "a set was reconciled whole at restart"
cmp -s "$f" "$T/standby$f" && hs_ok "same-size rewrite with its mtime put back arrived" ||
	hs_bad "same-size rewrite with its mtime put back missed"

# 2. nothing changed: nothing differs, nothing is sent
hs_stop_primary
hs_start_primary
if hs_wait_log "$T/primary.log" "set install: 0 paths differ from the index" 1 30; then
	hs_ok "restart with nothing changed: 0 paths differ"
else
	hs_bad "restart with nothing changed: did not report 0 paths"
fi
hs_wait_same "still identical after a no-change restart" 30 $SOURCES

# 2a. changes while the restarted primary walks its trees (it watches
# each directory before listing it, and compares with the index in the
# same pass): directories made and filled, files edited and removed, all
# during the start.  Nothing may be missed, and no whole run is needed.
hs_stop_primary
(
	for i in $(seq 1 150); do
		mkdir -p "$I/many/during$i/sub"
		echo "during $i" >"$I/many/during$i/sub/f"
		echo "during $i" >>"$I/many/d$((i % 10 + 10))/f$((i % 40 + 10))"
		[ $((i % 10)) -ne 0 ] || rm -f "$I/many/d$((i % 10 + 10))/f$((i % 7 + 2))"
	done
) &
writer=$!
full_before=$(hs_count_log "$T/primary.log" "reconciled:")
hs_start_primary
wait "$writer"
hs_wait_same "changes made while the primary starts arrive" 60 $SOURCES
[ "$(hs_count_log "$T/primary.log" "reconciled:")" -eq "$full_before" ] &&
	hs_ok "no set was reconciled whole for changes made during the start" ||
	hs_bad "a set was reconciled whole for changes made during the start"

# 2b. a mass deletion while the primary is down meets the delete guard at
# restart, and again at the next restart (the held paths keep their
# records); `sync --allow-deletes` releases it.
hs_stop_primary
rm -r "$I/many"
held_before=$(hs_count_log "$T/primary.log" "holding back the deletion")
hs_start_primary
if hs_wait_log "$T/primary.log" "holding back the deletion" $((held_before + 1)) 30; then
	hs_ok "a mass deletion made while down is held back at restart"
else
	hs_bad "a mass deletion made while down was not held back"
fi
hs_wait_status "held back: the primary's status says set install is held" \
	10 "$C1" '[p["state"] for p in d["paths"] if p["name"] == "install"] == ["held"]'
[ -d "$T/standby$I/many/d5" ] && hs_ok "the standby keeps the held files" ||
	hs_bad "the standby lost the held files"
hs_stop_primary
hs_start_primary
if hs_wait_log "$T/primary.log" "holding back the deletion" $((held_before + 2)) 30; then
	hs_ok "still held back at the next restart"
else
	hs_bad "the held deletion was forgotten at the next restart"
fi
hs_stop_primary
hs_sync --allow-deletes install
[ "$SYNC_RC" -eq 0 ] && hs_ok "sync --allow-deletes releases it" ||
	hs_bad "sync --allow-deletes: exit $SYNC_RC: $(head -2 "$T/sync.err")"
hs_start_primary
hs_wait_same "identical after the released deletion" 30 $SOURCES

# 3. SIGKILL of the primary while a run waits for its acknowledgement:
# the standby is stopped (SIGSTOP), so the run cannot complete.
kill -STOP "$STANDBY_PID"
for i in $(seq 1 5); do echo "during the crash $i" >"$I/crash$i"; done
sleep 1.5
kill -9 "$PRIMARY_PID"
hs_wait_gone "$PRIMARY_PID" 50 || true
kill -CONT "$STANDBY_PID"
hs_start_primary
hs_wait_same "SIGKILL between a change and its acknowledgement: nothing lost" 60 $SOURCES

# 4. a standby that claims a run it never received
hs_stop_primary
hs_stop_standby
meta_edit "$T/state2" "$(hs_hex applied/primary)" \
	"$(mdb_dump -s meta "$T/state2/index" | awk -v k=" $(hs_hex applied/primary)" \
		'f { print substr($1, 1, 32) "e803000000000000"; exit } $0 == k { f = 1 }')"
hs_start_standby
echo "after the false claim" >"$I/claim"
hs_start_primary
if hs_wait_log "$T/primary.log" "standby reports run 1000 applied" 1 30; then
	hs_ok "a standby claiming a run it never received is not trusted (one line)"
	grep "standby reports run 1000" "$T/primary.log" | tail -1 | sed 's/^/     /'
else
	hs_bad "the false claim went unnoticed"
fi
hs_wait_same "converges after the false claim" 60 $SOURCES
hs_stop_primary
hs_start_primary
hs_wait_log "$T/primary.log" "set install: 0 paths differ from the index" 2 30 &&
	hs_ok "back in step one run after the false claim" ||
	hs_bad "still not in step after the false claim"

# 5. a journal entry naming a path outside the sources: an unacknowledged
# entry (sequence above the acknowledged one) is written offline.
hs_stop_primary
acked=$(mdb_dump -s meta "$T/state1/index" | awk -v k=" $(hs_hex journal/acked)" \
	'f { print $1; exit } $0 == k { f = 1 }')
# the acknowledged sequence is a little-endian u64: read its low bytes
seq=$((16#${acked:2:2}${acked:0:2} + 1))
key=$(printf '%016x' "$seq")
# entry: str set | u64 mono | u64 wall | u32 n | (u16 src, str path, u8 rec)
bad_path="../../etc/passwd"
entry=$(printf '%04x%s' 7 "$(hs_hex install)")0000000000000001000000000000000100000001$(printf '0000%04x%s00' ${#bad_path} "$(hs_hex "$bad_path")")
{
	echo "VERSION=3"
	echo "format=bytevalue"
	echo "type=btree"
	echo "HEADER=END"
	echo " $key"
	echo " $entry"
	echo "DATA=END"
} >"$T/journal.dump"
mdb_load -s journal "$T/state1/index" <"$T/journal.dump" 2>>"$T/mdb_load.out"
hs_start_primary
if hs_wait_log "$T/primary.log" "names \"../../etc/passwd\" (source 0), outside the sources of set install; ignored" 1 30; then
	hs_ok "a journal entry outside the sources is ignored with one line"
else
	hs_bad "the journal entry outside the sources was not reported"
	grep -i journal "$T/primary.log" | tail -3
fi
[ ! -e "$T/standby/etc/passwd" ] && [ ! -e "$T/etc/passwd" ] &&
	hs_ok "nothing written outside the sources" || hs_bad "something was written outside"
hs_wait_same "identical after the bad journal entry" 30 $SOURCES

# 6. a damaged index at start: one line naming it, no crash
hs_stop_primary
cp "$T/state1/index/data.mdb" "$T/data.mdb.good"
truncate -s 8192 "$T/state1/index/data.mdb"
set +e
"$HS_BIN" -c "$C1" daemon --foreground >"$T/damaged.out" 2>&1
rc=$?
set -e
if [ $rc -ne 0 ] && grep -q "data.mdb is damaged" "$T/damaged.out"; then
	hs_ok "a truncated data.mdb is refused with one line (exit $rc)"
	grep "damaged" "$T/damaged.out" | head -1 | sed 's/^/     /'
else
	hs_bad "truncated data.mdb: exit $rc, $(head -2 "$T/damaged.out")"
fi
cp "$T/data.mdb.good" "$T/state1/index/data.mdb"

kill -0 "$STANDBY_PID" && hs_ok "the standby kept running" || hs_bad "the standby died"
hs_result restart
