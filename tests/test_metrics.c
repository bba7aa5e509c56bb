/*
 * test_metrics.c - the metrics module through metrics.h: the listen
 * address, a port in use, the exposition's families and values (queue depth
 * from a real database, counters, the latency histogram, label escaping),
 * and real HTTP requests served from this thread's own poll loop.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "metrics.h"
#include "store.h"
#include "testutil.h"

struct fixture {
	char *dir;
	char *path;
	struct store *store;
	struct metrics *metrics;
};

static void fixture_open(struct fixture *fx, const char *name)
{
	char err[512] = "";

	fx->dir = tu_tmpdir(name);
	fx->path = tu_path(fx->dir, "relay.db");
	ck_assert_msg(store_open(fx->path, STORE_OPEN_CREATE, &fx->store, err,
				 sizeof(err)) == STORE_OK, "open: %s", err);
	ck_assert_msg(metrics_open("127.0.0.1:0", fx->store, &fx->metrics, err,
				   sizeof(err)) == 0, "metrics: %s", err);
	ck_assert_int_gt(metrics_port(fx->metrics), 0);
	ck_assert_int_ge(metrics_fd(fx->metrics), 0);
}

static void fixture_close(struct fixture *fx)
{
	metrics_close(fx->metrics);
	store_close(fx->store);
	free(fx->path);
	free(fx->dir);
}

static void enqueue(struct store *store, const char *cloud_id)
{
	struct new_event ev = {
		cloud_id, "+1", "network_1", "sip_uri_1",
		"[{\"username\":\"eric\",\"device\":\"erics_iphone\"}]",
	};

	ck_assert_int_eq(store_enqueue(store, &ev, NULL), STORE_OK);
}

static char *render(struct metrics *m)
{
	size_t len = 0;
	char *text = metrics_render(m, &len);

	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(strlen(text), len);
	return text;
}

/* text must hold line as a whole line. */
static void has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = strstr(text, line); p; p = strstr(p + 1, line))
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return;
	ck_abort_msg("no line '%s' in:\n%s", line, text);
}

START_TEST(test_listen_addresses)
{
	static const char *const good[] = {
		"127.0.0.1:9100", "[::1]:0", "localhost:80", "0.0.0.0:65535",
	};
	static const char *const bad[] = {
		"9100", ":9100", "127.0.0.1:", "127.0.0.1:65536", "::1:80",
		"[::1]80", "[::1", "host:-1", "host:9x", "host:12345678", "",
	};
	char err[256];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(metrics_check_listen(good[i], err, sizeof(err)) == 0,
			      "%s: %s", good[i], err);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(metrics_check_listen(bad[i], err, sizeof(err)) == -1,
			      "%s accepted", bad[i]);
		ck_assert_msg(strstr(err, bad[i]) != NULL, "%s: %s", bad[i], err);
	}
}
END_TEST

/* Worker K of run --workers listens on PORT + K - 1. */
START_TEST(test_listen_shift)
{
	static const struct {
		const char *text;
		int offset;
		const char *want; /* NULL: refused */
	} cases[] = {
		{ "127.0.0.1:9187", 0, "127.0.0.1:9187" },
		{ "127.0.0.1:9187", 2, "127.0.0.1:9189" },
		{ "[::1]:9187", 1, "[::1]:9188" },
		{ "0.0.0.0:0", 5, "0.0.0.0:0" },
		{ "localhost:65534", 1, "localhost:65535" },
		{ "localhost:65534", 2, NULL },
		{ "9187", 1, NULL },
	};
	char out[64], err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = metrics_listen_shift(cases[i].text, cases[i].offset, out,
					      sizeof(out), err, sizeof(err));

		if (cases[i].want) {
			ck_assert_msg(rc == 0, "%s: %s", cases[i].text, err);
			ck_assert_str_eq(out, cases[i].want);
		} else {
			ck_assert_msg(rc == -1, "%s +%d accepted", cases[i].text,
				      cases[i].offset);
			ck_assert_ptr_nonnull(strstr(err, cases[i].text));
		}
	}
	/* Too long for the caller's buffer: refused, not cut. */
	ck_assert_int_eq(metrics_listen_shift("127.0.0.1:9187", 1, out, 8, err,
					      sizeof(err)), -1);
}
END_TEST

START_TEST(test_port_in_use_is_refused)
{
	struct fixture fx;
	struct metrics *second = (struct metrics *)&second;
	char address[64], err[256] = "";

	fixture_open(&fx, "metrics_in_use");
	snprintf(address, sizeof(address), "127.0.0.1:%d",
		 metrics_port(fx.metrics));
	ck_assert_int_eq(metrics_open(address, fx.store, &second, err,
				      sizeof(err)), -1);
	ck_assert_ptr_null(second);
	ck_assert_msg(strstr(err, address) && strstr(err, "in use"), "%s", err);
	fixture_close(&fx);
}
END_TEST

