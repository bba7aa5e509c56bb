/*
 * bench_latency.c - insert-to-POST latency of the events in an outbox.
 *
 *   bench_latency DB IDS
 * For every event of DB, the time from its created_at (set by SQLite at
 * INSERT, in ms) to the first arrival of its webhook-id in the receiver's
 * --ids file IDS ("id status arrival_ms serial" per line, wall clock ms).
 * Prints one line: "events N received R p50 A p99 B max C" (ms).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "timeutil.h"

struct created {
	int64_t max_id;
	int64_t *ms;  /* by id; INT64_MIN: no such event */
	int64_t count;
	int bad;
};

static int created_each(const struct history_row *row, void *arg)
{
	struct created *c = arg;
	int64_t ms;

	if (row->id < 1 || row->id > c->max_id || !row->created_at ||
	    time_parse(row->created_at, &ms) != 0) {
		c->bad = 1;
		return 1;
	}
	c->ms[row->id] = ms;
	c->count++;
	return 0;
}

static int compare_int64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The nearest-rank percentile p (0..100) of n sorted values. */
static int64_t percentile(const int64_t *v, size_t n, double p)
{
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	return v[rank > n ? n - 1 : rank - 1];
}

int main(int argc, char **argv)
{
	struct history_filter filter = { .limit = 0 };
	struct created created = { 0, NULL, 0, 0 };
	struct store *store = NULL;
	int64_t *latency = NULL, *arrival = NULL;
	size_t n = 0;
	char err[512], line[256];
	FILE *ids = NULL;
	int rc = 1;

	if (argc != 3) {
		fprintf(stderr, "usage: bench_latency DB IDS\n");
		return 2;
	}
	if (store_open(argv[1], STORE_OPEN_EXISTING, &store, err,
		       sizeof(err)) != STORE_OK) {
		fprintf(stderr, "bench_latency: %s\n", err);
		return 1;
	}
	if (store_max_event_id(store, &created.max_id) != STORE_OK)
		goto store_failed;
	created.ms = malloc(((size_t)created.max_id + 1) * sizeof(int64_t));
	arrival = malloc(((size_t)created.max_id + 1) * sizeof(int64_t));
	latency = malloc(((size_t)created.max_id + 1) * sizeof(int64_t));
	if (!created.ms || !arrival || !latency) {
		fprintf(stderr, "bench_latency: out of memory\n");
		goto out;
	}
	for (int64_t i = 0; i <= created.max_id; i++)
		created.ms[i] = arrival[i] = INT64_MIN;
	if (store_history(store, &filter, created_each, &created) < 0)
		goto store_failed;
	if (created.bad) {
		fprintf(stderr, "bench_latency: an event has no usable "
			"created_at\n");
		goto out;
	}
	ids = fopen(argv[2], "r");
	if (!ids) {
		perror(argv[2]);
		goto out;
	}
	while (fgets(line, sizeof(line), ids)) {
		int64_t id, ms;
		int status;

		if (sscanf(line, "%" SCNd64 " %d %" SCNd64, &id, &status, &ms)
		    != 3 || id < 1 || id > created.max_id)
			continue;
		if (arrival[id] == INT64_MIN || ms < arrival[id])
			arrival[id] = ms;
	}
	for (int64_t i = 1; i <= created.max_id; i++)
		if (created.ms[i] != INT64_MIN && arrival[i] != INT64_MIN)
			latency[n++] = arrival[i] - created.ms[i];
	if (n == 0) {
		fprintf(stderr, "bench_latency: no event reached the receiver\n");
		goto out;
	}
	qsort(latency, n, sizeof(*latency), compare_int64);
	printf("events %" PRId64 " received %zu p50 %" PRId64 " p99 %" PRId64
	       " max %" PRId64 "\n", created.count, n,
	       percentile(latency, n, 50), percentile(latency, n, 99),
	       latency[n - 1]);
	rc = 0;
	goto out;
store_failed:
	fprintf(stderr, "bench_latency: %s\n", store_errmsg(store));
out:
	if (ids)
		fclose(ids);
	free(latency);
	free(arrival);
	free(created.ms);
	store_close(store);
	return rc;
}
