/* test_analyzer_models.c - unit tests of the models the analyzer's reports
 * read: allocation sites with the peak snapshot (analyzer/sites.c), realloc
 * chains (analyzer/chains.c) and the pair-keyed map under both
 * (analyzer/keymap.c).  Events are fed through the real heap model, as
 * mt_heap_replay does; every expected number is worked out in a comment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "chains.h"
#include "heapmodel.h"
#include "keymap.h"
#include "mt_error.h"
#include "mt_event.h"
#include "sites.h"

#include <stdlib.h>
#include <string.h>

/* ---- a heap model with one visitor ---- */

typedef struct {
    mt_heap_t *h;
    mt_heap_visit_fn visit;
    void *arg;
    int64_t seq;
} rig_t;

/* Feeds one successful event (ts = seq * 10) and gives it to the visitor. */
static void feed(rig_t *r, int kind, int64_t thread, uint64_t addr, int64_t size, uint64_t old_addr,
                 int64_t stack)
{
    r->seq++;
    mt_db_event_t ev = {.seq = r->seq, .ts = r->seq * 10, .kind = kind, .thread = thread, .addr = addr,
                        .size = size, .stack = stack, .old_addr = old_addr};
    mt_heap_delta_t d;
    assert_int_equal(mt_heap_feed(r->h, &ev, &d), 0);
    assert_int_equal(r->visit(r->arg, &ev, &d), 0);
}

#define MALLOC(r, t, a, n, stk) feed(r, MT_EV_malloc, t, a, n, 0, stk)
#define FREE(r, t, a) feed(r, MT_EV_free, t, a, -1, 0, 0)
#define REALLOC(r, t, old, a, n, stk) feed(r, MT_EV_realloc, t, a, n, old, stk)

static rig_t rig(mt_heap_visit_fn visit, void *arg)
{
    rig_t r = {.visit = visit, .arg = arg};
    assert_int_equal(mt_heap_create(&r.h), 0);
    /* threads 1 and 2 in process 1, thread 3 in process 2 */
    assert_int_equal(mt_heap_set_thread(r.h, 1, 1), 0);
    assert_int_equal(mt_heap_set_thread(r.h, 2, 1), 0);
    assert_int_equal(mt_heap_set_thread(r.h, 3, 2), 0);
    return r;
}

/* The site (process, stack) of a list, or fails the test. */
static const mt_site_t *find_site(const mt_site_t *v, size_t n, int64_t process, int64_t stack)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].process == process && v[i].stack == stack) return &v[i];
    fail_msg("no site (%lld, %lld)", (long long)process, (long long)stack);
    return NULL;
}

/* ---- sites ---- */

static void test_sites_peak_snapshot(void **state)
{
    (void)state;
    mt_sites_t *s;
    assert_int_equal(mt_sites_create(&s), 0);
    rig_t r = rig(mt_sites_visit, s);
    MALLOC(&r, 1, 0x100, 100, 7);   /* live 100: a peak */
    MALLOC(&r, 1, 0x200, 300, 8);   /* 400: a peak */
    FREE(&r, 1, 0x100);             /* 300 */
    MALLOC(&r, 2, 0x300, 250, 9);   /* 550: THE peak (7: 0, 8: 300, 9: 250) */
    FREE(&r, 1, 0x200);             /* 250: site 8 changes after the peak */
    MALLOC(&r, 1, 0x400, 200, 10);  /* 450: a site born after the peak */
    MALLOC(&r, 3, 0x200, 50, 8);    /* process 2, same stack id: its own site */
    MALLOC(&r, 1, 0x500, 40, 9);    /* 540: not a peak */
    assert_int_equal(mt_heap_stats(r.h)->peak_bytes, 550);
    assert_int_equal(mt_heap_stats(r.h)->peak_seq, 4);

    mt_site_t *v;
    size_t n;
    assert_int_equal(mt_sites_list(s, MT_SITES_HEAP, &v, &n), 0);
    assert_int_equal(n, 5);
    const mt_site_t *x = find_site(v, n, 1, 7);
    assert_int_equal(x->calls, 1);
    assert_int_equal(x->peak_bytes, 0);
    assert_int_equal(x->live_bytes, 0);
    assert_int_equal(x->temp_calls, 0);
    x = find_site(v, n, 1, 8);
    assert_int_equal(x->peak_bytes, 300);
    assert_int_equal(x->peak_blocks, 1);
    assert_int_equal(x->live_bytes, 0);
    x = find_site(v, n, 1, 9);
    assert_int_equal(x->calls, 2);
    assert_int_equal(x->bytes, 290);
    assert_int_equal(x->peak_bytes, 250);
    assert_int_equal(x->live_blocks, 2);
    assert_int_equal(x->live_bytes, 290);
    x = find_site(v, n, 1, 10);
    assert_int_equal(x->peak_bytes, 0);
    assert_int_equal(x->live_bytes, 200);
    x = find_site(v, n, 2, 8);
    assert_int_equal(x->peak_bytes, 0);
    assert_int_equal(x->live_bytes, 50);
    /* the key invariant: the sites at the peak add up to the peak */
    int64_t at_peak = 0, live = 0;
    for (size_t i = 0; i < n; i++) {
        at_peak += v[i].peak_bytes;
        live += v[i].live_bytes;
    }
    assert_int_equal(at_peak, 550);
    assert_int_equal(live, mt_heap_stats(r.h)->live_bytes);
    free(v);
    mt_heap_destroy(r.h);
    mt_sites_destroy(s);
}

