/* progress.h - the percentage a long pass shows on stderr.
 *
 * Place in the pipeline: analyzer.  Every pass over event_data (the heap
 * model's replay, the layout model's replay) shows "LABEL  NN%" on stderr,
 * but only when stderr is a terminal and only once the pass has run for a
 * second, so short passes and redirected output stay silent.  The
 * percentage is the position of the current seq in the table's seq range.
 */
#ifndef MT_PROGRESS_H
#define MT_PROGRESS_H

#include "mt_db.h"

#include <stdint.h>
#include <time.h>

typedef struct {
    const char *label;
    int tty, shown, pct;
    struct timespec start;
    int64_t lo, hi;  /* seq range of event_data */
} mt_progress_t;

/* Starts the clock for a pass over db's events; label NULL: no progress.
 * Reads the seq range only when stderr is a terminal.  Returns 0 or a
 * database error. */
int mt_progress_start(mt_progress_t *p, const char *label, mt_db_t *db);

/* Cheap enough to call every 64Ki events: updates the line when the
 * percentage changed. */
void mt_progress_tick(mt_progress_t *p, int64_t seq);

/* Erases the line if it was shown. */
void mt_progress_end(mt_progress_t *p);

#endif