START_TEST(test_null_metrics_do_nothing)
{
	metrics_config_state(NULL, "a", METRICS_CONFIG_ERROR);
	metrics_claimed(NULL, "a", 1);
	metrics_attempt(NULL, "a", "retry", TRANSPORT_TIMEOUT, 0);
	metrics_delivered(NULL, "a", 10);
	metrics_unrenderable(NULL, "a");
	metrics_recovered(NULL, 1);
	metrics_in_flight(NULL, 1);
	metrics_serve(NULL);
	metrics_close(NULL);
	ck_assert_int_eq(metrics_fd(NULL), -1);
	ck_assert_int_eq(metrics_port(NULL), 0);
	ck_assert_int_eq(metrics_wait_ms(NULL, 123), 123);
}
END_TEST

START_TEST(test_exposition_families_and_values)
{
	static const char *const families[] = {
		"smartrelay_info gauge",
		"smartrelay_transfers_in_flight gauge",
		"smartrelay_leases_recovered_total counter",
		"smartrelay_queue_events gauge",
		"smartrelay_oldest_pending_age_seconds gauge",
		"smartrelay_events_claimed_total counter",
		"smartrelay_attempts_total counter",
		"smartrelay_events_unrenderable_total counter",
		"smartrelay_delivery_latency_seconds histogram",
		"smartrelay_config_error gauge",
		"smartrelay_config_errors_total counter",
		"smartrelay_endpoint_disabled gauge",
	};
	struct fixture fx;
	char *text, line[128];

	fixture_open(&fx, "metrics_values");
	enqueue(fx.store, "default");
	enqueue(fx.store, "default");
	enqueue(fx.store, "other");

	metrics_in_flight(fx.metrics, 3);
	metrics_recovered(fx.metrics, 2);
	metrics_claimed(fx.metrics, "default", 4);
	metrics_attempt(fx.metrics, "default", "delivered", TRANSPORT_OK, 204);
	metrics_attempt(fx.metrics, "default", "delivered", TRANSPORT_OK, 204);
	metrics_attempt(fx.metrics, "default", "retry", TRANSPORT_TIMEOUT, 0);
	metrics_attempt(fx.metrics, "default", "failed", TRANSPORT_OK, 404);
	metrics_delivered(fx.metrics, "default", 200);
	metrics_delivered(fx.metrics, "default", 2000);
	metrics_unrenderable(fx.metrics, "default");
	metrics_config_state(fx.metrics, "default", METRICS_CONFIG_OK);
	metrics_config_state(fx.metrics, "bad", METRICS_CONFIG_ERROR);
	metrics_config_state(fx.metrics, "bad", METRICS_CONFIG_ERROR);
	metrics_config_state(fx.metrics, "gone", METRICS_CONFIG_DISABLED);
	text = render(fx.metrics);

	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		snprintf(line, sizeof(line), "# TYPE %s", families[i]);
		has_line(text, line);
		ck_assert_int_eq(tu_count(text, line), 1);
	}
	ck_assert_int_eq(tu_count(text, "# HELP "), tu_count(text, "# TYPE "));
	has_line(text, "smartrelay_transfers_in_flight 3");
	has_line(text, "smartrelay_leases_recovered_total 2");
	has_line(text, "smartrelay_queue_events{cloud_id=\"default\",status=\"pending\"} 2");
	has_line(text, "smartrelay_queue_events{cloud_id=\"other\",status=\"pending\"} 1");
	/* Known apps show an empty state as 0; unknown ones not at all. */
	has_line(text, "smartrelay_queue_events{cloud_id=\"default\",status=\"sending\"} 0");
	has_line(text, "smartrelay_queue_events{cloud_id=\"bad\",status=\"pending\"} 0");
	ck_assert_ptr_null(strstr(text, "smartrelay_queue_events{cloud_id=\"other\",status=\"sending\"}"));
	ck_assert_ptr_nonnull(strstr(text, "\nsmartrelay_oldest_pending_age_seconds{cloud_id=\"default\"} "));
	has_line(text, "smartrelay_events_claimed_total{cloud_id=\"default\"} 4");
	has_line(text, "smartrelay_attempts_total{cloud_id=\"default\",outcome=\"delivered\",transport=\"ok\",status=\"204\"} 2");
	has_line(text, "smartrelay_attempts_total{cloud_id=\"default\",outcome=\"retry\",transport=\"timeout\",status=\"none\"} 1");
	has_line(text, "smartrelay_attempts_total{cloud_id=\"default\",outcome=\"failed\",transport=\"ok\",status=\"404\"} 1");
	has_line(text, "smartrelay_events_unrenderable_total{cloud_id=\"default\"} 1");
	/* Buckets are cumulative: 0.2 s and 2 s. */
	has_line(text, "smartrelay_delivery_latency_seconds_bucket{cloud_id=\"default\",le=\"0.1\"} 0");
	has_line(text, "smartrelay_delivery_latency_seconds_bucket{cloud_id=\"default\",le=\"0.25\"} 1");
	has_line(text, "smartrelay_delivery_latency_seconds_bucket{cloud_id=\"default\",le=\"1\"} 1");
	has_line(text, "smartrelay_delivery_latency_seconds_bucket{cloud_id=\"default\",le=\"2.5\"} 2");
	has_line(text, "smartrelay_delivery_latency_seconds_bucket{cloud_id=\"default\",le=\"+Inf\"} 2");
	has_line(text, "smartrelay_delivery_latency_seconds_sum{cloud_id=\"default\"} 2.200");
	has_line(text, "smartrelay_delivery_latency_seconds_count{cloud_id=\"default\"} 2");
	has_line(text, "smartrelay_config_error{cloud_id=\"bad\"} 1");
	has_line(text, "smartrelay_config_error{cloud_id=\"default\"} 0");
	has_line(text, "smartrelay_config_errors_total{cloud_id=\"bad\"} 2");
	has_line(text, "smartrelay_endpoint_disabled{cloud_id=\"gone\"} 1");
	has_line(text, "smartrelay_endpoint_disabled{cloud_id=\"bad\"} 0");
	free(text);

	/* A config fixed: the gauge drops, the counter stays. */
	metrics_config_state(fx.metrics, "bad", METRICS_CONFIG_OK);
	text = render(fx.metrics);
	has_line(text, "smartrelay_config_error{cloud_id=\"bad\"} 0");
	has_line(text, "smartrelay_config_errors_total{cloud_id=\"bad\"} 2");
	free(text);
	fixture_close(&fx);
}
END_TEST

