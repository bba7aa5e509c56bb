/*
 * cmd_copy.c - `smartrelay copy SRC DST`: the pending events of one outbox
 * copied into another, each under its own id, so that an outbox can move
 * from SQLite to PostgreSQL (or between any two databases).
 *
 * SRC is only read. A rerun is safe: an id that DST holds with the same
 * producer's columns is left alone, one that DST holds with another event
 * is a conflict, reported and not copied (exit 1), and the rest go on. The
 * events go in batches, one DST transaction each; a batch that DST refuses
 * is tried again event by event, so that one bad event stops no other.
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

#define COPY_BATCH 1000

static const char copy_usage[] =
	"Usage: smartrelay copy SRC DST [OPTIONS]\n"
	"Copies the pending events of the outbox SRC into the outbox DST (made\n"
	"by smartrelay init), each with its own id, as pending: moves an SQLite\n"
	"outbox to PostgreSQL, say. SRC is only read. Sending events count as\n"
	"pending, due now; attempts, the retry budget, the next attempt time\n"
	"and the last attempt's outcome come along. Delivered and failed events\n"
	"and the attempt log stay in SRC.\n"
	"Safe to rerun: an event whose id DST holds already with the same\n"
	"content is left alone (already there); an id that DST holds with\n"
	"another event is a conflict: reported, not copied, exit 1.\n\n"
	"  --cloud-id C   only this app's events (and config rows)\n"
	"  --config       also copy the config rows DST does not have; a key\n"
	"                 DST has keeps its value\n"
	"  --batch N      events per DST transaction (1000)\n"
	"  --dry-run      print what a copy would do; change nothing\n"
	"  --json         print {\"copied\":N,\"already_there\":N,\"conflicts\":N}\n"
	"                 ({\"would_copy\":N,...}; with --config also\n"
	"                 \"config_copied\":N,\"config_kept\":N)\n";

enum {
	OPT_CLOUD_ID = 256, OPT_CONFIG, OPT_BATCH, OPT_DRY_RUN, OPT_JSON,
};

struct copy_options {
	const char *cloud_id;
	size_t batch;
	int dry_run;
};

struct copied {
	int64_t events[3];   /* indexed by enum copy_outcome */
	int64_t problems;    /* events reported and not copied */
	int64_t config_copied;
	int64_t config_kept;
};

/* One line per event not copied; the first ends the progress display. */
static void report(struct progress *progress, const char *line)
{
	progress_end(progress);
	fprintf(stderr, "smartrelay copy: %s\n", line);
}

/*
 * Writes n events, all in one transaction; when DST refuses the batch,
 * each alone, so that only the events it refuses stay behind, each
 * reported (refused[i] set). An event alone that fails while DST still
 * answers a read is the event's fault; otherwise DST's, and its error is
 * returned.
 */
static int copy_batch(struct store *dst, const struct copy_event *events,
		      size_t n, int dry_run, struct copy_result *results,
		      unsigned char *refused, struct progress *progress,
		      struct copied *done)
{
	char cause[600];
	int64_t top;
	int rc;

	memset(refused, 0, n);
	rc = store_copy_write(dst, events, n, dry_run, results);
	if (rc != STORE_ERROR)
		return rc;
	for (size_t i = 0; i < n; i++) {
		rc = store_copy_write(dst, &events[i], 1, dry_run, &results[i]);
		if (rc == STORE_OK)
			continue;
		if (rc == STORE_BUSY)
			return rc;
		snprintf(cause, sizeof cause, "%s; not copied",
			 store_errmsg(dst));
		rc = store_max_event_id(dst, &top);
		if (rc != STORE_OK)
			return rc;
		refused[i] = 1;
		done->problems++;
		report(progress, cause);
	}
	return STORE_OK;
}

/* Tallies a written batch and reports its conflicts. */
static void copy_tally(const struct copy_event *events,
		       const struct copy_result *results,
		       const unsigned char *refused, size_t n,
		       struct progress *progress, struct copied *done)
{
	char line[256];

	for (size_t i = 0; i < n; i++) {
		if (refused[i])
			continue;
		done->events[results[i].outcome]++;
		if (results[i].outcome != COPY_CONFLICT)
			continue;
		snprintf(line, sizeof line, "event %" PRId64 ": DST holds "
			 "another event under this id (its %s differs); not "
			 "copied", events[i].id, results[i].differs);
		report(progress, line);
	}
}

/*
 * A field cut short by a NUL byte would copy another event: such events
 * are reported and moved to the end of events, to stay behind. Returns how
 * many remain in front.
 */
