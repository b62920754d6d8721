#!/usr/bin/env bash
# test_auth.sh - who may talk to the standby.  A test PKI made with the
# openssl CLI (a good CA, a rogue CA, node certificates for mn1 and mn2,
# an mn1 certificate from the rogue CA, expired and not-yet-valid ones, a
# self-signed unpinned one) and attackers that are not hamnsync at all
# (openssl s_client without a certificate, TLS 1.2 clients, plain TCP
# garbage, an idle TCP connection).  Each refused primary: sync exits 3,
# the standby logs one clear line, no file lands under target_root; the
# standby stays up and still serves the rightful primary.  Modes: pinned,
# CA, both (both must hold), and pinned with an expired certificate (only
# a warning).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ -x "$HS_BIN" ] || hs_fail "$HS_BIN is not built"

hs_init auth
hs_gen_tree "$T/src"
hs_setup_pair "$(hs_sets_for "$T/src")"   # pinned mode: $C1, $C2
SOURCES=$(hs_all_sources "$T/src")
P=$T/pki/x509
mkdir -p "$P/newcerts"

# ------------------------------------------------------------- the PKI
echo "== making the test PKI"
ossl() {
	openssl "$@" >>"$P/openssl.log" 2>&1 || {
		cat "$P/openssl.log" >&2
		hs_fail "openssl $1 failed"
	}
}
# mkca NAME: a self-signed CA.
mkca() {
	ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$P/$1.key" -out "$P/$1.crt" -days 30 \
		-subj "/CN=hamnsync test $1" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign"
}
# mkleaf OUT NODENAME CA [STARTDATE ENDDATE]: a node certificate with
# subjectAltName DNS:NODENAME, signed by CA (openssl ca, for the dates).
mkleaf() {
	local out=$1 name=$2 ca=$3 start=${4:-} end=${5:-} dates
	ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$P/$out.key" -out "$P/$out.csr" -subj "/CN=$name"
	chmod 600 "$P/$out.key"
	cat >"$P/$out.ext" <<EXT
basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:$name
EXT
	cat >"$P/$ca.cnf" <<CNF
[ca]
default_ca = tca
[tca]
database = $P/$ca.index
new_certs_dir = $P/newcerts
serial = $P/$ca.serial
default_md = sha256
default_days = 30
policy = any
unique_subject = no
[any]
commonName = supplied
CNF
	[ -f "$P/$ca.index" ] || : >"$P/$ca.index"
	[ -f "$P/$ca.serial" ] || echo 1000 >"$P/$ca.serial"
	dates=()
	[ -n "$start" ] && dates=(-startdate "$start" -enddate "$end")
	ossl ca -batch -notext -config "$P/$ca.cnf" -cert "$P/$ca.crt" \
		-keyfile "$P/$ca.key" -in "$P/$out.csr" -out "$P/$out.crt" \
		-extfile "$P/$out.ext" "${dates[@]}"
}
fp_of() {
	openssl x509 -noout -fingerprint -sha256 -in "$1" |
		sed 's/.*=//; s/://g' | tr 'A-F' 'a-f' | sed 's/^/sha256:/'
}
mkca ca
mkca rogue
mkleaf mn1 mn1 ca
mkleaf mn1b mn1 ca
mkleaf mn2 mn2 ca
mkleaf mn1-rogue mn1 rogue
mkleaf mn1-expired mn1 ca 20200101000000Z 20210101000000Z
mkleaf mn1-future mn1 ca 20400101000000Z 20410101000000Z
mkdir -p "$T/pki/unpinned"
"$HS_BIN" keygen --out "$T/pki/unpinned" --name mn1 >/dev/null
for c in mn1 mn2 mn1-rogue mn1-expired mn1-future; do
	printf '   %-12s %s\n' "$c" \
		"$(openssl x509 -noout -issuer -enddate -ext subjectAltName -in "$P/$c.crt" |
			tr '\n' ' ' | sed 's/X509v3 Subject Alternative Name: *//')"
done

