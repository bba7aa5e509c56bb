/*
 * cmd_init.c - `smartrelay init DB`: create the database or upgrade it.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "commands.h"
#include "store.h"

static const char init_usage[] =
	"Usage: smartrelay init DB\n"
	"Creates the database DB (owner-only permissions) or upgrades its\n"
	"schema to the current version. Safe to run again.\n";

int cmd_init(int argc, char **argv)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct store *store = NULL;
	const char *db;
	char err[512];
	char shown[512];
	int opt;

	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if (opt == 'h') {
			fputs(init_usage, stdout);
			return 0;
		}
		return cli_usage_error("init", "bad option");
	}
	if (cli_operands("init", argc, argv, optind, 1, &db) != 0)
		return EXIT_USAGE;
	if (store_open(db, STORE_OPEN_CREATE, &store, err, sizeof(err)) != STORE_OK)
		return cli_runtime_error("init", "%s", err);
	store_display_name(db, shown, sizeof(shown));
	printf("%s: schema version %d\n", shown, store_schema_version(store));
	store_close(store);
	return 0;
}
