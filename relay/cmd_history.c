/*
 * cmd_history.c - `smartrelay history DB`: what happened to each event,
 * newest first, as columns for people or JSON for machines.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "render.h"
#include "store.h"
#include "timeutil.h"

static const char history_usage[] =
	"Usage: smartrelay history DB [OPTIONS]\n"
	"Prints the events of the outbox and their outcomes, newest first.\n\n"
	"  --status S       pending, sending, delivered or failed\n"
	"  --cloud-id C     only this app's events\n"
	"  --id N           only this event\n"
	"  --number N       only events of this new_smart_number\n"
	"  --since TIME     created at or after TIME (YYYY-MM-DD[THH:MM[:SS]])\n"
	"  --until TIME     created before TIME\n"
	"  --limit N        at most N events (100; 0: all)\n"
	"  --attempts       every attempt of each event, too\n"
	"  --json           one JSON array of objects, for machines\n";

enum {
	OPT_STATUS = 256, OPT_CLOUD_ID, OPT_ID, OPT_NUMBER, OPT_SINCE,
	OPT_UNTIL, OPT_LIMIT, OPT_ATTEMPTS, OPT_JSON,
};

struct history_print {
	struct store *store;
	int json;
	int attempts;
	size_t printed;
	int failed;
};

static const char *or_dash(const char *text)
{
	return text && *text ? text : "-";
}

static int print_attempt_text(const struct attempt_row *row, void *arg)
{
	(void)arg;
	printf("    attempt %-3" PRId64 " %s %6" PRId64 " ms  ", row->attempt,
	       or_dash(row->started_at), row->duration_ms);
	if (row->http_status)
		printf("HTTP %ld", row->http_status);
	else
		printf("no response");
	if (row->error) {
		fputs("  ", stdout);
		cli_print_text(row->error, 0, 0);
	}
	putchar('\n');
	return 0;
}

struct attempt_json {
	char *text;   /* "[...]" so far */
	size_t len;
	int failed;
};

static int collect_attempt_json(const struct attempt_row *row, void *arg)
{
	struct attempt_json *list = arg;
	const struct render_field fields[] = {
		{ "attempt", RENDER_VALUE_INT, row->attempt, NULL },
		{ "started_at", RENDER_VALUE_TEXT, 0, row->started_at },
		{ "duration_ms", RENDER_VALUE_INT, row->duration_ms, NULL },
		{ "http_status", row->http_status ? RENDER_VALUE_INT
			: RENDER_VALUE_NULL, row->http_status, NULL },
		{ "error", RENDER_VALUE_TEXT, 0, row->error },
	};
	char *record = render_json_record(fields, sizeof(fields) / sizeof(fields[0]));
	size_t add = record ? strlen(record) : 0;
	char *grown = record ? realloc(list->text, list->len + add + 3) : NULL;

	if (!grown) {
		free(record);
		list->failed = 1;
		return 1;
	}
	list->text = grown;
	grown[list->len] = list->len == 0 ? '[' : ',';
	list->len++;
	memcpy(list->text + list->len, record, add + 1);
	list->len += add;
	free(record);
	return 0;
}

static int print_json(struct history_print *p, const struct history_row *row)
{
	struct attempt_json attempts = { NULL, 0, 0 };
	struct render_field fields[] = {
		{ "id", RENDER_VALUE_INT, row->id, NULL },
		{ "cloud_id", RENDER_VALUE_TEXT, 0, row->cloud_id },
		{ "new_smart_number", RENDER_VALUE_TEXT, 0, row->new_smart_number },
		{ "network_id", RENDER_VALUE_TEXT, 0, row->network_id },
		{ "new_smart_uri", RENDER_VALUE_TEXT, 0, row->new_smart_uri },
		{ "interested_parties", RENDER_VALUE_JSON, 0, row->interested_parties },
		{ "created_at", RENDER_VALUE_TEXT, 0, row->created_at },
		{ "status", RENDER_VALUE_TEXT, 0, row->status },
		{ "attempts", RENDER_VALUE_INT, row->attempts, NULL },
		{ "next_attempt_at", RENDER_VALUE_TEXT, 0, row->next_attempt_at },
		{ "last_attempt_at", RENDER_VALUE_TEXT, 0, row->last_attempt_at },
		{ "http_status", row->http_status ? RENDER_VALUE_INT
			: RENDER_VALUE_NULL, row->http_status, NULL },
		{ "error", RENDER_VALUE_TEXT, 0, row->error },
		{ "delivered_at", RENDER_VALUE_TEXT, 0, row->delivered_at },
		{ "attempt_log", RENDER_VALUE_RAW, 0, NULL },
	};
	size_t count = sizeof(fields) / sizeof(fields[0]) - 1;
	char *record;

	if (p->attempts) {
		if (store_attempts(p->store, row->id, collect_attempt_json,
				   &attempts) != STORE_OK || attempts.failed) {
			free(attempts.text);
			return 1;
		}
		if (attempts.text) {
			/* collect_attempt_json left room for the bracket. */
			attempts.text[attempts.len++] = ']';
			attempts.text[attempts.len] = '\0';
		}
		fields[count++].text = attempts.text ? attempts.text : "[]";
	}
	record = render_json_record(fields, count);
	free(attempts.text);
	if (!record)
		return 1;
	printf("%s%s", p->printed ? ",\n" : "[\n", record);
	free(record);
	return 0;
}

