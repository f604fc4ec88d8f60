/* test_pym.c - the bundled allocator (lib/pym.h): every pool and arena
 * state transition driven on purpose, with the exact event sequence a
 * recording hook saw; bad frees; realloc across the pym/fallback border;
 * alignment; exact statistics; out-of-memory through the OS table; a
 * 4-thread stress test whose event counts and statistics must balance to
 * zero; fork while another thread allocates.
 *
 * Build: the allocator's sources are compiled into this test (below), with
 * PYM_DEBUG assertions on, so it needs only what tests/CMakeLists.txt links
 * by default.  Linking memtrace_pym as well is harmless (every pym symbol
 * is already defined here, so nothing is pulled from the archive).
 *
 * Each test starts and ends with no arena mapped (setup/teardown check it
 * through pym_stats), so arena and pool addresses are predictable relative
 * to the first block.
 */
#define _GNU_SOURCE
#define PYM_DEBUG 1
#include "pym.c"
#include "pym_arena.c"
#include "pym_stats.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

/* Sanitizers replace malloc and some, not all, of glibc's __libc_* entry
 * points (ASan and TSan take __libc_memalign; TSan cannot see reuse through
 * __libc_malloc/__libc_free), so pym's default fallback would mix two
 * allocators there: sanitized builds install the public functions (the
 * sanitizer's) as the fallback. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#include <malloc.h>
static void *san_malloc(void *c, size_t n)
{
    (void)c;
    return malloc(n);
}
static void *san_calloc(void *c, size_t m, size_t n)
{
    (void)c;
    return calloc(m, n);
}
static void *san_realloc(void *c, void *p, size_t n)
{
    (void)c;
    return realloc(p, n);
}
static void *san_memalign(void *c, size_t al, size_t n)
{
    (void)c;
    return memalign(al, n);
}
static void san_free(void *c, void *p)
{
    (void)c;
    free(p);
}
static size_t san_usable(void *c, void *p)
{
    (void)c;
    return malloc_usable_size(p);
}
static const pym_fallback_t san_fallback = {NULL, san_malloc, san_calloc, san_realloc,
                                            san_memalign, san_free, san_usable};
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* ---- the recording hook ------------------------------------------------- */

typedef struct {
    int kind;
    uintptr_t arena, pool, block;
    unsigned cls;
    uint64_t value;
} ev_t;

#define MAX_EV 8192
static struct {
    ev_t ev[MAX_EV];
    size_t n;
    int overflow;
} rec;

/* hook context: no allocation */
static void rec_hook(void *ctx, int kind, uintptr_t arena, uintptr_t pool, uintptr_t block,
                     unsigned cls, uint64_t value)
{
    (void)ctx;
    if (rec.n == MAX_EV) {
        rec.overflow = 1;
        return;
    }
    rec.ev[rec.n++] = (ev_t){kind, arena, pool, block, cls, value};
}

static void rec_start(void)
{
    rec.n = 0;
    rec.overflow = 0;
    pym_set_event_hook(rec_hook, NULL);
}

static void rec_stop(void)
{
    pym_set_event_hook(NULL, NULL);
}

static void print_ev(const char *tag, size_t i, const ev_t *e)
{
    fprintf(stderr, "  %s[%zu] %-20s arena=%#lx pool=%#lx block=%#lx class=%u value=%llu\n", tag, i,
            pym_event_name(e->kind), (unsigned long)e->arena, (unsigned long)e->pool,
            (unsigned long)e->block, e->cls, (unsigned long long)e->value);
}

static int ev_same(const ev_t *a, const ev_t *b)
{
    return a->kind == b->kind && a->arena == b->arena && a->pool == b->pool &&
           a->block == b->block && a->cls == b->cls && a->value == b->value;
}

/* The events recorded since the last check, from the start-th on, must be
 * exactly want[0..n); then the record is cleared. */
static void expect_events(size_t start, const ev_t *want, size_t n, int line)
{
    int ok = !rec.overflow && rec.n == start + n;
    for (size_t i = 0; ok && i < n; i++)
        ok = ev_same(&rec.ev[start + i], &want[i]);
    if (!ok) {
        fprintf(stderr, "event mismatch at line %d; expected from [%zu]:\n", line, start);
        for (size_t i = 0; i < n; i++)
            print_ev("want", start + i, &want[i]);
        fprintf(stderr, " got:\n");
        for (size_t i = rec.n > start + n + 8 ? rec.n - n - 8 : 0; i < rec.n; i++)
            print_ev("got ", i, &rec.ev[i]);
        fail();
    }
    rec.n = 0;
}

#define E(kind, arena, pool, block, cls, value)                                               \
    ((ev_t){PYM_EV_##kind, (uintptr_t)(arena), (uintptr_t)(pool), (uintptr_t)(block), (cls), \
            (uint64_t)(value)})
/* EXPECT(events...): exactly these since the last check.
 * EXPECT_FROM(k, events...): k events of other kinds, then exactly these. */
#define EXPECT_FROM(start, ...)                                                    \
    do {                                                                           \
        const ev_t want_[] = {__VA_ARGS__};                                        \
        expect_events((start), want_, sizeof want_ / sizeof want_[0], __LINE__);   \
    } while (0)
#define EXPECT(...) EXPECT_FROM(0, __VA_ARGS__)
#define EXPECT_NONE() expect_events(0, NULL, 0, __LINE__)

