/*
 * test_store.c - the outbox database through store.h only: schema and
 * migrations, file modes, claims in due order, fenced outcomes, leases,
 * history filters, config, requeue, purge, stats, and a locked database. A
 * fresh database per test.
 */
#include <check.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"
#include "timeutil.h"

/* A fixed clock for claims and outcomes: 2023-11-14T22:13:20.000Z. */
#define T0 INT64_C(1700000000000)

struct db {
	char *dir;
	char *path;
	struct store *store;
};

static struct store *open_ok(const char *path, enum store_mode mode)
{
	char err[512] = "";
	struct store *store = NULL;
	int rc = store_open(path, mode, &store, err, sizeof err);

	ck_assert_msg(rc == STORE_OK, "open %s: %s", path, err);
	ck_assert_ptr_nonnull(store);
	return store;
}

/* Opening must fail; returns the reason in err. */
static void open_fails(const char *path, enum store_mode mode, char *err,
		       size_t errlen)
{
	struct store *store = (struct store *)&store; /* must become NULL */
	int rc = store_open(path, mode, &store, err, errlen);

	ck_assert_int_eq(rc, STORE_ERROR);
	ck_assert_ptr_null(store);
}

static void db_open(struct db *db, const char *name)
{
	db->dir = tu_tmpdir(name);
	db->path = tu_path(db->dir, "relay.db");
	db->store = open_ok(db->path, STORE_OPEN_CREATE);
}

static void db_close(struct db *db)
{
	store_close(db->store);
	free(db->path);
	free(db->dir);
}

static char *path_with(const char *path, const char *suffix)
{
	size_t len = strlen(path) + strlen(suffix) + 1;
	char *out = malloc(len);

	ck_assert_ptr_nonnull(out);
	snprintf(out, len, "%s%s", path, suffix);
	return out;
}

static int file_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static int64_t add_event(struct store *store, const char *cloud_id,
			 const char *number)
{
	struct new_event event = {
		.cloud_id = cloud_id,
		.new_smart_number = number,
		.network_id = "network_1",
		.new_smart_uri = "sip_uri_1",
		.interested_parties =
			"[{\"username\":\"eric\",\"device\":\"erics_iphone\"}]",
	};
	int64_t id = 0;
	int rc = store_enqueue(store, &event, &id);

	ck_assert_msg(rc == STORE_OK, "enqueue: %s", store_errmsg(store));
	ck_assert_int_gt(id, 0);
	return id;
}

struct claimed {
	size_t count;
	struct event *events;
};

static struct claimed claim(struct store *store, const char *cloud_id,
			    int64_t now, int64_t token, size_t limit)
{
	struct claim_request request = {
		.cloud_id = cloud_id,
		.now_ms = now,
		.max_id = INT64_MAX,
		.lease_until_ms = now + 60000,
		.token = token,
		.limit = limit,
	};
	struct claimed c = { 0, NULL };
	int rc = store_claim(store, &request, &c.events, &c.count);

	ck_assert_msg(rc == STORE_OK, "claim: %s", store_errmsg(store));
	return c;
}

/* The claimed ids must be exactly ids, in that order. */
static void claimed_ids_are(struct claimed *c, const int64_t *ids, size_t n)
{
	ck_assert_uint_eq(c->count, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(c->events[i].id, ids[i]);
	store_events_free(c->events, c->count);
	c->events = NULL;
	c->count = 0;
}

static struct outcome attempted(int64_t id, int64_t token,
				enum event_status status, long http_status,
				const char *error, int64_t finished)
{
	struct outcome o = {
		.id = id,
		.claim_token = token,
		.status = status,
		.attempted = 1,
		.attempt = 0,
		.started_ms = finished - 100,
		.finished_ms = finished,
		.duration_ms = 100,
		.http_status = http_status,
		.error = error,
		.next_attempt_ms = 0,
	};
	return o;
}

/* Records the outcomes; returns how many were refused, flagged in flags. */
static size_t record_flags(struct store *store, const struct outcome *outcomes,
			   size_t count, unsigned char *flags)
{
	size_t refused = 0;
	int rc;

	memset(flags, 0x55, count); /* neither 0 nor 1: every flag is set */
	rc = store_record(store, outcomes, count, flags);
	ck_assert_msg(rc == STORE_OK, "record: %s", store_errmsg(store));
	for (size_t i = 0; i < count; i++) {
		ck_assert_msg(flags[i] <= 1, "flag %zu is %d", i, flags[i]);
		refused += flags[i];
	}
	return refused;
}

static size_t record(struct store *store, const struct outcome *outcomes,
		     size_t count)
{
	unsigned char *flags = malloc(count);
	size_t refused;

	ck_assert_ptr_nonnull(flags);
	refused = record_flags(store, outcomes, count, flags);
	free(flags);
	return refused;
}

static size_t record_one(struct store *store, struct outcome o)
{
	return record(store, &o, 1);
}

static void fmt(int64_t ms, char out[TIME_TEXT_SIZE])
{
	time_format(ms, out);
}

/* ---- reading back through store_history / store_attempts ---- */

/* One event's columns as text; SQL NULL reads "NULL". */
struct snap {
	int found;
	char cloud_id[32];
	char number[32];
	char parties[128];
	char created[32];
	char status[16];
	int64_t attempts;
	char next[32];
	char last[32];
	long http;
	char error[128];
	char delivered[32];
};

static void text_copy(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src != NULL ? src : "NULL");
}

static int snap_each(const struct history_row *row, void *arg)
{
	struct snap *s = arg;

	s->found++;
	text_copy(s->cloud_id, sizeof s->cloud_id, row->cloud_id);
	text_copy(s->number, sizeof s->number, row->new_smart_number);
	text_copy(s->parties, sizeof s->parties, row->interested_parties);
	text_copy(s->created, sizeof s->created, row->created_at);
	text_copy(s->status, sizeof s->status, row->status);
	s->attempts = row->attempts;
	text_copy(s->next, sizeof s->next, row->next_attempt_at);
	text_copy(s->last, sizeof s->last, row->last_attempt_at);
	s->http = row->http_status;
	text_copy(s->error, sizeof s->error, row->error);
	text_copy(s->delivered, sizeof s->delivered, row->delivered_at);
	return 0;
}

static struct snap snap_of(struct store *store, int64_t id)
{
	struct history_filter filter = { .id = id };
	struct snap s;
	int rc;

	memset(&s, 0, sizeof s);
	rc = store_history(store, &filter, snap_each, &s);
	ck_assert_msg(rc == STORE_OK, "history: %s", store_errmsg(store));
	ck_assert_int_eq(s.found, 1);
	return s;
}

struct attempt_list {
	size_t count;
	struct {
		int64_t outbox_id;
		int64_t attempt;
		char started[32];
		int64_t duration_ms;
		long http;
		char error[128];
	} rows[8];
};

static int attempt_each(const struct attempt_row *row, void *arg)
{
	struct attempt_list *list = arg;

	ck_assert_uint_lt(list->count, 8);
	list->rows[list->count].outbox_id = row->outbox_id;
	list->rows[list->count].attempt = row->attempt;
	text_copy(list->rows[list->count].started,
		  sizeof list->rows[list->count].started, row->started_at);
	list->rows[list->count].duration_ms = row->duration_ms;
	list->rows[list->count].http = row->http_status;
	text_copy(list->rows[list->count].error,
		  sizeof list->rows[list->count].error, row->error);
	list->count++;
	return 0;
}

static struct attempt_list attempts_of(struct store *store, int64_t id)
{
	struct attempt_list list;
	int rc;

	memset(&list, 0, sizeof list);
	rc = store_attempts(store, id, attempt_each, &list);
	ck_assert_msg(rc == STORE_OK, "attempts: %s", store_errmsg(store));
	return list;
}

struct id_list {
	size_t count;
	int64_t ids[32];
	int stop_after; /* 0: never */
	int stop_with;
};

static int id_each(const struct history_row *row, void *arg)
{
	struct id_list *list = arg;

	ck_assert_uint_lt(list->count, 32);
	list->ids[list->count++] = row->id;
	if (list->stop_after != 0 && (int)list->count == list->stop_after)
		return list->stop_with;
	return 0;
}

static void history_is(struct store *store, const struct history_filter *f,
		       const int64_t *ids, size_t n)
{
	struct id_list list;
	int rc;

	memset(&list, 0, sizeof list);
	rc = store_history(store, f, id_each, &list);
	ck_assert_msg(rc == STORE_OK, "history: %s", store_errmsg(store));
	ck_assert_uint_eq(list.count, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(list.ids[i], ids[i]);
}

static size_t history_count(struct store *store)
{
	struct history_filter filter = { 0 };
	struct id_list list;

	memset(&list, 0, sizeof list);
	ck_assert_int_eq(store_history(store, &filter, id_each, &list),
			 STORE_OK);
	return list.count;
}

/* PRAGMA user_version as the file format keeps it: big-endian at 60. */
static unsigned long header_user_version(const char *path)
{
	unsigned char bytes[4];
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, bytes, sizeof bytes, 60), 4);
	close(fd);
	return (unsigned long)bytes[0] << 24 | (unsigned long)bytes[1] << 16 |
	       (unsigned long)bytes[2] << 8 | bytes[3];
}

