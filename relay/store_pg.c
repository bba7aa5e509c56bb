/*
 * store_pg.c - the PostgreSQL engine of the outbox database (store.h).
 *
 * Owns the libpq connection, the migrations embedded from sql/pg/ (applied
 * under the schema_version table), and one table of named statements, all
 * prepared at open; a lost connection is reset, and everything prepared
 * again, by the next call. The only file that includes libpq-fe.h; every
 * PGresult goes through pg_check(). Claims skip rows that another relay
 * holds locked (FOR UPDATE SKIP LOCKED), and the relays LISTEN on channel
 * smartrelay, which the schema's triggers NOTIFY.
 */
#include "store.h"
#include "store_engine.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "timeutil.h"

#define STORE_ERRMSG_SIZE 512
#define STORE_BUSY_TIMEOUT_MS 5000
/* Without a notification, report a change this often anyway: the fallback
 * poll for anything that changed without one. */
#define PG_FALLBACK_POLL_MS 5000
#define PG_MAX_PARAMS 13
/* Outcomes written by one statement (its arrays are bounded so); a larger
 * batch sends several in one pipeline. */
#define PG_RECORD_ROWS 64
#define PG_INT_TEXT 24
/* The rows of one FETCH of the history cursor; spelled into its text. */
#define PG_HISTORY_CHUNK 1000
#define PG_TEXT_OF(number) PG_TEXT_OF_(number)
#define PG_TEXT_OF_(number) #number
/* Serializes concurrent inits of one database (pg_advisory_xact_lock). */
#define PG_MIGRATION_LOCK 7283416

struct migration {
	int version;
	const char *name;
	const char *sql;
};

static const struct migration migrations[] = {
#include "migrations_pg.inc"
};

#define MIGRATION_COUNT (sizeof migrations / sizeof migrations[0])

enum stmt {
	STMT_BEGIN,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_SAVEPOINT,
	STMT_SAVEPOINT_RELEASE,
	STMT_SAVEPOINT_ROLLBACK,
	STMT_CONFIG_LIST,
	STMT_CONFIG_SET,
	STMT_CONFIG_ADD,
	STMT_CONFIG_UNSET,
	STMT_PENDING_CLOUD_IDS,
	STMT_ENQUEUE,
	STMT_CLAIM,
	STMT_MAX_EVENT_ID,
	STMT_RECOVER_LEASES,
	STMT_NEXT_DUE,
	STMT_RECORD_PLANS,
	STMT_RECORD,
	STMT_RECORD_UNWRITABLE,
	STMT_RELEASE,
	STMT_HISTORY,
	STMT_HISTORY_FETCH,
	STMT_ATTEMPTS,
	STMT_REQUEUE_COUNT,
	STMT_REQUEUE,
	STMT_PURGE_COUNT,
	STMT_PURGE,
	STMT_STATS_CLOUDS,
	STMT_STATS,
	STMT_QUEUE_DEPTH,
	STMT_COPY_READ,
	STMT_COPY_INSERT,
	STMT_COPY_FIND,
	STMT_COPY_SEQUENCE,
	STMT_COUNT
};

struct stmt_spec {
	const char *name;
	int nparams;
	const char *sql;
};

/*
 * Every statement of the engine, in the SQLite engine's order and meaning.
 * Expressions on next_attempt_at are spelled exactly as in the outbox_due
 * index, or the planner cannot use it.
 */
