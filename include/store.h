/*
 * store.h - the outbox database: the only module that speaks SQL.
 *
 * One interface, two engines: a DB that starts with postgresql:// or
 * postgres:// is a PostgreSQL connection URI (libpq), anything else an SQLite
 * file. Owns the connection, the schema migrations (sql/NNN_*.sql under
 * PRAGMA user_version; sql/pg/NNN_*.sql under the schema_version table), and
 * one table of named statements prepared at open.
 * Every function returns STORE_OK, STORE_BUSY (the database stayed locked
 * past the busy timeout and retries: try again later) or STORE_ERROR; the
 * reason of the last failure is store_errmsg(). Row states move only
 * pending -> sending -> {pending, delivered, failed} and failed -> pending
 * (requeue), enforced again by the schema's outbox_status_move trigger.
 *
 * Claims are fenced: each claim stamps its rows with a token and a lease
 * deadline, and an outcome is written only where the row still carries the
 * token, so a relay whose lease was taken over cannot overwrite the new
 * owner's outcome.
 */
#ifndef SMARTRELAY_STORE_H
#define SMARTRELAY_STORE_H

#include <stddef.h>
#include <stdint.h>

enum {
	STORE_OK = 0,
	STORE_ERROR = -1,
	STORE_BUSY = -2,
};

enum store_mode {
	STORE_OPEN_EXISTING = 0, /* the database must exist and be current */
	STORE_OPEN_CREATE,       /* create or upgrade it (smartrelay init) */
};

enum event_status {
	EVENT_PENDING = 0,
	EVENT_SENDING,
	EVENT_DELIVERED,
	EVENT_FAILED,
};

struct store;

/* "pending", "sending", "delivered", "failed". */
const char *store_status_name(enum event_status status);
/* Returns 0 and sets *status for one of those names, else -1. */
int store_status_parse(const char *name, enum event_status *status);

/*
 * Opens the database at path (a file, or a PostgreSQL URI). STORE_OPEN_CREATE creates it with its -wal and
 * -shm files readable by the owner only, and applies pending migrations;
 * STORE_OPEN_EXISTING refuses a missing file or a schema that is older or
 * newer than this program's. Returns STORE_OK with a new store in *out, or
 * an error with the reason in err (and *out NULL).
 */
int store_open(const char *path, enum store_mode mode, struct store **out,
	       char *err, size_t errlen);

void store_close(struct store *store);

/*
 * DB as logs and messages may show it: a PostgreSQL URI without the
 * password of its user info or its password= parameter; any other DB as
 * it is. Writes at most outlen bytes, cut short if need be.
 */
void store_display_name(const char *path, char *out, size_t outlen);

/* The text of the last failure on this store (borrowed). */
const char *store_errmsg(const struct store *store);

/*
 * The schema version this program writes on the store's engine: the
 * number of its last migration (sql/ for SQLite, sql/pg/ for PostgreSQL).
 */
int store_schema_version(const struct store *store);

/*
 * How long a write waits for another connection's lock before it gives up
 * with STORE_BUSY (default 5000 ms; each write tries a few times).
 */
int store_set_busy_timeout(struct store *store, int timeout_ms);

/*
 * Test seam: hook(arg) runs inside every write transaction of this store,
 * right after it took the write lock (NULL: none), so that a test can hold
 * the database locked while another connection tries to write. The hook
 * must not use this store.
 */
void store_set_tx_hook(struct store *store, void (*hook)(void *arg),
		       void *arg);

/*
 * Sets *changed to 1 when another connection committed since the previous
 * call (PRAGMA data_version), else 0. The first call reports a change.
 */
int store_data_changed(struct store *store, int *changed);

/*
 * A descriptor that becomes readable when another connection may have
 * changed the data (PostgreSQL's LISTEN socket), or -1 when there is none
 * (SQLite): then poll store_data_changed. It may change after a failure:
 * ask again before each wait.
 */
int store_wait_fd(struct store *store);

/* ---- configuration ---------------------------------------------------- */

struct config_row {
	char *cloud_id;
	char *key;
	char *value;
	int value_has_nul;      /* the stored value held a NUL: it is cut here */
};

/*
 * All config rows of cloud_id (NULL: of every cloud_id), ordered by
 * cloud_id then key. *rows is a new array: free it with
 * store_config_rows_free.
 */