static void header_set_user_version(const char *path, unsigned char v)
{
	const unsigned char bytes[4] = { 0, 0, 0, v };
	int fd = open(path, O_WRONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, bytes, sizeof bytes, 60), 4);
	close(fd);
}

/* ---- opening ---- */

START_TEST(test_init_creates_and_is_idempotent)
{
	struct db db;
	struct store *again;
	int64_t id;
	int version;

	db_open(&db, "store_init");
	version = store_schema_version(db.store);
	ck_assert_int_ge(version, 1);
	id = add_event(db.store, NULL, "+420111222333");
	store_close(db.store);

	/* Closing the last connection folds the WAL into the file. */
	ck_assert_uint_eq(header_user_version(db.path),
			  (unsigned long)version);

	again = open_ok(db.path, STORE_OPEN_CREATE);
	ck_assert_str_eq(snap_of(again, id).number, "+420111222333");
	ck_assert_uint_eq(history_count(again), 1);
	store_close(again);

	db.store = open_ok(db.path, STORE_OPEN_EXISTING);
	ck_assert_str_eq(snap_of(db.store, id).status, "pending");
	db_close(&db);
}
END_TEST

START_TEST(test_existing_refuses_missing_file)
{
	char *dir = tu_tmpdir("store_missing");
	char *path = tu_path(dir, "nothing.db");
	char err[512] = "";

	open_fails(path, STORE_OPEN_EXISTING, err, sizeof err);
	ck_assert_msg(strstr(err, "no such database") != NULL, "%s", err);
	ck_assert_msg(strstr(err, path) != NULL, "%s", err);
	ck_assert_msg(strstr(err, "smartrelay init") != NULL, "%s", err);
	ck_assert_msg(!file_exists(path), "EXISTING created %s", path);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_existing_refuses_older_schema_and_init_upgrades)
{
	char *dir = tu_tmpdir("store_older");
	char *path = tu_path(dir, "relay.db");
	char err[512] = "";
	struct store *store;

	/* An empty file is a database of user_version 0, without tables. */
	tu_write_file(path, "");
	open_fails(path, STORE_OPEN_EXISTING, err, sizeof err);
	ck_assert_msg(strstr(err, "schema version 0 is older") != NULL ||
		      strstr(err, "older than") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "run smartrelay init") != NULL, "%s", err);

	store = open_ok(path, STORE_OPEN_CREATE);
	add_event(store, NULL, "+1");
	store_close(store);
	store = open_ok(path, STORE_OPEN_EXISTING);
	ck_assert_uint_eq(history_count(store), 1);
	store_close(store);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_refuses_newer_schema)
{
	struct db db;
	char err[512] = "";
	char *wal;

	db_open(&db, "store_newer");
	store_close(db.store);
	db.store = NULL;
	wal = path_with(db.path, "-wal");
	ck_assert_msg(!file_exists(wal), "the WAL outlived the last close");
	header_set_user_version(db.path, 99);

	open_fails(db.path, STORE_OPEN_EXISTING, err, sizeof err);
	ck_assert_msg(strstr(err, "schema version 99") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "newer") != NULL, "%s", err);
	err[0] = '\0';
	open_fails(db.path, STORE_OPEN_CREATE, err, sizeof err);
	ck_assert_msg(strstr(err, "newer") != NULL, "%s", err);
	ck_assert_uint_eq(header_user_version(db.path), 99);
	free(wal);
	db_close(&db);
}
END_TEST

START_TEST(test_files_are_owner_only)
{
	const char *suffixes[] = { "", "-wal", "-shm" };
	mode_t old = umask(0); /* would leave 0644 to whoever relied on it */
	struct db db;

	db_open(&db, "store_modes");
	umask(old);
	add_event(db.store, NULL, "+1"); /* a commit: the WAL exists now */
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		char *file = path_with(db.path, suffixes[i]);
		struct stat st;

		ck_assert_msg(stat(file, &st) == 0, "%s missing", file);
		ck_assert_msg((st.st_mode & 0777) == 0600, "%s has mode %o",
			      file, (unsigned)(st.st_mode & 0777));
		free(file);
	}
	db_close(&db);
}
END_TEST

/* ---- producing ---- */

START_TEST(test_enqueue_rejects_non_arrays)
{
	static const char *const bad[] = {
		"{}", "\"x\"", "not json", "", "[1", "42", "null",
	};
	struct db db;
	struct new_event event = {
		.new_smart_number = "+1",
		.network_id = "n",
		.new_smart_uri = "u",
	};
	int64_t id = -5;

	db_open(&db, "store_enqueue");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		event.interested_parties = bad[i];
		ck_assert_int_eq(store_enqueue(db.store, &event, &id),
				 STORE_ERROR);
		ck_assert_msg(strstr(store_errmsg(db.store),
				     "interested_parties must be a JSON array"),
			      "'%s': %s", bad[i], store_errmsg(db.store));
	}
	ck_assert_int_eq(id, -5);
	ck_assert_uint_eq(history_count(db.store), 0);

	event.interested_parties = "[]";
	ck_assert_int_eq(store_enqueue(db.store, &event, &id), STORE_OK);
	ck_assert_int_gt(id, 0);
	{
		struct snap s = snap_of(db.store, id);

		ck_assert_str_eq(s.cloud_id, "default");
		ck_assert_str_eq(s.status, "pending");
		ck_assert_str_eq(s.parties, "[]");
		ck_assert_int_eq(s.attempts, 0);
		ck_assert_str_eq(s.next, "NULL");
		ck_assert_str_eq(s.error, "NULL");
		/* The SQL default writes the contract's format. */
		ck_assert_uint_eq(strlen(s.created), TIME_TEXT_SIZE - 1);
		ck_assert_int_eq(s.created[10], 'T');
		ck_assert_int_eq(s.created[19], '.');
		ck_assert_int_eq(s.created[23], 'Z');
	}

	event.interested_parties = "[]";
	event.new_smart_number = NULL;
	ck_assert_int_eq(store_enqueue(db.store, &event, NULL), STORE_ERROR);
	ck_assert_msg(strstr(store_errmsg(db.store), "NOT NULL") != NULL,
		      "%s", store_errmsg(db.store));
	ck_assert_uint_eq(history_count(db.store), 1);
	db_close(&db);
}
END_TEST

START_TEST(test_enqueue_batch_all_or_none)
{
	struct new_event events[3] = {
		{ NULL, "+1", "n", "u", "[]" },
		{ "otherapp", "+2", "n", "u",
		  "[{\"username\":\"eric\",\"device\":\"erics_iphone\"}]" },
		{ NULL, "+3", "n", "u", "[]" },
	};
	int64_t ids[3] = { 0, 0, 0 };
	struct db db;

	db_open(&db, "store_enqueue_batch");
	ck_assert_int_eq(store_enqueue_batch(db.store, events, 0, ids),
			 STORE_OK);
	ck_assert_uint_eq(history_count(db.store), 0);
	ck_assert_int_eq(store_enqueue_batch(db.store, events, 3, ids),
			 STORE_OK);
	ck_assert_int_gt(ids[0], 0);
	ck_assert_int_eq(ids[1], ids[0] + 1);
	ck_assert_int_eq(ids[2], ids[1] + 1);
	ck_assert_str_eq(snap_of(db.store, ids[0]).cloud_id, "default");
	ck_assert_str_eq(snap_of(db.store, ids[1]).cloud_id, "otherapp");
	ck_assert_str_eq(snap_of(db.store, ids[1]).number, "+2");
	ck_assert_str_eq(snap_of(db.store, ids[2]).status, "pending");
	ck_assert_uint_eq(history_count(db.store), 3);

	/* One bad event: none of the batch is inserted, and it is named. */
	events[1].interested_parties = "{}";
	ck_assert_int_eq(store_enqueue_batch(db.store, events, 3, NULL),
			 STORE_ERROR);
	ck_assert_msg(strstr(store_errmsg(db.store), "event 2 of 3") &&
		      strstr(store_errmsg(db.store),
			     "interested_parties must be a JSON array"),
		      "%s", store_errmsg(db.store));
	ck_assert_uint_eq(history_count(db.store), 3);

	/* The store is usable after the rollback. */
	events[1].interested_parties = "[]";
	ck_assert_int_eq(store_enqueue_batch(db.store, events, 3, ids),
			 STORE_OK);
	ck_assert_uint_eq(history_count(db.store), 6);
	db_close(&db);
}
END_TEST

