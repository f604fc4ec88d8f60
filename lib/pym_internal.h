/* pym_internal.h - what the files of the bundled allocator share: the pool
 * header, the arena object, the heaps (class lists per shard), the locks,
 * the radix map and the event emission.  Not for use outside lib/pym*.c (the design is in
 * pym.h).  Cross-file prototypes are grouped under the file that defines
 * them.
 */
#ifndef PYM_INTERNAL_H
#define PYM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "pym.h"

#define PYM_HIDDEN __attribute__((visibility("hidden")))
#define PYM_LIKELY(x) __builtin_expect(!!(x), 1)
#define PYM_UNLIKELY(x) __builtin_expect(!!(x), 0)

#ifndef PYM_DEBUG
#define PYM_DEBUG 0
#endif
#ifndef PYM_GLOBAL_LOCK
#define PYM_GLOBAL_LOCK 0
#endif
/* Shards: each thread allocates from the heaps of one shard (chosen
 * round-robin when the thread first allocates), so threads do not share
 * pools, pool headers or lock cache lines.  A power of two. */
#ifndef PYM_SHARDS
#define PYM_SHARDS 8
#endif
#define PYM_NHEAPS (PYM_SHARDS * PYM_NCLASSES)
_Static_assert((PYM_SHARDS & (PYM_SHARDS - 1)) == 0 && PYM_SHARDS <= 256, "PYM_SHARDS");

#define PYM_ARENA_SHIFT 20
#define PYM_POOL_SHIFT 14
#define PYM_ALIGN_SHIFT 4

/* Radix map of arena addresses: 48-bit address >> 20 = 28 bits of key,
 * 14 in the top table (static), 14 in a leaf (16 KiB, one byte each). */
#define PYM_RADIX_TOP_BITS 14
#define PYM_RADIX_LEAF_BITS 14
#define PYM_RADIX_KEY_BITS (PYM_RADIX_TOP_BITS + PYM_RADIX_LEAF_BITS)

/* Pool states (the low byte of pool->info).  UNCARVED is 0 because a
 * never-used pool's header is freshly mapped zero memory. */
enum { POOL_UNCARVED = 0, POOL_USED = 1, POOL_FULL = 2, POOL_EMPTY = 3 };

/* A heap is one size class of one shard: heap index h = shard * 32 +
 * class.  pool->info = state | h << 8, one word, so a reader that has not
 * taken the heap's lock (pym_free choosing which lock to take) never sees
 * the state of one heap with the index of another. */
#define PYM_INFO(state, h) ((uint32_t)(state) | (uint32_t)(h) << 8)
#define PYM_INFO_STATE(info) ((info) & 0xffu)
#define PYM_INFO_HEAP(info) (((info) >> 8) & 0xffffu)
#define PYM_INFO_CLASS(info) (((info) >> 8) & (PYM_NCLASSES - 1))
#define PYM_HEAP_CLASS(h) ((unsigned)(h) & (PYM_NCLASSES - 1))

/* The header of a pool: its first PYM_POOL_HEADER bytes. */
typedef struct pym_pool {
    uint32_t ref;              /* blocks in use */
    uint32_t info;             /* PYM_INFO(state, heap) (atomic: read unlocked) */
    void *freeblock;           /* free list head; next link in a block's first word */
    struct pym_pool *next;     /* heap's list (USED) or arena's free pools (EMPTY) */
    struct pym_pool *prev;     /* heap's list only */
    uint32_t arenaindex;       /* index of the arena's object in the table */
    uint32_t nextoffset;       /* bump: offset of the first never-used block */
    uint32_t maxnextoffset;    /* largest offset a block can start at */
    uint32_t pad;
} pym_pool_t;

_Static_assert(sizeof(pym_pool_t) <= PYM_POOL_HEADER, "pool header too large");

/* The object of an arena, in the arena table (never inside the arena). */
typedef struct pym_arena {
    uintptr_t address;         /* base, 1 MiB-aligned; 0: object unused */
    pym_pool_t *freepools;     /* EMPTY pools, linked by next */
    uint32_t nfreepools;       /* EMPTY + UNCARVED pools */
    uint32_t ncarved;          /* pools [0, ncarved) have left UNCARVED */
    struct pym_arena *next;    /* usable list (sorted), or unused objects */
    struct pym_arena *prev;    /* usable list only */
} pym_arena_t;

/* A spin lock: 0 free, 1 held. */
typedef struct {
    uint32_t v;
} pym_lock_t;

/* One heap (a class of a shard): its lock and list of USED pools, alone on
 * a cache line. */
typedef struct {
    pym_lock_t lock;
    uint32_t pad;
    pym_pool_t *used;          /* USED pools, the one to allocate from first */
} __attribute__((aligned(64))) pym_heap_t;

/* The event hook, read on every emission point. */
typedef struct {
    pym_event_fn fn;           /* NULL: no hook (atomic) */
    void *ctx;
} pym_hook_t;

/* ---- pym.c ------------------------------------------------------------- */

extern PYM_HIDDEN pym_heap_t pym_heaps[PYM_NHEAPS];
extern PYM_HIDDEN __thread unsigned pym_tls_shard /* shard + 1; 0: none yet */
    __attribute__((tls_model("initial-exec")));
extern PYM_HIDDEN pym_hook_t pym_hook;
extern PYM_HIDDEN uint64_t pym_bad_free_count; /* double_free events (atomic) */
#if PYM_GLOBAL_LOCK
extern PYM_HIDDEN pym_lock_t pym_global_lock;
#endif

