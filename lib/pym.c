/* pym.c - the bundled allocator's entry points and its heap-side state
 * changes: blocks in and out of pools, pools in and out of their heap's
 * list, and the fallback allocator for everything else (design: pym.h).
 *
 * Allocation of n in 1..512: class c = (n - 1) >> 4; under the lock of the
 * heap (c, the calling thread's shard) take a block from the first pool of
 * its list - the pool's free list, else its bump region - or, when the list
 * is empty, a pool from pym_arena.c.  A pool that has no block left leaves
 * the list (FULL).  Free: find the pool by masking the address (after the
 * radix map said the address is pym's), read its heap from the header to
 * know which lock to take, check under that lock that the address is a
 * live block (cheap checks only), push it on the pool's free list; a FULL
 * pool returns to the front of the list, a pool with no block in use goes
 * back to its arena (EMPTY).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <gnu/lib-names.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mt_error.h"
#include "pym_internal.h"

PYM_HIDDEN pym_heap_t pym_heaps[PYM_NHEAPS];
PYM_HIDDEN __thread unsigned pym_tls_shard __attribute__((tls_model("initial-exec")));
PYM_HIDDEN pym_hook_t pym_hook;
PYM_HIDDEN uint64_t pym_bad_free_count;
#if PYM_GLOBAL_LOCK
PYM_HIDDEN pym_lock_t pym_global_lock;
#endif

/* ceil(2^16 / d) for d = c + 1: (x * r) >> 16 == x / d exactly for the
 * block indexes x < 1024 of a pool (the error x * (r - 2^16 / d) / 2^16 is
 * below 1/64, less than the 1/d margin of x / d from the next integer). */
#define RECIP(d) ((uint32_t)((0x10000u + (d)-1) / (d)))
#define RECIP4(d) RECIP(d), RECIP((d) + 1), RECIP((d) + 2), RECIP((d) + 3)
static const uint32_t block_recip[PYM_NCLASSES] = {
    RECIP4(1), RECIP4(5), RECIP4(9), RECIP4(13), RECIP4(17), RECIP4(21), RECIP4(25), RECIP4(29),
};

/* ---- shards, locks and assertions -------------------------------------- */

