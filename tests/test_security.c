/*
 * test_security.c - the secure defaults, through the real binary.
 *
 * TLS peer and host verification are on (a plain-HTTP port, a self-signed
 * certificate and a certificate for another name all fail as transport
 * errors and are retried, never delivered; --ca-file makes the certificate
 * trusted); an unreadable --ca-file is refused up front; a password never
 * reaches a log line, the history or `config show`; and `smartrelay init`
 * and a running relay leave the database files readable by their owner
 * only. A TLS server comes from the openssl command line tool.
 */
#include <check.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"

#define RUN_TIMEOUT_MS 30000
#define PASSWORD "S3cr3t-Pw-4b1d-9e0c"
#define USERNAME "relay-user"
/* base64("relay-user:S3cr3t-Pw-4b1d-9e0c") */
#define BASIC_TOKEN "cmVsYXktdXNlcjpTM2NyM3QtUHctNGIxZC05ZTBj"

static const char two_parties[] =
	"[{\"username\":\"eric\",\"device\":\"erics_iphone\"},"
	"{\"username\":\"madelaine\",\"device\":\"madelaines_android\"}]";

/*
 * run --once with up to two extra options; returns its stderr. Requests
 * time out after 2 s: a TLS server that is not an HTTP server may never
 * answer.
 */
static char *run_once(struct tu_env *env, const char *opt1, const char *opt2)
{
	char *err = NULL;
	int status = tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run", "--once",
				   "--max-attempts", "3", "--timeout", "2",
				   env->db, opt1, opt2, NULL);

	ck_assert_msg(status == 0, "run --once exited %d: %s", status, err);
	return err;
}

/* A failure the relay classed as TLS (its error names the class). */
static int is_tls_error(const char *error)
{
	return strncmp(error, "tls: ", 5) == 0;
}

/* ---- TLS verification ---------------------------------------------------- */

START_TEST(https_to_plain_port_is_retried)
{
	struct tu_env env;
	char url[128], *err, *requests;
	struct tu_row row;
	int64_t id;

	tu_env_open(&env, "tls-plain");
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/notify", env.rx.port);
	tu_config_set(&env, "default", "smartContactNotificationUrl", url);
	tu_config_set(&env, "default", "smartContactNotificationContentType",
		   "application/json");
	id = tu_produce(&env, NULL, "+15551231234", two_parties);
	err = run_once(&env, NULL, NULL);
	row = tu_fetch(&env, id);
	/* Retried: one attempt made, due again later. */
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(row.attempts, 1);
	ck_assert_int_eq(row.http_status, 0);
	/* The receiver waits for the end of a head that never comes: the
	 * handshake fails or times out, a transport error either way. */
	ck_assert_msg(is_tls_error(row.error) ||
		      strncmp(row.error, "timeout: ", 9) == 0 ||
		      strncmp(row.error, "reset: ", 7) == 0,
		      "not a transport error: %s", row.error);
	/* No HTTP request reached the port: the handshake bytes at most. */
	requests = tu_receiver_requests(&env.rx);
	ck_assert_ptr_null(strstr(requests, "webhook-id"));
	free(requests);
	free(err);
	tu_env_close(&env);
}
END_TEST

/* A port that was free a moment ago. */
static int free_port(void)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t len = sizeof(addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	ck_assert_int_ge(fd, 0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
	port = ntohs(addr.sin_port);
	close(fd);
	return port;
}

static int can_connect(int port)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	ck_assert_int_ge(fd, 0);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons((uint16_t)port);
	ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
	close(fd);
	return ok;
}

static char *openssl_path(void)
{
	static const char *const dirs[] = { "/usr/bin", "/bin",
					    "/usr/local/bin" };

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char *path = tu_path(dirs[i], "openssl");

		if (access(path, X_OK) == 0)
			return path;
		free(path);
	}
	ck_abort_msg("the openssl program is missing (tools/bootstrap.sh "
		     "installs it)");
	return NULL;
}

/*
 * Makes a self-signed certificate for localhost in dir and serves TLS with
 * it on a new port (`openssl s_server`, which answers an HTTP POST by
 * closing the connection: enough to tell a handshake that passed).
 */
