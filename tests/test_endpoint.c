/*
 * test_endpoint.c - every rule about provisioning options, case by case.
 *
 * Each case is a set of config rows over a good base (an https URL and a
 * JSON content type) and either the endpoint it must build or the key its
 * error must name. Passwords are checked never to reach an error text.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endpoint.h"
#include "render.h"

#define CLOUD_ID "app1"
#define DEFAULT_TIMEOUT_MS 15000
#define PASSWORD "Pw-7f3a9c2e-never-show"
#define MAX_PAIRS 8

#define K_URL ENDPOINT_URL
#define K_POST ENDPOINT_POST_DATA
#define K_CT ENDPOINT_CONTENT_TYPE
#define K_HDR ENDPOINT_CUSTOM_HEADERS
#define K_USER ENDPOINT_AUTH_USERNAME
#define K_PASS ENDPOINT_AUTH_PASSWORD
#define K_INSECURE ENDPOINT_ALLOW_INSECURE_AUTH
#define K_TIMEOUT ENDPOINT_TIMEOUT
#define K_DISABLED ENDPOINT_DISABLED
#define K_METHOD ENDPOINT_METHOD
#define K_SECRET ENDPOINT_SIGNING_SECRET
#define K_CONC ENDPOINT_MAX_CONCURRENCY
#define K_RATE ENDPOINT_MAX_RATE
#define K_ATTEMPTS ENDPOINT_MAX_ATTEMPTS
#define K_SCHEDULE ENDPOINT_RETRY_SCHEDULE
#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

#define LONG_10 "aaaaaaaaaa"
#define LONG_100 LONG_10 LONG_10 LONG_10 LONG_10 LONG_10 LONG_10 LONG_10 \
	LONG_10 LONG_10 LONG_10
#define LONG_300 LONG_100 LONG_100 LONG_100

/* A value of REMOVE drops that key from the base. */
static const char REMOVE[] = "\x01remove";

struct pair {
	const char *key;
	const char *value;
};

static const struct pair base_pairs[] = {
	{ K_URL, "https://hooks.example.com/smart" },
	{ K_CT, "application/json" },
};

static const char xml_template[] =
	"<root><n>%new_smart_number%</n><id>%network_id%</id>"
	"<uri>%new_smart_uri%</uri>"
	"<parties>%interestedParties%</parties></root>";

/* ---- building config rows --------------------------------------------- */

struct rows {
	struct config_row row[MAX_PAIRS + 2];
	size_t count;
};

static void rows_put(struct rows *rows, const char *key, const char *value)
{
	size_t i;

	for (i = 0; i < rows->count; i++) {
		if (strcmp(rows->row[i].key, key) != 0)
			continue;
		free(rows->row[i].value);
		if (value == REMOVE) {
			free(rows->row[i].cloud_id);
			free(rows->row[i].key);
			rows->row[i] = rows->row[rows->count - 1];
			rows->count--;
		} else {
			rows->row[i].value = strdup(value);
		}
		return;
	}
	if (value == REMOVE)
		return;
	ck_assert_uint_lt(rows->count, MAX_PAIRS + 2);
	rows->row[rows->count].cloud_id = strdup(CLOUD_ID);
	rows->row[rows->count].key = strdup(key);
	rows->row[rows->count].value = strdup(value);
	rows->count++;
}

/* The base rows with pairs (up to the first NULL key) laid over them. */
static void rows_make(struct rows *rows, const struct pair *pairs)
{
	size_t i;

	memset(rows, 0, sizeof(*rows));
	for (i = 0; i < sizeof(base_pairs) / sizeof(base_pairs[0]); i++)
		rows_put(rows, base_pairs[i].key, base_pairs[i].value);
	for (i = 0; i < MAX_PAIRS && pairs[i].key != NULL; i++)
		rows_put(rows, pairs[i].key, pairs[i].value);
}

static void rows_free(struct rows *rows)
{
	size_t i;

	for (i = 0; i < rows->count; i++) {
		free(rows->row[i].cloud_id);
		free(rows->row[i].key);
		free(rows->row[i].value);
	}
	rows->count = 0;
}

static int build(const struct pair *pairs, struct endpoint **ep, char *err,
		 size_t errlen)
{
	struct rows rows;
	int rc;

	rows_make(&rows, pairs);
	rc = endpoint_build(CLOUD_ID, rows.row, rows.count, DEFAULT_TIMEOUT_MS,
			    ep, err, errlen);
	rows_free(&rows);
	return rc;
}

/* ---- configurations that build ---------------------------------------- */

struct good_case {
	const char *what;
	struct pair pairs[MAX_PAIRS];
	enum content_kind kind;
	int64_t timeout_ms;
	const char *disabled;
};

