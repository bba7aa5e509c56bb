/*
 * metrics.c - counters and gauges, and the libmicrohttpd server behind
 * metrics.h. The only file that includes microhttpd.h.
 *
 * The server runs in MHD's external mode with epoll and no thread of its
 * own: the relay polls the epoll descriptor with its other wake-ups and
 * calls MHD_run, so a scrape reads the counters and the store from the one
 * thread that writes them, and nothing needs a lock. Every series is keyed
 * by cloud_id; their number is bounded by the apps the relay knows and by
 * the (transport, status) pairs an attempt can end with.
 */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "log.h"
#include "store.h"
#include "timeutil.h"
#include "version.h"

/* The queue depth is read from the store at most this often. */
#define QUEUE_REFRESH_MS 1000
/* (cloud_id, state) rows of the queue kept, at most. */
#define QUEUE_MAX_ROWS 1000
/* Scrapers served at once, and how long an idle one may stay. */
#define MAX_CONNECTIONS 16
#define CONNECTION_TIMEOUT_S 10
#define LISTEN_BACKLOG 16
#define HOST_SIZE 256
#define PORT_SIZE 8

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Upper bounds of the delivery latency buckets, in ms and as printed. */
static const int64_t latency_bounds_ms[] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
	900000, 3600000, 21600000, 86400000,
};
static const char *const latency_bounds_text[] = {
	"0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "60", "300",
	"900", "3600", "21600", "86400",
};
#define LATENCY_BUCKETS (sizeof latency_bounds_ms / sizeof latency_bounds_ms[0])

struct attempt_series {
	const char *outcome;      /* static strings from the relay */
	enum transport transport;
	long http_status;
	uint64_t count;
};

struct app_metrics {
	char *cloud_id;
	int config_known;
	enum metrics_config config;
	uint64_t config_errors;
	uint64_t claimed;
	uint64_t unrenderable;
	struct attempt_series *attempts;
	size_t attempt_count, attempt_cap;
	uint64_t latency_buckets[LATENCY_BUCKETS]; /* not cumulative */
	uint64_t latency_count;
	int64_t latency_sum_ms;
};

struct queue_row {
	char *cloud_id;
	enum event_status status;
	int64_t count;
	int64_t oldest_created_ms;
};

struct metrics {
	struct MHD_Daemon *daemon;
	int epoll_fd;
	int port;
	struct store *store;

	struct app_metrics **apps;
	size_t app_count;
	int in_flight;
	uint64_t recovered;

	struct queue_row *queue;
	size_t queue_count;
	int64_t queue_read_ms;    /* monotonic; 0: never read */
	uint64_t queue_errors;
	int64_t started_ms;
};

/* ---- the listen address ------------------------------------------------- */

static int listen_split(const char *text, char host[HOST_SIZE],
			char port[PORT_SIZE], char *err, size_t errlen)
{
	const char *colon, *host_start = text, *host_end;
	int64_t number = 0;

	if (text[0] == '[') {
		host_start = text + 1;
		host_end = strchr(host_start, ']');
		if (!host_end || host_end[1] != ':') {
			snprintf(err, errlen, "'%s' is not [IPV6]:PORT", text);
			return -1;
		}
		colon = host_end + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon) {
			snprintf(err, errlen, "'%s' is not HOST:PORT", text);
			return -1;
		}
		host_end = colon;
		if (memchr(text, ':', (size_t)(colon - text))) {
			snprintf(err, errlen, "'%s': an IPv6 address goes in "
				 "brackets, [ADDRESS]:PORT", text);
			return -1;
		}
	}
	if (host_end == host_start || (size_t)(host_end - host_start) >= HOST_SIZE) {
		snprintf(err, errlen, "'%s' has no host (0.0.0.0 means every "
			 "address)", text);
		return -1;
	}
	if (colon[1] == '\0' || strlen(colon + 1) >= PORT_SIZE ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
		snprintf(err, errlen, "'%s': the port is not a number", text);
		return -1;
	}
	for (const char *p = colon + 1; *p; p++)
		number = number * 10 + (*p - '0');
	if (number > 65535) {
		snprintf(err, errlen, "'%s': the port is above 65535", text);
		return -1;
	}
	memcpy(host, host_start, (size_t)(host_end - host_start));
	host[host_end - host_start] = '\0';
	snprintf(port, PORT_SIZE, "%s", colon + 1);
	return 0;
}

