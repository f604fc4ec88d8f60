/* test_analyzer_layout.c - unit tests of the bundled allocator's layout
 * rebuilt from its events (analyzer/layout_model.c): every transition of the
 * pool state machine, the statistics it gives in pym_stats_t's shape,
 * arenas unmapped and mapped again, fork copies, events that contradict
 * the model (anomalies), and the order of the lists.  Every expected
 * number is worked out in a comment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "layout_model.h"
#include "pym.h"

#include <stdlib.h>
#include <string.h>

#define A 0x7f0000000000ull              /* an arena (1 MiB aligned) */
#define B (A + PYM_ARENA_SIZE)           /* the next one */
#define POOL(arena, i) ((arena) + (uint64_t)(i) * PYM_POOL_SIZE)

typedef struct {
    mt_layout_t *m;
    int64_t seq;
} rig_t;

/* Feeds one event of `process` (ts = seq); asserts it is accepted. */
static void ev(rig_t *r, int64_t process, int kind, uint64_t addr, uint64_t pool, int cls, int64_t value)
{
    r->seq++;
    mt_layout_event_t e = {.seq = r->seq, .ts = r->seq, .process = process, .kind = kind, .addr = addr,
                           .pool = pool, .size_class = cls, .value = value};
    assert_int_equal(mt_layout_feed(r->m, &e), 0);
}

#define ARENA_ALLOC(r, p, a) ev(r, p, PYM_EV_arena_alloc, a, 0, -1, PYM_ARENA_SIZE)
#define ARENA_FREE(r, p, a) ev(r, p, PYM_EV_arena_free, a, 0, -1, PYM_ARENA_SIZE)
#define POOL_INIT(r, p, pl, c, origin) ev(r, p, PYM_EV_pool_init, pl, pl, c, origin)
#define ALLOC(r, p, pl, c) ev(r, p, PYM_EV_block_alloc_bump, (pl) + 48, pl, c, 1)
#define FREE(r, p, pl, c, left) ev(r, p, PYM_EV_block_free, (pl) + 48, pl, c, left)
#define FULL(r, p, pl, c, n) ev(r, p, PYM_EV_pool_full, pl, pl, c, n)
#define REUSE(r, p, pl, c, n) ev(r, p, PYM_EV_pool_reuse, pl, pl, c, n)
#define EMPTY(r, p, pl, c) ev(r, p, PYM_EV_pool_empty, pl, pl, c, 0)

static rig_t rig(void)
{
    rig_t r = {0};
    assert_int_equal(mt_layout_create(&r.m), 0);
    return r;
}

static int64_t anomalies(const rig_t *r) { return mt_layout_info(r->m).anomalies; }

