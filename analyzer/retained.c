/* retained.c - `memtrace retained [--points N] [--at SEQ] [--by WHAT]
 * [--top N] [--csv] DB`: memory that is freed but kept, per layer, over
 * time, and what pins it.
 *
 * Place in the pipeline: analyzer subcommand (entry point in mt_analyzer.h).
 *
 *   over time  one pass of the heap model (mt_heap_replay) samples, at N
 *              evenly spaced moments (as timeline does), the libc layer's
 *              live bytes and the os layer's mapped bytes; for the bundled
 *              allocator the layout model (layout_model.h) is replayed up
 *              to each moment: arenas mapped (1 MiB each), pools in use
 *              (used + full, 16 KiB each), blocks in use (block sizes).
 *              Kept free = arena bytes - block bytes = free blocks inside
 *              pools in use + free (empty or uncarved) pools in arenas.
 *   pinning    at the end (or after --at SEQ): pools in use that hold few
 *              blocks (FEW below) and arenas with few pools in use; each
 *              live heap block (heap model, with its allocation's stack)
 *              that lies in a pinning pool of its process is one of its
 *              pinning blocks; they are grouped by stack.
 *
 * Cost: one heap pass, plus one allocator-event replay per point and one
 * for the pinning moment (O(points x allocator events)); memory: the heap
 * model, one layout model at a time, the live blocks copied at the moment.
 */
#include "mt_analyzer.h"

#include "cli.h"
#include "layout_model.h"
#include "pymodel.h"
#include "mt_error.h"
#include "mt_event.h"
#include "mt_util.h"
#include "table.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define SYNOPSIS "[--allocator bundled|pymalloc] [--points N] [--at SEQ] [--by time|pools|stacks|arenas] [--top N] [--csv] DB"
#define DEFAULT_POINTS 20
#define MAX_POINTS 100000

/* Few: at least one, and at most 2 or under 10% of the capacity. */
#define FEW(n, cap) ((n) >= 1 && ((n) <= 2 || (n) * 10 < (cap)))

enum { BY_TIME, BY_POOLS, BY_STACKS, BY_ARENAS, NBY };

enum { T_TIME, T_SEQ, T_HEAP, T_ARENA, T_POOL, T_BLOCK, T_KEPT, T_FREEB, T_FREEP, T_MAPPED, NT };
static const mt_tcol_t time_cols[NT] = {
    [T_TIME] = {"time (ms)", "time_ms", MT_TCOL_REAL, 3, 0},
    [T_SEQ] = {"seq", "seq", MT_TCOL_ID, 0, 0},
    [T_HEAP] = {"heap live", "heap_live_bytes", MT_TCOL_BYTES, 0, 0},
    [T_ARENA] = {"arenas", "arena_bytes", MT_TCOL_BYTES, 0, 0},
    [T_POOL] = {"pools in use", "pool_bytes", MT_TCOL_BYTES, 0, 0},
    [T_BLOCK] = {"blocks in use", "block_bytes", MT_TCOL_BYTES, 0, 0},
    [T_KEPT] = {"kept free", "kept_free_bytes", MT_TCOL_BYTES, 0, 0},
    [T_FREEB] = {"free blocks", "free_block_bytes", MT_TCOL_BYTES, 0, 0},
    [T_FREEP] = {"free pools", "free_pool_bytes", MT_TCOL_BYTES, 0, 0},
    [T_MAPPED] = {"mapped", "mapped_bytes", MT_TCOL_BYTES, 0, 0},
};

