/* test_evstore.c - the event_data page writer against real SQLite.
 *
 * Cell encoding is checked byte by byte; whole tables (one leaf, many
 * leaves, several interior levels, events out of order, late events,
 * gaps left by markers) are spliced into a database made by mt_db_create and
 * read back through SQLite, which must find every row and pass
 * PRAGMA integrity_check.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mt_db.h"
#include "mt_event.h"
#include "mt_evstore.h"

static void test_cell_bytes(void **state)
{
    (void)state;
    uint8_t buf[128];
    /* free: kind 0, thread 1, addr 0x1000 (int16); size, stack, old_addr,
     * failed omitted as trailing NULLs; the time is not in the row */
    mt_evrow_t f = {.seq = 5, .ts = 300, .kind = MT_EV_free, .thread = 1, .addr = 0x1000, .size = -1};
    size_t n = mt_evstore_encode_cell(&f, buf);
    const uint8_t want_free[] = {
        6,          /* payload bytes */
        5,          /* rowid */
        4,          /* record header bytes */
        8, 9, 2,    /* const 0, const 1, int16 */
        0x10, 0x00, /* 0x1000 */
    };
    assert_int_equal(n, sizeof want_free);
    assert_memory_equal(buf, want_free, sizeof want_free);

    /* malloc with a stack: size 24 (int8), stack 7 (int8) */
    mt_evrow_t m = {.seq = 200, .ts = 5, .kind = MT_EV_malloc, .thread = 0, .addr = 0x7f0000001234ull,
                    .size = 24, .stack = 7};
    n = mt_evstore_encode_cell(&m, buf);
    const uint8_t want_malloc[] = {
        14,                                 /* payload bytes */
        0x81, 0x48,                         /* rowid 200 as a 2-byte varint */
        6, 9, 8, 5, 1, 1,                   /* header: 1, 0, int48, int8, int8 */
        0x7f, 0x00, 0x00, 0x00, 0x12, 0x34, /* addr */
        24, 7,
    };
    assert_int_equal(n, sizeof want_malloc);
    assert_memory_equal(buf, want_malloc, sizeof want_malloc);
}

/* A new trace database in a new temporary directory: dir (at least 32
 * bytes) and path (256) get their names. */
