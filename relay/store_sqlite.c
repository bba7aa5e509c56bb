/*
 * store_sqlite.c - the SQLite engine of the outbox database (store.h).
 *
 * Owns the SQLite connection, the migrations embedded from sql/, and the one
 * table of named statements, all prepared at open. This is the only file
 * that includes sqlite3.h; every sqlite3_* result goes through store_check().
 */
#include "store.h"
#include "store_engine.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "timeutil.h"

#define STORE_ERRMSG_SIZE 512
#define STORE_BUSY_TIMEOUT_MS 5000
/* BEGIN IMMEDIATE tries; each waits up to the busy timeout for the lock. */
#define STORE_BEGIN_TRIES 3
#define STORE_BEGIN_PAUSE_MS 20

struct migration {
	int version;
	const char *name;
	const char *sql;
};

static const struct migration migrations[] = {
#include "migrations.inc"
};

#define MIGRATION_COUNT (sizeof migrations / sizeof migrations[0])

enum stmt {
	/* Need no schema: prepared before the migrations run. */
	STMT_BEGIN,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_SAVEPOINT,
	STMT_SAVEPOINT_RELEASE,
	STMT_SAVEPOINT_ROLLBACK,
	STMT_JOURNAL_WAL,
	STMT_SYNCHRONOUS,
	STMT_FOREIGN_KEYS,
	STMT_TEMP_STORE,
	STMT_USER_VERSION,
	STMT_DATA_VERSION,
	/* Need the current schema: prepared after the migrations. */
	STMT_CONFIG_LIST,
	STMT_CONFIG_SET,
	STMT_CONFIG_ADD,
	STMT_CONFIG_UNSET,
	STMT_PENDING_CLOUD_IDS,
	STMT_ENQUEUE,
	STMT_CLAIM_SELECT,
	STMT_CLAIM,
	STMT_MAX_EVENT_ID,
	STMT_LEASES_EXPIRED,
	STMT_RECOVER_LEASES,
	STMT_NEXT_DUE,
	STMT_RECORD,
	STMT_ATTEMPT_ADD,
	STMT_RECORD_SMALL,
	STMT_ATTEMPT_ADD_SMALL,
	STMT_RECORD_UNWRITABLE,
	STMT_RELEASE,
	STMT_HISTORY,
	STMT_ATTEMPTS,
	STMT_REQUEUE_COUNT,
	STMT_REQUEUE,
	STMT_PURGE_COUNT,
	STMT_PURGE_SELECT,
	STMT_PURGE_ATTEMPTS,
	STMT_PURGE_EVENT,
	STMT_STATS_CLOUDS,
	STMT_STATS,
	STMT_QUEUE_DEPTH,
	STMT_COPY_READ,
	STMT_COPY_INSERT,
	STMT_COPY_FIND,
	STMT_COUNT
};

#define STMT_FIRST_SCHEMA STMT_CONFIG_LIST

/*
 * The outcomes of store_record, RECORD_COLUMNS each, go RECORD_BATCH to a
 * statement (a busy relay records about 40 a turn); up to RECORD_SMALL take
 * a statement of that many rows instead, so that a quiet relay does not
 * carry 63 empty rows along with its one outcome.
 */
#define RECORD_BATCH 64
#define RECORD_SMALL 8
#define RECORD_COLUMNS 11
#define RECORD_ROW "(?,?,?,?,?,?,?,?,?,?,?)"
#define RECORD_ROWS8 RECORD_ROW "," RECORD_ROW "," RECORD_ROW "," RECORD_ROW \
	"," RECORD_ROW "," RECORD_ROW "," RECORD_ROW "," RECORD_ROW
#define RECORD_ROWS64 RECORD_ROWS8 "," RECORD_ROWS8 "," RECORD_ROWS8 "," \
	RECORD_ROWS8 "," RECORD_ROWS8 "," RECORD_ROWS8 "," RECORD_ROWS8 "," \
	RECORD_ROWS8
#define RECORD_VALUES(rows) \
	"WITH v (id, token, status, attempted, finished, http, error," \
	"        delivered, next, started, duration) AS (VALUES " rows ")"
/* Unused rows stay NULL and match nothing. Only an attempted outcome
 * changes the attempt's own columns. */
#define RECORD_UPDATE \
	" UPDATE outbox" \
	"   SET status = v.status," \
	"       attempts = outbox.attempts + v.attempted," \
	"       last_attempt_at = CASE WHEN v.attempted THEN v.finished" \
	"                         ELSE outbox.last_attempt_at END," \
	"       http_status = CASE WHEN v.attempted THEN v.http" \
	"                     ELSE outbox.http_status END," \
	"       error = v.error," \
	"       delivered_at = v.delivered," \
	"       next_attempt_at = v.next," \
	"       claim_token = NULL, lease_until = NULL" \
	"  FROM v" \
	" WHERE outbox.id = v.id AND outbox.claim_token = v.token" \
	"   AND outbox.status = 'sending'"
/* Runs before the record, with the same fence: the attempt's number is the
 * row's own count plus this attempt, and never below a number already
 * logged for the event (a row whose attempts were reset by hand must not
 * collide). */
#define RECORD_ATTEMPT_ADD \
	" INSERT INTO delivery_attempts" \
	" (outbox_id, attempt, started_at, duration_ms, http_status, error)" \
	" SELECT o.id, max(o.attempts + 1, 1 + ifnull((SELECT max(a.attempt)" \
	"          FROM delivery_attempts AS a WHERE a.outbox_id = o.id), 0))," \
	"        v.started, v.duration, v.http, v.error" \
	"   FROM v JOIN outbox AS o" \
	"     ON o.id = v.id AND o.claim_token = v.token" \
	"    AND o.status = 'sending'" \
	"  WHERE v.attempted"

struct stmt_spec {
	const char *name;
	const char *sql;
};

/*
 * Every statement of the program. Expressions on next_attempt_at are spelled
 * exactly as in the outbox_due index, or the planner cannot use it.
 */
