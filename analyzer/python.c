/* python.c - `memtrace python [--pid PID] [--top N] [--csv --section NAME] DB`:
 * the CPython layers of a traced interpreter, answering with the run's own
 * numbers: how many allocators and what each layer did, which Python-level
 * requests reached the C library and why, the start-up footprint, what
 * happens to freed memory, when the garbage collector ran and why, and how
 * lists grew.
 *
 * Place in the pipeline: analyzer subcommand (entry point in mt_analyzer.h).
 * One pass over event_data in seq order for the chosen process keeps, per
 * layer, the live blocks (address -> size) and counters, and feeds the
 * pymalloc model (pymodel.h: arenas, pools, size classes).  Snapshots are taken when the pass crosses the start of
 * the user's code (marker py_user_code), pymalloc's own statistics
 * (python.stats_seq), the atexit marker and the end.  GC runs come from
 * gc_events; list growth from the realloc chains of the pymem layer
 * (chains.h).
 */
#include "mt_analyzer.h"

#include "chains.h"
#include "cli.h"
#include "keymap.h"
#include "mt_error.h"
#include "mt_event.h"
#include "mt_util.h"
#include "pymodel.h"
#include "table.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define SYNOPSIS "[--pid PID] [--top N] [--csv --section NAME] DB"

void mt_usage_python(FILE *out)
{
    fprintf(out,
            "usage: memtrace python " SYNOPSIS "\n"
            "\n"
            "The CPython layers of a traced interpreter (recorded by `memtrace run` with\n"
            "--python=auto, the default), with this run's numbers:\n"
            "\n"
            "  layers     each layer of the allocator stack, from the object allocator\n"
            "             down to the OS: calls, bytes requested, live at exit, peak\n"
            "  libc       the Python-level requests that reached the C library, and why\n"
            "             (over 512 bytes, the raw domain, an allocator mode that maps\n"
            "             every domain to malloc), and the arenas pymalloc mapped\n"
            "  startup    bytes per layer, arenas, pools and resident memory when the\n"
            "             interpreter began the user's code (script, -c or -m)\n"
            "  retained   for pymalloc over time: arena bytes mapped, bytes in live\n"
            "             blocks, bytes free but kept inside arenas, bytes returned to the\n"
            "             OS; with the C library's live bytes and the OS's mapped bytes\n"
            "  pymalloc   the state rebuilt from the events against the interpreter's\n"
            "             own statistics (sys._debugmallocstats, sys.getallocatedblocks)\n"
            "             taken at atexit: arenas and used blocks per size class\n"
            "  gc         collections per generation (checked against gc.get_stats())\n"
            "  collections  each collection: generation, duration, collected, and the\n"
            "             object allocation that triggered it, with its stack\n"
            "  growth     the longest realloc chains of the PyMem layer (list arrays):\n"
            "             sizes step by step and the capacity in 8-byte slots\n"
            "\n"
            "Options:\n"
            "  --pid PID       the process to report (default: the first that ran Python)\n"
            "  --top N         collections and chains shown (default %d; 0: all)\n"
            "  --csv           RFC 4180 CSV of one section (needs --section)\n"
            "  --section NAME  with --csv: layers, libc, startup, retained, pymalloc, gc,\n"
            "                  collections or growth\n"
            "  -h, --help      this text\n"
            "\n"
            "Exit status: 0 done, 1 the trace cannot be read or holds no CPython\n"
            "interpreter, 2 usage error.\n"
            "\n"
            "Example:\n"
            "  memtrace -o py.db python3 script.py && memtrace python py.db\n",
            MT_CLI_DEFAULT_TOP);
}

/* ---- the interpreter's facts (the python table) ---- */

typedef struct {
    int64_t process, pid;
    char version[32], allocator[24];
    int64_t arena_size, pool_size, classes, small_max, frames, installs;
    int64_t threshold[3], before[3], after[3], callback_seq;
    int64_t stats_seq, allocated_blocks, arenas[4]; /* allocated, reclaimed, highwater, current */
    int64_t startup_rss;
    char note[256];
} pyinfo_t;

static void col_text(mt_stmt_t *st, int col, char *buf, size_t len)
{
    const char *t = mt_stmt_text(st, col);
    snprintf(buf, len, "%s", t ? t : "");
}

/* The python row of the process `pid` (-1: the first).  1: found. */
static int read_info(mt_db_t *db, int64_t pid, pyinfo_t *pi, int *rcp)
{
    mt_stmt_t *st;
    int rc = mt_stmt_prepare(db,
                             "SELECT y.process_id, p.pid, version, allocator, arena_size, pool_size, size_classes,"
                             " small_max, frames, installs, gc_threshold0, gc_threshold1, gc_threshold2,"
                             " gc_before0, gc_before1, gc_before2, gc_after0, gc_after1, gc_after2,"
                             " gc_callback_seq, stats_seq, allocated_blocks, arenas_allocated, arenas_reclaimed,"
                             " arenas_highwater, arenas_current, note, startup_rss"
                             " FROM python y JOIN processes p ON p.id = y.process_id"
                             " WHERE ?1 < 0 OR p.pid = ?1 ORDER BY y.process_id LIMIT 1",
                             &st);
    if (rc) {
        *rcp = rc;
        return 0;
    }
    mt_stmt_bind_int(st, 1, pid);
    int found = (rc = mt_stmt_step(st)) == 1;
    if (found) {
        pi->process = mt_stmt_int(st, 0);
        pi->pid = mt_stmt_int(st, 1);
        col_text(st, 2, pi->version, sizeof pi->version);
        col_text(st, 3, pi->allocator, sizeof pi->allocator);
        pi->arena_size = mt_stmt_int_or(st, 4, 0);
        pi->pool_size = mt_stmt_int_or(st, 5, 0);
        pi->classes = mt_stmt_int_or(st, 6, 0);
        pi->small_max = mt_stmt_int_or(st, 7, 0);
        pi->frames = mt_stmt_int_or(st, 8, 0);
        pi->installs = mt_stmt_int_or(st, 9, 0);
        for (int g = 0; g < 3; g++) {
            pi->threshold[g] = mt_stmt_int_or(st, 10 + g, -1);
            pi->before[g] = mt_stmt_int_or(st, 13 + g, -1);
            pi->after[g] = mt_stmt_int_or(st, 16 + g, -1);
        }
        pi->callback_seq = mt_stmt_int_or(st, 19, -1);
        pi->stats_seq = mt_stmt_int_or(st, 20, -1);
        pi->allocated_blocks = mt_stmt_int_or(st, 21, -1);
        for (int k = 0; k < 4; k++) pi->arenas[k] = mt_stmt_int_or(st, 22 + k, -1);
        col_text(st, 26, pi->note, sizeof pi->note);
        pi->startup_rss = mt_stmt_int_or(st, 27, -1);
    }
    mt_stmt_finalize(st);
    *rcp = rc < 0 ? rc : 0;
    return found;
}

