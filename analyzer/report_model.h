/* report_model.h - everything `memtrace report` shows, as tables.
 *
 * Place in the pipeline: analyzer, behind `memtrace report`.  One model,
 * two renderers: mt_report_build reads a trace into a list of tables
 * (table.h), then report.c writes each as a CSV file and report_html.c
 * embeds them all, as JSON, in one HTML page that draws them.  Nothing the
 * page shows is computed anywhere else, so the page and the CSV files
 * cannot disagree, and the tables that are also views (leaks, temporary,
 * top, growth, timeline) are built by the views' own functions (views.h):
 * their CSV files are the bytes of `memtrace VIEW --csv --top 0`.
 *
 * How it is read:
 *   the pass    ONE streaming pass over event_data (mt_heap_replay) whose
 *               visitor feeds the sites model (sites.h), the realloc chain
 *               model (chains.h), the timeline sampler (views.h), the
 *               pymalloc models (pymodel.h) and a count of calls and bytes
 *               per layer (domain);
 *   layout      when the pass saw events of the bundled allocator, one
 *               replay of them (layout_model.h) that snapshots the arenas
 *               and pools at MT_REPORT_SNAPSHOTS moments; pymalloc's
 *               (pymodel.h, a model per interpreter that uses it) are fed
 *               by the pass and snapshotted at the same moments;
 *   the rest    small queries: meta, processes, threads, markers,
 *               gc_events (with the stack of each collection's trigger).
 * The flame graph is a tree of the heap sites' collapsed stacks (the frame
 * names of `memtrace export --collapsed`): one node per distinct path from
 * the outermost frame, each with the calls, bytes, bytes live at the peak
 * and bytes leaked of the sites below it.
 *
 * Memory: the models' (live blocks, sites, live chains), the tables (rows
 * per site, per flame node, per timeline point, per arena and snapshot).
 */
#ifndef MT_REPORT_MODEL_H
#define MT_REPORT_MODEL_H

#include "cli.h"
#include "heapmodel.h"
#include "mt_db.h"
#include "table.h"

#include <stdint.h>

#define MT_REPORT_SNAPSHOTS 24      /* moments of the heap layout map */
#define MT_REPORT_MAX_ARENAS 256    /* arenas per process and moment in the map */

/* X(name, what): the tables, in the order of the page; `name` is also the
 * CSV file's name (name.csv). */
#define MT_REPORT_TABLES(X)                                                          \
    X(summary, "the run: command, duration, complete or not, peak, leaked")           \
    X(processes, "one row per process image")                                        \
    X(layers, "calls and bytes per layer (domain) of the allocator stack")           \
    X(timeline, "memory per layer and RSS over time (memtrace timeline)")            \
    X(markers, "main entries, forks, execs, exits, interpreter moments")             \
    X(flame, "the allocation stacks as a tree, for the flame graph")                 \
    X(leaks, "heap blocks live at the end, by stack (memtrace leaks)")               \
    X(temporary, "temporary allocations, by stack (memtrace temporary)")             \
    X(top, "allocation sites by bytes (memtrace top)")                               \
    X(growth, "realloc chains, by the stack of the realloc (memtrace growth)")       \
    X(gc, "garbage collector runs, with the allocation that triggered each")         \
    X(layout, "the bundled allocator's and pymalloc's arenas and pools at moments of the run")

typedef enum {
#define X(name, what) MT_RT_##name,
    MT_REPORT_TABLES(X)
#undef X
    MT_RT_COUNT
} mt_report_table_t;

typedef struct {
    int64_t points;   /* timeline points (MT_REPORT_POINTS when 0) */
} mt_report_opts_t;

#define MT_REPORT_POINTS 400

typedef struct {
    mt_table_t *t[MT_RT_COUNT];  /* every table, possibly without rows */
    mt_heap_stats_t heap;        /* the heap model's totals */
    int64_t events;              /* events in the trace */
    int64_t duration_ns;
} mt_report_t;

/* Reads `db` into a new model.  `c` is the command's (pids from
 * mt_cli_open; its --top is ignored: the tables have every row).
 * Returns 0, MT_ENOMEM or a database error (message in mt_db_errmsg). */
int mt_report_build(mt_db_t *db, const mt_cli_t *c, const mt_report_opts_t *o, mt_report_t **out);

/* Frees it.  NULL is fine. */
void mt_report_destroy(mt_report_t *r);

/* The name and the description of table i. */
const char *mt_report_table_name(int i);
const char *mt_report_table_what(int i);

/* ---- the renderers ---- */

/* report.c: each table as DIR/NAME.csv (table.h's CSV, every row); DIR is
 * created when missing.  Returns 0, or MT_EIO (or an error of stackfmt)
 * with `err` (size errlen) saying which file and why. */
int mt_report_csv(const mt_report_t *r, mt_stackfmt_t *sf, const char *dir, char *err, size_t errlen);

#define MT_REPORT_MAX_FLAME 50000   /* flame nodes embedded in the page */
#define MT_REPORT_MAX_LIST 10000    /* markers and processes embedded */

/* report_html.c: the page, one self-contained HTML file: its style sheet,
 * the tables as JSON (table.h's JSON renderer: the list tables leaks,
 * temporary, top, growth and gc cut to `top` rows, 0: all; at most
 * MT_REPORT_MAX_FLAME flame nodes, MT_REPORT_MAX_LIST markers and
 * processes) and the script that draws them (report.js).  `file` is the
 * trace's name as the page shows it.  Returns 0, or an error of stackfmt;
 * write errors show in ferror(out). */
int mt_report_html(const mt_report_t *r, mt_stackfmt_t *sf, const char *file, size_t top, FILE *out);

#endif