static const struct stmt_spec stmt_specs[STMT_COUNT] = {
	[STMT_BEGIN] = { "begin", 0, "BEGIN" },
	[STMT_COMMIT] = { "commit", 0, "COMMIT" },
	[STMT_ROLLBACK] = { "rollback", 0, "ROLLBACK" },
	/* Each outcome of a batch stands alone: one that cannot be written
	 * must not take the others down with it. */
	[STMT_SAVEPOINT] = { "savepoint", 0, "SAVEPOINT outcome" },
	[STMT_SAVEPOINT_RELEASE] = { "savepoint_release", 0,
		"RELEASE outcome" },
	[STMT_SAVEPOINT_ROLLBACK] = { "savepoint_rollback", 0,
		"ROLLBACK TO outcome" },

	[STMT_CONFIG_LIST] = { "config_list", 1,
		"SELECT cloud_id, key, value FROM config"
		" WHERE $1::text IS NULL OR cloud_id = $1::text"
		" ORDER BY cloud_id, key" },
	[STMT_CONFIG_SET] = { "config_set", 3,
		"INSERT INTO config (cloud_id, key, value)"
		" VALUES (coalesce($1::text, 'default'), $2, $3)"
		" ON CONFLICT (cloud_id, key) DO UPDATE SET value = excluded.value" },
	[STMT_CONFIG_ADD] = { "config_add", 3,
		"INSERT INTO config (cloud_id, key, value)"
		" VALUES (coalesce($1::text, 'default'), $2, $3)"
		" ON CONFLICT (cloud_id, key) DO NOTHING" },
	[STMT_CONFIG_UNSET] = { "config_unset", 2,
		"DELETE FROM config"
		" WHERE cloud_id = coalesce($1::text, 'default') AND key = $2" },
	[STMT_PENDING_CLOUD_IDS] = { "pending_cloud_ids", 1,
		/* A skip scan: one index seek per distinct cloud_id. */
		"WITH RECURSIVE ids (cloud_id) AS ("
		"  SELECT min(cloud_id) FROM outbox WHERE status = 'pending'"
		"  UNION ALL"
		"  SELECT (SELECT min(o.cloud_id) FROM outbox AS o"
		"           WHERE o.status = 'pending'"
		"             AND o.cloud_id > ids.cloud_id)"
		"    FROM ids WHERE ids.cloud_id IS NOT NULL)"
		" SELECT cloud_id FROM ids WHERE cloud_id IS NOT NULL"
		" LIMIT $1::bigint" },
	[STMT_ENQUEUE] = { "enqueue", 5,
		"INSERT INTO outbox (cloud_id, new_smart_number, network_id,"
		"                    new_smart_uri, interested_parties)"
		" VALUES (coalesce($1::text, 'default'), $2, $3, $4, $5)"
		" RETURNING id" },
	[STMT_CLAIM] = { "claim", 6,
		/* SKIP LOCKED: rows another relay is claiming right now are
		 * its own; this claim takes the next due ones. */
		"WITH due AS ("
		"  SELECT id FROM outbox"
		"   WHERE status = 'pending'"
		"     AND cloud_id = coalesce($3::text, 'default')"
		"     AND coalesce(next_attempt_at, '') <= $4::text"
		"     AND id <= $5::bigint"
		"   ORDER BY coalesce(next_attempt_at, ''), id"
		"   LIMIT $6::bigint"
		"   FOR UPDATE SKIP LOCKED),"
		" claimed AS ("
		"  UPDATE outbox AS o"
		"     SET status = 'sending', claim_token = $1::bigint,"
		"         lease_until = $2::text"
		"    FROM due WHERE o.id = due.id"
		"  RETURNING o.id, o.cloud_id, o.new_smart_number, o.network_id,"
		"            o.new_smart_uri, o.interested_parties, o.attempts,"
		"            o.attempts - o.budget_start,"
		"            coalesce(o.next_attempt_at, '') AS due_at,"
		"            o.created_at)"
		" SELECT * FROM claimed ORDER BY due_at, id" },
	[STMT_MAX_EVENT_ID] = { "max_event_id", 0,
		"SELECT coalesce(max(id), 0) FROM outbox" },
	[STMT_RECOVER_LEASES] = { "recover_leases", 1,
		"UPDATE outbox"
		"   SET status = 'pending', next_attempt_at = NULL,"
		"       claim_token = NULL, lease_until = NULL"
		" WHERE status = 'sending' AND lease_until <= $1::text"
		" RETURNING id, cloud_id" },
	[STMT_NEXT_DUE] = { "next_due", 1,
		"SELECT coalesce(next_attempt_at, '') FROM outbox"
		" WHERE status = 'pending'"
		"   AND cloud_id = coalesce($1::text, 'default')"
		" ORDER BY coalesce(next_attempt_at, ''), id LIMIT 1" },
	/* For this transaction: plan the outcome statement at every execution.
	 * A plan cached while delivery_attempts (or outbox) was empty, or
	 * ANALYZEd empty, scans the whole table for each outcome until the
	 * next ANALYZE; a batch's plan costs little beside its rows. */
	[STMT_RECORD_PLANS] = { "record_plans", 0,
		"SELECT set_config('plan_cache_mode', 'force_custom_plan', true)" },
	[STMT_RECORD] = { "record", 10,
		/* A batch of outcomes, one array per column (record_arrays), the
		 * rows fenced by their claim tokens; for each attempted outcome
		 * its attempt, numbered after the row's own count and never
		 * below 1 + the last one logged for the event (read backwards
		 * along the unique index). Returns the ordinal (from 1) of each
		 * outcome written: the others were fenced out. */
		"WITH v AS ("
		"  SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[],"
		"                       $4::int[], $5::text[], $6::int[], $7::text[],"
		"                       $8::text[], $9::text[], $10::bigint[])"
		"    WITH ORDINALITY AS v (id, token, status, attempted, finished,"
		"                         http_status, error, next_at, started,"
		"                         duration_ms, n)),"
		" r AS ("
		"  UPDATE outbox AS o"
		"     SET status = v.status,"
		"         attempts = o.attempts + v.attempted,"
		"         last_attempt_at = CASE WHEN v.attempted = 1 THEN v.finished"
		"                                ELSE o.last_attempt_at END,"
		"         http_status = CASE WHEN v.attempted = 1 THEN v.http_status"
		"                            ELSE o.http_status END,"
		"         error = v.error,"
		"         delivered_at = CASE WHEN v.status = 'delivered'"
		"                             THEN v.finished END,"
		"         next_attempt_at = v.next_at,"
		"         claim_token = NULL, lease_until = NULL"
		"    FROM v"
		"   WHERE o.id = v.id AND o.claim_token = v.token"
		"     AND o.status = 'sending'"
		"  RETURNING o.id, o.attempts, v.n, v.attempted, v.started,"
		"            v.duration_ms, v.http_status, v.error),"
		" a AS ("
		"  INSERT INTO delivery_attempts"
		"   (outbox_id, attempt, started_at, duration_ms, http_status, error)"
		"  SELECT r.id, greatest(r.attempts, 1 + coalesce(last.attempt, 0)),"
		"         r.started, r.duration_ms, r.http_status, r.error"
		"    FROM r LEFT JOIN LATERAL ("
		"         SELECT d.attempt FROM delivery_attempts AS d"
		"          WHERE d.outbox_id = r.id"
		"          ORDER BY d.attempt DESC LIMIT 1) AS last ON true"
		"   WHERE r.attempted = 1)"
		" SELECT n FROM r" },
	[STMT_RECORD_UNWRITABLE] = { "record_unwritable", 3,
		"UPDATE outbox"
		"   SET status = 'failed', error = $3::text,"
		"       next_attempt_at = NULL, claim_token = NULL,"
		"       lease_until = NULL"
		" WHERE id = $1::bigint AND claim_token = $2::bigint"
		"   AND status = 'sending'" },
	[STMT_RELEASE] = { "release", 2,
		"UPDATE outbox"
		"   SET status = 'pending', next_attempt_at = NULL,"
		"       claim_token = NULL, lease_until = NULL"
		" WHERE id = $1::bigint AND claim_token = $2::bigint"
		"   AND status = 'sending'" },
	/* A cursor: history is read a chunk at a time (see pg_store_history). */
	[STMT_HISTORY] = { "history", 7,
		"DECLARE history NO SCROLL CURSOR FOR "
		"SELECT id, cloud_id, new_smart_number, network_id, new_smart_uri,"
		"       interested_parties, created_at, status, attempts,"
		"       next_attempt_at, last_attempt_at, http_status, error,"
		"       delivered_at"
		"  FROM outbox"
		" WHERE ($1::text IS NULL OR status = $1::text)"
		"   AND ($2::text IS NULL OR cloud_id = $2::text)"
		"   AND ($3::bigint IS NULL OR id = $3::bigint)"
		"   AND ($4::text IS NULL OR new_smart_number = $4::text)"
		"   AND ($5::text IS NULL OR created_at >= $5::text)"
		"   AND ($6::text IS NULL OR created_at < $6::text)"
		" ORDER BY created_at DESC, id DESC"
		" LIMIT $7::bigint" },
	/* As many rows as memory holds at once. */
	[STMT_HISTORY_FETCH] = { "history_fetch", 0,
		"FETCH " PG_TEXT_OF(PG_HISTORY_CHUNK) " FROM history" },
	[STMT_ATTEMPTS] = { "attempts", 1,
		"SELECT id, outbox_id, attempt, started_at, duration_ms,"
		"       http_status, error"
		"  FROM delivery_attempts WHERE outbox_id = $1::bigint"
		" ORDER BY attempt" },
	[STMT_REQUEUE_COUNT] = { "requeue_count", 3,
		"SELECT count(*) FROM outbox"
		" WHERE status = 'failed'"
		"   AND ($1::bigint IS NULL OR id = $1::bigint)"
		"   AND ($2::text IS NULL OR cloud_id = $2::text)"
		"   AND ($3::text IS NULL"
		"        OR coalesce(last_attempt_at, created_at) >= $3::text)" },
	[STMT_REQUEUE] = { "requeue", 6,
		/* Walks by id so that an event the relay fails again while a
		 * long requeue runs is not requeued twice by it. */
		"UPDATE outbox"
		"   SET status = 'pending', next_attempt_at = NULL,"
		"       budget_start = attempts"
		" WHERE id IN (SELECT id FROM outbox"
		"               WHERE status = 'failed'"
		"                 AND ($1::bigint IS NULL OR id = $1::bigint)"
		"                 AND ($2::text IS NULL OR cloud_id = $2::text)"
		"                 AND ($3::text IS NULL"
		"                      OR coalesce(last_attempt_at, created_at)"
		"                         >= $3::text)"
		"                 AND id > $4::bigint AND id <= $5::bigint"
		"               ORDER BY id LIMIT $6::bigint"
		"               FOR UPDATE)"
		"   AND status = 'failed'"
		" RETURNING id" },
	[STMT_PURGE_COUNT] = { "purge_count", 1,
		/* The outbox_finished expression. */
		"SELECT count(*) FROM outbox"
		" WHERE status IN ('delivered', 'failed')"
		"   AND coalesce(delivered_at, last_attempt_at, created_at)"
		"       < $1::text" },
	[STMT_PURGE] = { "purge", 2,
		/* Oldest first along outbox_finished; the attempts go with
		 * their events (ON DELETE CASCADE), counted first. The status
		 * test again on delete: a purge never takes a live event. */
		"WITH doomed AS ("
		"  SELECT id FROM outbox"
		"   WHERE status IN ('delivered', 'failed')"
		"     AND coalesce(delivered_at, last_attempt_at, created_at)"
		"         < $1::text"
		"   ORDER BY coalesce(delivered_at, last_attempt_at, created_at), id"
		"   LIMIT $2::bigint"
		"   FOR UPDATE SKIP LOCKED),"
		" gone AS ("
		"  DELETE FROM outbox"
		"   WHERE id IN (SELECT id FROM doomed)"
		"     AND status IN ('delivered', 'failed')"
		"  RETURNING id)"
		" SELECT (SELECT count(*) FROM gone),"
		"        (SELECT count(*) FROM delivery_attempts"
		"          WHERE outbox_id IN (SELECT id FROM gone))" },
	[STMT_STATS_CLOUDS] = { "stats_clouds", 0,
		"SELECT cloud_id,"
		"       count(*) FILTER (WHERE status = 'pending'),"
		"       count(*) FILTER (WHERE status = 'sending'),"
		"       count(*) FILTER (WHERE status = 'delivered'),"
		"       count(*) FILTER (WHERE status = 'failed'),"
		"       min(created_at) FILTER (WHERE status = 'pending')"
		"  FROM outbox GROUP BY cloud_id ORDER BY cloud_id" },
	[STMT_STATS] = { "stats", 3,
		/* One statement, so one snapshot. $1 is now, $2 an hour ago,
		 * $3 a minute ago. Percentiles are nearest-rank, as on
		 * SQLite. */
		"SELECT"
		" (SELECT count(*) FROM outbox WHERE status = 'pending'"
		"     AND coalesce(next_attempt_at, '') <= $1::text),"
		" (SELECT coalesce(min(created_at), '') FROM outbox"
		"   WHERE status = 'pending'),"
		" (SELECT count(*) FROM delivery_attempts"
		"   WHERE started_at >= $3::text),"
		" (SELECT count(*) FROM delivery_attempts"
		"   WHERE started_at >= $3::text AND http_status = 204),"
		" (SELECT count(*) FROM outbox WHERE status = 'failed'"
		"     AND coalesce(last_attempt_at, created_at) >= $3::text),"
		" (SELECT count(*) FROM delivery_attempts"
		"   WHERE started_at >= $2::text),"
		" (SELECT count(*) FROM delivery_attempts"
		"   WHERE started_at >= $2::text AND http_status = 204),"
		" (SELECT count(*) FROM outbox WHERE status = 'failed'"
		"     AND coalesce(last_attempt_at, created_at) >= $2::text),"
		" l.n, l.p50, l.p90, l.p99, l.top,"
		" d.n, d.p50, d.p90, d.p99, d.top"
		" FROM (SELECT count(*) AS n,"
		"              coalesce(min(ms) FILTER (WHERE cd >= 0.5), 0) AS p50,"
		"              coalesce(min(ms) FILTER (WHERE cd >= 0.9), 0) AS p90,"
		"              coalesce(min(ms) FILTER (WHERE cd >= 0.99), 0) AS p99,"
		"              coalesce(max(ms), 0) AS top"
		"         FROM (SELECT ms, cume_dist() OVER (ORDER BY ms) AS cd"
		"                 FROM (SELECT round(extract(epoch FROM"
		"                              (o.delivered_at::timestamptz"
		"                               - o.created_at::timestamptz))"
		"                              * 1000)::bigint AS ms"
		"                         FROM delivery_attempts AS a"
		"                         JOIN outbox AS o ON o.id = a.outbox_id"
		"                        WHERE a.started_at >= $2::text"
		"                          AND a.http_status = 204"
		"                          AND o.status = 'delivered') AS m)"
		"              AS c) AS l,"
		"      (SELECT count(*) AS n,"
		"              coalesce(min(ms) FILTER (WHERE cd >= 0.5), 0) AS p50,"
		"              coalesce(min(ms) FILTER (WHERE cd >= 0.9), 0) AS p90,"
		"              coalesce(min(ms) FILTER (WHERE cd >= 0.99), 0) AS p99,"
		"              coalesce(max(ms), 0) AS top"
		"         FROM (SELECT duration_ms AS ms,"
		"                      cume_dist() OVER (ORDER BY duration_ms) AS cd"
		"                 FROM delivery_attempts"
		"                WHERE started_at >= $2::text) AS c) AS d" },
	[STMT_QUEUE_DEPTH] = { "queue_depth", 1,
		/* Each select reads its state's partial index; the oldest is
		 * the lowest id, one row per cloud_id read from the table. */
		"SELECT q.cloud_id, 'pending', q.n, o.created_at"
		"  FROM (SELECT cloud_id, count(*) AS n, min(id) AS first"
		"          FROM outbox WHERE status = 'pending'"
		"         GROUP BY cloud_id) AS q"
		"  JOIN outbox AS o ON o.id = q.first"
		" UNION ALL"
		" SELECT q.cloud_id, 'sending', q.n, o.created_at"
		"  FROM (SELECT cloud_id, count(*) AS n, min(id) AS first"
		"          FROM outbox WHERE status = 'sending'"
		"         GROUP BY cloud_id) AS q"
		"  JOIN outbox AS o ON o.id = q.first"
		" LIMIT $1::bigint" },
	[STMT_COPY_READ] = { "copy_read", 3,
		/* A sending row's claim belongs to the database it came from:
		 * it reads as pending and due now, like a recovered lease. */
		"SELECT id, cloud_id, new_smart_number, network_id,"
		"       new_smart_uri, interested_parties, created_at,"
		"       attempts, budget_start,"
		"       CASE WHEN status = 'sending' THEN NULL"
		"            ELSE next_attempt_at END,"
		"       last_attempt_at, http_status, error"
		"  FROM outbox"
		" WHERE status IN ('pending', 'sending')"
		"   AND ($1::text IS NULL OR cloud_id = $1::text)"
		"   AND id > $2::bigint"
		" ORDER BY id LIMIT $3::bigint" },
	[STMT_COPY_INSERT] = { "copy_insert", 13,
		"INSERT INTO outbox (id, cloud_id, new_smart_number, network_id,"
		"                    new_smart_uri, interested_parties, created_at,"
		"                    status, attempts, budget_start,"
		"                    next_attempt_at, last_attempt_at,"
		"                    http_status, error)"
		" VALUES ($1::bigint, $2, $3, $4, $5, $6, $7, 'pending',"
		"         $8::bigint, $9::bigint, $10, $11, $12::int, $13)"
		" ON CONFLICT (id) DO NOTHING" },
	[STMT_COPY_FIND] = { "copy_find", 1,
		/* The columns store_copy_differs compares, in its order. */
		"SELECT cloud_id, new_smart_number, network_id, new_smart_uri,"
		"       interested_parties, created_at"
		"  FROM outbox WHERE id = $1::bigint" },
	[STMT_COPY_SEQUENCE] = { "copy_sequence", 1,
		/* Rows inserted with their own ids leave the identity behind:
		 * move it past them so that a producer's next INSERT does not
		 * take one of them, and never back (a purged event's id is
		 * not given out again). */
		"SELECT setval(pg_get_serial_sequence('outbox', 'id')::regclass,"
		"              $1::bigint)"
		" WHERE $1::bigint > coalesce(pg_sequence_last_value("
		"           pg_get_serial_sequence('outbox', 'id')::regclass), 0)" },
};