/* ---- the model ---- */

#define NDOM MT_DOM_COUNT
#define MAX_CLASSES MT_PYMODEL_MAX_CLASSES

typedef struct {
    int64_t allocs, frees, requested, live_bytes, live_blocks, peak_bytes;
} layer_t;

typedef struct {
    int64_t seq, ts;
    int64_t live[NDOM], blocks[NDOM];
    int64_t arenas, arena_bytes, arena_freed_bytes, used_bytes, pools;
    int64_t arenas_total, arenas_freed, arenas_high;
    int64_t class_used[MAX_CLASSES], class_pools[MAX_CLASSES];
    int taken;
} snap_t;

enum { P_STARTUP, P_PEAK, P_STATS, P_ATEXIT, P_END, NPOINTS };
static const char *const point_names[NPOINTS] = {"user code starts", "Python heap peak", "pymalloc statistics",
                                                 "atexit", "end of trace"};

/* why a request reached the C library */
enum { R_OBJ_BIG, R_MEM_BIG, R_RAW, R_MEM_MALLOC, R_OBJ_MALLOC, R_ARENA, R_ARENA_OTHER, R_C, NREASONS };
static const char *const reason_names[NREASONS] = {
    "PyObject_* request over the small-object limit (-> PyMem_Raw* -> malloc)",
    "PyMem_* request over the small-object limit (-> PyMem_Raw* -> malloc)",
    "PyMem_Raw* called directly (-> malloc)",
    "PyMem_* served by malloc (allocator mode)",
    "PyObject_* served by malloc (allocator mode)",
    "new pymalloc arena (-> mmap)",
    "other arena-allocator request (frame data stacks)",
    "C code calling malloc directly (no Python domain around it)",
};

typedef struct {
    pyinfo_t *pi;
    mt_pymodel_t *py;          /* pymalloc (pymodel.h); NULL: the interpreter does not use it */
    layer_t layer[NDOM];
    mt_keymap_t blocks;        /* (domain, addr) -> block index + 1 */
    int64_t *bsize;
    uint32_t *bfree;           /* free indices */
    size_t nb, capb, nfree;
    int64_t reasons[NREASONS][2]; /* calls, bytes */
    int64_t py_peak;           /* max pymem + pyobj live bytes */
    snap_t pt[NPOINTS];
    int64_t point_seq[NPOINTS];
} model_t;

/* A new live block of domain `dom`. */
static int block_add(model_t *m, int dom, uint64_t addr, int64_t size)
{
    uint32_t ix;
    if (m->nfree) {
        ix = m->bfree[--m->nfree];
    } else {
        if (m->nb == m->capb) {
            size_t cap = m->capb ? 2 * m->capb : 4096;
            int64_t *s = realloc(m->bsize, cap * sizeof *s);
            if (!s) return MT_ENOMEM;
            m->bsize = s;
            uint32_t *f = realloc(m->bfree, cap * sizeof *f);
            if (!f) return MT_ENOMEM;
            m->bfree = f;
            m->capb = cap;
        }
        ix = (uint32_t)m->nb++;
    }
    int rc = mt_keymap_put(&m->blocks, dom, (int64_t)addr, ix + 1);
    if (rc) return rc;
    m->bsize[ix] = size;
    layer_t *l = &m->layer[dom];
    l->live_bytes += size;
    l->live_blocks++;
    if (l->live_bytes > l->peak_bytes) l->peak_bytes = l->live_bytes;
    return 0;
}

/* Ends the live block at addr. */
static void block_end(model_t *m, int dom, uint64_t addr)
{
    uint32_t v = mt_keymap_del(&m->blocks, dom, (int64_t)addr);
    if (!v) return; /* allocated before the wrappers went in */
    uint32_t ix = v - 1;
    layer_t *l = &m->layer[dom];
    l->live_bytes -= m->bsize[ix];
    l->live_blocks--;
    l->frees++;
    m->bfree[m->nfree++] = ix;
}

static void snapshot(model_t *m, int p, int64_t seq, int64_t ts)
{
    snap_t *s = &m->pt[p];
    s->taken = 1;
    s->seq = seq;
    s->ts = ts;
    for (int d = 0; d < NDOM; d++) {
        s->live[d] = m->layer[d].live_bytes;
        s->blocks[d] = m->layer[d].live_blocks;
    }
    mt_pymodel_totals_t t;
    memset(&t, 0, sizeof t);
    if (m->py) mt_pymodel_totals(m->py, &t);
    s->arenas = t.arenas;
    s->arenas_total = t.arenas_total;
    s->arenas_freed = t.arenas_freed;
    s->arenas_high = t.arenas_high;
    s->arena_bytes = t.arenas * m->pi->arena_size;
    s->arena_freed_bytes = t.arena_freed_bytes;
    s->used_bytes = t.used_bytes;
    s->pools = t.pools;
    memcpy(s->class_used, t.class_used, sizeof s->class_used);
    memcpy(s->class_pools, t.class_pools, sizeof s->class_pools);
}

static int reason_of_libc(int via)
{
    switch (via) {
    case MT_DOM_pymem: return R_MEM_MALLOC;
    case MT_DOM_pyobj: return R_OBJ_MALLOC;
    case 0: return R_C;
    default: return -1; /* inside a raw call (counted there) or an arena */
    }
}

