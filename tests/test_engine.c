/*
 * test_engine.c - the store's claims, fencing and change signal on the
 * engine that the test database selects (tu_db: SQLite, or PostgreSQL when
 * SMARTRELAY_TEST_DB_URI is set; make check runs this suite on both).
 *
 * Only the store API: several connections, and several processes claiming
 * at once, must never hold one event twice, and an outcome written under a
 * claim that was taken over is refused. An SQLite outbox copied into the
 * engine keeps its ids and retry state.
 */
#include <check.h>
#include <dirent.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"
#include "timeutil.h"

#define EVENTS 120
#define CLAIMERS 4

static const char parties[] = "[{\"username\":\"u\",\"device\":\"d\"}]";

struct db {
	char *dir;
	char *path;
	struct store *store;
};

static struct store *db_connect(const char *path)
{
	struct store *store = NULL;
	char err[512];

	ck_assert_msg(store_open(path, STORE_OPEN_EXISTING, &store, err,
				 sizeof(err)) == STORE_OK, "open: %s", err);
	return store;
}

static void db_open(struct db *db, const char *name)
{
	char err[512];

	db->dir = tu_tmpdir(name);
	db->path = tu_db(db->dir);
	ck_assert_msg(store_open(db->path, STORE_OPEN_CREATE, &db->store, err,
				 sizeof(err)) == STORE_OK, "init: %s", err);
}

static void db_close(struct db *db)
{
	store_close(db->store);
	free(db->path);
	free(db->dir);
}

static int64_t produce(struct store *store, const char *number,
		       const char *json)
{
	struct new_event ev = { NULL, number, "net", "uri", json };
	int64_t id = 0;

	ck_assert_msg(store_enqueue(store, &ev, &id) == STORE_OK, "enqueue: %s",
		      store_errmsg(store));
	return id;
}

static struct claim_request request_at(int64_t now, int64_t token,
				       size_t limit)
{
	struct claim_request r = {
		.cloud_id = NULL,
		.now_ms = now,
		.max_id = INT64_MAX,
		.lease_until_ms = now + 30000,
		.token = token,
		.limit = limit,
	};
	return r;
}

static int take_status(const struct history_row *row, void *arg)
{
	snprintf(arg, 16, "%s", row->status);
	return 0;
}

static void status_of(struct store *store, int64_t id, char out[16])
{
	struct history_filter filter = { .id = id };

	out[0] = '\0';
	ck_assert_int_eq(store_history(store, &filter, take_status, out),
			 STORE_OK);
}

/* One claimer: claims until nothing is left, one id a line to path. */
static void claimer_run(const char *db_path, const char *path, int64_t token)
{
	struct store *store = NULL;
	char err[512];
	FILE *out = fopen(path, "w");
	int idle = 0;

	if (out == NULL || store_open(db_path, STORE_OPEN_EXISTING, &store, err,
				      sizeof(err)) != STORE_OK)
		_exit(3);
	while (idle < 3) {
		struct claim_request r = request_at(time_now_ms(), token, 5);
		struct event *events = NULL;
		size_t count = 0;
		int rc = store_claim(store, &r, &events, &count);

		if (rc == STORE_BUSY)
			continue;
		if (rc != STORE_OK)
			_exit(4);
		idle = count == 0 ? idle + 1 : 0;
		for (size_t i = 0; i < count; i++)
			fprintf(out, "%" PRId64 "\n", events[i].id);
		store_events_free(events, count);
	}
	store_close(store);
	_exit(fclose(out) == 0 ? 0 : 5);
}

