/*
 * test_receivers.c - what a receiver may ask of the relay, end to end.
 *
 * The real binary against the real loopback receiver: the optional
 * web-service options beyond the contract's defaults (method, custom
 * headers, Basic and Digest authentication, signing). Each test checks the
 * exact bytes the receiver got and the rows the relay wrote.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"
#include "timeutil.h"

#define RUN_TIMEOUT_MS 20000

/* `smartrelay run --once -v DB`; returns its stderr. */
static char *run_once(struct tu_env *env)
{
	char *err = NULL;
	int status = tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run", "--once",
				   "-v", env->db, NULL);

	ck_assert_msg(status == 0, "run --once exited %d: %s", status, err);
	return err;
}

/* ---- method --------------------------------------------------------------- */

START_TEST(method_put_sends_put)
{
	struct tu_env env;
	char *requests;
	int64_t id;

	tu_env_open(&env, "method_put");
	tu_provision(&env, "default", "/notify", "application/json");
	tu_config_set(&env, "default", "smartContactNotificationMethod", "PUT");
	id = tu_produce(&env, NULL, NULL, NULL);
	free(run_once(&env));
	requests = tu_receiver_requests(&env.rx);
	ck_assert_int_eq(tu_count(requests, "=== REQUEST"), 1);
	ck_assert_msg(strstr(requests, "\nPUT /notify HTTP/1.1\r\n") != NULL,
		      "requests: %s", requests);
	ck_assert_ptr_nonnull(strstr(requests, "\r\nContent-Length: "));
	ck_assert_ptr_nonnull(strstr(requests, "\"newSmartNumber\" : \"+420111222333\""));
	free(requests);
	ck_assert_str_eq(tu_fetch(&env, id).status, "delivered");
	tu_env_close(&env);
}
END_TEST

START_TEST(method_post_is_the_default)
{
	struct tu_env env;
	char *requests;

	tu_env_open(&env, "method_post");
	tu_provision(&env, "default", "/notify", "application/json");
	tu_config_set(&env, "default", "smartContactNotificationMethod", "POST");
	tu_produce(&env, NULL, NULL, NULL);
	free(run_once(&env));
	requests = tu_receiver_requests(&env.rx);
	ck_assert_msg(strstr(requests, "\nPOST /notify HTTP/1.1\r\n") != NULL,
		      "requests: %s", requests);
	/* Unsigned unless a secret is configured. */
	ck_assert_ptr_null(strstr(requests, "webhook-timestamp"));
	ck_assert_ptr_null(strstr(requests, "webhook-signature"));
	free(requests);
	tu_env_close(&env);
}
END_TEST

START_TEST(method_get_is_a_config_error)
{
	struct tu_env env;
	struct tu_row row;
	char *err;
	int64_t id;

	tu_env_open(&env, "method_get");
	tu_provision(&env, "default", "/notify", "application/json");
	tu_config_set(&env, "default", "smartContactNotificationMethod", "GET");
	id = tu_produce(&env, NULL, NULL, NULL);
	err = run_once(&env);
	ck_assert_msg(strstr(err, "cloud_id=default key=smartContactNotificationMethod")
		      != NULL, "stderr: %s", err);
	free(err);
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(row.attempts, 0);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 1, 0), 0);
	tu_env_close(&env);
}
END_TEST

/* ---- custom headers and authentication ------------------------------------ */

