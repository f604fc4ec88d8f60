/* timeline.c - `memtrace timeline [--interval MS | --points N] [--csv] DB`:
 * memory in use per layer, and the resident size, over time.
 *
 * Place in the pipeline: analyzer subcommand (entry point in mt_analyzer.h).
 * One pass (mt_heap_replay) with a visitor that samples the model at
 * evenly spaced moments of the trace (default: 100 points over its
 * duration, meta.duration_ns):
 *
 *   heap    live bytes and blocks of the libc layer (the heap model)
 *   mapped  bytes of live regions of the os layer (the heap model)
 *   arena   bytes of the bundled allocator's arenas: arena_alloc adds its
 *           value, arena_free subtracts it (NULL without such events)
 *   rss     rss_samples: per process the latest sample at or before the
 *           point, summed over the processes alive then (a process counts
 *           up to its processes.end_ts, included); NULL before the first
 *           sample
 *
 * A point at time t shows the state after every event that came before the
 * first event recorded later than t; the visitor runs after the heap model
 * applied an event, so it keeps the values of the previous event and emits
 * a point when an event lies beyond it.  rss_samples (small: one row per
 * process per --rss-interval) are merged in by a second statement ordered
 * by time.  Memory: the points (about 60 bytes each, at most MAX_POINTS)
 * and the heap model's live blocks.  The sampler (mt_timeline_*, views.h)
 * is shared with `memtrace report`, which runs it in its own pass.
 */
#include "mt_analyzer.h"

#include "cli.h"
#include "keymap.h"
#include "mt_error.h"
#include "mt_event.h"
#include "mt_util.h"
#include "table.h"
#include "views.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define SYNOPSIS "[--interval MS | --points N] [--csv] DB"
#define DEFAULT_POINTS 100
#define MAX_POINTS 1000000

enum { C_TIME, C_TS, C_SEQ, C_HEAP, C_BLOCKS, C_MAPPED, C_ARENA, C_RSS, C_PYOBJ, C_PYMEM, C_PYRAW, C_PYARENA, NCOLS };

