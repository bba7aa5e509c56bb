/*
 * timeutil.c - clocks, the contract's timestamp text, and durations.
 *
 * Formatting goes through gmtime_r and strftime, parsing through strptime
 * and timegm; only the millisecond fraction is handled here.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timeutil.h"

int64_t time_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The relay formats the same second over and over (two times per outcome,
 * one per log line), so the text up to the seconds is kept for the last
 * two seconds formatted (a claim's lease end, a retry's due time, fall in
 * another second than the log's "now"); a process is one thread, hence
 * the static cache.
 */
struct time_head {
	int64_t secs;
	size_t len;
	char text[TIME_TEXT_SIZE];
};

void time_format(int64_t ms, char out[TIME_TEXT_SIZE])
{
	static struct time_head heads[2] = { { INT64_MIN, 0, "" },
					     { INT64_MIN, 0, "" } };
	static unsigned next;
	/* Floor division, so that times before 1970 still format. */
	int64_t secs = ms / 1000 - (ms % 1000 < 0);
	int millis = (int)(ms - secs * 1000);
	struct time_head *head = NULL;

	for (size_t i = 0; i < 2; i++)
		if (heads[i].secs == secs)
			head = &heads[i];
	if (head == NULL) {
		time_t t = (time_t)secs;
		struct tm tm;

		head = &heads[next++ % 2];
		if (!gmtime_r(&t, &tm) ||
		    strftime(head->text, sizeof(head->text),
			     "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
			head->secs = INT64_MIN;
			snprintf(out, TIME_TEXT_SIZE, "%s",
				 "0000-00-00T00:00:00.000Z");
			return;
		}
		head->len = strnlen(head->text, 19);
		head->secs = secs;
	}
	memcpy(out, head->text, head->len);
	out[head->len] = '.';
	out[head->len + 1] = (char)('0' + millis / 100);
	out[head->len + 2] = (char)('0' + millis / 10 % 10);
	out[head->len + 3] = (char)('0' + millis % 10);
	out[head->len + 4] = 'Z';
	out[head->len + 5] = '\0';
}

int time_parse(const char *text, int64_t *ms)
{
	static const char *const formats[] = {
		"%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
		"%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d",
	};
	size_t i;

	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		struct tm tm;
		const char *rest;
		int64_t millis = 0;

		memset(&tm, 0, sizeof(tm));
		rest = strptime(text, formats[i], &tm);
		if (!rest)
			continue;
		if (*rest == '.') {
			int digits = 0, scale = 100;

			for (rest++; isdigit((unsigned char)*rest); rest++) {
				if (digits++ < 3)
					millis += (*rest - '0') * scale;
				scale /= 10;
			}
			if (digits == 0)
				continue;
		}
		if (*rest == 'Z')
			rest++;
		if (*rest != '\0')
			continue;
		{
			/* timegm() normalises (Feb 30 is Mar 2): refuse what
			 * does not come back as it was written. */
			struct tm back, wanted = tm;
			time_t t = timegm(&tm);

			if (!gmtime_r(&t, &back) || back.tm_mday != wanted.tm_mday ||
			    back.tm_mon != wanted.tm_mon ||
			    back.tm_year != wanted.tm_year ||
			    back.tm_hour != wanted.tm_hour ||
			    back.tm_min != wanted.tm_min ||
			    back.tm_sec != wanted.tm_sec)
				return -1;
			*ms = (int64_t)t * 1000 + millis;
		}
		return 0;
	}
	return -1;
}

int time_parse_seconds(const char *text, int64_t max_ms, int64_t *ms)
{
	char *end;
	double secs;
	int dots = 0, digits = 0;

	/* Digits with at most one point: strtod alone would also take
	 * "1e3", "0x10" and "inf". */
	for (const char *p = text; p && *p; p++) {
		if (*p == '.')
			dots++;
		else if (isdigit((unsigned char)*p))
			digits++;
		else
			return -1;
	}
	if (!text || digits == 0 || dots > 1)
		return -1;
	errno = 0;
	secs = strtod(text, &end);
	if (errno || end == text || *end != '\0' || !isfinite(secs) ||
	    secs < 0 || secs * 1000.0 > (double)max_ms)
		return -1;
	*ms = (int64_t)llround(secs * 1000.0);
	return 0;
}

int time_parse_duration(const char *text, int64_t *ms)
{
	static const struct {
		char suffix;
		int64_t unit_ms;
	} units[] = {
		{ 's', 1000 }, { 'm', 60 * 1000 }, { 'h', 3600 * 1000 },
		{ 'd', 24 * 3600 * 1000 }, { 'w', 7 * 24 * 3600 * 1000 },
	};
	char number[32];
	size_t len = text ? strlen(text) : 0;
	int64_t unit_ms = 1000, value_ms;
	size_t i;

	if (len == 0 || len >= sizeof(number))
		return -1;
	memcpy(number, text, len + 1);
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (number[len - 1] == units[i].suffix) {
			unit_ms = units[i].unit_ms;
			number[--len] = '\0';
			break;
		}
	}
	/* A hundred years is plenty, and keeps the product in range. */
	if (time_parse_seconds(number, (int64_t)100 * 366 * 24 * 3600 * 1000,
			       &value_ms) != 0)
		return -1;
	*ms = value_ms / 1000 * unit_ms + value_ms % 1000 * unit_ms / 1000;
	return 0;
}