static void test_sites_temporary_and_realloc(void **state)
{
    (void)state;
    mt_sites_t *s;
    assert_int_equal(mt_sites_create(&s), 0);
    rig_t r = rig(mt_sites_visit, s);
    MALLOC(&r, 1, 0x100, 10, 1);
    FREE(&r, 1, 0x100);                 /* temporary of site 1 */
    MALLOC(&r, 1, 0x200, 20, 2);
    MALLOC(&r, 2, 0x300, 30, 3);        /* another thread in between */
    FREE(&r, 1, 0x200);                 /* still thread 1's next call: temporary of 2 */
    MALLOC(&r, 1, 0x400, 40, 4);
    REALLOC(&r, 1, 0x400, 0x500, 80, 5); /* ends 0x400 (temporary of 4), block of site 5 */
    MALLOC(&r, 1, 0x600, 5, 6);
    MALLOC(&r, 1, 0x600, 7, 6);         /* same live address: the 5 bytes end silently */
    mt_site_t *v;
    size_t n;
    assert_int_equal(mt_sites_list(s, MT_SITES_HEAP, &v, &n), 0);
    assert_int_equal(find_site(v, n, 1, 1)->temp_calls, 1);
    assert_int_equal(find_site(v, n, 1, 1)->temp_bytes, 10);
    assert_int_equal(find_site(v, n, 1, 2)->temp_calls, 1);
    assert_int_equal(find_site(v, n, 1, 3)->temp_calls, 0);
    assert_int_equal(find_site(v, n, 1, 4)->temp_calls, 1);
    assert_int_equal(find_site(v, n, 1, 4)->temp_bytes, 40);
    assert_int_equal(find_site(v, n, 1, 4)->live_blocks, 0);
    assert_int_equal(find_site(v, n, 1, 5)->live_bytes, 80);
    assert_int_equal(find_site(v, n, 1, 6)->calls, 2);
    assert_int_equal(find_site(v, n, 1, 6)->live_blocks, 1);
    assert_int_equal(find_site(v, n, 1, 6)->live_bytes, 7);
    int64_t temp = 0;
    for (size_t i = 0; i < n; i++) temp += v[i].temp_calls;
    assert_int_equal(temp, mt_heap_stats(r.h)->temporary);
    free(v);
    mt_heap_destroy(r.h);
    mt_sites_destroy(s);
}

static void test_sites_mappings(void **state)
{
    (void)state;
    mt_sites_t *s;
    assert_int_equal(mt_sites_create(&s), 0);
    rig_t r = rig(mt_sites_visit, s);
    feed(&r, MT_EV_mmap, 1, 0x100000, 65536, 0, 1);
    feed(&r, MT_EV_mmap, 1, 0x200000, 8192, 0, 2);     /* mapped peak 73728 */
    feed(&r, MT_EV_munmap, 1, 0x100000, 4096, 0, 0);   /* the start: 61440 stay */
    feed(&r, MT_EV_munmap, 1, 0x200000, 8192, 0, 0);
    MALLOC(&r, 1, 0x300, 10, 3);                       /* heap sites are apart */
    mt_site_t *v;
    size_t n;
    assert_int_equal(mt_sites_list(s, MT_SITES_MAPS, &v, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(find_site(v, n, 1, 1)->peak_bytes, 65536);
    assert_int_equal(find_site(v, n, 1, 1)->live_blocks, 1);
    assert_int_equal(find_site(v, n, 1, 1)->live_bytes, 61440);
    assert_int_equal(find_site(v, n, 1, 2)->peak_bytes, 8192);
    assert_int_equal(find_site(v, n, 1, 2)->live_blocks, 0);
    free(v);
    assert_int_equal(mt_sites_list(s, MT_SITES_HEAP, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].peak_bytes, 10);
    free(v);
    mt_heap_destroy(r.h);
    mt_sites_destroy(s);
}

/* ---- chains ---- */

static const mt_chain_site_t *find_csite(const mt_chain_site_t *v, size_t n, int64_t process, int64_t stack)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].process == process && v[i].stack == stack) return &v[i];
    fail_msg("no chain site (%lld, %lld)", (long long)process, (long long)stack);
    return NULL;
}

