/* pymodel.c - pymalloc's arenas, pools and size classes, rebuilt from the
 * events of a CPython interpreter (pymodel.h has the rules).
 *
 * The live arenas are kept sorted by base address, each with an array of
 * its pools (class, blocks in use, served a class or not); a block event
 * finds its arena by binary search and its pool by arithmetic.  The live
 * pymalloc blocks are a map (domain, address) -> class + 1, so a free knows
 * the class its allocation chose and a realloc in place keeps it.
 */
#include "pymodel.h"

#include "keymap.h"
#include "mt_error.h"
#include "mt_event.h"
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int16_t cls;     /* class it serves (or last served) */
    uint8_t carved;  /* it has served a class since the arena was mapped */
    int32_t used;    /* blocks in use */
} pool_t;

typedef struct {
    uint64_t base, first; /* the arena, its first pool (base rounded up to a pool) */
    int npools;
    pool_t *pools;
} arena_t;

struct mt_pymodel {
    mt_pymodel_geom_t g;
    int64_t process;
    int shift;         /* log2 of the class alignment */
    int64_t pad;       /* debug hooks: bytes they add around each block */
    arena_t **arenas;  /* live, sorted by base */
    size_t narenas, caparenas;
    mt_keymap_t blocks; /* (domain, address) -> class + 1 */
    mt_pymodel_totals_t t;
};

int mt_pymodel_create(const mt_pymodel_geom_t *g, int64_t process, mt_pymodel_t **out)
{
    *out = NULL;
    if (g->arena_size <= 0 || g->pool_size <= 0 || (g->pool_size & (g->pool_size - 1)) ||
        g->arena_size % g->pool_size)
        return MT_EINVAL;
    mt_pymodel_t *m = calloc(1, sizeof *m);
    if (!m) return MT_ENOMEM;
    m->g = *g;
    m->process = process;
    m->shift = g->classes == 64 ? 3 : 4;
    /* PYTHONMALLOC=debug: each block carries two words before it and one
     * after (Objects/obmalloc.c), and the domain wrappers sit above the hooks */
    size_t al = strnlen(g->allocator, sizeof g->allocator);
    if (al > 6 && !memcmp(g->allocator + al - 6, "_debug", 6)) m->pad = 3 * 8;
    *out = m;
    return 0;
}

void mt_pymodel_destroy(mt_pymodel_t *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->narenas; i++) {
        free(m->arenas[i]->pools);
        free(m->arenas[i]);
    }
    free(m->arenas);
    mt_keymap_free(&m->blocks);
    free(m);
}

int64_t mt_pymodel_block_size(const mt_pymodel_t *m, int c)
{
    return (int64_t)(c + 1) << m->shift;
}

int64_t mt_pymodel_pool_capacity(const mt_pymodel_t *m, int c)
{
    return (m->g.pool_size - MT_PYMODEL_POOL_HEADER) / mt_pymodel_block_size(m, c);
}

int64_t mt_pymodel_arena_size(const mt_pymodel_t *m) { return m->g.arena_size; }

int mt_pymodel_classes(const mt_pymodel_t *m)
{
    return m->g.classes > 0 && m->g.classes <= MT_PYMODEL_MAX_CLASSES ? (int)m->g.classes : MT_PYMODEL_MAX_CLASSES;
}

/* 1 when addr is inside a live arena; *pos: the insertion point of addr
 * (the arena is at *pos - 1). */
static int arena_find(const mt_pymodel_t *m, uint64_t addr, size_t *pos)
{
    size_t lo = 0, hi = m->narenas;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->arenas[mid]->base <= addr) lo = mid + 1;
        else hi = mid;
    }
    *pos = lo;
    return lo > 0 && addr < m->arenas[lo - 1]->base + (uint64_t)m->g.arena_size;
}