static const struct stmt_spec stmt_specs[STMT_COUNT] = {
	[STMT_BEGIN] = { "begin",
		/* IMMEDIATE takes the write lock now: a deferred transaction
		 * that upgrades later can fail with SQLITE_BUSY midway. */
		"BEGIN IMMEDIATE" },
	[STMT_COMMIT] = { "commit", "COMMIT" },
	[STMT_ROLLBACK] = { "rollback", "ROLLBACK" },
	/* Each outcome of a batch stands alone: one that cannot be written
	 * must not take the others down with it. */
	[STMT_SAVEPOINT] = { "savepoint", "SAVEPOINT outcome" },
	[STMT_SAVEPOINT_RELEASE] = { "savepoint_release", "RELEASE outcome" },
	[STMT_SAVEPOINT_ROLLBACK] = { "savepoint_rollback",
		"ROLLBACK TO outcome" },
	[STMT_JOURNAL_WAL] = { "journal_mode", "PRAGMA journal_mode = WAL" },
	[STMT_SYNCHRONOUS] = { "synchronous",
		/* In WAL mode NORMAL syncs at checkpoints, not at each commit.
		 * A killed process loses nothing committed; a power loss may
		 * roll back the last commits, and a lost outcome only means the
		 * event is delivered again, which at-least-once allows. */
		"PRAGMA synchronous = NORMAL" },
	[STMT_FOREIGN_KEYS] = { "foreign_keys", "PRAGMA foreign_keys = ON" },
	[STMT_TEMP_STORE] = { "temp_store",
		/* Keeps statement journals in small in-memory chunks. Left
		 * to spill to a file, SQLite allocates and frees a 64 KiB
		 * buffer per UPDATE, which glibc hands back to the kernel
		 * every time: a third of the outcomes per second. The temp
		 * data is bounded: no statement here sorts into a temp table
		 * larger than a claim. */
		"PRAGMA temp_store = MEMORY" },
	[STMT_USER_VERSION] = { "user_version", "PRAGMA user_version" },
	[STMT_DATA_VERSION] = { "data_version", "PRAGMA data_version" },

	[STMT_CONFIG_LIST] = { "config_list",
		"SELECT cloud_id, key, value FROM config"
		" WHERE ?1 IS NULL OR cloud_id = ?1"
		" ORDER BY cloud_id, key" },
	[STMT_CONFIG_SET] = { "config_set",
		"INSERT INTO config (cloud_id, key, value)"
		" VALUES (ifnull(?1, 'default'), ?2, ?3)"
		" ON CONFLICT (cloud_id, key) DO UPDATE SET value = excluded.value" },
	[STMT_CONFIG_ADD] = { "config_add",
		"INSERT INTO config (cloud_id, key, value)"
		" VALUES (ifnull(?1, 'default'), ?2, ?3)"
		" ON CONFLICT (cloud_id, key) DO NOTHING" },
	[STMT_CONFIG_UNSET] = { "config_unset",
		"DELETE FROM config"
		" WHERE cloud_id = ifnull(?1, 'default') AND key = ?2" },
	[STMT_PENDING_CLOUD_IDS] = { "pending_cloud_ids",
		/* A skip scan: one index seek per distinct cloud_id, where
		 * SELECT DISTINCT would walk every pending row. */
		"WITH RECURSIVE ids (cloud_id) AS ("
		"  SELECT min(cloud_id) FROM outbox WHERE status = 'pending'"
		"  UNION ALL"
		"  SELECT (SELECT min(o.cloud_id) FROM outbox AS o"
		"           WHERE o.status = 'pending'"
		"             AND o.cloud_id > ids.cloud_id)"
		"    FROM ids WHERE ids.cloud_id IS NOT NULL)"
		" SELECT cloud_id FROM ids WHERE cloud_id IS NOT NULL LIMIT ?1" },
	[STMT_ENQUEUE] = { "enqueue",
		"INSERT INTO outbox (cloud_id, new_smart_number, network_id,"
		"                    new_smart_uri, interested_parties)"
		" VALUES (ifnull(?1, 'default'), ?2, ?3, ?4, ?5)" },
	[STMT_CLAIM_SELECT] = { "claim_select",
		/* The due rows, in due order; STMT_CLAIM then claims the same
		 * rows in the same transaction. Read here rather than through
		 * RETURNING, which copies every row into a temporary table. */
		"SELECT id, cloud_id, new_smart_number, network_id,"
		"       new_smart_uri, interested_parties, attempts,"
		"       attempts - budget_start, created_at"
		"  FROM outbox"
		" WHERE status = 'pending'"
		"   AND cloud_id = ifnull(?1, 'default')"
		"   AND ifnull(next_attempt_at, '') <= ?2"
		"   AND id <= ?3"
		" ORDER BY ifnull(next_attempt_at, ''), id"
		" LIMIT ?4" },
	[STMT_CLAIM] = { "claim",
		"UPDATE outbox"
		"   SET status = 'sending', claim_token = ?1, lease_until = ?2"
		" WHERE id IN (SELECT id FROM outbox"
		"               WHERE status = 'pending'"
		"                 AND cloud_id = ifnull(?3, 'default')"
		"                 AND ifnull(next_attempt_at, '') <= ?4"
		"                 AND id <= ?5"
		"               ORDER BY ifnull(next_attempt_at, ''), id"
		"               LIMIT ?6)" },
	[STMT_MAX_EVENT_ID] = { "max_event_id",
		/* max() of the rowid reads the last entry of the table. */
		"SELECT ifnull(max(id), 0) FROM outbox" },
	[STMT_LEASES_EXPIRED] = { "leases_expired",
		"SELECT 1 FROM outbox"
		" WHERE status = 'sending' AND lease_until <= ?1 LIMIT 1" },
	[STMT_RECOVER_LEASES] = { "recover_leases",
		"UPDATE outbox"
		"   SET status = 'pending', next_attempt_at = NULL,"
		"       claim_token = NULL, lease_until = NULL"
		" WHERE status = 'sending' AND lease_until <= ?1"
		" RETURNING id, cloud_id" },
	[STMT_NEXT_DUE] = { "next_due",
		"SELECT ifnull(next_attempt_at, '') FROM outbox"
		" WHERE status = 'pending' AND cloud_id = ifnull(?1, 'default')"
		" ORDER BY ifnull(next_attempt_at, ''), id LIMIT 1" },
	/* Outcomes many at once: one statement, and one statement journal,
	 * per batch rather than per outcome. */
	[STMT_RECORD] = { "record",
		RECORD_VALUES(RECORD_ROWS64) RECORD_UPDATE },
	[STMT_ATTEMPT_ADD] = { "attempt_add",
		RECORD_VALUES(RECORD_ROWS64) RECORD_ATTEMPT_ADD },
	[STMT_RECORD_SMALL] = { "record_small",
		RECORD_VALUES(RECORD_ROWS8) RECORD_UPDATE },
	[STMT_ATTEMPT_ADD_SMALL] = { "attempt_add_small",
		RECORD_VALUES(RECORD_ROWS8) RECORD_ATTEMPT_ADD },
	[STMT_RECORD_UNWRITABLE] = { "record_unwritable",
		"UPDATE outbox"
		"   SET status = 'failed', error = ?3, next_attempt_at = NULL,"
		"       claim_token = NULL, lease_until = NULL"
		" WHERE id = ?1 AND claim_token = ?2 AND status = 'sending'" },
	[STMT_RELEASE] = { "release",
		"UPDATE outbox"
		"   SET status = 'pending', next_attempt_at = NULL,"
		"       claim_token = NULL, lease_until = NULL"
		" WHERE id = ?1 AND claim_token = ?2 AND status = 'sending'" },
	[STMT_HISTORY] = { "history",
		"SELECT id, cloud_id, new_smart_number, network_id, new_smart_uri,"
		"       interested_parties, created_at, status, attempts,"
		"       next_attempt_at, last_attempt_at, http_status, error,"
		"       delivered_at"
		"  FROM outbox"
		" WHERE (?1 IS NULL OR status = ?1)"
		"   AND (?2 IS NULL OR cloud_id = ?2)"
		"   AND (?3 IS NULL OR id = ?3)"
		"   AND (?4 IS NULL OR new_smart_number = ?4)"
		"   AND (?5 IS NULL OR created_at >= ?5)"
		"   AND (?6 IS NULL OR created_at < ?6)"
		" ORDER BY created_at DESC, id DESC"
		" LIMIT ?7" },
	[STMT_ATTEMPTS] = { "attempts",
		"SELECT id, outbox_id, attempt, started_at, duration_ms,"
		"       http_status, error"
		"  FROM delivery_attempts WHERE outbox_id = ?1 ORDER BY attempt" },
	[STMT_REQUEUE_COUNT] = { "requeue_count",
		"SELECT count(*) FROM outbox"
		" WHERE status = 'failed'"
		"   AND (?1 IS NULL OR id = ?1)"
		"   AND (?2 IS NULL OR cloud_id = ?2)"
		"   AND (?3 IS NULL OR ifnull(last_attempt_at, created_at) >= ?3)" },
	[STMT_REQUEUE] = { "requeue",
		/* Walks by id so that an event the relay fails again while a
		 * long requeue runs is not requeued twice by it. */
		"UPDATE outbox"
		"   SET status = 'pending', next_attempt_at = NULL,"
		"       budget_start = attempts"
		" WHERE id IN (SELECT id FROM outbox"
		"               WHERE status = 'failed'"
		"                 AND (?1 IS NULL OR id = ?1)"
		"                 AND (?2 IS NULL OR cloud_id = ?2)"
		"                 AND (?3 IS NULL"
		"                      OR ifnull(last_attempt_at, created_at) >= ?3)"
		"                 AND id > ?4 AND id <= ?5"
		"               ORDER BY id LIMIT ?6)"
		" RETURNING id" },
	[STMT_PURGE_COUNT] = { "purge_count",
		/* The outbox_finished expression: for delivered rows it is
		 * delivered_at, for failed ones (never delivered)
		 * last_attempt_at, else created_at. */
		"SELECT count(*) FROM outbox"
		" WHERE status IN ('delivered', 'failed')"
		"   AND ifnull(delivered_at, ifnull(last_attempt_at, created_at))"
		"       < ?1" },
	[STMT_PURGE_SELECT] = { "purge_select",
		/* Oldest first along outbox_finished: a batch reads only
		 * the rows it deletes, the earlier batches' being gone. */
		"SELECT id FROM outbox"
		" WHERE status IN ('delivered', 'failed')"
		"   AND ifnull(delivered_at, ifnull(last_attempt_at, created_at))"
		"       < ?1"
		" ORDER BY ifnull(delivered_at, ifnull(last_attempt_at, created_at)), id"
		" LIMIT ?2" },
	[STMT_PURGE_ATTEMPTS] = { "purge_attempts",
		"DELETE FROM delivery_attempts WHERE outbox_id = ?1" },
	[STMT_PURGE_EVENT] = { "purge_event",
		/* The status test again: a purge never takes a live event,
		 * whatever the caller selected. */
		"DELETE FROM outbox"
		" WHERE id = ?1 AND status IN ('delivered', 'failed')" },
	[STMT_STATS_CLOUDS] = { "stats_clouds",
		"SELECT cloud_id, sum(status = 'pending'), sum(status = 'sending'),"
		"       sum(status = 'delivered'), sum(status = 'failed'),"
		"       min(CASE WHEN status = 'pending' THEN created_at END)"
		"  FROM outbox GROUP BY cloud_id ORDER BY cloud_id" },
	[STMT_STATS] = { "stats",
		/* One statement, so one snapshot. ?1 is now, ?2 an hour ago,
		 * ?3 a minute ago. Percentiles are nearest-rank: the smallest
		 * value whose cume_dist reaches p. Latency is taken from the
		 * attempts that delivered, which the started_at index finds. */
		"SELECT"
		" (SELECT count(*) FROM outbox WHERE status = 'pending'"
		"     AND ifnull(next_attempt_at, '') <= ?1),"
		" (SELECT ifnull(min(created_at), '') FROM outbox"
		"   WHERE status = 'pending'),"
		" (SELECT count(*) FROM delivery_attempts WHERE started_at >= ?3),"
		" (SELECT count(*) FROM delivery_attempts WHERE started_at >= ?3"
		"     AND http_status = 204),"
		" (SELECT count(*) FROM outbox WHERE status = 'failed'"
		"     AND ifnull(last_attempt_at, created_at) >= ?3),"
		" (SELECT count(*) FROM delivery_attempts WHERE started_at >= ?2),"
		" (SELECT count(*) FROM delivery_attempts WHERE started_at >= ?2"
		"     AND http_status = 204),"
		" (SELECT count(*) FROM outbox WHERE status = 'failed'"
		"     AND ifnull(last_attempt_at, created_at) >= ?2),"
		" l.n, l.p50, l.p90, l.p99, l.top,"
		" d.n, d.p50, d.p90, d.p99, d.top"
		" FROM (SELECT count(*) AS n,"
		"              ifnull(min(CASE WHEN cd >= 0.5 THEN ms END), 0) AS p50,"
		"              ifnull(min(CASE WHEN cd >= 0.9 THEN ms END), 0) AS p90,"
		"              ifnull(min(CASE WHEN cd >= 0.99 THEN ms END), 0) AS p99,"
		"              ifnull(max(ms), 0) AS top"
		"         FROM (SELECT ms, cume_dist() OVER (ORDER BY ms) AS cd"
		"                 FROM (SELECT CAST(round((julianday(o.delivered_at)"
		"                              - julianday(o.created_at)) * 86400000)"
		"                              AS INTEGER) AS ms"
		"                         FROM delivery_attempts AS a"
		"                         JOIN outbox AS o ON o.id = a.outbox_id"
		"                        WHERE a.started_at >= ?2"
		"                          AND a.http_status = 204"
		"                          AND o.status = 'delivered'))) AS l,"
		"      (SELECT count(*) AS n,"
		"              ifnull(min(CASE WHEN cd >= 0.5 THEN ms END), 0) AS p50,"
		"              ifnull(min(CASE WHEN cd >= 0.9 THEN ms END), 0) AS p90,"
		"              ifnull(min(CASE WHEN cd >= 0.99 THEN ms END), 0) AS p99,"
		"              ifnull(max(ms), 0) AS top"
		"         FROM (SELECT duration_ms AS ms,"
		"                      cume_dist() OVER (ORDER BY duration_ms) AS cd"
		"                 FROM delivery_attempts WHERE started_at >= ?2)) AS d" },
	[STMT_QUEUE_DEPTH] = { "queue_depth",
		/* Two selects, so that each reads its state's partial index and
		 * the delivered and failed history is never walked; the oldest
		 * is the lowest id, found in the index, so that only one row
		 * per cloud_id is read from the table (a third of the time of
		 * min(created_at) on a large backlog). */
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
		" LIMIT ?1" },
	[STMT_COPY_READ] = { "copy_read",
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
		"   AND (?1 IS NULL OR cloud_id = ?1)"
		"   AND id > ?2"
		" ORDER BY id LIMIT ?3" },
	[STMT_COPY_INSERT] = { "copy_insert",
		"INSERT INTO outbox (id, cloud_id, new_smart_number, network_id,"
		"                    new_smart_uri, interested_parties, created_at,"
		"                    status, attempts, budget_start,"
		"                    next_attempt_at, last_attempt_at,"
		"                    http_status, error)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?9, ?10, ?11,"
		"         ?12, ?13)"
		" ON CONFLICT (id) DO NOTHING" },
	[STMT_COPY_FIND] = { "copy_find",
		/* The columns store_copy_differs compares, in its order. */
		"SELECT cloud_id, new_smart_number, network_id, new_smart_uri,"
		"       interested_parties, created_at"
		"  FROM outbox WHERE id = ?1" },
};