static const struct good_case good_cases[] = {
	{ "JSON app, documented template", { { NULL, NULL } }, CONTENT_JSON,
	  DEFAULT_TIMEOUT_MS, NULL },
	{ "JSON app, explicit template",
	  { { K_POST, "{\"n\":\"%new_smart_number%\","
		      "\"p\":%interestedParties%}" } },
	  CONTENT_JSON, DEFAULT_TIMEOUT_MS, NULL },
	{ "JSON with charset, any case",
	  { { K_CT, "Application/JSON; charset=utf-8" } }, CONTENT_JSON,
	  DEFAULT_TIMEOUT_MS, NULL },
	{ "XML app, explicit template",
	  { { K_CT, "application/xml" }, { K_POST, xml_template } },
	  CONTENT_XML, DEFAULT_TIMEOUT_MS, NULL },
	{ "XML app, documented template", { { K_CT, "application/xml" } },
	  CONTENT_XML, DEFAULT_TIMEOUT_MS, NULL },
	{ "plain http without credentials", { { K_URL, "http://127.0.0.1:8080/x" } },
	  CONTENT_JSON, DEFAULT_TIMEOUT_MS, NULL },
	{ "custom headers, CRLF, trailing newline",
	  { { K_HDR, "X-Api-Key: abc\r\nX-Tenant: t1\r\n" } }, CONTENT_JSON,
	  DEFAULT_TIMEOUT_MS, NULL },
	{ "User-Agent may be replaced",
	  { { K_HDR, "User-Agent: acme-relay/2" } }, CONTENT_JSON,
	  DEFAULT_TIMEOUT_MS, NULL },
	{ "empty headers", { { K_HDR, "" } }, CONTENT_JSON,
	  DEFAULT_TIMEOUT_MS, NULL },
	{ "credentials over https",
	  { { K_USER, "relay" }, { K_PASS, PASSWORD } }, CONTENT_JSON,
	  DEFAULT_TIMEOUT_MS, NULL },
	{ "credentials over https, insecure false",
	  { { K_USER, "relay" }, { K_PASS, PASSWORD }, { K_INSECURE, "false" } },
	  CONTENT_JSON, DEFAULT_TIMEOUT_MS, NULL },
	{ "credentials over http allowed",
	  { { K_URL, "http://hooks.example.com/" }, { K_USER, "relay" },
	    { K_PASS, PASSWORD }, { K_INSECURE, "true" } },
	  CONTENT_JSON, DEFAULT_TIMEOUT_MS, NULL },
	{ "empty password", { { K_USER, "relay" }, { K_PASS, "" } },
	  CONTENT_JSON, DEFAULT_TIMEOUT_MS, NULL },
	{ "AllowInsecureAuth alone", { { K_INSECURE, "true" } }, CONTENT_JSON,
	  DEFAULT_TIMEOUT_MS, NULL },
	{ "Timeout 0.1", { { K_TIMEOUT, "0.1" } }, CONTENT_JSON, 100, NULL },
	{ "Timeout 600", { { K_TIMEOUT, "600" } }, CONTENT_JSON, 600000, NULL },
	{ "Timeout 2.5", { { K_TIMEOUT, "2.5" } }, CONTENT_JSON, 2500, NULL },
	{ "Disabled", { { K_DISABLED, "2024-05-01T10:00:00.000Z 410 Gone" } },
	  CONTENT_JSON, DEFAULT_TIMEOUT_MS,
	  "2024-05-01T10:00:00.000Z 410 Gone" },
	{ "Method POST", { { K_METHOD, "POST" } }, CONTENT_JSON,
	  DEFAULT_TIMEOUT_MS, NULL },
	{ "Method PUT", { { K_METHOD, "PUT" } }, CONTENT_JSON,
	  DEFAULT_TIMEOUT_MS, NULL },
	{ "signing secret", { { K_SECRET, SECRET } }, CONTENT_JSON,
	  DEFAULT_TIMEOUT_MS, NULL },
	{ "two signing secrets", { { K_SECRET, SECRET " " SECRET } },
	  CONTENT_JSON, DEFAULT_TIMEOUT_MS, NULL },
	{ "signing with other custom headers",
	  { { K_SECRET, SECRET }, { K_HDR, "X-Webhook-Id: 1\nwebhook-idx: 2" } },
	  CONTENT_JSON, DEFAULT_TIMEOUT_MS, NULL },
	{ "unprefixed keys ignored",
	  { { "otherAppUrl", "ftp://nowhere" }, { "Timeout", "abc" } },
	  CONTENT_JSON, DEFAULT_TIMEOUT_MS, NULL },
};

#define N_GOOD ((int)(sizeof(good_cases) / sizeof(good_cases[0])))