# node_conf FILE NAME ROLE STATE CERT KEY [LINE...]: a [node] section
# without any peer policy (the lines add it), and the test's sets.  The
# primary's copy of P is P (target_root /), the standby's under $T.
node_conf() {
	local f=$1 name=$2 role=$3 state=$4 cert=$5 key=$6 root=$T/standby
	shift 6
	[ "$role" = primary ] && root=/
	{
		cat <<CONF
[node]
name = $name
role = $role
state_dir = $state
listen = 127.0.0.1:$PORT
peer = 127.0.0.1:$PORT
cert = $cert
key = $key
target_root = $root
peer_timeout = 5s
CONF
		printf '%s\n' "$@"
		hs_sets_for "$T/src"
	} >"$f"
}
# A primary in CA mode presenting certificate NAME from $P.
ca_primary() {
	node_conf "$T/p-$1.conf" mn1 primary "$T/state1" "$P/$1.crt" \
		"$P/$1.key" "ca = $P/ca.crt" "peer_name = mn2"
	echo "$T/p-$1.conf"
}
S_CA=$T/s-ca.conf
node_conf "$S_CA" mn2 standby "$T/state2" "$P/mn2.crt" "$P/mn2.key" \
	"ca = $P/ca.crt" "peer_name = mn1"
S_BOTH=$T/s-both.conf
node_conf "$S_BOTH" mn2 standby "$T/state2" "$P/mn2.crt" "$P/mn2.key" \
	"ca = $P/ca.crt" "peer_name = mn1" \
	"peer_fingerprint = $(fp_of "$P/mn1.crt")" \
	"peer_fingerprint = $(fp_of "$P/mn1-rogue.crt")"
P_UNPINNED=$T/p-unpinned.conf
node_conf "$P_UNPINNED" mn1 primary "$T/state1" "$T/pki/unpinned/node.crt" \
	"$T/pki/unpinned/node.key" "peer_fingerprint = $FP2"
# The same self-signed certificate, against a standby in CA mode.
P_SELF_CA=$T/p-self-ca.conf
node_conf "$P_SELF_CA" mn1 primary "$T/state1" "$T/pki/unpinned/node.crt" \
	"$T/pki/unpinned/node.key" "ca = $P/ca.crt" "peer_name = mn2"

# Pinned mode with an expired but pinned certificate: only a warning.
S_PIN_EXP=$T/s-pin-expired.conf
node_conf "$S_PIN_EXP" mn2 standby "$T/state2" "$T/pki/mn2/node.crt" \
	"$T/pki/mn2/node.key" "peer_fingerprint = $(fp_of "$P/mn1-expired.crt")"
P_PIN_EXP=$T/p-pin-expired.conf
node_conf "$P_PIN_EXP" mn1 primary "$T/state1" "$P/mn1-expired.crt" \
	"$P/mn1-expired.key" "peer_fingerprint = $FP2"

# ------------------------------------------------------------- helpers
NLOG=0
# standby CONF: (re)start the standby with CONF and a fresh log.
standby() {
	if [ -n "${STANDBY_PID:-}" ] && kill -0 "$STANDBY_PID" 2>/dev/null; then
		hs_stop_standby
	fi
	if [ -f "$T/standby.log" ]; then
		NLOG=$((NLOG + 1))
		mv "$T/standby.log" "$T/standby-$NLOG.log"
	fi
	hs_start_standby "$1"
	echo "-- standby: $(grep -m1 'listening on' "$T/standby.log" | cut -d' ' -f3-) ($(basename "$1"))"
}

