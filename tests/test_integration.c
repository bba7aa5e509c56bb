/*
 * test_integration.c - the real binary against the real receiver.
 *
 * Every test makes a fresh database with `smartrelay init`, provisions it
 * with `smartrelay config`, produces events through the store (the same
 * INSERT a producer makes), runs `smartrelay run`, and then checks the exact
 * bytes the receiver got and the rows the relay wrote.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"
#include "timeutil.h"

#define RUN_TIMEOUT_MS 20000

static const char two_parties[] =
	"[{\"username\":\"eric\",\"device\":\"erics_iphone\"},"
	"{\"username\":\"madelaine\",\"device\":\"madelaines_android\"}]";

/* `smartrelay run --once DB` plus extra options; returns its stderr. */
static char *run_once(struct tu_env *env, const char *extra1, const char *extra2)
{
	char *err = NULL;
	int status = tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run", "--once",
				   env->db, extra1, extra2, NULL);

	ck_assert_msg(status == 0, "run --once exited %d: %s", status, err);
	return err;
}

/* ---- delivery ----------------------------------------------------------- */

START_TEST(json_app_delivers_exact_request)
{
	struct tu_env env;
	char *requests, *err, expected[512];
	int64_t id;
	struct tu_row row;

	tu_env_open(&env, "json");
	tu_provision(&env, "default", "/notify", "application/json");
	id = tu_produce(&env, NULL, "15551231234", two_parties);
	err = run_once(&env, NULL, NULL);
	free(err);

	requests = tu_receiver_requests(&env.rx);
	ck_assert_int_eq(tu_count(requests, "=== REQUEST"), 1);
	ck_assert_ptr_nonnull(strstr(requests, "POST /notify HTTP/1.1\r\n"));
	ck_assert_ptr_nonnull(strstr(requests, "\r\nContent-Type: application/json\r\n"));
	ck_assert_ptr_nonnull(strstr(requests, "\r\nUser-Agent: smartrelay/"));
	snprintf(expected, sizeof(expected), "\r\nwebhook-id: %lld\r\n", (long long)id);
	ck_assert_ptr_nonnull(strstr(requests, expected));
	ck_assert_ptr_null(strstr(requests, "Expect:"));
	ck_assert_ptr_nonnull(strstr(requests,
		"\r\n\r\n{\n"
		"    \"newSmartNumber\" : \"15551231234\",\n"
		"    \"networkId\" : \"network_1\",\n"
		"    \"newSmartUri\" : \"sip_uri_1\",\n"
		"    \"interestedParties\" : [{\"username\":\"eric\",\"device\":"
		"\"erics_iphone\"},{\"username\":\"madelaine\",\"device\":"
		"\"madelaines_android\"}]\n}"));
	free(requests);

	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "delivered");
	ck_assert_int_eq(row.attempts, 1);
	ck_assert_int_eq(row.http_status, 204);
	ck_assert_int_eq(row.has_error, 0);
	ck_assert_int_eq(strlen(row.delivered_at), TIME_TEXT_SIZE - 1);
	ck_assert_int_eq(row.attempt_rows, 1);
	ck_assert_int_eq(row.last_attempt_status, 204);
	tu_env_close(&env);
}
END_TEST

START_TEST(xml_app_delivers_party_elements)
{
	struct tu_env env;
	char *requests, *err;
	int64_t id;

	tu_env_open(&env, "xml");
	tu_provision(&env, "xmlapp", "/x", "application/xml");
	id = tu_produce(&env, "xmlapp", "+420111222333", two_parties);
	err = run_once(&env, NULL, NULL);
	free(err);
	requests = tu_receiver_requests(&env.rx);
	ck_assert_ptr_nonnull(strstr(requests, "\r\nContent-Type: application/xml\r\n"));
	ck_assert_ptr_nonnull(strstr(requests,
		"<new_smart_number>+420111222333</new_smart_number>"));
	ck_assert_ptr_nonnull(strstr(requests,
		"<interested_parties><interested_party><username>eric</username>"
		"<device>erics_iphone</device></interested_party><interested_party>"
		"<username>madelaine</username><device>madelaines_android</device>"
		"</interested_party></interested_parties>"));
	free(requests);
	ck_assert_str_eq(tu_fetch(&env, id).status, "delivered");
	tu_env_close(&env);
}
END_TEST

