/*
 * cmd_stats.c - `smartrelay stats DB`: how the outbox is doing now.
 *
 * Events per state and per app, what is due, the oldest pending event, the
 * attempts of the last minute and hour, two latencies over the last hour,
 * and, first and loudly (also on stderr), every endpoint disabled by a 410.
 * Latency is end to end (delivered_at - created_at: queueing, retries and
 * the request) for events delivered in the last hour; duration is the
 * request alone (delivery_attempts.duration_ms) for attempts of the hour.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "endpoint.h"
#include "render.h"
#include "store.h"
#include "timeutil.h"

static const char stats_usage[] =
	"Usage: smartrelay stats DB [--json]\n"
	"Events per status and per cloud_id, how many are due now, the age of\n"
	"the oldest pending event, attempts of the last minute and hour,\n"
	"delivery latency (created -> delivered, events delivered in the last\n"
	"hour) and request duration percentiles (attempts of the last hour),\n"
	"and every endpoint disabled by a 410 Gone.\n\n"
	"  --json   one JSON object, for machines\n";

#define STATUS_COUNT 4

/* A growing text buffer; failed is set once memory ran out. */
struct text {
	char *buf;
	size_t len;
	int failed;
};

/* Appends piece (NULL: out of memory upstream), taking ownership. */
static void text_take(struct text *t, char *piece)
{
	size_t add;
	char *grown;

	if (piece == NULL || t->failed) {
		t->failed = 1;
		free(piece);
		return;
	}
	add = strlen(piece);
	grown = realloc(t->buf, t->len + add + 1);
	if (grown == NULL) {
		t->failed = 1;
		free(piece);
		return;
	}
	memcpy(grown + t->len, piece, add + 1);
	t->buf = grown;
	t->len += add;
	free(piece);
}

static void text_add(struct text *t, const char *literal)
{
	text_take(t, strdup(literal));
}

/* Appends "[" or "," before the next element of a JSON array. */
static void text_next(struct text *t)
{
	text_add(t, t->len == 0 ? "[" : ",");
}

static void text_close_array(struct text *t)
{
	text_add(t, t->len == 0 ? "[]" : "]");
}

struct cloud_list {
	int json;
	int64_t totals[STATUS_COUNT];
	size_t count;
	struct text json_rows;
	struct text lines;
};

