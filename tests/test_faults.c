/*
 * test_faults.c - nothing is lost: the real daemon against the real
 * receiver while relays are killed, paused or run side by side, and while
 * the receiver and the database misbehave.
 *
 * Every test ends by reading back every row it produced and what the
 * receiver saw, so a row lost, left 'sending' or written twice fails it.
 * With --root (the Makefile passes it when run as root) the suite is the
 * tests that need root instead: an immutable database file, a full disk;
 * with --netns (as root, in the PostgreSQL run) relays in network
 * namespaces, one of which is cut off the network.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "endpoint.h"
#include "store.h"
#include "testutil.h"
#include "timeutil.h"

#define CMD_TIMEOUT_MS 20000
#define SETTLE_MS 60000
#define MAX_ARGS 32
/* iproute2's, in Debian's /bin. */
#define IP_BIN "/bin/ip"

static const char parties[] =
	"[{\"username\":\"eric\",\"device\":\"erics_iphone\"}]";

/* Creates the database db (stolen) and starts the receiver in env->dir. */
static void env_start(struct tu_env *env, char *db)
{
	env->db = db;
	ck_assert_int_eq(tu_smartrelay(CMD_TIMEOUT_MS, NULL, NULL, "init",
				       env->db, NULL), 0);
	tu_receiver_start(&env->rx, env->dir);
}

/* tu_env_open's world, on an SQLite file whatever the run's engine: these
 * tests break files (read-only, full disk) and watch their locks. */
static void env_open(struct tu_env *env, const char *name)
{
	env->dir = tu_tmpdir(name);
	env_start(env, tu_path(env->dir, "relay.db"));
}

static struct store *store_open_ok(const char *path)
{
	struct store *store = NULL;
	char err[256];

	ck_assert_msg(store_open(path, STORE_OPEN_EXISTING, &store, err,
				 sizeof(err)) == STORE_OK, "%s", err);
	return store;
}

/* Produces n events of cloud_id; ids (may be NULL) gets their ids. */
static void produce(struct tu_env *env, const char *cloud_id, int n,
		    int64_t *ids)
{
	struct store *store = store_open_ok(env->db);

	for (int i = 0; i < n; i++) {
		char number[32];
		struct new_event ev = {
			cloud_id, number, "network_1", "sip_uri_1", parties,
		};
		int64_t id = 0;

		snprintf(number, sizeof(number), "+1555%07d", i);
		ck_assert_int_eq(store_enqueue(store, &ev, &id), STORE_OK);
		if (ids)
			ids[i] = id;
	}
	store_close(store);
}

/* ---- reading back --------------------------------------------------------- */

struct tally {
	int rows;
	int by_status[4];
	int64_t max_attempts;
	int64_t min_attempts;
};

static int tally_row(const struct history_row *h, void *arg)
{
	struct tally *t = arg;
	enum event_status status;

	ck_assert_int_eq(store_status_parse(h->status, &status), 0);
	if (t->rows == 0 || h->attempts < t->min_attempts)
		t->min_attempts = h->attempts;
	if (h->attempts > t->max_attempts)
		t->max_attempts = h->attempts;
	t->rows++;
	t->by_status[status]++;
	return 0;
}

static struct tally tally(struct tu_env *env)
{
	struct history_filter filter = { .limit = 0 };
	struct tally t;
	struct store *store = store_open_ok(env->db);

	memset(&t, 0, sizeof(t));
	ck_assert_int_eq(store_history(store, &filter, tally_row, &t), STORE_OK);
	store_close(store);
	return t;
}

/* Waits until n rows are delivered; returns the last tally. */
static struct tally wait_delivered(struct tu_env *env, int n, int timeout_ms)
{
	struct tally t;

	for (int waited = 0;; waited += 100) {
		t = tally(env);
		if (t.by_status[EVENT_DELIVERED] >= n || waited >= timeout_ms)
			return t;
		tu_sleep_ms(100);
	}
}

struct attempts {
	int count;
	long status[8];
	char error[8][128];
	int64_t started_ms[8];
	int64_t duration_ms[8];
};

static int take_attempt(const struct attempt_row *a, void *arg)
{
	struct attempts *list = arg;
	int i = list->count++;

	ck_assert_int_eq(a->attempt, list->count);
	if (i < 8) {
		list->status[i] = a->http_status;
		snprintf(list->error[i], sizeof(list->error[i]), "%s",
			 a->error ? a->error : "");
		ck_assert_int_eq(time_parse(a->started_at, &list->started_ms[i]), 0);
		list->duration_ms[i] = a->duration_ms;
	}
	return 0;
}

static struct attempts attempts_of(struct tu_env *env, int64_t id)
{
	struct attempts list;
	struct store *store = store_open_ok(env->db);

	memset(&list, 0, sizeof(list));
	ck_assert_int_eq(store_attempts(store, id, take_attempt, &list), STORE_OK);
	store_close(store);
	return list;
}

struct one_row {
	char status[16];
	int64_t attempts;
	long http_status;
	char next_attempt_at[TIME_TEXT_SIZE];
	char last_attempt_at[TIME_TEXT_SIZE];
};

static int take_row(const struct history_row *h, void *arg)
{
	struct one_row *row = arg;

	snprintf(row->status, sizeof(row->status), "%s", h->status);
	row->attempts = h->attempts;
	row->http_status = h->http_status;
	snprintf(row->next_attempt_at, sizeof(row->next_attempt_at), "%s",
		 h->next_attempt_at ? h->next_attempt_at : "");
	snprintf(row->last_attempt_at, sizeof(row->last_attempt_at), "%s",
		 h->last_attempt_at ? h->last_attempt_at : "");
	return 0;
}

static struct one_row row_of(struct tu_env *env, int64_t id)
{
	struct history_filter filter = { .id = id };
	struct one_row row;
	struct store *store = store_open_ok(env->db);

	memset(&row, 0, sizeof(row));
	ck_assert_int_eq(store_history(store, &filter, take_row, &row), STORE_OK);
	store_close(store);
	ck_assert_msg(row.status[0], "event %lld not found", (long long)id);
	return row;
}

/*
 * How often the receiver saw each webhook-id 1..max (seen[0] counts ids
 * outside that range); the ids file has one "id status ms serial" line per
 * request.
 */
static int *ids_seen(struct tu_env *env, int max, long status_filter)
{
	char *text = tu_read_file(env->rx.ids_path, NULL);
	int *seen = calloc((size_t)max + 1, sizeof(*seen));

	ck_assert_ptr_nonnull(seen);
	for (char *line = text; line && *line;) {
		char *end, *next = strchr(line, '\n');
		long id = strtol(line, &end, 10);
		long status = strtol(end, NULL, 10);

		if (status_filter < 0 || status == status_filter)
			seen[id >= 1 && id <= max ? id : 0]++;
		line = next ? next + 1 : NULL;
	}
	free(text);
	return seen;
}

/* ---- the daemon -------------------------------------------------------- */

/*
 * Starts `smartrelay run DB` with extra options, logging to dir/log_name,
 * in the network namespace netns (NULL: this one) through `ip netns exec`,
 * which becomes the relay: the pid returned is the relay's.
 */
static pid_t daemon_start_in(struct tu_env *env, const char *netns,
			     const char *log_name, const char *const extra[])
{
	char *log_path = tu_path(env->dir, log_name);
	char *argv[MAX_ARGS];
	int argc = 0;
	pid_t pid;

	if (netns) {
		argv[argc++] = (char *)IP_BIN;
		argv[argc++] = (char *)"netns";
		argv[argc++] = (char *)"exec";
		argv[argc++] = (char *)netns;
	}
	argv[argc++] = getenv("SMARTRELAY_BIN");
	argv[argc++] = (char *)"run";
	argv[argc++] = env->db;
	for (; extra && *extra && argc < MAX_ARGS - 1; extra++)
		argv[argc++] = (char *)*extra;
	argv[argc] = NULL;
	pid = tu_spawn(argv, NULL, log_path);
	free(log_path);
	return pid;
}