static size_t set_aside_unreadable(struct copy_event *events, size_t n,
				   struct progress *progress,
				   struct copied *done)
{
	char line[128];
	size_t good = n;

	for (size_t i = 0; i < good;) {
		struct copy_event bad = events[i];

		if (bad.nul_field == NULL) {
			i++;
			continue;
		}
		snprintf(line, sizeof line, "event %" PRId64 ": its %s holds a "
			 "NUL byte; not copied", bad.id, bad.nul_field);
		done->problems++;
		report(progress, line);
		good--;
		events[i] = events[good];
		events[good] = bad;
	}
	return good;
}

struct depth_sum {
	const char *cloud_id;   /* NULL: every one */
	int64_t total;
};

static int sum_depth(const struct queue_depth *depth, void *arg)
{
	struct depth_sum *sum = arg;

	if (sum->cloud_id == NULL || strcmp(sum->cloud_id, depth->cloud_id) == 0)
		sum->total += depth->count;
	return 0;
}

/* Copies every pending event of src after the last id done so far. */
static int copy_events(struct store *src, struct store *dst,
		       const struct copy_options *opt, struct copied *done,
		       struct store **failed)
{
	struct depth_sum sum = { opt->cloud_id, 0 };
	struct copy_result *results = NULL;
	struct copy_event *events = NULL;
	unsigned char *refused = NULL;
	struct progress progress;
	int64_t after = 0, seen = 0;
	size_t n = 0;
	int rc = STORE_OK;

	*failed = src;
	/* The total only feeds the display: count only for a terminal. */
	if (isatty(STDERR_FILENO))
		rc = store_queue_depth(src, SIZE_MAX, sum_depth, &sum);
	if (rc != STORE_OK)
		return rc;
	results = calloc(opt->batch, sizeof *results);
	refused = calloc(opt->batch, 1);
	if (results == NULL || refused == NULL) {
		free(results);
		free(refused);
		*failed = NULL;
		return STORE_ERROR;
	}
	progress_start(&progress, STDERR_FILENO, opt->dry_run ? "looked at"
		       : "copied", sum.total, (int64_t)opt->batch);
	do {
		size_t good;

		*failed = src;
		rc = store_copy_read(src, opt->cloud_id, after, opt->batch,
				     &events, &n);
		if (rc != STORE_OK || n == 0)
			break;
		after = events[n - 1].id;
		good = set_aside_unreadable(events, n, &progress, done);
		*failed = dst;
		rc = copy_batch(dst, events, good, opt->dry_run, results,
				refused, &progress, done);
		if (rc == STORE_OK)
			copy_tally(events, results, refused, good, &progress,
				   done);
		store_copy_events_free(events, n);
		events = NULL;
		seen += (int64_t)n;
		progress_update(&progress, seen);
	} while (rc == STORE_OK && n == opt->batch);
	progress_end(&progress);
	free(refused);
	free(results);
	return rc;
}

/* The config rows of src that dst lacks, copied; those it has stay. */
static int copy_config(struct store *src, struct store *dst,
		       const struct copy_options *opt, struct copied *done,
		       struct store **failed)
{
	struct config_row *from = NULL, *to = NULL;
	size_t nfrom = 0, nto = 0;
	int rc;

	*failed = src;
	rc = store_config_list(src, opt->cloud_id, &from, &nfrom);
	if (rc == STORE_OK) {
		*failed = dst;
		rc = store_config_list(dst, opt->cloud_id, &to, &nto);
	}
	for (size_t i = 0; i < nfrom && rc == STORE_OK; i++) {
		int present = 0;

		for (size_t j = 0; j < nto && !present; j++)
			present = strcmp(from[i].cloud_id, to[j].cloud_id) == 0
				  && strcmp(from[i].key, to[j].key) == 0;
		if (present) {
			done->config_kept++;
			continue;
		}
		if (from[i].value_has_nul) {
			fprintf(stderr, "smartrelay copy: config %s of cloud_id=%s"
				" holds a NUL byte; not copied\n", from[i].key,
				from[i].cloud_id);
			done->problems++;
			continue;
		}
		if (!opt->dry_run)
			rc = store_config_set(dst, from[i].cloud_id, from[i].key,
					      from[i].value);
		if (rc == STORE_OK)
			done->config_copied++;
	}
	store_config_rows_free(to, nto);
	store_config_rows_free(from, nfrom);
	return rc;
}