/* "3d04h", "2h05m", "4m09s", "12s" */
static void age_format(int64_t ms, char *out, size_t size)
{
	int64_t s = ms < 0 ? 0 : ms / 1000;

	if (s >= 86400)
		snprintf(out, size, "%" PRId64 "d%02" PRId64 "h", s / 86400,
			 s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(out, size, "%" PRId64 "h%02" PRId64 "m", s / 3600,
			 s % 3600 / 60);
	else if (s >= 60)
		snprintf(out, size, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
	else
		snprintf(out, size, "%" PRId64 "s", s);
}

static int take_cloud(const struct stats_cloud_row *row, void *arg)
{
	struct cloud_list *list = arg;
	char line[512];

	for (int i = 0; i < STATUS_COUNT; i++)
		list->totals[i] += row->by_status[i];
	list->count++;
	if (list->json) {
		const struct render_field fields[] = {
			{ "cloud_id", RENDER_VALUE_TEXT, 0, row->cloud_id },
			{ "pending", RENDER_VALUE_INT, row->by_status[EVENT_PENDING], NULL },
			{ "sending", RENDER_VALUE_INT, row->by_status[EVENT_SENDING], NULL },
			{ "delivered", RENDER_VALUE_INT, row->by_status[EVENT_DELIVERED], NULL },
			{ "failed", RENDER_VALUE_INT, row->by_status[EVENT_FAILED], NULL },
			{ "oldest_pending", RENDER_VALUE_TEXT, 0, row->oldest_pending },
		};

		text_next(&list->json_rows);
		text_take(&list->json_rows,
			  render_json_record(fields, sizeof(fields) / sizeof(fields[0])));
	} else {
		snprintf(line, sizeof(line), "  %-16s %9" PRId64 " %9" PRId64
			 " %9" PRId64 " %9" PRId64 "  %s\n", row->cloud_id,
			 row->by_status[EVENT_PENDING], row->by_status[EVENT_SENDING],
			 row->by_status[EVENT_DELIVERED], row->by_status[EVENT_FAILED],
			 row->oldest_pending ? row->oldest_pending : "-");
		text_add(&list->lines, line);
	}
	return list->json_rows.failed || list->lines.failed;
}

/* Warns on stderr about each disabled endpoint; collects them for stdout. */
static void disabled_collect(const char *db, const struct config_row *rows,
			     size_t count, int json, struct text *out)
{
	char line[1024];

	for (size_t i = 0; i < count; i++) {
		if (strcmp(rows[i].key, ENDPOINT_DISABLED) != 0)
			continue;
		fprintf(stderr, "smartrelay stats: WARNING: endpoint of cloud_id=%s "
			"is DISABLED (%s); its events wait until 'smartrelay "
			"config %s enable --cloud-id %s'\n", rows[i].cloud_id,
			rows[i].value, db, rows[i].cloud_id);
		if (json) {
			const struct render_field fields[] = {
				{ "cloud_id", RENDER_VALUE_TEXT, 0, rows[i].cloud_id },
				{ "reason", RENDER_VALUE_TEXT, 0, rows[i].value },
			};

			text_next(out);
			text_take(out, render_json_record(fields, 2));
		} else {
			snprintf(line, sizeof(line), "!! DISABLED endpoint: cloud_id=%s"
				 " (%s)\n!!   its events wait; re-enable with: "
				 "smartrelay config %s enable --cloud-id %s\n",
				 rows[i].cloud_id, rows[i].value, db,
				 rows[i].cloud_id);
			text_add(out, line);
		}
	}
}

static char *window_json(const struct stats_window *w)
{
	const struct render_field fields[] = {
		{ "attempts", RENDER_VALUE_INT, w->attempts, NULL },
		{ "delivered", RENDER_VALUE_INT, w->delivered, NULL },
		{ "failed_attempts", RENDER_VALUE_INT, w->failed_attempts, NULL },
		{ "events_failed", RENDER_VALUE_INT, w->events_failed, NULL },
	};

	return render_json_record(fields, sizeof(fields) / sizeof(fields[0]));
}

static char *percentiles_json(const struct stats_percentiles *p)
{
	const struct render_field fields[] = {
		{ "count", RENDER_VALUE_INT, p->count, NULL },
		{ "p50_ms", RENDER_VALUE_INT, p->p50, NULL },
		{ "p90_ms", RENDER_VALUE_INT, p->p90, NULL },
		{ "p99_ms", RENDER_VALUE_INT, p->p99, NULL },
		{ "max_ms", RENDER_VALUE_INT, p->max, NULL },
	};

	return render_json_record(fields, sizeof(fields) / sizeof(fields[0]));
}

static int print_json(const struct store_stats *st, struct cloud_list *clouds,
		      struct text *disabled, int64_t now_ms)
{
	char now[TIME_TEXT_SIZE];
	char *minute = window_json(&st->last_minute);
	char *hour = window_json(&st->last_hour);
	char *latency = percentiles_json(&st->latency);
	char *duration = percentiles_json(&st->duration);
	char *record = NULL;
	int rc = 0;

	time_format(now_ms, now);
	text_close_array(&clouds->json_rows);
	text_close_array(disabled);
	if (minute && hour && latency && duration && !clouds->json_rows.failed &&
	    !disabled->failed) {
		const struct render_field fields[] = {
			{ "now", RENDER_VALUE_TEXT, 0, now },
			{ "pending", RENDER_VALUE_INT, clouds->totals[EVENT_PENDING], NULL },
			{ "sending", RENDER_VALUE_INT, clouds->totals[EVENT_SENDING], NULL },
			{ "delivered", RENDER_VALUE_INT, clouds->totals[EVENT_DELIVERED], NULL },
			{ "failed", RENDER_VALUE_INT, clouds->totals[EVENT_FAILED], NULL },
			{ "due_now", RENDER_VALUE_INT, st->due_now, NULL },
			{ "oldest_pending", RENDER_VALUE_TEXT, 0,
			  st->oldest_pending[0] ? st->oldest_pending : NULL },
			{ "last_minute", RENDER_VALUE_RAW, 0, minute },
			{ "last_hour", RENDER_VALUE_RAW, 0, hour },
			{ "latency_last_hour", RENDER_VALUE_RAW, 0, latency },
			{ "duration_last_hour", RENDER_VALUE_RAW, 0, duration },
			{ "by_cloud_id", RENDER_VALUE_RAW, 0, clouds->json_rows.buf },
			{ "disabled_endpoints", RENDER_VALUE_RAW, 0, disabled->buf },
		};

		record = render_json_record(fields, sizeof(fields) / sizeof(fields[0]));
	}
	if (record == NULL)
		rc = cli_runtime_error("stats", "out of memory");
	else
		printf("%s\n", record);
	free(record);
	free(duration);
	free(latency);
	free(hour);
	free(minute);
	return rc;
}

static void print_percentiles(const char *title, const struct stats_percentiles *p)
{
	printf("%s\n", title);
	if (p->count == 0) {
		printf("  none\n");
		return;
	}
	printf("  n=%" PRId64 "  p50 %" PRId64 " ms  p90 %" PRId64 " ms  p99 %"
	       PRId64 " ms  max %" PRId64 " ms\n", p->count, p->p50, p->p90,
	       p->p99, p->max);
}

static int print_text(const struct store_stats *st, struct cloud_list *clouds,
		      struct text *disabled, int64_t now_ms)
{
	const int64_t *t = clouds->totals;
	char age[32];
	int64_t oldest_ms;

	if (clouds->lines.failed || disabled->failed)
		return cli_runtime_error("stats", "out of memory");
	if (disabled->buf)
		printf("%s\n", disabled->buf);
	printf("events     pending %" PRId64 "  sending %" PRId64 "  delivered %"
	       PRId64 "  failed %" PRId64 "  total %" PRId64 "\n",
	       t[EVENT_PENDING], t[EVENT_SENDING], t[EVENT_DELIVERED],
	       t[EVENT_FAILED], t[0] + t[1] + t[2] + t[3]);
	printf("due now    %" PRId64 "\n", st->due_now);
	if (st->oldest_pending[0] && time_parse(st->oldest_pending, &oldest_ms) == 0) {
		age_format(now_ms - oldest_ms, age, sizeof(age));
		printf("oldest pending  %s (age %s)\n", st->oldest_pending, age);
	} else {
		printf("oldest pending  none\n");
	}
	printf("\n%-18s %12s %12s\n", "", "last minute", "last hour");
	printf("%-18s %12" PRId64 " %12" PRId64 "\n", "attempts",
	       st->last_minute.attempts, st->last_hour.attempts);
	printf("%-18s %12" PRId64 " %12" PRId64 "\n", "delivered",
	       st->last_minute.delivered, st->last_hour.delivered);
	printf("%-18s %12" PRId64 " %12" PRId64 "\n", "failed attempts",
	       st->last_minute.failed_attempts, st->last_hour.failed_attempts);
	printf("%-18s %12" PRId64 " %12" PRId64 "\n\n", "events failed",
	       st->last_minute.events_failed, st->last_hour.events_failed);
	print_percentiles("latency, created -> delivered (events delivered in the last hour)",
			  &st->latency);
	print_percentiles("request duration (attempts of the last hour)",
			  &st->duration);
	if (clouds->count > 0) {
		printf("\n  %-16s %9s %9s %9s %9s  %s\n", "CLOUD_ID", "PENDING",
		       "SENDING", "DELIVERED", "FAILED", "OLDEST_PENDING");
		fputs(clouds->lines.buf, stdout);
	}
	return 0;
}

int cmd_stats(int argc, char **argv)
{
	static const struct option options[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cloud_list clouds = { 0 };
	struct text disabled = { 0 };
	struct config_row *rows = NULL;
	struct store_stats st;
	struct store *store = NULL;
	size_t count = 0;
	int64_t now_ms;
	const char *db;
	char err[512];
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if (c == 'j') {
			clouds.json = 1;
		} else if (c == 'h') {
			fputs(stats_usage, stdout);
			return 0;
		} else {
			return cli_usage_error("stats", "bad option");
		}
	}
	if (cli_operands("stats", argc, argv, optind, 1, &db) != 0)
		return EXIT_USAGE;
	if (store_open(db, STORE_OPEN_EXISTING, &store, err, sizeof(err))
	    != STORE_OK)
		return cli_runtime_error("stats", "%s", err);
	now_ms = time_now_ms();
	rc = store_stats(store, now_ms, &st);
	if (rc == STORE_OK)
		rc = store_stats_clouds(store, take_cloud, &clouds);
	if (rc == STORE_OK)
		rc = store_config_list(store, NULL, &rows, &count);
	if (rc != STORE_OK) {
		rc = cli_runtime_error("stats", "%s", rc > 0 ? "out of memory"
				       : store_errmsg(store));
		goto out;
	}
	disabled_collect(db, rows, count, clouds.json, &disabled);
	if (clouds.json)
		rc = print_json(&st, &clouds, &disabled, now_ms);
	else
		rc = print_text(&st, &clouds, &disabled, now_ms);
out:
	store_config_rows_free(rows, count);
	free(disabled.buf);
	free(clouds.json_rows.buf);
	free(clouds.lines.buf);
	store_close(store);
	return rc;
}
