/*
 * test_transfer.c - the transfer pool against a real loopback receiver.
 *
 * One receiver (tools/receiver.c) serves the whole suite; each test uses
 * its own event ids and finds its requests in the receiver's record by
 * their webhook-id. Faults (refused, hang, reset, endless body) come from
 * the receiver's paths; the URL check and the transport table are pure.
 */
#include <check.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "addrpolicy.h"
#include "sign.h"
#include "testutil.h"
#include "timeutil.h"
#include "transfer.h"
#include "version.h"

#define RUN_LIMIT_MS 10000

static struct tu_receiver rx;
static char *rx_dir;

/* Runs in the parent process, so the receiver outlives every forked test
 * and is stopped even when one fails. */
static void receiver_setup(void)
{
	rx_dir = tu_tmpdir("transfer");
	tu_receiver_start(&rx, rx_dir);
}

static void receiver_teardown(void)
{
	tu_receiver_stop(&rx);
	free(rx_dir);
	rx_dir = NULL;
}

static struct transfer_pool *pool_new(int max_transfers)
{
	struct transfer_pool_options options = { .max_transfers = max_transfers };
	struct transfer_pool *pool = NULL;
	char err[256] = "";

	ck_assert_msg(transfer_pool_new(&options, &pool, err, sizeof(err)) == 0,
		      "pool: %s", err);
	return pool;
}

struct endpoint_args {
	const char *method;
	const char *const *headers;
	size_t header_count;
	int64_t timeout_ms; /* 0: 5 s */
	const char *signing_secret;
};

static struct transfer_endpoint *endpoint_for(const char *url,
					      const struct endpoint_args *args)
{
	struct transfer_endpoint_spec spec = {
		.url = url,
		.content_type = "application/json",
		.timeout_ms = 5000,
	};
	struct transfer_endpoint *ep = NULL;
	char err[256] = "";

	if (args) {
		spec.method = args->method;
		spec.headers = args->headers;
		spec.header_count = args->header_count;
		if (args->timeout_ms)
			spec.timeout_ms = args->timeout_ms;
		spec.signing_secret = args->signing_secret;
	}
	ck_assert_msg(transfer_endpoint_new(&spec, &ep, err, sizeof(err)) == 0,
		      "endpoint %s: %s", url, err);
	return ep;
}

static struct transfer_endpoint *receiver_endpoint(const char *path,
						   const struct endpoint_args *args)
{
	char *url = tu_receiver_url(&rx, path);
	struct transfer_endpoint *ep = endpoint_for(url, args);

	free(url);
	return ep;
}

static char *dup_bytes(const char *bytes, size_t len)
{
	char *copy = malloc(len ? len : 1);

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, bytes, len);
	return copy;
}

static void start(struct transfer_pool *pool, struct transfer_endpoint *ep,
		  int64_t id, const char *body, void *owner)
{
	char err[256] = "";
	size_t len = body ? strlen(body) : 0;

	ck_assert_msg(transfer_start(pool, ep, id, body ? dup_bytes(body, len) : NULL,
				     len, owner, err, sizeof(err)) == 0,
		      "start: %s", err);
}

/* Drives the pool until a transfer finishes; 0 when none did in time. */
static int drive(struct transfer_pool *pool, struct transfer_result *result,
		 int limit_ms)
{
	int64_t end = time_mono_ms() + limit_ms;

	while (time_mono_ms() < end) {
		if (transfer_pool_reap(pool, result))
			return 1;
		ck_assert_int_eq(transfer_pool_poll(pool, 50, NULL, 0, NULL), 0);
	}
	return transfer_pool_reap(pool, result);
}

/* One request of event id to path, run to its end. */
static void run_one(const char *path, const struct endpoint_args *args,
		    int64_t id, const char *body, struct transfer_result *result)
{
	struct transfer_pool *pool = pool_new(4);
	struct transfer_endpoint *ep = receiver_endpoint(path, args);

	start(pool, ep, id, body, NULL);
	ck_assert_msg(drive(pool, result, RUN_LIMIT_MS), "no result for %s", path);
	ck_assert_int_eq(result->event_id, id);
	ck_assert_int_eq(transfer_pool_active(pool), 0);
	transfer_endpoint_unref(ep);
	transfer_pool_free(pool);
}

/*
 * The recorded requests that carry webhook-id id: returns how many, and
 * the last one (new, *len bytes) in *raw when raw is not NULL.
 */
static int find_requests(int64_t id, char **raw, size_t *len)
{
	char *record = tu_receiver_requests(&rx);
	char needle[64];
	const char *p = record;
	int count = 0;

	snprintf(needle, sizeof(needle), "\r\nwebhook-id: %" PRId64 "\r\n", id);
	if (raw)
		*raw = NULL;
	while ((p = strstr(p, "=== REQUEST ")) != NULL) {
		unsigned long long seq, nbytes;
		const char *start_of_raw = strchr(p, '\n');

		ck_assert_ptr_nonnull(start_of_raw);
		ck_assert_int_eq(sscanf(p, "=== REQUEST %llu %llu", &seq, &nbytes), 2);
		start_of_raw++;
		if (memmem(start_of_raw, nbytes, needle, strlen(needle))) {
			count++;
			if (raw) {
				free(*raw);
				*raw = dup_bytes(start_of_raw, nbytes);
				*len = nbytes;
			}
		}
		p = start_of_raw + nbytes;
		ck_assert_int_eq(*p, '\n');
	}
	free(record);
	return count;
}

