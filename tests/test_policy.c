/*
 * test_policy.c - the verdict table and the backoff, case by case.
 *
 * Every transport class and a spread of HTTP statuses against the verdict
 * the contract gives them; the backoff's growth, cap, jitter bounds,
 * Retry-After floor and overflow safety.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

struct transport_case {
	enum transport transport;
	const char *name;
	enum verdict verdict; /* with a status that would otherwise deliver */
};

static const struct transport_case transport_cases[] = {
	{ TRANSPORT_OK, "ok", VERDICT_DELIVERED },
	{ TRANSPORT_CONNECT, "connect", VERDICT_RETRY },
	{ TRANSPORT_DNS, "dns", VERDICT_RETRY },
	{ TRANSPORT_TLS, "tls", VERDICT_RETRY },
	{ TRANSPORT_TIMEOUT, "timeout", VERDICT_RETRY },
	{ TRANSPORT_RESET, "reset", VERDICT_RETRY },
	{ TRANSPORT_OTHER, "other", VERDICT_RETRY },
};

#define N_TRANSPORT_CASES \
	((int)(sizeof(transport_cases) / sizeof(transport_cases[0])))

START_TEST(test_transport_classes)
{
	const struct transport_case *c = &transport_cases[_i];

	ck_assert_int_eq(policy_classify(c->transport, 204), c->verdict);
	ck_assert_str_eq(policy_transport_name(c->transport), c->name);
}
END_TEST

START_TEST(test_transport_failure_ignores_status)
{
	static const long statuses[] = { 0, 204, 410, 400, 500 };
	size_t i;

	for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		ck_assert_int_eq(policy_classify(TRANSPORT_TIMEOUT, statuses[i]),
				 VERDICT_RETRY);
		ck_assert_int_eq(policy_classify(TRANSPORT_CONNECT, statuses[i]),
				 VERDICT_RETRY);
	}
}
END_TEST

START_TEST(test_transport_out_of_range)
{
	ck_assert_int_eq(policy_classify(TRANSPORT__COUNT, 204), VERDICT_FAIL);
	ck_assert_int_eq(policy_classify((enum transport)-1, 204),
			 VERDICT_FAIL);
	ck_assert_str_eq(policy_transport_name(TRANSPORT__COUNT), "unknown");
}
END_TEST

struct status_case {
	long status;
	enum verdict verdict;
};

static const struct status_case status_cases[] = {
	{ 204, VERDICT_DELIVERED },
	{ 408, VERDICT_RETRY },
	{ 429, VERDICT_RETRY },
	{ 500, VERDICT_RETRY },
	{ 502, VERDICT_RETRY },
	{ 503, VERDICT_RETRY },
	{ 504, VERDICT_RETRY },
	{ 410, VERDICT_GONE },
	{ 0, VERDICT_FAIL },
	{ 100, VERDICT_FAIL },
	{ 200, VERDICT_FAIL },
	{ 201, VERDICT_FAIL },
	{ 202, VERDICT_FAIL },
	{ 205, VERDICT_FAIL },
	{ 301, VERDICT_FAIL },
	{ 302, VERDICT_FAIL },
	{ 304, VERDICT_FAIL },
	{ 307, VERDICT_FAIL },
	{ 400, VERDICT_FAIL },
	{ 401, VERDICT_FAIL },
	{ 403, VERDICT_FAIL },
	{ 404, VERDICT_FAIL },
	{ 409, VERDICT_FAIL },
	{ 411, VERDICT_FAIL },
	{ 413, VERDICT_FAIL },
	{ 422, VERDICT_FAIL },
	{ 501, VERDICT_FAIL },
	{ 505, VERDICT_FAIL },
	{ 599, VERDICT_FAIL },
	{ 999, VERDICT_FAIL },
	{ -1, VERDICT_FAIL },
};

#define N_STATUS_CASES ((int)(sizeof(status_cases) / sizeof(status_cases[0])))

