/*
 * bench_rusage.c - runs a command and says what it cost.
 *
 *   bench_rusage OUT CMD [ARGS...]
 * Runs CMD (its stdin, stdout and stderr are ours), waits for it with
 * wait4(2), and writes one line to the file OUT:
 *   "status S wall W user U sys Y maxrss_kb M"
 * (seconds, and the child's peak resident set from ru_maxrss). Exits with
 * the child's status, or 1 when it could not be run.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "timeutil.h"

static double seconds_of(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
	struct rusage usage;
	int64_t t0, t1;
	int status = 0, code;
	FILE *out;
	pid_t pid;

	if (argc < 3) {
		fprintf(stderr, "usage: bench_rusage OUT CMD [ARGS...]\n");
		return 2;
	}
	t0 = time_mono_ms();
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "bench_rusage: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		fprintf(stderr, "bench_rusage: %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	while (wait4(pid, &status, 0, &usage) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "bench_rusage: wait4: %s\n",
				strerror(errno));
			return 1;
		}
	}
	t1 = time_mono_ms();
	code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	out = fopen(argv[1], "w");
	if (!out) {
		fprintf(stderr, "bench_rusage: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	fprintf(out, "status %d wall %.3f user %.3f sys %.3f maxrss_kb %ld\n",
		code, (double)(t1 - t0) / 1000.0, seconds_of(usage.ru_utime),
		seconds_of(usage.ru_stime), usage.ru_maxrss);
	if (fclose(out) != 0) {
		fprintf(stderr, "bench_rusage: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	return code;
}