/* Events of one kind recorded since the last check. */
static size_t count_kind(int kind)
{
    size_t n = 0;
    for (size_t i = 0; i < rec.n; i++)
        n += rec.ev[i].kind == kind;
    return n;
}

#define NC PYM_NO_CLASS
#define MiB PYM_ARENA_SIZE
#define POOL(a, i) ((uintptr_t)(a) + (uintptr_t)(i)*PYM_POOL_SIZE)
#define BLOCK(pool, c, i) ((uintptr_t)(pool) + PYM_POOL_HEADER + (uintptr_t)(i)*PYM_CLASS_SIZE(c))

/* ---- fixtures ------------------------------------------------------------- */

static void assert_no_arena(void)
{
    pym_stats_t s;
    pym_trim();
    pym_stats(&s);
    assert_int_equal(s.arenas, 0);
    assert_int_equal(s.blocks_used, 0);
    assert_int_equal(s.bytes_in_use, 0);
    assert_int_equal(s.pools_used + s.pools_full + s.pools_empty, 0);
}

static int setup(void **state)
{
    (void)state;
    rec_stop();
    assert_no_arena();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rec_stop();
    assert_int_equal(pym_check(), 0);
    assert_no_arena();
    assert_int_equal(pym_check(), 0);
    return 0;
}

/* ---- pool transitions ----------------------------------------------------- */

/* First allocation maps an arena and carves its first pool; then bump,
 * free list, and the last free empties the pool (the arena stays cached
 * until pym_trim). */
static void test_first_alloc(void **state)
{
    (void)state;
    rec_start();
    char *p = pym_malloc(24);
    assert_non_null(p);
    uintptr_t A = pym_arena_of(p), P = POOL(A, 0);
    assert_int_equal((uintptr_t)p, BLOCK(P, 1, 0));
    EXPECT(E(arena_alloc, A, 0, 0, NC, MiB), E(pool_init, A, P, 0, 1, PYM_POOL_FRESH),
           E(block_alloc_newpool, A, P, p, 1, 24));

    char *q = pym_malloc(32);
    EXPECT(E(block_alloc_bump, A, P, BLOCK(P, 1, 1), 1, 32));
    pym_free(q);
    EXPECT(E(block_free, A, P, q, 1, 1));
    char *r = pym_malloc(17);
    assert_ptr_equal(r, q);
    EXPECT(E(block_alloc_freelist, A, P, q, 1, 17));
    pym_free(p);
    EXPECT(E(block_free, A, P, p, 1, 1));
    pym_free(r);
    EXPECT(E(block_free, A, P, r, 1, 0), E(pool_empty, A, P, 0, 1, 0));
    assert_int_equal(pym_check(), 0);

    pym_stats_t s;
    pym_stats(&s);
    assert_int_equal(s.arenas, 1);
    assert_int_equal(s.arenas_empty, 1);
    assert_int_equal(s.pools_uncarved, 63);
    assert_int_equal(s.cls[1].pools_empty, 1);
    assert_int_equal(s.pools_empty, 1);
    EXPECT_NONE(); /* stats emit nothing */
    assert_int_equal(pym_trim(), 1);
    EXPECT(E(arena_free, A, 0, 0, NC, MiB));
    assert_int_equal(pym_trim(), 0);
    assert_false(pym_owns(p));
}

/* Filling a pool of 512-byte blocks (31 per pool): pool_full; the next
 * request takes a fresh pool; a free into the full pool: pool_reuse, and
 * that pool (now first on the list) serves the next request. */
static void test_pool_full_reuse(void **state)
{
    (void)state;
    char *b[31];
    rec_start();
    for (int i = 0; i < 31; i++)
        b[i] = pym_malloc(512);
    uintptr_t A = pym_arena_of(b[0]), P = POOL(A, 0);
    assert_int_equal(rec.n, 34); /* arena, pool_init, newpool, 29 bump, bump, full */
    assert_int_equal(rec.ev[3].kind, PYM_EV_block_alloc_bump);
    EXPECT_FROM(32, E(block_alloc_bump, A, P, BLOCK(P, 31, 30), 31, 512),
           E(pool_full, A, P, 0, 31, 31));
    for (int i = 0; i < 31; i++)
        assert_int_equal((uintptr_t)b[i], BLOCK(P, 31, i));

    rec_start();
    char *x = pym_malloc(500);
    uintptr_t P2 = POOL(A, 1);
    EXPECT(E(pool_init, A, P2, 0, 31, PYM_POOL_FRESH), E(block_alloc_newpool, A, P2, x, 31, 500));
    assert_int_equal((uintptr_t)x, BLOCK(P2, 31, 0));

    pym_free(b[5]);
    EXPECT(E(block_free, A, P, b[5], 31, 30), E(pool_reuse, A, P, 0, 31, 30));
    pym_stats_t s;
    pym_stats(&s);
    assert_int_equal(s.cls[31].pools_used, 2);
    assert_int_equal(s.cls[31].pools_full, 0);

    char *y = pym_malloc(497);
    assert_ptr_equal(y, b[5]);
    EXPECT(E(block_alloc_freelist, A, P, y, 31, 497), E(pool_full, A, P, 0, 31, 31));
    pym_stats(&s);
    assert_int_equal(s.cls[31].pools_used, 1);
    assert_int_equal(s.cls[31].pools_full, 1);
    assert_int_equal(s.cls[31].blocks_used, 32);
    assert_int_equal(s.cls[31].blocks_free, 30);
    assert_int_equal(pym_check(), 0);

    rec_stop();
    for (int i = 0; i < 31; i++)
        pym_free(b[i]);
    pym_free(x);
}