START_TEST(concurrent_claims_take_each_event_once)
{
	struct db db;
	int seen[EVENTS + 1];
	pid_t pids[CLAIMERS];
	char *paths[CLAIMERS];

	db_open(&db, "claims");
	memset(seen, 0, sizeof(seen));
	for (int i = 1; i <= EVENTS; i++)
		ck_assert_int_eq(produce(db.store, "n", parties), i);
	for (int c = 0; c < CLAIMERS; c++) {
		char name[32];

		snprintf(name, sizeof(name), "claimer%d", c);
		paths[c] = tu_path(db.dir, name);
		pids[c] = fork();
		ck_assert_int_ge(pids[c], 0);
		if (pids[c] == 0)
			claimer_run(db.path, paths[c], 1000 + c);
	}
	for (int c = 0; c < CLAIMERS; c++) {
		char *text, *end;

		ck_assert_int_eq(tu_wait(pids[c], 60000), 0);
		text = tu_read_file(paths[c], NULL);
		ck_assert_ptr_nonnull(text);
		for (char *line = text; *line != '\0'; line = end + 1) {
			long id = strtol(line, &end, 10);

			ck_assert_msg(end != line && *end == '\n',
				      "bad line in %s", paths[c]);
			ck_assert_int_ge(id, 1);
			ck_assert_int_le(id, EVENTS);
			ck_assert_msg(seen[id] == 0, "event %ld claimed twice", id);
			seen[id] = 1;
		}
		free(text);
		free(paths[c]);
	}
	for (int i = 1; i <= EVENTS; i++)
		ck_assert_msg(seen[i], "event %d never claimed", i);
	db_close(&db);
}
END_TEST

START_TEST(late_outcome_of_a_taken_over_claim_is_refused)
{
	struct db db;
	struct store *other;
	struct event *events = NULL;
	size_t count = 0;
	unsigned char refused = 2;
	int64_t now = time_now_ms(), recovered = 0, id;
	struct claim_request first = request_at(now, 111, 10);
	struct outcome late = {
		.status = EVENT_DELIVERED, .attempted = 1, .attempt = 1,
		.claim_token = 111, .started_ms = now, .finished_ms = now + 5,
		.duration_ms = 5, .http_status = 204,
	};
	struct outcome owner = late;
	char status[16];

	db_open(&db, "fencing");
	other = db_connect(db.path);
	id = produce(db.store, "n1", parties);
	ck_assert_int_eq(store_claim(db.store, &first, &events, &count),
			 STORE_OK);
	ck_assert_uint_eq(count, 1);
	store_events_free(events, count);

	/* The first relay's lease runs out; the second takes the event. */
	ck_assert_int_eq(store_recover_leases(other, now + 60000, &recovered),
			 STORE_OK);
	ck_assert_int_eq(recovered, 1);
	{
		struct claim_request second = request_at(now + 60000, 222, 10);

		ck_assert_int_eq(store_claim(other, &second, &events, &count),
				 STORE_OK);
		ck_assert_uint_eq(count, 1);
		ck_assert_int_eq(events[0].claim_token, 222);
		store_events_free(events, count);
	}

	/* The first relay comes back with its outcome: refused. */
	late.id = id;
	ck_assert_int_eq(store_record(db.store, &late, 1, &refused), STORE_OK);
	ck_assert_int_eq(refused, 1);
	status_of(db.store, id, status);
	ck_assert_str_eq(status, "sending");

	owner.id = id;
	owner.claim_token = 222;
	owner.status = EVENT_PENDING;
	owner.http_status = 503;
	owner.error = "HTTP 503";
	owner.next_attempt_ms = now + 1000;
	ck_assert_int_eq(store_record(other, &owner, 1, &refused), STORE_OK);
	ck_assert_int_eq(refused, 0);
	status_of(db.store, id, status);
	ck_assert_str_eq(status, "pending");
	store_close(other);
	db_close(&db);
}
END_TEST

/* ---- a batch of outcomes ------------------------------------------------ */

#define BATCH 40

/* Error texts that a careless encoding of a batch would break. */
static const char *const batch_errors[] = {
	"HTTP 503: say \"later\"",
	"C:\\path\\with\\backslashes\\",
	"a, b, c",
	"{braces}, {\"and\": [1, 2]}",
	"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x9e",
	"two\nlines\r\n\ttabbed",
	"NULL",
	"",
	"  spaced  ",
	"\\\"",
};

/* What one event's row says, copied out of the history walk. */
struct row_copy {
	char status[16];
	int64_t attempts;
	long http_status;
	char *error;
	char *next_attempt_at;
	char *last_attempt_at;
	char *delivered_at;
};

static char *dup_or_null(const char *text)
{
	char *copy = text ? strdup(text) : NULL;

	ck_assert(text == NULL || copy != NULL);
	return copy;
}