struct store {
	struct store_head head;
	sqlite3 *db;
	sqlite3_stmt *stmts[STMT_COUNT];
	int have_data_version;
	int64_t data_version;
	void (*tx_hook)(void *arg);
	void *tx_hook_arg;
	int last_code; /* the SQLite code of the last failure */
	int busy_timeout_ms;     /* how long busy_wait waits for a lock */
	int64_t busy_since_ms;   /* when the current wait began */
	int64_t busy_last_ms;    /* busy_wait's last call */
	char errmsg[STORE_ERRMSG_SIZE];
};

static const char *const status_names[] = {
	[EVENT_PENDING] = "pending",
	[EVENT_SENDING] = "sending",
	[EVENT_DELIVERED] = "delivered",
	[EVENT_FAILED] = "failed",
};

#define STATUS_COUNT (sizeof status_names / sizeof status_names[0])

const char *store_status_name(enum event_status status)
{
	if ((size_t)status >= STATUS_COUNT)
		return "unknown";
	return status_names[status];
}

int store_status_parse(const char *name, enum event_status *status)
{
	for (size_t i = 0; i < STATUS_COUNT; i++) {
		if (strcmp(name, status_names[i]) == 0) {
			*status = (enum event_status)i;
			return 0;
		}
	}
	return -1;
}

static int sqlite_store_schema_version(void)
{
	return migrations[MIGRATION_COUNT - 1].version;
}

static const char *sqlite_store_errmsg(const struct store *store)
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

/*
 * The one check of every sqlite3_* result: OK, ROW and DONE pass; anything
 * else is recorded as "what: message (code)" and becomes STORE_BUSY when the
 * database was locked, STORE_ERROR otherwise.
 */
static int store_check(struct store *store, const char *what, int rc)
{
	const char *msg;

	if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE)
		return STORE_OK;
	/* sqlite3_errmsg() speaks of the last call on the connection, which
	 * is not always the one that failed (a column read, a reset). */
	if (store->db != NULL && sqlite3_extended_errcode(store->db) == rc)
		msg = sqlite3_errmsg(store->db);
	else
		msg = sqlite3_errstr(rc);
	store_seterr(store, "%s: %s (%d)", what, msg, rc);
	store->last_code = rc;
	return (rc & 0xff) == SQLITE_BUSY ? STORE_BUSY : STORE_ERROR;
}

static int stmt_check(struct store *store, enum stmt id, int rc)
{
	return store_check(store, stmt_specs[id].name, rc);
}

/* Steps statement id once; *row is 1 when it produced a row. */
static int stmt_step(struct store *store, enum stmt id, int *row)
{
	int rc = sqlite3_step(store->stmts[id]);

	*row = rc == SQLITE_ROW;
	return stmt_check(store, id, rc);
}

/*
 * Ends a use of statement id and passes rc on. Resetting at once matters: a
 * statement left mid-walk keeps its read snapshot, and with it the WAL.
 */
static int stmt_reset(struct store *store, enum stmt id, int rc)
{
	int reset_rc = sqlite3_reset(store->stmts[id]);
	int clear_rc = sqlite3_clear_bindings(store->stmts[id]);

	/* After a failed step, reset repeats the error already recorded. */
	if (rc != STORE_OK)
		return rc;
	rc = stmt_check(store, id, reset_rc);
	if (rc == STORE_OK)
		rc = stmt_check(store, id, clear_rc);
	return rc;
}

/* Runs statement id, which returns no row worth reading, to its end. */
static int stmt_exec(struct store *store, enum stmt id)
{
	int row = 1;
	int rc = STORE_OK;

	while (rc == STORE_OK && row)
		rc = stmt_step(store, id, &row);
	return stmt_reset(store, id, rc);
}

static int bind_int64(struct store *store, enum stmt id, int idx,
		      int64_t value)
{
	return stmt_check(store, id,
			  sqlite3_bind_int64(store->stmts[id], idx, value));
}

/* Binds NULL unless present. */
static int bind_int64_or_null(struct store *store, enum stmt id, int idx,
			      int present, int64_t value)
{
	if (!present)
		return stmt_check(store, id,
				  sqlite3_bind_null(store->stmts[id], idx));
	return bind_int64(store, id, idx, value);
}

/*
 * Binds text, or NULL for a NULL pointer. SQLITE_STATIC: every caller resets
 * the statement before the text goes away.
 */
static int bind_text(struct store *store, enum stmt id, int idx,
		     const char *text)
{
	if (text == NULL)
		return stmt_check(store, id,
				  sqlite3_bind_null(store->stmts[id], idx));
	return stmt_check(store, id,
			  sqlite3_bind_text(store->stmts[id], idx, text, -1,
					    SQLITE_STATIC));
}

/* Column col as text, NULL for SQL NULL; borrowed until the next step. */
static int column_text(struct store *store, enum stmt id, int col,
		       const char **text)
{
	sqlite3_stmt *stmt = store->stmts[id];
	int type = sqlite3_column_type(stmt, col);

	*text = (const char *)sqlite3_column_text(stmt, col);
	/* A NULL for a non-NULL value is a failed conversion (no memory). */
	if (*text == NULL && type != SQLITE_NULL)
		return stmt_check(store, id, SQLITE_NOMEM);
	return STORE_OK;
}

/* Column col as a new string; a NULL value is an error. */
static int column_strdup(struct store *store, enum stmt id, int col,
			 char **out)
{
	const char *text;
	int rc = column_text(store, id, col, &text);

	*out = NULL;
	if (rc != STORE_OK)
		return rc;
	if (text == NULL) {
		store_seterr(store, "%s: column %d is NULL", stmt_specs[id].name,
			     col);
		return STORE_ERROR;
	}
	*out = strdup(text);
	if (*out == NULL) {
		store_seterr(store, "%s: out of memory", stmt_specs[id].name);
		return STORE_ERROR;
	}
	return STORE_OK;
}

/*
 * Column col, a timestamp, as ms in *ms; 0 when it is NULL or not in the
 * contract's format (a hand-edited row), which only costs that row its
 * place in a statistic, never its delivery.
 */
static int column_time(struct store *store, enum stmt id, int col,
		       int64_t *ms)
{
	const char *text;
	int rc = column_text(store, id, col, &text);

	*ms = 0;
	if (rc == STORE_OK && text != NULL && time_parse(text, ms) != 0)
		*ms = 0;
	return rc;
}

/*
 * Column col as a new string, like column_strdup, and whether the value held
 * a NUL byte: C strings end there, so such a value must be refused by the
 * caller rather than silently cut short.
 */
static int column_strdup_whole(struct store *store, enum stmt id, int col,
			       char **out, int *has_nul)
{
	int rc = column_strdup(store, id, col, out);

	if (rc == STORE_OK && !*has_nul)
		*has_nul = (size_t)sqlite3_column_bytes(store->stmts[id], col)
			   != strlen(*out);
	return rc;
}

/* ---- transactions ------------------------------------------------------ */

static void tx_rollback(struct store *store)
{
	char cause[STORE_ERRMSG_SIZE];

	/* Some errors (I/O, full disk, no memory) roll back by themselves. */
	if (sqlite3_get_autocommit(store->db))
		return;
	memcpy(cause, store->errmsg, sizeof cause);
	if (stmt_exec(store, STMT_ROLLBACK) != STORE_OK) {
		log_error("store: %s (after %s)", store->errmsg, cause);
		/* The caller reports what made the rollback necessary. */
		memcpy(store->errmsg, cause, sizeof cause);
	}
}

/*
 * Begins a write transaction. The busy handler waits out a lock for the busy
 * timeout; some lock states (a WAL being recovered) return SQLITE_BUSY
 * without waiting, hence the few tries. Then STORE_BUSY: try later.
 */
static int tx_begin(struct store *store)
{
	int rc = STORE_BUSY;

	for (int try = 0; try < STORE_BEGIN_TRIES && rc == STORE_BUSY; try++) {
		if (try > 0)
			sqlite3_sleep(STORE_BEGIN_PAUSE_MS * try);
		rc = stmt_exec(store, STMT_BEGIN);
	}
	if (rc == STORE_OK && store->tx_hook != NULL)
		store->tx_hook(store->tx_hook_arg);
	return rc;
}

/* Commits when rc is STORE_OK, else rolls back; returns the outcome. */
static int tx_end(struct store *store, int rc)
{
	if (rc == STORE_OK)
		rc = stmt_exec(store, STMT_COMMIT);
	if (rc != STORE_OK)
		tx_rollback(store);
	return rc;
}

/* ---- opening ----------------------------------------------------------- */

/*
 * The busy handler. SQLite's own (sqlite3_busy_timeout) sleeps 1, 2, 5, 10
 * and then up to 100 ms between looks at a held lock, while a relay's write
 * transaction holds it for about a millisecond: relays sharing a file then
 * spend much of their time asleep. This one looks every 100 us for the
 * first 5 ms, then every millisecond, until the timeout (two relays on one
 * file delivered about a fifth more; docs/performance.md).
 */
#define BUSY_SHORT_PAUSE_NS (100 * 1000)
#define BUSY_SHORT_LOOKS 50
#define BUSY_LONG_PAUSE_NS (1000 * 1000)
#define BUSY_NEW_WAIT_MS 50

static int busy_wait(void *arg, int count)
{
	struct store *store = arg;
	struct timespec pause = { 0, count < BUSY_SHORT_LOOKS
				     ? BUSY_SHORT_PAUSE_NS : BUSY_LONG_PAUSE_NS };
	int64_t now = time_mono_ms();

	/* A new wait: count starts at 0, but not on every path SQLite
	 * takes, and no wait pauses longer than a millisecond. */
	if (count == 0 || now - store->busy_last_ms > BUSY_NEW_WAIT_MS)
		store->busy_since_ms = now;
	else if (now - store->busy_since_ms >= store->busy_timeout_ms)
		return 0;
	store->busy_last_ms = now;
	nanosleep(&pause, NULL);
	return 1;
}

/* As sqlite3_busy_timeout: 0 or less gives up on a held lock at once. */
static int busy_set(struct store *store, int timeout_ms)
{
	store->busy_timeout_ms = timeout_ms;
	return sqlite3_busy_handler(store->db, timeout_ms > 0 ? busy_wait : NULL,
				    store);
}

static int stmts_prepare(struct store *store, enum stmt first, enum stmt end)
{
	for (int i = first; i < (int)end; i++) {
		const char *tail = NULL;
		int rc;

		if (stmt_specs[i].sql == NULL) {
			store_seterr(store, "statement %d has no SQL", i);
			return STORE_ERROR;
		}
		rc = stmt_check(store, (enum stmt)i,
				sqlite3_prepare_v3(store->db, stmt_specs[i].sql,
						   -1, SQLITE_PREPARE_PERSISTENT,
						   &store->stmts[i], &tail));
		if (rc != STORE_OK)
			return rc;
		/* prepare takes one statement and would ignore the rest. */
		tail += strspn(tail, " \t\n;");
		if (*tail != '\0') {
			store_seterr(store, "%s: more than one statement",
				     stmt_specs[i].name);
			return STORE_ERROR;
		}
	}
	return STORE_OK;
}