static int feed(model_t *m, int kind, int via, uint64_t addr, int64_t size, uint64_t old, int failed)
{
    int dom = mt_kind_domain(kind);
    unsigned fl = mt_kind_flags(kind);
    if (dom < 0 || dom >= NDOM || failed || !(fl & (MT_KF_ALLOC | MT_KF_FREE))) return 0;
    int rc = 0;
    int alloc = (fl & MT_KF_ALLOC) != 0, resize = alloc && (fl & MT_KF_FREE);
    layer_t *l = &m->layer[dom];
    if (alloc) {
        l->allocs++;
        l->requested += size > 0 ? size : 0;
        int r = -1;
        if (dom == MT_DOM_libc) r = reason_of_libc(via);
        else if (dom == MT_DOM_pymem_raw) r = via == MT_DOM_pyobj ? R_OBJ_BIG : via == MT_DOM_pymem ? R_MEM_BIG : R_RAW;
        else if (dom == MT_DOM_pyarena) r = size == m->pi->arena_size ? R_ARENA : R_ARENA_OTHER;
        if (r >= 0) {
            m->reasons[r][0]++;
            m->reasons[r][1] += size > 0 ? size : 0;
        }
    }
    if (m->py && (rc = mt_pymodel_feed(m->py, kind, addr, size, old, failed))) return rc;
    /* mappings by start address (exact munmaps), blocks by address */
    if (fl & MT_KF_FREE) {
        uint64_t victim = resize ? old : addr;
        if (victim) block_end(m, dom, victim);
    }
    if (alloc && addr) rc = block_add(m, dom, addr, size);
    return rc;
}

/* The seq of a marker of the process (-1: none). */
static int marker_seq(mt_db_t *db, int64_t process, int kind, int64_t *out)
{
    mt_stmt_t *st;
    *out = -1;
    int rc = mt_stmt_prepare(db, "SELECT min(seq) FROM markers WHERE process_id = ? AND kind = ?", &st);
    if (rc) return rc;
    mt_stmt_bind_int(st, 1, process);
    mt_stmt_bind_int(st, 2, kind);
    if ((rc = mt_stmt_step(st)) == 1) *out = mt_stmt_int_or(st, 0, -1);
    mt_stmt_finalize(st);
    return rc < 0 ? rc : 0;
}

static int replay(mt_db_t *db, model_t *m, const char *progress)
{
    (void)progress;
    int64_t process = m->pi->process;
    mt_evread_t *r;
    int rc = mt_evread_open(db, "thread IN (SELECT id FROM threads WHERE process_id = ?)", &r);
    if (rc) return rc;
    mt_stmt_bind_int(mt_evread_stmt(r), 1, process);
    int64_t last_seq = 0, last_ts = 0;
    mt_db_event_t ev;
    while ((rc = mt_evread_next(r, &ev)) == 1) {
        int64_t seq = ev.seq, ts = ev.ts;
        for (int p = 0; p < NPOINTS; p++)
            if (p != P_PEAK && !m->pt[p].taken && m->point_seq[p] >= 0 && seq > m->point_seq[p])
                snapshot(m, p, m->point_seq[p], last_ts);
        /* (via: the domain, 0 also for none, as the column read with 0 for NULL) */
        rc = feed(m, ev.kind, ev.via ? ev.via - 1 : 0, ev.addr, ev.size > 0 ? ev.size : 0, ev.old_addr, ev.failed);
        if (rc) break;
        int64_t py = m->layer[MT_DOM_pymem].live_bytes + m->layer[MT_DOM_pyobj].live_bytes;
        if (py > m->py_peak) {
            m->py_peak = py;
            snapshot(m, P_PEAK, seq, ts);
        }
        last_seq = seq;
        last_ts = ts;
    }
    mt_evread_close(r);
    if (rc < 0) return rc;
    for (int p = 0; p < NPOINTS; p++)
        if (p != P_PEAK && !m->pt[p].taken && m->point_seq[p] >= 0) snapshot(m, p, m->point_seq[p], last_ts);
    snapshot(m, P_END, last_seq + 1, last_ts);
    return 0;
}

static void model_free(model_t *m)
{
    mt_keymap_free(&m->blocks);
    free(m->bsize);
    free(m->bfree);
    mt_pymodel_destroy(m->py);
}

/* ---- sections ---- */

enum { S_LAYERS, S_LIBC, S_STARTUP, S_RETAINED, S_PYMALLOC, S_GC, S_COLLECTIONS, S_GROWTH, NSECTIONS };
static const char *const section_names[NSECTIONS] = {"layers",   "libc", "startup",     "retained",
                                                     "pymalloc", "gc",   "collections", "growth"};

/* the seed's diagram, top to bottom */
static const struct {
    int dom, level;
    const char *what;
} diagram[] = {
    {MT_DOM_pyobj, 2, "object allocator (PyObject_*)"},
    {MT_DOM_pymem, 1, "memory domain (PyMem_*)"},
    {MT_DOM_pyarena, 2, "pymalloc arenas (arena allocator)"},
    {MT_DOM_pymem_raw, 1, "raw domain (PyMem_Raw*)"},
    {MT_DOM_libc, 0, "C library (malloc and friends)"},
    {MT_DOM_os, -1, "OS (mmap, munmap, mremap, brk)"},
};

typedef struct {
    mt_cli_t *c;
    mt_db_t *db;
    mt_stackfmt_t *sf;
    pyinfo_t *pi;
    model_t *m;
    int csv;
} ctx_t;

static int emit(ctx_t *x, mt_table_t *t, const char *title)
{
    if (x->csv) return mt_table_write(t, x->sf, 1, stdout, NULL);
    printf("\n%s\n\n", title);
    return mt_table_write(t, x->sf, 0, stdout, "  ");
}

