/* pym.h - the bundled small-object allocator ("pym"), modelled on CPython's
 * pymalloc (Objects/obmalloc.c, 3.11/3.12 geometry), whose every internal
 * state change is reported to an event hook.
 *
 * Place in the pipeline: lib/, linked into the preload library (static
 * memtrace_pym) when `memtrace run --allocator=bundled` makes it the
 * target's malloc, and usable on its own by a C program
 * (libmemtrace_pym.so).  It depends on nothing else in memtrace; the tracer
 * turns its events into `allocator_events` rows (schemas/trace.sql).
 *
 * ==== Layers ==============================================================
 *
 *    program:  malloc  calloc  realloc  memalign  free  malloc_usable_size
 *        |       (the embedder maps them to pym_*)
 *    +---v------------------------------------------+
 *    | pym_malloc ... pym_free                      |  n == 0, n > 512,
 *    | 1..512 B -> size class c = (n - 1) >> 4      |--alignment > 16,----+
 *    +---+------------------------------------------+  arena map failed   |
 *        |  heap (c, thread's shard): lock + list of used pools           |
 *    +---v------------------------------------------+          +----------v---------+
 *    | pools: 16 KiB, one class while in use,       |          | fallback allocator |
 *    |        free list + bump region               |          | (pym_fallback_t;   |
 *    +---+------------------------------------------+          |  default: glibc    |
 *        |  arena lock: arenas sorted by free pools            |  __libc_malloc ...)|
 *    +---v------------------------------------------+          +--------------------+
 *    | arenas: 1 MiB, 1 MiB-aligned, 64 pools       |
 *    +---+------------------------------------------+
 *        |  raw mmap/munmap system calls (or the embedder's pym_os_t)
 *    +---v------------------------------------------+
 *    | kernel                                       |
 *    +----------------------------------------------+
 *
 * ==== Size classes ========================================================
 *
 * Requests are rounded up to a multiple of 16 bytes (the alignment of every
 * block).  A pool's first 48 bytes are its header; its blocks follow.
 *
 *    request (bytes)   block size   class   blocks per 16 KiB pool
 *    ---------------   ----------   -----   ----------------------
 *         1 -  16           16         0      1021
 *        17 -  32           32         1       510
 *        33 -  48           48         2       340
 *        49 -  64           64         3       255
 *        65 -  80           80         4       204
 *       ...                ...       ...       ...  (16336 / block size)
 *       241 - 256          256        15        63
 *       ...                ...       ...       ...
 *       497 - 512          512        31        31
 *       0, 513 and more    -          -     fallback allocator
 *
 * ==== Pools ===============================================================
 *
 * A pool is a 16 KiB, 16 KiB-aligned piece of an arena.  Its header
 * (struct pym_pool in pym_internal.h) holds the class, the count of blocks
 * in use ("ref"), the head of a singly linked free list threaded through
 * the freed blocks, and a bump offset: blocks at or beyond it have never
 * been handed out since the pool was initialised for its class, so a new
 * pool costs no work proportional to its size and its untouched pages stay
 * untouched.  A block is taken from the free list first, else from the bump
 * region.
 *
 *                 pool_init(FRESH)               pool_full
 *    UNCARVED ----------------------> USED ------------------> FULL
 *                                     ^  |  <------------------
 *             pool_init(SAME|OTHER)   |  |        pool_reuse
 *    EMPTY ---------------------------+  |
 *      ^                                 |
 *      +------------- pool_empty --------+
 *
 *    UNCARVED  never used since its arena was mapped (memory still zero)
 *    USED      on its heap's list (its class, in the shard of the thread
 *              that initialised it); at least one block in use and at
 *              least one available
 *    FULL      every block in use; on no list (nothing to allocate)
 *    EMPTY     no block in use; on its arena's list of free pools, keeping
 *              its last class, free list and bump offset
 *
 *    Key invariant: a pool is on its heap's list iff it is USED, and every
 *    pool on that list has an available block (free list or bump region).
 *    Key invariant: ref == blocks handed out and not freed since the pool
 *    left EMPTY/UNCARVED; FULL iff ref == capacity, EMPTY iff ref == 0.
 *    Key invariant: FULL -> EMPTY never happens in one step (capacity >= 31).
 *
 * An EMPTY pool taken again for the class it last served keeps its free
 * list (pool_init value SAME, whatever the shard); for another class its
 * header is rebuilt (OTHER).  A pool that stops being FULL goes to the
 * front of its heap's list, so new blocks come from the pool most recently
 * freed into (as in CPython: better cache locality, fuller pools).
 *
 * ==== Arenas ==============================================================
 *
 * An arena is 1 MiB of address space from the OS, aligned to 1 MiB, so its
 * 64 pools are all whole and the arena of an address is `addr & ~(1 MiB-1)`.
 * Its object (struct pym_arena) lives outside it, in a table that only
 * grows.  Pools are carved in address order (a count of carved pools);
 * emptied pools go on the arena's free-pool list.
 *
 *                 arena_alloc
 *    (unmapped) --------------> USABLE  (1..64 free pools, on the usable
 *        ^                      |    ^   list, sorted by free pools)
 *        |       pool_init takes|    |pool_empty
 *        |      the last free   v    |
 *        |      pool           FULL  (0 free pools, on no list)
 *        |
 *        +------- arena_free ------ USABLE with 64 free pools ("empty")
 *
 *    Key invariant: the usable list is sorted by free-pool count, ascending;
 *    a new pool always comes from its head, so the fullest arena that still
 *    has room is used first and nearly empty arenas get the chance to drain.
 *    Key invariant: at most one arena is empty (all 64 pools free).  The
 *    first to become empty stays mapped as a cache (a program that frees and
 *    allocates around a boundary does not map and unmap an arena each
 *    time); any other that becomes empty is unmapped at once (arena_free).
 *    pym_trim() unmaps the cached one.
 *    Key invariant: an address is inside a mapped arena iff the radix map
 *    (two levels, indexed by address >> 20) says so.  The map is read
 *    without a lock and never dereferences the address, so any pointer can
 *    be tested in O(1) (pym_owns); pointers it does not know belong to the
 *    fallback allocator.
 *
 * Arena state changes other than mapping and unmapping are caused by pool
 * events (pool_init takes a pool from an arena, pool_empty gives one back),
 * which carry the arena's address; they have no event of their own.
 *
 * ==== Events ==============================================================
 *
 * Each transition above maps to exactly one event kind (PYM_EVENTS), and
 * each block allocation and free to one more.  An allocation that needs a
 * new pool is reported as [arena_alloc,] pool_init, block_alloc_newpool;
 * one that takes a pool's last block as block_alloc_*, pool_full.  A free
 * that changes its pool's state is reported as block_free followed by the
 * pool event (block_free, pool_reuse / pool_empty [, arena_free]).  Events are emitted
 * while the lock that orders the transition is held, before the change is
 * visible to other threads (arena_free before munmap, fallback_free before
 * the fallback's free), so a sequence number taken inside the hook orders
 * them as they happened.  Exception: a fallback realloc reports its free
 * and allocation after the fallback returns.
 *
 * The hook is called inside the allocator with a heap lock and/or the
 * arena lock held (fallback events: no lock).  hook context: it must not
 * allocate or free through pym, must not call back into pym, and must be
 * quick.  With no hook set, each emission point is one predictable branch.
 *
 * ==== Bad frees ===========================================================
 *
 * A free (or realloc) of an address inside an arena is checked under its
 * heap's lock; what is detectable in O(1) is reported as double_free with
 * a reason (PYM_BAD_FREES) and otherwise ignored, so the heap is never
 * corrupted by it: the pool is not in use (EMPTY, UNCARVED, or it now
 * serves another class), the block lies in the never-used bump region, the
 * address is not the start of a block, or the block is the head of its
 * pool's free list (freed twice in a row).  A block deeper in the free list
 * is NOT detected (that would need a search or a per-block mark), nor is a
 * stale pointer into a pool re-initialised since, where it may coincide
 * with another live block.  A free after the arena was unmapped goes to the
 * fallback's free, as for any foreign pointer.
 *
 * ==== Threads and fork ====================================================
 *
 * A heap is one size class of one shard: a spin lock and the list of USED
 * pools, alone on a cache line.  There are PYM_SHARDS (8) shards; a thread
 * gets one, round-robin, at its first allocation (an initial-exec TLS
 * word), and allocates only from its shard's heaps, so threads do not share
 * pools, pool headers, blocks' cache lines or lock lines - one lock per size
 * class alone was not enough (measured below).  A free takes the lock of
 * the heap its pool belongs to (from the pool header), whichever thread
 * frees.  One more lock guards the arenas (list, table, radix map, cache).
 * Order: a heap lock, then the arena lock.  The fast paths take one heap
 * lock; waiters spin briefly, then sched_yield().  Key invariant: a pool's
 * header, free list and blocks' links change only under its heap's lock; a
 * pool changes heap only through EMPTY, under the arena lock.
 *
 * Fork: the embedder registers pym_atfork_prepare/parent/child with
 * pthread_atfork (or calls pym_atfork_register once); prepare takes every
 * lock, the child resets them.  All state is statically initialised: pym
 * works before any constructor has run.
 *
 * ==== Measured ============================================================
 *
 * 2-vCPU Xeon VM, glibc 2.36, gcc 12 -O2, no hook; an LD_PRELOAD shim maps
 * malloc, free, calloc, realloc, memalign, posix_memalign, aligned_alloc
 * and malloc_usable_size to pym_*; wall time, median of 5 runs alternating
 * with glibc runs (shared/bench workloads; on this shared machine nine
 * such medians ranged over churn 1.04-1.11, threads 1.01-1.10).
 *
 *    workload                        glibc     pym       ratio
 *    churn (2M pairs, 1 thread)      0.228 s   0.247 s   1.08
 *    threads (2 x 500k pairs)        0.169 s   0.179 s   1.06
 *    threads 500000 4                0.336 s   0.345 s   1.03
 *    with a no-op hook installed: churn 1.11, threads 1.03
 *
 * Locking, pym's time in the same runs.  "stress": T threads x 2M
 * malloc/free of 1..512 B, window 1000, no other work.
 *
 *                            sharded heaps   lock per class   one lock
 *                            (default)       PYM_SHARDS=1     PYM_GLOBAL_LOCK=1
 *    churn                   0.247 s         0.254 s          0.237 s
 *    threads (2 threads)     0.179 s         0.256 s          0.291 s
 *    threads 500000 4        0.345 s         0.495 s          0.574 s
 *    stress, 4 threads       0.096 s         0.662 s          1.545 s   (glibc 0.077 s)
 *    stress, 1 thread        0.040 s         0.038 s          0.039 s   (glibc 0.036 s)
 *
 * Compile-time options: PYM_SHARDS (power of two, default 8),
 * PYM_GLOBAL_LOCK=1 (one lock for every heap; for the measurement above),
 * PYM_DEBUG=1 (invariant assertions, written with write(2), then abort).
 */
