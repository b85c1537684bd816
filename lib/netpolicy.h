/* netpolicy: which addresses outbound calls may reach. Loopback, private, CGNAT, link-local
 * (cloud metadata), multicast, broadcast, reserved and unspecified ranges are refused, with
 * IPv6 embeddings of them (mapped, compatible, NAT64, 6to4), unless the operator allows them. */
#ifndef AG_NETPOLICY_H
#define AG_NETPOLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

struct np_rule {
	int family;		/* AF_INET, AF_INET6, or 0 for a host name */
	unsigned char addr[16]; /* network address, family's width */
	int prefix;		/* prefix length */
	char *host;		/* lower-case host name when family == 0; owned */
};

struct netpolicy {
	struct np_rule *allow; /* owned */
	size_t nallow;
};

/* Parses the allow list "127.0.0.0/8, ::1/128, 10.1.2.3, internal.example" (CIDRs, single
 * addresses, host names; separated by commas or spaces). Returns 0, or -1 with the offending
 * entry logged (np is then empty but valid). */
int netpolicy_init(struct netpolicy *np, const char *allow);
void netpolicy_cleanup(struct netpolicy *np);

/* Why an address is refused by default ("loopback", "private", ...), or NULL when it is public.
 * addr is 4 bytes for AF_INET, 16 for AF_INET6. */
const char *netpolicy_classify(int family, const unsigned char *addr);

/* True when the connection to sa may be made: a public address, or one the allow list covers.
 * On false, *why (if not NULL) names the range. */
bool netpolicy_addr_allowed(const struct netpolicy *np, const struct sockaddr *sa,
			    const char **why);

/* Accept-time check of a URL's host part as libcurl's URL parser returns it (IPv6 in
 * brackets): literal addresses are classified, IPv4 in every form the resolver reads
 * ("127.1", "0x7f.1", "2130706433"), "localhost" and names under ".localhost" count as
 * loopback, other names pass (they are checked on connect). Returns true when allowed; on
 * false, *why names the range. */
bool netpolicy_host_allowed(const struct netpolicy *np, const char *host, const char **why);

#endif
