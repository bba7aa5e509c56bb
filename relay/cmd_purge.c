/*
 * cmd_purge.c - `smartrelay purge DB --older-than DURATION`: deletes
 * finished events and their attempts once they are old enough.
 *
 * Age is measured from delivered_at for delivered events and from
 * last_attempt_at (else created_at) for failed ones; pending and sending
 * events are never purged (contract 7.9). Deletes go in batches, one
 * transaction each, so a running relay waits at most one batch.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "progress.h"
#include "render.h"
#include "store.h"
#include "timeutil.h"

#define PURGE_BATCH 1000

static const char purge_usage[] =
	"Usage: smartrelay purge DB --older-than DURATION [OPTIONS]\n"
	"Deletes delivered events older than DURATION (by delivered_at) and\n"
	"failed ones (by their last attempt, else by created_at), with their\n"
	"delivery_attempts. Pending and sending events are never deleted.\n\n"
	"  --older-than D   30d, 12h, 90m, 45s, 2w (a bare number is seconds)\n"
	"  --batch N        events per transaction (1000)\n"
	"  --dry-run        print how many would be deleted; change nothing\n"
	"  --json           print {\"purged\":N,\"attempts\":M}\n";

enum { OPT_OLDER_THAN = 256, OPT_BATCH, OPT_DRY_RUN, OPT_JSON };

struct purged {
	int64_t events;
	int64_t attempts;
};

static int purge_all(struct store *store, const char *cutoff, size_t batch,
		     struct purged *done)
{
	struct progress progress;
	int64_t total = 0, events = 0, attempts = 0;
	int rc = STORE_OK;

	/* The total only feeds the display: count only for a terminal. */
	if (isatty(STDERR_FILENO))
		rc = store_purge_count(store, cutoff, &total);
	if (rc != STORE_OK)
		return rc;
	progress_start(&progress, STDERR_FILENO, "purged", total,
		       (int64_t)batch);
	do {
		rc = store_purge_batch(store, cutoff, batch, &events, &attempts);
		if (rc == STORE_OK) {
			done->events += events;
			done->attempts += attempts;
		}
		progress_update(&progress, done->events);
	} while (rc == STORE_OK && events == (int64_t)batch);
	progress_end(&progress);
	return rc;
}

static int print_purged(const struct purged *done, int dry_run, int json)
{
	const struct render_field fields[] = {
		{ dry_run ? "would_purge" : "purged", RENDER_VALUE_INT,
		  done->events, NULL },
		{ "attempts", RENDER_VALUE_INT, done->attempts, NULL },
	};
	char *record;

	if (!json) {
		if (dry_run)
			printf("would purge %" PRId64 " event%s\n", done->events,
			       done->events == 1 ? "" : "s");
		else
			printf("purged %" PRId64 " event%s and %" PRId64
			       " attempt%s\n", done->events,
			       done->events == 1 ? "" : "s", done->attempts,
			       done->attempts == 1 ? "" : "s");
		return 0;
	}
	record = render_json_record(fields, dry_run ? 1 : 2);
	if (record == NULL)
		return cli_runtime_error("purge", "out of memory");
	printf("%s\n", record);
	free(record);
	return 0;
}

int cmd_purge(int argc, char **argv)
{
	static const struct option options[] = {
		{ "older-than", required_argument, NULL, OPT_OLDER_THAN },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct purged done = { 0, 0 };
	struct store *store = NULL;
	char cutoff[TIME_TEXT_SIZE], err[512];
	int64_t age_ms = -1, batch = PURGE_BATCH;
	int c, dry_run = 0, json = 0, rc;
	const char *db;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case OPT_OLDER_THAN:
			if (time_parse_duration(optarg, &age_ms) != 0)
				return cli_usage_error("purge", "--older-than: '%s' is "
						       "not a duration (30d, 12h, 90m, "
						       "45s)", optarg);
			break;
		case OPT_BATCH:
			if (cli_parse_int(optarg, 1, 100000, &batch) != 0)
				return cli_usage_error("purge", "--batch: '%s' is not "
						       "a whole number from 1 to 100000",
						       optarg);
			break;
		case OPT_DRY_RUN:
			dry_run = 1;
			break;
		case OPT_JSON:
			json = 1;
			break;
		case 'h':
			fputs(purge_usage, stdout);
			return 0;
		default:
			return cli_usage_error("purge", "bad option");
		}
	}
	if (cli_operands("purge", argc, argv, optind, 1, &db) != 0)
		return EXIT_USAGE;
	if (age_ms < 0)
		return cli_usage_error("purge", "--older-than DURATION is required");
	time_format(time_now_ms() - age_ms, cutoff);
	if (store_open(db, STORE_OPEN_EXISTING, &store, err, sizeof(err))
	    != STORE_OK)
		return cli_runtime_error("purge", "%s", err);
	if (dry_run)
		rc = store_purge_count(store, cutoff, &done.events);
	else
		rc = purge_all(store, cutoff, (size_t)batch, &done);
	if (rc != STORE_OK)
		rc = cli_runtime_error("purge", "%s (%" PRId64 " events purged "
				       "before it)", store_errmsg(store),
				       done.events);
	else
		rc = print_purged(&done, dry_run, json);
	store_close(store);
	return rc;
}
