/*
 * test_progress.c - the progress line: drawn on a terminal (a pseudo
 * terminal here), never on a pipe, never for work smaller than a batch.
 */
#include <check.h>
#include <fcntl.h>
#include <pty.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"

/* What is waiting to be read on fd (non-blocking), NUL-terminated. */
static void drain(int fd, char *buf, size_t size)
{
	ssize_t n;
	size_t len = 0;

	ck_assert_int_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	while (len + 1 < size && (n = read(fd, buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
}

START_TEST(draws_on_a_terminal)
{
	struct progress p;
	int master, slave;
	char buf[512];

	ck_assert_int_eq(openpty(&master, &slave, NULL, NULL, NULL), 0);
	progress_start(&p, slave, "purged", 3000, 1000);
	ck_assert_int_eq(p.active, 1);
	progress_update(&p, 1500);
	progress_end(&p);
	drain(master, buf, sizeof(buf));
	ck_assert_msg(strstr(buf, "purged 1500 of 3000 (50%)"), "got '%s'", buf);
	/* Erased at the end. */
	ck_assert_ptr_nonnull(strstr(buf, "\r\033[K"));
	close(slave);
	close(master);
}
END_TEST

START_TEST(silent_on_a_pipe_and_for_small_work)
{
	struct progress p;
	int fds[2], master, slave;
	char buf[512];

	ck_assert_int_eq(pipe(fds), 0);
	progress_start(&p, fds[1], "requeued", 100000, 1000);
	ck_assert_int_eq(p.active, 0);
	progress_update(&p, 5000);
	progress_end(&p);
	drain(fds[0], buf, sizeof(buf));
	ck_assert_str_eq(buf, "");
	close(fds[0]);
	close(fds[1]);

	ck_assert_int_eq(openpty(&master, &slave, NULL, NULL, NULL), 0);
	progress_start(&p, slave, "requeued", 1000, 1000);
	ck_assert_int_eq(p.active, 0);
	progress_update(&p, 500);
	progress_end(&p);
	drain(master, buf, sizeof(buf));
	ck_assert_str_eq(buf, "");
	close(slave);
	close(master);
}
END_TEST

START_TEST(clamps_to_total)
{
	struct progress p;
	int master, slave;
	char buf[512];

	ck_assert_int_eq(openpty(&master, &slave, NULL, NULL, NULL), 0);
	progress_start(&p, slave, "requeued", 2000, 1000);
	progress_update(&p, 2500);
	progress_end(&p);
	drain(master, buf, sizeof(buf));
	ck_assert_msg(strstr(buf, "requeued 2000 of 2000 (100%)"), "got '%s'", buf);
	close(slave);
	close(master);
}
END_TEST

static Suite *progress_suite(void)
{
	Suite *s = suite_create("progress");
	TCase *tc = tcase_create("progress");

	tcase_add_test(tc, draws_on_a_terminal);
	tcase_add_test(tc, silent_on_a_pipe_and_for_small_work);
	tcase_add_test(tc, clamps_to_total);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *runner = srunner_create(progress_suite());
	int failed;

	srunner_run_all(runner, CK_NORMAL);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