START_TEST(test_good)
{
	const struct good_case *c = &good_cases[_i];
	struct endpoint *ep = NULL;
	char err[ENDPOINT_ERROR_SIZE] = "";

	ck_assert_msg(build(c->pairs, &ep, err, sizeof(err)) == 0,
		      "%s: %s", c->what, err);
	ck_assert_ptr_nonnull(ep);
	ck_assert_str_eq(ep->cloud_id, CLOUD_ID);
	ck_assert_int_eq(ep->kind, c->kind);
	ck_assert_int_eq(ep->timeout_ms, c->timeout_ms);
	ck_assert_ptr_nonnull(ep->tmpl);
	ck_assert_ptr_nonnull(ep->transfer);
	if (c->disabled == NULL)
		ck_assert_ptr_null(ep->disabled);
	else
		ck_assert_str_eq(ep->disabled, c->disabled);
	endpoint_free(ep);
}
END_TEST

/* Without PostData, the documented example of the kind is what renders. */
START_TEST(test_default_template_renders)
{
	static const struct render_event ev = {
		"+12065550100", "net-1", "sip:+12065550100@example.com",
		"[{\"username\":\"eric\",\"device\":\"erics_iphone\"}]",
	};
	static const struct {
		const char *content_type;
		const char *expect;
	} kinds[] = {
		{ "application/json", "\"newSmartNumber\"" },
		{ "application/xml", "<new_smart_number>+12065550100<" },
	};
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		const struct pair pairs[] = { { K_CT, kinds[i].content_type },
					      { NULL, NULL } };
		struct endpoint *ep = NULL;
		char err[ENDPOINT_ERROR_SIZE] = "";
		char *body = NULL;
		size_t len = 0;

		ck_assert_msg(build(pairs, &ep, err, sizeof(err)) == 0, "%s",
			      err);
		ck_assert_int_eq(render_body(ep->tmpl, &ev, &body, &len, err,
					     sizeof(err)), 0);
		ck_assert_msg(strstr(body, kinds[i].expect) != NULL,
			      "%s not in %s", kinds[i].expect, body);
		ck_assert_uint_eq(len, strlen(body));
		free(body);
		endpoint_free(ep);
	}
}
END_TEST

/* ---- configurations that are errors ----------------------------------- */

struct bad_case {
	const char *what;
	struct pair pairs[MAX_PAIRS];
	const char *key;    /* the key the error must name */
	const char *reason; /* NULL, or a part of the reason */
};

