/* test_heapmodel.c - unit tests of the streaming heap model
 * (analyzer/heapmodel.c): every workload below is small enough that the
 * exact numbers are known, and every test asserts them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "heapmodel.h"
#include "mt_db.h"
#include "mt_error.h"
#include "mt_event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- helpers ---- */

static int64_t next_seq;

static int setup(void **state)
{
    mt_heap_t *h;
    assert_int_equal(mt_heap_create(&h), 0);
    next_seq = 1;
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    mt_heap_destroy(*state);
    return 0;
}

/* Feeds one successful event with the next seq (ts = seq * 10); returns its delta. */
static mt_heap_delta_t feed(mt_heap_t *h, int kind, int64_t thread, uint64_t addr, int64_t size,
                            uint64_t old_addr, int64_t stack)
{
    mt_db_event_t ev = {.seq = next_seq, .ts = next_seq * 10, .kind = kind, .thread = thread,
                        .addr = addr, .size = size, .stack = stack, .old_addr = old_addr};
    next_seq++;
    mt_heap_delta_t d;
    assert_int_equal(mt_heap_feed(h, &ev, &d), 0);
    return d;
}

#define MALLOC(h, t, a, n, stk) feed(h, MT_EV_malloc, t, a, n, 0, stk)
#define FREE(h, t, a) feed(h, MT_EV_free, t, a, -1, 0, 0)
#define REALLOC(h, t, old, a, n) feed(h, MT_EV_realloc, t, a, n, old, 0)

/* ---- heap: leaks, temporaries, reallocs, unknown frees, peak ---- */

