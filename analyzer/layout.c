/* layout.c - `memtrace layout [--allocator bundled|pymalloc] [--at SEQ |
 * --time MS] [--by pools|classes|arenas|mappings] [--csv] DB`: an allocator's arenas
 * and pools at one moment of a trace: the bundled allocator's (a trace
 * recorded with --allocator=bundled) or CPython's pymalloc (a traced
 * interpreter that uses it).
 *
 * Place in the pipeline: analyzer subcommand (entry point in mt_analyzer.h).
 * One pass over the allocator's events up to the moment (mt_layout_replay,
 * layout_model.h; or mt_pymodel_replay, pymodel.h, once per interpreter),
 * both models listing their pools and arenas in the same records; then
 * three tables of them: arenas (pools in use, free pools), size classes
 * (pools used/full/empty, blocks, fill) and pools (one row per pool that
 * has served a class: state, blocks in use, capacity), with the
 * fragmentation figure: bytes of blocks in use / bytes of the pools in use.
 * Text prints the three; CSV one, chosen with --by (pools by default).
 * Sorted by process, then arena and pool address or class.
 */
#include "mt_analyzer.h"

#include "cli.h"
#include "layout_model.h"
#include "mt_error.h"
#include "mt_event.h"
#include "mt_util.h"
#include "pymodel.h"
#include "table.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SYNOPSIS \
    "[--allocator bundled|pymalloc] [--at SEQ | --time MS] [--by pools|classes|arenas|mappings] [--csv] DB"

enum { BY_POOLS, BY_CLASSES, BY_ARENAS, NBY };

enum { P_PROC, P_PID, P_ARENA, P_POOL, P_INDEX, P_CLASS, P_BLOCK, P_STATE, P_USED, P_CAP, NP };
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
};

enum { K_PROC, K_PID, K_CLASS, K_BLOCK, K_CAP, K_USED, K_FULL, K_EMPTY, K_BUSED, K_BFREE, K_BYTES,
       K_POOLB, K_FILL, NK };
