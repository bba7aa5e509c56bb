/*
 * relay.c - the poller loop: one store, one transfer pool, one thread.
 *
 * Owns the table of apps (one endpoint per cloud_id, rebuilt when its config
 * rows change), the events in flight, and the outcomes waiting to be written.
 * Outcomes are written in one transaction per turn of the loop; while a
 * batch cannot be written (a locked, read-only or full database) it is kept
 * and retried, and no new event is claimed, so memory stays bounded and the
 * claimed rows stay fenced by their leases.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "endpoint.h"
#include "guard.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "relay.h"
#include "render.h"
#include "store.h"
#include "timeutil.h"
#include "transfer.h"

/* How often lease expiry and unknown cloud_ids are looked for. */
#define SWEEP_INTERVAL_MS 1000
/* Longest sleep when a database change can be watched, and when not. */
#define IDLE_WAIT_MS 1000
#define IDLE_POLL_MS 50
/* Back-off after a database failure, doubling up to the maximum. */
#define STORE_RETRY_MIN_MS 100
#define STORE_RETRY_MAX_MS 10000
/* A claim outlives an app's own, longer timeout by this much when the
 * options leave no margin between --timeout and --lease. */
#define LEASE_MARGIN_MS 5000
/* Pending cloud_ids looked at for a missing config, at most. */
#define MAX_UNKNOWN_APPS 64
/* The circuit breaker of every endpoint: open after this many transient
 * failures in a row, probe after a pause that doubles up to the maximum. */
#define BREAKER_THRESHOLD 5
#define BREAKER_PAUSE_MIN_MS 5000
#define BREAKER_PAUSE_MAX_MS 300000
#define ERROR_SIZE 320
/*
 * A producer's commit writes the -wal file (which wakes the loop) a moment
 * before it publishes the commit in the -shm index (which data_version
 * reads). After a wake-up that found no change yet, look again this many
 * times, this often, rather than sleeping until the next wake-up.
 */
#define WAL_RECHECKS 10
#define WAL_RECHECK_MS 1
/* How long one database call may wait for a lock. */
#define RELAY_BUSY_TIMEOUT_MS 250
/* With a retention, one batch of old events goes this often; a full batch
 * means a backlog, and the next one follows at the next sweep. */
#define RETENTION_INTERVAL_MS 60000
#define RETENTION_BATCH 1000

struct app {
	char *cloud_id;
	uint64_t fingerprint;   /* of its config rows */
	struct endpoint *ep;    /* NULL while its config is bad */
	int64_t next_due_ms;    /* INT64_MIN: look now; INT64_MAX: none */
	int configured;         /* fingerprint and ep describe the rows */
	int seen;               /* still present at the last reload */
	struct guard guard;     /* outlives config changes, like the app */
	int due_unreadable;     /* its next due time could not be read */
};

/* One claimed event: in flight, or finished and waiting to be recorded. */
struct flight {
	int64_t id;
	int64_t token;
	int64_t attempts;       /* before this attempt */
	int64_t budget_used;
	int64_t created_ms;     /* the event's created_at; 0: unknown */
	struct app *app;        /* borrowed; apps live as long as the relay */
	char error[ERROR_SIZE];
	struct outcome outcome;
	int gone;               /* answered 410 Gone */
	int probe;              /* the probe of the app's open breaker */
	struct flight *next;    /* in the free list or the done list */
};

struct relay {
	const struct relay_options *opt;
	struct store *store;
	struct transfer_pool *pool;
	struct metrics *metrics; /* NULL without --metrics-listen */

	/* Every cloud_id met, configured or not. Pointers, so that a flight's
	 * app stays put when the table grows. */
	struct app **apps;
	size_t app_count;

	struct flight *flights;  /* concurrency slots */
	struct flight *free_flights;
	struct flight *done;     /* finished, outcome not yet written */
	size_t done_count;
	/* store_record's arguments for the done list, one per slot. */
	struct outcome *batch;
	unsigned char *refused;

	int signal_fd;
	int watch_fd;            /* inotify on the -wal file, or -1 */
	int stopping;
	unsigned stop_senders;   /* who sent stop signals: 1 parent, 2 others */
	int64_t stop_deadline_ms;
	int64_t once_start_ms;
	int64_t once_max_id;

	size_t claim_rotation;   /* which app claims first next time */
	int rechecks;            /* quick looks left after a WAL write */
	int64_t next_sweep_ms;
	int64_t next_retention_ms;
	int64_t store_retry_ms;  /* 0: the store is healthy */
	int64_t store_retry_at_ms;
	int store_failing;       /* a failure has been reported */
	uint64_t rng;
};

/* ---- small helpers ---------------------------------------------------- */

