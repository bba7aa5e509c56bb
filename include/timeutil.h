/*
 * timeutil.h - wall-clock time as the database sees it, and durations.
 *
 * Times travel through the program as int64 milliseconds since the Unix
 * epoch (UTC) and reach the database as text in the one format of the
 * contract, "YYYY-MM-DDTHH:MM:SS.SSSZ", which sorts and compares as text.
 */
#ifndef SMARTRELAY_TIMEUTIL_H
#define SMARTRELAY_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Room for "YYYY-MM-DDTHH:MM:SS.SSSZ" and its NUL. */
#define TIME_TEXT_SIZE 25

/* Milliseconds since the epoch, from CLOCK_REALTIME. */
int64_t time_now_ms(void);

/* Milliseconds from CLOCK_MONOTONIC, for measuring durations only. */
int64_t time_mono_ms(void);

/* Formats ms as "YYYY-MM-DDTHH:MM:SS.SSSZ" into out (TIME_TEXT_SIZE bytes). */
void time_format(int64_t ms, char out[TIME_TEXT_SIZE]);

/*
 * Parses the contract format, or a prefix of it: "YYYY-MM-DD",
 * "YYYY-MM-DDTHH:MM", "YYYY-MM-DDTHH:MM:SS" (a space may stand for the T,
 * the Z and the fraction are optional). Returns 0 and sets *ms, or -1.
 */
int time_parse(const char *text, int64_t *ms);

/*
 * Parses a non-negative number of seconds, fractions allowed ("0.05", "15")
 * into milliseconds. Returns 0, or -1 when text is not such a number or
 * exceeds max_ms.
 */
int time_parse_seconds(const char *text, int64_t max_ms, int64_t *ms);

/*
 * Parses a duration with a unit suffix: "30d", "12h", "90m", "45s" (a bare
 * number is seconds). Returns 0 and sets *ms, or -1.
 */
int time_parse_duration(const char *text, int64_t *ms);

#endif