/* The value of header name in raw (new string), or NULL; *count how many
 * times it was sent. */
static char *header_value(const char *raw, size_t len, const char *name,
			  int *count)
{
	const char *end = memmem(raw, len, "\r\n\r\n", 4);
	const char *line = memmem(raw, len, "\r\n", 2);
	size_t name_len = strlen(name);
	char *value = NULL;

	*count = 0;
	ck_assert_ptr_nonnull(end);
	while (line && line < end) {
		const char *eol;

		line += 2;
		eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
		if (!eol)
			break;
		if ((size_t)(eol - line) > name_len && line[name_len] == ':' &&
		    strncasecmp(line, name, name_len) == 0) {
			const char *v = line + name_len + 1;

			while (*v == ' ')
				v++;
			(*count)++;
			free(value);
			value = strndup(v, (size_t)(eol - v));
		}
		line = eol;
	}
	return value;
}

static int header_lines(const char *raw, size_t len)
{
	const char *end = memmem(raw, len, "\r\n\r\n", 4);
	int lines = 0;

	for (const char *p = raw; p && p < end; p = memmem(p + 2, (size_t)(end - p), "\r\n", 2))
		lines++;
	/* The request line is not a header. */
	return lines - 1;
}

static void assert_header(const char *raw, size_t len, const char *name,
			  const char *expected)
{
	int count;
	char *value = header_value(raw, len, name, &count);

	ck_assert_msg(count == 1, "%s sent %d times", name, count);
	ck_assert_str_eq(value, expected);
	free(value);
}

static void assert_no_header(const char *raw, size_t len, const char *name)
{
	int count;
	char *value = header_value(raw, len, name, &count);

	ck_assert_msg(count == 0, "%s sent: %s", name, value);
	free(value);
}

START_TEST(test_post_exact_bytes)
{
	/* The NUL proves the length, not strlen(), delimits the body. */
	static const char body[] = "{\"n\":\"caf\xc3\xa9\"}\0tail";
	size_t body_len = sizeof(body) - 1;
	struct transfer_pool *pool = pool_new(2);
	struct transfer_endpoint *ep = receiver_endpoint("/status/204", NULL);
	struct transfer_result result;
	char err[256] = "", host[64], content_length[16];
	int64_t before = time_now_ms(), after;
	int owner;
	char *raw;
	size_t len;
	const char *blank;

	ck_assert_int_eq(transfer_start(pool, ep, 42001, dup_bytes(body, body_len),
					body_len, &owner, err, sizeof(err)), 0);
	ck_assert_int_eq(transfer_pool_active(pool), 1);
	ck_assert(drive(pool, &result, RUN_LIMIT_MS));
	after = time_now_ms();
	ck_assert_ptr_eq(result.owner, &owner);
	ck_assert_int_eq(result.event_id, 42001);
	ck_assert_int_eq(result.transport, TRANSPORT_OK);
	ck_assert_int_eq(result.http_status, 204);
	ck_assert_int_eq(result.retry_after_ms, -1);
	ck_assert_str_eq(result.error, "");
	ck_assert_int_ge(result.started_ms, before);
	ck_assert_int_le(result.started_ms, after);
	ck_assert_int_ge(result.duration_ms, 0);
	ck_assert_int_le(result.duration_ms, after - before + 1);

	ck_assert_int_eq(find_requests(42001, &raw, &len), 1);
	ck_assert_msg(strncmp(raw, "POST /status/204 HTTP/1.1\r\n", 27) == 0,
		      "request line: %.40s", raw);
	snprintf(host, sizeof(host), "127.0.0.1:%d", rx.port);
	snprintf(content_length, sizeof(content_length), "%zu", body_len);
	assert_header(raw, len, "Host", host);
	assert_header(raw, len, "User-Agent", "smartrelay/" SMARTRELAY_VERSION);
	assert_header(raw, len, "Content-Type", "application/json");
	assert_header(raw, len, "Content-Length", content_length);
	assert_header(raw, len, "webhook-id", "42001");
	assert_no_header(raw, len, "Expect");
	assert_no_header(raw, len, "Accept");
	ck_assert_int_eq(header_lines(raw, len), 5);
	blank = memmem(raw, len, "\r\n\r\n", 4);
	ck_assert_ptr_nonnull(blank);
	ck_assert_uint_eq(len - (size_t)(blank + 4 - raw), body_len);
	ck_assert(memcmp(blank + 4, body, body_len) == 0);
	free(raw);
	transfer_endpoint_unref(ep);
	transfer_pool_free(pool);
}
END_TEST

START_TEST(test_empty_body_is_still_a_post)
{
	struct transfer_result result;
	char *raw;
	size_t len;

	run_one("/status/204", NULL, 42101, NULL, &result);
	ck_assert_int_eq(result.http_status, 204);
	ck_assert_int_eq(find_requests(42101, &raw, &len), 1);
	ck_assert(strncmp(raw, "POST /status/204 HTTP/1.1\r\n", 27) == 0);
	assert_header(raw, len, "Content-Length", "0");
	free(raw);
}
END_TEST

