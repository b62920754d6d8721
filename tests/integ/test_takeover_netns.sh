#!/usr/bin/env bash
# test_takeover_netns.sh - the identity step of a failover, alone
# (hs-identity: fo_identity_take / fo_identity_release), between two
# nodes and an observer in namespaces of the test's own (netns_lib.sh).
#   - IPv4: node1 holds 192.0.2.10/24 and the observer has its MAC;
#     node1 releases it, node2 takes it: the address is on node2's eth1,
#     its own address gone, its host name the configured one; without
#     any new traffic the observer's neighbour entry moves to node2's MAC
#     (gratuitous ARP), and an echo is then answered by node2.
#   - a second take succeeds and changes nothing.
#   - a missing interface: exit 1, one line naming it, nothing changed.
#   - release puts back the own address and the remembered host name.
#   - IPv6 (2001:db8::10/64) the same, through an unsolicited neighbour
#     advertisement.
#   - takeover_command / release_command run instead of the Linux steps,
#     with the HAMNSYNC_* environment; one that fails is named.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/netns_lib.sh"
HS_TOOLS=${HS_TOOLS:-$top/build/bin}
ID=$HS_TOOLS/hs-identity
[ -x "$ID" ] || hs_fail "$ID is not built"

hs_init takeover
hs_netns_up

# idconf FILE STATE_DIR: a node's config, [failover] lines on stdin.
idconf() {
	{
		cat <<CONF
[node]
name = node
role = standby
state_dir = $2
listen = 127.0.0.1:7873
peer = 127.0.0.1:7874
cert = $T/pki/node.crt
key = $T/pki/node.key
peer_fingerprint = sha256:$(printf '0%.0s' {1..64})

[failover]
CONF
		cat
	} >"$1"
}

# ident I CONF take|release: hs-identity in node I; its stdout in
# $T/id.out, stderr in $T/id.err, exit code in ID_RC.
ident() {
	set +e
	hs_node_run "$1" "$ID" "$2" "$3" >"$T/id.out" 2>"$T/id.err"
	ID_RC=$?
	set -e
}

# node_state I: what a take or release may change in node I: addresses
# of eth1, host name, the kept host name.
node_state() {
	ip -n "${HS_NS_N[$1]}" -o addr show dev eth1 | awk '{print $4}' | sort
	hs_node_run "$1" hostname
	cat "$T/state$1/promote/hostname" 2>/dev/null || echo "(none kept)"
}

# one_line FILE WORD: FILE holds exactly one line, and it names WORD.
one_line() {
	[ "$(wc -l <"$1")" -eq 1 ] && hs_has -F -- "$2" <"$1"
}

MAC1=$(hs_node_mac 1)
MAC2=$(hs_node_mac 2)
[ -n "$MAC1" ] && [ -n "$MAC2" ] && [ "$MAC1" != "$MAC2" ] ||
	hs_fail "the nodes' MACs: '$MAC1' '$MAC2'"

