/*
 * test_observe.c - what an operator sees of the real daemon: GET /metrics
 * scraped while it delivers to the real receiver, the errors of a bad
 * --metrics-listen, and the key=value lines it logs per attempt and per
 * change of an event's state.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "store.h"
#include "testutil.h"

#define RUN_TIMEOUT_MS 20000

static const char parties[] =
	"[{\"username\":\"eric\",\"device\":\"erics_iphone\"}]";

/* The shared fixture and the daemon's log. */
struct env {
	struct tu_env tu;
	char *log;
};

static void env_open(struct env *env, const char *name)
{
	tu_env_open(&env->tu, name);
	env->log = tu_path(env->tu.dir, "daemon.log");
}

static void env_close(struct env *env)
{
	free(env->log);
	tu_env_close(&env->tu);
}

/* The port the daemon logged it listens on for metrics. */
static int metrics_port_from_log(const char *log_path)
{
	for (int waited = 0; waited < 5000; waited += 10) {
		char *text = tu_read_file(log_path, NULL);
		const char *line = text ? strstr(text, "metrics listening on ") : NULL;
		const char *port = line ? strstr(line, " port=") : NULL;
		long value = port ? strtol(port + strlen(" port="), NULL, 10) : 0;

		free(text);
		if (value > 0)
			return (int)value;
		tu_sleep_ms(10);
	}
	ck_abort_msg("the daemon did not log its metrics port (see %s)", log_path);
	return 0;
}

/* The whole line, or NULL. */
static const char *find_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = strstr(text, line); p; p = strstr(p + 1, line))
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return p;
	return NULL;
}

/*
 * Scrapes until every line of want is in the answer (the queue depth may be
 * a second old, outcomes are counted as they are reaped); fails naming the
 * first line still missing after 5 s. Returns the last scrape.
 */
static char *scrape_until(int port, const char *const *want, size_t n)
{
	const char *missing = NULL;
	char *body = NULL;

	for (int waited = 0; waited < 5000; waited += 50) {
		int status = 0;

		free(body);
		body = tu_http_request(port, "GET", "/metrics", &status);
		ck_assert_int_eq(status, 200);
		missing = NULL;
		for (size_t i = 0; i < n && !missing; i++)
			if (!find_line(body, want[i]))
				missing = want[i];
		if (!missing)
			return body;
		tu_sleep_ms(50);
	}
	ck_abort_msg("no line '%s' in:\n%s", missing, body);
	return NULL;
}