int metrics_check_listen(const char *text, char *err, size_t errlen)
{
	char host[HOST_SIZE], port[PORT_SIZE];

	return listen_split(text, host, port, err, errlen);
}

int metrics_listen_shift(const char *text, int offset, char *out,
			 size_t outlen, char *err, size_t errlen)
{
	char host[HOST_SIZE], port[PORT_SIZE];
	long number;
	int n;

	if (listen_split(text, host, port, err, errlen) != 0)
		return -1;
	number = strtol(port, NULL, 10);
	if (number > 0)
		number += offset;
	if (number > 65535) {
		snprintf(err, errlen, "'%s': port %ld, for worker %d, is above "
			 "65535", text, number, offset + 1);
		return -1;
	}
	/* The host as written, brackets and all: everything before the
	 * port's colon. */
	n = snprintf(out, outlen, "%.*s:%ld",
		     (int)(strrchr(text, ':') - text), text, number);
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "'%s' is too long", text);
		return -1;
	}
	return 0;
}

/* A bound, listening, non-blocking socket on the first address that takes. */
static int listen_open(const char *text, int *port_out, char *err,
		       size_t errlen)
{
	char host[HOST_SIZE], port[PORT_SIZE];
	struct addrinfo hints, *list = NULL;
	struct sockaddr_storage bound;
	socklen_t bound_len = sizeof(bound);
	int fd = -1, saved = 0, rc;

	if (listen_split(text, host, port, err, errlen) != 0)
		return -1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &list);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve '%s': %s", host,
			 gai_strerror(rc));
		return -1;
	}
	for (struct addrinfo *ai = list; ai; ai = ai->ai_next) {
		int one = 1;

		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		/* Lets a restart bind while old connections linger; a port
		 * another process listens on is still refused. */
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
		    bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, LISTEN_BACKLOG) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(list);
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", text,
			 strerror(saved));
		return -1;
	}
	*port_out = 0;
	if (getsockname(fd, (struct sockaddr *)&bound, &bound_len) == 0) {
		if (bound.ss_family == AF_INET)
			*port_out = ntohs(((struct sockaddr_in *)&bound)->sin_port);
		else if (bound.ss_family == AF_INET6)
			*port_out = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
	}
	return fd;
}

/* ---- the series ------------------------------------------------------------ */

static struct app_metrics *app_get(struct metrics *m, const char *cloud_id)
{
	struct app_metrics **grown, *app;

	for (size_t i = 0; i < m->app_count; i++)
		if (strcmp(m->apps[i]->cloud_id, cloud_id) == 0)
			return m->apps[i];
	app = calloc(1, sizeof(*app));
	grown = app ? realloc(m->apps, (m->app_count + 1) * sizeof(*grown)) : NULL;
	if (grown)
		m->apps = grown;
	if (!grown || !(app->cloud_id = strdup(cloud_id))) {
		free(app);
		log_warn("metrics: out of memory for cloud_id=%s", cloud_id);
		return NULL;
	}
	m->apps[m->app_count++] = app;
	return app;
}

void metrics_config_state(struct metrics *m, const char *cloud_id,
			  enum metrics_config state)
{
	struct app_metrics *app = m ? app_get(m, cloud_id) : NULL;

	if (!app)
		return;
	app->config_known = 1;
	app->config = state;
	if (state == METRICS_CONFIG_ERROR)
		app->config_errors++;
}

void metrics_claimed(struct metrics *m, const char *cloud_id, size_t count)
{
	struct app_metrics *app = m && count ? app_get(m, cloud_id) : NULL;

	if (app)
		app->claimed += count;
}

void metrics_attempt(struct metrics *m, const char *cloud_id,
		     const char *outcome, enum transport transport,
		     long http_status)
{
	struct app_metrics *app = m ? app_get(m, cloud_id) : NULL;
	struct attempt_series *s;

	if (!app)
		return;
	for (size_t i = 0; i < app->attempt_count; i++) {
		s = &app->attempts[i];
		if (s->transport == transport && s->http_status == http_status &&
		    strcmp(s->outcome, outcome) == 0) {
			s->count++;
			return;
		}
	}
	if (app->attempt_count == app->attempt_cap) {
		size_t cap = app->attempt_cap ? app->attempt_cap * 2 : 8;
		struct attempt_series *grown =
			realloc(app->attempts, cap * sizeof(*grown));

		if (!grown) {
			log_warn("metrics: out of memory counting an attempt");
			return;
		}
		app->attempts = grown;
		app->attempt_cap = cap;
	}
	s = &app->attempts[app->attempt_count++];
	s->outcome = outcome;
	s->transport = transport;
	s->http_status = http_status;
	s->count = 1;
}

