/*
 * testutil.c - scratch directories, files, child processes and the loopback
 * receiver, shared by every suite. See testutil.h.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "store.h"
#include "testutil.h"

static const char *env_or_abort(const char *name)
{
	const char *value = getenv(name);

	if (!value || !*value)
		ck_abort_msg("%s is not set: run the tests through make check", name);
	return value;
}

static char *xstrdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *xstrdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		ck_abort_msg("out of memory");
	return s;
}

static void remove_tree(const char *path)
{
	char *argv[] = { (char *)"rm", (char *)"-rf", (char *)path, NULL };
	pid_t pid = fork();

	if (pid == 0) {
		execvp("rm", argv);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

char *tu_tmpdir(const char *name)
{
	const char *base = env_or_abort("SMARTRELAY_TMP");
	char *dir = xstrdup_printf("%s/%s.%ld", base, name, (long)getpid());

	mkdir(base, 0700);
	remove_tree(dir);
	if (mkdir(dir, 0700) != 0)
		ck_abort_msg("mkdir %s: %s", dir, strerror(errno));
	return dir;
}

char *tu_path(const char *dir, const char *file)
{
	return xstrdup_printf("%s/%s", dir, file);
}

char *tu_db(const char *dir)
{
	static unsigned counter;
	const char *base = getenv("SMARTRELAY_TEST_DB_URI");
	const char *bin = getenv("SMARTRELAY_PG_BIN");
	struct timespec ts;
	char *name, *createdb, *maintenance, *err = NULL;
	int status;

	if (base == NULL || *base == '\0')
		return tu_path(dir, "relay.db");
	clock_gettime(CLOCK_REALTIME, &ts);
	name = xstrdup_printf("t_%ld_%u_%ld", (long)getpid(), counter++,
			      (long)ts.tv_nsec);
	createdb = xstrdup_printf("%s/createdb",
				  bin && *bin ? bin : "/usr/lib/postgresql/15/bin");
	maintenance = xstrdup_printf("--maintenance-db=%s/postgres", base);
	{
		char *const argv[] = { createdb, maintenance, name, NULL };

		status = tu_run(argv, 30000, NULL, &err);
	}
	ck_assert_msg(status == 0, "createdb %s: %s", name, err ? err : "");
	free(err);
	free(maintenance);
	free(createdb);
	{
		char *uri = xstrdup_printf("%s/%s", base, name);

		free(name);
		return uri;
	}
}

char *tu_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t size = 0, cap = 0, n;

	if (!f)
		return NULL;
	do {
		if (cap - size < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap + 1);
			ck_assert_ptr_nonnull(buf);
		}
		n = fread(buf + size, 1, cap - size, f);
		size += n;
	} while (n > 0);
	fclose(f);
	buf[size] = '\0';
	if (len)
		*len = size;
	return buf;
}

void tu_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");

	ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

int tu_count(const char *haystack, const char *needle)
{
	int n = 0;
	size_t step = strlen(needle);

	if (!haystack || step == 0)
		return 0;
	for (const char *p = strstr(haystack, needle); p; p = strstr(p + step, needle))
		n++;
	return n;
}

static void redirect(int fd, const char *path)
{
	int target = open(path ? path : "/dev/null",
			  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (target < 0 || dup2(target, fd) < 0)
		_exit(126);
	close(target);
}

pid_t tu_spawn(char *const argv[], const char *out_path, const char *err_path)
{
	pid_t pid = fork();

	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int in = open("/dev/null", O_RDONLY);

		if (in >= 0)
			dup2(in, 0);
		redirect(1, out_path);
		redirect(2, err_path);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

void tu_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int tu_wait(pid_t pid, int timeout_ms)
{
	int status, waited = 0;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		ck_assert_msg(r == 0, "waitpid: %s", strerror(errno));
		if (waited >= timeout_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			ck_abort_msg("process %ld still running after %d ms",
				     (long)pid, timeout_ms);
		}
		tu_sleep_ms(5);
		waited += 5;
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

int tu_run(char *const argv[], int timeout_ms, char **out, char **err)
{
	char *dir = tu_tmpdir("run");
	char *out_path = tu_path(dir, "stdout");
	char *err_path = tu_path(dir, "stderr");
	int status = tu_wait(tu_spawn(argv, out_path, err_path), timeout_ms);

	if (out)
		*out = tu_read_file(out_path, NULL);
	if (err)
		*err = tu_read_file(err_path, NULL);
	remove_tree(dir);
	free(out_path);
	free(err_path);
	free(dir);
	return status;
}

int tu_smartrelay(int timeout_ms, char **out, char **err, ...)
{
	char *argv[64];
	int argc = 0, status;
	va_list ap;

	argv[argc++] = (char *)env_or_abort("SMARTRELAY_BIN");
	va_start(ap, err);
	while (argc < 63 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	status = tu_run(argv, timeout_ms, out, err);
	return status;
}

void tu_receiver_start(struct tu_receiver *rx, const char *dir)
{
	tu_receiver_start_on(rx, dir, "127.0.0.1");
}

void tu_receiver_start_on(struct tu_receiver *rx, const char *dir,
			  const char *address)
{
	char *port_path = tu_path(dir, "receiver.port");
	char *err_path = tu_path(dir, "receiver.log");
	char *argv[] = {
		(char *)env_or_abort("SMARTRELAY_RECEIVER"),
		(char *)"--port-file", port_path,
		(char *)"--record", NULL,
		(char *)"--ids", NULL,
		(char *)"--max-seconds", (char *)"300",
		(char *)"--address", (char *)address,
		NULL,
	};
	int waited;

	memset(rx, 0, sizeof(*rx));
	rx->dir = strdup(dir);
	rx->address = strdup(address);
	rx->record_path = tu_path(dir, "requests.raw");
	rx->ids_path = tu_path(dir, "requests.ids");
	argv[4] = rx->record_path;
	argv[6] = rx->ids_path;
	unlink(port_path);
	rx->pid = tu_spawn(argv, NULL, err_path);
	for (waited = 0; waited < 5000; waited += 5) {
		char *text = tu_read_file(port_path, NULL);

		if (text && *text) {
			rx->port = (int)strtol(text, NULL, 10);
			free(text);
			break;
		}
		free(text);
		tu_sleep_ms(5);
	}
	ck_assert_msg(rx->port > 0, "receiver did not start (see %s)", err_path);
	free(port_path);
	free(err_path);
}

void tu_receiver_stop(struct tu_receiver *rx)
{
	if (rx->pid > 0) {
		kill(rx->pid, SIGTERM);
		tu_wait(rx->pid, 5000);
	}
	free(rx->dir);
	free(rx->address);
	free(rx->record_path);
	free(rx->ids_path);
	memset(rx, 0, sizeof(*rx));
}

char *tu_receiver_url(const struct tu_receiver *rx, const char *path)
{
	return xstrdup_printf("http://%s:%d%s", rx->address, rx->port, path);
}

char *tu_receiver_requests(const struct tu_receiver *rx)
{
	char *text = tu_read_file(rx->record_path, NULL);

	return text ? text : strdup("");
}

int tu_receiver_wait_count(const struct tu_receiver *rx, int n, int timeout_ms)
{
	int waited, seen = 0;

	for (waited = 0; waited <= timeout_ms; waited += 10) {
		char *ids = tu_read_file(rx->ids_path, NULL);

		seen = tu_count(ids, "\n");
		free(ids);
		if (seen >= n)
			return seen;
		tu_sleep_ms(10);
	}
	return seen;
}

char *tu_http_request(int port, const char *method, const char *path,
		      int *status)
{
	struct sockaddr_in addr;
	struct timeval limit = { 5, 0 };
	char *request = xstrdup_printf("%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n"
				       "Content-Length: 0\r\n\r\n", method, path);
	char *response = NULL, *body;
	size_t size = 0, cap = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit,
				    sizeof(limit)), 0);
	ck_assert_msg(connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0,
		      "connect to port %d: %s", port, strerror(errno));
	ck_assert_int_eq(write(fd, request, strlen(request)),
			 (ssize_t)strlen(request));
	do {
		if (cap - size < 4096) {
			cap = cap ? cap * 2 : 8192;
			response = realloc(response, cap + 1);
			ck_assert_ptr_nonnull(response);
		}
		n = read(fd, response + size, cap - size);
		if (n > 0)
			size += (size_t)n;
	} while (n > 0);
	close(fd);
	ck_assert_msg(n == 0, "no complete response from port %d", port);
	response[size] = '\0';
	ck_assert_msg(sscanf(response, "HTTP/1.%*d %d", status) == 1,
		      "not an HTTP response: %s", response);
	body = strstr(response, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	body = strdup(body + 4);
	ck_assert_ptr_nonnull(body);
	free(response);
	free(request);
	return body;
}

/* ---- an integration test's world ---------------------------------------- */

