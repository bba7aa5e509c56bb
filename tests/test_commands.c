/*
 * test_commands.c - the operator's commands, as the real binary against a
 * real database and the real receiver: enqueue, requeue, purge, stats,
 * copy (from an SQLite file into the suite's database), and the request
 * that config check describes (compared with the one sent).
 *
 * Rows are read back through store.h; events reach their states by real
 * deliveries (`run --once`), never by writing the rows by hand.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "testutil.h"
#include "timeutil.h"

#define RUN_TIMEOUT_MS 20000

/* `smartrelay enqueue` of one party in cloud_id; returns the printed id. */
static int64_t enqueue(struct tu_env *env, const char *cloud_id, const char *number)
{
	char *out = NULL, *end;
	long long id;

	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, NULL, "enqueue",
				       env->db, "--number", number, "--network",
				       "network_1", "--uri", "sip_uri_1", "--party",
				       "eric:erics_iphone", "--cloud-id", cloud_id,
				       NULL), 0);
	id = strtoll(out, &end, 10);
	ck_assert_msg(id > 0 && strcmp(end, "\n") == 0, "enqueue printed '%s'", out);
	free(out);
	return id;
}

static void run_once(struct tu_env *env, const char *max_attempts)
{
	char *err = NULL;
	int status = tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run", "--once",
				   "--retry-base", "0", "--retry-max", "0",
				   "--max-attempts", max_attempts, env->db, NULL);

	ck_assert_msg(status == 0, "run --once exited %d: %s", status, err);
	free(err);
}

struct row {
	int found;
	char status[16];
	char number[32];
	int64_t attempts;
	long http_status;
	int has_error;
	int has_next_attempt;
	int attempt_rows;
};

static int take_row(const struct history_row *h, void *arg)
{
	struct row *row = arg;

	row->found = 1;
	snprintf(row->status, sizeof(row->status), "%s", h->status);
	snprintf(row->number, sizeof(row->number), "%s", h->new_smart_number);
	row->attempts = h->attempts;
	row->http_status = h->http_status;
	row->has_error = h->error != NULL;
	row->has_next_attempt = h->next_attempt_at != NULL;
	return 0;
}

static int take_attempt(const struct attempt_row *a, void *arg)
{
	struct row *row = arg;

	row->attempt_rows++;
	/* Attempt numbers stay unique and in order across requeues. */
	ck_assert_int_eq(a->attempt, row->attempt_rows);
	return 0;
}

/* The event's row (found 0 when it is gone) and, with attempts set, its
 * attempt count (each walked through check_attempt). */
static struct row fetch_with(struct tu_env *env, int64_t id,
			     int (*check_attempt)(const struct attempt_row *a,
						  void *arg))
{
	struct history_filter filter = { .id = id };
	struct store *store = NULL;
	struct row row;
	char err[256];

	memset(&row, 0, sizeof(row));
	ck_assert_int_eq(store_open(env->db, STORE_OPEN_EXISTING, &store, err,
				    sizeof(err)), STORE_OK);
	ck_assert_int_eq(store_history(store, &filter, take_row, &row), STORE_OK);
	ck_assert_int_eq(store_attempts(store, id, check_attempt, &row), STORE_OK);
	store_close(store);
	return row;
}

static struct row fetch(struct tu_env *env, int64_t id)
{
	return fetch_with(env, id, take_attempt);
}

/* Runs smartrelay with up to 8 arguments; returns the exit status. */
static int cmd(char **out, char **err, const char *a, const char *b,
	       const char *c, const char *d, const char *e, const char *f,
	       const char *g, const char *h)
{
	return tu_smartrelay(RUN_TIMEOUT_MS, out, err, a, b, c, d, e, f, g, h,
			     (char *)NULL);
}

/* ---- enqueue -------------------------------------------------------------- */