/* A provider's URL with bytes outside ASCII goes out percent-encoded;
 * what was encoded already is sent as configured. */
START_TEST(test_url_bytes_outside_ascii_are_encoded)
{
	struct transfer_result result;
	static const char line[] =
		"POST /%c5%a1/%C5%A1?q=%c5%a1&r=a%2Fb HTTP/1.1\r\n";
	char *raw;
	size_t len;

	run_one("/\xc5\xa1/%C5%A1?q=\xc5\xa1&r=a%2Fb", NULL, 42161,
		NULL, &result);
	ck_assert_int_eq(result.http_status, 204);
	ck_assert_int_eq(find_requests(42161, &raw, &len), 1);
	ck_assert_msg(strncmp(raw, line, sizeof(line) - 1) == 0,
		      "request line: %.60s", raw);
	free(raw);
}
END_TEST

/* Past 1 MiB libcurl would ask for 100-continue unless told not to. */
START_TEST(test_large_body_without_expect)
{
	enum { SIZE = 2 * 1024 * 1024 + 3 };
	struct transfer_pool *pool = pool_new(1);
	struct transfer_endpoint *ep = receiver_endpoint("/status/204", NULL);
	struct transfer_result result;
	char err[256] = "", *body = malloc(SIZE), *raw;
	size_t len;
	const char *blank;

	ck_assert_ptr_nonnull(body);
	for (size_t i = 0; i < SIZE; i++)
		body[i] = (char)('a' + i % 26);
	ck_assert_int_eq(transfer_start(pool, ep, 42151, dup_bytes(body, SIZE), SIZE,
					NULL, err, sizeof(err)), 0);
	ck_assert(drive(pool, &result, RUN_LIMIT_MS));
	ck_assert_int_eq(result.http_status, 204);
	ck_assert_int_eq(find_requests(42151, &raw, &len), 1);
	assert_no_header(raw, len, "Expect");
	blank = memmem(raw, len, "\r\n\r\n", 4);
	ck_assert_ptr_nonnull(blank);
	ck_assert_uint_eq(len - (size_t)(blank + 4 - raw), SIZE);
	ck_assert(memcmp(blank + 4, body, SIZE) == 0);
	free(raw);
	free(body);
	transfer_endpoint_unref(ep);
	transfer_pool_free(pool);
}
END_TEST

START_TEST(test_custom_headers_replace_defaults)
{
	static const char *const headers[] = {
		"User-Agent: probe/2.0",
		"X-Tenant: acme",
		"X-Empty:",
		"Accept: application/json",
	};
	struct endpoint_args args = { .headers = headers, .header_count = 4 };
	struct transfer_result result;
	char *raw;
	size_t len;

	run_one("/status/204", &args, 42201, "{}", &result);
	ck_assert_int_eq(result.http_status, 204);
	ck_assert_int_eq(find_requests(42201, &raw, &len), 1);
	assert_header(raw, len, "User-Agent", "probe/2.0");
	assert_header(raw, len, "X-Tenant", "acme");
	assert_header(raw, len, "X-Empty", "");
	assert_header(raw, len, "Accept", "application/json");
	assert_header(raw, len, "Content-Type", "application/json");
	assert_header(raw, len, "webhook-id", "42201");
	assert_no_header(raw, len, "Expect");
	ck_assert_ptr_null(memmem(raw, len, "smartrelay/", 11));
	free(raw);
}
END_TEST

START_TEST(test_put_method)
{
	struct endpoint_args args = { .method = "PUT" };
	struct transfer_result result;
	char *raw;
	size_t len;

	run_one("/status/204", &args, 42301, "{\"put\":1}", &result);
	ck_assert_int_eq(result.transport, TRANSPORT_OK);
	ck_assert_int_eq(result.http_status, 204);
	ck_assert_int_eq(find_requests(42301, &raw, &len), 1);
	ck_assert_msg(strncmp(raw, "PUT /status/204 HTTP/1.1\r\n", 26) == 0,
		      "request line: %.40s", raw);
	assert_header(raw, len, "Content-Length", "9");
	ck_assert(len > 9 && memcmp(raw + len - 9, "{\"put\":1}", 9) == 0);
	free(raw);
}
END_TEST

START_TEST(test_retry_after_seconds)
{
	struct transfer_result result;

	run_one("/status/500?retry_after=7", NULL, 42401, "{}", &result);
	ck_assert_int_eq(result.transport, TRANSPORT_OK);
	ck_assert_int_eq(result.http_status, 500);
	ck_assert_int_eq(result.retry_after_ms, 7000);
	ck_assert_str_eq(result.error, "");
}
END_TEST

START_TEST(test_retry_after_http_date)
{
	char date[64], path[160];
	time_t when = time(NULL) + 60;
	struct tm tm;
	struct transfer_result result;

	gmtime_r(&when, &tm);
	/* '+' is a space in the receiver's query decoding. */
	ck_assert_uint_gt(strftime(date, sizeof(date), "%a,+%d+%b+%Y+%H:%M:%S+GMT",
				   &tm), 0);
	snprintf(path, sizeof(path), "/status/503?retry_after=%s", date);
	run_one(path, NULL, 42501, "{}", &result);
	ck_assert_int_eq(result.http_status, 503);
	ck_assert_msg(result.retry_after_ms >= 55000 && result.retry_after_ms <= 61000,
		      "retry_after_ms %" PRId64, result.retry_after_ms);
}
END_TEST