static pid_t tls_server_start(const char *dir, int *port, char **cert)
{
	char *openssl = openssl_path();
	char *key = tu_path(dir, "key.pem");
	char *log = tu_path(dir, "s_server.log");
	char accept[64], *out = NULL, *err = NULL;
	pid_t pid;
	int waited;

	*cert = tu_path(dir, "cert.pem");
	{
		char *argv[] = {
			openssl, (char *)"req", (char *)"-x509",
			(char *)"-newkey", (char *)"ec",
			(char *)"-pkeyopt", (char *)"ec_paramgen_curve:prime256v1",
			(char *)"-nodes", (char *)"-keyout", key,
			(char *)"-out", *cert, (char *)"-days", (char *)"2",
			(char *)"-subj", (char *)"/CN=localhost",
			(char *)"-addext", (char *)"subjectAltName=DNS:localhost",
			NULL,
		};

		ck_assert_msg(tu_run(argv, RUN_TIMEOUT_MS, &out, &err) == 0,
			      "openssl req: %s", err);
		free(out);
		free(err);
	}
	*port = free_port();
	snprintf(accept, sizeof(accept), "127.0.0.1:%d", *port);
	{
		char *argv[] = {
			openssl, (char *)"s_server", (char *)"-accept", accept,
			(char *)"-cert", *cert, (char *)"-key", key,
			(char *)"-www", (char *)"-quiet", NULL,
		};

		pid = tu_spawn(argv, log, log);
	}
	for (waited = 0; waited < 5000 && !can_connect(*port); waited += 10)
		tu_sleep_ms(10);
	ck_assert_msg(waited < 5000, "openssl s_server did not start (%s)", log);
	free(openssl);
	free(key);
	free(log);
	return pid;
}

START_TEST(tls_peer_and_host_verified)
{
	struct tu_env env;
	char url[128], *cert, *err, *ca_option;
	struct tu_row row;
	int64_t untrusted, wrong_host, trusted;
	pid_t server;
	int port;

	tu_env_open(&env, "tls-verify");
	server = tls_server_start(env.dir, &port, &cert);
	/* One app per case; each run finds only its own event due. */
	snprintf(url, sizeof(url), "https://localhost:%d/notify", port);
	tu_config_set(&env, "localhost", "smartContactNotificationUrl", url);
	tu_config_set(&env, "localhost", "smartContactNotificationContentType",
		   "application/json");
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/notify", port);
	tu_config_set(&env, "by-address", "smartContactNotificationUrl", url);
	tu_config_set(&env, "by-address", "smartContactNotificationContentType",
		   "application/json");

	/* A self-signed certificate the system does not trust. */
	untrusted = tu_produce(&env, "localhost", "+15551231234", two_parties);
	err = run_once(&env, NULL, NULL);
	free(err);
	row = tu_fetch(&env, untrusted);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(row.attempts, 1);
	ck_assert_msg(is_tls_error(row.error), "not a TLS error: %s",
		      row.error);

	ck_assert_ptr_nonnull(strstr(row.error, "certificate"));

	/* Trusted, but issued for localhost, not 127.0.0.1. */
	ca_option = cert;
	wrong_host = tu_produce(&env, "by-address", "+15551231234", two_parties);
	err = run_once(&env, "--ca-file", ca_option);
	free(err);
	row = tu_fetch(&env, wrong_host);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(row.attempts, 1);
	ck_assert_msg(is_tls_error(row.error), "not a TLS error: %s",
		      row.error);

	ck_assert_ptr_nonnull(strstr(row.error, "127.0.0.1"));

	/* Trusted and the right name: the handshake passes, and what fails
	 * is the HTTP exchange with a server that does not speak it. */
	trusted = tu_produce(&env, "localhost", "+15551231234", two_parties);
	err = run_once(&env, "--ca-file", ca_option);
	free(err);
	row = tu_fetch(&env, trusted);
	ck_assert_int_eq(row.attempts, 1);
	ck_assert_str_ne(row.status, "delivered");
	ck_assert_msg(!is_tls_error(row.error) &&
		      strstr(row.error, "SSL") == NULL &&
		      strstr(row.error, "certificate") == NULL,
		      "a TLS error with the CA file: %s", row.error);

	kill(server, SIGTERM);
	tu_wait(server, 5000);
	free(cert);
	tu_env_close(&env);
}
END_TEST