enum { P_PROC, P_PID, P_ARENA, P_POOL, P_INDEX, P_CLASS, P_BLOCK, P_STATE, P_USED, P_CAP, P_FOUND, NP };
static const mt_tcol_t pool_cols[NP] = {
    [P_PROC] = {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [P_PID] = {"pid", "pid", MT_TCOL_ID, 0, 0},
    [P_ARENA] = {"arena", "arena", MT_TCOL_ADDR, 0, 0},
    [P_POOL] = {"pool address", "pool", MT_TCOL_ADDR, 0, MT_TCOL_ONLY_CSV},
    [P_INDEX] = {"pool", "pool_index", MT_TCOL_INT, 0, 0},
    [P_CLASS] = {"class", "size_class", MT_TCOL_INT, 0, 0},
    [P_BLOCK] = {"block", "block_size", MT_TCOL_BYTES, 0, 0},
    [P_STATE] = {"state", "state", MT_TCOL_TEXT, 0, 0},
    [P_USED] = {"blocks used", "blocks_used", MT_TCOL_INT, 0, 0},
    [P_CAP] = {"capacity", "capacity", MT_TCOL_INT, 0, 0},
    [P_FOUND] = {"traced", "blocks_traced", MT_TCOL_INT, 0, 0},
};

enum { S_POOLS, S_POOLB, S_BLOCKS, S_BYTES, S_STACK, NS };
static const mt_tcol_t stack_cols[NS] = {
    [S_POOLS] = {"pools", "pools", MT_TCOL_INT, 0, 0},
    [S_POOLB] = {"pool bytes", "pool_bytes", MT_TCOL_BYTES, 0, 0},
    [S_BLOCKS] = {"blocks", "blocks", MT_TCOL_INT, 0, 0},
    [S_BYTES] = {"requested", "requested_bytes", MT_TCOL_BYTES, 0, 0},
    [S_STACK] = {"allocated at", "stack_id,frames", MT_TCOL_STACK, 0, 0},
};

enum { A_PROC, A_PID, A_ARENA, A_INUSE, A_FREE, A_BUSED, A_BYTES, NA };
static const mt_tcol_t arena_cols[NA] = {
    [A_PROC] = {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [A_PID] = {"pid", "pid", MT_TCOL_ID, 0, 0},
    [A_ARENA] = {"arena", "arena", MT_TCOL_ADDR, 0, 0},
    [A_INUSE] = {"pools in use", "pools_in_use", MT_TCOL_INT, 0, 0},
    [A_FREE] = {"free pools", "free_pools", MT_TCOL_INT, 0, 0},
    [A_BUSED] = {"blocks used", "blocks_used", MT_TCOL_INT, 0, 0},
    [A_BYTES] = {"bytes in use", "bytes_in_use", MT_TCOL_BYTES, 0, 0},
};

void mt_usage_retained(FILE *out)
{
    fprintf(out,
            "usage: memtrace retained " SYNOPSIS "\n"
            "\n"
            "Memory that the program freed but the process keeps, per layer, over time,\n"
            "and what pins it.  Over time (default %d points evenly spaced over the\n"
            "trace, as in timeline; a point shows the state after the events recorded\n"
            "up to it):\n"
            "\n"
            "  heap live      libc layer: bytes requested and not freed\n"
            "  arenas         bundled allocator (--allocator=bundled): bytes of the\n"
            "                 arenas mapped, held from the OS (1 MiB each)\n"
            "  pools in use   bytes of its pools in use (used or full, 16 KiB each)\n"
            "  blocks in use  bytes of its blocks in use (block sizes, 16 * (class + 1))\n"
            "  kept free      arenas - blocks in use: freed, but not returned; split\n"
            "                 into free blocks (inside pools in use) and free pools\n"
            "                 (empty or uncarved pools of the arenas)\n"
            "  mapped         os layer: bytes mapped by mmap/mremap, not unmapped\n"
            "\n"
            "The allocator's columns are \"-\" when the trace has no allocator events.\n"
            "On a CPython trace they are pymalloc's (its arenas, pools and blocks, rebuilt\n"
            "from the interpreter's domains: analyzer/pymodel.h), with the interpreter's\n"
            "arena and pool sizes, and the pinning blocks are its object and memory\n"
            "blocks.\n"
            "\n"
            "Pinning, at the end of the trace (or after --at SEQ): pools in use that\n"
            "hold few blocks (1 or 2, or under 10%% of the pool's capacity) keep their\n"
            "16 KiB from every other size class; their live blocks are matched with the\n"
            "allocations that made them (a malloc, calloc or realloc whose result is\n"
            "the block, still live then) and grouped by allocation stack: N pools\n"
            "pinned by M blocks from a stack.  Arenas with few pools in use (1 or 2,\n"
            "or under 10%% of 64) keep their 1 MiB mapped.  Without allocator events\n"
            "one line says so.\n"
            "\n"
            "Options:\n"
            "  --allocator A  bundled or pymalloc (default: the bundled allocator when the\n"
            "                 trace has its events, else pymalloc when it ran CPython)\n"
            "  --points N     N points, 1 to %d (default %d)\n"
            "  --at SEQ       pinning after the event numbered SEQ (default: the end)\n"
            "  --by WHAT      the table CSV prints: time (default), pools, stacks or\n"
            "                 arenas\n"
            "  --top N        the N stacks that pin the most pools (default 10; 0: all)\n"
            "  --csv          RFC 4180 CSV of one table, a header row then its rows:\n"
            "                   time:   time_ms,seq,heap_live_bytes,arena_bytes,\n"
            "                           pool_bytes,block_bytes,kept_free_bytes,\n"
            "                           free_block_bytes,free_pool_bytes,mapped_bytes\n"
            "                   pools:  process_id,pid,arena,pool,pool_index,size_class,\n"
            "                           block_size,state,blocks_used,capacity,\n"
            "                           blocks_traced\n"
            "                   stacks: pools,pool_bytes,blocks,requested_bytes,\n"
            "                           stack_id,frames\n"
            "                   arenas: process_id,pid,arena,pools_in_use,free_pools,\n"
            "                           blocks_used,bytes_in_use\n"
            "  -h, --help     this text\n"
            "\n"
            "Exit status: 0 done, 1 the trace cannot be read, 2 usage error.\n"
            "\n"
            "Example:\n"
            "  memtrace run --allocator=bundled -o prog.db ./prog\n"
            "  memtrace retained --points 10 prog.db\n",
            DEFAULT_POINTS, MAX_POINTS, DEFAULT_POINTS);
}

typedef struct {
    int64_t t, seq;                   /* seq -1: no event yet */
    int64_t heap, mapped;
    int64_t arena, pool, block;
} point_t;

typedef struct {
    point_t *pts;
    size_t n, next;
    point_t prev;
    const mt_heap_stats_t *hs;
    const mt_heap_t *h;
    int64_t snap_seq;                 /* copy the live blocks after this seq; -1: at the end */
    int snapped;
    mt_heap_block_t *blocks;
    size_t nblocks, cap;
    int oom;
    mt_heap_t *py[2];                 /* pymalloc: the pyobj and pymem layers' live blocks */
} pass_t;

static void copy_block(void *arg, const mt_heap_block_t *b)
{
    pass_t *p = arg;
    if (p->oom) return;
    if (p->nblocks == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        mt_heap_block_t *v = realloc(p->blocks, cap * sizeof *v);
        if (!v) {
            p->oom = 1;
            return;
        }
        p->blocks = v;
        p->cap = cap;
    }
    p->blocks[p->nblocks++] = *b;
}

static int snapshot(pass_t *p)
{
    p->snapped = 1;
    p->nblocks = 0;
    if (p->py[0]) { /* pymalloc's blocks are the object and memory domains' */
        for (int k = 0; k < 2; k++) mt_heap_foreach_live(p->py[k], copy_block, p);
    } else {
        mt_heap_foreach_live(p->h, copy_block, p);
    }
    return p->oom ? MT_ENOMEM : 0;
}

static void emit_until(pass_t *p, int64_t ts)
{
    for (; p->next < p->n && (ts == INT64_MAX || ts > p->pts[p->next].t); p->next++) {
        int64_t t = p->pts[p->next].t;
        p->pts[p->next] = p->prev;
        p->pts[p->next].t = t;
    }
}

static int visit(void *arg, const mt_db_event_t *ev, const mt_heap_delta_t *d)
{
    (void)d;
    pass_t *p = arg;
    if (p->next < p->n && ev->ts > p->pts[p->next].t) emit_until(p, ev->ts);
    p->prev.seq = ev->seq;
    p->prev.heap = p->hs->live_bytes;
    p->prev.mapped = p->hs->mapped_bytes;
    int dom = mt_kind_domain(ev->kind);
    for (int k = 0; p->py[0] && k < 2; k++) {
        if (dom != (k ? MT_DOM_pymem : MT_DOM_pyobj)) continue;
        int rc = mt_heap_feed(p->py[k], ev, NULL);
        if (rc) return rc;
    }
    if (!p->snapped && p->snap_seq >= 0 && ev->seq >= p->snap_seq) return snapshot(p);
    return 0;
}

/* pymalloc's columns of a point: its totals now, added to the point (one
 * model per interpreter). */
static void py_totals(const mt_pymodel_t *m, const mt_pymodel_geom_t *g, point_t *pt)
{
    mt_pymodel_totals_t t;
    mt_pymodel_totals(m, &t);
    pt->arena += t.arenas * g->arena_size;
    pt->pool += t.pools * g->pool_size;
    pt->block += t.used_bytes;
}

typedef struct {
    point_t *pts;
    size_t n, next;
    const mt_pymodel_geom_t *g;
} py_sampler_t;

static int py_sample_before(void *arg, int64_t seq, int64_t ts, const mt_pymodel_t *m)
{
    (void)seq;
    py_sampler_t *ps = arg;
    for (; ps->next < ps->n && ts > ps->pts[ps->next].t; ps->next++) py_totals(m, ps->g, &ps->pts[ps->next]);
    return 0;
}

/* The allocator's totals of a model, over every process. */
static int alloc_totals(const mt_layout_t *m, point_t *pt)
{
    mt_layout_arena_t *a = NULL;
    size_t n = 0;
    int rc = mt_layout_arenas(m, &a, &n);
    if (rc) return rc;
    pt->arena = (int64_t)n * (int64_t)PYM_ARENA_SIZE;
    pt->pool = pt->block = 0;
    for (size_t i = 0; i < n; i++) {
        pt->pool += (int64_t)(a[i].pools_used + a[i].pools_full) * (int64_t)PYM_POOL_SIZE;
        pt->block += a[i].bytes_in_use;
    }
    free(a);
    return 0;
}

/* Samples the allocator's columns of every point whose time the next
 * event passes (mt_layout_replay's `before`). */
typedef struct {
    point_t *pts;
    size_t n, next;
} alloc_sampler_t;

static int sample_before(void *arg, const mt_layout_event_t *ev, const mt_layout_t *m)
{
    alloc_sampler_t *as = arg;
    for (; as->next < as->n && ev->ts > as->pts[as->next].t; as->next++) {
        int rc = alloc_totals(m, &as->pts[as->next]);
        if (rc) return rc;
    }
    return 0;
}

static int block_cmp(const void *x, const void *y)
{
    const mt_heap_block_t *a = x, *b = y;
    if (a->process != b->process) return a->process < b->process ? -1 : 1;
    return a->addr < b->addr ? -1 : a->addr > b->addr;
}

/* One pinning block: its stack and the number of its pool. */
typedef struct {
    int64_t stack, pool, size;
} pin_t;

static int pin_cmp(const void *x, const void *y)
{
    const pin_t *a = x, *b = y;
    if (a->stack != b->stack) return a->stack < b->stack ? -1 : 1;
    return a->pool < b->pool ? -1 : a->pool > b->pool;
}

typedef struct {
    int64_t stack, pools, blocks, bytes;
} group_t;

static int group_cmp(const void *x, const void *y)
{
    const group_t *a = x, *b = y;
    if (a->pools != b->pools) return a->pools > b->pools ? -1 : 1;
    if (a->blocks != b->blocks) return a->blocks > b->blocks ? -1 : 1;
    return a->stack < b->stack ? -1 : a->stack > b->stack;
}

/* The first block of `process` at or above addr in the sorted blocks. */
static size_t lower_bound(const mt_heap_block_t *v, size_t n, int64_t process, uint64_t addr)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid].process < process || (v[mid].process == process && v[mid].addr < addr)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* 1 when the trace has allocator events.  *rc: 0 or a database error. */
static int has_allocator(mt_db_t *db, int *rc)
{
    mt_stmt_t *st;
    int yes = 0;
    if (!(*rc = mt_stmt_prepare(db, "SELECT EXISTS (SELECT 1 FROM event_data WHERE kind >= ?1)", &st))) {
        if (!(*rc = mt_stmt_bind_int(st, 1, MT_KIND_PYM_BASE)) && (*rc = mt_stmt_step(st)) == 1) {
            yes = mt_stmt_int(st, 0) != 0;
            *rc = 0;
        }
        mt_stmt_finalize(st);
    }
    return yes;
}

/* The last event_data seq at or before `at`; -1 when none.  Returns 0 or a
 * database error. */
static int last_seq_before(mt_db_t *db, int64_t at, int64_t *out)
{
    mt_stmt_t *st;
    int rc = mt_stmt_prepare(db, "SELECT max(seq) FROM event_data WHERE seq <= ?1", &st);
    *out = -1;
    if (!rc && !(rc = mt_stmt_bind_int(st, 1, at)) && (rc = mt_stmt_step(st)) == 1) {
        if (mt_stmt_column_type(st, 0) != MT_COL_NULL) *out = mt_stmt_int(st, 0);
        rc = 0;
    }
    mt_stmt_finalize(st);
    return rc;
}

int mt_cmd_retained(int argc, char **argv)
{
    static const char *const by_names[NBY] = {"time", "pools", "stacks", "arenas"};
    mt_cli_t c = {.cmd = "retained", .synopsis = SYNOPSIS, .usage = mt_usage_retained, .has_csv = 1,
                  .has_top = 1};
    const char *points_arg = NULL, *at_arg = NULL, *by_arg = NULL, *alloc_arg = NULL;
    const mt_cli_opt_t opts[] = {
        {"--points", NULL, 1, &points_arg},
        {"--at", NULL, 1, &at_arg},
        {"--by", NULL, 1, &by_arg},
        {"--allocator", NULL, 1, &alloc_arg},
    };
    int status = mt_cli_parse(&c, argc, argv, opts, 4);
    if (status >= 0) return status;
    int64_t npoints = DEFAULT_POINTS, at = -1;
    int by = BY_TIME;
    if (points_arg && mt_cli_int(points_arg, 1, MAX_POINTS, &npoints))
        return mt_cli_usage_error(&c, "--points wants a count from 1 to 100000, not '%s'", points_arg);
    if (at_arg && mt_cli_int(at_arg, 0, INT64_MAX, &at))
        return mt_cli_usage_error(&c, "--at wants a seq (an event's number, 0 or more), not '%s'", at_arg);
    if (by_arg) {
        for (by = 0; by < NBY && strcmp(by_arg, by_names[by]); by++) {
        }
        if (by == NBY) return mt_cli_usage_error(&c, "--by wants time, pools, stacks or arenas, not '%s'", by_arg);
    }
    if (alloc_arg && strcmp(alloc_arg, "bundled") && strcmp(alloc_arg, "pymalloc"))
        return mt_cli_usage_error(&c, "--allocator wants bundled or pymalloc, not '%s'", alloc_arg);
    status = 1;

    mt_db_t *db = NULL;
    mt_heap_t *h = NULL;
    mt_layout_t *m = NULL;
    mt_layout_pool_t *pools = NULL;
    mt_layout_arena_t *arenas = NULL;
    pin_t *pins = NULL;
    group_t *groups = NULL;
    mt_table_t *tt = NULL, *tp = NULL, *ts = NULL, *ta = NULL;
    mt_stackfmt_t *sf = NULL;
    char *alloc = NULL;
    mt_pymodel_t *pym = NULL;
    int64_t *pyprocs = NULL, *pool_block = NULL; /* pool_block: pymalloc's block size per pool */
    mt_pymodel_geom_t *pygeoms = NULL;
    int *arena_pools = NULL;                     /* pymalloc: pools per arena */
    size_t npy = 0;
    mt_tcol_t tcols[NT];
    pass_t p = {.prev = {.seq = -1}, .snap_seq = -1};
    size_t npools = 0, narenas = 0, npins = 0, ngroups = 0;
    int64_t duration;
    int rc;
    if (mt_cli_open(&c, &db)) goto out;
    if ((rc = mt_cli_duration(db, &duration))) goto fail;
    if (duration < 0) duration = 0;
    if ((rc = mt_db_meta_get_text(db, "allocator", &alloc))) goto fail;
    int bundled = !alloc || !strcmp(alloc, "bundled") ? has_allocator(db, &rc) : 0;
    if (rc) goto fail;
    /* pymalloc: the trace's interpreters that use it, chosen by --allocator
     * or when the bundled allocator left no events */
    if ((rc = mt_pymodel_interpreters(db, &pyprocs, &pygeoms, &npy))) goto fail;
    int py = npy > 0 && (alloc_arg ? !strcmp(alloc_arg, "pymalloc") : !bundled);
    if (alloc_arg && !strcmp(alloc_arg, "pymalloc")) bundled = 0;
    int have_alloc = bundled || py;
    /* the geometry: the bundled allocator's, or the (first) interpreter's */
    int64_t pool_size = py ? pygeoms[0].pool_size : (int64_t)PYM_POOL_SIZE;
    int64_t arena_size = py ? pygeoms[0].arena_size : (int64_t)PYM_ARENA_SIZE;
    int64_t snap = -1; /* the last event at or before --at */
    if (at >= 0 && (rc = last_seq_before(db, at, &snap))) goto fail;

    /* the heap pass: libc and os columns, and the live blocks at the moment */
    if (!(p.pts = calloc((size_t)npoints, sizeof *p.pts))) {
        rc = MT_ENOMEM;
        goto fail;
    }
    p.n = (size_t)npoints;
    for (int64_t i = 0; i < npoints; i++)
        p.pts[i].t = duration / npoints * (i + 1) + duration % npoints * (i + 1) / npoints;
    if ((rc = mt_heap_create(&h))) goto fail;
    p.h = h;
    p.hs = mt_heap_stats(h);
    p.snap_seq = snap;
    p.snapped = at >= 0 && snap < 0; /* nothing before --at: no live block */
    for (int k = 0; py && k < 2; k++) {
        if ((rc = mt_heap_create(&p.py[k]))) goto fail;
        mt_heap_set_layer(p.py[k], k ? MT_DOM_pymem : MT_DOM_pyobj);
    }
    for (int k = 0; py && k < 2; k++)
        if ((rc = mt_heap_load_threads(p.py[k], db))) goto fail;
    mt_heap_replay_opts_t ho = {.visit = visit, .arg = &p, .progress = c.progress};
    if ((rc = mt_heap_replay(h, db, &ho))) goto fail;
    emit_until(&p, INT64_MAX);
    if (!p.snapped && (rc = snapshot(&p))) goto fail;

    /* the allocator's columns: one replay, each point sampled before the
     * first event past its time */
    if (bundled) {
        alloc_sampler_t as = {p.pts, p.n, 0};
        mt_layout_replay_opts_t lo = {.at_seq = -1, .at_ts = -1, .before = sample_before, .arg = &as};
        if ((rc = mt_layout_create(&m)) || (rc = mt_layout_replay(m, db, &lo))) goto fail;
        for (; as.next < as.n; as.next++)
            if ((rc = alloc_totals(m, &as.pts[as.next]))) goto fail;
        mt_layout_destroy(m);
        m = NULL;
    }
    for (size_t k = 0; py && k < npy; k++) {
        py_sampler_t ps = {p.pts, p.n, 0, &pygeoms[k]};
        mt_pymodel_replay_opts_t po = {.at_seq = -1, .at_ts = -1, .before = py_sample_before, .arg = &ps};
        if ((rc = mt_pymodel_create(&pygeoms[k], pyprocs[k], &pym))) {
            if (rc != MT_EINVAL) goto fail;
            rc = 0; /* not pymalloc's geometry: no rows */
            continue;
        }
        if ((rc = mt_pymodel_replay(pym, db, &po))) goto fail;
        for (; ps.next < ps.n; ps.next++) py_totals(pym, &pygeoms[k], &ps.pts[ps.next]);
        mt_pymodel_destroy(pym);
        pym = NULL;
    }

    /* pinning */
    int64_t pin_pools = 0, pin_blocks = 0, traced = 0, inuse_pools = 0, pin_arenas = 0;
    if (bundled) {
        mt_layout_replay_opts_t lo = {.at_seq = at, .at_ts = -1};
        if ((rc = mt_layout_create(&m)) || (rc = mt_layout_replay(m, db, &lo)) ||
            (rc = mt_layout_pools(m, &pools, &npools)) || (rc = mt_layout_arenas(m, &arenas, &narenas)))
            goto fail;
    }
    for (size_t k = 0; py && k < npy; k++) {
        /* each interpreter's pools and arenas at the moment, appended */
        mt_pymodel_replay_opts_t po = {.at_seq = at, .at_ts = -1};
        mt_layout_pool_t *pv = NULL;
        mt_layout_arena_t *av = NULL;
        int *np = NULL;
        size_t npv = 0, nav = 0;
        if ((rc = mt_pymodel_create(&pygeoms[k], pyprocs[k], &pym))) {
            if (rc != MT_EINVAL) goto fail;
            rc = 0;
            continue;
        }
        if (!(rc = mt_pymodel_replay(pym, db, &po)) && !(rc = mt_pymodel_pools(pym, &pv, &npv)))
            rc = mt_pymodel_arenas(pym, &av, &nav, &np);
        mt_layout_pool_t *pg = rc ? NULL : realloc(pools, (npools + npv + 1) * sizeof *pools);
        if (pg) pools = pg;
        mt_layout_arena_t *ag = rc || !pg ? NULL : realloc(arenas, (narenas + nav + 1) * sizeof *arenas);
        if (ag) arenas = ag;
        int64_t *bg = rc || !ag ? NULL : realloc(pool_block, (npools + npv + 1) * sizeof *pool_block);
        if (bg) pool_block = bg;
        int *ng = rc || !bg ? NULL : realloc(arena_pools, (narenas + nav + 1) * sizeof *arena_pools);
        if (ng) arena_pools = ng;
        if (!rc && !ng) rc = MT_ENOMEM;
        if (!rc) {
            for (size_t i = 0; i < npv; i++) {
                pool_block[npools] = mt_pymodel_block_size(pym, pv[i].size_class);
                pools[npools++] = pv[i];
            }
            for (size_t i = 0; i < nav; i++) {
                arena_pools[narenas] = np ? np[i] : (int)(pygeoms[k].arena_size / pygeoms[k].pool_size);
                arenas[narenas++] = av[i];
            }
        }
        free(pv);
        free(av);
        free(np);
        mt_pymodel_destroy(pym);
        pym = NULL;
        if (rc) goto fail;
    }
    if (have_alloc) {
        if (p.nblocks) qsort(p.blocks, p.nblocks, sizeof *p.blocks, block_cmp);
        if (p.nblocks && !(pins = malloc(p.nblocks * sizeof *pins))) {
            rc = MT_ENOMEM;
            goto fail;
        }
    }
    /* text: enough decimals to tell the points apart (as timeline) */
    memcpy(tcols, time_cols, sizeof tcols);
    for (int64_t unit = 1000; tcols[T_TIME].decimals < 6 && duration / npoints < unit; unit /= 10)
        tcols[T_TIME].decimals++;
    if ((rc = mt_table_create(tcols, NT, &tt)) || (rc = mt_table_create(pool_cols, NP, &tp)) ||
        (rc = mt_table_create(stack_cols, NS, &ts)) || (rc = mt_table_create(arena_cols, NA, &ta)))
        goto fail;
    for (size_t i = 0; i < npools; i++) {
        const mt_layout_pool_t *q = &pools[i];
        if (q->state != MT_POOL_USED && q->state != MT_POOL_FULL) continue;
        inuse_pools++;
        if (!FEW(q->blocks_used, q->capacity)) continue;
        pin_pools++;
        pin_blocks += q->blocks_used;
        int64_t found = 0;
        for (size_t k = lower_bound(p.blocks, p.nblocks, q->process, q->pool);
             k < p.nblocks && p.blocks[k].process == q->process && p.blocks[k].addr < q->pool + (uint64_t)pool_size;
             k++) {
            pins[npins++] = (pin_t){p.blocks[k].stack, (int64_t)i, p.blocks[k].size};
            found++;
        }
        traced += found;
        if ((rc = mt_table_row(tp)) || (rc = mt_table_text(tp, P_STATE, mt_pool_state_name(q->state)))) goto fail;
        int64_t pid = mt_cli_pid(&c, q->process);
        mt_table_int(tp, P_PROC, q->process);
        if (pid >= 0) mt_table_int(tp, P_PID, pid);
        mt_table_int(tp, P_ARENA, (int64_t)q->arena);
        mt_table_int(tp, P_POOL, (int64_t)q->pool);
        mt_table_int(tp, P_INDEX, q->index);
        mt_table_int(tp, P_CLASS, q->size_class);
        mt_table_int(tp, P_BLOCK, py ? pool_block[i] : (int64_t)PYM_CLASS_SIZE(q->size_class));
        mt_table_int(tp, P_USED, q->blocks_used);
        mt_table_int(tp, P_CAP, q->capacity);
        mt_table_int(tp, P_FOUND, found);
    }
    if (npins) {
        qsort(pins, npins, sizeof *pins, pin_cmp);
        if (!(groups = calloc(npins, sizeof *groups))) {
            rc = MT_ENOMEM;
            goto fail;
        }
        for (size_t i = 0; i < npins; i++) {
            if (!i || pins[i].stack != pins[i - 1].stack) groups[ngroups++] = (group_t){.stack = pins[i].stack};
            group_t *g = &groups[ngroups - 1];
            if (!i || pins[i].stack != pins[i - 1].stack || pins[i].pool != pins[i - 1].pool) g->pools++;
            g->blocks++;
            g->bytes += pins[i].size;
        }
        qsort(groups, ngroups, sizeof *groups, group_cmp);
    }
    for (size_t i = 0; i < ngroups && (!c.top || (int64_t)i < c.top); i++) {
        if ((rc = mt_table_row(ts))) goto fail;
        mt_table_int(ts, S_POOLS, groups[i].pools);
        mt_table_int(ts, S_POOLB, groups[i].pools * pool_size);
        mt_table_int(ts, S_BLOCKS, groups[i].blocks);
        mt_table_int(ts, S_BYTES, groups[i].bytes);
        mt_table_int(ts, S_STACK, groups[i].stack);
    }
    for (size_t i = 0; i < narenas; i++) {
        const mt_layout_arena_t *a = &arenas[i];
        int64_t inuse = a->pools_used + a->pools_full;
        if (!FEW(inuse, py ? arena_pools[i] : PYM_POOLS_PER_ARENA)) continue;
        pin_arenas++;
        if ((rc = mt_table_row(ta))) goto fail;
        int64_t pid = mt_cli_pid(&c, a->process);
        mt_table_int(ta, A_PROC, a->process);
        if (pid >= 0) mt_table_int(ta, A_PID, pid);
        mt_table_int(ta, A_ARENA, (int64_t)a->arena);
        mt_table_int(ta, A_INUSE, inuse);
        mt_table_int(ta, A_FREE, a->pools_empty + a->pools_uncarved);
        mt_table_int(ta, A_BUSED, a->blocks_used);
        mt_table_int(ta, A_BYTES, a->bytes_in_use);
    }
    for (size_t i = 0; i < p.n; i++) {
        const point_t *pt = &p.pts[i];
        if ((rc = mt_table_row(tt))) goto fail;
        mt_table_real(tt, T_TIME, (double)pt->t / 1e6);
        if (pt->seq >= 0) mt_table_int(tt, T_SEQ, pt->seq);
        mt_table_int(tt, T_HEAP, pt->heap);
        if (have_alloc) {
            mt_table_int(tt, T_ARENA, pt->arena);
            mt_table_int(tt, T_POOL, pt->pool);
            mt_table_int(tt, T_BLOCK, pt->block);
            mt_table_int(tt, T_KEPT, pt->arena - pt->block);
            mt_table_int(tt, T_FREEB, pt->pool - pt->block);
            mt_table_int(tt, T_FREEP, pt->arena - pt->pool);
        }
        mt_table_int(tt, T_MAPPED, pt->mapped);
    }
    if ((rc = mt_stackfmt_open(db, &sf))) goto fail;

    char a[64], b[64], d[64];
    char none[512];
    if (alloc_arg && !strcmp(alloc_arg, "pymalloc"))
        snprintf(none, sizeof none, "no pymalloc in %s: no process ran a CPython interpreter with pymalloc",
                 c.path);
    else
        snprintf(none, sizeof none,
                 "no allocator events in %s: it was recorded with the %s allocator; record with "
                 "--allocator=bundled (or trace a CPython program: pymalloc) to see what pins pools and arenas",
                 c.path, alloc && strcmp(alloc, "bundled") ? alloc : "C library's");
    if (c.csv) {
        mt_table_t *t = by == BY_POOLS ? tp : by == BY_STACKS ? ts : by == BY_ARENAS ? ta : tt;
        if ((rc = mt_table_write(t, sf, 1, stdout, NULL))) goto fail;
        if (!have_alloc && by != BY_TIME) fprintf(stderr, "memtrace retained: %s\n", none);
    } else {
        printf("memory freed but kept in %s: %s point%s over %.3f ms\n\n", c.path,
               mt_fmt_count(a, sizeof a, npoints), mt_cli_plural(npoints), (double)duration / 1e6);
        if ((rc = mt_table_write(tt, NULL, 0, stdout, "  "))) goto fail;
        printf("\n");
        if (!have_alloc) {
            printf("pinning: %s\n", none);
        } else {
            printf("allocator: %s\n", py ? "pymalloc (CPython)" : "bundled");
            if (at >= 0) printf("pinning after seq %s", mt_fmt_count(a, sizeof a, at));
            else printf("pinning at the end of the trace");
            printf(": %s of %s pool%s in use hold few blocks (1 or 2, or under 10%% of capacity): %s kept by "
                   "%s block%s\n",
                   mt_fmt_count(a, sizeof a, pin_pools), mt_fmt_count(b, sizeof b, inuse_pools),
                   mt_cli_plural(inuse_pools), mt_cli_bytes(d, sizeof d, pin_pools * pool_size),
                   mt_fmt_count(none, sizeof none, pin_blocks), mt_cli_plural(pin_blocks));
            if (pin_pools) {
                printf("\n");
                if ((rc = mt_table_write(tp, NULL, 0, stdout, "  "))) goto fail;
                printf("\npinning blocks by allocation stack (%s of %s with a live allocation",
                       mt_fmt_count(a, sizeof a, traced), mt_fmt_count(b, sizeof b, pin_blocks));
                if (c.top && (int64_t)ngroups > c.top)
                    printf("; the top %s of %s stacks", mt_fmt_count(d, sizeof d, c.top),
                           mt_fmt_count(none, sizeof none, (int64_t)ngroups));
                printf(")\n\n");
                for (size_t i = 0; i < ngroups && (!c.top || (int64_t)i < c.top); i++) {
                    char e[64];
                    printf("  %s pool%s (%s) pinned by %s block%s (%s byte%s requested) from:\n",
                           mt_fmt_count(a, sizeof a, groups[i].pools), mt_cli_plural(groups[i].pools),
                           mt_fmt_bytes(b, sizeof b, (double)(groups[i].pools * pool_size)),
                           mt_fmt_count(d, sizeof d, groups[i].blocks), mt_cli_plural(groups[i].blocks),
                           mt_fmt_count(e, sizeof e, groups[i].bytes), mt_cli_plural(groups[i].bytes));
                    if ((rc = mt_stackfmt_print(sf, groups[i].stack, MT_TABLE_FRAMES, stdout, "      "))) goto fail;
                }
                if (!ngroups) printf("  (none: no live allocation lies in those pools)\n");
            }
            printf("\narenas kept mapped by few pools in use (1 or 2, or under 10%% of their pools): %s of %s",
                   mt_fmt_count(a, sizeof a, pin_arenas), mt_fmt_count(b, sizeof b, (int64_t)narenas));
            if (pin_arenas) {
                printf(", %s held\n\n", mt_cli_bytes(d, sizeof d, pin_arenas * arena_size));
                if ((rc = mt_table_write(ta, NULL, 0, stdout, "  "))) goto fail;
            } else {
                printf("\n");
            }
        }
    }
    status = mt_cli_flush(&c, stdout);
    goto out;
fail:
    mt_cli_fail(&c, db, rc);
out:
    mt_stackfmt_close(sf);
    mt_table_destroy(tt);
    mt_table_destroy(tp);
    mt_table_destroy(ts);
    mt_table_destroy(ta);
    free(groups);
    free(pins);
    free(pools);
    free(arenas);
    free(p.pts);
    free(p.blocks);
    free(alloc);
    mt_layout_destroy(m);
    mt_heap_destroy(h);
    for (int k = 0; k < 2; k++) mt_heap_destroy(p.py[k]);
    mt_pymodel_destroy(pym);
    free(pyprocs);
    free(pygeoms);
    free(pool_block);
    free(arena_pools);
    mt_db_close(db);
    mt_cli_free(&c);
    return status;
}