START_TEST(test_retry_after_absent_and_zero)
{
	/* One slot: every transfer reuses the same easy handle, so a value
	 * left from an earlier response would show. */
	struct transfer_pool *pool = pool_new(1);
	struct transfer_endpoint *with7 = receiver_endpoint("/status/429?retry_after=7", NULL);
	struct transfer_endpoint *none = receiver_endpoint("/status/503", NULL);
	struct transfer_endpoint *zero = receiver_endpoint("/status/503?retry_after=0", NULL);
	struct transfer_result result;

	start(pool, with7, 42601, "{}", NULL);
	ck_assert(drive(pool, &result, RUN_LIMIT_MS));
	ck_assert_int_eq(result.http_status, 429);
	ck_assert_int_eq(result.retry_after_ms, 7000);

	start(pool, none, 42602, "{}", NULL);
	ck_assert(drive(pool, &result, RUN_LIMIT_MS));
	ck_assert_int_eq(result.http_status, 503);
	ck_assert_int_eq(result.retry_after_ms, -1);

	start(pool, zero, 42603, "{}", NULL);
	ck_assert(drive(pool, &result, RUN_LIMIT_MS));
	ck_assert_int_eq(result.http_status, 503);
	ck_assert_int_eq(result.retry_after_ms, 0);

	transfer_endpoint_unref(with7);
	transfer_endpoint_unref(none);
	transfer_endpoint_unref(zero);
	transfer_pool_free(pool);
}
END_TEST

/* A loopback port that nothing listens on: bound, then released. */
static int closed_port(void)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t addr_len = sizeof(addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	ck_assert_int_ge(fd, 0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&addr, &addr_len), 0);
	port = ntohs(addr.sin_port);
	close(fd);
	return port;
}

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

/* The signature covers this request's own id, timestamp and body. */
START_TEST(test_signed_request)
{
	static const char body[] = "{\"test\": 2432232314}";
	struct endpoint_args args = { .signing_secret = SECRET };
	struct transfer_result result;
	struct sign_keys *keys = NULL;
	char *raw = NULL, *stamp, *signature;
	char expected[SIGN_SIGNATURE_SIZE], err[256] = "";
	size_t len = 0;
	int64_t before = time(NULL);
	int count;

	run_one("/signed", &args, 44801, body, &result);
	ck_assert_int_eq(result.http_status, 204);
	ck_assert_int_eq(find_requests(44801, &raw, &len), 1);
	assert_header(raw, len, "webhook-id", "44801");
	stamp = header_value(raw, len, "webhook-timestamp", &count);
	ck_assert_int_eq(count, 1);
	ck_assert_int_ge(strtoll(stamp, NULL, 10), before);
	ck_assert_int_le(strtoll(stamp, NULL, 10), time(NULL));
	signature = header_value(raw, len, "webhook-signature", &count);
	ck_assert_int_eq(count, 1);
	ck_assert_int_eq(sign_keys_new(SECRET, &keys, err, sizeof(err)), 0);
	ck_assert_int_eq(sign_signature(keys, "44801", strtoll(stamp, NULL, 10),
					body, strlen(body), expected,
					sizeof(expected), err, sizeof(err)), 0);
	ck_assert_str_eq(signature, expected);
	sign_keys_free(keys);
	free(signature);
	free(stamp);
	free(raw);
}
END_TEST

/* With an address policy, the receiver on 127.0.0.1 is out of bounds. */
START_TEST(test_denied_address)
{
	struct transfer_pool_options options = { .max_transfers = 1 };
	struct transfer_pool *pool = NULL;
	struct addrpolicy *policy = NULL;
	struct transfer_endpoint *ep;
	struct transfer_result result;
	char err[256] = "";

	ck_assert_int_eq(addrpolicy_new(NULL, &policy, err, sizeof(err)), 0);
	options.addresses = policy;
	ck_assert_msg(transfer_pool_new(&options, &pool, err, sizeof(err)) == 0,
		      "%s", err);
	ep = receiver_endpoint("/status/204", NULL);
	start(pool, ep, 44802, "{}", NULL);
	ck_assert(drive(pool, &result, RUN_LIMIT_MS));
	ck_assert_int_eq(result.transport, TRANSPORT_CONNECT);
	ck_assert_int_eq(result.http_status, 0);
	ck_assert_msg(strstr(result.error, "127.0.0.1 is a loopback address")
		      != NULL, "error: %s", result.error);
	ck_assert_int_eq(find_requests(44802, NULL, NULL), 0);
	transfer_endpoint_unref(ep);
	transfer_pool_free(pool);
	addrpolicy_free(policy);
}
END_TEST

START_TEST(test_refused_connection)
{
	struct transfer_pool *pool = pool_new(1);
	char url[64];
	struct transfer_endpoint *ep;
	struct transfer_result result;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/status/204", closed_port());
	ep = endpoint_for(url, NULL);
	start(pool, ep, 42701, "{}", NULL);
	ck_assert(drive(pool, &result, RUN_LIMIT_MS));
	ck_assert_int_eq(result.transport, TRANSPORT_CONNECT);
	ck_assert_int_eq(result.http_status, 0);
	ck_assert_int_eq(result.retry_after_ms, -1);
	ck_assert_str_ne(result.error, "");
	transfer_endpoint_unref(ep);
	transfer_pool_free(pool);
}
END_TEST

