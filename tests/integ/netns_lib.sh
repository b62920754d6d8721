# netns_lib.sh - a small network of namespaces for the identity tests,
# sourced after lib.sh.  Three network namespaces named hs-PID-obs,
# hs-PID-n1 and hs-PID-n2: the observer holds a bridge (br0) and a veth
# pair to each node, whose end in the node is eth1.  Addresses come from
# the documentation ranges only: node I is 192.0.2.I/24 and
# 2001:db8::I/64, the observer 192.0.2.100 and 2001:db8::100.  IPv6
# duplicate address detection is off inside them (a sysctl of each
# namespace, never of the host).
#
# Each node also has a UTS namespace of its own, held by a process
# started with `ip netns exec NS unshare --uts`: hs_node_run enters both
# (and the mount namespace `ip netns exec` gave it), so host name changes
# stay inside and last from one command to the next.
# Nothing of the host changes: the veth pairs are made inside the
# namespaces, and removing the namespaces (at exit) removes them.

HS_NS_OBS=hs-$$-obs
HS_NS_N=("" "hs-$$-n1" "hs-$$-n2")
HS_UTS_PID=("" "" "")
HS_NS_MADE=()

# hs_netns_cleanup: the EXIT trap: the holders and namespaces, then
# lib.sh's cleanup with the test's exit status.
hs_netns_cleanup() {
	local rc=$? ns p
	for p in "${HS_UTS_PID[@]}"; do
		[ -n "$p" ] && hs_signal KILL "$p"
	done
	for ns in "${HS_NS_MADE[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	# errexit off: under set -e a failed test's `(exit 1)` would end the
	# trap here, before hs_cleanup stops its processes.
	set +e
	(exit $rc)
	hs_cleanup
}

# hs_netns_add NS: make a namespace and remember it for the cleanup.
# A machine that cannot fails the test, with the reason.
hs_netns_add() {
	local err
	err=$(ip netns add "$1" 2>&1) ||
		hs_fail "cannot create network namespace $1 (needs root and" \
			"CONFIG_NET_NS): $err"
	HS_NS_MADE+=("$1")
	# keep_addr_on_down: a test that takes a link down and up again
	# finds its IPv6 addresses as it left them, like its IPv4 ones.
	ip netns exec "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
		net.ipv6.conf.default.accept_dad=0 \
		net.ipv6.conf.all.keep_addr_on_down=1 \
		net.ipv6.conf.default.keep_addr_on_down=1 >/dev/null ||
		hs_fail "$1: cannot set its IPv6 sysctls (DAD off, addresses" \
			"kept on down) inside it"
	ip -n "$1" link set lo up
}

# hs_netns_up: the three namespaces, the bridge, the links, the
# addresses, and a UTS namespace holder per node whose host name is mnI
# (hs_node_run).  Needs hs_init first.
hs_netns_up() {
	local i ns
	trap hs_netns_cleanup EXIT
	command -v unshare >/dev/null || hs_fail "unshare (util-linux) is missing"
	hs_netns_add "$HS_NS_OBS"
	ip -n "$HS_NS_OBS" link add br0 type bridge
	ip -n "$HS_NS_OBS" link set br0 up
	ip -n "$HS_NS_OBS" addr add 192.0.2.100/24 dev br0
	ip -n "$HS_NS_OBS" addr add 2001:db8::100/64 dev br0 nodad
	for i in 1 2; do
		ns=${HS_NS_N[$i]}
		hs_netns_add "$ns"
		ip -n "$HS_NS_OBS" link add "p$i" type veth peer name eth1 \
			netns "$ns"
		ip -n "$HS_NS_OBS" link set "p$i" master br0 up
		ip -n "$ns" link set eth1 up
		ip -n "$ns" addr add "192.0.2.$i/24" dev eth1
		ip -n "$ns" addr add "2001:db8::$i/64" dev eth1 nodad
		# The holder: a UTS namespace that outlives each command
		# (unshare execs in place: the PID is the holder's).
		ip netns exec "$ns" unshare --uts \
			sh -c "hostname mn$i && exec sleep 100000" &
		HS_UTS_PID[$i]=$!
		HS_PIDS+=("$!")
		disown "$!" # its SIGKILL at the end is no news
	done
	for i in 1 2; do
		hs_node_wait_uts "$i" ||
			hs_fail "node $i: its UTS namespace did not start"
	done
}