int store_config_list(struct store *store, const char *cloud_id,
		      struct config_row **rows, size_t *count);
void store_config_rows_free(struct config_row *rows, size_t count);

/* For set and unset, a NULL cloud_id is 'default'. Inserts or replaces. */
int store_config_set(struct store *store, const char *cloud_id,
		     const char *key, const char *value);
/* Sets key only if it is not set yet; *added says whether it was. */
int store_config_add(struct store *store, const char *cloud_id,
		     const char *key, const char *value, int *added);
/* *removed (may be NULL) is set to the number of rows deleted (0 or 1). */
int store_config_unset(struct store *store, const char *cloud_id,
		       const char *key, int *removed);

/*
 * The distinct cloud_ids of pending events, at most max of them, as a new
 * array of new strings (free each, then the array).
 */
int store_pending_cloud_ids(struct store *store, size_t max, char ***ids,
			    size_t *count);

/* ---- producing -------------------------------------------------------- */

/* A new event, as a producer's INSERT would give it. Strings borrowed. */
struct new_event {
	const char *cloud_id;            /* NULL: 'default' */
	const char *new_smart_number;
	const char *network_id;
	const char *new_smart_uri;
	const char *interested_parties;  /* JSON array text */
};

/*
 * Inserts one pending event and sets *id (may be NULL) to its id. The
 * schema's CHECK refuses interested_parties that is not a JSON array: that
 * is STORE_ERROR with the reason in store_errmsg().
 */
int store_enqueue(struct store *store, const struct new_event *event,
		  int64_t *id);

/*
 * Inserts count events in one transaction, all or none: a producer's bulk
 * path (one commit instead of count). ids (may be NULL) receives the id of
 * each event, in order. On a failure nothing is inserted and
 * store_errmsg() names the event (its index from 1) and the reason.
 */
int store_enqueue_batch(struct store *store, const struct new_event *events,
			size_t count, int64_t *ids);

/* ---- claims and outcomes ---------------------------------------------- */

struct event {
	int64_t id;
	char *cloud_id;
	char *new_smart_number;
	char *network_id;
	char *new_smart_uri;
	char *interested_parties;
	int64_t attempts;       /* attempts made before this claim */
	int64_t budget_used;    /* attempts made since the last requeue */
	int64_t claim_token;
	int64_t created_ms;     /* created_at; 0 when unreadable */
	/* NULL, or the name of a field whose stored text held a NUL byte (the
	 * C string stops there): such an event cannot be rendered faithfully. */
	const char *nul_field;
};

struct claim_request {
	const char *cloud_id;
	int64_t now_ms;          /* rows due at or before this time */
	int64_t max_id;          /* and with id at most this (INT64_MAX: any) */
	int64_t lease_until_ms;  /* the claim holds until then */
	int64_t token;           /* stamped on the claimed rows */
	size_t limit;            /* rows at most */
};

/*
 * Atomically moves up to limit due pending rows of cloud_id, oldest due
 * first, to sending under token and lease. *events is a new array (free it
 * with store_events_free), *count may be 0.
 */
int store_claim(struct store *store, const struct claim_request *request,
		struct event **events, size_t *count);
void store_events_free(struct event *events, size_t count);

/* The largest event id in the outbox (0 when it is empty). */
int store_max_event_id(struct store *store, int64_t *id);

/*
 * Puts sending rows whose lease ended at or before now_ms back to pending,
 * due now, without counting an attempt. *recovered (may be NULL) is how many.
 * Each is logged (warn, with its id and cloud_id) once the change committed.
 */
int store_recover_leases(struct store *store, int64_t now_ms,
			 int64_t *recovered);

/*
 * When the next pending row of cloud_id falls due: *due_ms is INT64_MIN
 * when one is due now (next_attempt_at NULL), INT64_MAX when none is pending.
 */
int store_next_due(struct store *store, const char *cloud_id, int64_t *due_ms);

struct outcome {
	int64_t id;
	int64_t claim_token;
	enum event_status status; /* EVENT_PENDING (retry), _DELIVERED, _FAILED */
	int attempted;            /* 1: a request was made: count it, log it */
	int64_t attempt;          /* that attempt's number: attempts before + 1 */
	int64_t started_ms;       /* attempted only */
	int64_t finished_ms;      /* attempted only: becomes last_attempt_at */
	int64_t duration_ms;      /* attempted only */
	long http_status;         /* 0: none received */
	const char *error;        /* NULL: none (success) */
	int64_t next_attempt_ms;  /* EVENT_PENDING only */
};

