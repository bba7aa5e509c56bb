/*
 * cmd_run.c - `smartrelay run DB`: the poller daemon and its options.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "addrpolicy.h"
#include "cli.h"
#include "commands.h"
#include "log.h"
#include "metrics.h"
#include "relay.h"
#include "timeutil.h"
#include "workers.h"

static const char run_usage[] =
	"Usage: smartrelay run DB [OPTIONS]\n"
	"Delivers the outbox's events to each app's web service, in the\n"
	"foreground, until SIGTERM or SIGINT. Durations are in seconds and may\n"
	"be fractional.\n\n"
	"  --once             deliver what is due now, wait for it, exit\n"
	"  --concurrency N    transfers in flight at most (64)\n"
	"  --workers N        run N relays, each its own process with its own\n"
	"                     --concurrency, to use N cores (1); worker K\n"
	"                     serves its metrics on PORT + K - 1\n"
	"  --timeout S        total time allowed for one request (15)\n"
	"  --max-attempts N   attempts before an event is failed (10)\n"
	"  --retry-base S     delay before the first retry (5); later delays\n"
	"                     grow exponentially, with jitter\n"
	"  --retry-max S      the longest single delay (3600)\n"
	"  --lease S          how long a claim holds before another relay may\n"
	"                     take the event over (60; longer than --timeout)\n"
	"  --grace S          how long a stop waits for transfers in flight (10)\n"
	"  --ca-file FILE     CA certificates for https (default: the system's)\n"
	"  --retention D      purge delivered and failed events older than D\n"
	"                     (30d, 12h, 90m, 45s; as `smartrelay purge`),\n"
	"                     a batch at a time; not with --once (default: keep\n"
	"                     them)\n"
	"  --deny-private     refuse to connect to loopback, private, link-local\n"
	"                     (cloud metadata) and other internal addresses\n"
	"  --allow-private LIST  with --deny-private, addresses and prefixes\n"
	"                     let through anyway (10.1.0.0/16,fd12::7)\n"
	"  --metrics-listen HOST:PORT\n"
	"                     serve Prometheus metrics at GET /metrics there\n"
	"  -v, --verbose      debug logging\n"
	"  --syslog           log to syslog instead of stderr\n";

enum {
	OPT_ONCE = 256, OPT_CONCURRENCY, OPT_TIMEOUT, OPT_MAX_ATTEMPTS,
	OPT_RETRY_BASE, OPT_RETRY_MAX, OPT_LEASE, OPT_GRACE, OPT_CA_FILE,
	OPT_SYSLOG, OPT_RETENTION, OPT_DENY_PRIVATE, OPT_ALLOW_PRIVATE,
	OPT_METRICS_LISTEN, OPT_WORKERS,
};

/* A week bounds every duration option: longer is surely a typo. */
#define MAX_DURATION_MS (7LL * 24 * 3600 * 1000)

static int parse_duration(const char *name, const char *text, int64_t *ms)
{
	if (time_parse_seconds(text, MAX_DURATION_MS, ms) != 0)
		return cli_usage_error("run", "%s: '%s' is not a number of seconds "
				       "from 0 to 604800", name, text);
	return 0;
}

/*
 * libcurl reads the CA file only at the first https handshake, and would
 * then fail every https attempt as a TLS error; an unreadable file is
 * refused up front instead. An empty one reads as "no certificates".
 */
static int check_ca_file(const char *path)
{
	FILE *f = fopen(path, "r");
	int rc = 0;

	if (f == NULL)
		return cli_usage_error("run", "--ca-file: cannot read %s: %s",
				       path, strerror(errno));
	if (fgetc(f) == EOF && ferror(f))
		rc = cli_usage_error("run", "--ca-file: cannot read %s: %s",
				     path, strerror(errno));
	fclose(f);
	return rc;
}