static int sec_layers(ctx_t *x)
{
    static const mt_tcol_t cols[] = {
        {"level", "level", MT_TCOL_INT, 0, 0},        {"layer", "layer", MT_TCOL_TEXT, 0, 0},
        {"what", "what", MT_TCOL_TEXT, 0, 0},         {"allocations", "allocations", MT_TCOL_INT, 0, 0},
        {"frees", "frees", MT_TCOL_INT, 0, 0},        {"requested", "requested_bytes", MT_TCOL_BYTES, 0, 0},
        {"live at end", "live_bytes", MT_TCOL_BYTES, 0, 0}, {"peak", "peak_bytes", MT_TCOL_BYTES, 0, 0},
    };
    mt_table_t *t;
    int rc = mt_table_create(cols, 8, &t);
    for (size_t i = 0; !rc && i < sizeof diagram / sizeof diagram[0]; i++) {
        const layer_t *l = &x->m->layer[diagram[i].dom];
        if ((rc = mt_table_row(t))) break;
        mt_table_int(t, 0, diagram[i].level);
        mt_table_text(t, 1, mt_domain_name(diagram[i].dom));
        mt_table_text(t, 2, diagram[i].what);
        mt_table_int(t, 3, l->allocs);
        mt_table_int(t, 4, l->frees);
        mt_table_int(t, 5, l->requested);
        mt_table_int(t, 6, l->live_bytes);
        mt_table_int(t, 7, l->peak_bytes);
    }
    if (!rc)
        rc = emit(x, t,
                  "1. Layers (the allocator stack, top to bottom; a request passes down through\n"
                  "   every layer below the one it entered, so each layer counts its own calls)");
    mt_table_destroy(t);
    return rc;
}

static int sec_libc(ctx_t *x)
{
    static const mt_tcol_t cols[] = {
        {"why", "reason", MT_TCOL_TEXT, 0, 0},
        {"calls", "calls", MT_TCOL_INT, 0, 0},
        {"bytes", "bytes", MT_TCOL_BYTES, 0, 0},
    };
    mt_table_t *t;
    int rc = mt_table_create(cols, 3, &t);
    for (int r = 0; !rc && r < NREASONS; r++) {
        if ((rc = mt_table_row(t))) break;
        mt_table_text(t, 0, reason_names[r]);
        mt_table_int(t, 1, x->m->reasons[r][0]);
        mt_table_int(t, 2, x->m->reasons[r][1]);
    }
    if (!rc) rc = emit(x, t, "2. When the C library (or the OS) is called: allocations by reason");
    mt_table_destroy(t);
    return rc;
}

static int rss_at(mt_db_t *db, int64_t process, int64_t seq, int64_t *rss)
{
    mt_stmt_t *st;
    *rss = -1;
    int rc = mt_stmt_prepare(db,
                             "SELECT rss_bytes FROM rss_samples WHERE process_id = ? AND seq <= ?"
                             " ORDER BY seq DESC LIMIT 1",
                             &st);
    if (rc) return rc;
    mt_stmt_bind_int(st, 1, process);
    mt_stmt_bind_int(st, 2, seq);
    if ((rc = mt_stmt_step(st)) == 1) *rss = mt_stmt_int(st, 0);
    mt_stmt_finalize(st);
    return rc < 0 ? rc : 0;
}

static int sec_startup(ctx_t *x)
{
    const snap_t *s = &x->m->pt[P_STARTUP];
    if (!s->taken) {
        if (!x->csv) printf("\n3. Start-up footprint: the start of the user's code was not recorded\n");
        return 0;
    }
    static const mt_tcol_t cols[] = {
        {"layer", "layer", MT_TCOL_TEXT, 0, 0},
        {"live bytes", "live_bytes", MT_TCOL_BYTES, 0, 0},
        {"live blocks", "live_blocks", MT_TCOL_INT, 0, 0},
    };
    mt_table_t *t;
    int rc = mt_table_create(cols, 3, &t);
    for (size_t i = 0; !rc && i < sizeof diagram / sizeof diagram[0]; i++) {
        if ((rc = mt_table_row(t))) break;
        mt_table_text(t, 0, mt_domain_name(diagram[i].dom));
        mt_table_int(t, 1, s->live[diagram[i].dom]);
        mt_table_int(t, 2, s->blocks[diagram[i].dom]);
    }
    int64_t rss = x->pi->startup_rss; /* read by the target at that moment */
    if (!rc && rss < 0) rc = rss_at(x->db, x->pi->process, s->seq, &rss);
    if (!rc) {
        char a[32], b[32], r[32], title[256];
        snprintf(title, sizeof title,
                 "3. Start-up footprint: when the interpreter began the user's code (seq %" PRId64 ", %s)\n"
                 "   pymalloc: %" PRId64 " arena%s (%s), %" PRId64 " pool%s in use; resident memory %s",
                 s->seq, mt_fmt_ns(a, sizeof a, s->ts), s->arenas, mt_cli_plural(s->arenas),
                 mt_fmt_bytes(b, sizeof b, (double)s->arena_bytes), s->pools, mt_cli_plural(s->pools),
                 rss >= 0 ? mt_fmt_bytes(r, sizeof r, (double)rss) : "not sampled");
        rc = emit(x, t, title);
    }
    mt_table_destroy(t);
    return rc;
}

static int sec_retained(ctx_t *x)
{
    static const mt_tcol_t cols[] = {
        {"moment", "moment", MT_TCOL_TEXT, 0, 0},
        {"seq", "seq", MT_TCOL_ID, 0, 0},
        {"arenas", "arenas", MT_TCOL_INT, 0, 0},
        {"arena bytes", "arena_bytes", MT_TCOL_BYTES, 0, 0},
        {"in blocks", "block_bytes", MT_TCOL_BYTES, 0, 0},
        {"free, kept", "free_kept_bytes", MT_TCOL_BYTES, 0, 0},
        {"returned to OS", "returned_bytes", MT_TCOL_BYTES, 0, 0},
        {"libc live", "libc_live_bytes", MT_TCOL_BYTES, 0, 0},
        {"OS mapped", "os_mapped_bytes", MT_TCOL_BYTES, 0, 0},
    };
    mt_table_t *t;
    int rc = mt_table_create(cols, 9, &t);
    for (int p = 0; !rc && p < NPOINTS; p++) {
        const snap_t *s = &x->m->pt[p];
        if (!s->taken || p == P_STATS) continue;
        if ((rc = mt_table_row(t))) break;
        mt_table_text(t, 0, point_names[p]);
        mt_table_int(t, 1, s->seq);
        mt_table_int(t, 2, s->arenas);
        mt_table_int(t, 3, s->arena_bytes);
        mt_table_int(t, 4, s->used_bytes);
        mt_table_int(t, 5, s->arena_bytes - s->used_bytes);
        mt_table_int(t, 6, s->arena_freed_bytes);
        mt_table_int(t, 7, s->live[MT_DOM_libc]);
        mt_table_int(t, 8, s->live[MT_DOM_os]);
    }
    if (!rc)
        rc = emit(x, t,
                  "4. What happens to freed memory: pymalloc keeps freed blocks in its pools and\n"
                  "   arenas (free, kept) and returns only whole empty arenas to the OS");
    mt_table_destroy(t);
    return rc;
}

