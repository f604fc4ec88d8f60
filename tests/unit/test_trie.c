/* test_trie.c - the region's stack trie (mt_trie_insert, lib/mt_shm.h):
 * nodes in order of insertion behind a lock-free hash index.
 *
 * Four threads insert the same keys in different orders at once: every key
 * gets one id, the same in every thread; the nodes hold their keys, one
 * node per key, ids 1 to nnodes, every one of them written.  A
 * full table answers 0 and says so in the region's flags, and keeps
 * answering the keys it has.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mt_shm.h"

#define SLOTS 1024u
#define KEYS 600u
#define THREADS 4

static mt_region_t *new_region(void)
{
    mt_region_t *r = calloc(1, MT_REGION_SIZE(1, SLOTS));
    assert_non_null(r);
    mt_region_layout(r, 1, SLOTS);
    return r;
}

/* key k: a parent among the earlier keys' ids is not needed for the
 * table; (parent, ip) pairs with shared ips and shared parents are */
static uint64_t key_ip(uint32_t k) { return 0x401000u + (k % 97) * 16; }
static uint32_t key_parent(uint32_t k) { return k / 97; }

static pthread_barrier_t g_start; /* all threads insert at once */

typedef struct {
    mt_region_t *r;
    uint32_t order; /* 0: forwards, 1: backwards, 2: odd then even, 3: by a stride */
    uint32_t id[KEYS];
} worker_t;

static void *insert_all(void *arg)
{
    worker_t *w = arg;
    pthread_barrier_wait(&g_start);
    for (uint32_t i = 0; i < KEYS; i++) {
        uint32_t k = w->order == 0   ? i
                     : w->order == 1 ? KEYS - 1 - i
                     : w->order == 2 ? (i < KEYS / 2 ? 2 * i + 1 : 2 * (i - KEYS / 2))
                                     : (i * 7) % KEYS;
        w->id[k] = mt_trie_insert(w->r, key_parent(k), key_ip(k));
    }
    return NULL;
}

static void concurrent_round(void)
{
    mt_region_t *r = new_region();
    assert_int_equal(pthread_barrier_init(&g_start, NULL, THREADS), 0);
    worker_t w[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        memset(&w[t], 0, sizeof w[t]);
        w[t].r = r;
        w[t].order = (uint32_t)t;
        assert_int_equal(pthread_create(&th[t], NULL, insert_all, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&g_start);

    assert_int_equal(r->nnodes, KEYS);
    assert_int_equal(r->flags & MT_RG_TRIE_FULL, 0);
    mt_trie_slot_t *nodes = mt_region_trie(r);
    uint8_t *seen = calloc(KEYS + 1, 1);
    for (uint32_t k = 0; k < KEYS; k++) {
        uint32_t id = w[0].id[k];
        assert_true(id >= 1 && id <= KEYS);
        for (int t = 1; t < THREADS; t++) assert_int_equal(w[t].id[k], id);
        assert_int_equal(nodes[id - 1].ip, key_ip(k));
        assert_int_equal(nodes[id - 1].parent, key_parent(k));
        assert_int_equal(nodes[id - 1].state, 2);
        assert_int_equal(seen[id], 0); /* one key, one id */
        seen[id] = 1;
    }
    for (uint32_t i = 0; i < KEYS; i++) assert_int_equal(nodes[i].state, 2); /* ids 1..nnodes, all written */
    /* looked up again: the same ids, nothing inserted */
    for (uint32_t k = 0; k < KEYS; k++) assert_int_equal(mt_trie_insert(r, key_parent(k), key_ip(k)), w[0].id[k]);
    assert_int_equal(r->nnodes, KEYS);
    free(seen);
    free(r);
}

static void test_concurrent_inserts(void **state)
{
    (void)state;
    for (int round = 0; round < 50; round++) concurrent_round();
}

static void test_full_table(void **state)
{
    (void)state;
    mt_region_t *r = new_region();
    uint32_t first = 0, last = 0;
    for (uint32_t k = 0; k < SLOTS; k++) {
        last = mt_trie_insert(r, 0, 0x500000u + k * 16);
        assert_int_equal(last, k + 1);
        if (!k) first = last;
    }
    assert_int_equal(r->flags & MT_RG_TRIE_FULL, 0);
    assert_int_equal(mt_trie_insert(r, 0, 0x900000u), 0); /* no room */
    assert_int_not_equal(r->flags & MT_RG_TRIE_FULL, 0);
    assert_int_equal(r->nnodes, SLOTS);
    /* the keys it has are still found */
    assert_int_equal(mt_trie_insert(r, 0, 0x500000u), first);
    assert_int_equal(mt_trie_insert(r, 0, 0x500000u + (SLOTS - 1) * 16), last);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_inserts),
        cmocka_unit_test(test_full_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
