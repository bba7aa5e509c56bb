/*
 * cmd_config.c - `smartrelay config DB [ACTION]`: an app's provisioning
 * options, shown (secrets masked), checked, set, unset, or re-enabled after
 * a 410 Gone.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "endpoint.h"
#include "render.h"
#include "store.h"
#include "transfer.h"

static const char config_usage[] =
	"Usage: smartrelay config DB [ACTION] [--cloud-id C]\n"
	"The provisioning options of one app (cloud_id C, default 'default').\n\n"
	"Actions:\n"
	"  show               list the options, secrets masked (the default)\n"
	"  check              validate them, print a sample body and the exact\n"
	"                     request (method, path, headers; secrets masked);\n"
	"                     exit 1 and say why when they are bad\n"
	"  set KEY VALUE      set an option\n"
	"  unset KEY          remove an option\n"
	"  enable             re-enable an endpoint disabled by a 410 Gone\n\n"
	"Keys: smartContactNotificationUrl, ...PostData, ...ContentType,\n"
	"...CustomHeaders, ...AuthUsername, ...AuthPassword,\n"
	"...AllowInsecureAuth, ...Timeout, ...Method, ...SigningSecret,\n"
	"...MaxConcurrency, ...MaxRate, ...MaxAttempts, ...RetrySchedule\n"
	"(see the README).\n";

/* The sample event a check renders: the document's own example. */
#define SAMPLE_EVENT_ID 1
static const struct render_event sample_event = {
	"+420111222333", "network_1", "sip_uri_1",
	"[{\"username\":\"eric\",\"device\":\"erics_iphone\"},"
	"{\"username\":\"madelaine\",\"device\":\"madelaines_android\"}]",
};

static int config_show(struct store *store, const char *cloud_id)
{
	struct config_row *rows = NULL;
	size_t count = 0;

	if (store_config_list(store, cloud_id, &rows, &count) != STORE_OK)
		return cli_runtime_error("config", "%s", store_errmsg(store));
	if (count == 0)
		fprintf(stderr, "cloud_id=%s has no options\n", cloud_id);
	/* Templates and header lists keep their lines; other control
	 * characters in a stored option are shown as '?'. */
	for (size_t i = 0; i < count; i++) {
		cli_print_text(rows[i].key, 0, 0);
		fputs(" = ", stdout);
		cli_print_text(endpoint_key_is_secret(rows[i].key)
				       ? "********" : rows[i].value, 0, 1);
		putchar('\n');
	}
	store_config_rows_free(rows, count);
	return 0;
}

/*
 * After a set: when the option just written is itself what makes the app's
 * config bad (a typo'd key, a malformed value), say so now rather than in
 * the relay's log. Other gaps (a key not set yet) are normal mid-setup.
 */
static void config_warn_about(struct store *store, const char *cloud_id,
			      const char *key)
{
	struct config_row *rows = NULL;
	struct endpoint *ep = NULL;
	size_t count = 0;
	char err[ENDPOINT_ERROR_SIZE], needle[256];

	if (store_config_list(store, cloud_id, &rows, &count) != STORE_OK)
		return;
	if (endpoint_build(cloud_id, rows, count, 15000, &ep, err,
			   sizeof(err)) != 0) {
		snprintf(needle, sizeof(needle), " key=%s:", key);
		if (strstr(err, needle))
			fprintf(stderr, "smartrelay config: warning: %s; events of "
				"cloud_id=%s wait until it is fixed\n", err, cloud_id);
	}
	endpoint_free(ep);
	store_config_rows_free(rows, count);
}

