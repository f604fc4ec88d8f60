/* pymodel.h - CPython's small-object allocator (pymalloc), rebuilt from the
 * events of the interpreter's domains: its arenas, their pools and the
 * blocks of each size class.
 *
 * Place in the pipeline: analyzer.  `memtrace python` feeds it every event
 * of the interpreter's process and reads its totals at moments of the run;
 * `memtrace layout` and the report's heap-layout map replay the events up
 * to a moment (mt_pymodel_replay) and list its arenas and pools in the
 * shapes layout_model.h uses for the bundled allocator, so one renderer
 * shows both.
 *
 * What the events say, and what is inferred (CPython 3.8+ obmalloc):
 *
 *     event                                  model
 *     pyarena alloc of size arena_size       a live arena: pools from the
 *                                            first pool boundary inside it
 *                                            (arena_size / pool_size pools,
 *                                            one fewer when the base is not
 *                                            pool-aligned), all uncarved
 *     pyarena free of a live arena           the arena is gone
 *     pyobj/pymem block inside a live arena  a pymalloc block of class
 *                                            (size + pad - 1) >> shift in
 *                                            the pool its address rounds
 *                                            down to; a realloc in place
 *                                            keeps the block's class
 *     its free                               the pool's count - 1
 *     an allocation at a live block's        that block ends first (its
 *     address                                free was not recorded)
 *
 * A pool's state follows its count: used (0 < blocks < capacity), full
 * (blocks = capacity), empty (0 blocks, but it served a class since its
 * arena was mapped), uncarved (never served one).  Capacity is
 * (pool_size - MT_PYMODEL_POOL_HEADER) / block size, as obmalloc's
 * NUMBLOCKS.  `pad` is what PYTHONMALLOC=debug's hooks add to each request
 * (two words before the block, one after), since the domain wrappers sit
 * above them.
 *
 * Key invariant: at every moment, the per-class counts of blocks and of
 * pools with a block equal what sys._debugmallocstats prints (the check of
 * `memtrace python` and tests/integration/python_layers.sh).  Cost: a hash
 * lookup per block event, a binary search over the live arenas; memory: a
 * map entry per live pymalloc block and a small record per pool of each
 * live arena.
 */
#ifndef MT_PYMODEL_H
#define MT_PYMODEL_H

#include "layout_model.h"
#include "mt_db.h"

#include <stddef.h>
#include <stdint.h>

#define MT_PYMODEL_MAX_CLASSES 64
#define MT_PYMODEL_POOL_HEADER 48 /* sizeof(struct pool_header), 64-bit */

typedef struct mt_pymodel mt_pymodel_t;

/* The interpreter's allocator, from its python row. */
typedef struct {
    int64_t arena_size, pool_size;  /* python.arena_size, python.pool_size */
    int64_t classes;                /* python.size_classes: 32 (16-byte) or 64 (8-byte alignment) */
    char allocator[24];             /* python.allocator: a name ending in _debug pads each block */
} mt_pymodel_geom_t;

/* Totals now. */
typedef struct {
    int64_t arenas;             /* live */
    int64_t arenas_total, arenas_freed, arenas_high;
    int64_t arena_freed_bytes;  /* returned to the OS so far */
    int64_t used_bytes;         /* sum of the block sizes of the live blocks */
    int64_t pools;              /* pools with a block in use */
    int64_t blocks;             /* live pymalloc blocks */
    int64_t class_used[MT_PYMODEL_MAX_CLASSES];  /* blocks per class */
    int64_t class_pools[MT_PYMODEL_MAX_CLASSES]; /* pools with a block, per class */
    int64_t anomalies;          /* blocks outside every pool of their arena (none in a real trace) */
} mt_pymodel_totals_t;

/* Creates an empty model for `process` (processes.id, the value of the
 * rows it lists).  Returns 0, MT_ENOMEM, or MT_EINVAL when the geometry is
 * not pymalloc's (no arena size, a pool size that is not a power of two
 * dividing it). */
int mt_pymodel_create(const mt_pymodel_geom_t *g, int64_t process, mt_pymodel_t **out);

/* Frees it.  NULL is fine. */
void mt_pymodel_destroy(mt_pymodel_t *m);

/* Applies one event of the interpreter's process (event_data: kind, addr,
 * size, old_addr, failed), in seq order; events of other domains are
 * ignored.  Returns 0 or MT_ENOMEM. */
int mt_pymodel_feed(mt_pymodel_t *m, int kind, uint64_t addr, int64_t size, uint64_t old, int failed);

/* Totals now. */
void mt_pymodel_totals(const mt_pymodel_t *m, mt_pymodel_totals_t *out);

/* Block size of class c (with the debug pad: what pymalloc serves), pools
 * per arena at most, and a pool's capacity in blocks of class c. */
int64_t mt_pymodel_block_size(const mt_pymodel_t *m, int c);
int64_t mt_pymodel_pool_capacity(const mt_pymodel_t *m, int c);
int mt_pymodel_classes(const mt_pymodel_t *m);
int64_t mt_pymodel_arena_size(const mt_pymodel_t *m);

/* Every pool that served a class since its arena was mapped, ordered by
 * arena and pool (index: its number among the arena's pools, from 0);
 * state used, full or empty.  *out malloc'ed (free it; NULL when *n is 0).
 * Returns 0 or MT_ENOMEM. */
int mt_pymodel_pools(const mt_pymodel_t *m, mt_layout_pool_t **out, size_t *n);

/* Every live arena, by address; pools_uncarved counts the pools that never
 * served a class, so the four counts sum to the arena's pools (*npools,
 * when not NULL, gets them per arena, in the same order).  Same contract. */
int mt_pymodel_arenas(const mt_pymodel_t *m, mt_layout_arena_t **out, size_t *n, int **npools);

/* Where mt_pymodel_replay stops (as mt_layout_replay_opts_t). */
typedef struct {
    int64_t at_seq;       /* apply the events with seq <= at_seq; -1: no limit */
    int64_t at_ts;        /* stop at the first event with ts > at_ts; -1: no limit */
    const char *progress; /* label of a percentage on stderr; NULL: none */
    /* called before each event is applied; non-zero stops the replay with
     * that code.  NULL: none */
    int (*before)(void *arg, int64_t seq, int64_t ts, const mt_pymodel_t *m);
    void *arg;
} mt_pymodel_replay_opts_t;

/* Streams the events of the interpreter's domains (pymem, pyobj, pyarena)
 * of the model's process into it, in seq order, up to the moment `opts`
 * gives (NULL: the end).  Returns 0, MT_ENOMEM or a database error
 * (message in mt_db_errmsg(db)). */
int mt_pymodel_replay(mt_pymodel_t *m, mt_db_t *db, const mt_pymodel_replay_opts_t *opts);

/* The interpreters of `db` whose allocator is pymalloc (a python row with
 * allocator pymalloc or pymalloc_debug and an arena size), ascending by process: processes.id into *procs and their
 * geometry into *geoms, both malloc'ed (free them; NULL when *n is 0).
 * Returns 0, MT_ENOMEM or a database error. */
int mt_pymodel_interpreters(mt_db_t *db, int64_t **procs, mt_pymodel_geom_t **geoms, size_t *n);

#endif
