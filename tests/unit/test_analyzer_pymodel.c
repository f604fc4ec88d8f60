/* test_analyzer_pymodel.c - unit tests of pymalloc rebuilt from the events
 * of a CPython interpreter's domains (analyzer/pymodel.c): arenas and their
 * pools (64, or 63 when the arena is not pool-aligned), size classes with
 * and without the debug hooks' pad, a realloc in place keeping its class, a
 * moving realloc, pool states (used, full, empty, uncarved), blocks outside
 * every arena, an allocation over a block whose free was not recorded, an
 * arena returned, and geometries that are not pymalloc's.
 * Every expected number is worked out in a comment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mt_error.h"
#include "mt_event.h"
#include "pymodel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1ull << 20)
#define KIB16 (1ull << 14)
#define A 0x7f0000000000ull     /* an arena on a pool boundary: 64 pools */
#define B (A + 2 * MIB + 0x1000) /* one that is not: 63 pools, the first at B1 */
#define B1 (A + 2 * MIB + KIB16)

static mt_pymodel_t *model(const char *allocator)
{
    mt_pymodel_geom_t g = {.arena_size = (int64_t)MIB, .pool_size = (int64_t)KIB16, .classes = 32};
    snprintf(g.allocator, sizeof g.allocator, "%s", allocator);
    mt_pymodel_t *m = NULL;
    assert_int_equal(mt_pymodel_create(&g, 7, &m), 0);
    return m;
}

static void feed(mt_pymodel_t *m, int kind, uint64_t addr, int64_t size, uint64_t old)
{
    assert_int_equal(mt_pymodel_feed(m, kind, addr, size, old, 0), 0);
}

static void test_geometry(void **state)
{
    (void)state;
    mt_pymodel_t *m = NULL;
    mt_pymodel_geom_t g = {.arena_size = 0, .pool_size = (int64_t)KIB16, .classes = 32};
    assert_int_equal(mt_pymodel_create(&g, 1, &m), MT_EINVAL);      /* no arena size */
    g.arena_size = (int64_t)MIB;
    g.pool_size = 3 * 4096;
    assert_int_equal(mt_pymodel_create(&g, 1, &m), MT_EINVAL);      /* not a power of two */
    assert_null(m);
    m = model("pymalloc");
    assert_int_equal(mt_pymodel_classes(m), 32);
    assert_int_equal(mt_pymodel_block_size(m, 0), 16);
    assert_int_equal(mt_pymodel_block_size(m, 31), 512);
    assert_int_equal(mt_pymodel_pool_capacity(m, 0), 1021);         /* (16384 - 48) / 16 */
    assert_int_equal(mt_pymodel_pool_capacity(m, 31), 31);          /* 16336 / 512 */
    mt_pymodel_destroy(m);
    mt_pymodel_destroy(NULL);
}

