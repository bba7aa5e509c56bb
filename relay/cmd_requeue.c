/*
 * cmd_requeue.c - `smartrelay requeue DB`: failed events back to pending,
 * due now, each with a fresh budget of --max-attempts (contract 7.8).
 *
 * Only failed events move (the schema allows no other way back), and a bare
 * requeue is refused: it takes --id or an explicit --status failed. The work
 * goes in batches, one transaction each, so a running relay is never held
 * up for long.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "progress.h"
#include "render.h"
#include "store.h"
#include "timeutil.h"

#define REQUEUE_BATCH 1000

static const char requeue_usage[] =
	"Usage: smartrelay requeue DB (--id N | --status failed) [OPTIONS]\n"
	"Puts failed events back to pending, due now. attempts keeps counting;\n"
	"each event gets a fresh budget of --max-attempts. http_status and\n"
	"error keep describing the last attempt until the next one.\n\n"
	"  --id N           this event only (it must be failed)\n"
	"  --status failed  every failed event (narrowed by the options below);\n"
	"                   failed is the only status that can be requeued\n"
	"  --cloud-id C     only this app's events\n"
	"  --since TIME     only events that failed at or after TIME (UTC,\n"
	"                   YYYY-MM-DD[THH:MM[:SS]])\n"
	"  --dry-run        print how many would be requeued; change nothing\n"
	"  --json           print {\"requeued\":N} ({\"would_requeue\":N})\n";

enum {
	OPT_ID = 256, OPT_STATUS, OPT_CLOUD_ID, OPT_SINCE, OPT_DRY_RUN,
	OPT_JSON,
};

static int print_count(const char *name, int64_t count, int json)
{
	struct render_field field = { name, RENDER_VALUE_INT, count, NULL };
	char *record;

	if (!json) {
		printf("%s %" PRId64 " event%s\n", strcmp(name, "requeued") == 0
		       ? "requeued" : "would requeue", count, count == 1 ? "" : "s");
		return 0;
	}
	record = render_json_record(&field, 1);
	if (record == NULL)
		return cli_runtime_error("requeue", "out of memory");
	printf("%s\n", record);
	free(record);
	return 0;
}

static int requeue_all(struct store *store, const struct requeue_filter *filter,
		       int64_t *requeued)
{
	struct progress progress;
	int64_t total = 0, max_id = 0, after = 0, n = 0;
	int rc = STORE_OK;

	*requeued = 0;
	rc = store_max_event_id(store, &max_id);
	/* The total only feeds the display: count only for a terminal. */
	if (rc == STORE_OK && isatty(STDERR_FILENO))
		rc = store_requeue_count(store, filter, &total);
	if (rc != STORE_OK)
		return rc;
	progress_start(&progress, STDERR_FILENO, "requeued", total,
		       REQUEUE_BATCH);
	do {
		rc = store_requeue_batch(store, filter, after, max_id,
					 REQUEUE_BATCH, &n, &after);
		if (rc == STORE_OK)
			*requeued += n;
		progress_update(&progress, *requeued);
	} while (rc == STORE_OK && n == REQUEUE_BATCH);
	progress_end(&progress);
	return rc;
}

int cmd_requeue(int argc, char **argv)
{
	static const struct option options[] = {
		{ "id", required_argument, NULL, OPT_ID },
		{ "status", required_argument, NULL, OPT_STATUS },
		{ "cloud-id", required_argument, NULL, OPT_CLOUD_ID },
		{ "since", required_argument, NULL, OPT_SINCE },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct requeue_filter filter = { 0 };
	struct store *store = NULL;
	char since[TIME_TEXT_SIZE], err[512];
	int64_t ms, count = 0;
	int c, by_status = 0, dry_run = 0, json = 0, rc;
	const char *db;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case OPT_ID:
			if (cli_parse_int(optarg, 1, INT64_MAX, &filter.id) != 0)
				return cli_usage_error("requeue", "--id: '%s' is not "
						       "an event id", optarg);
			break;
		case OPT_STATUS:
			if (strcmp(optarg, "failed") != 0)
				return cli_usage_error("requeue", "--status: only "
						       "failed events can be requeued, "
						       "not '%s'", optarg);
			by_status = 1;
			break;
		case OPT_CLOUD_ID:
			filter.cloud_id = optarg;
			break;
		case OPT_SINCE:
			if (time_parse(optarg, &ms) != 0)
				return cli_usage_error("requeue", "--since: '%s' is "
						       "not a time (YYYY-MM-DD[THH:MM"
						       "[:SS[.SSS]]][Z], UTC)", optarg);
			time_format(ms, since);
			filter.since = since;
			break;
		case OPT_DRY_RUN:
			dry_run = 1;
			break;
		case OPT_JSON:
			json = 1;
			break;
		case 'h':
			fputs(requeue_usage, stdout);
			return 0;
		default:
			return cli_usage_error("requeue", "bad option");
		}
	}
	if (cli_operands("requeue", argc, argv, optind, 1, &db) != 0)
		return EXIT_USAGE;
	/* Requeueing everything by accident would resend a day of failures. */
	if (filter.id == 0 && !by_status)
		return cli_usage_error("requeue", "say which events: --id N, or "
				       "--status failed for every failed one");
	if (store_open(db, STORE_OPEN_EXISTING, &store, err, sizeof(err))
	    != STORE_OK)
		return cli_runtime_error("requeue", "%s", err);
	if (dry_run)
		rc = store_requeue_count(store, &filter, &count);
	else
		rc = requeue_all(store, &filter, &count);
	if (rc != STORE_OK) {
		rc = cli_runtime_error("requeue", "%s (%" PRId64 " requeued "
				       "before it)", store_errmsg(store), count);
		goto out;
	}
	if (filter.id != 0 && count == 0) {
		rc = cli_runtime_error("requeue", "event %" PRId64 " is not a "
				       "failed event%s", filter.id,
				       filter.cloud_id || filter.since
				       ? " matching --cloud-id/--since" : "");
		goto out;
	}
	rc = print_count(dry_run ? "would_requeue" : "requeued", count, json);
out:
	store_close(store);
	return rc;
}
