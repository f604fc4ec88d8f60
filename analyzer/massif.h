/* massif.h - a trace's heap over time in the output format of valgrind's
 * massif, which ms_print and massif-visualizer read.
 *
 * Place in the pipeline: analyzer, behind `memtrace export --massif`.  One
 * pass (the heap model and the sites model, sites.h) samples the live heap
 * bytes at MT_MASSIF_SNAPSHOTS moments evenly spread over the trace's
 * duration (the first at 0, the last at the end), keeps the live bytes of
 * every stack at every MT_MASSIF_DETAIL-th of them, and adds the heap's
 * peak (known only at the end, through the sites' peak snapshot).
 *
 * The format (massif's, version-less):
 *
 *   desc: ...                      free text
 *   cmd: COMMAND                   meta.command
 *   time_unit: ms
 *   #-----------                   comments; snapshots numbered from 0
 *   snapshot=N
 *   #-----------
 *   time=T                         ms since the start, to the ns (<= 6 decimals)
 *   mem_heap_B=B                   live heap bytes (requested sizes)
 *   mem_heap_extra_B=0
 *   mem_stacks_B=0
 *   heap_tree=empty|detailed|peak
 *   n2: B (heap allocation functions) malloc/new/new[], --alloc-fns, etc.
 *    n1: B 0xADDR: function (file:line)     the allocator's caller, then
 *     n0: B 0xADDR: caller (file:line)       its callers, one blank more
 *    n0: B in K places, all below massif's threshold (1.00%)
 *
 * A detailed tree has one child per distinct frame (its text, so several
 * processes and return addresses of one line merge; the lowest address is
 * shown), children sorted by bytes (then text); children under 1% of the
 * snapshot's total are folded into one "in K places" line, as massif does.
 */
#ifndef MT_MASSIF_H
#define MT_MASSIF_H

#include "heapmodel.h"
#include "mt_db.h"

#include <stdint.h>
#include <stdio.h>

#define MT_MASSIF_SNAPSHOTS 50  /* evenly spread, plus the peak */
#define MT_MASSIF_DETAIL 10     /* every 10th of them is detailed (9, 19, ...) */

/* Writes db's heap as a massif file to `out`.  `progress` labels the pass's
 * progress line (NULL: none); *stats receives the heap model's totals.
 * Returns 0, MT_ENOMEM or a database error. */
int mt_massif_write(mt_db_t *db, FILE *out, const char *progress, int layer, mt_heap_stats_t *stats);

#endif