/* An EMPTY pool is taken again: for the same class its free list is kept
 * (the block freed last comes back); for another class it is rebuilt. */
static void test_pool_reinit(void **state)
{
    (void)state;
    rec_start();
    char *p = pym_malloc(40);
    uintptr_t A = pym_arena_of(p), P = POOL(A, 0);
    pym_free(p);
    assert_int_equal(rec.n, 5);
    rec.n = 0;
    char *q = pym_malloc(33);
    assert_ptr_equal(q, p);
    EXPECT(E(pool_init, A, P, 0, 2, PYM_POOL_SAME), E(block_alloc_newpool, A, P, q, 2, 33));
    pym_free(q);
    EXPECT(E(block_free, A, P, q, 2, 0), E(pool_empty, A, P, 0, 2, 0));
    char *r = pym_malloc(100);
    char *s = pym_malloc(100);
    EXPECT(E(pool_init, A, P, 0, 6, PYM_POOL_OTHER), E(block_alloc_newpool, A, P, BLOCK(P, 6, 0), 6, 100),
           E(block_alloc_bump, A, P, BLOCK(P, 6, 1), 6, 100));
    assert_int_equal((uintptr_t)r, BLOCK(P, 6, 0));
    assert_int_equal((uintptr_t)s, BLOCK(P, 6, 1));
    assert_int_equal(pym_check(), 0);
    pym_free(r);
    pym_free(s);
}

/* ---- arena transitions ------------------------------------------------------- */

#define ARENA_512 (PYM_POOLS_PER_ARENA * 31) /* 512-byte blocks in an arena */

/* Fill arena A, map B; a new pool comes from the fuller arena; an arena
 * whose pools all become empty is cached when it is the only empty one,
 * unmapped (arena_free) when another is cached already. */
static void test_arena_lifecycle(void **state)
{
    (void)state;
    static char *a[ARENA_512];
    for (int i = 0; i < ARENA_512; i++)
        a[i] = pym_malloc(512);
    uintptr_t A = pym_arena_of(a[0]);
    for (int i = 0; i < ARENA_512; i++)
        assert_int_equal((uintptr_t)a[i], BLOCK(POOL(A, i / 31), 31, i % 31));
    pym_stats_t s;
    pym_stats(&s);
    assert_int_equal(s.arenas, 1);
    assert_int_equal(s.cls[31].pools_full, 64);
    assert_int_equal(s.pools_uncarved, 0);

    rec_start();
    char *b = pym_malloc(512);
    uintptr_t B = pym_arena_of(b);
    assert_true(B != A);
    assert_int_equal(B & (MiB - 1), 0);
    EXPECT(E(arena_alloc, B, 0, 0, NC, MiB), E(pool_init, B, POOL(B, 0), 0, 31, PYM_POOL_FRESH),
           E(block_alloc_newpool, B, POOL(B, 0), b, 31, 512));

    /* empty pool 5 of A: A has 1 free pool, B 63: A is preferred */
    uintptr_t P5 = POOL(A, 5);
    for (int i = 5 * 31; i < 6 * 31; i++)
        pym_free(a[i]);
    assert_int_equal(rec.n, 31 + 2);
    assert_int_equal(rec.ev[1].kind, PYM_EV_pool_reuse);
    EXPECT_FROM(31, E(block_free, A, P5, a[6 * 31 - 1], 31, 0), E(pool_empty, A, P5, 0, 31, 0));
    char *c = pym_malloc(16);
    EXPECT(E(pool_init, A, P5, 0, 0, PYM_POOL_OTHER), E(block_alloc_newpool, A, P5, c, 0, 16));
    pym_free(c);
    EXPECT(E(block_free, A, P5, c, 0, 0), E(pool_empty, A, P5, 0, 0, 0));

    /* B becomes empty: cached, no arena_free */
    pym_free(b);
    EXPECT(E(block_free, B, POOL(B, 0), b, 31, 0), E(pool_empty, B, POOL(B, 0), 0, 31, 0));
    pym_stats(&s);
    assert_int_equal(s.arenas, 2);
    assert_int_equal(s.arenas_empty, 1);
    assert_int_equal(pym_check(), 0);

    /* A becomes empty while B is cached: unmapped at its last free */
    for (int i = 0; i < ARENA_512; i++)
        if (i / 31 != 5)
            pym_free(a[i]);
    assert_int_equal(count_kind(PYM_EV_arena_free), 1);
    assert_int_equal(count_kind(PYM_EV_pool_empty), 63);
    assert_int_equal(count_kind(PYM_EV_pool_reuse), 63);
    assert_true(rec.n >= 3);
    uintptr_t Plast = POOL(A, 63);
    EXPECT_FROM(rec.n - 3, E(block_free, A, Plast, a[ARENA_512 - 1], 31, 0),
                E(pool_empty, A, Plast, 0, 31, 0), E(arena_free, A, 0, 0, NC, MiB));
    assert_false(pym_owns(a[0]));
    assert_true(pym_owns(b)); /* B's memory is still pym's (cached) */

    pym_stats(&s);
    assert_int_equal(s.arenas, 1);
    assert_int_equal(s.arenas_empty, 1);
    assert_int_equal(s.arenas_allocated - s.arenas_freed, 1);
    assert_int_equal(pym_trim(), 1);
    EXPECT(E(arena_free, B, 0, 0, NC, MiB));
}

