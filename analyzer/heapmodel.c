/* heapmodel.c - the streaming heap model (contract and rules in heapmodel.h).
 *
 * Data structures:
 *
 *   mt_heap_t
 *     procs[]    one per process: `heap` and `maps`, two blockmaps
 *     threads[]  one per thread: its process and its last heap allocation
 *     thread_ix  idmap threads.id -> index in threads[]
 *     proc_ix    idmap processes.id -> index in procs[]
 *
 *   blockmap  address -> (size, stack, seq, ts), open addressing with linear
 *             probing and backward-shift deletion (no tombstones, so a
 *             map that sees millions of malloc/free pairs does not decay).
 *             Address 0 marks an empty slot: it is never a block.  The
 *             capacity is a power of two, the load at most 3/4; the home
 *             slot is the top bits of addr * 2^64/phi (Fibonacci hashing,
 *             which spreads 16-byte-aligned addresses well).
 *
 *   idmap     u64 -> index, insert and lookup only (ids, stacks), with
 *             value IDMAP_EMPTY marking an empty slot so that key 0 is a
 *             key like any other.
 *
 * Temporary allocations: each thread remembers the address of its last heap
 * event when that event created a block (0 otherwise).  The next heap event
 * of the thread clears it; if that event ends exactly that block, the
 * allocation was temporary.
 */
#include "heapmodel.h"

#include "mt_error.h"
#include "mt_event.h"
#include "progress.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIB64 0x9E3779B97F4A7C15ull
#define MAP_MIN_BITS 10

/* ---- blockmap ---- */

typedef struct {
    uint64_t addr;  /* 0: empty slot */
    int64_t size;
    int64_t stack;
    int64_t seq;    /* seq and ts of the allocation */
    int64_t ts;
} slot_t;

typedef struct {
    slot_t *slots;
    unsigned bits;   /* capacity = 1 << bits (0: not allocated yet) */
    size_t count;
} blockmap_t;

static inline size_t bm_home(const blockmap_t *m, uint64_t addr)
{
    return (size_t)((addr * FIB64) >> (64 - m->bits));
}

static slot_t *bm_find(const blockmap_t *m, uint64_t addr)
{
    if (!m->bits) return NULL;
    size_t mask = ((size_t)1 << m->bits) - 1;
    for (size_t i = bm_home(m, addr);; i = (i + 1) & mask) {
        if (m->slots[i].addr == addr) return &m->slots[i];
        if (!m->slots[i].addr) return NULL;
    }
}

/* Places a slot known to be absent, in a map known to have room. */
static slot_t *bm_place(blockmap_t *m, uint64_t addr)
{
    size_t mask = ((size_t)1 << m->bits) - 1;
    size_t i = bm_home(m, addr);
    while (m->slots[i].addr) i = (i + 1) & mask;
    m->slots[i].addr = addr;
    m->count++;
    return &m->slots[i];
}

static int bm_grow(blockmap_t *m)
{
    unsigned bits = m->bits ? m->bits + 1 : MAP_MIN_BITS;
    slot_t *fresh = calloc((size_t)1 << bits, sizeof *fresh);
    if (!fresh) return MT_ENOMEM;
    blockmap_t old = *m;
    m->slots = fresh;
    m->bits = bits;
    m->count = 0;
    for (size_t i = 0; old.bits && i < (size_t)1 << old.bits; i++)
        if (old.slots[i].addr) *bm_place(m, old.slots[i].addr) = old.slots[i];
    free(old.slots);
    return 0;
}

/* Finds or creates the slot of addr (addr != 0).  *existed says which; a new
 * slot has only its address set.  Returns 0 or MT_ENOMEM. */
static int bm_put(blockmap_t *m, uint64_t addr, slot_t **out, int *existed)
{
    assert(addr != 0);
    slot_t *s = bm_find(m, addr);
    *existed = s != NULL;
    if (!s) {
        if (!m->bits || (m->count + 1) * 4 > ((size_t)3 << m->bits)) {
            int rc = bm_grow(m);
            if (rc) return rc;
        }
        s = bm_place(m, addr);
    }
    *out = s;
    return 0;
}

