/*
 * workers.c - runs `run --workers N`: N relay processes and their parent.
 *
 * The parent forks the workers, then only waits for signals: stop signals
 * go on to every worker, and a worker's end is collected. Workers are plain
 * relays (relay_run), so everything said of several relays on one database
 * holds for them; the parent touches neither the database nor the network.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "workers.h"

struct worker {
	pid_t pid;   /* 0 once it has been collected */
	int status;  /* its exit status as the command's: 0 or 1 */
};

static void workers_signal(const struct worker *workers, int count, int signo)
{
	for (int i = 0; i < count; i++)
		if (workers[i].pid > 0 && kill(workers[i].pid, signo) != 0 &&
		    errno != ESRCH)
			log_error("cannot signal worker %d (pid %ld): %s", i + 1,
				  (long)workers[i].pid, strerror(errno));
}

/* Collects the workers that ended; returns how many did, and reports the
 * ones that failed. */
static int workers_collect(struct worker *workers, int count)
{
	int ended = 0;
	pid_t pid;
	int wstatus;

	while ((pid = waitpid(-1, &wstatus, WNOHANG)) != 0) {
		if (pid < 0) {
			/* ECHILD: none left to wait for, collected or not. */
			for (int i = 0; i < count; i++) {
				if (workers[i].pid > 0) {
					log_error("worker %d (pid %ld) ended "
						  "unseen", i + 1,
						  (long)workers[i].pid);
					workers[i].pid = 0;
					workers[i].status = 1;
					ended++;
				}
			}
			break;
		}
		for (int i = 0; i < count; i++) {
			if (workers[i].pid != pid)
				continue;
			workers[i].pid = 0;
			workers[i].status = 1;
			if (WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)
				workers[i].status = 0;
			else if (WIFEXITED(wstatus))
				log_error("worker %d (pid %ld) exited with status %d",
					  i + 1, (long)pid, WEXITSTATUS(wstatus));
			else if (WIFSIGNALED(wstatus))
				log_error("worker %d (pid %ld) was killed by signal %d",
					  i + 1, (long)pid, WTERMSIG(wstatus));
			ended++;
		}
	}
	return ended;
}

/*
 * Worker i, in the child: runs its relay and returns the relay's exit
 * status, which the command then returns like any other, so that the
 * worker cleans up as a single relay does. It keeps the stop signals
 * blocked: relay_run reads them from a signalfd.
 */
static int worker_main(const char *db_path, const struct relay_options *options,
		       int i, const sigset_t *worker_mask, pid_t parent)
{
	struct relay_options own = *options;
	char listen[320], err[320];

	sigprocmask(SIG_SETMASK, worker_mask, NULL);
	/* A parent killed outright (SIGKILL, the OOM killer) cannot pass a
	 * stop on: the kernel sends it instead, and a worker whose parent is
	 * already gone stops of itself. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
		log_warn("worker %d: cannot follow its parent: %s", i + 1,
			 strerror(errno));
	if (getppid() != parent)
		raise(SIGTERM);
	own.worker = i + 1;
	/* Checked by the command: each worker serves its own counters. */
	if (options->metrics_listen) {
		if (metrics_listen_shift(options->metrics_listen, i, listen,
					 sizeof(listen), err, sizeof(err)) != 0) {
			log_error("worker %d: --metrics-listen: %s", i + 1, err);
			return 1;
		}
		own.metrics_listen = listen;
	}
	/* One worker purges; the others would only find nothing. */
	if (i > 0)
		own.retention_ms = 0;
	return relay_run(db_path, &own);
}

int workers_run(const char *db_path, const struct relay_options *options,
		int count)
{
	struct worker workers[WORKERS_MAX];
	struct sigaction chld = { .sa_handler = SIG_DFL }, old_chld;
	const struct timespec now = { 0, 0 };
	sigset_t watched, old, worker_mask;
	pid_t parent = getpid();
	int running = 0, stopping = 0, status = 0;

	if (count <= 1)
		return relay_run(db_path, options);
	sigemptyset(&watched);
	sigaddset(&watched, SIGTERM);
	sigaddset(&watched, SIGINT);
	sigaddset(&watched, SIGHUP);
	sigaddset(&watched, SIGCHLD);
	/* Blocked before the first fork, so that no signal falls between. */
	if (sigprocmask(SIG_BLOCK, &watched, &old) != 0) {
		log_error("cannot block signals: %s", strerror(errno));
		return 1;
	}
	/* A SIGCHLD ignored by whoever started us would have the kernel reap
	 * the workers unseen, without a signal. */
	sigemptyset(&chld.sa_mask);
	if (sigaction(SIGCHLD, &chld, &old_chld) != 0) {
		log_error("cannot watch the workers: %s", strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
		return 1;
	}
	worker_mask = old;
	sigaddset(&worker_mask, SIGTERM);
	sigaddset(&worker_mask, SIGINT);
	sigaddset(&worker_mask, SIGHUP);
	log_info("starting %d workers", count);
	for (int i = 0; i < count; i++) {
		workers[i].pid = fork();
		if (workers[i].pid == 0)
			return worker_main(db_path, options, i, &worker_mask,
					   parent);
		workers[i].status = 0;
		if (workers[i].pid < 0) {
			log_error("cannot start worker %d: %s", i + 1,
				  strerror(errno));
			workers[i].pid = 0;
			workers[i].status = 1;
			stopping = 1;
			workers_signal(workers, i, SIGTERM);
			/* The ones started, and this one's failure. */
			count = i + 1;
			break;
		}
		running++;
	}
	while (running > 0) {
		siginfo_t info;
		int ended, signo = sigwaitinfo(&watched, &info);

		if (signo < 0) {
			if (errno == EINTR)
				continue;
			log_error("cannot wait for signals: %s", strerror(errno));
			stopping = 1;
			workers_signal(workers, count, SIGTERM);
			break;
		}
		if (signo != SIGCHLD) {
			stopping |= signo != SIGHUP;
			workers_signal(workers, count, signo);
			continue;
		}
		ended = workers_collect(workers, count);
		running -= ended;
		/* A daemon's worker never ends alone: if one does, even
		 * cleanly, the command fails, so that a service manager starts
		 * them all again. A --once worker ends when its share is done,
		 * and only a failure stops the others. */
		for (int i = 0; i < count && ended > 0 && !stopping; i++) {
			if (workers[i].pid == 0 &&
			    (!options->once || workers[i].status != 0)) {
				log_warn("worker %d ended: stopping the others",
					 i + 1);
				workers[i].status = 1;
				stopping = 1;
				workers_signal(workers, count, SIGTERM);
			}
		}
	}
	/* Only after a failed sigwaitinfo are some still running. */
	for (int i = 0; i < count; i++) {
		if (workers[i].pid > 0 && waitpid(workers[i].pid, NULL, 0) > 0)
			workers[i].status = 1;
		status |= workers[i].status;
	}
	/* A stop that came after the last worker ended must not kill us as
	 * the mask is restored: it has been answered. */
	while (sigtimedwait(&watched, NULL, &now) > 0)
		;
	sigaction(SIGCHLD, &old_chld, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return status;
}