static int arena_add(mt_pymodel_t *m, uint64_t base)
{
    if (m->narenas == m->caparenas) {
        size_t cap = m->caparenas ? 2 * m->caparenas : 64;
        arena_t **p = realloc(m->arenas, cap * sizeof *p);
        if (!p) return MT_ENOMEM;
        m->arenas = p;
        m->caparenas = cap;
    }
    uint64_t ps = (uint64_t)m->g.pool_size;
    arena_t *a = calloc(1, sizeof *a);
    if (!a) return MT_ENOMEM;
    a->base = base;
    a->first = (base + ps - 1) & ~(ps - 1); /* pymalloc aligns the first pool up */
    a->npools = (int)((base + (uint64_t)m->g.arena_size - a->first) / ps);
    if (!(a->pools = calloc((size_t)a->npools, sizeof *a->pools))) {
        free(a);
        return MT_ENOMEM;
    }
    size_t pos;
    arena_find(m, base, &pos);
    memmove(m->arenas + pos + 1, m->arenas + pos, (m->narenas - pos) * sizeof *m->arenas);
    m->arenas[pos] = a;
    m->narenas++;
    m->t.arenas = (int64_t)m->narenas;
    m->t.arenas_total++;
    if (m->t.arenas > m->t.arenas_high) m->t.arenas_high = m->t.arenas;
    return 0;
}

static void arena_remove(mt_pymodel_t *m, uint64_t base)
{
    size_t pos;
    if (!arena_find(m, base, &pos) || m->arenas[pos - 1]->base != base) return;
    arena_t *a = m->arenas[pos - 1];
    for (int i = 0; i < a->npools; i++) /* blocks never freed: their pools go too */
        if (a->pools[i].used) {
            m->t.class_pools[a->pools[i].cls]--;
            m->t.pools--;
        }
    free(a->pools);
    free(a);
    memmove(m->arenas + pos - 1, m->arenas + pos, (m->narenas - pos) * sizeof *m->arenas);
    m->narenas--;
    m->t.arenas = (int64_t)m->narenas;
    m->t.arenas_freed++;
    m->t.arena_freed_bytes += m->g.arena_size;
}

/* The pool of the block at addr, NULL when no live arena holds it. */
static pool_t *pool_of(mt_pymodel_t *m, uint64_t addr)
{
    size_t pos;
    if (!arena_find(m, addr, &pos)) return NULL;
    arena_t *a = m->arenas[pos - 1];
    if (addr < a->first) return NULL;
    uint64_t i = (addr - a->first) / (uint64_t)m->g.pool_size;
    return i < (uint64_t)a->npools ? &a->pools[i] : NULL;
}

static void block_end(mt_pymodel_t *m, int dom, uint64_t addr, int *cls);

/* A new live object/memory block at addr; keep: the class a realloc in
 * place keeps, -1 none.  Not a pymalloc block unless inside a live arena.
 * A block still live at addr (its free was not recorded) ends first. */
static int block_add(mt_pymodel_t *m, int dom, uint64_t addr, int64_t size, int keep)
{
    size_t pos;
    if (!arena_find(m, addr, &pos)) return 0;
    int stale;
    block_end(m, dom, addr, &stale);
    int64_t eff = size + m->pad; /* what pymalloc itself was asked for */
    int cls = keep >= 0 ? keep : (int)((eff > 0 ? eff - 1 : 0) >> m->shift);
    if (cls >= MT_PYMODEL_MAX_CLASSES) cls = MT_PYMODEL_MAX_CLASSES - 1;
    int rc = mt_keymap_put(&m->blocks, dom, (int64_t)addr, (uint32_t)cls + 1);
    if (rc) return rc;
    m->t.class_used[cls]++;
    m->t.blocks++;
    m->t.used_bytes += mt_pymodel_block_size(m, cls);
    pool_t *p = pool_of(m, addr);
    if (!p) {
        m->t.anomalies++;
        return 0;
    }
    if (p->used++ == 0) {
        p->cls = (int16_t)cls;
        p->carved = 1;
        m->t.class_pools[cls]++;
        m->t.pools++;
    }
    return 0;
}

/* Ends the block at addr; its class (-1: not a pymalloc block) in *cls. */
static void block_end(mt_pymodel_t *m, int dom, uint64_t addr, int *cls)
{
    uint32_t v = mt_keymap_del(&m->blocks, dom, (int64_t)addr);
    *cls = (int)v - 1;
    if (!v) return;
    m->t.class_used[*cls]--;
    m->t.blocks--;
    m->t.used_bytes -= mt_pymodel_block_size(m, *cls);
    pool_t *p = pool_of(m, addr);
    if (p && p->used > 0 && --p->used == 0) {
        m->t.class_pools[p->cls]--;
        m->t.pools--;
    }
}

