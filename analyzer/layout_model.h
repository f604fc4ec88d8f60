/* layout_model.h - the bundled allocator's arenas and pools, rebuilt from
 * its events (`allocator_events`, --allocator=bundled).
 *
 * Place in the pipeline: analyzer.  `memtrace layout` replays the allocator
 * events up to a moment through this model and prints its pools, classes
 * and arenas; a check against the allocator's own statistics
 * (allocator_stats, pym_stats_t) reads mt_layout_stats, which fills the
 * very structure pym_stats() fills.
 *
 * What is modelled, per process (each has its own address space; a fork
 * child starts as a copy of its parent, mt_layout_fork): every mapped
 * arena (1 MiB, PYM_POOLS_PER_ARENA pools) and the state of each of its
 * pools, following the state machine of lib/pym.h:
 *
 *     event (pym code)          pool or arena before   after
 *     arena_alloc               (unmapped)             every pool UNCARVED
 *     arena_free                no pool in use         (unmapped)
 *     pool_init value FRESH     UNCARVED               USED, ref 0, class c
 *     pool_init SAME / OTHER    EMPTY                  USED, class c
 *     block_alloc_*             USED                   ref + 1
 *     pool_full                 USED, ref = capacity   FULL
 *     block_free value v        USED or FULL           ref - 1 (= v)
 *     pool_reuse                FULL                   USED
 *     pool_empty                USED, ref 0            EMPTY (keeps class c)
 *     fallback_*, double_free   -                      counters only
 *
 * (pym emits a block's event before the pool transition it causes, so the
 * rows above hold at every event.)  An event that contradicts the model - a
 * pool in the wrong state, a ref that disagrees with the event's value, an
 * arena never seen mapped - is applied anyway, as far as it makes sense,
 * and counted in `anomalies`: a trace written by memtrace has none.
 *
 * Key invariant: for every pool, state FULL iff the events said pool_full
 * since its last pool_init or pool_reuse; blocks_used == block allocations
 * - block frees since its pool_init (SAME keeps the count, which is 0).
 * Cost: O(1) per event (a hash lookup of the arena, the last one cached);
 * memory: one record of about 1 KiB per mapped arena.
 */
#ifndef MT_LAYOUT_MODEL_H
#define MT_LAYOUT_MODEL_H

#include "mt_db.h"
#include "pym.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mt_layout mt_layout_t;

typedef enum {
    MT_POOL_UNCARVED = 0, /* never used since its arena was mapped */
    MT_POOL_USED,         /* serving its class, a block available */
    MT_POOL_FULL,         /* every block in use */
    MT_POOL_EMPTY         /* no block in use; keeps its last class */
} mt_pool_state_t;

/* One allocator event, as event_data stores it. */
typedef struct {
    int64_t seq, ts;
    int64_t process;     /* processes.id */
    int kind;            /* pym code (PYM_EV_*): event_data.kind - MT_KIND_PYM_BASE */
    uint64_t addr;       /* event_data.addr: the block, else the pool, else the arena */
    uint64_t pool;       /* event_data.pool, 0 when none */
    int size_class;      /* event_data.size_class, -1 when none */
    int64_t value;       /* event_data.size: the event's value */
} mt_layout_event_t;

/* A pool that has served a class (USED, FULL or EMPTY); uncarved pools
 * are only counted. */
typedef struct {
    int64_t process;
    uint64_t arena, pool;
    int index;               /* number of the pool in its arena, 0..63 */
    int size_class;
    mt_pool_state_t state;
    int64_t blocks_used;
    int64_t capacity;        /* PYM_CLASS_CAPACITY(size_class) */
} mt_layout_pool_t;

/* A mapped arena. */
typedef struct {
    int64_t process;
    uint64_t arena;
    int pools_used, pools_full, pools_empty, pools_uncarved; /* sum: 64 */
    int64_t blocks_used;
    int64_t bytes_in_use;    /* sum of the block sizes of used blocks */
} mt_layout_arena_t;

/* Totals of the whole model. */
typedef struct {
    int64_t events;          /* events fed */
    int64_t last_seq, last_ts; /* of the last event fed (-1: none) */
    int64_t anomalies;       /* events that contradicted the model */
    int64_t forks;           /* mt_layout_fork calls */
} mt_layout_info_t;

/* Creates an empty model.  Returns 0 or MT_ENOMEM. */
int mt_layout_create(mt_layout_t **out);

/* Frees it.  NULL is fine. */
void mt_layout_destroy(mt_layout_t *m);

/* Applies one event (in increasing seq).  Returns 0 or MT_ENOMEM (the
 * model is then unchanged). */
int mt_layout_feed(mt_layout_t *m, const mt_layout_event_t *ev);

/* Process `child` starts as a copy of `parent` as it is now (fork(2)):
 * arenas, pools and counters; whatever `child` had is replaced (nothing
 * happens when they are the same).  Returns 0 or MT_ENOMEM. */
int mt_layout_fork(mt_layout_t *m, int64_t parent, int64_t child);

/* Totals so far. */
mt_layout_info_t mt_layout_info(const mt_layout_t *m);

/* The processes that have had allocator events (or a fork), ascending:
 * *out malloc'ed (free it; NULL when *n is 0).  Returns 0 or MT_ENOMEM. */
int mt_layout_processes(const mt_layout_t *m, int64_t **out, size_t *n);

/* What pym_stats() would have returned in `process` now (zeros for a
 * process without events).  Counters the events cannot give are those of
 * the events: arenas_allocated and arenas_freed count arena_alloc and
 * arena_free events, bad_frees double_free events (a fork child inherits
 * its parent's, as in pym). */
void mt_layout_stats(const mt_layout_t *m, int64_t process, pym_stats_t *out);

/* Every carved pool, ordered by process, arena, pool.  *out malloc'ed (free
 * it; NULL when *n is 0).  Returns 0 or MT_ENOMEM. */
int mt_layout_pools(const mt_layout_t *m, mt_layout_pool_t **out, size_t *n);

/* Every mapped arena, ordered by process and address.  Same contract. */
int mt_layout_arenas(const mt_layout_t *m, mt_layout_arena_t **out, size_t *n);

/* Where mt_layout_replay stops. */
typedef struct {
    int64_t at_seq;      /* apply the events with seq <= at_seq; -1: no limit */
    int64_t at_ts;       /* stop at the first event with ts > at_ts; -1: no limit */
    const char *progress; /* label of a percentage on stderr (heapmodel.h's rule); NULL: none */
    /* called before each event is applied, with the layout as it stands
     * (so a caller can sample many moments in one pass); non-zero stops
     * the replay with that code.  NULL: none */
    int (*before)(void *arg, const mt_layout_event_t *ev, const mt_layout_t *m);
    void *arg;
} mt_layout_replay_opts_t;

/* Streams the allocator events of `db` (event_data rows of the bundled
 * domain, in seq order) into `m` up to the moment `opts` gives (NULL: the
 * end), with each fork child copied from its parent at its fork_child
 * marker (or, without one, at its first event).  Returns 0, MT_ENOMEM or a
 * database error (message in mt_db_errmsg(db)). */
int mt_layout_replay(mt_layout_t *m, mt_db_t *db, const mt_layout_replay_opts_t *opts);

/* Name of a state: "uncarved", "used", "full", "empty". */
const char *mt_pool_state_name(mt_pool_state_t s);

#endif