/* Every transition of the pool state machine, then the statistics. */
static void test_pool_states(void **state)
{
    (void)state;
    rig_t r = rig();
    pym_stats_t s;
    ARENA_ALLOC(&r, 1, A);
    POOL_INIT(&r, 1, POOL(A, 0), 31, PYM_POOL_FRESH);          /* A/0: class 31, 31 blocks of 512 */
    for (int i = 0; i < 31; i++) ALLOC(&r, 1, POOL(A, 0), 31); /* ref 31 = capacity */
    FULL(&r, 1, POOL(A, 0), 31, 31);                            /* USED -> FULL */
    mt_layout_stats(r.m, 1, &s);
    assert_int_equal(s.cls[31].pools_full, 1);
    assert_int_equal(s.cls[31].blocks_used, 31);
    assert_int_equal(s.cls[31].blocks_free, 0);                 /* full pools have none */
    FREE(&r, 1, POOL(A, 0), 31, 30);
    REUSE(&r, 1, POOL(A, 0), 31, 30);                           /* FULL -> USED */
    POOL_INIT(&r, 1, POOL(A, 1), 0, PYM_POOL_FRESH);           /* A/1: class 0 */
    ALLOC(&r, 1, POOL(A, 1), 0);
    FREE(&r, 1, POOL(A, 1), 0, 0);
    EMPTY(&r, 1, POOL(A, 1), 0);                                /* USED -> EMPTY, keeps class 0 */
    POOL_INIT(&r, 1, POOL(A, 2), 5, PYM_POOL_FRESH);           /* A/2: class 5 (96 B, 170 blocks) */
    ALLOC(&r, 1, POOL(A, 2), 5);
    ALLOC(&r, 1, POOL(A, 2), 5);
    ev(&r, 1, PYM_EV_double_free, POOL(A, 2) + 50, POOL(A, 2), 5, PYM_BAD_not_block_start);
    ev(&r, 1, PYM_EV_fallback_alloc, 0x5000, 0, -1, 1000);     /* counted nowhere */
    assert_int_equal(anomalies(&r), 0);

    mt_layout_stats(r.m, 1, &s);
    assert_int_equal(s.arenas, 1);
    assert_int_equal(s.arenas_empty, 0);
    assert_int_equal(s.arena_bytes, PYM_ARENA_SIZE);
    assert_int_equal(s.arenas_allocated, 1);
    assert_int_equal(s.arenas_freed, 0);
    assert_int_equal(s.pools_uncarved, 61);                     /* 64 - 3 carved */
    assert_int_equal(s.pools_used, 2);                          /* A/0 and A/2 */
    assert_int_equal(s.pools_full, 0);
    assert_int_equal(s.pools_empty, 1);                         /* A/1 */
    assert_int_equal(s.cls[0].pools_empty, 1);
    assert_int_equal(s.cls[31].blocks_used, 30);
    assert_int_equal(s.cls[31].blocks_free, 1);
    assert_int_equal(s.cls[5].blocks_used, 2);
    assert_int_equal(s.cls[5].blocks_free, 168);
    assert_int_equal(s.cls[5].blocks_per_pool, 170);
    assert_int_equal(s.blocks_used, 32);
    assert_int_equal(s.blocks_free, 169);
    assert_int_equal(s.bytes_in_use, 30 * 512 + 2 * 96);        /* 15552 */
    assert_int_equal(s.bytes_free, 512 + 168 * 96);             /* 16640 */
    assert_int_equal(s.bad_frees, 1);

    /* the empty pool taken again: for its own class (SAME), then emptied
     * and taken for another (OTHER) */
    POOL_INIT(&r, 1, POOL(A, 1), 0, PYM_POOL_SAME);
    ALLOC(&r, 1, POOL(A, 1), 0);
    FREE(&r, 1, POOL(A, 1), 0, 0);
    EMPTY(&r, 1, POOL(A, 1), 0);
    POOL_INIT(&r, 1, POOL(A, 1), 3, PYM_POOL_OTHER);
    assert_int_equal(anomalies(&r), 0);

    mt_layout_pool_t *v;
    size_t n;
    assert_int_equal(mt_layout_pools(r.m, &v, &n), 0);
    assert_int_equal(n, 3);                                     /* carved pools only, by address */
    assert_int_equal(v[0].pool, POOL(A, 0));
    assert_int_equal(v[0].state, MT_POOL_USED);
    assert_int_equal(v[0].blocks_used, 30);
    assert_int_equal(v[0].capacity, 31);
    assert_int_equal(v[1].index, 1);
    assert_int_equal(v[1].size_class, 3);
    assert_int_equal(v[1].state, MT_POOL_USED);
    assert_int_equal(v[1].blocks_used, 0);
    assert_int_equal(v[1].capacity, 255);                       /* (16384 - 48) / 64 */
    assert_int_equal(v[2].arena, A);
    assert_int_equal(v[2].blocks_used, 2);
    free(v);
    mt_layout_destroy(r.m);
}

/* An arena unmapped goes away with its pools; one mapped at the same
 * address starts uncarved.  Arenas list by process, then address. */