#ifndef PYM_H
#define PYM_H

#include <stddef.h>
#include <stdint.h>

/* Exported even from a library built with hidden visibility; an embedder
 * that wants pym_* hidden defines PYM_API as empty. */
#ifndef PYM_API
#define PYM_API __attribute__((visibility("default")))
#endif

#define PYM_ARENA_SIZE   ((size_t)1 << 20) /* 1 MiB, also its alignment */
#define PYM_POOL_SIZE    ((size_t)1 << 14) /* 16 KiB, also its alignment */
#define PYM_POOLS_PER_ARENA 64
#define PYM_POOL_HEADER  48                /* bytes before a pool's first block */
#define PYM_ALIGNMENT    16                /* of every block; class step */
#define PYM_SMALL_MAX    512               /* largest request pym serves */
#define PYM_NCLASSES     32
#define PYM_NO_CLASS     255u              /* size_class of events without one */

/* Block size and blocks per pool of class c (0..31). */
#define PYM_CLASS_SIZE(c)     (((size_t)(c) + 1) * PYM_ALIGNMENT)
#define PYM_CLASS_CAPACITY(c) ((PYM_POOL_SIZE - PYM_POOL_HEADER) / PYM_CLASS_SIZE(c))

/* X(code, name, description) - the event kinds.  Hook arguments: arena and
 * pool are base addresses (0 when not applicable), block the block's
 * address, size_class the class (PYM_NO_CLASS when none), value as said.
 * Codes are part of the trace contract: never renumber, only append. */