/* ---- claims ---- */

START_TEST(test_claim_orders_by_due_then_id)
{
	struct db db;
	struct claimed c;
	int64_t e[7];

	db_open(&db, "store_claim_order");
	for (int i = 1; i <= 5; i++)
		e[i] = add_event(db.store, NULL, "+1");

	c = claim(db.store, NULL, T0, 1, 10);
	ck_assert_uint_eq(c.count, 5);
	for (size_t i = 0; i < 5; i++) {
		ck_assert_int_eq(c.events[i].claim_token, 1);
		ck_assert_int_eq(c.events[i].attempts, 0);
		ck_assert_int_eq(c.events[i].budget_used, 0);
	}
	ck_assert_str_eq(c.events[0].cloud_id, "default");
	ck_assert_str_eq(c.events[0].new_smart_number, "+1");
	ck_assert_str_eq(c.events[0].network_id, "network_1");
	ck_assert_str_eq(c.events[0].new_smart_uri, "sip_uri_1");
	ck_assert_str_eq(c.events[0].interested_parties,
			 "[{\"username\":\"eric\",\"device\":\"erics_iphone\"}]");
	claimed_ids_are(&c, (int64_t[]){ e[1], e[2], e[3], e[4], e[5] }, 5);

	{
		struct outcome o[4] = {
			attempted(e[1], 1, EVENT_PENDING, 503, "HTTP 503", T0),
			attempted(e[2], 1, EVENT_PENDING, 503, "HTTP 503", T0),
			attempted(e[3], 1, EVENT_PENDING, 503, "HTTP 503", T0),
			attempted(e[4], 1, EVENT_PENDING, 503, "HTTP 503", T0),
		};
		o[0].next_attempt_ms = T0 + 300;
		o[1].next_attempt_ms = T0 + 100;
		o[2].next_attempt_ms = T0 + 200;
		o[3].next_attempt_ms = T0 + 100;
		ck_assert_uint_eq(record(db.store, o, 4), 0);
	}
	ck_assert_int_eq(store_release(db.store, &e[5], (int64_t[]){ 1 }, 1),
			 STORE_OK);
	e[6] = add_event(db.store, NULL, "+1");

	/* Due now (NULL) first by id, then by due time, then by id. */
	c = claim(db.store, NULL, T0 + 250, 2, 3);
	ck_assert_uint_eq(c.count, 3);
	ck_assert_int_eq(c.events[2].attempts, 1);
	ck_assert_int_eq(c.events[2].budget_used, 1);
	claimed_ids_are(&c, (int64_t[]){ e[5], e[6], e[2] }, 3);
	c = claim(db.store, NULL, T0 + 250, 3, 10);
	claimed_ids_are(&c, (int64_t[]){ e[4], e[3] }, 2);
	/* e1 falls due at T0 + 300, not before. */
	c = claim(db.store, NULL, T0 + 299, 4, 10);
	claimed_ids_are(&c, NULL, 0);
	c = claim(db.store, NULL, T0 + 300, 4, 10);
	claimed_ids_are(&c, (int64_t[]){ e[1] }, 1);
	db_close(&db);
}
END_TEST

START_TEST(test_claim_separates_clouds_and_honours_max_id)
{
	struct db db;
	struct claimed c;
	struct claim_request request = {
		.cloud_id = "a",
		.now_ms = T0,
		.lease_until_ms = T0 + 1000,
		.token = 9,
		.limit = 10,
	};
	int64_t a1, a2, a3, b1, d1;

	db_open(&db, "store_claim_clouds");
	a1 = add_event(db.store, "a", "+1");
	b1 = add_event(db.store, "b", "+2");
	a2 = add_event(db.store, "a", "+3");
	a3 = add_event(db.store, "a", "+4");
	d1 = add_event(db.store, NULL, "+5");

	request.limit = 0;
	request.max_id = INT64_MAX;
	c.count = 7;
	ck_assert_int_eq(store_claim(db.store, &request, &c.events, &c.count),
			 STORE_OK);
	claimed_ids_are(&c, NULL, 0);

	request.limit = 10;
	request.max_id = a2;
	ck_assert_int_eq(store_claim(db.store, &request, &c.events, &c.count),
			 STORE_OK);
	ck_assert_str_eq(c.events[0].cloud_id, "a");
	claimed_ids_are(&c, (int64_t[]){ a1, a2 }, 2);

	c = claim(db.store, "b", T0, 10, 10);
	ck_assert_str_eq(c.events[0].cloud_id, "b");
	claimed_ids_are(&c, (int64_t[]){ b1 }, 1);
	c = claim(db.store, "a", T0, 11, 10);
	claimed_ids_are(&c, (int64_t[]){ a3 }, 1);
	c = claim(db.store, NULL, T0, 12, 10); /* NULL: 'default' */
	claimed_ids_are(&c, (int64_t[]){ d1 }, 1);
	c = claim(db.store, "a", T0, 13, 10);
	claimed_ids_are(&c, NULL, 0);
	ck_assert_str_eq(snap_of(db.store, a3).status, "sending");
	db_close(&db);
}
END_TEST

START_TEST(test_max_event_id)
{
	struct claimed c;
	int64_t max = -1, e1, e2;
	struct db db;

	db_open(&db, "store_max_id");
	ck_assert_int_eq(store_max_event_id(db.store, &max), STORE_OK);
	ck_assert_int_eq(max, 0);
	e1 = add_event(db.store, NULL, "+1");
	e2 = add_event(db.store, NULL, "+2");
	ck_assert_int_gt(e2, e1);
	/* Whatever their state, every row counts. */
	c = claim(db.store, NULL, T0, 1, 10);
	claimed_ids_are(&c, (int64_t[]){ e1, e2 }, 2);
	ck_assert_uint_eq(record_one(db.store, attempted(e2, 1, EVENT_DELIVERED,
							 204, NULL, T0)), 0);
	ck_assert_int_eq(store_max_event_id(db.store, &max), STORE_OK);
	ck_assert_int_eq(max, e2);
	db_close(&db);
}
END_TEST

/* ---- outcomes ---- */

START_TEST(test_record_delivered)
{
	char started[TIME_TEXT_SIZE], finished[TIME_TEXT_SIZE];
	struct attempt_list list;
	struct claimed c;
	struct snap s;
	struct db db;
	int64_t id;

	db_open(&db, "store_delivered");
	id = add_event(db.store, NULL, "+1");
	c = claim(db.store, NULL, T0, 7, 10);
	claimed_ids_are(&c, &id, 1);
	ck_assert_str_eq(snap_of(db.store, id).status, "sending");

	ck_assert_uint_eq(record_one(db.store, attempted(id, 7, EVENT_DELIVERED,
							 204, NULL, T0 + 120)),
			  0);
	fmt(T0 + 20, started);
	fmt(T0 + 120, finished);
	s = snap_of(db.store, id);
	ck_assert_str_eq(s.status, "delivered");
	ck_assert_int_eq(s.attempts, 1);
	ck_assert_str_eq(s.last, finished);
	ck_assert_int_eq(s.http, 204);
	ck_assert_str_eq(s.error, "NULL");
	ck_assert_str_eq(s.delivered, finished);
	ck_assert_str_eq(s.next, "NULL");

	list = attempts_of(db.store, id);
	ck_assert_uint_eq(list.count, 1);
	ck_assert_int_eq(list.rows[0].outbox_id, id);
	ck_assert_int_eq(list.rows[0].attempt, 1);
	ck_assert_str_eq(list.rows[0].started, started);
	ck_assert_int_eq(list.rows[0].duration_ms, 100);
	ck_assert_int_eq(list.rows[0].http, 204);
	ck_assert_str_eq(list.rows[0].error, "NULL");

	/* Delivered is final: nothing claims or recovers it. */
	c = claim(db.store, NULL, T0 + 999999, 8, 10);
	claimed_ids_are(&c, NULL, 0);
	{
		int64_t recovered = -1;

		ck_assert_int_eq(store_recover_leases(db.store, T0 + 999999,
						      &recovered), STORE_OK);
		ck_assert_int_eq(recovered, 0);
	}
	/* A second outcome for the same claim finds no row to write. */
	ck_assert_uint_eq(record_one(db.store, attempted(id, 7, EVENT_FAILED,
							 500, "late", T0 + 130)),
			  1);
	ck_assert_str_eq(snap_of(db.store, id).status, "delivered");
	ck_assert_uint_eq(attempts_of(db.store, id).count, 1);
	db_close(&db);
}
END_TEST