START_TEST(unreadable_ca_file_refused)
{
	struct tu_env env;
	char *missing, *err = NULL;

	tu_env_open(&env, "tls-ca-file");
	missing = tu_path(env.dir, "no-such-ca.pem");
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run",
				       "--once", "--ca-file", missing, env.db,
				       NULL), 2);
	ck_assert_ptr_nonnull(strstr(err, "--ca-file: cannot read"));
	ck_assert_ptr_nonnull(strstr(err, missing));
	ck_assert_ptr_nonnull(strstr(err, "No such file"));
	free(err);
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run",
				       "--once", "--ca-file", env.dir, env.db,
				       NULL), 2);
	ck_assert_ptr_nonnull(strstr(err, "--ca-file: cannot read"));
	free(err);
	free(missing);
	tu_env_close(&env);
}
END_TEST

/* ---- credentials ----------------------------------------------------------- */

static void assert_hidden(const char *what, const char *text)
{
	ck_assert_msg(text != NULL, "%s: no output", what);
	ck_assert_msg(strstr(text, PASSWORD) == NULL, "%s shows the password",
		      what);
	ck_assert_msg(strstr(text, BASIC_TOKEN) == NULL,
		      "%s shows the encoded credentials", what);
}

START_TEST(password_never_printed)
{
	struct tu_env env;
	char *url, *out = NULL, *err = NULL, *requests;
	int64_t retried, failed, bad;

	tu_env_open(&env, "secrets");
	url = tu_receiver_url(&env.rx, "/status/503");
	tu_config_set(&env, "default", "smartContactNotificationUrl", url);
	free(url);
	url = tu_receiver_url(&env.rx, "/status/400");
	tu_config_set(&env, "hard", "smartContactNotificationUrl", url);
	free(url);
	/* A config error whose text would echo a value holding it. */
	tu_config_set(&env, "bad", "smartContactNotificationUrl",
		   "ftp://" USERNAME ":" PASSWORD "@example.com/");
	for (int i = 0; i < 3; i++) {
		const char *app = i == 0 ? "default" : i == 1 ? "hard" : "bad";

		tu_config_set(&env, app, "smartContactNotificationContentType",
			   "application/json");
		tu_config_set(&env, app, "smartContactNotificationAuthUsername",
			   USERNAME);
		tu_config_set(&env, app, "smartContactNotificationAuthPassword",
			   PASSWORD);
		tu_config_set(&env, app,
			   "smartContactNotificationAllowInsecureAuth", "true");
	}
	retried = tu_produce(&env, NULL, "+15551231234", two_parties);
	failed = tu_produce(&env, "hard", "+15551231234", two_parties);
	bad = tu_produce(&env, "bad", "+15551231234", two_parties);

	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, &err, "run",
				       "--once", "-v", env.db, NULL), 0);
	assert_hidden("run stdout", out);
	assert_hidden("run stderr", err);
	ck_assert_ptr_nonnull(strstr(err, "cloud_id=bad key="));
	free(out);
	free(err);
	/* Both requests went out; with Basic and Digest both allowed,
	 * libcurl sends credentials only when a 401 asks for them. */
	requests = tu_receiver_requests(&env.rx);
	ck_assert_int_eq(tu_count(requests, "=== REQUEST "), 2);
	ck_assert_ptr_null(strstr(requests, PASSWORD));
	free(requests);
	ck_assert_str_eq(tu_fetch(&env, retried).status, "pending");
	ck_assert_str_eq(tu_fetch(&env, failed).status, "failed");
	ck_assert_str_eq(tu_fetch(&env, bad).status, "pending");

	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, &err, "history",
				       env.db, "--attempts", NULL), 0);
	assert_hidden("history", out);
	assert_hidden("history stderr", err);
	ck_assert_ptr_nonnull(strstr(out, "503"));
	free(out);
	free(err);
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, &err, "history",
				       env.db, "--attempts", "--json", NULL), 0);
	assert_hidden("history --json", out);
	ck_assert_ptr_nonnull(strstr(out, "400"));
	free(out);
	free(err);

	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, &err, "config",
				       env.db, "show", NULL), 0);
	assert_hidden("config show", out);
	ck_assert_ptr_nonnull(strstr(out, "smartContactNotificationAuthPassword"
				     " = ********\n"));
	ck_assert_ptr_nonnull(strstr(out, "smartContactNotificationAuthUsername"
				     " = " USERNAME "\n"));
	free(out);
	free(err);
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, &err, "config",
				       env.db, "check", NULL), 0);
	assert_hidden("config check", out);
	free(out);
	free(err);
	ck_assert_int_ne(tu_smartrelay(RUN_TIMEOUT_MS, &out, &err, "config",
				       env.db, "check", "--cloud-id", "bad",
				       NULL), 0);
	assert_hidden("config check of a bad app", err);
	ck_assert_ptr_nonnull(strstr(err, "smartContactNotificationUrl"));
	free(out);
	free(err);
	tu_env_close(&env);
}
END_TEST