/* The usable list orders arenas by free pools: with three arenas holding
 * 60, 2 and 30 free pools, new pools come from the one with 2, then 30,
 * then 60.  Then pools are given back in an interleaved order, and
 * pym_check verifies the order and last_with[] after each one. */
static void test_arena_order(void **state)
{
    (void)state;
    static char *a[3][ARENA_512], *x[92 * 31];
    static const int keep[3] = {4, 62, 34}; /* pools kept in use */
    uintptr_t base[3];
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < ARENA_512; i++)
            a[k][i] = pym_malloc(512);
        base[k] = pym_arena_of(a[k][0]);
    }
    for (int k = 0; k < 3; k++)
        for (int i = keep[k] * 31; i < ARENA_512; i++)
            pym_free(a[k][i]);
    assert_int_equal(pym_check(), 0);

    rec_start();
    for (int i = 0; i < 92 * 31; i++)
        x[i] = pym_malloc(512);
    size_t ninit = 0;
    for (size_t i = 0; i < rec.n; i++) {
        const ev_t *e = &rec.ev[i];
        assert_int_not_equal(e->kind, PYM_EV_arena_alloc);
        if (e->kind != PYM_EV_pool_init)
            continue;
        uintptr_t want = ninit < 2 ? base[1] : ninit < 32 ? base[2] : base[0];
        assert_int_equal(e->arena, want);
        assert_int_equal(e->value, PYM_POOL_SAME);
        ninit++;
    }
    assert_int_equal(ninit, 92);
    rec_stop();
    pym_stats_t s;
    pym_stats(&s);
    assert_int_equal(s.arenas, 3);
    assert_int_equal(s.pools_empty + s.pools_uncarved, 0);

    /* give whole pools back, round-robin over the arenas */
    for (int i = 0; i < 92 * 31; i++) {
        pym_free(x[i]);
        if (i % 31 == 30)
            assert_int_equal(pym_check(), 0);
    }
    for (int i = 0; i < ARENA_512; i++)
        for (int k = 0; k < 3; k++)
            if (i < keep[k] * 31) {
                pym_free(a[k][i]);
                if (i % 31 == 30)
                    assert_int_equal(pym_check(), 0);
            }
}

/* ---- fallback -------------------------------------------------------------- */

static void test_fallback(void **state)
{
    (void)state;
    rec_start();
    char *p = pym_malloc(600);
    assert_non_null(p);
    assert_false(pym_owns(p));
    EXPECT(E(fallback_alloc, 0, 0, p, NC, 600));
    char *z = pym_malloc(0);
    assert_non_null(z);
    EXPECT(E(fallback_alloc, 0, 0, z, NC, 0));
    pym_free(p);
    EXPECT(E(fallback_free, 0, 0, p, NC, 0));
    pym_free(z);
    EXPECT(E(fallback_free, 0, 0, z, NC, 0));
    pym_free(NULL);
    EXPECT_NONE();
    pym_fallback_t fb_now;
    pym_get_fallback(&fb_now);
    char *f = fb_now.malloc(fb_now.ctx, 40); /* foreign to pym */
    assert_non_null(f);
    assert_false(pym_owns(f));
    pym_free(f);
    EXPECT(E(fallback_free, 0, 0, f, NC, 0));

    int local;
    assert_false(pym_owns(&local));
    assert_false(pym_owns(NULL));
    assert_false(pym_owns((void *)UINTPTR_MAX));
    assert_false(pym_owns((void *)((uintptr_t)1 << 50)));
}

/* An embedder's fallback: records frees instead of doing them, so foreign
 * pointers that are not heap blocks can be passed to pym_free safely. */
static struct {
    void *freed[8];
    int nfreed, nmalloc;
    pym_fallback_t prev;
} fbrec;

static void *fbrec_malloc(void *ctx, size_t n)
{
    (void)ctx;
    fbrec.nmalloc++;
    return fbrec.prev.malloc(fbrec.prev.ctx, n);
}
static void fbrec_free(void *ctx, void *p)
{
    (void)ctx;
    if (fbrec.nfreed < 8)
        fbrec.freed[fbrec.nfreed++] = p;
}

static void test_fallback_custom(void **state)
{
    (void)state;
    pym_get_fallback(&fbrec.prev);
    pym_fallback_t f = fbrec.prev;
    f.malloc = fbrec_malloc;
    f.free = fbrec_free;
    f.calloc = NULL;
    assert_int_equal(pym_set_fallback(&f), 0);

    int local;
    pym_free(&local);
    pym_free((void *)0x1000);
    char *big = pym_malloc(4096);
    assert_int_equal(fbrec.nmalloc, 1);
    char *zeroed = pym_calloc(1, 1000); /* no calloc: malloc + memset */
    assert_int_equal(fbrec.nmalloc, 2);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(zeroed[i], 0);
    pym_free(big);
    pym_free(zeroed);
    assert_int_equal(fbrec.nfreed, 4);
    assert_ptr_equal(fbrec.freed[0], &local);
    assert_ptr_equal(fbrec.freed[1], (void *)0x1000);
    assert_ptr_equal(fbrec.freed[2], big);
    assert_ptr_equal(fbrec.freed[3], zeroed);

    f.memalign = NULL;
    assert_int_equal(pym_set_fallback(&f), MT_EINVAL);
    assert_int_equal(pym_set_fallback(NULL), 0);
    assert_int_equal(pym_set_fallback(&fbrec.prev), 0);
    fbrec.prev.free(fbrec.prev.ctx, big); /* recorded, not freed: give them back */
    fbrec.prev.free(fbrec.prev.ctx, zeroed);
}