START_TEST(test_hang_times_out)
{
	struct endpoint_args args = { .timeout_ms = 300 };
	struct transfer_result result;

	run_one("/hang", &args, 42801, "{}", &result);
	ck_assert_int_eq(result.transport, TRANSPORT_TIMEOUT);
	ck_assert_int_eq(result.http_status, 0);
	ck_assert_int_ge(result.duration_ms, 250);
	ck_assert_int_lt(result.duration_ms, 3000);
	ck_assert_str_ne(result.error, "");
	ck_assert_int_eq(find_requests(42801, NULL, NULL), 1);
}
END_TEST

START_TEST(test_reset)
{
	struct transfer_result result;

	run_one("/reset", NULL, 42901, "{}", &result);
	ck_assert_int_eq(result.transport, TRANSPORT_RESET);
	ck_assert_int_eq(result.http_status, 0);
	ck_assert_str_ne(result.error, "");
}
END_TEST

START_TEST(test_endless_body_is_cut)
{
	struct endpoint_args args = { .timeout_ms = 10000 };
	struct transfer_result result;

	run_one("/endless/200", &args, 43001, "{}", &result);
	ck_assert_int_eq(result.transport, TRANSPORT_OK);
	ck_assert_int_eq(result.http_status, 200);
	ck_assert_str_eq(result.error, "");
	ck_assert_int_lt(result.duration_ms, 3000);
}
END_TEST

START_TEST(test_redirect_not_followed)
{
	struct transfer_result result;
	char *record;

	run_one("/status/302", NULL, 43101, "{}", &result);
	ck_assert_int_eq(result.transport, TRANSPORT_OK);
	ck_assert_int_eq(result.http_status, 302);
	/* Give a follow-up request the time to show up, were one made. */
	tu_sleep_ms(200);
	ck_assert_int_eq(find_requests(43101, NULL, NULL), 1);
	record = tu_receiver_requests(&rx);
	ck_assert_int_eq(tu_count(record, "/elsewhere"), 0);
	free(record);
}
END_TEST

START_TEST(test_slow_answer)
{
	struct transfer_result result;

	run_one("/slow/200", NULL, 43201, "{}", &result);
	ck_assert_int_eq(result.transport, TRANSPORT_OK);
	ck_assert_int_eq(result.http_status, 204);
	ck_assert_int_ge(result.duration_ms, 190);
}
END_TEST

/* The test receiver's late answers keep their status and Retry-After. */
START_TEST(test_slow_status_answer)
{
	struct transfer_result result;

	run_one("/status/503?retry_after=7&delay_ms=200", NULL, 43202, "{}",
		&result);
	ck_assert_int_eq(result.transport, TRANSPORT_OK);
	ck_assert_int_eq(result.http_status, 503);
	ck_assert_int_eq(result.retry_after_ms, 7000);
	ck_assert_int_ge(result.duration_ms, 190);
}
END_TEST

START_TEST(test_seq_per_event)
{
	struct transfer_pool *pool = pool_new(1);
	struct transfer_endpoint *ep = receiver_endpoint("/seq/503,500,204", NULL);
	static const long expected[] = { 503, 500, 204, 204 };
	struct transfer_result result;

	for (int i = 0; i < 4; i++) {
		start(pool, ep, 43301, "{}", NULL);
		ck_assert(drive(pool, &result, RUN_LIMIT_MS));
		ck_assert_int_eq(result.http_status, expected[i]);
	}
	/* Another event starts its own count. */
	start(pool, ep, 43302, "{}", NULL);
	ck_assert(drive(pool, &result, RUN_LIMIT_MS));
	ck_assert_int_eq(result.http_status, 503);
	transfer_endpoint_unref(ep);
	transfer_pool_free(pool);
}
END_TEST

struct ids_line {
	int64_t id;
	int status;
	unsigned long long serial;
};

/* The ids-file lines of events first..first+n-1, in *lines (new). */
static int read_ids(int64_t first, int n, struct ids_line **lines)
{
	char *text = tu_read_file(rx.ids_path, NULL);
	char *line, *next;
	int count = 0;

	*lines = calloc((size_t)n + 1, sizeof(**lines));
	ck_assert_ptr_nonnull(*lines);
	ck_assert_ptr_nonnull(text);
	for (line = text; *line; line = next) {
		char id[80];
		long long ms;
		struct ids_line l;

		next = strchr(line, '\n');
		ck_assert_ptr_nonnull(next);
		*next++ = '\0';
		ck_assert_int_eq(sscanf(line, "%79s %d %lld %llu", id, &l.status,
					&ms, &l.serial), 4);
		if (sscanf(id, "%" SCNd64, &l.id) != 1 || l.id < first ||
		    l.id >= first + n)
			continue;
		ck_assert_int_lt(count, n + 1);
		(*lines)[count++] = l;
	}
	free(text);
	return count;
}

