/*
 * addrpolicy.h - which IP addresses the relay may connect to.
 *
 * With `run --deny-private`, a web service URL must not lead the relay into
 * the network it runs in (server-side request forgery): loopback, private,
 * shared (CGNAT), link-local (cloud metadata at 169.254.169.254 and
 * fd00:ec2::254), multicast, reserved and unspecified addresses are refused,
 * IPv4 also in its IPv4-mapped and NAT64 (64:ff9b::/96) IPv6 forms. An
 * allow-list of prefixes ("10.1.0.0/16,fd12::7") lets chosen ones through.
 * The check runs on the address actually connected to, after DNS, so a name
 * that resolves to a private address is refused too. Pure, no I/O.
 */
#ifndef SMARTRELAY_ADDRPOLICY_H
#define SMARTRELAY_ADDRPOLICY_H

#include <stddef.h>
#include <sys/socket.h>

#define ADDRPOLICY_REASON_SIZE 128

struct addrpolicy;

/*
 * A policy refusing the addresses above but those in allow (NULL or a
 * comma-separated list of addresses and prefixes ADDR/BITS, IPv4 or IPv6).
 * Returns 0 and a new policy in *out, or -1 with the reason in err.
 */
int addrpolicy_new(const char *allow, struct addrpolicy **out, char *err,
		   size_t errlen);

void addrpolicy_free(struct addrpolicy *policy);

/*
 * 1 when a connection to address may be made; else 0, with why
 * ("10.0.0.5 is a private address") in why.
 */
int addrpolicy_allows(const struct addrpolicy *policy,
		      const struct sockaddr *address, char *why,
		      size_t whylen);

#endif
