/*
 * cli.h - what the subcommands share: usage errors, option values, the DB
 * operand. A malformed option or operand is bad usage (exit 2); a message is
 * one line on stderr that says what and why.
 */
#ifndef SMARTRELAY_CLI_H
#define SMARTRELAY_CLI_H

#include <stdint.h>

#include "log.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* Prints "smartrelay CMD: message" and a hint to --help; returns EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) SR_PRINTF(2, 3);

/* Prints "smartrelay CMD: message"; returns EXIT_RUNTIME. */
int cli_runtime_error(const char *cmd, const char *fmt, ...) SR_PRINTF(2, 3);

/* Parses a whole decimal integer within [min, max]. Returns 0 or -1. */
int cli_parse_int(const char *text, int64_t min, int64_t max, int64_t *value);

/*
 * The operands left after getopt_long (argv[optind..argc)): exactly `want`
 * of them, stored in out[]; otherwise a usage error is printed and -1
 * returned.
 */
int cli_operands(const char *cmd, int argc, char **argv, int first, int want,
		 const char **out);

/*
 * Writes text from the database to stdout, padded with spaces to width,
 * control characters shown as '?' (newlines and tabs too unless
 * keep_lines): a stored value must not forge or hide a line of the output,
 * nor drive the terminal. NULL is written as "-".
 */
void cli_print_text(const char *text, int width, int keep_lines);

#endif
