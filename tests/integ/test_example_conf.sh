#!/usr/bin/env bash
# test_example_conf.sh - etc/hamnsync.conf.example is a working config.
#
# The example is copied twice with only its values moved into the test's
# folder (paths, ports, fingerprints; each substitution must hit, so the
# copies hold every line of the example): as shipped for mn1, and with
# the "On mn2" changes for mn2.  A standby and a one-shot sync run on the
# two copies: the guide's path sets replicate, and the raw SQLite files
# (*.sqlite, -journal, -wal, -shm) stay on the primary.  Then the real
# parser must accept each copy (`status --json` reports no config error
# and names the node, role and sets), and the copy with every
# "#key = value" option uncommented, the "not built yet" [database] and
# [failover] sections included.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ -x "$HS_BIN" ] || hs_fail "$HS_BIN is not built"

EXAMPLE=$top/etc/hamnsync.conf.example
[ -r "$EXAMPLE" ] || hs_fail "$EXAMPLE is missing"

hs_init example_conf
PORT=$(hs_free_port) || hs_fail "no free port"
mkdir -p "$T/pki/mn1"
hs_pki
S=$T/src

# subst FILE FROM TO: replace FROM (a sed pattern, '|' delimited) by TO
# in FILE; fails the test when FROM matches no line.
subst() {
	grep -q -e "$2" "$1" ||
		hs_fail "$(basename "$EXAMPLE"): no line matches '$2'"
	sed -i "s|$2|$3|" "$1"
}

# example_conf OUT NODE STATE PEERFP: the example with its values moved
# under $T, for node NODE (mn1 as shipped, mn2 with the "On mn2" lines).
example_conf() {
	local out=$1 node=$2 state=$3 fp=$4
	cp "$EXAMPLE" "$out"
	subst "$out" '^state_dir = /var/lib/hamnsync$' "state_dir = $state"
	subst "$out" '^listen = 0.0.0.0:7873$' "listen = 127.0.0.1:$PORT"
	subst "$out" '^peer = mn2:7873$' "peer = 127.0.0.1:$PORT"
	subst "$out" '/etc/hamnsync/' "$T/pki/$node/"
	subst "$out" '^peer_fingerprint = sha256:0\{64\}$' \
		"peer_fingerprint = $fp"
	subst "$out" '^source = /' "source = $S/"
	subst "$out" '^#metrics_file = /var/lib/prometheus/' \
		"#metrics_file = $T/$node-"
	if [ "$node" = mn2 ]; then
		subst "$out" '^name = mn1$' 'name = mn2'
		subst "$out" '^role = primary$' 'role = standby'
		# The standby's copy of P is under $T; mn1's stays at P.
		subst "$out" '^target_root = /$' "target_root = $T/standby"
	fi
	[ "$(wc -l <"$out")" -eq "$(wc -l <"$EXAMPLE")" ] ||
		hs_fail "$out: line count differs from the example"
}

# parses NAME CONF EXPR: `status --json` on CONF shows no config error,
# and its object satisfies the python expression EXPR (`d`).
parses() {
	local name=$1 conf=$2 expr=$3
	hs_status "$conf" "$T/$name.json"
	if grep -q '^hamnsync: config:' "$T/$name.json.err"; then
		hs_bad "$name: $(cat "$T/$name.json.err")"
	elif python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)' "$T/$name.json" "$expr" \
		2>"$T/$name.why"; then
		hs_ok "$name: parsed (status exit $HS_STATUS_RC)"
	else
		hs_bad "$name: status exit $HS_STATUS_RC, wanted $expr: $(cat \
			"$T/$name.json.err" "$T/$name.why" "$T/$name.json" | head -5)"
	fi
}

C1=$T/mn1.conf
C2=$T/mn2.conf
example_conf "$C1" mn1 "$T/state1" "$FP2"
example_conf "$C2" mn2 "$T/state2" "$FP1"

# 1. The two copies replicate the guide's path sets, SQLite files excluded.
mkdir -p "$S/etc/xcat/ca/private" "$S/etc/xcat/cert" "$S/etc/xcat/hostkeys" \
	"$S/root/.xcat" "$S/install/postscripts" "$S/install/netboot"
printf 'CA\n' >"$S/etc/xcat/ca/ca-cert.pem"
printf 'KEY\n' >"$S/etc/xcat/ca/private/ca-key.pem"
chmod 600 "$S/etc/xcat/ca/private/ca-key.pem"
printf 'CERT\n' >"$S/etc/xcat/cert/server-cert.pem"
printf 'HOSTKEY\n' >"$S/etc/xcat/hostkeys/ssh_host_ed25519_key"
printf 'CLIENT\n' >"$S/root/.xcat/client-cred.pem"
printf '#!/bin/sh\n' >"$S/install/postscripts/syslog"
head -c 300000 /dev/urandom >"$S/install/netboot/initrd.img"
printf '10.0.0.1 mn1\n10.0.0.2 mn2\n' >"$S/etc/hosts"
printf 'nameserver 10.0.0.1\n' >"$S/etc/resolv.conf"
# xCAT's live database, in /etc/xcat beside the credentials, and a copy
# that landed inside a replicated folder.
printf 'SQLite format 3\n' >"$S/etc/xcat/site.sqlite"
for f in site.sqlite site.sqlite-journal site.sqlite-wal site.sqlite-shm; do
	printf 'SQLite format 3\n' >"$S/etc/xcat/cert/$f"
done

hs_start_standby "$C2"
hs_sync
HS_COMPARE_EXCLUDE='*.sqlite*'
hs_sync_check "sync with the example's sets" "$S/etc/xcat/ca" \
	"$S/etc/xcat/cert" "$S/etc/xcat/hostkeys" "$S/root/.xcat" \
	"$S/install" "$S/etc/hosts" "$S/etc/resolv.conf"
left=$(find "$T/standby" -name '*.sqlite*' | sed "s|^$T/standby||")
if [ -z "$left" ] && [ -f "$T/standby$S/etc/xcat/cert/server-cert.pem" ]; then
	hs_ok "no raw SQLite file reached the standby"
else
	hs_bad "raw SQLite files on the standby: $left"
fi

# 2. Each node's status reads its copy: the standby's daemon names its
# sets; the primary, stopped, its node and role from the index the sync
# made (its sets replicated above).
SETS='[p["name"] for p in d["paths"]] == ["credentials", "install", "netconf"]'
parses mn1 "$C1" "d['node'] == 'mn1' and d['role'] == 'primary' and \
d['databases'] == []"
parses mn2 "$C2" "d['node'] == 'mn2' and d['role'] == 'standby' and $SETS"

# 3. Every option uncommented: [database] and [failover] too.
ALL=$T/all.conf
cp "$C1" "$ALL"
sed -i 's/^#\([a-z[]\)/\1/' "$ALL"
# The CA named by `ca`: a certificate that signs the peer's.
cp "$T/pki/mn2/node.crt" "$T/pki/mn1/ca.crt"
grep -q '^\[failover\]' "$ALL" && grep -q '^\[database xcatdb\]' "$ALL" ||
	hs_fail "the example has no commented [database] or [failover] section"
if grep -q '^#[a-z[]' "$ALL"; then
	hs_fail "lines still commented: $(grep '^#[a-z[]' "$ALL" | head -3)"
fi
parses all-options "$ALL" "d['node'] == 'mn1' and \
[(x['name'], x['type']) for x in d['databases']] == [('xcatdb', 'sqlite')]"

hs_result test_example_conf