START_TEST(test_many_transfers_reuse_connections)
{
	enum { TOTAL = 300, CAP = 16, FIRST = 50000 };
	struct transfer_pool *pool = pool_new(CAP);
	struct transfer_endpoint *ep = receiver_endpoint("/status/204", NULL);
	struct transfer_result result;
	struct ids_line *lines;
	unsigned char seen[TOTAL] = { 0 };
	int owners[TOTAL];
	int started = 0, done = 0, serials = 0;
	int64_t end = time_mono_ms() + 30000;
	char err[256];

	while (done < TOTAL && time_mono_ms() < end) {
		while (started < TOTAL && transfer_pool_active(pool) < CAP) {
			start(pool, ep, FIRST + started, "{\"bulk\":true}",
			      &owners[started]);
			started++;
		}
		ck_assert_int_le(transfer_pool_active(pool), CAP);
		if (started < TOTAL) {
			/* The cap is enforced, and the refused body freed. */
			ck_assert_int_eq(transfer_start(pool, ep, 1, strdup("{}"), 2,
							NULL, err, sizeof(err)), -1);
			ck_assert_str_ne(err, "");
		}
		ck_assert_int_eq(transfer_pool_poll(pool, 100, NULL, 0, NULL), 0);
		while (transfer_pool_reap(pool, &result)) {
			int index = (int)(result.event_id - FIRST);

			ck_assert_int_ge(index, 0);
			ck_assert_int_lt(index, TOTAL);
			ck_assert_int_eq(seen[index], 0);
			ck_assert_ptr_eq(result.owner, &owners[index]);
			ck_assert_int_eq(result.transport, TRANSPORT_OK);
			ck_assert_int_eq(result.http_status, 204);
			seen[index] = 1;
			done++;
		}
	}
	ck_assert_int_eq(done, TOTAL);
	ck_assert_int_eq(transfer_pool_active(pool), 0);
	ck_assert_int_eq(read_ids(FIRST, TOTAL, &lines), TOTAL);
	for (int i = 0; i < TOTAL; i++) {
		int first_use = 1;

		ck_assert_int_eq(lines[i].status, 204);
		for (int j = 0; j < i; j++)
			if (lines[j].serial == lines[i].serial)
				first_use = 0;
		serials += first_use;
	}
	/* Kept-alive connections: at most one per slot, plus slack. */
	ck_assert_msg(serials <= 2 * CAP, "%d connections for %d requests",
		      serials, TOTAL);
	free(lines);
	transfer_endpoint_unref(ep);
	transfer_pool_free(pool);
}
END_TEST

START_TEST(test_endpoint_outlives_its_last_reference)
{
	struct transfer_pool *pool = pool_new(2);
	struct transfer_endpoint *ep = receiver_endpoint("/slow/50", NULL);
	struct transfer_result result;

	start(pool, ep, 43401, "{}", NULL);
	/* The transfer holds its own reference. */
	transfer_endpoint_unref(ep);
	ck_assert(drive(pool, &result, RUN_LIMIT_MS));
	ck_assert_int_eq(result.http_status, 204);
	ck_assert_int_eq(find_requests(43401, NULL, NULL), 1);
	transfer_pool_free(pool);
}
END_TEST

static void count_cancelled(void *owner, void *arg)
{
	int *calls = arg;

	(*(int *)owner)++;
	(*calls)++;
}

START_TEST(test_cancel_all)
{
	enum { N = 5 };
	struct transfer_pool *pool = pool_new(8);
	struct transfer_endpoint *hang = receiver_endpoint("/hang", NULL);
	struct transfer_endpoint *ok = receiver_endpoint("/status/204", NULL);
	struct transfer_result result;
	int owners[N] = { 0 }, calls = 0, arrived = 0;
	int64_t end = time_mono_ms() + RUN_LIMIT_MS;

	for (int i = 0; i < N; i++)
		start(pool, hang, 43500 + i, "{}", &owners[i]);
	/* Cancel only once every request is at the receiver, mid-exchange. */
	while (arrived < N && time_mono_ms() < end) {
		ck_assert_int_eq(transfer_pool_poll(pool, 20, NULL, 0, NULL), 0);
		arrived = 0;
		for (int i = 0; i < N; i++)
			arrived += find_requests(43500 + i, NULL, NULL);
	}
	ck_assert_int_eq(arrived, N);
	ck_assert_int_eq(transfer_pool_reap(pool, &result), 0);
	transfer_pool_cancel_all(pool, count_cancelled, &calls);
	ck_assert_int_eq(calls, N);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(owners[i], 1);
	ck_assert_int_eq(transfer_pool_active(pool), 0);
	ck_assert_int_eq(transfer_pool_reap(pool, &result), 0);

	/* Still usable afterwards. */
	start(pool, ok, 43510, "{}", &owners[0]);
	ck_assert(drive(pool, &result, RUN_LIMIT_MS));
	ck_assert_int_eq(result.http_status, 204);
	ck_assert_ptr_eq(result.owner, &owners[0]);
	transfer_endpoint_unref(hang);
	transfer_endpoint_unref(ok);
	transfer_pool_free(pool);
}
END_TEST