int mt_pymodel_feed(mt_pymodel_t *m, int kind, uint64_t addr, int64_t size, uint64_t old, int failed)
{
    int dom = mt_kind_domain(kind);
    unsigned fl = mt_kind_flags(kind);
    if ((dom != MT_DOM_pyobj && dom != MT_DOM_pymem && dom != MT_DOM_pyarena) || failed ||
        !(fl & (MT_KF_ALLOC | MT_KF_FREE)))
        return 0;
    int alloc = (fl & MT_KF_ALLOC) != 0, resize = alloc && (fl & MT_KF_FREE);
    if (dom == MT_DOM_pyarena) {
        if ((fl & MT_KF_FREE) && !resize) arena_remove(m, addr);
        if (alloc && addr && size == m->g.arena_size) return arena_add(m, addr);
        return 0;
    }
    int cls = -1;
    if (fl & MT_KF_FREE) {
        uint64_t victim = resize ? old : addr;
        if (victim) block_end(m, dom, victim, &cls);
    }
    if (alloc && addr) return block_add(m, dom, addr, size, resize && addr == old ? cls : -1);
    return 0;
}

void mt_pymodel_totals(const mt_pymodel_t *m, mt_pymodel_totals_t *out)
{
    *out = m->t;
}

static mt_pool_state_t pool_state(const mt_pymodel_t *m, const pool_t *p)
{
    if (p->used > 0) return p->used >= mt_pymodel_pool_capacity(m, p->cls) ? MT_POOL_FULL : MT_POOL_USED;
    return p->carved ? MT_POOL_EMPTY : MT_POOL_UNCARVED;
}

int mt_pymodel_pools(const mt_pymodel_t *m, mt_layout_pool_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t k = 0;
    for (size_t i = 0; i < m->narenas; i++)
        for (int j = 0; j < m->arenas[i]->npools; j++) k += m->arenas[i]->pools[j].carved;
    if (!k) return 0;
    mt_layout_pool_t *v = malloc(k * sizeof *v);
    if (!v) return MT_ENOMEM;
    k = 0;
    for (size_t i = 0; i < m->narenas; i++) {
        const arena_t *a = m->arenas[i];
        for (int j = 0; j < a->npools; j++) {
            const pool_t *p = &a->pools[j];
            if (!p->carved) continue;
            v[k++] = (mt_layout_pool_t){
                .process = m->process,
                .arena = a->base,
                .pool = a->first + (uint64_t)j * (uint64_t)m->g.pool_size,
                .index = j,
                .size_class = p->cls,
                .state = pool_state(m, p),
                .blocks_used = p->used,
                .capacity = mt_pymodel_pool_capacity(m, p->cls),
            };
        }
    }
    *out = v;
    *n = k;
    return 0;
}

int mt_pymodel_arenas(const mt_pymodel_t *m, mt_layout_arena_t **out, size_t *n, int **npools)
{
    *out = NULL;
    *n = 0;
    if (npools) *npools = NULL;
    if (!m->narenas) return 0;
    mt_layout_arena_t *v = calloc(m->narenas, sizeof *v);
    int *np = npools ? malloc(m->narenas * sizeof *np) : NULL;
    if (!v || (npools && !np)) {
        free(v);
        free(np);
        return MT_ENOMEM;
    }
    for (size_t i = 0; i < m->narenas; i++) {
        const arena_t *a = m->arenas[i];
        mt_layout_arena_t *r = &v[i];
        r->process = m->process;
        r->arena = a->base;
        for (int j = 0; j < a->npools; j++) {
            const pool_t *p = &a->pools[j];
            switch (pool_state(m, p)) {
            case MT_POOL_UNCARVED: r->pools_uncarved++; break;
            case MT_POOL_EMPTY: r->pools_empty++; break;
            case MT_POOL_FULL: r->pools_full++; break;
            case MT_POOL_USED: r->pools_used++; break;
            }
            r->blocks_used += p->used;
            r->bytes_in_use += p->used * mt_pymodel_block_size(m, p->cls);
        }
        if (np) np[i] = a->npools;
    }
    *out = v;
    *n = m->narenas;
    if (npools) *npools = np;
    return 0;
}