static int sec_pymalloc(ctx_t *x)
{
    const pyinfo_t *pi = x->pi;
    const snap_t *s = &x->m->pt[P_STATS];
    if (!s->taken || pi->stats_seq < 0) {
        if (!x->csv) printf("\n   pymalloc check: the interpreter's statistics were not recorded (no atexit)\n");
        return 0;
    }
    static const mt_tcol_t cols[] = {
        {"figure", "figure", MT_TCOL_TEXT, 0, 0},
        {"from events", "from_events", MT_TCOL_INT, 0, 0},
        {"interpreter", "interpreter", MT_TCOL_INT, 0, 0},
        {"", "match", MT_TCOL_TEXT, 0, 0},
    };
    mt_table_t *t;
    int rc = mt_table_create(cols, 4, &t);
    /* sys.getallocatedblocks() counts pymalloc's blocks and the object and
     * memory blocks it passed on to the raw domain: every live block of the
     * two domains */
    int64_t total = s->blocks[MT_DOM_pyobj] + s->blocks[MT_DOM_pymem];
    const struct {
        const char *name;
        int64_t mine, theirs;
    } rows[] = {
        {"arenas allocated in all", s->arenas_total, pi->arenas[0]},
        {"arenas reclaimed", s->arenas_freed, pi->arenas[1]},
        {"arenas at most", s->arenas_high, pi->arenas[2]},
        {"arenas now", s->arenas, pi->arenas[3]},
        {"blocks in use (sys.getallocatedblocks)", total, pi->allocated_blocks},
    };
    for (size_t i = 0; !rc && i < sizeof rows / sizeof rows[0]; i++) {
        if ((rc = mt_table_row(t))) break;
        mt_table_text(t, 0, rows[i].name);
        mt_table_int(t, 1, rows[i].mine);
        if (rows[i].theirs >= 0) mt_table_int(t, 2, rows[i].theirs);
        mt_table_text(t, 3, rows[i].theirs < 0 ? "" : rows[i].mine == rows[i].theirs ? "yes" : "NO");
    }
    /* per class, from pymalloc_stats */
    mt_stmt_t *st = NULL;
    if (!rc)
        rc = mt_stmt_prepare(x->db, "SELECT size_class, pools, blocks_used FROM pymalloc_stats WHERE process_id = ?",
                             &st);
    int64_t theirs_used[MAX_CLASSES] = {0}, theirs_pools[MAX_CLASSES] = {0};
    if (!rc) {
        mt_stmt_bind_int(st, 1, pi->process);
        while ((rc = mt_stmt_step(st)) == 1) {
            int64_t k = mt_stmt_int(st, 0);
            if (k < 0 || k >= MAX_CLASSES) continue;
            theirs_pools[k] = mt_stmt_int(st, 1);
            theirs_used[k] = mt_stmt_int(st, 2);
        }
        mt_stmt_finalize(st);
        rc = rc < 0 ? rc : 0;
    }
    for (int k = 0; !rc && x->m->py && k < MAX_CLASSES && k < pi->classes; k++) {
        if (!s->class_used[k] && !theirs_used[k] && !s->class_pools[k] && !theirs_pools[k]) continue;
        char name[64];
        if ((rc = mt_table_row(t))) break;
        snprintf(name, sizeof name, "class %d (%d bytes): blocks used", k, (int)mt_pymodel_block_size(x->m->py, k));
        mt_table_text(t, 0, name);
        mt_table_int(t, 1, s->class_used[k]);
        mt_table_int(t, 2, theirs_used[k]);
        mt_table_text(t, 3, s->class_used[k] == theirs_used[k] ? "yes" : "NO");
        if ((rc = mt_table_row(t))) break;
        snprintf(name, sizeof name, "class %d (%d bytes): pools", k, (int)mt_pymodel_block_size(x->m->py, k));
        mt_table_text(t, 0, name);
        mt_table_int(t, 1, s->class_pools[k]);
        mt_table_int(t, 2, theirs_pools[k]);
        mt_table_text(t, 3, s->class_pools[k] == theirs_pools[k] ? "yes" : "NO");
    }
    if (!rc) {
        char title[160];
        snprintf(title, sizeof title,
                 "   pymalloc rebuilt from the events vs the interpreter's own statistics (seq %" PRId64 ")",
                 pi->stats_seq);
        rc = emit(x, t, title);
    }
    mt_table_destroy(t);
    return rc;
}