void metrics_delivered(struct metrics *m, const char *cloud_id,
		       int64_t latency_ms)
{
	struct app_metrics *app = m ? app_get(m, cloud_id) : NULL;
	size_t b;

	if (!app)
		return;
	/* The producer's clock may run ahead of ours. */
	if (latency_ms < 0)
		latency_ms = 0;
	for (b = 0; b < LATENCY_BUCKETS && latency_ms > latency_bounds_ms[b]; b++)
		;
	if (b < LATENCY_BUCKETS)
		app->latency_buckets[b]++;
	app->latency_count++;
	app->latency_sum_ms += latency_ms;
}

void metrics_unrenderable(struct metrics *m, const char *cloud_id)
{
	struct app_metrics *app = m ? app_get(m, cloud_id) : NULL;

	if (app)
		app->unrenderable++;
}

void metrics_recovered(struct metrics *m, int64_t count)
{
	if (m && count > 0)
		m->recovered += (uint64_t)count;
}

void metrics_in_flight(struct metrics *m, int count)
{
	if (m)
		m->in_flight = count;
}

/* ---- the queue, from the store ------------------------------------------- */

static void queue_clear(struct metrics *m)
{
	for (size_t i = 0; i < m->queue_count; i++)
		free(m->queue[i].cloud_id);
	free(m->queue);
	m->queue = NULL;
	m->queue_count = 0;
}

struct queue_read {
	struct queue_row *rows;
	size_t count;
	int failed;
};

static int queue_take(const struct queue_depth *d, void *arg)
{
	struct queue_read *read = arg;
	struct queue_row *row = &read->rows[read->count];

	row->cloud_id = strdup(d->cloud_id);
	if (!row->cloud_id) {
		read->failed = 1;
		return 1;
	}
	row->status = d->status;
	row->count = d->count;
	row->oldest_created_ms = d->oldest_created_ms;
	read->count++;
	return 0;
}

/* A failed read keeps the last numbers and counts the failure. */
static void queue_refresh(struct metrics *m)
{
	struct queue_read read = { NULL, 0, 0 };
	int64_t now = time_mono_ms();
	int rc;

	if (m->queue_read_ms && now - m->queue_read_ms < QUEUE_REFRESH_MS)
		return;
	m->queue_read_ms = now;
	read.rows = calloc(QUEUE_MAX_ROWS, sizeof(*read.rows));
	if (!read.rows) {
		m->queue_errors++;
		return;
	}
	rc = store_queue_depth(m->store, QUEUE_MAX_ROWS, queue_take, &read);
	if (rc != STORE_OK || read.failed) {
		log_debug("metrics: queue depth not read: %s",
			  read.failed ? "out of memory" : store_errmsg(m->store));
		m->queue_errors++;
		for (size_t i = 0; i < read.count; i++)
			free(read.rows[i].cloud_id);
		free(read.rows);
		return;
	}
	queue_clear(m);
	m->queue = read.rows;
	m->queue_count = read.count;
}

/* ---- the exposition ---------------------------------------------------- */