# hs_node_wait_uts I: until node I's holder runs under the name mnI
# (bounded: 5 s).
hs_node_wait_uts() {
	local i
	for ((i = 0; i < 50; i++)); do
		[ "$(nsenter -t "${HS_UTS_PID[$1]}" -u hostname 2>/dev/null)" = \
			"mn$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# hs_node_run I CMD...: run CMD in node I's network, UTS and mount
# namespaces (the holder's mount namespace is the one `ip netns exec`
# made for it: private to the node, see hs_node_bind).
hs_node_run() {
	local i=$1
	shift
	nsenter -t "${HS_UTS_PID[$i]}" -u -n -m -- "$@"
}

# hs_node_bind I DIR MOUNTPOINT: bind DIR on MOUNTPOINT in node I's mount
# namespace only, so that the two nodes see their own trees at the same
# path, as on two machines (the host's view is unchanged).
hs_node_bind() {
	hs_node_run "$1" mount --bind "$2" "$3" ||
		hs_fail "node $1: cannot bind $2 on $3 in its mount namespace"
}

# hs_node_bg I LOG CMD...: CMD in node I's namespaces, in the background,
# appending to LOG; its PID in HS_BG_PID (nsenter execs CMD in place, so
# $! is CMD itself: hs_node_run in the background would be a subshell).
hs_node_bg() {
	local i=$1 log=$2
	shift 2
	nsenter -t "${HS_UTS_PID[$i]}" -u -n -m -- "$@" >>"$log" 2>&1 &
	HS_BG_PID=$!
	HS_PIDS+=("$HS_BG_PID")
	disown "$HS_BG_PID" # may be killed on purpose: no job notice
}

# hs_node_conf FILE I ROLE PEERFP [PEER_TIMEOUT]: node I's config (mnI
# on 192.0.2.I, port $HS_PORT, the peer 3-I), the xCAT sets below
# $T/src (hs_sets_for); PEER_TIMEOUT 5s unless given.  The caller
# appends more.
hs_node_conf() {
	local j=$((3 - $2))
	cat >"$1" <<CONF
[node]
name = mn$2
role = $3
state_dir = $T/state$2
listen = 192.0.2.$2:$HS_PORT
peer = 192.0.2.$j:$HS_PORT
peer_name = mn$j
cert = $T/pki/mn$2/node.crt
key = $T/pki/mn$2/node.key
peer_fingerprint = $4
target_root = /
peer_timeout = ${5:-5s}
CONF
	hs_sets_for "$T/src" >>"$1"
}

# hs_obs_run CMD...: run CMD in the observer's namespace.
hs_obs_run() { ip netns exec "$HS_NS_OBS" "$@"; }

# hs_node_mac I: the link-layer address of node I's eth1.
hs_node_mac() {
	ip -n "${HS_NS_N[$1]}" -br link show eth1 | awk '{print $3}'
}

# hs_obs_neigh ADDR: the link-layer address the observer's neighbour
# table holds for ADDR on br0 (empty: none).
hs_obs_neigh() {
	ip -n "$HS_NS_OBS" neigh show "$1" dev br0 |
		awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1)}'
}

# hs_obs_wait_neigh ADDR MAC SECONDS: until the observer maps ADDR to
# MAC, checked every 0.1 s; 1 on timeout.
hs_obs_wait_neigh() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		[ "$(hs_obs_neigh "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# hs_node_has_addr I ADDR/PREFIX: is it on node I's eth1?
hs_node_has_addr() {
	ip -n "${HS_NS_N[$1]}" -o addr show dev eth1 | awk '{print $4}' |
		hs_has -x -F -- "$2"
}

# hs_node_echoes I FAMILY: echo requests node I has answered so far
# (its own counters: 4 for ICMP, 6 for ICMPv6).
hs_node_echoes() {
	if [ "$2" = 4 ]; then
		hs_node_run "$1" awk '/^Icmp:/ {n++; if (n == 1) for (i = 1; i <= NF; i++) if ($i == "OutEchoReps") c = i; if (n == 2) print $c}' /proc/net/snmp
	else
		hs_node_run "$1" awk '$1 == "Icmp6OutEchoReplies" {print $2}' /proc/net/snmp6
	fi
}

# hs_obs_ping ADDR: one ICMP (or ICMPv6) echo from the observer to ADDR,
# answered within 2 s?  Raw sockets in python: this machine has no ping.
HS_PING_PY='
import os, select, socket, struct, sys, time
addr = sys.argv[1]
v6 = ":" in addr
fam = socket.AF_INET6 if v6 else socket.AF_INET
s = socket.socket(fam, socket.SOCK_RAW,
                  socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
req, rep = (128, 129) if v6 else (8, 0)
ident = os.getpid() & 0xffff
def csum(b):
    n = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    n = (n >> 16) + (n & 0xffff)
    n += n >> 16
    return ~n & 0xffff
body = b"hamnsync"
pkt = struct.pack("!BBHHH", req, 0, 0, ident, 1) + body
if not v6:  # the kernel sums ICMPv6 itself, not ICMP
    pkt = struct.pack("!BBHHH", req, 0, csum(pkt), ident, 1) + body
want = socket.inet_pton(fam, addr)
s.sendto(pkt, (addr, 0))
end = time.time() + 2
while time.time() < end:
    if not select.select([s], [], [], max(0, end - time.time()))[0]:
        break
    data, src = s.recvfrom(2048)
    if not v6:
        data = data[(data[0] & 0xf) * 4:]
    if socket.inet_pton(fam, src[0].split("%")[0]) != want or len(data) < 8:
        continue
    t, _, _, i, _ = struct.unpack("!BBHHH", data[:8])
    if t == rep and i == ident:
        sys.exit(0)
sys.exit(1)
'
hs_obs_ping() { hs_obs_run python3 -c "$HS_PING_PY" "$1"; }
