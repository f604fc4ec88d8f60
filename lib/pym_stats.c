/* pym_stats.c - looking at the bundled allocator as a whole: the statistics
 * snapshot a tracer checks its event reconstruction against, the
 * invariant checker the tests run, event names, and the fork handlers.
 * Everything here takes every lock (heap locks in index order, then the
 * arena lock - the order the allocation paths use), so none of it belongs
 * on a hot path or in the event hook.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "mt_error.h"
#include "pym_internal.h"

static void lock_all(void)
{
#if PYM_GLOBAL_LOCK
    pym_lock(&pym_global_lock);
#else
    for (unsigned h = 0; h < PYM_NHEAPS; h++)
        pym_lock(&pym_heaps[h].lock);
#endif
    pym_lock(&pym_arenas.lock);
}

static void unlock_all(void)
{
    pym_unlock(&pym_arenas.lock);
#if PYM_GLOBAL_LOCK
    pym_unlock(&pym_global_lock);
#else
    for (unsigned h = PYM_NHEAPS; h-- > 0;)
        pym_unlock(&pym_heaps[h].lock);
#endif
}

static pym_pool_t *pool_at(const pym_arena_t *a, uint32_t i)
{
    return (pym_pool_t *)(a->address + ((uintptr_t)i << PYM_POOL_SHIFT));
}

/* ---- statistics ------------------------------------------------------------ */

void pym_stats(pym_stats_t *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned c = 0; c < PYM_NCLASSES; c++)
        out->cls[c].blocks_per_pool = (uint32_t)PYM_CLASS_CAPACITY(c);
    lock_all();
    const pym_arenas_t *A = &pym_arenas;
    for (uint32_t i = 0; i < A->ntable; i++) {
        const pym_arena_t *a = &A->table[i];
        if (a->address == 0)
            continue;
        out->arenas++;
        out->arenas_empty += a->nfreepools == PYM_POOLS_PER_ARENA;
        out->pools_uncarved += PYM_POOLS_PER_ARENA - a->ncarved;
        for (uint32_t j = 0; j < a->ncarved; j++) {
            const pym_pool_t *p = pool_at(a, j);
            unsigned c = PYM_INFO_CLASS(p->info);
            pym_class_stats_t *s = &out->cls[c];
            switch (PYM_INFO_STATE(p->info)) {
            case POOL_USED:
                s->pools_used++;
                s->blocks_used += p->ref;
                s->blocks_free += PYM_CLASS_CAPACITY(c) - p->ref;
                break;
            case POOL_FULL:
                s->pools_full++;
                s->blocks_used += p->ref;
                break;
            case POOL_EMPTY:
                s->pools_empty++;
                break;
            }
        }
    }
    out->arena_bytes = out->arenas * PYM_ARENA_SIZE;
    out->arenas_allocated = A->allocated;
    out->arenas_freed = A->freed;
    unlock_all();
    out->bad_frees = __atomic_load_n(&pym_bad_free_count, __ATOMIC_RELAXED);
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

/* ---- invariants ---------------------------------------------------------------- */

/* Under PYM_DEBUG the first broken invariant is named on stderr. */
#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            if (PYM_DEBUG)                                                            \
                check_report(#cond, __LINE__);                                        \
            return MT_ECORRUPT;                                                       \
        }                                                                             \
    } while (0)

static void check_report(const char *what, int line)
{
    char buf[160];
    size_t n = 0;
    const char *pre = "pym_check: broken: ";
    for (const char *s = pre; *s && n < sizeof buf - 16; s++)
        buf[n++] = *s;
    for (const char *s = what; *s && n < sizeof buf - 16; s++)
        buf[n++] = *s;
    buf[n++] = ' ';
    buf[n++] = '@';
    char num[12];
    int i = 0;
    do {
        num[i++] = (char)('0' + line % 10);
        line /= 10;
    } while (line > 0 && i < 11);
    while (i > 0)
        buf[n++] = num[--i];
    buf[n++] = '\n';
    if (write(2, buf, n) < 0)
        return;
}

