/* chains.h - the realloc chain model: how blocks grow (or shrink) through
 * successive reallocs, gathered in the heap model's one pass.
 *
 * Place in the pipeline: analyzer; read by `memtrace growth`.
 * mt_chains_visit is given to mt_heap_replay as its visit callback; then
 * mt_chains_finish ends the chains still live, and the results are read per
 * realloc site (mt_chains_sites) or per chain (mt_chains_longest).
 *
 * Definitions (libc layer, per process):
 *   step    a realloc or reallocarray that resized a block the heap model
 *           knows (old_addr live) into a new block (addr not NULL);
 *           realloc(NULL, n) is an allocation, realloc(p, 0) a free.
 *           Its factor is new size / old size (none when the old size is 0);
 *           it moved when addr != old_addr, and a move copied
 *           min(old size, new size) bytes.
 *   chain   a block from its allocation through every step that resized it,
 *           until it is freed, its process ends, or the trace does.  Only
 *           blocks with at least one step are chains.
 *   site    the stack of a step's realloc call (process, event_data.stack).
 *           A chain's steps are charged to their own sites; a run of
 *           consecutive steps of one chain at one site counts as one chain of
 *           that site, so "this vector grows 1.5x from here" is one site
 *           whatever the chain did elsewhere (a chain that returns to a site
 *           after steps elsewhere counts there again).
 *   run     for a site: size before its first step, size after its last,
 *           and the time from the creation of the block its first step
 *           resized to its last step.
 *
 * Memory: one record per live chain (a block with at least one step) with
 * its factors, one per site, and one counter per (site, distinct factor to
 * 1/10000): proportional to live blocks and sites, not to events.
 */
#ifndef MT_CHAINS_H
#define MT_CHAINS_H

#include "heapmodel.h"

#include <stddef.h>
#include <stdint.h>

#define MT_CHAIN_SHOWN 12  /* factors kept per reported chain, from its first step */

/* A realloc site: the steps made there and the runs they formed. */
typedef struct {
    int64_t process, stack;   /* the realloc call's stack */
    int64_t chains;           /* runs of chains at this site */
    int64_t steps, moves, in_place;
    int64_t copied;           /* bytes copied by its moves */
    double median_factor;     /* over its steps with a factor; 0 when none */
    int64_t factors;          /* steps with a factor */
    int64_t min_first;        /* smallest size before a run */
    int64_t max_last;         /* largest size after a run */
    int64_t duration_ns;      /* summed over its runs */
} mt_chain_site_t;

/* One chain (mt_chains_longest). */
typedef struct {
    int64_t process;
    int64_t first_seq, first_ts;   /* the allocation that began it */
    int64_t last_ts;               /* its last step */
    int64_t steps, moves, in_place, copied;
    int64_t first_size, last_size; /* before the first step, after the last */
    int64_t site;                  /* stack of its first step */
    double median_factor;          /* over its steps with a factor; 0 when none */
    float factors[MT_CHAIN_SHOWN]; /* the first nfactors of its factors, in order */
    int nfactors;
    int64_t more_factors;          /* factors beyond those */
} mt_chain_t;

/* Totals. */
typedef struct {
    int64_t chains, steps, moves, in_place, copied;
} mt_chain_totals_t;

typedef struct mt_chains mt_chains_t;

/* Creates an empty model that will keep the `keep` longest chains (most
 * steps, then most bytes copied, then the earliest).  Returns 0 or
 * MT_ENOMEM. */
int mt_chains_create(size_t keep, mt_chains_t **out);

/* Frees it.  NULL is fine. */
void mt_chains_destroy(mt_chains_t *c);

/* An mt_heap_visit_fn (arg: the mt_chains_t).  Returns 0, or MT_ENOMEM
 * after which the model is no longer consistent: the pass must stop. */
int mt_chains_visit(void *arg, const mt_db_event_t *ev, const mt_heap_delta_t *d);

/* Ends every chain still live (call once, after the last event).
 * Returns 0 or MT_ENOMEM. */
int mt_chains_finish(mt_chains_t *c);

/* The sites, in no particular order: *out is malloc'ed (free it; NULL when
 * *n is 0).  After mt_chains_finish.  Returns 0 or MT_ENOMEM. */
int mt_chains_sites(const mt_chains_t *c, mt_chain_site_t **out, size_t *n);

/* The kept longest chains, longest first: *out is malloc'ed (free it).
 * After mt_chains_finish.  Returns 0 or MT_ENOMEM. */
int mt_chains_longest(const mt_chains_t *c, mt_chain_t **out, size_t *n);

/* Totals over every chain. */
mt_chain_totals_t mt_chains_totals(const mt_chains_t *c);

/* The one pass: replays `db` through a heap model and a chain model that
 * keeps `keep` chains, and finishes it.  Returns 0, MT_ENOMEM or a database
 * error; *out (destroy it) on success. */
int mt_chains_replay(mt_db_t *db, const char *progress, int layer, size_t keep, mt_chains_t **out,
                     mt_heap_stats_t *stats);

#endif