struct store {
	struct store_head head;
	PGconn *conn;
	int busy_timeout_ms;
	int in_tx;               /* between tx_begin and tx_end */
	int have_checked;        /* store_data_changed ran once */
	int missed;              /* reconnected: notifications may be lost */
	int64_t last_change_ms;  /* monotonic time of the last reported change */
	void (*tx_hook)(void *arg);
	void *tx_hook_arg;
	char sqlstate[6];        /* of the last failure, "" when none */
	char name[256];          /* the URI without its password */
	char errmsg[STORE_ERRMSG_SIZE];
};

/* Statement parameters, all as text (NULL: SQL NULL). */
struct params {
	const char *values[PG_MAX_PARAMS];
	char ints[PG_MAX_PARAMS][PG_INT_TEXT];
	int count;
};

static void pg_store_close(struct store *store);

static const char *pg_store_errmsg(const struct store *store)
{
	return store->errmsg;
}

static void store_seterr(struct store *store, const char *fmt, ...)
	SR_PRINTF(2, 3);

static void store_seterr(struct store *store, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(store->errmsg, sizeof store->errmsg, fmt, ap);
	va_end(ap);
}

static void param_text(struct params *p, const char *text)
{
	if (p->count < PG_MAX_PARAMS)
		p->values[p->count] = text;
	p->count++;
}

static void param_int64(struct params *p, int64_t value)
{
	if (p->count < PG_MAX_PARAMS) {
		snprintf(p->ints[p->count], sizeof p->ints[0], "%" PRId64, value);
		p->values[p->count] = p->ints[p->count];
	}
	p->count++;
}

static void param_int64_or_null(struct params *p, int present, int64_t value)
{
	if (present)
		param_int64(p, value);
	else
		param_text(p, NULL);
}

static int64_t size_to_int64(size_t n)
{
	return n > (size_t)INT64_MAX ? INT64_MAX : (int64_t)n;
}

/* libpq's messages span lines; the store's are one line. */
static void chomp(char *text)
{
	size_t out = 0;

	for (size_t in = 0; text[in] != '\0'; in++) {
		int space = text[in] == '\n' || text[in] == '\t' ||
			    text[in] == ' ';

		if (space && (out == 0 || text[out - 1] == ' '))
			continue;
		text[out++] = space ? ' ' : text[in];
	}
	while (out > 0 && text[out - 1] == ' ')
		out--;
	text[out] = '\0';
}

/*
 * The one check of every PGresult: COMMAND_OK and TUPLES_OK pass; anything
 * else is recorded as "what: message" and becomes STORE_BUSY when another
 * connection held the rows too long (lock_timeout, a deadlock, a
 * serialization failure), STORE_ERROR otherwise. Frees a failed result.
 */
static int pg_check(struct store *store, const char *what, PGresult *res)
{
	ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	const char *state;

	if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
		store->sqlstate[0] = '\0';
		return STORE_OK;
	}
	state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	snprintf(store->sqlstate, sizeof store->sqlstate, "%s",
		 state ? state : "");
	if (res != NULL && PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY))
		store_seterr(store, "%s: %s", what,
			     PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
	else
		store_seterr(store, "%s: %s", what, PQerrorMessage(store->conn));
	chomp(store->errmsg);
	PQclear(res);
	if (strcmp(store->sqlstate, "55P03") == 0 ||
	    strcmp(store->sqlstate, "40P01") == 0 ||
	    strcmp(store->sqlstate, "40001") == 0)
		return STORE_BUSY;
	return STORE_ERROR;
}

/* Runs a statement of ours that takes no parameters, outside the table. */
static int pg_exec(struct store *store, const char *what, const char *sql)
{
	PGresult *res = PQexec(store->conn, sql);
	int rc = pg_check(store, what, res);

	if (rc == STORE_OK)
		PQclear(res);
	return rc;
}

static int session_setup(struct store *store)
{
	char sql[64];

	snprintf(sql, sizeof sql, "SET lock_timeout = %d",
		 store->busy_timeout_ms);
	return pg_exec(store, "lock_timeout", sql);
}

static int stmts_prepare(struct store *store)
{
	int rc = STORE_OK;

	for (int i = 0; i < STMT_COUNT && rc == STORE_OK; i++) {
		if (stmt_specs[i].sql == NULL) {
			store_seterr(store, "statement %d has no SQL", i);
			return STORE_ERROR;
		}
		PGresult *res = PQprepare(store->conn, stmt_specs[i].name,
					  stmt_specs[i].sql,
					  stmt_specs[i].nparams, NULL);

		rc = pg_check(store, stmt_specs[i].name, res);
		if (rc == STORE_OK)
			PQclear(res);
	}
	return rc;
}

/*
 * A connection that broke (the server restarted, the network went) is
 * reset here, once per call, and set up as at open; the caller's retry
 * with backoff paces the attempts. The relay learns of the break from
 * the error; afterwards it looks at everything again (store->missed).
 */
static int conn_ready(struct store *store)
{
	int rc;

	if (PQstatus(store->conn) == CONNECTION_OK)
		return STORE_OK;
	PQreset(store->conn);
	if (PQstatus(store->conn) != CONNECTION_OK) {
		store_seterr(store, "%s: connection lost: %s", store->name,
			     PQerrorMessage(store->conn));
		chomp(store->errmsg);
		return STORE_ERROR;
	}
	rc = session_setup(store);
	if (rc == STORE_OK)
		rc = stmts_prepare(store);
	if (rc == STORE_OK)
		rc = pg_exec(store, "listen", "LISTEN smartrelay");
	if (rc == STORE_OK) {
		log_info("store: reconnected to %s", store->name);
		store->missed = 1;
	}
	return rc;
}

/* Runs statement id with params; on STORE_OK *res is the result to clear. */
static int stmt_run(struct store *store, enum stmt id,
		    const struct params *p, PGresult **res)
{
	const struct stmt_spec *spec = &stmt_specs[id];
	int n = p ? p->count : 0;
	int rc;

	*res = NULL;
	if (n != spec->nparams) {
		store_seterr(store, "%s: %d parameters for %d", spec->name, n,
			     spec->nparams);
		return STORE_ERROR;
	}
	/* Inside a transaction a lost connection is the transaction's end:
	 * only a statement outside one may reconnect. */
	if (!store->in_tx) {
		rc = conn_ready(store);
		if (rc != STORE_OK)
			return rc;
	}
	*res = PQexecPrepared(store->conn, spec->name, n,
			      n > 0 ? p->values : NULL, NULL, NULL, 0);
	rc = pg_check(store, spec->name, *res);
	if (rc != STORE_OK)
		*res = NULL;
	return rc;
}

/* Runs statement id for its effect; *changed (may be NULL): rows touched. */
static int stmt_exec(struct store *store, enum stmt id,
		     const struct params *p, int64_t *changed)
{
	PGresult *res;
	int rc = stmt_run(store, id, p, &res);

	if (rc == STORE_OK && changed != NULL)
		*changed = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return rc;
}

