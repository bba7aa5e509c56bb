/*
 * bench_ceiling.c - what the machine can do without a database: N POSTs of
 * the benchmark's bodies to URL through the relay's own transfer pool, with
 * up to CONCURRENCY in flight, and nothing else.
 *
 *   bench_ceiling URL N [CONCURRENCY]
 * The bodies are rendered before the clock starts, with the documented JSON
 * template, so the figure is the HTTP path alone. Prints one line:
 * "sent N delivered D seconds S rate R" (R: deliveries per second).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"
#include "timeutil.h"
#include "transfer.h"

#define DISTINCT_BODIES 1024

static const char parties[] =
	"[{\"username\":\"eric\",\"device\":\"erics_iphone\"},"
	"{\"username\":\"madelaine\",\"device\":\"madelaines_android\"}]";

struct bodies {
	char *text[DISTINCT_BODIES];
	size_t len[DISTINCT_BODIES];
};

static int bodies_render(struct bodies *b, char *err, size_t errlen)
{
	struct render_template *tmpl = NULL;

	if (render_template_new(NULL, CONTENT_JSON, &tmpl, err, errlen) != 0)
		return -1;
	for (int i = 0; i < DISTINCT_BODIES; i++) {
		char number[32], uri[64];
		struct render_event ev = { number, "network_1", uri, parties };

		snprintf(number, sizeof(number), "+420%09d", i + 1);
		snprintf(uri, sizeof(uri), "sip:%d@pbx.example.com", i + 1);
		if (render_body(tmpl, &ev, &b->text[i], &b->len[i], err,
				errlen) != 0) {
			render_template_free(tmpl);
			return -1;
		}
	}
	render_template_free(tmpl);
	return 0;
}

static int start_one(struct transfer_pool *pool, struct transfer_endpoint *ep,
		     const struct bodies *b, int64_t n)
{
	size_t k = (size_t)(n % DISTINCT_BODIES);
	char *body = malloc(b->len[k] + 1);
	char err[TRANSFER_ERROR_SIZE];

	if (!body) {
		fprintf(stderr, "bench_ceiling: out of memory\n");
		return -1;
	}
	memcpy(body, b->text[k], b->len[k] + 1);
	if (transfer_start(pool, ep, n + 1, body, b->len[k], NULL, err,
			   sizeof(err)) != 0) {
		fprintf(stderr, "bench_ceiling: %s\n", err);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct transfer_endpoint_spec spec = {
		.content_type = "application/json",
		.timeout_ms = 15000,
	};
	struct transfer_pool_options options = { .max_transfers = 64 };
	struct transfer_endpoint *ep = NULL;
	struct transfer_pool *pool = NULL;
	struct bodies bodies;
	char err[512];
	char *end;
	int64_t total, started = 0, done = 0, delivered = 0, t0, elapsed;
	int rc = 1;

	memset(&bodies, 0, sizeof(bodies));
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: bench_ceiling URL N [CONCURRENCY]\n");
		return 2;
	}
	spec.url = argv[1];
	total = strtoll(argv[2], &end, 10);
	if (*end != '\0' || total <= 0) {
		fprintf(stderr, "bench_ceiling: N must be a positive number\n");
		return 2;
	}
	if (argc == 4) {
		options.max_transfers = (int)strtol(argv[3], &end, 10);
		if (*end != '\0' || options.max_transfers <= 0) {
			fprintf(stderr, "bench_ceiling: CONCURRENCY must be "
				"a positive number\n");
			return 2;
		}
	}
	if (bodies_render(&bodies, err, sizeof(err)) != 0 ||
	    transfer_endpoint_new(&spec, &ep, err, sizeof(err)) != 0 ||
	    transfer_pool_new(&options, &pool, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench_ceiling: %s\n", err);
		goto out;
	}
	t0 = time_mono_ms();
	while (done < total) {
		struct transfer_result result;

		while (started < total &&
		       transfer_pool_active(pool) < options.max_transfers) {
			if (start_one(pool, ep, &bodies, started) != 0)
				goto out;
			started++;
		}
		if (transfer_pool_poll(pool, 1000, NULL, 0, NULL) != 0) {
			fprintf(stderr, "bench_ceiling: transfer poll failed\n");
			goto out;
		}
		while (transfer_pool_reap(pool, &result) == 1) {
			done++;
			if (result.transport == TRANSPORT_OK &&
			    result.http_status == 204)
				delivered++;
		}
	}
	elapsed = time_mono_ms() - t0;
	if (elapsed < 1)
		elapsed = 1;
	printf("sent %" PRId64 " delivered %" PRId64 " seconds %.3f rate %.0f\n",
	       total, delivered, (double)elapsed / 1000.0,
	       (double)delivered * 1000.0 / (double)elapsed);
	rc = delivered == total ? 0 : 1;
out:
	transfer_pool_free(pool);
	transfer_endpoint_unref(ep);
	for (int i = 0; i < DISTINCT_BODIES; i++)
		free(bodies.text[i]);
	return rc;
}