START_TEST(test_record_retry_then_failed)
{
	char when[TIME_TEXT_SIZE];
	struct attempt_list list;
	struct outcome o;
	struct claimed c;
	struct snap s;
	struct db db;
	int64_t id;

	db_open(&db, "store_retry");
	id = add_event(db.store, NULL, "+1");
	c = claim(db.store, NULL, T0, 1, 10);
	claimed_ids_are(&c, &id, 1);
	o = attempted(id, 1, EVENT_PENDING, 503, "HTTP 503", T0 + 100);
	o.next_attempt_ms = T0 + 5000;
	ck_assert_uint_eq(record_one(db.store, o), 0);

	s = snap_of(db.store, id);
	ck_assert_str_eq(s.status, "pending");
	ck_assert_int_eq(s.attempts, 1);
	fmt(T0 + 5000, when);
	ck_assert_str_eq(s.next, when);
	fmt(T0 + 100, when);
	ck_assert_str_eq(s.last, when);
	ck_assert_int_eq(s.http, 503);
	ck_assert_str_eq(s.error, "HTTP 503");
	ck_assert_str_eq(s.delivered, "NULL");

	c = claim(db.store, NULL, T0 + 4999, 2, 10);
	claimed_ids_are(&c, NULL, 0);
	c = claim(db.store, NULL, T0 + 5000, 2, 10);
	ck_assert_uint_eq(c.count, 1);
	ck_assert_int_eq(c.events[0].attempts, 1);
	claimed_ids_are(&c, &id, 1);

	/* No response at all: http_status becomes NULL. */
	ck_assert_uint_eq(record_one(db.store,
				     attempted(id, 2, EVENT_FAILED, 0,
					       "connection refused",
					       T0 + 5100)),
			  0);
	s = snap_of(db.store, id);
	ck_assert_str_eq(s.status, "failed");
	ck_assert_int_eq(s.attempts, 2);
	ck_assert_int_eq(s.http, 0);
	ck_assert_str_eq(s.error, "connection refused");
	ck_assert_str_eq(s.next, "NULL");
	ck_assert_str_eq(s.delivered, "NULL");
	fmt(T0 + 5100, when);
	ck_assert_str_eq(s.last, when);

	list = attempts_of(db.store, id);
	ck_assert_uint_eq(list.count, 2);
	ck_assert_int_eq(list.rows[0].attempt, 1);
	ck_assert_int_eq(list.rows[0].http, 503);
	ck_assert_str_eq(list.rows[0].error, "HTTP 503");
	ck_assert_int_eq(list.rows[1].attempt, 2);
	ck_assert_int_eq(list.rows[1].http, 0);
	ck_assert_str_eq(list.rows[1].error, "connection refused");
	db_close(&db);
}
END_TEST

/* More outcomes than one statement takes (64, 64, then 6 in the small
 * statement), mixed, two of them fenced out. */
START_TEST(test_record_large_mixed_batch)
{
	enum { N = 134 };
	struct outcome batch[N];
	unsigned char flags[N];
	int64_t ids[N];
	char finished[TIME_TEXT_SIZE], next[TIME_TEXT_SIZE];
	struct claimed c;
	struct db db;

	db_open(&db, "store_large_batch");
	for (int i = 0; i < N; i++)
		ids[i] = add_event(db.store, NULL, "+1");
	c = claim(db.store, NULL, T0, 5, N);
	claimed_ids_are(&c, ids, N);
	for (int i = 0; i < N; i++) {
		if (i % 4 == 1) {
			batch[i] = attempted(ids[i], 5, EVENT_PENDING, 503,
					     "HTTP 503", T0 + 100 + i);
			batch[i].next_attempt_ms = T0 + 5000 + i;
		} else if (i % 4 == 2) {
			memset(&batch[i], 0, sizeof batch[i]);
			batch[i].id = ids[i];
			batch[i].claim_token = 5;
			batch[i].status = EVENT_FAILED;
			batch[i].error = "cannot render: bad parties";
		} else {
			batch[i] = attempted(ids[i], 5, EVENT_DELIVERED, 204,
					     NULL, T0 + 100 + i);
		}
	}
	/* Not the tokens of their claim: refused, and named, in whichever
	 * statement of the batch they fall. */
	batch[5].claim_token = 6;
	batch[130].claim_token = 6;
	ck_assert_uint_eq(record_flags(db.store, batch, N, flags), 2);
	for (int i = 0; i < N; i++) {
		struct snap s = snap_of(db.store, ids[i]);
		struct attempt_list list = attempts_of(db.store, ids[i]);

		ck_assert_int_eq(flags[i], i == 5 || i == 130);
		fmt(T0 + 100 + i, finished);
		fmt(T0 + 5000 + i, next);
		if (i == 5 || i == 130) {
			ck_assert_str_eq(s.status, "sending");
			ck_assert_uint_eq(list.count, 0);
		} else if (i % 4 == 1) {
			ck_assert_str_eq(s.status, "pending");
			ck_assert_str_eq(s.next, next);
			ck_assert_str_eq(s.error, "HTTP 503");
			ck_assert_int_eq(s.http, 503);
			ck_assert_uint_eq(list.count, 1);
			ck_assert_int_eq(list.rows[0].http, 503);
		} else if (i % 4 == 2) {
			ck_assert_str_eq(s.status, "failed");
			ck_assert_int_eq(s.attempts, 0);
			ck_assert_str_eq(s.last, "NULL");
			ck_assert_str_eq(s.error, "cannot render: bad parties");
			ck_assert_uint_eq(list.count, 0);
		} else {
			ck_assert_str_eq(s.status, "delivered");
			ck_assert_str_eq(s.delivered, finished);
			ck_assert_str_eq(s.last, finished);
			ck_assert_int_eq(s.attempts, 1);
			ck_assert_uint_eq(list.count, 1);
			ck_assert_int_eq(list.rows[0].attempt, 1);
			ck_assert_int_eq(list.rows[0].outbox_id, ids[i]);
		}
	}
	db_close(&db);
}
END_TEST

START_TEST(test_record_not_attempted_keeps_attempt_columns)
{
	char last[TIME_TEXT_SIZE];
	struct outcome o;
	struct claimed c;
	struct snap s;
	struct db db;
	int64_t id;

	db_open(&db, "store_not_attempted");
	id = add_event(db.store, NULL, "+1");
	c = claim(db.store, NULL, T0, 1, 1);
	claimed_ids_are(&c, &id, 1);
	o = attempted(id, 1, EVENT_PENDING, 503, "HTTP 503", T0 + 100);
	o.next_attempt_ms = T0;
	ck_assert_uint_eq(record_one(db.store, o), 0);
	c = claim(db.store, NULL, T0 + 200, 2, 1);
	claimed_ids_are(&c, &id, 1);

	memset(&o, 0, sizeof o);
	o.id = id;
	o.claim_token = 2;
	o.status = EVENT_FAILED;
	o.attempted = 0;
	o.http_status = 0;
	o.error = "interested_parties[0] has no device";
	ck_assert_uint_eq(record_one(db.store, o), 0);

	s = snap_of(db.store, id);
	fmt(T0 + 100, last);
	ck_assert_str_eq(s.status, "failed");
	ck_assert_int_eq(s.attempts, 1);
	ck_assert_int_eq(s.http, 503);
	ck_assert_str_eq(s.last, last);
	ck_assert_str_eq(s.error, "interested_parties[0] has no device");
	ck_assert_str_eq(s.next, "NULL");
	ck_assert_uint_eq(attempts_of(db.store, id).count, 1);
	db_close(&db);
}
END_TEST

START_TEST(test_record_refuses_impossible_outcomes)
{
	struct outcome o;
	struct claimed c;
	struct db db;
	int64_t id;

	db_open(&db, "store_bad_outcome");
	id = add_event(db.store, NULL, "+1");
	c = claim(db.store, NULL, T0, 1, 1);
	claimed_ids_are(&c, &id, 1);

	o = attempted(id, 1, EVENT_SENDING, 204, NULL, T0);
	ck_assert_int_eq(store_record(db.store, &o, 1, NULL), STORE_ERROR);
	ck_assert_msg(strstr(store_errmsg(db.store), "not an outcome"), "%s",
		      store_errmsg(db.store));
	o = attempted(id, 1, EVENT_DELIVERED, 204, NULL, T0);
	o.attempted = 0;
	ck_assert_int_eq(store_record(db.store, &o, 1, NULL), STORE_ERROR);
	ck_assert_str_eq(snap_of(db.store, id).status, "sending");
	ck_assert_uint_eq(attempts_of(db.store, id).count, 0);
	db_close(&db);
}
END_TEST

