/*
 * cli.c - the small parts every subcommand parses the same way.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static void cli_vprint(const char *cmd, const char *fmt, va_list ap)
	SR_PRINTF(2, 0);

static void cli_vprint(const char *cmd, const char *fmt, va_list ap)
{
	char message[1024];

	vsnprintf(message, sizeof(message), fmt, ap);
	fprintf(stderr, "smartrelay %s: %s\n", cmd, message);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_vprint(cmd, fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try 'smartrelay %s --help'.\n", cmd);
	return EXIT_USAGE;
}

int cli_runtime_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cli_vprint(cmd, fmt, ap);
	va_end(ap);
	return EXIT_RUNTIME;
}

int cli_parse_int(const char *text, int64_t min, int64_t max, int64_t *value)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno || end == text || *end != '\0' || v < min || v > max)
		return -1;
	*value = v;
	return 0;
}

int cli_operands(const char *cmd, int argc, char **argv, int first, int want,
		 const char **out)
{
	int have = argc - first;

	if (have < want) {
		cli_usage_error(cmd, "missing %s", want - have == 1 && have == 0
				? "the database operand DB" : "operands");
		return -1;
	}
	if (have > want) {
		cli_usage_error(cmd, "unexpected operand '%s'", argv[first + want]);
		return -1;
	}
	for (int i = 0; i < want; i++)
		out[i] = argv[first + i];
	return 0;
}

void cli_print_text(const char *text, int width, int keep_lines)
{
	int n = 0;

	for (const char *c = text ? text : "-"; *c != '\0'; c++, n++) {
		unsigned char b = (unsigned char)*c;
		int line = keep_lines && (b == '\n' || b == '\t');

		putchar((b < 0x20 || b == 0x7f) && !line ? '?' : b);
	}
	for (; n < width; n++)
		putchar(' ');
}
