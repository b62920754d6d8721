#!/usr/bin/env bash
# The inotify watch limit (issue 5): the primary daemon runs inside a user
# namespace this test creates (`unshare --user --map-root-user`), whose
# /proc/sys/user/max_inotify_watches is lowered below the number of
# directories of the tree.  The subtrees left without a watch get one
# warning line each naming the sysctl and rescan_interval, `status` warns
# (exit 1, the warning in --json too), and they are rescanned every
# rescan_interval (1 s here): edits, creates, deletes, a new directory and
# a rename in watched and in unwatched subtrees all end identical on the
# standby (which runs outside the namespace).  An inotify queue overflow
# (which walks every tree again) keeps one entry per unwatched subtree.
# Once the limit is raised, the next rescan gives them their watches and
# status stops warning.
#
# The namespace maps only uid 0, so every file here belongs to root (a
# file of another owner would read as nobody inside).  If this kernel
# refuses unprivileged user namespaces the test fails and says why: a
# watch limit cannot be lowered for one process otherwise.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

LIMIT=8    # watches allowed in the namespace
RESCAN=1   # rescan_interval, seconds

# While subtrees have no watch, their changes are seen only by the
# rescan: status must not call the set in-sync (SPEC.md: it cannot know).
BLIND='all(p["state"] != "in-sync" for p in d["paths"])'