static void put_family(FILE *out, const char *name, const char *type,
		       const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the text format wants. */
static void put_value(FILE *out, const char *text)
{
	for (; *text; text++) {
		if (*text == '\\')
			fputs("\\\\", out);
		else if (*text == '"')
			fputs("\\\"", out);
		else if (*text == '\n')
			fputs("\\n", out);
		else
			fputc(*text, out);
	}
}

static void put_cloud(FILE *out, const char *name, const char *cloud_id)
{
	fprintf(out, "%s{cloud_id=\"", name);
	put_value(out, cloud_id);
	fputc('"', out);
}

static void put_ms_as_seconds(FILE *out, int64_t ms)
{
	fprintf(out, "%" PRId64 ".%03" PRId64, ms / 1000, ms % 1000);
}

static int queue_has(const struct metrics *m, const char *cloud_id,
		     enum event_status status)
{
	for (size_t i = 0; i < m->queue_count; i++)
		if (m->queue[i].status == status &&
		    strcmp(m->queue[i].cloud_id, cloud_id) == 0)
			return 1;
	return 0;
}

static void render_queue(struct metrics *m, FILE *out)
{
	int64_t now = time_now_ms();

	put_family(out, "smartrelay_queue_events", "gauge",
		   "Events waiting (pending) or in flight (sending), per app.");
	for (size_t i = 0; i < m->queue_count; i++) {
		put_cloud(out, "smartrelay_queue_events", m->queue[i].cloud_id);
		fprintf(out, ",status=\"%s\"} %" PRId64 "\n",
			store_status_name(m->queue[i].status), m->queue[i].count);
	}
	/* An app the relay knows shows an empty queue as 0, not as nothing,
	 * so that an alert on it does not vanish with the events. */
	for (size_t i = 0; i < m->app_count; i++) {
		static const enum event_status states[] = {
			EVENT_PENDING, EVENT_SENDING,
		};

		if (!m->apps[i]->config_known)
			continue;
		for (size_t j = 0; j < 2; j++) {
			if (queue_has(m, m->apps[i]->cloud_id, states[j]))
				continue;
			put_cloud(out, "smartrelay_queue_events", m->apps[i]->cloud_id);
			fprintf(out, ",status=\"%s\"} 0\n",
				store_status_name(states[j]));
		}
	}
	put_family(out, "smartrelay_oldest_pending_age_seconds", "gauge",
		   "Age of the oldest pending event (since created_at), per app.");
	for (size_t i = 0; i < m->queue_count; i++) {
		const struct queue_row *q = &m->queue[i];

		if (q->status != EVENT_PENDING || q->oldest_created_ms == 0)
			continue;
		put_cloud(out, "smartrelay_oldest_pending_age_seconds", q->cloud_id);
		fputs("} ", out);
		put_ms_as_seconds(out, now > q->oldest_created_ms
				  ? now - q->oldest_created_ms : 0);
		fputc('\n', out);
	}
	put_family(out, "smartrelay_queue_read_errors_total", "counter",
		   "Scrapes that could not read the queue depth and showed the "
		   "last one.");
	fprintf(out, "smartrelay_queue_read_errors_total %" PRIu64 "\n",
		m->queue_errors);
}

static void render_attempts(struct metrics *m, FILE *out)
{
	put_family(out, "smartrelay_events_claimed_total", "counter",
		   "Events claimed for an attempt, per app.");
	for (size_t i = 0; i < m->app_count; i++) {
		if (!m->apps[i]->claimed)
			continue;
		put_cloud(out, "smartrelay_events_claimed_total", m->apps[i]->cloud_id);
		fprintf(out, "} %" PRIu64 "\n", m->apps[i]->claimed);
	}
	put_family(out, "smartrelay_attempts_total", "counter",
		   "Attempts, by what they did to the event (delivered, retry, "
		   "failed, gone), how the transfer ended and the HTTP status "
		   "(none: no response).");
	for (size_t i = 0; i < m->app_count; i++) {
		const struct app_metrics *app = m->apps[i];

		for (size_t j = 0; j < app->attempt_count; j++) {
			const struct attempt_series *s = &app->attempts[j];

			put_cloud(out, "smartrelay_attempts_total", app->cloud_id);
			fprintf(out, ",outcome=\"%s\",transport=\"%s\",status=\"",
				s->outcome, policy_transport_name(s->transport));
			if (s->http_status > 0)
				fprintf(out, "%ld", s->http_status);
			else
				fputs("none", out);
			fprintf(out, "\"} %" PRIu64 "\n", s->count);
		}
	}
	put_family(out, "smartrelay_events_unrenderable_total", "counter",
		   "Events failed without a request because they could not be "
		   "rendered, per app.");
	for (size_t i = 0; i < m->app_count; i++) {
		if (!m->apps[i]->unrenderable)
			continue;
		put_cloud(out, "smartrelay_events_unrenderable_total",
			  m->apps[i]->cloud_id);
		fprintf(out, "} %" PRIu64 "\n", m->apps[i]->unrenderable);
	}
}

static void render_latency(struct metrics *m, FILE *out)
{
	const char *name = "smartrelay_delivery_latency_seconds";

	put_family(out, name, "histogram",
		   "Time from an event's created_at to its 204, per app.");
	for (size_t i = 0; i < m->app_count; i++) {
		const struct app_metrics *app = m->apps[i];
		uint64_t cumulative = 0;

		if (!app->latency_count)
			continue;
		for (size_t b = 0; b < LATENCY_BUCKETS; b++) {
			cumulative += app->latency_buckets[b];
			put_cloud(out, "smartrelay_delivery_latency_seconds_bucket",
				  app->cloud_id);
			fprintf(out, ",le=\"%s\"} %" PRIu64 "\n",
				latency_bounds_text[b], cumulative);
		}
		put_cloud(out, "smartrelay_delivery_latency_seconds_bucket",
			  app->cloud_id);
		fprintf(out, ",le=\"+Inf\"} %" PRIu64 "\n", app->latency_count);
		put_cloud(out, "smartrelay_delivery_latency_seconds_sum",
			  app->cloud_id);
		fputs("} ", out);
		put_ms_as_seconds(out, app->latency_sum_ms);
		fputc('\n', out);
		put_cloud(out, "smartrelay_delivery_latency_seconds_count",
			  app->cloud_id);
		fprintf(out, "} %" PRIu64 "\n", app->latency_count);
	}
}

static void render_config(struct metrics *m, FILE *out)
{
	put_family(out, "smartrelay_config_error", "gauge",
		   "1 while the app's options are invalid or missing (its events "
		   "wait).");
	for (size_t i = 0; i < m->app_count; i++) {
		if (!m->apps[i]->config_known)
			continue;
		put_cloud(out, "smartrelay_config_error", m->apps[i]->cloud_id);
		fprintf(out, "} %d\n", m->apps[i]->config == METRICS_CONFIG_ERROR);
	}
	put_family(out, "smartrelay_config_errors_total", "counter",
		   "Configuration errors reported, per app (one per change of "
		   "its options).");
	for (size_t i = 0; i < m->app_count; i++) {
		if (!m->apps[i]->config_known)
			continue;
		put_cloud(out, "smartrelay_config_errors_total", m->apps[i]->cloud_id);
		fprintf(out, "} %" PRIu64 "\n", m->apps[i]->config_errors);
	}
	put_family(out, "smartrelay_endpoint_disabled", "gauge",
		   "1 while the app's endpoint is disabled after a 410 Gone.");
	for (size_t i = 0; i < m->app_count; i++) {
		if (!m->apps[i]->config_known)
			continue;
		put_cloud(out, "smartrelay_endpoint_disabled", m->apps[i]->cloud_id);
		fprintf(out, "} %d\n",
			m->apps[i]->config == METRICS_CONFIG_DISABLED);
	}
}

char *metrics_render(struct metrics *m, size_t *len)
{
	char *text = NULL;
	size_t size = 0;
	FILE *out;
	int failed;

	queue_refresh(m);
	out = open_memstream(&text, &size);
	if (!out)
		return NULL;
	put_family(out, "smartrelay_info", "gauge",
		   "The relay's version; always 1.");
	fprintf(out, "smartrelay_info{version=\"%s\"} 1\n", SMARTRELAY_VERSION);
	put_family(out, "smartrelay_start_time_seconds", "gauge",
		   "When the relay started, in seconds since the epoch.");
	fputs("smartrelay_start_time_seconds ", out);
	put_ms_as_seconds(out, m->started_ms);
	fputc('\n', out);
	put_family(out, "smartrelay_transfers_in_flight", "gauge",
		   "HTTP requests in flight.");
	fprintf(out, "smartrelay_transfers_in_flight %d\n", m->in_flight);
	put_family(out, "smartrelay_leases_recovered_total", "counter",
		   "Events taken back to pending after their claim's lease "
		   "expired.");
	fprintf(out, "smartrelay_leases_recovered_total %" PRIu64 "\n",
		m->recovered);
	render_queue(m, out);
	render_attempts(m, out);
	render_latency(m, out);
	render_config(m, out);
	failed = ferror(out);
	if (fclose(out) != 0 || failed) {
		free(text);
		return NULL;
	}
	*len = size;
	return text;
}

/* ---- the server -------------------------------------------------------- */

static enum MHD_Result answer_text(struct MHD_Connection *connection,
				   unsigned int code, const char *text)
{
	struct MHD_Response *response = MHD_create_response_from_buffer(
		strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!response)
		return MHD_NO;
	if (MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
				    "text/plain; charset=utf-8") != MHD_YES) {
		MHD_destroy_response(response);
		return MHD_NO;
	}
	ret = MHD_queue_response(connection, code, response);
	MHD_destroy_response(response);
	return ret;
}