static pid_t daemon_start(struct tu_env *env, const char *log_name,
			  const char *const extra[])
{
	return daemon_start_in(env, NULL, log_name, extra);
}

static void daemon_stop(pid_t pid)
{
	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	ck_assert_int_eq(tu_wait(pid, 15000), 0);
}

static char *log_of(struct tu_env *env, const char *log_name)
{
	char *path = tu_path(env->dir, log_name);
	char *text = tu_read_file(path, NULL);

	free(path);
	return text ? text : strdup("");
}

/* Waits until the log holds needle; returns 1 when it does. */
static int log_wait(struct tu_env *env, const char *log_name,
		    const char *needle, int timeout_ms)
{
	for (int waited = 0;; waited += 50) {
		char *text = log_of(env, log_name);
		int found = strstr(text, needle) != NULL;

		free(text);
		if (found || waited >= timeout_ms)
			return found;
		tu_sleep_ms(50);
	}
}

/* ---- claims and leases -------------------------------------------------- */

START_TEST(killed_relay_is_taken_over)
{
	/* The timeout leaves the test seconds to kill it mid-transfer. */
	static const char *const first[] = {
		"--timeout", "3", "--lease", "3.5", NULL,
	};
	static const char *const second[] = {
		"--timeout", "1", "--lease", "1.5", "--grace", "1", NULL,
	};
	enum { N = 5 };
	struct tu_env env;
	struct tally t;
	int64_t ids[N];
	int *seen;
	char *text;
	pid_t pid;

	env_open(&env, "takeover");
	/* The first request of each event hangs, the second is answered. */
	tu_provision(&env, "default", "/seq/hang,204", "application/json");
	produce(&env, NULL, N, ids);
	pid = daemon_start(&env, "first.log", first);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, N, 10000), N);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(tu_wait(pid, 5000), 128 + SIGKILL);
	t = tally(&env);
	ck_assert_int_eq(t.by_status[EVENT_SENDING], N);

	pid = daemon_start(&env, "second.log", second);
	t = wait_delivered(&env, N, SETTLE_MS);
	daemon_stop(pid);
	ck_assert_int_eq(t.rows, N);
	ck_assert_int_eq(t.by_status[EVENT_DELIVERED], N);
	/* The killed relay's attempts were never recorded, so not counted. */
	ck_assert_int_eq(t.max_attempts, 1);
	ck_assert_int_eq(t.min_attempts, 1);
	seen = ids_seen(&env, (int)ids[N - 1], 204);
	for (int i = 0; i < N; i++) {
		struct attempts a = attempts_of(&env, ids[i]);

		ck_assert_int_eq(seen[ids[i]], 1);
		ck_assert_int_eq(a.count, 1);
		ck_assert_int_eq(a.status[0], 204);
	}
	free(seen);
	text = log_of(&env, "second.log");
	ck_assert_msg(strstr(text, "took over") != NULL, "%s", text);
	free(text);
	tu_env_close(&env);
}
END_TEST

START_TEST(paused_relay_outcome_is_refused)
{
	static const char *const first[] = {
		"--timeout", "3", "--lease", "3.5", NULL,
	};
	struct tu_env env;
	struct one_row row;
	struct attempts a;
	int64_t id;
	char *err = NULL, line[64];
	pid_t pid;

	env_open(&env, "fence");
	tu_provision(&env, "default", "/seq/hang,204", "application/json");
	produce(&env, NULL, 1, &id);
	pid = daemon_start(&env, "paused.log", first);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 1, 10000), 1);
	/* Frozen mid-transfer past its lease, as a stalled host would be. */
	ck_assert_int_eq(kill(pid, SIGSTOP), 0);
	tu_sleep_ms(4000);
	ck_assert_int_eq(tu_smartrelay(CMD_TIMEOUT_MS, NULL, &err, "run",
				       "--once", env.db, NULL), 0);
	ck_assert_msg(strstr(err, "took over 1 events") != NULL, "%s", err);
	free(err);
	ck_assert_str_eq(row_of(&env, id).status, "delivered");

	/* Woken up, its transfer has timed out: that outcome must not
	 * overwrite the delivery. */
	ck_assert_int_eq(kill(pid, SIGCONT), 0);
	snprintf(line, sizeof(line), "outcome refused id=%lld cloud_id=default",
		 (long long)id);
	ck_assert_int_eq(log_wait(&env, "paused.log", line, 10000), 1);
	daemon_stop(pid);
	row = row_of(&env, id);
	ck_assert_str_eq(row.status, "delivered");
	ck_assert_int_eq(row.attempts, 1);
	ck_assert_int_eq(row.http_status, 204);
	a = attempts_of(&env, id);
	ck_assert_int_eq(a.count, 1);
	ck_assert_int_eq(a.status[0], 204);
	tu_env_close(&env);
}
END_TEST

START_TEST(relays_share_one_database)
{
	static const char *const opts[] = {
		"--concurrency", "16", "--grace", "2", NULL,
	};
	enum { RELAYS = 3, N = 3000, BATCH = 500 };
	static const char *const logs[RELAYS] = { "r1.log", "r2.log", "r3.log" };
	struct tu_env env;
	struct tally t;
	pid_t pids[RELAYS];
	int64_t first_id, last_id;
	int *seen;

	env_open(&env, "shared");
	tu_provision(&env, "default", "/", "application/json");
	for (int r = 0; r < RELAYS; r++)
		pids[r] = daemon_start(&env, logs[r], opts);
	/* Produced while the relays run, so that claims race the inserts. */
	produce(&env, NULL, 1, &first_id);
	for (int done = 1; done < N; done += BATCH)
		produce(&env, NULL, done + BATCH <= N ? BATCH : N - done, NULL);
	t = wait_delivered(&env, N, SETTLE_MS);
	for (int r = 0; r < RELAYS; r++)
		daemon_stop(pids[r]);
	last_id = first_id + N - 1;
	ck_assert_int_eq(t.rows, N);
	ck_assert_int_eq(t.by_status[EVENT_DELIVERED], N);
	ck_assert_int_eq(t.max_attempts, 1);

	/* Each event was claimed by one relay only: one request per id. */
	seen = ids_seen(&env, (int)last_id, -1);
	ck_assert_int_eq(seen[0], 0);
	for (int64_t id = first_id; id <= last_id; id++)
		ck_assert_msg(seen[id] == 1, "id %lld seen %d times",
			      (long long)id, seen[id]);
	free(seen);
	for (int r = 0; r < RELAYS; r++) {
		char *text = log_of(&env, logs[r]);

		ck_assert_msg(strstr(text, "locked") == NULL &&
			      strstr(text, " error ") == NULL,
			      "%s: %s", logs[r], text);
		free(text);
	}
	tu_env_close(&env);
}
END_TEST

/* ---- run --workers ------------------------------------------------------ */

/* The pid that worker k logged in its "relay started" line, or -1. */
static pid_t worker_pid(struct tu_env *env, const char *log_name, int k)
{
	char *text = log_of(env, log_name), needle[32];
	const char *at;
	pid_t pid = -1;

	snprintf(needle, sizeof(needle), "worker=%d pid=", k);
	at = strstr(text, needle);
	if (at)
		pid = (pid_t)strtol(at + strlen(needle), NULL, 10);
	free(text);
	return pid;
}

/* Starts `run DB opts` (two workers) logging to workers.log, and waits
 * until both workers have started. */
static pid_t two_workers_start(struct tu_env *env, const char *const opts[])
{
	pid_t pid = daemon_start(env, "workers.log", opts);

	ck_assert_int_eq(log_wait(env, "workers.log", "worker=2 pid=", 10000), 1);
	ck_assert_int_eq(log_wait(env, "workers.log", "worker=1 pid=", 10000), 1);
	return pid;
}

