/* report_model.c - the tables of `memtrace report` (contract and the
 * reading plan in report_model.h).
 */
#include "report_model.h"

#include "chains.h"
#include "keymap.h"
#include "layout_model.h"
#include "mt_error.h"
#include "mt_event.h"
#include "pymodel.h"
#include "sites.h"
#include "views.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *const table_names[MT_RT_COUNT] = {
#define X(name, what) #name,
    MT_REPORT_TABLES(X)
#undef X
};
static const char *const table_whats[MT_RT_COUNT] = {
#define X(name, what) what,
    MT_REPORT_TABLES(X)
#undef X
};

const char *mt_report_table_name(int i) { return i >= 0 && i < MT_RT_COUNT ? table_names[i] : NULL; }
const char *mt_report_table_what(int i) { return i >= 0 && i < MT_RT_COUNT ? table_whats[i] : NULL; }

/* ---- columns of the tables that are not views ---------------------------- */

enum { SU_KEY, SU_VALUE, SU_N };
static const mt_tcol_t summary_cols[SU_N] = {
    [SU_KEY] = {"key", "key", MT_TCOL_TEXT, 0, 0},
    [SU_VALUE] = {"value", "value", MT_TCOL_TEXT, 0, 0},
};

enum { LA_LAYER, LA_DOMAIN, LA_DESC, LA_CALLS, LA_FAILED, LA_BYTES, LA_N };
static const mt_tcol_t layer_cols[LA_N] = {
    [LA_LAYER] = {"layer", "layer", MT_TCOL_ID, 0, 0},
    [LA_DOMAIN] = {"domain", "domain", MT_TCOL_TEXT, 0, 0},
    [LA_DESC] = {"what", "description", MT_TCOL_TEXT, 0, 0},
    [LA_CALLS] = {"calls", "calls", MT_TCOL_INT, 0, 0},
    [LA_FAILED] = {"failed", "failed", MT_TCOL_INT, 0, 0},
    [LA_BYTES] = {"bytes", "bytes_requested", MT_TCOL_BYTES, 0, 0},
};

enum { FL_NODE, FL_PARENT, FL_DEPTH, FL_NAME, FL_CALLS, FL_BYTES, FL_PEAK, FL_LEAKED, FL_N };
static const mt_tcol_t flame_cols[FL_N] = {
    [FL_NODE] = {"node", "node", MT_TCOL_ID, 0, 0},
    [FL_PARENT] = {"parent", "parent", MT_TCOL_ID, 0, 0},
    [FL_DEPTH] = {"depth", "depth", MT_TCOL_INT, 0, 0},
    [FL_NAME] = {"function", "function", MT_TCOL_TEXT, 0, 0},
    [FL_CALLS] = {"calls", "calls", MT_TCOL_INT, 0, 0},
    [FL_BYTES] = {"bytes", "bytes", MT_TCOL_BYTES, 0, 0},
    [FL_PEAK] = {"at peak", "peak_bytes", MT_TCOL_BYTES, 0, 0},
    [FL_LEAKED] = {"leaked", "leaked_bytes", MT_TCOL_BYTES, 0, 0},
};

enum { LO_SNAP, LO_TIME, LO_TS, LO_ALLOC, LO_PROC, LO_PID, LO_ARENA, LO_POOLS, LO_USED, LO_FULL, LO_EMPTY,
       LO_BLOCKS, LO_BYTES, LO_N };
