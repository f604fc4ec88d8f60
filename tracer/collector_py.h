/* collector_py.h - the collector's CPython part: garbage collections into
 * gc_events, the interpreter's facts into `python` and `pymalloc_stats`,
 * and the names of Python frames (see tracer/pyhooks.c for the target side).
 */
#ifndef MT_COLLECTOR_PY_H
#define MT_COLLECTOR_PY_H

#include <stdint.h>

#include "mt_db.h"
#include "mt_shm.h"

/* The collection phases (MT_REC_GC records) of one process, kept until
 * the end: records arrive in chunk order, not seq order, so a collection's
 * start and stop are paired only once all are in. */
typedef struct {
    int64_t seq, ts, thread, generation, collected, uncollectable;
    int stop;
} mt_pyphase_t;

typedef struct {
    mt_pyphase_t *v;
    size_t n, cap;
} mt_pygc_t;

/* Keeps one MT_REC_GC record (`ts`: relative ns) and declares its seq used. */
int mt_pyc_gc(mt_db_t *db, mt_pygc_t *gc, int64_t thread, const mt_rec_t *rec, int64_t ts);

/* Pairs the phases by seq (a stop ends the latest start before it) into
 * gc_events rows of the process, and frees them. */
int mt_pyc_gc_write(mt_db_t *db, mt_pygc_t *gc, int64_t process_id);
void mt_pyc_gc_free(mt_pygc_t *gc);

/* Writes the `python` row and pymalloc_stats of a region that ran an
 * interpreter (nothing otherwise). */
int mt_pyc_write_info(mt_db_t *db, int64_t process_id, mt_region_t *r);

/* The resolved Python frames of a region, by ip. */
typedef struct mt_pynames mt_pynames_t;
int mt_pyc_names_load(mt_region_t *r, mt_pynames_t **out);
/* The entry of `ip`, or NULL; file and function point into the region. */
const mt_pyname_t *mt_pyc_name(const mt_pynames_t *n, uint64_t ip, const char **file, const char **func);
void mt_pyc_names_free(mt_pynames_t *n);

/* After the events are sealed: each collection's trigger, the last object
 * allocation of its thread before it started. */
int mt_pyc_triggers(mt_db_t *db);

#endif
