/*
 * guard.c - per-endpoint limits and circuit breaker, as pure arithmetic.
 *
 * The rate limit is a token bucket holding one second's worth of requests
 * (at least one), so a burst never exceeds the configured rate by more than
 * a second's allowance. See guard.h for the breaker's states.
 */
#include <math.h>
#include <stdint.h>

#include "guard.h"

void guard_init(struct guard *g)
{
	*g = (struct guard){ .refilled_ms = INT64_MIN };
}

static double bucket_size(const struct guard_settings *s)
{
	return s->max_rate > 1.0 ? s->max_rate : 1.0;
}

static void refill(struct guard *g, const struct guard_settings *s,
		   int64_t now_ms)
{
	double size = bucket_size(s);

	if (s->max_rate <= 0.0 || now_ms < g->refilled_ms)
		return;
	if (g->refilled_ms == INT64_MIN) {
		g->tokens = size;
	} else {
		g->tokens += (double)(now_ms - g->refilled_ms) * s->max_rate / 1000.0;
		if (g->tokens > size)
			g->tokens = size;
	}
	g->refilled_ms = now_ms;
}

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

size_t guard_allowance(struct guard *g, const struct guard_settings *s,
		       int64_t now_ms)
{
	size_t n = GUARD_UNLIMITED;

	refill(g, s, now_ms);
	if (g->open) {
		if (g->probing || now_ms < g->probe_at_ms)
			return 0;
		n = 1;
	}
	if (s->max_concurrency > 0)
		n = min_size(n, g->in_flight >= s->max_concurrency ? 0 :
			     (size_t)(s->max_concurrency - g->in_flight));
	if (s->max_rate > 0.0)
		n = min_size(n, g->tokens < 1.0 ? 0 : (size_t)g->tokens);
	return n;
}

int64_t guard_wait_ms(struct guard *g, const struct guard_settings *s,
		      int64_t now_ms)
{
	int64_t wait = 0;

	refill(g, s, now_ms);
	if (g->open) {
		if (g->probing)
			return -1;
		if (now_ms < g->probe_at_ms)
			wait = g->probe_at_ms - now_ms;
	}
	if (s->max_concurrency > 0 && g->in_flight >= s->max_concurrency)
		return -1;
	if (s->max_rate > 0.0 && g->tokens < 1.0) {
		int64_t refill_ms = (int64_t)ceil((1.0 - g->tokens) * 1000.0 /
						  s->max_rate);

		if (refill_ms > wait)
			wait = refill_ms;
	}
	return wait;
}

int guard_is_open(const struct guard *g)
{
	return g->open;
}

int guard_started(struct guard *g, const struct guard_settings *s,
		  int64_t now_ms)
{
	refill(g, s, now_ms);
	g->in_flight++;
	if (s->max_rate > 0.0)
		g->tokens -= 1.0;
	if (g->open && !g->probing) {
		g->probing = 1;
		return 1;
	}
	return 0;
}

static void finished_one(struct guard *g, int probe)
{
	if (g->in_flight > 0)
		g->in_flight--;
	if (probe)
		g->probing = 0;
}

enum guard_change guard_finished(struct guard *g,
				 const struct guard_settings *s,
				 int transient, int probe, int64_t now_ms)
{
	finished_one(g, probe);
	if (!transient) {
		g->failures = 0;
		if (!g->open)
			return GUARD_SAME;
		g->open = 0;
		g->probing = 0;
		g->pause_ms = 0;
		return GUARD_CLOSED;
	}
	if (g->failures < INT32_MAX)
		g->failures++;
	if (g->open) {
		/* Requests that started before the breaker opened still end
		 * here; only the probe's failure lengthens the pause. */
		if (!probe)
			return GUARD_SAME;
		g->pause_ms = g->pause_ms > s->pause_max_ms / 2 ?
			      s->pause_max_ms : g->pause_ms * 2;
		g->probe_at_ms = now_ms + g->pause_ms;
		return GUARD_REOPENED;
	}
	if (s->breaker_threshold <= 0 || g->failures < s->breaker_threshold)
		return GUARD_SAME;
	g->open = 1;
	g->probing = 0;
	g->pause_ms = s->pause_min_ms < s->pause_max_ms ? s->pause_min_ms
							: s->pause_max_ms;
	g->probe_at_ms = now_ms + g->pause_ms;
	return GUARD_OPENED;
}

void guard_cancelled(struct guard *g, int probe)
{
	finished_one(g, probe);
}
