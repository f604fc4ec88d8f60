/* heapmodel.h - the streaming heap model: replays a trace's events in `seq`
 * order and keeps the set of live blocks.
 *
 * Place in the pipeline: analyzer.  A subcommand (summary, leaks, peak,
 * growth) either lets the model stream the whole event_data table
 * (mt_heap_replay, one pass, a callback per event) or feeds it events itself
 * (mt_heap_feed), then reads the totals (mt_heap_stats) and what is still
 * live at the end (mt_heap_leaks, mt_heap_foreach_live).
 *
 * What is modelled:
 *   heap      the libc domain (malloc family): address -> (size, stack, seq)
 *   mappings  the os domain: mmap creates a region, munmap ends the region
 *             that starts at its address (a shorter munmap keeps the tail),
 *             mremap moves a region.  Approximate: unmapping the middle or
 *             the end of a region, or several regions at once, is counted
 *             as an unknown unmap and leaves the model unchanged.
 *   other domains (CPython, bundled allocator) are not modelled.
 * Each process has its own address space, so blocks are kept per process
 * (threads.process_id); totals and peaks are over all processes together.
 *
 * Rules, by event (failed calls change nothing, they are only counted):
 *   alloc kinds        a block of `size` bytes at addr (addr 0: no block)
 *   free kinds         ends the block at addr; an address never seen
 *                      allocated (allocated before tracing started) is an
 *                      unknown free, not an error
 *   realloc, mremap    ends the block at old_addr (if any), then creates the
 *                      one at addr (if any): realloc(p, 0) only frees
 *   temporary          an allocation whose block is ended by the very next
 *                      heap event of the same thread (heaptrack's rule);
 *                      a realloc of that block (moved or in place)
 *                      ends it too
 *   peak               live heap bytes after an event; the first event that
 *                      reaches the maximum gives peak_seq / peak_ts
 *
 * Key invariant: live_bytes == sum of the sizes of the blocks in the maps,
 * and live_blocks == their number, after every mt_heap_feed.
 */
#ifndef MT_HEAPMODEL_H
#define MT_HEAPMODEL_H

#include "mt_db.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mt_heap mt_heap_t;

/* Totals, valid after any number of events. */
typedef struct {
    int64_t events;             /* events fed, any domain */
    int64_t last_seq, last_ts;  /* of the last event fed */
    int64_t failed;             /* failed calls (any domain) */
    /* heap: libc domain */
    int64_t allocs;             /* blocks created (realloc's new block included) */
    int64_t frees;              /* known blocks ended (realloc's old block included) */
    int64_t temporary;          /* allocations ended by their thread's next heap event */
    int64_t unknown_frees;      /* free/realloc of an address never seen allocated */
    int64_t replaced_live;      /* allocation at a live address (its free was not seen) */
    int64_t live_blocks, live_bytes;
    int64_t peak_bytes, peak_blocks, peak_seq, peak_ts; /* peak_seq -1: none yet */
    /* mappings: os domain */
    int64_t maps, unmaps;       /* regions created / ended (mremap counts in both) */
    int64_t unknown_unmaps;     /* munmap/mremap of a region not in the model */
    int64_t mapped_regions, mapped_bytes;
    int64_t peak_mapped_bytes, peak_mapped_seq, peak_mapped_ts;
} mt_heap_stats_t;

/* What one event did, for callers that keep their own counters (per stack,
 * per realloc chain).  The free_* fields describe the block the event ended
 * and are valid when MT_HEAP_FX_FREE is set. */
typedef struct {
    int64_t alloc_bytes;  /* size of the block or region it created */
    int64_t free_bytes;   /* size of the known block or region it ended */
    unsigned flags;       /* MT_HEAP_FX_* */
    int64_t process;      /* processes.id of the event's thread (0: unregistered);
                             set for heap and os events */
    int64_t free_stack;   /* stack of the allocation that made the ended block */
    int64_t free_seq;     /* seq and ts of that allocation */
    int64_t free_ts;
    int64_t replaced_bytes;  /* MT_HEAP_FX_REPLACED: size and stack of the block */
    int64_t replaced_stack;  /* the new one displaced (its free was not seen) */
} mt_heap_delta_t;

#define MT_HEAP_FX_ALLOC     1u  /* created a block (heap) or region (os) */
#define MT_HEAP_FX_FREE      2u  /* ended a known block or region */
#define MT_HEAP_FX_UNKNOWN   4u  /* tried to end one the model never saw */
#define MT_HEAP_FX_TEMPORARY 8u  /* the block it ended was a temporary allocation */
#define MT_HEAP_FX_PEAK     16u  /* live heap bytes reached a new maximum */
#define MT_HEAP_FX_OS       32u  /* the event is a mapping (os domain) */
#define MT_HEAP_FX_REPLACED 64u  /* the new block or region took the address of one
                                    still live in the model, which ends silently */