static int sec_gc(ctx_t *x)
{
    const pyinfo_t *pi = x->pi;
    static const mt_tcol_t cols[] = {
        {"generation", "generation", MT_TCOL_INT, 0, 0},
        {"until atexit", "until_atexit", MT_TCOL_INT, 0, 0},
        {"after", "after_atexit", MT_TCOL_INT, 0, 0},
        {"gc.get_stats() delta", "interpreter_delta", MT_TCOL_INT, 0, 0},
        {"collected", "collected", MT_TCOL_INT, 0, 0},
        {"uncollectable", "uncollectable", MT_TCOL_INT, 0, 0},
        {"time ms", "duration_ns", MT_TCOL_INT, 0, 0},
        {"before the callback", "before_callback", MT_TCOL_INT, 0, 0},
    };
    mt_stmt_t *st;
    /* collections up to atexit are the ones gc_after counts */
    int rc = mt_stmt_prepare(x->db,
                             "SELECT generation, sum(?2 < 0 OR start_seq < ?2), sum(?2 >= 0 AND start_seq > ?2),"
                             " sum(collected), sum(uncollectable), sum(stop_ts - start_ts)"
                             " FROM gc_events WHERE process_id = ?1 GROUP BY generation",
                             &st);
    if (rc) return rc;
    int64_t at_exit = x->m->point_seq[P_ATEXIT];
    mt_stmt_bind_int(st, 1, pi->process);
    mt_stmt_bind_int(st, 2, at_exit);
    int64_t v[3][5] = {{0}};
    while ((rc = mt_stmt_step(st)) == 1) {
        int64_t g = mt_stmt_int(st, 0);
        if (g < 0 || g > 2) continue;
        for (int k = 0; k < 5; k++) v[g][k] = mt_stmt_int_or(st, k + 1, 0);
    }
    /* columns: until atexit, after, collected, uncollectable, ns */
    mt_stmt_finalize(st);
    if (rc < 0) return rc;
    mt_table_t *t;
    rc = mt_table_create(cols, 8, &t);
    for (int g = 0; !rc && g < 3; g++) {
        if ((rc = mt_table_row(t))) break;
        mt_table_int(t, 0, g);
        mt_table_int(t, 1, v[g][0]);
        mt_table_int(t, 2, v[g][1]);
        if (pi->before[g] >= 0 && pi->after[g] >= 0) mt_table_int(t, 3, pi->after[g] - pi->before[g]);
        mt_table_int(t, 4, v[g][2]);
        mt_table_int(t, 5, v[g][3]);
        mt_table_int(t, 6, x->csv ? v[g][4] : v[g][4] / 1000000);
        if (pi->before[g] >= 0) mt_table_int(t, 7, pi->before[g]);
    }
    if (!rc) {
        char title[320];
        snprintf(title, sizeof title,
                 "5. When the garbage collector ran (thresholds %" PRId64 "/%" PRId64 "/%" PRId64
                 "): collections recorded until atexit\n"
                 "   and after it (at finalisation), gc.get_stats()'s count over the same span, and\n"
                 "   the collections before memtrace's callback went in",
                 pi->threshold[0], pi->threshold[1], pi->threshold[2]);
        rc = emit(x, t, title);
    }
    mt_table_destroy(t);
    return rc;
}

static int sec_collections(ctx_t *x)
{
    static const mt_tcol_t cols[] = {
        {"#", "rank", MT_TCOL_INT, 0, 0},
        {"gen", "generation", MT_TCOL_INT, 0, 0},
        {"start seq", "start_seq", MT_TCOL_ID, 0, 0},
        {"us", "duration_ns", MT_TCOL_INT, 0, 0},
        {"collected", "collected", MT_TCOL_INT, 0, 0},
        {"trigger", "trigger_kind", MT_TCOL_TEXT, 0, 0},
        {"size", "trigger_size", MT_TCOL_INT, 0, 0},
        {"triggered by the allocation at", "stack_id,frames", MT_TCOL_STACK, 0, 0},
    };
    mt_stmt_t *st;
    int rc = mt_stmt_prepare(x->db,
                             "SELECT g.generation, g.start_seq, g.stop_ts - g.start_ts, g.collected, k.name, e.size,"
                             " e.stack FROM gc_events g LEFT JOIN event_data e ON e.seq = g.trigger_seq"
                             " LEFT JOIN event_kinds k ON k.id = e.kind"
                             " WHERE g.process_id = ? ORDER BY g.start_seq",
                             &st);
    if (rc) return rc;
    mt_stmt_bind_int(st, 1, x->pi->process);
    mt_table_t *t;
    rc = mt_table_create(cols, 8, &t);
    int64_t n = 0;
    while (!rc && (rc = mt_stmt_step(st)) == 1) {
        n++;
        rc = 0;
        if (x->c->top && n > x->c->top) continue;
        if ((rc = mt_table_row(t))) break;
        mt_table_int(t, 0, n);
        mt_table_int(t, 1, mt_stmt_int(st, 0));
        mt_table_int(t, 2, mt_stmt_int(st, 1));
        mt_table_int(t, 3, x->csv ? mt_stmt_int(st, 2) : mt_stmt_int(st, 2) / 1000);
        mt_table_int(t, 4, mt_stmt_int(st, 3));
        const char *k = mt_stmt_text(st, 4);
        if (k) mt_table_text(t, 5, k);
        if (mt_stmt_column_type(st, 5) != MT_COL_NULL) mt_table_int(t, 6, mt_stmt_int(st, 5));
        if (mt_stmt_column_type(st, 6) != MT_COL_NULL) mt_table_int(t, 7, mt_stmt_int(st, 6));
        rc = 0;
    }
    mt_stmt_finalize(st);
    if (rc < 0) {
        mt_table_destroy(t);
        return rc;
    }
    if (!x->csv) {
        printf("\n   The collections, in order");
        if (x->c->top && n > x->c->top) printf(" (first %" PRId64 " of %" PRId64 ")", x->c->top, n);
        printf(": a collection starts when an object allocation pushes generation 0 over\n"
               "   its threshold; that allocation is the trigger\n\n");
        rc = n ? mt_table_write(t, x->sf, 0, stdout, "  ") : (printf("  none recorded\n"), 0);
    } else {
        rc = mt_table_write(t, x->sf, 1, stdout, NULL);
    }
    mt_table_destroy(t);
    return rc;
}

/* The sizes of the chain that starts at first_seq in the pymem layer, one
 * per step, into *out (malloc'ed). */