START_TEST(scrape_counts_deliveries_failures_and_config)
{
	static const char *const want[] = {
		"smartrelay_attempts_total{cloud_id=\"default\",outcome=\"delivered\",transport=\"ok\",status=\"204\"} 2",
		"smartrelay_attempts_total{cloud_id=\"bad\",outcome=\"failed\",transport=\"ok\",status=\"404\"} 1",
		"smartrelay_attempts_total{cloud_id=\"gone\",outcome=\"gone\",transport=\"ok\",status=\"410\"} 1",
		"smartrelay_events_claimed_total{cloud_id=\"default\"} 2",
		"smartrelay_events_claimed_total{cloud_id=\"bad\"} 2",
		"smartrelay_events_unrenderable_total{cloud_id=\"bad\"} 1",
		"smartrelay_delivery_latency_seconds_count{cloud_id=\"default\"} 2",
		"smartrelay_delivery_latency_seconds_bucket{cloud_id=\"default\",le=\"+Inf\"} 2",
		"smartrelay_queue_events{cloud_id=\"broken\",status=\"pending\"} 1",
		"smartrelay_queue_events{cloud_id=\"default\",status=\"pending\"} 0",
		"smartrelay_queue_events{cloud_id=\"default\",status=\"sending\"} 0",
		"smartrelay_config_error{cloud_id=\"broken\"} 1",
		"smartrelay_config_errors_total{cloud_id=\"broken\"} 1",
		"smartrelay_config_error{cloud_id=\"default\"} 0",
		"smartrelay_endpoint_disabled{cloud_id=\"gone\"} 1",
		"smartrelay_endpoint_disabled{cloud_id=\"default\"} 0",
		"smartrelay_transfers_in_flight 0",
	};
	struct env env;
	char *body, port_text[32];
	char *argv[] = {
		getenv("SMARTRELAY_BIN"), (char *)"run", NULL,
		(char *)"--metrics-listen", (char *)"127.0.0.1:0", NULL,
	};
	int port, status = 0;
	pid_t pid;

	env_open(&env, "observe_scrape");
	tu_provision(&env.tu, "default", "/", "application/json");
	tu_provision(&env.tu, "bad", "/status/404", "application/json");
	tu_provision(&env.tu, "gone", "/status/410", "application/json");
	tu_config_set(&env.tu, "broken", "smartContactNotificationContentType",
		   "application/json");
	tu_produce(&env.tu, "default", NULL, parties);
	tu_produce(&env.tu, "default", NULL, parties);
	tu_produce(&env.tu, "bad", NULL, parties);
	tu_produce(&env.tu, "bad", NULL, "[1]");         /* cannot be rendered */
	tu_produce(&env.tu, "gone", NULL, parties);
	tu_produce(&env.tu, "broken", NULL, parties);     /* waits: no URL */
	argv[2] = env.tu.db;
	pid = tu_spawn(argv, NULL, env.log);
	port = metrics_port_from_log(env.log);
	ck_assert_int_eq(tu_receiver_wait_count(&env.tu.rx, 4, 5000), 4);

	body = scrape_until(port, want, sizeof(want) / sizeof(want[0]));
	ck_assert_ptr_nonnull(strstr(body, "\nsmartrelay_oldest_pending_age_seconds{cloud_id=\"broken\"} "));
	ck_assert_int_eq(tu_count(body, "# TYPE smartrelay_attempts_total counter\n"), 1);
	ck_assert_int_eq(tu_count(body, "# HELP "), tu_count(body, "# TYPE "));
	/* Nothing was retried, so no retry series exists. */
	ck_assert_ptr_null(strstr(body, "outcome=\"retry\""));
	free(body);

	body = tu_http_request(port, "GET", "/", &status);
	ck_assert_int_eq(status, 404);
	free(body);
	body = tu_http_request(port, "DELETE", "/metrics", &status);
	ck_assert_int_eq(status, 405);
	free(body);

	kill(pid, SIGTERM);
	ck_assert_int_eq(tu_wait(pid, 5000), 0);
	snprintf(port_text, sizeof(port_text), "port=%d", port);
	body = tu_read_file(env.log, NULL);
	ck_assert_ptr_nonnull(strstr(body, port_text));
	free(body);
	env_close(&env);
}
END_TEST

/* The daemon wakes for its own retries, and counts each attempt. */
START_TEST(daemon_retries_when_due_and_counts_them)
{
	static const char *const want[] = {
		"smartrelay_attempts_total{cloud_id=\"default\",outcome=\"retry\",transport=\"ok\",status=\"503\"} 2",
		"smartrelay_attempts_total{cloud_id=\"default\",outcome=\"failed\",transport=\"ok\",status=\"503\"} 1",
		"smartrelay_events_claimed_total{cloud_id=\"default\"} 3",
	};
	struct env env;
	char *body;
	char *argv[] = {
		getenv("SMARTRELAY_BIN"), (char *)"run", NULL,
		(char *)"--metrics-listen", (char *)"127.0.0.1:0",
		(char *)"--retry-base", (char *)"0.05", (char *)"--max-attempts",
		(char *)"3", NULL,
	};
	int port;
	pid_t pid;

	env_open(&env, "observe_retry");
	tu_provision(&env.tu, "default", "/status/503", "application/json");
	tu_produce(&env.tu, "default", NULL, parties);
	argv[2] = env.tu.db;
	pid = tu_spawn(argv, NULL, env.log);
	port = metrics_port_from_log(env.log);
	ck_assert_int_eq(tu_receiver_wait_count(&env.tu.rx, 3, 10000), 3);
	body = scrape_until(port, want, sizeof(want) / sizeof(want[0]));
	free(body);
	kill(pid, SIGTERM);
	ck_assert_int_eq(tu_wait(pid, 5000), 0);
	env_close(&env);
}
END_TEST