START_TEST(test_fencing_refuses_a_taken_over_claim)
{
	struct outcome batch[2];
	unsigned char flags[2];
	int64_t recovered = -1;
	struct claimed c;
	struct snap s;
	struct db db;
	struct claim_request request = {
		.cloud_id = NULL,
		.now_ms = T0,
		.max_id = INT64_MAX,
		.lease_until_ms = T0 + 10,
		.token = 1,
		.limit = 5,
	};
	int64_t id;

	db_open(&db, "store_fencing");
	id = add_event(db.store, NULL, "+1");
	ck_assert_int_eq(store_claim(db.store, &request, &c.events, &c.count),
			 STORE_OK);
	claimed_ids_are(&c, &id, 1);

	ck_assert_int_eq(store_recover_leases(db.store, T0 + 9, &recovered),
			 STORE_OK);
	ck_assert_int_eq(recovered, 0);
	ck_assert_str_eq(snap_of(db.store, id).status, "sending");
	ck_assert_int_eq(store_recover_leases(db.store, T0 + 10, &recovered),
			 STORE_OK);
	ck_assert_int_eq(recovered, 1);
	s = snap_of(db.store, id);
	ck_assert_str_eq(s.status, "pending");
	ck_assert_str_eq(s.next, "NULL");
	ck_assert_int_eq(s.attempts, 0);

	c = claim(db.store, NULL, T0 + 20, 2, 5);
	ck_assert_int_eq(c.events[0].claim_token, 2);
	claimed_ids_are(&c, &id, 1);

	/* The old owner's outcome comes late, in the same batch as the new. */
	batch[0] = attempted(id, 1, EVENT_DELIVERED, 204, NULL, T0 + 30);
	batch[1] = attempted(id, 2, EVENT_PENDING, 500, "HTTP 500", T0 + 40);
	batch[1].next_attempt_ms = T0 + 1000;
	ck_assert_uint_eq(record_flags(db.store, batch, 2, flags), 1);
	ck_assert_int_eq(flags[0], 1);
	ck_assert_int_eq(flags[1], 0);
	s = snap_of(db.store, id);
	ck_assert_str_eq(s.status, "pending");
	ck_assert_int_eq(s.attempts, 1);
	ck_assert_int_eq(s.http, 500);
	ck_assert_str_eq(s.delivered, "NULL");
	ck_assert_uint_eq(attempts_of(db.store, id).count, 1);
	ck_assert_int_eq(attempts_of(db.store, id).rows[0].http, 500);

	/* A token that matches a row no longer sending is refused too. */
	ck_assert_uint_eq(record(db.store, &batch[1], 1), 1);
	ck_assert_int_eq(snap_of(db.store, id).attempts, 1);
	db_close(&db);
}
END_TEST

START_TEST(test_release_puts_back_without_an_attempt)
{
	struct outcome o;
	struct claimed c;
	struct snap s;
	struct db db;
	int64_t e1, e2;

	db_open(&db, "store_release");
	e1 = add_event(db.store, NULL, "+1");
	e2 = add_event(db.store, NULL, "+2");
	c = claim(db.store, NULL, T0, 5, 10);
	claimed_ids_are(&c, (int64_t[]){ e1, e2 }, 2);
	o = attempted(e1, 5, EVENT_PENDING, 503, "HTTP 503", T0);
	o.next_attempt_ms = T0 + 10;
	ck_assert_uint_eq(record_one(db.store, o), 0);
	c = claim(db.store, NULL, T0 + 10, 6, 10);
	claimed_ids_are(&c, &e1, 1);

	/* e2's token is wrong: that release is fenced out. */
	ck_assert_int_eq(store_release(db.store, (int64_t[]){ e1, e2 },
				       (int64_t[]){ 6, 6 }, 2), STORE_OK);
	s = snap_of(db.store, e1);
	ck_assert_str_eq(s.status, "pending");
	ck_assert_int_eq(s.attempts, 1);
	ck_assert_str_eq(s.next, "NULL");
	ck_assert_str_eq(s.error, "HTTP 503");
	ck_assert_uint_eq(attempts_of(db.store, e1).count, 1);
	ck_assert_str_eq(snap_of(db.store, e2).status, "sending");
	ck_assert_int_eq(store_release(db.store, &e2, (int64_t[]){ 5 }, 1),
			 STORE_OK);
	s = snap_of(db.store, e2);
	ck_assert_str_eq(s.status, "pending");
	ck_assert_int_eq(s.attempts, 0);
	ck_assert_uint_eq(attempts_of(db.store, e2).count, 0);
	db_close(&db);
}
END_TEST

START_TEST(test_next_due)
{
	struct outcome o;
	struct claimed c;
	int64_t due = 0;
	struct db db;
	int64_t e1, e2;

	db_open(&db, "store_next_due");
	ck_assert_int_eq(store_next_due(db.store, "a", &due), STORE_OK);
	ck_assert_int_eq(due, INT64_MAX);
	e1 = add_event(db.store, "a", "+1");
	ck_assert_int_eq(store_next_due(db.store, "a", &due), STORE_OK);
	ck_assert_int_eq(due, INT64_MIN);
	ck_assert_int_eq(store_next_due(db.store, "b", &due), STORE_OK);
	ck_assert_int_eq(due, INT64_MAX);

	c = claim(db.store, "a", T0, 1, 10);
	claimed_ids_are(&c, &e1, 1);
	ck_assert_int_eq(store_next_due(db.store, "a", &due), STORE_OK);
	ck_assert_int_eq(due, INT64_MAX); /* sending is not pending */

	o = attempted(e1, 1, EVENT_PENDING, 503, "HTTP 503", T0);
	o.next_attempt_ms = T0 + 500;
	ck_assert_uint_eq(record_one(db.store, o), 0);
	ck_assert_int_eq(store_next_due(db.store, "a", &due), STORE_OK);
	ck_assert_int_eq(due, T0 + 500);

	e2 = add_event(db.store, "a", "+2");
	c = claim(db.store, "a", T0, 2, 10);
	claimed_ids_are(&c, &e2, 1);
	o = attempted(e2, 2, EVENT_PENDING, 503, "HTTP 503", T0);
	o.next_attempt_ms = T0 + 200;
	ck_assert_uint_eq(record_one(db.store, o), 0);
	ck_assert_int_eq(store_next_due(db.store, "a", &due), STORE_OK);
	ck_assert_int_eq(due, T0 + 200);

	add_event(db.store, "a", "+3");
	ck_assert_int_eq(store_next_due(db.store, "a", &due), STORE_OK);
	ck_assert_int_eq(due, INT64_MIN);
	db_close(&db);
}
END_TEST

START_TEST(test_pending_cloud_ids)
{
	struct claimed c;
	char **ids = NULL;
	size_t count = 99;
	struct db db;
	int64_t z;

	db_open(&db, "store_cloud_ids");
	ck_assert_int_eq(store_pending_cloud_ids(db.store, 10, &ids, &count),
			 STORE_OK);
	ck_assert_uint_eq(count, 0);
	free(ids);

	add_event(db.store, "c", "+1");
	add_event(db.store, "a", "+1");
	add_event(db.store, "b", "+1");
	add_event(db.store, "a", "+2");
	z = add_event(db.store, "z", "+1");
	c = claim(db.store, "z", T0, 1, 10);
	claimed_ids_are(&c, &z, 1);
	ck_assert_uint_eq(record_one(db.store, attempted(z, 1, EVENT_DELIVERED,
							 204, NULL, T0)), 0);

	ck_assert_int_eq(store_pending_cloud_ids(db.store, 10, &ids, &count),
			 STORE_OK);
	ck_assert_uint_eq(count, 3);
	ck_assert_str_eq(ids[0], "a");
	ck_assert_str_eq(ids[1], "b");
	ck_assert_str_eq(ids[2], "c");
	for (size_t i = 0; i < count; i++)
		free(ids[i]);
	free(ids);

	ck_assert_int_eq(store_pending_cloud_ids(db.store, 2, &ids, &count),
			 STORE_OK);
	ck_assert_uint_eq(count, 2);
	ck_assert_str_eq(ids[1], "b");
	for (size_t i = 0; i < count; i++)
		free(ids[i]);
	free(ids);

	ck_assert_int_eq(store_pending_cloud_ids(db.store, 0, &ids, &count),
			 STORE_OK);
	ck_assert_uint_eq(count, 0);
	ck_assert_ptr_null(ids);
	db_close(&db);
}
END_TEST

/* What a queue-depth walk saw, in a fixed-size table. */
struct depth_seen {
	size_t count;
	char text[8][64];
	int64_t oldest[8];
};

static int take_depth(const struct queue_depth *d, void *arg)
{
	struct depth_seen *seen = arg;

	ck_assert_uint_lt(seen->count, 8);
	snprintf(seen->text[seen->count], sizeof seen->text[0], "%s %s %lld",
		 d->cloud_id, store_status_name(d->status), (long long)d->count);
	seen->oldest[seen->count++] = d->oldest_created_ms;
	return 0;
}