static int config_check(struct store *store, const char *cloud_id)
{
	struct config_row *rows = NULL;
	struct endpoint *ep = NULL;
	size_t count = 0, len = 0;
	char err[ENDPOINT_ERROR_SIZE];
	char *body = NULL, *request = NULL;
	int rc;

	if (store_config_list(store, cloud_id, &rows, &count) != STORE_OK)
		return cli_runtime_error("config", "%s", store_errmsg(store));
	rc = endpoint_build(cloud_id, rows, count, 15000, &ep, err, sizeof(err));
	store_config_rows_free(rows, count);
	if (rc != 0)
		return cli_runtime_error("config", "%s", err);
	if (render_body(ep->tmpl, &sample_event, &body, &len, err, sizeof(err)) != 0) {
		rc = cli_runtime_error("config", "cloud_id=%s: sample event: %s",
				       cloud_id, err);
		goto out;
	}
	printf("cloud_id=%s: ok%s%s\n", cloud_id,
	       ep->disabled ? "; disabled: " : "", ep->disabled ? ep->disabled : "");
	printf("sample body (%zu bytes):\n%s\n", len, body);
	request = transfer_endpoint_describe(ep->transfer, SAMPLE_EVENT_ID, len);
	if (request == NULL) {
		rc = cli_runtime_error("config", "cloud_id=%s: cannot describe "
				       "the request", cloud_id);
		goto out;
	}
	printf("sample request (event id %d; secrets masked):\n%s", SAMPLE_EVENT_ID,
	       request);
	rc = 0;
out:
	free(request);
	free(body);
	endpoint_free(ep);
	return rc;
}

int cmd_config(int argc, char **argv)
{
	static const struct option options[] = {
		{ "cloud-id", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cloud_id = "default", *action = "show", *db;
	const char *operands[4] = { NULL };
	struct store *store = NULL;
	char err[512];
	int c, want, rc, removed = 0;

	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if (c == 'c') {
			cloud_id = optarg;
		} else if (c == 'h') {
			fputs(config_usage, stdout);
			return 0;
		} else {
			return cli_usage_error("config", "bad option");
		}
	}
	if (optind + 1 < argc)
		action = argv[optind + 1];
	if (strcmp(action, "set") == 0)
		want = 4;
	else if (strcmp(action, "unset") == 0)
		want = 3;
	else if (strcmp(action, "show") == 0 || strcmp(action, "check") == 0 ||
		 strcmp(action, "enable") == 0)
		want = optind + 1 < argc ? 2 : 1;
	else
		return cli_usage_error("config", "unknown action '%s' (show, check, "
				       "set, unset, enable)", action);
	if (cli_operands("config", argc, argv, optind, want, operands) != 0)
		return EXIT_USAGE;
	db = operands[0];
	if (store_open(db, STORE_OPEN_EXISTING, &store, err, sizeof(err)) != STORE_OK)
		return cli_runtime_error("config", "%s", err);

	if (strcmp(action, "show") == 0) {
		rc = config_show(store, cloud_id);
	} else if (strcmp(action, "check") == 0) {
		rc = config_check(store, cloud_id);
	} else if (strcmp(action, "set") == 0) {
		rc = store_config_set(store, cloud_id, operands[2], operands[3]);
		rc = rc == STORE_OK ? 0
			: cli_runtime_error("config", "%s", store_errmsg(store));
		if (rc == 0)
			config_warn_about(store, cloud_id, operands[2]);
	} else if (strcmp(action, "unset") == 0) {
		rc = store_config_unset(store, cloud_id, operands[2], &removed);
		if (rc != STORE_OK)
			rc = cli_runtime_error("config", "%s", store_errmsg(store));
		else if (!removed)
			rc = cli_runtime_error("config", "cloud_id=%s has no option %s",
					       cloud_id, operands[2]);
	} else {
		rc = store_config_unset(store, cloud_id, ENDPOINT_DISABLED, &removed);
		if (rc != STORE_OK)
			rc = cli_runtime_error("config", "%s", store_errmsg(store));
		else
			printf("cloud_id=%s: endpoint %s\n", cloud_id,
			       removed ? "enabled" : "was not disabled");
	}
	store_close(store);
	return rc;
}
