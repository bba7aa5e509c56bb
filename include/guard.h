/*
 * guard.h - protection of one app's endpoint: how many requests it gets at
 * once, how many per second, and a circuit breaker.
 *
 * Pure state and arithmetic, no I/O: the caller passes a monotonic clock in
 * ms. The breaker counts consecutive transient failures; at the threshold
 * it opens: no request starts, so the app's events wait with their attempts
 * untouched, until a pause has passed; then one probe goes out. A probe that
 * fails doubles the pause (up to the maximum); any answer that is not a
 * transient failure closes the breaker.
 */
#ifndef SMARTRELAY_GUARD_H
#define SMARTRELAY_GUARD_H

#include <stddef.h>
#include <stdint.h>

#define GUARD_UNLIMITED ((size_t)-1)

struct guard_settings {
	int max_concurrency;    /* 0: no limit of its own */
	double max_rate;        /* requests per second; 0: no limit */
	int breaker_threshold;  /* consecutive transient failures; 0: no breaker */
	int64_t pause_min_ms;   /* first pause of an open breaker */
	int64_t pause_max_ms;   /* the longest pause */
};

struct guard {
	int in_flight;
	double tokens;          /* of the rate limit's bucket */
	int64_t refilled_ms;    /* INT64_MIN: never; the bucket starts full */
	int failures;           /* consecutive transient failures */
	int open;               /* the breaker is open */
	int probing;            /* the probe of an open breaker is in flight */
	int64_t pause_ms;       /* of the open breaker */
	int64_t probe_at_ms;    /* when an open breaker lets a probe through */
};

/* What a finished request changed, for the log. */
enum guard_change {
	GUARD_SAME = 0,
	GUARD_OPENED,     /* the threshold was reached */
	GUARD_REOPENED,   /* the probe failed: a longer pause */
	GUARD_CLOSED,     /* an open breaker saw an answer */
};

void guard_init(struct guard *g);

/*
 * How many requests may start now: GUARD_UNLIMITED, or a count (0 while the
 * breaker is open and its pause runs, while the probe is in flight, or while
 * a limit is reached).
 */
size_t guard_allowance(struct guard *g, const struct guard_settings *s,
		       int64_t now_ms);

/*
 * In how many ms more requests may start, when only time stands in the way
 * (a pause, the rate); 0 when they may start now; -1 when it takes a request
 * to finish first (the concurrency limit, a probe in flight).
 */
int64_t guard_wait_ms(struct guard *g, const struct guard_settings *s,
		      int64_t now_ms);

/* 1 while the breaker is open (probe or not). */
int guard_is_open(const struct guard *g);

/*
 * A request started. Returns 1 when it is the probe of an open breaker
 * (hand that back to guard_finished), else 0.
 */
int guard_started(struct guard *g, const struct guard_settings *s,
		  int64_t now_ms);

/*
 * A request finished: transient is 1 for a failure worth retrying (no
 * connection, timeout, 429, 503, ...), 0 for any other answer; probe is
 * what guard_started returned for it.
 */
enum guard_change guard_finished(struct guard *g,
				 const struct guard_settings *s,
				 int transient, int probe, int64_t now_ms);

/* A request was cancelled without an outcome (the relay is stopping). */
void guard_cancelled(struct guard *g, int probe);

#endif