static const mt_tcol_t class_cols[NK] = {
    [K_PROC] = {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [K_PID] = {"pid", "pid", MT_TCOL_ID, 0, 0},
    [K_CLASS] = {"class", "size_class", MT_TCOL_INT, 0, 0},
    [K_BLOCK] = {"block", "block_size", MT_TCOL_BYTES, 0, 0},
    [K_CAP] = {"capacity", "capacity", MT_TCOL_INT, 0, 0},
    [K_USED] = {"used", "pools_used", MT_TCOL_INT, 0, 0},
    [K_FULL] = {"full", "pools_full", MT_TCOL_INT, 0, 0},
    [K_EMPTY] = {"empty", "pools_empty", MT_TCOL_INT, 0, 0},
    [K_BUSED] = {"blocks used", "blocks_used", MT_TCOL_INT, 0, 0},
    [K_BFREE] = {"blocks free", "blocks_free", MT_TCOL_INT, 0, 0},
    [K_BYTES] = {"bytes in use", "bytes_in_use", MT_TCOL_BYTES, 0, 0},
    [K_POOLB] = {"in pools", "pool_bytes", MT_TCOL_BYTES, 0, 0},
    [K_FILL] = {"fill %", "fill_percent", MT_TCOL_REAL, 1, 0},
};

enum { A_PROC, A_PID, A_ARENA, A_INUSE, A_USED, A_FULL, A_EMPTY, A_UNCARVED, A_FREE, A_BUSED, A_BYTES,
       A_FILL, NA };
static const mt_tcol_t arena_cols[NA] = {
    [A_PROC] = {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [A_PID] = {"pid", "pid", MT_TCOL_ID, 0, 0},
    [A_ARENA] = {"arena", "arena", MT_TCOL_ADDR, 0, 0},
    [A_INUSE] = {"pools in use", "pools_in_use", MT_TCOL_INT, 0, 0},
    [A_USED] = {"used", "pools_used", MT_TCOL_INT, 0, 0},
    [A_FULL] = {"full", "pools_full", MT_TCOL_INT, 0, 0},
    [A_EMPTY] = {"empty", "pools_empty", MT_TCOL_INT, 0, 0},
    [A_UNCARVED] = {"uncarved", "pools_uncarved", MT_TCOL_INT, 0, 0},
    [A_FREE] = {"free", "free_pools", MT_TCOL_INT, 0, 0},
    [A_BUSED] = {"blocks used", "blocks_used", MT_TCOL_INT, 0, 0},
    [A_BYTES] = {"bytes in use", "bytes_in_use", MT_TCOL_BYTES, 0, 0},
    [A_FILL] = {"fill %", "fill_percent", MT_TCOL_REAL, 1, 0},
};

void mt_usage_layout(FILE *out)
{
    fprintf(out,
            "usage: memtrace layout " SYNOPSIS "\n"
            "\n"
            "An allocator's arenas and pools at one moment, rebuilt from the events: the\n"
            "bundled allocator's in a trace recorded with --allocator=bundled (the\n"
            "allocator_events view; lib/pym.h describes it), or CPython's pymalloc in a\n"
            "trace of an interpreter that uses it (its arena, object and memory domain\n"
            "events, with the geometry of the python table):\n"
            "\n"
            "  arenas   bundled: 1 MiB each, 64 pools of 16 KiB; pymalloc: arena_size\n"
            "           each, arena_size / pool_size pools, one fewer when the arena does\n"
            "           not start on a pool boundary (pymalloc aligns the first pool up).\n"
            "           Pools in use (used: a block available, full: none), free pools\n"
            "           (empty: served a class, uncarved: never did), blocks and bytes\n"
            "           in use\n"
            "  classes  per size class (block size (class + 1) * 16 bytes, 8 when the\n"
            "           interpreter has 64 classes): pools used, full and empty, blocks\n"
            "           used and free in its used pools\n"
            "  pools    one row per pool that has served a class: its arena, number in\n"
            "           the arena (from 0), class, state, blocks used and capacity\n"
            "           ((pool size - 48) / block size)\n"
            "\n"
            "Fill (and the fragmentation line) is bytes of the blocks in use divided by\n"
            "the bytes of the pools in use (used and full): what the rest of those\n"
            "pools holds is free blocks, pool headers and tails too small for a block.\n"
            "Sizes are block sizes, not the sizes requested (under PYTHONMALLOC=debug a\n"
            "pymalloc block holds the request and 24 bytes of the debug hooks).  Each\n"
            "process has its own rows; with the bundled allocator a forked child starts\n"
            "with a copy of its parent's layout, with pymalloc each interpreter (each\n"
            "python row) has its own.  Without events of the allocator in the trace,\n"
            "one line says so on stderr (exit status 0).\n"
            "\n"
            "Options:\n"
            "  --allocator A  bundled or pymalloc (default: the bundled allocator when the\n"
            "                 trace has its events, else pymalloc)\n"
            "  --at SEQ       the moment after the event numbered SEQ (seq), with what\n"
            "                 the allocator did inside that call (default: the end)\n"
            "  --time MS      the moment MS milliseconds into the trace (a decimal\n"
            "                 number): the events recorded up to then\n"
            "  --by WHAT      the table CSV prints, or the only one text prints: pools\n"
            "                 (the default for CSV), classes or arenas; mappings: the OS\n"
            "                 layer's mappings at the moment instead (memtrace maps)\n"
            "  --csv          RFC 4180 CSV: a header row, then one row per pool:\n"
            "                   process_id,pid,arena,pool,pool_index,size_class,block_size,\n"
            "                   state,blocks_used,capacity\n"
            "                 per class (--by classes):\n"
            "                   process_id,pid,size_class,block_size,capacity,pools_used,\n"
            "                   pools_full,pools_empty,blocks_used,blocks_free,\n"
            "                   bytes_in_use,pool_bytes,fill_percent\n"
            "                 per arena (--by arenas):\n"
            "                   process_id,pid,arena,pools_in_use,pools_used,pools_full,\n"
            "                   pools_empty,pools_uncarved,free_pools,blocks_used,\n"
            "                   bytes_in_use,fill_percent\n"
            "                 (addresses as decimal integers; state is used, full or empty)\n"
            "  -h, --help     this text\n"
            "\n"
            "Exit status: 0 done (allocator events or not), 1 the trace cannot be read,\n"
            "2 usage error.\n"
            "\n"
            "Examples:\n"
            "  memtrace run --allocator=bundled -o prog.db ./prog\n"
            "  memtrace layout --time 250 prog.db\n"
            "  memtrace -o py.db python3 script.py && memtrace layout --by classes py.db\n");
}

/* One allocator's layout at the moment, in the records both models list. */
typedef struct {
    int pymalloc;                   /* 0: the bundled allocator */
    int64_t pool_size, arena_size;
    int nclasses;
    int64_t block_size[MT_PYMODEL_MAX_CLASSES];
    mt_layout_pool_t *pools;        /* by process, arena, pool */
    size_t npools;
    mt_layout_arena_t *arenas;      /* by process, arena */
    size_t narenas;
    int64_t *procs;
    size_t nprocs;
    int64_t events, last_seq, last_ts, anomalies;
    mt_layout_t *bundled;           /* the bundled allocator's model (bad frees) */
} lay_t;

static double fill(const lay_t *L, int64_t bytes, int64_t pools)
{
    return pools > 0 ? 100.0 * (double)bytes / ((double)pools * (double)L->pool_size) : NAN;
}

/* Sets a fill cell, NULL when no pool is in use. */
static void fill_cell(const lay_t *L, mt_table_t *t, int col, int64_t bytes, int64_t pools)
{
    if (pools > 0) mt_table_real(t, col, fill(L, bytes, pools));
}

static int64_t block_size(const lay_t *L, int cl)
{
    return cl >= 0 && cl < L->nclasses ? L->block_size[cl] : 0;
}

static int pool_rows(const mt_cli_t *c, const lay_t *L, mt_table_t *t)
{
    for (size_t i = 0; i < L->npools; i++) {
        const mt_layout_pool_t *v = &L->pools[i];
        int rc = mt_table_row(t);
        if (!rc) rc = mt_table_text(t, P_STATE, mt_pool_state_name(v->state));
        if (rc) return rc;
        int64_t pid = mt_cli_pid(c, v->process);
        mt_table_int(t, P_PROC, v->process);
        if (pid >= 0) mt_table_int(t, P_PID, pid);
        mt_table_int(t, P_ARENA, (int64_t)v->arena);
        mt_table_int(t, P_POOL, (int64_t)v->pool);
        mt_table_int(t, P_INDEX, v->index);
        mt_table_int(t, P_CLASS, v->size_class);
        mt_table_int(t, P_BLOCK, block_size(L, v->size_class));
        mt_table_int(t, P_USED, v->blocks_used);
        mt_table_int(t, P_CAP, v->capacity);
    }
    return 0;
}

/* Per size class of one process, from its pools. */
typedef struct {
    int64_t capacity, used, full, empty, blocks_used, blocks_free;
} class_t;

static void classes_of(const lay_t *L, int64_t process, class_t *k)
{
    memset(k, 0, sizeof *k * MT_PYMODEL_MAX_CLASSES);
    for (size_t i = 0; i < L->npools; i++) {
        const mt_layout_pool_t *p = &L->pools[i];
        if (p->process != process || p->size_class < 0 || p->size_class >= MT_PYMODEL_MAX_CLASSES) continue;
        class_t *s = &k[p->size_class];
        s->capacity = p->capacity;
        switch (p->state) {
        case MT_POOL_USED:
            s->used++;
            s->blocks_used += p->blocks_used;
            if (p->blocks_used < p->capacity) s->blocks_free += p->capacity - p->blocks_used;
            break;
        case MT_POOL_FULL:
            s->full++;
            s->blocks_used += p->blocks_used;
            break;
        case MT_POOL_EMPTY: s->empty++; break;
        case MT_POOL_UNCARVED: break;
        }
    }
}

static int class_rows(const mt_cli_t *c, const lay_t *L, mt_table_t *t)
{
    class_t k[MT_PYMODEL_MAX_CLASSES];
    for (size_t j = 0; j < L->nprocs; j++) {
        classes_of(L, L->procs[j], k);
        int64_t pid = mt_cli_pid(c, L->procs[j]);
        for (int cl = 0; cl < L->nclasses; cl++) {
            const class_t *cs = &k[cl];
            if (!cs->used && !cs->full && !cs->empty) continue;
            int rc = mt_table_row(t);
            if (rc) return rc;
            int64_t bytes = cs->blocks_used * block_size(L, cl);
            int64_t inuse = cs->used + cs->full;
            mt_table_int(t, K_PROC, L->procs[j]);
            if (pid >= 0) mt_table_int(t, K_PID, pid);
            mt_table_int(t, K_CLASS, cl);
            mt_table_int(t, K_BLOCK, block_size(L, cl));
            mt_table_int(t, K_CAP, cs->capacity);
            mt_table_int(t, K_USED, cs->used);
            mt_table_int(t, K_FULL, cs->full);
            mt_table_int(t, K_EMPTY, cs->empty);
            mt_table_int(t, K_BUSED, cs->blocks_used);
            mt_table_int(t, K_BFREE, cs->blocks_free);
            mt_table_int(t, K_BYTES, bytes);
            mt_table_int(t, K_POOLB, inuse * L->pool_size);
            fill_cell(L, t, K_FILL, bytes, inuse);
        }
    }
    return 0;
}

static int arena_rows(const mt_cli_t *c, const lay_t *L, mt_table_t *t)
{
    for (size_t i = 0; i < L->narenas; i++) {
        const mt_layout_arena_t *v = &L->arenas[i];
        int rc = mt_table_row(t);
        if (rc) return rc;
        int64_t pid = mt_cli_pid(c, v->process);
        int64_t inuse = v->pools_used + v->pools_full;
        mt_table_int(t, A_PROC, v->process);
        if (pid >= 0) mt_table_int(t, A_PID, pid);
        mt_table_int(t, A_ARENA, (int64_t)v->arena);
        mt_table_int(t, A_INUSE, inuse);
        mt_table_int(t, A_USED, v->pools_used);
        mt_table_int(t, A_FULL, v->pools_full);
        mt_table_int(t, A_EMPTY, v->pools_empty);
        mt_table_int(t, A_UNCARVED, v->pools_uncarved);
        mt_table_int(t, A_FREE, v->pools_empty + v->pools_uncarved);
        mt_table_int(t, A_BUSED, v->blocks_used);
        mt_table_int(t, A_BYTES, v->bytes_in_use);
        fill_cell(L, t, A_FILL, v->bytes_in_use, inuse);
    }
    return 0;
}

/* The totals and fragmentation lines of one process. */
static void text_totals(const mt_cli_t *c, const lay_t *L, int64_t process, int named)
{
    char a[64], b[64], d[32], e[32];
    int64_t arenas = 0, used = 0, full = 0, empty = 0, uncarved = 0, blocks = 0, bytes = 0, bfree = 0;
    for (size_t i = 0; i < L->narenas; i++) {
        const mt_layout_arena_t *v = &L->arenas[i];
        if (v->process != process) continue;
        arenas++;
        used += v->pools_used;
        full += v->pools_full;
        empty += v->pools_empty;
        uncarved += v->pools_uncarved;
        blocks += v->blocks_used;
        bytes += v->bytes_in_use;
    }
    class_t k[MT_PYMODEL_MAX_CLASSES];
    classes_of(L, process, k);
    for (int cl = 0; cl < MT_PYMODEL_MAX_CLASSES; cl++) bfree += k[cl].blocks_free;
    const char *ind = named ? "  " : "";
    if (named) printf("pid %" PRId64 ":\n", mt_cli_pid(c, process));
    int64_t inuse = used + full;
    printf("%s%" PRId64 " arena%s (%s), %" PRId64 " pool%s in use (%" PRId64 " used, %" PRId64
           " full), %" PRId64 " empty, %" PRId64 " uncarved; %s block%s in use, %s free in used pools\n",
           ind, arenas, mt_cli_plural(arenas), mt_fmt_bytes(d, sizeof d, (double)(arenas * L->arena_size)), inuse,
           mt_cli_plural(inuse), used, full, empty, uncarved, mt_fmt_count(e, sizeof e, blocks),
           mt_cli_plural(blocks), mt_fmt_count(b, sizeof b, bfree));
    printf("%sfragmentation: %s of blocks in use in %s of pools in use", ind, mt_cli_bytes(a, sizeof a, bytes),
           mt_cli_bytes(b, sizeof b, inuse * L->pool_size));
    if (inuse) printf(" (%.1f%% filled)", fill(L, bytes, inuse));
    printf("\n");
    if (L->bundled) {
        pym_stats_t s;
        mt_layout_stats(L->bundled, process, &s);
        if (s.bad_frees) printf("%sbad frees (double_free events) so far: %" PRIu64 "\n", ind, s.bad_frees);
    }
}

/* 1 when the trace has events of the bundled allocator.  `alloc` is
 * meta.allocator (NULL when absent): a trace of another allocator has
 * none.  *rc: 0 or a database error. */
static int has_bundled(mt_db_t *db, const char *alloc, int *rc)
{
    int has = 0;
    *rc = 0;
    if (alloc && strcmp(alloc, "bundled") != 0) return 0;
    mt_stmt_t *st;
    if (!(*rc = mt_stmt_prepare(db, "SELECT EXISTS (SELECT 1 FROM event_data WHERE kind >= ?1)", &st))) {
        if (!(*rc = mt_stmt_bind_int(st, 1, MT_KIND_PYM_BASE)) && (*rc = mt_stmt_step(st)) == 1) {
            has = mt_stmt_int(st, 0) != 0;
            *rc = 0;
        }
        mt_stmt_finalize(st);
    }
    return has;
}

/* The bundled allocator's layout at the moment into L. */
static int load_bundled(mt_db_t *db, const mt_layout_replay_opts_t *ro, lay_t *L)
{
    L->pool_size = (int64_t)PYM_POOL_SIZE;
    L->arena_size = (int64_t)PYM_ARENA_SIZE;
    L->nclasses = PYM_NCLASSES;
    for (int cl = 0; cl < PYM_NCLASSES; cl++) L->block_size[cl] = (int64_t)PYM_CLASS_SIZE(cl);
    int rc = mt_layout_create(&L->bundled);
    if (!rc) rc = mt_layout_replay(L->bundled, db, ro);
    if (rc) return rc;
    mt_layout_info_t info = mt_layout_info(L->bundled);
    L->events = info.events;
    L->last_seq = info.last_seq;
    L->last_ts = info.last_ts;
    L->anomalies = info.anomalies;
    if ((rc = mt_layout_pools(L->bundled, &L->pools, &L->npools)) ||
        (rc = mt_layout_arenas(L->bundled, &L->arenas, &L->narenas)))
        return rc;
    return mt_layout_processes(L->bundled, &L->procs, &L->nprocs);
}

static int count_event(void *arg, int64_t seq, int64_t ts, const mt_pymodel_t *m)
{
    lay_t *L = arg;
    (void)m;
    L->events++;
    L->last_seq = seq;
    L->last_ts = ts;
    return 0;
}

/* Appends v[0..n) (malloc'ed, taken over) to *all. */
static int append(void **all, size_t *nall, void *v, size_t n, size_t size)
{
    if (!n) return 0;
    char *p = realloc(*all, (*nall + n) * size);
    if (!p) {
        free(v);
        return MT_ENOMEM;
    }
    memcpy(p + *nall * size, v, n * size);
    free(v);
    *all = p;
    *nall += n;
    return 0;
}

/* pymalloc's layout at the moment into L: one model per interpreter
 * (procs/geoms from mt_pymodel_interpreters, n > 0). */
static int load_pymalloc(mt_db_t *db, const mt_layout_replay_opts_t *ro, int64_t *procs,
                         const mt_pymodel_geom_t *geoms, size_t n, lay_t *L)
{
    L->pymalloc = 1;
    L->procs = procs;
    L->nprocs = n;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        mt_pymodel_t *m = NULL;
        mt_pymodel_replay_opts_t po = {.at_seq = ro->at_seq, .at_ts = ro->at_ts, .progress = ro->progress,
                                       .before = count_event, .arg = L};
        if ((rc = mt_pymodel_create(&geoms[i], procs[i], &m)) == MT_EINVAL) {
            rc = 0; /* not pymalloc's geometry: no rows */
            continue;
        }
        if (!rc) rc = mt_pymodel_replay(m, db, &po);
        mt_layout_pool_t *p = NULL;
        mt_layout_arena_t *a = NULL;
        size_t np = 0, na = 0;
        if (!rc) rc = mt_pymodel_pools(m, &p, &np);
        if (!rc) rc = append((void **)&L->pools, &L->npools, p, np, sizeof *p);
        if (!rc) rc = mt_pymodel_arenas(m, &a, &na, NULL);
        if (!rc) rc = append((void **)&L->arenas, &L->narenas, a, na, sizeof *a);
        if (!rc && i == 0) {
            /* the tables' geometry is the first interpreter's */
            L->pool_size = geoms[i].pool_size;
            L->arena_size = geoms[i].arena_size;
            L->nclasses = mt_pymodel_classes(m);
            for (int cl = 0; cl < L->nclasses; cl++) L->block_size[cl] = mt_pymodel_block_size(m, cl);
        }
        if (!rc) {
            mt_pymodel_totals_t t;
            mt_pymodel_totals(m, &t);
            L->anomalies += t.anomalies;
        }
        mt_pymodel_destroy(m);
    }
    return rc;
}

int mt_cmd_layout(int argc, char **argv)
{
    static const char *const by_names[NBY] = {"pools", "classes", "arenas"};
    mt_cli_t c = {.cmd = "layout", .synopsis = SYNOPSIS, .usage = mt_usage_layout, .has_csv = 1};
    const char *at_arg = NULL, *time_arg = NULL, *by_arg = NULL, *alloc_arg = NULL;
    const mt_cli_opt_t opts[] = {
        {"--at", NULL, 1, &at_arg},
        {"--time", NULL, 1, &time_arg},
        {"--by", NULL, 1, &by_arg},
        {"--allocator", NULL, 1, &alloc_arg},
    };
    int status = mt_cli_parse(&c, argc, argv, opts, 4);
    if (status >= 0) return status;
    mt_layout_replay_opts_t ro = {.at_seq = -1, .at_ts = -1, .progress = c.progress};
    int by = -1;
    if (at_arg && time_arg) return mt_cli_usage_error(&c, "%s", "give --at or --time, not both");
    if (at_arg && mt_cli_int(at_arg, 0, INT64_MAX, &ro.at_seq))
        return mt_cli_usage_error(&c, "--at wants a seq (an event's number, 0 or more), not '%s'", at_arg);
    if (time_arg && mt_cli_ms(time_arg, &ro.at_ts))
        return mt_cli_usage_error(&c, "--time wants milliseconds (0 or more), not '%s'", time_arg);
    if (by_arg) {
        for (by = 0; by < NBY && strcmp(by_arg, by_names[by]); by++) {
        }
        if (by == NBY && strcmp(by_arg, "mappings"))
            return mt_cli_usage_error(&c, "--by wants pools, classes, arenas or mappings, not '%s'", by_arg);
    }
    if (by == NBY) { /* the OS layer's mapping list at the moment: `memtrace maps` */
        char *margv[8];
        int margc = 0;
        margv[margc++] = "maps";
        if (at_arg) margv[margc++] = "--at", margv[margc++] = (char *)at_arg;
        if (time_arg) margv[margc++] = "--time", margv[margc++] = (char *)time_arg;
        if (c.csv) margv[margc++] = "--csv";
        margv[margc++] = (char *)c.path;
        margv[margc] = NULL;
        mt_cli_free(&c);
        return mt_cmd_maps(margc, margv);
    }
    if (alloc_arg && strcmp(alloc_arg, "bundled") && strcmp(alloc_arg, "pymalloc"))
        return mt_cli_usage_error(&c, "--allocator wants bundled or pymalloc, not '%s'", alloc_arg);
    status = 1;

    mt_db_t *db = NULL;
    lay_t L;
    memset(&L, 0, sizeof L);
    L.last_seq = -1;
    int64_t *pyprocs = NULL;
    mt_pymodel_geom_t *geoms = NULL;
    size_t ninterp = 0;
    mt_table_t *tp = NULL, *tk = NULL, *ta = NULL;
    char *alloc = NULL; /* meta.allocator */
    int rc, none = 0;
    if (mt_cli_open(&c, &db)) goto out;
    if ((rc = mt_db_meta_get_text(db, "allocator", &alloc))) goto fail;
    int bundled = has_bundled(db, alloc, &rc);
    if (rc) goto fail;
    if ((rc = mt_pymodel_interpreters(db, &pyprocs, &geoms, &ninterp))) goto fail;
    int pymalloc = alloc_arg ? !strcmp(alloc_arg, "pymalloc") : !bundled && ninterp > 0;
    if (pymalloc && ninterp) {
        rc = load_pymalloc(db, &ro, pyprocs, geoms, ninterp, &L);
        pyprocs = NULL; /* L's now */
    } else if (pymalloc) {
        none = 1;
        fprintf(stderr, "memtrace layout: no pymalloc in %s: no traced CPython interpreter used it "
                        "(PYTHONMALLOC=malloc, --python=off, or no Python at all)\n", c.path);
    } else if (bundled) {
        rc = load_bundled(db, &ro, &L);
    } else {
        none = 1;
        fprintf(stderr,
                "memtrace layout: no allocator events in %s: it was recorded with the %s allocator; "
                "record with --allocator=bundled to see arenas and pools\n",
                c.path, alloc ? alloc : "C library's");
    }
    if (rc) goto fail;
    if ((rc = mt_table_create(pool_cols, NP, &tp)) || (rc = mt_table_create(class_cols, NK, &tk)) ||
        (rc = mt_table_create(arena_cols, NA, &ta)))
        goto fail;
    if ((rc = pool_rows(&c, &L, tp)) || (rc = class_rows(&c, &L, tk)) || (rc = arena_rows(&c, &L, ta))) goto fail;
    if (L.anomalies && !L.pymalloc)
        fprintf(stderr,
                "memtrace layout: warning: %" PRId64 " allocator event%s of %s contradict%s the layout rebuilt "
                "from the events before (a damaged or hand-made trace?)\n",
                L.anomalies, mt_cli_plural(L.anomalies), c.path, L.anomalies == 1 ? "s" : "");
    else if (L.anomalies)
        fprintf(stderr,
                "memtrace layout: warning: %" PRId64 " pymalloc block%s of %s outside every pool of %s arena "
                "(a damaged or hand-made trace?)\n",
                L.anomalies, mt_cli_plural(L.anomalies), c.path, L.anomalies == 1 ? "its" : "their");

    if (c.csv) {
        mt_table_t *t = by == BY_CLASSES ? tk : by == BY_ARENAS ? ta : tp;
        if ((rc = mt_table_write(t, NULL, 1, stdout, NULL))) goto fail;
    } else if (!none) {
        char a[32], b[32], d[32];
        printf("%s layout in %s ", L.pymalloc ? "pymalloc" : "bundled allocator", c.path);
        if (ro.at_seq >= 0) printf("after seq %s", mt_fmt_count(a, sizeof a, ro.at_seq));
        else if (ro.at_ts >= 0) printf("at %s ms", time_arg);
        else printf("at the end of the trace");
        if (L.events)
            printf(" (%s %s event%s, the last at seq %s, %.3f ms)\n", mt_fmt_count(b, sizeof b, L.events),
                   L.pymalloc ? "object, memory and arena" : "allocator", mt_cli_plural(L.events),
                   mt_fmt_count(d, sizeof d, L.last_seq), (double)L.last_ts / 1e6);
        else printf(" (no %s event before it)\n", L.pymalloc ? "object, memory or arena" : "allocator");
        if (!L.narenas) {
            printf("\nno arena mapped at this moment\n");
        } else {
            if (by < 0 || by == BY_ARENAS) {
                if (L.pymalloc)
                    printf("\narenas (%s, %s each: %" PRId64 " pools of %s, one fewer when not pool-aligned)\n\n",
                           mt_fmt_count(a, sizeof a, (int64_t)L.narenas),
                           mt_fmt_bytes(b, sizeof b, (double)L.arena_size), L.arena_size / L.pool_size,
                           mt_fmt_bytes(d, sizeof d, (double)L.pool_size));
                else printf("\narenas (%s, 64 pools each)\n\n", mt_fmt_count(a, sizeof a, (int64_t)L.narenas));
                if ((rc = mt_table_write(ta, NULL, 0, stdout, "  "))) goto fail;
            }
            if (by < 0 || by == BY_CLASSES) {
                printf("\nsize classes with pools (%s)\n\n", mt_fmt_count(a, sizeof a, (int64_t)mt_table_rows(tk)));
                if ((rc = mt_table_write(tk, NULL, 0, stdout, "  "))) goto fail;
            }
            if (by < 0 || by == BY_POOLS) {
                printf("\npools that served a class (%s)\n\n", mt_fmt_count(a, sizeof a, (int64_t)L.npools));
                if ((rc = mt_table_write(tp, NULL, 0, stdout, "  "))) goto fail;
            }
        }
        printf("\n");
        for (size_t k = 0; k < L.nprocs; k++) text_totals(&c, &L, L.procs[k], L.nprocs > 1);
    }
    status = mt_cli_flush(&c, stdout);
    goto out;
fail:
    mt_cli_fail(&c, db, rc);
out:
    mt_table_destroy(tp);
    mt_table_destroy(tk);
    mt_table_destroy(ta);
    free(L.pools);
    free(L.arenas);
    free(L.procs);
    free(pyprocs);
    free(geoms);
    free(alloc);
    mt_layout_destroy(L.bundled);
    mt_db_close(db);
    mt_cli_free(&c);
    return status;
}