START_TEST(workers_share_the_outbox)
{
	enum { WORKERS = 3, N = 600 };
	struct tu_env env;
	struct tally t;
	int64_t ids[N];
	int *seen;
	char *err = NULL;

	env_open(&env, "workers");
	tu_provision(&env, "default", "/", "application/json");
	produce(&env, NULL, N, ids);
	/* Few slots each, so that every worker gets a share. */
	ck_assert_int_eq(tu_smartrelay(CMD_TIMEOUT_MS, NULL, &err, "run",
				       "--once", "--workers", "3",
				       "--concurrency", "4", env.db, NULL), 0);
	ck_assert_int_eq(tu_count(err, "relay started"), WORKERS);
	ck_assert_int_eq(tu_count(err, "relay stopped"), WORKERS);
	for (int k = 1; k <= WORKERS; k++) {
		char needle[32];

		snprintf(needle, sizeof(needle), "worker=%d pid=", k);
		ck_assert_msg(strstr(err, needle) != NULL, "%s", err);
	}
	ck_assert_int_eq(tu_count(err, "outcome=delivered"), N);
	ck_assert_msg(strstr(err, " error ") == NULL, "%s", err);
	free(err);
	t = tally(&env);
	ck_assert_int_eq(t.by_status[EVENT_DELIVERED], N);
	ck_assert_int_eq(t.max_attempts, 1);
	seen = ids_seen(&env, (int)ids[N - 1], -1);
	ck_assert_int_eq(seen[0], 0);
	for (int i = 0; i < N; i++)
		ck_assert_msg(seen[ids[i]] == 1, "id %lld seen %d times",
			      (long long)ids[i], seen[ids[i]]);
	free(seen);
	tu_env_close(&env);
}
END_TEST

START_TEST(sigterm_stops_every_worker)
{
	static const char *const opts[] = { "--workers", "2", NULL };
	enum { N = 50 };
	struct tu_env env;
	struct tally t;
	pid_t pid;
	char *text;

	env_open(&env, "workersterm");
	tu_provision(&env, "default", "/", "application/json");
	pid = two_workers_start(&env, opts);
	produce(&env, NULL, N, NULL);
	t = wait_delivered(&env, N, SETTLE_MS);
	ck_assert_int_eq(t.by_status[EVENT_DELIVERED], N);
	daemon_stop(pid);
	text = log_of(&env, "workers.log");
	ck_assert_int_eq(tu_count(text, "relay stopped"), 2);
	ck_assert_msg(strstr(text, " error ") == NULL, "%s", text);
	free(text);
	tu_env_close(&env);
}
END_TEST

START_TEST(group_stop_keeps_the_grace_period)
{
	static const char *const opts[] = {
		"--workers", "2", "--concurrency", "2", "--grace", "10", NULL,
	};
	enum { N = 4 };
	struct tu_env env;
	struct tally t;
	pid_t pid, workers[2];
	char *text;

	env_open(&env, "workersgroup");
	tu_provision(&env, "default", "/slow/1500", "application/json");
	produce(&env, NULL, N, NULL);
	pid = daemon_start(&env, "workers.log", opts);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, N, 10000), N);
	/* As a terminal's Ctrl-C or a service manager's stop sends it: to
	 * every process of the group, which the parent then passes on. */
	for (int k = 0; k < 2; k++) {
		workers[k] = worker_pid(&env, "workers.log", k + 1);
		ck_assert_int_gt(workers[k], 0);
		ck_assert_int_eq(kill(workers[k], SIGTERM), 0);
	}
	ck_assert_int_eq(kill(pid, SIGTERM), 0);
	ck_assert_int_eq(tu_wait(pid, 15000), 0);
	t = tally(&env);
	ck_assert_int_eq(t.by_status[EVENT_DELIVERED], N);
	text = log_of(&env, "workers.log");
	ck_assert_msg(strstr(text, "cancelled") == NULL, "%s", text);
	ck_assert_int_eq(tu_count(text, "relay stopped"), 2);
	free(text);
	tu_env_close(&env);
}
END_TEST

START_TEST(killed_worker_stops_the_others)
{
	static const char *const opts[] = { "--workers", "2", NULL };
	struct tu_env env;
	pid_t pid, second;
	char *text, line[96];

	env_open(&env, "workerkill");
	tu_provision(&env, "default", "/", "application/json");
	pid = two_workers_start(&env, opts);
	second = worker_pid(&env, "workers.log", 2);
	ck_assert_int_gt(second, 0);
	ck_assert_int_ne(second, pid);
	ck_assert_int_eq(kill(second, SIGKILL), 0);
	/* The parent reports it, stops the other and fails. */
	ck_assert_int_eq(tu_wait(pid, 15000), 1);
	text = log_of(&env, "workers.log");
	snprintf(line, sizeof(line), "worker 2 (pid %ld) was killed by signal %d",
		 (long)second, SIGKILL);
	ck_assert_msg(strstr(text, line) != NULL, "%s", text);
	ck_assert_int_eq(tu_count(text, "relay stopped"), 1);
	free(text);
	tu_env_close(&env);
}
END_TEST

START_TEST(killed_parent_stops_its_workers)
{
	static const char *const opts[] = { "--workers", "2", NULL };
	struct tu_env env;
	pid_t pid;
	char *text;
	int stopped = 0;

	env_open(&env, "workerorphans");
	tu_provision(&env, "default", "/", "application/json");
	pid = two_workers_start(&env, opts);
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(tu_wait(pid, 5000), 128 + SIGKILL);
	/* No orphan keeps running: each worker stops as if told to. */
	for (int waited = 0; stopped < 2 && waited < 10000; waited += 50) {
		text = log_of(&env, "workers.log");
		stopped = tu_count(text, "relay stopped");
		free(text);
		tu_sleep_ms(50);
	}
	ck_assert_int_eq(stopped, 2);
	tu_env_close(&env);
}
END_TEST

START_TEST(each_worker_serves_its_metrics)
{
	static const char *const opts[] = {
		"--workers", "2", "--metrics-listen", "127.0.0.1:0", NULL,
	};
	struct tu_env env;
	int ports[2] = { 0, 0 }, found = 0;
	char *text;
	const char *at;
	pid_t pid;

	env_open(&env, "workersmetrics");
	tu_provision(&env, "default", "/", "application/json");
	pid = two_workers_start(&env, opts);
	text = log_of(&env, "workers.log");
	for (at = text; (at = strstr(at, "metrics listening")) != NULL; at++) {
		const char *port = strstr(at, "port=");

		ck_assert_ptr_nonnull(port);
		ck_assert_int_lt(found, 2);
		ports[found++] = (int)strtol(port + 5, NULL, 10);
	}
	free(text);
	/* Port 0: each worker its own free port, each scraped alone. */
	ck_assert_int_eq(found, 2);
	ck_assert_int_ne(ports[0], ports[1]);
	for (int k = 0; k < 2; k++) {
		int status = 0;
		char *body = tu_http_request(ports[k], "GET", "/metrics", &status);

		ck_assert_int_eq(status, 200);
		ck_assert_ptr_nonnull(strstr(body, "smartrelay_info{"));
		free(body);
	}
	daemon_stop(pid);
	tu_env_close(&env);
}
END_TEST

START_TEST(worker_stopped_alone_fails_the_daemon)
{
	static const char *const opts[] = { "--workers", "2", NULL };
	struct tu_env env;
	pid_t pid, second;
	char *text;

	env_open(&env, "workeralone");
	tu_provision(&env, "default", "/", "application/json");
	pid = two_workers_start(&env, opts);
	second = worker_pid(&env, "workers.log", 2);
	ck_assert_int_gt(second, 0);
	/* It stops cleanly, but nobody stopped the daemon. */
	ck_assert_int_eq(kill(second, SIGTERM), 0);
	ck_assert_int_eq(tu_wait(pid, 15000), 1);
	text = log_of(&env, "workers.log");
	ck_assert_msg(strstr(text, "worker 2 ended: stopping the others")
		      != NULL, "%s", text);
	ck_assert_int_eq(tu_count(text, "relay stopped"), 2);
	free(text);
	tu_env_close(&env);
}
END_TEST

/* Started with SIGCHLD ignored (a careless launcher), the parent still
 * sees its workers end. */