/* Free list, bump region and ref of one carved pool add up; every free
 * block is a block start below the bump offset. */
static int check_pool(const pym_pool_t *p, unsigned c)
{
    size_t size = PYM_CLASS_SIZE(c), cap = PYM_CLASS_CAPACITY(c);
    CHECK(p->maxnextoffset == PYM_POOL_SIZE - size);
    CHECK(p->nextoffset >= PYM_POOL_HEADER && (p->nextoffset - PYM_POOL_HEADER) % size == 0);
    size_t bumped = (p->nextoffset - PYM_POOL_HEADER) / size, nfree = 0;
    CHECK(bumped <= cap);
    for (const char *b = p->freeblock; b != NULL; b = *(const char *const *)b) {
        size_t off = (size_t)(b - (const char *)p);
        CHECK(pym_pool_of(b) == p && off >= PYM_POOL_HEADER && off < p->nextoffset);
        CHECK((off - PYM_POOL_HEADER) % size == 0);
        CHECK(++nfree <= bumped); /* also stops a cycle */
    }
    CHECK(p->ref + nfree == bumped);
    return 0;
}

static int check_heaps(void)
{
    for (unsigned h = 0; h < PYM_NHEAPS; h++) {
        const pym_pool_t *prev = NULL;
        unsigned c = PYM_HEAP_CLASS(h);
        size_t n = 0;
        for (const pym_pool_t *p = pym_heaps[h].used; p != NULL; p = p->next) {
            CHECK(p->info == PYM_INFO(POOL_USED, h) && p->prev == prev);
            CHECK(p->ref > 0 && p->ref < PYM_CLASS_CAPACITY(c));
            CHECK(p->freeblock != NULL || p->nextoffset <= p->maxnextoffset);
            CHECK(pym_radix_get((uintptr_t)p));
            CHECK(++n <= (size_t)pym_arenas.ntable * PYM_POOLS_PER_ARENA);
            prev = p;
        }
    }
    return 0;
}

static int check_arena(const pym_arena_t *a, uint32_t index, size_t used_per_heap[])
{
    uint32_t nempty = 0, nlisted = 0;
    CHECK((a->address & (PYM_ARENA_SIZE - 1)) == 0 && pym_radix_get(a->address));
    CHECK(a->ncarved <= PYM_POOLS_PER_ARENA);
    for (uint32_t j = 0; j < a->ncarved; j++) {
        const pym_pool_t *p = pool_at(a, j);
        unsigned state = PYM_INFO_STATE(p->info), h = PYM_INFO_HEAP(p->info);
        unsigned c = PYM_HEAP_CLASS(h);
        CHECK(p->arenaindex == index && state != POOL_UNCARVED && h < PYM_NHEAPS);
        if (check_pool(p, c) != 0)
            return MT_ECORRUPT;
        if (state == POOL_EMPTY) {
            CHECK(p->ref == 0);
            nempty++;
        } else if (state == POOL_FULL) {
            CHECK(p->ref == PYM_CLASS_CAPACITY(c) && p->freeblock == NULL);
            CHECK(p->nextoffset > p->maxnextoffset);
        } else {
            CHECK(state == POOL_USED);
            used_per_heap[h]++;
        }
    }
    for (const pym_pool_t *p = a->freepools; p != NULL; p = p->next) {
        CHECK(pym_arena_of(p) == a->address && PYM_INFO_STATE(p->info) == POOL_EMPTY);
        CHECK(++nlisted <= nempty);
    }
    CHECK(nlisted == nempty);
    CHECK(a->nfreepools == nempty + PYM_POOLS_PER_ARENA - a->ncarved);
    return 0;
}

/* The usable list: sorted, holding exactly the mapped arenas with free
 * pools, last_with[] right, at most one empty arena and it is the cached. */
