/*
 * policy.h - what an attempt's result means, and when to try again.
 *
 * Pure functions, no I/O: classification maps (transport result, HTTP status)
 * to a verdict through one table; backoff maps (attempt number, settings,
 * Retry-After, a random number) to the delay before the next attempt.
 */
#ifndef SMARTRELAY_POLICY_H
#define SMARTRELAY_POLICY_H

#include <stdint.h>

/* How the transfer ended, independent of libcurl's codes. */
enum transport {
	TRANSPORT_OK = 0,   /* a complete HTTP response status was received */
	TRANSPORT_CONNECT,  /* connection refused or unreachable */
	TRANSPORT_DNS,      /* host name did not resolve */
	TRANSPORT_TLS,      /* TLS handshake or certificate failure */
	TRANSPORT_TIMEOUT,  /* the request's time ran out */
	TRANSPORT_RESET,    /* connection reset or closed mid-exchange */
	TRANSPORT_OTHER,    /* anything else that kept a response from arriving */
	TRANSPORT__COUNT
};

enum verdict {
	VERDICT_DELIVERED = 0, /* HTTP 204: the only success */
	VERDICT_RETRY,         /* transient: try again later while budget lasts */
	VERDICT_FAIL,          /* final failure of this event */
	VERDICT_GONE,          /* HTTP 410: fail it and disable the endpoint */
};

/* Short lower-case name of a transport result, e.g. "timeout". */
const char *policy_transport_name(enum transport transport);

/* Short lower-case name of a verdict, e.g. "retry". */
const char *policy_verdict_name(enum verdict verdict);

/*
 * The verdict for one attempt. http_status is ignored unless transport is
 * TRANSPORT_OK. 204 delivers; 408, 429, 500, 502, 503, 504 and every
 * transport failure retry; 410 is VERDICT_GONE; every other status fails.
 */
enum verdict policy_classify(enum transport transport, long http_status);

struct backoff {
	int64_t base_ms; /* delay before the first retry */
	int64_t max_ms;  /* no single delay is longer */
};

/*
 * Delay in ms before the retry that follows attempt number `attempt` (1 for
 * the first attempt): base * 2^(attempt-1), capped at max, times a jitter
 * factor in [0.75, 1.25) drawn from unit (a number in [0, 1)), then kept
 * within [min(retry_after, max), max]. retry_after_ms < 0 means none was
 * given.
 */
int64_t policy_backoff(const struct backoff *settings, int64_t attempt,
		       int64_t retry_after_ms, double unit);

#endif