/* ---- bad frees ------------------------------------------------------------- */

static void test_double_free(void **state)
{
    (void)state;
    pym_stats_t s0, s;
    pym_stats(&s0);
    char *p = pym_malloc(40), *q = pym_malloc(40);
    uintptr_t A = pym_arena_of(p), P = POOL(A, 0);
    pym_free(p);
    rec_start();
    pym_free(p); /* freed twice in a row */
    EXPECT(E(double_free, A, P, p, 2, PYM_BAD_freelist_head));

    char *r = pym_malloc(64);
    uintptr_t P3 = POOL(A, 1);
    EXPECT(E(pool_init, A, P3, 0, 3, PYM_POOL_FRESH), E(block_alloc_newpool, A, P3, r, 3, 64));
    pym_free(r + 8);
    EXPECT(E(double_free, A, P3, r + 8, 3, PYM_BAD_not_block_start));
    pym_free(r + 64); /* the next block: never handed out */
    EXPECT(E(double_free, A, P3, r + 64, 3, PYM_BAD_never_allocated));
    pym_free((char *)P3 + 16); /* the pool header */
    EXPECT(E(double_free, A, P3, P3 + 16, 3, PYM_BAD_not_block_start));
    char *uncarved = (char *)BLOCK(POOL(A, 40), 0, 0);
    pym_free(uncarved);
    EXPECT(E(double_free, A, POOL(A, 40), uncarved, NC, PYM_BAD_pool_unused));

    pym_free(q);
    EXPECT(E(block_free, A, P, q, 2, 0), E(pool_empty, A, P, 0, 2, 0));
    pym_free(q); /* its pool is EMPTY now */
    EXPECT(E(double_free, A, P, q, 2, PYM_BAD_pool_not_in_use));
    errno = 0;
    assert_null(pym_realloc(q, 10));
    assert_int_equal(errno, EINVAL);
    EXPECT(E(double_free, A, P, q, 2, PYM_BAD_pool_not_in_use));
    assert_int_equal(pym_usable_size(q), 0);

    /* nothing was corrupted: the heap is intact and still works */
    assert_int_equal(pym_check(), 0);
    pym_stats(&s);
    assert_int_equal(s.bad_frees - s0.bad_frees, 7);
    assert_int_equal(s.blocks_used, 1);
    assert_int_equal(s.cls[3].blocks_used, 1);
    char *t = pym_malloc(40);
    assert_ptr_equal(t, q); /* the pool's free list is as it was */
    EXPECT(E(pool_init, A, P, 0, 2, PYM_POOL_SAME), E(block_alloc_newpool, A, P, q, 2, 40));
    char *u = pym_malloc(40);
    assert_ptr_equal(u, p);
    rec_stop();
    pym_free(t);
    pym_free(u);
    pym_free(r);
    assert_string_equal(pym_bad_free_name(PYM_BAD_freelist_head), "freelist_head");
    assert_null(pym_bad_free_name(0));
}

/* ---- realloc, calloc, alignment -------------------------------------------- */

static void fill(char *p, size_t n, int v)
{
    memset(p, v, n);
}
static void assert_filled(const char *p, size_t n, int v)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal((unsigned char)p[i], (unsigned char)v);
}

static void test_resize(void **state)
{
    (void)state;
    char *p = pym_malloc(20);
    uintptr_t A = pym_arena_of(p), P1 = POOL(A, 0);
    fill(p, 20, 0xab);
    rec_start();
    assert_ptr_equal(pym_realloc(p, 32), p); /* same class: in place, no event */
    assert_ptr_equal(pym_realloc(p, 17), p);
    EXPECT_NONE();

    char *q = pym_realloc(p, 40); /* class 1 -> 2 */
    uintptr_t P2 = POOL(A, 1);
    EXPECT(E(pool_init, A, P2, 0, 2, PYM_POOL_FRESH), E(block_alloc_newpool, A, P2, q, 2, 40),
           E(block_free, A, P1, p, 1, 0), E(pool_empty, A, P1, 0, 1, 0));
    assert_filled(q, 20, 0xab);
    fill(q, 40, 0xcd);

    char *r = pym_realloc(q, 600); /* pym -> fallback */
    assert_false(pym_owns(r));
    EXPECT(E(fallback_alloc, 0, 0, r, NC, 600), E(block_free, A, P2, q, 2, 0),
           E(pool_empty, A, P2, 0, 2, 0));
    assert_filled(r, 40, 0xcd);
    fill(r, 600, 0xef);

    char *s = pym_realloc(r, 7000); /* fallback -> fallback */
    EXPECT(E(fallback_free, 0, 0, r, NC, 0), E(fallback_alloc, 0, 0, s, NC, 7000));
    assert_filled(s, 600, 0xef);

    char *t = pym_realloc(s, 100); /* fallback -> pym (class 6 reuses P2) */
    assert_true(pym_owns(t));
    EXPECT(E(pool_init, A, P2, 0, 6, PYM_POOL_OTHER), E(block_alloc_newpool, A, P2, t, 6, 100),
           E(fallback_free, 0, 0, s, NC, 0));
    assert_filled(t, 100, 0xef);

    assert_null(pym_realloc(t, 0)); /* frees */
    EXPECT(E(block_free, A, P2, t, 6, 0), E(pool_empty, A, P2, 0, 6, 0));
    char *u = pym_realloc(NULL, 10);
    EXPECT(E(pool_init, A, P2, 0, 0, PYM_POOL_OTHER), E(block_alloc_newpool, A, P2, u, 0, 10));
    rec_stop();
    pym_free(u);
}