START_TEST(workers_end_though_sigchld_ignored)
{
	enum { N = 20 };
	struct tu_env env;
	struct tally t;
	char *err = NULL;
	char *argv[] = {
		/* bash: dash does not pass an ignored SIGCHLD on. */
		(char *)"/bin/bash", (char *)"-c",
		(char *)"trap '' CHLD; exec \"$0\" run --once --workers 2 \"$1\"",
		getenv("SMARTRELAY_BIN"), NULL, NULL,
	};

	env_open(&env, "workersigchld");
	tu_provision(&env, "default", "/", "application/json");
	produce(&env, NULL, N, NULL);
	argv[4] = env.db;
	ck_assert_int_eq(tu_run(argv, CMD_TIMEOUT_MS, NULL, &err), 0);
	ck_assert_int_eq(tu_count(err, "relay stopped"), 2);
	ck_assert_msg(strstr(err, " error ") == NULL, "%s", err);
	free(err);
	t = tally(&env);
	ck_assert_int_eq(t.by_status[EVENT_DELIVERED], N);
	tu_env_close(&env);
}
END_TEST

/* The default app's value of key, as a new string; NULL when unset. */
static char *config_of(struct tu_env *env, const char *key)
{
	struct store *store = store_open_ok(env->db);
	struct config_row *rows = NULL;
	size_t count = 0;
	char *value = NULL;

	ck_assert_int_eq(store_config_list(store, "default", &rows, &count),
			 STORE_OK);
	for (size_t i = 0; i < count && value == NULL; i++)
		if (strcmp(rows[i].key, key) == 0)
			value = strdup(rows[i].value);
	store_config_rows_free(rows, count);
	store_close(store);
	return value;
}

/*
 * Two workers that both meet the 410 disable the endpoint once: the first
 * writes its reason and says so, the second leaves them as they are. The
 * answers come a second late, so that both workers have sent before either
 * hears; should one start later still, the run is repeated.
 */
START_TEST(workers_meeting_410_disable_once)
{
	enum { N = 16, SLOTS = 4, TRIES = 5 };
	struct tu_env env;
	char *err = NULL, *reason, logged[128];
	bool raced = false;

	env_open(&env, "workersgone");
	tu_provision(&env, "default", "/status/410?delay_ms=1000",
		     "application/json");
	for (int i = 0; i < TRIES && !raced; i++) {
		produce(&env, NULL, N, NULL);
		ck_assert_int_eq(tu_smartrelay(CMD_TIMEOUT_MS, NULL, &err,
					       "run", "--once", "--workers",
					       "2", "--concurrency", "4",
					       env.db, NULL), 0);
		ck_assert_msg(tu_count(err, " error endpoint disabled") == 1,
			      "%s", err);
		/* More answers than one worker's slots: both sent. */
		raced = tu_count(err, "outcome=gone") > SLOTS;
		if (raced) {
			ck_assert_msg(tu_count(err, "was already disabled")
				      == 1, "%s", err);
			/* The reason kept is the one logged. */
			reason = config_of(&env, ENDPOINT_DISABLED);
			ck_assert_ptr_nonnull(reason);
			snprintf(logged, sizeof(logged), "reason=\"%s\"",
				 reason);
			ck_assert_msg(strstr(err, logged) != NULL,
				      "%s not in %s", logged, err);
			free(reason);
		}
		free(err);
		ck_assert_int_eq(tu_smartrelay(CMD_TIMEOUT_MS, NULL, NULL,
					       "config", env.db, "enable",
					       NULL), 0);
	}
	ck_assert_msg(raced, "the workers never both met the 410");
	tu_env_close(&env);
}
END_TEST

START_TEST(workers_bad_usage)
{
	struct tu_env env;
	char *err = NULL;

	env_open(&env, "workersusage");
	ck_assert_int_eq(tu_smartrelay(CMD_TIMEOUT_MS, NULL, &err, "run",
				       "--workers", "0", env.db, NULL), 2);
	ck_assert_msg(strstr(err, "--workers: '0'") != NULL, "%s", err);
	free(err);
	/* Worker 3 would listen on 65536. */
	ck_assert_int_eq(tu_smartrelay(CMD_TIMEOUT_MS, NULL, &err, "run",
				       "--workers", "3", "--metrics-listen",
				       "127.0.0.1:65534", env.db, NULL), 2);
	ck_assert_msg(strstr(err, "port 65536, for worker 3, is above 65535")
		      != NULL, "%s", err);
	free(err);
	/* Every worker reports the missing database; the command fails. */
	ck_assert_int_eq(tu_smartrelay(CMD_TIMEOUT_MS, NULL, &err, "run",
				       "--once", "--workers", "2",
				       "/nonexistent/relay.db", NULL), 1);
	ck_assert_int_eq(tu_count(err, "/nonexistent/relay.db"), 2);
	free(err);
	tu_env_close(&env);
}
END_TEST

/* ---- the receiver misbehaves --------------------------------------------- */

static const char *const fast_retries[] = {
	"--retry-base", "0.05", "--retry-max", "0.2", "--timeout", "0.5",
	"--lease", "3", NULL,
};

START_TEST(transient_failures_retry_until_delivered)
{
	static const char *const paths[] = {
		"/seq/500,503,204", "/seq/reset,204", "/seq/hang,204",
		"/seq/502,504,204", "/seq/408,429,204", "/seq/resetmid,204",
	};
	/* Two events an app: four transient failures in a row at most, one
	 * short of what opens the app's circuit breaker (tested apart). */
	enum { APPS = sizeof(paths) / sizeof(paths[0]), PER_APP = 2 };
	struct tu_env env;
	struct tally t;
	int64_t ids[APPS][PER_APP];
	pid_t pid;

	env_open(&env, "transient");
	for (size_t i = 0; i < APPS; i++) {
		char cloud_id[16];

		snprintf(cloud_id, sizeof(cloud_id), "app%zu", i);
		tu_provision(&env, cloud_id, paths[i], "application/json");
		produce(&env, cloud_id, PER_APP, ids[i]);
	}
	pid = daemon_start(&env, "relay.log", fast_retries);
	t = wait_delivered(&env, APPS * PER_APP, SETTLE_MS);
	daemon_stop(pid);
	ck_assert_int_eq(t.rows, APPS * PER_APP);
	ck_assert_int_eq(t.by_status[EVENT_DELIVERED], APPS * PER_APP);
	for (int k = 0; k < PER_APP; k++) {
		struct attempts a = attempts_of(&env, ids[0][k]);

		ck_assert_int_eq(a.count, 3);
		ck_assert_int_eq(a.status[0], 500);
		ck_assert_int_eq(a.status[1], 503);
		ck_assert_int_eq(a.status[2], 204);
		a = attempts_of(&env, ids[1][k]);
		ck_assert_int_eq(a.count, 2);
		ck_assert_int_eq(a.status[0], 0);
		ck_assert_msg(strstr(a.error[0], "reset") != NULL, "%s",
			      a.error[0]);
		a = attempts_of(&env, ids[2][k]);
		ck_assert_int_eq(a.count, 2);
		ck_assert_msg(strstr(a.error[0], "timeout") != NULL, "%s",
			      a.error[0]);
		a = attempts_of(&env, ids[3][k]);
		ck_assert_int_eq(a.count, 3);
		ck_assert_int_eq(a.status[0], 502);
		ck_assert_int_eq(a.status[1], 504);
		ck_assert_int_eq(row_of(&env, ids[3][k]).attempts, 3);
		a = attempts_of(&env, ids[4][k]);
		ck_assert_int_eq(a.count, 3);
		ck_assert_int_eq(a.status[0], 408);
		ck_assert_int_eq(a.status[1], 429);
		ck_assert_int_eq(a.status[2], 204);
		/* Reset after half a 204: not delivered, retried. */
		a = attempts_of(&env, ids[5][k]);
		ck_assert_int_eq(a.count, 2);
		ck_assert_int_eq(a.status[0], 0);
		ck_assert_int_eq(a.status[1], 204);
	}
	tu_env_close(&env);
}
END_TEST