START_TEST(enqueue_event_is_delivered)
{
	struct tu_env env;
	char *out = NULL, *requests;
	long long id;

	tu_env_open(&env, "enqueue");
	tu_provision(&env, "default", "/", "application/json");
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, NULL, "enqueue",
				       env.db, "--number", "+420111222333",
				       "--network", "network_1", "--uri", "sip_uri_1",
				       "--party", "eric:erics_iphone", "--party",
				       "madelaine:madelaines:android", "--json",
				       NULL), 0);
	ck_assert_int_eq(sscanf(out, "{\"id\":%lld}", &id), 1);
	free(out);
	run_once(&env, "10");
	requests = tu_receiver_requests(&env.rx);
	/* Split at the first ':' only; the rest belongs to the device. */
	ck_assert_ptr_nonnull(strstr(requests,
		"\"interestedParties\" : [{\"username\":\"eric\",\"device\":"
		"\"erics_iphone\"},{\"username\":\"madelaine\",\"device\":"
		"\"madelaines:android\"}]"));
	ck_assert_ptr_nonnull(strstr(requests, "\"newSmartNumber\" : \"+420111222333\""));
	free(requests);
	ck_assert_str_eq(fetch(&env, id).status, "delivered");
	tu_env_close(&env);
}
END_TEST

START_TEST(enqueue_refuses_bad_input)
{
	static const char *const cases[][8] = {
		{ "--network", "n", "--uri", "u", "--party", "a:b", NULL },
		{ "--number", "1", "--network", "n", "--uri", "u", NULL },
		{ "--number", "1", "--network", "n", "--uri", "u", "--party", "ab" },
		{ "--number", "1", "--network", "n", "--uri", "u", "--party", ":b" },
		{ "--number", "1", "--network", "n", "--uri", "u", "--party", "a:" },
		{ "--number", "", "--network", "n", "--uri", "u", "--party", "a:b" },
		{ "--number", "1", "--network", "n", "--uri", "u", "--party", "a\xff:b" },
	};
	struct tu_env env;
	char *out = NULL;

	tu_env_open(&env, "enqueuebad");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *err = NULL;
		int status = tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "enqueue",
					   env.db, cases[i][0], cases[i][1],
					   cases[i][2], cases[i][3], cases[i][4],
					   cases[i][5], cases[i][6], cases[i][7],
					   (char *)NULL);

		ck_assert_msg(status == 2, "case %zu: exit %d", i, status);
		ck_assert_msg(strstr(err, "smartrelay enqueue: "), "case %zu: %s", i, err);
		free(err);
	}
	/* Nothing was added. */
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, NULL, "history",
				       env.db, "--json", NULL), 0);
	ck_assert_str_eq(out, "[]\n");
	free(out);
	tu_env_close(&env);
}
END_TEST

/* ---- requeue -------------------------------------------------------------- */

START_TEST(requeue_gives_a_fresh_budget)
{
	struct tu_env env;
	struct row row;
	char *out = NULL;
	int64_t id;

	tu_env_open(&env, "requeue");
	tu_provision(&env, "default", "/status/503", "application/json");
	id = enqueue(&env, "default", "1");
	run_once(&env, "2");
	run_once(&env, "2");
	row = fetch(&env, id);
	ck_assert_str_eq(row.status, "failed");
	ck_assert_int_eq(row.attempts, 2);

	ck_assert_int_eq(cmd(&out, NULL, "requeue", env.db, "--status", "failed",
			     NULL, NULL, NULL, NULL), 0);
	ck_assert_str_eq(out, "requeued 1 event\n");
	free(out);
	row = fetch(&env, id);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(row.attempts, 2);
	ck_assert_int_eq(row.has_next_attempt, 0);
	/* The last attempt's outcome stays until the next attempt. */
	ck_assert_int_eq(row.http_status, 503);
	ck_assert_int_eq(row.has_error, 1);

	/* Without a fresh budget this third attempt would be the last. */
	run_once(&env, "2");
	row = fetch(&env, id);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(row.attempts, 3);
	ck_assert_int_eq(row.attempt_rows, 3);
	run_once(&env, "2");
	row = fetch(&env, id);
	ck_assert_str_eq(row.status, "failed");
	ck_assert_int_eq(row.attempts, 4);
	tu_env_close(&env);
}
END_TEST