int mt_pymodel_replay(mt_pymodel_t *m, mt_db_t *db, const mt_pymodel_replay_opts_t *opts)
{
    static const mt_pymodel_replay_opts_t none = {.at_seq = -1, .at_ts = -1};
    if (!opts) opts = &none;
    mt_evread_t *r = NULL;
    mt_progress_t prog;
    int rc = mt_progress_start(&prog, opts->progress, db);
    /* (the kinds from mem_malloc to py_arena_free take mem_free and
     * obj_free with their allocations) */
    if (!rc)
        rc = mt_evread_open(db,
                            "kind BETWEEN ?1 AND ?2 AND seq <= ?3"
                            " AND thread IN (SELECT id FROM threads WHERE process_id = ?4)",
                            &r);
    int64_t at_seq = opts->at_seq >= 0 ? opts->at_seq : INT64_MAX;
    if (!rc) rc = mt_stmt_bind_int(mt_evread_stmt(r), 1, MT_EV_mem_malloc);
    if (!rc) rc = mt_stmt_bind_int(mt_evread_stmt(r), 2, MT_EV_py_arena_free);
    if (!rc) rc = mt_stmt_bind_int(mt_evread_stmt(r), 3, at_seq);
    if (!rc) rc = mt_stmt_bind_int(mt_evread_stmt(r), 4, m->process);
    if (rc) goto out;
    unsigned n = 0;
    mt_db_event_t ev;
    while ((rc = mt_evread_next(r, &ev)) == 1) {
        if (ev.seq > at_seq || (opts->at_ts >= 0 && ev.ts > opts->at_ts)) break;
        if (opts->before && (rc = opts->before(opts->arg, ev.seq, ev.ts, m))) goto out;
        if ((rc = mt_pymodel_feed(m, ev.kind, ev.addr, ev.size > 0 ? ev.size : 0, ev.old_addr, ev.failed))) goto out;
        if ((++n & 0xffff) == 0) mt_progress_tick(&prog, ev.seq);
    }
    if (rc > 0) rc = 0;
out:
    mt_progress_end(&prog);
    mt_evread_close(r);
    return rc;
}

int mt_pymodel_interpreters(mt_db_t *db, int64_t **procs, mt_pymodel_geom_t **geoms, size_t *n)
{
    *procs = NULL;
    *geoms = NULL;
    *n = 0;
    mt_stmt_t *st;
    size_t cap = 0;
    int rc = mt_stmt_prepare(db,
                             "SELECT process_id, arena_size, pool_size, size_classes, allocator FROM python"
                             " WHERE allocator IN ('pymalloc', 'pymalloc_debug') AND arena_size > 0 AND pool_size > 0"
                             " ORDER BY process_id",
                             &st);
    while (!rc && (rc = mt_stmt_step(st)) == 1) {
        rc = 0;
        if (*n == cap) {
            cap = cap ? 2 * cap : 4;
            int64_t *p = realloc(*procs, cap * sizeof *p);
            if (p) *procs = p;
            mt_pymodel_geom_t *g = realloc(*geoms, cap * sizeof *g);
            if (g) *geoms = g;
            if (!p || !g) {
                rc = MT_ENOMEM;
                break;
            }
        }
        mt_pymodel_geom_t *g = &(*geoms)[*n];
        memset(g, 0, sizeof *g);
        (*procs)[*n] = mt_stmt_int(st, 0);
        g->arena_size = mt_stmt_int(st, 1);
        g->pool_size = mt_stmt_int(st, 2);
        g->classes = mt_stmt_int_or(st, 3, 0);
        const char *a = mt_stmt_text(st, 4);
        snprintf(g->allocator, sizeof g->allocator, "%s", a ? a : "");
        ++*n;
    }
    mt_stmt_finalize(st);
    if (rc < 0) {
        free(*procs);
        free(*geoms);
        *procs = NULL;
        *geoms = NULL;
        *n = 0;
        return rc;
    }
    return 0;
}