/* Creates path owner-only unless it exists; SQLite gives -wal and -shm the
 * database file's mode, so they end up owner-only too. */
static int file_create(struct store *store, const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int rc = STORE_OK;

	if (fd < 0) {
		if (errno == EEXIST)
			return STORE_OK;
		store_seterr(store, "cannot create %s: %s", path,
			     strerror(errno));
		return STORE_ERROR;
	}
	/* The umask may have taken bits that the owner needs. */
	if (fchmod(fd, 0600) != 0) {
		store_seterr(store, "cannot chmod %s: %s", path,
			     strerror(errno));
		rc = STORE_ERROR;
	}
	close(fd);
	return rc;
}

static int file_require(struct store *store, const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0)
		return STORE_OK;
	if (errno == ENOENT)
		store_seterr(store, "no such database: %s (run smartrelay init)",
			     path);
	else
		store_seterr(store, "cannot open %s: %s", path,
			     strerror(errno));
	return STORE_ERROR;
}

static int user_version_read(struct store *store, int *version)
{
	int row = 0;
	int rc = stmt_step(store, STMT_USER_VERSION, &row);

	if (rc == STORE_OK && row)
		*version = sqlite3_column_int(store->stmts[STMT_USER_VERSION], 0);
	else if (rc == STORE_OK) {
		store_seterr(store, "user_version: no value");
		rc = STORE_ERROR;
	}
	return stmt_reset(store, STMT_USER_VERSION, rc);
}

/* Runs every statement of a migration's text; the text is ours (sql/). */
static int script_exec(struct store *store, const struct migration *m)
{
	const char *sql = m->sql;
	int rc = STORE_OK;

	while (rc == STORE_OK) {
		sqlite3_stmt *stmt = NULL;
		const char *tail = NULL;
		int step_rc;

		rc = store_check(store, m->name,
				 sqlite3_prepare_v2(store->db, sql, -1, &stmt,
						    &tail));
		if (rc != STORE_OK || stmt == NULL)
			break; /* an error, or only comments were left */
		sql = tail;
		do
			step_rc = sqlite3_step(stmt);
		while (step_rc == SQLITE_ROW);
		rc = store_check(store, m->name, step_rc);
		/* finalize repeats a failed step's code: check it only after
		 * a good one. */
		step_rc = sqlite3_finalize(stmt);
		if (rc == STORE_OK)
			rc = store_check(store, m->name, step_rc);
	}
	return rc;
}

/* Applies one migration in its own transaction, unless another init did. */
static int migration_apply(struct store *store, const struct migration *m)
{
	int version = 0;
	int rc = tx_begin(store);

	if (rc != STORE_OK)
		return rc;
	rc = user_version_read(store, &version);
	if (rc != STORE_OK || version >= m->version)
		goto out;
	rc = script_exec(store, m);
	if (rc == STORE_OK)
		rc = user_version_read(store, &version);
	if (rc == STORE_OK && version != m->version) {
		store_seterr(store, "%s: leaves user_version %d, not %d",
			     m->name, version, m->version);
		rc = STORE_ERROR;
	}
out:
	return tx_end(store, rc);
}

static int schema_prepare(struct store *store, const char *path,
			  enum store_mode mode)
{
	int latest = sqlite_store_schema_version();
	int version = 0;
	int row = 0;
	int rc;

	rc = user_version_read(store, &version);
	if (rc != STORE_OK)
		return rc;
	if (version > latest) {
		store_seterr(store, "schema version %d of %s is newer than %d:"
			     " this smartrelay is too old for it", version,
			     path, latest);
		return STORE_ERROR;
	}
	if (version < latest && mode == STORE_OPEN_EXISTING) {
		store_seterr(store, "schema version %d of %s is older than %d:"
			     " run smartrelay init", version, path, latest);
		return STORE_ERROR;
	}
	/* WAL lets the operators and producers read and insert while the
	 * relay writes. The mode is stored in the file, so init sets it for
	 * every later connection too. */
	rc = stmt_step(store, STMT_JOURNAL_WAL, &row);
	if (rc == STORE_OK) {
		const char *journal = NULL;

		rc = column_text(store, STMT_JOURNAL_WAL, 0, &journal);
		if (rc == STORE_OK &&
		    (!row || journal == NULL || strcmp(journal, "wal") != 0)) {
			store_seterr(store, "%s: cannot use WAL (journal mode %s)",
				     path, journal ? journal : "unknown");
			rc = STORE_ERROR;
		}
	}
	rc = stmt_reset(store, STMT_JOURNAL_WAL, rc);
	for (size_t i = 0; rc == STORE_OK && i < MIGRATION_COUNT; i++) {
		if (migrations[i].version > version)
			rc = migration_apply(store, &migrations[i]);
	}
	return rc;
}

static void sqlite_store_close(struct store *store);

static int sqlite_store_open(const char *path, enum store_mode mode,
			     struct store **out, char *err, size_t errlen)
{
	struct store *store;
	int rc;

	*out = NULL;
	store = calloc(1, sizeof *store);
	if (store == NULL) {
		if (errlen > 0)
			snprintf(err, errlen, "%s: out of memory", path);
		return STORE_ERROR;
	}
	store->head.engine = &store_sqlite_engine;
	if (mode == STORE_OPEN_CREATE)
		rc = file_create(store, path);
	else
		rc = file_require(store, path);
	if (rc != STORE_OK)
		goto out;
	/* One connection per thread: no mutexes. Without OPEN_CREATE, so
	 * that sqlite never makes a file with the process's umask. */
	rc = store_check(store, path,
			 sqlite3_open_v2(path, &store->db,
					 SQLITE_OPEN_READWRITE |
					 SQLITE_OPEN_NOMUTEX, NULL));
	if (rc != STORE_OK)
		goto out;
	rc = store_check(store, path,
			 sqlite3_extended_result_codes(store->db, 1));
	if (rc == STORE_OK)
		rc = store_check(store, path,
				 busy_set(store, STORE_BUSY_TIMEOUT_MS));
	if (rc == STORE_OK)
		rc = stmts_prepare(store, 0, STMT_FIRST_SCHEMA);
	if (rc == STORE_OK)
		rc = stmt_exec(store, STMT_SYNCHRONOUS);
	if (rc == STORE_OK)
		rc = stmt_exec(store, STMT_FOREIGN_KEYS);
	if (rc == STORE_OK)
		rc = stmt_exec(store, STMT_TEMP_STORE);
	if (rc == STORE_OK)
		rc = schema_prepare(store, path, mode);
	if (rc == STORE_OK)
		rc = stmts_prepare(store, STMT_FIRST_SCHEMA, STMT_COUNT);
	if (rc != STORE_OK)
		goto out;
	*out = store;
	store = NULL;
out:
	if (store != NULL && errlen > 0)
		snprintf(err, errlen, "%s", store->errmsg);
	sqlite_store_close(store);
	return rc;
}

static void sqlite_store_close(struct store *store)
{
	if (store == NULL)
		return;
	for (int i = STMT_COUNT - 1; i >= 0; i--) {
		/* finalize only repeats the statement's last error. */
		(void)sqlite3_finalize(store->stmts[i]);
	}
	if (store->db != NULL) {
		int rc = store_check(store, "close", sqlite3_close(store->db));

		if (rc != STORE_OK)
			log_error("store: %s", store->errmsg);
	}
	free(store);
}

static int sqlite_store_set_busy_timeout(struct store *store, int timeout_ms)
{
	return store_check(store, "busy_timeout", busy_set(store, timeout_ms));
}

static void sqlite_store_set_tx_hook(struct store *store,
				     void (*hook)(void *arg), void *arg)
{
	store->tx_hook = hook;
	store->tx_hook_arg = arg;
}

static int sqlite_store_data_changed(struct store *store, int *changed)
{
	int row = 0;
	int rc = stmt_step(store, STMT_DATA_VERSION, &row);

	if (rc == STORE_OK && row) {
		int64_t version =
			sqlite3_column_int64(store->stmts[STMT_DATA_VERSION], 0);

		*changed = !store->have_data_version ||
			   version != store->data_version;
		store->data_version = version;
		store->have_data_version = 1;
	} else if (rc == STORE_OK) {
		store_seterr(store, "data_version: no value");
		rc = STORE_ERROR;
	}
	return stmt_reset(store, STMT_DATA_VERSION, rc);
}

/* The data_version check is a query: there is nothing to wait on. */
static int sqlite_store_wait_fd(struct store *store)
{
	(void)store;
	return -1;
}

/* ---- configuration ------------------------------------------------------ */

/* Makes room for one more element in *array of *cap elements of size. */
static int array_grow(struct store *store, void **array, size_t *cap,
		      size_t count, size_t size)
{
	size_t new_cap;
	void *grown;

	if (count < *cap)
		return STORE_OK;
	new_cap = *cap == 0 ? 16 : *cap * 2;
	grown = reallocarray(*array, new_cap, size);
	if (grown == NULL) {
		store_seterr(store, "out of memory");
		return STORE_ERROR;
	}
	memset((char *)grown + *cap * size, 0, (new_cap - *cap) * size);
	*array = grown;
	*cap = new_cap;
	return STORE_OK;
}

static int sqlite_store_config_list(struct store *store, const char *cloud_id,
		      struct config_row **rows, size_t *count)
{
	struct config_row *list = NULL;
	size_t n = 0, cap = 0;
	int row = 1;
	int rc;

	*rows = NULL;
	*count = 0;
	rc = bind_text(store, STMT_CONFIG_LIST, 1, cloud_id);
	while (rc == STORE_OK) {
		rc = stmt_step(store, STMT_CONFIG_LIST, &row);
		if (rc != STORE_OK || !row)
			break;
		rc = array_grow(store, (void **)&list, &cap, n, sizeof *list);
		if (rc != STORE_OK)
			break;
		n++; /* counted before filling, so that a failure frees it */
		rc = column_strdup(store, STMT_CONFIG_LIST, 0, &list[n - 1].cloud_id);
		if (rc == STORE_OK)
			rc = column_strdup(store, STMT_CONFIG_LIST, 1,
					   &list[n - 1].key);
		if (rc == STORE_OK)
			rc = column_strdup_whole(store, STMT_CONFIG_LIST, 2,
						 &list[n - 1].value,
						 &list[n - 1].value_has_nul);
	}
	rc = stmt_reset(store, STMT_CONFIG_LIST, rc);
	if (rc != STORE_OK) {
		store_config_rows_free(list, n);
		return rc;
	}
	*rows = list;
	*count = n;
	return STORE_OK;
}

/*
 * Runs STMT_CONFIG_SET, _ADD or _UNSET (which has no value: NULL) on one
 * key in a transaction of its own; *changed (may be NULL) is set to the
 * number of rows written or deleted, 0 or 1.
 */
