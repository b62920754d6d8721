#!/usr/bin/env bash
# `hamnsync status` against real daemons (SPEC.md, status): UNKNOWN with no
# index; both nodes OK and caught up with every SPEC field; progress while
# a large set seeds; lag rising while the standby is stopped and falling to
# 0 after it returns; --warn-lag/--crit-lag; CRITICAL once the standby is
# gone past peer_timeout; promote_ready false and rpo_seconds growing on
# the standby once the primary is killed; a held deletion as a WARNING that
# stays reported until released; CRITICAL "stopped" from the index
# when a daemon is down (never hanging); the control socket's permissions
# for status_group members and outsiders; the Prometheus textfiles parsed
# by a strict text-format parser.
#
# Host changes: none (status_group is an existing group: users or nogroup).
# Unprivileged clients run with setpriv under
# numeric ids that have no passwd entry.  Every wait is bounded; nothing
# asserts on wall-clock time.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

GROUP=""
st_cleanup() {
	local rc=$?
	set +e
	(exit $rc)
	hs_cleanup
}

hs_init status
trap st_cleanup EXIT
chmod 711 "$T" # unprivileged clients reach the sockets and configs
S=$T/src
mkdir -p "$S/data/sub" "$S/big"
for i in $(seq 1 20); do echo "line $i" >"$S/data/sub/f$i"; done
echo "hosts" >"$S/data/hosts"
hs_setup_pair "
[path data]
source = $S/data

[path big]
source = $S/big"
sed -i "/^\[node\]/a metrics_file = $T/m1.prom" "$C1"
sed -i "/^\[node\]/a metrics_file = $T/m2.prom" "$C2"

# status_group names a group that already exists (the host is never
# changed); clients run under numeric ids that have no entry at all.
if command -v setpriv >/dev/null && [ "$(id -u)" -eq 0 ]; then
	for g in users nogroup; do
		if getent group "$g" >/dev/null; then
			GROUP=$g
			GID=$(getent group "$GROUP" | cut -d: -f3)
			sed -i "/^\[node\]/a status_group = $GROUP" "$C1" "$C2"
			break
		fi
	done
fi

# ------------------------------------------------------------ helpers

# The SPEC object: every field, typed; null only where SPEC allows it.
cat >"$T/spec.py" <<'PY'
import json, re, sys

NUM = (int, float)
errs = []

def typed(v, types):
    for t in types:
        if t is None and v is None:
            return True
        if t is not None and isinstance(v, t) and not (
                isinstance(v, bool) and t is not bool):
            return True
    return False

def need(o, k, types, where):
    if not isinstance(o, dict) or k not in o:
        errs.append("%s.%s is missing" % (where, k))
        return None
    if not typed(o[k], types):
        errs.append("%s.%s = %r has the wrong type" % (where, k, o[k]))
    return o[k]

d = json.load(open(sys.argv[1]))
if not isinstance(d, dict):
    sys.exit("not an object")
need(d, "node", (str,), "")
if need(d, "role", (str,), "") not in ("primary", "standby"):
    errs.append("role %r" % d.get("role"))
need(d, "epoch", (int,), "")
if need(d, "daemon", (str,), "") not in ("running", "stopped"):
    errs.append("daemon %r" % d.get("daemon"))
p = need(d, "peer", (dict,), "")
for k, t in (("name", (str, None)), ("address", (str,)),
             ("state", (str, None)), ("role", (str, None)),
             ("epoch", (int, None)), ("last_heard_seconds", NUM + (None,))):
    need(p, k, t, "peer")
l = need(d, "lag", (dict,), "")
for k, t in (("seconds", NUM + (None,)), ("files_pending", (int, None)),
             ("bytes_pending", (int, None)), ("last_applied", (str, None))):
    need(l, k, t, "lag")
