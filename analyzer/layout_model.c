/* layout_model.c - the bundled allocator's arenas and pools rebuilt from its
 * events (contract and state table in layout_model.h).
 *
 * Data structures:
 *
 *   arenas[]   one record per mapped arena of a process: its address and
 *              its 64 pools (state, class, blocks in use), indexed by the
 *              pool's number in the arena, (pool - arena) / 16 KiB.  Slots
 *              of unmapped arenas are reused (a stack of free slots).
 *   ix         keymap (process, arena address) -> slot + 1; the slot of the
 *              previous event is tried first (events come in runs).
 *   procs[]    per process: counters pym keeps that the pools do not
 *              show (arenas mapped and unmapped, bad frees).
 *
 * Every case of the event switch is labelled with the row of the state
 * table it implements.
 */
#include "layout_model.h"

#include "keymap.h"
#include "mt_error.h"
#include "mt_event.h"
#include "progress.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_MASK ((uint64_t)PYM_ARENA_SIZE - 1)
#define POOL_MASK ((uint64_t)PYM_POOL_SIZE - 1)
#define POOL_SHIFT 14
_Static_assert(((size_t)1 << POOL_SHIFT) == PYM_POOL_SIZE, "pool size");
_Static_assert(PYM_ARENA_SIZE / PYM_POOL_SIZE == PYM_POOLS_PER_ARENA, "pools per arena");

typedef struct {
    uint8_t state;   /* mt_pool_state_t */
    uint8_t cls;     /* size class (meaningless while UNCARVED) */
    uint32_t ref;    /* blocks in use */
} pool_t;

typedef struct {
    int64_t process;
    uint64_t addr;   /* 0: free slot */
    pool_t pools[PYM_POOLS_PER_ARENA];
} arena_t;

typedef struct {
    int64_t id;
    uint64_t arenas_allocated, arenas_freed, bad_frees;
} proc_t;

struct mt_layout {
    arena_t *arenas;
    size_t narenas, cap;      /* slots used (live or free) / allocated */
    size_t *free_slots;       /* stack of free slots */
    size_t nfree, free_cap;
    mt_keymap_t ix;           /* (process, arena) -> slot + 1 */
    size_t last;              /* slot of the previous lookup, SIZE_MAX: none */
    proc_t *procs;
    size_t nprocs, procs_cap;
    mt_layout_info_t info;
};

const char *mt_pool_state_name(mt_pool_state_t s)
{
    switch (s) {
    case MT_POOL_UNCARVED: return "uncarved";
    case MT_POOL_USED: return "used";
    case MT_POOL_FULL: return "full";
    case MT_POOL_EMPTY: return "empty";
    }
    return "?";
}

int mt_layout_create(mt_layout_t **out)
{
    mt_layout_t *m = calloc(1, sizeof *m);
    *out = m;
    if (!m) return MT_ENOMEM;
    m->last = SIZE_MAX;
    m->info.last_seq = m->info.last_ts = -1;
    return 0;
}

void mt_layout_destroy(mt_layout_t *m)
{
    if (!m) return;
    free(m->arenas);
    free(m->free_slots);
    free(m->procs);
    mt_keymap_free(&m->ix);
    free(m);
}

mt_layout_info_t mt_layout_info(const mt_layout_t *m) { return m->info; }

/* ---- processes ---- */

static proc_t *proc_find(const mt_layout_t *m, int64_t id)
{
    for (size_t i = 0; i < m->nprocs; i++)
        if (m->procs[i].id == id) return &m->procs[i];
    return NULL;
}

static int proc_get(mt_layout_t *m, int64_t id, proc_t **out)
{
    if ((*out = proc_find(m, id))) return 0;
    if (m->nprocs == m->procs_cap) {
        size_t cap = m->procs_cap ? m->procs_cap * 2 : 4;
        proc_t *p = realloc(m->procs, cap * sizeof *p);
        if (!p) return MT_ENOMEM;
        m->procs = p;
        m->procs_cap = cap;
    }
    *out = &m->procs[m->nprocs++];
    **out = (proc_t){.id = id};
    return 0;
}

/* ---- arenas ---- */

static arena_t *arena_find(mt_layout_t *m, int64_t process, uint64_t addr)
{
    if (m->last != SIZE_MAX && m->arenas[m->last].addr == addr && m->arenas[m->last].process == process)
        return &m->arenas[m->last];
    uint32_t k = mt_keymap_get(&m->ix, process, (int64_t)addr);
    if (!k) return NULL;
    m->last = k - 1;
    return &m->arenas[k - 1];
}