START_TEST(bad_metrics_listen_is_usage_error)
{
	static const char *const bad[] = {
		"9100", "localhost", "127.0.0.1:http", "127.0.0.1:70000", "::1:9100",
	};
	char *dir = tu_tmpdir("observe_usage");
	char *db = tu_path(dir, "relay.db");

	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, NULL, "init", db,
				       NULL), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *err = NULL;
		int status = tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run", db,
					   "--metrics-listen", bad[i], NULL);

		ck_assert_msg(status == 2, "%s: exit %d", bad[i], status);
		ck_assert_msg(strstr(err, "--metrics-listen") && strstr(err, bad[i]),
			      "%s: %s", bad[i], err);
		free(err);
	}
	free(db);
	free(dir);
}
END_TEST

START_TEST(metrics_port_in_use_is_runtime_error)
{
	struct sockaddr_in addr;
	socklen_t len = sizeof(addr);
	char *dir = tu_tmpdir("observe_in_use");
	char *db = tu_path(dir, "relay.db");
	char *err = NULL, address[64];
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
	snprintf(address, sizeof(address), "127.0.0.1:%d", ntohs(addr.sin_port));

	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, NULL, "init", db,
				       NULL), 0);
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run", db,
				       "--metrics-listen", address, NULL), 1);
	ck_assert_int_eq(tu_count(err, "\n"), 1);
	ck_assert_msg(strstr(err, address) && strstr(err, "in use"), "%s", err);
	free(err);
	close(fd);
	free(db);
	free(dir);
}
END_TEST

/* ---- the log ------------------------------------------------------------- */

/*
 * Checks that the message of a log line is word then exactly the keys
 * given, in order, as key=value (a value in double quotes when it may hold
 * spaces), with nothing after. A key ending in '#' must have a whole number.
 */
static void line_has_fields(const char *line, const char *word,
			    const char *const *keys, size_t n)
{
	const char *p = strchr(line, ' ');

	/* "<time> <level> <word> ..." */
	ck_assert_msg(p && p - line == 24 && line[23] == 'Z', "no time: %s", line);
	p = strchr(p + 1, ' ');
	ck_assert_ptr_nonnull(p);
	p++;
	ck_assert_msg(strncmp(p, word, strlen(word)) == 0 && p[strlen(word)] == ' ',
		      "not '%s': %s", word, line);
	p += strlen(word);
	for (size_t i = 0; i < n; i++) {
		size_t klen = strcspn(keys[i], "#");
		int number = keys[i][klen] == '#';
		const char *end;

		ck_assert_msg(*p == ' ' && strncmp(p + 1, keys[i], klen) == 0 &&
			      p[1 + klen] == '=', "no %.*s= at '%s' in: %s",
			      (int)klen, keys[i], p, line);
		p += 2 + klen;
		if (*p == '"') {
			end = strchr(p + 1, '"');
			ck_assert_msg(end != NULL, "unclosed quote: %s", line);
			end++;
		} else {
			end = p + strcspn(p, " \n");
			ck_assert_msg(end > p, "empty %s: %s", keys[i], line);
		}
		if (number)
			ck_assert_msg(strspn(p, "0123456789") == (size_t)(end - p),
				      "%s is not a number: %s", keys[i], line);
		p = end;
	}
	ck_assert_msg(*p == '\n' || *p == '\0', "more after the fields: %s", line);
}

/* The first line of text holding needle, as a new string with its '\n'. */
static char *line_with(const char *text, const char *needle)
{
	const char *hit = strstr(text, needle), *start, *end;
	char *line;

	ck_assert_msg(hit != NULL, "no '%s' in:\n%s", needle, text);
	for (start = hit; start > text && start[-1] != '\n'; start--)
		;
	end = strchr(hit, '\n');
	ck_assert_ptr_nonnull(end);
	line = strndup(start, (size_t)(end - start + 1));
	ck_assert_ptr_nonnull(line);
	return line;
}