static uint64_t rng_next(struct relay *relay)
{
	/* xorshift64*: jitter and claim tokens need spread, not secrecy. */
	uint64_t x = relay->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	relay->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static double rng_unit(struct relay *relay)
{
	return (double)(rng_next(relay) >> 11) / 9007199254740992.0;
}

static uint64_t fnv1a(uint64_t hash, const char *text)
{
	for (; *text; text++) {
		hash ^= (unsigned char)*text;
		hash *= 0x100000001b3ULL;
	}
	/* The terminator counts, so "ab"+"c" differs from "a"+"bc". */
	hash ^= 0xff;
	return hash * 0x100000001b3ULL;
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static int64_t max64(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

/*
 * A store failure is an error of the relay, not of any event: report it
 * once, then retry with a growing pause until the store answers again.
 */
static void store_trouble(struct relay *relay, const char *what, int rc)
{
	int64_t now = time_mono_ms();

	relay->store_retry_ms = relay->store_retry_ms
		? min64(relay->store_retry_ms * 2, STORE_RETRY_MAX_MS)
		: STORE_RETRY_MIN_MS;
	relay->store_retry_at_ms = now + relay->store_retry_ms;
	/* A lock held by a producer or another relay is normal and brief:
	 * it is worth an error line only once it has lasted. */
	if (rc == STORE_BUSY && relay->store_retry_ms < STORE_RETRY_MAX_MS) {
		log_debug("database %s: busy; retrying in %" PRId64 " ms", what,
			  relay->store_retry_ms);
		return;
	}
	if (!relay->store_failing || log_get_level() >= LOG_LEVEL_DEBUG)
		log_error("database %s: %s: %s; retrying", what,
			  rc == STORE_BUSY ? "busy" : "failed",
			  store_errmsg(relay->store));
	relay->store_failing = 1;
}

static void store_healthy(struct relay *relay)
{
	if (relay->store_failing)
		log_info("database answers again");
	relay->store_failing = 0;
	relay->store_retry_ms = 0;
}

static int store_resting(const struct relay *relay)
{
	return relay->store_retry_ms && time_mono_ms() < relay->store_retry_at_ms;
}

/* ---- apps and their config -------------------------------------------- */

static struct app *app_find(struct relay *relay, const char *cloud_id)
{
	for (size_t i = 0; i < relay->app_count; i++)
		if (strcmp(relay->apps[i]->cloud_id, cloud_id) == 0)
			return relay->apps[i];
	return NULL;
}

static struct app *app_add(struct relay *relay, const char *cloud_id)
{
	struct app **grown, *app = calloc(1, sizeof(*app));

	grown = app ? realloc(relay->apps,
			      (relay->app_count + 1) * sizeof(*grown)) : NULL;
	if (grown)
		relay->apps = grown;
	if (!grown || !(app->cloud_id = strdup(cloud_id))) {
		free(app);
		log_error("out of memory adding cloud_id=%s", cloud_id);
		return NULL;
	}
	app->next_due_ms = INT64_MIN;
	guard_init(&app->guard);
	relay->apps[relay->app_count++] = app;
	return app;
}

/*
 * Rebuilds the app's endpoint when its rows changed. A config error is
 * logged once per change of the rows, and the app's events are left alone
 * until the rows change again.
 */
static void app_configure(struct relay *relay, struct app *app,
			  const struct config_row *rows, size_t count)
{
	char err[ENDPOINT_ERROR_SIZE];
	struct endpoint *ep = NULL;
	uint64_t fingerprint = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < count; i++)
		fingerprint = fnv1a(fnv1a(fingerprint, rows[i].key),
				    rows[i].value);
	app->seen = 1;
	if (app->configured && fingerprint == app->fingerprint)
		return;
	app->configured = 1;
	app->fingerprint = fingerprint;
	endpoint_free(app->ep);
	app->ep = NULL;
	app->next_due_ms = INT64_MIN;
	if (endpoint_build(app->cloud_id, rows, count, relay->opt->timeout_ms,
			   &ep, err, sizeof(err)) != 0) {
		log_error("config error: %s; events of cloud_id=%s wait",
			  err, app->cloud_id);
		metrics_config_state(relay->metrics, app->cloud_id,
				     METRICS_CONFIG_ERROR);
		return;
	}
	app->ep = ep;
	metrics_config_state(relay->metrics, app->cloud_id, ep->disabled
			     ? METRICS_CONFIG_DISABLED : METRICS_CONFIG_OK);
	if (ep->disabled)
		log_warn("endpoint disabled cloud_id=%s reason=\"%s\"; its events "
			 "wait until `smartrelay config DB enable --cloud-id %s`",
			 app->cloud_id, ep->disabled, app->cloud_id);
	else
		log_info("config loaded cloud_id=%s", app->cloud_id);
}

static void apps_reload(struct relay *relay)
{
	struct config_row *rows = NULL;
	size_t count = 0, start, end;
	int rc;

	rc = store_config_list(relay->store, NULL, &rows, &count);
	if (rc != STORE_OK) {
		store_trouble(relay, "config read", rc);
		return;
	}
	for (size_t i = 0; i < relay->app_count; i++)
		relay->apps[i]->seen = 0;
	for (start = 0; start < count; start = end) {
		struct app *app;

		for (end = start; end < count &&
		     strcmp(rows[end].cloud_id, rows[start].cloud_id) == 0; end++)
			;
		app = app_find(relay, rows[start].cloud_id);
		if (!app)
			app = app_add(relay, rows[start].cloud_id);
		if (app)
			app_configure(relay, app, rows + start, end - start);
	}
	/* An app whose rows are all gone: its events wait, loudly. */
	for (size_t i = 0; i < relay->app_count; i++)
		if (!relay->apps[i]->seen)
			app_configure(relay, relay->apps[i], NULL, 0);
	store_config_rows_free(rows, count);
}

/* Pending events of a cloud_id with no config at all are reported too. */
static void apps_find_unknown(struct relay *relay)
{
	char **ids = NULL;
	size_t count = 0;
	int rc;

	rc = store_pending_cloud_ids(relay->store, MAX_UNKNOWN_APPS, &ids, &count);
	if (rc != STORE_OK) {
		store_trouble(relay, "pending cloud_ids", rc);
		return;
	}
	for (size_t i = 0; i < count; i++) {
		if (!app_find(relay, ids[i])) {
			struct app *app = app_add(relay, ids[i]);

			if (app)
				app_configure(relay, app, NULL, 0);
		}
		free(ids[i]);
	}
	free(ids);
}

static void apps_free(struct relay *relay)
{
	for (size_t i = 0; i < relay->app_count; i++) {
		endpoint_free(relay->apps[i]->ep);
		free(relay->apps[i]->cloud_id);
		free(relay->apps[i]);
	}
	free(relay->apps);
	relay->apps = NULL;
	relay->app_count = 0;
}

static int app_ready(const struct app *app)
{
	return app->ep && !app->ep->disabled;
}

/* The limits of the app's current config (none while it has none). */
static struct guard_settings app_guard_settings(const struct app *app)
{
	struct guard_settings s = {
		.breaker_threshold = BREAKER_THRESHOLD,
		.pause_min_ms = BREAKER_PAUSE_MIN_MS,
		.pause_max_ms = BREAKER_PAUSE_MAX_MS,
	};

	if (app->ep) {
		s.max_concurrency = app->ep->max_concurrency;
		s.max_rate = app->ep->max_rate;
	}
	return s;
}

/* The breaker's changes are what an operator must see. */
static void app_guard_finished(struct app *app, int transient, int probe)
{
	struct guard_settings s = app_guard_settings(app);

	switch (guard_finished(&app->guard, &s, transient, probe,
			       time_mono_ms())) {
	case GUARD_OPENED:
		log_error("endpoint paused cloud_id=%s after %d transient "
			  "failures in a row; its events wait, next probe in "
			  "%" PRId64 " ms", app->cloud_id, s.breaker_threshold,
			  app->guard.pause_ms);
		break;
	case GUARD_REOPENED:
		log_error("endpoint still failing cloud_id=%s; next probe in %"
			  PRId64 " ms", app->cloud_id, app->guard.pause_ms);
		break;
	case GUARD_CLOSED:
		log_warn("endpoint answers again cloud_id=%s; resuming delivery",
			 app->cloud_id);
		break;
	case GUARD_SAME:
	default:
		break;
	}
}

/* ---- outcomes --------------------------------------------------------- */

static void flight_finish(struct relay *relay, struct flight *f)
{
	f->next = relay->done;
	relay->done = f;
	relay->done_count++;
}

static void flight_release(struct relay *relay, struct flight *f)
{
	f->next = relay->free_flights;
	relay->free_flights = f;
}

/* The event cannot be rendered: it fails without a request. */
static void outcome_unrenderable(struct relay *relay, struct flight *f,
				 const char *reason)
{
	snprintf(f->error, sizeof(f->error), "cannot render: %s", reason);
	memset(&f->outcome, 0, sizeof(f->outcome));
	f->outcome.id = f->id;
	f->outcome.claim_token = f->token;
	f->outcome.status = EVENT_FAILED;
	f->outcome.error = f->error;
	log_warn("event failed id=%" PRId64 " cloud_id=%s outcome=unrenderable "
		 "error=\"%s\"", f->id, f->app->cloud_id, reason);
	metrics_unrenderable(relay->metrics, f->app->cloud_id);
	flight_finish(relay, f);
}

/*
 * With a RetrySchedule, the delay after attempt n is the schedule's entry n
 * (the last repeating), jittered like the exponential one and capped at the
 * schedule's longest entry, which also bounds a Retry-After. Returns the
 * attempt number to hand policy_backoff.
 */
static int64_t retry_settings(const struct endpoint *ep, int64_t attempt,
			      struct backoff *settings)
{
	size_t count = ep ? ep->retry_schedule_count : 0;
	size_t i;

	if (count == 0)
		return attempt;
	i = attempt - 1 < (int64_t)count ? (size_t)(attempt - 1) : count - 1;
	settings->base_ms = ep->retry_schedule_ms[i];
	settings->max_ms = 0;
	for (size_t k = 0; k < count; k++)
		settings->max_ms = max64(settings->max_ms, ep->retry_schedule_ms[k]);
	return 1;
}

/* Decides what the attempt means for the row, from its verdict. */
static void outcome_attempted(struct relay *relay, struct flight *f,
			      const struct transfer_result *result)
{
	const struct relay_options *opt = relay->opt;
	const struct endpoint *ep = f->app->ep; /* NULL after a bad change */
	enum verdict verdict = policy_classify(result->transport,
					       result->http_status);
	struct outcome *o = &f->outcome;
	int64_t attempt = f->attempts + 1;
	int64_t max_attempts = ep && ep->max_attempts ? ep->max_attempts
						      : opt->max_attempts;
	int last = f->budget_used + 1 >= max_attempts;
	const char *outcome_name;

	memset(o, 0, sizeof(*o));
	o->id = f->id;
	o->claim_token = f->token;
	o->attempted = 1;
	o->attempt = attempt;
	o->started_ms = result->started_ms;
	o->duration_ms = result->duration_ms;
	o->finished_ms = result->started_ms + result->duration_ms;
	o->http_status = result->transport == TRANSPORT_OK ? result->http_status : 0;

	/* A delivery has no error text: nothing to format. */
	f->error[0] = '\0';
	if (result->transport != TRANSPORT_OK)
		snprintf(f->error, sizeof(f->error), "%s: %s",
			 policy_transport_name(result->transport),
			 result->error[0] ? result->error : "no response");
	else if (verdict != VERDICT_DELIVERED)
		snprintf(f->error, sizeof(f->error), "HTTP %ld%s",
			 result->http_status,
			 verdict == VERDICT_GONE ? " Gone: endpoint disabled" : "");

	switch (verdict) {
	case VERDICT_DELIVERED:
		o->status = EVENT_DELIVERED;
		outcome_name = "delivered";
		break;
	case VERDICT_RETRY:
		if (last) {
			o->status = EVENT_FAILED;
			outcome_name = "failed";
			break;
		}
		{
			struct backoff settings = {
				opt->retry_base_ms, opt->retry_max_ms
			};
			int64_t n = retry_settings(ep, f->budget_used + 1,
						   &settings);

			o->status = EVENT_PENDING;
			o->next_attempt_ms = o->finished_ms +
				policy_backoff(&settings, n,
					       result->retry_after_ms,
					       rng_unit(relay));
			outcome_name = "retry";
		}
		break;
	case VERDICT_GONE:
		f->gone = 1;
		o->status = EVENT_FAILED;
		outcome_name = "gone";
		break;
	case VERDICT_FAIL:
	default:
		o->status = EVENT_FAILED;
		outcome_name = "failed";
		break;
	}
	o->error = f->error[0] ? f->error : NULL;
	metrics_attempt(relay->metrics, f->app->cloud_id, outcome_name,
			result->transport, o->http_status);
	if (verdict == VERDICT_DELIVERED && f->created_ms)
		metrics_delivered(relay->metrics, f->app->cloud_id,
				  o->finished_ms - f->created_ms);
	if (verdict == VERDICT_DELIVERED)
		log_info("attempt id=%" PRId64 " cloud_id=%s attempt=%" PRId64
			 " outcome=%s status=%ld duration_ms=%" PRId64,
			 f->id, f->app->cloud_id, attempt, outcome_name,
			 result->http_status, result->duration_ms);
	else
		log_warn("attempt id=%" PRId64 " cloud_id=%s attempt=%" PRId64
			 " outcome=%s status=%ld duration_ms=%" PRId64
			 " error=\"%s\"", f->id, f->app->cloud_id, attempt,
			 outcome_name, o->http_status, result->duration_ms,
			 f->error);
}

/*
 * A 410 disables the app's endpoint in the database, until an operator
 * enables it again; the relay stops sending to it at once. The first relay
 * to meet the 410 writes the reason and says so; another (a second worker)
 * leaves that reason as it is.
 */
static void app_disable(struct relay *relay, struct app *app)
{
	char now[TIME_TEXT_SIZE], reason[64];
	int rc, added = 1;

	if (app->ep && app->ep->disabled)
		return;
	time_format(time_now_ms(), now);
	snprintf(reason, sizeof(reason), "HTTP 410 Gone at %s", now);
	rc = store_config_add(relay->store, app->cloud_id, ENDPOINT_DISABLED,
			      reason, &added);
	if (rc != STORE_OK)
		store_trouble(relay, "disable endpoint", rc);
	if (app->ep && !app->ep->disabled)
		app->ep->disabled = strdup(reason);
	metrics_config_state(relay->metrics, app->cloud_id,
			     METRICS_CONFIG_DISABLED);
	if (!added) {
		log_info("endpoint cloud_id=%s answered 410 and was already "
			 "disabled", app->cloud_id);
		return;
	}
	log_error("endpoint disabled cloud_id=%s reason=\"%s\"; enable it with "
		  "`smartrelay config DB enable --cloud-id %s`",
		  app->cloud_id, reason, app->cloud_id);
}

static void outcomes_flush(struct relay *relay)
{
	struct flight *f;
	size_t n = 0;
	int rc;

	if (!relay->done || store_resting(relay))
		return;
	for (f = relay->done; f; f = f->next)
		relay->batch[n++] = f->outcome;
	rc = store_record(relay->store, relay->batch, n, relay->refused);
	if (rc != STORE_OK) {
		store_trouble(relay, "outcome write", rc);
		return;
	}
	store_healthy(relay);
	for (n = 0; (f = relay->done) != NULL; n++) {
		relay->done = f->next;
		/* Its row is another relay's now, and so is the event; what
		 * the endpoint answered (a 410) still holds. */
		if (relay->refused[n])
			log_warn("outcome refused id=%" PRId64 " cloud_id=%s: "
				 "its lease was taken over by another relay",
				 f->id, f->app->cloud_id);
		if (f->gone)
			app_disable(relay, f->app);
		/* The relay's own commits leave PRAGMA data_version alone, so
		 * a retry it just scheduled must be remembered here. */
		if (!relay->opt->once && f->outcome.status == EVENT_PENDING &&
		    f->outcome.next_attempt_ms < f->app->next_due_ms)
			f->app->next_due_ms = f->outcome.next_attempt_ms;
		flight_release(relay, f);
	}
	relay->done_count = 0;
}

/* ---- claims and transfers --------------------------------------------- */

static void flight_start(struct relay *relay, struct flight *f,
			 const struct event *ev)
{
	struct render_event fields = {
		ev->new_smart_number, ev->network_id, ev->new_smart_uri,
		ev->interested_parties,
	};
	char err[TRANSFER_ERROR_SIZE];
	char *body = NULL;
	size_t len = 0;

	f->id = ev->id;
	f->token = ev->claim_token;
	f->attempts = ev->attempts;
	f->budget_used = ev->budget_used;
	f->created_ms = ev->created_ms;
	f->gone = 0;
	if (ev->nul_field) {
		snprintf(err, sizeof(err), "%s holds a NUL byte", ev->nul_field);
		outcome_unrenderable(relay, f, err);
		return;
	}
	if (render_body(f->app->ep->tmpl, &fields, &body, &len, err,
			sizeof(err)) != 0) {
		outcome_unrenderable(relay, f, err);
		return;
	}
	if (transfer_start(relay->pool, f->app->ep->transfer, ev->id, body, len,
			   f, err, sizeof(err)) != 0) {
		/* Not the event's fault: it goes back as if never claimed. */
		int64_t id = f->id, token = f->token;

		log_error("transfer not started id=%" PRId64 " cloud_id=%s "
			  "error=\"%s\"; the event is put back", id,
			  f->app->cloud_id, err);
		if (store_release(relay->store, &id, &token, 1) != STORE_OK)
			log_error("release id=%" PRId64 ": %s", id,
				  store_errmsg(relay->store));
		flight_release(relay, f);
		return;
	}
	{
		struct guard_settings s = app_guard_settings(f->app);

		f->probe = guard_started(&f->app->guard, &s, time_mono_ms());
	}
	if (f->probe)
		log_info("probing paused endpoint cloud_id=%s with id=%" PRId64,
			 f->app->cloud_id, f->id);
	log_debug("sending id=%" PRId64 " cloud_id=%s attempt=%" PRId64
		  " bytes=%zu", f->id, f->app->cloud_id, f->attempts + 1, len);
}

/*
 * A claim holds for --lease, as documented; an app whose own Timeout is
 * longer than --timeout keeps the margin the operator left between the two,
 * so that its lease still outlives its transfers.
 */
static int64_t app_lease_ms(const struct relay *relay, const struct app *app)
{
	const struct relay_options *opt = relay->opt;
	int64_t margin = opt->lease_ms - opt->timeout_ms;

	if (margin <= 0)
		margin = LEASE_MARGIN_MS;
	return max64(opt->lease_ms, app->ep->timeout_ms + margin);
}

/* Claims due events of one app into free slots. Returns how many. */
static size_t app_claim(struct relay *relay, struct app *app, size_t slots,
			int64_t now)
{
	struct event *events = NULL;
	size_t count = 0;
	int64_t lease = app_lease_ms(relay, app);
	struct claim_request request = {
		.cloud_id = app->cloud_id,
		.now_ms = relay->opt->once ? relay->once_start_ms : now,
		.max_id = relay->opt->once ? relay->once_max_id : INT64_MAX,
		.lease_until_ms = now + lease,
		.token = (int64_t)(rng_next(relay) >> 1),
		.limit = slots,
	};
	int rc;

	rc = store_claim(relay->store, &request, &events, &count);
	if (rc != STORE_OK) {
		store_trouble(relay, "claim", rc);
		return 0;
	}
	store_healthy(relay);
	metrics_claimed(relay->metrics, app->cloud_id, count);
	for (size_t i = 0; i < count; i++) {
		struct flight *f = relay->free_flights;

		relay->free_flights = f->next;
		f->app = app;
		flight_start(relay, f, &events[i]);
	}
	store_events_free(events, count);
	if (count < slots) {
		/* Nothing more is due now: remember when something will be. */
		int64_t due = INT64_MAX;

		if (relay->opt->once) {
			app->next_due_ms = INT64_MAX;
		} else if ((rc = store_next_due(relay->store, app->cloud_id,
						&due)) == STORE_OK) {
			app->next_due_ms = due;
			app->due_unreadable = 0;
		} else {
			/* A due time that cannot be read (a hand-edited row)
			 * must not make the loop claim again at once, forever. */
			if (!app->due_unreadable)
				log_warn("cloud_id=%s: %s; looking again every %d ms",
					 app->cloud_id, store_errmsg(relay->store),
					 SWEEP_INTERVAL_MS);
			app->due_unreadable = 1;
			app->next_due_ms = now + SWEEP_INTERVAL_MS;
		}
	}
	return count;
}

/*
 * Fills free slots with due events. Each app with due events gets an equal
 * share, and the first app to be served rotates, so that a busy app cannot
 * starve a quiet one.
 */
static void claim_due(struct relay *relay)
{
	int64_t now = time_now_ms();
	size_t slots = (size_t)(relay->opt->concurrency -
				transfer_pool_active(relay->pool));
	size_t due = 0, start;

	if (relay->stopping || relay->done || store_resting(relay) ||
	    relay->app_count == 0)
		return;
	for (size_t i = 0; i < relay->app_count; i++)
		due += app_ready(relay->apps[i]) && relay->apps[i]->next_due_ms <= now;
	if (due == 0)
		return;
	start = relay->claim_rotation++ % relay->app_count;
	for (size_t k = 0; k < relay->app_count && slots > 0; k++) {
		struct app *app = relay->apps[(start + k) % relay->app_count];
		struct guard_settings s;
		size_t allowed, share;

		if (!app_ready(app) || app->next_due_ms > now)
			continue;
		/* Only here: once every due app is served, due is 0. */
		share = (slots + due - 1) / due;
		due--;
		s = app_guard_settings(app);
		allowed = guard_allowance(&app->guard, &s, time_mono_ms());
		if (allowed == 0)
			continue;
		slots -= app_claim(relay, app, allowed < share ? allowed : share, now);
	}
}

static void reap_finished(struct relay *relay)
{
	struct transfer_result result;

	while (transfer_pool_reap(relay->pool, &result) == 1) {
		struct flight *f = result.owner;

		app_guard_finished(f->app,
				   policy_classify(result.transport,
						   result.http_status) == VERDICT_RETRY,
				   f->probe);
		outcome_attempted(relay, f, &result);
		flight_finish(relay, f);
	}
}

struct release_list {
	int64_t *ids;
	int64_t *tokens;
	size_t count;
};

static void collect_cancelled(void *owner, void *arg)
{
	struct flight *f = owner;
	struct release_list *list = arg;

	guard_cancelled(&f->app->guard, f->probe);
	log_info("cancelled id=%" PRId64 " cloud_id=%s: still in flight at the "
		 "end of the grace period", f->id, f->app->cloud_id);
	list->ids[list->count] = f->id;
	list->tokens[list->count] = f->token;
	list->count++;
}

/* The grace period is over: what still runs goes back, unattempted. */
static void cancel_in_flight(struct relay *relay)
{
	size_t cap = (size_t)relay->opt->concurrency;
	struct release_list list = {
		calloc(cap, sizeof(int64_t)), calloc(cap, sizeof(int64_t)), 0
	};
	int rc;

	if (!list.ids || !list.tokens) {
		log_error("out of memory cancelling transfers; their leases "
			  "will expire instead");
		transfer_pool_cancel_all(relay->pool, NULL, NULL);
		goto out;
	}
	transfer_pool_cancel_all(relay->pool, collect_cancelled, &list);
	if (list.count == 0)
		goto out;
	rc = store_release(relay->store, list.ids, list.tokens, list.count);
	if (rc != STORE_OK)
		log_error("cannot put back %zu cancelled events (%s); their "
			  "leases will expire instead", list.count,
			  store_errmsg(relay->store));
	else
		log_info("put back %zu events still in flight at the end of the "
			 "grace period", list.count);
out:
	free(list.ids);
	free(list.tokens);
}

/* ---- the loop ----------------------------------------------------------- */

static void sweep(struct relay *relay, int64_t now_mono)
{
	int64_t recovered = 0;
	int rc;

	if (now_mono < relay->next_sweep_ms || store_resting(relay))
		return;
	relay->next_sweep_ms = now_mono + SWEEP_INTERVAL_MS;
	rc = store_recover_leases(relay->store, time_now_ms(), &recovered);
	if (rc != STORE_OK) {
		store_trouble(relay, "lease recovery", rc);
		return;
	}
	metrics_recovered(relay->metrics, recovered);
	if (recovered > 0) {
		log_warn("took over %" PRId64 " events whose relay stopped "
			 "before recording an outcome", recovered);
		for (size_t i = 0; i < relay->app_count; i++)
			relay->apps[i]->next_due_ms = INT64_MIN;
	}
	apps_find_unknown(relay);
}

/* Purges one batch of finished events older than the retention. */
static void retention_purge(struct relay *relay, int64_t now_mono)
{
	char cutoff[TIME_TEXT_SIZE];
	int64_t events = 0, attempts = 0;
	int rc;

	if (relay->opt->retention_ms <= 0 ||
	    now_mono < relay->next_retention_ms || store_resting(relay))
		return;
	time_format(time_now_ms() - relay->opt->retention_ms, cutoff);
	rc = store_purge_batch(relay->store, cutoff, RETENTION_BATCH, &events,
			       &attempts);
	if (rc != STORE_OK) {
		store_trouble(relay, "retention purge", rc);
		return;
	}
	relay->next_retention_ms = now_mono + (events == RETENTION_BATCH
					       ? SWEEP_INTERVAL_MS
					       : RETENTION_INTERVAL_MS);
	if (events > 0)
		log_info("retention: purged %" PRId64 " events and %" PRId64
			 " attempts finished before %s", events, attempts, cutoff);
}

static void check_changes(struct relay *relay, int force)
{
	int changed = 0;
	int rc;

	if (store_resting(relay))
		return;
	rc = store_data_changed(relay->store, &changed);
	if (rc != STORE_OK) {
		store_trouble(relay, "change check", rc);
		return;
	}
	if (!changed && !force) {
		if (relay->rechecks > 0)
			relay->rechecks--;
		return;
	}
	relay->rechecks = 0;
	apps_reload(relay);
	/* New rows may be due: every app looks again. */
	for (size_t i = 0; i < relay->app_count; i++)
		relay->apps[i]->next_due_ms = INT64_MIN;
}

/*
 * Whether a stop signal repeats one already received from its sender, and
 * notes the sender. A worker (run --workers) hears of one stop twice when
 * it goes to the whole process group, as a terminal's Ctrl-C or a service
 * manager's stop may send it: from the sender, and passed on by its parent.
 * Only a second signal from the same side cuts the grace period short.
 */
static int stop_signal_repeated(struct relay *relay,
				const struct signalfd_siginfo *info)
{
	unsigned side = relay->opt->worker > 0 &&
			(pid_t)info->ssi_pid == getppid() ? 1u : 2u;
	int repeated = (relay->stop_senders & side) != 0 ||
		       relay->opt->worker == 0;

	relay->stop_senders |= side;
	return repeated;
}

static void handle_signals(struct relay *relay)
{
	struct signalfd_siginfo info;
	int repeated;

	while (read(relay->signal_fd, &info, sizeof(info)) == sizeof(info)) {
		if (info.ssi_signo == SIGHUP) {
			log_info("SIGHUP: reloading the configuration");
			check_changes(relay, 1);
			continue;
		}
		repeated = stop_signal_repeated(relay, &info);
		if (!relay->stopping) {
			relay->stopping = 1;
			relay->stop_deadline_ms = time_mono_ms() + relay->opt->grace_ms;
			log_info("stopping: %d transfers in flight get %" PRId64
				 " ms", transfer_pool_active(relay->pool),
				 relay->opt->grace_ms);
		} else if (repeated) {
			/* A second signal: no more waiting. */
			relay->stop_deadline_ms = time_mono_ms();
		}
	}
}

static void drain(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* How long the loop may sleep before something is due. */
static int wait_ms(struct relay *relay)
{
	int64_t now = time_now_ms(), wait;

	wait = relay->watch_fd >= 0 || store_wait_fd(relay->store) >= 0
		? IDLE_WAIT_MS : IDLE_POLL_MS;
	if (relay->rechecks > 0)
		wait = WAL_RECHECK_MS;
	if (relay->done)
		wait = min64(wait, max64(relay->store_retry_at_ms - time_mono_ms(), 0));
	if (relay->stopping)
		return (int)max64(0, min64(wait, relay->stop_deadline_ms -
					   time_mono_ms()));
	/* No claim can be made before the store's pause ends: waiting for the
	 * due apps instead would spin. */
	if (store_resting(relay))
		return (int)max64(0, min64(wait, relay->store_retry_at_ms -
					   time_mono_ms()));
	if (transfer_pool_active(relay->pool) >= relay->opt->concurrency)
		return (int)wait;
	for (size_t i = 0; i < relay->app_count; i++) {
		struct app *app = relay->apps[i];
		struct guard_settings s;
		int64_t guard_ms;

		if (!app_ready(app) || app->next_due_ms == INT64_MAX)
			continue;
		/* A limit that only a finished transfer lifts: the network
		 * wakes the loop then. */
		s = app_guard_settings(app);
		guard_ms = guard_wait_ms(&app->guard, &s, time_mono_ms());
		if (guard_ms < 0)
			continue;
		wait = min64(wait, max64(guard_ms, app->next_due_ms <= now ? 0
					 : app->next_due_ms - now));
	}
	return (int)wait;
}

static int once_finished(struct relay *relay)
{
	if (transfer_pool_active(relay->pool) > 0 || relay->done)
		return 0;
	/* An app whose breaker is open is done: its events wait. */
	for (size_t i = 0; i < relay->app_count; i++)
		if (app_ready(relay->apps[i]) &&
		    !guard_is_open(&relay->apps[i]->guard) &&
		    relay->apps[i]->next_due_ms != INT64_MAX)
			return 0;
	return 1;
}

static int watch_open(const char *db_path)
{
	char wal[4096];
	int fd;

	if (snprintf(wal, sizeof(wal), "%s-wal", db_path) >= (int)sizeof(wal))
		return -1;
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return -1;
	if (inotify_add_watch(fd, wal, IN_MODIFY) < 0) {
		log_debug("cannot watch %s (%s): polling for changes",
			  wal, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int signals_open(sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, old) != 0)
		return -1;
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static int relay_loop(struct relay *relay)
{
	for (;;) {
		/* A -1 (no watch, no metrics) is never ready. The store's
		 * descriptor (PostgreSQL's notifications) is read by
		 * check_changes, which a resting store skips. */
		int fds[4] = { relay->signal_fd, relay->watch_fd,
			       metrics_fd(relay->metrics),
			       store_resting(relay) ? -1
						    : store_wait_fd(relay->store) };
		unsigned ready = 0;
		int64_t now_mono = time_mono_ms();

		if (relay->stopping && transfer_pool_active(relay->pool) > 0 &&
		    now_mono >= relay->stop_deadline_ms)
			cancel_in_flight(relay);
		if (relay->stopping && transfer_pool_active(relay->pool) == 0) {
			outcomes_flush(relay);
			if (!relay->done || now_mono >= relay->stop_deadline_ms)
				break;
		}
		if (relay->opt->once && !relay->stopping && once_finished(relay))
			break;
		metrics_in_flight(relay->metrics, transfer_pool_active(relay->pool));
		if (transfer_pool_poll(relay->pool,
				       metrics_wait_ms(relay->metrics, wait_ms(relay)),
				       fds, 4, &ready) != 0) {
			log_error("transfer poll failed");
			return 1;
		}
		if (ready & 1u)
			handle_signals(relay);
		if (ready & 2u) {
			drain(relay->watch_fd);
			relay->rechecks = WAL_RECHECKS;
		}
		metrics_serve(relay->metrics);
		reap_finished(relay);
		outcomes_flush(relay);
		/* Config changes apply to every claim, in --once too. */
		check_changes(relay, 0);
		if (!relay->opt->once) {
			sweep(relay, time_mono_ms());
			retention_purge(relay, time_mono_ms());
		}
		claim_due(relay);
	}
	if (relay->done)
		log_error("%zu outcomes could not be written; their events will "
			  "be sent again when their leases expire",
			  relay->done_count);
	return 0;
}

void relay_options_default(struct relay_options *options)
{
	memset(options, 0, sizeof(*options));
	options->concurrency = 64;
	options->timeout_ms = 15000;
	options->max_attempts = 10;
	options->retry_base_ms = 5000;
	options->retry_max_ms = 3600 * 1000;
	options->lease_ms = 60000;
	options->grace_ms = 10000;
}

/*
 * Waits up to ms for a stop signal on the signal descriptor. Returns 1 when
 * SIGTERM or SIGINT came (SIGHUP has nothing to reload yet), else 0.
 */
static int stop_requested_within(struct relay *relay, int64_t ms)
{
	struct pollfd pfd = { relay->signal_fd, POLLIN, 0 };
	struct signalfd_siginfo info;

	if (poll(&pfd, 1, (int)ms) <= 0)
		return 0;
	while (read(relay->signal_fd, &info, sizeof(info)) == sizeof(info))
		if (info.ssi_signo != SIGHUP)
			relay->stopping = 1;
	return relay->stopping;
}

/*
 * Opens the store. A database server that does not answer yet (STORE_BUSY
 * from the open: one starting up, or restarting with the relay host) is
 * waited for with a growing pause, reported once, until a stop signal; a
 * --once run, which something else schedules, fails at once instead.
 */
static int relay_open_store(struct relay *relay, const char *db_path)
{
	int64_t pause = STORE_RETRY_MIN_MS;
	char err[512];
	int rc, reported = 0;

	for (;;) {
		rc = store_open(db_path, STORE_OPEN_EXISTING, &relay->store, err,
				sizeof(err));
		if (rc == STORE_OK) {
			if (reported)
				log_info("database answers again");
			return 0;
		}
		if (rc != STORE_BUSY || relay->opt->once) {
			log_error("%s", err);
			return -1;
		}
		if (!reported)
			log_error("%s; retrying until it answers", err);
		reported = 1;
		if (stop_requested_within(relay, pause)) {
			log_info("stopped before the database answered");
			return -1;
		}
		pause = min64(pause * 2, STORE_RETRY_MAX_MS);
	}
}

static int relay_start(struct relay *relay, const char *db_path)
{
	struct transfer_pool_options pool_options = {
		.max_transfers = relay->opt->concurrency,
		.ca_file = relay->opt->ca_file,
		.addresses = relay->opt->addresses,
	};
	char err[512];

	if (relay_open_store(relay, db_path) != 0)
		return -1;
	/* The loop also drives transfers and reads signals: it waits for a
	 * lock only briefly, and backs off between tries instead. */
	if (store_set_busy_timeout(relay->store, RELAY_BUSY_TIMEOUT_MS) != STORE_OK) {
		log_error("%s", store_errmsg(relay->store));
		return -1;
	}
	if (transfer_pool_new(&pool_options, &relay->pool, err, sizeof(err))) {
		log_error("%s", err);
		return -1;
	}
	relay->flights = calloc((size_t)relay->opt->concurrency,
				sizeof(*relay->flights));
	relay->batch = calloc((size_t)relay->opt->concurrency,
			      sizeof(*relay->batch));
	relay->refused = calloc((size_t)relay->opt->concurrency, 1);
	if (!relay->flights || !relay->batch || !relay->refused) {
		log_error("out of memory for %d transfer slots",
			  relay->opt->concurrency);
		return -1;
	}
	for (int i = relay->opt->concurrency - 1; i >= 0; i--)
		flight_release(relay, &relay->flights[i]);
	if (getrandom(&relay->rng, sizeof(relay->rng), 0) != sizeof(relay->rng))
		relay->rng = (uint64_t)time_now_ms() ^ ((uint64_t)getpid() << 32);
	relay->rng |= 1;
	relay->watch_fd = relay->opt->once ? -1 : watch_open(db_path);
	if (relay->opt->metrics_listen) {
		if (metrics_open(relay->opt->metrics_listen, relay->store,
				 &relay->metrics, err, sizeof(err)) != 0) {
			log_error("metrics: %s", err);
			return -1;
		}
		log_info("metrics listening on %s port=%d",
			 relay->opt->metrics_listen, metrics_port(relay->metrics));
	}
	return 0;
}

int relay_run(const char *db_path, const struct relay_options *options)
{
	struct relay relay = { .opt = options, .signal_fd = -1, .watch_fd = -1 };
	sigset_t old_mask;
	void (*old_xfsz)(int);
	int64_t recovered = 0;
	int status = 1;
	char shown[512];

	/* Logs name the database without its password. */
	store_display_name(db_path, shown, sizeof(shown));
	/* Past a file size limit a write then fails (EFBIG) like a full disk,
	 * which the store reports and retries, instead of killing the relay. */
	old_xfsz = signal(SIGXFSZ, SIG_IGN);
	relay.signal_fd = signals_open(&old_mask);
	if (relay.signal_fd < 0) {
		log_error("cannot watch signals: %s", strerror(errno));
		signal(SIGXFSZ, old_xfsz);
		return 1;
	}
	if (relay_start(&relay, db_path) != 0) {
		/* Stopped while waiting for the database: a clean stop. */
		if (relay.stopping && !relay.store)
			status = 0;
		goto out;
	}
	relay.once_start_ms = time_now_ms();
	if (store_recover_leases(relay.store, relay.once_start_ms, &recovered)
	    != STORE_OK ||
	    store_max_event_id(relay.store, &relay.once_max_id) != STORE_OK) {
		log_error("%s: %s", shown, store_errmsg(relay.store));
		goto out;
	}
	metrics_recovered(relay.metrics, recovered);
	if (recovered > 0)
		log_warn("took over %" PRId64 " events whose relay stopped before "
			 "recording an outcome", recovered);
	check_changes(&relay, 1);
	apps_find_unknown(&relay);
	relay.next_sweep_ms = time_mono_ms() + SWEEP_INTERVAL_MS;
	if (options->worker > 0)
		log_info("relay started db=%s concurrency=%d once=%d worker=%d "
			 "pid=%ld", shown, options->concurrency, options->once,
			 options->worker, (long)getpid());
	else
		log_info("relay started db=%s concurrency=%d once=%d", shown,
			 options->concurrency, options->once);
	status = relay_loop(&relay);
	log_info("relay stopped");
out:
	if (relay.pool)
		transfer_pool_free(relay.pool);
	apps_free(&relay);
	free(relay.flights);
	free(relay.batch);
	free(relay.refused);
	metrics_close(relay.metrics);
	store_close(relay.store);
	if (relay.watch_fd >= 0)
		close(relay.watch_fd);
	/* A stop signal that came after the stop has been answered: read, it
	 * cannot kill the process as the mask is restored. */
	drain(relay.signal_fd);
	close(relay.signal_fd);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	signal(SIGXFSZ, old_xfsz);
	return status;
}