la = l.get("last_applied") if isinstance(l, dict) else None
if isinstance(la, str) and not re.match(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", la):
    errs.append("last_applied %r is not RFC 3339 UTC with ms" % la)
for i, s in enumerate(need(d, "paths", (list,), "") or []):
    w = "paths[%d]" % i
    need(s, "name", (str,), w)
    need(s, "files", (int, None), w)
    need(s, "bytes", (int, None), w)
    if need(s, "state", (str,), w) not in ("seeding", "in-sync",
                                           "catching-up", "held", "error"):
        errs.append("%s.state %r" % (w, s.get("state")))
    pr = need(s, "progress", NUM, w)
    if typed(pr, NUM) and not 0 <= pr <= 1:
        errs.append("%s.progress %r outside 0..1" % (w, pr))
for i, s in enumerate(need(d, "databases", (list,), "") or []):
    w = "databases[%d]" % i
    need(s, "name", (str,), w)
    need(s, "type", (str,), w)
    need(s, "last_snapshot", (str, None), w)
    need(s, "snapshot_age_seconds", NUM + (None,), w)
r = need(d, "promote_ready", (dict,), "")
need(r, "ready", (bool,), "promote_ready")
need(r, "rpo_seconds", NUM + (None,), "promote_ready")
for x in need(r, "reasons", (list,), "promote_ready") or []:
    if not isinstance(x, str):
        errs.append("reason %r" % (x,))
for i, w in enumerate(need(d, "warnings", (list,), "") or []):
    if need(w, "severity", (str,), "warnings[%d]" % i) not in (
            "warning", "critical"):
        errs.append("warnings[%d].severity %r" % (i, w.get("severity")))
    need(w, "text", (str,), "warnings[%d]" % i)
if errs:
    print("; ".join(errs))
    sys.exit(1)
PY

# A strict Prometheus text-format parser: only HELP, TYPE and samples;
# HELP and TYPE once per family, before its samples; samples of a family
# together; name{label="value",...} value; value a float, NaN or +/-Inf;
# counters end in _total; a final newline.  Extra arguments: metric names
# that must be present.
cat >"$T/prom.py" <<'PY'
import re, sys

path = sys.argv[1]
text = open(path, encoding="utf-8").read()
NAME = re.compile(r"^hamnsync_[a-z_]+$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
VALUE = re.compile(r"^(NaN|[+-]Inf|[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)$")
fam = {}
seen = set()
cur = None
err = []

def family(n):
    return fam.setdefault(n, {"help": 0, "type": None, "samples": 0})

if not text.endswith("\n"):
    err.append("no final newline")
for no, line in enumerate(text.split("\n")[:-1], 1):
    where = "%s:%d" % (path, no)
    if line.startswith("# HELP "):
        parts = line[7:].split(" ", 1)
        if len(parts) != 2 or not parts[1] or not NAME.match(parts[0]):
            err.append("%s: bad HELP" % where); continue
        f = family(parts[0])
        if f["help"] or f["samples"]:
            err.append("%s: HELP twice or late" % where)
        f["help"] += 1
        continue
    if line.startswith("# TYPE "):
        parts = line[7:].split(" ")
        if len(parts) != 2 or not NAME.match(parts[0]) or \
                parts[1] not in ("counter", "gauge"):
            err.append("%s: bad TYPE %r" % (where, line)); continue
        f = family(parts[0])
        if f["type"] or f["samples"]:
            err.append("%s: TYPE twice or late" % where)
        f["type"] = parts[1]
        if (parts[1] == "counter") != parts[0].endswith("_total"):
            err.append("%s: %s %s and _total disagree" %
                       (where, parts[1], parts[0]))
        continue
    m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
    if not m:
        err.append("%s: not HELP, TYPE or a sample: %r" % (where, line))
        continue
    name, labels, value = m.group(1), m.group(3), m.group(4)
    if not NAME.match(name):
        err.append("%s: name %s" % (where, name))
    if labels is not None:
        pos = 0
        while pos < len(labels):
            lm = LABEL.match(labels, pos)
            if not lm:
                err.append("%s: labels %r" % (where, labels)); break
            pos = lm.end()
            if pos < len(labels):
                if labels[pos] != ",":
                    err.append("%s: labels %r" % (where, labels)); break
                pos += 1
    if not VALUE.match(value):
        err.append("%s: value %r" % (where, value))
    f = family(name)
    if not f["help"] or not f["type"]:
        err.append("%s: %s before its HELP and TYPE" % (where, name))
    if f["samples"] and cur != name:
        err.append("%s: samples of %s not together" % (where, name))
    f["samples"] += 1
    cur = name
    seen.add(name)
for n, f in fam.items():
    if not f["samples"]:
        err.append("family %s has no sample" % n)
for n in sys.argv[2:]:
    if n not in seen:
        err.append("%s is missing" % n)
if err:
    print("; ".join(err[:10]))
    sys.exit(1)
PY

# jget FILE EXPR: a value of the JSON in FILE (d), as Python prints it.
jget() {
	python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null
}

# jtrue FILE EXPR: the expression holds.
jtrue() {
	[ "$(jget "$1" "$2")" = True ]
}

# status NAME CONF [ARGS]: run status (never longer than 5 s), output in
# $T/NAME.out and $T/NAME.err, exit status in RC.
status() {
	local name=$1 conf=$2
	shift 2
	set +e
	timeout 5 "$HS_BIN" -c "$conf" status "$@" >"$T/$name.out" 2>"$T/$name.err"
	RC=$?
	set -e
}

# poll N STEP CMD...: run CMD until it succeeds, at most N times.
poll() {
	local n=$1 step=$2 i
	shift 2
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		sleep "$step"
	done
	return 1
}

# start_primary_ctl: hs_start_primary, then wait (bounded) until its
# control socket is there.
start_primary_ctl() {
	local i
	rm -f "$T/state1/hamnsync.sock"
	hs_start_primary
	for ((i = 0; i < 100; i++)); do
		[ -S "$T/state1/hamnsync.sock" ] && return 0
		kill -0 "$PRIMARY_PID" 2>/dev/null ||
			{ tail -5 "$T/primary.log" >&2; hs_fail "primary exited"; }
		sleep 0.1
	done
	hs_fail "primary did not open its control socket"
}

# spec_ok NAME FILE: FILE holds SPEC's object with every field.
spec_ok() {
	local why
	if why=$(python3 "$T/spec.py" "$2" 2>&1); then
		hs_ok "$1: --json has every SPEC field, typed"
	else
		hs_bad "$1: --json: $why"
	fi
}

# ---------------------------------------------------- 1. no index yet
status noindex "$C1"
if [ "$RC" -eq 3 ] && [ "$(wc -l <"$T/noindex.err")" -eq 1 ] &&
	grep -q "UNKNOWN" "$T/noindex.err" && grep -q "no index" "$T/noindex.err" &&
	[ ! -s "$T/noindex.out" ]; then
	hs_ok "no index: UNKNOWN (3), one line: $(cat "$T/noindex.err")"
else
	hs_bad "no index: rc $RC, out '$(cat "$T/noindex.out")' err '$(cat "$T/noindex.err")'"
fi
status noindex-json "$C1" --json
if [ "$RC" -eq 3 ] && jtrue "$T/noindex-json.out" '"no index" in d["error"]'; then
	hs_ok "no index, --json: UNKNOWN with an error object"
else
	hs_bad "no index --json: rc $RC, out '$(cat "$T/noindex-json.out")'"
fi
# A path with a quote and a backslash in the error: still one JSON object.
mkdir -p "$T/q\"uo\\te"
sed "s|^state_dir = .*|state_dir = $T/q\"uo\\\\te|" "$C1" >"$T/quote.conf"
status noindex-quote "$T/quote.conf" --json
if [ "$RC" -eq 3 ] &&
	jtrue "$T/noindex-quote.out" '"no index" in d["error"] and "q\"uo\\te" in d["error"]'; then
	hs_ok "no index, a quote in state_dir, --json: the error object is valid JSON"
else
	hs_bad "no index, quoted state_dir, --json: rc $RC, out '$(cat "$T/noindex-quote.out")'"
fi
[ ! -e "$T/state1/data.mdb" ] && hs_ok "status created no index" ||
	hs_bad "status created an index in state1"

# ------------------------------------- 2. seeding a large set, with progress
# The big set is reconciled after the small one; the primary answers status
# while it sends (its tick serves the control socket).
BIG_MB=${HS_STATUS_BIG_MB:-400}
[ "$BIG_MB" -le 1024 ] || BIG_MB=1024
head -c "${BIG_MB}M" /dev/urandom >"$S/big/image.bin"
hs_start_standby
start_primary_ctl
: >"$T/seed-samples"
for ((i = 0; i < 600; i++)); do
	status seed "$C1" --json
	if [ "$RC" -le 2 ] && [ -s "$T/seed.out" ]; then
		s=$(jget "$T/seed.out" '[(p["state"], p["progress"]) for p in d["paths"] if p["name"] == "big"][0]') || s=""
		echo "$s" >>"$T/seed-samples"
		# Seeding is a WARNING at least (SPEC severities).
		case "$s" in *seeding*) echo "$RC" >>"$T/seed-rcs" ;; esac
		case "$s" in *in-sync*) break ;; esac
	fi
	sleep 0.05