static void test_chains_factors(void **state)
{
    (void)state;
    mt_chains_t *c;
    assert_int_equal(mt_chains_create(10, &c), 0);
    rig_t r = rig(mt_chains_visit, c);
    /* chain A: 100 -> 150 (in place) -> 300 (moved) -> 450 (moved), freed */
    REALLOC(&r, 1, 0, 0x1000, 100, 5);          /* seq 1: realloc(NULL): an allocation */
    REALLOC(&r, 1, 0x1000, 0x1000, 150, 5);     /* x1.5 in place */
    REALLOC(&r, 1, 0x1000, 0x2000, 300, 5);     /* x2 moved, copies 150 */
    REALLOC(&r, 1, 0x2000, 0x3000, 450, 5);     /* x1.5 moved, copies 300 */
    FREE(&r, 1, 0x3000);                        /* seq 5 */
    /* chain B (process 2, same addresses): 16 -> 32 at site 5, then -> 8 at
     * site 6 (shrink x0.25), still live at the end */
    MALLOC(&r, 3, 0x1000, 16, 4);               /* seq 6 */
    REALLOC(&r, 3, 0x1000, 0x1100, 32, 5);      /* seq 7 */
    REALLOC(&r, 3, 0x1100, 0x1100, 8, 6);       /* seq 8, in place */
    /* a realloc of an unknown block is no step; realloc(p, 0) ends a chain */
    REALLOC(&r, 1, 0xdead, 0x4000, 64, 5);
    MALLOC(&r, 1, 0x5000, 10, 4);
    REALLOC(&r, 1, 0x5000, 0x5000, 40, 6);      /* x4 */
    REALLOC(&r, 1, 0x5000, 0, 0, 6);            /* a free */
    assert_int_equal(mt_chains_finish(c), 0);

    mt_chain_totals_t t = mt_chains_totals(c);
    assert_int_equal(t.chains, 3);
    assert_int_equal(t.steps, 6);
    assert_int_equal(t.moves, 3);
    assert_int_equal(t.in_place, 3);
    assert_int_equal(t.copied, 150 + 300 + 16);

    mt_chain_site_t *v;
    size_t n;
    assert_int_equal(mt_chains_sites(c, &v, &n), 0);
    assert_int_equal(n, 4);
    const mt_chain_site_t *s = find_csite(v, n, 1, 5);
    assert_int_equal(s->chains, 1);
    assert_int_equal(s->steps, 3);
    assert_true(s->median_factor == 1.5);   /* 1.5, 1.5, 2 */
    assert_int_equal(s->moves, 2);
    assert_int_equal(s->in_place, 1);
    assert_int_equal(s->copied, 450);
    assert_int_equal(s->min_first, 100);
    assert_int_equal(s->max_last, 450);
    assert_int_equal(s->duration_ns, 40 - 10); /* from the allocation (seq 1) to seq 4 */
    s = find_csite(v, n, 2, 5);
    assert_int_equal(s->steps, 1);
    assert_true(s->median_factor == 2.0);
    assert_int_equal(s->copied, 16);
    assert_int_equal(s->duration_ns, 70 - 60);
    s = find_csite(v, n, 1, 6);
    assert_int_equal(s->chains, 1);
    assert_true(s->median_factor == 4.0);
    s = find_csite(v, n, 2, 6);
    assert_int_equal(s->chains, 1);
    assert_true(s->median_factor == 0.25);
    assert_int_equal(s->min_first, 32);
    assert_int_equal(s->max_last, 8);
    assert_int_equal(s->duration_ns, 80 - 70); /* the run starts at the previous step */
    free(v);

    mt_chain_t *ch;
    assert_int_equal(mt_chains_longest(c, &ch, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ch[0].steps, 3);
    assert_int_equal(ch[0].first_seq, 1);
    assert_int_equal(ch[0].first_size, 100);
    assert_int_equal(ch[0].last_size, 450);
    assert_int_equal(ch[0].nfactors, 3);
    assert_true(ch[0].factors[0] == 1.5f && ch[0].factors[1] == 2.0f && ch[0].factors[2] == 1.5f);
    assert_true(ch[0].median_factor == 1.5);
    assert_int_equal(ch[0].last_ts - ch[0].first_ts, 30);
    assert_int_equal(ch[1].steps, 2);         /* chain B: live at the end, still reported */
    assert_int_equal(ch[1].process, 2);
    assert_int_equal(ch[1].site, 5);
    assert_true(ch[1].median_factor == (2.0 + 0.25) / 2); /* even count: mean of the middle two */
    assert_int_equal(ch[2].steps, 1);
    free(ch);
    mt_heap_destroy(r.h);
    mt_chains_destroy(c);
}

static void test_chains_keep_longest(void **state)
{
    (void)state;
    mt_chains_t *c;
    assert_int_equal(mt_chains_create(3, &c), 0);
    rig_t r = rig(mt_chains_visit, c);
    /* 20 chains, chain i has i % 7 + 1 steps of x2 */
    for (int i = 0; i < 20; i++) {
        uint64_t a = 0x10000 + 0x1000 * (uint64_t)i;
        MALLOC(&r, 1, a, 8, 1);
        int64_t size = 8;
        for (int k = 0; k <= i % 7; k++) {
            REALLOC(&r, 1, a, a + 0x800 * (uint64_t)(k % 2 == 0), size * 2, 2);
            a += 0x800 * (uint64_t)(k % 2 == 0);
            size *= 2;
        }
        FREE(&r, 1, a);
    }
    assert_int_equal(mt_chains_finish(c), 0);
    mt_chain_t *ch;
    size_t n;
    assert_int_equal(mt_chains_longest(c, &ch, &n), 0);
    assert_int_equal(n, 3);
    /* 7 steps: i = 6 and 13; then 6 steps with i = 5, 12, 19 */
    assert_int_equal(ch[0].steps, 7);
    assert_int_equal(ch[1].steps, 7);
    assert_true(ch[0].first_seq < ch[1].first_seq);
    assert_int_equal(ch[2].steps, 6);
    for (size_t i = 0; i < n; i++) assert_true(ch[i].median_factor == 2.0);
    free(ch);
    assert_int_equal(mt_chains_totals(c).chains, 20);
    mt_heap_destroy(r.h);
    mt_chains_destroy(c);
}

/* ---- keymap ---- */

static void test_keymap(void **state)
{
    (void)state;
    mt_keymap_t m = {0};
    enum { N = 20000 };
    assert_int_equal(mt_keymap_get(&m, 1, 2), 0);
    assert_int_equal(mt_keymap_del(&m, 1, 2), 0);
    for (uint32_t i = 0; i < N; i++) assert_int_equal(mt_keymap_put(&m, i % 3, (int64_t)i * 16, i + 1), 0);
    assert_int_equal(m.count, N);
    assert_int_equal(mt_keymap_put(&m, 0, 0, 99), 0); /* replace */
    assert_int_equal(m.count, N);
    assert_int_equal(mt_keymap_get(&m, 0, 0), 99);
    /* delete every other key, then every key must still be found or absent */
    for (uint32_t i = 0; i < N; i += 2) assert_int_equal(mt_keymap_del(&m, i % 3, (int64_t)i * 16), i ? i + 1 : 99);
    assert_int_equal(m.count, N / 2);
    for (uint32_t i = 0; i < N; i++)
        assert_int_equal(mt_keymap_get(&m, i % 3, (int64_t)i * 16), i % 2 ? i + 1 : 0);
    assert_int_equal(mt_keymap_get(&m, 2, 16), 0); /* right b, wrong a */
    mt_keymap_free(&m);
    assert_int_equal(mt_keymap_get(&m, 1, 16 * 3), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sites_peak_snapshot),
        cmocka_unit_test(test_sites_temporary_and_realloc),
        cmocka_unit_test(test_sites_mappings),
        cmocka_unit_test(test_chains_factors),
        cmocka_unit_test(test_chains_keep_longest),
        cmocka_unit_test(test_keymap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