/* ---- outcomes ------------------------------------------------------------ */

START_TEST(client_error_is_final)
{
	struct tu_env env;
	struct tu_row row;
	int64_t id;

	tu_env_open(&env, "404");
	tu_provision(&env, "default", "/status/404", "application/json");
	id = tu_produce(&env, NULL, "1", two_parties);
	free(run_once(&env, NULL, NULL));
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "failed");
	ck_assert_int_eq(row.http_status, 404);
	ck_assert_int_eq(row.attempts, 1);
	ck_assert_ptr_nonnull(strstr(row.error, "404"));
	ck_assert_int_eq(row.attempt_rows, 1);
	tu_env_close(&env);
}
END_TEST

START_TEST(ok_200_is_not_delivered)
{
	struct tu_env env;
	struct tu_row row;
	int64_t id;

	tu_env_open(&env, "200");
	tu_provision(&env, "default", "/status/200", "application/json");
	id = tu_produce(&env, NULL, "1", two_parties);
	free(run_once(&env, NULL, NULL));
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "failed");
	ck_assert_int_eq(row.http_status, 200);
	ck_assert_str_eq(row.delivered_at, "");
	tu_env_close(&env);
}
END_TEST

START_TEST(server_error_retries_then_fails)
{
	struct tu_env env;
	struct tu_row row;
	int64_t id, before = time_now_ms(), next;

	tu_env_open(&env, "503");
	tu_provision(&env, "default", "/status/503", "application/json");
	id = tu_produce(&env, NULL, "1", two_parties);
	free(run_once(&env, "--retry-base", "30"));
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(row.attempts, 1);
	ck_assert_int_eq(row.http_status, 503);
	ck_assert_ptr_nonnull(strstr(row.error, "503"));
	/* 30 s with jitter of a quarter either way. */
	ck_assert_int_eq(time_parse(row.next_attempt_at, &next), 0);
	ck_assert_int_ge(next - before, 22000);
	ck_assert_int_le(next - before, 40000);

	/* The retry is not due yet: a second --once leaves it alone. */
	free(run_once(&env, NULL, NULL));
	ck_assert_int_eq(tu_fetch(&env, id).attempts, 1);
	tu_env_close(&env);
}
END_TEST

START_TEST(last_attempt_fails)
{
	struct tu_env env;
	struct tu_row row;
	int64_t id;

	tu_env_open(&env, "maxatt");
	tu_provision(&env, "default", "/status/500", "application/json");
	id = tu_produce(&env, NULL, "1", two_parties);
	free(run_once(&env, "--max-attempts", "1"));
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "failed");
	ck_assert_int_eq(row.attempts, 1);
	ck_assert_int_eq(row.http_status, 500);
	tu_env_close(&env);
}
END_TEST

START_TEST(retry_after_is_honoured)
{
	struct tu_env env;
	struct tu_row row;
	int64_t id, before = time_now_ms(), next;

	tu_env_open(&env, "retryafter");
	tu_provision(&env, "default", "/status/429?retry_after=120", "application/json");
	id = tu_produce(&env, NULL, "1", two_parties);
	free(run_once(&env, "--retry-base", "1"));
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(time_parse(row.next_attempt_at, &next), 0);
	ck_assert_int_ge(next - before, 120000);
	ck_assert_int_le(next - before, 130000);
	tu_env_close(&env);
}
END_TEST

START_TEST(refused_connection_retries)
{
	struct tu_env env;
	struct tu_row row;
	int64_t id;
	int port;

	tu_env_open(&env, "refused");
	port = env.rx.port;
	tu_provision(&env, "default", "/", "application/json");
	/* Nothing listens on the receiver's port once it stopped. */
	tu_receiver_stop(&env.rx);
	id = tu_produce(&env, NULL, "1", two_parties);
	free(run_once(&env, NULL, NULL));
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(row.attempts, 1);
	ck_assert_int_eq(row.http_status, 0);
	ck_assert_msg(strstr(row.error, "connect") != NULL, "error: %s (port %d)",
		      row.error, port);
	ck_assert_int_eq(row.attempt_rows, 1);
	ck_assert_int_eq(row.last_attempt_status, 0);
	free(env.db);
	free(env.dir);
}
END_TEST

