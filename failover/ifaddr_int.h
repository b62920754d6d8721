/*
 * ifaddr_int.h - an address on a Linux interface and its announcement
 * (failover/ifaddr.c), for identity.c.
 */
#ifndef IFADDR_INT_H
#define IFADDR_INT_H

#include <stddef.h>
#include <stdint.h>

#include "hs.h"

/* "192.0.2.10/24" or "2001:db8::10/64", parsed. */
struct fo_addr {
	const char *text; /* borrowed from the config */
	int family;       /* AF_INET or AF_INET6 */
	unsigned len;     /* 4 or 16 bytes */
	unsigned prefix;
	uint8_t bin[16];
};

/* Parse `text` (borrowed: a->text points to it).  HS_OK or HS_ECONFIG. */
int fo_addr_parse(const char *text, struct fo_addr *a);
/*
 * Add (add 1) or remove `a` on the interface `ifindex`, through
 * rtnetlink; blocks for the kernel's answer.  HS_OK, or -errno as the
 * kernel said it: -EEXIST (add: already there), -EADDRNOTAVAIL (remove:
 * not there), -EPERM, -ENODEV.  A new IPv6 address skips duplicate
 * address detection (IFA_F_NODAD): see ifaddr.c.
 */
int fo_addr_change(int add, int ifindex, const struct fo_addr *a);
/*
 * Is the interface up (administratively)?  HS_OK, -ENETDOWN, or -errno
 * (-ENODEV: no such interface).
 */
int fo_link_up(const char *ifname);
/*
 * Tell the link that `a` now lives at this interface's Ethernet address:
 * three gratuitous ARP requests (IPv4) or unsolicited neighbour
 * advertisements (IPv6), 100 ms apart; blocks for those 200 ms.  HS_OK,
 * HS_ENOTFOUND when the interface has no Ethernet address, or -errno
 * (-ENETDOWN: the link is down).
 */
int fo_addr_announce(const char *ifname, int ifindex, const struct fo_addr *a);

#endif /* IFADDR_INT_H */
