/* progress.c - the percentage of a long pass on stderr (contract in
 * progress.h). */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static double since(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) + (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

static int seq_range(mt_db_t *db, int64_t *lo, int64_t *hi)
{
    mt_stmt_t *st;
    int rc = mt_stmt_prepare(db, "SELECT min(seq), max(seq) FROM event_data", &st);
    if (rc) return rc;
    *lo = *hi = 0;
    if ((rc = mt_stmt_step(st)) == 1) {
        *lo = mt_stmt_int(st, 0);
        *hi = mt_stmt_int(st, 1);
        rc = 0;
    }
    mt_stmt_finalize(st);
    return rc;
}

int mt_progress_start(mt_progress_t *p, const char *label, mt_db_t *db)
{
    memset(p, 0, sizeof *p);
    p->label = label;
    p->pct = -1;
    if (!label || !isatty(STDERR_FILENO)) return 0;
    p->tty = 1;
    clock_gettime(CLOCK_MONOTONIC, &p->start);
    return seq_range(db, &p->lo, &p->hi);
}

void mt_progress_tick(mt_progress_t *p, int64_t seq)
{
    if (!p->tty || (!p->shown && since(&p->start) < 1.0)) return;
    int pct = p->hi > p->lo ? (int)((double)(seq - p->lo) * 100.0 / (double)(p->hi - p->lo)) : 100;
    if (pct == p->pct) return;
    p->pct = pct;
    p->shown = 1;
    fprintf(stderr, "\r%s %3d%%", p->label, pct);
    fflush(stderr);
}

void mt_progress_end(mt_progress_t *p)
{
    if (p->shown) fprintf(stderr, "\r%*s\r", (int)strlen(p->label) + 5, "");
    p->shown = 0;
}