START_TEST(requeue_selects_and_refuses)
{
	struct tu_env env;
	char *out = NULL, *err = NULL;
	int64_t a, b, ok;
	char id_text[32];

	tu_env_open(&env, "requeuesel");
	tu_provision(&env, "default", "/status/404", "application/json");
	tu_provision(&env, "other", "/status/404", "application/json");
	a = enqueue(&env, "default", "1");
	b = enqueue(&env, "other", "2");
	run_once(&env, "10");
	tu_provision(&env, "default", "/", "application/json");
	ok = enqueue(&env, "default", "3");
	run_once(&env, "10");
	ck_assert_str_eq(fetch(&env, ok).status, "delivered");

	/* A bare requeue, or any status but failed, is bad usage. */
	ck_assert_int_eq(cmd(NULL, &err, "requeue", env.db, NULL, NULL, NULL,
			     NULL, NULL, NULL), 2);
	ck_assert_ptr_nonnull(strstr(err, "--status failed"));
	free(err);
	ck_assert_int_eq(cmd(NULL, NULL, "requeue", env.db, "--cloud-id", "other",
			     NULL, NULL, NULL, NULL), 2);
	ck_assert_int_eq(cmd(NULL, NULL, "requeue", env.db, "--status", "pending",
			     NULL, NULL, NULL, NULL), 2);
	ck_assert_int_eq(cmd(NULL, NULL, "requeue", env.db, "--status", "failed",
			     "--since", "yesterday", NULL, NULL), 2);

	/* A delivered event is not requeued: one line, exit 1. */
	snprintf(id_text, sizeof(id_text), "%lld", (long long)ok);
	ck_assert_int_eq(cmd(NULL, &err, "requeue", env.db, "--id", id_text,
			     NULL, NULL, NULL, NULL), 1);
	ck_assert_int_eq(tu_count(err, "\n"), 1);
	ck_assert_ptr_nonnull(strstr(err, "not a failed event"));
	free(err);
	ck_assert_str_eq(fetch(&env, ok).status, "delivered");

	/* Dry run and a future --since change nothing. */
	ck_assert_int_eq(cmd(&out, NULL, "requeue", env.db, "--status", "failed",
			     "--dry-run", "--json", NULL, NULL), 0);
	ck_assert_str_eq(out, "{\"would_requeue\":2}\n");
	free(out);
	ck_assert_int_eq(cmd(&out, NULL, "requeue", env.db, "--status", "failed",
			     "--since", "2999-01-01", NULL, NULL), 0);
	ck_assert_str_eq(out, "requeued 0 events\n");
	free(out);
	ck_assert_str_eq(fetch(&env, a).status, "failed");

	/* --cloud-id narrows to that app's events. */
	ck_assert_int_eq(cmd(&out, NULL, "requeue", env.db, "--status", "failed",
			     "--cloud-id", "other", "--json", NULL), 0);
	ck_assert_str_eq(out, "{\"requeued\":1}\n");
	free(out);
	ck_assert_str_eq(fetch(&env, a).status, "failed");
	ck_assert_str_eq(fetch(&env, b).status, "pending");

	snprintf(id_text, sizeof(id_text), "%lld", (long long)a);
	ck_assert_int_eq(cmd(&out, NULL, "requeue", env.db, "--id", id_text,
			     NULL, NULL, NULL, NULL), 0);
	ck_assert_str_eq(out, "requeued 1 event\n");
	free(out);
	ck_assert_str_eq(fetch(&env, a).status, "pending");
	tu_env_close(&env);
}
END_TEST

/* ---- purge ------------------------------------------------------------- */

