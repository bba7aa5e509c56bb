/*
 * log.h - the daemon's one way to speak.
 *
 * Four levels and a fatal exit. Every line is one line on stderr (or syslog
 * when log_use_syslog() was called), prefixed with a UTC timestamp and the
 * level, so lines about events can be grepped by their key=value fields.
 * The only global state of the program lives here: the verbosity and the sink.
 */
#ifndef SMARTRELAY_LOG_H
#define SMARTRELAY_LOG_H

#define SR_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* Lines above this level are dropped. Default LOG_LEVEL_INFO. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Send lines to syslog (facility daemon) instead of stderr. */
void log_use_syslog(const char *ident);

void log_error(const char *fmt, ...) SR_PRINTF(1, 2);
void log_warn(const char *fmt, ...) SR_PRINTF(1, 2);
void log_info(const char *fmt, ...) SR_PRINTF(1, 2);
void log_debug(const char *fmt, ...) SR_PRINTF(1, 2);

/* Log at error level and exit(1). Only for start-up and broken invariants. */
void fatal(const char *fmt, ...) SR_PRINTF(1, 2) __attribute__((noreturn));

#endif
