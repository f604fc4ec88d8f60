/* sites.h - allocation sites: counters per (process, stack) gathered in the
 * heap model's one pass.
 *
 * Place in the pipeline: analyzer.  `leaks`, `peak`, `top`, `temporary`
 * and `export` all read this one model: mt_sites_visit is given to
 * mt_heap_replay as its visit callback, and afterwards mt_sites_list hands
 * out one row per site of a layer (heap: libc; mappings: os).
 *
 * What a site counts (a site is the stack of the allocation that made a
 * block, in one process; frees are charged to the site of the block they end):
 *   calls, bytes   blocks (regions) created there and their sizes; realloc's
 *                  new block counts as one call
 *   temp_*         of those, temporary allocations (heapmodel.h's rule)
 *   live_*         blocks live now; after the whole replay, at the end
 *   peak_*         blocks live at the moment of the layer's peak (the first
 *                  event at which live heap bytes, or mapped bytes, reached
 *                  their maximum)
 *
 * The peak without a second pass: each site keeps a snapshot of its live
 * counters and the number (epoch) of the peak it belongs to.  A new peak
 * only increments the layer's epoch.  Before a site's live counters change,
 * a site whose snapshot is of an older epoch copies its live counters into
 * it: they have not changed since the latest peak, so they are its values
 * at that peak.  At the end a site's value at the peak is its snapshot if
 * the snapshot is of the last epoch, else its live counters.
 * Key invariant: for every site, (snap_epoch == epoch ? snap : live) is the
 * site's live count at the latest peak.  Cost: O(1) per event; memory: one
 * entry per site.
 */
#ifndef MT_SITES_H
#define MT_SITES_H

#include "heapmodel.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t process;                  /* processes.id */
    int64_t stack;                    /* stacks.id, 0: no stack */
    int64_t calls, bytes;             /* allocations made here */
    int64_t temp_calls, temp_bytes;   /* of those, temporary */
    int64_t live_blocks, live_bytes;  /* live now (at the end after a replay) */
    int64_t peak_blocks, peak_bytes;  /* live at the layer's peak */
} mt_site_t;

typedef struct mt_sites mt_sites_t;

enum { MT_SITES_HEAP = 0, MT_SITES_MAPS = 1 };

/* Creates an empty model.  Returns 0 or MT_ENOMEM. */
int mt_sites_create(mt_sites_t **out);

/* Frees it.  NULL is fine. */
void mt_sites_destroy(mt_sites_t *s);

/* An mt_heap_visit_fn (arg: the mt_sites_t): charges the event's delta to
 * its sites.  Returns 0 or MT_ENOMEM. */
int mt_sites_visit(void *arg, const mt_db_event_t *ev, const mt_heap_delta_t *d);

/* The sites of `layer` (MT_SITES_HEAP or MT_SITES_MAPS) with their peak
 * counters resolved, in no particular order: *out is malloc'ed (free it;
 * NULL when *n is 0).  Returns 0 or MT_ENOMEM. */
int mt_sites_list(const mt_sites_t *s, int layer, mt_site_t **out, size_t *n);

/* The one pass: replays every event of `db` (mt_heap_replay, with the
 * progress line `progress`, NULL for none) through a heap model of `layer`
 * (mt_heap_set_layer; 0: libc) and a sites
 * model.  On success *out holds the sites (destroy it) and *stats the heap
 * model's totals.  Returns 0, MT_ENOMEM or a database error. */
int mt_sites_replay(mt_db_t *db, const char *progress, int layer, mt_sites_t **out, mt_heap_stats_t *stats);

/* The usual pair: mt_sites_replay, then the heap layer's sites as a malloc'ed
 * array (*out, *n; free it), the sites themselves dropped.  Same errors. */
int mt_sites_heap(mt_db_t *db, const char *progress, int layer, mt_site_t **out, size_t *n,
                  mt_heap_stats_t *stats);

#endif