/* Makes room for one more arena (slot array, free-slot stack and keymap
 * entry are grown first, so adding cannot fail halfway). */
static int arena_reserve(mt_layout_t *m)
{
    if (!m->nfree && m->narenas == m->cap) {
        if (m->cap >= UINT32_MAX / 2) return MT_ENOMEM;
        size_t cap = m->cap ? m->cap * 2 : 16;
        arena_t *a = realloc(m->arenas, cap * sizeof *a);
        if (!a) return MT_ENOMEM;
        m->arenas = a;
        m->cap = cap;
    }
    if (m->free_cap < m->cap) {
        size_t *f = realloc(m->free_slots, m->cap * sizeof *f);
        if (!f) return MT_ENOMEM;
        m->free_slots = f;
        m->free_cap = m->cap;
    }
    return 0;
}

/* A new arena of `process` at `addr`, every pool uncarved (absent before). */
static int arena_add(mt_layout_t *m, int64_t process, uint64_t addr, arena_t **out)
{
    int rc = arena_reserve(m);
    if (rc) return rc;
    size_t slot = m->nfree ? m->free_slots[--m->nfree] : m->narenas++;
    if ((rc = mt_keymap_put(&m->ix, process, (int64_t)addr, (uint32_t)slot + 1))) {
        m->free_slots[m->nfree++] = slot;
        return rc;
    }
    arena_t *a = &m->arenas[slot];
    memset(a, 0, sizeof *a);
    a->process = process;
    a->addr = addr;
    m->last = slot;
    *out = a;
    return 0;
}

static void arena_remove(mt_layout_t *m, arena_t *a)
{
    size_t slot = (size_t)(a - m->arenas);
    mt_keymap_del(&m->ix, a->process, (int64_t)a->addr);
    a->addr = 0;
    m->free_slots[m->nfree++] = slot; /* room reserved by arena_reserve */
    if (m->last == slot) m->last = SIZE_MAX;
}

/* The arena holding `addr`, created (an anomaly: its arena_alloc was not
 * seen) when absent. */
static int arena_of(mt_layout_t *m, int64_t process, uint64_t addr, arena_t **out)
{
    uint64_t base = addr & ~ARENA_MASK;
    if ((*out = arena_find(m, process, base))) return 0;
    m->info.anomalies++;
    return arena_add(m, process, base, out);
}

/* ---- events ---- */

static int valid_class(int c) { return c >= 0 && c < PYM_NCLASSES; }