static void test_arenas(void **state)
{
    (void)state;
    rig_t r = rig();
    ARENA_ALLOC(&r, 2, B);
    ARENA_ALLOC(&r, 2, A);
    ARENA_ALLOC(&r, 1, B);
    POOL_INIT(&r, 2, POOL(A, 0), 1, PYM_POOL_FRESH);
    ALLOC(&r, 2, POOL(A, 0), 1);
    FREE(&r, 2, POOL(A, 0), 1, 0);
    EMPTY(&r, 2, POOL(A, 0), 1);
    ARENA_FREE(&r, 2, A);
    ARENA_ALLOC(&r, 2, A);
    assert_int_equal(anomalies(&r), 0);

    mt_layout_arena_t *v;
    size_t n;
    assert_int_equal(mt_layout_arenas(r.m, &v, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].process, 1);
    assert_int_equal(v[0].arena, B);
    assert_int_equal(v[1].process, 2);
    assert_int_equal(v[1].arena, A);
    assert_int_equal(v[1].pools_uncarved, 64);                  /* mapped again: nothing carved */
    assert_int_equal(v[1].pools_empty, 0);
    assert_int_equal(v[2].arena, B);
    free(v);

    pym_stats_t s;
    mt_layout_stats(r.m, 2, &s);
    assert_int_equal(s.arenas, 2);
    assert_int_equal(s.arenas_empty, 2);
    assert_int_equal(s.arenas_allocated, 3);
    assert_int_equal(s.arenas_freed, 1);
    assert_int_equal(s.pools_uncarved, 128);

    int64_t *procs;
    assert_int_equal(mt_layout_processes(r.m, &procs, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(procs[0], 1);
    assert_int_equal(procs[1], 2);
    free(procs);
    mt_layout_destroy(r.m);
}

/* A fork child starts as a copy of its parent; then each goes its way. */
static void test_fork(void **state)
{
    (void)state;
    rig_t r = rig();
    pym_stats_t s;
    ARENA_ALLOC(&r, 1, A);
    POOL_INIT(&r, 1, POOL(A, 0), 0, PYM_POOL_FRESH);
    ALLOC(&r, 1, POOL(A, 0), 0);
    ALLOC(&r, 1, POOL(A, 0), 0);
    ev(&r, 1, PYM_EV_double_free, POOL(A, 0) + 8, POOL(A, 0), 0, PYM_BAD_not_block_start);
    assert_int_equal(mt_layout_fork(r.m, 1, 7), 0);
    FREE(&r, 7, POOL(A, 0), 0, 1);                              /* the child frees one of its copies */
    ALLOC(&r, 1, POOL(A, 0), 0);                                /* the parent allocates a third */
    assert_int_equal(anomalies(&r), 0);
    mt_layout_stats(r.m, 7, &s);
    assert_int_equal(s.arenas, 1);
    assert_int_equal(s.arenas_allocated, 1);                    /* inherited, as pym's counters are */
    assert_int_equal(s.bad_frees, 1);
    assert_int_equal(s.blocks_used, 1);
    mt_layout_stats(r.m, 1, &s);
    assert_int_equal(s.blocks_used, 3);
    assert_int_equal(mt_layout_info(r.m).forks, 1);

    /* a second fork into the same child replaces what it had */
    assert_int_equal(mt_layout_fork(r.m, 1, 7), 0);
    mt_layout_stats(r.m, 7, &s);
    assert_int_equal(s.blocks_used, 3);
    assert_int_equal(s.arenas, 1);
    mt_layout_destroy(r.m);
}

/* Events that contradict the model are applied as far as they make sense
 * and counted; the allocator's own block count wins. */
static void test_anomalies(void **state)
{
    (void)state;
    rig_t r = rig();
    pym_stats_t s;
    POOL_INIT(&r, 1, POOL(A, 3), 2, PYM_POOL_FRESH);           /* 1: arena never mapped */
    ALLOC(&r, 1, POOL(A, 3), 2);
    FULL(&r, 1, POOL(A, 3), 2, 1);                              /* 2: full with 1 of 340 blocks */
    FREE(&r, 1, POOL(A, 3), 2, 5);                              /* 3: 0 expected, 5 said: 5 kept */
    mt_layout_stats(r.m, 1, &s);
    assert_int_equal(s.arenas, 1);
    assert_int_equal(s.cls[2].blocks_used, 5);
    assert_int_equal(anomalies(&r), 3);
    EMPTY(&r, 1, POOL(A, 3), 2);                                /* 4: 5 blocks still in use */
    POOL_INIT(&r, 1, POOL(A, 3), 2, PYM_POOL_OTHER);           /* 5: OTHER for the same class */
    ALLOC(&r, 1, POOL(A, 9), 2);                                /* 6: uncarved pool */
    ARENA_FREE(&r, 1, A);                                       /* 7: pools in use */
    ARENA_FREE(&r, 1, B);                                       /* 8: never mapped */
    ev(&r, 1, PYM_EV_block_free, 0, 0, 2, 0);                   /* 9: no pool at all */
    POOL_INIT(&r, 1, POOL(B, 0), 40, PYM_POOL_FRESH);          /* 10: no such class (arena B: 11) */
    assert_int_equal(anomalies(&r), 11);
    ev(&r, 1, 200, A, 0, -1, 0);                                /* a kind newer than this model: ignored */
    assert_int_equal(anomalies(&r), 11);
    mt_layout_info_t info = mt_layout_info(r.m);
    assert_int_equal(info.events, 12);
    assert_int_equal(info.last_seq, 12);
    mt_layout_destroy(r.m);
    mt_layout_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_states),
        cmocka_unit_test(test_arenas),
        cmocka_unit_test(test_fork),
        cmocka_unit_test(test_anomalies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