/* Starts a receiver on a given port, recording ids to ids_path. */
static pid_t receiver_on_port(struct tu_env *env, int port,
			      const char *ids_path)
{
	char port_text[16];
	char *argv[] = {
		getenv("SMARTRELAY_RECEIVER"), (char *)"--port", port_text,
		(char *)"--ids", (char *)ids_path, (char *)"--max-seconds",
		(char *)"300", NULL,
	};
	char *log_path = tu_path(env->dir, "receiver2.log");
	pid_t pid;

	snprintf(port_text, sizeof(port_text), "%d", port);
	pid = tu_spawn(argv, NULL, log_path);
	free(log_path);
	return pid;
}

START_TEST(receiver_down_then_back)
{
	/* Retries fast, and never run out while the receiver is away. */
	static const char *const opts[] = {
		"--retry-base", "0.05", "--retry-max", "0.2",
		"--max-attempts", "100000", NULL,
	};
	enum { N = 5 };
	struct tu_env env;
	struct tally t;
	char *ids_path;
	pid_t pid, rx;
	int port, *seen;

	env_open(&env, "down");
	port = env.rx.port;
	tu_provision(&env, "default", "/", "application/json");
	ids_path = strdup(env.rx.ids_path);
	/* Nothing listens: every attempt is refused until it comes back. */
	tu_receiver_stop(&env.rx);
	produce(&env, NULL, N, NULL);
	pid = daemon_start(&env, "relay.log", opts);
	/* Every event refused once: then the app's circuit breaker pauses
	 * it, and its probe finds the receiver back. */
	for (int waited = 0; waited < SETTLE_MS; waited += 50) {
		t = tally(&env);
		if (t.min_attempts >= 1)
			break;
		tu_sleep_ms(50);
	}
	ck_assert_int_ge(t.min_attempts, 1);
	rx = receiver_on_port(&env, port, ids_path);
	t = wait_delivered(&env, N, SETTLE_MS);
	daemon_stop(pid);
	kill(rx, SIGTERM);
	ck_assert_int_eq(tu_wait(rx, 5000), 0);
	ck_assert_int_eq(t.by_status[EVENT_DELIVERED], N);
	/* The receiver's ids are read from the file it wrote. */
	env.rx.ids_path = ids_path;
	seen = ids_seen(&env, N, 204);
	env.rx.ids_path = NULL;
	for (int id = 1; id <= N; id++)
		ck_assert_int_eq(seen[id], 1);
	free(seen);
	free(ids_path);
	free(env.db);
	free(env.dir);
}
END_TEST

START_TEST(retry_after_spaces_attempts_then_fails)
{
	static const char *const opts[] = {
		"--retry-base", "0.05", "--retry-max", "1", "--max-attempts",
		"3", NULL,
	};
	struct tu_env env;
	struct one_row row;
	struct attempts a;
	int64_t id[2];
	pid_t pid;

	env_open(&env, "retryafter");
	/* 1 s asked for; 600 s asked for, capped by --retry-max 1. */
	tu_provision(&env, "a", "/status/503?retry_after=1",
		     "application/json");
	tu_provision(&env, "b", "/status/503?retry_after=600",
		     "application/json");
	produce(&env, "a", 1, &id[0]);
	produce(&env, "b", 1, &id[1]);
	pid = daemon_start(&env, "relay.log", opts);
	for (int waited = 0; waited < SETTLE_MS; waited += 100) {
		if (tally(&env).by_status[EVENT_FAILED] == 2)
			break;
		tu_sleep_ms(100);
	}
	daemon_stop(pid);
	for (int i = 0; i < 2; i++) {
		row = row_of(&env, id[i]);
		ck_assert_str_eq(row.status, "failed");
		ck_assert_int_eq(row.attempts, 3);
		ck_assert_int_eq(row.http_status, 503);
		a = attempts_of(&env, id[i]);
		ck_assert_int_eq(a.count, 3);
		/* Each retry waited at least min(Retry-After, --retry-max). */
		for (int k = 1; k < 3; k++)
			ck_assert_int_ge(a.started_ms[k] - (a.started_ms[k - 1] +
							    a.duration_ms[k - 1]),
					 990);
	}
	tu_env_close(&env);
}
END_TEST

START_TEST(slow_answers_are_delivered)
{
	static const char *const opts[] = { "--timeout", "10", NULL };
	enum { N = 8 };
	struct tu_env env;
	struct tally t;
	pid_t pid;

	env_open(&env, "slow");
	tu_provision(&env, "default", "/slow/1500", "application/json");
	produce(&env, NULL, N, NULL);
	pid = daemon_start(&env, "relay.log", opts);
	t = wait_delivered(&env, N, SETTLE_MS);
	daemon_stop(pid);
	ck_assert_int_eq(t.by_status[EVENT_DELIVERED], N);
	ck_assert_int_eq(t.max_attempts, 1);
	tu_env_close(&env);
}
END_TEST

static long vm_hwm_kb(pid_t pid)
{
	char path[64], *text, *line;
	long kb = -1;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	text = tu_read_file(path, NULL);
	ck_assert_ptr_nonnull(text);
	line = strstr(text, "VmHWM:");
	if (line)
		kb = strtol(line + 6, NULL, 10);
	free(text);
	return kb;
}

/* The peak resident size of a relay that waited for nothing. */
static long idle_hwm_kb(struct tu_env *env)
{
	pid_t pid = daemon_start(env, "idle.log", NULL);
	long kb;

	ck_assert_int_eq(log_wait(env, "idle.log", "relay started", 10000), 1);
	tu_sleep_ms(200);
	kb = vm_hwm_kb(pid);
	daemon_stop(pid);
	return kb;
}

START_TEST(endless_body_is_cut)
{
	static const char *const opts[] = {
		"--timeout", "20", "--lease", "30", "--max-attempts", "1", NULL,
	};
	enum { N = 20 };
	struct tu_env env;
	struct tally t;
	long idle_kb, busy_kb;
	int64_t ids[N];
	pid_t pid;

	env_open(&env, "endless");
	tu_provision(&env, "default", "/endless/200", "application/json");
	idle_kb = idle_hwm_kb(&env);
	produce(&env, NULL, N, ids);
	pid = daemon_start(&env, "relay.log", opts);
	for (int waited = 0; waited < SETTLE_MS; waited += 100) {
		t = tally(&env);
		if (t.by_status[EVENT_FAILED] == N)
			break;
		tu_sleep_ms(100);
	}
	busy_kb = vm_hwm_kb(pid);
	daemon_stop(pid);
	ck_assert_int_eq(t.by_status[EVENT_FAILED], N);
	/* Cut after a bounded read, with the status seen: not a timeout. */
	for (int i = 0; i < N; i++) {
		struct one_row row = row_of(&env, ids[i]);

		ck_assert_int_eq(row.http_status, 200);
		ck_assert_int_eq(row.attempts, 1);
	}
	/* 20 endless streams cost no more than a few MB over idle. */
	ck_assert_msg(busy_kb - idle_kb < 16 * 1024, "VmHWM %ld kB, idle %ld kB",
		      busy_kb, idle_kb);
	tu_env_close(&env);
}
END_TEST

/* ---- the database misbehaves -------------------------------------------- */

static void hold_lock(void *arg)
{
	tu_sleep_ms(*(int *)arg);
}

/* A child holds the write lock for hold_ms, inside an insert of one event. */
static pid_t locker_start(struct tu_env *env, int hold_ms)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct store *store = NULL;
		char err[256];
		struct new_event ev = {
			NULL, "+15550000000", "network_1", "sip_uri_1", parties,
		};
		int rc = store_open(env->db, STORE_OPEN_EXISTING, &store, err,
				    sizeof(err));

		if (rc == STORE_OK) {
			store_set_tx_hook(store, hold_lock, &hold_ms);
			rc = store_enqueue(store, &ev, NULL);
			store_close(store);
		}
		_exit(rc == STORE_OK ? 0 : 1);
	}
	return pid;
}

