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
#include <sys/stat.h>
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
    assert_int_equal(mt_stmt_prepare(db, "SELECT ts FROM event_times WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1", &st),
                     0);
    for (int64_t seq = 1; seq <= 2; seq++) {
        assert_int_equal(mt_stmt_bind_int(st, 1, seq), 0);
        assert_int_equal(mt_stmt_step(st), 1);
        assert_int_equal(mt_stmt_int(st, 0), seq);
        assert_int_equal(mt_stmt_reset(st), 0);
    }
    mt_stmt_finalize(st);
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

/* Folding a release into its allocation's row: which releases fold, and
 * that the events read back (mt_evread, the events view) are exactly the
 * events written. */
static void test_fold(void **state)
{
    (void)state;
    char dir[32], path[256];
    mt_db_t *db = new_db(dir, path);
    assert_int_equal(mt_db_exec(db, "INSERT INTO processes(id, pid) VALUES (1, 100), (2, 200);"
                                    "INSERT INTO threads(id, process_id, tid) VALUES (1, 1, 100), (2, 1, 101),"
                                    " (3, 2, 200);"),
                     0);
    enum { N = 80000 };
    static mt_db_event_t ev[N];
    int n = 0;
#define EV(k, a, sz) (ev[n] = (mt_db_event_t){.seq = n + 1, .ts = n / 10, .process = 1, .thread = 1, .kind = (k), \
                                             .addr = (a), .size = (sz)}, &ev[n++])
    EV(MT_EV_malloc, 0xa0, 10);                                                  /* 1: its free (2) folds */
    EV(MT_EV_free, 0xa0, -1);                                                    /* 2 */
    EV(MT_EV_malloc, 0xb0, 10);                                                  /* 3: freed by another thread */
    { mt_db_event_t *e = EV(MT_EV_free, 0xb0, -1); e->thread = 2; }              /* 4 */
    EV(MT_EV_malloc, 0xc0, 10);                                                  /* 5: freed with a stack */
    { mt_db_event_t *e = EV(MT_EV_free, 0xc0, -1); e->stack = 7; }               /* 6 */
    { mt_db_event_t *e = EV(MT_EV_malloc, 0xd0, 10); e->via = 3; }               /* 7: under PyMem_RawMalloc */
    EV(MT_EV_free, 0xd0, -1);                                                    /* 8: but not under its free */
    EV(MT_EV_malloc, 0xe0, 10);                                                  /* 9: process 1 */
    { mt_db_event_t *e = EV(MT_EV_malloc, 0xe0, 20); e->process = 2; e->thread = 3; } /* 10: process 2, same address */
    EV(MT_EV_free, 0xe0, -1);                                                    /* 11: folds into 9 */
    { mt_db_event_t *e = EV(MT_EV_free, 0xe0, -1); e->process = 2; e->thread = 3; } /* 12: folds into 10 */
    EV(MT_EV_malloc, 0xf0, 10);                                                  /* 13 */
    { mt_db_event_t *e = EV(MT_EV_realloc, 0xf8, 30); e->old_addr = 0xf0; }      /* 14: 13 ends here */
    EV(MT_EV_free, 0xf0, -1);                                                    /* 15: not 13's (a block it does not know) */
    EV(MT_EV_free, 0xf8, -1);                                                    /* 16: folds into 14 */
    EV(MT_EV_obj_malloc, 0x100, 10);                                             /* 17: folds 18 as obj_free */
    EV(MT_EV_obj_free, 0x100, -1);                                               /* 18 */
    EV(MT_EV_obj_malloc, 0x110, 10);                                             /* 19: released by the C library's free */
    EV(MT_EV_free, 0x110, -1);                                                   /* 20: another layer: no */
    EV(MT_EV_malloc, 0x120, 10);                                                 /* 21: reused address */
    EV(MT_EV_free, 0x120, -1);                                                   /* 22: into 21 */
    EV(MT_EV_malloc, 0x120, 11);                                                 /* 23 */
    EV(MT_EV_free, 0x120, -1);                                                   /* 24: into 23 */
    { mt_db_event_t *e = EV(MT_EV_malloc, 0x130, 10); e->failed = 1; }           /* 25: failed */
    EV(MT_EV_mmap, 0x140000, 4096);                                              /* 26: the OS layer does not fold */
    EV(MT_EV_munmap, 0x140000, 4096);                                            /* 27 */
    EV(MT_EV_malloc, 0x150, 10);                                                 /* 28: freed too late (last event) */
    while (n < N - 1) EV(MT_EV_malloc, 0x100000 + (uint64_t)n * 16, 1); /* leaked */
    EV(MT_EV_free, 0x150, -1);