START_TEST(custom_headers_are_sent_exactly)
{
	struct tu_env env;
	char *requests;

	tu_env_open(&env, "custom_headers");
	tu_provision(&env, "default", "/notify", "application/json");
	tu_config_set(&env, "default", "smartContactNotificationCustomHeaders",
		   "X-Api-Key: abc123\r\nUser-Agent: acme-hooks/2\nX-Empty:\n");
	tu_produce(&env, NULL, NULL, NULL);
	free(run_once(&env));
	requests = tu_receiver_requests(&env.rx);
	ck_assert_int_eq(tu_count(requests, "=== REQUEST"), 1);
	ck_assert_int_eq(tu_count(requests, "\r\nX-Api-Key: abc123\r\n"), 1);
	/* A configured User-Agent replaces the relay's. */
	ck_assert_int_eq(tu_count(requests, "\r\nUser-Agent: acme-hooks/2\r\n"), 1);
	ck_assert_int_eq(tu_count(requests, "User-Agent:"), 1);
	ck_assert_ptr_null(strstr(requests, "smartrelay/"));
	/* An empty value is sent empty, not dropped. */
	ck_assert_int_eq(tu_count(requests, "\r\nX-Empty:\r\n"), 1);
	ck_assert_int_eq(tu_count(requests, "\r\nContent-Type: application/json\r\n"), 1);
	ck_assert_int_eq(tu_count(requests, "\r\nwebhook-id: "), 1);
	free(requests);
	tu_env_close(&env);
}
END_TEST

/* Provisions credentials over plain http, which the loopback needs. */
static void credentials(struct tu_env *env, const char *user, const char *pass)
{
	tu_config_set(env, "default", "smartContactNotificationAuthUsername", user);
	tu_config_set(env, "default", "smartContactNotificationAuthPassword", pass);
	tu_config_set(env, "default", "smartContactNotificationAllowInsecureAuth",
		   "true");
}

START_TEST(basic_auth_answers_the_challenge)
{
	struct tu_env env;
	char *requests, *second;
	int64_t id;

	tu_env_open(&env, "basic");
	tu_provision(&env, "default", "/basic/relay/s3cret-pw", "application/json");
	credentials(&env, "relay", "s3cret-pw");
	id = tu_produce(&env, NULL, NULL, NULL);
	free(run_once(&env));
	ck_assert_str_eq(tu_fetch(&env, id).status, "delivered");
	requests = tu_receiver_requests(&env.rx);
	/* libcurl asks first (Basic or Digest, the server's choice), then
	 * answers the Basic challenge. */
	ck_assert_int_eq(tu_count(requests, "=== REQUEST"), 2);
	second = strstr(requests, "=== REQUEST 2 ");
	ck_assert_ptr_nonnull(second);
	ck_assert_int_eq(tu_count(requests, "Authorization:"), 1);
	/* base64("relay:s3cret-pw") */
	ck_assert_ptr_nonnull(strstr(second,
		"\r\nAuthorization: Basic cmVsYXk6czNjcmV0LXB3\r\n"));
	ck_assert_int_eq(tu_count(second, "\r\nwebhook-id: "), 1);
	free(requests);
	tu_env_close(&env);
}
END_TEST

START_TEST(digest_auth_verifies)
{
	struct tu_env env;
	char *requests, *second;
	int64_t id;
	struct tu_row row;

	tu_env_open(&env, "digest");
	tu_provision(&env, "default", "/digest/relay/s3cret-pw", "application/json");
	credentials(&env, "relay", "s3cret-pw");
	id = tu_produce(&env, NULL, NULL, NULL);
	free(run_once(&env));
	/* The receiver answers 204 only to a response it recomputed. */
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "delivered");
	ck_assert_int_eq(row.attempts, 1);
	requests = tu_receiver_requests(&env.rx);
	ck_assert_int_eq(tu_count(requests, "=== REQUEST"), 2);
	second = strstr(requests, "=== REQUEST 2 ");
	ck_assert_ptr_nonnull(second);
	ck_assert_ptr_nonnull(strstr(second, "\r\nAuthorization: Digest username=\"relay\""));
	ck_assert_ptr_nonnull(strstr(second, "uri=\"/digest/relay/s3cret-pw\""));
	ck_assert_ptr_null(strstr(requests, "Basic "));
	free(requests);
	tu_env_close(&env);
}
END_TEST

