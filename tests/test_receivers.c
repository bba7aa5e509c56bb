/*
 * test_receivers.c - what a receiver may ask of the relay, end to end.
 *
 * The real binary against the real loopback receiver: the optional
 * web-service options beyond the contract's defaults (method, custom
 * headers, Basic and Digest authentication, signing). Each test checks the
 * exact bytes the receiver got and the rows the relay wrote.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"

#define RUN_TIMEOUT_MS 20000

static const char parties[] =
	"[{\"username\":\"eric\",\"device\":\"erics_iphone\"}]";

struct env {
	char *dir;
	char *db;
	struct tu_receiver rx;
};

static void env_open(struct env *env, const char *name)
{
	env->dir = tu_tmpdir(name);
	env->db = tu_path(env->dir, "relay.db");
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, NULL, "init",
				       env->db, NULL), 0);
	tu_receiver_start(&env->rx, env->dir);
}

static void env_close(struct env *env)
{
	tu_receiver_stop(&env->rx);
	free(env->db);
	free(env->dir);
}

static void config_set(struct env *env, const char *cloud_id, const char *key,
		       const char *value)
{
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, NULL, "config",
				       env->db, "set", key, value, "--cloud-id",
				       cloud_id, NULL), 0);
}

static void provision(struct env *env, const char *cloud_id, const char *path)
{
	char *url = tu_receiver_url(&env->rx, path);

	config_set(env, cloud_id, "smartContactNotificationUrl", url);
	config_set(env, cloud_id, "smartContactNotificationContentType",
		   "application/json");
	free(url);
}

static int64_t produce(struct env *env, const char *cloud_id)
{
	struct store *store = NULL;
	char err[256];
	int64_t id = 0;
	struct new_event ev = {
		cloud_id, "+420111222333", "network_1", "sip_uri_1", parties,
	};

	ck_assert_int_eq(store_open(env->db, STORE_OPEN_EXISTING, &store, err,
				    sizeof(err)), STORE_OK);
	ck_assert_int_eq(store_enqueue(store, &ev, &id), STORE_OK);
	store_close(store);
	return id;
}

struct row {
	char status[16];
	int64_t attempts;
	long http_status;
};

static int take_row(const struct history_row *h, void *arg)
{
	struct row *row = arg;

	snprintf(row->status, sizeof(row->status), "%s", h->status);
	row->attempts = h->attempts;
	row->http_status = h->http_status;
	return 0;
}

static struct row fetch(struct env *env, int64_t id)
{
	struct history_filter filter = { .id = id };
	struct store *store = NULL;
	struct row row;
	char err[256];

	memset(&row, 0, sizeof(row));
	ck_assert_int_eq(store_open(env->db, STORE_OPEN_EXISTING, &store, err,
				    sizeof(err)), STORE_OK);
	ck_assert_int_eq(store_history(store, &filter, take_row, &row), STORE_OK);
	store_close(store);
	ck_assert_msg(row.status[0], "event %lld not found", (long long)id);
	return row;
}

/* `smartrelay run --once DB`; returns its stderr. */
static char *run_once(struct env *env)
{
	char *err = NULL;
	int status = tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run", "--once",
				   env->db, NULL);

	ck_assert_msg(status == 0, "run --once exited %d: %s", status, err);
	return err;
}

/* ---- method --------------------------------------------------------------- */

START_TEST(method_put_sends_put)
{
	struct env env;
	char *requests;
	int64_t id;

	env_open(&env, "method_put");
	provision(&env, "default", "/notify");
	config_set(&env, "default", "smartContactNotificationMethod", "PUT");
	id = produce(&env, NULL);
	free(run_once(&env));
	requests = tu_receiver_requests(&env.rx);
	ck_assert_int_eq(tu_count(requests, "=== REQUEST"), 1);
	ck_assert_msg(strstr(requests, "\nPUT /notify HTTP/1.1\r\n") != NULL,
		      "requests: %s", requests);
	ck_assert_ptr_nonnull(strstr(requests, "\r\nContent-Length: "));
	ck_assert_ptr_nonnull(strstr(requests, "\"newSmartNumber\" : \"+420111222333\""));
	free(requests);
	ck_assert_str_eq(fetch(&env, id).status, "delivered");
	env_close(&env);
}
END_TEST

START_TEST(method_post_is_the_default)
{
	struct env env;
	char *requests;

	env_open(&env, "method_post");
	provision(&env, "default", "/notify");
	config_set(&env, "default", "smartContactNotificationMethod", "POST");
	produce(&env, NULL);
	free(run_once(&env));
	requests = tu_receiver_requests(&env.rx);
	ck_assert_msg(strstr(requests, "\nPOST /notify HTTP/1.1\r\n") != NULL,
		      "requests: %s", requests);
	free(requests);
	env_close(&env);
}
END_TEST

START_TEST(method_get_is_a_config_error)
{
	struct env env;
	struct row row;
	char *err;
	int64_t id;

	env_open(&env, "method_get");
	provision(&env, "default", "/notify");
	config_set(&env, "default", "smartContactNotificationMethod", "GET");
	id = produce(&env, NULL);
	err = run_once(&env);
	ck_assert_msg(strstr(err, "cloud_id=default key=smartContactNotificationMethod")
		      != NULL, "stderr: %s", err);
	free(err);
	row = fetch(&env, id);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(row.attempts, 0);
	ck_assert_int_eq(tu_receiver_wait_count(&env.rx, 1, 0), 0);
	env_close(&env);
}
END_TEST

static Suite *receivers_suite(void)
{
	Suite *s = suite_create("receivers");
	TCase *method = tcase_create("method");

	tcase_set_timeout(method, 60);
	tcase_add_test(method, method_put_sends_put);
	tcase_add_test(method, method_post_is_the_default);
	tcase_add_test(method, method_get_is_a_config_error);
	suite_add_tcase(s, method);
	return s;
}

int main(void)
{
	SRunner *runner = srunner_create(receivers_suite());
	int failed;

	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
