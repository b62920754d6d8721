#!/usr/bin/env bash
# test_standby_report.sh - what the standby's status keeps of the sets
# that failed on it, across the sessions of its primaries.  A hostile
# primary (hs-evilpeer, with the primary's pinned identity) plays the
# sessions; no real primary runs.
#   a. A set refused in one session is still named while the next session
#      runs: a new session starts knowing of no failure, and its primary
#      has not said it is caught up.  A run of the next session that
#      reconciles the whole set with no error clears it.
#   b. More sets refused than a report has room to name: none is dropped
#      in silence; status says that more failed than it names.
#   c. A failed path too long for the report is shown cut with "...",
#      never as if it were whole.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
HS_TOOLS=${HS_TOOLS:-$top/build/bin}
EVIL=$HS_TOOLS/hs-evilpeer
[ -x "$HS_BIN" ] || hs_fail "$HS_BIN is not built"
[ -x "$EVIL" ] || hs_fail "$EVIL is not built"

hs_init standby_report
mkdir -p "$T/src/install"
echo data >"$T/src/install/file"
hs_setup_pair "
[path install]
source = $T/src/install"
hs_start_standby

# evil_report ARGS...: one hostile session; its output in $T/evil.out.
evil_report() {
	"$EVIL" -c "$C1" "$@" >"$T/evil.out" 2>&1 || true
}

# refused_named: the standby's status names set NAME as refused.
refused_named() {
	hs_status "$C2" "$T/st.json"
	python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
why = " | ".join(j["promote_ready"]["reasons"])
sys.exit(0 if "set %s refused on this standby" % sys.argv[2] in why else 1)' \
		"$T/st.json" "$1"
}

# ------------------------------ a. a new session keeps the last failures
evil_report unknown-set --set install --source "$T/src/install"
refused_named no-such-set || hs_fail "no refusal to begin with: $(cat "$T/st.json")"
"$EVIL" -c "$C1" hold 4 >"$T/hold.out" 2>&1 &
HOLD_PID=$!
HS_PIDS+=("$HOLD_PID")
hs_wait_log "$T/hold.out" "session open" 1 5 || hs_fail "hold: $(cat "$T/hold.out")"
sleep 0.5 # the session's first report is in
refused_named no-such-set &&
	hs_ok "a: the next session still finds set no-such-set refused" ||
	hs_bad "a: a new session forgot set no-such-set was refused: $(python3 "$HS_CLAIM" show "$T/st.json")"
hs_wait_gone "$HOLD_PID" 100 || hs_fail "hold did not end"
refused_named no-such-set &&
	hs_ok "a: after that session, still named" ||
	hs_bad "a: after that session, forgotten: $(python3 "$HS_CLAIM" show "$T/st.json")"

# A path of install failed in one session; a whole reconciliation of the
# set with no error, in the next (a one-shot sync), clears it.
evil_report put --set install --source "$T/src/install" --path nodir/file
hs_status "$C2" "$T/st.json"
grep -q "paths of set install failed to apply" "$T/st.json" ||
	hs_fail "no failed path to begin with: $(cat "$T/st.json")"
hs_sync
hs_status "$C2" "$T/st.json"
python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
why = " | ".join(j["promote_ready"]["reasons"])
sys.exit(1 if "set install" in why else 0)' "$T/st.json" &&
	hs_ok "a: a clean sync of the whole set clears what failed before (sync exit $SYNC_RC)" ||
	hs_bad "a: after a clean sync (exit $SYNC_RC): $(python3 "$HS_CLAIM" show "$T/st.json")"

# ------------------------- b. more failed sets than a report has room for
# Each session refuses no-such-set and sK (not configured here either):
# nine sets in all, one more than a report names.
for k in 1 2 3 4 5 6 7 8; do
	evil_report unknown-set --set "s$k" --source "$T/src/install"
done
hs_status "$C2" "$T/st.json"
python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
warn = " | ".join(w["text"] for w in j["warnings"])
named = [s for s in ["no-such-set"] + ["s%d" % k for k in range(1, 9)]
         if "set %s refused on this standby" % s in warn]
more = "more sets than those named failed to apply on this standby (mn2)"
if j["promote_ready"]["ready"]:
    print("promote ready with nine sets refused")
    sys.exit(1)
if len(named) == 9 or more in warn:
    print("%d of 9 named%s" % (len(named), ", and more" if more in warn else ""))
    sys.exit(0)
print("%d of 9 named, none said more: %s" % (len(named), warn))
sys.exit(1)' "$T/st.json" >"$T/b.out" &&
	hs_ok "b: nine refused sets: $(cat "$T/b.out")" ||
	hs_bad "b: $(cat "$T/b.out")"

# The same in one session: a primary with nine sets that the standby
# (restarted, so it knows of no failure) does not have.
hs_stop_standby
hs_start_standby
cp "$C1" "$T/nine.conf"
for k in 1 2 3 4 5 6 7 8 9; do
	mkdir -p "$T/src/t$k"
	printf '[path t%s]\nsource = %s\n' "$k" "$T/src/t$k" >>"$T/nine.conf"
done
"$HS_BIN" -c "$T/nine.conf" sync >"$T/sync.out" 2>&1 || true
hs_status "$C2" "$T/st.json"
python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
warn = " | ".join(w["text"] for w in j["warnings"])
named = [s for s in ["t%d" % k for k in range(1, 10)]
         if "set %s refused on this standby" % s in warn]
more = "more sets than those named failed to apply on this standby (mn2)"
if len(named) == 9 or more in warn:
    print("%d of 9 named%s" % (len(named), ", and more" if more in warn else ""))
    sys.exit(0)
print("%d of 9 named, none said more: %s" % (len(named), warn))
sys.exit(1)' "$T/st.json" >"$T/b.out" &&
	hs_ok "b: nine sets refused in one session: $(cat "$T/b.out")" ||
	hs_bad "b: one session: $(cat "$T/b.out")"

# ----------------------------------------- c. a path too long to show
hs_stop_standby
hs_start_standby
long=nodir/$(printf 'a%.0s' $(seq 1 200))/$(printf 'b%.0s' $(seq 1 100))
evil_report put --set install --source "$T/src/install" --path "$long"
hs_status "$C2" "$T/st.json"
python3 -c 'import json, re, sys
j = json.load(open(sys.argv[1]))
full = sys.argv[2]
texts = [w for w in j["promote_ready"]["reasons"]
         if "paths of set install failed to apply" in w]
m = re.search(r"\(first: (.*)\)$", texts[0]) if texts else None
if not m:
    print("no failed path named: %s" % j["promote_ready"]["reasons"])
    sys.exit(1)
shown = m.group(1)
if shown == full:
    print("shown whole (%d bytes)" % len(shown))
    sys.exit(0)
if shown.endswith("...") and full.startswith(shown[:-3]):
    print("cut with ...: %d of %d bytes" % (len(shown), len(full)))
    sys.exit(0)
print("cut silently: %d of %d bytes: %s" % (len(shown), len(full), shown))
sys.exit(1)' "$T/st.json" "$T/src/install/$long" >"$T/c.out" &&
	hs_ok "c: a long failed path: $(cat "$T/c.out")" ||
	hs_bad "c: $(cat "$T/c.out")"

hs_result standby_report