START_TEST(test_queue_depth_counts_pending_and_sending)
{
	struct depth_seen seen;
	struct claimed c;
	struct db db;
	int64_t a1, b1, b2;

	db_open(&db, "store_queue_depth");
	memset(&seen, 0, sizeof seen);
	ck_assert_int_eq(store_queue_depth(db.store, 100, take_depth, &seen),
			 STORE_OK);
	ck_assert_uint_eq(seen.count, 0);

	a1 = add_event(db.store, "a", "+1");
	add_event(db.store, "a", "+2");
	b1 = add_event(db.store, "b", "+1");
	b2 = add_event(db.store, "b", "+2");
	(void)b2;
	/* b1 is claimed (sending) and then delivered; a1 stays sending. */
	c = claim(db.store, "b", T0, 7, 1);
	ck_assert_int_gt(c.events[0].created_ms, T0);
	claimed_ids_are(&c, &b1, 1);
	ck_assert_uint_eq(record_one(db.store, attempted(b1, 7, EVENT_DELIVERED,
							 204, NULL, T0)), 0);
	c = claim(db.store, "a", T0, 8, 1);
	claimed_ids_are(&c, &a1, 1);

	ck_assert_int_eq(store_queue_depth(db.store, 100, take_depth, &seen),
			 STORE_OK);
	ck_assert_uint_eq(seen.count, 3);
	ck_assert_str_eq(seen.text[0], "a pending 1");
	ck_assert_str_eq(seen.text[1], "b pending 1");
	ck_assert_str_eq(seen.text[2], "a sending 1");
	ck_assert_int_gt(seen.oldest[0], T0);

	memset(&seen, 0, sizeof seen);
	ck_assert_int_eq(store_queue_depth(db.store, 2, take_depth, &seen),
			 STORE_OK);
	ck_assert_uint_eq(seen.count, 2);
	db_close(&db);
}
END_TEST

START_TEST(test_data_changed_sees_other_connections_only)
{
	struct store *other;
	int changed = -1;
	struct db db;

	db_open(&db, "store_data_version");
	other = open_ok(db.path, STORE_OPEN_EXISTING);
	ck_assert_int_eq(store_data_changed(db.store, &changed), STORE_OK);
	ck_assert_int_eq(changed, 1);
	ck_assert_int_eq(store_data_changed(db.store, &changed), STORE_OK);
	ck_assert_int_eq(changed, 0);

	add_event(db.store, NULL, "+1");
	ck_assert_int_eq(store_config_set(db.store, NULL, "k", "v"), STORE_OK);
	ck_assert_int_eq(store_data_changed(db.store, &changed), STORE_OK);
	ck_assert_int_eq(changed, 0);

	ck_assert_int_eq(store_config_set(other, NULL, "k", "w"), STORE_OK);
	ck_assert_int_eq(store_data_changed(db.store, &changed), STORE_OK);
	ck_assert_int_eq(changed, 1);
	ck_assert_int_eq(store_data_changed(db.store, &changed), STORE_OK);
	ck_assert_int_eq(changed, 0);

	ck_assert_int_eq(store_data_changed(other, &changed), STORE_OK);
	ck_assert_int_eq(changed, 1);
	store_close(other);
	db_close(&db);
}
END_TEST

/* ---- history ---- */

START_TEST(test_history_filters_and_order)
{
	struct history_filter f;
	struct outcome o[2];
	struct claimed c;
	struct id_list list;
	char created[5][32];
	struct db db;
	int64_t e[5];

	db_open(&db, "store_history");
	e[1] = add_event(db.store, "a", "+1");
	tu_sleep_ms(3); /* distinct created_at, at millisecond resolution */
	e[2] = add_event(db.store, "b", "+2");
	tu_sleep_ms(3);
	e[3] = add_event(db.store, "a", "+1");
	tu_sleep_ms(3);
	e[4] = add_event(db.store, "a", "+3");
	for (int i = 1; i <= 4; i++)
		memcpy(created[i], snap_of(db.store, e[i]).created,
		       sizeof created[i]);
	ck_assert_str_lt(created[1], created[2]);
	ck_assert_str_lt(created[2], created[3]);
	ck_assert_str_lt(created[3], created[4]);

	c = claim(db.store, "a", T0, 1, 10);
	claimed_ids_are(&c, (int64_t[]){ e[1], e[3], e[4] }, 3);
	o[0] = attempted(e[4], 1, EVENT_DELIVERED, 204, NULL, T0);
	o[1] = attempted(e[1], 1, EVENT_FAILED, 404, "HTTP 404", T0);
	ck_assert_uint_eq(record(db.store, o, 2), 0);
	ck_assert_int_eq(store_release(db.store, &e[3], (int64_t[]){ 1 }, 1),
			 STORE_OK);

	memset(&f, 0, sizeof f);
	history_is(db.store, &f, (int64_t[]){ e[4], e[3], e[2], e[1] }, 4);
	f.status = "delivered";
	history_is(db.store, &f, (int64_t[]){ e[4] }, 1);
	f.status = "pending";
	history_is(db.store, &f, (int64_t[]){ e[3], e[2] }, 2);
	f.status = "failed";
	history_is(db.store, &f, (int64_t[]){ e[1] }, 1);

	memset(&f, 0, sizeof f);
	f.cloud_id = "b";
	history_is(db.store, &f, (int64_t[]){ e[2] }, 1);
	memset(&f, 0, sizeof f);
	f.id = e[3];
	history_is(db.store, &f, (int64_t[]){ e[3] }, 1);
	f.id = e[4] + 100;
	history_is(db.store, &f, NULL, 0);
	memset(&f, 0, sizeof f);
	f.number = "+1";
	history_is(db.store, &f, (int64_t[]){ e[3], e[1] }, 2);

	/* since is inclusive, until exclusive. */
	memset(&f, 0, sizeof f);
	f.since = created[2];
	history_is(db.store, &f, (int64_t[]){ e[4], e[3], e[2] }, 3);
	f.since = NULL;
	f.until = created[2];
	history_is(db.store, &f, (int64_t[]){ e[1] }, 1);
	f.since = created[2];
	f.until = created[4];
	history_is(db.store, &f, (int64_t[]){ e[3], e[2] }, 2);

	memset(&f, 0, sizeof f);
	f.limit = 2;
	history_is(db.store, &f, (int64_t[]){ e[4], e[3] }, 2);
	f.cloud_id = "a";
	f.number = "+1";
	f.limit = 1;
	history_is(db.store, &f, (int64_t[]){ e[3] }, 1);

	/* A non-zero return from the callback stops the walk and is returned. */
	memset(&f, 0, sizeof f);
	memset(&list, 0, sizeof list);
	list.stop_after = 2;
	list.stop_with = 7;
	ck_assert_int_eq(store_history(db.store, &f, id_each, &list), 7);
	ck_assert_uint_eq(list.count, 2);
	/* and leaves the store usable */
	history_is(db.store, &f, (int64_t[]){ e[4], e[3], e[2], e[1] }, 4);
	db_close(&db);
}
END_TEST

struct nested {
	struct store *store;
	int history_rc;
	size_t attempts;
};

static int nested_each(const struct history_row *row, void *arg)
{
	struct nested *n = arg;
	struct history_filter f = { 0 };
	struct id_list list;

	memset(&list, 0, sizeof list);
	n->history_rc = store_history(n->store, &f, id_each, &list);
	n->attempts += attempts_of(n->store, row->id).count;
	return 0;
}

START_TEST(test_history_callback_may_read_attempts_not_history)
{
	struct history_filter f = { 0 };
	struct nested n = { 0 };
	struct claimed c;
	struct db db;
	int64_t id;

	db_open(&db, "store_nested");
	id = add_event(db.store, NULL, "+1");
	c = claim(db.store, NULL, T0, 1, 1);
	claimed_ids_are(&c, &id, 1);
	ck_assert_uint_eq(record_one(db.store, attempted(id, 1, EVENT_FAILED,
							 400, "HTTP 400", T0)),
			  0);
	n.store = db.store;
	ck_assert_int_eq(store_history(db.store, &f, nested_each, &n), STORE_OK);
	ck_assert_int_eq(n.history_rc, STORE_ERROR);
	ck_assert_uint_eq(n.attempts, 1);
	db_close(&db);
}
END_TEST

/* ---- configuration ---- */