/* The value at row, col of res as int64 (NULL: 0). */
static int64_t value_int64(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* The value at row, col of res, NULL for SQL NULL; borrowed from res. */
static const char *value_text(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return NULL;
	return PQgetvalue(res, row, col);
}

/*
 * The value at row, col of res, a timestamp, as ms; 0 when it is NULL or
 * not in the contract's format (a hand-edited row), which only costs that
 * row its place in a statistic, never its delivery.
 */
static int64_t value_time(const PGresult *res, int row, int col)
{
	const char *text = value_text(res, row, col);
	int64_t ms = 0;

	if (text == NULL || time_parse(text, &ms) != 0)
		return 0;
	return ms;
}

/* Runs statement id, which yields one integer, into *value. */
static int stmt_count(struct store *store, enum stmt id,
		      const struct params *p, int64_t *value)
{
	PGresult *res;
	int rc = stmt_run(store, id, p, &res);

	*value = 0;
	if (rc == STORE_OK && PQntuples(res) > 0)
		*value = value_int64(res, 0, 0);
	PQclear(res);
	return rc;
}

/* A new copy of text; a NULL text is an error. */
static int text_dup(struct store *store, const char *what, const char *text,
		    char **out)
{
	*out = NULL;
	if (text == NULL) {
		store_seterr(store, "%s: unexpected NULL", what);
		return STORE_ERROR;
	}
	*out = strdup(text);
	if (*out == NULL) {
		store_seterr(store, "%s: out of memory", what);
		return STORE_ERROR;
	}
	return STORE_OK;
}

/* ---- transactions ------------------------------------------------------ */

static int tx_begin(struct store *store)
{
	int rc = stmt_exec(store, STMT_BEGIN, NULL, NULL);

	store->in_tx = rc == STORE_OK;
	if (rc == STORE_OK && store->tx_hook != NULL)
		store->tx_hook(store->tx_hook_arg);
	return rc;
}

/* Commits when rc is STORE_OK, else rolls back; returns the outcome. */
static int tx_end(struct store *store, int rc)
{
	char cause[STORE_ERRMSG_SIZE];

	if (rc == STORE_OK)
		rc = stmt_exec(store, STMT_COMMIT, NULL, NULL);
	store->in_tx = 0;
	if (rc == STORE_OK || PQstatus(store->conn) != CONNECTION_OK ||
	    PQtransactionStatus(store->conn) == PQTRANS_IDLE)
		return rc;
	memcpy(cause, store->errmsg, sizeof cause);
	if (stmt_exec(store, STMT_ROLLBACK, NULL, NULL) != STORE_OK)
		log_error("store: %s (after %s)", store->errmsg, cause);
	/* The caller reports what made the rollback necessary. */
	memcpy(store->errmsg, cause, sizeof cause);
	return rc;
}

/* ---- opening ----------------------------------------------------------- */

/* The notices of our own DDL (IF EXISTS and the like) are not news. */
static void notice_ignore(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static int version_read(struct store *store, int *version)
{
	PGresult *res = PQexec(store->conn,
			       "SELECT to_regclass('schema_version') IS NOT NULL");
	int exists;
	int rc = pg_check(store, "schema_version", res);

	*version = 0;
	if (rc != STORE_OK)
		return rc;
	exists = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!exists)
		return STORE_OK;
	res = PQexec(store->conn, "SELECT version FROM schema_version");
	rc = pg_check(store, "schema_version", res);
	if (rc != STORE_OK)
		return rc;
	if (PQntuples(res) != 1) {
		store_seterr(store, "schema_version: %d rows, not 1",
			     PQntuples(res));
		rc = STORE_ERROR;
	} else {
		*version = (int)value_int64(res, 0, 0);
	}
	PQclear(res);
	return rc;
}

/* Applies the pending migrations in one transaction, one init at a time. */
static int migrations_apply(struct store *store)
{
	char lock[96];
	int version = 0;
	int rc = pg_exec(store, "begin", "BEGIN");

	if (rc != STORE_OK)
		return rc;
	snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%d)",
		 PG_MIGRATION_LOCK);
	rc = pg_exec(store, "migration lock", lock);
	if (rc == STORE_OK)
		rc = version_read(store, &version);
	for (size_t i = 0; rc == STORE_OK && i < MIGRATION_COUNT; i++) {
		const struct migration *m = &migrations[i];

		if (m->version <= version)
			continue;
		rc = pg_exec(store, m->name, m->sql);
		if (rc == STORE_OK)
			rc = version_read(store, &version);
		if (rc == STORE_OK && version != m->version) {
			store_seterr(store, "%s: leaves schema_version %d, not %d",
				     m->name, version, m->version);
			rc = STORE_ERROR;
		}
	}
	if (rc == STORE_OK)
		return pg_exec(store, "commit", "COMMIT");
	if (PQtransactionStatus(store->conn) != PQTRANS_IDLE) {
		char cause[STORE_ERRMSG_SIZE];

		memcpy(cause, store->errmsg, sizeof cause);
		(void)pg_exec(store, "rollback", "ROLLBACK");
		memcpy(store->errmsg, cause, sizeof cause);
	}
	return rc;
}

static int pg_store_schema_version(void)
{
	return migrations[MIGRATION_COUNT - 1].version;
}

static int schema_prepare(struct store *store, enum store_mode mode)
{
	int latest = pg_store_schema_version();
	int version = 0;
	int rc = version_read(store, &version);

	if (rc != STORE_OK)
		return rc;
	if (version > latest) {
		store_seterr(store, "schema version %d of %s is newer than %d:"
			     " this smartrelay is too old for it", version,
			     store->name, latest);
		return STORE_ERROR;
	}
	if (version < latest && mode == STORE_OPEN_EXISTING) {
		if (version == 0)
			store_seterr(store, "no smartrelay schema in %s (run"
				     " smartrelay init)", store->name);
		else
			store_seterr(store, "schema version %d of %s is older"
				     " than %d: run smartrelay init", version,
				     store->name, latest);
		return STORE_ERROR;
	}
	if (version < latest)
		rc = migrations_apply(store);
	return rc;
}

static int pg_store_open(const char *path, enum store_mode mode,
			 struct store **out, char *err, size_t errlen)
{
	struct store *store;
	int rc = STORE_ERROR;

	*out = NULL;
	store = calloc(1, sizeof *store);
	if (store == NULL) {
		if (errlen > 0)
			snprintf(err, errlen, "out of memory");
		return STORE_ERROR;
	}
	store->head.engine = &store_pg_engine;
	store->busy_timeout_ms = STORE_BUSY_TIMEOUT_MS;
	store_display_name(path, store->name, sizeof store->name);
	store->conn = PQconnectdb(path);
	if (store->conn == NULL) {
		store_seterr(store, "%s: out of memory", store->name);
		goto out;
	}
	if (PQstatus(store->conn) != CONNECTION_OK) {
		PGPing ping = PQping(path);

		store_seterr(store, "cannot connect to %s: %s", store->name,
			     PQerrorMessage(store->conn));
		chomp(store->errmsg);
		/* No answer, or a server not accepting connections yet, is
		 * worth waiting for; bad parameters or credentials are not. */
		if (ping == PQPING_NO_RESPONSE || ping == PQPING_REJECT)
			rc = STORE_BUSY;
		goto out;
	}
	PQsetNoticeProcessor(store->conn, notice_ignore, NULL);
	rc = session_setup(store);
	if (rc == STORE_OK)
		rc = schema_prepare(store, mode);
	if (rc == STORE_OK)
		rc = stmts_prepare(store);
	if (rc == STORE_OK)
		rc = pg_exec(store, "listen", "LISTEN smartrelay");
	if (rc != STORE_OK)
		goto out;
	*out = store;
	store = NULL;
out:
	if (store != NULL && errlen > 0)
		snprintf(err, errlen, "%s", store->errmsg);
	pg_store_close(store);
	return rc;
}

static void pg_store_close(struct store *store)
{
	if (store == NULL)
		return;
	PQfinish(store->conn);
	free(store);
}

static int pg_store_set_busy_timeout(struct store *store, int timeout_ms)
{
	store->busy_timeout_ms = timeout_ms;
	return session_setup(store);
}

static void pg_store_set_tx_hook(struct store *store,
				 void (*hook)(void *arg), void *arg)
{
	store->tx_hook = hook;
	store->tx_hook_arg = arg;
}

/*
 * A change is a notification from another backend, a reconnection (which
 * may have missed some), the first call, or PG_FALLBACK_POLL_MS without
 * one.
 */
static int pg_store_data_changed(struct store *store, int *changed)
{
	int64_t now = time_mono_ms();
	PGnotify *note;
	int self;
	int rc = conn_ready(store);

	*changed = 0;
	if (rc != STORE_OK)
		return rc;
	self = PQbackendPID(store->conn);
	if (!PQconsumeInput(store->conn)) {
		store_seterr(store, "%s: %s", store->name,
			     PQerrorMessage(store->conn));
		chomp(store->errmsg);
		return STORE_ERROR;
	}
	while ((note = PQnotifies(store->conn)) != NULL) {
		if (note->be_pid != self)
			*changed = 1;
		PQfreemem(note);
	}
	if (!store->have_checked || store->missed ||
	    now - store->last_change_ms >= PG_FALLBACK_POLL_MS)
		*changed = 1;
	store->have_checked = 1;
	store->missed = 0;
	if (*changed)
		store->last_change_ms = now;
	return STORE_OK;
}

static int pg_store_wait_fd(struct store *store)
{
	if (PQstatus(store->conn) != CONNECTION_OK)
		return -1;
	return PQsocket(store->conn);
}

/* ---- configuration ------------------------------------------------------ */

static int pg_store_config_list(struct store *store, const char *cloud_id,
				struct config_row **rows, size_t *count)
{
	struct params p = { .count = 0 };
	struct config_row *list = NULL;
	PGresult *res;
	int n = 0;
	int rc;

	*rows = NULL;
	*count = 0;
	param_text(&p, cloud_id);
	rc = stmt_run(store, STMT_CONFIG_LIST, &p, &res);
	if (rc != STORE_OK)
		return rc;
	n = PQntuples(res);
	if (n > 0) {
		list = calloc((size_t)n, sizeof *list);
		if (list == NULL) {
			store_seterr(store, "config_list: out of memory");
			rc = STORE_ERROR;
		}
	}
	for (int i = 0; i < n && rc == STORE_OK; i++) {
		rc = text_dup(store, "config_list", value_text(res, i, 0),
			      &list[i].cloud_id);
		if (rc == STORE_OK)
			rc = text_dup(store, "config_list",
				      value_text(res, i, 1), &list[i].key);
		if (rc == STORE_OK)
			rc = text_dup(store, "config_list",
				      value_text(res, i, 2), &list[i].value);
	}
	PQclear(res);
	if (rc != STORE_OK) {
		store_config_rows_free(list, (size_t)n);
		return rc;
	}
	*rows = list;
	*count = (size_t)n;
	return STORE_OK;
}