#define MT_HEAP_FX_MAP_PEAK 128u /* mapped bytes (os) reached a new maximum */
#define MT_HEAP_FX_PARTIAL  256u /* a munmap ended the start of a region: free_bytes
                                    are gone, the rest stays mapped as a region */

/* Live blocks grouped by allocation stack (mt_heap_leaks). */
typedef struct {
    int64_t stack;      /* stacks.id, 0 when the allocation had none */
    int64_t blocks;
    int64_t bytes;
    int64_t first_seq;  /* oldest live allocation of this stack */
} mt_heap_group_t;

/* One live heap block (mt_heap_foreach_live). */
typedef struct {
    uint64_t addr;
    int64_t size, stack, seq;
    int64_t process;    /* processes.id (0: thread not registered) */
    int64_t ts;         /* of the allocation */
} mt_heap_block_t;

/* Creates an empty model.  Returns 0 or MT_ENOMEM. */
int mt_heap_create(mt_heap_t **out);

/* Chooses the layer whose blocks the model keeps as "the heap" (before the
 * first event): libc (the default), or a CPython domain (pymem_raw, pymem,
 * pyobj, pyarena), whose alloc/free/realloc kinds follow the same rules. */
void mt_heap_set_layer(mt_heap_t *h, int layer);
/* The code of a layer name that mt_heap_set_layer accepts, or -1. */
int mt_heap_layer_code(const char *name);

/* Frees the model.  NULL is fine. */
void mt_heap_destroy(mt_heap_t *h);

/* Declares that `thread` (threads.id) belongs to `process` (processes.id).
 * Call before that thread's first event; a thread fed without it belongs to
 * process 0.  mt_heap_replay does this from the threads table.
 * Returns 0 or MT_ENOMEM. */
int mt_heap_set_thread(mt_heap_t *h, int64_t thread, int64_t process);
/* mt_heap_set_thread for every row of the threads table (mt_heap_replay
 * does it; a model fed by hand with mt_heap_feed needs it).  Returns 0,
 * MT_ENOMEM or a database error. */
int mt_heap_load_threads(mt_heap_t *h, mt_db_t *db);

/* Applies one event (events must come in increasing seq).  `d` (may be
 * NULL) receives what it did.  Returns 0, or MT_ENOMEM when a map could not
 * grow (the model is then unchanged by this event). */
int mt_heap_feed(mt_heap_t *h, const mt_db_event_t *ev, mt_heap_delta_t *d);

/* Totals so far; the pointer stays valid until mt_heap_destroy. */
const mt_heap_stats_t *mt_heap_stats(const mt_heap_t *h);

/* Live heap blocks grouped by stack, largest bytes first (then more blocks,
 * then lower stack id).  *out is malloc'ed (free it; NULL when *n is 0).
 * Returns 0 or MT_ENOMEM. */
int mt_heap_leaks(const mt_heap_t *h, mt_heap_group_t **out, size_t *n);

/* Calls fn for every live heap block, in no particular order.  fn must not
 * feed the model. */
void mt_heap_foreach_live(const mt_heap_t *h, void (*fn)(void *arg, const mt_heap_block_t *b),
                          void *arg);

/* Called by mt_heap_replay after each event is applied: return 0 to go on,
 * > 0 to stop early (replay returns 0), < 0 to abort (replay returns it). */
typedef int (*mt_heap_visit_fn)(void *arg, const mt_db_event_t *ev, const mt_heap_delta_t *d);

typedef struct {
    mt_heap_visit_fn visit;   /* may be NULL */
    void *arg;                /* passed to visit */
    const char *progress;     /* label of a percentage shown on stderr while
                                 the pass runs (only on a terminal, only after
                                 the first second); NULL: none */
    int layer;                /* the layer modelled as "the heap": mt_domain_t
                                 (0: libc); see mt_heap_set_layer */
} mt_heap_replay_opts_t;

/* Registers the threads of the threads table, then feeds every row of
 * event_data in seq order (one streaming pass).  `opts` may be NULL.
 * Returns 0, MT_ENOMEM, a database error (message in mt_db_errmsg(db)), or
 * what visit returned when negative.  This function's progress line is the
 * model's only output. */
int mt_heap_replay(mt_heap_t *h, mt_db_t *db, const mt_heap_replay_opts_t *opts);

#endif