START_TEST(test_statuses)
{
	const struct status_case *c = &status_cases[_i];

	ck_assert_msg(policy_classify(TRANSPORT_OK, c->status) == c->verdict,
		      "status %ld: got %s, want %s", c->status,
		      policy_verdict_name(policy_classify(TRANSPORT_OK,
							  c->status)),
		      policy_verdict_name(c->verdict));
}
END_TEST

START_TEST(test_verdict_names)
{
	ck_assert_str_eq(policy_verdict_name(VERDICT_DELIVERED), "delivered");
	ck_assert_str_eq(policy_verdict_name(VERDICT_RETRY), "retry");
	ck_assert_str_eq(policy_verdict_name(VERDICT_FAIL), "fail");
	ck_assert_str_eq(policy_verdict_name(VERDICT_GONE), "gone");
	ck_assert_str_eq(policy_verdict_name((enum verdict)42), "unknown");
}
END_TEST

struct backoff_case {
	const char *what;
	int64_t base_ms;
	int64_t max_ms;
	int64_t attempt;
	int64_t retry_after_ms;
	double unit;
	int64_t want;
};

/* unit 0.5 is a jitter factor of exactly 1. */
static const struct backoff_case backoff_cases[] = {
	{ "attempt 1 is base", 5000, 3600000, 1, -1, 0.5, 5000 },
	{ "attempt 2 doubles", 5000, 3600000, 2, -1, 0.5, 10000 },
	{ "attempt 3 doubles again", 5000, 3600000, 3, -1, 0.5, 20000 },
	{ "attempt 10", 5000, 3600000, 10, -1, 0.5, 2560000 },
	{ "attempt 11 reaches the cap", 5000, 3600000, 11, -1, 0.5, 3600000 },
	{ "attempt 40 stays at the cap", 5000, 3600000, 40, -1, 0.5, 3600000 },
	{ "attempt 0 counts as 1", 5000, 3600000, 0, -1, 0.5, 5000 },
	{ "negative attempt counts as 1", 5000, 3600000, -7, -1, 0.5, 5000 },
	{ "jitter low bound", 1000, 3600000, 1, -1, 0.0, 750 },
	{ "jitter high bound", 1000, 3600000, 1, -1, 0.999999, 1249 },
	{ "jitter low at attempt 4", 1000, 3600000, 4, -1, 0.0, 6000 },
	{ "jitter high at attempt 4", 1000, 3600000, 4, -1, 0.999999, 9999 },
	{ "jitter low at the cap", 1000, 8000, 20, -1, 0.0, 6000 },
	{ "jitter high cut at the cap", 1000, 8000, 20, -1, 0.999999, 8000 },
	{ "unit 1 treated as 0", 1000, 3600000, 1, -1, 1.0, 750 },
	{ "negative unit treated as 0", 1000, 3600000, 1, -1, -0.5, 750 },
	{ "retry-after below delay ignored", 5000, 3600000, 3, 1000, 0.5,
	  20000 },
	{ "retry-after above delay wins", 5000, 3600000, 1, 60000, 0.5,
	  60000 },
	{ "retry-after equal to max", 5000, 3600000, 1, 3600000, 0.5,
	  3600000 },
	{ "retry-after above max cut to max", 5000, 3600000, 1, 86400000, 0.5,
	  3600000 },
	{ "retry-after 0 is no floor", 5000, 3600000, 1, 0, 0.0, 3750 },
	{ "retry-after lifts the low jitter", 1000, 3600000, 1, 900, 0.0,
	  900 },
	{ "attempt 1000 does not overflow", 5000, 3600000, 1000, -1, 0.5,
	  3600000 },
	{ "attempt INT64_MAX does not overflow", 5000, 3600000, INT64_MAX,
	  -1, 0.999999, 3600000 },
	{ "huge max, attempt 63", 1, INT64_MAX, 63, -1, 0.5,
	  (int64_t)1 << 62 },
	{ "huge max, attempt 1000", 3, INT64_MAX, 1000, -1, 0.999999,
	  INT64_MAX },
	{ "base 0 stays 0", 0, 3600000, 5, -1, 0.999999, 0 },
	{ "base 0 honours retry-after", 0, 3600000, 5, 2000, 0.5, 2000 },
	{ "base above max cut to max", 10000, 4000, 1, -1, 0.999999, 4000 },
	{ "base above max, low jitter", 10000, 4000, 1, -1, 0.0, 3000 },
	{ "negative base is 0", -5, 3600000, 3, -1, 0.5, 0 },
	{ "negative max is 0", 5000, -1, 3, 5000, 0.5, 0 },
	{ "max 0 is always 0", 5000, 0, 1000, 9999, 0.999999, 0 },
};