# log_line FROM PHRASE: wait (bounded) until a log line after line FROM
# holds PHRASE; print the first.
log_line() {
	local i
	for ((i = 0; i < 50; i++)); do
		if tail -n +"$(($1 + 1))" "$T/standby.log" | hs_has -F -- "$2"; then
			tail -n +"$(($1 + 1))" "$T/standby.log" | grep -m1 -F -- "$2" | cut -d' ' -f3-
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# good_sync NAME CONF: the rightful primary syncs; trees identical.
good_sync() {
	local save=$C1
	C1=$2
	echo "-- $1"
	echo "marker $1" >"$T/src/install/marker-$1"
	hs_sync
	C1=$save
	HS_STANDBY_CONF=$STANDBY_CONF hs_sync_check \
		"$1: sync exits 0, standby identical" $SOURCES
}

# refused NAME CONF PHRASE: a primary with CONF is refused (exit 3), the
# standby logs one line with PHRASE, and nothing lands under target_root.
refused() {
	local name=$1 conf=$2 phrase=$3 lines before line n save=$C1 applied
	echo "-- $name"
	echo "marker $name" >"$T/src/install/marker-$name"
	before=$(hs_snapshot "$T/standby")
	applied=$(HS_STANDBY_CONF=$STANDBY_CONF hs_last_applied)
	lines=$(wc -l <"$T/standby.log")
	C1=$conf
	hs_sync
	C1=$save
	if [ "$SYNC_RC" -eq 3 ]; then
		hs_ok "$name: sync exits 3: $(head -1 "$T/sync.err")"
	else
		hs_bad "$name: sync exited $SYNC_RC (want 3): $(head -3 "$T/sync.err")"
	fi
	if line=$(log_line "$lines" "$phrase"); then
		n=$(tail -n +"$((lines + 1))" "$T/standby.log" | grep -c -F -- "$phrase" || true)
		if [ "$n" -eq 1 ]; then
			hs_ok "$name: standby logged: $line"
		else
			hs_bad "$name: $n log lines with '$phrase' (want one)"
		fi
	else
		hs_bad "$name: no standby log line with '$phrase'"
		tail -n +"$((lines + 1))" "$T/standby.log" | sed 's/^/     | /'
	fi
	unapplied "$name" "$applied"
	if [ ! -e "$T/standby$T/src/install/marker-$name" ] &&
		[ "$(hs_snapshot "$T/standby")" = "$before" ]; then
		hs_ok "$name: nothing changed under target_root"
	else
		hs_bad "$name: files CHANGED under target_root"
	fi
	alive "$name"
}

# unapplied NAME BEFORE: the standby's status still says its last apply
# was at BEFORE (what it said before the refused peer came).
unapplied() {
	local now
	now=$(HS_STANDBY_CONF=$STANDBY_CONF hs_last_applied)
	if [ "$now" = "$2" ]; then
		hs_ok "$1: the standby's status shows no new apply (last_applied $now)"
	else
		hs_bad "$1: the standby's last_applied moved from $2 to $now"
	fi
}

alive() {
	if kill -0 "$STANDBY_PID" 2>/dev/null; then
		hs_ok "$1: standby daemon alive"
	else
		hs_bad "$1: standby daemon DIED"
		hs_start_standby "$STANDBY_CONF"
	fi
}

# intruder NAME PHRASE CMD...: something that is not a primary connects;
# the standby logs one line with PHRASE and nothing changes.
intruder() {
	local name=$1 phrase=$2 lines before line applied
	shift 2
	echo "-- $name"
	before=$(hs_snapshot "$T/standby")
	applied=$(HS_STANDBY_CONF=$STANDBY_CONF hs_last_applied)
	lines=$(wc -l <"$T/standby.log")
	set +e
	timeout 20 "$@" >"$T/intruder.out" 2>&1
	set -e
	if line=$(log_line "$lines" "$phrase"); then
		hs_ok "$name: standby logged: $line"
	else
		hs_bad "$name: no standby log line with '$phrase'"
		tail -n +"$((lines + 1))" "$T/standby.log" | sed 's/^/     | /'
	fi
	unapplied "$name" "$applied"
	if [ "$(hs_snapshot "$T/standby")" = "$before" ]; then
		hs_ok "$name: nothing changed under target_root"
	else
		hs_bad "$name: files CHANGED under target_root"
	fi
	alive "$name"
}

# ------------------------------------------------------------- pinned
echo "== pinned mode (peer_fingerprint)"
STANDBY_CONF=$C2
standby "$C2"
good_sync pinned-baseline "$C1"
refused unpinned-self-signed "$P_UNPINNED" "certificate is not pinned"
intruder client-without-cert "connection refused" \
	openssl s_client -connect "127.0.0.1:$PORT" </dev/null
grep -q -i "certificate" "$T/standby.log" &&
	echo "   ($(grep -i 'connection refused' "$T/standby.log" | tail -1 | cut -d' ' -f3-))"
intruder tls12-client-with-pinned-cert "connection refused" \
	openssl s_client -tls1_2 -connect "127.0.0.1:$PORT" \
	-cert "$T/pki/mn1/node.crt" -key "$T/pki/mn1/node.key" </dev/null
intruder tls12-client-no-tls13 "connection refused" \
	openssl s_client -no_tls1_3 -connect "127.0.0.1:$PORT" </dev/null
# shellcheck disable=SC2016
intruder plain-tcp-garbage "connection refused" \
	bash -c 'printf "GET / HTTP/1.0\r\n\r\n" >/dev/tcp/127.0.0.1/$0' "$PORT"
good_sync pinned-after-intruders "$C1"

# An idle TCP connection that never starts TLS must not lock the rightful
# primary out: authentication comes before the one-session slot.
echo "-- idle-unauthenticated-connection"
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
sleep 0.3
echo "marker idle" >"$T/src/install/marker-idle"
hs_sync
exec 3>&-
if [ "$SYNC_RC" -eq 0 ]; then
	hs_ok "idle-unauthenticated-connection: the primary is served (sync exits 0)"
else
	hs_bad "idle-unauthenticated-connection: sync exited $SYNC_RC: $(head -1 "$T/sync.err") - an unauthenticated TCP connection holds the session slot"
fi
alive idle-unauthenticated-connection
# Once the idle connection is gone, the primary is served again.
for ((i = 0; i < 80; i++)); do
	hs_sync
	[ "$SYNC_RC" -ne 3 ] && break
	sleep 0.1
done
[ "$SYNC_RC" -eq 0 ] && hs_ok "idle-unauthenticated-connection: served once it is gone" ||
	hs_bad "idle-unauthenticated-connection: sync still exits $SYNC_RC"

# ------------------------------------------------------------- CA
echo "== CA mode (ca, peer_name, no peer_fingerprint)"
STANDBY_CONF=$S_CA
standby "$S_CA"
good_sync ca-mode "$(ca_primary mn1)"
refused rogue-ca "$(ca_primary mn1-rogue)" "connection refused"
refused expired-cert "$(ca_primary mn1-expired)" "certificate has expired"
refused not-yet-valid-cert "$(ca_primary mn1-future)" "certificate is not yet valid"
refused wrong-name "$(ca_primary mn2)" "connection refused"
grep -q -i "mismatch" "$T/standby.log" ||
	hs_bad "wrong-name: the log does not say the name mismatched"
refused self-signed-in-ca-mode "$P_SELF_CA" "connection refused"
good_sync ca-after-refusals "$(ca_primary mn1)"

# ------------------------------------------------------------- both
echo "== pin and CA together: both must hold"
STANDBY_CONF=$S_BOTH
standby "$S_BOTH"
good_sync both-pinned-and-signed "$(ca_primary mn1)"
refused both-signed-not-pinned "$(ca_primary mn1b)" "certificate is not pinned"
refused both-pinned-not-signed "$(ca_primary mn1-rogue)" "connection refused"
good_sync both-after-refusals "$(ca_primary mn1)"

# ------------------------------------------------------------- pinned, expired
echo "== pinned mode: an expired certificate that is pinned is only warned about"
STANDBY_CONF=$S_PIN_EXP
standby "$S_PIN_EXP"
lines=$(wc -l <"$T/standby.log")
good_sync pinned-expired "$P_PIN_EXP"
if line=$(log_line "$lines" "expired"); then
	hs_ok "pinned-expired: the standby warns: $line"
else
	hs_bad "pinned-expired: no warning about the expired certificate"
fi

hs_result test_auth