START_TEST(purge_takes_old_finished_events_only)
{
	struct tu_env env;
	char *out = NULL, *err = NULL;
	int64_t delivered, failed, pending, failed2;
	struct row row;

	tu_env_open(&env, "purge");
	tu_provision(&env, "default", "/", "application/json");
	delivered = enqueue(&env, "default", "1");
	run_once(&env, "10");
	tu_provision(&env, "default", "/status/400", "application/json");
	failed = enqueue(&env, "default", "2");
	failed2 = enqueue(&env, "default", "3");
	run_once(&env, "10");
	/* Pending for good: its app has no options. */
	pending = enqueue(&env, "noconfig", "4");
	run_once(&env, "10");
	ck_assert_str_eq(fetch(&env, delivered).status, "delivered");
	ck_assert_str_eq(fetch(&env, failed).status, "failed");

	ck_assert_int_eq(cmd(NULL, NULL, "purge", env.db, NULL, NULL, NULL, NULL,
			     NULL, NULL), 2);
	ck_assert_int_eq(cmd(NULL, NULL, "purge", env.db, "--older-than", "ten",
			     NULL, NULL, NULL, NULL), 2);

	/* Nothing is an hour old yet. */
	ck_assert_int_eq(cmd(&out, NULL, "purge", env.db, "--older-than", "1h",
			     NULL, NULL, NULL, NULL), 0);
	ck_assert_str_eq(out, "purged 0 events and 0 attempts\n");
	free(out);
	ck_assert_int_eq(fetch(&env, delivered).found, 1);

	tu_sleep_ms(20);
	ck_assert_int_eq(cmd(&out, NULL, "purge", env.db, "--older-than", "0s",
			     "--dry-run", NULL, NULL, NULL), 0);
	ck_assert_str_eq(out, "would purge 3 events\n");
	free(out);
	/* One event per transaction: the batches add up. */
	ck_assert_int_eq(cmd(&out, &err, "purge", env.db, "--older-than", "0s",
			     "--batch", "1", "--json", NULL), 0);
	ck_assert_str_eq(out, "{\"purged\":3,\"attempts\":3}\n");
	/* Not a terminal: no progress line. */
	ck_assert_str_eq(err, "");
	free(out);
	free(err);
	ck_assert_int_eq(fetch(&env, delivered).found, 0);
	row = fetch(&env, failed);
	ck_assert_int_eq(row.found, 0);
	ck_assert_int_eq(row.attempt_rows, 0);
	ck_assert_int_eq(fetch(&env, failed2).found, 0);
	row = fetch(&env, pending);
	ck_assert_int_eq(row.found, 1);
	ck_assert_str_eq(row.status, "pending");
	tu_env_close(&env);
}
END_TEST

/* ---- stats ------------------------------------------------------------- */

START_TEST(stats_counts_and_shouts_disabled)
{
	struct tu_env env;
	char *out = NULL, *err = NULL;

	tu_env_open(&env, "stats");
	tu_provision(&env, "default", "/", "application/json");
	tu_provision(&env, "goneapp", "/status/410", "application/json");
	enqueue(&env, "default", "1");
	enqueue(&env, "default", "2");
	enqueue(&env, "goneapp", "3");
	run_once(&env, "10");
	enqueue(&env, "goneapp", "4");
	enqueue(&env, "noconfig", "5");

	ck_assert_int_eq(cmd(&out, &err, "stats", env.db, "--json", NULL, NULL,
			     NULL, NULL, NULL), 0);
	ck_assert_msg(strstr(out, "\"pending\":2,\"sending\":0,\"delivered\":2,"
			     "\"failed\":1,\"due_now\":2,"), "%s", out);
	ck_assert_msg(strstr(out, "\"last_minute\":{\"attempts\":3,\"delivered\":2,"
			     "\"failed_attempts\":1,\"events_failed\":1}"), "%s", out);
	ck_assert_msg(strstr(out, "\"latency_last_hour\":{\"count\":2,"), "%s", out);
	ck_assert_msg(strstr(out, "\"duration_last_hour\":{\"count\":3,"), "%s", out);
	ck_assert_msg(strstr(out, "{\"cloud_id\":\"goneapp\",\"pending\":1,"
			     "\"sending\":0,\"delivered\":0,\"failed\":1,"), "%s", out);
	ck_assert_msg(strstr(out, "\"disabled_endpoints\":[{\"cloud_id\":\"goneapp\","),
		      "%s", out);
	ck_assert_ptr_nonnull(strstr(err, "cloud_id=goneapp is DISABLED"));
	free(out);
	free(err);

	ck_assert_int_eq(cmd(&out, &err, "stats", env.db, NULL, NULL, NULL, NULL,
			     NULL, NULL), 0);
	ck_assert_msg(strncmp(out, "!! DISABLED endpoint: cloud_id=goneapp", 38) == 0,
		      "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "pending 2  sending 0  delivered 2  "
				     "failed 1  total 5"));
	ck_assert_ptr_nonnull(strstr(out, "p50 "));
	ck_assert_ptr_nonnull(strstr(out, "noconfig"));
	free(out);
	free(err);

	/* Re-enabled: no more warning. */
	ck_assert_int_eq(cmd(NULL, NULL, "config", env.db, "enable", "--cloud-id",
			     "goneapp", NULL, NULL, NULL), 0);
	ck_assert_int_eq(cmd(&out, &err, "stats", env.db, NULL, NULL, NULL, NULL,
			     NULL, NULL), 0);
	ck_assert_ptr_null(strstr(out, "DISABLED"));
	ck_assert_str_eq(err, "");
	free(out);
	free(err);
	tu_env_close(&env);
}
END_TEST