static int config_write(struct store *store, enum stmt id,
			const char *cloud_id, const char *key,
			const char *value, int *changed)
{
	int64_t changes = 0;
	int rc = tx_begin(store);

	if (rc != STORE_OK)
		return rc;
	rc = bind_text(store, id, 1, cloud_id);
	if (rc == STORE_OK)
		rc = bind_text(store, id, 2, key);
	if (rc == STORE_OK && value != NULL)
		rc = bind_text(store, id, 3, value);
	if (rc == STORE_OK) {
		rc = stmt_exec(store, id);
		changes = sqlite3_changes64(store->db);
	} else {
		rc = stmt_reset(store, id, rc);
	}
	rc = tx_end(store, rc);
	if (rc == STORE_OK && changed != NULL)
		*changed = changes > 0;
	return rc;
}

static int sqlite_store_config_set(struct store *store, const char *cloud_id,
		     const char *key, const char *value)
{
	return config_write(store, STMT_CONFIG_SET, cloud_id, key, value, NULL);
}

static int sqlite_store_config_add(struct store *store, const char *cloud_id,
				   const char *key, const char *value,
				   int *added)
{
	return config_write(store, STMT_CONFIG_ADD, cloud_id, key, value,
			    added);
}

static int sqlite_store_config_unset(struct store *store, const char *cloud_id,
		       const char *key, int *removed)
{
	return config_write(store, STMT_CONFIG_UNSET, cloud_id, key, NULL,
			    removed);
}

static int64_t size_to_int64(size_t n)
{
	return n > (size_t)INT64_MAX ? INT64_MAX : (int64_t)n;
}

static int sqlite_store_pending_cloud_ids(struct store *store, size_t max,
					  char ***ids, size_t *count)
{
	char **list = NULL;
	size_t n = 0, cap = 0;
	int row = 1;
	int rc;

	*ids = NULL;
	*count = 0;
	if (max == 0)
		return STORE_OK;
	rc = bind_int64(store, STMT_PENDING_CLOUD_IDS, 1, size_to_int64(max));
	while (rc == STORE_OK) {
		rc = stmt_step(store, STMT_PENDING_CLOUD_IDS, &row);
		if (rc != STORE_OK || !row)
			break;
		rc = array_grow(store, (void **)&list, &cap, n, sizeof *list);
		if (rc == STORE_OK)
			rc = column_strdup(store, STMT_PENDING_CLOUD_IDS, 0,
					   &list[n++]);
	}
	rc = stmt_reset(store, STMT_PENDING_CLOUD_IDS, rc);
	if (rc != STORE_OK) {
		for (size_t i = 0; i < n; i++)
			free(list[i]);
		free(list);
		return rc;
	}
	*ids = list;
	*count = n;
	return STORE_OK;
}

/* ---- producing ---------------------------------------------------------- */

/* Inserts one event inside the caller's transaction. */
static int enqueue_row(struct store *store, const struct new_event *event,
		       int64_t *id)
{
	int rc = bind_text(store, STMT_ENQUEUE, 1, event->cloud_id);

	if (rc == STORE_OK)
		rc = bind_text(store, STMT_ENQUEUE, 2, event->new_smart_number);
	if (rc == STORE_OK)
		rc = bind_text(store, STMT_ENQUEUE, 3, event->network_id);
	if (rc == STORE_OK)
		rc = bind_text(store, STMT_ENQUEUE, 4, event->new_smart_uri);
	if (rc == STORE_OK)
		rc = bind_text(store, STMT_ENQUEUE, 5, event->interested_parties);
	if (rc == STORE_OK) {
		rc = stmt_exec(store, STMT_ENQUEUE);
		/* The only CHECK an INSERT with defaults can break. */
		if (rc != STORE_OK &&
		    store->last_code == SQLITE_CONSTRAINT_CHECK)
			store_seterr(store, "enqueue: interested_parties must be"
				     " a JSON array");
	} else {
		rc = stmt_reset(store, STMT_ENQUEUE, rc);
	}
	if (rc == STORE_OK && id != NULL)
		*id = sqlite3_last_insert_rowid(store->db);
	return rc;
}

static int sqlite_store_enqueue(struct store *store,
				const struct new_event *event, int64_t *id)
{
	int rc = tx_begin(store);

	if (rc != STORE_OK)
		return rc;
	return tx_end(store, enqueue_row(store, event, id));
}

static int sqlite_store_enqueue_batch(struct store *store,
				      const struct new_event *events,
				      size_t count, int64_t *ids)
{
	int rc = STORE_OK;
	size_t i;

	if (count == 0)
		return STORE_OK;
	rc = tx_begin(store);
	if (rc != STORE_OK)
		return rc;
	for (i = 0; i < count && rc == STORE_OK; i++)
		rc = enqueue_row(store, &events[i], ids ? &ids[i] : NULL);
	if (rc != STORE_OK) {
		char cause[STORE_ERRMSG_SIZE];

		memcpy(cause, store->errmsg, sizeof cause);
		store_seterr(store, "event %zu of %zu: %s", i, count, cause);
	}
	return tx_end(store, rc);
}

/* ---- claims and outcomes ------------------------------------------------ */

static int claimed_read(struct store *store, struct event *ev, int64_t token)
{
	sqlite3_stmt *stmt = store->stmts[STMT_CLAIM_SELECT];
	int rc;

	ev->id = sqlite3_column_int64(stmt, 0);
	ev->attempts = sqlite3_column_int64(stmt, 6);
	ev->budget_used = sqlite3_column_int64(stmt, 7);
	ev->claim_token = token;
	rc = column_strdup(store, STMT_CLAIM_SELECT, 1, &ev->cloud_id);
	for (int col = 2; col <= 5 && rc == STORE_OK; col++) {
		static const char *const names[] = {
			"new_smart_number", "network_id", "new_smart_uri",
			"interested_parties",
		};
		char **fields[] = {
			&ev->new_smart_number, &ev->network_id,
			&ev->new_smart_uri, &ev->interested_parties,
		};
		int has_nul = 0;

		rc = column_strdup_whole(store, STMT_CLAIM_SELECT, col,
					 fields[col - 2], &has_nul);
		if (has_nul && ev->nul_field == NULL)
			ev->nul_field = names[col - 2];
	}
	if (rc == STORE_OK)
		rc = column_time(store, STMT_CLAIM_SELECT, 8, &ev->created_ms);
	return rc;
}

static int sqlite_store_claim(struct store *store,
			      const struct claim_request *request,
			      struct event **events, size_t *count)
{
	char now[TIME_TEXT_SIZE], lease[TIME_TEXT_SIZE];
	struct event *list = NULL;
	size_t n = 0, cap = 0;
	int64_t claimed;
	int row = 1;
	int rc;

	*events = NULL;
	*count = 0;
	if (request->limit == 0)
		return STORE_OK;
	time_format(request->now_ms, now);
	time_format(request->lease_until_ms, lease);

	rc = tx_begin(store);
	if (rc != STORE_OK)
		return rc;
	rc = bind_text(store, STMT_CLAIM_SELECT, 1, request->cloud_id);
	if (rc == STORE_OK)
		rc = bind_text(store, STMT_CLAIM_SELECT, 2, now);
	if (rc == STORE_OK)
		rc = bind_int64(store, STMT_CLAIM_SELECT, 3, request->max_id);
	if (rc == STORE_OK)
		rc = bind_int64(store, STMT_CLAIM_SELECT, 4,
				size_to_int64(request->limit));
	while (rc == STORE_OK) {
		rc = stmt_step(store, STMT_CLAIM_SELECT, &row);
		if (rc != STORE_OK || !row)
			break;
		rc = array_grow(store, (void **)&list, &cap, n, sizeof *list);
		if (rc == STORE_OK)
			rc = claimed_read(store, &list[n++], request->token);
	}
	rc = stmt_reset(store, STMT_CLAIM_SELECT, rc);
	if (rc == STORE_OK && n > 0) {
		rc = bind_int64(store, STMT_CLAIM, 1, request->token);
		if (rc == STORE_OK)
			rc = bind_text(store, STMT_CLAIM, 2, lease);
		if (rc == STORE_OK)
			rc = bind_text(store, STMT_CLAIM, 3, request->cloud_id);
		if (rc == STORE_OK)
			rc = bind_text(store, STMT_CLAIM, 4, now);
		if (rc == STORE_OK)
			rc = bind_int64(store, STMT_CLAIM, 5, request->max_id);
		if (rc == STORE_OK)
			rc = bind_int64(store, STMT_CLAIM, 6,
					size_to_int64(request->limit));
		if (rc == STORE_OK)
			rc = stmt_exec(store, STMT_CLAIM);
		else
			rc = stmt_reset(store, STMT_CLAIM, rc);
		claimed = sqlite3_changes64(store->db);
		if (rc == STORE_OK && claimed != size_to_int64(n)) {
			/* The write lock is held from the read: cannot happen. */
			store_seterr(store, "claim: read %zu rows, claimed %"
				     PRId64, n, claimed);
			rc = STORE_ERROR;
		}
	}
	/* Any failure rolls the claim back: no row is left 'sending'
	 * without a caller that knows it holds it. */
	rc = tx_end(store, rc);
	if (rc != STORE_OK || n == 0) {
		store_events_free(list, n);
		return rc;
	}
	*events = list;
	*count = n;
	return STORE_OK;
}

static int sqlite_store_max_event_id(struct store *store, int64_t *id)
{
	int row = 0;
	int rc = stmt_step(store, STMT_MAX_EVENT_ID, &row);

	*id = 0;
	if (rc == STORE_OK && row)
		*id = sqlite3_column_int64(store->stmts[STMT_MAX_EVENT_ID], 0);
	return stmt_reset(store, STMT_MAX_EVENT_ID, rc);
}

/* A claim taken over, logged once the takeover has committed. */
struct taken_over {
	int64_t id;
	char *cloud_id;
};