static const mt_tcol_t cols[NCOLS] = {
    [C_TIME] = {"time (ms)", "time_ms", MT_TCOL_REAL, 3, 0},
    [C_TS] = {"ts", "ts_ns", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [C_SEQ] = {"seq", "seq", MT_TCOL_ID, 0, 0},
    [C_HEAP] = {"heap", "heap_bytes", MT_TCOL_BYTES, 0, 0},
    [C_BLOCKS] = {"blocks", "heap_blocks", MT_TCOL_INT, 0, 0},
    [C_MAPPED] = {"mapped", "mapped_bytes", MT_TCOL_BYTES, 0, 0},
    [C_ARENA] = {"arenas", "arena_bytes", MT_TCOL_BYTES, 0, 0},
    [C_RSS] = {"rss", "rss_bytes", MT_TCOL_BYTES, 0, 0},
    [C_PYOBJ] = {"pyobj", "pyobj_bytes", MT_TCOL_BYTES, 0, 0},
    [C_PYMEM] = {"pymem", "pymem_bytes", MT_TCOL_BYTES, 0, 0},
    [C_PYRAW] = {"pymem_raw", "pymem_raw_bytes", MT_TCOL_BYTES, 0, 0},
    [C_PYARENA] = {"pyarenas", "pyarena_bytes", MT_TCOL_BYTES, 0, 0},
};

/* the CPython domains followed, in column order */
static const int py_dom[4] = {MT_DOM_pyobj, MT_DOM_pymem, MT_DOM_pymem_raw, MT_DOM_pyarena};

void mt_usage_timeline(FILE *out)
{
    fprintf(out,
            "usage: memtrace timeline " SYNOPSIS "\n"
            "\n"
            "Memory in use over time, one row per point, evenly spaced over the trace's\n"
            "duration (default %d points; the last one is the end of the trace):\n"
            "\n"
            "  time    milliseconds since the session started\n"
            "  seq     the last event before the point\n"
            "  heap    bytes of live heap blocks (libc layer: malloc and friends,\n"
            "          requested sizes), and blocks: their number\n"
            "  mapped  bytes mapped by mmap/mremap and not yet unmapped (os layer)\n"
            "  arenas  bytes of the bundled allocator's arenas (--allocator=bundled;\n"
            "          \"-\" when the trace has none)\n"
            "  rss     resident memory: per process, the latest sample at or before\n"
            "          the point (rss_samples, every --rss-interval ms while recording),\n"
            "          summed over the processes alive then (\"-\" before the first)\n"
            "\n"
            "Every process counts together.  A point at time t shows the state after\n"
            "the events recorded up to t.  Sampling can miss a short peak: the line\n"
            "after the table gives each layer's exact maximum (`memtrace peak` breaks\n"
            "the heap's down by stack).\n"
            "\n"
            "Options:\n"
            "  --points N     N points, 1 to %d (default %d)\n"
            "  --interval MS  one point every MS milliseconds (a decimal number), and\n"
            "                 one at the end of the trace\n"
            "  --csv          RFC 4180 CSV: a header row, then one row per point:\n"
            "                 time_ms,ts_ns,seq,heap_bytes,heap_blocks,mapped_bytes,\n"
            "                 arena_bytes,rss_bytes,pyobj_bytes,pymem_bytes,pymem_raw_bytes,\n"
            "                 pyarena_bytes  (empty fields where text shows \"-\")\n"
            "  -h, --help     this text\n"
            "\n"
            "Exit status: 0 done, 1 the trace cannot be read, 2 usage error.\n"
            "\n"
            "Example:\n"
            "  memtrace timeline --interval 100 memtrace.myprog.1234.db\n",
            DEFAULT_POINTS, MAX_POINTS, DEFAULT_POINTS);
}

typedef struct {
    int64_t t;                  /* ns since the session started */
    int64_t seq;                /* last event applied; -1: none */
    int64_t heap_bytes, heap_blocks, mapped_bytes, arena_bytes;
    int64_t rss_bytes;          /* -1: no sample yet */
    int64_t py_bytes[4];        /* live bytes of the py_dom layers */
} point_t;

/* What the pass keeps. */
struct mt_timeline {
    point_t *pts;
    size_t n, next;             /* points, the first not yet emitted */
    const mt_heap_stats_t *hs;  /* the heap model's totals (live) */
    point_t prev;               /* the state after the previous event */
    int64_t arena_bytes, arena_max, arena_max_seq, arena_max_ts;
    int has_arena;
    /* CPython: one heap model per domain, made at its first event */
    mt_heap_t *py[4];
    int has_py;
    /* rss */
    mt_stmt_t *rss;             /* samples and process ends, by time */
    int rss_row;                /* the statement holds a row not yet applied */
    mt_keymap_t rss_ix;         /* process -> slot + 1 in rss_cur */
    int64_t *rss_cur;
    size_t rss_n, rss_cap;
    int64_t rss_sum, rss_max, rss_max_ts;
    int has_rss;
    int64_t interval, duration;  /* as created */
};
typedef struct mt_timeline tl_t;

/* Applies the rss samples recorded at or before t, and the ends of the
 * processes that ended before t (rows with rss_bytes NULL, at end_ts + 1). */
static int rss_until(tl_t *tl, int64_t t)
{
    int rc = 0;
    while (tl->rss_row && mt_stmt_int(tl->rss, 0) <= t) {
        int64_t ts = mt_stmt_int(tl->rss, 0), proc = mt_stmt_int(tl->rss, 1);
        int end = mt_stmt_column_type(tl->rss, 2) == MT_COL_NULL;
        uint32_t k = mt_keymap_get(&tl->rss_ix, proc, 0);
        if (!k && !end) {
            if (tl->rss_n == tl->rss_cap) {
                size_t cap = tl->rss_cap ? tl->rss_cap * 2 : 8;
                int64_t *v = realloc(tl->rss_cur, cap * sizeof *v);
                if (!v) return MT_ENOMEM;
                tl->rss_cur = v;
                tl->rss_cap = cap;
            }
            if ((rc = mt_keymap_put(&tl->rss_ix, proc, 0, (uint32_t)tl->rss_n + 1))) return rc;
            tl->rss_cur[tl->rss_n] = 0;
            k = (uint32_t)++tl->rss_n;
        }
        if (k) {
            int64_t v = end ? 0 : mt_stmt_int(tl->rss, 2);
            tl->rss_sum += v - tl->rss_cur[k - 1];
            tl->rss_cur[k - 1] = v;
        }
        if (!end) {
            tl->has_rss = 1;
            if (tl->rss_sum > tl->rss_max) {
                tl->rss_max = tl->rss_sum;
                tl->rss_max_ts = ts;
            }
        }
        if ((rc = mt_stmt_step(tl->rss)) < 0) return rc;
        tl->rss_row = rc == 1;
    }
    return 0;
}

/* Emits the points before time `ts` (all of them when ts is INT64_MAX)
 * with the state in tl->prev. */
static int emit_until(tl_t *tl, int64_t ts)
{
    for (; tl->next < tl->n && (ts == INT64_MAX || ts > tl->pts[tl->next].t); tl->next++) {
        point_t *p = &tl->pts[tl->next];
        int rc = rss_until(tl, p->t);
        if (rc) return rc;
        int64_t t = p->t;
        *p = tl->prev;
        p->t = t;
        p->rss_bytes = tl->has_rss ? tl->rss_sum : -1;
    }
    return 0;
}

/* The visitor: runs after the heap model applied ev. */
int mt_timeline_visit(void *arg, const mt_db_event_t *ev, const mt_heap_delta_t *d)
{
    (void)d;
    tl_t *tl = arg;
    if (tl->next < tl->n && ev->ts > tl->pts[tl->next].t) {
        int rc = emit_until(tl, ev->ts);
        if (rc) return rc;
    }
    int dom = mt_kind_domain(ev->kind);
    for (int k = 0; k < 4; k++) {
        if (dom != py_dom[k]) continue;
        if (!tl->py[k]) {
            int rc = mt_heap_create(&tl->py[k]);
            if (rc) return rc;
            mt_heap_set_layer(tl->py[k], dom);
            tl->has_py = 1;
        }
        int rc = mt_heap_feed(tl->py[k], ev, NULL);
        if (rc) return rc;
        tl->prev.py_bytes[k] = mt_heap_stats(tl->py[k])->live_bytes;
    }
    if (ev->kind == MT_KIND_PYM_BASE + PYM_EV_arena_alloc || ev->kind == MT_KIND_PYM_BASE + PYM_EV_arena_free) {
        tl->has_arena = 1;
        tl->arena_bytes += ev->kind == MT_KIND_PYM_BASE + PYM_EV_arena_alloc ? ev->size : -ev->size;
        if (tl->arena_bytes > tl->arena_max) {
            tl->arena_max = tl->arena_bytes;
            tl->arena_max_seq = ev->seq;
            tl->arena_max_ts = ev->ts;
        }
    }
    tl->prev.seq = ev->seq;
    tl->prev.heap_bytes = tl->hs->live_bytes;
    tl->prev.heap_blocks = tl->hs->live_blocks;
    tl->prev.mapped_bytes = tl->hs->mapped_bytes;
    tl->prev.arena_bytes = tl->arena_bytes;
    return 0;
}

int mt_timeline_create(mt_db_t *db, int64_t duration, int64_t npoints, int64_t interval, mt_timeline_t **out)
{
    *out = NULL;
    tl_t *tl = calloc(1, sizeof *tl);
    if (!tl) return MT_ENOMEM;
    tl->prev.seq = -1;
    tl->arena_max_seq = -1;
    tl->interval = interval;
    tl->duration = duration;
    int rc = MT_ENOMEM;
    if (!(tl->pts = calloc((size_t)npoints, sizeof *tl->pts))) goto fail;
    tl->n = (size_t)npoints;
    for (int64_t i = 0; i < npoints; i++) {
        int64_t at = interval ? (i + 1) * interval
                              : duration / npoints * (i + 1) + duration % npoints * (i + 1) / npoints;
        tl->pts[i].t = at < duration ? at : duration;
    }
    rc = mt_stmt_prepare(db,
                         "SELECT ts, process_id, rss_bytes FROM ("
                         "SELECT ts, process_id, rss_bytes FROM rss_samples"
                         " UNION ALL SELECT end_ts + 1, id, NULL FROM processes WHERE end_ts IS NOT NULL)"
                         " ORDER BY ts, rss_bytes IS NULL",
                         &tl->rss);
    if (!rc && (rc = mt_stmt_step(tl->rss)) >= 0) {
        tl->rss_row = rc == 1;
        rc = 0;
    }
    if (rc) goto fail;
    *out = tl;
    return 0;
fail:
    mt_timeline_destroy(tl);
    return rc;
}

void mt_timeline_attach(mt_timeline_t *tl, const mt_heap_stats_t *hs) { tl->hs = hs; }

int mt_timeline_finish(mt_timeline_t *tl) { return emit_until(tl, INT64_MAX); }

int mt_timeline_empty(const mt_timeline_t *tl)
{
    const mt_heap_stats_t *hs = tl->hs;
    return hs->allocs == 0 && hs->maps == 0 && !tl->has_arena && !tl->has_rss && !tl->has_py;
}

int mt_timeline_table(const mt_timeline_t *tl, mt_table_t **out)
{
    /* text: enough decimals to tell the points apart (ms to the us, down to the ns) */
    mt_tcol_t tcols[NCOLS];
    memcpy(tcols, cols, sizeof tcols);
    int64_t step = tl->interval ? tl->interval : tl->duration / (int64_t)tl->n;
    for (int64_t unit = 1000; tcols[C_TIME].decimals < 6 && step < unit; unit /= 10) tcols[C_TIME].decimals++;
    /* the CPython columns: always in CSV (empty without them), in text only when there */
    for (int c = C_PYOBJ; c <= C_PYARENA && !tl->has_py; c++) tcols[c].only = MT_TCOL_ONLY_CSV;
    mt_table_t *t;
    int rc = mt_table_create_copy(tcols, NCOLS, &t);
    if (rc) return rc;
    int nothing = mt_timeline_empty(tl);
    for (size_t i = 0; i < tl->n && !nothing; i++) {
        const point_t *p = &tl->pts[i];
        if ((rc = mt_table_row(t))) {
            mt_table_destroy(t);
            return rc;
        }
        mt_table_real(t, C_TIME, (double)p->t / 1e6);
        mt_table_int(t, C_TS, p->t);
        if (p->seq >= 0) mt_table_int(t, C_SEQ, p->seq);
        mt_table_int(t, C_HEAP, p->heap_bytes);
        mt_table_int(t, C_BLOCKS, p->heap_blocks);
        mt_table_int(t, C_MAPPED, p->mapped_bytes);
        if (tl->has_arena) mt_table_int(t, C_ARENA, p->arena_bytes);
        if (p->rss_bytes >= 0) mt_table_int(t, C_RSS, p->rss_bytes);
        for (int k = 0; k < 4 && tl->has_py; k++) mt_table_int(t, C_PYOBJ + k, p->py_bytes[k]);
    }
    *out = t;
    return 0;
}

void mt_timeline_destroy(mt_timeline_t *tl)
{
    if (!tl) return;
    mt_stmt_finalize(tl->rss);
    for (int k = 0; k < 4; k++) mt_heap_destroy(tl->py[k]);
    mt_keymap_free(&tl->rss_ix);
    free(tl->rss_cur);
    free(tl->pts);
    free(tl);
}

/* "12.5 ms" for a number of ns, with up to 3 decimals. */
static const char *ms_text(char *buf, size_t len, int64_t ns)
{
    snprintf(buf, len, "%.3f ms", (double)ns / 1e6);
    return buf;
}

/* The line under the table: each layer's exact maximum. */
static void text_maxima(const tl_t *tl)
{
    char a[64], b[32], d[32], e[32];
    const mt_heap_stats_t *hs = tl->hs;
    const char *sep = "";
    printf("\nmaxima:");
    if (hs->peak_seq >= 0) {
        printf(" heap %s in %s block%s at seq %s (%s)", mt_cli_bytes(a, sizeof a, hs->peak_bytes),
               mt_fmt_count(b, sizeof b, hs->peak_blocks), mt_cli_plural(hs->peak_blocks),
               mt_fmt_count(d, sizeof d, hs->peak_seq), ms_text(e, sizeof e, hs->peak_ts));
        sep = ";";
    }
    if (hs->peak_mapped_seq >= 0) {
        printf("%s mapped %s at seq %s (%s)", sep, mt_cli_bytes(a, sizeof a, hs->peak_mapped_bytes),
               mt_fmt_count(b, sizeof b, hs->peak_mapped_seq), ms_text(d, sizeof d, hs->peak_mapped_ts));
        sep = ";";
    }
    if (tl->has_arena && tl->arena_max > 0) {
        printf("%s arenas %s at seq %s (%s)", sep, mt_cli_bytes(a, sizeof a, tl->arena_max),
               mt_fmt_count(b, sizeof b, tl->arena_max_seq), ms_text(d, sizeof d, tl->arena_max_ts));
        sep = ";";
    }
    if (tl->has_rss)
        printf("%s rss %s at %s", sep, mt_cli_bytes(a, sizeof a, tl->rss_max), ms_text(d, sizeof d, tl->rss_max_ts));
    else printf("%s no rss samples", sep);
    printf("\n");
}

int mt_cmd_timeline(int argc, char **argv)
{
    mt_cli_t c = {.cmd = "timeline", .synopsis = SYNOPSIS, .usage = mt_usage_timeline, .has_csv = 1};
    const char *interval_arg = NULL, *points_arg = NULL;
    const mt_cli_opt_t opts[] = {
        {"--interval", NULL, 1, &interval_arg},
        {"--points", NULL, 1, &points_arg},
    };
    int status = mt_cli_parse(&c, argc, argv, opts, 2);
    if (status >= 0) return status;
    int64_t interval = 0, npoints = DEFAULT_POINTS;
    if (interval_arg && points_arg) return mt_cli_usage_error(&c, "%s", "give --interval or --points, not both");
    /* an interval must come to at least 1 ns */
    if (interval_arg && (mt_cli_ms(interval_arg, &interval) || interval < 1))
        return mt_cli_usage_error(&c, "--interval wants milliseconds above 0, not '%s'", interval_arg);
    if (points_arg && mt_cli_int(points_arg, 1, MAX_POINTS, &npoints))
        return mt_cli_usage_error(&c, "--points wants a count from 1 to 1000000, not '%s'", points_arg);
    status = 1;

    mt_db_t *db = NULL;
    mt_heap_t *h = NULL;
    mt_table_t *t = NULL;
    tl_t *tl = NULL;
    int64_t duration;
    int rc;
    if (mt_cli_open(&c, &db)) goto out;
    if ((rc = mt_cli_duration(db, &duration))) goto fail;
    if (duration < 0) duration = 0;
    if (interval) {
        npoints = duration / interval + (duration % interval != 0);
        if (npoints < 1) npoints = 1;
        if (npoints > MAX_POINTS) {
            char a[32], b[32];
            fprintf(stderr,
                    "memtrace timeline: --interval %s makes %s points over the trace's %s; at most %s"
                    " (usage: memtrace timeline " SYNOPSIS ")\n",
                    interval_arg, mt_fmt_count(a, sizeof a, npoints), ms_text(b, sizeof b, duration), "1,000,000");
            status = 2;
            goto out;
        }
    }
    if ((rc = mt_timeline_create(db, duration, npoints, interval, &tl))) goto fail;
    if ((rc = mt_heap_create(&h))) goto fail;
    mt_timeline_attach(tl, mt_heap_stats(h));
    mt_heap_replay_opts_t ro = {.visit = mt_timeline_visit, .arg = tl, .progress = c.progress};
    if ((rc = mt_heap_replay(h, db, &ro)) || (rc = mt_timeline_finish(tl))) goto fail;

    const mt_heap_stats_t *hs = tl->hs;
    int nothing = mt_timeline_empty(tl);
    if ((rc = mt_timeline_table(tl, &t))) goto fail;

    if (c.csv) {
        if ((rc = mt_table_write(t, NULL, 1, stdout, NULL))) goto fail;
        if (nothing) mt_cli_no_heap(&c, hs);
    } else if (nothing) {
        mt_cli_no_heap(&c, hs);
    } else {
        char a[32], b[32];
        printf("memory over time in %s: %s point%s", c.path, mt_fmt_count(a, sizeof a, npoints),
               mt_cli_plural(npoints));
        if (interval) printf(", one every %s", ms_text(a, sizeof a, interval));
        printf(" over %s\n\n", ms_text(b, sizeof b, duration));
        if ((rc = mt_table_write(t, NULL, 0, stdout, "  "))) goto fail;
        text_maxima(tl);
    }
    status = mt_cli_flush(&c, stdout);
    goto out;
fail:
    mt_cli_fail(&c, db, rc);
out:
    mt_table_destroy(t);
    mt_heap_destroy(h);
    mt_timeline_destroy(tl);
    mt_db_close(db);
    mt_cli_free(&c);
    return status;
}
