/*
 * workers.h - several relays from one command: `run --workers N`.
 *
 * Each worker is a child process running its own relay loop (its own store
 * connection, transfer pool and claims), exactly as if N relays had been
 * started by hand; the leases already keep them off each other's events.
 * The parent only supervises: it passes SIGTERM, SIGINT and SIGHUP on to
 * every worker, and the workers live and stop together.
 */
#ifndef SMARTRELAY_WORKERS_H
#define SMARTRELAY_WORKERS_H

#include "relay.h"

/* Most workers one command starts; more relays are more commands. */
#define WORKERS_MAX 64

/*
 * Runs count relays on db_path and waits for all of them. With count 1 (or
 * less) the relay runs in this process. With more, a worker that ends while
 * the others run (in the daemon: for any reason; with --once: on an error)
 * makes the parent stop the others. Returns 0 when every worker exited 0 (and, in the
 * daemon, none ended before it was told to), else 1. Like fork, it returns
 * twice: in each worker too, with that relay's status.
 */
int workers_run(const char *db_path, const struct relay_options *options,
		int count);

#endif