# poll_s SECONDS CMD...: until CMD succeeds (every 0.1 s, bounded).
poll_s() {
	local i n=$(($1 * 10))
	shift
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

why=$(unshare --user --map-root-user sh -c \
	"echo $LIMIT >/proc/sys/user/max_inotify_watches" 2>&1) ||
	hs_fail "cannot lower the watch limit in a user namespace" \
		"(unshare --user --map-root-user, then" \
		"/proc/sys/user/max_inotify_watches): $why;" \
		"is kernel.unprivileged_userns_clone or" \
		"user.max_user_namespaces 0 on this host?"

hs_init watchlimit
D=$T/src/data
# 1 + 6 + 12 = 19 directories, more than twice the limit.
for i in 1 2 3 4 5 6; do
	for j in 1 2; do
		mkdir -p "$D/d$i/s$j"
		echo "file $i $j" >"$D/d$i/s$j/f"
	done
	echo "top $i" >"$D/d$i/top"
done
echo "root file" >"$D/rootfile"
chown -R 0:0 "$T/src"
hs_setup_pair "
[path data]
source = $D"
sed -i "/^\[node\]/a rescan_interval = ${RESCAN}s" "$C1"
hs_start_standby

# The primary inside the namespace: unshare and sh exec, so $! is the
# daemon itself and the cleanup stops it by that PID.
unshare --user --map-root-user sh -c \
	'echo "$1" >/proc/sys/user/max_inotify_watches && shift &&
	 exec "$@"' sh "$LIMIT" "$HS_BIN" -c "$C1" daemon --foreground \
	>>"$T/primary.log" 2>&1 &
PRIMARY_PID=$!
HS_PIDS+=("$PRIMARY_PID")

hs_wait_converge "the daemon under a lowered watch limit seeds the standby" 30 "$BLIND" "$D"
kill -0 "$PRIMARY_PID" 2>/dev/null || { cat "$T/primary.log"; hs_fail "primary died"; }
hs_expect_status "the standby is not promote ready while the primary is blind in parts" \
	"$C2" 'd["promote_ready"]["ready"] is False'

# What the watcher made of it: watched directories and polled subtrees.
hs_wait_log "$T/primary.log" "directories watched" 1 10 || hs_bad "no watcher summary line"
summary=$(grep "directories watched" "$T/primary.log" | head -1)
watched=$(echo "$summary" | sed -n 's/.*watch: \([0-9]*\) directories watched.*/\1/p')
polled=$(echo "$summary" | sed -n 's/.* \([0-9]*\) subtrees polled.*/\1/p')
echo "     $summary"
if [ -n "$watched" ] && [ "$watched" -le "$LIMIT" ] && [ "${polled:-0}" -ge 1 ]; then
	hs_ok "the watcher stopped at the limit: $watched watched, $polled subtrees left to the rescan"
else
	hs_bad "watcher summary: watched=$watched polled=$polled (limit $LIMIT)"
fi
# (the sysctl and the setting's name in parentheses where the line has them)
nwarn=$(grep -c -E "inotify watch limit reached( \(sysctl fs.inotify.max_user_watches\))?; this subtree is rescanned every ${RESCAN}s" \
	"$T/primary.log" || true)
if [ "$nwarn" -ge 1 ] && [ "$nwarn" -eq "${polled:-0}" ]; then
	hs_ok "one warning line per unwatched subtree, naming the rescan interval ($nwarn)"
	grep -m1 "watch limit reached" "$T/primary.log" | sed 's/^/     /'
else
	hs_bad "$nwarn watch-limit warnings for ${polled:-?} unwatched subtrees"
fi

# The unwatched subtrees, as paths below $D, from the warnings.
mapfile -t unw < <(grep -o "watch: $D/[^:]*: inotify watch limit" "$T/primary.log" |
	sed "s|^watch: $D/||; s|: inotify watch limit$||" | sort -u)
[ "${#unw[@]}" -ge 1 ] || hs_fail "no unwatched subtree named in the log"
echo "     unwatched: ${unw[*]}"

# status warns (human and --json), with a WARNING exit code
set +e
"$HS_BIN" -c "$C1" status >"$T/status.out" 2>&1
st_rc=$?
"$HS_BIN" -c "$C1" status --json >"$T/status.json" 2>"$T/status.err"
set -e
if [ "$st_rc" -eq 1 ] && grep -q "subtrees without inotify watches" "$T/status.out"; then
	hs_ok "status warns about the unwatched subtrees (exit 1)"
	grep "inotify" "$T/status.out" | sed 's/^/     /'
else
	hs_bad "status: exit $st_rc, no watch-limit warning: $(head -5 "$T/status.out")"
fi
if python3 -c '
import json, sys
st = json.load(open(sys.argv[1]))
w = [x for x in st["warnings"] if "inotify" in x["text"]]
sys.exit(0 if w and w[0]["severity"] == "warning" and sys.argv[2] + " s" in w[0]["text"] else 1)
' "$T/status.json" "$RESCAN"; then
	hs_ok "status --json carries the warning with the rescan interval"
else
	hs_bad "status --json: $(head -c 600 "$T/status.json")"
fi

# Changes in watched places: the root and a watched subtree (if any).
echo "edited at the root" >>"$D/rootfile"
echo "new at the root" >"$D/newroot"
hs_wait_converge "changes in the watched root arrive" 15 "$BLIND" "$D"

# Changes in every unwatched subtree: edit, create, delete, a new
# directory with a file, a rename inside it.
for u in "${unw[@]}"; do
	f=$(find "$D/$u" -type f | head -1)
	if [ -n "$f" ]; then
		echo "edited in an unwatched subtree" >>"$f"
		mv "$f" "$f.renamed"
	fi
	echo "new in an unwatched subtree" >"$D/$u/new"
	mkdir -p "$D/$u/newdir/deeper"
	echo "deep" >"$D/$u/newdir/deeper/g"
done
rm -f "$D/${unw[0]}/new"
hs_wait_converge "changes in every unwatched subtree arrive by the rescan" 20 "$BLIND" "$D"

# A new directory in a watched directory, now past the limit: it becomes
# one more unwatched subtree, and what is put in it later still arrives.
mkdir "$D/late"
sleep 0.5
echo "inside a directory born past the limit" >"$D/late/f"
mkdir -p "$D/late/sub" && echo "x" >"$D/late/sub/y"
hs_wait_converge "a directory created past the limit is covered by the rescan" 20 "$BLIND" "$D"
if grep -q "watch: $D/late: inotify watch limit reached" "$T/primary.log"; then
	hs_ok "the new directory got its warning line"
else
	hs_bad "no warning for the new directory past the limit"
fi

# n_status: how many unwatched subtrees status reports.
n_status() {
	{ "$HS_BIN" -c "$C1" status 2>&1 || true; } |
		sed -n 's/.* \([0-9]*\) subtrees without inotify watches.*/\1/p'
}

# Deletes of whole unwatched subtrees: replicated by the next rescan,
# which then stops polling them (status counts one less).
unw_before=$(n_status)
rm -rf "${D:?}/${unw[-1]:?}"
hs_wait_converge "an unwatched subtree removed" 20 "$BLIND" "$D"
for ((i = 0; i < 50; i++)); do
	[ "$(n_status)" = "$((unw_before - 1))" ] && break
	sleep 0.2
done
[ "$(n_status)" = "$((unw_before - 1))" ] &&
	hs_ok "a removed unwatched subtree is polled no more ($unw_before -> $(n_status))" ||
	hs_bad "status still counts $(n_status) unwatched subtrees after one of $unw_before was removed"
# made again in its place: back through its parent's watch, polled again
mkdir -p "$D/${unw[-1]}/again"
sleep 0.5
echo "made again" >"$D/${unw[-1]}/again/f"
hs_wait_converge "a removed unwatched subtree made again is covered again" 20 "$BLIND" "$D"

# An inotify queue overflow (the primary stopped while the watched root
# gets more files than the queue holds events) makes the watcher walk
# every tree again: status then counts each subtree still without a
# watch once (not the old list twice), and the log says so in one line,
# not one again per subtree.
unw_before=$(n_status)
warn_before=$(grep -c "this subtree is rescanned every" "$T/primary.log" || true)
ovf_before=$(grep -c "queue overflowed" "$T/primary.log" || true)
maxq=$(cat /proc/sys/fs/inotify/max_queued_events 2>/dev/null || echo 16384)
[ "$maxq" -gt 100000 ] && maxq=100000
mkdir "$D/storm"
sleep 1.5 # the rescan finds the new (unwatched) directory
kill -STOP "$PRIMARY_PID"
seq -f "$D/fill%06g" 1 "$maxq" | xargs touch
kill -CONT "$PRIMARY_PID"
hs_wait_converge "a storm of $maxq files in the watched root converges" 60 "$BLIND" "$D"
if [ "$(grep -c "queue overflowed" "$T/primary.log" || true)" -gt "$ovf_before" ]; then
	hs_ok "the inotify queue overflowed"
	unw_after=$(n_status)
	# the unwatched subtrees that still exist, storm/ among them
	unw_expect=0
	for u in "${unw[@]}" late storm; do
		[ -d "$D/$u" ] && unw_expect=$((unw_expect + 1))
	done
	[ -n "$unw_after" ] && [ "$unw_after" -eq "$unw_expect" ] &&
		hs_ok "status counts each unwatched subtree once after the overflow: $unw_after" ||
		hs_bad "status: $unw_after unwatched subtrees after the overflow, $unw_expect exist" \
			"($unw_before before it and storm/)"
	# storm/ got its line when it was made; none is repeated
	w=$(grep -c "this subtree is rescanned every" "$T/primary.log" || true)
	[ "$w" -eq $((warn_before + 1)) ] &&
		hs_ok "no warning line repeated per subtree after the overflow" ||
		hs_bad "$((w - warn_before)) more per-subtree watch-limit lines (1 expected, storm/)"
	if grep -q "watch limit reached: $unw_expect subtrees without watches, rescanned every ${RESCAN}s (rescan_interval)" \
		"$T/primary.log"; then
		hs_ok "one summary line after the overflow"
		grep "subtrees without watches" "$T/primary.log" | tail -1 | sed 's/^/     /'
	else
		hs_bad "no summary line after the overflow"
	fi
else
	echo "info: the queue did not overflow (max_queued_events $maxq): not checked"
fi

# A flood of new directories past the limit (an image unpacked): at most
# 50 lines name a subtree, then one line says that more are not named;
# status counts them all, and their files arrive.
for i in $(seq 1 60); do
	mkdir "$D/flood$i"
	echo "flood $i" >"$D/flood$i/f"
done
hs_wait_converge "60 new directories past the limit converge" 30 "$BLIND" "$D"
named=$(grep -c "this subtree is rescanned every" "$T/primary.log" || true)
more=$(grep -c "more subtrees are left without watches than are named here" "$T/primary.log" || true)
n_flood=$(n_status)
if [ "$named" -le 50 ] && [ "$more" -eq 1 ] && [ "${n_flood:-0}" -ge 60 ]; then
	hs_ok "flood past the limit: $named subtrees named in the log, then one line; status counts $n_flood"
else
	hs_bad "flood past the limit: $named subtree lines, $more 'more' lines, status counts ${n_flood:-none}"
fi

# The limit raised (inside the daemon's user namespace, as the admin would
# raise the sysctl): the next rescan gets the watches, status stops
# warning, and nothing is polled any more.
if nsenter --user --target "$PRIMARY_PID" sh -c \
	'echo 100000 >/proc/sys/user/max_inotify_watches' 2>"$T/nsenter.err"; then
	got() { grep -q "subtrees without inotify watches got them" "$T/primary.log"; }
	if poll_s 15 got; then
		hs_ok "limit raised: $(grep "got them" "$T/primary.log" | tail -1 | sed 's/.*watch: //')"
	else
		hs_bad "limit raised: the unwatched subtrees never got their watches"
	fi
	unwatched_none() { [ -z "$(n_status)" ]; }
	if poll_s 10 unwatched_none; then
		hs_ok "limit raised: status no longer warns about unwatched subtrees"
	else
		hs_bad "limit raised: status still counts $(n_status) unwatched subtrees"
	fi
	# Every directory, nested ones included, holds a watch now (the
	# daemon's inotify descriptor lists one line per watch).
	watches() { cat /proc/"$PRIMARY_PID"/fdinfo/* 2>/dev/null | grep -c "^inotify wd:" || true; }
	ndirs=$(find "$D" -type d | wc -l)
	all_watched() { [ "$(watches)" -ge "$ndirs" ]; }
	if poll_s 10 all_watched; then
		hs_ok "limit raised: every directory is watched ($(watches) watches, $ndirs directories)"
	else
		hs_bad "limit raised: $(watches) watches for $ndirs directories"
	fi
	echo "after the limit was raised" >"$D/${unw[0]}/rewatched"
	mkdir -p "$D/${unw[0]}/new1/new2"
	echo "nested" >"$D/${unw[0]}/new1/new2/f"
	hs_wait_same "files made in a subtree watched again, and below it, arrive" 20 "$D"
else
	hs_bad "cannot raise the limit in the daemon's namespace: $(cat "$T/nsenter.err")"
fi

kill -0 "$PRIMARY_PID" 2>/dev/null && hs_ok "the primary kept running" ||
	hs_bad "the primary died"
# verify needs the standby's session: stop the daemon (SIGTERM drains).
hs_signal TERM "$PRIMARY_PID"
hs_wait_gone "$PRIMARY_PID" 150 || hs_bad "the primary did not stop on SIGTERM"
"$HS_BIN" -c "$C1" verify >"$T/verify.out" 2>&1 &&
	hs_ok "hamnsync verify exits 0" ||
	hs_bad "verify: $(tail -3 "$T/verify.out")"
hs_result watchlimit