/* Gives the calling thread its shard (round-robin); returns shard + 1. */
PYM_HIDDEN unsigned pym_shard_assign(void);
/* Spins, then yields, until the lock is taken (the contended path). */
PYM_HIDDEN void pym_lock_wait(pym_lock_t *l);
/* Writes "pym: assertion failed: <what> (<file>:<line>)" with write(2) and
 * aborts; never allocates. */
PYM_HIDDEN _Noreturn void pym_assert_fail(const char *what, const char *file, int line);

/* ---- pym_arena.c --------------------------------------------------------- */

/* Everything about arenas, guarded by `lock` (radix leaves are also read
 * without it, see pym_radix_get). */
typedef struct {
    pym_lock_t lock;
    uint32_t ntable;             /* objects in table */
    pym_arena_t *table;          /* arena objects; moves only when no arena is usable */
    pym_arena_t *unused;         /* objects without an arena, linked by next */
    pym_arena_t *usable;         /* head: fewest free pools (but > 0) */
    pym_arena_t *last_with[PYM_POOLS_PER_ARENA + 1]; /* last usable arena with k free pools */
    pym_arena_t *cached;         /* the one empty arena kept mapped, or NULL */
    uint64_t allocated, freed;   /* arena_alloc / arena_free so far */
} pym_arenas_t;

extern PYM_HIDDEN pym_arenas_t pym_arenas;
extern PYM_HIDDEN uint8_t *pym_radix_top[1u << PYM_RADIX_TOP_BITS];

/* Gives class c (the caller holds the lock of one of its heaps) a pool:
 * from the head of the usable arenas (an EMPTY pool first, else the next
 * UNCARVED one), mapping a new arena when none is usable (emits
 * arena_alloc).  Takes the arena lock.  *origin receives PYM_POOL_FRESH/SAME/OTHER.  The pool's
 * info still says UNCARVED or EMPTY: the caller initialises it.  NULL when
 * no arena can be mapped. */
PYM_HIDDEN pym_pool_t *pym_pool_take(unsigned c, int *origin);
/* Gives an EMPTY pool (its info already says so, pool_empty already
 * emitted, caller holding its heap's lock) back to its arena; an arena that
 * becomes empty is cached or unmapped (emits arena_free).  Takes the arena
 * lock. */
PYM_HIDDEN void pym_pool_release(pym_pool_t *p);

/* ---- inline helpers ------------------------------------------------------ */

#if PYM_DEBUG
#define PYM_ASSERT(x) ((x) ? (void)0 : pym_assert_fail(#x, __FILE__, __LINE__))
#else
#define PYM_ASSERT(x) ((void)0)
#endif

static inline void pym_lock(pym_lock_t *l)
{
    if (PYM_LIKELY(__atomic_exchange_n(&l->v, 1u, __ATOMIC_ACQUIRE) == 0))
        return;
    pym_lock_wait(l);
}

static inline void pym_unlock(pym_lock_t *l)
{
    __atomic_store_n(&l->v, 0u, __ATOMIC_RELEASE);
}

/* The lock guarding heap k (one for all with PYM_GLOBAL_LOCK). */
static inline pym_lock_t *pym_heap_lock(pym_heap_t *k)
{
#if PYM_GLOBAL_LOCK
    (void)k;
    return &pym_global_lock;
#else
    return &k->lock;
#endif
}

/* The calling thread's shard. */
static inline unsigned pym_my_shard(void)
{
#if PYM_SHARDS == 1
    return 0;
#else
    unsigned s = pym_tls_shard;
    if (PYM_UNLIKELY(s == 0))
        s = pym_shard_assign();
    return s - 1;
#endif
}

static inline pym_pool_t *pym_pool_of(const void *p)
{
    return (pym_pool_t *)((uintptr_t)p & ~(uintptr_t)(PYM_POOL_SIZE - 1));
}

static inline uintptr_t pym_arena_of(const void *p)
{
    return (uintptr_t)p & ~(uintptr_t)(PYM_ARENA_SIZE - 1);
}

/* 1 when the 1 MiB at addr >> 20 is a mapped arena.  Lock-free: leaves
 * are never freed and entries are bytes written under the arena lock. */
static inline int pym_radix_get(uintptr_t addr)
{
    uintptr_t key = addr >> PYM_ARENA_SHIFT;
    if (PYM_UNLIKELY(key >> PYM_RADIX_KEY_BITS))
        return 0;
    uint8_t *leaf = __atomic_load_n(&pym_radix_top[key >> PYM_RADIX_LEAF_BITS], __ATOMIC_ACQUIRE);
    if (leaf == NULL)
        return 0;
    return __atomic_load_n(&leaf[key & ((1u << PYM_RADIX_LEAF_BITS) - 1)], __ATOMIC_RELAXED);
}

/* Calls the hook when there is one.  hook context. */
static inline void pym_emit(int kind, uintptr_t arena, uintptr_t pool, uintptr_t block,
                            unsigned cls, uint64_t value)
{
    pym_event_fn fn = __atomic_load_n(&pym_hook.fn, __ATOMIC_ACQUIRE);
    if (PYM_UNLIKELY(fn != NULL))
        fn(__atomic_load_n(&pym_hook.ctx, __ATOMIC_RELAXED), kind, arena, pool, block, cls, value);
}

#endif
