/* test_evstore_small.c - the event_data B-tree in 512-byte pages, where a
 * few thousand events make several interior levels.
 *
 * The interior pages are built while the leaves are written (one open page
 * per level, mt_evstore.c).  Checked through SQLite (every row, PRAGMA
 * integrity_check): tables of every size from none to four levels, so
 * that each level ends at every position, once with a lone child; and
 * recordings cut short by a file size limit at many points, then made
 * room for by mt_evstore_make_room (which drops the newest pages, leaves
 * and interior pages, as far as needed) and spliced: the events kept are
 * the first ones, and as many as mt_evstore_count says.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "mt_error.h"
#include "mt_evstore.h"

#define ROOT 2       /* event_data's root page in the database made below */
#define TIMES_ROOT 3 /* event_times' */

static char g_path[64];

/* An empty database of 512-byte pages whose tables event_data and
 * event_times have their roots at pages 2 and 3; returns its page count. */
static uint32_t make_db(void)
{
    unlink(g_path);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(g_path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h,
                                  "PRAGMA page_size = 512; PRAGMA journal_mode = OFF;"
                                  "CREATE TABLE event_data(kind, thread, addr, size, stack, via, old_addr,"
                                  " failed, pool, size_class, seq INTEGER PRIMARY KEY);"
                                  "CREATE TABLE event_times(ts, seq INTEGER PRIMARY KEY)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA page_count", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    uint32_t n = (uint32_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return n;
}

/* Runs of 7 events share a time; every 13th (unless it starts a run) is
 * stamped earlier than the events before it, and is stored with their
 * time (times do not go back in seq order). */
static mt_evrow_t event(int64_t seq)
{
    mt_evrow_t e = {.seq = seq, .ts = seq % 13 || seq % 7 == 0 ? seq / 7 * 70 : 5, .kind = 1, .thread = 1, .addr = 0x7f0000000000ull + (uint64_t)seq * 32,
                    .size = seq % 1000, .stack = seq % 50 + 1};
    return e;
}

/* count(*), max(seq), every event's time and integrity of the tables. */
static void check_table(int64_t want)
{
    sqlite3 *h;
    assert_int_equal(sqlite3_open_v2(g_path, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h,
                           "SELECT count(*), coalesce(max(seq), 0), coalesce(sum(coalesce((SELECT ts FROM event_times t"
                           " WHERE t.seq <= e.seq ORDER BY t.seq DESC LIMIT 1), -1) != seq / 7 * 70), 0) FROM event_data e",
                           -1, &st, NULL) != SQLITE_OK)
        fail_msg("%lld events: %s", (long long)want, sqlite3_errmsg(h));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), want);
    assert_int_equal(sqlite3_column_int64(st, 1), want);
    assert_int_equal(sqlite3_column_int64(st, 2), 0);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    if (strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0)
        fail_msg("%lld events: %s", (long long)want, sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(h);
}

static void test_sizes(void **state)
{
    (void)state;
    /* about 17 events a leaf and 50 children an interior page: 40,000
     * leaves make four levels */
    for (int64_t n = 0; n < 700000; n = n < 200 ? n + 1 : n < 20000 ? n + 97 : n * 5 / 4) {
        uint32_t pages = make_db();
        mt_evstore_t *s;
        assert_int_equal(mt_evstore_new(g_path, 512, pages + 1, 1, &s), 0);
        for (int64_t i = 1; i <= n; i++) {
            mt_evrow_t e = event(i);
            assert_int_equal(mt_evstore_add(s, &e), 0);
        }
        assert_int_equal(mt_evstore_splice(s, ROOT, TIMES_ROOT), 0);
        assert_int_equal(mt_evstore_times_lost(s), 0);
        assert_int_equal(mt_evstore_count(s), n);
        mt_evstore_free(s);
        check_table(n);
    }
}

static void test_cut_short(void **state)
{
    (void)state;
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    /* leaves are written 2 MiB at a time: the first limit lets one batch in */
    for (rlim_t limit = 2200000; limit < 12000000; limit = limit * 21 / 20 + 517 * (limit % 13)) {
        uint32_t pages = make_db();
        mt_evstore_t *s;
        assert_int_equal(mt_evstore_new(g_path, 512, pages + 1, 1, &s), 0);
        struct rlimit rl = {limit, old.rlim_max};
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
        int rc = 0;
        for (int64_t i = 1; !rc && i < 10000000; i++) {
            mt_evrow_t e = event(i);
            rc = mt_evstore_add(s, &e);
        }
        assert_int_equal(rc, MT_EFULL);
        assert_int_equal(mt_evstore_failed(s), MT_EFULL);
        /* room for 4 KiB more, under the same limit: newer leaves go */
        assert_int_equal(mt_evstore_make_room(s, 4096), 0);
        assert_int_equal(mt_evstore_splice(s, ROOT, TIMES_ROOT), 0);
        assert_int_equal(mt_evstore_times_lost(s), 0);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        int64_t kept = mt_evstore_count(s);
        mt_evstore_free(s);
        assert_true(kept > 0);
        check_table(kept);
    }
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_path, sizeof g_path, "/tmp/mt_evstore_small.%d.db", (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(g_path);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_cut_short),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
