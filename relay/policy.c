/*
 * policy.c - verdicts and retry delays, as pure functions.
 *
 * Two tables decide what an attempt meant: one per transport class, one per
 * HTTP status (anything not listed fails). The backoff is integer arithmetic
 * that cannot overflow whatever the attempt number, then a jitter factor.
 */
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

static const char *const transport_names[TRANSPORT__COUNT] = {
	[TRANSPORT_OK] = "ok",
	[TRANSPORT_CONNECT] = "connect",
	[TRANSPORT_DNS] = "dns",
	[TRANSPORT_TLS] = "tls",
	[TRANSPORT_TIMEOUT] = "timeout",
	[TRANSPORT_RESET] = "reset",
	[TRANSPORT_OTHER] = "other",
};

static const char *const verdict_names[] = {
	[VERDICT_DELIVERED] = "delivered",
	[VERDICT_RETRY] = "retry",
	[VERDICT_FAIL] = "fail",
	[VERDICT_GONE] = "gone",
};

/*
 * Every transport failure is transient: the request may not even have
 * reached the receiver. TRANSPORT_OK defers to the status table.
 */
static const enum verdict transport_verdicts[TRANSPORT__COUNT] = {
	[TRANSPORT_OK] = VERDICT_FAIL, /* unused: decided by the status */
	[TRANSPORT_CONNECT] = VERDICT_RETRY,
	[TRANSPORT_DNS] = VERDICT_RETRY,
	[TRANSPORT_TLS] = VERDICT_RETRY,
	[TRANSPORT_TIMEOUT] = VERDICT_RETRY,
	[TRANSPORT_RESET] = VERDICT_RETRY,
	[TRANSPORT_OTHER] = VERDICT_RETRY,
};

struct status_verdict {
	long status;
	enum verdict verdict;
};

/* Statuses with a verdict other than VERDICT_FAIL (contract section 4). */
static const struct status_verdict status_verdicts[] = {
	{ 204, VERDICT_DELIVERED },
	{ 408, VERDICT_RETRY },
	{ 410, VERDICT_GONE },
	{ 429, VERDICT_RETRY },
	{ 500, VERDICT_RETRY },
	{ 502, VERDICT_RETRY },
	{ 503, VERDICT_RETRY },
	{ 504, VERDICT_RETRY },
};

const char *policy_transport_name(enum transport transport)
{
	if ((int)transport < 0 || transport >= TRANSPORT__COUNT)
		return "unknown";
	return transport_names[transport];
}

const char *policy_verdict_name(enum verdict verdict)
{
	size_t n = sizeof(verdict_names) / sizeof(verdict_names[0]);

	if ((int)verdict < 0 || (size_t)verdict >= n)
		return "unknown";
	return verdict_names[verdict];
}

enum verdict policy_classify(enum transport transport, long http_status)
{
	size_t n = sizeof(status_verdicts) / sizeof(status_verdicts[0]);
	size_t i;

	/* A value outside the enum is a broken caller; failing the event is
	 * the only answer that cannot loop forever. */
	if ((int)transport < 0 || transport >= TRANSPORT__COUNT)
		return VERDICT_FAIL;
	if (transport != TRANSPORT_OK)
		return transport_verdicts[transport];
	for (i = 0; i < n; i++)
		if (status_verdicts[i].status == http_status)
			return status_verdicts[i].verdict;
	return VERDICT_FAIL;
}

/* base * 2^(attempt-1), capped at max, without ever overflowing. */
static int64_t backoff_exponential(int64_t base, int64_t max, int64_t attempt)
{
	int64_t shift = attempt - 1;

	if (base == 0)
		return 0;
	/* base >= 1, so base * 2^63 exceeds any int64: stop there, before
	 * the shift itself is undefined, and test through a right shift of
	 * max instead of a left shift of base. */
	if (shift >= 63 || base > (max >> shift))
		return max;
	return base << shift;
}

int64_t policy_backoff(const struct backoff *settings, int64_t attempt,
		       int64_t retry_after_ms, double unit)
{
	int64_t base = settings->base_ms > 0 ? settings->base_ms : 0;
	int64_t max = settings->max_ms > 0 ? settings->max_ms : 0;
	int64_t delay;
	int64_t floor_ms;
	double jittered;

	/* max bounds every delay, so a base above it is cut down to it. */
	if (base > max)
		base = max;
	if (attempt < 1)
		attempt = 1;
	/* unit is meant to be in [0, 1); a NaN or a stray value must not
	 * push the factor out of [0.75, 1.25). */
	if (!(unit >= 0.0))
		unit = 0.0;
	if (unit >= 1.0)
		unit = 0.0;

	delay = backoff_exponential(base, max, attempt);
	jittered = (double)delay * (0.75 + 0.5 * unit);
	/* Compared as doubles first: the conversion back is only defined
	 * below (double)INT64_MAX. */
	if (jittered >= (double)max)
		delay = max;
	else
		delay = (int64_t)jittered;

	if (retry_after_ms >= 0) {
		floor_ms = retry_after_ms < max ? retry_after_ms : max;
		if (delay < floor_ms)
			delay = floor_ms;
	}
	return delay;
}