START_TEST(locked_database_delays_but_loses_nothing)
{
	static const char *const opts[] = { "--timeout", "10", NULL };
	enum { N = 10 };
	struct tu_env env;
	struct tally t;
	pid_t pid, locker;
	int *seen;
	char *text;

	env_open(&env, "locked");
	tu_provision(&env, "default", "/slow/500", "application/json");
	produce(&env, NULL, N, NULL);
	pid = daemon_start(&env, "relay.log", opts);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, N, 10000), N);
	/* Longer than one busy timeout (5 s): the outcomes of the transfers
	 * in flight wait through it. */
	locker = locker_start(&env, 6000);
	ck_assert_int_eq(tu_wait(locker, 20000), 0);
	t = wait_delivered(&env, N + 1, SETTLE_MS);
	daemon_stop(pid);
	ck_assert_int_eq(t.rows, N + 1);
	ck_assert_int_eq(t.by_status[EVENT_DELIVERED], N + 1);
	ck_assert_int_eq(t.max_attempts, 1);
	seen = ids_seen(&env, N + 1, 204);
	for (int id = 1; id <= N + 1; id++)
		ck_assert_int_eq(seen[id], 1);
	free(seen);
	text = log_of(&env, "relay.log");
	ck_assert_msg(strstr(text, " error ") == NULL, "%s", text);
	free(text);
	tu_env_close(&env);
}
END_TEST

/*
 * A write that fails on the file itself: a file size limit on the running
 * relay makes every write past it fail with EFBIG, as a full disk would,
 * whatever the caller's privileges. The limit is the WAL's size, where the
 * next commit must append; the relay's log stays far below it.
 */
START_TEST(failing_writes_keep_outcomes_until_they_succeed)
{
	static const char *const opts[] = { "--timeout", "10", NULL };
	enum { N = 10 };
	struct tu_env env;
	struct rlimit tight = { 0, RLIM_INFINITY }, loose;
	struct stat wal;
	struct tally t;
	pid_t pid;
	int *seen;
	char *text;

	env_open(&env, "fsize");
	tu_provision(&env, "default", "/slow/2000", "application/json");
	produce(&env, NULL, N, NULL);
	pid = daemon_start(&env, "relay.log", opts);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, N, 10000), N);
	text = tu_path(env.dir, "relay.db-wal");
	ck_assert_int_eq(stat(text, &wal), 0);
	free(text);
	ck_assert_int_ge(wal.st_size, 8192);
	tight.rlim_cur = (rlim_t)wal.st_size;
	ck_assert_int_eq(prlimit(pid, RLIMIT_FSIZE, &tight, &loose), 0);
	ck_assert_int_eq(log_wait(&env, "relay.log", "outcome write: failed",
				  10000), 1);
	/* A producer is not limited: its events wait for the relay. */
	produce(&env, NULL, N, NULL);
	tu_sleep_ms(1500);
	/* Nothing was written meanwhile: the rows are still claimed, and
	 * nothing new was claimed while outcomes wait. */
	t = tally(&env);
	ck_assert_int_eq(t.by_status[EVENT_SENDING], N);
	ck_assert_int_eq(t.by_status[EVENT_PENDING], N);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, N + 1, 0), N);
	ck_assert_int_eq(prlimit(pid, RLIMIT_FSIZE, &loose, NULL), 0);
	t = wait_delivered(&env, 2 * N, SETTLE_MS);
	daemon_stop(pid);
	ck_assert_int_eq(t.rows, 2 * N);
	ck_assert_int_eq(t.by_status[EVENT_DELIVERED], 2 * N);
	ck_assert_int_eq(t.max_attempts, 1);
	seen = ids_seen(&env, 2 * N, 204);
	for (int id = 1; id <= 2 * N; id++)
		ck_assert_int_eq(seen[id], 1);
	free(seen);
	text = log_of(&env, "relay.log");
	/* Reported once, not once per retry. */
	ck_assert_int_eq(tu_count(text, "retrying"), 1);
	ck_assert_ptr_nonnull(strstr(text, "database answers again"));
	free(text);
	tu_env_close(&env);
}
END_TEST

/* ---- configuration ------------------------------------------------------ */

START_TEST(config_change_mid_batch)
{
	static const char *const opts[] = { "--timeout", "10", NULL };
	enum { N = 5 };
	struct tu_env env;
	struct tally t;
	int64_t before[N], after[N];
	char *requests, *url;
	int *seen;
	pid_t pid;

	env_open(&env, "midbatch");
	tu_provision(&env, "default", "/slow/1500", "application/json");
	produce(&env, NULL, N, before);
	pid = daemon_start(&env, "relay.log", opts);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, N, 10000), N);
	/* While those are in flight, the URL changes. */
	url = tu_receiver_url(&env.rx, "/new");
	ck_assert_int_eq(tu_smartrelay(CMD_TIMEOUT_MS, NULL, NULL, "config",
				       env.db, "set",
				       "smartContactNotificationUrl", url, NULL),
			 0);
	free(url);
	produce(&env, NULL, N, after);
	t = wait_delivered(&env, 2 * N, SETTLE_MS);
	daemon_stop(pid);
	ck_assert_int_eq(t.by_status[EVENT_DELIVERED], 2 * N);
	ck_assert_int_eq(t.max_attempts, 1);
	requests = tu_receiver_requests(&env.rx);
	ck_assert_int_eq(tu_count(requests, "POST /slow/1500 "), N);
	ck_assert_int_eq(tu_count(requests, "POST /new "), N);
	for (int i = 0; i < N; i++) {
		char old_req[96], new_req[96];

		snprintf(old_req, sizeof(old_req), "webhook-id: %lld\r\n",
			 (long long)before[i]);
		snprintf(new_req, sizeof(new_req), "webhook-id: %lld\r\n",
			 (long long)after[i]);
		ck_assert_int_eq(tu_count(requests, old_req), 1);
		ck_assert_int_eq(tu_count(requests, new_req), 1);
	}
	free(requests);
	seen = ids_seen(&env, 2 * N, 204);
	for (int id = 1; id <= 2 * N; id++)
		ck_assert_int_eq(seen[id], 1);
	free(seen);
	tu_env_close(&env);
}
END_TEST

static Suite *faults_suite(void)
{
	Suite *s = suite_create("faults");
	TCase *leases = tcase_create("leases");
	TCase *receiver = tcase_create("receiver");
	TCase *database = tcase_create("database");
	TCase *config = tcase_create("config");

	tcase_set_timeout(leases, 120);
	tcase_set_timeout(receiver, 120);
	tcase_set_timeout(database, 120);
	tcase_set_timeout(config, 120);
	tcase_add_test(leases, killed_relay_is_taken_over);
	tcase_add_test(leases, paused_relay_outcome_is_refused);
	tcase_add_test(leases, relays_share_one_database);
	tcase_add_test(leases, workers_share_the_outbox);
	tcase_add_test(leases, sigterm_stops_every_worker);
	tcase_add_test(leases, group_stop_keeps_the_grace_period);
	tcase_add_test(leases, killed_worker_stops_the_others);
	tcase_add_test(leases, killed_parent_stops_its_workers);
	tcase_add_test(leases, each_worker_serves_its_metrics);
	tcase_add_test(leases, worker_stopped_alone_fails_the_daemon);
	tcase_add_test(leases, workers_end_though_sigchld_ignored);
	tcase_add_test(leases, workers_meeting_410_disable_once);
	tcase_add_test(leases, workers_bad_usage);
	tcase_add_test(receiver, transient_failures_retry_until_delivered);
	tcase_add_test(receiver, receiver_down_then_back);
	tcase_add_test(receiver, retry_after_spaces_attempts_then_fails);
	tcase_add_test(receiver, slow_answers_are_delivered);
	tcase_add_test(receiver, endless_body_is_cut);
	tcase_add_test(database, locked_database_delays_but_loses_nothing);
	tcase_add_test(database, failing_writes_keep_outcomes_until_they_succeed);
	tcase_add_test(config, config_change_mid_batch);
	suite_add_tcase(s, leases);
	suite_add_tcase(s, receiver);
	suite_add_tcase(s, database);
	suite_add_tcase(s, config);
	return s;
}

/* ---- as root: an immutable and a full file system ---------------------- */

