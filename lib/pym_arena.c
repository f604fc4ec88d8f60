/* pym_arena.c - arenas of the bundled allocator: where pools come from.
 *
 * Maps 1 MiB-aligned arenas (raw system calls or the embedder's pym_os_t),
 * records them in the radix map that pym_owns() reads, keeps the usable
 * ones in a list sorted by free-pool count, hands pools to size classes and
 * takes empty ones back, caching at most one empty arena and unmapping any
 * other (design and invariants: pym.h, "Arenas").
 *
 * Sorted list in O(1): last_with[k] is the last usable arena with k free
 * pools.  A pool is always taken from the head (fewest free pools), whose
 * count drops below every other, so it stays the head.  An arena that gets
 * a pool back goes from k to k + 1 free pools: it moves to just after
 * last_with[k] - the end of the run of k's, which is the start of the run
 * of k + 1's - so the list stays sorted without a search.
 *
 * Everything here runs under the arena lock (pym_arenas.lock), taken after
 * a heap's lock when a heap needs or returns a pool.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mt_error.h"
#include "pym_internal.h"

PYM_HIDDEN pym_arenas_t pym_arenas;
PYM_HIDDEN uint8_t *pym_radix_top[1u << PYM_RADIX_TOP_BITS];

#define LEAF_BYTES ((size_t)1 << PYM_RADIX_LEAF_BITS)
#define FIRST_TABLE 16u /* arena objects in the first table */

/* ---- the OS ------------------------------------------------------------- */

/* mmap/munmap as system calls: a tracer interposing mmap never sees them. */
static void *sys_map(void *ctx, size_t size)
{
    (void)ctx;
    long r = syscall(SYS_mmap, (void *)0, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, (off_t)0);
    return r == -1 ? NULL : (void *)r;
}

static void sys_unmap(void *ctx, void *addr, size_t size)
{
    (void)ctx;
    syscall(SYS_munmap, addr, size);
}

static pym_os_t os_cur = {NULL, sys_map, sys_unmap};

int pym_set_os(const pym_os_t *os)
{
    int rc = 0;
    if (os != NULL && (os->map == NULL || os->unmap == NULL))
        return MT_EINVAL;
    pym_lock(&pym_arenas.lock);
    if (pym_arenas.allocated != pym_arenas.freed) {
        rc = MT_EINVAL; /* arenas in place would be unmapped by another */
        goto out;
    }
    if (os != NULL)
        os_cur = *os;
    else
        os_cur = (pym_os_t){NULL, sys_map, sys_unmap};
out:
    pym_unlock(&pym_arenas.lock);
    return rc;
}

/* A 1 MiB-aligned arena: a 1 MiB mapping when it happens to be aligned
 * (typical once the first one is: the kernel places mappings next to each
 * other), else 2 MiB with the ends cut off.  0 on failure. */
static uintptr_t arena_map(void)
{
    char *m = os_cur.map(os_cur.ctx, PYM_ARENA_SIZE);
    if (m == NULL)
        return 0;
    if (((uintptr_t)m & (PYM_ARENA_SIZE - 1)) == 0)
        return (uintptr_t)m;
    os_cur.unmap(os_cur.ctx, m, PYM_ARENA_SIZE);
    m = os_cur.map(os_cur.ctx, 2 * PYM_ARENA_SIZE);
    if (m == NULL)
        return 0;
    uintptr_t base = ((uintptr_t)m + PYM_ARENA_SIZE - 1) & ~(uintptr_t)(PYM_ARENA_SIZE - 1);
    size_t head = base - (uintptr_t)m;
    if (head != 0)
        os_cur.unmap(os_cur.ctx, m, head);
    if (PYM_ARENA_SIZE - head != 0)
        os_cur.unmap(os_cur.ctx, (char *)base + PYM_ARENA_SIZE, PYM_ARENA_SIZE - head);
    return base;
}

/* ---- radix map ---------------------------------------------------------- */

/* Marks the arena at base mapped (v = 1) or not (0).  MT_ENOMEM when a
 * leaf cannot be mapped (only possible for v = 1). */
static int radix_set(uintptr_t base, uint8_t v)
{
    uintptr_t key = base >> PYM_ARENA_SHIFT;
    PYM_ASSERT((key >> PYM_RADIX_KEY_BITS) == 0);
    uint8_t **slot = &pym_radix_top[key >> PYM_RADIX_LEAF_BITS];
    uint8_t *leaf = *slot;
    if (leaf == NULL) {
        if (v == 0)
            return 0;
        leaf = sys_map(NULL, LEAF_BYTES);
        if (leaf == NULL)
            return MT_ENOMEM;
        __atomic_store_n(slot, leaf, __ATOMIC_RELEASE); /* leaves are never freed */
    }
    __atomic_store_n(&leaf[key & (LEAF_BYTES - 1)], v, __ATOMIC_RELAXED);
    return 0;
}

