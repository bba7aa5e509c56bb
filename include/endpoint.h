/*
 * endpoint.h - one app's provisioning options, validated and ready to use.
 *
 * Turns the config rows of one cloud_id into an endpoint: a compiled body
 * template, a transfer endpoint (URL, method, headers, auth, signing,
 * timeout) and the app's delivery policy (limits, retries). Every rule
 * of the contract about options lives here; a rule broken is a configuration
 * error whose text names the cloud_id, the key and the reason, and the
 * events of that app wait untouched until the config is fixed.
 */
#ifndef SMARTRELAY_ENDPOINT_H
#define SMARTRELAY_ENDPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "render.h"
#include "store.h"

#define ENDPOINT_KEY_PREFIX "smartContactNotification"
#define ENDPOINT_URL "smartContactNotificationUrl"
#define ENDPOINT_POST_DATA "smartContactNotificationPostData"
#define ENDPOINT_CONTENT_TYPE "smartContactNotificationContentType"
#define ENDPOINT_CUSTOM_HEADERS "smartContactNotificationCustomHeaders"
#define ENDPOINT_AUTH_USERNAME "smartContactNotificationAuthUsername"
#define ENDPOINT_AUTH_PASSWORD "smartContactNotificationAuthPassword"
#define ENDPOINT_ALLOW_INSECURE_AUTH "smartContactNotificationAllowInsecureAuth"
#define ENDPOINT_TIMEOUT "smartContactNotificationTimeout"
#define ENDPOINT_METHOD "smartContactNotificationMethod"
#define ENDPOINT_SIGNING_SECRET "smartContactNotificationSigningSecret"
#define ENDPOINT_MAX_CONCURRENCY "smartContactNotificationMaxConcurrency"
#define ENDPOINT_MAX_RATE "smartContactNotificationMaxRate"
#define ENDPOINT_MAX_ATTEMPTS "smartContactNotificationMaxAttempts"
#define ENDPOINT_RETRY_SCHEDULE "smartContactNotificationRetrySchedule"
#define ENDPOINT_MAX_SCHEDULE 32 /* entries of a RetrySchedule */
/* Written by the relay when the endpoint answered 410 Gone; removed by
 * `smartrelay config DB enable`. Its value says when and why. */
#define ENDPOINT_DISABLED "smartContactNotificationDisabled"

#define ENDPOINT_ERROR_SIZE 512

struct transfer_endpoint;

struct endpoint {
	char *cloud_id;
	enum content_kind kind;
	struct render_template *tmpl;
	struct transfer_endpoint *transfer; /* one reference, owned */
	char *disabled;   /* NULL, or why the endpoint is disabled (410) */
	int64_t timeout_ms;
	int max_concurrency;   /* 0: only run --concurrency limits it */
	double max_rate;       /* requests per second; 0: no limit */
	int64_t max_attempts;  /* 0: run --max-attempts */
	/* Delay before retry n is entry n-1, the last repeating; count 0:
	 * the run options' exponential backoff. */
	int64_t retry_schedule_ms[ENDPOINT_MAX_SCHEDULE];
	size_t retry_schedule_count;
};

/*
 * Builds the endpoint of cloud_id from its config rows (rows[i].cloud_id is
 * ignored; all belong to cloud_id). default_timeout_ms applies when the
 * Timeout option is absent. Returns 0 and a new endpoint in *out, or -1 with
 * "cloud_id=C key=K: reason" in err.
 */
int endpoint_build(const char *cloud_id, const struct config_row *rows,
		   size_t count, int64_t default_timeout_ms,
		   struct endpoint **out, char *err, size_t errlen);

void endpoint_free(struct endpoint *ep);

/* 1 when key is a secret whose value must never be shown (a password). */
int endpoint_key_is_secret(const char *key);

/*
 * Checks the CustomHeaders value (contract 7.13): lines split on LF, a CR
 * right before the LF dropped; returns 0 with the lines as a new array of
 * new strings (free with endpoint_headers_free) or -1 with the reason.
 */
int endpoint_parse_headers(const char *value, char ***lines, size_t *count,
			   char *err, size_t errlen);
void endpoint_headers_free(char **lines, size_t count);

#endif