START_TEST(timeout_retries)
{
	struct tu_env env;
	struct tu_row row;
	int64_t id;
	char *err = NULL;

	tu_env_open(&env, "timeout");
	tu_provision(&env, "default", "/hang", "application/json");
	id = tu_produce(&env, NULL, "1", two_parties);
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run", "--once",
				       "--timeout", "0.3", env.db, NULL), 0);
	free(err);
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(row.attempts, 1);
	ck_assert_msg(strstr(row.error, "timeout") != NULL, "error: %s", row.error);
	tu_env_close(&env);
}
END_TEST

START_TEST(unrenderable_event_fails_alone)
{
	struct tu_env env;
	struct tu_row bad, good;
	int64_t bad_id, good_id;

	tu_env_open(&env, "unrenderable");
	tu_provision(&env, "default", "/", "application/json");
	bad_id = tu_produce(&env, NULL, "1", "[{\"username\":\"eric\"}]");
	good_id = tu_produce(&env, NULL, "2", two_parties);
	free(run_once(&env, NULL, NULL));
	bad = tu_fetch(&env, bad_id);
	good = tu_fetch(&env, good_id);
	ck_assert_str_eq(bad.status, "failed");
	ck_assert_int_eq(bad.attempts, 0);
	ck_assert_int_eq(bad.attempt_rows, 0);
	ck_assert_ptr_nonnull(strstr(bad.error, "device"));
	ck_assert_str_eq(good.status, "delivered");
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 1, 0), 1);
	tu_env_close(&env);
}
END_TEST

START_TEST(config_error_waits_then_delivers)
{
	struct tu_env env;
	struct tu_row row;
	int64_t id;
	char *err;

	tu_env_open(&env, "configerr");
	tu_config_set(&env, "default", "smartContactNotificationContentType",
		   "text/plain");
	id = tu_produce(&env, NULL, "1", two_parties);
	err = run_once(&env, NULL, NULL);
	ck_assert_msg(strstr(err, "cloud_id=default") &&
		      strstr(err, "smartContactNotification"), "stderr: %s", err);
	free(err);
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(row.attempts, 0);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 1, 0), 0);

	tu_provision(&env, "default", "/", "application/json");
	free(run_once(&env, NULL, NULL));
	ck_assert_str_eq(tu_fetch(&env, id).status, "delivered");
	tu_env_close(&env);
}
END_TEST

START_TEST(gone_disables_endpoint_until_enabled)
{
	struct tu_env env;
	int64_t first, second;
	char *out = NULL;

	tu_env_open(&env, "gone");
	tu_provision(&env, "default", "/status/410", "application/json");
	first = tu_produce(&env, NULL, "1", two_parties);
	free(run_once(&env, NULL, NULL));
	ck_assert_str_eq(tu_fetch(&env, first).status, "failed");
	ck_assert_int_eq(tu_fetch(&env, first).http_status, 410);

	/* Disabled: the next event waits untouched, even with a good URL. */
	tu_provision(&env, "default", "/", "application/json");
	second = tu_produce(&env, NULL, "2", two_parties);
	free(run_once(&env, NULL, NULL));
	ck_assert_str_eq(tu_fetch(&env, second).status, "pending");
	ck_assert_int_eq(tu_fetch(&env, second).attempts, 0);

	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, NULL, "config",
				       env.db, "enable", NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "enabled"));
	free(out);
	free(run_once(&env, NULL, NULL));
	ck_assert_str_eq(tu_fetch(&env, second).status, "delivered");
	tu_env_close(&env);
}
END_TEST

START_TEST(busy_app_does_not_starve_another)
{
	struct tu_env env;
	char *ids, *line;
	int64_t quiet_id;
	char needle[64];
	int position = 0;

	tu_env_open(&env, "fairness");
	tu_provision(&env, "busy", "/", "application/json");
	tu_provision(&env, "quiet", "/", "application/json");
	for (int i = 0; i < 20; i++)
		tu_produce(&env, "busy", "1", two_parties);
	quiet_id = tu_produce(&env, "quiet", "2", two_parties);
	free(run_once(&env, "--concurrency", "1"));
	ck_assert_str_eq(tu_fetch(&env, quiet_id).status, "delivered");

	/* One transfer at a time: the quiet app's event is among the first
	 * few sent, not behind all twenty of the busy app's. */
	ids = tu_read_file(env.rx.ids_path, NULL);
	snprintf(needle, sizeof(needle), "%lld ", (long long)quiet_id);
	for (line = ids; line && *line; line = strchr(line, '\n') + 1) {
		position++;
		if (strncmp(line, needle, strlen(needle)) == 0)
			break;
	}
	ck_assert_int_le(position, 3);
	ck_assert_int_eq(tu_count(ids, "\n"), 21);
	free(ids);
	tu_env_close(&env);
}
END_TEST