static int pg_store_config_set(struct store *store, const char *cloud_id,
			       const char *key, const char *value)
{
	struct params p = { .count = 0 };

	param_text(&p, cloud_id);
	param_text(&p, key);
	param_text(&p, value);
	return stmt_exec(store, STMT_CONFIG_SET, &p, NULL);
}

static int pg_store_config_add(struct store *store, const char *cloud_id,
			       const char *key, const char *value, int *added)
{
	struct params p = { .count = 0 };
	int64_t changes = 0;
	int rc;

	param_text(&p, cloud_id);
	param_text(&p, key);
	param_text(&p, value);
	rc = stmt_exec(store, STMT_CONFIG_ADD, &p, &changes);
	if (rc == STORE_OK && added != NULL)
		*added = changes > 0;
	return rc;
}

static int pg_store_config_unset(struct store *store, const char *cloud_id,
				 const char *key, int *removed)
{
	struct params p = { .count = 0 };
	int64_t changes = 0;
	int rc;

	param_text(&p, cloud_id);
	param_text(&p, key);
	rc = stmt_exec(store, STMT_CONFIG_UNSET, &p, &changes);
	if (rc == STORE_OK && removed != NULL)
		*removed = (int)changes;
	return rc;
}

static int pg_store_pending_cloud_ids(struct store *store, size_t max,
				      char ***ids, size_t *count)
{
	struct params p = { .count = 0 };
	char **list = NULL;
	PGresult *res;
	int n = 0;
	int rc;

	*ids = NULL;
	*count = 0;
	if (max == 0)
		return STORE_OK;
	param_int64(&p, size_to_int64(max));
	rc = stmt_run(store, STMT_PENDING_CLOUD_IDS, &p, &res);
	if (rc != STORE_OK)
		return rc;
	n = PQntuples(res);
	if (n > 0) {
		list = calloc((size_t)n, sizeof *list);
		if (list == NULL) {
			store_seterr(store, "pending_cloud_ids: out of memory");
			rc = STORE_ERROR;
		}
	}
	for (int i = 0; i < n && rc == STORE_OK; i++)
		rc = text_dup(store, "pending_cloud_ids", value_text(res, i, 0),
			      &list[i]);
	PQclear(res);
	if (rc != STORE_OK) {
		for (int i = 0; list != NULL && i < n; i++)
			free(list[i]);
		free(list);
		return rc;
	}
	*ids = list;
	*count = (size_t)n;
	return STORE_OK;
}

/* ---- producing ---------------------------------------------------------- */

static int pg_store_enqueue(struct store *store, const struct new_event *event,
			    int64_t *id)
{
	struct params p = { .count = 0 };
	int64_t new_id = 0;
	int rc;

	param_text(&p, event->cloud_id);
	param_text(&p, event->new_smart_number);
	param_text(&p, event->network_id);
	param_text(&p, event->new_smart_uri);
	param_text(&p, event->interested_parties);
	rc = stmt_count(store, STMT_ENQUEUE, &p, &new_id);
	/* The only CHECK an INSERT with defaults can break. */
	if (rc != STORE_OK && strcmp(store->sqlstate, "23514") == 0)
		store_seterr(store, "enqueue: interested_parties must be"
			     " a JSON array");
	if (rc == STORE_OK && id != NULL)
		*id = new_id;
	return rc;
}

/* All or none, in one transaction; the failing event is named by index. */
static int pg_store_enqueue_batch(struct store *store,
				  const struct new_event *events,
				  size_t count, int64_t *ids)
{
	size_t i;
	int rc;

	if (count == 0)
		return STORE_OK;
	rc = tx_begin(store);
	if (rc != STORE_OK)
		return rc;
	for (i = 0; i < count && rc == STORE_OK; i++)
		rc = pg_store_enqueue(store, &events[i], ids ? &ids[i] : NULL);
	if (rc != STORE_OK) {
		char cause[STORE_ERRMSG_SIZE];

		memcpy(cause, store->errmsg, sizeof cause);
		store_seterr(store, "event %zu of %zu: %s", i, count, cause);
	}
	return tx_end(store, rc);
}

/* ---- claims and outcomes ------------------------------------------------ */

static int claimed_read(struct store *store, const PGresult *res, int row,
			struct event *e, int64_t token)
{
	char **fields[] = {
		&e->cloud_id, &e->new_smart_number, &e->network_id,
		&e->new_smart_uri, &e->interested_parties,
	};
	int rc = STORE_OK;

	e->id = value_int64(res, row, 0);
	e->attempts = value_int64(res, row, 6);
	e->budget_used = value_int64(res, row, 7);
	e->claim_token = token;
	e->created_ms = value_time(res, row, 9);
	/* PostgreSQL text holds no NUL byte: nul_field stays NULL. */
	for (int col = 1; col <= 5 && rc == STORE_OK; col++)
		rc = text_dup(store, "claim", value_text(res, row, col),
			      fields[col - 1]);
	return rc;
}

static int pg_store_claim(struct store *store,
			  const struct claim_request *request,
			  struct event **events, size_t *count)
{
	char now[TIME_TEXT_SIZE], lease[TIME_TEXT_SIZE];
	struct params p = { .count = 0 };
	struct event *list = NULL;
	PGresult *res;
	int n;
	int rc;

	*events = NULL;
	*count = 0;
	if (request->limit == 0)
		return STORE_OK;
	time_format(request->now_ms, now);
	time_format(request->lease_until_ms, lease);
	param_int64(&p, request->token);
	param_text(&p, lease);
	param_text(&p, request->cloud_id);
	param_text(&p, now);
	param_int64(&p, request->max_id);
	param_int64(&p, size_to_int64(request->limit));
	/* One statement, so one transaction: claimed and returned at once. */
	rc = stmt_run(store, STMT_CLAIM, &p, &res);
	if (rc != STORE_OK)
		return rc;
	n = PQntuples(res);
	if (n > 0) {
		list = calloc((size_t)n, sizeof *list);
		if (list == NULL) {
			/* Committed: the rows come back through lease
			 * recovery. */
			store_seterr(store, "claim: out of memory");
			rc = STORE_ERROR;
		}
	}
	for (int i = 0; i < n && rc == STORE_OK; i++)
		rc = claimed_read(store, res, i, &list[i], request->token);
	PQclear(res);
	if (rc != STORE_OK) {
		store_events_free(list, (size_t)n);
		return rc;
	}
	*events = list;
	*count = (size_t)n;
	return STORE_OK;
}

static int pg_store_max_event_id(struct store *store, int64_t *id)
{
	return stmt_count(store, STMT_MAX_EVENT_ID, NULL, id);
}

static int pg_store_recover_leases(struct store *store, int64_t now_ms,
				   int64_t *recovered)
{
	char now[TIME_TEXT_SIZE];
	struct params p = { .count = 0 };
	PGresult *res;
	int rc;

	if (recovered != NULL)
		*recovered = 0;
	time_format(now_ms, now);
	param_text(&p, now);
	/* Row locks, no table lock: an UPDATE that finds nothing is cheap,
	 * and two relays recovering at once each take only what is left.
	 * One statement: committed when it returns, so logged now. */
	rc = stmt_run(store, STMT_RECOVER_LEASES, &p, &res);
	if (rc != STORE_OK)
		return rc;
	for (int i = 0; i < PQntuples(res); i++)
		log_warn("lease expired id=%" PRId64 " cloud_id=%s: "
			 "back to pending, no attempt counted",
			 value_int64(res, i, 0), PQgetvalue(res, i, 1));
	if (recovered != NULL)
		*recovered = PQntuples(res);
	PQclear(res);
	return STORE_OK;
}

static int pg_store_next_due(struct store *store, const char *cloud_id,
			     int64_t *due_ms)
{
	struct params p = { .count = 0 };
	PGresult *res;
	int rc;

	*due_ms = INT64_MAX;
	param_text(&p, cloud_id);
	rc = stmt_run(store, STMT_NEXT_DUE, &p, &res);
	if (rc != STORE_OK)
		return rc;
	if (PQntuples(res) > 0) {
		const char *due = PQgetvalue(res, 0, 0);

		if (due[0] == '\0') {
			*due_ms = INT64_MIN;
		} else if (time_parse(due, due_ms) != 0) {
			/* Only a hand-edited row can get here. */
			store_seterr(store, "next_due: next_attempt_at '%s' is"
				     " not a timestamp", due);
			*due_ms = INT64_MAX;
			rc = STORE_ERROR;
		}
	}
	PQclear(res);
	return rc;
}

/* Refuses outcomes that no caller should make, before anything is written. */
static int outcome_check(struct store *store, const struct outcome *o)
{
	if (o->status != EVENT_PENDING && o->status != EVENT_DELIVERED &&
	    o->status != EVENT_FAILED) {
		store_seterr(store, "record: event %" PRId64 ": '%s' is not an"
			     " outcome", o->id, store_status_name(o->status));
		return STORE_ERROR;
	}
	if (o->status == EVENT_DELIVERED && !o->attempted) {
		store_seterr(store, "record: event %" PRId64 ": delivered"
			     " without an attempt", o->id);
		return STORE_ERROR;
	}
	return STORE_OK;
}

/*
 * The columns of STMT_RECORD, one parameter each: a PostgreSQL array
 * literal of the batch's values. Built here, not as JSON (jansson is
 * render.c's alone) nor with PQescapeLiteral (for SQL literals, not array
 * elements): every element that is not NULL is double-quoted with '"' and
 * '\' escaped by a backslash, so that commas, braces, spaces, newlines and
 * non-ASCII bytes stand as they are; SQL NULL is the unquoted word NULL.
 */