START_TEST(digest_with_a_wrong_password_is_refused)
{
	struct tu_env env;
	char *requests;
	int64_t id;
	struct tu_row row;

	tu_env_open(&env, "digest_wrong");
	tu_provision(&env, "default", "/digest/relay/s3cret-pw", "application/json");
	credentials(&env, "relay", "not-the-password");
	id = tu_produce(&env, NULL, NULL, NULL);
	free(run_once(&env));
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "failed");
	ck_assert_int_eq(row.http_status, 401);
	requests = tu_receiver_requests(&env.rx);
	ck_assert_int_eq(tu_count(requests, "Authorization: Digest "), 1);
	free(requests);
	tu_env_close(&env);
}
END_TEST

/* ---- signing ------------------------------------------------------------- */

#define SECRET_A "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SECRET_B "whsec_c2VjcmV0LW51bWJlci10d28tZm9yLXJvdGF0aW9u"
#define SECRET_OTHER "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"

/* Runs tests/verify_webhook.py (tests run from the top of the tree). */
static int verify_with_python(const char *secrets, const char *record,
			      char **out)
{
	char *argv[] = {
		(char *)"/usr/bin/env", (char *)"python3",
		(char *)"tests/verify_webhook.py", (char *)secrets,
		(char *)record, NULL,
	};

	return tu_run(argv, RUN_TIMEOUT_MS, out, NULL);
}

START_TEST(signed_requests_verify_independently)
{
	struct tu_env env;
	char *requests, *out = NULL, *err, *show = NULL, expected[64];
	int64_t first, second, before = time(NULL), after, stamp;
	const char *ts;

	tu_env_open(&env, "signing");
	tu_provision(&env, "default", "/notify", "application/json");
	/* Two secrets: a receiver rotating from one to the other. */
	tu_config_set(&env, "default", "smartContactNotificationSigningSecret",
		   SECRET_A " " SECRET_B);
	first = tu_produce(&env, NULL, NULL, NULL);
	second = tu_produce(&env, NULL, NULL, NULL);
	err = run_once(&env);
	after = time(NULL);
	ck_assert_ptr_null(strstr(err, "MfKQ9r8G"));
	free(err);
	ck_assert_str_eq(tu_fetch(&env, first).status, "delivered");
	ck_assert_str_eq(tu_fetch(&env, second).status, "delivered");

	requests = tu_receiver_requests(&env.rx);
	ck_assert_int_eq(tu_count(requests, "=== REQUEST"), 2);
	ck_assert_int_eq(tu_count(requests, "\r\nwebhook-timestamp: "), 2);
	ck_assert_int_eq(tu_count(requests, "\r\nwebhook-signature: v1,"), 2);
	/* One signature per secret, separated by a space. */
	ck_assert_int_eq(tu_count(requests, "= v1,"), 2);
	ts = strstr(requests, "\r\nwebhook-timestamp: ");
	stamp = strtoll(ts + strlen("\r\nwebhook-timestamp: "), NULL, 10);
	ck_assert_int_ge(stamp, before);
	ck_assert_int_le(stamp, after);
	snprintf(expected, sizeof(expected), "\r\nwebhook-id: %lld\r\n",
		 (long long)first);
	ck_assert_ptr_nonnull(strstr(requests, expected));
	free(requests);

	ck_assert_int_eq(verify_with_python(SECRET_A " " SECRET_B,
					    env.rx.record_path, &out), 0);
	ck_assert_int_eq(tu_count(out, "verified id="), 2);
	free(out);
	/* The check can fail: another secret does not verify. */
	ck_assert_int_eq(verify_with_python(SECRET_OTHER, env.rx.record_path,
					    &out), 1);
	ck_assert_int_eq(tu_count(out, "BAD id="), 2);
	free(out);

	/* The secret is masked like a password. */
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &show, NULL, "config",
				       env.db, "show", NULL), 0);
	ck_assert_ptr_nonnull(strstr(show, "smartContactNotificationSigningSecret = ********"));
	ck_assert_ptr_null(strstr(show, "whsec_"));
	free(show);
	tu_env_close(&env);
}
END_TEST

