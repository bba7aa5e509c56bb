/*
 * testutil.h - what the test suites share: scratch directories, files,
 * child processes, and the loopback receiver from tools/receiver.c.
 *
 * The Makefile hands the programs under test over in the environment:
 * SMARTRELAY_BIN (bin/smartrelay), SMARTRELAY_RECEIVER (the receiver) and
 * SMARTRELAY_TMP (a scratch directory). Every returned string is new; the
 * caller frees it. Failures abort the test with ck_abort_msg.
 */
#ifndef SMARTRELAY_TESTUTIL_H
#define SMARTRELAY_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A new empty directory under $SMARTRELAY_TMP named after name. */
char *tu_tmpdir(const char *name);

/*
 * A new database for one test, not yet initialised: with
 * SMARTRELAY_TEST_DB_URI set (the base URI of a PostgreSQL server, see
 * tools/pg-server.sh) a new empty database on that server, made with
 * createdb from $SMARTRELAY_PG_BIN; else the SQLite path dir/relay.db.
 */
char *tu_db(const char *dir);

/* dir + "/" + file. */
char *tu_path(const char *dir, const char *file);

/* The whole file, NUL-terminated; *len (may be NULL) its length. NULL when
 * the file does not exist. */
char *tu_read_file(const char *path, size_t *len);

/* Writes text to path, replacing it. */
void tu_write_file(const char *path, const char *text);

/* Occurrences of needle in haystack. */
int tu_count(const char *haystack, const char *needle);

/*
 * Starts argv[0] with argv, stdout and stderr sent to the files out_path
 * and err_path (NULL: /dev/null). Returns the pid.
 */
pid_t tu_spawn(char *const argv[], const char *out_path, const char *err_path);

/*
 * Waits at most timeout_ms for pid to exit; returns its exit status, or
 * 128 + signal. A child still running then is killed and the test fails.
 */
int tu_wait(pid_t pid, int timeout_ms);

/*
 * Runs argv to completion (at most timeout_ms), capturing its stdout and
 * stderr in *out and *err (either may be NULL). Returns the exit status.
 */
int tu_run(char *const argv[], int timeout_ms, char **out, char **err);

/* Runs $SMARTRELAY_BIN with the NULL-terminated arguments after it. */
int tu_smartrelay(int timeout_ms, char **out, char **err, ...)
	__attribute__((sentinel));

struct tu_receiver {
	pid_t pid;
	char *address; /* the IPv4 address it listens on */
	int port;
	char *dir;
	char *record_path; /* every request, exactly as received */
	char *ids_path;    /* one line per request: webhook-id status ms */
};

/* Starts the receiver on an ephemeral 127.0.0.1 port, writing under dir. */
void tu_receiver_start(struct tu_receiver *rx, const char *dir);

/* The same on the IPv4 address given (dotted quad). */
void tu_receiver_start_on(struct tu_receiver *rx, const char *dir,
			  const char *address);

/* Stops it (SIGTERM, then waits) and frees its strings. */
void tu_receiver_stop(struct tu_receiver *rx);

/* "http://ADDRESS:PORT" + path. */
char *tu_receiver_url(const struct tu_receiver *rx, const char *path);

/* The requests recorded so far (raw bytes, framed; see tools/receiver.c). */
char *tu_receiver_requests(const struct tu_receiver *rx);

/* Waits at most timeout_ms until the receiver has seen n requests. */
int tu_receiver_wait_count(const struct tu_receiver *rx, int n, int timeout_ms);

/*
 * One integration test's world: a scratch directory, a database made by
 * `smartrelay init` (SQLite, or PostgreSQL when the run provides one; see
 * tu_db) and a receiver writing under the directory.
 */
struct tu_env {
	char *dir;
	char *db;
	struct tu_receiver rx;
};

void tu_env_open(struct tu_env *env, const char *name);
void tu_env_close(struct tu_env *env);

/* `smartrelay config DB set KEY VALUE --cloud-id C`, which must succeed. */
void tu_config_set(const struct tu_env *env, const char *cloud_id,
		   const char *key, const char *value);

/* Provisions cloud_id to send content_type to the receiver's path. */
void tu_provision(const struct tu_env *env, const char *cloud_id,
		  const char *path, const char *content_type);

/*
 * Inserts one event through the store, as a producer would; returns its id.
 * number NULL is the document's example number, parties NULL one party.
 */
int64_t tu_produce(const struct tu_env *env, const char *cloud_id,
		   const char *number, const char *parties);

/* An event's row as history shows it, and its attempt log. */
struct tu_row {
	int found;                 /* 0 when the event is gone */
	char status[16];
	int64_t attempts;
	long http_status;
	int has_error;
	char error[512];
	char next_attempt_at[32];  /* "" when NULL */
	char delivered_at[32];
	int attempt_rows;          /* numbered 1..n, checked */
	long last_attempt_status;
};

struct tu_row tu_fetch(const struct tu_env *env, int64_t id);

/* Milliseconds of sleep. */
void tu_sleep_ms(int ms);

/*
 * A plain HTTP/1.0 request of method and path to 127.0.0.1:port, read to
 * the end (at most 5 s). Returns the response body and sets *status to the
 * response code; the test fails when no response arrives.
 */
char *tu_http_request(int port, const char *method, const char *path,
		      int *status);

#endif