#define PYM_EVENTS(X)                                                                           \
    X(0,  arena_alloc, "an arena was mapped: arena, value = size in bytes")                     \
    X(1,  arena_free, "an empty arena was unmapped: arena, value = size in bytes")              \
    X(2,  pool_init, "a pool starts serving a class (UNCARVED/EMPTY -> USED): arena, pool, "    \
                     "class, value = origin (0 fresh, 1 reused for the same class, 2 reused "   \
                     "for another class)")                                                      \
    X(3,  pool_full, "a block allocation took a pool's last block (USED -> FULL): arena, "      \
                     "pool, class, value = blocks in the pool")                                 \
    X(4,  pool_reuse, "a block free made a full pool usable again (FULL -> USED, front of its " \
                      "class list): arena, pool, class, value = blocks in use")                 \
    X(5,  pool_empty, "a block free left a pool with no block in use (USED -> EMPTY, back to "  \
                      "its arena): arena, pool, class")                                         \
    X(6,  block_alloc_freelist, "a block from its pool's free list: arena, pool, block, "       \
                                "class, value = requested size")                                \
    X(7,  block_alloc_bump, "a never-used block from its pool's bump region: arena, pool, "     \
                            "block, class, value = requested size")                             \
    X(8,  block_alloc_newpool, "the first block of a pool that pool_init just gave the "        \
                               "class: arena, pool, block, class, value = requested size")      \
    X(9,  block_free, "a block was freed onto its pool's free list: arena, pool, block, "       \
                      "class, value = blocks still in use in the pool")                         \
    X(10, fallback_alloc, "a request pym does not serve went to the fallback allocator: "      \
                          "block, value = requested size")                                      \
    X(11, fallback_free, "a pointer outside pym's arenas went to the fallback's free: block")   \
    X(12, double_free, "a free or realloc of an address in an arena that is not a live "       \
                       "block, ignored: arena, pool, block, class, value = reason "             \
                       "(PYM_BAD_FREES)")

