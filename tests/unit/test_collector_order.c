/* test_collector_order.c - the collector (tracer/collector.c) puts a
 * backlog in sequence order, whatever the chunks' order.
 *
 * A region is laid out by hand as the preload library lays it out
 * (lib/mt_shm.h), for a program that has already exited, and the
 * collector is run on it to the end with a child that exits at once as
 * the "program" (as tests/fuzz/fuzz_collector.c does).  The interesting
 * chunk is the one of a thread that stalled: it wrote a few events, lost
 * the CPU while the other threads wrote far more than the event store's
 * reorder window, then wrote again.  Its chunk's first number is the
 * lowest, but read to its end first it would push the window past every
 * other chunk, and those would go in "late" (one SQLite INSERT each).
 * The region's chunks that no thread took are never looked at.
 */
#define _GNU_SOURCE
#include "../collector_fixture.h"
#include "mt_event.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define PER_CHUNK  ((uint32_t)(MT_CHUNK_DATA / sizeof(mt_rec32_t)) - 1) /* events after the time record */
#define STALL_GAP  300000u /* numbers the other threads take while one stalls: more than a window */
#define FEW        1000u   /* events the stalled thread writes before and after */
#define UNUSED     64u     /* chunks no thread took */

typedef struct {
    mt_region_t *r;
    uint32_t chunk; /* the chunk being filled */
    uint64_t pos;
} writer_t;

/* Starts filling chunk i for thread tid with a time record. */
static void begin_chunk(writer_t *w, uint32_t i, int32_t tid)
{
    mt_chunk_t *ch = mt_region_chunk(w->r, i);
    ch->tid = tid;
    ch->state = MT_CHUNK_FULL;
    w->chunk = i;
    mt_rec32_t *ts = (mt_rec32_t *)(ch + 1);
    memset(ts, 0, sizeof *ts);
    ts->type = MT_REC_TS;
    ts->addr = 1000;
    w->pos = sizeof *ts;
    ch->used = w->pos;
}

/* Appends a malloc event numbered seq to the chunk being filled. */
static void put(writer_t *w, uint64_t seq)
{
    mt_chunk_t *ch = mt_region_chunk(w->r, w->chunk);
    assert_true(w->pos + sizeof(mt_rec32_t) <= MT_CHUNK_DATA);
    mt_rec32_t *e = (mt_rec32_t *)((char *)(ch + 1) + w->pos);
    memset(e, 0, sizeof *e);
    e->type = MT_REC_EV32;
    e->kind = MT_EV_malloc;
    e->seq = seq;
    e->addr = 0x10000 + 16 * seq;
    e->size = 16;
    w->pos += sizeof *e;
    ch->used = w->pos;
}

static int64_t query_int(mt_db_t *db, const char *sql)
{
    mt_stmt_t *q;
    assert_int_equal(mt_stmt_prepare(db, sql, &q), 0);
    assert_int_equal(mt_stmt_step(q), 1);
    int64_t v = mt_stmt_int(q, 0);
    mt_stmt_finalize(q);
    return v;
}

static fixture_t fx; /* closed by the teardown, also after a failed assertion */

static int teardown(void **state)
{
    (void)state;
    fixture_close(&fx);
    memset(&fx, 0, sizeof fx);
    return 0;
}

static void test_stalled_thread_chunk(void **state)
{
    (void)state;
    /* the stalled thread's chunk last, and UNUSED chunks never written */
    uint32_t others = (STALL_GAP + PER_CHUNK - 1) / PER_CHUNK, nchunks = others + 1 + UNUSED;
    assert_int_equal(fixture_open(&fx, "test_collector_order", nchunks, 16), 0);
    mt_region_t *r = fx.r;
    pid_t child = fx.child;

    /* the stalled thread in the last chunk: numbers 1..FEW, then
     * FEW + STALL_GAP + 1 .. FEW + STALL_GAP + FEW; the others in the
     * chunks before it, in order, FEW + 1 .. FEW + STALL_GAP */
    writer_t w = {r, 0, 0};
    begin_chunk(&w, others, (int32_t)child + 1);
    for (uint64_t s = 1; s <= FEW; s++) put(&w, s);
    for (uint64_t s = FEW + STALL_GAP + 1; s <= FEW + STALL_GAP + FEW; s++) put(&w, s);
    for (uint64_t s = FEW + 1, k = 0; s <= FEW + STALL_GAP; s++, k++) {
        if (k % PER_CHUNK == 0) begin_chunk(&w, (uint32_t)(k / PER_CHUNK), (int32_t)child + 2);
        put(&w, s);
    }
    fx.session->seq = FEW + STALL_GAP + FEW + 1;
    fixture_publish(&fx);

    mt_collector_stats_t st;
    int rc = -1;
    assert_int_equal(fixture_collect(&fx, &st, &rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(st.events, FEW + STALL_GAP + FEW);
    /* the chunks no thread took were not looked at: their pages are still
     * holes, not pages of zeros the collector faulted in */
    long pg = sysconf(_SC_PAGESIZE);
    int touched = 0;
    for (uint32_t i = others + 1; i < nchunks; i++) {
        unsigned char in_core = 0;
        uintptr_t hdr = (uintptr_t)mt_region_chunk(r, i) & ~(uintptr_t)(pg - 1);
        assert_int_equal(mincore((void *)hdr, (size_t)pg, &in_core), 0);
        touched += in_core & 1;
    }
    assert_int_equal(touched, 0);
    char err[256];
    mt_db_t *db;
    assert_int_equal(mt_db_open(fx.dbpath, MT_DB_READONLY, &db, err, sizeof err), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM event_data WHERE kind = 1"), FEW + STALL_GAP + FEW);
    assert_int_equal(query_int(db, "SELECT value FROM meta WHERE key = 'late_events'"), 0);
    mt_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_stalled_thread_chunk, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
