/*
 * log.c - the four levels and fatal, to stderr or syslog.
 *
 * A line is "<UTC time> <level> <message>" on stderr, or the message alone
 * at the matching priority in syslog (which stamps its own time). Writes are
 * one write of a whole line so concurrent processes do not interleave;
 * control characters in a message become spaces, so a line is always one.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/*
 * Messages carry cloud_ids, keys and peers' words: a line break or a
 * terminal escape in them must not forge or hide a log line.
 */
static void clean(char *text)
{
	for (char *p = text; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
}

static void log_emit(enum log_level level, const char *fmt, va_list ap)
{
	char line[4096 + TIME_TEXT_SIZE + 16];
	size_t head, len, name_len;
	int n;

	if (level > current_level)
		return;
	if (to_syslog) {
		vsnprintf(line, sizeof(line), fmt, ap);
		clean(line);
		syslog(level_priorities[level], "%s", line);
		return;
	}
	/* time_format keeps the date of the second: cheap on a busy relay. */
	time_format(time_now_ms(), line);
	head = strlen(line);
	name_len = strlen(level_names[level]);
	line[head++] = ' ';
	memcpy(line + head, level_names[level], name_len);
	head += name_len;
	line[head++] = ' ';
	n = vsnprintf(line + head, sizeof(line) - head - 1, fmt, ap);
	len = n < 0 ? head
	    : head + ((size_t)n < sizeof(line) - head - 1
		      ? (size_t)n : sizeof(line) - head - 2);
	line[len] = '\0';
	clean(line + head);
	line[len++] = '\n';
	/* One write of the whole line: stderr is unbuffered. */
	fwrite(line, 1, len, stderr);
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