START_TEST(test_config_set_unset_list)
{
	struct config_row *rows = NULL;
	size_t count = 0;
	int removed = -1, added = -1;
	struct db db;

	db_open(&db, "store_config");
	ck_assert_int_eq(store_config_list(db.store, NULL, &rows, &count),
			 STORE_OK);
	ck_assert_uint_eq(count, 0);
	store_config_rows_free(rows, count);

	ck_assert_int_eq(store_config_set(db.store, "default", "k2", "v2"),
			 STORE_OK);
	ck_assert_int_eq(store_config_set(db.store, NULL, "k1", "v1"), STORE_OK);
	ck_assert_int_eq(store_config_set(db.store, "b", "k1", "x"), STORE_OK);
	ck_assert_int_eq(store_config_set(db.store, "a", "k9", "y"), STORE_OK);
	ck_assert_int_eq(store_config_set(db.store, "default", "k1", "v1b"),
			 STORE_OK);

	ck_assert_int_eq(store_config_list(db.store, NULL, &rows, &count),
			 STORE_OK);
	ck_assert_uint_eq(count, 4);
	ck_assert_str_eq(rows[0].cloud_id, "a");
	ck_assert_str_eq(rows[0].key, "k9");
	ck_assert_str_eq(rows[1].cloud_id, "b");
	ck_assert_str_eq(rows[2].cloud_id, "default");
	ck_assert_str_eq(rows[2].key, "k1");
	ck_assert_str_eq(rows[2].value, "v1b");
	ck_assert_str_eq(rows[3].key, "k2");
	ck_assert_str_eq(rows[3].value, "v2");
	store_config_rows_free(rows, count);

	ck_assert_int_eq(store_config_unset(db.store, NULL, "k1", &removed),
			 STORE_OK);
	ck_assert_int_eq(removed, 1);
	ck_assert_int_eq(store_config_unset(db.store, "default", "k1",
					    &removed), STORE_OK);
	ck_assert_int_eq(removed, 0);
	ck_assert_int_eq(store_config_unset(db.store, "b", "k1", NULL),
			 STORE_OK);

	ck_assert_int_eq(store_config_list(db.store, "default", &rows, &count),
			 STORE_OK);
	ck_assert_uint_eq(count, 1);
	ck_assert_str_eq(rows[0].key, "k2");
	store_config_rows_free(rows, count);
	ck_assert_int_eq(store_config_list(db.store, "b", &rows, &count),
			 STORE_OK);
	ck_assert_uint_eq(count, 0);
	store_config_rows_free(rows, count);

	/* Add sets a key only once: a second add keeps the first value. */
	ck_assert_int_eq(store_config_add(db.store, "b", "k1", "first",
					  &added), STORE_OK);
	ck_assert_int_eq(added, 1);
	ck_assert_int_eq(store_config_add(db.store, "b", "k1", "second",
					  &added), STORE_OK);
	ck_assert_int_eq(added, 0);
	ck_assert_int_eq(store_config_add(db.store, NULL, "k2", "v3", &added),
			 STORE_OK);
	ck_assert_int_eq(added, 0);
	ck_assert_int_eq(store_config_list(db.store, NULL, &rows, &count),
			 STORE_OK);
	ck_assert_uint_eq(count, 3);
	ck_assert_str_eq(rows[1].cloud_id, "b");
	ck_assert_str_eq(rows[1].value, "first");
	ck_assert_str_eq(rows[2].key, "k2");
	ck_assert_str_eq(rows[2].value, "v2");
	store_config_rows_free(rows, count);
	db_close(&db);
}
END_TEST

/* ---- a locked database ---- */

struct lock_probe {
	struct store *other;
	int ran;
	int enqueue_rc;
	int claim_rc;
	int history_rc;
	int64_t waited_ms;
	char errmsg[512];
};

/* Runs while the first store holds its write transaction open. */
static void lock_probe_run(void *arg)
{
	struct lock_probe *p = arg;
	struct new_event event = {
		.new_smart_number = "+2",
		.network_id = "n",
		.new_smart_uri = "u",
		.interested_parties = "[]",
	};
	struct claim_request request = {
		.now_ms = T0, .max_id = INT64_MAX, .lease_until_ms = T0 + 1,
		.token = 1, .limit = 10,
	};
	struct event *events = NULL;
	struct history_filter f = { 0 };
	size_t count = 0;
	int64_t start = time_mono_ms();

	p->ran++;
	p->enqueue_rc = store_enqueue(p->other, &event, NULL);
	p->waited_ms = time_mono_ms() - start;
	snprintf(p->errmsg, sizeof p->errmsg, "%s", store_errmsg(p->other));
	p->claim_rc = store_claim(p->other, &request, &events, &count);
	store_events_free(events, count);
	/* WAL: readers are not blocked by the writer. */
	p->history_rc = store_history(p->other, &f, id_each,
				      &(struct id_list){ 0 });
}

START_TEST(test_locked_database_is_busy_not_a_hang)
{
	struct lock_probe probe = { 0 };
	struct db db;

	db_open(&db, "store_busy");
	probe.other = open_ok(db.path, STORE_OPEN_EXISTING);
	ck_assert_int_eq(store_set_busy_timeout(probe.other, 50), STORE_OK);
	store_set_tx_hook(db.store, lock_probe_run, &probe);

	add_event(db.store, NULL, "+1");
	ck_assert_int_eq(probe.ran, 1);
	ck_assert_int_eq(probe.enqueue_rc, STORE_BUSY);
	ck_assert_int_eq(probe.claim_rc, STORE_BUSY);
	ck_assert_int_eq(probe.history_rc, STORE_OK);
	ck_assert_msg(strstr(probe.errmsg, "locked") != NULL, "%s",
		      probe.errmsg);
	ck_assert_int_ge(probe.waited_ms, 50);
	ck_assert_int_lt(probe.waited_ms, 3000);

	/* Once the lock is gone, the other store writes as usual. */
	store_set_tx_hook(db.store, NULL, NULL);
	add_event(probe.other, NULL, "+3");
	ck_assert_uint_eq(history_count(db.store), 2);
	store_close(probe.other);
	db_close(&db);
}
END_TEST

/* ---- requeue, purge, stats ---------------------------------------------- */

/* Claims every pending event of cloud_id and fails each, event i at
 * finished[i]. */
static void fail_all(struct store *store, const char *cloud_id,
		     const int64_t *finished, size_t n)
{
	struct claimed c = claim(store, cloud_id, T0, 7, n);

	ck_assert_uint_eq(c.count, n);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(record_one(store, attempted(c.events[i].id, 7,
					     EVENT_FAILED, 500, "HTTP 500",
					     finished[i])), 0);
	store_events_free(c.events, c.count);
}

START_TEST(test_requeue_batches_fence_and_budget)
{
	const int64_t finished[] = { T0 + 1000, T0 + 2000, T0 + 3000,
				     T0 + 4000, T0 + 5000 };
	struct requeue_filter all = { 0 }, recent = { 0 };
	char since[TIME_TEXT_SIZE];
	int64_t count = 0, n = 0, last = 0;
	struct claimed c;
	struct snap s;
	struct db db;

	db_open(&db, "store_requeue");
	for (int i = 0; i < 5; i++)
		add_event(db.store, NULL, "+1");
	fail_all(db.store, NULL, finished, 5);

	ck_assert_int_eq(store_requeue_count(db.store, &all, &count), STORE_OK);
	ck_assert_int_eq(count, 5);
	fmt(T0 + 3000, since);
	recent.since = since;
	ck_assert_int_eq(store_requeue_count(db.store, &recent, &count), STORE_OK);
	ck_assert_int_eq(count, 3);

	/* Batches of two, fenced at id 4: 1-2, 3-4, then none; 5 stays. */
	ck_assert_int_eq(store_requeue_batch(db.store, &all, 0, 4, 2, &n, &last),
			 STORE_OK);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(last, 2);
	ck_assert_int_eq(store_requeue_batch(db.store, &all, last, 4, 2, &n, &last),
			 STORE_OK);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(last, 4);
	ck_assert_int_eq(store_requeue_batch(db.store, &all, last, 4, 2, &n, &last),
			 STORE_OK);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(last, 4);
	ck_assert_str_eq(snap_of(db.store, 5).status, "failed");

	s = snap_of(db.store, 1);
	ck_assert_str_eq(s.status, "pending");
	ck_assert_int_eq(s.attempts, 1);
	ck_assert_str_eq(s.next, "NULL");
	ck_assert_int_eq(s.http, 500);
	ck_assert_str_eq(s.error, "HTTP 500");

	/* A fresh budget: the attempt counts on, the budget starts over. */
	c = claim(db.store, NULL, T0 + 10000, 8, 1);
	ck_assert_uint_eq(c.count, 1);
	ck_assert_int_eq(c.events[0].id, 1);
	ck_assert_int_eq(c.events[0].attempts, 1);
	ck_assert_int_eq(c.events[0].budget_used, 0);
	store_events_free(c.events, c.count);
	db_close(&db);
}
END_TEST

