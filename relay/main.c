/*
 * main.c - smartrelay's entry point: finds the command and calls in.
 *
 * Holds no SQL, no HTTP and no rendering; every command lives in the
 * library (relay/cmd_*.c) so that tests and tools reach the same code.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "version.h"

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "init", cmd_init, "create the database or upgrade its schema" },
	{ "run", cmd_run, "deliver events: the poller daemon (--once: what is due now)" },
	{ "history", cmd_history, "delivery history, newest first" },
	{ "config", cmd_config, "show, check, set or unset an app's provisioning options" },
	{ "enqueue", cmd_enqueue, "add one event to the outbox, print its id" },
	{ "requeue", cmd_requeue, "put failed events back to pending, with a fresh budget" },
	{ "stats", cmd_stats, "queue depth, rates, latency and disabled endpoints" },
	{ "purge", cmd_purge, "delete delivered and failed events older than a duration" },
	{ "copy", cmd_copy, "copy the pending events of one database into another" },
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: smartrelay COMMAND DB [OPTIONS]\n"
		"Delivers smart-contact notifications from an SQLite outbox.\n\n"
		"Commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'smartrelay COMMAND --help' describes a command.\n"
		"  --help     this text\n  --version  the version\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("smartrelay %s\n", SMARTRELAY_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "smartrelay: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