# takeover_by FAMILY SVC OWN1 OWN2: the move of SVC from node1 to node2.
takeover_by() {
	local fam=$1 svc=$2 own1=$3 own2=$4 addr=${2%/*} e0 e1
	idconf "$T/n1-$fam.conf" "$T/state1" <<CONF
hostname = mn1
service_address = $svc
interface = eth1
own_address = $own1
CONF
	idconf "$T/n2-$fam.conf" "$T/state2" <<CONF
hostname = mn1
service_address = $svc
interface = eth1
own_address = $own2
CONF
	# node1 holds the address; the observer learns its MAC.
	hs_node_run 1 ip addr add "$svc" dev eth1 nodad 2>/dev/null ||
		hs_node_run 1 ip addr add "$svc" dev eth1
	hs_obs_ping "$addr" || hs_fail "IPv$fam: node1 does not answer on $addr"
	[ "$(hs_obs_neigh "$addr")" = "$MAC1" ] ||
		hs_fail "IPv$fam: the observer maps $addr to" \
			"'$(hs_obs_neigh "$addr")', not node1's $MAC1"

	ident 1 "$T/n1-$fam.conf" release
	if [ "$ID_RC" = 0 ] && ! hs_node_has_addr 1 "$svc" &&
		hs_node_has_addr 1 "$own1"; then
		hs_ok "IPv$fam: node1 released $svc, kept $own1 ($(cat "$T/id.out"))"
	else
		hs_bad "IPv$fam: node1's release: exit $ID_RC: $(cat "$T/id.err")"
	fi

	# A link that is down: refused before anything changes.
	node_state 2 >"$T/before"
	ip -n "${HS_NS_N[2]}" link set eth1 down
	ident 2 "$T/n2-$fam.conf" take
	ip -n "${HS_NS_N[2]}" link set eth1 up
	node_state 2 >"$T/after"
	if [ "$ID_RC" = 1 ] && one_line "$T/id.err" "interface eth1: down" &&
		cmp -s "$T/before" "$T/after"; then
		hs_ok "IPv$fam: a link down: $(cat "$T/id.err"); nothing changed"
	else
		hs_bad "IPv$fam: link down: exit $ID_RC: $(cat "$T/id.err")" \
			"$(diff "$T/before" "$T/after" | tr '\n' ' ')"
	fi

	ident 2 "$T/n2-$fam.conf" take
	if [ "$ID_RC" = 0 ] && hs_node_has_addr 2 "$svc" &&
		! hs_node_has_addr 2 "$own2"; then
		hs_ok "IPv$fam: node2 took $svc, gave up $own2 ($(cat "$T/id.out"))"
	else
		hs_bad "IPv$fam: node2's take: exit $ID_RC: $(cat "$T/id.err")" \
			"$(node_state 2 | tr '\n' ' ')"
	fi
	if [ "$(hs_node_run 2 hostname)" = mn1 ] &&
		[ "$(cat "$T/state2/promote/hostname")" = mn2 ]; then
		hs_ok "IPv$fam: node2 is named mn1, its own name mn2 kept"
	else
		hs_bad "IPv$fam: node2's name: $(node_state 2 | tr '\n' ' ')"
	fi
	# No traffic from the observer since node1 answered: only the
	# announcement can move its entry.
	if hs_obs_wait_neigh "$addr" "$MAC2" 5; then
		hs_ok "IPv$fam: the observer's entry for $addr moved to node2's" \
			"$MAC2 by the announcement alone"
	else
		hs_bad "IPv$fam: after 5 s the observer still maps $addr to" \
			"'$(hs_obs_neigh "$addr")' (node2: $MAC2)"
	fi
	# arping, the oracle of who answers for an IPv4 address now.
	if [ "$fam" = 4 ]; then
		if hs_obs_run arping -c 1 -w 2 -I br0 "$addr" 2>&1 |
			hs_has -i -F "[$MAC2]"; then
			hs_ok "IPv4: arping $addr: node2 answers"
		else
			hs_bad "IPv4: arping $addr: no answer from node2 ($MAC2)"
		fi
	fi
	e0=$(hs_node_echoes 2 "$fam")
	if hs_obs_ping "$addr" && e1=$(hs_node_echoes 2 "$fam") &&
		[ "$e1" -gt "$e0" ]; then
		hs_ok "IPv$fam: an echo to $addr is answered by node2 ($e0 -> $e1)"
	else
		hs_bad "IPv$fam: no echo from node2 on $addr"
	fi

	# A second take (a resume after a crash) finds it all done.
	node_state 2 >"$T/before"
	ident 2 "$T/n2-$fam.conf" take
	node_state 2 >"$T/after"
	if [ "$ID_RC" = 0 ] && cmp -s "$T/before" "$T/after" &&
		hs_has "already" <"$T/id.out" &&
		[ "$(hs_obs_neigh "$addr")" = "$MAC2" ]; then
		hs_ok "IPv$fam: a second take succeeds and changes nothing" \
			"($(cat "$T/id.out"))"
	else
		hs_bad "IPv$fam: second take: exit $ID_RC: $(cat "$T/id.err")" \
			"$(diff "$T/before" "$T/after" | tr '\n' ' ')"
	fi

	# A config that names an interface this node lacks: refused before
	# anything changes (the host name included).
	sed 's/^interface = eth1$/interface = nosuch0/;s/^hostname = mn1$/hostname = mn9/' \
		"$T/n2-$fam.conf" >"$T/bad-$fam.conf"
	node_state 2 >"$T/before"
	ident 2 "$T/bad-$fam.conf" take
	node_state 2 >"$T/after"
	if [ "$ID_RC" = 1 ] && one_line "$T/id.err" "interface nosuch0" &&
		cmp -s "$T/before" "$T/after"; then
		hs_ok "IPv$fam: a missing interface: $(cat "$T/id.err"); nothing changed"
	else
		hs_bad "IPv$fam: missing interface: exit $ID_RC:" \
			"$(cat "$T/id.err") $(diff "$T/before" "$T/after" | tr '\n' ' ')"
	fi

	# Release gives back what take took, and twice is fine.
	ident 2 "$T/n2-$fam.conf" release
	if [ "$ID_RC" = 0 ] && ! hs_node_has_addr 2 "$svc" &&
		hs_node_has_addr 2 "$own2" &&
		[ "$(hs_node_run 2 hostname)" = mn2 ] &&
		[ ! -e "$T/state2/promote/hostname" ]; then
		hs_ok "IPv$fam: node2's release: $own2 and the name mn2 back" \
			"($(cat "$T/id.out"))"
	else
		hs_bad "IPv$fam: node2's release: exit $ID_RC: $(cat "$T/id.err")" \
			"$(node_state 2 | tr '\n' ' ')"
	fi
	node_state 2 >"$T/before"
	ident 2 "$T/n2-$fam.conf" release
	node_state 2 >"$T/after"
	if [ "$ID_RC" = 0 ] && cmp -s "$T/before" "$T/after"; then
		hs_ok "IPv$fam: a second release succeeds and changes nothing"
	else
		hs_bad "IPv$fam: second release: exit $ID_RC: $(cat "$T/id.err")"
	fi
}

takeover_by 4 192.0.2.10/24 192.0.2.1/24 192.0.2.2/24
takeover_by 6 2001:db8::10/64 2001:db8::1/64 2001:db8::2/64

# ------------------------------------------------ configured commands
cat >"$T/recorder.sh" <<'REC'
#!/bin/sh
# Records its call and the environment hamnsync gave it.
{
	echo "call $*"
	env | grep '^HAMNSYNC_' | sort
} >>"$REC_LOG"
echo "recorded $1"
REC
chmod +x "$T/recorder.sh"
export REC_LOG=$T/recorded
idconf "$T/cmd.conf" "$T/state2" <<CONF
hostname = mn1
service_address = 192.0.2.20/24
interface = eth1
own_address = 192.0.2.2/24
takeover_command = $T/recorder.sh take
release_command = $T/recorder.sh release
CONF
# The epoch a fence step stored: the commands are told it.
"$HS_TOOLS/hs-node" "$T/state2" standby 7 2 ||
	hs_fail "hs-node: cannot store node2's epoch"
node_state 2 >"$T/before"
ident 2 "$T/cmd.conf" take
node_state 2 >"$T/after"
if [ "$ID_RC" = 0 ] && cmp -s "$T/before" "$T/after" &&
	[ "$(grep -c '^call' "$T/recorded")" = 1 ] &&
	hs_has -x 'call take' <"$T/recorded" &&
	hs_has -x 'HAMNSYNC_ROLE=primary' <"$T/recorded" &&
	hs_has -x 'HAMNSYNC_STEP=identity' <"$T/recorded" &&
	hs_has -x 'HAMNSYNC_EPOCH=7' <"$T/recorded" &&
	hs_has -x 'HAMNSYNC_HOSTNAME=mn1' <"$T/recorded" &&
	hs_has -x 'HAMNSYNC_SERVICE_ADDRESS=192.0.2.20/24' <"$T/recorded" &&
	hs_has -x 'HAMNSYNC_INTERFACE=eth1' <"$T/recorded" &&
	hs_has 'identity: .*recorder.sh take: recorded take' <"$T/id.err"; then
	hs_ok "takeover_command ran instead of the Linux steps" \
		"($(cat "$T/id.out")), with HAMNSYNC_*; its output in the log"
else
	hs_bad "takeover_command: exit $ID_RC: $(cat "$T/id.err");" \
		"$(tr '\n' ' ' <"$T/recorded" 2>/dev/null)" \
		"$(diff "$T/before" "$T/after" | tr '\n' ' ')"
fi
ident 2 "$T/cmd.conf" release
if [ "$ID_RC" = 0 ] && hs_has -x 'call release' <"$T/recorded" &&
	hs_has -x 'HAMNSYNC_ROLE=standby' <"$T/recorded" &&
	hs_node_has_addr 2 192.0.2.2/24; then
	hs_ok "release_command ran instead of the Linux steps"
else
	hs_bad "release_command: exit $ID_RC: $(cat "$T/id.err")"
fi
# One that fails is named, with its last line.
cat >"$T/failing.sh" <<'FAIL'
#!/bin/sh
echo "mktcpip: en0: no such adapter"
exit 3
FAIL
chmod +x "$T/failing.sh"
sed "s|^takeover_command = .*|takeover_command = $T/failing.sh|" \
	"$T/cmd.conf" >"$T/cmd-fail.conf"
ident 2 "$T/cmd-fail.conf" take
if [ "$ID_RC" = 1 ] &&
	hs_has -x "hs-identity: take: $T/failing.sh: exit 3: mktcpip: en0: no such adapter" \
		<"$T/id.err"; then
	hs_ok "a failing takeover_command is named: $(tail -1 "$T/id.err")"
else
	hs_bad "failing takeover_command: exit $ID_RC: $(cat "$T/id.err")"
fi

hs_result takeover_netns