/*
 * Writes count outcomes in one transaction: the row, and for an attempted
 * outcome one delivery_attempts row. A row that no longer carries the
 * outcome's claim token (its lease was taken over) is left alone: refused[i]
 * is 1 for it and 0 for the others (refused may be NULL).
 */
int store_record(struct store *store, const struct outcome *outcomes,
		 size_t count, unsigned char *refused);

/*
 * Puts claimed rows back to pending, due now, with no attempt counted (a
 * stop that cancelled their transfers). Fenced by token like store_record.
 */
int store_release(struct store *store, const int64_t *ids,
		  const int64_t *tokens, size_t count);

/* ---- queue depth ------------------------------------------------------ */

/* The pending or sending events of one cloud_id; cloud_id borrowed. */
struct queue_depth {
	const char *cloud_id;
	enum event_status status;  /* EVENT_PENDING or EVENT_SENDING */
	int64_t count;
	/* created_at of the first produced (lowest id) of them; 0 when
	 * unreadable */
	int64_t oldest_created_ms;
};

/*
 * Calls each(depth, arg) for every (cloud_id, status) that has pending or
 * sending events, at most max of them. Reads the states' partial indexes
 * only, so its cost grows with the queue, not with the history. A non-zero
 * return from each stops the walk and is returned.
 */
int store_queue_depth(struct store *store, size_t max,
		      int (*each)(const struct queue_depth *depth, void *arg),
		      void *arg);

/* ---- history ---------------------------------------------------------- */

struct history_filter {
	const char *status;     /* NULL: any */
	const char *cloud_id;   /* NULL: any */
	int64_t id;             /* 0: any */
	const char *number;     /* NULL: any new_smart_number */
	const char *since;      /* NULL, or created_at >= this text */
	const char *until;      /* NULL, or created_at < this text */
	int64_t limit;          /* 0: no limit */
};

/* One event as the history shows it; every string borrowed, may be NULL. */
struct history_row {
	int64_t id;
	const char *cloud_id;
	const char *new_smart_number;
	const char *network_id;
	const char *new_smart_uri;
	const char *interested_parties;
	const char *created_at;
	const char *status;
	int64_t attempts;
	const char *next_attempt_at;
	const char *last_attempt_at;
	long http_status;        /* 0: NULL */
	const char *error;
	const char *delivered_at;
};

/* One attempt of an event; strings borrowed, may be NULL. */
struct attempt_row {
	int64_t id;
	int64_t outbox_id;
	int64_t attempt;
	const char *started_at;
	int64_t duration_ms;
	long http_status;        /* 0: NULL */
	const char *error;
};

/*
 * Calls each(row, arg) for the events matching filter, newest first (by
 * created_at, then id). A non-zero return from each stops the walk and is
 * returned.
 */
int store_history(struct store *store, const struct history_filter *filter,
		  int (*each)(const struct history_row *row, void *arg),
		  void *arg);

/* Calls each(row, arg) for the attempts of event outbox_id, in order. */
int store_attempts(struct store *store, int64_t outbox_id,
		   int (*each)(const struct attempt_row *row, void *arg),
		   void *arg);

/* ---- operations: requeue, purge, stats --------------------------------- */

/* Which failed events a requeue takes; every field narrows it. */
struct requeue_filter {
	int64_t id;             /* 0: any */
	const char *cloud_id;   /* NULL: any */
	const char *since;      /* NULL, or failed (last_attempt_at, else
				 * created_at) at or after this text */
};

/* How many failed events match filter. */
int store_requeue_count(struct store *store,
			const struct requeue_filter *filter, int64_t *count);

/*
 * Moves up to limit failed events matching filter with after_id < id <=
 * max_id, lowest id first, back to pending, due now, in one transaction.
 * attempts, http_status and error stay (they describe the last attempt);
 * budget_start becomes attempts, so each gets a fresh --max-attempts
 * budget (contract 7.8). *requeued is how many, *last_id the highest id
 * taken (after_id when none): pass it as the next after_id.
 */
int store_requeue_batch(struct store *store,
			const struct requeue_filter *filter, int64_t after_id,
			int64_t max_id, size_t limit, int64_t *requeued,
			int64_t *last_id);

