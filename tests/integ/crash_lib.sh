# crash_lib.sh - what test_crash.sh and test_crash_writer.sh share: a
# pair whose primary reaches the standby through hs-faultproxy (which can
# hold the standby's replies), a primary that can be SIGKILLed and
# restarted, the status poll that fails on any claim made while the
# trees differ (settle), and the seed.  The caller sets CRASH_NAME and
# may define crash_prepare, run on the tree before the seed.

HS_TOOLS=${HS_TOOLS:-$top/build/bin}
FAULTPROXY=$HS_TOOLS/hs-faultproxy
[ -x "$FAULTPROXY" ] || hs_fail "$FAULTPROXY not built"

hs_init "$CRASH_NAME"
S=$T/src
W=$S/work
mkdir -p "$W/base" "$W/det" "$W/det2" "$W/churn"
[ "$(type -t crash_prepare)" != function ] || crash_prepare
# A base of files that never changes, so the writer's deletions (about
# 160 a minute) stay far below max_delete_percent of the set: the delete
# guard holding them back is not what this test is about.
for i in $(seq 1 2000); do echo "base $i" >"$W/base/f$i"; done
echo "renamed, then deleted while unacknowledged" >"$W/det/a"
for i in $(seq 1 5); do echo "det2 $i" >"$W/det2/x$i"; done
hs_setup_pair "
[path work]
source = $W"
sed -i 's/^peer_timeout = .*/peer_timeout = 4s/' "$C1" "$C2"
# Slow enough that a 24 MiB file takes seconds: the window of case 2.
sed -i 's/^peer_timeout = .*/&\nbwlimit = 4M/' "$C1"
grep -q "^bwlimit = 4M" "$C1" || hs_fail "could not write $C1"

PPORT=$(hs_free_port) || hs_fail "no free port"
[ "$PPORT" != "$PORT" ] || PPORT=$(hs_free_port)
C1P=$T/mn1-proxy.conf
sed "s/^peer = .*/peer = 127.0.0.1:$PPORT/" "$C1" >"$C1P"
grep -q "^peer = 127.0.0.1:$PPORT\$" "$C1P" || hs_fail "could not write $C1P"
"$FAULTPROXY" "$PPORT" "$PORT" >"$T/proxy.log" 2>&1 &
PROXY_PID=$!
HS_PIDS+=("$PROXY_PID")
hs_wait_log "$T/proxy.log" "listening on" 1 10 || hs_fail "proxy did not start"

crash_primary() {
	kill -9 "$PRIMARY_PID"
	hs_wait_gone "$PRIMARY_PID" 100 || hs_fail "primary $PRIMARY_PID survived SIGKILL"
}

# hold: toggle the proxy's hold of the standby's replies; the proxy's log
# says when it took effect.
HOLDS=0
hold() {
	HOLDS=$((HOLDS + 1))
	kill -WINCH "$PROXY_PID"
	hs_wait_log "$T/proxy.log" "hold" "$HOLDS" 10 || hs_fail "proxy: no hold"
}

# What a node's `status --json` says, one word: in-sync (every set, on
# the primary) or ready (promote_ready, on the standby), else "no".  Only
# a running daemon that answered claims anything: a stopped or silent
# one's status carries the sets' states it last saved, history that a
# SIGKILLed primary leaves "in-sync" (as status_claim.py reads it too).
cat >"$T/says.py" <<'PY'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception:
    print("no")
    sys.exit(0)
if j.get("daemon") != "running":
    print("no")
elif j.get("role") == "primary":
    paths = j.get("paths") or []
    ok = paths and all(p.get("state") == "in-sync" for p in paths)
    print("in-sync" if ok else "no")
else:
    print("ready" if (j.get("promote_ready") or {}).get("ready") else "no")
PY
# says CONF: that word for the node of CONF; its status stays in
# $T/says-NODE.json (NODE: the config's file name) for a failure to show.
says() {
	local out=$T/says-${1##*/}.json
	"$HS_BIN" -c "$1" status --json >"$out" 2>/dev/null || true
	python3 "$T/says.py" "$out"
}

# says_why CONF: one line of what the last status of CONF said.
says_why() {
	python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
print("daemon %s, peer %s, paths [%s], ready %s" % (j.get("daemon"),
      (j.get("peer") or {}).get("state"),
      " ".join("%s=%s" % (p.get("name"), p.get("state"))
               for p in j.get("paths") or []),
      (j.get("promote_ready") or {}).get("ready")))' \
		"$T/says-${1##*/}.json" 2>/dev/null || echo "no status"
}

# settle NAME SECONDS: poll both nodes' status and the trees until the
# primary says in-sync and the trees are equal; every status that says
# in-sync or ready while the trees differ is a lie (counted once).
settle() {
	local name=$1 secs=$2 i p s lied=0
	for ((i = 0; i < secs * 5; i++)); do
		p=$(says "$C1")
		s=$(says "$C2")
		if hs_same "$W" "$T/standby$W"; then
			if [ "$p" = in-sync ]; then
				[ $lied -eq 0 ] && hs_ok "$name: status honest while catching up"
				hs_ok "$name: in-sync and identical after $((i / 5)) s"
				return 0
			fi
		elif [ "$p" = in-sync ] || [ "$s" = ready ]; then
			if [ $lied -eq 0 ]; then
				hs_bad "$name: primary says $p, standby says $s, while the trees differ:"
				echo "     primary: $(says_why "$C1")"
				echo "     standby: $(says_why "$C2")"
				rsync -naiHAXc --numeric-ids --delete "$W/" "$T/standby$W/" 2>&1 |
					head -10 | sed 's/^/     /'
			fi
			lied=1
		fi
		sleep 0.2
	done
	hs_bad "$name: not in-sync and identical after ${secs}s (primary: $p)"
	rsync -naiHAXc --numeric-ids --delete "$W/" "$T/standby$W/" 2>&1 | head -20 | sed 's/^/     /'
	return 0
}

# standby_alone: wait (bounded) until the standby no longer counts the
# killed primary's session as connected.
standby_alone() {
	local i
	for ((i = 0; i < 100; i++)); do
		"$HS_BIN" -c "$C2" status --json >"$T/alone.json" 2>/dev/null || true
		python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["peer"]["state"] != "connected" else 1)' \
			"$T/alone.json" 2>/dev/null && return 0
		sleep 0.1
	done
	hs_fail "the standby still counts the killed primary as connected"
}

hs_start_standby
hs_start_primary "$C1P"
settle "seed" 60