int mt_layout_feed(mt_layout_t *m, const mt_layout_event_t *ev)
{
    proc_t *pr;
    arena_t *a;
    int rc = proc_get(m, ev->process, &pr);
    if (rc) return rc;
    m->info.events++;
    m->info.last_seq = ev->seq;
    m->info.last_ts = ev->ts;
    int64_t *bad = &m->info.anomalies;

    switch (ev->kind) {
    case PYM_EV_arena_alloc: /* (unmapped) -> every pool UNCARVED */
        if ((a = arena_find(m, ev->process, ev->addr & ~ARENA_MASK))) {
            ++*bad;
            memset(a->pools, 0, sizeof a->pools);
        } else if ((rc = arena_add(m, ev->process, ev->addr & ~ARENA_MASK, &a))) {
            return rc;
        }
        pr->arenas_allocated++;
        return 0;
    case PYM_EV_arena_free: /* no pool in use -> (unmapped) */
        pr->arenas_freed++;
        if (!(a = arena_find(m, ev->process, ev->addr & ~ARENA_MASK))) {
            ++*bad;
            return 0;
        }
        for (int i = 0; i < PYM_POOLS_PER_ARENA; i++)
            if (a->pools[i].state == MT_POOL_USED || a->pools[i].state == MT_POOL_FULL) {
                ++*bad;
                break;
            }
        arena_remove(m, a);
        return 0;
    case PYM_EV_double_free:
        pr->bad_frees++;
        return 0;
    case PYM_EV_pool_init:
    case PYM_EV_pool_full:
    case PYM_EV_pool_reuse:
    case PYM_EV_pool_empty:
    case PYM_EV_block_alloc_freelist:
    case PYM_EV_block_alloc_bump:
    case PYM_EV_block_alloc_newpool:
    case PYM_EV_block_free:
        break;
    default: /* fallback_alloc, fallback_free; codes newer than this memtrace */
        return 0;
    }

    /* pool and block events */
    uint64_t paddr = (ev->pool ? ev->pool : ev->addr) & ~POOL_MASK;
    if (!paddr) {
        ++*bad;
        return 0;
    }
    if ((rc = arena_of(m, ev->process, paddr, &a))) return rc;
    pool_t *p = &a->pools[(paddr - a->addr) >> POOL_SHIFT];
    int c = ev->size_class;
    if (ev->kind != PYM_EV_pool_init && p->state != MT_POOL_UNCARVED && c != p->cls) ++*bad;

    switch (ev->kind) {
    case PYM_EV_pool_init: /* UNCARVED (FRESH) or EMPTY (SAME, OTHER) -> USED, ref 0 */
        if (!valid_class(c)) {
            ++*bad;
            return 0;
        }
        if (ev->value == PYM_POOL_FRESH ? p->state != MT_POOL_UNCARVED
                                        : p->state != MT_POOL_EMPTY ||
                                              (ev->value == PYM_POOL_SAME) != (p->cls == c))
            ++*bad;
        if (p->state != MT_POOL_UNCARVED && p->ref) ++*bad;
        p->state = MT_POOL_USED;
        p->cls = (uint8_t)c;
        p->ref = 0;
        break;
    case PYM_EV_block_alloc_freelist: /* USED: ref + 1 */
    case PYM_EV_block_alloc_bump:
    case PYM_EV_block_alloc_newpool:
        if (p->state != MT_POOL_USED || p->ref >= PYM_CLASS_CAPACITY(p->cls)) ++*bad;
        p->ref++;
        break;
    case PYM_EV_pool_full: /* USED, ref = capacity -> FULL */
        if (p->state != MT_POOL_USED || p->ref != PYM_CLASS_CAPACITY(p->cls) || (int64_t)p->ref != ev->value)
            ++*bad;
        p->state = MT_POOL_FULL;
        break;
    case PYM_EV_block_free: /* USED or FULL: ref - 1, which the event's value says */
        if ((p->state != MT_POOL_USED && p->state != MT_POOL_FULL) || p->ref == 0 ||
            (int64_t)p->ref - 1 != ev->value)
            ++*bad;
        /* the allocator's count wins */
        p->ref = ev->value >= 0 && ev->value <= UINT32_MAX ? (uint32_t)ev->value : (p->ref ? p->ref - 1 : 0);
        break;
    case PYM_EV_pool_reuse: /* FULL -> USED */
        if (p->state != MT_POOL_FULL || (int64_t)p->ref != ev->value) ++*bad;
        p->state = MT_POOL_USED;
        break;
    case PYM_EV_pool_empty: /* USED, ref 0 -> EMPTY (keeps its class) */
        if (p->state != MT_POOL_USED || p->ref != 0) ++*bad;
        p->state = MT_POOL_EMPTY;
        p->ref = 0;
        break;
    }
    return 0;
}

int mt_layout_fork(mt_layout_t *m, int64_t parent, int64_t child)
{
    proc_t *pc, *pp;
    if (parent == child) return 0;
    int rc = proc_get(m, child, &pc);
    if (!rc) rc = proc_get(m, parent, &pp); /* may move procs[]: look pc up again */
    if (rc) return rc;
    pc = proc_find(m, child);
    pp = proc_find(m, parent);
    /* the child's own arenas go */
    for (size_t i = 0; i < m->narenas; i++)
        if (m->arenas[i].addr && m->arenas[i].process == child) arena_remove(m, &m->arenas[i]);
    size_t n = m->narenas;
    for (size_t i = 0; i < n; i++) {
        if (!m->arenas[i].addr || m->arenas[i].process != parent) continue;
        arena_t *a;
        if ((rc = arena_add(m, child, m->arenas[i].addr, &a))) return rc;
        memcpy(a->pools, m->arenas[i].pools, sizeof a->pools); /* arena_add may move arenas[]: i is an index */
    }
    pc->arenas_allocated = pp->arenas_allocated;
    pc->arenas_freed = pp->arenas_freed;
    pc->bad_frees = pp->bad_frees;
    m->info.forks++;
    return 0;
}

