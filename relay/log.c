/*
 * log.c - the four levels and fatal, to stderr or syslog.
 *
 * A line is "<UTC time> <level> <message>" on stderr, or the message alone
 * at the matching priority in syslog (which stamps its own time). Writes are
 * one fprintf of a whole line so concurrent processes do not interleave;
 * control characters in a message become spaces, so a line is always one.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#include "log.h"
#include "timeutil.h"

static enum log_level current_level = LOG_LEVEL_INFO;
static int to_syslog;

static const char *const level_names[] = {
	[LOG_LEVEL_ERROR] = "error",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

static const int level_priorities[] = {
	[LOG_LEVEL_ERROR] = LOG_ERR,
	[LOG_LEVEL_WARN] = LOG_WARNING,
	[LOG_LEVEL_INFO] = LOG_INFO,
	[LOG_LEVEL_DEBUG] = LOG_DEBUG,
};

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return current_level;
}

void log_use_syslog(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	to_syslog = 1;
}

static void log_emit(enum log_level level, const char *fmt, va_list ap)
	SR_PRINTF(2, 0);

static void log_emit(enum log_level level, const char *fmt, va_list ap)
{
	char message[4096];
	char now[TIME_TEXT_SIZE];

	if (level > current_level)
		return;
	vsnprintf(message, sizeof(message), fmt, ap);
	/* Messages carry cloud_ids, keys and peers' words: a line break or
	 * a terminal escape in them must not forge or hide a log line. */
	for (char *p = message; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	if (to_syslog) {
		syslog(level_priorities[level], "%s", message);
		return;
	}
	time_format(time_now_ms(), now);
	fprintf(stderr, "%s %s %s\n", now, level_names[level], message);
}

#define LOG_DEFINE(name, level)                      \
	void name(const char *fmt, ...)              \
	{                                            \
		va_list ap;                          \
		va_start(ap, fmt);                   \
		log_emit(level, fmt, ap);            \
		va_end(ap);                          \
	}

LOG_DEFINE(log_error, LOG_LEVEL_ERROR)
LOG_DEFINE(log_warn, LOG_LEVEL_WARN)
LOG_DEFINE(log_info, LOG_LEVEL_INFO)
LOG_DEFINE(log_debug, LOG_LEVEL_DEBUG)

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}