START_TEST(bad_secret_is_a_config_error)
{
	struct tu_env env;
	struct tu_row row;
	char *err;
	int64_t id;

	tu_env_open(&env, "badsecret");
	tu_provision(&env, "default", "/notify", "application/json");
	tu_config_set(&env, "default", "smartContactNotificationSigningSecret",
		   SECRET_A " whsec_c2hvcnQ=");
	id = tu_produce(&env, NULL, NULL, NULL);
	err = run_once(&env);
	ck_assert_msg(strstr(err, "key=smartContactNotificationSigningSecret: "
			     "secret 2") != NULL, "stderr: %s", err);
	ck_assert_ptr_null(strstr(err, "MfKQ9r8G"));
	ck_assert_ptr_null(strstr(err, "c2hvcnQ"));
	free(err);
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(row.attempts, 0);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 1, 0), 0);
	tu_env_close(&env);
}
END_TEST

/* ---- endpoint protection ----------------------------------------------------- */

/* Arrival times (ms) of the requests the receiver logged, in order. */
static size_t arrivals(const struct tu_receiver *rx, int64_t *ms, size_t max)
{
	char *ids = tu_read_file(rx->ids_path, NULL);
	char *line = ids;
	size_t n = 0;

	while (line && *line && n < max) {
		char id[64];
		int status;
		long long at;

		ck_assert_int_eq(sscanf(line, "%63s %d %lld", id, &status, &at), 3);
		ms[n++] = at;
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	free(ids);
	return n;
}

START_TEST(max_concurrency_one_sends_one_at_a_time)
{
	struct tu_env env;
	int64_t at[3];

	tu_env_open(&env, "maxconc");
	/* Each answer takes 300 ms: with one request at a time, each
	 * arrives after the previous one was answered. */
	tu_provision(&env, "default", "/slow/300", "application/json");
	tu_config_set(&env, "default", "smartContactNotificationMaxConcurrency", "1");
	for (int i = 0; i < 3; i++)
		tu_produce(&env, NULL, NULL, NULL);
	free(run_once(&env));
	ck_assert_uint_eq(arrivals(&env.rx, at, 3), 3);
	ck_assert_int_ge(at[1] - at[0], 290);
	ck_assert_int_ge(at[2] - at[1], 290);
	tu_env_close(&env);
}
END_TEST

START_TEST(max_rate_spaces_requests)
{
	struct tu_env env;
	int64_t at[5];
	int64_t ids[5];

	tu_env_open(&env, "maxrate");
	tu_provision(&env, "default", "/notify", "application/json");
	/* Two at once (a second's worth), then one every half second. */
	tu_config_set(&env, "default", "smartContactNotificationMaxRate", "2");
	for (int i = 0; i < 5; i++)
		ids[i] = tu_produce(&env, NULL, NULL, NULL);
	free(run_once(&env));
	ck_assert_uint_eq(arrivals(&env.rx, at, 5), 5);
	ck_assert_int_ge(at[4] - at[0], 1400);
	for (int i = 0; i < 5; i++)
		ck_assert_str_eq(tu_fetch(&env, ids[i]).status, "delivered");
	tu_env_close(&env);
}
END_TEST

static int64_t total_attempts(struct tu_env *env, const int64_t *ids, int n)
{
	int64_t total = 0;

	for (int i = 0; i < n; i++)
		total += tu_fetch(env, ids[i]).attempts;
	return total;
}

/* Waits at most timeout_ms until the file holds text. */
static int file_has(const char *path, const char *text, int timeout_ms)
{
	for (int waited = 0;; waited += 20) {
		char *content = tu_read_file(path, NULL);
		int found = content && strstr(content, text);

		free(content);
		if (found || waited >= timeout_ms)
			return found;
		tu_sleep_ms(20);
	}
}

START_TEST(breaker_pauses_a_dead_endpoint_only)
{
	struct tu_env env;
	struct tu_receiver dead;
	char *dead_dir, *dead_url, *log_path;
	int64_t a[8], b[5], before, after;
	pid_t pid;

	tu_env_open(&env, "breaker");
	/* A receiver started and stopped: nothing listens on its port. */
	dead_dir = tu_path(env.dir, "dead");
	ck_assert_int_eq(mkdir(dead_dir, 0700), 0);
	tu_receiver_start(&dead, dead_dir);
	dead_url = tu_receiver_url(&dead, "/");
	tu_receiver_stop(&dead);
	tu_config_set(&env, "appA", "smartContactNotificationUrl", dead_url);
	tu_config_set(&env, "appA", "smartContactNotificationContentType",
		   "application/json");
	tu_provision(&env, "appB", "/notify", "application/json");
	for (int i = 0; i < 8; i++)
		a[i] = tu_produce(&env, "appA", NULL, NULL);
	for (int i = 0; i < 5; i++)
		b[i] = tu_produce(&env, "appB", NULL, NULL);

	log_path = tu_path(env.dir, "daemon.log");
	{
		/* Retries fall due every 0.1 s at most: without the breaker
		 * app A would be tried about ten times a second per event. */
		char *argv[] = {
			getenv("SMARTRELAY_BIN"), (char *)"run", env.db,
			(char *)"--retry-base", (char *)"0.05",
			(char *)"--retry-max", (char *)"0.1", NULL,
		};
		pid = tu_spawn(argv, NULL, log_path);
	}
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 5, 10000), 5);
	ck_assert_msg(file_has(log_path, "endpoint paused cloud_id=appA", 10000),
		      "no breaker in the log");
	/* The log line comes before the outcomes are written: wait for the
	 * first attempt of every event of app A to be recorded. */
	for (int waited = 0; total_attempts(&env, a, 8) < 8 && waited < 10000;
	     waited += 20)
		tu_sleep_ms(20);
	before = total_attempts(&env, a, 8);
	ck_assert_int_ge(before, 8);
	tu_sleep_ms(1000);
	after = total_attempts(&env, a, 8);
	/* At most one probe got through meanwhile. */
	ck_assert_msg(after - before <= 1, "attempts grew from %lld to %lld",
		      (long long)before, (long long)after);
	kill(pid, SIGTERM);
	ck_assert_int_eq(tu_wait(pid, 5000), 0);

	for (int i = 0; i < 5; i++)
		ck_assert_str_eq(tu_fetch(&env, b[i]).status, "delivered");
	for (int i = 0; i < 8; i++)
		ck_assert_str_eq(tu_fetch(&env, a[i]).status, "pending");
	ck_assert_int_lt(total_attempts(&env, a, 8), 8 * 3);
	ck_assert_int_eq(file_has(log_path, "endpoint paused cloud_id=appB", 0), 0);
	free(log_path);
	free(dead_url);
	free(dead_dir);
	tu_env_close(&env);
}
END_TEST