static int sqlite_store_recover_leases(struct store *store, int64_t now_ms,
				       int64_t *recovered)
{
	char now[TIME_TEXT_SIZE];
	struct taken_over *list = NULL;
	size_t n = 0, cap = 0;
	int row = 1;
	int expired = 0;
	int rc;

	time_format(now_ms, now);
	if (recovered != NULL)
		*recovered = 0;
	/* Looked for with a read first: the relay sweeps every second, and
	 * must not take the write lock from producers when nothing expired. */
	rc = bind_text(store, STMT_LEASES_EXPIRED, 1, now);
	if (rc == STORE_OK)
		rc = stmt_step(store, STMT_LEASES_EXPIRED, &expired);
	rc = stmt_reset(store, STMT_LEASES_EXPIRED, rc);
	if (rc != STORE_OK || !expired)
		return rc;
	rc = tx_begin(store);
	if (rc != STORE_OK)
		return rc;
	rc = bind_text(store, STMT_RECOVER_LEASES, 1, now);
	while (rc == STORE_OK) {
		rc = stmt_step(store, STMT_RECOVER_LEASES, &row);
		if (rc != STORE_OK || !row)
			break;
		rc = array_grow(store, (void **)&list, &cap, n, sizeof *list);
		if (rc == STORE_OK) {
			list[n].id = sqlite3_column_int64(
				store->stmts[STMT_RECOVER_LEASES], 0);
			rc = column_strdup(store, STMT_RECOVER_LEASES, 1,
					   &list[n++].cloud_id);
		}
	}
	rc = stmt_reset(store, STMT_RECOVER_LEASES, rc);
	rc = tx_end(store, rc);
	if (rc == STORE_OK) {
		for (size_t i = 0; i < n; i++)
			log_warn("lease expired id=%" PRId64 " cloud_id=%s: "
				 "back to pending, no attempt counted",
				 list[i].id, list[i].cloud_id);
		if (recovered != NULL)
			*recovered = size_to_int64(n);
	}
	for (size_t i = 0; i < n; i++)
		free(list[i].cloud_id);
	free(list);
	return rc;
}