static void test_hundred_leaks(void **state)
{
    mt_heap_t *h = *state;
    for (int i = 0; i < 100; i++) MALLOC(h, 1, 0x1000 + 0x400 * (uint64_t)i, 1000, 42);
    const mt_heap_stats_t *st = mt_heap_stats(h);
    assert_int_equal(st->allocs, 100);
    assert_int_equal(st->live_blocks, 100);
    assert_int_equal(st->live_bytes, 100000);
    assert_int_equal(st->peak_bytes, 100000);
    assert_int_equal(st->peak_seq, 100);
    assert_int_equal(st->peak_ts, 1000);
    assert_int_equal(st->temporary, 0);
    assert_int_equal(st->unknown_frees, 0);

    mt_heap_group_t *g;
    size_t n;
    assert_int_equal(mt_heap_leaks(h, &g, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(g[0].stack, 42);
    assert_int_equal(g[0].blocks, 100);
    assert_int_equal(g[0].bytes, 100000);
    assert_int_equal(g[0].first_seq, 1);
    free(g);
}

static void test_pairs_are_temporary(void **state)
{
    mt_heap_t *h = *state;
    for (int i = 0; i < 50; i++) {
        MALLOC(h, 1, 0x5000, 1000, 1);
        mt_heap_delta_t d = FREE(h, 1, 0x5000);
        assert_int_equal(d.free_bytes, 1000);
        assert_true(d.flags & MT_HEAP_FX_FREE);
        assert_true(d.flags & MT_HEAP_FX_TEMPORARY);
    }
    const mt_heap_stats_t *st = mt_heap_stats(h);
    assert_int_equal(st->allocs, 50);
    assert_int_equal(st->frees, 50);
    assert_int_equal(st->temporary, 50);
    assert_int_equal(st->live_blocks, 0);
    assert_int_equal(st->live_bytes, 0);
    assert_int_equal(st->peak_bytes, 1000);
    assert_int_equal(st->peak_seq, 1); /* first reached, not last */

    mt_heap_group_t *g;
    size_t n;
    assert_int_equal(mt_heap_leaks(h, &g, &n), 0);
    assert_int_equal(n, 0);
    assert_null(g);
}

/* The rule is per thread: another thread's events in between do not matter,
 * the thread's own events do. */
static void test_temporary_is_per_thread(void **state)
{
    mt_heap_t *h = *state;
    MALLOC(h, 1, 0xa000, 10, 0);
    MALLOC(h, 2, 0xb000, 10, 0);
    FREE(h, 1, 0xa000);             /* thread 1's next heap event: temporary */
    FREE(h, 2, 0xb000);             /* thread 2's next heap event: temporary */
    MALLOC(h, 1, 0xa000, 10, 0);
    MALLOC(h, 1, 0xc000, 10, 0);
    FREE(h, 1, 0xa000);             /* an event of thread 1 in between: not temporary */
    mt_heap_delta_t d = FREE(h, 1, 0xc000); /* last event was a free: not temporary */
    assert_false(d.flags & MT_HEAP_FX_TEMPORARY);
    const mt_heap_stats_t *st = mt_heap_stats(h);
    assert_int_equal(st->temporary, 2);
    assert_int_equal(st->allocs, 4);
    assert_int_equal(st->frees, 4);
    assert_int_equal(st->live_bytes, 0);
    assert_int_equal(st->peak_bytes, 20);
    assert_int_equal(st->peak_seq, 2);
}

static void test_realloc_chain(void **state)
{
    mt_heap_t *h = *state;
    const mt_heap_stats_t *st = mt_heap_stats(h);
    MALLOC(h, 1, 0x100, 100, 0);
    assert_int_equal(st->live_bytes, 100);
    mt_heap_delta_t d = REALLOC(h, 1, 0x100, 0x200, 200); /* moves */
    assert_int_equal(d.free_bytes, 100);
    assert_int_equal(d.alloc_bytes, 200);
    assert_int_equal(st->live_bytes, 200);
    assert_int_equal(st->live_blocks, 1);
    REALLOC(h, 1, 0x200, 0x200, 300); /* in place */
    assert_int_equal(st->live_bytes, 300);
    assert_int_equal(st->live_blocks, 1);
    REALLOC(h, 1, 0x200, 0x300, 400); /* moves again */
    assert_int_equal(st->live_bytes, 400);
    assert_int_equal(st->peak_bytes, 400);
    assert_int_equal(st->peak_seq, 4);
    FREE(h, 1, 0x100); /* the first address is gone: unknown now */
    assert_int_equal(st->unknown_frees, 1);
    FREE(h, 1, 0x300);
    assert_int_equal(st->live_bytes, 0);
    assert_int_equal(st->live_blocks, 0);
    assert_int_equal(st->allocs, 4);  /* malloc + 3 reallocs */
    assert_int_equal(st->frees, 4);   /* 3 reallocs + free */
    /* malloc->realloc and realloc->realloc each end the block just made;
     * the last realloc is followed by the unknown free: 3 temporaries */
    assert_int_equal(st->temporary, 3);
}

static void test_realloc_null_and_zero(void **state)
{
    mt_heap_t *h = *state;
    const mt_heap_stats_t *st = mt_heap_stats(h);
    REALLOC(h, 1, 0, 0x700, 64);          /* realloc(NULL, 64): an allocation */
    assert_int_equal(st->live_blocks, 1);
    assert_int_equal(st->live_bytes, 64);
    assert_int_equal(st->unknown_frees, 0);
    MALLOC(h, 1, 0x800, 8, 0);
    mt_heap_delta_t d = REALLOC(h, 1, 0x700, 0, 0); /* realloc(p, 0): a free */
    assert_int_equal(d.free_bytes, 64);
    assert_int_equal(d.alloc_bytes, 0);
    assert_int_equal(st->live_blocks, 1);
    assert_int_equal(st->live_bytes, 8);
    assert_int_equal(st->allocs, 2);
    assert_int_equal(st->frees, 1);
}

static void test_unknown_frees(void **state)
{
    mt_heap_t *h = *state;
    const mt_heap_stats_t *st = mt_heap_stats(h);
    MALLOC(h, 1, 0x1000, 10, 0);
    mt_heap_delta_t d = FREE(h, 1, 0xdead0);
    assert_true(d.flags & MT_HEAP_FX_UNKNOWN);
    assert_false(d.flags & MT_HEAP_FX_FREE);
    assert_int_equal(d.free_bytes, 0);
    REALLOC(h, 1, 0xbeef0, 0x2000, 20); /* realloc of a block from before the trace */
    assert_int_equal(st->unknown_frees, 2);
    assert_int_equal(st->live_blocks, 2);
    assert_int_equal(st->live_bytes, 30);
    assert_int_equal(st->frees, 0);
    FREE(h, 1, 0x1000);
    FREE(h, 1, 0x1000); /* double free: the second is unknown */
    assert_int_equal(st->unknown_frees, 3);
    assert_int_equal(st->live_bytes, 20);
}

static void test_peak_first_reached(void **state)
{
    mt_heap_t *h = *state;
    const mt_heap_stats_t *st = mt_heap_stats(h);
    MALLOC(h, 1, 0x10, 100, 0);   /* 1: 100 */
    MALLOC(h, 1, 0x20, 200, 0);   /* 2: 300 */
    FREE(h, 1, 0x10);             /* 3: 200 */
    MALLOC(h, 1, 0x30, 50, 0);    /* 4: 250 */
    mt_heap_delta_t d = MALLOC(h, 1, 0x40, 60, 0); /* 5: 310, the peak */
    assert_true(d.flags & MT_HEAP_FX_PEAK);
    FREE(h, 1, 0x40);             /* 6: 250 */
    d = MALLOC(h, 1, 0x50, 60, 0); /* 7: 310 again: not a new peak */
    assert_false(d.flags & MT_HEAP_FX_PEAK);
    assert_int_equal(st->peak_bytes, 310);
    assert_int_equal(st->peak_blocks, 3);
    assert_int_equal(st->peak_seq, 5);
    assert_int_equal(st->peak_ts, 50);
    assert_int_equal(st->live_bytes, 310);
}

static void test_failed_calls_change_nothing(void **state)
{
    mt_heap_t *h = *state;
    mt_db_event_t ev = {.seq = 1, .kind = MT_EV_malloc, .thread = 1, .addr = 0, .size = 1 << 30, .failed = 1};
    assert_int_equal(mt_heap_feed(h, &ev, NULL), 0);
    ev = (mt_db_event_t){.seq = 2, .kind = MT_EV_realloc, .thread = 1, .addr = 0, .old_addr = 0x99,
                         .size = 8, .failed = 1};
    assert_int_equal(mt_heap_feed(h, &ev, NULL), 0);
    const mt_heap_stats_t *st = mt_heap_stats(h);
    assert_int_equal(st->events, 2);
    assert_int_equal(st->failed, 2);
    assert_int_equal(st->allocs, 0);
    assert_int_equal(st->unknown_frees, 0);
    assert_int_equal(st->live_bytes, 0);
    assert_int_equal(st->peak_seq, -1);
}

/* A live address allocated again: the missed free is implied. */
static void test_alloc_over_live(void **state)
{
    mt_heap_t *h = *state;
    const mt_heap_stats_t *st = mt_heap_stats(h);
    MALLOC(h, 1, 0x40, 100, 0);
    MALLOC(h, 1, 0x40, 30, 0);
    assert_int_equal(st->replaced_live, 1);
    assert_int_equal(st->live_blocks, 1);
    assert_int_equal(st->live_bytes, 30);
    assert_int_equal(st->peak_bytes, 100);
}

/* Same address in two processes: two blocks. */
static void test_processes_are_separate(void **state)
{
    mt_heap_t *h = *state;
    const mt_heap_stats_t *st = mt_heap_stats(h);
    assert_int_equal(mt_heap_set_thread(h, 1, 10), 0);
    assert_int_equal(mt_heap_set_thread(h, 2, 20), 0);
    MALLOC(h, 1, 0x55000, 100, 1);
    MALLOC(h, 2, 0x55000, 7, 2);
    assert_int_equal(st->live_blocks, 2);
    assert_int_equal(st->live_bytes, 107);
    FREE(h, 2, 0x55000);
    assert_int_equal(st->live_bytes, 100);
    FREE(h, 2, 0x55000);
    assert_int_equal(st->unknown_frees, 1);
    FREE(h, 1, 0x55000);
    assert_int_equal(st->live_blocks, 0);
    assert_int_equal(st->unknown_frees, 1);
}

static void test_leak_groups_order(void **state)
{
    mt_heap_t *h = *state;
    for (int i = 0; i < 3; i++) MALLOC(h, 1, 0x100 + 0x10 * (uint64_t)i, 10, 7);
    MALLOC(h, 1, 0x900, 100, 9);
    MALLOC(h, 1, 0xa00, 5, 0);
    MALLOC(h, 1, 0xb00, 5, 0);
    MALLOC(h, 1, 0xc00, 10, 3); /* same bytes as stack 0, fewer blocks */
    mt_heap_group_t *g;
    size_t n;
    assert_int_equal(mt_heap_leaks(h, &g, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(g[0].stack, 9);
    assert_int_equal(g[0].bytes, 100);
    assert_int_equal(g[1].stack, 7);
    assert_int_equal(g[1].blocks, 3);
    assert_int_equal(g[1].bytes, 30);
    assert_int_equal(g[1].first_seq, 1);
    assert_int_equal(g[2].stack, 0);
    assert_int_equal(g[2].blocks, 2);
    assert_int_equal(g[2].bytes, 10);
    assert_int_equal(g[3].stack, 3);
    assert_int_equal(g[3].blocks, 1);
    free(g);
}

typedef struct {
    int64_t blocks, bytes;
} sum_t;

static void sum_block(void *arg, const mt_heap_block_t *b)
{
    sum_t *s = arg;
    s->blocks++;
    s->bytes += b->size;
}

/* Many blocks through growth and deletions in scattered order: the hash map
 * must keep exactly the blocks not freed (checks backward-shift deletion). */
static void test_map_stress(void **state)
{
    mt_heap_t *h = *state;
    enum { N = 200000 };
    int64_t want_bytes = 0;
    for (int i = 0; i < N; i++) MALLOC(h, 1, 0x100000 + 16 * (uint64_t)i, i % 97, 0);
    for (int i = 0; i < N; i++) want_bytes += i % 97;
    /* free every block whose index is not a multiple of 3, in a scrambled
     * order: i -> (i * 7919) mod N visits every index once (gcd(7919, N) = 1) */
    int64_t freed_blocks = 0;
    for (int k = 0; k < N; k++) {
        int i = (int)(((int64_t)k * 7919) % N);
        if (i % 3 == 0) continue;
        FREE(h, 1, 0x100000 + 16 * (uint64_t)i);
        want_bytes -= i % 97;
        freed_blocks++;
    }
    const mt_heap_stats_t *st = mt_heap_stats(h);
    assert_int_equal(st->live_blocks, N - freed_blocks);
    assert_int_equal(st->live_blocks, (N + 2) / 3);
    assert_int_equal(st->live_bytes, want_bytes);
    assert_int_equal(st->unknown_frees, 0);
    sum_t s = {0};
    mt_heap_foreach_live(h, sum_block, &s);
    assert_int_equal(s.blocks, st->live_blocks);
    assert_int_equal(s.bytes, want_bytes);
    /* every surviving block is still findable */
    for (int i = 0; i < N; i += 3) FREE(h, 1, 0x100000 + 16 * (uint64_t)i);
    assert_int_equal(st->live_blocks, 0);
    assert_int_equal(st->live_bytes, 0);
    assert_int_equal(st->unknown_frees, 0);
}

/* ---- os mappings ---- */

static void test_mappings(void **state)
{
    mt_heap_t *h = *state;
    const mt_heap_stats_t *st = mt_heap_stats(h);
    const uint64_t X = 0x7f0000000000ull, Y = 0x7f1000000000ull, Z = 0x7f2000000000ull;
    mt_heap_delta_t d = feed(h, MT_EV_mmap, 1, X, 16384, 0, 0);
    assert_true(d.flags & MT_HEAP_FX_OS);
    assert_int_equal(st->mapped_bytes, 16384);
    feed(h, MT_EV_munmap, 1, X, 4096, 0, 0);      /* the first page: the tail stays */
    assert_int_equal(st->mapped_bytes, 12288);
    assert_int_equal(st->mapped_regions, 1);
    feed(h, MT_EV_munmap, 1, X + 4096, 12288, 0, 0);
    assert_int_equal(st->mapped_bytes, 0);
    assert_int_equal(st->mapped_regions, 0);
    feed(h, MT_EV_mmap, 1, Y, 8192, 0, 0);
    d = feed(h, MT_EV_mremap, 1, Z, 32768, Y, 0);
    assert_int_equal(d.free_bytes, 8192);
    assert_int_equal(d.alloc_bytes, 32768);
    assert_int_equal(st->mapped_bytes, 32768);
    assert_int_equal(st->peak_mapped_bytes, 32768);
    assert_int_equal(st->peak_mapped_seq, 5);
    feed(h, MT_EV_munmap, 1, X, 4096, 0, 0);      /* gone already */
    assert_int_equal(st->unknown_unmaps, 1);
    assert_int_equal(st->maps, 3);
    assert_int_equal(st->unmaps, 3);
    /* mappings are not heap */
    assert_int_equal(st->live_bytes, 0);
    assert_int_equal(st->allocs, 0);
    assert_int_equal(st->peak_seq, -1);
}

/* brk/sbrk and domains the model does not keep are counted, nothing more. */
static void test_other_kinds_ignored(void **state)
{
    mt_heap_t *h = *state;
    mt_heap_delta_t d = feed(h, MT_EV_sbrk, 1, 0x1000, 4096, 0, 0);
    assert_int_equal(d.flags, 0);
    feed(h, 200, 1, 0x1000, 4096, 0, 0); /* a kind code from a newer memtrace */
    const mt_heap_stats_t *st = mt_heap_stats(h);
    assert_int_equal(st->events, 2);
    assert_int_equal(st->mapped_bytes, 0);
    assert_int_equal(st->live_bytes, 0);
}

/* ---- replay from a database ---- */

static char db_path[64];

static int db_setup(void **state)
{
    snprintf(db_path, sizeof db_path, "/tmp/test_heapmodel_%ld.db", (long)getpid());
    return setup(state);
}

static int db_teardown(void **state)
{
    unlink(db_path);
    return teardown(state);
}

static int count_visits(void *arg, const mt_db_event_t *ev, const mt_heap_delta_t *d)
{
    (void)d;
    int64_t *n = arg;
    ++*n;
    return ev->seq == 151 ? 1 : 0; /* stop after seq 151 */
}

static void write_trace(void)
{
    mt_db_t *db;
    char err[256];
    assert_int_equal(mt_db_create(db_path, &db, err, sizeof err), 0);
    assert_int_equal(mt_db_begin(db), 0);
    assert_int_equal(mt_db_exec(db, "INSERT INTO processes(id, pid) VALUES (1, 100), (2, 101);"
                                    "INSERT INTO threads(id, process_id, tid)"
                                    " VALUES (1, 1, 100), (2, 2, 101);"),
                     0);
    int64_t seq = 1;
    /* 100 leaks of 1000 bytes in process 1, then the same addresses
     * allocated and freed in process 2 (a fork child) */
    for (int i = 0; i < 100; i++) {
        mt_db_event_t ev = {.seq = seq, .ts = seq, .kind = MT_EV_malloc, .thread = 1,
                            .addr = 0x4000 + 0x400 * (uint64_t)i, .size = 1000, .stack = 5};
        seq++;
        assert_int_equal(mt_db_add_event(db, &ev), 0);
    }
    for (int i = 0; i < 100; i++) {
        mt_db_event_t ev = {.seq = seq, .ts = seq, .kind = i % 2 ? MT_EV_free : MT_EV_calloc, .thread = 2,
                            .addr = 0x4000 + 0x400 * (uint64_t)(i / 2), .size = i % 2 ? -1 : 24};
        seq++;
        assert_int_equal(mt_db_add_event(db, &ev), 0);
    }
    mt_db_event_t unknown = {.seq = seq, .ts = seq, .kind = MT_EV_free, .thread = 2,
                             .addr = 0xdead000, .size = -1};
    assert_int_equal(mt_db_add_event(db, &unknown), 0);
    assert_int_equal(mt_db_commit(db), 0);
    mt_db_close(db);
}

static void test_replay(void **state)
{
    mt_heap_t *h = *state;
    write_trace();
    mt_db_t *db;
    char err[256];
    assert_int_equal(mt_db_open(db_path, MT_DB_READONLY, &db, err, sizeof err), 0);
    assert_int_equal(mt_heap_replay(h, db, NULL), 0);
    const mt_heap_stats_t *st = mt_heap_stats(h);
    assert_int_equal(st->events, 201);
    assert_int_equal(st->allocs, 150);
    assert_int_equal(st->frees, 50);
    assert_int_equal(st->temporary, 50);
    assert_int_equal(st->unknown_frees, 1);
    assert_int_equal(st->live_blocks, 100);
    assert_int_equal(st->live_bytes, 100000);
    assert_int_equal(st->peak_bytes, 100024);
    assert_int_equal(st->peak_seq, 101);
    mt_heap_group_t *g;
    size_t n;
    assert_int_equal(mt_heap_leaks(h, &g, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(g[0].stack, 5);
    assert_int_equal(g[0].blocks, 100);
    assert_int_equal(g[0].bytes, 100000);
    free(g);

    /* a visitor that stops early */
    mt_heap_t *h2;
    int64_t visits = 0;
    assert_int_equal(mt_heap_create(&h2), 0);
    mt_heap_replay_opts_t opts = {.visit = count_visits, .arg = &visits};
    assert_int_equal(mt_heap_replay(h2, db, &opts), 0);
    assert_int_equal(visits, 151);
    assert_int_equal(mt_heap_stats(h2)->events, 151);
    assert_int_equal(mt_heap_stats(h2)->live_blocks, 101); /* seq 151 is a calloc */
    mt_heap_destroy(h2);
    mt_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hundred_leaks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pairs_are_temporary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_temporary_is_per_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_realloc_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_realloc_null_and_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_frees, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peak_first_reached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_calls_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_over_live, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processes_are_separate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leak_groups_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_stress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mappings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_kinds_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay, db_setup, db_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