static void test_zeroed(void **state)
{
    (void)state;
    char *p = pym_malloc(64);
    fill(p, 64, 0xff);
    pym_free(p);
    char *q = pym_calloc(4, 16);
    assert_ptr_equal(q, p); /* the dirty block, zeroed */
    assert_filled(q, 64, 0);
    errno = 0;
    assert_null(pym_calloc(SIZE_MAX / 2, 3));
    assert_int_equal(errno, ENOMEM);
    char *big = pym_calloc(100, 100);
    assert_non_null(big);
    assert_false(pym_owns(big));
    assert_filled(big, 10000, 0);
    char *none = pym_calloc(0, 5);
    assert_non_null(none);
    assert_false(pym_owns(none));
    pym_free(q);
    pym_free(big);
    pym_free(none);
}

static void test_alignment(void **state)
{
    (void)state;
    static char *p[PYM_SMALL_MAX + 1];
    for (size_t n = 1; n <= PYM_SMALL_MAX; n++) {
        p[n] = pym_malloc(n);
        assert_true(pym_owns(p[n]));
        assert_int_equal((uintptr_t)p[n] % 16, 0);
        assert_int_equal(pym_usable_size(p[n]), (n + 15) / 16 * 16);
        fill(p[n], pym_usable_size(p[n]), (int)(n & 0xff));
    }
    for (size_t n = 1; n <= PYM_SMALL_MAX; n++) {
        assert_filled(p[n], pym_usable_size(p[n]), (int)(n & 0xff)); /* no overlap */
        pym_free(p[n]);
    }
    static const size_t small_al[] = {0, 1, 2, 4, 8, 16};
    for (size_t i = 0; i < sizeof small_al / sizeof small_al[0]; i++) {
        char *a = pym_memalign(small_al[i], 100);
        assert_true(pym_owns(a));
        assert_int_equal((uintptr_t)a % 16, 0);
        pym_free(a);
    }
    static const size_t big_al[] = {32, 64, 4096, 65536};
    for (size_t i = 0; i < sizeof big_al / sizeof big_al[0]; i++) {
        char *a = pym_memalign(big_al[i], 100);
        assert_non_null(a);
        assert_false(pym_owns(a));
        assert_int_equal((uintptr_t)a % big_al[i], 0);
        assert_true(pym_usable_size(a) >= 100);
        pym_free(a);
    }
    char *l = pym_memalign(16, 600);
    assert_false(pym_owns(l));
    assert_int_equal((uintptr_t)l % 16, 0);
    assert_true(pym_usable_size(l) >= 600);
    pym_free(l);
    assert_int_equal(pym_usable_size(NULL), 0);
}

/* ---- statistics ------------------------------------------------------------ */

static void test_stats(void **state)
{
    (void)state;
    static char *a[100], *b[300], *c[31];
    for (int i = 0; i < 100; i++)
        a[i] = pym_malloc(100); /* class 6: 112 B, 145 per pool */
    for (int i = 0; i < 300; i++)
        b[i] = pym_malloc(16); /* class 0: 1021 per pool */
    for (int i = 0; i < 31; i++)
        c[i] = pym_malloc(512); /* class 31: one full pool */
    pym_stats_t s;
    pym_stats(&s);
    assert_int_equal(s.arenas, 1);
    assert_int_equal(s.arena_bytes, MiB);
    assert_int_equal(s.pools_used, 2);
    assert_int_equal(s.pools_full, 1);
    assert_int_equal(s.pools_empty, 0);
    assert_int_equal(s.pools_uncarved, 61);
    assert_int_equal(s.blocks_used, 431);
    assert_int_equal(s.bytes_in_use, 100 * 112 + 300 * 16 + 31 * 512);
    assert_int_equal(s.blocks_free, (145 - 100) + (1021 - 300));
    assert_int_equal(s.bytes_free, (145 - 100) * 112 + (1021 - 300) * 16);
    assert_int_equal(s.cls[6].blocks_used, 100);
    assert_int_equal(s.cls[6].blocks_per_pool, 145);
    assert_int_equal(s.cls[0].blocks_per_pool, 1021);
    assert_int_equal(s.cls[31].blocks_per_pool, 31);
    assert_int_equal(s.cls[31].pools_full, 1);
    assert_int_equal(s.cls[0].pools_used, 1);
    for (int i = 0; i < 300; i++)
        pym_free(b[i]);
    pym_stats(&s);
    assert_int_equal(s.cls[0].pools_empty, 1);
    assert_int_equal(s.cls[0].pools_used, 0);
    assert_int_equal(s.blocks_used, 131);
    assert_int_equal(s.arenas_empty, 0);
    for (int i = 0; i < 100; i++)
        pym_free(a[i]);
    for (int i = 0; i < 31; i++)
        pym_free(c[i]);
    pym_stats(&s);
    assert_int_equal(s.blocks_used, 0);
    assert_int_equal(s.pools_empty, 3);
    assert_int_equal(s.arenas_empty, 1);
}

static void test_names(void **state)
{
    (void)state;
    for (int k = 0; k < PYM_EV_COUNT; k++) {
        assert_non_null(pym_event_name(k));
        assert_non_null(pym_event_description(k));
        for (int j = 0; j < k; j++)
            assert_true(strcmp(pym_event_name(j), pym_event_name(k)) != 0);
    }
    assert_null(pym_event_name(PYM_EV_COUNT));
    assert_null(pym_event_name(-1));
    assert_string_equal(pym_event_name(PYM_EV_block_alloc_newpool), "block_alloc_newpool");
}