/* ---- retention in the daemon --------------------------------------------- */

START_TEST(daemon_retention_purges_old_events)
{
	char *argv[] = {
		getenv("SMARTRELAY_BIN"), (char *)"run", NULL,
		(char *)"--retention", (char *)"1s", NULL,
	};
	struct tu_env env;
	char *log_path;
	int64_t old, live;
	pid_t pid;
	int waited = 0;

	tu_env_open(&env, "retention");
	tu_provision(&env, "default", "/", "application/json");
	old = enqueue(&env, "default", "1");
	run_once(&env, "10");
	ck_assert_str_eq(fetch(&env, old).status, "delivered");
	live = enqueue(&env, "noconfig", "2");
	ck_assert_int_eq(cmd(NULL, NULL, "run", "--once", "--retention", "1s",
			     env.db, NULL, NULL, NULL), 2);
	/* Older than the retention by the time the daemon looks. */
	tu_sleep_ms(1100);
	argv[2] = env.db;
	log_path = tu_path(env.dir, "daemon.log");
	pid = tu_spawn(argv, NULL, log_path);
	while (fetch(&env, old).found && waited < 10000) {
		tu_sleep_ms(50);
		waited += 50;
	}
	kill(pid, SIGTERM);
	ck_assert_int_eq(tu_wait(pid, 5000), 0);
	ck_assert_int_eq(fetch(&env, old).found, 0);
	ck_assert_int_eq(fetch(&env, old).attempt_rows, 0);
	ck_assert_str_eq(fetch(&env, live).status, "pending");
	free(log_path);
	tu_env_close(&env);
}
END_TEST

/* ---- copy --------------------------------------------------------------- */

/* The world of env with an initialised SQLite outbox src.db as its DB. */
static struct tu_env copy_source(const struct tu_env *env)
{
	struct tu_env src = *env;

	src.db = tu_path(env->dir, "src.db");
	ck_assert_int_eq(cmd(NULL, NULL, "init", src.db, NULL, NULL, NULL, NULL,
			     NULL, NULL), 0);
	return src;
}

/* An attempt log copied without its earlier attempts: the numbers go on
 * from the event's attempts, so only the last must be row.attempts. */
static int take_copied_attempt(const struct attempt_row *a, void *arg)
{
	struct row *row = arg;

	row->attempt_rows++;
	ck_assert_int_eq(a->attempt, row->attempts);
	return 0;
}

/* The receiver's requests with this webhook-id that got this status. */
static int received(const struct tu_env *env, int64_t id, int status)
{
	char *ids = tu_read_file(env->rx.ids_path, NULL);
	char line[64];
	int n;

	ck_assert_ptr_nonnull(ids);
	snprintf(line, sizeof(line), "\n%lld %d ", (long long)id, status);
	/* Every line starts after a newline, the first one too. */
	n = tu_count(ids, line) +
	    (strncmp(ids, line + 1, strlen(line + 1)) == 0);
	free(ids);
	return n;
}