/*
 * How many events a purge with this cutoff would delete: delivered ones
 * with delivered_at before cutoff, failed ones with last_attempt_at (else
 * created_at) before it (contract 7.9). cutoff is contract-format text.
 */
int store_purge_count(struct store *store, const char *cutoff, int64_t *count);

/*
 * Deletes up to limit such events, oldest first, and their
 * delivery_attempts, in one transaction. Pending and sending events are
 * never touched. *events and *attempts are how many rows went; fewer events
 * than limit means none is left.
 */
int store_purge_batch(struct store *store, const char *cutoff, size_t limit,
		      int64_t *events, int64_t *attempts);

/* Events of one cloud_id per state. */
struct stats_cloud_row {
	const char *cloud_id;        /* borrowed for the callback */
	int64_t by_status[4];        /* indexed by enum event_status */
	const char *oldest_pending;  /* created_at, NULL when none pending */
};

/* Calls each(row, arg) per cloud_id that has events, in cloud_id order. */
int store_stats_clouds(struct store *store,
		       int (*each)(const struct stats_cloud_row *row, void *arg),
		       void *arg);

/* Attempts that started in a window of time. */
struct stats_window {
	int64_t attempts;
	int64_t delivered;        /* of them, answered 204 */
	int64_t failed_attempts;  /* of them, anything else */
	int64_t events_failed;    /* events that became failed in the window */
};

/* Nearest-rank percentiles, in milliseconds; all 0 when count is 0. */
struct stats_percentiles {
	int64_t count;
	int64_t p50, p90, p99, max;
};

struct store_stats {
	int64_t due_now;             /* pending and due at now */
	char oldest_pending[32];     /* created_at of the oldest pending, or "" */
	struct stats_window last_minute;
	struct stats_window last_hour;
	/* Events delivered in the last hour: delivered_at - created_at. */
	struct stats_percentiles latency;
	/* Attempts started in the last hour: their duration_ms. */
	struct stats_percentiles duration;
};

/* The figures of the whole outbox as of now_ms, read in one snapshot. */
int store_stats(struct store *store, int64_t now_ms, struct store_stats *out);

/* ---- copying between databases (smartrelay copy) ----------------------- */

/*
 * A live event as a copy moves it: the producer's columns and the delivery
 * state that its retries depend on. Every string is new (NULL where the
 * column is NULL); free the array with store_copy_events_free.
 */
struct copy_event {
	int64_t id;
	char *cloud_id;
	char *new_smart_number;
	char *network_id;
	char *new_smart_uri;
	char *interested_parties;
	char *created_at;
	int64_t attempts;
	int64_t budget_start;
	char *next_attempt_at;  /* NULL: due now */
	char *last_attempt_at;
	long http_status;       /* 0: NULL */
	char *error;
	/* NULL, or the name of a field whose stored text held a NUL byte:
	 * such an event cannot be copied faithfully. */
	const char *nul_field;
};

/*
 * Reads up to limit pending and sending events of cloud_id (NULL: any)
 * with id > after_id, lowest id first, as pending ones: a sending row's
 * claim means nothing in another database, so it reads as due now, as a
 * recovered lease would. Changes nothing. *events is a new array.
 */
int store_copy_read(struct store *store, const char *cloud_id,
		    int64_t after_id, size_t limit, struct copy_event **events,
		    size_t *count);
void store_copy_events_free(struct copy_event *events, size_t count);

enum copy_outcome {
	COPY_ADDED = 0,   /* inserted, pending, with its id */
	COPY_PRESENT,     /* the id holds the same event already: left alone */
	COPY_CONFLICT,    /* the id holds another event: left alone */
};

struct copy_result {
	enum copy_outcome outcome;
	/* COPY_CONFLICT: the first producer column that differs (static) */
	const char *differs;
};

/*
 * Inserts count events with their own ids, as pending, in one transaction,
 * all or none; an id that is taken already is left as it is and judged by
 * the producer's columns (cloud_id, new_smart_number, network_id,
 * new_smart_uri, interested_parties, created_at). results[i] says what
 * became of events[i]. Afterwards the next id a producer's INSERT gets is
 * above every id inserted. With dry_run nothing is written: results say
 * what a copy would do. On a failure store_errmsg() names the event.
 */
int store_copy_write(struct store *store, const struct copy_event *events,
		     size_t count, int dry_run, struct copy_result *results);

#endif
