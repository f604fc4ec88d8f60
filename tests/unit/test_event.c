/* test_event.c - the event model's lists (lib/mt_event.h): codes are part of
 * the on-disk contract, so each one is checked against a table written out
 * here by hand; a renumbered, renamed or reflagged kind fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mt_event.h"

/* The contract, spelled out independently of the X-macros. */
static const struct {
    int code;
    const char *name;
    int domain;
    unsigned flags;
} expected_kinds[] = {
    {0, "free", MT_DOM_libc, MT_KF_FREE},
    {1, "malloc", MT_DOM_libc, MT_KF_ALLOC},
    {2, "calloc", MT_DOM_libc, MT_KF_ALLOC},
    {3, "realloc", MT_DOM_libc, MT_KF_ALLOC | MT_KF_FREE},
    {4, "reallocarray", MT_DOM_libc, MT_KF_ALLOC | MT_KF_FREE},
    {5, "posix_memalign", MT_DOM_libc, MT_KF_ALLOC},
    {6, "aligned_alloc", MT_DOM_libc, MT_KF_ALLOC},
    {7, "memalign", MT_DOM_libc, MT_KF_ALLOC},
    {8, "valloc", MT_DOM_libc, MT_KF_ALLOC},
    {9, "pvalloc", MT_DOM_libc, MT_KF_ALLOC},
    {10, "mmap", MT_DOM_os, MT_KF_ALLOC},
    {11, "munmap", MT_DOM_os, MT_KF_FREE},
    {12, "mremap", MT_DOM_os, MT_KF_ALLOC | MT_KF_FREE},
    {13, "brk", MT_DOM_os, 0},
    {14, "sbrk", MT_DOM_os, 0},
    {15, "raw_malloc", MT_DOM_pymem_raw, MT_KF_ALLOC},
    {16, "raw_calloc", MT_DOM_pymem_raw, MT_KF_ALLOC},
    {17, "raw_realloc", MT_DOM_pymem_raw, MT_KF_ALLOC | MT_KF_FREE},
    {18, "raw_free", MT_DOM_pymem_raw, MT_KF_FREE},
    {19, "mem_malloc", MT_DOM_pymem, MT_KF_ALLOC},
    {20, "mem_calloc", MT_DOM_pymem, MT_KF_ALLOC},
    {21, "mem_realloc", MT_DOM_pymem, MT_KF_ALLOC | MT_KF_FREE},
    {22, "mem_free", MT_DOM_pymem, MT_KF_FREE},
    {23, "obj_malloc", MT_DOM_pyobj, MT_KF_ALLOC},
    {24, "obj_calloc", MT_DOM_pyobj, MT_KF_ALLOC},
    {25, "obj_realloc", MT_DOM_pyobj, MT_KF_ALLOC | MT_KF_FREE},
    {26, "obj_free", MT_DOM_pyobj, MT_KF_FREE},
    {27, "py_arena_alloc", MT_DOM_pyarena, MT_KF_ALLOC},
    {28, "py_arena_free", MT_DOM_pyarena, MT_KF_FREE},
    {29, "madvise", MT_DOM_os, 0},
};
#define NKINDS (sizeof expected_kinds / sizeof expected_kinds[0])

static const char *const expected_domains[] = {"libc", "os", "pymem_raw", "pymem", "pyobj", "bundled", "pyarena"};
#define NDOMAINS (sizeof expected_domains / sizeof expected_domains[0])

static const char *const expected_markers[] = {"process_start", "main_enter", "process_exit", "exec",
                                               "fork_child", "thread_start", "killed",
                                               "py_init",       "py_user_code", "py_atexit"};
#define NMARKERS (sizeof expected_markers / sizeof expected_markers[0])

static void test_kind_codes_are_the_contract(void **state)
{
    (void)state;
    assert_int_equal(MT_EV_COUNT, NKINDS);
    for (size_t i = 0; i < NKINDS; i++) {
        int c = expected_kinds[i].code;
        assert_non_null(mt_kind_name(c));
        assert_string_equal(mt_kind_name(c), expected_kinds[i].name);
        assert_int_equal(mt_kind_domain(c), expected_kinds[i].domain);
        assert_int_equal(mt_kind_flags(c), expected_kinds[i].flags);
    }
    /* the two most frequent kinds take the codes SQLite stores in 0 bytes */
    assert_int_equal(MT_EV_free, 0);
    assert_int_equal(MT_EV_malloc, 1);
}

static void test_kind_names_unique(void **state)
{
    (void)state;
    for (int a = 0; a < MT_EV_COUNT; a++)
        for (int b = a + 1; b < MT_EV_COUNT; b++) assert_string_not_equal(mt_kind_name(a), mt_kind_name(b));
}

static void test_domains(void **state)
{
    (void)state;
    assert_int_equal(MT_DOM_COUNT, NDOMAINS);
    for (int i = 0; i < (int)NDOMAINS; i++) assert_string_equal(mt_domain_name(i), expected_domains[i]);
    /* every kind's domain is a known domain */
    for (int k = 0; k < MT_EV_COUNT; k++) assert_non_null(mt_domain_name(mt_kind_domain(k)));
}

static void test_markers(void **state)
{
    (void)state;
    assert_int_equal(MT_MK_COUNT, NMARKERS);
    for (int i = 0; i < (int)NMARKERS; i++) assert_string_equal(mt_marker_name(i), expected_markers[i]);
    assert_int_equal(MT_MK_killed, 6);
}

static void test_out_of_range(void **state)
{
    (void)state;
    const int bad[] = {-1, MT_EV_COUNT, MT_EV_COUNT + 1, 255, -2147483647 - 1, 2147483647};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(mt_kind_name(bad[i]));
        assert_int_equal(mt_kind_flags(bad[i]), 0);
        assert_int_equal(mt_kind_domain(bad[i]), -1);
    }
    assert_null(mt_domain_name(-1));
    assert_null(mt_domain_name(MT_DOM_COUNT));
    assert_null(mt_marker_name(-1));
    assert_null(mt_marker_name(MT_MK_COUNT));
}

static void test_alloc_free_flags_consistent(void **state)
{
    (void)state;
    /* a kind that frees by old_addr (realloc-like) also allocates */
    for (int k = 0; k < MT_EV_COUNT; k++) {
        unsigned f = mt_kind_flags(k);
        assert_int_equal(f & ~(MT_KF_ALLOC | MT_KF_FREE), 0);
    }
    int nalloc = 0, nfree = 0;
    for (int k = 0; k < MT_EV_COUNT; k++) {
        nalloc += (mt_kind_flags(k) & MT_KF_ALLOC) != 0;
        nfree += (mt_kind_flags(k) & MT_KF_FREE) != 0;
    }
    assert_int_equal(nalloc, 11 + 10);
    assert_int_equal(nfree, 5 + 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_codes_are_the_contract),
        cmocka_unit_test(test_kind_names_unique),
        cmocka_unit_test(test_domains),
        cmocka_unit_test(test_markers),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_alloc_free_flags_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