typedef enum {
#define X(code, name, desc) PYM_EV_##name = code,
    PYM_EVENTS(X)
#undef X
    PYM_EV_COUNT
} pym_event_t;

/* Origins of a pool (value of pool_init). */
enum { PYM_POOL_FRESH = 0, PYM_POOL_SAME = 1, PYM_POOL_OTHER = 2 };

/* X(code, name, description) - reasons of a double_free event. */
#define PYM_BAD_FREES(X)                                                                  \
    X(1, pool_not_in_use, "the pool has no block in use (EMPTY) or now serves another class") \
    X(2, pool_unused, "the pool was never used since its arena was mapped")               \
    X(3, never_allocated, "the block lies in the pool's never-used bump region")          \
    X(4, freelist_head, "the block is the one freed last in its pool (freed twice)")      \
    X(5, not_block_start, "the address is not the start of a block")

typedef enum {
#define X(code, name, desc) PYM_BAD_##name = code,
    PYM_BAD_FREES(X)
#undef X
} pym_bad_free_t;

/* The event hook.  hook context: called with pym locks held; it must not
 * allocate or free through pym nor call any pym function. */
typedef void (*pym_event_fn)(void *ctx, int kind, uintptr_t arena, uintptr_t pool,
                             uintptr_t block, unsigned size_class, uint64_t value);

/* The fallback allocator: requests of 0 or more than 512 bytes, alignments
 * above 16, everything when no arena can be mapped, and frees of pointers
 * outside pym's arenas.  malloc, free, realloc and memalign are required;
 * calloc (else malloc + memset) and usable_size (else pym_usable_size
 * returns 0 for such blocks, and realloc keeps them in the fallback) may be
 * NULL.  ctx is passed to each. */
typedef struct {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nmemb, size_t size);
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void *(*memalign)(void *ctx, size_t alignment, size_t size);
    void (*free)(void *ctx, void *ptr);
    size_t (*usable_size)(void *ctx, void *ptr);
} pym_fallback_t;

/* Where arenas come from.  map returns `size` bytes, page-aligned and
 * zero-filled, or NULL; unmap gives back any page-aligned range of what map
 * returned (a part of one mapping, as munmap(2) allows: pym maps 2 MiB to
 * carve one 1 MiB-aligned arena when a 1 MiB mapping is not aligned).
 * Default: the mmap/munmap system calls made with syscall(2), so a tracer
 * that interposes mmap does not see them.  pym's own metadata (radix map,
 * arena table) always uses the system calls. */
typedef struct {
    void *ctx;
    void *(*map)(void *ctx, size_t size);
    void (*unmap)(void *ctx, void *addr, size_t size);
} pym_os_t;

/* Counts of one size class (the event stream reconstructs each). */
typedef struct {
    uint32_t pools_used;      /* USED pools */
    uint32_t pools_full;      /* FULL pools */
    uint32_t pools_empty;     /* EMPTY pools whose last class this was */
    uint32_t blocks_per_pool; /* capacity: PYM_CLASS_CAPACITY(c) */
    uint64_t blocks_used;     /* blocks allocated and not freed */
    uint64_t blocks_free;     /* available blocks in USED pools (free list + bump) */
} pym_class_stats_t;

/* A consistent snapshot of the whole allocator (every lock is taken). */
typedef struct {
    uint64_t arenas;           /* arenas mapped now */
    uint64_t arenas_empty;     /* of those, with all 64 pools free (0 or 1) */
    uint64_t arena_bytes;      /* arenas * PYM_ARENA_SIZE */
    uint64_t arenas_allocated; /* arena_alloc events since start (or fork) */
    uint64_t arenas_freed;     /* arena_free events since start */
    uint64_t pools_uncarved;   /* never-used pools of mapped arenas */
    uint64_t pools_used;       /* sums over the classes */
    uint64_t pools_full;
    uint64_t pools_empty;
    uint64_t blocks_used;
    uint64_t blocks_free;
    uint64_t bytes_in_use;     /* sum of block sizes of used blocks */
    uint64_t bytes_free;       /* sum of block sizes of available blocks */
    uint64_t bad_frees;        /* double_free events since start */
    pym_class_stats_t cls[PYM_NCLASSES];
} pym_stats_t;