done
if python3 - "$T/seed-samples" <<'PY' >"$T/seed-verdict"
import ast, sys
rows = [ast.literal_eval(l) for l in open(sys.argv[1]) if l.startswith("(")]
seed = [p for s, p in rows if s == "seeding"]
inside = [p for p in seed if 0 <= p <= 1]
mid = [p for p in seed if 0 < p < 1]
mono = all(a <= b for a, b in zip(mid, mid[1:]))
print("samples=%d seeding=%d in_0_1=%d mid=%d monotonic=%s last=%s" %
      (len(rows), len(seed), len(inside), len(mid), mono,
       rows[-1] if rows else None))
sys.exit(0 if inside and len(inside) == len(seed) and mono else 1)
PY

then
	hs_ok "seeding: state seeding with 0 <= progress <= 1, never decreasing ($(cat "$T/seed-verdict"))"
	if grep -q "mid=0 " "$T/seed-verdict"; then
		echo "note: no sample caught the ${BIG_MB} MiB set mid-transfer;" \
			"set HS_STATUS_BIG_MB (up to 1024) on a faster machine"
	fi
else
	hs_bad "seeding: $(cat "$T/seed-verdict") $(grep -v "^(" "$T/seed-samples" | head -3)"
fi

if [ -s "$T/seed-rcs" ] && ! grep -qv '^[12]$' "$T/seed-rcs"; then
	hs_ok "seeding: WARNING or worse while a set seeds (exit $(sort -u "$T/seed-rcs" | tr '\n' ' '))"
else
	hs_bad "seeding: exit statuses while seeding: $(sort "$T/seed-rcs" 2>/dev/null | uniq -c | tr '\n' ' ')"
fi

# ------------------------------------------- 3. caught up: both nodes OK
caught_up_primary() {
	status p "$C1" --json && [ "$RC" -eq 0 ] &&
		jtrue "$T/p.out" 'd["lag"]["seconds"] == 0 and d["lag"]["files_pending"] == 0 and all(p["state"] == "in-sync" for p in d["paths"])'
}
ready_standby() {
	status s "$C2" --json
	[ "$RC" -eq 0 ] && jtrue "$T/s.out" 'd["promote_ready"]["ready"] is True'
}
if poll 300 0.2 caught_up_primary; then
	hs_ok "primary caught up: exit 0, lag 0, every set in-sync"
else
	hs_bad "primary never caught up: rc $RC $(cat "$T/p.out" "$T/p.err" | head -30)"
fi
if poll 100 0.2 ready_standby; then
	hs_ok "standby: exit 0, promote_ready.ready true"
else
	hs_bad "standby not ready: rc $RC $(cat "$T/s.out" "$T/s.err" | head -30)"
fi
# What both said is true: the trees are equal (nothing changes meanwhile).
hs_compare "$S/data" "$S/big" &&
	hs_ok "primary in-sync, standby ready: the trees are equal" ||
	hs_bad "primary in-sync, standby ready, yet the trees differ (status lied)"
spec_ok "primary" "$T/p.out"
spec_ok "standby" "$T/s.out"
if jtrue "$T/p.out" 'd["peer"]["state"] == "connected" and d["role"] == "primary" and d["daemon"] == "running" and d["node"] == "mn1" and d["peer"]["name"] == "mn2"'; then
	hs_ok "primary: peer connected, role primary, daemon running"
else
	hs_bad "primary: $(cat "$T/p.out")"
fi
if jtrue "$T/s.out" 'd["role"] == "standby" and d["peer"]["name"] == "mn1" and d["peer"]["role"] == "primary" and d["lag"]["seconds"] == 0 and d["promote_ready"]["reasons"] == [] and isinstance(d["promote_ready"]["rpo_seconds"], (int, float))'; then
	hs_ok "standby: hears mn1, lag 0, no reasons, rpo known"
else
	hs_bad "standby: $(cat "$T/s.out")"
fi
# The human summary: one screen, the verdict first.
status ph "$C1"
if [ "$RC" -eq 0 ] && head -1 "$T/ph.out" | hs_has "^hamnsync OK: mn1 primary" &&
	[ "$(wc -l <"$T/ph.out")" -le 24 ]; then
	hs_ok "human summary: $(head -1 "$T/ph.out")"
else
	hs_bad "human summary: rc $RC $(cat "$T/ph.out" "$T/ph.err")"
fi
status sh "$C2"
if [ "$RC" -eq 0 ] && grep -q "^promote  ready" "$T/sh.out"; then
	hs_ok "standby human summary says promote ready"
else
	hs_bad "standby human summary: rc $RC $(cat "$T/sh.out" "$T/sh.err")"
fi

# ------------------------------------------------------- 4. metrics files
metrics_ok() { # metrics_ok NAME FILE
	local why
	if why=$(python3 "$T/prom.py" "$2" hamnsync_lag_seconds \
		hamnsync_pending_files hamnsync_promote_ready 2>&1); then
		hs_ok "$1: $(basename "$2") parses strictly, hamnsync_lag_seconds present"
	else
		hs_bad "$1: $(basename "$2"): $why"
	fi
}
poll 50 0.2 test -s "$T/m1.prom" || true
poll 50 0.2 test -s "$T/m2.prom" || true
metrics_ok "metrics, primary" "$T/m1.prom"
metrics_ok "metrics, standby" "$T/m2.prom"
# The daemons write their metrics now and then (temporary file, then
# rename): a temporary seen once may be one being written; one that stays
# for 5 s was left behind.
left=yes
for ((i = 0; i < 50; i++)); do
	if ! ls "$T"/*.prom.tmp.* >/dev/null 2>&1; then
		left=no
		break
	fi
	sleep 0.1
done
if [ "$left" = yes ]; then
	hs_bad "metrics: temporary files left: $(ls "$T"/*.tmp.*)"
else
	hs_ok "metrics: no temporary files left beside them"
fi
# The standby's file says it may be promoted (once rewritten after ready).
promote_metric() { grep -q '^hamnsync_promote_ready 1$' "$T/m2.prom"; }
if poll 50 0.2 promote_metric; then
	hs_ok "metrics: standby exports hamnsync_promote_ready 1"
else
	hs_bad "metrics: $(grep promote_ready "$T/m2.prom")"
fi

# -------------- 4b. idle daemons write nothing (the status is kept only
# when what a stopped node shows of it changes; it once cost an index
# commit with an fdatasync every 5 s on each node)
idle_marks() {
	stat -c '%n %Y.%y' "$T"/state1/status.json "$T"/state2/status.json \
		"$T"/state1/index/data.mdb "$T"/state2/index/data.mdb 2>&1
}
saved() { [ -s "$T/state1/status.json" ] && [ -s "$T/state2/status.json" ]; }
if poll 100 0.1 saved; then
	hs_ok "both daemons saved their status in state_dir/status.json"
else
	hs_bad "status.json missing: $(ls -l "$T/state1" "$T/state2" 2>&1 | tr '\n' ' ')"
fi
sleep 1 # a save due from the last edit lands first
marks1=$(idle_marks)
sleep 6 # more than the 5 s between two looks at the status
marks2=$(idle_marks)
if [ "$marks1" = "$marks2" ]; then
	hs_ok "idle for 6 s: neither daemon wrote its status or its index"
else
	hs_bad "idle daemons wrote: before: $marks1; after: $marks2"
fi

# ------------------------------------------------------- 5. permissions
if [ -n "$GROUP" ]; then
	free_id() { # free_id passwd|group: a numeric id with no entry
		local n
		for ((n = 61000; n < 62000; n++)); do
			getent "$1" "$n" >/dev/null || { echo "$n"; return 0; }
		done
		return 1
	}
	NUID=$(free_id passwd)
	NGID=$(free_id group)
	as_member() { timeout 5 setpriv --reuid="$NUID" --regid="$GID" --clear-groups "$@"; }
	as_supp() { timeout 5 setpriv --reuid="$NUID" --regid="$NGID" --groups="$GID" "$@"; }
	as_outsider() { timeout 5 setpriv --reuid="$NUID" --regid="$NGID" --clear-groups "$@"; }
	# A python3 the unprivileged ids may run (a per-user shim may not do).
	UPY=""
	for c in $(type -ap python3) /usr/bin/python3; do
		if as_outsider "$c" -c pass 2>/dev/null; then
			UPY=$c
			break
		fi
	done
	ls -l "$T/state1/hamnsync.sock" >"$T/sock.ls"
	if grep -q "^srw-rw---- .* root $GROUP " "$T/sock.ls"; then
		hs_ok "socket is 0660 root:$GROUP"
	else
		hs_bad "socket: $(cat "$T/sock.ls")"
	fi
	for who in member supp; do
		set +e
		"as_$who" "$HS_BIN" -c "$C1" status --json \
			>"$T/perm-$who.out" 2>"$T/perm-$who.err"
		RC=$?
		set -e
		if [ "$RC" -eq 0 ] && python3 "$T/spec.py" "$T/perm-$who.out" &&
			jtrue "$T/perm-$who.out" 'd["daemon"] == "running"'; then
			hs_ok "status_group $who (uid $NUID): status exit 0 from the daemon"
		else
			hs_bad "status_group $who: rc $RC $(cat "$T/perm-$who.err") $(head -5 "$T/perm-$who.out")"
		fi
	done
	# Other verbs are for root only, even for a member.
	cat >"$T/verb.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(("HAMNSYNC-CTL/1 %s\n" % sys.argv[2]).encode())
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
print(out.decode())
PY
	set +e
	as_member ${UPY:-python3} "$T/verb.py" "$T/state1/hamnsync.sock" sync \
		>"$T/perm-sync.out" 2>"$T/perm-sync.err"
	set -e
	if jtrue "$T/perm-sync.out" '"permission denied" in d["error"]'; then
		hs_ok "status_group member: verb sync refused ($(cat "$T/perm-sync.out"))"
	else
		hs_bad "member's sync: $(cat "$T/perm-sync.out" "$T/perm-sync.err")"
	fi
	timeout 5 python3 "$T/verb.py" "$T/state1/hamnsync.sock" status \
		>"$T/root-verb.out" 2>&1 || true
	jtrue "$T/root-verb.out" 'd["node"] == "mn1"' &&
		hs_ok "root: the raw protocol answers status" ||
		hs_bad "root raw status: $(head -3 "$T/root-verb.out")"
	set +e
	as_outsider "$HS_BIN" -c "$C1" status >"$T/perm-out.out" 2>"$T/perm-out.err"
	RC=$?
	set -e
	if [ "$RC" -eq 3 ] && grep -qi "permission denied" "$T/perm-out.err" &&
		[ "$(wc -l <"$T/perm-out.err")" -eq 1 ]; then
		hs_ok "outsider: UNKNOWN, $(cat "$T/perm-out.err")"
	else
		hs_bad "outsider: rc $RC $(cat "$T/perm-out.out" "$T/perm-out.err")"
	fi
	set +e
	as_outsider ${UPY:-python3} "$T/verb.py" "$T/state1/hamnsync.sock" status \
		>"$T/perm-raw.out" 2>&1
	RC=$?
	set -e
	if [ "$RC" -ne 0 ] && grep -q "PermissionError" "$T/perm-raw.out"; then
		hs_ok "outsider cannot connect to the socket"
	else
		hs_bad "outsider connected: $(head -3 "$T/perm-raw.out")"
	fi
else
	echo "skip permissions: needs root, setpriv and a group users or nogroup"
fi

# ------------------------------------------- 6. lag while the standby is away
P_OUT=$T/lag.out
disconnected() {
	status lag "$C1" --json
	jtrue "$P_OUT" 'd["peer"]["state"] == "disconnected"'
}
hs_stop_pid "$STANDBY_PID" TERM 150 || hs_fail "the standby did not stop"
poll 100 0.1 disconnected || hs_bad "primary never noticed the standby left"

# Within peer_timeout of the drop: --warn-lag 1 WARNING, --crit-lag 1 CRITICAL.
: >"$T/thr-samples"
warn_seen=0
crit_seen=0
for ((i = 0; i < 80; i++)); do
	status thr "$C1" --json --warn-lag 1 --crit-lag 1000
	gone=$(jget "$T/thr.out" 'any("unreachable" in w["text"] for w in d["warnings"])') || gone=""
	lag=$(jget "$T/thr.out" 'd["lag"]["seconds"]') || lag=""
	echo "rc=$RC lag=$lag gone=$gone" >>"$T/thr-samples"
	if [ "$gone" = False ] && jtrue "$T/thr.out" 'd["lag"]["seconds"] > 1'; then
		[ "$RC" -eq 1 ] && warn_seen=1 || warn_seen=-1
		break
	fi
	[ "$gone" = True ] && break
	sleep 0.1
done
case $warn_seen in
1) hs_ok "--warn-lag 1 --crit-lag 1000: WARNING (1) at $(tail -1 "$T/thr-samples")" ;;
0) hs_bad "--warn-lag: no sample with lag > 1 s before peer_timeout: $(tail -3 "$T/thr-samples")" ;;
*) hs_bad "--warn-lag 1 --crit-lag 1000: $(tail -1 "$T/thr-samples") $(cat "$T/thr.out")" ;;
esac
status crit "$C1" --json --crit-lag 1
if [ "$RC" -eq 2 ] && jtrue "$T/crit.out" 'any(w["severity"] == "critical" and "lag" in w["text"] for w in d["warnings"])'; then
	hs_ok "--crit-lag 1: CRITICAL (2) with a lag warning"
else
	hs_bad "--crit-lag 1: rc $RC $(cat "$T/crit.out")"
fi

# Changes while the standby is away: pending and lag rise.
for i in 1 2 3; do echo "changed while away" >>"$S/data/sub/f$i"; done
echo new >"$S/data/new-while-away"
pending() {
	status lag "$C1" --json
	jtrue "$P_OUT" 'd["lag"]["seconds"] > 0 and d["lag"]["files_pending"] > 0'
}
if poll 100 0.1 pending; then
	lag1=$(jget "$P_OUT" 'd["lag"]["seconds"]')
	hs_ok "standby stopped: lag $lag1 s, $(jget "$P_OUT" 'd["lag"]["files_pending"]') files pending"
else
	lag1=0
	hs_bad "lag/pending never rose: $(cat "$P_OUT")"
fi
# Past peer_timeout (5 s): the primary reports CRITICAL.
gone_critical() {
	status gone "$C1"
	[ "$RC" -eq 2 ] && grep -q "unreachable" "$T/gone.out"
}
if poll 100 0.2 gone_critical; then
	hs_ok "standby gone past peer_timeout: CRITICAL ($(grep unreachable "$T/gone.out"))"
else
	hs_bad "standby gone: rc $RC $(cat "$T/gone.out")"
fi
status lag "$C1" --json
lag2=$(jget "$P_OUT" 'd["lag"]["seconds"]') || lag2=0
if python3 -c 'import sys; sys.exit(0 if float(sys.argv[2]) > float(sys.argv[1]) else 1)' "$lag1" "$lag2"; then
	hs_ok "lag grows while the standby is away ($lag1 -> $lag2 s)"
else
	hs_bad "lag did not grow: $lag1 -> $lag2"
fi

# The standby returns: lag falls to 0 (reconnect backoff is at most 10 s).
hs_start_standby
caught_up_again() {
	status lag "$C1" --json && [ "$RC" -eq 0 ] &&
		jtrue "$P_OUT" 'd["lag"]["seconds"] == 0 and d["lag"]["files_pending"] == 0 and d["peer"]["state"] == "connected"'
}
if poll 200 0.2 caught_up_again; then
	hs_ok "standby back: lag 0, nothing pending, OK"
else
	hs_bad "after the standby returned: rc $RC $(cat "$P_OUT")"
fi
if poll 100 0.2 ready_standby; then
	hs_ok "standby ready again"
else
	hs_bad "standby not ready again: $(cat "$T/s.out")"
fi
hs_wait_same "changes made while away arrived" 30 "$S/data" "$S/big"

# A held deletion (most of a set deleted at once) is a WARNING, and stays
# reported until `sync --allow-deletes` releases it (SPEC: "held back and
# reported ... until"), whatever else the set sees meanwhile.
rm -f "$S"/data/sub/f1? "$S"/data/sub/f[2-9]
holding() { grep -q "set data: holding back the deletion" "$T/primary.log"; }
poll 100 0.1 holding || hs_bad "the primary never held the deletion back"
n_src=$(find "$S/data/sub" -type f | wc -l)
n_sb=$(find "$T/standby$S/data/sub" -type f | wc -l)
[ "$n_sb" -gt "$n_src" ] && hs_ok "held deletion: $((n_sb - n_src)) deleted files kept on the standby" ||
	hs_bad "held deletion: nothing kept on the standby ($n_sb vs $n_src)"
held() {
	status held "$C1" --json
	[ "$RC" -eq 1 ] && jtrue "$T/held.out" '[p["state"] for p in d["paths"] if p["name"] == "data"] == ["held"] and any("allow-deletes" in w["text"] for w in d["warnings"])'
}
if poll 20 0.1 held; then
	hs_ok "held deletion: WARNING (1), set data held"
else
	hs_bad "held deletion: rc $RC $(jget "$T/held.out" 'd["paths"]') $(jget "$T/held.out" 'd["warnings"]')"
fi
# An unrelated edit in the same set is replicated; the hold remains.
echo "edited after the hold" >>"$S/data/hosts"
# (status says held, not in-sync, before each look at the copy)
arrived() { held && cmp -s "$S/data/hosts" "$T/standby$S/data/hosts"; }
poll 100 0.1 arrived ||
	hs_bad "an edit after the hold never arrived while status said held"
n_sb2=$(find "$T/standby$S/data/sub" -type f | wc -l)
if held; then
	hs_ok "held deletion still reported after another change to the set"
elif [ "$n_sb2" -gt "$n_src" ]; then
	hs_bad "held deletion no longer reported, yet $((n_sb2 - n_src)) deleted files are still held on the standby: rc $RC, data $(jget "$T/held.out" '[p["state"] for p in d["paths"] if p["name"] == "data"]'), warnings $(jget "$T/held.out" 'd["warnings"]')"
else
	hs_bad "held deletion: released without --allow-deletes ($n_sb2 files on the standby)"
fi

# ------------------------- 7. the primary is killed: the standby's verdict
hs_stop_pid "$PRIMARY_PID" KILL 150 || hs_fail "the primary did not stop"
unready() {
	status s "$C2" --json
	jtrue "$T/s.out" 'd["promote_ready"]["ready"] is False and any("unreachable since" in r for r in d["promote_ready"]["reasons"])'
}
if poll 100 0.2 unready; then
	hs_ok "primary killed: not ready, $(jget "$T/s.out" 'd["promote_ready"]["reasons"]')"
else
	hs_bad "primary killed: $(cat "$T/s.out")"
fi
# A critical "silent" warning must agree with the silence it reports.
if jtrue "$T/s.out" 'not any(w["severity"] == "critical" and "silent" in w["text"] for w in d["warnings"]) or d["peer"]["last_heard_seconds"] > 5'; then
	hs_ok "standby: no peer-gone CRITICAL before peer_timeout (last heard $(jget "$T/s.out" 'd["peer"]["last_heard_seconds"]') s)"
else
	hs_bad "standby: CRITICAL for a primary silent $(jget "$T/s.out" 'd["peer"]["last_heard_seconds"]') s, under peer_timeout 5 s: $(jget "$T/s.out" 'd["warnings"]')"
fi
rpo1=$(jget "$T/s.out" 'd["promote_ready"]["rpo_seconds"]') || rpo1=None
sleep 2
status s "$C2" --json
rpo2=$(jget "$T/s.out" 'd["promote_ready"]["rpo_seconds"]') || rpo2=None
if python3 -c 'import sys; sys.exit(0 if float(sys.argv[2]) > float(sys.argv[1]) else 1)' "$rpo1" "$rpo2" 2>/dev/null; then
	hs_ok "rpo_seconds grows with the silence ($rpo1 -> $rpo2 s)"
else
	hs_bad "rpo_seconds: $rpo1 -> $rpo2"
fi
standby_crit() {
	status sc "$C2"
	[ "$RC" -eq 2 ]
}
if poll 100 0.2 standby_crit; then
	hs_ok "standby: CRITICAL once the primary is gone ($(grep -m1 CRIT "$T/sc.out"))"
else
	hs_bad "standby never CRITICAL: $(cat "$T/sc.out")"
fi

# --------------------------------- 8. a daemon that is not running: index
status dead "$C1" --json
if [ "$RC" -eq 2 ] && jtrue "$T/dead.out" 'd["daemon"] == "stopped" and d["role"] == "primary" and d["node"] == "mn1" and d["promote_ready"]["ready"] is False and len(d["paths"]) > 0 and d["lag"]["last_applied"] is not None'; then
	hs_ok "killed primary: CRITICAL (2), daemon stopped, its saved sets and last apply"
else
	hs_bad "killed primary: rc $RC $(cat "$T/dead.out" "$T/dead.err")"
fi
spec_ok "killed primary" "$T/dead.out"
status deadh "$C1"
if [ "$RC" -eq 2 ] && head -1 "$T/deadh.out" | hs_has "CRITICAL.*daemon stopped"; then
	hs_ok "killed primary, human: $(head -1 "$T/deadh.out")"
else
	hs_bad "killed primary, human: rc $RC $(cat "$T/deadh.out" "$T/deadh.err")"
fi
hs_stop_pid "$STANDBY_PID" TERM 150 || hs_fail "the standby did not stop"
status stopped "$C2" --json
if [ "$RC" -eq 2 ] && jtrue "$T/stopped.out" 'd["daemon"] == "stopped" and d["role"] == "standby" and d["peer"]["state"] is None and d["lag"]["seconds"] is None and len(d["paths"]) > 0 and d["lag"]["last_applied"] is not None'; then
	hs_ok "stopped standby: CRITICAL (2), daemon stopped, unknowns null"
else
	hs_bad "stopped standby: rc $RC $(cat "$T/stopped.out" "$T/stopped.err")"
fi
spec_ok "stopped standby" "$T/stopped.out"
if [ -n "$GROUP" ]; then
	# A status_group member with the daemon down: CRITICAL from a readable
	# index, or UNKNOWN saying permission denied; never OK, never a hang.
	set +e
	as_member "$HS_BIN" -c "$C2" status >"$T/perm-stopped.out" 2>"$T/perm-stopped.err"
	RC=$?
	set -e
	if [ "$RC" -eq 2 ] || { [ "$RC" -eq 3 ] && grep -qi "permission denied" "$T/perm-stopped.err"; }; then
		hs_ok "member, daemon stopped: rc $RC $(head -1 "$T/perm-stopped.out" "$T/perm-stopped.err" | grep -v '^==>\|^$' | head -1)"
	else
		hs_bad "member, daemon stopped: rc $RC $(cat "$T/perm-stopped.out" "$T/perm-stopped.err")"
	fi
fi
metrics_ok "metrics, primary (after its death)" "$T/m1.prom"
metrics_ok "metrics, standby (after stop)" "$T/m2.prom"

hs_result test_status