static enum MHD_Result metrics_answer(void *cls,
				      struct MHD_Connection *connection,
				      const char *url, const char *method,
				      const char *version,
				      const char *upload_data,
				      size_t *upload_data_size, void **con_cls)
{
	struct metrics *m = cls;
	struct MHD_Response *response;
	enum MHD_Result ret;
	size_t len = 0;
	char *text;

	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		/* Whatever body was sent is read and dropped. */
		*upload_data_size = 0;
		return answer_text(connection, MHD_HTTP_METHOD_NOT_ALLOWED,
				   "only GET /metrics\n");
	}
	if (strcmp(url, "/metrics") != 0)
		return answer_text(connection, MHD_HTTP_NOT_FOUND,
				   "not found: the metrics are at /metrics\n");
	text = metrics_render(m, &len);
	if (!text)
		return answer_text(connection, MHD_HTTP_INTERNAL_SERVER_ERROR,
				   "out of memory\n");
	response = MHD_create_response_from_buffer(len, text,
						   MHD_RESPMEM_MUST_FREE);
	if (!response) {
		free(text);
		return MHD_NO;
	}
	if (MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
				    CONTENT_TYPE) != MHD_YES) {
		MHD_destroy_response(response);
		return MHD_NO;
	}
	ret = MHD_queue_response(connection, MHD_HTTP_OK, response);
	MHD_destroy_response(response);
	return ret;
}