START_TEST(test_labels_are_escaped)
{
	struct fixture fx;
	char *text;

	fixture_open(&fx, "metrics_escape");
	metrics_claimed(fx.metrics, "a\"b\\c\nd", 1);
	text = render(fx.metrics);
	has_line(text, "smartrelay_events_claimed_total{cloud_id=\"a\\\"b\\\\c\\nd\"} 1");
	free(text);
	fixture_close(&fx);
}
END_TEST

/*
 * One request to the metrics server, answered by this thread: the client's
 * bytes sit in the socket while the loop polls the server's descriptor and
 * runs it, as the relay does.
 */
static char *request(struct metrics *m, const char *method, const char *path,
		     int *status)
{
	struct sockaddr_in addr;
	char req[256], *buf = calloc(1, 65536), *body;
	size_t size = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int turns;

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_ge(fd, 0);
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)metrics_port(m));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert(connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 ||
		  errno == EINPROGRESS);
	snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: x\r\n\r\n", method,
		 path);
	for (turns = 0; turns < 500; turns++) {
		struct pollfd fds[2] = {
			{ metrics_fd(m), POLLIN, 0 }, { fd, POLLIN | POLLOUT, 0 },
		};
		ssize_t n;

		ck_assert_int_ge(poll(fds, 2, metrics_wait_ms(m, 10)), 0);
		metrics_serve(m);
		if (req[0] && (fds[1].revents & POLLOUT)) {
			ck_assert_int_eq(write(fd, req, strlen(req)),
					 (ssize_t)strlen(req));
			req[0] = '\0';
		}
		n = read(fd, buf + size, 65535 - size);
		if (n == 0)
			break;
		if (n > 0)
			size += (size_t)n;
	}
	close(fd);
	ck_assert_msg(turns < 500, "no complete response");
	ck_assert_int_eq(sscanf(buf, "HTTP/1.%*d %d", status), 1);
	body = strstr(buf, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	ck_assert_ptr_nonnull(strstr(buf, "Content-Type: text/plain"));
	body = strdup(body + 4);
	free(buf);
	return body;
}

START_TEST(test_http_answers_from_the_callers_loop)
{
	struct fixture fx;
	char *body;
	int status = 0;

	fixture_open(&fx, "metrics_http");
	metrics_attempt(fx.metrics, "default", "delivered", TRANSPORT_OK, 204);
	body = request(fx.metrics, "GET", "/metrics", &status);
	ck_assert_int_eq(status, 200);
	has_line(body, "smartrelay_attempts_total{cloud_id=\"default\",outcome=\"delivered\",transport=\"ok\",status=\"204\"} 1");
	free(body);
	body = request(fx.metrics, "GET", "/other", &status);
	ck_assert_int_eq(status, 404);
	free(body);
	body = request(fx.metrics, "POST", "/metrics", &status);
	ck_assert_int_eq(status, 405);
	free(body);
	fixture_close(&fx);
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_add_test(tc, test_listen_addresses);
	tcase_add_test(tc, test_listen_shift);
	tcase_add_test(tc, test_port_in_use_is_refused);
	tcase_add_test(tc, test_null_metrics_do_nothing);
	tcase_add_test(tc, test_exposition_families_and_values);
	tcase_add_test(tc, test_labels_are_escaped);
	tcase_add_test(tc, test_http_answers_from_the_callers_loop);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *runner = srunner_create(metrics_suite());
	int failed;

	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