static const struct bad_case bad_cases[] = {
	{ "URL missing", { { K_URL, REMOVE } }, K_URL, "missing" },
	{ "URL empty", { { K_URL, "" } }, K_URL, NULL },
	{ "URL ftp", { { K_URL, "ftp://files.example.com/x" } }, K_URL, "ftp" },
	{ "URL garbage", { { K_URL, "not a url at all" } }, K_URL, NULL },
	{ "URL without host", { { K_URL, "https://" } }, K_URL, NULL },
	{ "ContentType missing", { { K_CT, REMOVE } }, K_CT, "missing" },
	{ "ContentType text/plain", { { K_CT, "text/plain" } }, K_CT, NULL },
	{ "ContentType with CRLF",
	  { { K_CT, "application/json\r\nX-Evil: 1" } }, K_CT, NULL },
	{ "ContentType empty", { { K_CT, "" } }, K_CT, NULL },
	{ "PostData not JSON", { { K_POST, "{ \"n\": %new_smart_number% " } },
	  K_POST, NULL },
	{ "PostData XML for a JSON app", { { K_POST, xml_template } }, K_POST,
	  NULL },
	{ "PostData JSON for an XML app",
	  { { K_CT, "application/xml" },
	    { K_POST, "{\"n\":\"%new_smart_number%\"}" } },
	  K_POST, NULL },
	{ "PostData empty", { { K_POST, "" } }, K_POST, NULL },
	{ "header with a lone CR", { { K_HDR, "X-A: 1\rX-B: 2" } }, K_HDR,
	  "CR" },
	{ "header ending in a lone CR", { { K_HDR, "X-A: 1\r" } }, K_HDR,
	  "CR" },
	{ "header with CR CR LF", { { K_HDR, "X-A: 1\r\r\nX-B: 2" } }, K_HDR,
	  "CR" },
	{ "header without colon", { { K_HDR, "X-A: 1\nX-B 2" } }, K_HDR,
	  "line 2: no colon" },
	{ "header name with a space", { { K_HDR, "X A: 1" } }, K_HDR,
	  "header name" },
	{ "header name with a space before the colon", { { K_HDR, "X-A : 1" } },
	  K_HDR, "header name" },
	{ "header name with parentheses", { { K_HDR, "X(a): 1" } }, K_HDR,
	  "header name" },
	{ "header name with a slash", { { K_HDR, "X/a: 1" } }, K_HDR,
	  "header name" },
	{ "header name non-ASCII", { { K_HDR, "X-\xc3\xa9: 1" } }, K_HDR,
	  "header name" },
	{ "header folded line", { { K_HDR, "X-A: 1\n continued" } }, K_HDR,
	  "line 2" },
	{ "header empty name", { { K_HDR, ": 1" } }, K_HDR, "empty" },
	{ "header blank line between", { { K_HDR, "X-A: 1\n\nX-B: 2" } },
	  K_HDR, "line 2: empty" },
	{ "header value with a control char", { { K_HDR, "X-A: a\x01z" } },
	  K_HDR, "control" },
	{ "header value with DEL", { { K_HDR, "X-A: a\x7fz" } }, K_HDR,
	  "control" },
	{ "header Host", { { K_HDR, "Host: evil.example.com" } }, K_HDR,
	  "Host" },
	{ "header host lower case", { { K_HDR, "X-A: 1\r\nhost: x" } }, K_HDR,
	  "line 2: header Host" },
	{ "header Content-Type upper case", { { K_HDR, "CONTENT-TYPE: a/b" } },
	  K_HDR, "Content-Type" },
	{ "header Content-Length", { { K_HDR, "Content-Length: 5" } }, K_HDR,
	  "Content-Length" },
	{ "header Transfer-Encoding mixed case",
	  { { K_HDR, "transfer-ENCODING: chunked" } }, K_HDR,
	  "Transfer-Encoding" },
	{ "header webhook-id", { { K_HDR, "Webhook-Id: fixed" } }, K_HDR,
	  "webhook-id" },
	{ "header Expect", { { K_HDR, "Expect: 100-continue" } }, K_HDR,
	  "Expect" },
	{ "username without password", { { K_USER, "relay" } }, K_PASS,
	  "missing" },
	{ "password without username", { { K_PASS, PASSWORD } }, K_USER,
	  "missing" },
	{ "empty username", { { K_USER, "" }, { K_PASS, PASSWORD } }, K_USER,
	  "empty" },
	{ "content type too long",
	  { { K_CT, "application/json; x=" LONG_300 } }, K_CT, "256" },
	{ "username with CR LF",
	  { { K_USER, "relay\r\nX-Injected: 1" }, { K_PASS, PASSWORD } },
	  K_USER, "control character" },
	{ "username with a colon", { { K_USER, "re:lay" }, { K_PASS, PASSWORD } },
	  K_USER, "colon" },
	{ "password with LF",
	  { { K_USER, "relay" }, { K_PASS, PASSWORD "\nX-Injected: 1" } },
	  K_PASS, "control character" },
	{ "credentials over http refused",
	  { { K_URL, "http://hooks.example.com/" }, { K_USER, "relay" },
	    { K_PASS, PASSWORD } },
	  K_USER, "http" },
	{ "credentials over http, insecure false",
	  { { K_URL, "http://hooks.example.com/" }, { K_USER, "relay" },
	    { K_PASS, PASSWORD }, { K_INSECURE, "false" } },
	  K_USER, "http" },
	{ "AllowInsecureAuth yes", { { K_INSECURE, "yes" } }, K_INSECURE,
	  "true" },
	{ "AllowInsecureAuth TRUE", { { K_INSECURE, "TRUE" } }, K_INSECURE,
	  NULL },
	{ "AllowInsecureAuth empty", { { K_INSECURE, "" } }, K_INSECURE, NULL },
	{ "Timeout 0.05", { { K_TIMEOUT, "0.05" } }, K_TIMEOUT, "0.1 to 600" },
	{ "Timeout 0", { { K_TIMEOUT, "0" } }, K_TIMEOUT, NULL },
	{ "Timeout 601", { { K_TIMEOUT, "601" } }, K_TIMEOUT, NULL },
	{ "Timeout abc", { { K_TIMEOUT, "abc" } }, K_TIMEOUT, NULL },
	{ "Timeout negative", { { K_TIMEOUT, "-5" } }, K_TIMEOUT, NULL },
	{ "Timeout with a unit", { { K_TIMEOUT, "10s" } }, K_TIMEOUT, NULL },
	{ "Timeout empty", { { K_TIMEOUT, "" } }, K_TIMEOUT, NULL },
	{ "Method GET", { { K_METHOD, "GET" } }, K_METHOD, "POST" },
	{ "Method lower case", { { K_METHOD, "put" } }, K_METHOD, "PUT" },
	{ "Method PATCH", { { K_METHOD, "PATCH" } }, K_METHOD, NULL },
	{ "Method empty", { { K_METHOD, "" } }, K_METHOD, NULL },
	{ "Method with CRLF", { { K_METHOD, "PUT\r\nX: 1" } }, K_METHOD, NULL },
	{ "signing secret without prefix",
	  { { K_SECRET, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" } }, K_SECRET,
	  "secret 1" },
	{ "signing secret short", { { K_SECRET, "whsec_c2hvcnQ=" } }, K_SECRET,
	  "5 bytes" },
	{ "signing secret empty", { { K_SECRET, "" } }, K_SECRET, "no secret" },
	{ "signing with a custom webhook-id",
	  { { K_SECRET, SECRET }, { K_HDR, "X-A: 1\nWebhook-Id: 7" } }, K_HDR,
	  "line 2: header webhook-id" },
	{ "signing with a custom webhook-timestamp",
	  { { K_SECRET, SECRET }, { K_HDR, "webhook-timestamp: 1" } }, K_HDR,
	  "webhook-timestamp" },
	{ "signing with a custom webhook-signature",
	  { { K_SECRET, SECRET }, { K_HDR, "webhook-signature: v1,x" } }, K_HDR,
	  "webhook-signature" },
	{ "MaxConcurrency 0", { { K_CONC, "0" } }, K_CONC, "1 to 10000" },
	{ "MaxConcurrency 10001", { { K_CONC, "10001" } }, K_CONC, NULL },
	{ "MaxConcurrency signed", { { K_CONC, "+4" } }, K_CONC, NULL },
	{ "MaxConcurrency fraction", { { K_CONC, "2.5" } }, K_CONC, NULL },
	{ "MaxConcurrency huge", { { K_CONC, "99999999999999999999" } }, K_CONC,
	  NULL },
	{ "MaxRate 0", { { K_RATE, "0" } }, K_RATE, "above 0" },
	{ "MaxRate negative", { { K_RATE, "-1" } }, K_RATE, NULL },
	{ "MaxRate inf", { { K_RATE, "inf" } }, K_RATE, NULL },
	{ "MaxRate hex", { { K_RATE, "0x10" } }, K_RATE, NULL },
	{ "MaxRate exponent", { { K_RATE, "1e3" } }, K_RATE, NULL },
	{ "MaxRate two points", { { K_RATE, "1.2.3" } }, K_RATE, NULL },
	{ "MaxRate trailing point", { { K_RATE, "5." } }, K_RATE, NULL },
	{ "MaxRate too high", { { K_RATE, "100001" } }, K_RATE, NULL },
	{ "MaxAttempts 0", { { K_ATTEMPTS, "0" } }, K_ATTEMPTS, "1 to 1000" },
	{ "MaxAttempts 1001", { { K_ATTEMPTS, "1001" } }, K_ATTEMPTS, NULL },
	{ "MaxAttempts empty", { { K_ATTEMPTS, "" } }, K_ATTEMPTS, NULL },
	{ "RetrySchedule empty", { { K_SCHEDULE, "" } }, K_SCHEDULE,
	  "delay 1 is empty" },
	{ "RetrySchedule empty item", { { K_SCHEDULE, "5,,60" } }, K_SCHEDULE,
	  "delay 2 is empty" },
	{ "RetrySchedule trailing comma", { { K_SCHEDULE, "5,60," } },
	  K_SCHEDULE, "delay 3 is empty" },
	{ "RetrySchedule unit", { { K_SCHEDULE, "5,1h" } }, K_SCHEDULE,
	  "delay 2 is not" },
	{ "RetrySchedule negative", { { K_SCHEDULE, "-5" } }, K_SCHEDULE, NULL },
	{ "RetrySchedule over 30 days", { { K_SCHEDULE, "2592001" } },
	  K_SCHEDULE, NULL },
	{ "RetrySchedule too many",
	  { { K_SCHEDULE, "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
			  "1,1,1,1,1,1,1" } },
	  K_SCHEDULE, "more than 32" },
	{ "unknown prefixed key", { { "smartContactNotificationUrl2", "x" } },
	  "smartContactNotificationUrl2", "unknown option" },
	{ "prefixed key in another case",
	  { { "smartContactNotificationURL", "https://a.example/" } },
	  "smartContactNotificationURL", "unknown option" },
	{ "prefix alone", { { ENDPOINT_KEY_PREFIX, "x" } }, ENDPOINT_KEY_PREFIX,
	  "unknown option" },
};

#define N_BAD ((int)(sizeof(bad_cases) / sizeof(bad_cases[0])))

START_TEST(test_bad)
{
	const struct bad_case *c = &bad_cases[_i];
	struct endpoint *ep = NULL;
	char err[ENDPOINT_ERROR_SIZE] = "";
	char prefix[256];

	ck_assert_msg(build(c->pairs, &ep, err, sizeof(err)) == -1,
		      "%s: built", c->what);
	ck_assert_ptr_null(ep);
	snprintf(prefix, sizeof(prefix), "cloud_id=%s key=%s: ", CLOUD_ID,
		 c->key);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
		      "%s: \"%s\" does not start with \"%s\"", c->what, err,
		      prefix);
	ck_assert_msg(strlen(err) > strlen(prefix), "%s: no reason", c->what);
	if (c->reason != NULL)
		ck_assert_msg(strstr(err + strlen(prefix), c->reason) != NULL,
			      "%s: \"%s\" lacks \"%s\"", c->what, err,
			      c->reason);
	ck_assert_msg(strstr(err, PASSWORD) == NULL, "%s: password in \"%s\"",
		      c->what, err);
	ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

START_TEST(test_value_with_nul_is_refused)
{
	struct config_row rows[] = {
		{ NULL, (char *)K_URL, (char *)"https://hooks.example.com/", 0 },
		{ NULL, (char *)K_CT, (char *)"application/json", 1 },
	};
	struct endpoint *ep = NULL;
	char err[ENDPOINT_ERROR_SIZE] = "";

	ck_assert_int_eq(endpoint_build("default", rows, 2, 1000, &ep, err,
					sizeof(err)), -1);
	ck_assert_ptr_null(ep);
	ck_assert_ptr_nonnull(strstr(err, K_CT));
	ck_assert_ptr_nonnull(strstr(err, "NUL"));
}
END_TEST

START_TEST(test_error_names_default_cloud_id)
{
	struct config_row row = { NULL, NULL, NULL, 0 };
	struct endpoint *ep = (struct endpoint *)&row; /* must be reset */
	char err[ENDPOINT_ERROR_SIZE] = "";

	ck_assert_int_eq(endpoint_build("default", &row, 0, 1000, &ep, err,
					sizeof(err)), -1);
	ck_assert_ptr_null(ep);
	ck_assert_str_eq(err, "cloud_id=default key=" ENDPOINT_URL
			      ": missing");
}
END_TEST

START_TEST(test_duplicate_key)
{
	const struct pair pairs[] = { { NULL, NULL } };
	struct rows rows;
	struct endpoint *ep = NULL;
	char err[ENDPOINT_ERROR_SIZE] = "";

	rows_make(&rows, pairs);
	rows.row[rows.count].cloud_id = strdup(CLOUD_ID);
	rows.row[rows.count].key = strdup(K_URL);
	rows.row[rows.count].value = strdup("https://other.example/");
	rows.count++;
	ck_assert_int_eq(endpoint_build(CLOUD_ID, rows.row, rows.count, 1000,
					&ep, err, sizeof(err)), -1);
	ck_assert_ptr_null(ep);
	ck_assert_str_eq(err, "cloud_id=" CLOUD_ID " key=" K_URL
			      ": given twice");
	rows_free(&rows);
}
END_TEST

/* A small error buffer truncates, never overflows. */
START_TEST(test_small_error_buffer)
{
	const struct pair pairs[] = { { K_URL, REMOVE }, { NULL, NULL } };
	struct endpoint *ep = NULL;
	char err[16];

	memset(err, 'x', sizeof(err));
	ck_assert_int_eq(build(pairs, &ep, err, 10), -1);
	ck_assert_str_eq(err, "cloud_id=");
	ck_assert_int_eq(err[10], 'x');
	ck_assert_int_eq(build(pairs, &ep, NULL, 0), -1);
	ck_assert_ptr_null(ep);
}
END_TEST

/* The password reused inside other values: whatever check fails and
 * whatever it echoes, the password is not in the error. */
static const struct bad_case leak_cases[] = {
	{ "in the URL", { { K_URL, "ftp://u:" PASSWORD "@x.example/" PASSWORD },
			  { K_USER, "u" }, { K_PASS, PASSWORD } },
	  K_URL, NULL },
	{ "as the content type",
	  { { K_CT, PASSWORD }, { K_USER, "u" }, { K_PASS, PASSWORD } },
	  K_CT, NULL },
	{ "in the template",
	  { { K_POST, "{\"" PASSWORD "\": %new_smart_number% ," PASSWORD },
	    { K_USER, "u" }, { K_PASS, PASSWORD } },
	  K_POST, NULL },
	{ "in a header",
	  { { K_HDR, "Authorization " PASSWORD }, { K_USER, "u" },
	    { K_PASS, PASSWORD } },
	  K_HDR, NULL },
	{ "in a header name",
	  { { K_HDR, "X " PASSWORD ": v" }, { K_USER, "u" },
	    { K_PASS, PASSWORD } },
	  K_HDR, NULL },
	{ "over http", { { K_URL, "http://h.example/" PASSWORD },
			 { K_USER, "u" }, { K_PASS, PASSWORD } },
	  K_USER, NULL },
	{ "as the timeout",
	  { { K_TIMEOUT, PASSWORD }, { K_USER, "u" }, { K_PASS, PASSWORD } },
	  K_TIMEOUT, NULL },
	{ "a password of stars, echoed",
	  { { K_CT, "text/**" }, { K_USER, "u" }, { K_PASS, "**" } },
	  K_CT, NULL },
	{ "as the insecure flag",
	  { { K_INSECURE, PASSWORD }, { K_USER, "u" }, { K_PASS, PASSWORD } },
	  K_INSECURE, NULL },
};

#define N_LEAK ((int)(sizeof(leak_cases) / sizeof(leak_cases[0])))

START_TEST(test_password_never_in_error)
{
	const struct bad_case *c = &leak_cases[_i];
	struct endpoint *ep = NULL;
	char err[ENDPOINT_ERROR_SIZE] = "";
	char prefix[256];

	ck_assert_int_eq(build(c->pairs, &ep, err, sizeof(err)), -1);
	snprintf(prefix, sizeof(prefix), "cloud_id=%s key=%s: ", CLOUD_ID,
		 c->key);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
		      "%s: \"%s\" does not start with \"%s\"", c->what, err,
		      prefix);
	ck_assert_msg(strstr(err, PASSWORD) == NULL, "%s: password in \"%s\"",
		      c->what, err);
}
END_TEST

/* The delivery policy options, parsed. */
START_TEST(test_delivery_options)
{
	static const struct pair set[] = {
		{ K_CONC, "4" },
		{ K_RATE, "2.5" },
		{ K_ATTEMPTS, "6" },
		{ K_SCHEDULE, "5, 300,1800 ,7200,18000,36000" },
		{ NULL, NULL },
	};
	static const int64_t schedule[] = {
		5000, 300000, 1800000, 7200000, 18000000, 36000000,
	};
	static const struct pair unset[] = { { NULL, NULL } };
	struct endpoint *ep = NULL;
	char err[ENDPOINT_ERROR_SIZE] = "";

	ck_assert_msg(build(set, &ep, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(ep->max_concurrency, 4);
	ck_assert_double_eq(ep->max_rate, 2.5);
	ck_assert_int_eq(ep->max_attempts, 6);
	ck_assert_uint_eq(ep->retry_schedule_count, 6);
	for (size_t i = 0; i < 6; i++)
		ck_assert_int_eq(ep->retry_schedule_ms[i], schedule[i]);
	endpoint_free(ep);

	ck_assert_msg(build(unset, &ep, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(ep->max_concurrency, 0);
	ck_assert_double_eq(ep->max_rate, 0.0);
	ck_assert_int_eq(ep->max_attempts, 0);
	ck_assert_uint_eq(ep->retry_schedule_count, 0);
	endpoint_free(ep);
}
END_TEST

/* The signing secret reused where a failing check echoes it. */
START_TEST(test_secret_never_in_error)
{
	static const struct pair pairs[] = {
		{ K_CT, SECRET },
		{ K_SECRET, "whsec_c2hvcnQ= " SECRET },
		{ NULL, NULL },
	};
	static const struct pair bad_secret[] = {
		{ K_SECRET, SECRET " whsec_c2hvcnQ=" },
		{ NULL, NULL },
	};
	struct endpoint *ep = NULL;
	char err[ENDPOINT_ERROR_SIZE] = "";

	ck_assert_int_eq(build(pairs, &ep, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "key=" K_CT ": unsupported") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "MfKQ9r8G") == NULL, "secret in \"%s\"", err);
	ck_assert_int_eq(build(bad_secret, &ep, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "secret 2") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "MfKQ9r8G") == NULL, "secret in \"%s\"", err);
	ck_assert_msg(strstr(err, "c2hvcnQ") == NULL, "secret in \"%s\"", err);
}
END_TEST

/* ---- CustomHeaders parsing -------------------------------------------- */

struct header_case {
	const char *what;
	const char *value;
	size_t count;
	const char *lines[4];
};

static const struct header_case header_cases[] = {
	{ "one line", "X-A: 1", 1, { "X-A: 1" } },
	{ "LF lines", "X-A: 1\nX-B: 2", 2, { "X-A: 1", "X-B: 2" } },
	{ "CRLF lines", "X-A: 1\r\nX-B: 2\r\n", 2, { "X-A: 1", "X-B: 2" } },
	{ "mixed line ends", "X-A: 1\r\nX-B: 2\nX-C: 3", 3,
	  { "X-A: 1", "X-B: 2", "X-C: 3" } },
	{ "trailing LF", "X-A: 1\n", 1, { "X-A: 1" } },
	{ "trailing blank lines", "X-A: 1\n\r\n\n", 1, { "X-A: 1" } },
	{ "empty", "", 0, { NULL } },
	{ "only a newline", "\r\n", 0, { NULL } },
	{ "User-Agent", "User-Agent: acme/1", 1, { "User-Agent: acme/1" } },
	{ "every tchar",
	  "!#$%&'*+-.^_`|~09azAZ: v", 1, { "!#$%&'*+-.^_`|~09azAZ: v" } },
	{ "value kept as written, tab and UTF-8", "X-A:\tcaf\xc3\xa9 : x", 1,
	  { "X-A:\tcaf\xc3\xa9 : x" } },
	{ "empty value", "X-Empty:", 1, { "X-Empty:" } },
	{ "X-Host is not Host", "X-Host: a\nHosts: b", 2,
	  { "X-Host: a", "Hosts: b" } },
};

#define N_HEADERS ((int)(sizeof(header_cases) / sizeof(header_cases[0])))

START_TEST(test_parse_headers)
{
	const struct header_case *c = &header_cases[_i];
	char **lines = NULL;
	size_t count = 99;
	char err[ENDPOINT_ERROR_SIZE] = "";
	size_t i;

	ck_assert_msg(endpoint_parse_headers(c->value, &lines, &count, err,
					     sizeof(err)) == 0,
		      "%s: %s", c->what, err);
	ck_assert_uint_eq(count, c->count);
	for (i = 0; i < count; i++)
		ck_assert_str_eq(lines[i], c->lines[i]);
	endpoint_headers_free(lines, count);
}
END_TEST

START_TEST(test_parse_headers_error_resets_output)
{
	char **lines = (char **)&lines;
	size_t count = 7;
	char err[ENDPOINT_ERROR_SIZE] = "";

	ck_assert_int_eq(endpoint_parse_headers("X-A: 1\nX-B: 2\nbad", &lines,
						&count, err, sizeof(err)),
			 -1);
	ck_assert_ptr_null(lines);
	ck_assert_uint_eq(count, 0);
	ck_assert_str_eq(err, "line 3: no colon");
}
END_TEST

/* ---- secrets ----------------------------------------------------------- */

struct secret_case {
	const char *key;
	int secret;
};

static const struct secret_case secret_cases[] = {
	{ ENDPOINT_AUTH_PASSWORD, 1 },
	{ "smartContactNotificationProxyPassword", 1 },
	{ "webhookSecret", 1 },
	{ "clientsecret", 1 },
	{ "Password", 1 },
	{ ENDPOINT_AUTH_USERNAME, 0 },
	{ ENDPOINT_URL, 0 },
	{ ENDPOINT_CUSTOM_HEADERS, 0 },
	{ "PasswordPolicy", 0 },
	{ "", 0 },
};

#define N_SECRETS ((int)(sizeof(secret_cases) / sizeof(secret_cases[0])))

START_TEST(test_key_is_secret)
{
	const struct secret_case *c = &secret_cases[_i];

	ck_assert_msg(endpoint_key_is_secret(c->key) == c->secret, "%s",
		      c->key);
}
END_TEST

START_TEST(test_key_is_secret_null)
{
	ck_assert_int_eq(endpoint_key_is_secret(NULL), 0);
}
END_TEST

static Suite *endpoint_suite(void)
{
	Suite *s = suite_create("endpoint");
	TCase *good = tcase_create("good");
	TCase *bad = tcase_create("bad");
	TCase *headers = tcase_create("headers");
	TCase *secrets = tcase_create("secrets");

	tcase_add_loop_test(good, test_good, 0, N_GOOD);
	tcase_add_test(good, test_default_template_renders);
	tcase_add_test(good, test_delivery_options);
	suite_add_tcase(s, good);

	tcase_add_loop_test(bad, test_bad, 0, N_BAD);
	tcase_add_test(bad, test_error_names_default_cloud_id);
	tcase_add_test(bad, test_value_with_nul_is_refused);
	tcase_add_test(bad, test_duplicate_key);
	tcase_add_test(bad, test_small_error_buffer);
	suite_add_tcase(s, bad);

	tcase_add_loop_test(headers, test_parse_headers, 0, N_HEADERS);
	tcase_add_test(headers, test_parse_headers_error_resets_output);
	suite_add_tcase(s, headers);

	tcase_add_loop_test(secrets, test_key_is_secret, 0, N_SECRETS);
	tcase_add_test(secrets, test_key_is_secret_null);
	tcase_add_loop_test(secrets, test_password_never_in_error, 0, N_LEAK);
	tcase_add_test(secrets, test_secret_never_in_error);
	suite_add_tcase(s, secrets);
	return s;
}

int main(void)
{
	SRunner *runner = srunner_create(endpoint_suite());
	int failed;

	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
