/*
 * metrics.h - the relay's numbers, served as Prometheus text at GET /metrics.
 *
 * The relay reports what happens (claims, attempts, deliveries, config
 * states, transfers in flight) through the metrics_* calls; a scrape renders
 * those together with the queue depth, read from the store at most once a
 * second. The HTTP server runs without threads inside the relay's loop:
 * metrics_fd() is one more descriptor to poll, metrics_serve() answers what
 * is ready. Every call accepts a NULL metrics (no --metrics-listen) and then
 * does nothing, so the relay calls them unconditionally.
 */
#ifndef SMARTRELAY_METRICS_H
#define SMARTRELAY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

struct metrics;
struct store;

/*
 * Checks that text is HOST:PORT ([IPV6]:PORT for an IPv6 address), PORT a
 * whole number from 0 to 65535 (0: any free port). Returns 0, or -1 with the
 * reason in err.
 */
int metrics_check_listen(const char *text, char *err, size_t errlen);

/*
 * Writes into out (outlen bytes) the address text with its port moved up by
 * offset, a port 0 staying 0: worker K of run --workers listens on PORT +
 * K - 1. Returns 0, or -1 with the reason in err (text malformed, or the
 * port then above 65535).
 */
int metrics_listen_shift(const char *text, int offset, char *out,
			 size_t outlen, char *err, size_t errlen);

/*
 * Listens on the address text (checked as above) and serves scrapes,
 * reading the queue depth from store (borrowed; it must outlive the
 * metrics). Returns 0 and a new metrics in *out, or -1 with the reason in
 * err (a name that does not resolve, an address in use).
 */
int metrics_open(const char *listen, struct store *store,
		 struct metrics **out, char *err, size_t errlen);

void metrics_close(struct metrics *metrics);

/* The port listened on (the chosen one when 0 was asked), or 0. */
int metrics_port(const struct metrics *metrics);

/* The descriptor that is readable when the server has work, or -1. */
int metrics_fd(const struct metrics *metrics);

/* wait_ms, shortened to when the server must run again at the latest. */
int metrics_wait_ms(struct metrics *metrics, int wait_ms);

/* Accepts, reads and answers whatever is ready; never blocks. */
void metrics_serve(struct metrics *metrics);

/* ---- what the relay reports --------------------------------------------- */

enum metrics_config {
	METRICS_CONFIG_OK = 0,
	METRICS_CONFIG_ERROR,    /* the options are invalid or missing */
	METRICS_CONFIG_DISABLED, /* valid, but the endpoint is disabled (410) */
};

/* The app's config was (re)loaded with this result. */
void metrics_config_state(struct metrics *metrics, const char *cloud_id,
			  enum metrics_config state);

/* count events of cloud_id were claimed for sending. */
void metrics_claimed(struct metrics *metrics, const char *cloud_id,
		     size_t count);

/*
 * One attempt ended: outcome is what it did to the event ("delivered",
 * "retry", "failed", "gone"; kept, so a string literal), transport how the
 * transfer ended, http_status the status received (0: none).
 */
void metrics_attempt(struct metrics *metrics, const char *cloud_id,
		     const char *outcome, enum transport transport,
		     long http_status);

/* An event was delivered latency_ms after its created_at. */
void metrics_delivered(struct metrics *metrics, const char *cloud_id,
		       int64_t latency_ms);

/* An event failed without a request: it could not be rendered. */
void metrics_unrenderable(struct metrics *metrics, const char *cloud_id);

/* count events whose lease had expired were taken back to pending. */
void metrics_recovered(struct metrics *metrics, int64_t count);

/* Transfers in flight now. */
void metrics_in_flight(struct metrics *metrics, int count);

/*
 * The whole exposition as a new NUL-terminated string (the caller frees
 * it), the queue depth refreshed first when older than a second; NULL when
 * out of memory. What a scrape answers; exposed for the unit test.
 */
char *metrics_render(struct metrics *metrics, size_t *len);

#endif