static void test_pools(void **state)
{
    (void)state;
    mt_pymodel_t *m = model("pymalloc");
    feed(m, MT_EV_py_arena_alloc, A, (int64_t)MIB, 0);
    feed(m, MT_EV_py_arena_alloc, B, (int64_t)MIB, 0);
    feed(m, MT_EV_py_arena_alloc, 0x10000, 16384, 0);              /* a frame data stack: no arena */
    feed(m, MT_EV_obj_malloc, A + 48, 16, 0);                       /* class 0, pool 0 of A */
    feed(m, MT_EV_mem_malloc, A + KIB16 + 48, 17, 0);               /* class 1, pool 1 */
    feed(m, MT_EV_mem_realloc, A + KIB16 + 48, 100, A + KIB16 + 48); /* in place: keeps class 1 */
    mt_pymodel_totals_t t;
    mt_pymodel_totals(m, &t);
    assert_int_equal(t.class_used[1], 1);
    assert_int_equal(t.class_used[6], 0);
    feed(m, MT_EV_mem_realloc, A + 2 * KIB16 + 48, 100, A + KIB16 + 48); /* moves: class 6 (99 >> 4), pool 2 */
    feed(m, MT_EV_obj_malloc, 0x5000, 32, 0);                       /* outside every arena: not pymalloc's */
    for (int i = 0; i < 31; i++) feed(m, MT_EV_obj_malloc, B1 + 48 + 512 * (uint64_t)i, 500, 0); /* class 31 */
    mt_pymodel_totals(m, &t);
    assert_int_equal(t.arenas, 2);
    assert_int_equal(t.arenas_total, 2);
    assert_int_equal(t.blocks, 33);                                 /* 1 + 1 + 31 */
    assert_int_equal(t.pools, 3);
    assert_int_equal(t.class_pools[0], 1);
    assert_int_equal(t.class_pools[1], 0);
    assert_int_equal(t.class_pools[6], 1);
    assert_int_equal(t.class_pools[31], 1);
    assert_int_equal(t.used_bytes, 16 + 112 + 31 * 512);
    assert_int_equal(t.anomalies, 0);

    mt_layout_pool_t *p = NULL;
    size_t np = 0;
    assert_int_equal(mt_pymodel_pools(m, &p, &np), 0);
    assert_int_equal(np, 4);
    assert_true(p[0].arena == A && p[0].index == 0 && p[0].size_class == 0 && p[0].state == MT_POOL_USED);
    assert_int_equal(p[0].capacity, 1021);
    assert_true(p[1].index == 1 && p[1].size_class == 1 && p[1].state == MT_POOL_EMPTY && p[1].blocks_used == 0);
    assert_true(p[2].index == 2 && p[2].size_class == 6 && p[2].state == MT_POOL_USED && p[2].blocks_used == 1);
    assert_true(p[3].arena == B && p[3].pool == B1 && p[3].index == 0 && p[3].state == MT_POOL_FULL);
    assert_int_equal(p[3].blocks_used, 31);
    assert_int_equal(p[3].process, 7);
    free(p);

    mt_layout_arena_t *a = NULL;
    size_t na = 0;
    int *npools = NULL;
    assert_int_equal(mt_pymodel_arenas(m, &a, &na, &npools), 0);
    assert_int_equal(na, 2);
    assert_int_equal(npools[0], 64);
    assert_int_equal(npools[1], 63);
    assert_true(a[0].pools_used == 2 && a[0].pools_full == 0 && a[0].pools_empty == 1 && a[0].pools_uncarved == 61);
    assert_int_equal(a[0].blocks_used, 2);
    assert_int_equal(a[0].bytes_in_use, 16 + 112);
    assert_true(a[1].pools_full == 1 && a[1].pools_uncarved == 62 && a[1].blocks_used == 31);
    free(a);
    free(npools);

    /* one block of the full pool freed: used again */
    feed(m, MT_EV_obj_free, B1 + 48, 0, 0);
    assert_int_equal(mt_pymodel_pools(m, &p, &np), 0);
    assert_true(np == 4 && p[3].state == MT_POOL_USED && p[3].blocks_used == 30);
    free(p);

    /* A emptied and returned: its pools go with it */
    feed(m, MT_EV_obj_free, A + 48, 0, 0);
    feed(m, MT_EV_mem_free, A + 2 * KIB16 + 48, 0, 0);
    feed(m, MT_EV_py_arena_free, A, (int64_t)MIB, 0);
    mt_pymodel_totals(m, &t);
    assert_int_equal(t.arenas, 1);
    assert_int_equal(t.arenas_freed, 1);
    assert_int_equal(t.arenas_high, 2);
    assert_int_equal(t.arena_freed_bytes, (int64_t)MIB);
    assert_int_equal(t.pools, 1);
    assert_int_equal(t.blocks, 30);
    assert_int_equal(mt_pymodel_pools(m, &p, &np), 0);
    assert_true(np == 1 && p[0].arena == B);
    free(p);
    mt_pymodel_destroy(m);
}

static void test_debug_pad(void **state)
{
    (void)state;
    mt_pymodel_t *m = model("pymalloc_debug");
    feed(m, MT_EV_py_arena_alloc, A, (int64_t)MIB, 0);
    feed(m, MT_EV_obj_malloc, A + 64, 8, 0);             /* 8 + 24 = 32 bytes: class 1 */
    feed(m, MT_EV_obj_malloc, A + KIB16 + 64, 9, 0);     /* 33 bytes: class 2 */
    mt_pymodel_totals_t t;
    mt_pymodel_totals(m, &t);
    assert_int_equal(t.class_used[1], 1);
    assert_int_equal(t.class_used[2], 1);
    assert_int_equal(t.class_pools[1], 1);
    assert_int_equal(t.class_pools[2], 1);
    assert_int_equal(mt_pymodel_pool_capacity(m, 2), 340); /* 16336 / 48 */
    feed(m, MT_EV_obj_malloc, A + 64, 40, 0);            /* again, its free not recorded: class 3 replaces it */
    mt_pymodel_totals(m, &t);
    assert_int_equal(t.blocks, 2);
    assert_int_equal(t.class_used[1], 0);
    assert_int_equal(t.class_used[3], 1);
    assert_int_equal(t.pools, 2);                        /* pool 0 keeps one block */
    mt_pymodel_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geometry),
        cmocka_unit_test(test_pools),
        cmocka_unit_test(test_debug_pad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