static int print_row(const struct history_row *row, void *arg)
{
	struct history_print *p = arg;

	if (p->json) {
		if (print_json(p, row) != 0) {
			p->failed = 1;
			return 1;
		}
	} else {
		if (p->printed == 0)
			printf("%-8s %-10s %-16s %-9s %-8s %-4s %-24s %-24s %s\n",
			       "ID", "CLOUD_ID", "NUMBER", "STATUS", "ATTEMPTS",
			       "HTTP", "CREATED_AT", "LAST_ATTEMPT_AT", "ERROR");
		printf("%-8" PRId64 " ", row->id);
		cli_print_text(row->cloud_id, 10, 0);
		putchar(' ');
		cli_print_text(row->new_smart_number, 16, 0);
		printf(" %-9s %-8" PRId64 " ", row->status, row->attempts);
		if (row->http_status)
			printf("%-4ld ", row->http_status);
		else
			printf("%-4s ", "-");
		printf("%-24s %-24s ", or_dash(row->created_at),
		       or_dash(row->last_attempt_at));
		cli_print_text(or_dash(row->error), 0, 0);
		putchar('\n');
		if (p->attempts &&
		    store_attempts(p->store, row->id, print_attempt_text, NULL)
		    != STORE_OK) {
			p->failed = 1;
			return 1;
		}
	}
	p->printed++;
	return 0;
}

static int check_time(const char *name, const char *text, char out[TIME_TEXT_SIZE])
{
	int64_t ms;

	if (time_parse(text, &ms) != 0)
		return cli_usage_error("history", "%s: '%s' is not a time "
				       "(YYYY-MM-DD[THH:MM[:SS[.SSS]]][Z], UTC)",
				       name, text);
	time_format(ms, out);
	return 0;
}

int cmd_history(int argc, char **argv)
{
	static const struct option options[] = {
		{ "status", required_argument, NULL, OPT_STATUS },
		{ "cloud-id", required_argument, NULL, OPT_CLOUD_ID },
		{ "id", required_argument, NULL, OPT_ID },
		{ "number", required_argument, NULL, OPT_NUMBER },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "until", required_argument, NULL, OPT_UNTIL },
		{ "limit", required_argument, NULL, OPT_LIMIT },
		{ "attempts", no_argument, NULL, OPT_ATTEMPTS },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct history_filter filter = { .limit = 100 };
	struct history_print print = { 0 };
	char since[TIME_TEXT_SIZE], until[TIME_TEXT_SIZE], err[512];
	enum event_status status;
	const char *db;
	int c, rc = 0;

	while (rc == 0 && (c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case OPT_STATUS:
			if (store_status_parse(optarg, &status) != 0)
				return cli_usage_error("history", "--status: '%s' is not "
						       "pending, sending, delivered or failed", optarg);
			filter.status = optarg;
			break;
		case OPT_CLOUD_ID:
			filter.cloud_id = optarg;
			break;
		case OPT_ID:
			if (cli_parse_int(optarg, 1, INT64_MAX, &filter.id) != 0)
				return cli_usage_error("history", "--id: '%s' is not an "
						       "event id", optarg);
			break;
		case OPT_NUMBER:
			filter.number = optarg;
			break;
		case OPT_SINCE:
			rc = check_time("--since", optarg, since);
			filter.since = since;
			break;
		case OPT_UNTIL:
			rc = check_time("--until", optarg, until);
			filter.until = until;
			break;
		case OPT_LIMIT:
			if (cli_parse_int(optarg, 0, INT64_MAX, &filter.limit) != 0)
				return cli_usage_error("history", "--limit: '%s' is not "
						       "a whole number", optarg);
			break;
		case OPT_ATTEMPTS:
			print.attempts = 1;
			break;
		case OPT_JSON:
			print.json = 1;
			break;
		case 'h':
			fputs(history_usage, stdout);
			return 0;
		default:
			return cli_usage_error("history", "bad option");
		}
	}
	if (rc != 0)
		return rc;
	if (cli_operands("history", argc, argv, optind, 1, &db) != 0)
		return EXIT_USAGE;
	if (store_open(db, STORE_OPEN_EXISTING, &print.store, err, sizeof(err))
	    != STORE_OK)
		return cli_runtime_error("history", "%s", err);
	rc = store_history(print.store, &filter, print_row, &print);
	if (rc != STORE_OK || print.failed) {
		rc = cli_runtime_error("history", "%s", store_errmsg(print.store));
		goto out;
	}
	if (print.json)
		printf("%s]\n", print.printed ? "\n" : "[");
	else if (print.printed == 0)
		fprintf(stderr, "no events match\n");
	rc = 0;
out:
	store_close(print.store);
	return rc;
}