enum record_column {
	RECORD_ID,
	RECORD_TOKEN,
	RECORD_STATUS,
	RECORD_ATTEMPTED,
	RECORD_FINISHED,
	RECORD_HTTP_STATUS,
	RECORD_ERROR,
	RECORD_NEXT,
	RECORD_STARTED,
	RECORD_DURATION,
	RECORD_COLUMNS
};

/* One array literal being built; text is NULL while it is measured. */
struct literal {
	char *text;
	size_t len;
};

static void literal_put(struct literal *l, char c)
{
	if (l->text != NULL)
		l->text[l->len] = c;
	l->len++;
}

/* Appends value (NULL: SQL NULL) as the next element of l. */
static void literal_element(struct literal *l, int first, const char *value)
{
	if (!first)
		literal_put(l, ',');
	if (value == NULL) {
		for (const char *s = "NULL"; *s != '\0'; s++)
			literal_put(l, *s);
		return;
	}
	literal_put(l, '"');
	for (; *value != '\0'; value++) {
		if (*value == '"' || *value == '\\')
			literal_put(l, '\\');
		literal_put(l, *value);
	}
	literal_put(l, '"');
}

/* Appends outcome o to each column's literal. */
static void record_row(const struct outcome *o, int first,
		       struct literal *cols)
{
	char ints[5][PG_INT_TEXT];
	char finished[TIME_TEXT_SIZE], started[TIME_TEXT_SIZE];
	char next[TIME_TEXT_SIZE];
	const char *values[RECORD_COLUMNS];
	const int attempted = o->attempted != 0;

	snprintf(ints[0], sizeof ints[0], "%" PRId64, o->id);
	snprintf(ints[1], sizeof ints[1], "%" PRId64, o->claim_token);
	snprintf(ints[2], sizeof ints[2], "%d", attempted);
	snprintf(ints[3], sizeof ints[3], "%ld", o->http_status);
	snprintf(ints[4], sizeof ints[4], "%" PRId64,
		 attempted ? o->duration_ms : 0);
	if (attempted) {
		time_format(o->finished_ms, finished);
		time_format(o->started_ms, started);
	}
	if (o->status == EVENT_PENDING)
		time_format(o->next_attempt_ms, next);
	values[RECORD_ID] = ints[0];
	values[RECORD_TOKEN] = ints[1];
	values[RECORD_STATUS] = store_status_name(o->status);
	values[RECORD_ATTEMPTED] = ints[2];
	values[RECORD_FINISHED] = attempted ? finished : NULL;
	values[RECORD_HTTP_STATUS] = o->http_status != 0 ? ints[3] : NULL;
	values[RECORD_ERROR] = o->error;
	values[RECORD_NEXT] = o->status == EVENT_PENDING ? next : NULL;
	values[RECORD_STARTED] = attempted ? started : NULL;
	values[RECORD_DURATION] = ints[4];
	for (int c = 0; c < RECORD_COLUMNS; c++)
		literal_element(&cols[c], first, values[c]);
}

static void record_arrays_free(struct literal *cols)
{
	for (int c = 0; c < RECORD_COLUMNS; c++) {
		free(cols[c].text);
		cols[c].text = NULL;
	}
}

/*
 * The parameters of STMT_RECORD for count outcomes into *p: measured,
 * then written, into cols (new: record_arrays_free them, also after a
 * failure, which is only running out of memory).
 */
static int record_arrays(struct store *store, const struct outcome *outcomes,
			 size_t count, struct literal *cols, struct params *p)
{
	memset(cols, 0, RECORD_COLUMNS * sizeof *cols);
	for (int pass = 0; pass < 2; pass++) {
		for (int c = 0; c < RECORD_COLUMNS; c++) {
			if (pass == 1) {
				cols[c].text = malloc(cols[c].len + 1);
				if (cols[c].text == NULL) {
					store_seterr(store, "record: out of"
						     " memory");
					return STORE_ERROR;
				}
			}
			cols[c].len = 0;
			literal_put(&cols[c], '{');
		}
		for (size_t i = 0; i < count; i++)
			record_row(&outcomes[i], i == 0, cols);
		for (int c = 0; c < RECORD_COLUMNS; c++)
			literal_put(&cols[c], '}');
	}
	p->count = 0;
	for (int c = 0; c < RECORD_COLUMNS; c++) {
		cols[c].text[cols[c].len] = '\0';
		param_text(p, cols[c].text);
	}
	return STORE_OK;
}

/* refused[i] for the count outcomes of res: 0 for those it returned. */
static void record_result(const PGresult *res, size_t count,
			  unsigned char *refused)
{
	memset(refused, 1, count);
	for (int row = 0; row < PQntuples(res); row++) {
		int64_t n = value_int64(res, row, 0);

		if (n >= 1 && (uint64_t)n <= count)
			refused[n - 1] = 0;
	}
}

/* Writes one outcome, in the savepoint the caller holds. */
static int outcome_write(struct store *store, const struct params *p,
			 unsigned char *refused)
{
	PGresult *res;
	int rc = stmt_run(store, STMT_RECORD, p, &res);

	if (rc != STORE_OK)
		return rc;
	/* Fenced out: the lease was taken over, the row is not ours. */
	record_result(res, 1, refused);
	PQclear(res);
	return STORE_OK;
}

/*
 * The outcome could not be written (a constraint, a row changed by hand):
 * undo it alone and fail the event with the reason, so that it is neither
 * sent again forever nor blocks the outcomes written with it. A lost
 * connection ended the whole transaction: passed on, retry later.
 */
static int outcome_unwritable(struct store *store, const struct outcome *o,
			      unsigned char *refused)
{
	char reason[STORE_ERRMSG_SIZE + 32];
	struct params p = { .count = 0 };
	int64_t changed = 0;
	int rc;

	if (PQstatus(store->conn) != CONNECTION_OK ||
	    PQtransactionStatus(store->conn) == PQTRANS_IDLE)
		return STORE_ERROR;
	snprintf(reason, sizeof reason, "cannot record outcome: %s",
		 store->errmsg);
	log_error("id=%" PRId64 " %s; the event is marked failed", o->id, reason);
	rc = stmt_exec(store, STMT_SAVEPOINT_ROLLBACK, NULL, NULL);
	param_int64(&p, o->id);
	param_int64(&p, o->claim_token);
	param_text(&p, reason);
	if (rc == STORE_OK)
		rc = stmt_exec(store, STMT_RECORD_UNWRITABLE, &p, &changed);
	/* Fenced out as well: the failure is the new owner's to decide. */
	*refused = rc == STORE_OK && changed == 0;
	return rc;
}

/*
 * Sends STMT_RECORD_PLANS and one STMT_RECORD per PG_RECORD_ROWS outcomes
 * in a pipeline, then reads their results: one round trip for all of them.
 * Within the caller's transaction; any failure leaves it aborted (roll it
 * back).
 */
static int record_pipeline(struct store *store, const struct outcome *outcomes,
			   size_t count, unsigned char *refused)
{
	const char *name = stmt_specs[STMT_RECORD].name;
	int rc = STORE_OK;
	size_t sent = 0;   /* statements, STMT_RECORD_PLANS the first */
	PGresult *res;
	int synced, ok;

	if (!PQenterPipelineMode(store->conn)) {
		store_seterr(store, "record: %s", PQerrorMessage(store->conn));
		chomp(store->errmsg);
		return STORE_ERROR;
	}
	ok = PQsendQueryPrepared(store->conn, stmt_specs[STMT_RECORD_PLANS].name,
				 0, NULL, NULL, NULL, 0);
	sent = ok ? 1 : 0;
	for (size_t i = 0; ok && rc == STORE_OK && i < count;
	     i += PG_RECORD_ROWS) {
		size_t n = count - i < PG_RECORD_ROWS ? count - i
						      : PG_RECORD_ROWS;
		struct literal cols[RECORD_COLUMNS];
		struct params p;

		rc = record_arrays(store, outcomes + i, n, cols, &p);
		if (rc == STORE_OK)
			ok = PQsendQueryPrepared(store->conn, name, p.count,
						 p.values, NULL, NULL, 0);
		if (rc == STORE_OK && ok)
			sent++;
		record_arrays_free(cols);
	}
	/* Synced even after a failed send, so that the results of what was
	 * sent come back rather than wait in the server's buffer. */
	synced = PQpipelineSync(store->conn);
	if (rc == STORE_OK && (!ok || !synced)) {
		store_seterr(store, "record: %s", PQerrorMessage(store->conn));
		chomp(store->errmsg);
		rc = STORE_ERROR;
	}
	/* Every query sent has a result and a NULL; then the sync. */
	for (size_t s = 0; s < sent; s++) {
		res = PQgetResult(store->conn);
		if (rc == STORE_OK) {
			rc = pg_check(store, s == 0
				      ? stmt_specs[STMT_RECORD_PLANS].name
				      : name, res);
			if (rc == STORE_OK && s > 0) {
				size_t i = (s - 1) * PG_RECORD_ROWS;

				record_result(res, count - i < PG_RECORD_ROWS
					      ? count - i : PG_RECORD_ROWS,
					      refused + i);
			}
			if (rc == STORE_OK)
				PQclear(res);
		} else {
			PQclear(res);
		}
		res = PQgetResult(store->conn);
		PQclear(res);
	}
	if (synced) {
		while ((res = PQgetResult(store->conn)) != NULL) {
			ExecStatusType status = PQresultStatus(res);

			PQclear(res);
			if (status == PGRES_PIPELINE_SYNC)
				break;
		}
	}
	if (!PQexitPipelineMode(store->conn) && rc == STORE_OK) {
		store_seterr(store, "record: %s", PQerrorMessage(store->conn));
		chomp(store->errmsg);
		rc = STORE_ERROR;
	}
	return rc;
}

