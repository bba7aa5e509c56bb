/*
 * test_addrpolicy.c - which addresses `run --deny-private` refuses, and
 * what the allow-list lets through.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "addrpolicy.h"

/* Builds a sockaddr for text (IPv4 or IPv6). */
static struct sockaddr_storage address_of(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, text, &in->sin_addr), 1);
	}
	return ss;
}

struct address_case {
	const char *address;
	int allowed;
	const char *why; /* part of the reason when refused */
};

static const struct address_case deny_cases[] = {
	{ "127.0.0.1", 0, "127.0.0.1 is a loopback address" },
	{ "127.255.0.9", 0, "loopback" },
	{ "10.1.2.3", 0, "private" },
	{ "172.16.0.1", 0, "private" },
	{ "172.31.255.255", 0, "private" },
	{ "172.32.0.1", 1, NULL },
	{ "172.15.255.255", 1, NULL },
	{ "192.168.1.1", 0, "private" },
	{ "169.254.169.254", 0, "metadata" },
	{ "100.64.0.1", 0, "carrier-grade" },
	{ "100.128.0.1", 1, NULL },
	{ "0.0.0.0", 0, "unspecified" },
	{ "224.0.0.1", 0, "multicast" },
	{ "255.255.255.255", 0, "reserved" },
	{ "198.18.0.1", 0, "benchmarking" },
	{ "8.8.8.8", 1, NULL },
	{ "93.184.216.34", 1, NULL },
	{ "::1", 0, "loopback" },
	{ "::", 0, "unspecified" },
	{ "fe80::1", 0, "link-local" },
	{ "fd00:ec2::254", 0, "metadata" },
	{ "fc00::5", 0, "unique local" },
	{ "ff02::1", 0, "multicast" },
	{ "::ffff:127.0.0.1", 0, "loopback" },
	{ "::ffff:169.254.169.254", 0, "metadata" },
	{ "64:ff9b::10.0.0.1", 0, "private" },
	{ "64:ff9b::8.8.8.8", 1, NULL },
	{ "::ffff:8.8.8.8", 1, NULL },
	{ "::10.0.0.1", 0, "IPv4-compatible" },
	{ "2001:4860:4860::8888", 1, NULL },
	{ "2a00:1450::1", 1, NULL },
};

#define N_DENY ((int)(sizeof(deny_cases) / sizeof(deny_cases[0])))

static void check_case(const struct addrpolicy *policy,
		       const struct address_case *c)
{
	struct sockaddr_storage ss = address_of(c->address);
	char why[ADDRPOLICY_REASON_SIZE] = "";
	int allowed = addrpolicy_allows(policy, (struct sockaddr *)&ss, why,
					sizeof(why));

	ck_assert_msg(allowed == c->allowed, "%s: allowed=%d (%s)", c->address,
		      allowed, why);
	if (!c->allowed)
		ck_assert_msg(strstr(why, c->why) != NULL, "%s: \"%s\" lacks \"%s\"",
			      c->address, why, c->why);
}

START_TEST(test_deny)
{
	struct addrpolicy *policy = NULL;
	char err[256] = "";

	ck_assert_int_eq(addrpolicy_new(NULL, &policy, err, sizeof(err)), 0);
	check_case(policy, &deny_cases[_i]);
	addrpolicy_free(policy);
}
END_TEST

static const struct address_case allow_cases[] = {
	{ "127.0.0.1", 1, NULL },
	{ "127.0.0.2", 0, "loopback" },
	{ "10.1.7.7", 1, NULL },
	{ "10.2.0.1", 0, "private" },
	{ "::ffff:10.1.0.1", 1, NULL },
	{ "fd12::7", 1, NULL },
	{ "fd12::8", 0, "unique local" },
	{ "192.168.3.1", 1, NULL },
	{ "192.168.4.1", 0, "private" },
};

#define N_ALLOW ((int)(sizeof(allow_cases) / sizeof(allow_cases[0])))

START_TEST(test_allow_list)
{
	struct addrpolicy *policy = NULL;
	char err[256] = "";

	ck_assert_msg(addrpolicy_new("127.0.0.1,10.1.0.0/16,fd12::7/128,"
				     "192.168.2.0/23", &policy, err,
				     sizeof(err)) == 0, "%s", err);
	check_case(policy, &allow_cases[_i]);
	addrpolicy_free(policy);
}
END_TEST

static const char *const bad_lists[] = {
	"10.0.0.0/33",
	"fd00::/129",
	"10.0.0.0/",
	"10.0.0.0/8x",
	"10.0.0",
	"example.com",
	"10.0.0.1,,10.0.0.2",
	",10.0.0.1",
	"10.0.0.1/-1",
	"10.0.0.1 ",
};

#define N_BAD_LISTS ((int)(sizeof(bad_lists) / sizeof(bad_lists[0])))

START_TEST(test_bad_allow_list)
{
	struct addrpolicy *policy = (struct addrpolicy *)&policy;
	char err[256] = "";

	ck_assert_int_eq(addrpolicy_new(bad_lists[_i], &policy, err,
					sizeof(err)), -1);
	ck_assert_ptr_null(policy);
	ck_assert_msg(strstr(err, "not an IP address") != NULL, "%s: %s",
		      bad_lists[_i], err);
}
END_TEST

START_TEST(test_other_family_refused)
{
	struct addrpolicy *policy = NULL;
	struct sockaddr sa = { .sa_family = AF_UNIX };
	char err[256] = "", why[ADDRPOLICY_REASON_SIZE] = "";

	ck_assert_int_eq(addrpolicy_new("", &policy, err, sizeof(err)), 0);
	ck_assert_int_eq(addrpolicy_allows(policy, &sa, why, sizeof(why)), 0);
	ck_assert_ptr_nonnull(strstr(why, "not IP"));
	addrpolicy_free(policy);
	addrpolicy_free(NULL);
}
END_TEST

static Suite *addrpolicy_suite(void)
{
	Suite *s = suite_create("addrpolicy");
	TCase *deny = tcase_create("deny");
	TCase *allow = tcase_create("allow");

	tcase_add_loop_test(deny, test_deny, 0, N_DENY);
	tcase_add_test(deny, test_other_family_refused);
	tcase_add_loop_test(allow, test_allow_list, 0, N_ALLOW);
	tcase_add_loop_test(allow, test_bad_allow_list, 0, N_BAD_LISTS);
	suite_add_tcase(s, deny);
	suite_add_tcase(s, allow);
	return s;
}

int main(void)
{
	SRunner *runner = srunner_create(addrpolicy_suite());
	int failed;

	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