/* ---- the OS table: counting, out of memory, unaligned mappings ------------ */

static struct {
    int maps, unmaps, fail_countdown, misalign;
    size_t mapped, unmapped;
} osrec;

static void *osrec_map(void *ctx, size_t size)
{
    (void)ctx;
    osrec.maps++;
    if (osrec.fail_countdown > 0 && --osrec.fail_countdown == 0)
        return NULL;
    if (osrec.misalign && size == MiB) { /* an unaligned 1 MiB: pym must carve its own */
        char *m = sys_map(NULL, size + 4096 * 2);
        if (m == NULL)
            return NULL;
        char *r = ((uintptr_t)(m + 4096) & (MiB - 1)) ? m + 4096 : m + 8192;
        sys_unmap(NULL, m, (size_t)(r - m));
        sys_unmap(NULL, r + size, (size_t)(m + size + 8192 - (r + size)));
        osrec.mapped += size;
        return r;
    }
    void *m = sys_map(NULL, size);
    if (m != NULL)
        osrec.mapped += size;
    return m;
}

static void osrec_unmap(void *ctx, void *addr, size_t size)
{
    (void)ctx;
    osrec.unmaps++;
    osrec.unmapped += size;
    sys_unmap(NULL, addr, size);
}

static void test_os_table(void **state)
{
    (void)state;
    const pym_os_t os = {NULL, osrec_map, osrec_unmap};
    assert_int_equal(pym_set_os(&os), 0);

    /* out of memory: the request goes to the fallback */
    memset(&osrec, 0, sizeof osrec);
    osrec.fail_countdown = 1;
    rec_start();
    char *p = pym_malloc(24);
    assert_non_null(p);
    assert_false(pym_owns(p));
    EXPECT(E(fallback_alloc, 0, 0, p, NC, 24));
    pym_free(p);
    EXPECT(E(fallback_free, 0, 0, p, NC, 0));

    /* unaligned mapping: unmapped, 2 MiB mapped and trimmed to 1 MiB */
    memset(&osrec, 0, sizeof osrec);
    osrec.misalign = 1;
    p = pym_malloc(24);
    assert_true(pym_owns(p));
    uintptr_t A = pym_arena_of(p);
    EXPECT(E(arena_alloc, A, 0, 0, NC, MiB), E(pool_init, A, A, 0, 1, PYM_POOL_FRESH),
           E(block_alloc_newpool, A, A, p, 1, 24));
    assert_int_equal(osrec.maps, 2);
    assert_int_equal(osrec.mapped - osrec.unmapped, MiB); /* exactly one arena left */
    assert_int_equal(pym_set_os(NULL), MT_EINVAL);      /* an arena is mapped */
    pym_free(p);
    assert_int_equal(pym_trim(), 1);
    assert_int_equal(osrec.mapped, osrec.unmapped);
    rec_stop();
    assert_int_equal(pym_set_os(NULL), 0);
    const pym_os_t bad = {NULL, NULL, osrec_unmap};
    assert_int_equal(pym_set_os(&bad), MT_EINVAL);
}

/* ---- threads ---------------------------------------------------------------- */

#define NTHREADS 4
#define OPS 200000
#define WINDOW 512
#define NSHARED 64

static uint64_t ev_count[PYM_EV_COUNT];
static void *shared_slot[NSHARED]; /* blocks handed between threads */

