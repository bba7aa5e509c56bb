/*
 * test_guard.c - per-endpoint limits and the circuit breaker, driven by a
 * clock the test owns.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "guard.h"

static const struct guard_settings breaker_only = {
	.breaker_threshold = 3, .pause_min_ms = 5000, .pause_max_ms = 30000,
};

/* Starts one request and ends it: transient or not. */
static enum guard_change attempt(struct guard *g,
				 const struct guard_settings *s, int transient,
				 int64_t now)
{
	int probe = guard_started(g, s, now);

	return guard_finished(g, s, transient, probe, now);
}

START_TEST(test_unlimited_by_default)
{
	struct guard_settings none = { 0 };
	struct guard g;

	guard_init(&g);
	ck_assert_uint_eq(guard_allowance(&g, &none, 0), GUARD_UNLIMITED);
	ck_assert_int_eq(guard_wait_ms(&g, &none, 0), 0);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(attempt(&g, &none, 1, i), GUARD_SAME);
	ck_assert_int_eq(guard_is_open(&g), 0);
	ck_assert_uint_eq(guard_allowance(&g, &none, 100), GUARD_UNLIMITED);
}
END_TEST

START_TEST(test_concurrency_limit)
{
	struct guard_settings s = { .max_concurrency = 2 };
	struct guard g;

	guard_init(&g);
	ck_assert_uint_eq(guard_allowance(&g, &s, 0), 2);
	guard_started(&g, &s, 0);
	ck_assert_uint_eq(guard_allowance(&g, &s, 0), 1);
	guard_started(&g, &s, 0);
	ck_assert_uint_eq(guard_allowance(&g, &s, 0), 0);
	/* Only a finished request makes room: no time to wait for. */
	ck_assert_int_eq(guard_wait_ms(&g, &s, 0), -1);
	guard_finished(&g, &s, 0, 0, 10);
	ck_assert_uint_eq(guard_allowance(&g, &s, 10), 1);
	guard_cancelled(&g, 0);
	ck_assert_uint_eq(guard_allowance(&g, &s, 10), 2);
	ck_assert_int_eq(guard_wait_ms(&g, &s, 10), 0);
}
END_TEST

START_TEST(test_rate_limit)
{
	struct guard_settings s = { .max_rate = 4.0 };
	struct guard g;

	guard_init(&g);
	/* The bucket holds one second's worth, full at first. */
	ck_assert_uint_eq(guard_allowance(&g, &s, 1000), 4);
	for (int i = 0; i < 4; i++)
		guard_started(&g, &s, 1000);
	ck_assert_uint_eq(guard_allowance(&g, &s, 1000), 0);
	ck_assert_int_eq(guard_wait_ms(&g, &s, 1000), 250);
	ck_assert_uint_eq(guard_allowance(&g, &s, 1249), 0);
	ck_assert_uint_eq(guard_allowance(&g, &s, 1250), 1);
	/* Never more than the bucket, however long the quiet. */
	ck_assert_uint_eq(guard_allowance(&g, &s, 100000), 4);
}
END_TEST

START_TEST(test_slow_rate)
{
	struct guard_settings s = { .max_rate = 0.5 };
	struct guard g;

	guard_init(&g);
	ck_assert_uint_eq(guard_allowance(&g, &s, 0), 1);
	guard_started(&g, &s, 0);
	ck_assert_int_eq(guard_wait_ms(&g, &s, 0), 2000);
	ck_assert_uint_eq(guard_allowance(&g, &s, 1999), 0);
	ck_assert_uint_eq(guard_allowance(&g, &s, 2000), 1);
}
END_TEST

START_TEST(test_breaker_opens_at_threshold)
{
	struct guard g;

	guard_init(&g);
	ck_assert_int_eq(attempt(&g, &breaker_only, 1, 0), GUARD_SAME);
	ck_assert_int_eq(attempt(&g, &breaker_only, 1, 0), GUARD_SAME);
	ck_assert_int_eq(attempt(&g, &breaker_only, 1, 100), GUARD_OPENED);
	ck_assert_int_eq(guard_is_open(&g), 1);
	ck_assert_uint_eq(guard_allowance(&g, &breaker_only, 100), 0);
	ck_assert_int_eq(guard_wait_ms(&g, &breaker_only, 100), 5000);
	ck_assert_uint_eq(guard_allowance(&g, &breaker_only, 5099), 0);
	/* The pause is over: exactly one probe. */
	ck_assert_uint_eq(guard_allowance(&g, &breaker_only, 5100), 1);
	ck_assert_int_eq(guard_wait_ms(&g, &breaker_only, 5100), 0);
}
END_TEST

START_TEST(test_an_answer_resets_the_count)
{
	struct guard g;

	guard_init(&g);
	attempt(&g, &breaker_only, 1, 0);
	attempt(&g, &breaker_only, 1, 0);
	/* A 404 is an answer: the endpoint is there. */
	ck_assert_int_eq(attempt(&g, &breaker_only, 0, 0), GUARD_SAME);
	attempt(&g, &breaker_only, 1, 0);
	ck_assert_int_eq(attempt(&g, &breaker_only, 1, 0), GUARD_SAME);
	ck_assert_int_eq(guard_is_open(&g), 0);
	ck_assert_int_eq(attempt(&g, &breaker_only, 1, 0), GUARD_OPENED);
}
END_TEST