/* Removes the slot `s` (a pointer into m->slots), shifting back the slots of
 * its probe run that may move closer to home. */
static void bm_remove(blockmap_t *m, slot_t *s)
{
    size_t mask = ((size_t)1 << m->bits) - 1;
    size_t hole = (size_t)(s - m->slots);
    for (size_t j = (hole + 1) & mask; m->slots[j].addr; j = (j + 1) & mask) {
        size_t home = bm_home(m, m->slots[j].addr);
        /* the entry at j may fill the hole unless its home lies cyclically
         * in (hole, j] */
        int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].addr = 0;
    m->count--;
}

static void bm_free(blockmap_t *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- idmap ---- */

#define IDMAP_EMPTY SIZE_MAX

typedef struct {
    uint64_t key;
    size_t val;  /* IDMAP_EMPTY: empty slot */
} idslot_t;

typedef struct {
    idslot_t *slots;
    unsigned bits;
    size_t count;
} idmap_t;

static size_t idmap_get(const idmap_t *m, uint64_t key)
{
    if (!m->bits) return IDMAP_EMPTY;
    size_t mask = ((size_t)1 << m->bits) - 1;
    for (size_t i = (size_t)((key * FIB64) >> (64 - m->bits));; i = (i + 1) & mask) {
        if (m->slots[i].val == IDMAP_EMPTY) return IDMAP_EMPTY;
        if (m->slots[i].key == key) return m->slots[i].val;
    }
}

static void idmap_place(idmap_t *m, uint64_t key, size_t val)
{
    size_t mask = ((size_t)1 << m->bits) - 1;
    size_t i = (size_t)((key * FIB64) >> (64 - m->bits));
    while (m->slots[i].val != IDMAP_EMPTY) i = (i + 1) & mask;
    m->slots[i].key = key;
    m->slots[i].val = val;
    m->count++;
}

/* Adds key -> val; key must be absent.  Returns 0 or MT_ENOMEM. */
static int idmap_add(idmap_t *m, uint64_t key, size_t val)
{
    if (!m->bits || (m->count + 1) * 4 > ((size_t)3 << m->bits)) {
        unsigned bits = m->bits ? m->bits + 1 : 6;
        idslot_t *fresh = malloc(sizeof *fresh << bits);
        if (!fresh) return MT_ENOMEM;
        for (size_t i = 0; i < (size_t)1 << bits; i++) fresh[i].val = IDMAP_EMPTY;
        idmap_t old = *m;
        m->slots = fresh;
        m->bits = bits;
        m->count = 0;
        for (size_t i = 0; old.bits && i < (size_t)1 << old.bits; i++)
            if (old.slots[i].val != IDMAP_EMPTY) idmap_place(m, old.slots[i].key, old.slots[i].val);
        free(old.slots);
    }
    idmap_place(m, key, val);
    return 0;
}

static void idmap_free(idmap_t *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- the model ---- */

typedef struct {
    int64_t id;        /* processes.id */
    blockmap_t heap;   /* live libc blocks */
    blockmap_t maps;   /* live os regions */
} proc_t;

typedef struct {
    size_t proc;          /* index in procs[] */
    uint64_t last_alloc;  /* block created by this thread's last heap event, or 0 */
} thread_t;

struct mt_heap {
    mt_heap_stats_t st;
    proc_t *procs;
    size_t nprocs, procs_cap;
    thread_t *threads;
    size_t nthreads, threads_cap;
    idmap_t proc_ix, thread_ix;
    int64_t cached_thread;   /* last thread looked up (events come in runs) */
    size_t cached_ix;        /* its index, IDMAP_EMPTY: none */
    unsigned char kflags[MT_EV_COUNT], kdomain[MT_EV_COUNT];
    int layer;               /* domain modelled as the heap */
};

int mt_heap_create(mt_heap_t **out)
{
    *out = NULL;
    mt_heap_t *h = calloc(1, sizeof *h);
    if (!h) return MT_ENOMEM;
    h->st.peak_seq = h->st.peak_mapped_seq = -1;
    h->cached_ix = IDMAP_EMPTY;
    for (int k = 0; k < MT_EV_COUNT; k++) {
        h->kflags[k] = (unsigned char)mt_kind_flags(k);
        h->kdomain[k] = (unsigned char)mt_kind_domain(k);
    }
    *out = h;
    return 0;
}

void mt_heap_set_layer(mt_heap_t *h, int layer) { h->layer = layer; }

int mt_heap_layer_code(const char *name)
{
    static const int ok[] = {MT_DOM_libc, MT_DOM_pymem_raw, MT_DOM_pymem, MT_DOM_pyobj, MT_DOM_pyarena};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!strcmp(name, mt_domain_name(ok[i]))) return ok[i];
    return -1;
}

void mt_heap_destroy(mt_heap_t *h)
{
    if (!h) return;
    for (size_t i = 0; i < h->nprocs; i++) {
        bm_free(&h->procs[i].heap);
        bm_free(&h->procs[i].maps);
    }
    free(h->procs);
    free(h->threads);
    idmap_free(&h->proc_ix);
    idmap_free(&h->thread_ix);
    free(h);
}

/* Index of process `id` in procs[], created on first use. */
static int proc_get(mt_heap_t *h, int64_t id, size_t *ix)
{
    size_t i = idmap_get(&h->proc_ix, (uint64_t)id);
    if (i != IDMAP_EMPTY) {
        *ix = i;
        return 0;
    }
    if (h->nprocs == h->procs_cap) {
        size_t cap = h->procs_cap ? h->procs_cap * 2 : 4;
        proc_t *p = realloc(h->procs, cap * sizeof *p);
        if (!p) return MT_ENOMEM;
        h->procs = p;
        h->procs_cap = cap;
    }
    if (idmap_add(&h->proc_ix, (uint64_t)id, h->nprocs)) return MT_ENOMEM;
    memset(&h->procs[h->nprocs], 0, sizeof h->procs[0]);
    h->procs[h->nprocs].id = id;
    *ix = h->nprocs++;
    return 0;
}

static int thread_add(mt_heap_t *h, int64_t thread, int64_t process, size_t *ix)
{
    size_t p;
    int rc = proc_get(h, process, &p);
    if (rc) return rc;
    if (h->nthreads == h->threads_cap) {
        size_t cap = h->threads_cap ? h->threads_cap * 2 : 16;
        thread_t *t = realloc(h->threads, cap * sizeof *t);
        if (!t) return MT_ENOMEM;
        h->threads = t;
        h->threads_cap = cap;
    }
    if (idmap_add(&h->thread_ix, (uint64_t)thread, h->nthreads)) return MT_ENOMEM;
    h->threads[h->nthreads] = (thread_t){.proc = p, .last_alloc = 0};
    *ix = h->nthreads++;
    return 0;
}

int mt_heap_set_thread(mt_heap_t *h, int64_t thread, int64_t process)
{
    size_t ix = idmap_get(&h->thread_ix, (uint64_t)thread);
    if (ix != IDMAP_EMPTY) {
        size_t p;
        int rc = proc_get(h, process, &p);
        if (!rc) h->threads[ix].proc = p;
        return rc;
    }
    return thread_add(h, thread, process, &ix);
}

static int thread_get(mt_heap_t *h, int64_t thread, thread_t **out)
{
    size_t ix = h->cached_ix;
    if (ix == IDMAP_EMPTY || h->cached_thread != thread) {
        ix = idmap_get(&h->thread_ix, (uint64_t)thread);
        if (ix == IDMAP_EMPTY) {
            int rc = thread_add(h, thread, 0, &ix);
            if (rc) return rc;
        }
        h->cached_thread = thread;
        h->cached_ix = ix;
    }
    *out = &h->threads[ix];
    return 0;
}

/* A libc-domain event (not failed) of thread t.  Grows the map before
 * touching anything, so MT_ENOMEM leaves the model as it was. */
static int feed_heap(mt_heap_t *h, thread_t *t, const mt_db_event_t *ev, unsigned fl,
                     mt_heap_delta_t *d)
{
    mt_heap_stats_t *st = &h->st;
    blockmap_t *m = &h->procs[t->proc].heap;
    uint64_t last = t->last_alloc;
    uint64_t victim = fl & MT_KF_FREE ? (fl & MT_KF_ALLOC ? ev->old_addr : ev->addr) : 0;
    uint64_t born = fl & MT_KF_ALLOC ? ev->addr : 0;
    slot_t *s;
    int existed, rc;

    /* reserve room for the new block first (realloc in place reuses it) */
    if (born && !bm_find(m, born) && (!m->bits || (m->count + 1) * 4 > ((size_t)3 << m->bits))) {
        if ((rc = bm_grow(m))) return rc;
    }
    t->last_alloc = 0;
    if (victim) {
        s = bm_find(m, victim);
        if (s) {
            d->free_bytes = s->size;
            d->free_stack = s->stack;
            d->free_seq = s->seq;
            d->free_ts = s->ts;
            d->flags |= MT_HEAP_FX_FREE;
            st->live_bytes -= s->size;
            st->live_blocks--;
            st->frees++;
            bm_remove(m, s);
            if (victim == last) {
                st->temporary++;
                d->flags |= MT_HEAP_FX_TEMPORARY;
            }
        } else {
            st->unknown_frees++;
            d->flags |= MT_HEAP_FX_UNKNOWN;
        }
    }
    if (born) {
        int64_t size = ev->size > 0 ? ev->size : 0;
        if ((rc = bm_put(m, born, &s, &existed))) return rc; /* cannot fail: room reserved */
        if (existed) {
            st->replaced_live++;
            st->live_bytes -= s->size;
            st->live_blocks--;
            d->replaced_bytes = s->size;
            d->replaced_stack = s->stack;
            d->flags |= MT_HEAP_FX_REPLACED;
        }
        s->size = size;
        s->stack = ev->stack;
        s->seq = ev->seq;
        s->ts = ev->ts;
        st->live_bytes += size;
        st->live_blocks++;
        st->allocs++;
        d->alloc_bytes = size;
        d->flags |= MT_HEAP_FX_ALLOC;
        t->last_alloc = born;
        if (st->live_bytes > st->peak_bytes) {
            st->peak_bytes = st->live_bytes;
            st->peak_blocks = st->live_blocks;
            st->peak_seq = ev->seq;
            st->peak_ts = ev->ts;
            d->flags |= MT_HEAP_FX_PEAK;
        }
    }
    return 0;
}

/* An os-domain event (not failed) of thread t.  Same MT_ENOMEM rule. */
static int feed_os(mt_heap_t *h, thread_t *t, const mt_db_event_t *ev, unsigned fl,
                   mt_heap_delta_t *d)
{
    mt_heap_stats_t *st = &h->st;
    blockmap_t *m = &h->procs[t->proc].maps;
    uint64_t victim = fl & MT_KF_FREE ? (fl & MT_KF_ALLOC ? ev->old_addr : ev->addr) : 0;
    uint64_t born = fl & MT_KF_ALLOC ? ev->addr : 0;
    slot_t *s;
    int existed, rc;

    d->flags |= MT_HEAP_FX_OS;
    /* room for a new region and for the tail a short munmap leaves */
    if ((born || victim) && (!m->bits || (m->count + 2) * 4 > ((size_t)3 << m->bits))) {
        if ((rc = bm_grow(m))) return rc;
    }
    if (victim) {
        s = bm_find(m, victim);
        if (s) {
            int64_t gone = s->size;
            slot_t tail = *s;
            d->free_stack = s->stack;
            d->free_seq = s->seq;
            d->free_ts = s->ts;
            bm_remove(m, s);
            if (!born && ev->size > 0 && ev->size < gone) {
                /* munmap of the start of the region: the tail stays mapped */
                tail.addr = victim + (uint64_t)ev->size;
                tail.size = gone - ev->size;
                if ((rc = bm_put(m, tail.addr, &s, &existed))) return rc;
                if (existed) {
                    st->mapped_bytes -= s->size;
                    st->mapped_regions--;
                    d->replaced_bytes = s->size;
                    d->replaced_stack = s->stack;
                    d->flags |= MT_HEAP_FX_REPLACED;
                }
                *s = tail;
                gone = ev->size;
                d->flags |= MT_HEAP_FX_PARTIAL;
            } else {
                st->mapped_regions--;
            }
            st->mapped_bytes -= gone;
            st->unmaps++;
            d->free_bytes = gone;
            d->flags |= MT_HEAP_FX_FREE;
        } else {
            st->unknown_unmaps++;
            d->flags |= MT_HEAP_FX_UNKNOWN;
        }
    }
    if (born) {
        int64_t size = ev->size > 0 ? ev->size : 0;
        if ((rc = bm_put(m, born, &s, &existed))) return rc;
        if (existed) { /* MAP_FIXED over a region that starts here */
            st->mapped_bytes -= s->size;
            st->mapped_regions--;
            d->replaced_bytes = s->size;
            d->replaced_stack = s->stack;
            d->flags |= MT_HEAP_FX_REPLACED;
        }
        s->size = size;
        s->stack = ev->stack;
        s->seq = ev->seq;
        s->ts = ev->ts;
        st->mapped_bytes += size;
        st->mapped_regions++;
        st->maps++;
        d->alloc_bytes = size;
        d->flags |= MT_HEAP_FX_ALLOC;
        if (st->mapped_bytes > st->peak_mapped_bytes) {
            st->peak_mapped_bytes = st->mapped_bytes;
            st->peak_mapped_seq = ev->seq;
            st->peak_mapped_ts = ev->ts;
            d->flags |= MT_HEAP_FX_MAP_PEAK;
        }
    }
    return 0;
}

int mt_heap_feed(mt_heap_t *h, const mt_db_event_t *ev, mt_heap_delta_t *d)
{
    mt_heap_delta_t scratch;
    if (!d) d = &scratch;
    memset(d, 0, sizeof *d);
    mt_heap_stats_t *st = &h->st;
    st->events++;
    st->last_seq = ev->seq;
    st->last_ts = ev->ts;
    if (ev->failed) {
        st->failed++;
        return 0;
    }
    if (ev->kind < 0 || ev->kind >= MT_EV_COUNT) return 0;
    unsigned fl = h->kflags[ev->kind];
    int dom = h->kdomain[ev->kind];
    if (!(fl & (MT_KF_ALLOC | MT_KF_FREE)) || (dom != h->layer && dom != MT_DOM_os)) return 0;
    thread_t *t;
    int rc = thread_get(h, ev->thread, &t);
    if (rc) return rc;
    d->process = h->procs[t->proc].id;
    return dom == h->layer ? feed_heap(h, t, ev, fl, d) : feed_os(h, t, ev, fl, d);
}

const mt_heap_stats_t *mt_heap_stats(const mt_heap_t *h) { return &h->st; }

void mt_heap_foreach_live(const mt_heap_t *h, void (*fn)(void *arg, const mt_heap_block_t *b),
                          void *arg)
{
    for (size_t p = 0; p < h->nprocs; p++) {
        const blockmap_t *m = &h->procs[p].heap;
        for (size_t i = 0; m->bits && i < (size_t)1 << m->bits; i++) {
            const slot_t *s = &m->slots[i];
            if (!s->addr) continue;
            mt_heap_block_t b = {.addr = s->addr, .size = s->size, .stack = s->stack,
                                 .seq = s->seq, .process = h->procs[p].id, .ts = s->ts};
            fn(arg, &b);
        }
    }
}

typedef struct {
    idmap_t ix;            /* stack -> index in groups */
    mt_heap_group_t *groups;
    size_t n, cap;
    int rc;
} grouping_t;

static void group_block(void *arg, const mt_heap_block_t *b)
{
    grouping_t *g = arg;
    if (g->rc) return;
    size_t i = idmap_get(&g->ix, (uint64_t)b->stack);
    if (i == IDMAP_EMPTY) {
        if (g->n == g->cap) {
            size_t cap = g->cap ? g->cap * 2 : 64;
            mt_heap_group_t *p = realloc(g->groups, cap * sizeof *p);
            if (!p) {
                g->rc = MT_ENOMEM;
                return;
            }
            g->groups = p;
            g->cap = cap;
        }
        if ((g->rc = idmap_add(&g->ix, (uint64_t)b->stack, g->n))) return;
        i = g->n++;
        g->groups[i] = (mt_heap_group_t){.stack = b->stack, .first_seq = b->seq};
    }
    mt_heap_group_t *gr = &g->groups[i];
    gr->blocks++;
    gr->bytes += b->size;
    if (b->seq < gr->first_seq) gr->first_seq = b->seq;
}

static int cmp_group(const void *a, const void *b)
{
    const mt_heap_group_t *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    if (x->blocks != y->blocks) return x->blocks > y->blocks ? -1 : 1;
    return (x->stack > y->stack) - (x->stack < y->stack);
}

int mt_heap_leaks(const mt_heap_t *h, mt_heap_group_t **out, size_t *n)
{
    grouping_t g = {0};
    *out = NULL;
    *n = 0;
    mt_heap_foreach_live(h, group_block, &g);
    idmap_free(&g.ix);
    if (g.rc) {
        free(g.groups);
        return g.rc;
    }
    if (g.n) qsort(g.groups, g.n, sizeof *g.groups, cmp_group);
    *out = g.groups;
    *n = g.n;
    return 0;
}

/* ---- replay ---- */

int mt_heap_load_threads(mt_heap_t *h, mt_db_t *db)
{
    mt_stmt_t *st;
    int rc = mt_stmt_prepare(db, "SELECT id, process_id FROM threads", &st);
    if (rc) return rc;
    while ((rc = mt_stmt_step(st)) == 1)
        if ((rc = mt_heap_set_thread(h, mt_stmt_int(st, 0), mt_stmt_int(st, 1)))) break;
    mt_stmt_finalize(st);
    return rc;
}

int mt_heap_replay(mt_heap_t *h, mt_db_t *db, const mt_heap_replay_opts_t *opts)
{
    static const mt_heap_replay_opts_t none = {0};
    if (!opts) opts = &none;
    mt_progress_t prog;
    mt_evread_t *st = NULL;
    if (opts->layer) h->layer = opts->layer;
    int rc = mt_progress_start(&prog, opts->progress, db);
    if (!rc) rc = mt_heap_load_threads(h, db);
    if (rc) goto out;
    rc = mt_evread_open(db, NULL, &st);
    if (rc) goto out;
    mt_db_event_t ev;
    mt_heap_delta_t d;
    unsigned n = 0;
    while ((rc = mt_evread_next(st, &ev)) == 1) {
        if (ev.size < 0) ev.size = 0; /* NULL (frees) reads as 0 */
        if ((rc = mt_heap_feed(h, &ev, &d))) goto out;
        if (opts->visit && (rc = opts->visit(opts->arg, &ev, &d))) {
            if (rc > 0) rc = 0;
            goto out;
        }
        if ((++n & 0xffff) == 0) mt_progress_tick(&prog, ev.seq);
    }
out:
    mt_progress_end(&prog);
    mt_evread_close(st);
    return rc;
}