START_TEST(copy_moves_pending_events_and_reruns_safely)
{
	struct tu_env env, src;
	char *out = NULL, *err = NULL;
	int64_t delivered, failed, retried, pending, moved;
	struct row row;

	tu_env_open(&env, "copy");
	src = copy_source(&env);
	tu_provision(&src, "done", "/", "application/json");
	tu_provision(&src, "bad", "/status/400", "application/json");
	tu_provision(&src, "retry", "/status/503", "application/json");
	delivered = enqueue(&src, "done", "1");
	failed = enqueue(&src, "bad", "2");
	retried = enqueue(&src, "retry", "3");
	run_once(&src, "10");
	ck_assert_str_eq(fetch(&src, delivered).status, "delivered");
	ck_assert_str_eq(fetch(&src, failed).status, "failed");
	ck_assert_int_eq(fetch(&src, retried).attempts, 1);
	pending = enqueue(&src, "done", "4");
	moved = enqueue(&src, "moved", "5");

	/* DST has its own options for two apps: --config keeps them. */
	tu_provision(&env, "retry", "/", "application/json");
	tu_provision(&env, "moved", "/", "application/json");
	ck_assert_int_eq(cmd(&out, &err, "copy", src.db, env.db, "--config",
			     "--batch", "2", NULL, NULL), 0);
	ck_assert_str_eq(out, "copied 3 events, 0 already there, 0 conflicts\n"
			 "copied 4 config rows, kept 2 that DST has\n");
	ck_assert_str_eq(err, "");
	free(out);
	free(err);
	/* Finished events stay behind; the retried one keeps its state,
	 * but not its attempt log. */
	ck_assert_int_eq(fetch(&env, delivered).found, 0);
	ck_assert_int_eq(fetch(&env, failed).found, 0);
	row = fetch(&env, retried);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(row.attempts, 1);
	ck_assert_int_eq(row.http_status, 503);
	ck_assert_int_eq(row.has_error, 1);
	ck_assert_int_eq(row.attempt_rows, 0);
	ck_assert_str_eq(fetch(&env, moved).number, "5");
	/* SRC is only read. */
	ck_assert_str_eq(fetch(&src, pending).status, "pending");
	ck_assert_int_eq(fetch(&src, retried).attempt_rows, 1);

	/* A rerun finds everything there. */
	ck_assert_int_eq(cmd(&out, NULL, "copy", src.db, env.db, NULL, NULL,
			     NULL, NULL, NULL), 0);
	ck_assert_str_eq(out, "copied 0 events, 3 already there, 0 conflicts\n");
	free(out);

	/* DST delivers them under their ids, the retried one to DST's URL. */
	run_once(&env, "10");
	ck_assert_str_eq(fetch(&env, pending).status, "delivered");
	ck_assert_str_eq(fetch(&env, moved).status, "delivered");
	/* DST logs the attempt it made, numbered after SRC's one. */
	row = fetch_with(&env, retried, take_copied_attempt);
	ck_assert_str_eq(row.status, "delivered");
	ck_assert_int_eq(row.attempts, 2);
	ck_assert_int_eq(row.attempt_rows, 1);
	ck_assert_int_eq(received(&env, pending, 204), 1);
	ck_assert_int_eq(received(&env, moved, 204), 1);
	ck_assert_int_eq(received(&env, retried, 503), 1);
	ck_assert_int_eq(received(&env, retried, 204), 1);

	/* Delivered in DST, still pending in SRC: a rerun sends nothing. */
	ck_assert_int_eq(cmd(&out, NULL, "copy", src.db, env.db, "--json",
			     NULL, NULL, NULL, NULL), 0);
	ck_assert_str_eq(out, "{\"copied\":0,\"already_there\":3,\"conflicts\":0}\n");
	free(out);
	run_once(&env, "10");
	ck_assert_int_eq(received(&env, pending, 204), 1);
	/* A producer's next event gets an id past the copied ones. */
	ck_assert_int_eq(enqueue(&env, "moved", "6"), moved + 1);
	free(src.db);
	tu_env_close(&env);
}
END_TEST

START_TEST(copy_reports_a_conflict_and_copies_the_rest)
{
	struct tu_env env, src;
	char *out = NULL, *err = NULL;
	int64_t first, second, third;

	tu_env_open(&env, "copyconflict");
	src = copy_source(&env);
	first = enqueue(&src, "default", "1");
	second = enqueue(&src, "default", "2");
	third = enqueue(&src, "default", "3");
	/* DST's own first event takes the id of SRC's first. */
	ck_assert_int_eq(enqueue(&env, "default", "9"), first);

	ck_assert_int_eq(cmd(&out, &err, "copy", src.db, env.db, NULL, NULL,
			     NULL, NULL, NULL), 1);
	ck_assert_str_eq(out, "copied 2 events, 0 already there, 1 conflict\n");
	ck_assert_int_eq(tu_count(err, "\n"), 1);
	ck_assert_msg(strstr(err, "smartrelay copy: event 1: ") != NULL &&
		      strstr(err, "new_smart_number differs") != NULL, "%s", err);
	free(out);
	free(err);
	ck_assert_str_eq(fetch(&env, first).number, "9");
	ck_assert_str_eq(fetch(&env, second).number, "2");
	ck_assert_str_eq(fetch(&env, third).number, "3");

	ck_assert_int_eq(cmd(&out, &err, "copy", src.db, env.db, "--json", NULL,
			     NULL, NULL, NULL), 1);
	ck_assert_str_eq(out, "{\"copied\":0,\"already_there\":2,\"conflicts\":1}\n");
	ck_assert_int_eq(tu_count(err, "event 1: "), 1);
	free(out);
	free(err);
	ck_assert_str_eq(fetch(&env, first).number, "9");
	free(src.db);
	tu_env_close(&env);
}
END_TEST