int pym_owns(const void *ptr)
{
    return pym_radix_get((uintptr_t)ptr);
}

/* ---- arena objects ------------------------------------------------------ */

static size_t table_bytes(uint32_t n)
{
    size_t b = (size_t)n * sizeof(pym_arena_t);
    return (b + 4095) & ~(size_t)4095;
}

/* Doubles the table of arena objects and puts the new ones on the unused
 * list.  Precondition: no pointer into the table exists (no usable arena,
 * no unused object; full arenas are on no list).  MT_ENOMEM on failure. */
static int table_grow(void)
{
    pym_arenas_t *A = &pym_arenas;
    PYM_ASSERT(A->usable == NULL && A->unused == NULL && A->cached == NULL);
#if PYM_DEBUG
    for (uint32_t k = 0; k <= PYM_POOLS_PER_ARENA; k++)
        PYM_ASSERT(A->last_with[k] == NULL);
#endif
    uint32_t n = A->ntable ? A->ntable * 2 : FIRST_TABLE;
    pym_arena_t *t = sys_map(NULL, table_bytes(n));
    if (t == NULL)
        return MT_ENOMEM;
    if (A->table != NULL) {
        memcpy(t, A->table, (size_t)A->ntable * sizeof(pym_arena_t));
        sys_unmap(NULL, A->table, table_bytes(A->ntable));
    }
    for (uint32_t i = n; i-- > A->ntable;) {
        t[i].next = A->unused;
        A->unused = &t[i];
    }
    A->table = t;
    A->ntable = n;
    return 0;
}

/* ---- the usable list ----------------------------------------------------- */

static void usable_unlink(pym_arena_t *a)
{
    pym_arenas_t *A = &pym_arenas;
    uint32_t k = a->nfreepools;
    if (A->last_with[k] == a)
        A->last_with[k] = (a->prev && a->prev->nfreepools == k) ? a->prev : NULL;
    if (a->prev)
        a->prev->next = a->next;
    else
        A->usable = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->next = a->prev = NULL;
}

/* Links a after pos (NULL: at the head); last_with is the caller's. */
static void usable_insert_after(pym_arena_t *pos, pym_arena_t *a)
{
    pym_arenas_t *A = &pym_arenas;
    a->prev = pos;
    a->next = pos ? pos->next : A->usable;
    if (a->next)
        a->next->prev = a;
    if (pos)
        pos->next = a;
    else
        A->usable = a;
}

/* The head arena gave a pool away: k -> k - 1 free pools. */
static void arena_took_pool(pym_arena_t *a)
{
    pym_arenas_t *A = &pym_arenas;
    uint32_t k = a->nfreepools;
    PYM_ASSERT(a == A->usable && k > 0);
    if (k == 1) { /* USABLE -> FULL: leaves the list */
        usable_unlink(a);
        a->nfreepools = 0;
        return;
    }
    if (A->last_with[k] == a) /* a is the head: it was the only one with k */
        A->last_with[k] = NULL;
    a->nfreepools = k - 1;
    PYM_ASSERT(A->last_with[k - 1] == NULL); /* the head had the fewest */
    A->last_with[k - 1] = a;
}

/* Unmaps an empty arena (on the usable list) and frees its object.
 * Emits arena_free before the address can be mapped again. */
static void arena_release(pym_arena_t *a)
{
    pym_arenas_t *A = &pym_arenas;
    uintptr_t base = a->address;
    PYM_ASSERT(a->nfreepools == PYM_POOLS_PER_ARENA && a != A->cached);
    usable_unlink(a);
    radix_set(base, 0);
    pym_emit(PYM_EV_arena_free, base, 0, 0, PYM_NO_CLASS, PYM_ARENA_SIZE);
    os_cur.unmap(os_cur.ctx, (void *)base, PYM_ARENA_SIZE);
    memset(a, 0, sizeof *a);
    a->next = A->unused;
    A->unused = a;
    A->freed++;
}

/* An arena got a pool back: k -> k + 1 free pools; at 64 it is cached
 * (when no other empty arena is) or unmapped. */