static int copy_row(const struct history_row *h, void *arg)
{
	struct row_copy *r = arg;

	snprintf(r->status, sizeof(r->status), "%s", h->status);
	r->attempts = h->attempts;
	r->http_status = h->http_status;
	r->error = dup_or_null(h->error);
	r->next_attempt_at = dup_or_null(h->next_attempt_at);
	r->last_attempt_at = dup_or_null(h->last_attempt_at);
	r->delivered_at = dup_or_null(h->delivered_at);
	return 0;
}

static void row_free(struct row_copy *r)
{
	free(r->error);
	free(r->next_attempt_at);
	free(r->last_attempt_at);
	free(r->delivered_at);
}

/* The attempts of one event, up to 4, copied. */
struct attempts_copy {
	int count;
	int64_t attempt[4];
	long http_status[4];
	int64_t duration_ms[4];
	char *started_at[4];
	char *error[4];
};

static int copy_attempt(const struct attempt_row *a, void *arg)
{
	struct attempts_copy *c = arg;

	ck_assert_int_lt(c->count, 4);
	c->attempt[c->count] = a->attempt;
	c->http_status[c->count] = a->http_status;
	c->duration_ms[c->count] = a->duration_ms;
	c->started_at[c->count] = dup_or_null(a->started_at);
	c->error[c->count] = dup_or_null(a->error);
	c->count++;
	return 0;
}

static void attempts_free(struct attempts_copy *c)
{
	for (int i = 0; i < c->count; i++) {
		free(c->started_at[i]);
		free(c->error[i]);
	}
}

/* Both NULL, or the same text. */
static void same_text(const char *a, const char *b)
{
	if (a == NULL)
		ck_assert_ptr_null(b);
	else
		ck_assert_str_eq(a, b);
}

static void same_time(const char *text, int64_t ms)
{
	char expected[TIME_TEXT_SIZE];

	time_format(ms, expected);
	ck_assert_ptr_nonnull(text);
	ck_assert_str_eq(text, expected);
}

/*
 * The outcome of event i+1 in the batch: by i % 4 delivered, a retry, a
 * failure without an attempt (or, for the last, a retry without one) and
 * a failure after one; error texts from batch_errors.
 */
static struct outcome batch_outcome(int i, int64_t now)
{
	struct outcome o = {
		.id = i + 1, .claim_token = 2, .attempted = 1,
		.started_ms = now + 1000 * i, .finished_ms = now + 1000 * i + 7,
		.duration_ms = 7 + i,
		.error = batch_errors[i % (sizeof(batch_errors) /
					   sizeof(batch_errors[0]))],
	};

	switch (i % 4) {
	case 0:
		o.status = EVENT_DELIVERED;
		o.http_status = 204;
		o.error = NULL;
		break;
	case 1:
		o.status = EVENT_PENDING;
		o.http_status = 503;
		o.next_attempt_ms = now + 3600000 + i;
		break;
	case 2:
		o.status = i == BATCH - 2 ? EVENT_PENDING : EVENT_FAILED;
		o.attempted = 0;
		o.next_attempt_ms = now + 7200000 + i;
		break;
	default:
		o.status = EVENT_FAILED;
		o.http_status = 400;
		break;
	}
	return o;
}

/*
 * 40 outcomes in one call, two of them under a claim that was taken
 * over, four for events with an attempt logged already, one whose error
 * PostgreSQL cannot store: exactly those two are refused, and every row
 * and attempt says what its outcome said.
 */