static const mt_tcol_t layout_cols[LO_N] = {
    [LO_SNAP] = {"moment", "moment", MT_TCOL_INT, 0, 0},
    [LO_TIME] = {"time (ms)", "time_ms", MT_TCOL_REAL, 3, 0},
    [LO_TS] = {"ts", "ts_ns", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [LO_ALLOC] = {"allocator", "allocator", MT_TCOL_TEXT, 0, 0},
    [LO_PROC] = {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [LO_PID] = {"pid", "pid", MT_TCOL_ID, 0, 0},
    [LO_ARENA] = {"arena", "arena", MT_TCOL_ADDR, 0, 0},
    [LO_POOLS] = {"pools", "pools", MT_TCOL_TEXT, 0, 0},
    [LO_USED] = {"used", "pools_used", MT_TCOL_INT, 0, 0},
    [LO_FULL] = {"full", "pools_full", MT_TCOL_INT, 0, 0},
    [LO_EMPTY] = {"empty", "pools_empty", MT_TCOL_INT, 0, 0},
    [LO_BLOCKS] = {"blocks", "blocks_used", MT_TCOL_INT, 0, 0},
    [LO_BYTES] = {"in use", "bytes_in_use", MT_TCOL_BYTES, 0, 0},
};

/* Tables read by one query each: one column per result column, in order. */
static const mt_tcol_t process_cols[] = {
    {"process", "process_id", MT_TCOL_ID, 0, 0},  {"pid", "pid", MT_TCOL_ID, 0, 0},
    {"ppid", "ppid", MT_TCOL_ID, 0, 0},           {"parent", "parent_id", MT_TCOL_ID, 0, 0},
    {"exec of", "exec_of", MT_TCOL_ID, 0, 0},     {"threads", "threads", MT_TCOL_INT, 0, 0},
    {"start (ms)", "start_ms", MT_TCOL_REAL, 3, 0}, {"end (ms)", "end_ms", MT_TCOL_REAL, 3, 0},
    {"exit", "exit_status", MT_TCOL_ID, 0, 0},    {"signal", "exit_signal", MT_TCOL_ID, 0, 0},
    {"complete", "complete", MT_TCOL_INT, 0, 0},  {"lost", "lost_events", MT_TCOL_INT, 0, 0},
    {"exe", "exe", MT_TCOL_TEXT, 0, 0},           {"command line", "cmdline", MT_TCOL_TEXT, 0, 0},
};
static const char process_sql[] =
    "SELECT p.id, p.pid, p.ppid, p.parent_id, p.exec_of,"
    " (SELECT count(*) FROM threads t WHERE t.process_id = p.id),"
    " p.start_ts / 1e6, p.end_ts / 1e6, p.exit_status, p.exit_signal, p.complete, p.lost_events,"
    " p.exe, p.cmdline FROM processes p ORDER BY p.id";

static const mt_tcol_t marker_cols[] = {
    {"time (ms)", "time_ms", MT_TCOL_REAL, 3, 0}, {"ts", "ts_ns", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    {"seq", "seq", MT_TCOL_ID, 0, 0},             {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    {"pid", "pid", MT_TCOL_ID, 0, 0},             {"marker", "kind", MT_TCOL_TEXT, 0, 0},
    {"value", "value", MT_TCOL_ID, 0, 0},
};
/* Thread starts are left out: one per thread, they would drown the rest.
 * Each garbage collection is a marker `gc` too (value: its generation), so
 * that the chart can mark every one while the gc table is cut to --top. */
static const char marker_sql[] =
    "SELECT t / 1e6, t, seq, process_id, pid, kind, value FROM ("
    " SELECT m.ts AS t, m.seq, m.process_id, p.pid, k.name AS kind, m.value"
    " FROM markers m JOIN marker_kinds k ON k.id = m.kind LEFT JOIN processes p ON p.id = m.process_id"
    " WHERE k.name != 'thread_start'"
    " UNION ALL SELECT g.start_ts, g.start_seq, g.process_id, p.pid, 'gc', g.generation"
    " FROM gc_events g LEFT JOIN processes p ON p.id = g.process_id)"
    " ORDER BY seq, t, kind, process_id";

static const mt_tcol_t gc_cols[] = {
    {"#", "run", MT_TCOL_INT, 0, 0},               {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    {"pid", "pid", MT_TCOL_ID, 0, 0},              {"generation", "generation", MT_TCOL_INT, 0, 0},
    {"start (ms)", "start_ms", MT_TCOL_REAL, 3, 0}, {"ts", "start_ts_ns", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    {"duration (ns)", "duration_ns", MT_TCOL_INT, 0, 0}, {"collected", "collected", MT_TCOL_INT, 0, 0},
    {"uncollectable", "uncollectable", MT_TCOL_INT, 0, 0}, {"trigger seq", "trigger_seq", MT_TCOL_ID, 0, 0},
    {"trigger", "trigger_kind", MT_TCOL_TEXT, 0, 0},  {"size", "trigger_size", MT_TCOL_BYTES, 0, 0},
    {"triggered at", "stack_id,frames", MT_TCOL_STACK, 0, 0},
};
/* the longest collections first */
static const char gc_sql[] =
    "SELECT g.id, g.process_id, p.pid, g.generation, g.start_ts / 1e6, g.start_ts, g.stop_ts - g.start_ts,"
    " g.collected, g.uncollectable, g.trigger_seq, k.name, e.size, e.stack"
    " FROM gc_events g LEFT JOIN processes p ON p.id = g.process_id"
    " LEFT JOIN event_data e ON e.seq = g.trigger_seq LEFT JOIN event_kinds k ON k.id = e.kind"
    " ORDER BY g.stop_ts - g.start_ts DESC, g.start_seq, g.id";

/* Runs `sql` and puts every row in a new table of columns cols[0..n):
 * INT-like cells from integers (a REAL column from a number), TEXT from
 * text; SQL NULL stays unset. */
static int query_table(mt_db_t *db, const char *sql, const mt_tcol_t *cols, int n, mt_table_t **out)
{
    mt_stmt_t *st = NULL;
    mt_table_t *t = NULL;
    int rc = mt_table_create(cols, n, &t);
    if (!rc) rc = mt_stmt_prepare(db, sql, &st);
    while (!rc && (rc = mt_stmt_step(st)) == 1) {
        if ((rc = mt_table_row(t))) break;
        for (int i = 0; i < n && !rc; i++) {
            if (mt_stmt_column_type(st, i) == MT_COL_NULL) continue;
            if (cols[i].kind == MT_TCOL_REAL) mt_table_real(t, i, mt_stmt_double(st, i));
            else if (cols[i].kind == MT_TCOL_TEXT) rc = mt_table_text(t, i, mt_stmt_text(st, i));
            else mt_table_int(t, i, mt_stmt_int(st, i));
        }
    }
    mt_stmt_finalize(st);
    if (rc < 0) {
        mt_table_destroy(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* ---- the pass ------------------------------------------------------------ */

typedef struct {
    int64_t calls, failed, bytes;
} tally_t;

typedef struct pymaps pymaps_t; /* pymalloc's maps (the heap layout map, below) */
static int pymaps_visit(pymaps_t *pm, const mt_db_event_t *ev);

typedef struct {
    mt_sites_t *sites;
    mt_chains_t *chains;
    mt_timeline_t *tl;
    pymaps_t *py;  /* NULL: no interpreter uses pymalloc */
    tally_t dom[MT_DOM_COUNT];
} pass_t;

/* The visitor: every model sees every event. */
static int pass_visit(void *arg, const mt_db_event_t *ev, const mt_heap_delta_t *d)
{
    pass_t *p = arg;
    int dom = ev->kind >= 0 && ev->kind < MT_KIND_MAX ? mt_kind_domain(ev->kind) : -1;
    if (dom >= 0 && dom < MT_DOM_COUNT && mt_kind_name(ev->kind)) {
        tally_t *t = &p->dom[dom];
        t->calls++;
        if (ev->failed) t->failed++;
        else if ((mt_kind_flags(ev->kind) & MT_KF_ALLOC) && ev->size > 0) t->bytes += ev->size;
    }
    int rc = mt_sites_visit(p->sites, ev, d);
    if (!rc) rc = mt_chains_visit(p->chains, ev, d);
    if (!rc) rc = mt_timeline_visit(p->tl, ev, d);
    if (!rc && p->py) rc = pymaps_visit(p->py, ev);
    return rc;
}

static int layers_table(const pass_t *p, mt_table_t **out)
{
    static const struct {
        int code, layer;
        const char *desc;
    } doms[] = {
#define X(code, name, layer, desc) {code, layer, desc},
        MT_DOMAINS(X)
#undef X
    };
    mt_table_t *t;
    int rc = mt_table_create(layer_cols, LA_N, &t);
    for (size_t i = 0; !rc && i < sizeof doms / sizeof doms[0]; i++) {
        const tally_t *d = &p->dom[doms[i].code];
        if ((rc = mt_table_row(t))) break;
        mt_table_int(t, LA_LAYER, doms[i].layer);
        if ((rc = mt_table_text(t, LA_DOMAIN, mt_domain_name(doms[i].code)))) break;
        if ((rc = mt_table_text(t, LA_DESC, doms[i].desc))) break;
        mt_table_int(t, LA_CALLS, d->calls);
        mt_table_int(t, LA_FAILED, d->failed);
        mt_table_int(t, LA_BYTES, d->bytes);
    }
    if (rc) {
        mt_table_destroy(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* ---- the flame graph: a tree of collapsed stacks -------------------------- */

typedef struct {
    int64_t parent, depth;
    uint32_t name;      /* index in names */
    int64_t calls, bytes, peak, leaked;
} node_t;

typedef struct {
    node_t *v;
    size_t n, cap;
    mt_keymap_t children;   /* (parent, name) -> node + 1 */
    char **names;           /* interned frame names */
    size_t nnames, names_cap;
    uint32_t *ix;           /* open addressing over names: index + 1 */
    size_t ix_cap;          /* power of 2 */
} flame_t;

static uint64_t hash_str(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;  /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* The index of the name s[0..n), added when new.  -1: out of memory. */
static int64_t intern(flame_t *f, const char *s, size_t n)
{
    if ((f->nnames + 1) * 2 > f->ix_cap) {
        size_t cap = f->ix_cap ? f->ix_cap * 2 : 256;
        uint32_t *ix = calloc(cap, sizeof *ix);
        if (!ix) return -1;
        for (size_t i = 0; i < f->nnames; i++) {
            size_t j = hash_str(f->names[i], strlen(f->names[i])) & (cap - 1);
            while (ix[j]) j = (j + 1) & (cap - 1);
            ix[j] = (uint32_t)i + 1;
        }
        free(f->ix);
        f->ix = ix;
        f->ix_cap = cap;
    }
    size_t j = hash_str(s, n) & (f->ix_cap - 1);
    for (; f->ix[j]; j = (j + 1) & (f->ix_cap - 1)) {
        const char *m = f->names[f->ix[j] - 1];
        if (!strncmp(m, s, n) && m[n] == 0) return f->ix[j] - 1;
    }
    if (f->nnames == f->names_cap) {
        size_t cap = f->names_cap ? f->names_cap * 2 : 256;
        char **v = realloc(f->names, cap * sizeof *v);
        if (!v) return -1;
        f->names = v;
        f->names_cap = cap;
    }
    char *copy = strndup(s, n);
    if (!copy) return -1;
    f->names[f->nnames] = copy;
    f->ix[j] = (uint32_t)++f->nnames;
    return (int64_t)f->nnames - 1;
}

static int64_t add_node(flame_t *f, int64_t parent, int64_t depth, uint32_t name)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 256;
        node_t *v = realloc(f->v, cap * sizeof *v);
        if (!v) return -1;
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n] = (node_t){.parent = parent, .depth = depth, .name = name};
    return (int64_t)f->n++;
}

static void charge(node_t *nd, const mt_site_t *s)
{
    nd->calls += s->calls;
    nd->bytes += s->bytes;
    nd->peak += s->peak_bytes;
    nd->leaked += s->live_bytes;
}

/* Adds the site's collapsed stack ("a;b;c") below the root. */
static int flame_add(flame_t *f, const char *text, const mt_site_t *s)
{
    int64_t at = 0;
    charge(&f->v[0], s);
    for (const char *p = text; *p;) {
        const char *e = strchr(p, ';');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        int64_t name = intern(f, p, n);
        if (name < 0) return MT_ENOMEM;
        uint32_t k = mt_keymap_get(&f->children, at, name);
        int64_t child = k ? (int64_t)k - 1 : add_node(f, at, f->v[at].depth + 1, (uint32_t)name);
        if (child < 0) return MT_ENOMEM;
        if (!k && mt_keymap_put(&f->children, at, name, (uint32_t)child + 1)) return MT_ENOMEM;
        charge(&f->v[child], s);
        at = child;
        p += n;
        if (*p) p++;
    }
    return 0;
}

static void flame_free(flame_t *f)
{
    for (size_t i = 0; i < f->nnames; i++) free(f->names[i]);
    free(f->names);
    free(f->ix);
    free(f->v);
    mt_keymap_free(&f->children);
}

static int site_order(const void *a, const void *b)
{
    const mt_site_t *x = a, *y = b;
    if (x->process != y->process) return x->process < y->process ? -1 : 1;
    return (x->stack > y->stack) - (x->stack < y->stack);
}

/* The tree of the heap sites v[0..n) (sorted here by process and stack, so
 * that nodes are numbered the same way every time). */
static int flame_table(mt_db_t *db, mt_site_t *v, size_t n, mt_table_t **out)
{
    flame_t f = {0};
    mt_stackfmt_t *sf = NULL;
    mt_table_t *t = NULL;
    int rc = MT_ENOMEM;
    if (intern(&f, "all", 3) < 0 || add_node(&f, -1, 0, 0) < 0) goto out;
    if ((rc = mt_stackfmt_open(db, &sf))) goto out;
    if (n) qsort(v, n, sizeof *v, site_order);
    for (size_t i = 0; i < n && !rc; i++) {
        char *text;
        if ((rc = mt_export_collapse(sf, v[i].stack, &text))) break;
        rc = flame_add(&f, text, &v[i]);
        free(text);
    }
    if (!rc) rc = mt_table_create(flame_cols, FL_N, &t);
    for (size_t i = 0; i < f.n && !rc; i++) {
        const node_t *nd = &f.v[i];
        if ((rc = mt_table_row(t))) break;
        mt_table_int(t, FL_NODE, (int64_t)i);
        if (nd->parent >= 0) mt_table_int(t, FL_PARENT, nd->parent);
        mt_table_int(t, FL_DEPTH, nd->depth);
        rc = mt_table_text(t, FL_NAME, f.names[nd->name]);
        mt_table_int(t, FL_CALLS, nd->calls);
        mt_table_int(t, FL_BYTES, nd->bytes);
        mt_table_int(t, FL_PEAK, nd->peak);
        mt_table_int(t, FL_LEAKED, nd->leaked);
    }
out:
    if (rc) mt_table_destroy(t);
    else *out = t;
    mt_stackfmt_close(sf);
    flame_free(&f);
    return rc;
}

/* ---- the heap layout map --------------------------------------------------- */

typedef struct {
    const mt_cli_t *c;
    mt_table_t *t;
    const char *allocator;            /* "bundled" or "pymalloc" */
    int64_t at[MT_REPORT_SNAPSHOTS];  /* the moments, ns */
    int next;
    int64_t arenas_end, bytes_end;    /* at the last snapshot */
} snap_t;

/* One character per pool of an arena: '-' uncarved, 'e' empty, 'F' full,
 * '0'..'9' a used pool with that many tenths of its blocks in use. */
static char pool_char(const mt_layout_pool_t *p)
{
    switch (p->state) {
    case MT_POOL_UNCARVED: return '-';
    case MT_POOL_EMPTY: return 'e';
    case MT_POOL_FULL: return 'F';
    case MT_POOL_USED: break;
    }
    int64_t tenth = p->capacity > 0 ? p->blocks_used * 10 / p->capacity : 0;
    return (char)('0' + (tenth > 9 ? 9 : tenth < 0 ? 0 : tenth));
}

#define MAX_POOLS_PER_ARENA 1024 /* cells of one arena's map */

/* Rows of moment k from an allocator's lists (both ordered by process,
 * arena, pool): one per arena (at most MT_REPORT_MAX_ARENAS per process);
 * npools[i]: the pools of arena i (NULL: PYM_POOLS_PER_ARENA each). */
static int snap_rows(snap_t *s, int k, const mt_layout_arena_t *a, size_t na, const mt_layout_pool_t *p,
                     size_t np, const int *npools)
{
    size_t j = 0;
    int rc = 0;
    int64_t proc = -1, shown = 0, bytes = 0;
    char map[MAX_POOLS_PER_ARENA + 1];
    for (size_t i = 0; i < na && !rc; i++) {
        bytes += a[i].bytes_in_use;
        if (a[i].process != proc) proc = a[i].process, shown = 0;
        if (shown++ >= MT_REPORT_MAX_ARENAS) continue;
        int n = npools ? npools[i] : PYM_POOLS_PER_ARENA;
        if (n > MAX_POOLS_PER_ARENA) n = MAX_POOLS_PER_ARENA;
        memset(map, '-', (size_t)n);
        map[n] = 0;
        while (j < np && (p[j].process < a[i].process || (p[j].process == a[i].process && p[j].arena < a[i].arena)))
            j++;
        for (; j < np && p[j].process == a[i].process && p[j].arena == a[i].arena; j++)
            if (p[j].index >= 0 && p[j].index < n) map[p[j].index] = pool_char(&p[j]);
        if ((rc = mt_table_row(s->t))) break;
        mt_table_int(s->t, LO_SNAP, k);
        mt_table_real(s->t, LO_TIME, (double)s->at[k] / 1e6);
        mt_table_int(s->t, LO_TS, s->at[k]);
        if ((rc = mt_table_text(s->t, LO_ALLOC, s->allocator))) break;
        mt_table_int(s->t, LO_PROC, a[i].process);
        int64_t pid = mt_cli_pid(s->c, a[i].process);
        if (pid >= 0) mt_table_int(s->t, LO_PID, pid);
        mt_table_int(s->t, LO_ARENA, (int64_t)a[i].arena);
        rc = mt_table_text(s->t, LO_POOLS, map);
        mt_table_int(s->t, LO_USED, a[i].pools_used);
        mt_table_int(s->t, LO_FULL, a[i].pools_full);
        mt_table_int(s->t, LO_EMPTY, a[i].pools_empty);
        mt_table_int(s->t, LO_BLOCKS, a[i].blocks_used);
        mt_table_int(s->t, LO_BYTES, a[i].bytes_in_use);
    }
    s->arenas_end = (int64_t)na;
    s->bytes_end = bytes;
    return rc;
}

/* Rows of moment k: the bundled allocator's arenas. */
static int snapshot(snap_t *s, int k, const mt_layout_t *m)
{
    mt_layout_arena_t *a = NULL;
    mt_layout_pool_t *p = NULL;
    size_t na = 0, np = 0;
    int rc = mt_layout_arenas(m, &a, &na);
    if (!rc) rc = mt_layout_pools(m, &p, &np);
    if (!rc) rc = snap_rows(s, k, a, na, p, np, NULL);
    free(a);
    free(p);
    return rc;
}

static int snap_before(void *arg, const mt_layout_event_t *ev, const mt_layout_t *m)
{
    snap_t *s = arg;
    for (; s->next < MT_REPORT_SNAPSHOTS && ev->ts > s->at[s->next]; s->next++) {
        int rc = snapshot(s, s->next, m);
        if (rc) return rc;
    }
    return 0;
}

/* Rows of moment k: one interpreter's pymalloc arenas. */
static int py_snapshot(snap_t *s, int k, const mt_pymodel_t *m)
{
    mt_layout_arena_t *a = NULL;
    mt_layout_pool_t *p = NULL;
    int *npools = NULL;
    size_t na = 0, np = 0;
    int rc = mt_pymodel_arenas(m, &a, &na, &npools);
    if (!rc) rc = mt_pymodel_pools(m, &p, &np);
    if (!rc) rc = snap_rows(s, k, a, na, p, np, npools);
    free(a);
    free(p);
    free(npools);
    return rc;
}

/* pymalloc's maps, fed by the pass: a model per interpreter that uses it,
 * all snapshotted at each moment the pass crosses. */
struct pymaps {
    snap_t s;
    int64_t *procs;           /* processes.id of each interpreter */
    mt_pymodel_t **m;
    size_t n;
    mt_keymap_t threads;      /* threads.id -> processes.id + 1 */
    int64_t cached_thread;    /* the last event's thread, and its model (n: none) */
    size_t cached;
};

static void pymaps_close(pymaps_t *pm)
{
    if (!pm) return;
    for (size_t i = 0; i < pm->n; i++) mt_pymodel_destroy(pm->m[i]);
    free(pm->m);
    free(pm->procs);
    mt_keymap_free(&pm->threads);
    free(pm);
}

/* The models of the interpreters of db that use pymalloc, their rows going
 * to t at the moments `at`; *out NULL when there is none.  Returns 0,
 * MT_ENOMEM or a database error. */
static int pymaps_open(mt_db_t *db, const mt_cli_t *c, mt_table_t *t, const int64_t *at, pymaps_t **out)
{
    *out = NULL;
    mt_pymodel_geom_t *geoms = NULL;
    pymaps_t *pm = calloc(1, sizeof *pm);
    if (!pm) return MT_ENOMEM;
    pm->s = (snap_t){.c = c, .t = t, .allocator = "pymalloc"};
    memcpy(pm->s.at, at, sizeof pm->s.at);
    pm->cached_thread = -1;
    size_t n = 0;
    int rc = mt_pymodel_interpreters(db, &pm->procs, &geoms, &n);
    if (!rc && n && !(pm->m = calloc(n, sizeof *pm->m))) rc = MT_ENOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        int e = mt_pymodel_create(&geoms[i], pm->procs[i], &pm->m[pm->n]);
        if (e == MT_EINVAL) continue; /* not pymalloc's geometry: no map */
        if (e) rc = e;
        else pm->procs[pm->n++] = pm->procs[i];
    }
    free(geoms);
    mt_stmt_t *st;
    if (!rc && pm->n && !(rc = mt_stmt_prepare(db, "SELECT id, process_id FROM threads", &st))) {
        while ((rc = mt_stmt_step(st)) == 1) {
            int64_t proc = mt_stmt_int(st, 1);
            rc = proc >= 0 && proc < UINT32_MAX - 1 ? mt_keymap_put(&pm->threads, mt_stmt_int(st, 0), 0, (uint32_t)proc + 1)
                                                   : 0;
            if (rc) break;
        }
        mt_stmt_finalize(st);
        if (rc > 0) rc = 0;
    }
    if (rc || !pm->n) {
        pymaps_close(pm);
        return rc;
    }
    *out = pm;
    return 0;
}

/* Rows of the moments before ts (all of them when ts < 0). */
static int pymaps_moments(pymaps_t *pm, int64_t ts)
{
    for (; pm->s.next < MT_REPORT_SNAPSHOTS && (ts < 0 || ts > pm->s.at[pm->s.next]); pm->s.next++)
        for (size_t i = 0; i < pm->n; i++) {
            int rc = py_snapshot(&pm->s, pm->s.next, pm->m[i]);
            if (rc) return rc;
        }
    return 0;
}

static int pymaps_visit(pymaps_t *pm, const mt_db_event_t *ev)
{
    int rc = pymaps_moments(pm, ev->ts);
    if (rc) return rc;
    if (ev->thread != pm->cached_thread) {
        int64_t proc = (int64_t)mt_keymap_get(&pm->threads, ev->thread, 0) - 1;
        pm->cached_thread = ev->thread;
        for (pm->cached = 0; pm->cached < pm->n && pm->procs[pm->cached] != proc; pm->cached++) {
        }
    }
    if (pm->cached == pm->n) return 0;
    return mt_pymodel_feed(pm->m[pm->cached], ev->kind, ev->addr, ev->size < 0 ? 0 : ev->size, ev->old_addr,
                           ev->failed);
}

/* The moments of the map: MT_REPORT_SNAPSHOTS evenly spread over the
 * trace, the last at its end. */
static void layout_moments(int64_t duration, int64_t *at)
{
    for (int k = 0; k < MT_REPORT_SNAPSHOTS; k++) at[k] = duration * (k + 1) / MT_REPORT_SNAPSHOTS;
}

/* The bundled allocator's map at the moments, appended to t (pymalloc's,
 * fed by the pass, come first).  *kept: bytes the bundled allocator kept
 * free at the end (arena bytes - bytes in blocks in use). */
static int layout_table(mt_db_t *db, const mt_cli_t *c, int64_t duration, int64_t *kept, mt_table_t *t)
{
    snap_t s = {.c = c, .t = t, .allocator = "bundled"};
    mt_layout_t *m = NULL;
    layout_moments(duration, s.at);
    mt_layout_replay_opts_t o = {.at_seq = -1, .at_ts = -1, .before = snap_before, .arg = &s};
    int rc = mt_layout_create(&m);
    if (!rc) rc = mt_layout_replay(m, db, &o);
    for (; !rc && s.next < MT_REPORT_SNAPSHOTS; s.next++) rc = snapshot(&s, s.next, m);
    *kept = s.arenas_end * (int64_t)PYM_ARENA_SIZE - s.bytes_end;
    mt_layout_destroy(m);
    return rc;
}

/* ---- the summary ----------------------------------------------------------- */

static int kv(mt_table_t *t, const char *key, const char *value)
{
    int rc = mt_table_row(t);
    if (!rc) rc = mt_table_text(t, SU_KEY, key);
    if (!rc && value) rc = mt_table_text(t, SU_VALUE, value);
    return rc;
}

static int kv_int(mt_table_t *t, const char *key, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return kv(t, key, buf);
}

static int count_of(mt_db_t *db, const char *sql, int64_t *n)
{
    mt_stmt_t *st;
    int rc = mt_stmt_prepare(db, sql, &st);
    if (rc) return rc;
    rc = mt_stmt_step(st);
    *n = rc == 1 ? mt_stmt_int(st, 0) : 0;
    mt_stmt_finalize(st);
    return rc < 0 ? rc : 0;
}

static int summary_table(mt_db_t *db, const mt_report_t *r, int64_t leaked_blocks, int64_t kept, int has_layout,
                         mt_table_t **out)
{
    static const char *const text_keys[] = {"command", "memtrace_version", "allocator"};
    mt_table_t *t;
    char *v = NULL;
    int64_t n = 0;
    int rc = mt_table_create(summary_cols, SU_N, &t);
    for (size_t i = 0; !rc && i < sizeof text_keys / sizeof text_keys[0]; i++) {
        if (!(rc = mt_db_meta_get_text(db, text_keys[i], &v))) rc = kv(t, text_keys[i], v);
        free(v);
        v = NULL;
    }
    if (!rc && !(rc = mt_db_meta_get_int(db, "complete", &n))) rc = kv_int(t, "complete", n);
    else if (rc == MT_ENOENT) rc = kv(t, "complete", NULL);
    if (!rc && !(rc = mt_db_meta_get_text(db, "incomplete_reason", &v))) rc = kv(t, "incomplete_reason", v);
    free(v);
    if (!rc) rc = kv_int(t, "duration_ns", r->duration_ns);
    if (!rc && !(rc = count_of(db, "SELECT count(*) FROM processes", &n))) rc = kv_int(t, "processes", n);
    if (!rc && !(rc = count_of(db, "SELECT count(*) FROM threads", &n))) rc = kv_int(t, "threads", n);
    if (!rc) rc = kv_int(t, "events", r->events);
    const mt_heap_stats_t *h = &r->heap;
    if (!rc) rc = kv_int(t, "heap_allocations", h->allocs);
    if (!rc) rc = kv_int(t, "heap_peak_bytes", h->peak_bytes);
    if (!rc) rc = kv_int(t, "heap_peak_blocks", h->peak_blocks);
    if (!rc) rc = h->peak_seq >= 0 ? kv_int(t, "heap_peak_ts_ns", h->peak_ts) : kv(t, "heap_peak_ts_ns", NULL);
    if (!rc) rc = kv_int(t, "leaked_bytes", h->live_bytes);
    if (!rc) rc = kv_int(t, "leaked_blocks", leaked_blocks);
    if (!rc) rc = kv_int(t, "mapped_peak_bytes", h->peak_mapped_bytes);
    if (!rc) rc = has_layout ? kv_int(t, "retained_bytes", kept) : kv(t, "retained_bytes", NULL);
    if (!rc && !(rc = count_of(db, "SELECT count(*) FROM gc_events", &n))) rc = kv_int(t, "gc_runs", n);
    if (rc) {
        mt_table_destroy(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* ---- the whole model -------------------------------------------------------- */

int mt_report_build(mt_db_t *db, const mt_cli_t *c, const mt_report_opts_t *o, mt_report_t **out)
{
    mt_cli_t all = *c;
    all.top = 0;  /* the tables have every row; the page chooses */
    *out = NULL;
    mt_report_t *r = calloc(1, sizeof *r);
    if (!r) return MT_ENOMEM;
    pass_t p = {0};
    mt_heap_t *h = NULL;
    mt_site_t *v = NULL, *w = NULL;
    mt_chain_site_t *cs = NULL;
    size_t n = 0, ncs = 0, rows;
    int64_t kept = 0;
    int64_t points = o && o->points > 0 ? o->points : MT_REPORT_POINTS;
    int rc;
    if ((rc = mt_cli_duration(db, &r->duration_ns))) goto out;
    if (r->duration_ns < 0) r->duration_ns = 0;

    /* the pass */
    if ((rc = mt_heap_create(&h)) || (rc = mt_sites_create(&p.sites)) || (rc = mt_chains_create(0, &p.chains)) ||
        (rc = mt_timeline_create(db, r->duration_ns, points, 0, &p.tl)))
        goto out;
    mt_timeline_attach(p.tl, mt_heap_stats(h));
    int64_t at[MT_REPORT_SNAPSHOTS];
    layout_moments(r->duration_ns, at);
    if ((rc = mt_table_create(layout_cols, LO_N, &r->t[MT_RT_layout])) ||
        (rc = pymaps_open(db, c, r->t[MT_RT_layout], at, &p.py)))
        goto out;
    mt_heap_replay_opts_t ro = {.visit = pass_visit, .arg = &p, .progress = c->progress};
    if ((rc = mt_heap_replay(h, db, &ro)) || (rc = mt_timeline_finish(p.tl)) || (rc = mt_chains_finish(p.chains)) ||
        (p.py && (rc = pymaps_moments(p.py, -1))))
        goto out;
    r->heap = *mt_heap_stats(h);
    r->events = r->heap.events;

    /* the views' tables, from the models */
    if ((rc = mt_sites_list(p.sites, MT_SITES_HEAP, &v, &n))) goto out;
    if (n && !(w = malloc(n * sizeof *w))) {
        rc = MT_ENOMEM;
        goto out;
    }
    int64_t leaked_blocks = 0;
    for (size_t i = 0; i < n; i++) leaked_blocks += v[i].live_blocks;
    /* each builder sorts and filters its copy of the sites */
    if (n) memcpy(w, v, n * sizeof *w);
    if ((rc = mt_view_leaks(&all, w, n, &rows, &r->t[MT_RT_leaks]))) goto out;
    if (n) memcpy(w, v, n * sizeof *w);
    if ((rc = mt_view_temporary(&all, w, n, &rows, &r->t[MT_RT_temporary]))) goto out;
    if (n) memcpy(w, v, n * sizeof *w);
    if ((rc = mt_view_top(&all, MT_TOP_BYTES, w, n, &rows, &r->t[MT_RT_top]))) goto out;
    if ((rc = mt_chains_sites(p.chains, &cs, &ncs))) goto out;
    if ((rc = mt_view_growth_sites(&all, cs, ncs, &r->t[MT_RT_growth]))) goto out;
    if ((rc = mt_timeline_table(p.tl, &r->t[MT_RT_timeline]))) goto out;
    if ((rc = flame_table(db, v, n, &r->t[MT_RT_flame]))) goto out;
    if ((rc = layers_table(&p, &r->t[MT_RT_layers]))) goto out;

    /* the rest */
    int has_layout = p.dom[MT_DOM_bundled].calls > 0;
    if (has_layout && (rc = layout_table(db, c, r->duration_ns, &kept, r->t[MT_RT_layout]))) goto out;
    /* pymalloc's too: its arenas' bytes not in live blocks at the end */
    for (size_t i = 0; p.py && i < p.py->n; i++) {
        mt_pymodel_totals_t pt;
        mt_pymodel_totals(p.py->m[i], &pt);
        kept += pt.arenas * mt_pymodel_arena_size(p.py->m[i]) - pt.used_bytes;
        has_layout = 1;
    }
    if ((rc = query_table(db, process_sql, process_cols, sizeof process_cols / sizeof process_cols[0],
                          &r->t[MT_RT_processes])))
        goto out;
    if ((rc = query_table(db, marker_sql, marker_cols, sizeof marker_cols / sizeof marker_cols[0],
                          &r->t[MT_RT_markers])))
        goto out;
    if ((rc = query_table(db, gc_sql, gc_cols, sizeof gc_cols / sizeof gc_cols[0], &r->t[MT_RT_gc]))) goto out;
    rc = summary_table(db, r, leaked_blocks, kept, has_layout, &r->t[MT_RT_summary]);
out:
    free(v);
    free(w);
    free(cs);
    mt_heap_destroy(h);
    mt_sites_destroy(p.sites);
    mt_chains_destroy(p.chains);
    mt_timeline_destroy(p.tl);
    pymaps_close(p.py);
    if (rc) mt_report_destroy(r);
    else *out = r;
    return rc;
}

void mt_report_destroy(mt_report_t *r)
{
    if (!r) return;
    for (int i = 0; i < MT_RT_COUNT; i++) mt_table_destroy(r->t[i]);
    free(r);
}