static void arena_gave_pool(pym_arena_t *a)
{
    pym_arenas_t *A = &pym_arenas;
    uint32_t k = a->nfreepools;
    if (k == 0) { /* FULL -> USABLE: at the head (1 is the fewest possible) */
        a->nfreepools = 1;
        usable_insert_after(NULL, a);
        if (A->last_with[1] == NULL)
            A->last_with[1] = a;
    } else {
        pym_arena_t *last = A->last_with[k];
        PYM_ASSERT(last != NULL);
        if (last == a) /* already at the end of the k's: stays */
            A->last_with[k] = (a->prev && a->prev->nfreepools == k) ? a->prev : NULL;
        else { /* to the end of the k's = the start of the k + 1's */
            usable_unlink(a);
            usable_insert_after(last, a);
        }
        a->nfreepools = k + 1;
        if (A->last_with[k + 1] == NULL)
            A->last_with[k + 1] = a;
    }
    if (a->nfreepools == PYM_POOLS_PER_ARENA) {
        if (A->cached == NULL)
            A->cached = a;
        else
            arena_release(a);
    }
}

/* Maps a new arena and puts it on the (empty) usable list.  Emits
 * arena_alloc.  NULL when the OS or the table refuses; errno is kept. */
static pym_arena_t *arena_new(void)
{
    pym_arenas_t *A = &pym_arenas;
    int saved = errno;
    pym_arena_t *a = NULL;
    PYM_ASSERT(A->usable == NULL);
    if (A->unused == NULL && table_grow() != 0)
        goto out;
    uintptr_t base = arena_map();
    if (base == 0)
        goto out;
    if ((base >> PYM_ARENA_SHIFT) >> PYM_RADIX_KEY_BITS || radix_set(base, 1) != 0) {
        os_cur.unmap(os_cur.ctx, (void *)base, PYM_ARENA_SIZE);
        goto out;
    }
    a = A->unused;
    A->unused = a->next;
    memset(a, 0, sizeof *a);
    a->address = base;
    a->nfreepools = PYM_POOLS_PER_ARENA;
    usable_insert_after(NULL, a);
    A->last_with[PYM_POOLS_PER_ARENA] = a;
    A->allocated++;
    pym_emit(PYM_EV_arena_alloc, base, 0, 0, PYM_NO_CLASS, PYM_ARENA_SIZE);
out:
    errno = saved;
    return a;
}

/* ---- pools ----------------------------------------------------------------- */

pym_pool_t *pym_pool_take(unsigned c, int *origin)
{
    pym_arenas_t *A = &pym_arenas;
    pym_pool_t *p = NULL;
    pym_lock(&A->lock);
    pym_arena_t *a = A->usable;
    if (a == NULL && (a = arena_new()) == NULL)
        goto out;
    if (a == A->cached)
        A->cached = NULL;
    if (a->freepools != NULL) { /* an EMPTY pool, most recently emptied first */
        p = a->freepools;
        a->freepools = p->next;
        uint32_t info = __atomic_load_n(&p->info, __ATOMIC_RELAXED);
        PYM_ASSERT(PYM_INFO_STATE(info) == POOL_EMPTY);
        *origin = PYM_INFO_CLASS(info) == c ? PYM_POOL_SAME : PYM_POOL_OTHER;
    } else { /* the next UNCARVED pool, in address order */
        PYM_ASSERT(a->ncarved < PYM_POOLS_PER_ARENA);
        p = (pym_pool_t *)(a->address + ((uintptr_t)a->ncarved << PYM_POOL_SHIFT));
        a->ncarved++;
        p->arenaindex = (uint32_t)(a - A->table);
        *origin = PYM_POOL_FRESH;
    }
    arena_took_pool(a);
out:
    pym_unlock(&A->lock);
    return p;
}

void pym_pool_release(pym_pool_t *p)
{
    pym_arenas_t *A = &pym_arenas;
    pym_lock(&A->lock);
    pym_arena_t *a = &A->table[p->arenaindex];
    PYM_ASSERT(a->address == pym_arena_of(p));
    p->next = a->freepools;
    a->freepools = p;
    arena_gave_pool(a);
    pym_unlock(&A->lock);
}

int pym_trim(void)
{
    pym_arenas_t *A = &pym_arenas;
    int n = 0;
    pym_lock(&A->lock);
    pym_arena_t *a = A->cached;
    if (a != NULL) {
        A->cached = NULL;
        arena_release(a);
        n = 1;
    }
    pym_unlock(&A->lock);
    return n;
}