static int sqlite_store_next_due(struct store *store, const char *cloud_id,
				 int64_t *due_ms)
{
	const char *due = NULL;
	int row = 0;
	int rc;

	*due_ms = INT64_MAX;
	rc = bind_text(store, STMT_NEXT_DUE, 1, cloud_id);
	if (rc == STORE_OK)
		rc = stmt_step(store, STMT_NEXT_DUE, &row);
	if (rc == STORE_OK && row)
		rc = column_text(store, STMT_NEXT_DUE, 0, &due);
	if (rc == STORE_OK && row) {
		if (due == NULL || due[0] == '\0') {
			*due_ms = INT64_MIN;
		} else if (time_parse(due, due_ms) != 0) {
			/* Only a hand-edited row can get here. */
			store_seterr(store, "next_due: next_attempt_at '%s' is"
				     " not a timestamp", due);
			*due_ms = INT64_MAX;
			rc = STORE_ERROR;
		}
	}
	return stmt_reset(store, STMT_NEXT_DUE, rc);
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

/* An outcome's times as text, alive until its statements are reset. */
struct outcome_text {
	char finished[TIME_TEXT_SIZE];
	char started[TIME_TEXT_SIZE];
	char next[TIME_TEXT_SIZE];
};

/* Binds outcome o as row `row` of the VALUES of statement id. */
static int outcome_bind(struct store *store, enum stmt id, int row,
			const struct outcome *o, const struct outcome_text *t)
{
	const int attempted = o->attempted != 0;
	const int first = row * RECORD_COLUMNS;
	int rc = bind_int64(store, id, first + 1, o->id);

	if (rc == STORE_OK)
		rc = bind_int64(store, id, first + 2, o->claim_token);
	if (rc == STORE_OK)
		rc = bind_text(store, id, first + 3, store_status_name(o->status));
	if (rc == STORE_OK)
		rc = bind_int64(store, id, first + 4, attempted);
	if (rc == STORE_OK)
		rc = bind_text(store, id, first + 5, attempted ? t->finished : NULL);
	if (rc == STORE_OK)
		rc = bind_int64_or_null(store, id, first + 6, o->http_status != 0,
					o->http_status);
	if (rc == STORE_OK)
		rc = bind_text(store, id, first + 7, o->error);
	if (rc == STORE_OK)
		rc = bind_text(store, id, first + 8,
			       o->status == EVENT_DELIVERED ? t->finished : NULL);
	if (rc == STORE_OK)
		rc = bind_text(store, id, first + 9,
			       o->status == EVENT_PENDING ? t->next : NULL);
	if (rc == STORE_OK)
		rc = bind_text(store, id, first + 10, attempted ? t->started : NULL);
	if (rc == STORE_OK)
		rc = bind_int64(store, id, first + 11, o->duration_ms);
	return rc;
}

/* Runs statement id over the n (at most RECORD_BATCH) outcomes. */
static int outcomes_exec(struct store *store, enum stmt id,
			 const struct outcome *o, const struct outcome_text *t,
			 size_t n)
{
	int rc = STORE_OK;

	for (size_t i = 0; i < n && rc == STORE_OK; i++)
		rc = outcome_bind(store, id, (int)i, &o[i], &t[i]);
	if (rc == STORE_OK)
		return stmt_exec(store, id);
	return stmt_reset(store, id, rc);
}

/*
 * Writes n (at most RECORD_BATCH) outcomes: first the attempts of the rows
 * still fenced by their tokens, then the rows; an outcome whose row no
 * longer carries its token (the lease was taken over) changes nothing.
 */
static int outcomes_write(struct store *store, const struct outcome *o,
			  size_t n, size_t *refused)
{
	struct outcome_text text[RECORD_BATCH];
	const int small = n <= RECORD_SMALL;
	int64_t changed;
	int rc;

	for (size_t i = 0; i < n; i++) {
		if (o[i].attempted) {
			time_format(o[i].finished_ms, text[i].finished);
			time_format(o[i].started_ms, text[i].started);
		}
		if (o[i].status == EVENT_PENDING)
			time_format(o[i].next_attempt_ms, text[i].next);
	}
	rc = outcomes_exec(store, small ? STMT_ATTEMPT_ADD_SMALL
					 : STMT_ATTEMPT_ADD, o, text, n);
	if (rc == STORE_OK)
		rc = outcomes_exec(store, small ? STMT_RECORD_SMALL : STMT_RECORD,
				   o, text, n);
	if (rc != STORE_OK)
		return rc;
	changed = sqlite3_changes64(store->db);
	*refused += n - (size_t)(changed < 0 ? 0 : changed);
	return STORE_OK;
}

/*
 * The outcome could not be written (a constraint, a row changed by hand):
 * undo it alone and fail the event with the reason, so that it is neither
 * sent again forever nor blocks the outcomes written with it. Errors that
 * ended the whole transaction (a full disk) are passed on: retry later.
 */
static int outcome_unwritable(struct store *store, const struct outcome *o)
{
	char reason[STORE_ERRMSG_SIZE + 32];
	int rc;

	if (sqlite3_get_autocommit(store->db))
		return STORE_ERROR;
	snprintf(reason, sizeof reason, "cannot record outcome: %s",
		 store->errmsg);
	log_error("id=%" PRId64 " %s; the event is marked failed", o->id, reason);
	rc = stmt_exec(store, STMT_SAVEPOINT_ROLLBACK);
	if (rc == STORE_OK)
		rc = bind_int64(store, STMT_RECORD_UNWRITABLE, 1, o->id);
	if (rc == STORE_OK)
		rc = bind_int64(store, STMT_RECORD_UNWRITABLE, 2, o->claim_token);
	if (rc == STORE_OK)
		rc = bind_text(store, STMT_RECORD_UNWRITABLE, 3, reason);
	if (rc == STORE_OK)
		rc = stmt_exec(store, STMT_RECORD_UNWRITABLE);
	else
		rc = stmt_reset(store, STMT_RECORD_UNWRITABLE, rc);
	return rc;
}

/*
 * One outcome in a savepoint of its own; failed if it cannot be written.
 * *refused says whether its fence kept it out.
 */
static int outcome_alone(struct store *store, const struct outcome *o,
			 unsigned char *refused)
{
	size_t fenced = 0;
	int rc = stmt_exec(store, STMT_SAVEPOINT);

	if (rc == STORE_OK)
		rc = outcomes_write(store, o, 1, &fenced);
	if (rc == STORE_ERROR)
		rc = outcome_unwritable(store, o);
	if (rc == STORE_OK)
		rc = stmt_exec(store, STMT_SAVEPOINT_RELEASE);
	*refused = fenced > 0;
	return rc;
}

static int sqlite_store_record(struct store *store,
			       const struct outcome *outcomes, size_t count,
			       unsigned char *refused)
{
	unsigned char unwanted[RECORD_BATCH];
	int rc = STORE_OK;

	if (count == 0)
		return STORE_OK;
	for (size_t i = 0; i < count && rc == STORE_OK; i++)
		rc = outcome_check(store, &outcomes[i]);
	if (rc != STORE_OK)
		return rc;
	rc = tx_begin(store);
	if (rc != STORE_OK)
		return rc;
	for (size_t i = 0; i < count && rc == STORE_OK; i += RECORD_BATCH) {
		size_t n = count - i < RECORD_BATCH ? count - i : RECORD_BATCH;
		unsigned char *flags = refused ? refused + i : unwanted;
		size_t fenced = 0;

		memset(flags, 0, n);
		rc = stmt_exec(store, STMT_SAVEPOINT);
		if (rc == STORE_OK)
			rc = outcomes_write(store, outcomes + i, n, &fenced);
		/* One of them cannot be written, or some were fenced out (a
		 * takeover: rare) and the count does not say which: undo the
		 * lot, and write them one by one to set those apart. */
		if ((rc == STORE_ERROR && !sqlite3_get_autocommit(store->db)) ||
		    (rc == STORE_OK && fenced > 0 && n > 1)) {
			rc = stmt_exec(store, STMT_SAVEPOINT_ROLLBACK);
			for (size_t k = 0; k < n && rc == STORE_OK; k++)
				rc = outcome_alone(store, &outcomes[i + k],
						   &flags[k]);
		} else if (rc == STORE_OK && fenced > 0) {
			flags[0] = 1;
		}
		if (rc == STORE_OK)
			rc = stmt_exec(store, STMT_SAVEPOINT_RELEASE);
	}
	return tx_end(store, rc);
}

static int sqlite_store_release(struct store *store, const int64_t *ids,
		  const int64_t *tokens, size_t count)
{
	int rc;

	if (count == 0)
		return STORE_OK;
	rc = tx_begin(store);
	if (rc != STORE_OK)
		return rc;
	for (size_t i = 0; i < count && rc == STORE_OK; i++) {
		rc = bind_int64(store, STMT_RELEASE, 1, ids[i]);
		if (rc == STORE_OK)
			rc = bind_int64(store, STMT_RELEASE, 2, tokens[i]);
		if (rc == STORE_OK)
			rc = stmt_exec(store, STMT_RELEASE);
		else
			rc = stmt_reset(store, STMT_RELEASE, rc);
	}
	return tx_end(store, rc);
}

/* ---- history ------------------------------------------------------------ */

/* A walk must not restart its own statement from inside its callback. */
static int stmt_idle(struct store *store, enum stmt id)
{
	if (!sqlite3_stmt_busy(store->stmts[id]))
		return STORE_OK;
	store_seterr(store, "%s: called again from its own callback",
		     stmt_specs[id].name);
	return STORE_ERROR;
}

static int history_read(struct store *store, struct history_row *h)
{
	sqlite3_stmt *stmt = store->stmts[STMT_HISTORY];
	const enum stmt id = STMT_HISTORY;
	int rc;

	memset(h, 0, sizeof *h);
	h->id = sqlite3_column_int64(stmt, 0);
	h->attempts = sqlite3_column_int64(stmt, 8);
	h->http_status = (long)sqlite3_column_int64(stmt, 11);
	rc = column_text(store, id, 1, &h->cloud_id);
	if (rc == STORE_OK)
		rc = column_text(store, id, 2, &h->new_smart_number);
	if (rc == STORE_OK)
		rc = column_text(store, id, 3, &h->network_id);
	if (rc == STORE_OK)
		rc = column_text(store, id, 4, &h->new_smart_uri);
	if (rc == STORE_OK)
		rc = column_text(store, id, 5, &h->interested_parties);
	if (rc == STORE_OK)
		rc = column_text(store, id, 6, &h->created_at);
	if (rc == STORE_OK)
		rc = column_text(store, id, 7, &h->status);
	if (rc == STORE_OK)
		rc = column_text(store, id, 9, &h->next_attempt_at);
	if (rc == STORE_OK)
		rc = column_text(store, id, 10, &h->last_attempt_at);
	if (rc == STORE_OK)
		rc = column_text(store, id, 12, &h->error);
	if (rc == STORE_OK)
		rc = column_text(store, id, 13, &h->delivered_at);
	return rc;
}

static int sqlite_store_history(struct store *store,
				const struct history_filter *filter,
				int (*each)(const struct history_row *row,
				void *arg), void *arg)
{
	const enum stmt id = STMT_HISTORY;
	int stopped = 0;
	int row = 1;
	int rc = stmt_idle(store, id);

	if (rc != STORE_OK)
		return rc;
	rc = bind_text(store, id, 1, filter->status);
	if (rc == STORE_OK)
		rc = bind_text(store, id, 2, filter->cloud_id);
	if (rc == STORE_OK)
		rc = bind_int64_or_null(store, id, 3, filter->id != 0,
					filter->id);
	if (rc == STORE_OK)
		rc = bind_text(store, id, 4, filter->number);
	if (rc == STORE_OK)
		rc = bind_text(store, id, 5, filter->since);
	if (rc == STORE_OK)
		rc = bind_text(store, id, 6, filter->until);
	if (rc == STORE_OK) /* a negative LIMIT is none */
		rc = bind_int64(store, id, 7,
				filter->limit > 0 ? filter->limit : -1);
	while (rc == STORE_OK && !stopped) {
		struct history_row h;

		rc = stmt_step(store, id, &row);
		if (rc != STORE_OK || !row)
			break;
		rc = history_read(store, &h);
		if (rc == STORE_OK)
			stopped = each(&h, arg);
	}
	rc = stmt_reset(store, id, rc);
	return rc == STORE_OK ? stopped : rc;
}

static int sqlite_store_attempts(struct store *store, int64_t outbox_id,
		   int (*each)(const struct attempt_row *row, void *arg),
		   void *arg)
{
	const enum stmt id = STMT_ATTEMPTS;
	sqlite3_stmt *stmt = store->stmts[id];
	int stopped = 0;
	int row = 1;
	int rc = stmt_idle(store, id);

	if (rc != STORE_OK)
		return rc;
	rc = bind_int64(store, id, 1, outbox_id);
	while (rc == STORE_OK && !stopped) {
		struct attempt_row a;

		rc = stmt_step(store, id, &row);
		if (rc != STORE_OK || !row)
			break;
		memset(&a, 0, sizeof a);
		a.id = sqlite3_column_int64(stmt, 0);
		a.outbox_id = sqlite3_column_int64(stmt, 1);
		a.attempt = sqlite3_column_int64(stmt, 2);
		a.duration_ms = sqlite3_column_int64(stmt, 4);
		a.http_status = (long)sqlite3_column_int64(stmt, 5);
		rc = column_text(store, id, 3, &a.started_at);
		if (rc == STORE_OK)
			rc = column_text(store, id, 6, &a.error);
		if (rc == STORE_OK)
			stopped = each(&a, arg);
	}
	rc = stmt_reset(store, id, rc);
	return rc == STORE_OK ? stopped : rc;
}

/* ---- operations: requeue, purge, stats ---------------------------------- */

static int requeue_bind(struct store *store, enum stmt id,
			const struct requeue_filter *filter)
{
	int rc = bind_int64_or_null(store, id, 1, filter->id != 0, filter->id);

	if (rc == STORE_OK)
		rc = bind_text(store, id, 2, filter->cloud_id);
	if (rc == STORE_OK)
		rc = bind_text(store, id, 3, filter->since);
	return rc;
}

/* Steps statement id, which yields one integer, into *value. */
static int stmt_count(struct store *store, enum stmt id, int rc,
		      int64_t *value)
{
	int row = 0;

	*value = 0;
	if (rc == STORE_OK)
		rc = stmt_step(store, id, &row);
	if (rc == STORE_OK && row)
		*value = sqlite3_column_int64(store->stmts[id], 0);
	return stmt_reset(store, id, rc);
}

static int sqlite_store_requeue_count(struct store *store,
			const struct requeue_filter *filter, int64_t *count)
{
	return stmt_count(store, STMT_REQUEUE_COUNT,
			  requeue_bind(store, STMT_REQUEUE_COUNT, filter), count);
}

static int sqlite_store_requeue_batch(struct store *store,
			const struct requeue_filter *filter, int64_t after_id,
			int64_t max_id, size_t limit, int64_t *requeued,
			int64_t *last_id)
{
	const enum stmt id = STMT_REQUEUE;
	int64_t n = 0, last = after_id;
	int row = 1;
	int rc;

	*requeued = 0;
	*last_id = after_id;
	rc = tx_begin(store);
	if (rc != STORE_OK)
		return rc;
	rc = requeue_bind(store, id, filter);
	if (rc == STORE_OK)
		rc = bind_int64(store, id, 4, after_id);
	if (rc == STORE_OK)
		rc = bind_int64(store, id, 5, max_id);
	if (rc == STORE_OK)
		rc = bind_int64(store, id, 6, size_to_int64(limit));
	while (rc == STORE_OK) {
		int64_t taken;

		rc = stmt_step(store, id, &row);
		if (rc != STORE_OK || !row)
			break;
		taken = sqlite3_column_int64(store->stmts[id], 0);
		if (taken > last)
			last = taken;
		n++;
	}
	rc = stmt_reset(store, id, rc);
	rc = tx_end(store, rc);
	if (rc == STORE_OK) {
		*requeued = n;
		*last_id = last;
	}
	return rc;
}

static int sqlite_store_purge_count(struct store *store, const char *cutoff,
				    int64_t *count)
{
	return stmt_count(store, STMT_PURGE_COUNT,
			  bind_text(store, STMT_PURGE_COUNT, 1, cutoff), count);
}

/* Deletes event id and its attempts; adds what went to the counts. */
static int purge_one(struct store *store, int64_t id, int64_t *events,
		     int64_t *attempts)
{
	int rc = bind_int64(store, STMT_PURGE_ATTEMPTS, 1, id);

	if (rc == STORE_OK) {
		rc = stmt_exec(store, STMT_PURGE_ATTEMPTS);
		*attempts += sqlite3_changes64(store->db);
	} else {
		rc = stmt_reset(store, STMT_PURGE_ATTEMPTS, rc);
	}
	if (rc != STORE_OK)
		return rc;
	rc = bind_int64(store, STMT_PURGE_EVENT, 1, id);
	if (rc == STORE_OK) {
		rc = stmt_exec(store, STMT_PURGE_EVENT);
		*events += sqlite3_changes64(store->db);
	} else {
		rc = stmt_reset(store, STMT_PURGE_EVENT, rc);
	}
	return rc;
}

static int sqlite_store_purge_batch(struct store *store, const char *cutoff,
				    size_t limit, int64_t *events,
				    int64_t *attempts)
{
	const enum stmt id = STMT_PURGE_SELECT;
	int64_t *ids = NULL, gone = 0, gone_attempts = 0;
	size_t n = 0, cap = 0;
	int row = 1;
	int rc;

	*events = 0;
	*attempts = 0;
	if (limit == 0)
		return STORE_OK;
	rc = tx_begin(store);
	if (rc != STORE_OK)
		return rc;
	rc = bind_text(store, id, 1, cutoff);
	if (rc == STORE_OK)
		rc = bind_int64(store, id, 2, size_to_int64(limit));
	/* The ids first: deleting while the walk reads the table would
	 * make the walk's own results depend on its deletes. */
	while (rc == STORE_OK) {
		rc = stmt_step(store, id, &row);
		if (rc != STORE_OK || !row)
			break;
		rc = array_grow(store, (void **)&ids, &cap, n, sizeof *ids);
		if (rc == STORE_OK)
			ids[n++] = sqlite3_column_int64(store->stmts[id], 0);
	}
	rc = stmt_reset(store, id, rc);
	for (size_t i = 0; i < n && rc == STORE_OK; i++)
		rc = purge_one(store, ids[i], &gone, &gone_attempts);
	rc = tx_end(store, rc);
	if (rc == STORE_OK) {
		*events = gone;
		*attempts = gone_attempts;
	}
	free(ids);
	return rc;
}

static int sqlite_store_stats_clouds(struct store *store,
				     int (*each)(const struct stats_cloud_row *row,
				     void *arg), void *arg)
{
	const enum stmt id = STMT_STATS_CLOUDS;
	sqlite3_stmt *stmt = store->stmts[id];
	int stopped = 0;
	int row = 1;
	int rc = stmt_idle(store, id);

	while (rc == STORE_OK && !stopped) {
		struct stats_cloud_row c;

		rc = stmt_step(store, id, &row);
		if (rc != STORE_OK || !row)
			break;
		memset(&c, 0, sizeof c);
		for (int i = 0; i < 4; i++)
			c.by_status[i] = sqlite3_column_int64(stmt, 1 + i);
		rc = column_text(store, id, 0, &c.cloud_id);
		if (rc == STORE_OK)
			rc = column_text(store, id, 5, &c.oldest_pending);
		if (rc == STORE_OK)
			stopped = each(&c, arg);
	}
	rc = stmt_reset(store, id, rc);
	return rc == STORE_OK ? stopped : rc;
}

static void stats_read_window(sqlite3_stmt *stmt, int col,
			      struct stats_window *w)
{
	w->attempts = sqlite3_column_int64(stmt, col);
	w->delivered = sqlite3_column_int64(stmt, col + 1);
	w->failed_attempts = w->attempts - w->delivered;
	w->events_failed = sqlite3_column_int64(stmt, col + 2);
}

static void stats_read_percentiles(sqlite3_stmt *stmt, int col,
				   struct stats_percentiles *p)
{
	p->count = sqlite3_column_int64(stmt, col);
	p->p50 = sqlite3_column_int64(stmt, col + 1);
	p->p90 = sqlite3_column_int64(stmt, col + 2);
	p->p99 = sqlite3_column_int64(stmt, col + 3);
	p->max = sqlite3_column_int64(stmt, col + 4);
}

static int sqlite_store_stats(struct store *store, int64_t now_ms,
			      struct store_stats *out)
{
	const enum stmt id = STMT_STATS;
	sqlite3_stmt *stmt = store->stmts[id];
	char now[TIME_TEXT_SIZE], hour[TIME_TEXT_SIZE], minute[TIME_TEXT_SIZE];
	const char *oldest = NULL;
	int row = 0;
	int rc;

	memset(out, 0, sizeof *out);
	time_format(now_ms, now);
	time_format(now_ms - 3600 * 1000, hour);
	time_format(now_ms - 60 * 1000, minute);
	rc = bind_text(store, id, 1, now);
	if (rc == STORE_OK)
		rc = bind_text(store, id, 2, hour);
	if (rc == STORE_OK)
		rc = bind_text(store, id, 3, minute);
	if (rc == STORE_OK)
		rc = stmt_step(store, id, &row);
	if (rc == STORE_OK && !row) {
		store_seterr(store, "stats: no row");
		rc = STORE_ERROR;
	}
	if (rc == STORE_OK)
		rc = column_text(store, id, 1, &oldest);
	if (rc == STORE_OK) {
		out->due_now = sqlite3_column_int64(stmt, 0);
		snprintf(out->oldest_pending, sizeof out->oldest_pending, "%s",
			 oldest ? oldest : "");
		stats_read_window(stmt, 2, &out->last_minute);
		stats_read_window(stmt, 5, &out->last_hour);
		stats_read_percentiles(stmt, 8, &out->latency);
		stats_read_percentiles(stmt, 13, &out->duration);
	}
	return stmt_reset(store, id, rc);
}

/* ---- queue depth ------------------------------------------------------- */

static int sqlite_store_queue_depth(struct store *store, size_t max,
				    int (*each)(const struct queue_depth *depth,
						void *arg),
				    void *arg)
{
	const enum stmt id = STMT_QUEUE_DEPTH;
	sqlite3_stmt *stmt = store->stmts[id];
	int stopped = 0;
	int row = 1;
	int rc = stmt_idle(store, id);

	if (rc != STORE_OK)
		return rc;
	rc = bind_int64(store, id, 1, size_to_int64(max));
	while (rc == STORE_OK && !stopped) {
		struct queue_depth d;
		const char *status = NULL;

		rc = stmt_step(store, id, &row);
		if (rc != STORE_OK || !row)
			break;
		memset(&d, 0, sizeof d);
		d.count = sqlite3_column_int64(stmt, 2);
		rc = column_text(store, id, 0, &d.cloud_id);
		if (rc == STORE_OK)
			rc = column_text(store, id, 1, &status);
		if (rc == STORE_OK)
			rc = column_time(store, id, 3, &d.oldest_created_ms);
		if (rc == STORE_OK && (d.cloud_id == NULL || status == NULL ||
				       store_status_parse(status, &d.status) != 0)) {
			store_seterr(store, "queue_depth: unexpected row");
			rc = STORE_ERROR;
		}
		if (rc == STORE_OK)
			stopped = each(&d, arg);
	}
	rc = stmt_reset(store, id, rc);
	return rc == STORE_OK ? stopped : rc;
}

/* ---- copying between databases ----------------------------------------- */

/* The row STMT_COPY_READ stands on, into ev; its strings become ev's. */
static int copy_read_row(struct store *store, struct copy_event *ev)
{
	const enum stmt id = STMT_COPY_READ;
	sqlite3_stmt *stmt = store->stmts[id];
	const struct {
		int col;
		char **out;
		const char *name;
	} texts[] = {
		{ 1, &ev->cloud_id, "cloud_id" },
		{ 2, &ev->new_smart_number, "new_smart_number" },
		{ 3, &ev->network_id, "network_id" },
		{ 4, &ev->new_smart_uri, "new_smart_uri" },
		{ 5, &ev->interested_parties, "interested_parties" },
		{ 6, &ev->created_at, "created_at" },
		{ 9, &ev->next_attempt_at, "next_attempt_at" },
		{ 10, &ev->last_attempt_at, "last_attempt_at" },
		{ 12, &ev->error, "error" },
	};
	int rc = STORE_OK;

	ev->id = sqlite3_column_int64(stmt, 0);
	ev->attempts = sqlite3_column_int64(stmt, 7);
	ev->budget_start = sqlite3_column_int64(stmt, 8);
	ev->http_status = (long)sqlite3_column_int64(stmt, 11);
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		const char *text;

		rc = column_text(store, id, texts[i].col, &text);
		if (rc != STORE_OK)
			return rc;
		if (text == NULL)
			continue;
		*texts[i].out = strdup(text);
		if (*texts[i].out == NULL) {
			store_seterr(store, "copy_read: out of memory");
			return STORE_ERROR;
		}
		if (ev->nul_field == NULL &&
		    (size_t)sqlite3_column_bytes(stmt, texts[i].col)
		    != strlen(text))
			ev->nul_field = texts[i].name;
	}
	return STORE_OK;
}