/* ---- the daemon ------------------------------------------------------------ */

static pid_t daemon_start(struct tu_env *env, const char *grace)
{
	char *log_path = tu_path(env->dir, "daemon.log");
	char *argv[] = {
		getenv("SMARTRELAY_BIN"), (char *)"run", env->db,
		(char *)"--grace", (char *)grace, NULL,
	};
	pid_t pid = tu_spawn(argv, NULL, log_path);

	free(log_path);
	return pid;
}

START_TEST(daemon_delivers_new_events_and_config_changes)
{
	struct tu_env env;
	int64_t id;
	pid_t pid;

	tu_env_open(&env, "daemon");
	/* Broken at first: the URL is missing. */
	tu_config_set(&env, "default", "smartContactNotificationContentType",
		   "application/json");
	pid = daemon_start(&env, "5");
	id = tu_produce(&env, NULL, "1", two_parties);
	tu_sleep_ms(300);
	ck_assert_int_eq(tu_fetch(&env, id).attempts, 0);

	/* Fixed while it runs: delivered without a restart. */
	tu_provision(&env, "default", "/", "application/json");
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 1, 5000), 1);
	id = tu_produce(&env, NULL, "2", two_parties);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 2, 5000), 2);

	kill(pid, SIGTERM);
	ck_assert_int_eq(tu_wait(pid, 5000), 0);
	ck_assert_str_eq(tu_fetch(&env, id).status, "delivered");
	tu_env_close(&env);
}
END_TEST

/*
 * PostgreSQL only: the server restarts under a running relay, which reports
 * the lost connection, reconnects once it answers, and delivers what was
 * produced meanwhile.
 */
START_TEST(daemon_survives_a_database_restart)
{
	char *restart[] = {
		(char *)"/bin/sh", getenv("SMARTRELAY_PG_SERVER"),
		(char *)"restart", getenv("SMARTRELAY_PG_STATE"), NULL,
	};
	struct tu_env env;
	char *log_path, *log;
	int64_t id;
	pid_t pid;

	tu_env_open(&env, "pgrestart");
	tu_provision(&env, "default", "/", "application/json");
	pid = daemon_start(&env, "5");
	tu_produce(&env, NULL, "1", two_parties);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 1, 10000), 1);

	ck_assert_int_eq(tu_run(restart, 60000, NULL, NULL), 0);
	id = tu_produce(&env, NULL, "2", two_parties);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 2, 30000), 2);

	kill(pid, SIGTERM);
	ck_assert_int_eq(tu_wait(pid, 5000), 0);
	ck_assert_str_eq(tu_fetch(&env, id).status, "delivered");
	log_path = tu_path(env.dir, "daemon.log");
	log = tu_read_file(log_path, NULL);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(tu_count(log, "reconnected") == 1, "%s", log);
	ck_assert_msg(tu_count(log, "database answers again") == 1, "%s", log);
	free(log);
	free(log_path);
	tu_env_close(&env);
}
END_TEST