static int chain_sizes(mt_db_t *db, int64_t process, int64_t first_seq, int64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    mt_evread_t *r;
    int rc = mt_evread_open(db,
                            "seq >= ? AND kind IN (?, ?, ?, ?) AND thread IN (SELECT id FROM threads WHERE process_id = ?)",
                            &r);
    if (rc) return rc;
    mt_stmt_t *st = mt_evread_stmt(r);
    mt_stmt_bind_int(st, 1, first_seq);
    mt_stmt_bind_int(st, 2, MT_EV_mem_malloc);
    mt_stmt_bind_int(st, 3, MT_EV_mem_calloc);
    mt_stmt_bind_int(st, 4, MT_EV_mem_realloc);
    mt_stmt_bind_int(st, 5, MT_EV_mem_free);
    mt_stmt_bind_int(st, 6, process);
    size_t cap = 0;
    int64_t cur = 0;
    mt_db_event_t ev;
    while ((rc = mt_evread_next(r, &ev)) == 1) {
        int kind = ev.kind;
        int64_t addr = (int64_t)ev.addr, old = (int64_t)ev.old_addr, size = ev.size > 0 ? ev.size : 0;
        int follows = *n == 0 || (kind == MT_EV_mem_realloc && old == cur);
        if (*n && kind == MT_EV_mem_free && addr == cur) break;
        if (!follows) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            int64_t *p = realloc(*out, cap * sizeof *p);
            if (!p) {
                rc = MT_ENOMEM;
                break;
            }
            *out = p;
        }
        (*out)[(*n)++] = size;
        cur = addr;
        if (!addr) break;
    }
    mt_evread_close(r);
    return rc < 0 ? rc : 0;
}

static int sec_growth(ctx_t *x)
{
    mt_chains_t *ch = NULL;
    mt_heap_stats_t hs;
    size_t keep = x->c->top ? (size_t)x->c->top : 3;
    int rc = mt_chains_replay(x->db, NULL, MT_DOM_pymem, keep, &ch, &hs);
    mt_chain_t *v = NULL;
    size_t n = 0;
    if (!rc) rc = mt_chains_longest(ch, &v, &n);
    static const mt_tcol_t cols[] = {
        {"chain", "chain", MT_TCOL_INT, 0, 0},
        {"step", "step", MT_TCOL_INT, 0, 0},
        {"bytes", "bytes", MT_TCOL_INT, 0, 0},
        {"8-byte slots", "slots", MT_TCOL_INT, 0, 0},
        {"factor", "factor", MT_TCOL_REAL, 2, 0},
        {"allocated at", "stack_id,frames", MT_TCOL_STACK, 0, MT_TCOL_ONLY_CSV},
    };
    mt_table_t *t = NULL;
    if (!rc) rc = mt_table_create(cols, 6, &t);
    if (!rc && !x->csv)
        printf("\n6. How containers grew: the longest realloc chains of the PyMem layer (a list's\n"
               "   item array is one; `memtrace growth --layer pymem` shows them by call site)\n");
    for (size_t i = 0; !rc && i < n && (x->c->top == 0 || i < (size_t)x->c->top) && i < keep; i++) {
        if (v[i].process != x->pi->process) continue;
        int64_t *sz = NULL;
        size_t ns = 0;
        if ((rc = chain_sizes(x->db, x->pi->process, v[i].first_seq, &sz, &ns))) break;
        for (size_t k = 0; !rc && k < ns; k++) {
            if ((rc = mt_table_row(t))) break;
            mt_table_int(t, 0, (int64_t)i + 1);
            mt_table_int(t, 1, (int64_t)k);
            mt_table_int(t, 2, sz[k]);
            mt_table_int(t, 3, sz[k] / 8);
            if (k > 0 && sz[k - 1] > 0) mt_table_real(t, 4, (double)sz[k] / (double)sz[k - 1]);
            mt_table_int(t, 5, v[i].site);
        }
        if (!rc && !x->csv) {
            printf("\n  chain %zu: %zu sizes, %" PRId64 " moves, %s copied; slots:", i + 1, ns, v[i].moves,
                   mt_cli_bytes((char[64]){0}, 64, v[i].copied));
            for (size_t k = 0; k < ns && k < 40; k++) printf("%s%" PRId64, k ? ", " : " ", sz[k] / 8);
            if (ns > 40) printf(", ...");
            printf("\n  allocated at:\n");
            rc = mt_stackfmt_print(x->sf, v[i].site, 6, stdout, "    ");
        }
        free(sz);
    }
    if (!rc && x->csv) rc = mt_table_write(t, x->sf, 1, stdout, NULL);
    mt_table_destroy(t);
    free(v);
    mt_chains_destroy(ch);
    return rc;
}

static void header(const ctx_t *x)
{
    const pyinfo_t *pi = x->pi;
    char a[32], b[32];
    printf("CPython %s in process %" PRId64 " of %s: allocator %s", pi->version[0] ? pi->version : "(unknown version)",
           pi->pid, x->c->path, pi->allocator[0] ? pi->allocator : "custom");
    if (pi->arena_size)
        printf(", arenas of %s, pools of %s, %" PRId64 " size classes up to %" PRId64 " bytes",
               mt_fmt_bytes(a, sizeof a, (double)pi->arena_size), mt_fmt_bytes(b, sizeof b, (double)pi->pool_size),
               pi->classes, pi->small_max);
    printf("\nPython frames in stacks: %s; domain wrappers installed %" PRId64 " time%s%s\n",
           pi->frames ? "yes" : "no", pi->installs, mt_cli_plural(pi->installs),
           pi->installs > 1 ? " (again after pre-initialisation replaced them)" : "");
    if (pi->note[0]) printf("not captured: %s\n", pi->note);
}