static void metrics_mhd_log(void *cls, const char *fmt, va_list ap)
	SR_PRINTF(2, 0);

static void metrics_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t len;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	len = strlen(line);
	while (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	log_debug("metrics: %s", line);
}

int metrics_open(const char *listen, struct store *store,
		 struct metrics **out, char *err, size_t errlen)
{
	struct metrics *m = NULL;
	const union MHD_DaemonInfo *info;
	int fd = -1;

	*out = NULL;
	if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) != MHD_YES) {
		snprintf(err, errlen, "libmicrohttpd was built without epoll");
		goto fail;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	m->store = store;
	m->epoll_fd = -1;
	m->started_ms = time_now_ms();
	fd = listen_open(listen, &m->port, err, errlen);
	if (fd < 0)
		goto fail;
	m->daemon = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
		metrics_answer, m,
		MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)MAX_CONNECTIONS,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S,
		MHD_OPTION_EXTERNAL_LOGGER, metrics_mhd_log, (void *)NULL,
		MHD_OPTION_END);
	if (!m->daemon) {
		snprintf(err, errlen, "cannot start the metrics server on %s",
			 listen);
		goto fail;
	}
	fd = -1; /* the daemon owns it now */
	info = MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info) {
		snprintf(err, errlen, "the metrics server has no epoll descriptor");
		goto fail;
	}
	m->epoll_fd = info->epoll_fd;
	*out = m;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	metrics_close(m);
	return -1;
}

void metrics_close(struct metrics *m)
{
	if (!m)
		return;
	if (m->daemon)
		MHD_stop_daemon(m->daemon);
	queue_clear(m);
	for (size_t i = 0; i < m->app_count; i++) {
		free(m->apps[i]->attempts);
		free(m->apps[i]->cloud_id);
		free(m->apps[i]);
	}
	free(m->apps);
	free(m);
}

int metrics_port(const struct metrics *m)
{
	return m ? m->port : 0;
}

int metrics_fd(const struct metrics *m)
{
	return m ? m->epoll_fd : -1;
}

int metrics_wait_ms(struct metrics *m, int wait_ms)
{
	MHD_UNSIGNED_LONG_LONG timeout = 0;

	if (!m || MHD_get_timeout(m->daemon, &timeout) != MHD_YES)
		return wait_ms;
	return timeout < (MHD_UNSIGNED_LONG_LONG)wait_ms ? (int)timeout : wait_ms;
}

void metrics_serve(struct metrics *m)
{
	if (m && MHD_run(m->daemon) != MHD_YES)
		log_debug("metrics: the server could not run");
}
