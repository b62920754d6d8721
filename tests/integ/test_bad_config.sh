#!/usr/bin/env bash
# test_bad_config.sh - configuration errors and the commands that need no
# peer.  Every bad config makes `hamnsync -c BAD sync` exit 2 with exactly
# one line "hamnsync: config: FILE:LINE: ..." naming the right line, and
# `hamnsync daemon` refuse it before creating anything.  keygen refuses to
# overwrite without --force and prints exactly the fingerprint openssl
# computes; --version names the protocol and index format versions.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ -x "$HS_BIN" ] || hs_fail "$HS_BIN is not built"

hs_init bad_config
PORT=$(hs_free_port)
mkdir -p "$T/pki/mn1" "$T/pki/mn2" "$T/kg"
"$HS_BIN" keygen --out "$T/pki/mn1" --name mn1 >/dev/null
FP2=$("$HS_BIN" keygen --out "$T/pki/mn2" --name mn2)
mkdir -p "$T/src/install"

# good_conf FILE: a valid primary config, one key per line, so a test can
# drop or change one line and know its number.
good_conf() {
	cat >"$1" <<CONF
# hamnsync test configuration
[node]
name = mn1
role = primary
state_dir = $T/state-$(basename "$1" .conf)
listen = 127.0.0.1:$PORT
peer = 127.0.0.1:$PORT
cert = $T/pki/mn1/node.crt
key = $T/pki/mn1/node.key
peer_fingerprint = $FP2
target_root = $T/standby
heartbeat = 1s
peer_timeout = 5s
bwlimit = 0

[path install]
source = $T/src/install
CONF
}

# run_cmd OUT ERR CMD...: run, capturing stdout/stderr; sets RC.
run_cmd() {
	local out=$1 err=$2
	shift 2
	set +e
	timeout 20 "$@" >"$out" 2>"$err"
	RC=$?
	set -e
}

# expect_config_error NAME FILE LINE PHRASE: sync exits 2 with exactly one
# line "hamnsync: config: FILE:LINE: ..." holding PHRASE; no state_dir.
expect_config_error() {
	local name=$1 f=$2 line=$3 phrase=$4 state
	state=$T/state-$(basename "$f" .conf)
	run_cmd "$T/out" "$T/err" "$HS_BIN" -c "$f" sync
	local n
	n=$(wc -l <"$T/err")
	if [ "$RC" -eq 2 ] && [ "$n" -eq 1 ] && [ ! -s "$T/out" ] &&
		grep -q "^hamnsync: config: $f:$line: .*$phrase" "$T/err"; then
		hs_ok "$name: exit 2, one line: $(cat "$T/err")"
	else
		hs_bad "$name: exit $RC, $n lines (want 2, one line naming $f:$line and '$phrase'):"
		sed 's/^/     | /' "$T/err" "$T/out"
	fi
	if [ ! -e "$state" ]; then
		hs_ok "$name: no state_dir created"
	else
		hs_bad "$name: state_dir $state was created for a bad config"
	fi
}

# variant NAME SED_SCRIPT: a copy of the good config edited with sed.
variant() {
	local f=$T/$1.conf
	good_conf "$f"
	sed -i "$2" "$f"
	echo "$f"
}

# line_of FILE REGEX: number of the first line matching REGEX.
line_of() {
	grep -n -m1 -E "$2" "$1" | cut -d: -f1
}

echo "== the good config is accepted (daemon needs a standby: sync fails on the peer)"
good_conf "$T/good.conf"
run_cmd "$T/out" "$T/err" "$HS_BIN" -c "$T/good.conf" sync
[ "$RC" -eq 3 ] && hs_ok "good config: sync gets past the config (exit 3: no standby)" ||
	hs_bad "good config: exit $RC: $(cat "$T/err")"

echo "== bad configs"
f=$(variant unknown-key '/^role = /a bogus_key = 1')
expect_config_error unknown-key "$f" "$(line_of "$f" '^bogus_key')" "unknown key 'bogus_key'"

f=$(variant unknown-section '/^\[path install\]/i [bogus]\nx = 1\n')
expect_config_error unknown-section "$f" "$(line_of "$f" '^\[bogus\]')" "unknown section"

f=$(variant bad-duration 's/^heartbeat = .*/heartbeat = 5 fortnights/')
expect_config_error bad-duration "$f" "$(line_of "$f" '^heartbeat')" "heartbeat"

f=$(variant bad-duration-unit 's/^peer_timeout = .*/peer_timeout = 10d/')
expect_config_error bad-duration-unit "$f" "$(line_of "$f" '^peer_timeout')" "peer_timeout"

