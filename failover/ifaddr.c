/*
 * ifaddr.c - an address on an interface (rtnetlink through libmnl) and
 * its announcement to the link: a gratuitous ARP for IPv4, an unsolicited
 * neighbour advertisement for IPv6.  Linux only; identity.c decides what
 * to add, remove and announce.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_ether.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netpacket/packet.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ifaddr_int.h"

/* arping -U sends one per second; three close together are what
 * keepalived and the kernel's own arp_notify rely on to beat a loss. */
#define ANNOUNCE_COUNT 3
#define ANNOUNCE_GAP_NS (100 * HS_NS_PER_MS)
/* An address request is under 100 bytes; its answer, the error with the
 * request echoed, under twice that.  (MNL_SOCKET_BUFFER_SIZE is the page
 * size, a call at run time.) */
#define NL_BUF 8192

int
fo_addr_parse(const char *text, struct fo_addr *a)
{
	char host[INET6_ADDRSTRLEN];
	const char *slash = strrchr(text, '/');
	uint64_t prefix;
	size_t n;

	memset(a, 0, sizeof(*a));
	a->text = text;
	if (slash == NULL || (n = (size_t)(slash - text)) == 0 ||
	    n >= sizeof(host))
		return HS_ECONFIG;
	memcpy(host, text, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, a->bin) == 1) {
		a->family = AF_INET;
		a->len = 4;
	} else if (inet_pton(AF_INET6, host, a->bin) == 1) {
		a->family = AF_INET6;
		a->len = 16;
	} else
		return HS_ECONFIG;
	if (hs_parse_u64(slash + 1, 1, a->len * 8, &prefix) < 0)
		return HS_ECONFIG;
	a->prefix = (unsigned)prefix;
	return HS_OK;
}

/* Send one request and read its acknowledgement: HS_OK or -errno. */
static int
nl_talk(struct nlmsghdr *nlh)
{
	char buf[NL_BUF];
	struct mnl_socket *nl;
	unsigned portid, seq = (unsigned)time(NULL);
	ssize_t n;
	int rc;

	if ((nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC)) == NULL)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		rc = -errno;
		goto out;
	}
	portid = mnl_socket_get_portid(nl);
	nlh->nlmsg_seq = seq;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		rc = -errno;
		goto out;
	}
	/* An acknowledged request answers with one message: the error
	 * (0 on success) that mnl_cb_run turns into -1 and errno. */
	if ((n = mnl_socket_recvfrom(nl, buf, sizeof(buf))) < 0)
		rc = -errno;
	else if (mnl_cb_run(buf, (size_t)n, seq, portid, NULL, NULL) < 0)
		rc = -errno;
	else
		rc = HS_OK;
out:
	mnl_socket_close(nl);
	return rc;
}

int
fo_addr_change(int add, int ifindex, const struct fo_addr *a)
{
	char buf[NL_BUF];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;

	nlh->nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	/* EXCL: an address already there answers EEXIST, which the caller
	 * reads as "nothing to do". */
	if (add)
		nlh->nlmsg_flags |= NLM_F_CREATE | NLM_F_EXCL;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (uint8_t)a->family;
	ifa->ifa_prefixlen = (uint8_t)a->prefix;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned)ifindex;
	mnl_attr_put(nlh, IFA_LOCAL, a->len, a->bin);
	mnl_attr_put(nlh, IFA_ADDRESS, a->len, a->bin);
	if (add && a->family == AF_INET6) {
		/*
		 * A new IPv6 address is tentative until duplicate address
		 * detection ends (a second or more): it can neither be the
		 * source of the advertisement that follows nor answer the
		 * cluster.  The address being taken over belongs to a node
		 * that is gone (or was fenced), so skip the detection.
		 */
		ifa->ifa_flags = IFA_F_NODAD;
		mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD);
	}
	return nl_talk(nlh);
}

/* The SIOCGIF* request `req` about the interface, answered in *ifr:
 * HS_OK or -errno. */
