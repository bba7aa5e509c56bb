/*
 * transfer.h - HTTP requests in flight, on one libcurl multi handle.
 *
 * The pool owns the multi handle (and with it the connection cache), a cap
 * on transfers in flight, and every transfer until it is reaped. An endpoint
 * is the validated, ready-to-use form of one app's URL and headers; it is
 * reference counted because transfers started before a config change keep
 * the endpoint they started with. Response bodies are read up to
 * TRANSFER_MAX_RESPONSE bytes and discarded. Redirects are never followed.
 */
#ifndef SMARTRELAY_TRANSFER_H
#define SMARTRELAY_TRANSFER_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define TRANSFER_MAX_RESPONSE (64 * 1024)
#define TRANSFER_ERROR_SIZE 256
#define TRANSFER_MAX_WAKE_FDS 32 /* one bit each in transfer_pool_poll's mask */

struct transfer_pool;
struct transfer_endpoint;

/*
 * Checks that url parses (libcurl's URL API) with scheme http or https and
 * a host. Returns 0, or -1 with the reason in err.
 */
int transfer_check_url(const char *url, char *err, size_t errlen);

struct transfer_endpoint_spec {
	const char *url;          /* checked with transfer_check_url */
	const char *content_type; /* sent as is */
	const char *method;       /* NULL: POST */
	/* Extra "Name: value" header lines, already validated; a name that is
	 * also a default header (User-Agent) replaces the default. */
	const char *const *headers;
	size_t header_count;
	const char *username;     /* NULL: no HTTP authentication */
	const char *password;
	int64_t timeout_ms;       /* total time of one request */
	/* NULL: unsigned. Else Standard Webhooks secrets (see sign.h): every
	 * request then carries webhook-timestamp and webhook-signature, and
	 * the header lines may not name webhook-id. */
	const char *signing_secret;
};

/*
 * Builds an endpoint from spec (every string is copied). Returns 0 and a new
 * endpoint with one reference in *out, or -1 with the reason in err.
 */
int transfer_endpoint_new(const struct transfer_endpoint_spec *spec,
			  struct transfer_endpoint **out, char *err,
			  size_t errlen);

/* Drops one reference; the last one frees the endpoint. NULL is a no-op. */
void transfer_endpoint_unref(struct transfer_endpoint *ep);

struct addrpolicy;

struct transfer_pool_options {
	int max_transfers;          /* transfers in flight at most */
	int64_t connect_timeout_ms; /* 0: min(timeout, 10 s) of each request */
	const char *ca_file;        /* NULL: the system's CA store */
	/* NULL: any address. Else every address connected to (after DNS)
	 * must pass it; one refused fails the attempt as a connection failure
	 * whose error says why. Borrowed: it must outlive the pool. */
	const struct addrpolicy *addresses;
};

int transfer_pool_new(const struct transfer_pool_options *options,
		      struct transfer_pool **out, char *err, size_t errlen);

/* Aborts whatever is still in flight, without reporting it, and frees. */
void transfer_pool_free(struct transfer_pool *pool);

/* Transfers started and not yet reaped. */
int transfer_pool_active(const struct transfer_pool *pool);

/*
 * Starts a request of event event_id to ep with body (stolen: the pool frees
 * it) of len bytes. owner is handed back with the result. The endpoint gains
 * a reference for the life of the transfer (the pool may keep it a while
 * longer, to reuse the options already set on a handle). Returns 0, or -1 with the reason
 * in err (the body is freed either way).
 */
int transfer_start(struct transfer_pool *pool, struct transfer_endpoint *ep,
		   int64_t event_id, char *body, size_t len, void *owner,
		   char *err, size_t errlen);

/*
 * Drives the transfers and waits at most timeout_ms for network activity or
 * for one of the nfds descriptors in fds to become readable (the caller's
 * wake-ups: a signalfd, an inotify watch). Bit i of *ready (may be NULL) is
 * set when fds[i] was readable; the caller drains them. nfds is at most
 * TRANSFER_MAX_WAKE_FDS. Returns 0, or -1 on a libcurl failure (or too many
 * fds).
 */
int transfer_pool_poll(struct transfer_pool *pool, int timeout_ms,
		       const int *fds, int nfds, unsigned *ready);

/*
 * The transport class of a libcurl result code (a CURLcode, as int, so that
 * callers need not include curl.h). Exposed for its unit test.
 */
enum transport transfer_transport_of(int curl_code);

struct transfer_result {
	void *owner;
	int64_t event_id;
	enum transport transport;
	/* 0: no status line received. A response whose body passed
	 * TRANSFER_MAX_RESPONSE is cut there and still counts as
	 * TRANSPORT_OK with its status. */
	long http_status;
	int64_t retry_after_ms;  /* -1: no Retry-After header */
	int64_t started_ms;      /* wall clock, when the transfer started */
	int64_t duration_ms;
	char error[TRANSFER_ERROR_SIZE]; /* empty on a complete response */
};

/*
 * Takes one finished transfer out of the pool. Returns 1 and fills *result,
 * or 0 when none has finished.
 */
int transfer_pool_reap(struct transfer_pool *pool,
		       struct transfer_result *result);

/*
 * Aborts every transfer still in flight, and those finished but not yet
 * reaped; for each calls cancelled(owner, arg) so the caller can put its
 * event back (the callback must not start transfers). The pool stays usable.
 */
void transfer_pool_cancel_all(struct transfer_pool *pool,
			      void (*cancelled)(void *owner, void *arg),
			      void *arg);

/*
 * The request a transfer of event_id with a body of body_len bytes would
 * send to ep, as text, one line each: the request line, then the headers as
 * libcurl sends them (Host, then ours and the configured ones, webhook-id,
 * Content-Length). Values of credential headers (Authorization, Cookie, a
 * name holding "token", "secret", "key", "password" or "auth") are masked;
 * HTTP authentication shows the user name, never the password. Returns a
 * new string (the caller frees it), or NULL when out of memory or when the
 * URL does not parse.
 */
char *transfer_endpoint_describe(const struct transfer_endpoint *ep,
				 int64_t event_id, size_t body_len);

#endif