/* Every event fails once, then succeeds: the breaker opens on the first
 * five failures, one probe succeeds after the pause, and the rest follow;
 * no event spent an attempt while the endpoint was paused. */
START_TEST(breaker_closes_when_the_probe_succeeds)
{
	struct tu_env env;
	char *log_path;
	int64_t ids[5];
	pid_t pid;

	tu_env_open(&env, "breaker_close");
	tu_provision(&env, "default", "/seq/503,204", "application/json");
	for (int i = 0; i < 5; i++)
		ids[i] = tu_produce(&env, NULL, NULL, NULL);
	log_path = tu_path(env.dir, "daemon.log");
	{
		char *argv[] = {
			getenv("SMARTRELAY_BIN"), (char *)"run", env.db,
			(char *)"--retry-base", (char *)"0.05",
			(char *)"--retry-max", (char *)"0.1", NULL,
		};
		pid = tu_spawn(argv, NULL, log_path);
	}
	/* Five 503s, then a 204 per event once the pause is over. */
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 10, 30000), 10);
	ck_assert_msg(file_has(log_path, "endpoint answers again cloud_id=default",
			       5000), "breaker never closed");
	kill(pid, SIGTERM);
	ck_assert_int_eq(tu_wait(pid, 5000), 0);
	ck_assert(file_has(log_path, "endpoint paused cloud_id=default", 0));
	ck_assert(file_has(log_path, "probing paused endpoint cloud_id=default", 0));
	for (int i = 0; i < 5; i++) {
		struct tu_row row = tu_fetch(&env, ids[i]);

		ck_assert_str_eq(row.status, "delivered");
		ck_assert_int_eq(row.attempts, 2);
	}
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 11, 0), 10);
	free(log_path);
	tu_env_close(&env);
}
END_TEST