#define N_BACKOFF_CASES \
	((int)(sizeof(backoff_cases) / sizeof(backoff_cases[0])))

START_TEST(test_backoff_table)
{
	const struct backoff_case *c = &backoff_cases[_i];
	struct backoff settings = { c->base_ms, c->max_ms };
	int64_t got = policy_backoff(&settings, c->attempt, c->retry_after_ms,
				     c->unit);

	ck_assert_msg(got == c->want, "%s: got %lld, want %lld", c->what,
		      (long long)got, (long long)c->want);
}
END_TEST

/* Over the whole range of unit, the delay stays in [0.75, 1.25) x nominal
 * and never leaves [min(retry_after, max), max]. */
START_TEST(test_backoff_jitter_sweep)
{
	struct backoff settings = { 5000, 3600000 };
	int64_t attempt;
	int step;

	for (attempt = 1; attempt <= 14; attempt++) {
		int64_t nominal = 5000 * ((int64_t)1 << (attempt - 1));

		if (nominal > 3600000)
			nominal = 3600000;
		for (step = 0; step < 1000; step++) {
			double unit = step / 1000.0;
			int64_t d = policy_backoff(&settings, attempt, -1, unit);
			int64_t r = policy_backoff(&settings, attempt, 3000000,
						   unit);

			ck_assert_int_ge(d, nominal * 3 / 4);
			ck_assert_int_lt(d, nominal * 5 / 4);
			ck_assert_int_le(d, 3600000);
			ck_assert_int_ge(r, 3000000);
			ck_assert_int_le(r, 3600000);
		}
	}
}
END_TEST

START_TEST(test_backoff_monotonic_in_attempt)
{
	struct backoff settings = { 250, 600000 };
	int64_t previous = 0;
	int64_t attempt;

	for (attempt = 1; attempt <= 100; attempt++) {
		int64_t d = policy_backoff(&settings, attempt, -1, 0.5);

		ck_assert_int_ge(d, previous);
		previous = d;
	}
	ck_assert_int_eq(previous, 600000);
}
END_TEST

static Suite *policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *classify = tcase_create("classify");
	TCase *backoff = tcase_create("backoff");

	tcase_add_loop_test(classify, test_transport_classes, 0,
			    N_TRANSPORT_CASES);
	tcase_add_test(classify, test_transport_failure_ignores_status);
	tcase_add_test(classify, test_transport_out_of_range);
	tcase_add_loop_test(classify, test_statuses, 0, N_STATUS_CASES);
	tcase_add_test(classify, test_verdict_names);
	suite_add_tcase(s, classify);

	tcase_add_loop_test(backoff, test_backoff_table, 0, N_BACKOFF_CASES);
	tcase_add_test(backoff, test_backoff_jitter_sweep);
	tcase_add_test(backoff, test_backoff_monotonic_in_attempt);
	suite_add_tcase(s, backoff);
	return s;
}

int main(void)
{
	SRunner *runner = srunner_create(policy_suite());
	int failed;

	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
