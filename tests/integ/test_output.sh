#!/usr/bin/env bash
# Output that scripts can trust: `sync --dry-run` prints one line per
# entry, ACTION PATH, each name escaped the way rsync does (\#012 for a
# newline, \#ooo for other control bytes and invalid UTF-8, \#134 for a
# backslash before '#'); `--json` gives one object with the same entries
# and counts; `verify` lists a drifted file escaped, human and --json,
# exit 1.  Every run here is checked against the trees (rsync as the
# oracle) and what the standby's status said.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

hs_init output
D=$T/src/data
NL="nl
name"
TAB="tab	name"
BAD="bad"$'\xff'"name"
BH='back\#012name'
mkdir -p "$D/sub"
echo plain >"$D/plain"
echo "a newline" >"$D/$NL"
echo "a tab" >"$D/$TAB"
echo "not UTF-8" >"$D/$BAD"
echo "backslash-hash" >"$D/$BH"
echo inner >"$D/sub/inner"
hs_setup_pair "
[path data]
source = $D"
hs_start_standby

# want_lines NAME FILE LINE...: FILE holds exactly these lines and one
# summary line after them, in any order.
want_lines() {
	local name=$1 file=$2 got want
	shift 2
	got=$(head -n -1 "$file" | LC_ALL=C sort)
	want=$(printf '%s\n' "$@" | LC_ALL=C sort)
	if [ "$got" = "$want" ] && tail -1 "$file" | hs_has '^sync (dry run): '; then
		hs_ok "$name: $(($(wc -l <"$file") - 1)) lines, one per entry, escaped"
	else
		hs_bad "$name: lines differ from the entries"
		diff <(echo "$want") <(echo "$got") | sed 's/^/     /' | cat -A
	fi
}

# json_check NAME FILE EXPR: FILE parses as one JSON object (python3
# json.load) and EXPR holds of it (`d`; P: the source folder as bytes,
# `p(name)`: the JSON path of a name given as bytes).
json_check() {
	if python3 - "$2" "$D" "$3" <<'PY' 2>"$T/json.why"; then
import json, os, sys
d = json.load(open(sys.argv[1]))
P = os.fsencode(sys.argv[2])

def p(b):
	# cli_json_path: valid UTF-8 as is, each other byte as \xNN
	out, i = "", 0
	b = P + b"/" + b if b else P
	while i < len(b):
		for k in (1, 2, 3, 4):
			try:
				out += b[i:i + k].decode("utf-8")
				i += k
				break
			except UnicodeDecodeError:
				continue
		else:
			out += "\\x%02x" % b[i]
			i += 1
	return out

if not eval("(" + sys.argv[3] + "\n)"):
	print(json.dumps(d)[:600], file=sys.stderr)
	sys.exit(1)
PY
		hs_ok "$1"
	else
		hs_bad "$1: $(cat "$T/json.why")"
	fi
}

# 1. A first dry run against an empty standby: every entry, escaped.
hs_sync_rc 0 "dry run" --dry-run
want_lines "dry run" "$T/sync.out" \
	"mkdir    $D" \
	"mkdir    $D/sub" \
	"new      $D/plain" \
	"new      $D/nl\\#012name" \
	"new      $D/tab\\#011name" \
	"new      $D/bad\\#377name" \
	"new      $D/back\\#134#012name" \
	"new      $D/sub/inner"
[ ! -e "$T/standby$D" ] && hs_ok "dry run: nothing written on the standby" ||
	hs_bad "dry run: the standby has $D"

# 2. The same as one JSON object.
hs_sync_rc 0 "dry run --json" --dry-run --json
cp "$T/sync.out" "$T/dry.json"
json_check "dry run --json: the same 8 entries, paths as bytes allow" "$T/dry.json" '
d["exit"] == 0 and d["dry_run"] is True and
sorted((e["set"], e["action"], e["path"]) for e in d["entries"]) ==
sorted([("data", "mkdir", p(b"")), ("data", "mkdir", p(b"sub")),
	("data", "new", p(b"plain")), ("data", "new", p(b"nl\nname")),
	("data", "new", p(b"tab\tname")), ("data", "new", p(b"bad\xffname")),
	("data", "new", p(b"back\\#012name")),
	("data", "new", p(b"sub/inner"))])'
json_check "dry run --json: counts, per set and in all" "$T/dry.json" '
d["counts"]["files"] == 6 and d["counts"]["dirs"] == 2 and
d["counts"]["remote_errors"] == 0 and
[s["name"] for s in d["sets"]] == ["data"] and
d["sets"][0]["counts"] == d["counts"] and "error" not in d and
p(b"bad\xffname").endswith("bad\\xffname")'

# 3. The sync itself; then nothing is left to do.
hs_sync_rc 0 "sync"
hs_sync_check "sync: trees equal" "$D"
hs_sync_rc 0 "no-change dry run" --dry-run
[ "$(wc -l <"$T/sync.out")" -eq 1 ] && hs_ok "no-change dry run: the summary alone" ||
	hs_bad "no-change dry run: $(cat -A "$T/sync.out")"