/* ---- retry policy --------------------------------------------------------- */

START_TEST(max_attempts_per_app)
{
	struct tu_env env;
	struct tu_row row;
	int64_t id;

	tu_env_open(&env, "maxattempts");
	tu_provision(&env, "default", "/status/503", "application/json");
	tu_config_set(&env, "default", "smartContactNotificationMaxAttempts", "1");
	id = tu_produce(&env, NULL, NULL, NULL);
	free(run_once(&env));
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "failed");
	ck_assert_int_eq(row.attempts, 1);
	ck_assert_int_eq(row.http_status, 503);
	tu_env_close(&env);
}
END_TEST

/* A running relay sends a retry when it falls due, with nothing else
 * happening in the database meanwhile. */
START_TEST(daemon_retries_when_due)
{
	struct tu_env env;
	struct tu_row row;
	int64_t id;
	pid_t pid;

	tu_env_open(&env, "daemon_retry");
	tu_provision(&env, "default", "/seq/503,204", "application/json");
	id = tu_produce(&env, NULL, NULL, NULL);
	{
		char *argv[] = {
			getenv("SMARTRELAY_BIN"), (char *)"run", env.db,
			(char *)"--retry-base", (char *)"0.2", NULL,
		};
		pid = tu_spawn(argv, NULL, NULL);
	}
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 2, 10000), 2);
	kill(pid, SIGTERM);
	ck_assert_int_eq(tu_wait(pid, 5000), 0);
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "delivered");
	ck_assert_int_eq(row.attempts, 2);
	tu_env_close(&env);
}
END_TEST

START_TEST(retry_schedule_per_app)
{
	struct tu_env env;
	struct tu_row row;
	int64_t id, before = time_now_ms(), next;

	tu_env_open(&env, "schedule");
	tu_provision(&env, "default", "/status/503", "application/json");
	tu_config_set(&env, "default", "smartContactNotificationRetrySchedule",
		   "42,600");
	id = tu_produce(&env, NULL, NULL, NULL);
	free(run_once(&env));
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(time_parse(row.next_attempt_at, &next), 0);
	/* 42 s, jittered by a quarter either way; not --retry-base's 5 s. */
	ck_assert_int_ge(next - before, 31500);
	ck_assert_int_le(next - before, 60000);
	tu_env_close(&env);
}
END_TEST

/* ---- the address guard ------------------------------------------------------ */

/* `smartrelay run --once --deny-private [--allow-private LIST] DB`. */
static void run_denying(struct tu_env *env, const char *allow)
{
	char *err = NULL;
	int status = allow
		? tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run", "--once",
				"--deny-private", "--allow-private", allow,
				env->db, NULL)
		: tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run", "--once",
				"--deny-private", env->db, NULL);

	ck_assert_msg(status == 0, "run exited %d: %s", status, err);
	free(err);
}

START_TEST(deny_private_refuses_loopback)
{
	struct tu_env env;
	struct tu_row row;
	int64_t id;

	tu_env_open(&env, "deny");
	tu_provision(&env, "default", "/notify", "application/json");
	id = tu_produce(&env, NULL, NULL, NULL);
	run_denying(&env, NULL);
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(row.attempts, 1);
	ck_assert_msg(strstr(row.error, "refused to connect: 127.0.0.1 is a "
			     "loopback address") != NULL, "error: %s", row.error);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 1, 0), 0);
	tu_env_close(&env);
}
END_TEST