START_TEST(test_failed_probes_double_the_pause)
{
	static const int64_t pauses[] = { 10000, 20000, 30000, 30000 };
	struct guard g;
	int64_t now = 0;

	guard_init(&g);
	for (int i = 0; i < 3; i++)
		attempt(&g, &breaker_only, 1, now);
	now += 5000;
	for (size_t i = 0; i < sizeof(pauses) / sizeof(pauses[0]); i++) {
		int probe;

		ck_assert_uint_eq(guard_allowance(&g, &breaker_only, now), 1);
		probe = guard_started(&g, &breaker_only, now);
		ck_assert_int_eq(probe, 1);
		/* One probe at a time. */
		ck_assert_uint_eq(guard_allowance(&g, &breaker_only, now), 0);
		ck_assert_int_eq(guard_wait_ms(&g, &breaker_only, now), -1);
		ck_assert_int_eq(guard_finished(&g, &breaker_only, 1, probe, now),
				 GUARD_REOPENED);
		ck_assert_int_eq(guard_wait_ms(&g, &breaker_only, now), pauses[i]);
		now += pauses[i];
	}
	/* A probe that gets an answer closes it. */
	ck_assert_int_eq(attempt(&g, &breaker_only, 0, now), GUARD_CLOSED);
	ck_assert_int_eq(guard_is_open(&g), 0);
	ck_assert_uint_eq(guard_allowance(&g, &breaker_only, now), GUARD_UNLIMITED);
	/* And the next opening starts from the shortest pause again. */
	for (int i = 0; i < 3; i++)
		attempt(&g, &breaker_only, 1, now);
	ck_assert_int_eq(guard_wait_ms(&g, &breaker_only, now), 5000);
}
END_TEST

START_TEST(test_stragglers_do_not_lengthen_the_pause)
{
	struct guard g;
	int started[5];

	guard_init(&g);
	/* Five requests in flight when the breaker opens. */
	for (int i = 0; i < 5; i++)
		started[i] = guard_started(&g, &breaker_only, 0);
	for (int i = 0; i < 3; i++)
		guard_finished(&g, &breaker_only, 1, started[i], 0);
	ck_assert_int_eq(guard_is_open(&g), 1);
	ck_assert_int_eq(guard_finished(&g, &breaker_only, 1, started[3], 1000),
			 GUARD_SAME);
	ck_assert_int_eq(guard_wait_ms(&g, &breaker_only, 1000), 4000);
	/* A straggler that got an answer closes it at once. */
	ck_assert_int_eq(guard_finished(&g, &breaker_only, 0, started[4], 1000),
			 GUARD_CLOSED);
	ck_assert_int_eq(g.in_flight, 0);
}
END_TEST

START_TEST(test_cancelled_probe_lets_another_go)
{
	struct guard g;
	int probe;

	guard_init(&g);
	for (int i = 0; i < 3; i++)
		attempt(&g, &breaker_only, 1, 0);
	probe = guard_started(&g, &breaker_only, 5000);
	ck_assert_int_eq(probe, 1);
	guard_cancelled(&g, probe);
	ck_assert_int_eq(guard_is_open(&g), 1);
	ck_assert_uint_eq(guard_allowance(&g, &breaker_only, 5000), 1);
}
END_TEST

START_TEST(test_everything_together)
{
	struct guard_settings s = breaker_only;
	struct guard g;

	s.max_concurrency = 3;
	s.max_rate = 2.0;
	guard_init(&g);
	/* The rate's bucket (2) is smaller than the concurrency (3). */
	ck_assert_uint_eq(guard_allowance(&g, &s, 0), 2);
	for (int i = 0; i < 3; i++)
		attempt(&g, &s, 1, 0);
	ck_assert_int_eq(guard_is_open(&g), 1);
	/* At the probe time, one, whatever the limits would allow. */
	ck_assert_uint_eq(guard_allowance(&g, &s, 5000), 1);
}
END_TEST

static Suite *guard_suite(void)
{
	Suite *s = suite_create("guard");
	TCase *limits = tcase_create("limits");
	TCase *breaker = tcase_create("breaker");

	tcase_add_test(limits, test_unlimited_by_default);
	tcase_add_test(limits, test_concurrency_limit);
	tcase_add_test(limits, test_rate_limit);
	tcase_add_test(limits, test_slow_rate);
	tcase_add_test(breaker, test_breaker_opens_at_threshold);
	tcase_add_test(breaker, test_an_answer_resets_the_count);
	tcase_add_test(breaker, test_failed_probes_double_the_pause);
	tcase_add_test(breaker, test_stragglers_do_not_lengthen_the_pause);
	tcase_add_test(breaker, test_cancelled_probe_lets_another_go);
	tcase_add_test(breaker, test_everything_together);
	suite_add_tcase(s, limits);
	suite_add_tcase(s, breaker);
	return s;
}

int main(void)
{
	SRunner *runner = srunner_create(guard_suite());
	int failed;

	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