# 4. A deletion and a changed file in the dry run, human and --json.
rm "$D/$TAB"
echo "edited, longer than before" >"$D/$BH"
hs_sync_rc 0 "dry run of a delete" --dry-run
want_lines "dry run of a delete" "$T/sync.out" \
	"delete   $D/tab\\#011name" \
	"whole    $D/back\\#134#012name" \
	"meta     $D"
hs_sync_rc 0 "dry run of a delete --json" --dry-run --json
json_check "dry run of a delete --json: the same entries" "$T/sync.out" '
sorted((e["action"], e["path"]) for e in d["entries"]) ==
sorted([("delete", p(b"tab\tname")), ("whole", p(b"back\\#012name")),
	("meta", p(b""))]) and d["counts"]["deleted"] == 1'
# The standby fails that delete once (a failpoint): its error line names
# the path escaped, on stderr, and --json counts it; nothing is lost.
hs_stop_standby
HAMNSYNC_FAILPOINTS="apply.before_delete=1*err(EIO)" hs_start_standby
hs_sync_rc 1 "sync, the standby fails a delete" --json
cp "$T/sync.out" "$T/failed.json"
if [ "$(cat "$T/sync.err")" = "hamnsync: standby: $D/tab\#011name: cannot delete: Input/output error" ]; then
	hs_ok "the standby's error: one line, the name escaped"
else
	hs_bad "the standby's error: $(cat -A "$T/sync.err")"
fi
json_check "sync --json, the standby fails a delete: exit 1, 1 error" \
	"$T/failed.json" 'd["exit"] == 1 and d["counts"]["remote_errors"] == 1 and
d["entries"] == [] and d["dry_run"] is False'
[ -f "$T/standby$D/$TAB" ] && cmp -s "$T/standby$D/$BH" "$D/$BH" &&
	hs_ok "the failed delete left the file; the other change arrived" ||
	hs_bad "after the failed delete: standby $(ls -b "$T/standby$D")"
hs_sync_rc 0 "sync of a delete"
hs_sync_check "sync of a delete: trees equal" "$D"

# 5. A file changed on the standby behind hamnsync's back: verify lists
# it, escaped, and exits 1; --json carries it with its set and reason.
printf 'changed by hand\n' >"$T/standby$D/$NL"
set +e
"$HS_BIN" -c "$C1" verify >"$T/verify.out" 2>"$T/verify.err"
vrc=$?
"$HS_BIN" -c "$C1" verify --json >"$T/verify.json" 2>"$T/verify-json.err"
jrc=$?
set -e
if [ "$vrc" -eq 1 ] &&
	[ "$(cat "$T/verify.out")" = "differ   $D/nl\\#012name: size differs
verify: DIFFERENT (1 differences)" ]; then
	hs_ok "verify: exit 1, the drifted file on one escaped line"
else
	hs_bad "verify: exit $vrc: $(cat -A "$T/verify.out" "$T/verify.err")"
fi
[ "$jrc" -eq 1 ] && hs_ok "verify --json: exit 1" || hs_bad "verify --json: exit $jrc"
json_check "verify --json: the drifted file, its set and reason" "$T/verify.json" '
d["exit"] == 1 and d["identical"] is False and d["total"] == 1 and
d["differences"] == [{"set": "data", "path": p(b"nl\nname"),
	"reason": "size differs"}] and
d["sets"][0]["name"] == "data" and d["counts"]["differences"] == 1'
hs_sync_rc 0 "sync repairs the drift"
hs_sync_check "drift repaired: trees equal" "$D"
set +e
"$HS_BIN" -c "$C1" verify --json >"$T/verify.json" 2>"$T/verify-json.err"
jrc=$?
set -e
[ "$jrc" -eq 0 ] && hs_ok "verify --json after the repair: exit 0" ||
	hs_bad "verify --json after the repair: exit $jrc"
json_check "verify --json after the repair: identical" "$T/verify.json" '
d["identical"] is True and d["differences"] == [] and d["total"] == 0'

# 6. A standby that cannot be reached: exit 3, the error in the object.
hs_stop_standby
hs_sync_rc 3 "sync --json, standby gone" --json
json_check "sync --json, standby gone: exit 3 and the error" "$T/sync.out" '
d["exit"] == 3 and d["error"] != "" and d["entries"] == []'
[ "$(wc -l <"$T/sync.err")" -eq 1 ] && hs_ok "standby gone: one line on stderr" ||
	hs_bad "standby gone: stderr $(cat "$T/sync.err")"
[ -f "$T/standby$D/$BH" ] && [ ! -e "$T/standby$D/$TAB" ] &&
	hs_ok "standby gone: the standby's tree left as it was" ||
	hs_bad "standby gone: the standby's tree changed"

hs_result test_output
