/*
 * test_timeutil.c - the timestamp text of the contract, and durations.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"

START_TEST(format_is_the_contract_text)
{
	static const struct {
		int64_t ms;
		const char *text;
	} cases[] = {
		{ 0, "1970-01-01T00:00:00.000Z" },
		{ 1, "1970-01-01T00:00:00.001Z" },
		{ 1426380377123LL, "2015-03-15T00:46:17.123Z" },
		{ -1, "1969-12-31T23:59:59.999Z" },
		{ 4102444799999LL, "2099-12-31T23:59:59.999Z" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[TIME_TEXT_SIZE];
		int64_t back;

		time_format(cases[i].ms, text);
		ck_assert_str_eq(text, cases[i].text);
		ck_assert_int_eq(time_parse(text, &back), 0);
		ck_assert_int_eq(back, cases[i].ms);
	}
}
END_TEST

/* The date of recent seconds is kept: seconds that come and go in turn
 * still format each as itself. */
START_TEST(format_keeps_no_stale_date)
{
	static const int64_t order[] = {
		1426380377123LL, 1426380437000LL, 1426380377999LL, 0,
		1426380497001LL, 1426380437500LL, -1, 1426380377000LL, -1000,
		4102444799999LL, 1426380377001LL,
	};
	static const char *const texts[] = {
		"2015-03-15T00:46:17.123Z", "2015-03-15T00:47:17.000Z",
		"2015-03-15T00:46:17.999Z", "1970-01-01T00:00:00.000Z",
		"2015-03-15T00:48:17.001Z", "2015-03-15T00:47:17.500Z",
		"1969-12-31T23:59:59.999Z", "2015-03-15T00:46:17.000Z",
		"1969-12-31T23:59:59.000Z", "2099-12-31T23:59:59.999Z",
		"2015-03-15T00:46:17.001Z",
	};
	char text[TIME_TEXT_SIZE];

	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
			time_format(order[i], text);
			ck_assert_str_eq(text, texts[i]);
		}
	}
}
END_TEST

START_TEST(parse_accepts_prefixes)
{
	static const struct {
		const char *text;
		int64_t ms;
	} cases[] = {
		{ "2015-03-15", 1426377600000LL },
		{ "2015-03-15T00:46", 1426380360000LL },
		{ "2015-03-15 00:46:17", 1426380377000LL },
		{ "2015-03-15T00:46:17Z", 1426380377000LL },
		{ "2015-03-15T00:46:17.5", 1426380377500LL },
		{ "2015-03-15T00:46:17.123456Z", 1426380377123LL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = 0;

		ck_assert_msg(time_parse(cases[i].text, &ms) == 0, "%s", cases[i].text);
		ck_assert_int_eq(ms, cases[i].ms);
	}
}
END_TEST

START_TEST(parse_refuses_junk)
{
	static const char *const cases[] = {
		"", "yesterday", "2015-03-15T", "2015-03-15T00:46:17.",
		"2015-03-15T00:46:17+01:00", "2015-13-01", "2015-03-15x",
		"2026-02-30", "2026-04-31T10:00", "2026-01-01T24:00:00",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms;

		ck_assert_msg(time_parse(cases[i], &ms) == -1, "'%s'", cases[i]);
	}
}
END_TEST

START_TEST(seconds)
{
	static const struct {
		const char *text;
		int ok;
		int64_t ms;
	} cases[] = {
		{ "15", 1, 15000 }, { "0.05", 1, 50 }, { "0", 1, 0 },
		{ ".5", 1, 500 }, { "3600", 1, 3600000 }, { "3601", 0, 0 },
		{ "-1", 0, 0 }, { "", 0, 0 }, { "5s", 0, 0 }, { "abc", 0, 0 },
		{ "nan", 0, 0 }, { "inf", 0, 0 }, { "1e3", 0, 0 },
		{ "0x10", 0, 0 }, { "1.2.3", 0, 0 }, { ".", 0, 0 },
		{ " 5", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = -1;
		int rc = time_parse_seconds(cases[i].text, 3600 * 1000, &ms);

		ck_assert_msg((rc == 0) == cases[i].ok, "'%s'", cases[i].text);
		if (cases[i].ok)
			ck_assert_int_eq(ms, cases[i].ms);
	}
}
END_TEST

START_TEST(durations)
{
	static const struct {
		const char *text;
		int ok;
		int64_t ms;
	} cases[] = {
		{ "30d", 1, 30LL * 86400000 }, { "12h", 1, 12LL * 3600000 },
		{ "90m", 1, 90LL * 60000 }, { "45s", 1, 45000 }, { "45", 1, 45000 },
		{ "1.5h", 1, 5400000 }, { "2w", 1, 14LL * 86400000 },
		{ "d", 0, 0 }, { "", 0, 0 }, { "-3d", 0, 0 }, { "3y", 0, 0 },
		{ "3dd", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = -1;
		int rc = time_parse_duration(cases[i].text, &ms);

		ck_assert_msg((rc == 0) == cases[i].ok, "'%s'", cases[i].text);
		if (cases[i].ok)
			ck_assert_int_eq(ms, cases[i].ms);
	}
}
END_TEST

START_TEST(clocks_move_forward)
{
	int64_t wall = time_now_ms(), mono = time_mono_ms();

	ck_assert_int_gt(wall, 1600000000000LL);
	ck_assert_int_ge(time_mono_ms(), mono);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("timeutil");
	TCase *tc = tcase_create("timeutil");
	SRunner *runner;
	int failed;

	tcase_add_test(tc, format_is_the_contract_text);
	tcase_add_test(tc, format_keeps_no_stale_date);
	tcase_add_test(tc, parse_accepts_prefixes);
	tcase_add_test(tc, parse_refuses_junk);
	tcase_add_test(tc, seconds);
	tcase_add_test(tc, durations);
	tcase_add_test(tc, clocks_move_forward);
	suite_add_tcase(s, tc);
	runner = srunner_create(s);
	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
