/* test_clock.c - the ticks -> ns map of lib/mt_clock.h. */
#include "mt_clock.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static void test_empty_and_single(void **state)
{
    (void)state;
    mt_tscmap_t m = {0};
    assert_int_equal(mt_tscmap_ns(&m, 12345), 0);
    assert_int_equal(mt_tscmap_add(&m, 1000, 500), 0);
    assert_int_equal(mt_tscmap_ns(&m, 5000), 500);
    mt_tscmap_free(&m);
}

static void test_interpolation_is_exact_on_a_line(void **state)
{
    (void)state;
    /* 3 ticks per ns, samples every 3 million ticks, with offsets */
    mt_tscmap_t m = {0};
    for (uint64_t k = 0; k < 100; k++) assert_int_equal(mt_tscmap_add(&m, 7000 + 3000000 * k, 42 + 1000000 * k), 0);
    assert_int_equal(mt_tscmap_ns(&m, 7000), 42);
    assert_int_equal(mt_tscmap_ns(&m, 7000 + 3000000 * 50 + 300), 42 + 1000000 * 50 + 100);
    assert_int_equal(mt_tscmap_ns(&m, 7000 + 3000000 * 99), 42 + 1000000 * 99);
    /* after the last sample: extrapolated at the same rate */
    assert_int_equal(mt_tscmap_ns(&m, 7000 + 3000000 * 101), 42 + 1000000 * 101);
    /* before the first: the first two samples' line, never negative */
    assert_int_equal(mt_tscmap_ns(&m, 6997), 41);
    assert_int_equal(mt_tscmap_ns(&m, 0), 0);
    mt_tscmap_free(&m);
}

static void test_piecewise_and_monotone(void **state)
{
    (void)state;
    /* the rate changes between samples: each interval keeps its own */
    mt_tscmap_t m = {0};
    mt_tscmap_add(&m, 0, 0);
    mt_tscmap_add(&m, 1000, 1000);  /* 1 tick/ns */
    mt_tscmap_add(&m, 3000, 2000);  /* 2 ticks/ns */
    assert_int_equal(mt_tscmap_ns(&m, 500), 500);
    assert_int_equal(mt_tscmap_ns(&m, 2000), 1500);
    uint64_t prev = 0;
    for (uint64_t t = 0; t <= 3000; t += 7) {
        uint64_t ns = mt_tscmap_ns(&m, t);
        assert_true(ns >= prev);
        prev = ns;
    }
    /* out-of-order samples are ignored */
    assert_int_equal(mt_tscmap_add(&m, 2500, 5000), 0);
    assert_int_equal(m.n, 3);
    mt_tscmap_free(&m);
}

static void test_bounded(void **state)
{
    (void)state;
    /* a sample a "millisecond" for 100 "seconds": the map stays within
     * MT_TSCMAP_MAX samples, keeps the first and the last, and still maps
     * every tick of the run onto the line */
    mt_tscmap_t m = {0};
    for (uint64_t k = 0; k < 100000; k++) {
        assert_int_equal(mt_tscmap_add(&m, 5000 + 3000000 * k, 77 + 1000000 * k), 0);
        assert_true(m.n <= MT_TSCMAP_MAX);
    }
    assert_true(m.cap <= MT_TSCMAP_MAX);
    assert_int_equal(m.tick[0], 5000);
    assert_int_equal(m.tick[m.n - 1], 5000 + 3000000ull * 99999);
    uint64_t prev = 0;
    for (uint64_t k = 0; k < 100000; k += 997) {
        uint64_t ns = mt_tscmap_ns(&m, 5000 + 3000000 * k + 1500);
        assert_int_equal(ns, 77 + 1000000 * k + 500);
        assert_true(ns >= prev);
        prev = ns;
    }
    mt_tscmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_and_single),
        cmocka_unit_test(test_interpolation_is_exact_on_a_line),
        cmocka_unit_test(test_piecewise_and_monotone),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
