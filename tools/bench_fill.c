/*
 * bench_fill.c - the benchmark's producer: creates an outbox and fills it.
 *
 *   bench_fill DB URL                      only create and provision
 *   bench_fill DB URL --count N            N events, in transactions of
 *                                          BATCH events (store_enqueue_batch)
 *   bench_fill DB URL --rate R --seconds S one event per transaction, R a
 *                                          second, as a live producer would
 * The database is created (or upgraded) and app 'default' is provisioned
 * with URL and application/json, so the documented JSON template applies.
 * Every event has two interested parties, like the document's example.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "timeutil.h"

#define BATCH 10000
#define FIELD_SIZE 64

static const char parties[] =
	"[{\"username\":\"eric\",\"device\":\"erics_iphone\"},"
	"{\"username\":\"madelaine\",\"device\":\"madelaines_android\"}]";

/* The strings of one event; n makes the number and the URI unique. */
struct fields {
	char number[FIELD_SIZE];
	char uri[FIELD_SIZE];
};

static void fields_make(struct fields *f, uint64_t n, struct new_event *ev)
{
	snprintf(f->number, sizeof(f->number), "+420%09" PRIu64, n % 1000000000);
	snprintf(f->uri, sizeof(f->uri), "sip:%" PRIu64 "@pbx.example.com", n);
	ev->cloud_id = NULL;
	ev->new_smart_number = f->number;
	ev->network_id = "network_1";
	ev->new_smart_uri = f->uri;
	ev->interested_parties = parties;
}

static int fill_bulk(struct store *store, uint64_t count)
{
	struct new_event *events = calloc(BATCH, sizeof(*events));
	struct fields *fields = calloc(BATCH, sizeof(*fields));
	int64_t first = 0;
	int rc = 1;

	if (!events || !fields) {
		fprintf(stderr, "bench_fill: out of memory\n");
		goto out;
	}
	if (store_max_event_id(store, &first) != STORE_OK)
		goto fail;
	for (uint64_t done = 0; done < count;) {
		size_t n = count - done < BATCH ? (size_t)(count - done) : BATCH;

		for (size_t i = 0; i < n; i++)
			fields_make(&fields[i], (uint64_t)first + done + i + 1,
				    &events[i]);
		if (store_enqueue_batch(store, events, n, NULL) != STORE_OK)
			goto fail;
		done += n;
	}
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "bench_fill: %s\n", store_errmsg(store));
out:
	free(fields);
	free(events);
	return rc;
}

static void sleep_until_mono(int64_t when_ms)
{
	int64_t wait = when_ms - time_mono_ms();
	struct timespec ts;

	if (wait <= 0)
		return;
	ts.tv_sec = (time_t)(wait / 1000);
	ts.tv_nsec = (long)(wait % 1000) * 1000000L;
	nanosleep(&ts, NULL);
}

/* Paced by the clock, not by the sleeps, so the rate holds on a busy box. */
static int fill_paced(struct store *store, double rate, double seconds)
{
	uint64_t total = (uint64_t)(rate * seconds + 0.5);
	int64_t start = time_mono_ms(), first = 0;

	if (store_max_event_id(store, &first) != STORE_OK) {
		fprintf(stderr, "bench_fill: %s\n", store_errmsg(store));
		return 1;
	}
	for (uint64_t i = 0; i < total; i++) {
		struct new_event ev;
		struct fields f;

		sleep_until_mono(start + (int64_t)((double)i * 1000.0 / rate));
		fields_make(&f, (uint64_t)first + i + 1, &ev);
		if (store_enqueue(store, &ev, NULL) != STORE_OK) {
			fprintf(stderr, "bench_fill: %s\n", store_errmsg(store));
			return 1;
		}
	}
	return 0;
}

static int provision(struct store *store, const char *url)
{
	if (store_config_set(store, NULL, "smartContactNotificationUrl", url)
	    != STORE_OK ||
	    store_config_set(store, NULL, "smartContactNotificationContentType",
			     "application/json") != STORE_OK) {
		fprintf(stderr, "bench_fill: %s\n", store_errmsg(store));
		return 1;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench_fill DB URL\n"
		   "       bench_fill DB URL --count N\n"
		   "       bench_fill DB URL --rate R --seconds S\n");
}

static int number_arg(const char *name, const char *text, double max,
		      double *out)
{
	char *end;
	double v = strtod(text, &end);

	if (end == text || *end != '\0' || !(v > 0) || v > max) {
		fprintf(stderr, "bench_fill: --%s: a number from 0 to %.0f\n",
			name, max);
		return -1;
	}
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "count", required_argument, NULL, 'c' },
		{ "rate", required_argument, NULL, 'r' },
		{ "seconds", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	double count = 0, rate = 0, seconds = 0;
	struct store *store = NULL;
	char err[512];
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if ((ch == 'c' && number_arg("count", optarg, 1e9, &count)) ||
		    (ch == 'r' && number_arg("rate", optarg, 1e6, &rate)) ||
		    (ch == 's' && number_arg("seconds", optarg, 86400, &seconds)))
			return 2;
		if (ch == 'h') {
			usage(stdout);
			return 0;
		}
		if (ch == '?') {
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2 || (count > 0 && rate > 0) ||
	    (rate > 0) != (seconds > 0)) {
		usage(stderr);
		return 2;
	}
	if (store_open(argv[optind], STORE_OPEN_CREATE, &store, err,
		       sizeof(err)) != STORE_OK) {
		fprintf(stderr, "bench_fill: %s\n", err);
		return 1;
	}
	rc = provision(store, argv[optind + 1]);
	if (rc == 0 && count > 0)
		rc = fill_bulk(store, (uint64_t)count);
	else if (rc == 0 && rate > 0)
		rc = fill_paced(store, rate, seconds);
	store_close(store);
	return rc;
}
