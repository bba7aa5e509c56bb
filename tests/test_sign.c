/*
 * test_sign.c - Standard Webhooks signatures against published vectors and
 * values computed independently (Python's hmac and base64), and every way
 * a secret can be malformed.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sign.h"

/* The Standard Webhooks reference libraries' test vector. */
#define REF_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define REF_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define REF_TIMESTAMP 1614265330
#define REF_BODY "{\"test\": 2432232314}"
#define REF_SIGNATURE "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/* 64 bytes 0x00..0x3f, the longest key. */
#define LONG_SECRET "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUm" \
	"JygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="
#define LONG_SIGNATURE "v1,YajCgZs0FJxR15BN8bvzbqd+ot2ef/EOLeMpg134WgE="

static void sign_with(const char *secret, const char *id, int64_t timestamp,
		      const char *body, char *out)
{
	struct sign_keys *keys = NULL;
	char err[256] = "";

	ck_assert_msg(sign_keys_new(secret, &keys, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_int_eq(sign_signature(keys, id, timestamp, body,
					body ? strlen(body) : 0, out,
					SIGN_SIGNATURE_SIZE, err, sizeof(err)), 0);
	sign_keys_free(keys);
}

START_TEST(test_reference_vector)
{
	char out[SIGN_SIGNATURE_SIZE];

	sign_with(REF_SECRET, REF_ID, REF_TIMESTAMP, REF_BODY, out);
	ck_assert_str_eq(out, REF_SIGNATURE);
}
END_TEST

START_TEST(test_empty_body_long_key)
{
	char out[SIGN_SIGNATURE_SIZE];

	sign_with(LONG_SECRET, "42", 1700000000, NULL, out);
	ck_assert_str_eq(out, LONG_SIGNATURE);
}
END_TEST

/* Rotation: one signature per secret, in the configured order. */
START_TEST(test_several_secrets)
{
	char out[SIGN_SIGNATURE_SIZE];

	sign_with("  " REF_SECRET "  " REF_SECRET " ", REF_ID, REF_TIMESTAMP,
		  REF_BODY, out);
	ck_assert_str_eq(out, REF_SIGNATURE " " REF_SIGNATURE);
	sign_with(LONG_SECRET " " REF_SECRET, REF_ID, REF_TIMESTAMP, REF_BODY,
		  out);
	ck_assert_ptr_nonnull(strstr(out, " " REF_SIGNATURE));
	ck_assert_int_eq(strncmp(out, "v1,", 3), 0);
	ck_assert_str_ne(out, REF_SIGNATURE " " REF_SIGNATURE);
}
END_TEST

/* Any change of id, timestamp or body changes the signature. */
START_TEST(test_every_part_is_signed)
{
	char out[SIGN_SIGNATURE_SIZE];

	sign_with(REF_SECRET, "msg_other", REF_TIMESTAMP, REF_BODY, out);
	ck_assert_str_ne(out, REF_SIGNATURE);
	sign_with(REF_SECRET, REF_ID, REF_TIMESTAMP + 1, REF_BODY, out);
	ck_assert_str_ne(out, REF_SIGNATURE);
	sign_with(REF_SECRET, REF_ID, REF_TIMESTAMP, "{\"test\": 2432232315}", out);
	ck_assert_str_ne(out, REF_SIGNATURE);
}
END_TEST

START_TEST(test_eight_secrets_fit)
{
	char value[8 * (sizeof(REF_SECRET) + 1)] = "";
	char out[SIGN_SIGNATURE_SIZE];

	for (int i = 0; i < SIGN_MAX_SECRETS; i++) {
		strncat(value, REF_SECRET, sizeof(value) - strlen(value) - 1);
		strncat(value, " ", sizeof(value) - strlen(value) - 1);
	}
	sign_with(value, REF_ID, REF_TIMESTAMP, REF_BODY, out);
	ck_assert_uint_eq(strlen(out), SIGN_MAX_SECRETS * 48 - 1);
}
END_TEST

#define A16 "AAAAAAAAAAAAAAAA"

struct bad_case {
	const char *value;
	const char *reason;
};

static const struct bad_case bad_cases[] = {
	{ "", "no secret" },
	{ "   ", "no secret" },
	{ "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "secret 1 does not start" },
	{ "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "secret 1 does not start" },
	{ REF_SECRET " sekrit", "secret 2 does not start" },
	{ "whsec_", "secret 1: not base64" },
	{ "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "not base64" },
	{ "whsec_MfKQ9r8GKYqrTwjU*D8ILPZIo2LaLaSw", "not base64" },
	{ "whsec_MfKQ9r8GKYqrTwjU=D8ILPZIo2LaLaSw", "not base64" },
	{ "whsec_MfKQ9r8GKYqrTwjU\tD8ILPZIo2LaLaSw", "not base64" },
	{ "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "23 bytes" },
	/* 65 and 66 bytes: one and two too many; past that, not a key. */
	{ "whsec_" A16 A16 A16 A16 A16 "AAAAAAA=", "65 bytes" },
	{ "whsec_" A16 A16 A16 A16 A16 "AAAAAAAA", "66 bytes" },
	{ "whsec_" A16 A16 A16 A16 A16 A16, "not base64" },
	{ REF_SECRET " " REF_SECRET " " REF_SECRET " " REF_SECRET " "
	  REF_SECRET " " REF_SECRET " " REF_SECRET " " REF_SECRET " "
	  REF_SECRET, "more than 8" },
};

#define N_BAD ((int)(sizeof(bad_cases) / sizeof(bad_cases[0])))

START_TEST(test_bad_secret)
{
	const struct bad_case *c = &bad_cases[_i];
	struct sign_keys *keys = (struct sign_keys *)&keys; /* must be reset */
	char err[256] = "";

	ck_assert_int_eq(sign_keys_new(c->value, &keys, err, sizeof(err)), -1);
	ck_assert_ptr_null(keys);
	ck_assert_msg(strstr(err, c->reason) != NULL, "\"%s\" lacks \"%s\"",
		      err, c->reason);
	/* The secret's text never reaches a message. */
	ck_assert_ptr_null(strstr(err, "MfKQ9r8G"));
	ck_assert_ptr_null(strstr(err, "AAAAAAAA"));
}
END_TEST

START_TEST(test_small_output_refused)
{
	struct sign_keys *keys = NULL;
	char err[256] = "", out[SIGN_SIGNATURE_SIZE];

	ck_assert_int_eq(sign_keys_new(REF_SECRET, &keys, err, sizeof(err)), 0);
	ck_assert_int_eq(sign_signature(keys, "1", 1, "", 0, out, 47, err,
					sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "small"));
	sign_keys_free(keys);
	sign_keys_free(NULL);
}
END_TEST

static Suite *sign_suite(void)
{
	Suite *s = suite_create("sign");
	TCase *good = tcase_create("signatures");
	TCase *bad = tcase_create("bad secrets");

	tcase_add_test(good, test_reference_vector);
	tcase_add_test(good, test_empty_body_long_key);
	tcase_add_test(good, test_several_secrets);
	tcase_add_test(good, test_every_part_is_signed);
	tcase_add_test(good, test_eight_secrets_fit);
	tcase_add_loop_test(bad, test_bad_secret, 0, N_BAD);
	tcase_add_test(bad, test_small_output_refused);
	suite_add_tcase(s, good);
	suite_add_tcase(s, bad);
	return s;
}

int main(void)
{
	SRunner *runner = srunner_create(sign_suite());
	int failed;

	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