START_TEST(test_free_with_transfers_in_flight)
{
	struct transfer_pool *pool = pool_new(4);
	struct transfer_endpoint *ep = receiver_endpoint("/hang", NULL);

	start(pool, ep, 43601, "{}", NULL);
	start(pool, ep, 43602, "{}", NULL);
	ck_assert_int_eq(transfer_pool_poll(pool, 50, NULL, 0, NULL), 0);
	ck_assert_int_eq(transfer_pool_active(pool), 2);
	transfer_endpoint_unref(ep);
	/* Frees bodies, handles and the endpoint: the sanitizer build checks
	 * that nothing leaks. */
	transfer_pool_free(pool);
}
END_TEST

START_TEST(test_poll_reports_wakeups)
{
	struct transfer_pool *pool = pool_new(1);
	int pipe_fds[2];
	unsigned ready = 99;
	int64_t t0;

	ck_assert_int_eq(pipe(pipe_fds), 0);
	t0 = time_mono_ms();
	ck_assert_int_eq(transfer_pool_poll(pool, 100, pipe_fds, 1, &ready), 0);
	ck_assert_uint_eq(ready, 0);
	ck_assert_int_ge(time_mono_ms() - t0, 80);

	ck_assert_int_eq(write(pipe_fds[1], "x", 1), 1);
	t0 = time_mono_ms();
	ck_assert_int_eq(transfer_pool_poll(pool, 5000, pipe_fds, 1, &ready), 0);
	ck_assert_uint_eq(ready, 1);
	ck_assert_int_lt(time_mono_ms() - t0, 1000);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
	transfer_pool_free(pool);
}
END_TEST

struct url_case {
	const char *url;
	int ok;
	const char *error_part; /* expected in the error, when refused */
};

static const struct url_case url_cases[] = {
	{ "http://example.com/hook", 1, NULL },
	{ "https://example.com:8443/a/b?c=d", 1, NULL },
	{ "HTTP://EXAMPLE.COM/", 1, NULL },
	{ "http://127.0.0.1:8080", 1, NULL },
	{ "ftp://example.com/x", 0, "URL scheme \"ftp\" is not http or https" },
	{ "", 0, "empty" },
	{ "not a url", 0, "not a valid URL" },
	{ "http://", 0, "" },
	{ "example.com/hook", 0, "not a valid URL" },
	{ "file:///etc/passwd", 0, "\"file\"" },
};

#define N_URL_CASES ((int)(sizeof(url_cases) / sizeof(url_cases[0])))

START_TEST(test_check_url)
{
	const struct url_case *c = &url_cases[_i];
	char err[256] = "";
	int rc = transfer_check_url(c->url, err, sizeof(err));

	if (c->ok) {
		ck_assert_msg(rc == 0, "%s refused: %s", c->url, err);
		return;
	}
	ck_assert_msg(rc == -1, "%s accepted", c->url);
	ck_assert_str_ne(err, "");
	ck_assert_msg(strstr(err, c->error_part) != NULL, "%s: error \"%s\"",
		      c->url, err);
}
END_TEST