f=$(variant bad-size 's/^bwlimit = .*/bwlimit = 10Q/')
expect_config_error bad-size "$f" "$(line_of "$f" '^bwlimit')" "bwlimit"

f=$(variant missing-role '/^role = /d')
expect_config_error missing-role "$f" "$(line_of "$f" '^\[node\]')" "role"

f=$(variant missing-cert '/^cert = /d')
expect_config_error missing-cert "$f" "$(line_of "$f" '^\[node\]')" "cert"

f=$(variant no-peer-policy '/^peer_fingerprint = /d')
expect_config_error no-peer-policy "$f" "$(line_of "$f" '^\[node\]')" "peer_fingerprint"

f=$(variant relative-source 's|^source = .*|source = relative/install|')
expect_config_error relative-source "$f" "$(line_of "$f" '^source')" "relative/install"

f=$(variant key-outside-section '1i name = early')
expect_config_error key-outside-section "$f" 1 "outside"

f=$(variant bad-fingerprint 's/^peer_fingerprint = .*/peer_fingerprint = sha256:1234/')
expect_config_error bad-fingerprint "$f" "$(line_of "$f" '^peer_fingerprint')" "peer_fingerprint"

f=$(variant bad-fingerprint-hex "s/^peer_fingerprint = sha256:../peer_fingerprint = sha256:zz/")
expect_config_error bad-fingerprint-hex "$f" "$(line_of "$f" '^peer_fingerprint')" "peer_fingerprint"

f=$(variant bad-role 's/^role = .*/role = secondary/')
expect_config_error bad-role "$f" "$(line_of "$f" '^role')" "role"

f=$(variant bad-listen 's/^listen = .*/listen = 127.0.0.1:99999/')
expect_config_error bad-listen "$f" "$(line_of "$f" '^listen')" "listen"

echo "== a certificate file that does not exist (a local config error, not a peer problem)"
f=$(variant cert-file-missing "s|^cert = .*|cert = $T/pki/nonexistent.crt|")
run_cmd "$T/out" "$T/err" "$HS_BIN" -c "$f" sync
if [ "$RC" -eq 2 ] && grep -q "^hamnsync: .*nonexistent.crt" "$T/err"; then
	hs_ok "cert-file-missing: sync exits 2 naming the file: $(grep '^hamnsync: ' "$T/err" | head -1)"
else
	hs_bad "cert-file-missing: sync exited $RC (want 2: config error; 3 means peer unreachable or not authenticated):"
	sed 's/^/     | /' "$T/err"
fi
f=$(variant cert-file-missing-standby "s|^cert = .*|cert = $T/pki/nonexistent.crt|; s|^role = .*|role = standby|")
run_cmd "$T/out" "$T/err" "$HS_BIN" -c "$f" daemon --foreground
if [ "$RC" -ne 0 ] && grep -q "nonexistent.crt" "$T/err"; then
	hs_ok "cert-file-missing: daemon exits $RC naming the file: $(grep -m1 nonexistent.crt "$T/err")"
else
	hs_bad "cert-file-missing: daemon exited $RC: $(cat "$T/err")"
fi

echo "== a config file that does not exist"
run_cmd "$T/out" "$T/err" "$HS_BIN" -c "$T/no-such.conf" sync
if [ "$RC" -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] &&
	grep -q "^hamnsync: config: $T/no-such.conf: " "$T/err"; then
	hs_ok "missing file: exit 2: $(cat "$T/err")"
else
	hs_bad "missing file: exit $RC: $(cat "$T/err")"
fi
set +e
HAMNSYNC_CONF=$T/no-such.conf timeout 20 "$HS_BIN" sync >/dev/null 2>"$T/err"
RC=$?
set -e
[ "$RC" -eq 2 ] && grep -q "no-such.conf" "$T/err" &&
	hs_ok "HAMNSYNC_CONF is used: $(cat "$T/err")" ||
	hs_bad "HAMNSYNC_CONF: exit $RC: $(cat "$T/err")"

echo "== the daemon refuses a bad config before creating anything"
f=$(variant daemon-bad '/^role = /a bogus_key = 1')
state=$T/state-daemon-bad
for fg in --foreground ""; do
	# shellcheck disable=SC2086
	run_cmd "$T/out" "$T/err" "$HS_BIN" -c "$f" daemon $fg
	if [ "$RC" -ne 0 ] && [ "$(wc -l <"$T/err")" -eq 1 ] &&
		grep -q "^hamnsync: config: $f:$(line_of "$f" '^bogus_key'): unknown key" "$T/err"; then
		hs_ok "daemon ${fg:-(detaching)}: exit $RC, one line: $(cat "$T/err")"
	else
		hs_bad "daemon ${fg:-(detaching)}: exit $RC: $(cat "$T/err")"
	fi
	[ ! -e "$state" ] && hs_ok "daemon ${fg:-(detaching)}: no state_dir created" ||
		hs_bad "daemon ${fg:-(detaching)}: state_dir created"