static int
if_ioctl(const char *ifname, unsigned long req, struct ifreq *ifr)
{
	int fd, rc = HS_OK;

	if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	memset(ifr, 0, sizeof(*ifr));
	snprintf(ifr->ifr_name, sizeof(ifr->ifr_name), "%s", ifname);
	if (ioctl(fd, req, ifr) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* The interface's Ethernet address: HS_OK, HS_ENOTFOUND when it has
 * none (loopback, a tunnel, InfiniBand), or -errno. */
static int
link_mac(const char *ifname, uint8_t mac[6])
{
	struct ifreq ifr;
	int rc;

	if ((rc = if_ioctl(ifname, SIOCGIFHWADDR, &ifr)) < 0)
		return rc;
	if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
		return HS_ENOTFOUND;
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	return HS_OK;
}

int
fo_link_up(const char *ifname)
{
	struct ifreq ifr;
	int rc;

	if ((rc = if_ioctl(ifname, SIOCGIFFLAGS, &ifr)) < 0)
		return rc;
	return (ifr.ifr_flags & IFF_UP) ? HS_OK : -ENETDOWN;
}

static void
gap(void)
{
	struct timespec ts = {0, (long)ANNOUNCE_GAP_NS};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * A gratuitous ARP request, as arping -U sends it: sender and target
 * protocol address both the service address, to the broadcast address.
 * A Linux neighbour that has an entry for the address takes the new
 * link-layer address at once (a request whose sender is its target is
 * one it always trusts); one that has none ignores it, and asks later.
 */
static int
arp_announce(int ifindex, const uint8_t mac[6], const struct fo_addr *a)
{
	struct sockaddr_ll ll;
	struct {
		struct arphdr h;
		uint8_t sha[6], spa[4], tha[6], tpa[4];
	} __attribute__((packed)) pkt;
	int fd, rc = HS_OK;

	if ((fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC,
	                 htons(ETH_P_ARP))) < 0)
		return -errno;
	memset(&ll, 0, sizeof(ll));
	ll.sll_family = AF_PACKET;
	ll.sll_protocol = htons(ETH_P_ARP);
	ll.sll_ifindex = ifindex;
	ll.sll_halen = 6;
	memset(ll.sll_addr, 0xff, 6);
	memset(&pkt, 0, sizeof(pkt));
	pkt.h.ar_hrd = htons(ARPHRD_ETHER);
	pkt.h.ar_pro = htons(ETH_P_IP);
	pkt.h.ar_hln = 6;
	pkt.h.ar_pln = 4;
	pkt.h.ar_op = htons(ARPOP_REQUEST);
	memcpy(pkt.sha, mac, 6);
	memcpy(pkt.spa, a->bin, 4);
	memset(pkt.tha, 0xff, 6);
	memcpy(pkt.tpa, a->bin, 4);
	for (int i = 0; i < ANNOUNCE_COUNT && rc == HS_OK; i++) {
		if (i > 0)
			gap();
		if (sendto(fd, &pkt, sizeof(pkt), 0, (struct sockaddr *)&ll,
		           sizeof(ll)) < 0)
			rc = -errno;
	}
	close(fd);
	return rc;
}

/*
 * An unsolicited neighbour advertisement (RFC 4861 7.2.6) to all nodes:
 * override set, solicited clear (a multicast one with it set is
 * dropped), the target link-layer address option.  Receivers drop
 * neighbour discovery with a hop limit other than 255.  The kernel fills
 * the checksum of a raw ICMPv6 socket.
 */
static int
na_announce(int ifindex, const uint8_t mac[6], const struct fo_addr *a)
{
	struct sockaddr_in6 src, dst;
	struct {
		struct nd_neighbor_advert na;
		struct nd_opt_hdr opt;
		uint8_t mac[6];
	} __attribute__((packed)) pkt;
	int fd, hops = 255, rc = HS_OK;

	if ((fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6)) <
	    0)
		return -errno;
	memset(&src, 0, sizeof(src));
	src.sin6_family = AF_INET6;
	memcpy(&src.sin6_addr, a->bin, 16);
	memset(&dst, 0, sizeof(dst));
	dst.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "ff02::1", &dst.sin6_addr);
	dst.sin6_scope_id = (uint32_t)ifindex;
	if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops,
	               sizeof(hops)) < 0 ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex,
	               sizeof(ifindex)) < 0 ||
	    bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
		rc = -errno;
		goto out;
	}
	memset(&pkt, 0, sizeof(pkt));
	pkt.na.nd_na_type = ND_NEIGHBOR_ADVERT;
	pkt.na.nd_na_flags_reserved = ND_NA_FLAG_OVERRIDE;
	memcpy(&pkt.na.nd_na_target, a->bin, 16);
	pkt.opt.nd_opt_type = ND_OPT_TARGET_LINKADDR;
	pkt.opt.nd_opt_len = 1; /* in units of 8 bytes */
	memcpy(pkt.mac, mac, 6);
	for (int i = 0; i < ANNOUNCE_COUNT && rc == HS_OK; i++) {
		if (i > 0)
			gap();
		if (sendto(fd, &pkt, sizeof(pkt), 0, (struct sockaddr *)&dst,
		           sizeof(dst)) < 0)
			rc = -errno;
	}
out:
	close(fd);
	return rc;
}

int
fo_addr_announce(const char *ifname, int ifindex, const struct fo_addr *a)
{
	uint8_t mac[6];
	int rc;

	if ((rc = link_mac(ifname, mac)) < 0)
		return rc;
	if (a->family == AF_INET)
		return arp_announce(ifindex, mac, a);
	return na_announce(ifindex, mac, a);
}