/* ---- reading the model ---- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int mt_layout_processes(const mt_layout_t *m, int64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!m->nprocs) return 0;
    int64_t *v = malloc(m->nprocs * sizeof *v);
    if (!v) return MT_ENOMEM;
    for (size_t i = 0; i < m->nprocs; i++) v[i] = m->procs[i].id;
    qsort(v, m->nprocs, sizeof *v, cmp_i64);
    *out = v;
    *n = m->nprocs;
    return 0;
}

void mt_layout_stats(const mt_layout_t *m, int64_t process, pym_stats_t *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned c = 0; c < PYM_NCLASSES; c++) out->cls[c].blocks_per_pool = (uint32_t)PYM_CLASS_CAPACITY(c);
    for (size_t i = 0; i < m->narenas; i++) {
        const arena_t *a = &m->arenas[i];
        if (!a->addr || a->process != process) continue;
        int free_pools = 0;
        out->arenas++;
        for (int j = 0; j < PYM_POOLS_PER_ARENA; j++) {
            const pool_t *p = &a->pools[j];
            pym_class_stats_t *s = &out->cls[p->cls];
            switch ((mt_pool_state_t)p->state) {
            case MT_POOL_UNCARVED:
                out->pools_uncarved++;
                free_pools++;
                break;
            case MT_POOL_USED:
                s->pools_used++;
                s->blocks_used += p->ref;
                if (p->ref < PYM_CLASS_CAPACITY(p->cls)) s->blocks_free += PYM_CLASS_CAPACITY(p->cls) - p->ref;
                break;
            case MT_POOL_FULL:
                s->pools_full++;
                s->blocks_used += p->ref;
                break;
            case MT_POOL_EMPTY:
                s->pools_empty++;
                free_pools++;
                break;
            }
        }
        out->arenas_empty += free_pools == PYM_POOLS_PER_ARENA;
    }
    out->arena_bytes = out->arenas * PYM_ARENA_SIZE;
    const proc_t *pr = proc_find(m, process);
    if (pr) {
        out->arenas_allocated = pr->arenas_allocated;
        out->arenas_freed = pr->arenas_freed;
        out->bad_frees = pr->bad_frees;
    }
    for (unsigned c = 0; c < PYM_NCLASSES; c++) {
        const pym_class_stats_t *s = &out->cls[c];
        out->pools_used += s->pools_used;
        out->pools_full += s->pools_full;
        out->pools_empty += s->pools_empty;
        out->blocks_used += s->blocks_used;
        out->blocks_free += s->blocks_free;
        out->bytes_in_use += s->blocks_used * PYM_CLASS_SIZE(c);
        out->bytes_free += s->blocks_free * PYM_CLASS_SIZE(c);
    }
}

static int cmp_arena(const void *x, const void *y)
{
    const arena_t *a = *(const arena_t *const *)x, *b = *(const arena_t *const *)y;
    if (a->process != b->process) return a->process < b->process ? -1 : 1;
    return (a->addr > b->addr) - (a->addr < b->addr);
}

/* The live arenas, sorted: *out malloc'ed (NULL when *n is 0). */
static int sorted_arenas(const mt_layout_t *m, const arena_t ***out, size_t *n)
{
    size_t k = 0;
    *out = NULL;
    *n = 0;
    for (size_t i = 0; i < m->narenas; i++) k += m->arenas[i].addr != 0;
    if (!k) return 0;
    const arena_t **v = malloc(k * sizeof *v);
    if (!v) return MT_ENOMEM;
    k = 0;
    for (size_t i = 0; i < m->narenas; i++)
        if (m->arenas[i].addr) v[k++] = &m->arenas[i];
    qsort(v, k, sizeof *v, cmp_arena);
    *out = v;
    *n = k;
    return 0;
}

int mt_layout_pools(const mt_layout_t *m, mt_layout_pool_t **out, size_t *n)
{
    const arena_t **av;
    size_t na, k = 0;
    *out = NULL;
    *n = 0;
    int rc = sorted_arenas(m, &av, &na);
    if (rc || !na) return rc;
    for (size_t i = 0; i < na; i++)
        for (int j = 0; j < PYM_POOLS_PER_ARENA; j++) k += av[i]->pools[j].state != MT_POOL_UNCARVED;
    mt_layout_pool_t *v = k ? malloc(k * sizeof *v) : NULL;
    if (k && !v) {
        free(av);
        return MT_ENOMEM;
    }
    k = 0;
    for (size_t i = 0; i < na; i++) {
        for (int j = 0; j < PYM_POOLS_PER_ARENA; j++) {
            const pool_t *p = &av[i]->pools[j];
            if (p->state == MT_POOL_UNCARVED) continue;
            v[k++] = (mt_layout_pool_t){
                .process = av[i]->process,
                .arena = av[i]->addr,
                .pool = av[i]->addr + ((uint64_t)j << POOL_SHIFT),
                .index = j,
                .size_class = p->cls,
                .state = (mt_pool_state_t)p->state,
                .blocks_used = p->ref,
                .capacity = (int64_t)PYM_CLASS_CAPACITY(p->cls),
            };
        }
    }
    free(av);
    *out = v;
    *n = k;
    return 0;
}