/* The server is down when the daemon starts: it waits, then delivers. */
START_TEST(daemon_waits_for_a_database_that_is_down)
{
	char *pause_server[] = {
		(char *)"/bin/sh", getenv("SMARTRELAY_PG_SERVER"),
		(char *)"pause", getenv("SMARTRELAY_PG_STATE"), NULL,
	};
	char *resume_server[] = {
		(char *)"/bin/sh", getenv("SMARTRELAY_PG_SERVER"),
		(char *)"resume", getenv("SMARTRELAY_PG_STATE"), NULL,
	};
	struct tu_env env;
	char *log_path, *log;
	int64_t id;
	pid_t pid;

	tu_env_open(&env, "pgdown");
	tu_provision(&env, "default", "/", "application/json");
	ck_assert_int_eq(tu_run(pause_server, 60000, NULL, NULL), 0);
	pid = daemon_start(&env, "5");
	tu_sleep_ms(1500);
	/* Still there, waiting, not crashed or gone. */
	ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), 0);
	ck_assert_int_eq(tu_run(resume_server, 60000, NULL, NULL), 0);
	id = tu_produce(&env, NULL, "1", two_parties);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 1, 30000), 1);
	kill(pid, SIGTERM);
	ck_assert_int_eq(tu_wait(pid, 5000), 0);
	ck_assert_str_eq(tu_fetch(&env, id).status, "delivered");
	log_path = tu_path(env.dir, "daemon.log");
	log = tu_read_file(log_path, NULL);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(tu_count(log, "retrying until it answers") == 1, "%s", log);
	ck_assert_msg(tu_count(log, "database answers again") == 1, "%s", log);
	free(log);
	free(log_path);
	tu_env_close(&env);
}
END_TEST

START_TEST(sighup_reloads_and_keeps_running)
{
	struct tu_env env;
	char *log_path, *log_text;
	pid_t pid;

	tu_env_open(&env, "sighup");
	tu_provision(&env, "default", "/", "application/json");
	pid = daemon_start(&env, "5");
	tu_produce(&env, NULL, "1", two_parties);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 1, 5000), 1);
	kill(pid, SIGHUP);
	tu_produce(&env, NULL, "2", two_parties);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 2, 5000), 2);
	kill(pid, SIGTERM);
	ck_assert_int_eq(tu_wait(pid, 5000), 0);
	log_path = tu_path(env.dir, "daemon.log");
	log_text = tu_read_file(log_path, NULL);
	ck_assert_ptr_nonnull(strstr(log_text, "SIGHUP: reloading"));
	/* The reload reread the rows; unchanged, they are not rebuilt. */
	ck_assert_int_eq(tu_count(log_text, "config loaded cloud_id=default"), 1);
	free(log_text);
	free(log_path);
	tu_env_close(&env);
}
END_TEST

/* A relay with a short lease, logging to dir/name. */
static pid_t relay_start(struct tu_env *env, const char *name)
{
	char *log_path = tu_path(env->dir, name);
	char *argv[] = {
		getenv("SMARTRELAY_BIN"), (char *)"run", env->db,
		(char *)"--timeout", (char *)"1", (char *)"--lease", (char *)"2",
		(char *)"--grace", (char *)"0", NULL,
	};
	pid_t pid = tu_spawn(argv, NULL, log_path);

	free(log_path);
	return pid;
}

static int count_in(struct tu_env *env, const char *name, const char *needle)
{
	char *path = tu_path(env->dir, name);
	char *text = tu_read_file(path, NULL);
	int n;

	ck_assert_ptr_nonnull(text);
	n = tu_count(text, needle);
	free(text);
	free(path);
	return n;
}

/*
 * Relays share one outbox: one claims every event and is killed with
 * SIGKILL mid-transfer; once its leases run out, two others take the events
 * over and deliver each once, with no attempt counted for the lost one.
 */
START_TEST(relays_take_over_a_killed_relays_events)
{
	enum { EVENTS = 40 };
	struct tu_env env;
	int64_t ids[EVENTS];
	pid_t first, others[2];

	tu_env_open(&env, "takeover");
	tu_provision(&env, "default", "/slow/10000", "application/json");
	for (int i = 0; i < EVENTS; i++)
		ids[i] = tu_produce(&env, NULL, "1", two_parties);
	first = relay_start(&env, "first.log");
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, EVENTS, 10000), EVENTS);
	kill(first, SIGKILL);
	ck_assert_int_eq(tu_wait(first, 5000), 128 + SIGKILL);

	tu_provision(&env, "default", "/", "application/json");
	others[0] = relay_start(&env, "second.log");
	others[1] = relay_start(&env, "third.log");
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 2 * EVENTS, 20000),
			 2 * EVENTS);
	for (int i = 0; i < 2; i++) {
		kill(others[i], SIGTERM);
		ck_assert_int_eq(tu_wait(others[i], 5000), 0);
	}
	for (int i = 0; i < EVENTS; i++) {
		struct tu_row row = tu_fetch(&env, ids[i]);

		ck_assert_str_eq(row.status, "delivered");
		ck_assert_int_eq(row.attempts, 1);
		ck_assert_int_eq(row.attempt_rows, 1);
	}
	ck_assert_int_eq(count_in(&env, "second.log", "lease expired") +
			 count_in(&env, "third.log", "lease expired"), EVENTS);
	ck_assert_int_eq(count_in(&env, "second.log", "outcome=delivered") +
			 count_in(&env, "third.log", "outcome=delivered"), EVENTS);
	tu_env_close(&env);
}
END_TEST