static int print_copied(const struct copied *done, int dry_run, int config,
			int json)
{
	const struct render_field fields[] = {
		{ dry_run ? "would_copy" : "copied", RENDER_VALUE_INT,
		  done->events[COPY_ADDED], NULL },
		{ "already_there", RENDER_VALUE_INT, done->events[COPY_PRESENT],
		  NULL },
		{ "conflicts", RENDER_VALUE_INT, done->events[COPY_CONFLICT],
		  NULL },
		{ dry_run ? "config_would_copy" : "config_copied",
		  RENDER_VALUE_INT, done->config_copied, NULL },
		{ "config_kept", RENDER_VALUE_INT, done->config_kept, NULL },
	};
	char *record;

	if (!json) {
		printf("%s %" PRId64 " event%s, %" PRId64 " already there, %"
		       PRId64 " conflict%s\n", dry_run ? "would copy" : "copied",
		       done->events[COPY_ADDED],
		       done->events[COPY_ADDED] == 1 ? "" : "s",
		       done->events[COPY_PRESENT], done->events[COPY_CONFLICT],
		       done->events[COPY_CONFLICT] == 1 ? "" : "s");
		if (config)
			printf("%s %" PRId64 " config row%s, kept %" PRId64
			       " that DST has\n", dry_run ? "would copy"
			       : "copied", done->config_copied,
			       done->config_copied == 1 ? "" : "s",
			       done->config_kept);
		return 0;
	}
	record = render_json_record(fields, config ? 5 : 3);
	if (record == NULL)
		return cli_runtime_error("copy", "out of memory");
	printf("%s\n", record);
	free(record);
	return 0;
}

int cmd_copy(int argc, char **argv)
{
	static const struct option options[] = {
		{ "cloud-id", required_argument, NULL, OPT_CLOUD_ID },
		{ "config", no_argument, NULL, OPT_CONFIG },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct copy_options opt = { NULL, COPY_BATCH, 0 };
	struct copied done;
	struct store *src = NULL, *dst = NULL, *failed = NULL;
	char err[512], shown[256];
	const char *dbs[2];
	int64_t batch = COPY_BATCH;
	int c, config = 0, json = 0, rc;

	memset(&done, 0, sizeof done);
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case OPT_CLOUD_ID:
			opt.cloud_id = optarg;
			break;
		case OPT_CONFIG:
			config = 1;
			break;
		case OPT_BATCH:
			if (cli_parse_int(optarg, 1, 100000, &batch) != 0)
				return cli_usage_error("copy", "--batch: '%s' is not "
						       "a whole number from 1 to 100000",
						       optarg);
			opt.batch = (size_t)batch;
			break;
		case OPT_DRY_RUN:
			opt.dry_run = 1;
			break;
		case OPT_JSON:
			json = 1;
			break;
		case 'h':
			fputs(copy_usage, stdout);
			return 0;
		default:
			return cli_usage_error("copy", "bad option");
		}
	}
	if (cli_operands("copy", argc, argv, optind, 2, dbs) != 0)
		return EXIT_USAGE;
	if (strcmp(dbs[0], dbs[1]) == 0)
		return cli_usage_error("copy", "SRC and DST are the same "
				       "database");
	if (store_open(dbs[0], STORE_OPEN_EXISTING, &src, err, sizeof(err))
	    != STORE_OK)
		return cli_runtime_error("copy", "SRC: %s", err);
	if (store_open(dbs[1], STORE_OPEN_EXISTING, &dst, err, sizeof(err))
	    != STORE_OK) {
		rc = cli_runtime_error("copy", "DST: %s", err);
		goto out;
	}
	/* The config first: the events find their endpoints when a relay
	 * starts on DST while the copy still runs. */
	rc = config ? copy_config(src, dst, &opt, &done, &failed) : STORE_OK;
	if (rc == STORE_OK)
		rc = copy_events(src, dst, &opt, &done, &failed);
	if (rc != STORE_OK && failed == NULL) {
		rc = cli_runtime_error("copy", "out of memory");
		goto out;
	}
	if (rc != STORE_OK) {
		store_display_name(dbs[failed == src ? 0 : 1], shown,
				   sizeof shown);
		rc = cli_runtime_error("copy", "%s: %s (%" PRId64 " events "
				       "copied before it; a rerun goes on)",
				       shown, store_errmsg(failed),
				       done.events[COPY_ADDED]);
		goto out;
	}
	rc = print_copied(&done, opt.dry_run, config, json);
	if (rc == 0 && (done.problems > 0 || done.events[COPY_CONFLICT] > 0))
		rc = EXIT_RUNTIME;
out:
	store_close(dst);
	store_close(src);
	return rc;
}