int mt_layout_arenas(const mt_layout_t *m, mt_layout_arena_t **out, size_t *n)
{
    const arena_t **av;
    size_t na;
    *out = NULL;
    *n = 0;
    int rc = sorted_arenas(m, &av, &na);
    if (rc || !na) return rc;
    mt_layout_arena_t *v = calloc(na, sizeof *v);
    if (!v) {
        free(av);
        return MT_ENOMEM;
    }
    for (size_t i = 0; i < na; i++) {
        mt_layout_arena_t *r = &v[i];
        r->process = av[i]->process;
        r->arena = av[i]->addr;
        for (int j = 0; j < PYM_POOLS_PER_ARENA; j++) {
            const pool_t *p = &av[i]->pools[j];
            switch ((mt_pool_state_t)p->state) {
            case MT_POOL_UNCARVED: r->pools_uncarved++; break;
            case MT_POOL_USED: r->pools_used++; break;
            case MT_POOL_FULL: r->pools_full++; break;
            case MT_POOL_EMPTY: r->pools_empty++; break;
            }
            if (p->state == MT_POOL_USED || p->state == MT_POOL_FULL) {
                r->blocks_used += p->ref;
                r->bytes_in_use += (int64_t)(p->ref * PYM_CLASS_SIZE(p->cls));
            }
        }
    }
    free(av);
    *out = v;
    *n = na;
    return 0;
}

/* ---- replay ---- */

/* A fork child to copy from its parent: at its fork_child marker (seq,
 * ts), or at its first event when it has none (seq -1). */
typedef struct {
    int64_t child, parent, seq, ts;
    int done;
} fork_t;

typedef struct {
    fork_t *v;
    size_t n;
    size_t next;  /* first fork with a marker not yet applied (v sorted by seq) */
} forks_t;

static int cmp_fork(const void *x, const void *y)
{
    const fork_t *a = x, *b = y;
    return (a->seq > b->seq) - (a->seq < b->seq);
}

static int load_forks(mt_db_t *db, forks_t *f)
{
    mt_stmt_t *st;
    size_t cap = 0;
    int rc = mt_stmt_prepare(db,
                             "SELECT p.id, p.parent_id, m.seq, m.ts FROM processes p"
                             " LEFT JOIN (SELECT process_id, min(seq) AS seq, min(ts) AS ts FROM markers"
                             "            WHERE kind = ?1 GROUP BY process_id) m ON m.process_id = p.id"
                             " WHERE p.parent_id IS NOT NULL",
                             &st);
    if (!rc) rc = mt_stmt_bind_int(st, 1, MT_MK_fork_child);
    while (!rc && (rc = mt_stmt_step(st)) == 1) {
        if (f->n == cap) {
            cap = cap ? cap * 2 : 8;
            fork_t *v = realloc(f->v, cap * sizeof *v);
            if (!v) {
                rc = MT_ENOMEM;
                break;
            }
            f->v = v;
        }
        int marked = mt_stmt_column_type(st, 2) != MT_COL_NULL;
        f->v[f->n++] = (fork_t){.child = mt_stmt_int(st, 0), .parent = mt_stmt_int(st, 1),
                                .seq = marked ? mt_stmt_int(st, 2) : -1, .ts = marked ? mt_stmt_int(st, 3) : -1};
        rc = 0;
    }
    mt_stmt_finalize(st);
    if (rc < 0) return rc;
    if (f->n) qsort(f->v, f->n, sizeof *f->v, cmp_fork);
    while (f->next < f->n && f->v[f->next].seq < 0) f->next++; /* unmarked ones first: skip */
    return 0;
}

/* Applies the marked forks before `seq` (and, with ts >= 0, not after ts). */
static int forks_until(mt_layout_t *m, forks_t *f, int64_t seq, int64_t ts)
{
    for (; f->next < f->n && f->v[f->next].seq < seq && (ts < 0 || f->v[f->next].ts <= ts); f->next++) {
        fork_t *k = &f->v[f->next];
        int rc = mt_layout_fork(m, k->parent, k->child);
        if (rc) return rc;
        k->done = 1;
    }
    return 0;
}