START_TEST(copy_dry_run_and_cloud_id)
{
	struct tu_env env, src;
	struct config_row *rows = NULL;
	struct store *store = NULL;
	char *out = NULL, *err = NULL, *missing;
	char errbuf[256];
	int64_t a, b;
	size_t count = 1;

	tu_env_open(&env, "copydry");
	src = copy_source(&env);
	tu_provision(&src, "a", "/", "application/json");
	a = enqueue(&src, "a", "1");
	enqueue(&src, "a", "2");
	b = enqueue(&src, "b", "3");

	ck_assert_int_eq(cmd(&out, NULL, "copy", src.db, env.db, "--dry-run",
			     "--config", NULL, NULL, NULL), 0);
	ck_assert_str_eq(out, "would copy 3 events, 0 already there, 0 conflicts\n"
			 "would copy 2 config rows, kept 0 that DST has\n");
	free(out);
	ck_assert_int_eq(cmd(&out, NULL, "history", env.db, "--json", NULL, NULL,
			     NULL, NULL, NULL), 0);
	ck_assert_str_eq(out, "[]\n");
	free(out);
	ck_assert_int_eq(store_open(env.db, STORE_OPEN_EXISTING, &store, errbuf,
				    sizeof(errbuf)), STORE_OK);
	ck_assert_int_eq(store_config_list(store, NULL, &rows, &count), STORE_OK);
	ck_assert_uint_eq(count, 0);
	store_config_rows_free(rows, count);
	store_close(store);

	/* --cloud-id takes that app's events only. */
	ck_assert_int_eq(cmd(&out, NULL, "copy", src.db, env.db, "--cloud-id",
			     "b", "--json", NULL, NULL), 0);
	ck_assert_str_eq(out, "{\"copied\":1,\"already_there\":0,\"conflicts\":0}\n");
	free(out);
	ck_assert_int_eq(fetch(&env, b).found, 1);
	ck_assert_int_eq(fetch(&env, a).found, 0);

	/* Bad usage is 2; a DST that init did not make is 1, one line. */
	ck_assert_int_eq(cmd(NULL, NULL, "copy", src.db, NULL, NULL, NULL, NULL,
			     NULL, NULL), 2);
	ck_assert_int_eq(cmd(NULL, NULL, "copy", src.db, src.db, NULL, NULL,
			     NULL, NULL, NULL), 2);
	ck_assert_int_eq(cmd(NULL, NULL, "copy", src.db, env.db, "--batch", "0",
			     NULL, NULL, NULL), 2);
	missing = tu_path(env.dir, "missing.db");
	ck_assert_int_eq(cmd(NULL, &err, "copy", src.db, missing, NULL, NULL,
			     NULL, NULL, NULL), 1);
	ck_assert_int_eq(tu_count(err, "\n"), 1);
	ck_assert_ptr_nonnull(strstr(err, "smartrelay copy: DST: "));
	free(err);
	free(missing);
	free(src.db);
	tu_env_close(&env);
}
END_TEST

/* ---- config check ------------------------------------------------------- */

/* The head of the first recorded request, CRLF made LF, without the body. */
static char *received_head(struct tu_env *env)
{
	char *requests = tu_receiver_requests(&env->rx);
	char *start = strstr(requests, "POST ");
	char *end, *head, *w;

	ck_assert_ptr_nonnull(start);
	end = strstr(start, "\r\n\r\n");
	ck_assert_ptr_nonnull(end);
	head = calloc((size_t)(end - start) + 2, 1);
	ck_assert_ptr_nonnull(head);
	w = head;
	for (const char *r = start; r < end; r++)
		if (*r != '\r')
			*w++ = *r;
	*w = '\n';
	free(requests);
	return head;
}