START_TEST(test_purge_oldest_first_never_live)
{
	const int64_t finished[] = { T0 + 2000 };
	char cutoff[TIME_TEXT_SIZE];
	int64_t delivered, failed, pending, sending, count = 0, events, attempts;
	struct claimed c;
	struct db db;

	db_open(&db, "store_purge");
	failed = add_event(db.store, "f", "+1");
	fail_all(db.store, "f", finished, 1);
	delivered = add_event(db.store, NULL, "+2");
	c = claim(db.store, NULL, T0, 9, 1);
	ck_assert_uint_eq(record_one(db.store, attempted(delivered, 9,
				     EVENT_DELIVERED, 204, NULL, T0 + 1000)), 0);
	store_events_free(c.events, c.count);
	sending = add_event(db.store, NULL, "+3");
	c = claim(db.store, NULL, T0, 10, 1);
	store_events_free(c.events, c.count);
	pending = add_event(db.store, NULL, "+4");

	fmt(T0 + 1500, cutoff);
	ck_assert_int_eq(store_purge_count(db.store, cutoff, &count), STORE_OK);
	ck_assert_int_eq(count, 1);
	/* Everything finished is old by then; the oldest goes first. */
	fmt(T0 + 60000, cutoff);
	ck_assert_int_eq(store_purge_count(db.store, cutoff, &count), STORE_OK);
	ck_assert_int_eq(count, 2);
	ck_assert_int_eq(store_purge_batch(db.store, cutoff, 1, &events,
					   &attempts), STORE_OK);
	ck_assert_int_eq(events, 1);
	ck_assert_int_eq(attempts, 1);
	ck_assert_uint_eq(attempts_of(db.store, delivered).count, 0);
	ck_assert_str_eq(snap_of(db.store, failed).status, "failed");
	ck_assert_int_eq(store_purge_batch(db.store, cutoff, 1, &events,
					   &attempts), STORE_OK);
	ck_assert_int_eq(events, 1);
	ck_assert_uint_eq(attempts_of(db.store, failed).count, 0);
	ck_assert_int_eq(store_purge_batch(db.store, cutoff, 1, &events,
					   &attempts), STORE_OK);
	ck_assert_int_eq(events, 0);
	ck_assert_uint_eq(history_count(db.store), 2);
	ck_assert_str_eq(snap_of(db.store, sending).status, "sending");
	ck_assert_str_eq(snap_of(db.store, pending).status, "pending");
	db_close(&db);
}
END_TEST

struct cloud_rows {
	size_t count;
	char cloud_id[4][16];
	int64_t by_status[4][4];
};

static int cloud_each(const struct stats_cloud_row *row, void *arg)
{
	struct cloud_rows *rows = arg;

	ck_assert_uint_lt(rows->count, 4);
	text_copy(rows->cloud_id[rows->count], sizeof rows->cloud_id[0],
		  row->cloud_id);
	memcpy(rows->by_status[rows->count], row->by_status,
	       sizeof rows->by_status[0]);
	rows->count++;
	return 0;
}

START_TEST(test_stats_counts_and_percentiles)
{
	struct outcome outcomes[10];
	struct cloud_rows rows;
	struct store_stats st;
	int64_t now = time_now_ms();
	struct claimed c;
	struct db db;

	db_open(&db, "store_stats");
	for (int i = 0; i < 10; i++)
		add_event(db.store, NULL, "+1");
	c = claim(db.store, NULL, now, 11, 10);
	ck_assert_uint_eq(c.count, 10);
	/* Durations 10, 20, ... 100 ms; the last one fails. */
	for (size_t i = 0; i < 10; i++) {
		outcomes[i] = attempted(c.events[i].id, 11, i == 9 ? EVENT_FAILED
					: EVENT_DELIVERED, i == 9 ? 404 : 204,
					i == 9 ? "HTTP 404" : NULL, now);
		outcomes[i].duration_ms = (int64_t)(i + 1) * 10;
	}
	ck_assert_uint_eq(record(db.store, outcomes, 10), 0);
	store_events_free(c.events, c.count);
	add_event(db.store, "other", "+2");

	ck_assert_int_eq(store_stats(db.store, now + 1000, &st), STORE_OK);
	ck_assert_int_eq(st.due_now, 1);
	ck_assert_int_eq(strlen(st.oldest_pending), TIME_TEXT_SIZE - 1);
	ck_assert_int_eq(st.last_minute.attempts, 10);
	ck_assert_int_eq(st.last_minute.delivered, 9);
	ck_assert_int_eq(st.last_minute.failed_attempts, 1);
	ck_assert_int_eq(st.last_minute.events_failed, 1);
	ck_assert_int_eq(st.last_hour.attempts, 10);
	ck_assert_int_eq(st.duration.count, 10);
	ck_assert_int_eq(st.duration.p50, 50);
	ck_assert_int_eq(st.duration.p90, 90);
	ck_assert_int_eq(st.duration.p99, 100);
	ck_assert_int_eq(st.duration.max, 100);
	ck_assert_int_eq(st.latency.count, 9);
	ck_assert_int_le(st.latency.p50, st.latency.p90);
	ck_assert_int_le(st.latency.p99, st.latency.max);

	/* Two minutes later the minute is empty, the hour is not. */
	ck_assert_int_eq(store_stats(db.store, now + 120000, &st), STORE_OK);
	ck_assert_int_eq(st.last_minute.attempts, 0);
	ck_assert_int_eq(st.last_minute.events_failed, 0);
	ck_assert_int_eq(st.last_hour.attempts, 10);

	memset(&rows, 0, sizeof rows);
	ck_assert_int_eq(store_stats_clouds(db.store, cloud_each, &rows), STORE_OK);
	ck_assert_uint_eq(rows.count, 2);
	ck_assert_str_eq(rows.cloud_id[0], "default");
	ck_assert_int_eq(rows.by_status[0][EVENT_DELIVERED], 9);
	ck_assert_int_eq(rows.by_status[0][EVENT_FAILED], 1);
	ck_assert_int_eq(rows.by_status[0][EVENT_PENDING], 0);
	ck_assert_str_eq(rows.cloud_id[1], "other");
	ck_assert_int_eq(rows.by_status[1][EVENT_PENDING], 1);
	db_close(&db);
}
END_TEST

START_TEST(test_status_names)
{
	static const struct {
		enum event_status status;
		const char *name;
	} cases[] = {
		{ EVENT_PENDING, "pending" },
		{ EVENT_SENDING, "sending" },
		{ EVENT_DELIVERED, "delivered" },
		{ EVENT_FAILED, "failed" },
	};
	enum event_status parsed = EVENT_FAILED;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ck_assert_str_eq(store_status_name(cases[i].status),
				 cases[i].name);
		ck_assert_int_eq(store_status_parse(cases[i].name, &parsed), 0);
		ck_assert_int_eq(parsed, cases[i].status);
	}
	ck_assert_int_eq(store_status_parse("Pending", &parsed), -1);
	ck_assert_int_eq(store_status_parse("", &parsed), -1);
	ck_assert_int_eq(store_status_parse("sent", &parsed), -1);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *suite = suite_create("store");
	TCase *tc = tcase_create("store");

	tcase_set_timeout(tc, 60); /* valgrind is slow */
	tcase_add_test(tc, test_init_creates_and_is_idempotent);
	tcase_add_test(tc, test_existing_refuses_missing_file);
	tcase_add_test(tc, test_existing_refuses_older_schema_and_init_upgrades);
	tcase_add_test(tc, test_refuses_newer_schema);
	tcase_add_test(tc, test_files_are_owner_only);
	tcase_add_test(tc, test_enqueue_rejects_non_arrays);
	tcase_add_test(tc, test_enqueue_batch_all_or_none);
	tcase_add_test(tc, test_claim_orders_by_due_then_id);
	tcase_add_test(tc, test_claim_separates_clouds_and_honours_max_id);
	tcase_add_test(tc, test_max_event_id);
	tcase_add_test(tc, test_record_delivered);
	tcase_add_test(tc, test_record_retry_then_failed);
	tcase_add_test(tc, test_record_not_attempted_keeps_attempt_columns);
	tcase_add_test(tc, test_record_large_mixed_batch);
	tcase_add_test(tc, test_record_refuses_impossible_outcomes);
	tcase_add_test(tc, test_fencing_refuses_a_taken_over_claim);
	tcase_add_test(tc, test_release_puts_back_without_an_attempt);
	tcase_add_test(tc, test_next_due);
	tcase_add_test(tc, test_pending_cloud_ids);
	tcase_add_test(tc, test_queue_depth_counts_pending_and_sending);
	tcase_add_test(tc, test_data_changed_sees_other_connections_only);
	tcase_add_test(tc, test_history_filters_and_order);
	tcase_add_test(tc, test_history_callback_may_read_attempts_not_history);
	tcase_add_test(tc, test_config_set_unset_list);
	tcase_add_test(tc, test_locked_database_is_busy_not_a_hang);
	tcase_add_test(tc, test_requeue_batches_fence_and_budget);
	tcase_add_test(tc, test_purge_oldest_first_never_live);
	tcase_add_test(tc, test_stats_counts_and_percentiles);
	tcase_add_test(tc, test_status_names);
	suite_add_tcase(suite, tc);
	return suite;
}

int main(void)
{
	SRunner *runner = srunner_create(store_suite());
	int failed;

	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