START_TEST(batch_of_outcomes_writes_each_and_refuses_the_fenced)
{
	const int64_t now = time_now_ms();
	struct claim_request first = request_at(now, 1, BATCH);
	struct claim_request second = request_at(now + 60000, 2, 64);
	struct outcome outcomes[BATCH], before[4];
	unsigned char refused[BATCH];
	struct event *events = NULL;
	size_t count = 0;
	int64_t recovered = 0;
	struct store *other;
	struct db db;
	int pg;

	db_open(&db, "batch");
	pg = strncmp(db.path, "postgresql://", 13) == 0;
	other = db_connect(db.path);
	for (int i = 1; i <= BATCH; i++)
		ck_assert_int_eq(produce(db.store, "n", parties), i);
	ck_assert_int_eq(store_claim(db.store, &first, &events, &count),
			 STORE_OK);
	ck_assert_uint_eq(count, BATCH);
	store_events_free(events, count);
	/* Events 1 to 4 are tried once and due again at once. */
	for (int i = 0; i < 4; i++)
		before[i] = (struct outcome){
			.id = i + 1, .claim_token = 1, .status = EVENT_PENDING,
			.attempted = 1, .attempt = 1, .started_ms = now - 100,
			.finished_ms = now - 90, .duration_ms = 10,
			.http_status = 502, .error = "HTTP 502",
			.next_attempt_ms = now,
		};
	ck_assert_int_eq(store_record(db.store, before, 4, refused), STORE_OK);
	ck_assert_mem_eq(refused, "\0\0\0\0", 4);
	/* The others' leases run out; another relay claims all 40. */
	ck_assert_int_eq(store_recover_leases(other, now + 60000, &recovered),
			 STORE_OK);
	ck_assert_int_eq(recovered, BATCH - 4);
	ck_assert_int_eq(store_claim(other, &second, &events, &count),
			 STORE_OK);
	ck_assert_uint_eq(count, BATCH);
	store_events_free(events, count);

	/* Its batch, but events 10 and 30 with the first relay's token. */
	for (int i = 0; i < BATCH; i++)
		outcomes[i] = batch_outcome(i, now);
	outcomes[9].claim_token = 1;
	outcomes[29].claim_token = 1;
	/* Not UTF-8: PostgreSQL cannot store it, SQLite stores it as is. */
	outcomes[BATCH - 1].error = "bad byte \xff here";
	memset(refused, 7, sizeof(refused));
	ck_assert_msg(store_record(other, outcomes, BATCH, refused) ==
		      STORE_OK, "record: %s", store_errmsg(other));
	for (int i = 0; i < BATCH; i++)
		ck_assert_msg(refused[i] == (i == 9 || i == 29),
			      "outcome %d: refused %d", i, refused[i]);

	for (int i = 0; i < BATCH; i++) {
		const struct outcome *o = &outcomes[i];
		struct history_filter filter = { .id = o->id };
		struct row_copy row = { .attempts = -1 };
		struct attempts_copy logged = { .count = 0 };
		int tried = i < 4;
		int attempts = tried + (o->attempted && !refused[i]);
		/* The outcome PostgreSQL cannot write fails its event alone. */
		int poison = pg && i == BATCH - 1;

		ck_assert_int_eq(store_history(db.store, &filter, copy_row,
					       &row), 0);
		ck_assert_int_eq(store_attempts(db.store, o->id, copy_attempt,
						&logged), 0);
		if (poison) {
			ck_assert_str_eq(row.status, "failed");
			ck_assert_ptr_nonnull(row.error);
			ck_assert_msg(strncmp(row.error, "cannot record outcome:",
					      22) == 0, "%s", row.error);
			ck_assert_int_eq(row.attempts, 0);
			ck_assert_int_eq(logged.count, 0);
			row_free(&row);
			continue;
		}
		ck_assert_msg(row.attempts == attempts && logged.count ==
			      attempts, "event %" PRId64 ": %" PRId64
			      " attempts, %d logged, not %d", o->id,
			      row.attempts, logged.count, attempts);
		for (int a = 0; a < logged.count; a++)
			ck_assert_int_eq(logged.attempt[a], a + 1);
		if (refused[i]) {
			ck_assert_str_eq(row.status, "sending");
			ck_assert_ptr_null(row.error);
			ck_assert_ptr_null(row.last_attempt_at);
		} else {
			ck_assert_str_eq(row.status,
					 store_status_name(o->status));
			same_text(row.error, o->error);
		}
		if (!refused[i] && o->attempted) {
			int a = logged.count - 1;

			same_time(row.last_attempt_at, o->finished_ms);
			ck_assert_int_eq(row.http_status, o->http_status);
			same_time(logged.started_at[a], o->started_ms);
			ck_assert_int_eq(logged.duration_ms[a], o->duration_ms);
			ck_assert_int_eq(logged.http_status[a], o->http_status);
			same_text(logged.error[a], o->error);
		} else if (tried) {
			/* Not attempted now: the earlier attempt stands. */
			same_time(row.last_attempt_at, now - 90);
			ck_assert_int_eq(row.http_status, 502);
		}
		if (!refused[i] && o->status == EVENT_DELIVERED)
			same_time(row.delivered_at, o->finished_ms);
		else
			ck_assert_ptr_null(row.delivered_at);
		if (!refused[i] && o->status == EVENT_PENDING)
			same_time(row.next_attempt_at, o->next_attempt_ms);
		else
			ck_assert_ptr_null(row.next_attempt_at);
		row_free(&row);
		attempts_free(&logged);
	}
	store_close(other);
	db_close(&db);
}
END_TEST