/*
 * Writes the outcomes in one transaction. Without savepoints any failure
 * rolls the whole batch back (STORE_ERROR: try again with them); with
 * them each outcome is a statement of its own, and an unwritable one
 * fails its event alone.
 */
static int record_batch(struct store *store, const struct outcome *outcomes,
			size_t count, int savepoints, unsigned char *refused)
{
	int rc = tx_begin(store);

	memset(refused, 0, count);
	if (rc != STORE_OK)
		return rc;
	if (!savepoints)
		return tx_end(store, record_pipeline(store, outcomes, count,
						     refused));
	rc = stmt_exec(store, STMT_RECORD_PLANS, NULL, NULL);
	for (size_t i = 0; i < count && rc == STORE_OK; i++) {
		struct literal cols[RECORD_COLUMNS];
		struct params p;

		rc = record_arrays(store, &outcomes[i], 1, cols, &p);
		if (rc == STORE_OK)
			rc = stmt_exec(store, STMT_SAVEPOINT, NULL, NULL);
		if (rc == STORE_OK) {
			rc = outcome_write(store, &p, &refused[i]);
			if (rc == STORE_ERROR)
				rc = outcome_unwritable(store, &outcomes[i],
							&refused[i]);
		}
		if (rc == STORE_OK)
			rc = stmt_exec(store, STMT_SAVEPOINT_RELEASE, NULL,
				       NULL);
		record_arrays_free(cols);
	}
	return tx_end(store, rc);
}

static int pg_store_record(struct store *store, const struct outcome *outcomes,
			   size_t count, unsigned char *refused)
{
	unsigned char *flags = refused;
	int rc = STORE_OK;

	if (count == 0)
		return STORE_OK;
	for (size_t i = 0; i < count && rc == STORE_OK; i++)
		rc = outcome_check(store, &outcomes[i]);
	if (rc != STORE_OK)
		return rc;
	if (flags == NULL && (flags = malloc(count)) == NULL) {
		store_seterr(store, "record: out of memory");
		return STORE_ERROR;
	}
	/* Each statement is a round trip: the batch is tried whole first,
	 * and only when an outcome cannot be written again with a
	 * savepoint around each. */
	rc = record_batch(store, outcomes, count, 0, flags);
	if (rc == STORE_ERROR && PQstatus(store->conn) == CONNECTION_OK)
		rc = record_batch(store, outcomes, count, 1, flags);
	if (flags != refused)
		free(flags);
	return rc;
}

static int pg_store_release(struct store *store, const int64_t *ids,
			    const int64_t *tokens, size_t count)
{
	int rc;

	if (count == 0)
		return STORE_OK;
	rc = tx_begin(store);
	if (rc != STORE_OK)
		return rc;
	for (size_t i = 0; i < count && rc == STORE_OK; i++) {
		struct params p = { .count = 0 };

		param_int64(&p, ids[i]);
		param_int64(&p, tokens[i]);
		rc = stmt_exec(store, STMT_RELEASE, &p, NULL);
	}
	return tx_end(store, rc);
}

/* ---- history ------------------------------------------------------------ */

/* Calls each for the rows of res until it returns non-zero; returns that. */
static int history_rows(const PGresult *res,
			int (*each)(const struct history_row *row, void *arg),
			void *arg)
{
	int stopped = 0;

	for (int i = 0; i < PQntuples(res) && !stopped; i++) {
		struct history_row h;

		memset(&h, 0, sizeof h);
		h.id = value_int64(res, i, 0);
		h.cloud_id = value_text(res, i, 1);
		h.new_smart_number = value_text(res, i, 2);
		h.network_id = value_text(res, i, 3);
		h.new_smart_uri = value_text(res, i, 4);
		h.interested_parties = value_text(res, i, 5);
		h.created_at = value_text(res, i, 6);
		h.status = value_text(res, i, 7);
		h.attempts = value_int64(res, i, 8);
		h.next_attempt_at = value_text(res, i, 9);
		h.last_attempt_at = value_text(res, i, 10);
		h.http_status = (long)value_int64(res, i, 11);
		h.error = value_text(res, i, 12);
		h.delivered_at = value_text(res, i, 13);
		stopped = each(&h, arg);
	}
	return stopped;
}

static int pg_store_history(struct store *store,
			    const struct history_filter *filter,
			    int (*each)(const struct history_row *row,
					void *arg),
			    void *arg)
{
	struct params p = { .count = 0 };
	PGresult *res;
	int stopped = 0;
	int rows = PG_HISTORY_CHUNK;
	int rc;

	param_text(&p, filter->status);
	param_text(&p, filter->cloud_id);
	param_int64_or_null(&p, filter->id != 0, filter->id);
	param_text(&p, filter->number);
	param_text(&p, filter->since);
	param_text(&p, filter->until);
	/* A NULL LIMIT is none. */
	param_int64_or_null(&p, filter->limit > 0, filter->limit);
	/* Through a cursor, PG_HISTORY_CHUNK rows at a time, so that memory
	 * stays flat however many rows match; between chunks the connection
	 * is free for each's own queries (history --attempts). The
	 * transaction's end closes the cursor. */
	rc = tx_begin(store);
	if (rc != STORE_OK)
		return rc;
	rc = stmt_exec(store, STMT_HISTORY, &p, NULL);
	while (rc == STORE_OK && !stopped && rows == PG_HISTORY_CHUNK) {
		rc = stmt_run(store, STMT_HISTORY_FETCH, NULL, &res);
		if (rc != STORE_OK)
			break;
		rows = PQntuples(res);
		stopped = history_rows(res, each, arg);
		PQclear(res);
	}
	rc = tx_end(store, rc);
	return rc != STORE_OK ? rc : stopped;
}

static int pg_store_attempts(struct store *store, int64_t outbox_id,
			     int (*each)(const struct attempt_row *row,
					 void *arg),
			     void *arg)
{
	struct params p = { .count = 0 };
	PGresult *res;
	int stopped = 0;
	int rc;

	param_int64(&p, outbox_id);
	rc = stmt_run(store, STMT_ATTEMPTS, &p, &res);
	if (rc != STORE_OK)
		return rc;
	for (int i = 0; i < PQntuples(res) && !stopped; i++) {
		struct attempt_row a;

		memset(&a, 0, sizeof a);
		a.id = value_int64(res, i, 0);
		a.outbox_id = value_int64(res, i, 1);
		a.attempt = value_int64(res, i, 2);
		a.started_at = value_text(res, i, 3);
		a.duration_ms = value_int64(res, i, 4);
		a.http_status = (long)value_int64(res, i, 5);
		a.error = value_text(res, i, 6);
		stopped = each(&a, arg);
	}
	PQclear(res);
	return stopped;
}

/* ---- operations: requeue, purge, stats ---------------------------------- */

static void requeue_params(struct params *p,
			   const struct requeue_filter *filter)
{
	param_int64_or_null(p, filter->id != 0, filter->id);
	param_text(p, filter->cloud_id);
	param_text(p, filter->since);
}

static int pg_store_requeue_count(struct store *store,
				  const struct requeue_filter *filter,
				  int64_t *count)
{
	struct params p = { .count = 0 };

	requeue_params(&p, filter);
	return stmt_count(store, STMT_REQUEUE_COUNT, &p, count);
}

static int pg_store_requeue_batch(struct store *store,
				  const struct requeue_filter *filter,
				  int64_t after_id, int64_t max_id,
				  size_t limit, int64_t *requeued,
				  int64_t *last_id)
{
	struct params p = { .count = 0 };
	int64_t last = after_id;
	PGresult *res;
	int n;
	int rc;

	*requeued = 0;
	*last_id = after_id;
	requeue_params(&p, filter);
	param_int64(&p, after_id);
	param_int64(&p, max_id);
	param_int64(&p, size_to_int64(limit));
	rc = stmt_run(store, STMT_REQUEUE, &p, &res);
	if (rc != STORE_OK)
		return rc;
	n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		int64_t taken = value_int64(res, i, 0);

		if (taken > last)
			last = taken;
	}
	PQclear(res);
	*requeued = n;
	*last_id = last;
	return STORE_OK;
}

static int pg_store_purge_count(struct store *store, const char *cutoff,
				int64_t *count)
{
	struct params p = { .count = 0 };

	param_text(&p, cutoff);
	return stmt_count(store, STMT_PURGE_COUNT, &p, count);
}

static int pg_store_purge_batch(struct store *store, const char *cutoff,
				size_t limit, int64_t *events,
				int64_t *attempts)
{
	struct params p = { .count = 0 };
	PGresult *res;
	int rc;

	*events = 0;
	*attempts = 0;
	if (limit == 0)
		return STORE_OK;
	param_text(&p, cutoff);
	param_int64(&p, size_to_int64(limit));
	rc = stmt_run(store, STMT_PURGE, &p, &res);
	if (rc != STORE_OK)
		return rc;
	if (PQntuples(res) == 1) {
		*events = value_int64(res, 0, 0);
		*attempts = value_int64(res, 0, 1);
	}
	PQclear(res);
	return STORE_OK;
}

static int pg_store_stats_clouds(struct store *store,
				 int (*each)(const struct stats_cloud_row *row,
					     void *arg),
				 void *arg)
{
	PGresult *res;
	int stopped = 0;
	int rc = stmt_run(store, STMT_STATS_CLOUDS, NULL, &res);

	if (rc != STORE_OK)
		return rc;
	for (int i = 0; i < PQntuples(res) && !stopped; i++) {
		struct stats_cloud_row c;

		memset(&c, 0, sizeof c);
		c.cloud_id = value_text(res, i, 0);
		for (int s = 0; s < 4; s++)
			c.by_status[s] = value_int64(res, i, 1 + s);
		c.oldest_pending = value_text(res, i, 5);
		stopped = each(&c, arg);
	}
	PQclear(res);
	return stopped;
}

