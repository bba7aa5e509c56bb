/*
 * addrpolicy.c - refused address ranges and the allow-list, as prefixes.
 *
 * Every address is compared in IPv6 form: IPv4 as ::ffff:a.b.c.d, so one
 * prefix matcher serves both families and an IPv4-mapped IPv6 address is
 * judged as the IPv4 address it is.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addrpolicy.h"

#define MAX_ALLOWED 64

struct prefix {
	unsigned char addr[16];
	int bits;
	const char *what; /* how a refused address is described */
};

struct addrpolicy {
	struct prefix *denied;
	size_t denied_count;
	struct prefix allowed[MAX_ALLOWED];
	size_t allowed_count;
};

static const struct {
	const char *prefix;
	const char *what;
} denied_ranges[] = {
	{ "0.0.0.0/8", "an unspecified address" },
	{ "10.0.0.0/8", "a private address" },
	{ "100.64.0.0/10", "a shared (carrier-grade NAT) address" },
	{ "127.0.0.0/8", "a loopback address" },
	{ "169.254.0.0/16", "a link-local (cloud metadata) address" },
	{ "172.16.0.0/12", "a private address" },
	{ "192.0.0.0/24", "a protocol assignment address" },
	{ "192.168.0.0/16", "a private address" },
	{ "198.18.0.0/15", "a benchmarking address" },
	{ "224.0.0.0/4", "a multicast address" },
	{ "240.0.0.0/4", "a reserved address" },
	{ "::/127", "a loopback or unspecified address" },
	{ "::/96", "an IPv4-compatible address" },
	{ "fc00::/7", "a unique local (private or cloud metadata) address" },
	{ "fe80::/10", "a link-local address" },
	{ "fec0::/10", "a site-local address" },
	{ "ff00::/8", "a multicast address" },
};

#define DENIED_COUNT (sizeof(denied_ranges) / sizeof(denied_ranges[0]))

static const unsigned char v4_mapped[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
};
static const unsigned char nat64[12] = {
	0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* Parses "ADDR" or "ADDR/BITS" (len bytes) into p. Returns 0 or -1. */
static int prefix_parse(const char *text, size_t len, struct prefix *p)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash;
	int is_v4, max_bits;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, text, len);
	buf[len] = '\0';
	slash = strchr(buf, '/');
	if (slash)
		buf[slash - buf] = '\0';
	is_v4 = strchr(buf, ':') == NULL;
	if (is_v4) {
		memcpy(p->addr, v4_mapped, 12);
		if (inet_pton(AF_INET, buf, p->addr + 12) != 1)
			return -1;
	} else if (inet_pton(AF_INET6, buf, p->addr) != 1) {
		return -1;
	}
	max_bits = is_v4 ? 32 : 128;
	p->bits = max_bits;
	if (slash) {
		const char *digits = slash + 1;
		size_t n = strlen(digits);

		if (n == 0 || n > 3 || strspn(digits, "0123456789") != n)
			return -1;
		p->bits = (int)strtol(digits, NULL, 10);
		if (p->bits > max_bits)
			return -1;
	}
	if (is_v4)
		p->bits += 96;
	return 0;
}

static int prefix_match(const struct prefix *p, const unsigned char addr[16])
{
	int full = p->bits / 8, rest = p->bits % 8;

	if (memcmp(p->addr, addr, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((p->addr[full] ^ addr[full]) & (0xff << (8 - rest))) == 0;
}

void addrpolicy_free(struct addrpolicy *policy)
{
	if (!policy)
		return;
	free(policy->denied);
	free(policy);
}

int addrpolicy_new(const char *allow, struct addrpolicy **out, char *err,
		   size_t errlen)
{
	struct addrpolicy *policy = NULL;
	const char *p = allow;
	int rc = -1;

	*out = NULL;
	policy = calloc(1, sizeof(*policy));
	if (policy)
		policy->denied = calloc(DENIED_COUNT, sizeof(*policy->denied));
	if (!policy || !policy->denied) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < DENIED_COUNT; i++) {
		struct prefix *d = &policy->denied[i];

		/* The table is ours: a failure here is a typo in it. */
		if (prefix_parse(denied_ranges[i].prefix,
				 strlen(denied_ranges[i].prefix), d) != 0) {
			snprintf(err, errlen, "bad built-in range %s",
				 denied_ranges[i].prefix);
			goto out;
		}
		d->what = denied_ranges[i].what;
		policy->denied_count++;
	}
	while (p && *p) {
		size_t len = strcspn(p, ",");

		if (policy->allowed_count == MAX_ALLOWED) {
			snprintf(err, errlen, "more than %d allowed prefixes",
				 MAX_ALLOWED);
			goto out;
		}
		if (prefix_parse(p, len,
				 &policy->allowed[policy->allowed_count]) != 0) {
			snprintf(err, errlen, "'%.*s' is not an IP address or "
				 "prefix (ADDR or ADDR/BITS)",
				 len > 64 ? 64 : (int)len, p);
			goto out;
		}
		policy->allowed_count++;
		p += len;
		if (*p == ',')
			p++;
	}
	*out = policy;
	policy = NULL;
	rc = 0;
out:
	addrpolicy_free(policy);
	return rc;
}

int addrpolicy_allows(const struct addrpolicy *policy,
		      const struct sockaddr *address, char *why,
		      size_t whylen)
{
	unsigned char addr[16];
	char text[INET6_ADDRSTRLEN];

	if (address->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)address;

		memcpy(addr, v4_mapped, 12);
		memcpy(addr + 12, &in->sin_addr, 4);
		inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
	} else if (address->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)address;

		memcpy(addr, &in6->sin6_addr, 16);
		inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
		/* NAT64 reaches the IPv4 address it embeds. */
		if (memcmp(addr, nat64, 12) == 0)
			memcpy(addr, v4_mapped, 12);
	} else {
		snprintf(why, whylen, "address family %d is not IP",
			 address->sa_family);
		return 0;
	}
	for (size_t i = 0; i < policy->allowed_count; i++)
		if (prefix_match(&policy->allowed[i], addr))
			return 1;
	for (size_t i = 0; i < policy->denied_count; i++) {
		if (prefix_match(&policy->denied[i], addr)) {
			snprintf(why, whylen, "%s is %s", text,
				 policy->denied[i].what);
			return 0;
		}
	}
	return 1;
}