/* Sets or clears the immutable flag of path, which even root cannot write. */
static void set_immutable(const char *path, int on)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int flags = 0;

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(ioctl(fd, FS_IOC_GETFLAGS, &flags), 0);
	flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
	ck_assert_msg(ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0,
		      "chattr %s: %s", path, strerror(errno));
	close(fd);
}

/*
 * Runs N events to /slow/2000, makes the database unwritable with
 * block(env) once they are in flight, checks that their outcomes wait,
 * then unblock(env) and checks that every one is delivered exactly once
 * and the failure was reported once.
 */
static void outcomes_survive(struct tu_env *env, void (*block)(struct tu_env *),
			     void (*unblock)(struct tu_env *))
{
	static const char *const opts[] = { "--timeout", "10", NULL };
	enum { N = 10 };
	struct tally t;
	pid_t pid;
	int *seen;
	char *text;

	tu_provision(env, "default", "/slow/2000", "application/json");
	produce(env, NULL, N, NULL);
	pid = daemon_start(env, "relay.log", opts);
	ck_assert_int_eq(tu_receiver_wait_count(&env->rx, N, 10000), N);
	block(env);
	ck_assert_int_eq(log_wait(env, "relay.log", "outcome write: failed",
				  10000), 1);
	tu_sleep_ms(1500);
	t = tally(env);
	ck_assert_int_eq(t.by_status[EVENT_SENDING], N);
	unblock(env);
	t = wait_delivered(env, N, SETTLE_MS);
	daemon_stop(pid);
	ck_assert_int_eq(t.rows, N);
	ck_assert_int_eq(t.by_status[EVENT_DELIVERED], N);
	ck_assert_int_eq(t.max_attempts, 1);
	seen = ids_seen(env, N, 204);
	for (int id = 1; id <= N; id++)
		ck_assert_int_eq(seen[id], 1);
	free(seen);
	text = log_of(env, "relay.log");
	ck_assert_int_eq(tu_count(text, "retrying"), 1);
	ck_assert_ptr_nonnull(strstr(text, "database answers again"));
	free(text);
}

static void db_files_immutable(struct tu_env *env, int on)
{
	char *wal = NULL;

	ck_assert_int_ne(asprintf(&wal, "%s-wal", env->db), -1);
	set_immutable(env->db, on);
	set_immutable(wal, on);
	free(wal);
}

static void make_read_only(struct tu_env *env)
{
	db_files_immutable(env, 1);
}

static void make_writable(struct tu_env *env)
{
	db_files_immutable(env, 0);
}

START_TEST(read_only_database_keeps_outcomes)
{
	struct tu_env env;

	env_open(&env, "readonly");
	outcomes_survive(&env, make_read_only, make_writable);
	tu_env_close(&env);
}
END_TEST

static char *filler_path(struct tu_env *env)
{
	return tu_path(env->dir, "mnt/filler");
}

/* Fills the file system until it refuses another byte. */
static void fill_disk(struct tu_env *env)
{
	char *path = filler_path(env);
	char block[4096];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t n;

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	memset(block, 'x', sizeof(block));
	do
		n = write(fd, block, sizeof(block));
	while (n > 0);
	ck_assert_msg(n < 0 && errno == ENOSPC, "filling: %s", strerror(errno));
	close(fd);
	free(path);
}

static void free_disk(struct tu_env *env)
{
	char *path = filler_path(env);

	ck_assert_int_eq(unlink(path), 0);
	free(path);
}

START_TEST(full_disk_keeps_outcomes)
{
	struct tu_env env;
	char *mnt;

	env.dir = tu_tmpdir("diskfull");
	mnt = tu_path(env.dir, "mnt");
	ck_assert_int_eq(mkdir(mnt, 0700), 0);
	ck_assert_msg(mount("tmpfs", mnt, "tmpfs", 0, "size=2m,mode=0700") == 0,
		      "mount tmpfs: %s", strerror(errno));
	env_start(&env, tu_path(mnt, "relay.db"));
	outcomes_survive(&env, fill_disk, free_disk);
	tu_receiver_stop(&env.rx);
	ck_assert_int_eq(umount2(mnt, MNT_DETACH), 0);
	free(mnt);
	free(env.db);
	free(env.dir);
}
END_TEST

/* Needs root: the immutable flag and mount. The Makefile runs it as root. */
static Suite *root_suite(void)
{
	Suite *s = suite_create("faults as root");
	TCase *database = tcase_create("database");

	tcase_set_timeout(database, 120);
	tcase_add_test(database, read_only_database_keeps_outcomes);
	tcase_add_test(database, full_disk_keeps_outcomes);
	suite_add_tcase(s, database);
	return s;
}

/* ---- as root, on PostgreSQL: a relay cut off the network ---------------- */

/*
 * Each relay runs in a network namespace of its own, its veth pair joined
 * to a bridge in this namespace, on whose address PostgreSQL and the
 * receiver listen. Taking a relay's end of the bridge down drops its
 * packets without a word, so its connections hang as on a cut cable.
 * Names and the /29 come from the runner's pid, so that parallel runs do
 * not meet; the runner removes them all after the test case, whatever
 * became of the test (a failed test exits at once).
 */
enum { NET_RELAYS = 2 };

struct net {
	char bridge[16];
	char outer[NET_RELAYS][16];  /* a relay's veth end on the bridge */
	char inner[NET_RELAYS][16];  /* its end in its namespace */
	char netns[NET_RELAYS][32];
	char relay_address[NET_RELAYS][16];
	char address[16];            /* the bridge's */
	char network[24];            /* address/29 */
	char pg_state[512];          /* tools/pg-server.sh's state file */
};

static struct net net;

static void dotted(char *out, size_t size, unsigned a)
{
	snprintf(out, size, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255,
		 (a >> 8) & 255, a & 255);
}

/* In the runner, before the test case: names only, nothing made yet. */
static void net_names(void)
{
	unsigned pid = (unsigned)getpid();
	/* 198.18.0.0/15 is set aside for benchmark networks: 16384 /29s. */
	unsigned base = (198u << 24) | (18u << 16) | ((pid % 16384u) << 3);
	const char *tmp = getenv("SMARTRELAY_TMP");
	char first[16];

	snprintf(net.bridge, sizeof(net.bridge), "sr%ubr", pid);
	for (int i = 0; i < NET_RELAYS; i++) {
		snprintf(net.outer[i], sizeof(net.outer[i]), "sr%u%c", pid,
			 'a' + i);
		snprintf(net.inner[i], sizeof(net.inner[i]), "sr%u%c1", pid,
			 'a' + i);
		snprintf(net.netns[i], sizeof(net.netns[i]), "smartrelay-%u-%c",
			 pid, 'a' + i);
		dotted(net.relay_address[i], sizeof(net.relay_address[i]),
		       base + 2 + (unsigned)i);
	}
	dotted(net.address, sizeof(net.address), base + 1);
	dotted(first, sizeof(first), base);
	snprintf(net.network, sizeof(net.network), "%s/29", first);
	snprintf(net.pg_state, sizeof(net.pg_state), "%s/netsplit-%u.pg",
		 tmp ? tmp : ".", pid);
}

/* In the runner: argv to completion, quietly, whatever its outcome. */
static void run_quietly(char *const argv[])
{
	pid_t pid = fork();

	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
}

/* In the runner: kills what a failed test left in netns (its relays). */
static void netns_kill_all(const char *netns)
{
	char command[128];
	char line[32];
	FILE *pids;

	snprintf(command, sizeof(command), IP_BIN " netns pids %s 2>/dev/null",
		 netns);
	pids = popen(command, "r");
	if (pids == NULL)
		return;
	while (fgets(line, sizeof(line), pids)) {
		long pid = strtol(line, NULL, 10);

		if (pid > 1)
			kill((pid_t)pid, SIGKILL);
	}
	pclose(pids);
}