static int sqlite_store_copy_read(struct store *store, const char *cloud_id,
				  int64_t after_id, size_t limit,
				  struct copy_event **events, size_t *count)
{
	const enum stmt id = STMT_COPY_READ;
	struct copy_event *list = NULL;
	size_t n = 0, cap = 0;
	int row = 1;
	int rc;

	*events = NULL;
	*count = 0;
	rc = bind_text(store, id, 1, cloud_id);
	if (rc == STORE_OK)
		rc = bind_int64(store, id, 2, after_id);
	if (rc == STORE_OK)
		rc = bind_int64(store, id, 3, size_to_int64(limit));
	while (rc == STORE_OK) {
		rc = stmt_step(store, id, &row);
		if (rc != STORE_OK || !row)
			break;
		rc = array_grow(store, (void **)&list, &cap, n, sizeof *list);
		if (rc != STORE_OK)
			break;
		n++; /* counted before filling, so that a failure frees it */
		rc = copy_read_row(store, &list[n - 1]);
	}
	rc = stmt_reset(store, id, rc);
	if (rc != STORE_OK) {
		store_copy_events_free(list, n);
		return rc;
	}
	*events = list;
	*count = n;
	return STORE_OK;
}

/* Inserts ev unless its id is taken; *added says whether it was. */
static int copy_insert(struct store *store, const struct copy_event *ev,
		       int *added)
{
	const enum stmt id = STMT_COPY_INSERT;
	const char *texts[COPY_PRODUCER_COLUMNS] = {
		ev->cloud_id, ev->new_smart_number, ev->network_id,
		ev->new_smart_uri, ev->interested_parties, ev->created_at,
	};
	int rc = bind_int64(store, id, 1, ev->id);

	*added = 0;
	for (int i = 0; i < COPY_PRODUCER_COLUMNS && rc == STORE_OK; i++)
		rc = bind_text(store, id, 2 + i, texts[i]);
	if (rc == STORE_OK)
		rc = bind_int64(store, id, 8, ev->attempts);
	if (rc == STORE_OK)
		rc = bind_int64(store, id, 9, ev->budget_start);
	if (rc == STORE_OK)
		rc = bind_text(store, id, 10, ev->next_attempt_at);
	if (rc == STORE_OK)
		rc = bind_text(store, id, 11, ev->last_attempt_at);
	if (rc == STORE_OK)
		rc = bind_int64_or_null(store, id, 12, ev->http_status != 0,
					ev->http_status);
	if (rc == STORE_OK)
		rc = bind_text(store, id, 13, ev->error);
	if (rc != STORE_OK)
		return stmt_reset(store, id, rc);
	rc = stmt_exec(store, id);
	if (rc == STORE_OK)
		*added = sqlite3_changes64(store->db) == 1;
	else if (store->last_code == SQLITE_CONSTRAINT_CHECK)
		store_seterr(store, "copy_insert: interested_parties must be"
			     " a JSON array");
	return rc;
}

/* What the row already stored under ev's id is to ev; result->outcome
 * stays COPY_ADDED when there is none. */
static int copy_find(struct store *store, const struct copy_event *ev,
		     struct copy_result *result)
{
	const enum stmt id = STMT_COPY_FIND;
	const char *stored[COPY_PRODUCER_COLUMNS];
	int row = 0;
	int rc = bind_int64(store, id, 1, ev->id);

	if (rc == STORE_OK)
		rc = stmt_step(store, id, &row);
	for (int i = 0; i < COPY_PRODUCER_COLUMNS && rc == STORE_OK && row; i++)
		rc = column_text(store, id, i, &stored[i]);
	if (rc == STORE_OK && row) {
		result->differs = store_copy_differs(ev, stored);
		result->outcome = result->differs ? COPY_CONFLICT : COPY_PRESENT;
	}
	return stmt_reset(store, id, rc);
}

static int sqlite_store_copy_write(struct store *store,
				   const struct copy_event *events,
				   size_t count, int dry_run,
				   struct copy_result *results)
{
	static const struct copy_ops ops = { copy_insert, copy_find };
	int64_t failed, top;
	int rc = STORE_OK;

	if (count == 0)
		return STORE_OK;
	/* A dry run only reads: no write lock. */
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
	}
	return dry_run ? rc : tx_end(store, rc);
}

const struct store_engine store_sqlite_engine = {
	.open = sqlite_store_open,
	.close = sqlite_store_close,
	.errmsg = sqlite_store_errmsg,
	.schema_version = sqlite_store_schema_version,
	.set_busy_timeout = sqlite_store_set_busy_timeout,
	.set_tx_hook = sqlite_store_set_tx_hook,
	.data_changed = sqlite_store_data_changed,
	.wait_fd = sqlite_store_wait_fd,
	.config_list = sqlite_store_config_list,
	.config_set = sqlite_store_config_set,
	.config_add = sqlite_store_config_add,
	.config_unset = sqlite_store_config_unset,
	.pending_cloud_ids = sqlite_store_pending_cloud_ids,
	.enqueue = sqlite_store_enqueue,
	.enqueue_batch = sqlite_store_enqueue_batch,
	.claim = sqlite_store_claim,
	.max_event_id = sqlite_store_max_event_id,
	.recover_leases = sqlite_store_recover_leases,
	.next_due = sqlite_store_next_due,
	.record = sqlite_store_record,
	.release = sqlite_store_release,
	.history = sqlite_store_history,
	.attempts = sqlite_store_attempts,
	.requeue_count = sqlite_store_requeue_count,
	.requeue_batch = sqlite_store_requeue_batch,
	.purge_count = sqlite_store_purge_count,
	.purge_batch = sqlite_store_purge_batch,
	.stats_clouds = sqlite_store_stats_clouds,
	.stats = sqlite_store_stats,
	.queue_depth = sqlite_store_queue_depth,
	.copy_read = sqlite_store_copy_read,
	.copy_write = sqlite_store_copy_write,
};