/* Before the first event of `process`: an unmarked fork child is copied now. */
static int fork_unmarked(mt_layout_t *m, forks_t *f, int64_t process)
{
    for (size_t i = 0; i < f->n && f->v[i].seq < 0; i++) {
        fork_t *k = &f->v[i];
        if (k->child != process || k->done) continue;
        k->done = 1;
        if (proc_find(m, process)) return 0;
        return mt_layout_fork(m, k->parent, k->child);
    }
    return 0;
}

static int load_threads(mt_db_t *db, mt_keymap_t *threads)
{
    mt_stmt_t *st;
    int rc = mt_stmt_prepare(db, "SELECT id, process_id FROM threads", &st);
    while (!rc && (rc = mt_stmt_step(st)) == 1) {
        int64_t p = mt_stmt_int(st, 1);
        rc = p >= 0 && p < UINT32_MAX - 1 ? mt_keymap_put(threads, mt_stmt_int(st, 0), 0, (uint32_t)p + 1) : 0;
    }
    mt_stmt_finalize(st);
    return rc < 0 ? rc : 0;
}

int mt_layout_replay(mt_layout_t *m, mt_db_t *db, const mt_layout_replay_opts_t *opts)
{
    static const mt_layout_replay_opts_t none = {.at_seq = -1, .at_ts = -1};
    if (!opts) opts = &none;
    mt_keymap_t threads = {0};
    forks_t forks = {0};
    mt_stmt_t *st = NULL;
    mt_times_t times = {0};
    mt_progress_t prog;
    int rc = mt_progress_start(&prog, opts->progress, db);
    if (!rc) rc = load_threads(db, &threads);
    if (!rc) rc = load_forks(db, &forks);
    /* (the bundled allocator's own events: none is ever folded into
     * another's row, so event_data's rows are all of them) */
    if (!rc)
        rc = mt_stmt_prepare(db,
                             "SELECT seq, kind, thread, addr, size, pool, size_class FROM event_data"
                             " WHERE kind >= ?1 AND kind < ?2 AND seq <= ?3 ORDER BY seq",
                             &st);
    if (!rc) rc = mt_stmt_bind_int(st, 1, MT_KIND_PYM_BASE);
    if (!rc) rc = mt_stmt_bind_int(st, 2, MT_KIND_MAX);
    if (!rc) rc = mt_stmt_bind_int(st, 3, opts->at_seq >= 0 ? opts->at_seq : INT64_MAX);
    if (!rc) rc = mt_times_open(db, &times);
    if (rc) goto out;
    int64_t cached_thread = -1, process = 0;
    unsigned n = 0;
    while ((rc = mt_stmt_step(st)) == 1) {
        mt_layout_event_t ev = {
            .seq = mt_stmt_int(st, 0),
            .kind = (int)(mt_stmt_int(st, 1) - MT_KIND_PYM_BASE),
            .addr = (uint64_t)mt_stmt_int(st, 3),
            .value = mt_stmt_int(st, 4),
            .pool = (uint64_t)mt_stmt_int(st, 5),
            .size_class = mt_stmt_int_or(st, 6, -1),
        };
        ev.ts = mt_times_at(&times, ev.seq);
        if (opts->at_ts >= 0 && ev.ts > opts->at_ts) break;
        int64_t thread = mt_stmt_int(st, 2);
        if (thread != cached_thread) {
            uint32_t k = mt_keymap_get(&threads, thread, 0);
            process = k ? (int64_t)k - 1 : 0;
            cached_thread = thread;
        }
        ev.process = process;
        if ((rc = forks_until(m, &forks, ev.seq, -1))) goto out;
        if (!proc_find(m, process) && (rc = fork_unmarked(m, &forks, process))) goto out;
        if (opts->before && (rc = opts->before(opts->arg, &ev, m))) goto out;
        if ((rc = mt_layout_feed(m, &ev))) goto out;
        if ((++n & 0xffff) == 0) mt_progress_tick(&prog, ev.seq);
    }
    if (rc < 0) goto out;
    /* forks after the last allocator event, up to the moment */
    rc = forks_until(m, &forks, opts->at_seq >= 0 ? opts->at_seq + 1 : INT64_MAX, opts->at_ts);
out:
    mt_progress_end(&prog);
    mt_stmt_finalize(st);
    int trc = mt_times_close(&times);
    mt_keymap_free(&threads);
    free(forks.v);
    return rc < 0 || !trc ? rc : trc;
}
