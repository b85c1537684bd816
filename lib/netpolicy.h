/* netpolicy: which addresses outbound calls may reach. Loopback, private, CGNAT, link-local
 * (cloud metadata), multicast, broadcast, reserved and unspecified ranges are refused, with
 * IPv6 embeddings of them (mapped, compatible, NAT64, 6to4), Teredo, and IPv6 outside
 * 2000::/3, unless the operator allows them. */
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

/* Accept-time check of a URL's host part as libcurl's URL parser returns it (IPv6 in brackets,
 * with or without a zone id): literal addresses are classified, IPv4 in every numeric spelling
 * a resolver may take ("2130706433", "0x7f.1", "0177.0.0.1.", trailing dots); a host whose last
 * label is a number but that is no valid IPv4 address is refused as malformed; "localhost" and
 * names under ".localhost" count as loopback; other names pass (they are checked on connect).
 * Returns true when allowed; on false, *why names the range. */
bool netpolicy_host_allowed(const struct netpolicy *np, const char *host, const char **why);

/* Connect-time check (CURLOPT_OPENSOCKETFUNCTION): true when sa may be connected to, because
 * the address is allowed (netpolicy_addr_allowed) or because host (the URL's host the
 * connection is for; NULL when unknown or when the connection goes to a proxy) is a name that a
 * host-name rule of the allow list covers. On false, *why names the address's range. */
bool netpolicy_connect_allowed(const struct netpolicy *np, const char *host,
			       const struct sockaddr *sa, const char **why);

#endif