static mt_db_t *new_db(char *dir, char *path)
{
    strcpy(dir, "/tmp/mt_evstore_XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, 256, "%s/t.db", dir);
    mt_db_t *db = NULL;
    char err[256];
    assert_int_equal(mt_db_create(path, &db, err, sizeof err), 0);
    return db;
}

/* Writes `n` events (seq 1..n, with every 7th seq used by a marker when
 * `gaps`) in a shuffled order, splices, and checks the table. */
static void roundtrip(int64_t n, int gaps, int shuffle)
{
    char dir[32], path[256];
    mt_db_t *db = new_db(dir, path);

    int64_t *order = malloc(sizeof *order * (size_t)n);
    for (int64_t i = 0; i < n; i++) order[i] = i + 1;
    if (shuffle) /* local disorder, as several threads produce it */
        for (int64_t i = 0; i + 1 < n; i += 2)
            if ((i / 2) % 3 == 0) {
                int64_t t = order[i];
                order[i] = order[i + 1];
                order[i + 1] = t;
            }
    int64_t expect = 0, expect_bytes = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t seq = order[i];
        if (gaps && seq % 7 == 0) {
            assert_int_equal(mt_db_skip_seq(db, seq), 0);
            continue;
        }
        mt_db_event_t e = {.seq = seq, .ts = seq * 100, .kind = (int)(seq & 1), .thread = seq % 3,
                           .addr = 0x555500000000ull + (uint64_t)seq * 16, .size = (seq & 1) ? seq % 5000 : -1,
                           .stack = (seq & 1) ? seq % 300 : 0, .old_addr = 0, .failed = 0};
        assert_int_equal(mt_db_add_event(db, &e), 0);
        expect++;
        if (seq & 1) expect_bytes += seq % 5000;
    }
    /* one event long after its place was written: stored all the same */
    int64_t sealed = 0;
    assert_int_equal(mt_db_seal_events(db, &sealed), 0);
    assert_int_equal(sealed, expect);

    mt_stmt_t *st;
    assert_int_equal(mt_stmt_prepare(db, "SELECT count(*), coalesce(sum(size), 0), min(seq), max(seq),"
                                         " sum((SELECT ts FROM event_times t WHERE t.seq <= e.seq"
                                         " ORDER BY t.seq DESC LIMIT 1) IS NOT seq * 100) FROM event_data e", &st), 0);
    assert_int_equal(mt_stmt_step(st), 1);
    assert_int_equal(mt_stmt_int(st, 0), expect);
    assert_int_equal(mt_stmt_int(st, 1), expect_bytes);
    if (n > 0) {
        assert_int_equal(mt_stmt_int(st, 2), 1);
        assert_int_equal(mt_stmt_int(st, 3), gaps && n % 7 == 0 ? n - 1 : n);
        assert_int_equal(mt_stmt_int(st, 4), 0);
    }
    mt_stmt_finalize(st);
    if (n > 0) { /* a lookup by key walks the interior pages */
        assert_int_equal(mt_stmt_prepare(db, "SELECT addr FROM event_data WHERE seq = ?", &st), 0);
        int64_t probe = n / 2 % 7 == 0 ? n / 2 + 1 : n / 2;
        mt_stmt_bind_int(st, 1, probe);
        assert_int_equal(mt_stmt_step(st), 1);
        assert_int_equal(mt_stmt_int(st, 0), (int64_t)(0x555500000000ull + (uint64_t)probe * 16));
        mt_stmt_finalize(st);
    }
    assert_int_equal(mt_stmt_prepare(db, "PRAGMA integrity_check", &st), 0);
    assert_int_equal(mt_stmt_step(st), 1);
    assert_string_equal(mt_stmt_text(st, 0), "ok");
    mt_stmt_finalize(st);
    mt_db_close(db);

    /* nothing but the database is left (event_times' spool included) */
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0;
    for (struct dirent *de; (de = readdir(d));) files += de->d_name[0] != '.' || de->d_name[1] > '.';
    closedir(d);
    assert_int_equal(files, 1);
    unlink(path);
    rmdir(dir);
    free(order);
}

static void test_empty(void **state) { (void)state; roundtrip(0, 0, 0); }
static void test_one_leaf(void **state) { (void)state; roundtrip(50, 0, 0); }
static void test_many_leaves(void **state) { (void)state; roundtrip(20000, 1, 1); }
/* 4 KiB pages hold ~200 rows and an interior page ~400 children: 2M rows
 * need a second interior level */
static void test_two_levels(void **state) { (void)state; roundtrip(2000000, 1, 1); }

static void test_late_event(void **state)
{
    (void)state;
    char dir[32], path[256];
    mt_db_t *db = new_db(dir, path);
    /* seq 1 is missing for more than the reorder window: the writer steps
     * over it, and seq 1 arrives late */
    const int64_t n = 300000;
    for (int64_t seq = 2; seq <= n; seq++) {
        mt_db_event_t e = {.seq = seq, .ts = seq, .kind = MT_EV_malloc, .addr = (uint64_t)seq, .size = 1};
        assert_int_equal(mt_db_add_event(db, &e), 0);
    }
    mt_db_event_t late = {.seq = 1, .ts = 1, .kind = MT_EV_malloc, .addr = 1, .size = 1};
    assert_int_equal(mt_db_add_event(db, &late), 0);
    int64_t count = 0;
    assert_int_equal(mt_db_seal_events(db, &count), 0);
    assert_int_equal(count, n);
    mt_stmt_t *st;
    assert_int_equal(mt_stmt_prepare(db, "SELECT count(*), min(seq), sum(size) FROM event_data", &st), 0);
    assert_int_equal(mt_stmt_step(st), 1);
    assert_int_equal(mt_stmt_int(st, 0), n);
    assert_int_equal(mt_stmt_int(st, 1), 1);
    assert_int_equal(mt_stmt_int(st, 2), n);
    mt_stmt_finalize(st);
    /* before every time row: it brings its own; the next event keeps its */
    int64_t ts = 0;
    assert_int_equal(mt_db_time_of(db, 1, &ts), 0);
    assert_int_equal(ts, 1);
    assert_int_equal(mt_db_time_of(db, 2, &ts), 0);
    assert_int_equal(ts, 2);
    mt_db_close(db);
    unlink(path);
    rmdir(dir);
}