unsigned pym_shard_assign(void)
{
    static unsigned next;
    unsigned s = __atomic_fetch_add(&next, 1u, __ATOMIC_RELAXED) % PYM_SHARDS + 1;
    pym_tls_shard = s;
    return s;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void pym_lock_wait(pym_lock_t *l)
{
    for (;;) {
        for (int i = 0; i < 128; i++) {
            if (__atomic_load_n(&l->v, __ATOMIC_RELAXED) == 0 &&
                __atomic_exchange_n(&l->v, 1u, __ATOMIC_ACQUIRE) == 0)
                return;
            cpu_relax();
        }
        sched_yield(); /* the holder may have been preempted */
    }
}

static void write_str(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(2, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

void pym_assert_fail(const char *what, const char *file, int line)
{
    char num[16];
    int i = (int)sizeof num - 1;
    num[i] = '\0';
    do {
        num[--i] = (char)('0' + line % 10);
        line /= 10;
    } while (line > 0 && i > 0);
    write_str("pym: assertion failed: ");
    write_str(what);
    write_str(" (");
    write_str(file);
    write_str(":");
    write_str(num + i);
    write_str(")\n");
    abort();
}

/* ---- the fallback allocator ----------------------------------------------- */

/* glibc's own entry points: never interposed, so pym can be malloc. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static void *fb_malloc(void *ctx, size_t n)
{
    (void)ctx;
    return __libc_malloc(n);
}
static void *fb_calloc(void *ctx, size_t nmemb, size_t size)
{
    (void)ctx;
    return __libc_calloc(nmemb, size);
}
static void *fb_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return __libc_realloc(p, n);
}
static void *fb_memalign(void *ctx, size_t al, size_t n)
{
    (void)ctx;
    return __libc_memalign(al, n);
}
static void fb_free(void *ctx, void *p)
{
    (void)ctx;
    __libc_free(p);
}

/* glibc exports malloc_usable_size under that name only, which an
 * embedder making pym the program's malloc interposes: look it up in
 * libc.so.6 itself, once. */
static size_t fb_usable_size(void *ctx, void *p)
{
    typedef size_t (*usable_fn)(void *);
    static usable_fn libc_usable;
    (void)ctx;
    usable_fn fn = __atomic_load_n(&libc_usable, __ATOMIC_ACQUIRE);
    if (fn == NULL) {
        void *h = dlopen(LIBC_SO, RTLD_LAZY | RTLD_NOLOAD);
        if (h != NULL)
            fn = (usable_fn)dlsym(h, "malloc_usable_size");
        if (fn == NULL)
            return 0;
        __atomic_store_n(&libc_usable, fn, __ATOMIC_RELEASE);
    }
    return fn(p);
}

static const pym_fallback_t fb_default = {
    NULL, fb_malloc, fb_calloc, fb_realloc, fb_memalign, fb_free, fb_usable_size,
};
static pym_fallback_t fb = {
    NULL, fb_malloc, fb_calloc, fb_realloc, fb_memalign, fb_free, fb_usable_size,
};

int pym_set_fallback(const pym_fallback_t *f)
{
    if (f == NULL) {
        fb = fb_default;
        return 0;
    }
    if (f->malloc == NULL || f->free == NULL || f->realloc == NULL || f->memalign == NULL)
        return MT_EINVAL;
    fb = *f;
    return 0;
}

void pym_get_fallback(pym_fallback_t *out)
{
    *out = fb;
}

static void *fallback_malloc(size_t n)
{
    void *q = fb.malloc(fb.ctx, n);
    if (q != NULL)
        pym_emit(PYM_EV_fallback_alloc, 0, 0, (uintptr_t)q, PYM_NO_CLASS, n);
    return q;
}

/* Emitted before the free: the address may be reused the moment after. */
static void fallback_free(void *p)
{
    pym_emit(PYM_EV_fallback_free, 0, 0, (uintptr_t)p, PYM_NO_CLASS, 0);
    fb.free(fb.ctx, p);
}

static size_t fallback_usable(void *p)
{
    return fb.usable_size ? fb.usable_size(fb.ctx, p) : 0;
}

/* ---- the hook ------------------------------------------------------------- */

void pym_set_event_hook(pym_event_fn fn, void *ctx)
{
    __atomic_store_n(&pym_hook.fn, (pym_event_fn)NULL, __ATOMIC_RELEASE);
    __atomic_store_n(&pym_hook.ctx, ctx, __ATOMIC_RELAXED);
    if (fn != NULL)
        __atomic_store_n(&pym_hook.fn, fn, __ATOMIC_RELEASE);
}

/* ---- heap side: pool state changes (heap lock held; h = heap index) ---- */

/* USED -> FULL: p (the list's head) gave its last block. */
static void pool_became_full(pym_heap_t *k, pym_pool_t *p, unsigned h)
{
    unsigned c = PYM_HEAP_CLASS(h);
    PYM_ASSERT(k->used == p && p->ref == PYM_CLASS_CAPACITY(c));
    k->used = p->next;
    if (p->next != NULL)
        p->next->prev = NULL;
    p->next = p->prev = NULL;
    __atomic_store_n(&p->info, PYM_INFO(POOL_FULL, h), __ATOMIC_RELAXED);
    pym_emit(PYM_EV_pool_full, pym_arena_of(p), (uintptr_t)p, 0, c, p->ref);
}

/* FULL -> USED: a block came back; to the front of the list. */
static void pool_became_usable(pym_heap_t *k, pym_pool_t *p, unsigned h)
{
    p->prev = NULL;
    p->next = k->used;
    if (k->used != NULL)
        k->used->prev = p;
    k->used = p;
    __atomic_store_n(&p->info, PYM_INFO(POOL_USED, h), __ATOMIC_RELAXED);
    pym_emit(PYM_EV_pool_reuse, pym_arena_of(p), (uintptr_t)p, 0, PYM_HEAP_CLASS(h), p->ref);
}

/* USED -> EMPTY: no block in use; off the list and back to the arena. */
static void pool_became_empty(pym_heap_t *k, pym_pool_t *p, unsigned h)
{
    unsigned c = PYM_HEAP_CLASS(h);
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        k->used = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
    __atomic_store_n(&p->info, PYM_INFO(POOL_EMPTY, h), __ATOMIC_RELAXED);
    pym_emit(PYM_EV_pool_empty, pym_arena_of(p), (uintptr_t)p, 0, c, 0);
    pym_pool_release(p);
}

/* Takes a block from pool p (which has one): free list first, else bump.
 * Returns the event kind for it through *kind. */
static inline void *pool_take_block(pym_pool_t *p, unsigned c, int *kind)
{
    void *b = p->freeblock;
    if (b != NULL) {
        p->freeblock = *(void **)b;
        *kind = PYM_EV_block_alloc_freelist;
    } else {
        PYM_ASSERT(p->nextoffset <= p->maxnextoffset);
        b = (char *)p + p->nextoffset;
        p->nextoffset += (uint32_t)PYM_CLASS_SIZE(c);
        *kind = PYM_EV_block_alloc_bump;
    }
    p->ref++;
    return b;
}

/* Heap h has no USED pool: get one (UNCARVED/EMPTY -> USED) and take its
 * first block.  NULL when no arena can be mapped. */
static void *alloc_from_new_pool(pym_heap_t *k, unsigned h, size_t n)
{
    unsigned c = PYM_HEAP_CLASS(h);
    int origin, kind;
    pym_pool_t *p = pym_pool_take(c, &origin);
    if (p == NULL)
        return NULL;
    if (origin != PYM_POOL_SAME) { /* a SAME pool keeps its free list and bump offset */
        p->ref = 0;
        p->freeblock = NULL;
        p->nextoffset = PYM_POOL_HEADER;
        p->maxnextoffset = (uint32_t)(PYM_POOL_SIZE - PYM_CLASS_SIZE(c));
    }
    PYM_ASSERT(p->ref == 0 && k->used == NULL);
    p->next = p->prev = NULL;
    k->used = p;
    __atomic_store_n(&p->info, PYM_INFO(POOL_USED, h), __ATOMIC_RELAXED);
    pym_emit(PYM_EV_pool_init, pym_arena_of(p), (uintptr_t)p, 0, c, (uint64_t)origin);
    void *b = pool_take_block(p, c, &kind);
    pym_emit(PYM_EV_block_alloc_newpool, pym_arena_of(p), (uintptr_t)p, (uintptr_t)b, c, n);
    PYM_ASSERT(p->ref < PYM_CLASS_CAPACITY(c)); /* capacity >= 31 */
    return b;
}

/* ---- blocks ------------------------------------------------------------------- */

/* A block of class c for a request of n bytes, from the calling thread's
 * shard, or NULL (no arena). */
static inline void *small_alloc(unsigned c, size_t n)
{
    unsigned h = pym_my_shard() * PYM_NCLASSES + c;
    pym_heap_t *k = &pym_heaps[h];
    pym_lock_t *l = pym_heap_lock(k);
    void *b;
    int kind;
    pym_lock(l);
    pym_pool_t *p = k->used;
    if (PYM_LIKELY(p != NULL)) {
        b = pool_take_block(p, c, &kind);
        pym_emit(kind, pym_arena_of(p), (uintptr_t)p, (uintptr_t)b, c, n);
        if (PYM_UNLIKELY(p->freeblock == NULL && p->nextoffset > p->maxnextoffset))
            pool_became_full(k, p, h);
    } else {
        b = alloc_from_new_pool(k, h, n);
    }
    pym_unlock(l);
    return b;
}

/* 0 when ptr is a live block of pool p, whose info (read under the lock of
 * heap h) is `info`; else the PYM_BAD_* reason.  Heap lock held. */
static inline int block_check(const pym_pool_t *p, uint32_t info, unsigned h, const void *ptr)
{
    unsigned state = PYM_INFO_STATE(info), c = PYM_HEAP_CLASS(h);
    if (PYM_UNLIKELY(state != POOL_USED && state != POOL_FULL) || PYM_INFO_HEAP(info) != h)
        return state == POOL_UNCARVED ? PYM_BAD_pool_unused : PYM_BAD_pool_not_in_use;
    uint32_t off = (uint32_t)((uintptr_t)ptr - (uintptr_t)p);
    uint32_t x = (off - PYM_POOL_HEADER) >> PYM_ALIGN_SHIFT;
    if (PYM_UNLIKELY(off < PYM_POOL_HEADER || (off & (PYM_ALIGNMENT - 1)) ||
                     ((x * block_recip[c]) >> 16) * (c + 1) != x))
        return PYM_BAD_not_block_start;
    if (PYM_UNLIKELY(off >= p->nextoffset))
        return PYM_BAD_never_allocated;
    if (PYM_UNLIKELY(ptr == p->freeblock))
        return PYM_BAD_freelist_head;
    return 0;
}

/* Reports a free of something that is not a live block; changes nothing. */
static void bad_free(const pym_pool_t *p, uint32_t info, const void *ptr, int reason)
{
    unsigned c = reason == PYM_BAD_pool_unused ? PYM_NO_CLASS : PYM_INFO_CLASS(info);
    __atomic_add_fetch(&pym_bad_free_count, 1, __ATOMIC_RELAXED);
    pym_emit(PYM_EV_double_free, pym_arena_of(ptr), (uintptr_t)p, (uintptr_t)ptr, c,
             (uint64_t)reason);
}

/* Locks the heap the pool of ptr (in a mapped arena) seems to belong to
 * and returns its index; *info is re-read under the lock. */
static inline unsigned lock_pool_heap(const pym_pool_t *p, uint32_t *info)
{
    /* masked: a header the program overwrote must not index out of bounds;
     * the heap is checked again under the lock */
    unsigned h = PYM_INFO_HEAP(__atomic_load_n(&p->info, __ATOMIC_RELAXED)) & (PYM_NHEAPS - 1);
    pym_lock(pym_heap_lock(&pym_heaps[h]));
    *info = __atomic_load_n(&p->info, __ATOMIC_RELAXED);
    return h;
}

static inline void small_free(void *ptr)
{
    pym_pool_t *p = pym_pool_of(ptr);
    uint32_t info;
    unsigned h = lock_pool_heap(p, &info), c = PYM_HEAP_CLASS(h);
    pym_heap_t *k = &pym_heaps[h];
    int bad = block_check(p, info, h, ptr);
    if (PYM_UNLIKELY(bad != 0)) {
        bad_free(p, info, ptr, bad);
        goto out;
    }
    *(void **)ptr = p->freeblock;
    p->freeblock = ptr;
    uint32_t ref = --p->ref;
    pym_emit(PYM_EV_block_free, pym_arena_of(p), (uintptr_t)p, (uintptr_t)ptr, c, ref);
    if (PYM_UNLIKELY(PYM_INFO_STATE(info) == POOL_FULL))
        pool_became_usable(k, p, h);
    else if (PYM_UNLIKELY(ref == 0))
        pool_became_empty(k, p, h);
out:
    pym_unlock(pym_heap_lock(k));
}

/* ---- the API ---------------------------------------------------------------- */

void *pym_malloc(size_t n)
{
    if (PYM_LIKELY(n - 1 < PYM_SMALL_MAX)) {
        void *b = small_alloc((unsigned)((n - 1) >> PYM_ALIGN_SHIFT), n);
        if (PYM_LIKELY(b != NULL))
            return b;
    }
    return fallback_malloc(n);
}

void pym_free(void *ptr)
{
    if (ptr == NULL)
        return;
    if (PYM_LIKELY(pym_radix_get((uintptr_t)ptr)))
        small_free(ptr);
    else
        fallback_free(ptr);
}

void *pym_calloc(size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    if (n - 1 < PYM_SMALL_MAX) {
        unsigned c = (unsigned)((n - 1) >> PYM_ALIGN_SHIFT);
        void *b = small_alloc(c, n);
        if (b != NULL) {
            memset(b, 0, PYM_CLASS_SIZE(c));
            return b;
        }
    }
    void *q;
    if (fb.calloc != NULL) {
        q = fb.calloc(fb.ctx, nmemb, size);
    } else {
        q = fb.malloc(fb.ctx, n);
        if (q != NULL)
            memset(q, 0, n);
    }
    if (q != NULL)
        pym_emit(PYM_EV_fallback_alloc, 0, 0, (uintptr_t)q, PYM_NO_CLASS, n);
    return q;
}

void *pym_memalign(size_t alignment, size_t n)
{
    if (alignment <= PYM_ALIGNMENT && n - 1 < PYM_SMALL_MAX) {
        void *b = small_alloc((unsigned)((n - 1) >> PYM_ALIGN_SHIFT), n);
        if (b != NULL)
            return b;
    }
    void *q = fb.memalign(fb.ctx, alignment, n);
    if (q != NULL)
        pym_emit(PYM_EV_fallback_alloc, 0, 0, (uintptr_t)q, PYM_NO_CLASS, n);
    return q;
}

/* Realloc of a block outside pym's arenas. */
static void *realloc_foreign(void *ptr, size_t n)
{
    size_t old;
    if (n > PYM_SMALL_MAX || (old = fallback_usable(ptr)) == 0) {
        void *q = fb.realloc(fb.ctx, ptr, n);
        if (q != NULL) { /* after the call: see pym.h, "Events" */
            pym_emit(PYM_EV_fallback_free, 0, 0, (uintptr_t)ptr, PYM_NO_CLASS, 0);
            pym_emit(PYM_EV_fallback_alloc, 0, 0, (uintptr_t)q, PYM_NO_CLASS, n);
        }
        return q;
    }
    void *q = pym_malloc(n); /* small now: into a pool */
    if (q == NULL)
        return NULL;
    memcpy(q, ptr, old < n ? old : n);
    fallback_free(ptr);
    return q;
}

void *pym_realloc(void *ptr, size_t n)
{
    if (ptr == NULL)
        return pym_malloc(n);
    if (n == 0) {
        pym_free(ptr);
        return NULL;
    }
    if (!pym_radix_get((uintptr_t)ptr))
        return realloc_foreign(ptr, n);

    pym_pool_t *p = pym_pool_of(ptr);
    uint32_t info;
    unsigned h = lock_pool_heap(p, &info), c = PYM_HEAP_CLASS(h);
    int bad = block_check(p, info, h, ptr);
    if (bad != 0)
        bad_free(p, info, ptr, bad);
    pym_unlock(pym_heap_lock(&pym_heaps[h]));
    if (bad != 0) {
        errno = EINVAL;
        return NULL;
    }
    if (n - 1 < PYM_SMALL_MAX && ((n - 1) >> PYM_ALIGN_SHIFT) == c)
        return ptr; /* same class: in place */
    void *q = pym_malloc(n);
    if (q == NULL)
        return NULL;
    size_t old = PYM_CLASS_SIZE(c);
    memcpy(q, ptr, old < n ? old : n);
    pym_free(ptr);
    return q;
}

size_t pym_usable_size(void *ptr)
{
    if (ptr == NULL)
        return 0;
    if (!pym_radix_get((uintptr_t)ptr))
        return fallback_usable(ptr);
    uint32_t info = __atomic_load_n(&pym_pool_of(ptr)->info, __ATOMIC_RELAXED);
    unsigned state = PYM_INFO_STATE(info);
    if (state != POOL_USED && state != POOL_FULL)
        return 0;
    return PYM_CLASS_SIZE(PYM_INFO_CLASS(info));
}