/* hook context: atomic counters only */
static void count_hook(void *ctx, int kind, uintptr_t arena, uintptr_t pool, uintptr_t block,
                       unsigned cls, uint64_t value)
{
    (void)ctx, (void)arena, (void)pool, (void)block, (void)cls, (void)value;
    __atomic_add_fetch(&ev_count[kind], 1, __ATOMIC_RELAXED);
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* A block carries its size and a tag in its first 16 bytes and the tag in
 * its last byte: an overlap with another live block shows on release. */
typedef struct {
    uint32_t size, tag;
} blkhdr_t;

static void *blk_new(size_t n, uint32_t tag)
{
    unsigned char *p = pym_malloc(n);
    if (p == NULL)
        return NULL;
    blkhdr_t h = {(uint32_t)n, tag};
    memcpy(p, &h, sizeof h);
    p[n - 1] = (unsigned char)tag;
    return p;
}

static int blk_free(void *vp)
{
    unsigned char *p = vp;
    blkhdr_t h;
    memcpy(&h, p, sizeof h);
    int ok = h.size >= sizeof h && p[h.size - 1] == (unsigned char)h.tag;
    pym_free(p);
    return ok;
}

static void *stress_thread(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    uint64_t s = 0x9e3779b97f4a7c15ull * (id + 1);
    void *slot[WINDOW] = {0};
    uintptr_t bad = 0;
    for (uint32_t i = 0; i < OPS; i++) {
        uint64_t r = xorshift(&s);
        unsigned k = (unsigned)(r % WINDOW);
        if (slot[k] != NULL)
            bad += !blk_free(slot[k]);
        size_t n = 8 + (size_t)((r >> 20) % ((r >> 60) < 14 ? 505 : 1017)); /* 8..1024 */
        slot[k] = blk_new(n, (uint32_t)(id << 24 | i));
        if (slot[k] == NULL)
            bad++;
        if ((r >> 40) % 8 == 0) { /* hand a block to whichever thread comes next */
            void *mine = slot[k];
            slot[k] = __atomic_exchange_n(&shared_slot[(r >> 44) % NSHARED], mine, __ATOMIC_ACQ_REL);
        }
    }
    for (unsigned k = 0; k < WINDOW; k++)
        if (slot[k] != NULL)
            bad += !blk_free(slot[k]);
    return (void *)bad;
}

static void test_threads_stress(void **state)
{
    (void)state;
    pym_stats_t s0;
    pym_stats(&s0);
    memset(ev_count, 0, sizeof ev_count);
    pym_set_event_hook(count_hook, NULL);
    pthread_t t[NTHREADS];
    for (uintptr_t i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, stress_thread, (void *)i), 0);
    uintptr_t bad = 0;
    for (int i = 0; i < NTHREADS; i++) {
        void *rv;
        assert_int_equal(pthread_join(t[i], &rv), 0);
        bad += (uintptr_t)rv;
    }
    for (int k = 0; k < NSHARED; k++)
        if (shared_slot[k] != NULL) {
            bad += !blk_free(shared_slot[k]);
            shared_slot[k] = NULL;
        }
    assert_int_equal(bad, 0);
    assert_int_equal(pym_check(), 0);

    pym_stats_t s;
    pym_stats(&s);
    assert_int_equal(s.blocks_used, 0);
    assert_int_equal(s.bytes_in_use, 0);
    assert_int_equal(s.pools_used, 0);
    assert_int_equal(s.pools_full, 0);
    assert_true(s.arenas_empty == s.arenas && s.arenas <= 1);
    pym_trim();
    pym_set_event_hook(NULL, NULL);
    pym_stats(&s);
    assert_int_equal(s.arenas, 0);

    /* the event stream balances too */
    uint64_t *n = ev_count;
    assert_true(n[PYM_EV_block_alloc_newpool] > 0 && n[PYM_EV_fallback_alloc] > 0);
    assert_int_equal(n[PYM_EV_block_alloc_freelist] + n[PYM_EV_block_alloc_bump] +
                         n[PYM_EV_block_alloc_newpool],
                     n[PYM_EV_block_free]);
    assert_int_equal(n[PYM_EV_block_alloc_newpool], n[PYM_EV_pool_init]);
    assert_int_equal(n[PYM_EV_pool_init], n[PYM_EV_pool_empty]);
    assert_int_equal(n[PYM_EV_pool_full], n[PYM_EV_pool_reuse]);
    assert_int_equal(n[PYM_EV_arena_alloc], n[PYM_EV_arena_free]);
    assert_int_equal(n[PYM_EV_arena_alloc], s.arenas_allocated - s0.arenas_allocated);
    assert_int_equal(n[PYM_EV_fallback_alloc], n[PYM_EV_fallback_free]);
    assert_int_equal(n[PYM_EV_double_free], 0);
    assert_int_equal(n[PYM_EV_block_alloc_freelist] + n[PYM_EV_block_alloc_bump] +
                         n[PYM_EV_block_alloc_newpool] + n[PYM_EV_fallback_alloc],
                     (uint64_t)NTHREADS * OPS);
}

/* ---- fork -------------------------------------------------------------------- */

static int churn_stop; /* atomic */

static void *churn_thread(void *arg)
{
    (void)arg;
    uint64_t s = 42;
    void *keep[64] = {0};
    while (!__atomic_load_n(&churn_stop, __ATOMIC_RELAXED)) {
        uint64_t r = xorshift(&s);
        unsigned k = (unsigned)(r % 64);
        pym_free(keep[k]);
        keep[k] = pym_malloc(1 + (size_t)((r >> 32) % 700));
    }
    for (int k = 0; k < 64; k++)
        pym_free(keep[k]);
    return NULL;
}

/* Forks while another thread allocates: without the handlers a child
 * would sometimes inherit a held lock and hang. */
static void test_fork(void **state)
{
    (void)state;
    assert_int_equal(pym_atfork_register(), 0);
    assert_int_equal(pym_atfork_register(), 0); /* once only */
    pthread_t t;
    __atomic_store_n(&churn_stop, 0, __ATOMIC_RELAXED);
    assert_int_equal(pthread_create(&t, NULL, churn_thread, NULL), 0);
    for (int i = 0; i < 30; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            void *b[40];
            for (int j = 0; j < 40; j++)
                b[j] = pym_malloc((size_t)(j * 13 + 1));
            for (int j = 0; j < 40; j++)
                pym_free(b[j]);
            _exit(pym_check() == 0 ? 0 : 3);
        }
        int status = 0;
        struct timespec ts = {0, 2000000};
        int waited = 0;
        while (waitpid(pid, &status, WNOHANG) == 0) {
            if (++waited > 2500) { /* 5 s: the child hangs */
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                fail_msg("fork child %d hung", i);
            }
            nanosleep(&ts, NULL);
        }
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    __atomic_store_n(&churn_stop, 1, __ATOMIC_RELAXED);
    assert_int_equal(pthread_join(t, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_alloc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_full_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_reinit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arena_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arena_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fallback_custom, setup, teardown),
        cmocka_unit_test_setup_teardown(test_double_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zeroed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alignment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_os_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_stress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork, setup, teardown),
    };
#if SANITIZED
    pym_set_fallback(&san_fallback);
#endif
    return cmocka_run_group_tests(tests, NULL, NULL);
}