static int check_usable(uint32_t mapped_with_room)
{
    const pym_arenas_t *A = &pym_arenas;
    const pym_arena_t *prev = NULL;
    uint32_t n = 0, nempty = 0;
    for (const pym_arena_t *a = A->usable; a != NULL; a = a->next) {
        uint32_t k = a->nfreepools;
        CHECK(a->address != 0 && k > 0 && a->prev == prev);
        CHECK(prev == NULL || prev->nfreepools <= k);
        int is_last = a->next == NULL || a->next->nfreepools != k;
        CHECK((A->last_with[k] == a) == is_last);
        nempty += k == PYM_POOLS_PER_ARENA;
        CHECK(++n <= mapped_with_room);
        prev = a;
    }
    CHECK(n == mapped_with_room);
    CHECK(nempty <= 1 && (nempty == 1) == (A->cached != NULL));
    CHECK(A->cached == NULL || A->cached->nfreepools == PYM_POOLS_PER_ARENA);
    for (uint32_t k = 0; k <= PYM_POOLS_PER_ARENA; k++)
        CHECK(A->last_with[k] == NULL || A->last_with[k]->nfreepools == k);
    return 0;
}

static int check_all(void)
{
    const pym_arenas_t *A = &pym_arenas;
    static size_t used_per_heap[PYM_NHEAPS]; /* all locks held: one caller */
    uint32_t mapped = 0, with_room = 0;
    memset(used_per_heap, 0, sizeof used_per_heap);
    if (check_heaps() != 0)
        return MT_ECORRUPT;
    for (uint32_t i = 0; i < A->ntable; i++) {
        const pym_arena_t *a = &A->table[i];
        if (a->address == 0)
            continue;
        mapped++;
        with_room += a->nfreepools > 0;
        if (check_arena(a, i, used_per_heap) != 0)
            return MT_ECORRUPT;
    }
    CHECK(A->allocated - A->freed == mapped);
    for (unsigned h = 0; h < PYM_NHEAPS; h++) {
        size_t n = 0;
        for (const pym_pool_t *p = pym_heaps[h].used; p != NULL; p = p->next)
            n++;
        CHECK(n == used_per_heap[h]);
    }
    return check_usable(with_room);
}

int pym_check(void)
{
    lock_all();
    int rc = check_all();
    unlock_all();
    return rc;
}

/* ---- names ------------------------------------------------------------------ */

const char *pym_event_name(int kind)
{
    switch (kind) {
#define X(code, name, desc) \
    case code:              \
        return #name;
        PYM_EVENTS(X)
#undef X
    }
    return NULL;
}

const char *pym_event_description(int kind)
{
    switch (kind) {
#define X(code, name, desc) \
    case code:              \
        return desc;
        PYM_EVENTS(X)
#undef X
    }
    return NULL;
}

const char *pym_bad_free_name(int reason)
{
    switch (reason) {
#define X(code, name, desc) \
    case code:              \
        return #name;
        PYM_BAD_FREES(X)
#undef X
    }
    return NULL;
}

/* ---- fork --------------------------------------------------------------------- */

void pym_atfork_prepare(void)
{
    lock_all();
}

void pym_atfork_parent(void)
{
    unlock_all();
}

/* The child is the only thread: every lock the parent's threads held is
 * the forking thread's now (prepare took them), so they can be reset. */
void pym_atfork_child(void)
{
    __atomic_store_n(&pym_arenas.lock.v, 0u, __ATOMIC_RELAXED);
#if PYM_GLOBAL_LOCK
    __atomic_store_n(&pym_global_lock.v, 0u, __ATOMIC_RELAXED);
#endif
    for (unsigned h = 0; h < PYM_NHEAPS; h++)
        __atomic_store_n(&pym_heaps[h].lock.v, 0u, __ATOMIC_RELAXED);
}

int pym_atfork_register(void)
{
    static int registered;
    if (__atomic_exchange_n(&registered, 1, __ATOMIC_ACQ_REL))
        return 0;
    if (pthread_atfork(pym_atfork_prepare, pym_atfork_parent, pym_atfork_child) != 0) {
        __atomic_store_n(&registered, 0, __ATOMIC_RELEASE);
        return MT_ENOMEM;
    }
    return 0;
}