/* Every integer width SQLite has (0 and 1 as constants, 1, 2, 3, 4, 6 and
 * 8 bytes), at both ends of each, negative too, in every column, read back
 * exactly through SQLite; and rowids across the varint lengths. */
static void test_int_widths(void **state)
{
    (void)state;
    int64_t v[256];
    int nv = 0;
    v[nv++] = 0;
    v[nv++] = 1;
    for (int k = 7; k <= 62; k++) {
        int64_t p = (int64_t)1 << k;
        v[nv++] = p - 1;
        v[nv++] = p;
        v[nv++] = -p;
        v[nv++] = -p - 1;
    }
    v[nv++] = INT64_MAX;
    v[nv++] = INT64_MIN;
    char dir[32], path[256];
    mt_db_t *db = new_db(dir, path);
    /* rowids from 1 to past 2^28 (varints of 1 to 5 bytes): one event per
     * value, the numbers between given up as markers' */
    int64_t seqs[sizeof v / sizeof v[0]];
    for (int i = 0; i < nv; i++) seqs[i] = i < 8 ? i + 1 : ((int64_t)1 << (i % 29)) + i;
    int64_t prev = 0;
    for (int i = 0; i < nv; i++) { /* increasing */
        if (seqs[i] <= prev) seqs[i] = prev + 1;
        prev = seqs[i];
    }
    for (int i = 0; i < nv; i++) {
        mt_db_event_t e = {.seq = seqs[i], .ts = v[i], .kind = 1, .thread = v[i], .addr = (uint64_t)v[i],
                           .size = v[i] >= 0 ? v[i] : -1, .stack = v[i], .old_addr = (uint64_t)v[i]};
        assert_int_equal(mt_db_add_event(db, &e), 0);
        if (i + 1 < nv) /* a jump of 2^28 steps over the window: announce the gap */
            for (int64_t g = seqs[i] + 1; g < seqs[i + 1] && g < seqs[i] + 4; g++)
                assert_int_equal(mt_db_skip_seq(db, g), 0);
        if (i + 1 < nv && seqs[i + 1] > seqs[i] + 4) assert_int_equal(mt_db_event_admit(db, seqs[i + 1]), 0);
    }
    int64_t sealed = 0;
    assert_int_equal(mt_db_seal_events(db, &sealed), 0);
    assert_int_equal(sealed, nv);
    mt_stmt_t *st;
    assert_int_equal(mt_stmt_prepare(db, "SELECT seq, (SELECT ts FROM event_times t WHERE t.seq <= e.seq"
                                         " ORDER BY t.seq DESC LIMIT 1), thread, addr, size, stack, old_addr"
                                         " FROM event_data e ORDER BY seq",
                                     &st), 0);
    int64_t time = INT64_MIN; /* times do not go back in seq order */
    for (int i = 0; i < nv; i++) {
        assert_int_equal(mt_stmt_step(st), 1);
        assert_int_equal(mt_stmt_int(st, 0), seqs[i]);
        if (v[i] > time) time = v[i];
        assert_int_equal(mt_stmt_int(st, 1), time);
        assert_int_equal(mt_stmt_int(st, 2), v[i]);
        assert_int_equal(mt_stmt_int(st, 3), v[i]);
        assert_int_equal(mt_stmt_int(st, 4), v[i] >= 0 ? v[i] : 0); /* NULL reads as 0 */
        assert_int_equal(mt_stmt_int(st, 5), v[i]);
        assert_int_equal(mt_stmt_int(st, 6), v[i]);
    }
    assert_int_equal(mt_stmt_step(st), 0);
    mt_stmt_finalize(st);
    mt_db_close(db);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cell_bytes), cmocka_unit_test(test_empty),     cmocka_unit_test(test_one_leaf),
        cmocka_unit_test(test_many_leaves), cmocka_unit_test(test_two_levels), cmocka_unit_test(test_late_event),
        cmocka_unit_test(test_int_widths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