START_TEST(test_endpoint_rejects)
{
	static const char *const bad_header[] = { "No colon here" };
	static const char *const split_header[] = { "X-A: 1\r\nX-B: 2" };
	struct transfer_endpoint_spec spec = {
		.url = "http://127.0.0.1/",
		.content_type = "application/json",
		.timeout_ms = 1000,
	};
	struct transfer_endpoint *ep = (struct transfer_endpoint *)&spec;
	char err[256];

	spec.url = "ftp://127.0.0.1/";
	ck_assert_int_eq(transfer_endpoint_new(&spec, &ep, err, sizeof(err)), -1);
	ck_assert_ptr_null(ep);
	ck_assert_ptr_nonnull(strstr(err, "ftp"));
	spec.url = "http://127.0.0.1/";

	spec.method = "GET";
	ck_assert_int_eq(transfer_endpoint_new(&spec, &ep, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "GET"));
	spec.method = NULL;

	spec.timeout_ms = 0;
	ck_assert_int_eq(transfer_endpoint_new(&spec, &ep, err, sizeof(err)), -1);
	spec.timeout_ms = 1000;

	spec.content_type = "application/json\r\nX-Injected: 1";
	ck_assert_int_eq(transfer_endpoint_new(&spec, &ep, err, sizeof(err)), -1);
	spec.content_type = "application/json";

	spec.headers = bad_header;
	spec.header_count = 1;
	ck_assert_int_eq(transfer_endpoint_new(&spec, &ep, err, sizeof(err)), -1);
	spec.headers = split_header;
	ck_assert_int_eq(transfer_endpoint_new(&spec, &ep, err, sizeof(err)), -1);
	spec.headers = NULL;
	spec.header_count = 0;

	/* A signed request's webhook-id is the relay's own. */
	{
		static const char *const id_header[] = { "webhook-id: 7" };

		spec.signing_secret = SECRET;
		spec.headers = id_header;
		spec.header_count = 1;
		ck_assert_int_eq(transfer_endpoint_new(&spec, &ep, err,
						       sizeof(err)), -1);
		ck_assert_ptr_nonnull(strstr(err, "webhook-id"));
		spec.headers = NULL;
		spec.header_count = 0;
		spec.signing_secret = "whsec_short";
		ck_assert_int_eq(transfer_endpoint_new(&spec, &ep, err,
						       sizeof(err)), -1);
		spec.signing_secret = NULL;
	}

	ck_assert_int_eq(transfer_endpoint_new(&spec, &ep, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(ep);
	transfer_endpoint_unref(ep);
	transfer_endpoint_unref(NULL);
}
END_TEST

START_TEST(test_pool_rejects_bad_options)
{
	struct transfer_pool_options options = { .max_transfers = 0 };
	struct transfer_pool *pool = (struct transfer_pool *)&options;
	char err[256] = "";

	ck_assert_int_eq(transfer_pool_new(&options, &pool, err, sizeof(err)), -1);
	ck_assert_ptr_null(pool);
	ck_assert_str_ne(err, "");
	options.max_transfers = 4;
	options.connect_timeout_ms = -1;
	ck_assert_int_eq(transfer_pool_new(&options, &pool, err, sizeof(err)), -1);
}
END_TEST

/* libcurl's result codes by number (stable across its releases), since
 * only the transfer module includes curl.h. */
struct transport_case {
	int code;
	const char *name;
	enum transport transport;
};

static const struct transport_case transport_cases[] = {
	{ 0, "CURLE_OK", TRANSPORT_OK },
	{ 7, "CURLE_COULDNT_CONNECT", TRANSPORT_CONNECT },
	{ 6, "CURLE_COULDNT_RESOLVE_HOST", TRANSPORT_DNS },
	{ 5, "CURLE_COULDNT_RESOLVE_PROXY", TRANSPORT_DNS },
	{ 35, "CURLE_SSL_CONNECT_ERROR", TRANSPORT_TLS },
	{ 60, "CURLE_PEER_FAILED_VERIFICATION", TRANSPORT_TLS },
	{ 77, "CURLE_SSL_CACERT_BADFILE", TRANSPORT_TLS },
	{ 58, "CURLE_SSL_CERTPROBLEM", TRANSPORT_TLS },
	{ 28, "CURLE_OPERATION_TIMEDOUT", TRANSPORT_TIMEOUT },
	{ 56, "CURLE_RECV_ERROR", TRANSPORT_RESET },
	{ 55, "CURLE_SEND_ERROR", TRANSPORT_RESET },
	{ 52, "CURLE_GOT_NOTHING", TRANSPORT_RESET },
	{ 18, "CURLE_PARTIAL_FILE", TRANSPORT_RESET },
	{ 23, "CURLE_WRITE_ERROR", TRANSPORT_OTHER },
	{ 3, "CURLE_URL_MALFORMAT", TRANSPORT_OTHER },
	{ 27, "CURLE_OUT_OF_MEMORY", TRANSPORT_OTHER },
	{ 9999, "unknown", TRANSPORT_OTHER },
};

#define N_TRANSPORT_CASES \
	((int)(sizeof(transport_cases) / sizeof(transport_cases[0])))

START_TEST(test_transport_of)
{
	const struct transport_case *c = &transport_cases[_i];

	ck_assert_msg(transfer_transport_of(c->code) == c->transport,
		      "%s (%d): %d, expected %d", c->name, c->code,
		      (int)transfer_transport_of(c->code), (int)c->transport);
}
END_TEST

static Suite *transfer_suite(void)
{
	Suite *s = suite_create("transfer");
	TCase *pure = tcase_create("pure");
	TCase *wire = tcase_create("wire");

	tcase_add_loop_test(pure, test_check_url, 0, N_URL_CASES);
	tcase_add_loop_test(pure, test_transport_of, 0, N_TRANSPORT_CASES);
	tcase_add_test(pure, test_endpoint_rejects);
	tcase_add_test(pure, test_pool_rejects_bad_options);
	tcase_add_test(pure, test_poll_reports_wakeups);
	suite_add_tcase(s, pure);

	tcase_add_unchecked_fixture(wire, receiver_setup, receiver_teardown);
	tcase_set_timeout(wire, 60);
	tcase_add_test(wire, test_post_exact_bytes);
	tcase_add_test(wire, test_empty_body_is_still_a_post);
	tcase_add_test(wire, test_url_bytes_outside_ascii_are_encoded);
	tcase_add_test(wire, test_large_body_without_expect);
	tcase_add_test(wire, test_custom_headers_replace_defaults);
	tcase_add_test(wire, test_put_method);
	tcase_add_test(wire, test_retry_after_seconds);
	tcase_add_test(wire, test_retry_after_http_date);
	tcase_add_test(wire, test_retry_after_absent_and_zero);
	tcase_add_test(wire, test_signed_request);
	tcase_add_test(wire, test_denied_address);
	tcase_add_test(wire, test_refused_connection);
	tcase_add_test(wire, test_hang_times_out);
	tcase_add_test(wire, test_reset);
	tcase_add_test(wire, test_endless_body_is_cut);
	tcase_add_test(wire, test_redirect_not_followed);
	tcase_add_test(wire, test_slow_answer);
	tcase_add_test(wire, test_slow_status_answer);
	tcase_add_test(wire, test_seq_per_event);
	tcase_add_test(wire, test_many_transfers_reuse_connections);
	tcase_add_test(wire, test_endpoint_outlives_its_last_reference);
	tcase_add_test(wire, test_cancel_all);
	tcase_add_test(wire, test_free_with_transfers_in_flight);
	suite_add_tcase(s, wire);
	return s;
}

int main(void)
{
	SRunner *runner = srunner_create(transfer_suite());
	int failed;

	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