#undef EV
    for (int i = 0; i < n; i++) assert_int_equal(mt_db_add_event(db, &ev[i]), 0);
    int64_t count = 0;
    assert_int_equal(mt_db_seal_events(db, &count), 0);
    assert_int_equal(count, N);

    mt_stmt_t *st;
    assert_int_equal(mt_stmt_prepare(db, "SELECT group_concat(seq || ':' || free_delta, ' ') FROM"
                                         " (SELECT seq, free_delta FROM event_data WHERE free_delta > 0 ORDER BY seq)",
                                     &st), 0);
    assert_int_equal(mt_stmt_step(st), 1);
    assert_string_equal(mt_stmt_text(st, 0), "1:1 9:2 10:2 14:2 17:1 21:1 23:1");
    mt_stmt_finalize(st);
    /* every event back, in order, as written (times: non-decreasing) */
    mt_evread_t *r;
    assert_int_equal(mt_evread_open(db, NULL, &r), 0);
    mt_db_event_t got;
    int i = 0;
    while (mt_evread_next(r, &got) == 1) {
        assert_true(i < n);
        const mt_db_event_t *e = &ev[i++];
        assert_int_equal(got.seq, e->seq);
        assert_int_equal(got.ts, e->ts);
        assert_int_equal(got.kind, e->kind);
        assert_int_equal(got.thread, e->thread);
        assert_true(got.addr == e->addr);
        assert_int_equal(got.size, e->size);
        assert_int_equal(got.stack, e->stack);
        assert_true(got.old_addr == e->old_addr);
        assert_int_equal(got.failed, e->failed);
        assert_int_equal(got.via, e->via);
    }
    mt_evread_close(r);
    assert_int_equal(i, n);
    /* the view: a row for every event, the folded releases named */
    assert_int_equal(mt_stmt_prepare(db, "SELECT count(*), sum(kind = 'free'), sum(kind = 'obj_free'),"
                                         " group_concat(CASE WHEN seq < 30 THEN seq || kind || pid END, ' ')"
                                         " FROM (SELECT * FROM events ORDER BY seq)",
                                     &st), 0);
    assert_int_equal(mt_stmt_step(st), 1);
    assert_int_equal(mt_stmt_int(st, 0), N);
    assert_int_equal(mt_stmt_int(st, 1), 12);
    assert_int_equal(mt_stmt_int(st, 2), 1);
    assert_string_equal(mt_stmt_text(st, 3),
                        "1malloc100 2free100 3malloc100 4free100 5malloc100 6free100 7malloc100 8free100"
                        " 9malloc100 10malloc200 11free100 12free200 13malloc100 14realloc100 15free100"
                        " 16free100 17obj_malloc100 18obj_free100 19obj_malloc100 20free100 21malloc100"
                        " 22free100 23malloc100 24free100 25malloc100 26mmap100 27munmap100 28malloc100"
                        " 29malloc100");
    mt_stmt_finalize(st);
    mt_db_close(db);
    unlink(path);
    rmdir(dir);
}

/* The store's bytes an event on a stream like the churn workload's (a
 * window of 10,000 live blocks, each allocation followed by the release of
 * a random live one, 200 stacks, a time step every 700 events): at most 16
 * bytes an event in the file, stacks' ids included (13.9 when written). */
static void test_churn_bytes(void **state)
{
    (void)state;
    char dir[32], path[256];
    mt_db_t *db = new_db(dir, path);
    enum { LIVE = 10000, PAIRS = 300000 };
    static uint64_t live[LIVE];
    uint64_t next_addr = 0x555555560000ull, rng = 88172645463325252ull;
    int64_t seq = 0;
    for (int i = 0; i < LIVE + PAIRS; i++) {
        uint64_t addr;
        if (i < LIVE) {
            addr = live[i] = next_addr += 4112;
        } else { /* a random live block is freed; the next malloc takes its place */
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            addr = live[rng % LIVE];
            mt_db_event_t f = {.seq = ++seq, .ts = seq / 700 * 100000, .kind = MT_EV_free, .thread = 1,
                               .process = 1, .addr = addr, .size = -1};
            assert_int_equal(mt_db_add_event(db, &f), 0);
        }
        mt_db_event_t m = {.seq = ++seq, .ts = seq / 700 * 100000, .kind = MT_EV_malloc, .thread = 1, .process = 1,
                           .addr = addr, .size = 1 + (seq * 131) % 4096, .stack = 1 + (seq * 7) % 200};
        assert_int_equal(mt_db_add_event(db, &m), 0);
    }
    int64_t count = 0;
    assert_int_equal(mt_db_seal_events(db, &count), 0);
    assert_int_equal(count, seq);
    mt_db_close(db);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    double per_event = (double)st.st_size / (double)seq;
    if (per_event > 16.0) fail_msg("%.2f bytes an event", per_event);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cell_bytes), cmocka_unit_test(test_empty),     cmocka_unit_test(test_one_leaf),
        cmocka_unit_test(test_many_leaves), cmocka_unit_test(test_two_levels), cmocka_unit_test(test_late_event),
        cmocka_unit_test(test_int_widths), cmocka_unit_test(test_fold), cmocka_unit_test(test_churn_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
