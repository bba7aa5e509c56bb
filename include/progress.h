/*
 * progress.h - a one-line progress display for long operator commands.
 *
 * Shown only when the descriptor is a terminal and the work is larger than
 * one batch; otherwise every call is a no-op, so pipes, logs and cron mail
 * never see it. The line is redrawn in place at most every PROGRESS_EVERY_MS
 * and erased at the end, leaving the command's own output alone.
 */
#ifndef SMARTRELAY_PROGRESS_H
#define SMARTRELAY_PROGRESS_H

#include <stdint.h>

#define PROGRESS_EVERY_MS 100

struct progress {
	int fd;
	int active;
	const char *what;     /* borrowed: "requeued", "purged" */
	int64_t total;
	int64_t last_draw_ms; /* monotonic */
};

/*
 * Starts a display of total rows on fd when fd is a terminal and total
 * exceeds min_total. what names the work done ("purged").
 */
void progress_start(struct progress *p, int fd, const char *what,
		    int64_t total, int64_t min_total);

/* Shows done of total (rate-limited; done is clamped to total). */
void progress_update(struct progress *p, int64_t done);

/* Erases the line. */
void progress_end(struct progress *p);

#endif
