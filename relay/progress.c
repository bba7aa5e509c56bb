/*
 * progress.c - the progress line behind progress.h: carriage return,
 * the figures, and an erase-to-end-of-line, on a terminal only.
 */
#include "progress.h"

#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "timeutil.h"

void progress_start(struct progress *p, int fd, const char *what,
		    int64_t total, int64_t min_total)
{
	p->fd = fd;
	p->what = what;
	p->total = total;
	p->last_draw_ms = 0;
	p->active = total > min_total && isatty(fd);
}

void progress_update(struct progress *p, int64_t done)
{
	int64_t now = time_mono_ms();

	if (!p->active || (p->last_draw_ms != 0 &&
			   now - p->last_draw_ms < PROGRESS_EVERY_MS))
		return;
	if (done > p->total)
		done = p->total;
	p->last_draw_ms = now;
	/* A failed write only loses the display. */
	dprintf(p->fd, "\r%s %" PRId64 " of %" PRId64 " (%" PRId64 "%%)\033[K",
		p->what, done, p->total, p->total ? done * 100 / p->total : 100);
}

void progress_end(struct progress *p)
{
	if (p->active)
		dprintf(p->fd, "\r\033[K");
	p->active = 0;
}
