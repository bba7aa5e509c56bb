/*
 * relay.h - the poller: claims due events, sends them, records outcomes.
 *
 * One single-threaded loop over one store and one transfer pool:
 *   reload the config when the database changed -> recover expired leases ->
 *   claim due rows up to the free transfer slots -> render and start them ->
 *   drive the transfers -> record every finished outcome in one transaction
 *   -> sleep until the next due row, a database change or a signal.
 * SIGTERM and SIGINT stop claims at once and give transfers in flight the
 * grace period; what is still running then is cancelled and put back to
 * pending without an attempt counted.
 */
#ifndef SMARTRELAY_RELAY_H
#define SMARTRELAY_RELAY_H

#include <stdint.h>

struct addrpolicy;

struct relay_options {
	int once;              /* deliver what is due now, then return */
	int concurrency;       /* transfers in flight at most */
	int64_t timeout_ms;    /* total time of one request */
	int64_t max_attempts;  /* attempts before an event is failed */
	int64_t retry_base_ms; /* delay before the first retry */
	int64_t retry_max_ms;  /* the longest single delay */
	int64_t lease_ms;      /* how long a claim holds */
	int64_t grace_ms;      /* how long a stop waits for transfers */
	const char *ca_file;   /* NULL: the system's CA store */
	int64_t retention_ms;  /* 0: keep every event; else purge older ones */
	/* NULL: any address; else the addresses transfers may connect to
	 * (run --deny-private), borrowed for the run. */
	const struct addrpolicy *addresses;
	const char *metrics_listen; /* NULL, or HOST:PORT serving /metrics */
	int worker;            /* 1..N under run --workers N; 0: the only one */
};

/* The contract's defaults (section 7.6). */
void relay_options_default(struct relay_options *options);

/*
 * Runs the relay on the database at db_path until stopped (or, with once,
 * until what was due at the start has had its attempt). Returns the exit
 * status: 0 after a clean stop, 1 on a runtime error (logged).
 */
int relay_run(const char *db_path, const struct relay_options *options);

#endif
