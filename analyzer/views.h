/* views.h - the tables of the views, built once for their own subcommand
 * and for `memtrace report`.
 *
 * Place in the pipeline: analyzer.  `leaks`, `temporary`, `top`, `growth`
 * and `timeline` each turn a model (sites.h, chains.h, the timeline
 * sampler below) into an mt_table_t and render it as text or CSV;
 * `memtrace report` builds the same tables from the same models in its one
 * pass and renders them as CSV files and as the JSON of its page
 * (table.h).  So a report's CSV file and the view's `--csv` output are the
 * same bytes, by construction.
 *
 * The builders take the command's mt_cli_t for its pids (mt_cli_pid) and
 * --top (c->top rows; 0: every row).  A table is the caller's (destroy it).
 */
#ifndef MT_VIEWS_H
#define MT_VIEWS_H

#include "chains.h"
#include "cli.h"
#include "heapmodel.h"
#include "sites.h"
#include "stackfmt.h"
#include "table.h"

#include <stddef.h>
#include <stdint.h>

/* The table of the sites v[0..k) (those the view keeps), sorted here by
 * `cmp`: the first c->top of them, each row with its rank, process id and
 * pid in columns MT_VIEW_RANK, MT_VIEW_PROC and MT_VIEW_PID, the view's own
 * cells set by `cells`, and the site's stack in the last column.  Returns 0
 * or MT_ENOMEM. */
enum { MT_VIEW_RANK, MT_VIEW_PROC, MT_VIEW_PID };
typedef void (*mt_view_cells_fn)(mt_table_t *t, const mt_site_t *s);
int mt_view_site_table(const mt_cli_t *c, mt_site_t *v, size_t k, int (*cmp)(const void *, const void *),
                       const mt_tcol_t *cols, int ncols, mt_view_cells_fn cells, mt_table_t **out);

/* leaks.c: the sites with live blocks, moved to v[0..*nrows) and sorted by
 * live bytes; the table of the first c->top of them.  Returns 0 or
 * MT_ENOMEM. */
int mt_view_leaks(const mt_cli_t *c, mt_site_t *v, size_t n, size_t *nrows, mt_table_t **out);

/* temporary.c: the sites with temporary allocations, moved to v[0..*nrows)
 * and sorted by temporary calls; their table.  Returns 0 or MT_ENOMEM. */
int mt_view_temporary(const mt_cli_t *c, mt_site_t *v, size_t n, size_t *nrows, mt_table_t **out);

/* top.c: the sites that allocated (with --by peak: that held blocks at the
 * peak), moved to v[0..*nrows) and sorted by `by`; their table.  Returns 0
 * or MT_ENOMEM. */
enum { MT_TOP_CALLS, MT_TOP_BYTES, MT_TOP_PEAK };
int mt_view_top(const mt_cli_t *c, int by, mt_site_t *v, size_t n, size_t *nrows, mt_table_t **out);

/* growth.c: the realloc sites v[0..n) sorted by bytes copied, and their
 * table.  Returns 0 or MT_ENOMEM. */
int mt_view_growth_sites(const mt_cli_t *c, mt_chain_site_t *v, size_t n, mt_table_t **out);

/* export.c: the collapsed text of `stack` ("outermost;...;innermost",
 * function names, [module+0xOFFSET] for unnamed frames, ';' in a name
 * turned to ':') into *out (malloc'ed).  Returns 0, MT_ENOMEM or an error
 * of stackfmt. */
int mt_export_collapse(mt_stackfmt_t *sf, int64_t stack, char **out);

/* timeline.c: the sampler of `memtrace timeline`.  It takes `npoints`
 * points over `duration` ns (evenly spaced, or one every `interval` ns when
 * interval > 0, the last one at the end), and is fed by a heap replay:
 *
 *   mt_timeline_create(db, ...)     reads the rss samples as the pass goes
 *   mt_timeline_attach(tl, stats)   the heap model's totals (mt_heap_stats)
 *   mt_timeline_visit               the replay's visitor (arg: tl), or
 *                                   called by another visitor after each event
 *   mt_timeline_finish(tl)          after the last event
 *   mt_timeline_table(tl, &t)       columns time_ms,ts_ns,seq,heap_bytes,
 *                                   heap_blocks,mapped_bytes,arena_bytes,rss_bytes,
 *                                   pyobj_bytes,pymem_bytes,pymem_raw_bytes,pyarena_bytes
 *
 * create returns 0, MT_ENOMEM or a database error; visit and finish the
 * same; table 0 or MT_ENOMEM (no rows when mt_timeline_empty). */
typedef struct mt_timeline mt_timeline_t;
int mt_timeline_create(mt_db_t *db, int64_t duration, int64_t npoints, int64_t interval, mt_timeline_t **out);
void mt_timeline_attach(mt_timeline_t *tl, const mt_heap_stats_t *hs);
int mt_timeline_visit(void *arg, const mt_db_event_t *ev, const mt_heap_delta_t *d);
int mt_timeline_finish(mt_timeline_t *tl);
/* 1 when the trace has nothing to draw: no heap allocation, no mapping, no
 * arena, no rss sample. */
int mt_timeline_empty(const mt_timeline_t *tl);
int mt_timeline_table(const mt_timeline_t *tl, mt_table_t **out);
void mt_timeline_destroy(mt_timeline_t *tl);

#endif