int cmd_run(int argc, char **argv)
{
	static const struct option options[] = {
		{ "once", no_argument, NULL, OPT_ONCE },
		{ "concurrency", required_argument, NULL, OPT_CONCURRENCY },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS },
		{ "retry-base", required_argument, NULL, OPT_RETRY_BASE },
		{ "retry-max", required_argument, NULL, OPT_RETRY_MAX },
		{ "lease", required_argument, NULL, OPT_LEASE },
		{ "grace", required_argument, NULL, OPT_GRACE },
		{ "ca-file", required_argument, NULL, OPT_CA_FILE },
		{ "retention", required_argument, NULL, OPT_RETENTION },
		{ "verbose", no_argument, NULL, 'v' },
		{ "syslog", no_argument, NULL, OPT_SYSLOG },
		{ "deny-private", no_argument, NULL, OPT_DENY_PRIVATE },
		{ "allow-private", required_argument, NULL, OPT_ALLOW_PRIVATE },
		{ "metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct relay_options opt;
	struct addrpolicy *addresses = NULL;
	const char *db, *allow_private = NULL;
	char err[320], shifted[320];
	int64_t n;
	int c, deny_private = 0, workers = 1, rc = 0;

	relay_options_default(&opt);
	while (rc == 0 && (c = getopt_long(argc, argv, "hv", options, NULL)) != -1) {
		switch (c) {
		case OPT_ONCE:
			opt.once = 1;
			break;
		case OPT_CONCURRENCY:
			if (cli_parse_int(optarg, 1, 10000, &n) != 0)
				return cli_usage_error("run", "--concurrency: '%s' is "
						       "not a whole number from 1 to 10000", optarg);
			opt.concurrency = (int)n;
			break;
		case OPT_WORKERS:
			if (cli_parse_int(optarg, 1, WORKERS_MAX, &n) != 0)
				return cli_usage_error("run", "--workers: '%s' is "
						       "not a whole number from 1 to %d",
						       optarg, WORKERS_MAX);
			workers = (int)n;
			break;
		case OPT_TIMEOUT:
			rc = parse_duration("--timeout", optarg, &opt.timeout_ms);
			if (rc == 0 && opt.timeout_ms == 0)
				rc = cli_usage_error("run", "--timeout: must be more than 0");
			break;
		case OPT_MAX_ATTEMPTS:
			if (cli_parse_int(optarg, 1, 1000000, &opt.max_attempts) != 0)
				return cli_usage_error("run", "--max-attempts: '%s' is "
						       "not a whole number from 1 to 1000000", optarg);
			break;
		case OPT_RETRY_BASE:
			rc = parse_duration("--retry-base", optarg, &opt.retry_base_ms);
			break;
		case OPT_RETRY_MAX:
			rc = parse_duration("--retry-max", optarg, &opt.retry_max_ms);
			break;
		case OPT_LEASE:
			rc = parse_duration("--lease", optarg, &opt.lease_ms);
			break;
		case OPT_GRACE:
			rc = parse_duration("--grace", optarg, &opt.grace_ms);
			break;
		case OPT_CA_FILE:
			opt.ca_file = optarg;
			rc = check_ca_file(optarg);
			break;
		case OPT_RETENTION:
			if (time_parse_duration(optarg, &opt.retention_ms) != 0 ||
			    opt.retention_ms == 0)
				return cli_usage_error("run", "--retention: '%s' is not "
						       "a duration above 0 (30d, 12h, "
						       "90m, 45s)", optarg);
			break;
		case OPT_METRICS_LISTEN:
			if (metrics_check_listen(optarg, err, sizeof(err)) != 0)
				return cli_usage_error("run", "--metrics-listen: %s",
						       err);
			opt.metrics_listen = optarg;
			break;
		case 'v':
			log_set_level(LOG_LEVEL_DEBUG);
			break;
		case OPT_SYSLOG:
			log_use_syslog("smartrelay");
			break;
		case OPT_DENY_PRIVATE:
			deny_private = 1;
			break;
		case OPT_ALLOW_PRIVATE:
			allow_private = optarg;
			break;
		case 'h':
			fputs(run_usage, stdout);
			return 0;
		default:
			return cli_usage_error("run", "bad option");
		}
	}
	if (rc != 0)
		return rc;
	if (cli_operands("run", argc, argv, optind, 1, &db) != 0)
		return EXIT_USAGE;
	if (opt.once && opt.retention_ms > 0)
		return cli_usage_error("run", "--retention is for the daemon, not "
				       "--once (use smartrelay purge)");
	if (opt.retry_max_ms < opt.retry_base_ms)
		return cli_usage_error("run", "--retry-max must not be shorter "
				       "than --retry-base");
	/* A lease must outlive the transfer it covers (contract 7.6). */
	if (opt.lease_ms <= opt.timeout_ms)
		return cli_usage_error("run", "--lease must be longer than --timeout");
	/* Worker K serves its own counters on PORT + K - 1. */
	if (opt.metrics_listen &&
	    metrics_listen_shift(opt.metrics_listen, workers - 1, shifted,
				 sizeof(shifted), err, sizeof(err)) != 0)
		return cli_usage_error("run", "--metrics-listen: %s", err);
	if (allow_private && !deny_private)
		return cli_usage_error("run", "--allow-private needs --deny-private");
	if (deny_private) {
		if (addrpolicy_new(allow_private, &addresses, err, sizeof(err)) != 0)
			return cli_usage_error("run", "--allow-private: %s", err);
		opt.addresses = addresses;
	}
	rc = workers_run(db, &opt, workers);
	addrpolicy_free(addresses);
	return rc;
}