START_TEST(parties_must_be_a_json_array)
{
	static const char *const bad[] = { "{}", "\"a\"", "not json", "[1," };
	struct db db;

	db_open(&db, "parties");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct new_event ev = { NULL, "n", "net", "uri", bad[i] };

		ck_assert_int_eq(store_enqueue(db.store, &ev, NULL), STORE_ERROR);
		ck_assert_msg(strstr(store_errmsg(db.store), "JSON array"),
			      "%s: %s", bad[i], store_errmsg(db.store));
	}
	/* Accepted; PostgreSQL's sequence skips the refused ones' ids. */
	ck_assert_int_gt(produce(db.store, "n", "[]"), 0);
	db_close(&db);
}
END_TEST

/* Waits (bounded) until the store may have news, then asks it. */
static int changed_after_wait(struct store *store)
{
	int changed = 0;

	for (int i = 0; i < 100; i++) {
		int fd = store_wait_fd(store);

		if (fd >= 0) {
			struct pollfd p = { .fd = fd, .events = POLLIN };

			ck_assert_int_ge(poll(&p, 1, 50), 0);
		}
		ck_assert_int_eq(store_data_changed(store, &changed), STORE_OK);
		if (changed)
			break;
	}
	return changed;
}

START_TEST(another_connections_insert_is_a_change)
{
	struct db db;
	struct store *producer;
	int changed = 0;

	db_open(&db, "changes");
	producer = db_connect(db.path);
	ck_assert_int_eq(store_data_changed(db.store, &changed), STORE_OK);
	ck_assert_int_eq(changed, 1);
	produce(producer, "n", parties);
	ck_assert_int_eq(changed_after_wait(db.store), 1);
	store_close(producer);
	db_close(&db);
}
END_TEST