static void stats_read_window(const PGresult *res, int col,
			      struct stats_window *w)
{
	w->attempts = value_int64(res, 0, col);
	w->delivered = value_int64(res, 0, col + 1);
	w->failed_attempts = w->attempts - w->delivered;
	w->events_failed = value_int64(res, 0, col + 2);
}

static void stats_read_percentiles(const PGresult *res, int col,
				   struct stats_percentiles *p)
{
	p->count = value_int64(res, 0, col);
	p->p50 = value_int64(res, 0, col + 1);
	p->p90 = value_int64(res, 0, col + 2);
	p->p99 = value_int64(res, 0, col + 3);
	p->max = value_int64(res, 0, col + 4);
}

static int pg_store_stats(struct store *store, int64_t now_ms,
			  struct store_stats *out)
{
	char now[TIME_TEXT_SIZE], hour[TIME_TEXT_SIZE], minute[TIME_TEXT_SIZE];
	struct params p = { .count = 0 };
	PGresult *res;
	int rc;

	memset(out, 0, sizeof *out);
	time_format(now_ms, now);
	time_format(now_ms - 3600 * 1000, hour);
	time_format(now_ms - 60 * 1000, minute);
	param_text(&p, now);
	param_text(&p, hour);
	param_text(&p, minute);
	rc = stmt_run(store, STMT_STATS, &p, &res);
	if (rc != STORE_OK)
		return rc;
	if (PQntuples(res) != 1) {
		store_seterr(store, "stats: no row");
		rc = STORE_ERROR;
	} else {
		out->due_now = value_int64(res, 0, 0);
		snprintf(out->oldest_pending, sizeof out->oldest_pending, "%s",
			 PQgetvalue(res, 0, 1));
		stats_read_window(res, 2, &out->last_minute);
		stats_read_window(res, 5, &out->last_hour);
		stats_read_percentiles(res, 8, &out->latency);
		stats_read_percentiles(res, 13, &out->duration);
	}
	PQclear(res);
	return rc;
}

/* ---- queue depth ------------------------------------------------------- */

static int pg_store_queue_depth(struct store *store, size_t max,
				int (*each)(const struct queue_depth *depth,
					    void *arg),
				void *arg)
{
	struct params p = { .count = 0 };
	PGresult *res;
	int stopped = 0;
	int rc;

	param_int64(&p, size_to_int64(max));
	rc = stmt_run(store, STMT_QUEUE_DEPTH, &p, &res);
	if (rc != STORE_OK)
		return rc;
	for (int i = 0; i < PQntuples(res) && !stopped; i++) {
		struct queue_depth d;

		memset(&d, 0, sizeof d);
		d.cloud_id = value_text(res, i, 0);
		d.count = value_int64(res, i, 2);
		d.oldest_created_ms = value_time(res, i, 3);
		if (d.cloud_id == NULL ||
		    store_status_parse(PQgetvalue(res, i, 1), &d.status) != 0) {
			store_seterr(store, "queue_depth: unexpected row");
			rc = STORE_ERROR;
			break;
		}
		stopped = each(&d, arg);
	}
	PQclear(res);
	return rc == STORE_OK ? stopped : rc;
}

/* ---- copying between databases ----------------------------------------- */

/* Row i of a copy_read result into ev; its strings become ev's. */
static int copy_read_row(struct store *store, const PGresult *res, int i,
			 struct copy_event *ev)
{
	const struct {
		int col;
		char **out;
	} texts[] = {
		{ 1, &ev->cloud_id },
		{ 2, &ev->new_smart_number },
		{ 3, &ev->network_id },
		{ 4, &ev->new_smart_uri },
		{ 5, &ev->interested_parties },
		{ 6, &ev->created_at },
		{ 9, &ev->next_attempt_at },
		{ 10, &ev->last_attempt_at },
		{ 12, &ev->error },
	};
	int rc = STORE_OK;

	ev->id = value_int64(res, i, 0);
	ev->attempts = value_int64(res, i, 7);
	ev->budget_start = value_int64(res, i, 8);
	ev->http_status = (long)value_int64(res, i, 11);
	for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
		const char *text = value_text(res, i, texts[t].col);

		if (text != NULL)
			rc = text_dup(store, "copy_read", text, texts[t].out);
		if (rc != STORE_OK)
			break;
	}
	return rc;
}

static int pg_store_copy_read(struct store *store, const char *cloud_id,
			      int64_t after_id, size_t limit,
			      struct copy_event **events, size_t *count)
{
	struct params p = { .count = 0 };
	struct copy_event *list = NULL;
	PGresult *res;
	int n = 0;
	int rc;

	*events = NULL;
	*count = 0;
	param_text(&p, cloud_id);
	param_int64(&p, after_id);
	param_int64(&p, size_to_int64(limit));
	rc = stmt_run(store, STMT_COPY_READ, &p, &res);
	if (rc != STORE_OK)
		return rc;
	n = PQntuples(res);
	if (n > 0) {
		list = calloc((size_t)n, sizeof *list);
		if (list == NULL) {
			store_seterr(store, "copy_read: out of memory");
			rc = STORE_ERROR;
		}
	}
	for (int i = 0; i < n && rc == STORE_OK; i++)
		rc = copy_read_row(store, res, i, &list[i]);
	PQclear(res);
	if (rc != STORE_OK) {
		store_copy_events_free(list, (size_t)n);
		return rc;
	}
	*events = list;
	*count = (size_t)n;
	return STORE_OK;
}

/* Inserts ev unless its id is taken; *added says whether it was. */
static int copy_insert(struct store *store, const struct copy_event *ev,
		       int *added)
{
	struct params p = { .count = 0 };
	int64_t changed = 0;
	int rc;

	param_int64(&p, ev->id);
	param_text(&p, ev->cloud_id);
	param_text(&p, ev->new_smart_number);
	param_text(&p, ev->network_id);
	param_text(&p, ev->new_smart_uri);
	param_text(&p, ev->interested_parties);
	param_text(&p, ev->created_at);
	param_int64(&p, ev->attempts);
	param_int64(&p, ev->budget_start);
	param_text(&p, ev->next_attempt_at);
	param_text(&p, ev->last_attempt_at);
	param_int64_or_null(&p, ev->http_status != 0, ev->http_status);
	param_text(&p, ev->error);
	rc = stmt_exec(store, STMT_COPY_INSERT, &p, &changed);
	if (rc != STORE_OK && strcmp(store->sqlstate, "23514") == 0)
		store_seterr(store, "copy_insert: interested_parties must be"
			     " a JSON array");
	*added = rc == STORE_OK && changed == 1;
	return rc;
}

/* What the row already stored under ev's id is to ev; result->outcome
 * stays COPY_ADDED when there is none. */
static int copy_find(struct store *store, const struct copy_event *ev,
		     struct copy_result *result)
{
	struct params p = { .count = 0 };
	const char *stored[COPY_PRODUCER_COLUMNS];
	PGresult *res;
	int rc;

	param_int64(&p, ev->id);
	rc = stmt_run(store, STMT_COPY_FIND, &p, &res);
	if (rc != STORE_OK)
		return rc;
	if (PQntuples(res) == 1) {
		for (int i = 0; i < COPY_PRODUCER_COLUMNS; i++)
			stored[i] = value_text(res, 0, i);
		result->differs = store_copy_differs(ev, stored);
		result->outcome = result->differs ? COPY_CONFLICT : COPY_PRESENT;
	}
	PQclear(res);
	return STORE_OK;
}

static int pg_store_copy_write(struct store *store,
			       const struct copy_event *events, size_t count,
			       int dry_run, struct copy_result *results)
{
	static const struct copy_ops ops = { copy_insert, copy_find };
	int64_t failed, top;
	int rc = STORE_OK;

	if (count == 0)
		return STORE_OK;
	if (!dry_run)
		rc = tx_begin(store);
	if (rc != STORE_OK)
		return rc;
	rc = store_copy_each(store, &ops, events, count, dry_run, results,
			     &failed, &top);
	if (rc != STORE_OK) {
		char cause[STORE_ERRMSG_SIZE];

		memcpy(cause, store->errmsg, sizeof cause);
		store_seterr(store, "event %" PRId64 ": %s", failed, cause);
	} else if (top > 0) {
		struct params p = { .count = 0 };

		param_int64(&p, top);
		rc = stmt_exec(store, STMT_COPY_SEQUENCE, &p, NULL);
	}
	return dry_run ? rc : tx_end(store, rc);
}

const struct store_engine store_pg_engine = {
	.open = pg_store_open,
	.close = pg_store_close,
	.errmsg = pg_store_errmsg,
	.schema_version = pg_store_schema_version,
	.set_busy_timeout = pg_store_set_busy_timeout,
	.set_tx_hook = pg_store_set_tx_hook,
	.data_changed = pg_store_data_changed,
	.wait_fd = pg_store_wait_fd,
	.config_list = pg_store_config_list,
	.config_set = pg_store_config_set,
	.config_add = pg_store_config_add,
	.config_unset = pg_store_config_unset,
	.pending_cloud_ids = pg_store_pending_cloud_ids,
	.enqueue = pg_store_enqueue,
	.enqueue_batch = pg_store_enqueue_batch,
	.claim = pg_store_claim,
	.max_event_id = pg_store_max_event_id,
	.recover_leases = pg_store_recover_leases,
	.next_due = pg_store_next_due,
	.record = pg_store_record,
	.release = pg_store_release,
	.history = pg_store_history,
	.attempts = pg_store_attempts,
	.requeue_count = pg_store_requeue_count,
	.requeue_batch = pg_store_requeue_batch,
	.purge_count = pg_store_purge_count,
	.purge_batch = pg_store_purge_batch,
	.stats_clouds = pg_store_stats_clouds,
	.stats = pg_store_stats,
	.queue_depth = pg_store_queue_depth,
	.copy_read = pg_store_copy_read,
	.copy_write = pg_store_copy_write,
};