/* ---- file modes ------------------------------------------------------------ */

static void assert_mode(const char *path)
{
	struct stat st;

	ck_assert_msg(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
	ck_assert_msg((st.st_mode & 0777) == 0600, "%s has mode %o", path,
		      (unsigned)(st.st_mode & 0777));
}

START_TEST(init_and_run_create_owner_only_files)
{
	mode_t old = umask(0); /* the children inherit it */
	char *dir = tu_tmpdir("modes");
	char *db = tu_path(dir, "relay.db");
	char *wal = tu_path(dir, "relay.db-wal");
	char *shm = tu_path(dir, "relay.db-shm");
	char *err_path = tu_path(dir, "run.log");
	char *argv[] = { getenv("SMARTRELAY_BIN"), (char *)"run", db, NULL };
	pid_t relay;
	int waited;

	ck_assert_ptr_nonnull(argv[0]);
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, NULL, "init", db,
				       NULL), 0);
	assert_mode(db);
	/* A running relay holds the database open, with its -wal and -shm. */
	relay = tu_spawn(argv, NULL, err_path);
	for (waited = 0; waited < 10000 &&
	     (access(wal, F_OK) != 0 || access(shm, F_OK) != 0); waited += 10)
		tu_sleep_ms(10);
	umask(old);
	assert_mode(db);
	assert_mode(wal);
	assert_mode(shm);
	kill(relay, SIGTERM);
	ck_assert_int_eq(tu_wait(relay, 15000), 0);
	free(err_path);
	free(shm);
	free(wal);
	free(db);
	free(dir);
}
END_TEST

/*
 * Stored options are shown, not obeyed: an escape sequence or a carriage
 * return in a value must not reach the operator's terminal, while a
 * template keeps its lines.
 */
START_TEST(config_show_neutralises_control_characters)
{
	struct tu_env env;
	char *out = NULL;

	tu_env_open(&env, "showctl");
	tu_config_set(&env, "default", "smartContactNotificationUrl",
		      "http://127.0.0.1:1/\x1b]0;owned\x07\rpassword = x");
	tu_config_set(&env, "default", "smartContactNotificationPostData",
		      "{\n\t\"n\": \"%new_smart_number%\"\n}");
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, NULL, "config",
				       env.db, "show", NULL), 0);
	ck_assert_ptr_null(strchr(out, 0x1b));
	ck_assert_ptr_null(strchr(out, 0x07));
	ck_assert_ptr_null(strchr(out, '\r'));
	ck_assert_ptr_nonnull(strstr(out, "smartContactNotificationUrl = "
				     "http://127.0.0.1:1/?]0;owned??password = x\n"));
	ck_assert_ptr_nonnull(strstr(out, "smartContactNotificationPostData = "
				     "{\n\t\"n\": \"%new_smart_number%\"\n}\n"));
	free(out);
	tu_env_close(&env);
}
END_TEST

static Suite *security_suite(void)
{
	Suite *s = suite_create("security");
	TCase *tc = tcase_create("security");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, https_to_plain_port_is_retried);
	tcase_add_test(tc, tls_peer_and_host_verified);
	tcase_add_test(tc, unreadable_ca_file_refused);
	tcase_add_test(tc, password_never_printed);
	tcase_add_test(tc, init_and_run_create_owner_only_files);
	tcase_add_test(tc, config_show_neutralises_control_characters);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(security_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