START_TEST(copy_keeps_ids_and_retry_state)
{
	int64_t now = time_now_ms();
	struct claim_request first = request_at(now, 5, 2);
	struct outcome retry = {
		.id = 1, .status = EVENT_PENDING, .attempted = 1, .attempt = 1,
		.claim_token = 5, .started_ms = now, .finished_ms = now + 5,
		.duration_ms = 5, .http_status = 503, .error = "HTTP 503",
		.next_attempt_ms = now + 3600000,
	};
	struct copy_event *ev = NULL, *back = NULL;
	struct copy_result results[3];
	struct event *events = NULL;
	struct store *src = NULL;
	size_t count = 0, nback = 0;
	unsigned char refused = 2;
	char *src_path, err[512];
	struct db db;

	/* The engine's database is the destination; the source a file. */
	db_open(&db, "copy");
	src_path = tu_path(db.dir, "src.db");
	ck_assert_msg(store_open(src_path, STORE_OPEN_CREATE, &src, err,
				 sizeof(err)) == STORE_OK, "src: %s", err);
	produce(src, "n1", parties);
	produce(src, "n2", parties);
	produce(src, "n3", parties);
	/* 1 waits for its retry, 2 is being sent, 3 was never tried. */
	ck_assert_int_eq(store_claim(src, &first, &events, &count), STORE_OK);
	ck_assert_uint_eq(count, 2);
	store_events_free(events, count);
	ck_assert_int_eq(store_record(src, &retry, 1, &refused), STORE_OK);
	ck_assert_int_eq(refused, 0);

	ck_assert_int_eq(store_copy_read(src, NULL, 0, 10, &ev, &count),
			 STORE_OK);
	ck_assert_uint_eq(count, 3);
	ck_assert_int_eq(ev[0].id, 1);
	ck_assert_int_eq(ev[0].attempts, 1);
	ck_assert_int_eq(ev[0].http_status, 503);
	ck_assert_str_eq(ev[0].error, "HTTP 503");
	ck_assert_ptr_nonnull(ev[0].next_attempt_at);
	ck_assert_ptr_nonnull(ev[0].last_attempt_at);
	/* The claim of the sending one means nothing elsewhere: due now. */
	ck_assert_int_eq(ev[1].id, 2);
	ck_assert_ptr_null(ev[1].next_attempt_at);
	ck_assert_int_eq(ev[2].attempts, 0);

	ck_assert_int_eq(store_copy_write(db.store, ev, count, 0, results),
			 STORE_OK);
	for (size_t i = 0; i < count; i++)
		ck_assert_int_eq(results[i].outcome, COPY_ADDED);
	/* The engine gives back what it was given. */
	ck_assert_int_eq(store_copy_read(db.store, NULL, 0, 10, &back, &nback),
			 STORE_OK);
	ck_assert_uint_eq(nback, count);
	for (size_t i = 0; i < count; i++) {
		ck_assert_int_eq(back[i].id, ev[i].id);
		ck_assert_str_eq(back[i].cloud_id, ev[i].cloud_id);
		ck_assert_str_eq(back[i].new_smart_number, ev[i].new_smart_number);
		ck_assert_str_eq(back[i].interested_parties,
				 ev[i].interested_parties);
		ck_assert_str_eq(back[i].created_at, ev[i].created_at);
		ck_assert_int_eq(back[i].attempts, ev[i].attempts);
		ck_assert_int_eq(back[i].budget_start, ev[i].budget_start);
		ck_assert_int_eq(back[i].http_status, ev[i].http_status);
		same_text(back[i].next_attempt_at, ev[i].next_attempt_at);
		same_text(back[i].last_attempt_at, ev[i].last_attempt_at);
		same_text(back[i].error, ev[i].error);
	}
	store_copy_events_free(back, nback);

	/* Again: all there; an id holding another event is a conflict. */
	ck_assert_int_eq(store_copy_write(db.store, ev, count, 1, results),
			 STORE_OK);
	for (size_t i = 0; i < count; i++)
		ck_assert_int_eq(results[i].outcome, COPY_PRESENT);
	free(ev[2].network_id);
	ev[2].network_id = strdup("another");
	ck_assert_ptr_nonnull(ev[2].network_id);
	ck_assert_int_eq(store_copy_write(db.store, ev, count, 0, results),
			 STORE_OK);
	ck_assert_int_eq(results[1].outcome, COPY_PRESENT);
	ck_assert_int_eq(results[2].outcome, COPY_CONFLICT);
	ck_assert_str_eq(results[2].differs, "network_id");

	/* Due as in the source: 2 and 3 now, 1 in an hour. */
	first = request_at(now + 1, 6, 10);
	ck_assert_int_eq(store_claim(db.store, &first, &events, &count),
			 STORE_OK);
	ck_assert_uint_eq(count, 2);
	ck_assert_int_eq(events[0].id, 2);
	ck_assert_int_eq(events[1].id, 3);
	store_events_free(events, count);
	/* A producer's next event gets an id past the copied ones. */
	ck_assert_int_eq(produce(db.store, "n4", parties), 4);
	store_copy_events_free(ev, 3);
	store_close(src);
	free(src_path);
	db_close(&db);
}
END_TEST

START_TEST(display_name_hides_passwords)
{
	char shown[128];

	store_display_name("postgresql://relay:s3cret@db.example:5433/outbox",
			   shown, sizeof(shown));
	ck_assert_str_eq(shown, "postgresql://relay@db.example:5433/outbox");
	store_display_name("postgres://db.example/outbox?password=s3cret",
			   shown, sizeof(shown));
	ck_assert_str_eq(shown, "postgres://db.example/outbox?password=***");
	store_display_name("/var/lib/smartrelay/relay.db", shown, sizeof(shown));
	ck_assert_str_eq(shown, "/var/lib/smartrelay/relay.db");
}
END_TEST

/* ---- schema ------------------------------------------------------------- */

/*
 * The number of the last migration file NNN_*.sql in dir, relative to the
 * source tree, where make runs the tests.
 */