START_TEST(config_check_prints_the_request_sent)
{
	struct tu_env env;
	char *out = NULL, *head, *request;

	tu_env_open(&env, "configcheck");
	tu_provision(&env, "default", "/notify?app=1", "application/json");
	tu_config_set(&env, "default", "smartContactNotificationCustomHeaders",
		   "X-Trace: 1\nAccept: application/json");
	ck_assert_int_eq(cmd(&out, NULL, "config", env.db, "check", NULL, NULL,
			     NULL, NULL, NULL), 0);
	/* The lines that were there before the request. */
	ck_assert_ptr_nonnull(strstr(out, "cloud_id=default: ok\n"));
	ck_assert_ptr_nonnull(strstr(out, "sample body (234 bytes):\n"));
	request = strstr(out, "sample request (event id 1; secrets masked):\n");
	ck_assert_ptr_nonnull(request);
	request = strchr(request, '\n') + 1;

	/* The sample is the document's example: the same event, sent for real. */
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, NULL, "enqueue",
				       env.db, "--number", "+420111222333",
				       "--network", "network_1", "--uri", "sip_uri_1",
				       "--party", "eric:erics_iphone", "--party",
				       "madelaine:madelaines_android", NULL), 0);
	run_once(&env, "10");
	ck_assert_str_eq(fetch(&env, 1).status, "delivered");
	head = received_head(&env);
	ck_assert_str_eq(request, head);
	free(head);
	free(out);

	/* Secrets are masked; the user name is shown. */
	tu_config_set(&env, "default", "smartContactNotificationCustomHeaders",
		   "X-Api-Key: abc123\nAuthorization: Bearer xyz789");
	tu_config_set(&env, "default", "smartContactNotificationAuthUsername", "alice");
	tu_config_set(&env, "default", "smartContactNotificationAuthPassword", "s3cret");
	tu_config_set(&env, "default", "smartContactNotificationAllowInsecureAuth", "true");
	ck_assert_int_eq(cmd(&out, NULL, "config", env.db, "check", NULL, NULL,
			     NULL, NULL, NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "\nX-Api-Key: ********\n"));
	ck_assert_ptr_nonnull(strstr(out, "\nAuthorization: ********\n"));
	ck_assert_ptr_nonnull(strstr(out, "user alice"));
	ck_assert_ptr_null(strstr(out, "abc123"));
	ck_assert_ptr_null(strstr(out, "xyz789"));
	ck_assert_ptr_null(strstr(out, "s3cret"));
	free(out);
	tu_env_close(&env);
}
END_TEST

START_TEST(new_commands_have_help)
{
	static const char *const commands[] = { "enqueue", "requeue", "stats", "purge",
						"copy" };
	char *out = NULL;

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, NULL,
					       commands[i], "--help", NULL), 0);
		ck_assert_ptr_nonnull(strstr(out, commands[i]));
		free(out);
		ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, NULL,
					       commands[i], "--bogus", NULL), 2);
	}
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, NULL, "--version",
				       NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "smartrelay "));
	free(out);
}
END_TEST

static Suite *commands_suite(void)
{
	Suite *s = suite_create("commands");
	TCase *tc = tcase_create("commands");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, enqueue_event_is_delivered);
	tcase_add_test(tc, enqueue_refuses_bad_input);
	tcase_add_test(tc, requeue_gives_a_fresh_budget);
	tcase_add_test(tc, requeue_selects_and_refuses);
	tcase_add_test(tc, purge_takes_old_finished_events_only);
	tcase_add_test(tc, stats_counts_and_shouts_disabled);
	tcase_add_test(tc, daemon_retention_purges_old_events);
	tcase_add_test(tc, copy_moves_pending_events_and_reruns_safely);
	tcase_add_test(tc, copy_reports_a_conflict_and_copies_the_rest);
	tcase_add_test(tc, copy_dry_run_and_cloud_id);
	tcase_add_test(tc, config_check_prints_the_request_sent);
	tcase_add_test(tc, new_commands_have_help);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *runner = srunner_create(commands_suite());
	int failed;

	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