/* In the runner, after the test case: removes whatever of it exists. */
static void net_remove(void)
{
	char *pg_stop[] = {
		(char *)"/bin/sh", getenv("SMARTRELAY_PG_SERVER"),
		(char *)"stop", net.pg_state, NULL,
	};
	char *del_bridge[] = {
		(char *)IP_BIN, (char *)"link", (char *)"del", net.bridge, NULL,
	};

	for (int i = 0; i < NET_RELAYS; i++) {
		char *del_link[] = {
			(char *)IP_BIN, (char *)"link", (char *)"del",
			net.outer[i], NULL,
		};
		char *del_netns[] = {
			(char *)IP_BIN, (char *)"netns", (char *)"del",
			net.netns[i], NULL,
		};

		netns_kill_all(net.netns[i]);
		run_quietly(del_link);
		run_quietly(del_netns);
	}
	run_quietly(del_bridge);
	if (pg_stop[1] != NULL)
		run_quietly(pg_stop);
}

/* `ip [-n netns] -batch` over commands, each of which must succeed. */
static void ip_batch(struct tu_env *env, const char *netns,
		     const char *commands)
{
	char *path = tu_path(env->dir, "ip.batch");
	char *argv[6];
	char *err = NULL;
	int argc = 0;
	int status;

	argv[argc++] = (char *)IP_BIN;
	if (netns) {
		argv[argc++] = (char *)"-n";
		argv[argc++] = (char *)netns;
	}
	argv[argc++] = (char *)"-batch";
	argv[argc++] = path;
	argv[argc] = NULL;
	tu_write_file(path, commands);
	status = tu_run(argv, CMD_TIMEOUT_MS, NULL, &err);
	ck_assert_msg(status == 0, "ip -batch:\n%s%s", commands, err ? err : "");
	free(err);
	free(path);
}

/* The bridge, and each relay's namespace with its veth pair on it. */
static void net_make(struct tu_env *env)
{
	char *commands = NULL;

	ck_assert_int_ne(asprintf(&commands,
				  "netns add %s\n"
				  "netns add %s\n"
				  "link add %s type bridge\n"
				  "addr add %s/29 dev %s\n"
				  "link set dev %s up\n"
				  "link add %s type veth peer name %s netns %s\n"
				  "link set dev %s master %s up\n"
				  "link add %s type veth peer name %s netns %s\n"
				  "link set dev %s master %s up\n",
				  net.netns[0], net.netns[1], net.bridge,
				  net.address, net.bridge, net.bridge,
				  net.outer[0], net.inner[0], net.netns[0],
				  net.outer[0], net.bridge,
				  net.outer[1], net.inner[1], net.netns[1],
				  net.outer[1], net.bridge), -1);
	ip_batch(env, NULL, commands);
	free(commands);
	for (int i = 0; i < NET_RELAYS; i++) {
		ck_assert_int_ne(asprintf(&commands,
					  "link set dev lo up\n"
					  "addr add %s/29 dev %s\n"
					  "link set dev %s up\n",
					  net.relay_address[i], net.inner[i],
					  net.inner[i]), -1);
		ip_batch(env, net.netns[i], commands);
		free(commands);
	}
}

/* Takes relay i's end of the bridge down (up = 0) or up again. */
static void net_link(struct tu_env *env, int i, int up)
{
	char *command = NULL;

	ck_assert_int_ne(asprintf(&command, "link set dev %s %s\n",
				  net.outer[i], up ? "up" : "down"), -1);
	ip_batch(env, NULL, command);
	free(command);
}

/* A PostgreSQL server on the bridge's address; returns its base URI. */
static char *net_pg_start(void)
{
	const char *script = getenv("SMARTRELAY_PG_SERVER");
	const char *pg_bin = getenv("SMARTRELAY_PG_BIN");
	char *argv[] = {
		(char *)"/bin/sh", (char *)script, (char *)"start", net.pg_state,
		net.address, net.network, NULL,
	};
	char *out = NULL, *err = NULL;
	int status;

	ck_assert_msg(script && pg_bin, "SMARTRELAY_PG_SERVER and "
		      "SMARTRELAY_PG_BIN are not set: run it through make check");
	ck_assert_int_eq(setenv("PG_BIN", pg_bin, 1), 0);
	status = tu_run(argv, 120000, &out, &err);
	ck_assert_msg(status == 0 && out, "pg-server.sh start: %s",
		      err ? err : "");
	out[strcspn(out, "\n")] = '\0';
	free(err);
	return out;
}

/* The outcomes a relay's log says were refused, one line each. */
static long refused_in_log(struct tu_env *env, const char *log_name)
{
	static const char needle[] = " outcome refused id=";
	char *text = log_of(env, log_name);
	long count = 0;

	for (char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
		count++;
	free(text);
	return count;
}

/*
 * Relay A's transfers are in flight when its cable is cut; its leases
 * run out, relay B takes the events over and delivers them; when A's
 * cable is back, A's late outcomes are refused and B's stay.
 */
START_TEST(cut_off_relay_is_taken_over)
{
	/* A slow answer keeps A's transfers in flight past the cut. */
	static const char *const opts[] = {
		"--timeout", "3", "--lease", "3.5", NULL,
	};
	enum { N = 5 };
	struct tu_env env;
	struct tally t;
	int64_t ids[N];
	pid_t a, b;
	int *seen;
	char *base, *text;

	ck_assert_msg(geteuid() == 0, "needs root (ip netns): "
		      "run as root through make check");
	env.dir = tu_tmpdir("netsplit");
	net_make(&env);
	base = net_pg_start();
	ck_assert_int_ne(asprintf(&env.db, "%s/postgres", base), -1);
	free(base);
	ck_assert_int_eq(tu_smartrelay(CMD_TIMEOUT_MS, NULL, NULL, "init",
				       env.db, NULL), 0);
	tu_receiver_start_on(&env.rx, env.dir, net.address);
	tu_provision(&env, "default", "/slow/2000", "application/json");
	produce(&env, NULL, N, ids);

	a = daemon_start_in(&env, net.netns[0], "a.log", opts);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, N, 10000), N);
	net_link(&env, 0, 0);
	b = daemon_start_in(&env, net.netns[1], "b.log", opts);
	t = wait_delivered(&env, N, SETTLE_MS);
	ck_assert_int_eq(t.by_status[EVENT_DELIVERED], N);
	/* Nothing of A's reached the database while it was cut off. */
	ck_assert_int_eq(refused_in_log(&env, "a.log"), 0);
	text = log_of(&env, "b.log");
	ck_assert_msg(strstr(text, "took over") != NULL, "%s", text);
	free(text);

	net_link(&env, 0, 1);
	for (int waited = 0; refused_in_log(&env, "a.log") < N &&
	     waited < SETTLE_MS; waited += 100)
		tu_sleep_ms(100);
	daemon_stop(a);
	daemon_stop(b);
	ck_assert_int_eq(refused_in_log(&env, "a.log"), N);

	t = tally(&env);
	ck_assert_int_eq(t.rows, N);
	ck_assert_int_eq(t.by_status[EVENT_DELIVERED], N);
	ck_assert_int_eq(t.max_attempts, 1);
	ck_assert_int_eq(t.min_attempts, 1);
	seen = ids_seen(&env, (int)ids[N - 1], -1);
	for (int i = 0; i < N; i++) {
		struct attempts at = attempts_of(&env, ids[i]);

		/* A's request and B's. */
		ck_assert_int_ge(seen[ids[i]], 1);
		ck_assert_int_eq(at.count, 1);
		ck_assert_int_eq(at.status[0], 204);
	}
	free(seen);
	tu_env_close(&env);
}
END_TEST

/* Needs root and a PostgreSQL server; the Makefile's PostgreSQL run
 * passes --netns as root. */
static Suite *netns_suite(void)
{
	Suite *s = suite_create("faults across network namespaces");
	TCase *network = tcase_create("network");

	tcase_set_timeout(network, 180);
	tcase_add_unchecked_fixture(network, net_names, net_remove);
	tcase_add_test(network, cut_off_relay_is_taken_over);
	suite_add_tcase(s, network);
	return s;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	SRunner *runner = srunner_create(
		strcmp(mode, "--root") == 0 ? root_suite() :
		strcmp(mode, "--netns") == 0 ? netns_suite() : faults_suite());
	int failed;

	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