#define TU_COMMAND_TIMEOUT_MS 30000

void tu_env_open(struct tu_env *env, const char *name)
{
	env->dir = tu_tmpdir(name);
	env->db = tu_db(env->dir);
	ck_assert_int_eq(tu_smartrelay(TU_COMMAND_TIMEOUT_MS, NULL, NULL, "init",
				       env->db, NULL), 0);
	tu_receiver_start(&env->rx, env->dir);
}

void tu_env_close(struct tu_env *env)
{
	tu_receiver_stop(&env->rx);
	free(env->db);
	free(env->dir);
}

void tu_config_set(const struct tu_env *env, const char *cloud_id,
		   const char *key, const char *value)
{
	ck_assert_int_eq(tu_smartrelay(TU_COMMAND_TIMEOUT_MS, NULL, NULL, "config",
				       env->db, "set", key, value, "--cloud-id",
				       cloud_id, NULL), 0);
}

void tu_provision(const struct tu_env *env, const char *cloud_id,
		  const char *path, const char *content_type)
{
	char *url = tu_receiver_url(&env->rx, path);

	tu_config_set(env, cloud_id, "smartContactNotificationUrl", url);
	tu_config_set(env, cloud_id, "smartContactNotificationContentType",
		      content_type);
	free(url);
}