int mt_cmd_python(int argc, char **argv)
{
    const char *pid_s = NULL, *section_s = NULL;
    const mt_cli_opt_t opts[] = {
        {"--pid", NULL, 1, &pid_s},
        {"--section", NULL, 1, &section_s},
    };
    mt_cli_t c = {.cmd = "python", .synopsis = SYNOPSIS, .usage = mt_usage_python, .has_top = 1, .has_csv = 1,
                  .top = MT_CLI_DEFAULT_TOP};
    int status = mt_cli_parse(&c, argc, argv, opts, 2);
    if (status >= 0) return status;
    int64_t pid = -1;
    if (pid_s && mt_cli_int(pid_s, 1, INT32_MAX, &pid)) return mt_cli_usage_error(&c, "--pid wants a pid, not '%s'", pid_s);
    int section = -1;
    for (int s = 0; section_s && s < NSECTIONS; s++)
        if (!strcmp(section_s, section_names[s])) section = s;
    if (section_s && section < 0)
        return mt_cli_usage_error(&c, "unknown --section '%s' (layers, libc, startup, retained, pymalloc, gc, "
                                      "collections, growth)", section_s);
    if (c.csv && section < 0) return mt_cli_usage_error(&c, "%s", "--csv needs --section NAME (one table)");
    status = 1;

    mt_db_t *db = NULL;
    mt_stackfmt_t *sf = NULL;
    pyinfo_t pi;
    model_t m;
    memset(&pi, 0, sizeof pi);
    memset(&m, 0, sizeof m);
    int rc = 0;
    if (mt_cli_open(&c, &db)) goto out;
    if (!read_info(db, pid, &pi, &rc)) {
        if (rc) goto fail;
        if (pid >= 0) fprintf(stderr, "memtrace python: process %" PRId64 " of %s ran no CPython interpreter\n", pid, c.path);
        else fprintf(stderr, "memtrace python: %s holds no CPython interpreter (no process ran one, or it was "
                             "recorded with --python=off)\n", c.path);
        goto out;
    }
    m.pi = &pi;
    if (pi.arena_size > 0) {
        mt_pymodel_geom_t g = {.arena_size = pi.arena_size, .pool_size = pi.pool_size, .classes = pi.classes};
        snprintf(g.allocator, sizeof g.allocator, "%s", pi.allocator);
        if ((rc = mt_pymodel_create(&g, pi.process, &m.py)) && rc != MT_EINVAL) goto fail;
        rc = 0; /* a geometry that is not pymalloc's: no pymalloc model */
    }
    m.point_seq[P_PEAK] = -1;
    m.point_seq[P_END] = -1;
    m.point_seq[P_STATS] = pi.stats_seq;
    if ((rc = marker_seq(db, pi.process, MT_MK_py_user_code, &m.point_seq[P_STARTUP]))) goto fail;
    if ((rc = marker_seq(db, pi.process, MT_MK_py_atexit, &m.point_seq[P_ATEXIT]))) goto fail;
    if ((rc = replay(db, &m, c.progress))) goto fail;
    if ((rc = mt_stackfmt_open(db, &sf))) goto fail;

    ctx_t x = {&c, db, sf, &pi, &m, c.csv};
    int (*const fns[NSECTIONS])(ctx_t *) = {sec_layers, sec_libc,     sec_startup,    sec_retained,
                                            sec_pymalloc, sec_gc,     sec_collections, sec_growth};
    if (!c.csv) header(&x);
    for (int s = 0; s < NSECTIONS && !rc; s++)
        if (section < 0 || section == s) rc = fns[s](&x);
    if (rc) goto fail;
    status = mt_cli_flush(&c, stdout);
    goto out;
fail:
    mt_cli_fail(&c, db, rc);
out:
    model_free(&m);
    mt_stackfmt_close(sf);
    mt_db_close(db);
    mt_cli_free(&c);
    return status;
}

/* ---- memtrace gc ---- */

#define GC_SYNOPSIS "[--pid PID] [--top N] [--csv] DB"

void mt_usage_gc(FILE *out)
{
    fprintf(out,
            "usage: memtrace gc " GC_SYNOPSIS "\n"
            "\n"
            "The garbage collections of a traced CPython interpreter, in order: generation,\n"
            "start (seq), duration, objects collected, and the allocation that triggered\n"
            "it (the last object allocation of the collecting thread before the start:\n"
            "the one that pushed generation 0 over its threshold), with its Python and C\n"
            "stack.  Text output begins with the counts per generation, checked against\n"
            "gc.get_stats() (see `memtrace python`).\n"
            "\n"
            "Options:\n"
            "  --pid PID   the process (default: the first that ran Python)\n"
            "  --top N     the first N collections (default %d; 0: all)\n"
            "  --csv       RFC 4180 CSV of the collections: rank,generation,start_seq,\n"
            "              duration_ns,collected,trigger_kind,trigger_size,stack_id,frames\n"
            "  -h, --help  this text\n"
            "\n"
            "Exit status: 0 done, 1 the trace cannot be read or holds no CPython\n"
            "interpreter, 2 usage error.\n",
            MT_CLI_DEFAULT_TOP);
}

int mt_cmd_gc(int argc, char **argv)
{
    const char *pid_s = NULL;
    const mt_cli_opt_t opts[] = {{"--pid", NULL, 1, &pid_s}};
    mt_cli_t c = {.cmd = "gc", .synopsis = GC_SYNOPSIS, .usage = mt_usage_gc, .has_top = 1, .has_csv = 1,
                  .top = MT_CLI_DEFAULT_TOP};
    int status = mt_cli_parse(&c, argc, argv, opts, 1);
    if (status >= 0) return status;
    int64_t pid = -1;
    if (pid_s && mt_cli_int(pid_s, 1, INT32_MAX, &pid)) return mt_cli_usage_error(&c, "--pid wants a pid, not '%s'", pid_s);
    status = 1;
    mt_db_t *db = NULL;
    mt_stackfmt_t *sf = NULL;
    pyinfo_t pi;
    model_t m;
    memset(&pi, 0, sizeof pi);
    memset(&m, 0, sizeof m);
    int rc = 0;
    if (mt_cli_open(&c, &db)) goto out;
    if (!read_info(db, pid, &pi, &rc)) {
        if (rc) goto fail;
        fprintf(stderr, "memtrace gc: %s holds no CPython interpreter%s: no garbage collections were recorded\n",
                c.path, pid >= 0 ? " in that process" : "");
        goto out;
    }
    m.pi = &pi;
    if ((rc = marker_seq(db, pi.process, MT_MK_py_atexit, &m.point_seq[P_ATEXIT]))) goto fail;
    if ((rc = mt_stackfmt_open(db, &sf))) goto fail;
    ctx_t x = {&c, db, sf, &pi, &m, c.csv};
    if (!c.csv) {
        printf("garbage collections of CPython %s, pid %" PRId64 ", in %s\n", pi.version, pi.pid, c.path);
        rc = sec_gc(&x);
    }
    if (!rc) rc = sec_collections(&x);
    if (rc) goto fail;
    status = mt_cli_flush(&c, stdout);
    goto out;
fail:
    mt_cli_fail(&c, db, rc);
out:
    mt_stackfmt_close(sf);
    mt_db_close(db);
    mt_cli_free(&c);
    return status;
}