/* Functions returning int give 0 on success or a negative MT_E* code
 * (lib/mt_error.h). */

/* ---- allocation (thread-safe; the contracts of malloc(3) and friends) -- */

/* n bytes, 16-byte aligned; 1..512 from a pool, else from the fallback.
 * NULL with errno ENOMEM on failure. */
PYM_API void *pym_malloc(size_t n);
/* nmemb * size zeroed bytes; NULL and ENOMEM on overflow or failure. */
PYM_API void *pym_calloc(size_t nmemb, size_t size);
/* Resizes ptr: in place when n is in ptr's class, else allocate, copy and
 * free (moving between pym and the fallback as n crosses 512; a fallback
 * block larger than 512 is resized by the fallback's realloc).  ptr NULL:
 * pym_malloc(n).  n == 0: frees ptr and returns NULL (as glibc does).  On
 * failure returns NULL and ptr is untouched.  A ptr that is not a live pym
 * block but lies in an arena: double_free event, NULL with errno EINVAL. */
PYM_API void *pym_realloc(void *ptr, size_t n);
/* n bytes aligned to `alignment` (rounded up to a power of two, as glibc
 * does): up to 16 from a pool, larger by the fallback's memalign. */
PYM_API void *pym_memalign(size_t alignment, size_t n);
/* Frees ptr (NULL: nothing).  Outside pym's arenas: the fallback's free. */
PYM_API void pym_free(void *ptr);
/* Bytes usable at ptr: the block size for a pym block (0 for an address in
 * an arena that is not a live block), else the fallback's answer. */
PYM_API size_t pym_usable_size(void *ptr);
/* 1 when ptr lies inside one of pym's arenas (O(1), never dereferences
 * ptr, any value allowed), else 0. */
PYM_API int pym_owns(const void *ptr);

/* ---- configuration (call before other threads use pym) ---------------- */

/* Installs the event hook (fn NULL: none).  Safe at any time when going
 * from NULL to a hook or back; swapping two hooks while other threads
 * allocate may pair one's fn with the other's ctx for an instant. */
PYM_API void pym_set_event_hook(pym_event_fn fn, void *ctx);
/* Installs a fallback allocator (NULL: back to the glibc default).  It must
 * be able to free what the previous one allocated, or be installed before
 * any large request.  0, or MT_EINVAL when a required member is NULL. */
PYM_API int pym_set_fallback(const pym_fallback_t *fb);
/* Copies the fallback in use into *out (to wrap it). */
PYM_API void pym_get_fallback(pym_fallback_t *out);
/* Installs the source of arenas (NULL: the system calls).  0, or
 * MT_EINVAL when an arena is mapped now or a member is NULL. */
PYM_API int pym_set_os(const pym_os_t *os);

/* ---- introspection ---------------------------------------------------- */

/* Fills *out with a consistent snapshot (takes every lock: not for hot
 * paths, never from the hook). */
PYM_API void pym_stats(pym_stats_t *out);
/* Walks every arena, pool and free list and checks the invariants above.
 * 0 when they hold, else MT_ECORRUPT.  Takes every lock. */
PYM_API int pym_check(void);
/* Unmaps the cached empty arena, if any (emits arena_free).  Returns the
 * number of arenas unmapped (0 or 1). */
PYM_API int pym_trim(void);

/* Names and descriptions by code; NULL for unknown codes. */
PYM_API const char *pym_event_name(int kind);
PYM_API const char *pym_event_description(int kind);
PYM_API const char *pym_bad_free_name(int reason);

/* ---- fork ------------------------------------------------------------- */

/* pthread_atfork handlers: prepare takes every pym lock, parent releases
 * them, child resets them.  Register them once; an embedder with locks of
 * its own that its hook takes registers these AFTER its own handlers
 * (prepare handlers run in reverse order), so pym's locks are taken first,
 * matching the order in which the hook nests inside pym. */
PYM_API void pym_atfork_prepare(void);
PYM_API void pym_atfork_parent(void);
PYM_API void pym_atfork_child(void);
/* Registers the three with pthread_atfork, once per process (later calls
 * do nothing).  0, or MT_ENOMEM. */
PYM_API int pym_atfork_register(void);

#endif