START_TEST(sigterm_puts_back_what_outlives_grace)
{
	struct tu_env env;
	struct tu_row row;
	int64_t id;
	pid_t pid;

	tu_env_open(&env, "sigterm");
	tu_provision(&env, "default", "/slow/5000", "application/json");
	id = tu_produce(&env, NULL, "1", two_parties);
	pid = daemon_start(&env, "0.2");
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 1, 5000), 1);
	ck_assert_str_eq(tu_fetch(&env, id).status, "sending");
	kill(pid, SIGTERM);
	ck_assert_int_eq(tu_wait(pid, 3000), 0);
	row = tu_fetch(&env, id);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(row.attempts, 0);
	ck_assert_int_eq(row.attempt_rows, 0);
	tu_env_close(&env);
}
END_TEST

START_TEST(sigterm_lets_transfers_finish_within_grace)
{
	struct tu_env env;
	int64_t id;
	pid_t pid;

	tu_env_open(&env, "sigtermgrace");
	tu_provision(&env, "default", "/slow/300", "application/json");
	id = tu_produce(&env, NULL, "1", two_parties);
	pid = daemon_start(&env, "5");
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 1, 5000), 1);
	kill(pid, SIGTERM);
	ck_assert_int_eq(tu_wait(pid, 5000), 0);
	ck_assert_str_eq(tu_fetch(&env, id).status, "delivered");
	tu_env_close(&env);
}
END_TEST

/* ---- the command line ------------------------------------------------------ */

START_TEST(usage_errors_exit_2)
{
	static const char *const cases[][4] = {
		{ "frobnicate", NULL },
		{ "run", "--concurrency", "many", NULL },
		{ "run", "--timeout", "-1", NULL },
		{ "run", "--bogus", NULL },
		{ "run", NULL },
		{ "history", "--status", "lost", NULL },
		{ "init", NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *err = NULL;
		int status = tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, cases[i][0],
					   cases[i][1], cases[i][2], cases[i][3],
					   (char *)NULL);

		ck_assert_msg(status == 2, "%s %s: exit %d", cases[i][0],
			      cases[i][1] ? cases[i][1] : "", status);
		ck_assert_msg(err && strstr(err, "smartrelay"), "no message: %s", err);
		free(err);
	}
}
END_TEST

START_TEST(missing_database_is_one_line_exit_1)
{
	char *err = NULL;
	char *dir = tu_tmpdir("missingdb");
	char *db = tu_path(dir, "nope.db");

	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "history", db,
				       NULL), 1);
	ck_assert_int_eq(tu_count(err, "\n"), 1);
	ck_assert_ptr_nonnull(strstr(err, db));
	free(err);
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run", "--once",
				       db, NULL), 1);
	ck_assert_ptr_nonnull(strstr(err, db));
	ck_assert_int_eq(access(db, F_OK), -1);
	free(err);
	free(db);
	free(dir);
}
END_TEST

START_TEST(help_everywhere)
{
	static const char *const commands[] = { "init", "run", "history", "config" };
	char *out = NULL;

	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, NULL, "--help", NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "Usage"));
	free(out);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, NULL,
					       commands[i], "--help", NULL), 0);
		ck_assert_ptr_nonnull(strstr(out, commands[i]));
		free(out);
	}
}
END_TEST

