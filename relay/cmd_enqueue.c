/*
 * cmd_enqueue.c - `smartrelay enqueue DB`: produce one event from the
 * command line, as a producer's INSERT would, and print its id.
 *
 * At least one --party is required: an event that notifies nobody is a
 * mistake on the command line (a producer may still INSERT '[]').
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "render.h"
#include "store.h"

/* More parties than this belong in a producer, not on a command line. */
#define ENQUEUE_MAX_PARTIES 1000

static const char enqueue_usage[] =
	"Usage: smartrelay enqueue DB --number N --network ID --uri URI\n"
	"                         --party USER:DEVICE [--party ...] [--cloud-id C]\n"
	"Adds one pending event to the outbox and prints its id.\n\n"
	"  --number N           new_smart_number, the new Smart user's number\n"
	"  --network ID         network_id\n"
	"  --uri URI            new_smart_uri, the user's SIP URI\n"
	"  --party USER:DEVICE  an interested party; split at the first ':'\n"
	"                       (the device may hold more); at least one\n"
	"  --cloud-id C         the app whose options apply (default 'default')\n"
	"  --json               print {\"id\":N} instead of the bare id\n";

enum {
	OPT_NUMBER = 256, OPT_NETWORK, OPT_URI, OPT_PARTY, OPT_CLOUD_ID,
	OPT_JSON,
};

/* Splits text at its first ':' into party; both halves must be non-empty. */
static int party_parse(char *text, struct render_party *party)
{
	char *colon = strchr(text, ':');

	if (colon == NULL || colon == text || colon[1] == '\0')
		return cli_usage_error("enqueue", "--party: '%s' is not "
				       "USER:DEVICE (both non-empty)", text);
	*colon = '\0';
	party->username = text;
	party->device = colon + 1;
	return 0;
}

static int required(const char *name, const char *value)
{
	if (value == NULL)
		return cli_usage_error("enqueue", "%s is required", name);
	if (*value == '\0')
		return cli_usage_error("enqueue", "%s must not be empty", name);
	return 0;
}

int cmd_enqueue(int argc, char **argv)
{
	static const struct option options[] = {
		{ "number", required_argument, NULL, OPT_NUMBER },
		{ "network", required_argument, NULL, OPT_NETWORK },
		{ "uri", required_argument, NULL, OPT_URI },
		{ "party", required_argument, NULL, OPT_PARTY },
		{ "cloud-id", required_argument, NULL, OPT_CLOUD_ID },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct render_party *parties = NULL;
	struct new_event ev = { 0 };
	struct store *store = NULL;
	size_t nparties = 0;
	char *parties_json = NULL;
	const char *db;
	char err[512];
	int64_t id = 0;
	int c, json = 0, rc = 0;

	/* Every --party fits: there are fewer than argc of them. */
	parties = calloc((size_t)argc, sizeof(*parties));
	if (parties == NULL)
		return cli_runtime_error("enqueue", "out of memory");
	while (rc == 0 && (c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case OPT_NUMBER:
			ev.new_smart_number = optarg;
			break;
		case OPT_NETWORK:
			ev.network_id = optarg;
			break;
		case OPT_URI:
			ev.new_smart_uri = optarg;
			break;
		case OPT_PARTY:
			if (nparties == ENQUEUE_MAX_PARTIES)
				rc = cli_usage_error("enqueue", "more than %d "
						     "--party options",
						     ENQUEUE_MAX_PARTIES);
			else
				rc = party_parse(optarg, &parties[nparties++]);
			break;
		case OPT_CLOUD_ID:
			ev.cloud_id = optarg;
			rc = required("--cloud-id", optarg);
			break;
		case OPT_JSON:
			json = 1;
			break;
		case 'h':
			fputs(enqueue_usage, stdout);
			goto out;
		default:
			rc = cli_usage_error("enqueue", "bad option");
			break;
		}
	}
	if (rc != 0)
		goto out;
	if (cli_operands("enqueue", argc, argv, optind, 1, &db) != 0) {
		rc = EXIT_USAGE;
		goto out;
	}
	rc = required("--number", ev.new_smart_number);
	if (rc == 0)
		rc = required("--network", ev.network_id);
	if (rc == 0)
		rc = required("--uri", ev.new_smart_uri);
	if (rc == 0 && nparties == 0)
		rc = cli_usage_error("enqueue", "at least one --party "
				     "USER:DEVICE is required");
	if (rc != 0)
		goto out;
	parties_json = render_parties_json(parties, nparties, err, sizeof(err));
	if (parties_json == NULL) {
		rc = cli_usage_error("enqueue", "--party: %s", err);
		goto out;
	}
	ev.interested_parties = parties_json;
	if (store_open(db, STORE_OPEN_EXISTING, &store, err, sizeof(err))
	    != STORE_OK) {
		rc = cli_runtime_error("enqueue", "%s", err);
		goto out;
	}
	if (store_enqueue(store, &ev, &id) != STORE_OK) {
		rc = cli_runtime_error("enqueue", "%s", store_errmsg(store));
		goto out;
	}
	if (json) {
		const struct render_field field = { "id", RENDER_VALUE_INT, id, NULL };
		char *record = render_json_record(&field, 1);

		if (record == NULL) {
			rc = cli_runtime_error("enqueue", "out of memory");
			goto out;
		}
		printf("%s\n", record);
		free(record);
	} else {
		printf("%" PRId64 "\n", id);
	}
out:
	store_close(store);
	free(parties_json);
	free(parties);
	return rc;
}