done

echo "== keygen"
K=$T/kg
run_cmd "$T/out" "$T/err" "$HS_BIN" keygen --out "$K" --name mn9
[ "$RC" -eq 0 ] && [ -s "$K/node.crt" ] && [ -s "$K/node.key" ] &&
	hs_ok "keygen: first run exits 0: $(cat "$T/out")" ||
	hs_bad "keygen: first run exit $RC: $(cat "$T/err")"
[ "$(stat -c %a "$K/node.key")" = 600 ] && hs_ok "keygen: node.key is mode 0600" ||
	hs_bad "keygen: node.key is mode $(stat -c %a "$K/node.key")"
sums=$(sha256sum "$K/node.crt" "$K/node.key")
run_cmd "$T/out" "$T/err" "$HS_BIN" keygen --out "$K" --name mn9
if [ "$RC" -ne 0 ] && [ "$sums" = "$(sha256sum "$K/node.crt" "$K/node.key")" ] &&
	[ ! -s "$T/out" ]; then
	hs_ok "keygen: refuses to overwrite (exit $RC): $(cat "$T/err")"
else
	hs_bad "keygen without --force: exit $RC, files $([ "$sums" = "$(sha256sum "$K/node.crt" "$K/node.key")" ] && echo unchanged || echo CHANGED)"
fi
# Only the key exists: still no overwrite.
mkdir -p "$T/kg2"
echo "precious" >"$T/kg2/node.key"
run_cmd "$T/out" "$T/err" "$HS_BIN" keygen --out "$T/kg2" --name mn9
[ "$RC" -ne 0 ] && [ "$(cat "$T/kg2/node.key")" = precious ] &&
	hs_ok "keygen: refuses when only node.key exists: $(cat "$T/err")" ||
	hs_bad "keygen: overwrote a lone node.key (exit $RC)"
run_cmd "$T/out" "$T/err" "$HS_BIN" keygen --out "$K" --name mn9 --force
fp=$(openssl x509 -noout -fingerprint -sha256 -in "$K/node.crt" |
	sed 's/.*=//; s/://g' | tr 'A-F' 'a-f')
if [ "$RC" -eq 0 ] && [ "$(wc -l <"$T/out")" -eq 1 ] &&
	grep -qE '^sha256:[0-9a-f]{64}$' "$T/out" &&
	[ "$(cat "$T/out")" = "sha256:$fp" ]; then
	hs_ok "keygen --force: exit 0, one line equal to openssl's fingerprint: $(cat "$T/out")"
else
	hs_bad "keygen --force: exit $RC, stdout '$(cat "$T/out")', openssl says sha256:$fp"
fi
[ "$sums" != "$(sha256sum "$K/node.crt" "$K/node.key")" ] &&
	hs_ok "keygen --force: both files replaced" || hs_bad "keygen --force: files unchanged"
subj=$(openssl x509 -noout -subject -ext subjectAltName -in "$K/node.crt" | tr '\n' ' ')
grep -q "mn9" <<<"$subj" && grep -q "DNS:mn9" <<<"$subj" &&
	hs_ok "keygen: subject and DNS name are the node name: $subj" ||
	hs_bad "keygen: certificate names: $subj"
openssl x509 -noout -checkend $((9 * 365 * 86400)) -in "$K/node.crt" >/dev/null &&
	hs_ok "keygen: certificate valid for more than 9 years" ||
	hs_bad "keygen: certificate expires too soon"

echo "== --version"
run_cmd "$T/out" "$T/err" "$HS_BIN" --version
if [ "$RC" -eq 0 ] && grep -qE 'protocol [0-9]+' "$T/out" &&
	grep -qE 'index format [0-9]+' "$T/out"; then
	hs_ok "--version: $(cat "$T/out")"
else
	hs_bad "--version: exit $RC: $(cat "$T/out" "$T/err")"
fi

echo "== usage errors"
run_cmd "$T/out" "$T/err" "$HS_BIN" -c "$T/good.conf" sync --bogus
[ "$RC" -eq 2 ] && hs_ok "sync --bogus: exit 2" || hs_bad "sync --bogus: exit $RC"
run_cmd "$T/out" "$T/err" "$HS_BIN" no-such-command
[ "$RC" -eq 2 ] && grep -q "^hamnsync: " "$T/err" &&
	hs_ok "unknown command: exit 2: $(head -1 "$T/err")" ||
	hs_bad "unknown command: exit $RC"

hs_result test_bad_config