START_TEST(history_shows_json_and_columns)
{
	struct tu_env env;
	char *out = NULL;
	int64_t id;

	tu_env_open(&env, "history");
	tu_provision(&env, "default", "/", "application/json");
	id = tu_produce(&env, NULL, "15551231234", two_parties);
	free(run_once(&env, NULL, NULL));
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, NULL, "history",
				       env.db, "--json", "--attempts", NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "\"new_smart_number\":\"15551231234\""));
	ck_assert_ptr_nonnull(strstr(out, "\"status\":\"delivered\""));
	ck_assert_ptr_nonnull(strstr(out, "\"http_status\":204"));
	ck_assert_ptr_nonnull(strstr(out, "\"attempt_log\":[{\"attempt\":1"));
	free(out);
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, NULL, "history",
				       env.db, "--status", "delivered", NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "STATUS"));
	ck_assert_ptr_nonnull(strstr(out, "delivered"));
	free(out);
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, NULL, "history",
				       env.db, "--status", "failed", "--json", NULL), 0);
	ck_assert_str_eq(out, "[]\n");
	free(out);
	(void)id;
	tu_env_close(&env);
}
END_TEST

START_TEST(config_set_warns_about_a_bad_option)
{
	char *dir = tu_tmpdir("configwarn");
	char *db = tu_path(dir, "relay.db");
	char *err = NULL;

	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, NULL, "init", db,
				       NULL), 0);
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "config", db,
				       "set", "smartContactNotificationUrl2",
				       "http://x/", NULL), 0);
	ck_assert_msg(strstr(err, "warning") &&
		      strstr(err, "key=smartContactNotificationUrl2: unknown option"),
		      "stderr: %s", err);
	free(err);
	/* A key merely not set yet is no reason to warn. */
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "config", db,
				       "set", "smartContactNotificationContentType",
				       "application/json", NULL), 0);
	ck_assert_ptr_null(strstr(err, "warning: cloud_id=default key="
				       "smartContactNotificationContentType"));
	free(err);
	free(db);
	free(dir);
}
END_TEST

static Suite *integration_suite(void)
{
	Suite *s = suite_create("integration");
	TCase *delivery = tcase_create("delivery");
	TCase *outcomes = tcase_create("outcomes");
	TCase *daemon = tcase_create("daemon");
	TCase *cli = tcase_create("cli");

	tcase_set_timeout(delivery, 60);
	tcase_set_timeout(outcomes, 60);
	tcase_set_timeout(daemon, 60);
	tcase_set_timeout(cli, 60);
	tcase_add_test(delivery, json_app_delivers_exact_request);
	tcase_add_test(delivery, xml_app_delivers_party_elements);
	tcase_add_test(outcomes, client_error_is_final);
	tcase_add_test(outcomes, ok_200_is_not_delivered);
	tcase_add_test(outcomes, server_error_retries_then_fails);
	tcase_add_test(outcomes, last_attempt_fails);
	tcase_add_test(outcomes, retry_after_is_honoured);
	tcase_add_test(outcomes, refused_connection_retries);
	tcase_add_test(outcomes, timeout_retries);
	tcase_add_test(outcomes, unrenderable_event_fails_alone);
	tcase_add_test(outcomes, config_error_waits_then_delivers);
	tcase_add_test(outcomes, gone_disables_endpoint_until_enabled);
	tcase_add_test(outcomes, busy_app_does_not_starve_another);
	tcase_add_test(daemon, daemon_delivers_new_events_and_config_changes);
	if (getenv("SMARTRELAY_PG_STATE") != NULL) {
		tcase_add_test(daemon, daemon_survives_a_database_restart);
		tcase_add_test(daemon, daemon_waits_for_a_database_that_is_down);
	}
	tcase_add_test(daemon, relays_take_over_a_killed_relays_events);
	tcase_add_test(daemon, sighup_reloads_and_keeps_running);
	tcase_add_test(daemon, sigterm_puts_back_what_outlives_grace);
	tcase_add_test(daemon, sigterm_lets_transfers_finish_within_grace);
	tcase_add_test(cli, usage_errors_exit_2);
	tcase_add_test(cli, missing_database_is_one_line_exit_1);
	tcase_add_test(cli, help_everywhere);
	tcase_add_test(cli, config_set_warns_about_a_bad_option);
	tcase_add_test(cli, history_shows_json_and_columns);
	suite_add_tcase(s, delivery);
	suite_add_tcase(s, outcomes);
	suite_add_tcase(s, daemon);
	suite_add_tcase(s, cli);
	return s;
}

int main(void)
{
	SRunner *runner = srunner_create(integration_suite());
	int failed;

	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