START_TEST(log_lines_are_key_value)
{
	static const char *const delivered[] = {
		"id#", "cloud_id", "attempt#", "outcome", "status#", "duration_ms#",
	};
	static const char *const failed[] = {
		"id#", "cloud_id", "attempt#", "outcome", "status#", "duration_ms#",
		"error",
	};
	static const char *const unrenderable[] = {
		"id#", "cloud_id", "outcome", "error",
	};
	struct env env;
	char *err = NULL, *line, needle[64];
	int64_t ok_id, bad_id, broken_id;

	env_open(&env, "observe_log");
	tu_provision(&env.tu, "default", "/", "application/json");
	tu_provision(&env.tu, "bad", "/status/503", "application/json");
	ok_id = tu_produce(&env.tu, "default", NULL, parties);
	bad_id = tu_produce(&env.tu, "bad", NULL, parties);
	broken_id = tu_produce(&env.tu, "default", NULL, "[{\"username\":1}]");
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run",
				       "--once", env.tu.db, NULL), 0);

	snprintf(needle, sizeof(needle), " attempt id=%lld ", (long long)ok_id);
	line = line_with(err, needle);
	line_has_fields(line, "attempt", delivered, 6);
	ck_assert_ptr_nonnull(strstr(line, " info attempt "));
	ck_assert_ptr_nonnull(strstr(line, " cloud_id=default attempt=1 outcome=delivered status=204 "));
	free(line);

	snprintf(needle, sizeof(needle), " attempt id=%lld ", (long long)bad_id);
	line = line_with(err, needle);
	line_has_fields(line, "attempt", failed, 7);
	ck_assert_ptr_nonnull(strstr(line, " warn attempt "));
	ck_assert_ptr_nonnull(strstr(line, " cloud_id=bad attempt=1 outcome=retry status=503 "));
	ck_assert_ptr_nonnull(strstr(line, " error=\"HTTP 503\""));
	free(line);

	snprintf(needle, sizeof(needle), " event failed id=%lld ",
		 (long long)broken_id);
	line = line_with(err, needle);
	line_has_fields(line, "event failed", unrenderable, 4);
	ck_assert_ptr_nonnull(strstr(line, " outcome=unrenderable "));
	free(line);

	/* Debug lines only with -v: the claim of each event. */
	ck_assert_ptr_null(strstr(err, " debug "));
	free(err);
	ok_id = tu_produce(&env.tu, "default", NULL, parties);
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run",
				       "--once", "-v", env.tu.db, NULL), 0);
	snprintf(needle, sizeof(needle), " debug sending id=%lld ",
		 (long long)ok_id);
	line = line_with(err, needle);
	line_has_fields(line, "sending", (const char *const[]){
		"id#", "cloud_id", "attempt#", "bytes#" }, 4);
	free(line);
	free(err);
	env_close(&env);
}
END_TEST

START_TEST(log_names_each_cancelled_event)
{
	struct env env;
	char *text, needle[64];
	char *argv[] = {
		getenv("SMARTRELAY_BIN"), (char *)"run", NULL,
		(char *)"--grace", (char *)"0.1", NULL,
	};
	int64_t id;
	pid_t pid;

	env_open(&env, "observe_cancel");
	tu_provision(&env.tu, "default", "/slow/5000", "application/json");
	id = tu_produce(&env.tu, "default", NULL, parties);
	argv[2] = env.tu.db;
	pid = tu_spawn(argv, NULL, env.log);
	ck_assert_int_eq(tu_receiver_wait_count(&env.tu.rx, 1, 5000), 1);
	kill(pid, SIGTERM);
	ck_assert_int_eq(tu_wait(pid, 5000), 0);
	text = tu_read_file(env.log, NULL);
	snprintf(needle, sizeof(needle), " info cancelled id=%lld cloud_id=default: ",
		 (long long)id);
	ck_assert_msg(strstr(text, needle) != NULL, "no '%s' in:\n%s", needle, text);
	ck_assert_ptr_nonnull(strstr(text, "put back 1 events"));
	free(text);
	env_close(&env);
}
END_TEST

static Suite *observe_suite(void)
{
	Suite *s = suite_create("observe");
	TCase *metrics = tcase_create("metrics");
	TCase *log = tcase_create("log");

	tcase_set_timeout(metrics, 60);
	tcase_set_timeout(log, 60);
	tcase_add_test(metrics, scrape_counts_deliveries_failures_and_config);
	tcase_add_test(metrics, daemon_retries_when_due_and_counts_them);
	tcase_add_test(metrics, bad_metrics_listen_is_usage_error);
	tcase_add_test(metrics, metrics_port_in_use_is_runtime_error);
	tcase_add_test(log, log_lines_are_key_value);
	tcase_add_test(log, log_names_each_cancelled_event);
	suite_add_tcase(s, metrics);
	suite_add_tcase(s, log);
	return s;
}

int main(void)
{
	SRunner *runner = srunner_create(observe_suite());
	int failed;

	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