static int last_migration(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int last = 0;

	ck_assert_msg(d != NULL, "%s: not found (run from the source tree)",
		      dir);
	while ((e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		size_t len = strlen(name);

		if (len > 8 && name[3] == '_' &&
		    strcmp(name + len - 4, ".sql") == 0 &&
		    strspn(name, "0123456789") == 3) {
			int number = (name[0] - '0') * 100 +
				     (name[1] - '0') * 10 + (name[2] - '0');

			if (number > last)
				last = number;
		}
	}
	closedir(d);
	return last;
}

/* Each engine reports the number of its own migrations. */
START_TEST(schema_version_is_the_engines_own)
{
	struct db db;
	int pg;

	db_open(&db, "schema-version");
	pg = strncmp(db.path, "postgresql://", 13) == 0;
	ck_assert_int_eq(store_schema_version(db.store),
			 last_migration(pg ? "sql/pg" : "sql"));
	db_close(&db);
}
END_TEST

/* ---- history ------------------------------------------------------------ */

struct walk {
	struct store *store;
	int rows;
	int64_t last_id;
	int stop_at;     /* the row whose callback returns 7; 0: none */
};

static int count_attempt(const struct attempt_row *a, void *arg)
{
	(void)a;
	(*(int *)arg)++;
	return 0;
}

/* Checks the order, and queries the store from inside the walk, as
 * `history --attempts` does. */
static int walk_row(const struct history_row *h, void *arg)
{
	struct walk *w = arg;
	int attempts = 0;

	ck_assert_msg(w->rows == 0 || h->id < w->last_id,
		      "id %" PRId64 " after %" PRId64, h->id, w->last_id);
	w->last_id = h->id;
	w->rows++;
	if (w->rows % 500 == 0)
		ck_assert_int_eq(store_attempts(w->store, h->id, count_attempt,
						&attempts), STORE_OK);
	ck_assert_int_eq(attempts, 0);
	return w->rows == w->stop_at ? 7 : 0;
}

/* More rows than one chunk that an engine may read at a time. */
START_TEST(history_walks_every_row_and_stops_when_asked)
{
	enum { N = 2500 };
	struct new_event *events = calloc(N, sizeof(*events));
	struct history_filter all = { .limit = 0 };
	struct history_filter newest = { .limit = 1 };
	struct walk w = { .rows = 0 };
	struct db db;

	ck_assert_ptr_nonnull(events);
	db_open(&db, "history-walk");
	for (int i = 0; i < N; i++)
		events[i] = (struct new_event){ NULL, "+1555", "net", "uri",
						parties };
	ck_assert_msg(store_enqueue_batch(db.store, events, N, NULL) ==
		      STORE_OK, "enqueue: %s", store_errmsg(db.store));
	w.store = db.store;
	ck_assert_int_eq(store_history(db.store, &all, walk_row, &w), 0);
	ck_assert_int_eq(w.rows, N);
	ck_assert_int_eq(w.last_id, 1);

	memset(&w, 0, sizeof(w));
	w.store = db.store;
	w.stop_at = 1500;
	ck_assert_int_eq(store_history(db.store, &all, walk_row, &w), 7);
	ck_assert_int_eq(w.rows, 1500);
	/* The stopped walk left nothing open behind it. */
	memset(&w, 0, sizeof(w));
	w.store = db.store;
	ck_assert_int_eq(store_history(db.store, &newest, walk_row, &w), 0);
	ck_assert_int_eq(w.rows, 1);
	ck_assert_int_eq(w.last_id, N);
	ck_assert_int_eq(produce(db.store, "+1556", parties), N + 1);
	free(events);
	db_close(&db);
}
END_TEST

static Suite *engine_suite(void)
{
	Suite *s = suite_create("engine");
	TCase *tc = tcase_create("engine");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, concurrent_claims_take_each_event_once);
	tcase_add_test(tc, late_outcome_of_a_taken_over_claim_is_refused);
	tcase_add_test(tc, batch_of_outcomes_writes_each_and_refuses_the_fenced);
	tcase_add_test(tc, parties_must_be_a_json_array);
	tcase_add_test(tc, another_connections_insert_is_a_change);
	tcase_add_test(tc, copy_keeps_ids_and_retry_state);
	tcase_add_test(tc, display_name_hides_passwords);
	tcase_add_test(tc, history_walks_every_row_and_stops_when_asked);
	tcase_add_test(tc, schema_version_is_the_engines_own);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(engine_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