/* The check is on the address connected to: a name is resolved first. */
START_TEST(deny_private_refuses_a_name_of_loopback)
{
	struct tu_env env;
	struct tu_row row;
	char url[128];
	int64_t id;

	tu_env_open(&env, "deny_name");
	snprintf(url, sizeof(url), "http://localhost:%d/notify", env.rx.port);
	tu_config_set(&env, "default", "smartContactNotificationUrl", url);
	tu_config_set(&env, "default", "smartContactNotificationContentType",
		   "application/json");
	id = tu_produce(&env, NULL, NULL, NULL);
	run_denying(&env, NULL);
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_msg(strstr(row.error, "loopback") != NULL, "error: %s",
		      row.error);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 1, 0), 0);
	tu_env_close(&env);
}
END_TEST

START_TEST(allow_private_lets_listed_addresses_through)
{
	struct tu_env env;
	int64_t id;

	tu_env_open(&env, "allow");
	tu_provision(&env, "default", "/notify", "application/json");
	id = tu_produce(&env, NULL, NULL, NULL);
	run_denying(&env, "10.0.0.0/8,127.0.0.1");
	ck_assert_str_eq(tu_fetch(&env, id).status, "delivered");
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 1, 0), 1);
	tu_env_close(&env);
}
END_TEST

START_TEST(address_options_are_checked)
{
	static const char *const cases[][3] = {
		{ "--allow-private", "127.0.0.1", NULL },
		{ "--deny-private", "--allow-private", "127.0.0.1/40" },
		{ "--deny-private", "--allow-private", "localhost" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *err = NULL;
		int status = tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run",
					   "x.db", cases[i][0], cases[i][1],
					   cases[i][2], NULL);

		ck_assert_msg(status == 2, "case %zu: exit %d", i, status);
		ck_assert_msg(strstr(err, "--allow-private") != NULL,
			      "case %zu: %s", i, err);
		free(err);
	}
}
END_TEST

static Suite *receivers_suite(void)
{
	Suite *s = suite_create("receivers");
	TCase *method = tcase_create("method");
	TCase *headers = tcase_create("headers and auth");
	TCase *signing = tcase_create("signing");
	TCase *protection = tcase_create("protection");
	TCase *retry = tcase_create("retry policy");
	TCase *addresses = tcase_create("addresses");

	tcase_set_timeout(method, 60);
	tcase_add_test(method, method_put_sends_put);
	tcase_add_test(method, method_post_is_the_default);
	tcase_add_test(method, method_get_is_a_config_error);
	tcase_set_timeout(headers, 60);
	tcase_add_test(headers, custom_headers_are_sent_exactly);
	tcase_add_test(headers, basic_auth_answers_the_challenge);
	tcase_add_test(headers, digest_auth_verifies);
	tcase_add_test(headers, digest_with_a_wrong_password_is_refused);
	tcase_set_timeout(signing, 60);
	tcase_add_test(signing, signed_requests_verify_independently);
	tcase_add_test(signing, bad_secret_is_a_config_error);
	suite_add_tcase(s, method);
	tcase_set_timeout(protection, 60);
	tcase_add_test(protection, max_concurrency_one_sends_one_at_a_time);
	tcase_add_test(protection, max_rate_spaces_requests);
	tcase_add_test(protection, breaker_pauses_a_dead_endpoint_only);
	tcase_add_test(protection, breaker_closes_when_the_probe_succeeds);
	tcase_set_timeout(retry, 60);
	tcase_add_test(retry, daemon_retries_when_due);
	tcase_add_test(retry, max_attempts_per_app);
	tcase_add_test(retry, retry_schedule_per_app);
	tcase_set_timeout(addresses, 60);
	tcase_add_test(addresses, deny_private_refuses_loopback);
	tcase_add_test(addresses, deny_private_refuses_a_name_of_loopback);
	tcase_add_test(addresses, allow_private_lets_listed_addresses_through);
	tcase_add_test(addresses, address_options_are_checked);
	suite_add_tcase(s, headers);
	suite_add_tcase(s, addresses);
	suite_add_tcase(s, protection);
	suite_add_tcase(s, retry);
	suite_add_tcase(s, signing);
	return s;
}

int main(void)
{
	SRunner *runner = srunner_create(receivers_suite());
	int failed;

	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