int64_t tu_produce(const struct tu_env *env, const char *cloud_id,
		   const char *number, const char *parties)
{
	struct store *store = NULL;
	char err[256];
	int64_t id = 0;
	struct new_event ev = {
		cloud_id, number ? number : "+420111222333", "network_1",
		"sip_uri_1",
		parties ? parties
			: "[{\"username\":\"eric\",\"device\":\"erics_iphone\"}]",
	};

	ck_assert_msg(store_open(env->db, STORE_OPEN_EXISTING, &store, err,
				 sizeof(err)) == STORE_OK, "open %s: %s", env->db, err);
	ck_assert_msg(store_enqueue(store, &ev, &id) == STORE_OK, "enqueue: %s",
		      store_errmsg(store));
	store_close(store);
	return id;
}

static void text_copy(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

static int row_take(const struct history_row *h, void *arg)
{
	struct tu_row *row = arg;

	row->found = 1;
	text_copy(row->status, sizeof(row->status), h->status);
	row->attempts = h->attempts;
	row->http_status = h->http_status;
	row->has_error = h->error != NULL;
	text_copy(row->error, sizeof(row->error), h->error);
	text_copy(row->next_attempt_at, sizeof(row->next_attempt_at),
		  h->next_attempt_at);
	text_copy(row->delivered_at, sizeof(row->delivered_at), h->delivered_at);
	return 0;
}

static int row_take_attempt(const struct attempt_row *a, void *arg)
{
	struct tu_row *row = arg;

	row->attempt_rows++;
	/* Attempt numbers stay unique and in order, requeues included. */
	ck_assert_int_eq(a->attempt, row->attempt_rows);
	row->last_attempt_status = a->http_status;
	return 0;
}

struct tu_row tu_fetch(const struct tu_env *env, int64_t id)
{
	struct history_filter filter = { .id = id };
	struct store *store = NULL;
	struct tu_row row;
	char err[256];

	memset(&row, 0, sizeof(row));
	ck_assert_msg(store_open(env->db, STORE_OPEN_EXISTING, &store, err,
				 sizeof(err)) == STORE_OK, "open %s: %s", env->db, err);
	ck_assert_int_eq(store_history(store, &filter, row_take, &row), STORE_OK);
	ck_assert_int_eq(store_attempts(store, id, row_take_attempt, &row),
			 STORE_OK);
	store_close(store);
	return row;
}
