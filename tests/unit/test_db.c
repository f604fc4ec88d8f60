/* test_db.c - the trace database through lib/mt_db.h: creation with the
 * schema and lookup tables, refusal of files that are not traces (with the
 * right code and a one-line message naming the file), meta, statements,
 * read-only connections, and the bulk event writer, whose rows must come
 * back exactly, whatever order they were added in.
 *
 * Each test works in its own file of a temporary directory made by the
 * group setup.  This file does not include sqlite3.h (mt_db.c is the only
 * one that does): foreign and damaged files are made through mt_db itself
 * or written byte by byte.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mt_db.h"
#include "mt_error.h"
#include "mt_event.h"

static char g_dir[256];

static int group_setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/test_db.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    DIR *d = opendir(g_dir);
    if (d) {
        struct dirent *de;
        char p[512];
        while ((de = readdir(d)))
            if (de->d_name[0] != '.') {
                snprintf(p, sizeof p, "%s/%s", g_dir, de->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(g_dir);
    return 0;
}

static const char *path_of(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return p;
}

static void write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* One integer from a query that returns one row. */
static int64_t q_int(mt_db_t *db, const char *sql)
{
    mt_stmt_t *st = NULL;
    assert_int_equal(mt_stmt_prepare(db, sql, &st), 0);
    assert_int_equal(mt_stmt_step(st), 1);
    int64_t v = mt_stmt_int(st, 0);
    assert_int_equal(mt_stmt_step(st), 0);
    mt_stmt_finalize(st);
    return v;
}

/* The text of a one-row query, copied into buf. */
static const char *q_text(mt_db_t *db, const char *sql, char *buf, size_t len)
{
    mt_stmt_t *st = NULL;
    assert_int_equal(mt_stmt_prepare(db, sql, &st), 0);
    assert_int_equal(mt_stmt_step(st), 1);
    const char *t = mt_stmt_text(st, 0);
    snprintf(buf, len, "%s", t ? t : "(null)");
    mt_stmt_finalize(st);
    return buf;
}

static mt_db_t *create(const char *name)
{
    mt_db_t *db = NULL;
    char err[512] = "";
    int rc = mt_db_create(path_of(name), &db, err, sizeof err);
    if (rc) fail_msg("mt_db_create(%s): %s (%s)", name, mt_strerror(rc), err);
    assert_non_null(db);
    return db;
}

static mt_db_t *open_ro(const char *name)
{
    mt_db_t *db = NULL;
    char err[512] = "";
    int rc = mt_db_open(path_of(name), MT_DB_READONLY, &db, err, sizeof err);
    if (rc) fail_msg("mt_db_open(%s): %s (%s)", name, mt_strerror(rc), err);
    return db;
}

/* ---- creation ---- */

static void test_create_identity_and_lookups(void **state)
{
    (void)state;
    mt_db_close(create("new.db"));
    mt_db_t *db = open_ro("new.db");
    assert_int_equal(q_int(db, "PRAGMA user_version"), MT_SCHEMA_VERSION);
    assert_int_equal(q_int(db, "PRAGMA application_id"), MT_APPLICATION_ID);
    assert_int_equal(q_int(db, "SELECT count(*) FROM event_kinds"), MT_EV_COUNT + PYM_EV_COUNT);
    assert_int_equal(q_int(db, "SELECT count(*) FROM domains"), MT_DOM_COUNT);
    assert_int_equal(q_int(db, "SELECT count(*) FROM marker_kinds"), MT_MK_COUNT);

    /* every kind row matches the list in mt_event.h */
    mt_stmt_t *st = NULL;
    assert_int_equal(mt_stmt_prepare(db,
                                     "SELECT k.id, k.name, d.name, k.is_alloc, k.is_free FROM event_kinds k"
                                     " JOIN domains d ON d.id = k.domain_id ORDER BY k.id",
                                     &st),
                     0);
    int n = 0;
    while (mt_stmt_step(st) == 1) {
        int code = (int)mt_stmt_int(st, 0);
        /* the C library's and the OS's kinds, then the bundled allocator's */
        assert_int_equal(code, n < MT_EV_COUNT ? n : MT_KIND_PYM_BASE + n - MT_EV_COUNT);
        assert_string_equal(mt_stmt_text(st, 1), mt_kind_name(code));
        assert_string_equal(mt_stmt_text(st, 2), mt_domain_name(mt_kind_domain(code)));
        assert_int_equal(mt_stmt_int(st, 3), (mt_kind_flags(code) & MT_KF_ALLOC) != 0);
        assert_int_equal(mt_stmt_int(st, 4), (mt_kind_flags(code) & MT_KF_FREE) != 0);
        n++;
    }
    mt_stmt_finalize(st);
    assert_int_equal(n, MT_EV_COUNT + PYM_EV_COUNT);

    char buf[64];
    for (int m = 0; m < MT_MK_COUNT; m++) {
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT name FROM marker_kinds WHERE id = %d", m);
        assert_string_equal(q_text(db, sql, buf, sizeof buf), mt_marker_name(m));
    }
    /* the tables of schemas/trace.sql are all there, empty */
    static const char *const tables[] = {"meta", "processes", "threads", "modules", "frames", "stacks",
                                         "event_data", "markers", "rss_samples", "allocator_events",
                                         "gc_events"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE 0", tables[i]);
        assert_int_equal(q_int(db, sql), 0);
    }
    assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 0);
    assert_int_equal(q_int(db, "SELECT count(*) FROM stack_frames"), 0);
    assert_int_equal(q_int(db, "SELECT count(*) FROM marker_names"), 0);
    mt_db_close(db);
}

static void test_create_replaces_existing_file(void **state)
{
    (void)state;
    write_file(path_of("old.db"), "some old content\n", 17);
    mt_db_close(create("old.db"));
    mt_db_t *db = open_ro("old.db");
    assert_non_null(db);
    assert_int_equal(q_int(db, "PRAGMA user_version"), MT_SCHEMA_VERSION);
    mt_db_close(db);
}

static void test_create_in_missing_dir_fails(void **state)
{
    (void)state;
    mt_db_t *db = (mt_db_t *)1;
    char err[512] = "";
    char path[512];
    snprintf(path, sizeof path, "%s/no/such/dir/x.db", g_dir);
    int rc = mt_db_create(path, &db, err, sizeof err);
    assert_null(db);
    if (rc >= 0) fail_msg("mt_db_create returned %d, not a negative MT_E* code (err: %s)", rc, err);
    assert_non_null(strstr(err, path));
    assert_null(strchr(err, '\n'));
    assert_int_not_equal(access(path, F_OK), 0);
}

static void test_close_leaves_only_the_database(void **state)
{
    (void)state;
    char sub[512];
    snprintf(sub, sizeof sub, "%s/only", g_dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/t.db", sub);
    mt_db_t *db = NULL;
    assert_int_equal(mt_db_create(path, &db, NULL, 0), 0);
    mt_db_event_t e = {.seq = 1, .ts = 5, .kind = MT_EV_malloc, .thread = 1, .addr = 4096, .size = 8};
    assert_int_equal(mt_db_add_event(db, &e), 0);
    mt_db_close(db);
    DIR *d = opendir(sub);
    assert_non_null(d);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') {
            files++;
            assert_string_equal(de->d_name, "t.db");
        }
    closedir(d);
    assert_int_equal(files, 1);
    unlink(path);
    rmdir(sub);
}

/* ---- refusing what is not a trace ---- */

/* Opens `name` and expects failure `want` with a one-line message naming the
 * file and containing `needle` (if not NULL). */
static void expect_refused(const char *name, int want, const char *needle)
{
    mt_db_t *db = (mt_db_t *)1;
    char err[512] = "";
    const char *path = path_of(name);
    char p[512];
    snprintf(p, sizeof p, "%s", path);
    int rc = mt_db_open(p, MT_DB_READONLY, &db, err, sizeof err);
    assert_int_equal(rc, want);
    assert_null(db);
    assert_true(err[0] != 0);
    assert_null(strchr(err, '\n'));
    assert_non_null(strstr(err, p));
    if (needle) assert_non_null(strstr(err, needle));
}

static void test_open_missing(void **state)
{
    (void)state;
    expect_refused("missing.db", MT_ENOENT, NULL);
}

static void test_open_text_file(void **state)
{
    (void)state;
    write_file(path_of("text.db"), "this is not a database, it is text\n", 35);
    expect_refused("text.db", MT_ENOTDB, NULL);
}

static void test_open_empty_file(void **state)
{
    (void)state;
    write_file(path_of("empty.db"), "", 0);
    expect_refused("empty.db", MT_ENOTDB, NULL);
}

static void test_open_directory(void **state)
{
    (void)state;
    char sub[512];
    snprintf(sub, sizeof sub, "%s/dir.db", g_dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    expect_refused("dir.db", MT_ENOTDB, NULL);
    rmdir(sub);
}

static void test_open_other_program_sqlite(void **state)
{
    (void)state;
    mt_db_t *db = create("other.db");
    mt_db_close(db);
    /* same file format, someone else's application id */
    mt_db_t *w = NULL;
    char err[256];
    /* mt_db_open refuses it for writing too once changed, so change it while
     * it is still ours */
    assert_int_equal(mt_db_open(path_of("other.db"), MT_DB_WRITE, &w, err, sizeof err), 0);
    assert_int_equal(mt_db_exec(w, "PRAGMA application_id = 1234"), 0);
    mt_db_close(w);
    expect_refused("other.db", MT_ENOTDB, NULL);
}

static void test_open_other_version(void **state)
{
    (void)state;
    mt_db_close(create("v99.db"));
    mt_db_t *w = NULL;
    char err[256];
    assert_int_equal(mt_db_open(path_of("v99.db"), MT_DB_WRITE, &w, err, sizeof err), 0);
    assert_int_equal(mt_db_exec(w, "PRAGMA user_version = 99"), 0);
    mt_db_close(w);
    expect_refused("v99.db", MT_EVERSION, "99");
}

static void test_open_damaged_header(void **state)
{
    (void)state;
    /* the SQLite magic followed by garbage */
    char buf[4096];
    memset(buf, 0xA5, sizeof buf);
    memcpy(buf, "SQLite format 3", 16);
    write_file(path_of("damaged.db"), buf, sizeof buf);
    mt_db_t *db = (mt_db_t *)1;
    char err[512] = "";
    int rc = mt_db_open(path_of("damaged.db"), MT_DB_READONLY, &db, err, sizeof err);
    assert_true(rc == MT_ENOTDB || rc == MT_ECORRUPT);
    assert_null(db);
    assert_null(strchr(err, '\n'));
}

/* ---- meta ---- */

static void test_meta(void **state)
{
    (void)state;
    mt_db_t *db = create("meta.db");
    assert_int_equal(mt_db_meta_set_text(db, "command", "./prog a b"), 0);
    assert_int_equal(mt_db_meta_set_int(db, "events", 4000212), 0);
    assert_int_equal(mt_db_meta_set_int(db, "complete", 0), 0);
    assert_int_equal(mt_db_meta_set_int(db, "complete", 1), 0); /* replaces */
    assert_int_equal(mt_db_meta_set_int(db, "negative", INT64_MIN), 0);
    mt_db_close(db);

    db = open_ro("meta.db");
    char *s = NULL;
    assert_int_equal(mt_db_meta_get_text(db, "command", &s), 0);
    assert_string_equal(s, "./prog a b");
    free(s);
    int64_t v = 0;
    assert_int_equal(mt_db_meta_get_int(db, "events", &v), 0);
    assert_int_equal(v, 4000212);
    assert_int_equal(mt_db_meta_get_int(db, "complete", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(mt_db_meta_get_int(db, "negative", &v), 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(q_int(db, "SELECT count(*) FROM meta WHERE key = 'complete'"), 1);

    s = (char *)1;
    assert_int_equal(mt_db_meta_get_text(db, "absent", &s), 0);
    assert_null(s);
    v = 77;
    assert_int_equal(mt_db_meta_get_int(db, "absent", &v), MT_ENOENT);
    assert_int_equal(v, 77);
    mt_db_close(db);
}

/* ---- statements ---- */

static void test_statements(void **state)
{
    (void)state;
    mt_db_t *db = create("stmt.db");
    mt_db_close(db);
    db = open_ro("stmt.db");

    mt_stmt_t *st = NULL;
    assert_int_equal(mt_stmt_prepare(db, "SELECT ?1 + 1 AS n, ?2 AS t, ?3 AS z, 2.5 AS f, x'00ff' AS b", &st), 0);
    assert_true(mt_stmt_readonly(st));
    assert_int_equal(mt_stmt_columns(st), 5);
    assert_string_equal(mt_stmt_column_name(st, 0), "n");
    assert_string_equal(mt_stmt_column_name(st, 4), "b");
    for (int round = 0; round < 2; round++) {
        assert_int_equal(mt_stmt_bind_int(st, 1, 41 + round), 0);
        assert_int_equal(mt_stmt_bind_text(st, 2, "hello"), 0);
        assert_int_equal(mt_stmt_bind_null(st, 3), 0);
        assert_int_equal(mt_stmt_step(st), 1);
        assert_int_equal(mt_stmt_column_type(st, 0), MT_COL_INT);
        assert_int_equal(mt_stmt_int(st, 0), 42 + round);
        assert_int_equal(mt_stmt_column_type(st, 1), MT_COL_TEXT);
        assert_string_equal(mt_stmt_text(st, 1), "hello");
        assert_int_equal(mt_stmt_column_type(st, 2), MT_COL_NULL);
        assert_null(mt_stmt_text(st, 2));
        assert_int_equal(mt_stmt_column_type(st, 3), MT_COL_FLOAT);
        assert_true(mt_stmt_double(st, 3) == 2.5);
        assert_int_equal(mt_stmt_column_type(st, 4), MT_COL_BLOB);
        int len = 0;
        const unsigned char *b = mt_stmt_blob(st, 4, &len);
        assert_int_equal(len, 2);
        assert_int_equal(b[0], 0x00);
        assert_int_equal(b[1], 0xff);
        assert_int_equal(mt_stmt_step(st), 0);
        assert_int_equal(mt_stmt_reset(st), 0);
    }
    mt_stmt_finalize(st);

    st = (mt_stmt_t *)1;
    assert_int_equal(mt_stmt_prepare(db, "SELEC nonsense", &st), MT_ESQL);
    assert_null(st);
    assert_true(strlen(mt_db_errmsg(db)) > 0);
    st = (mt_stmt_t *)1;
    assert_int_equal(mt_stmt_prepare(db, "   ", &st), MT_EINVAL);
    assert_null(st);

    assert_int_equal(mt_stmt_prepare(db, "DELETE FROM meta", &st), 0);
    assert_false(mt_stmt_readonly(st));
    assert_true(mt_stmt_step(st) < 0); /* read-only connection */
    mt_stmt_finalize(st);
    assert_true(mt_db_exec(db, "CREATE TABLE t(x)") < 0);
    mt_stmt_finalize(NULL);
    mt_db_close(db);
    mt_db_close(NULL);
}

/* ---- bulk events ---- */

static uint64_t rng(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ULL;
}

/* The event with sequence number `seq`, a pure function of seq: lets the
 * test recompute every expected value.  Seq numbers divisible by 97 are
 * markers (skipped). */
static void make_event(int64_t seq, mt_db_event_t *e)
{
    uint64_t s = (uint64_t)seq * 0x9E3779B97F4A7C15ULL + 1;
    uint64_t r = rng(&s);
    memset(e, 0, sizeof *e);
    e->seq = seq;
    e->ts = seq * 1000 + (int64_t)(r % 1000);
    e->kind = (int)(r % MT_EV_COUNT);
    e->thread = 1 + (int64_t)((r >> 8) % 3);
    e->addr = 0x7f0000000000ULL + ((r >> 16) % 1000000) * 16;
    e->size = e->kind == MT_EV_free ? -1 : (int64_t)((r >> 20) % 100000);
    e->stack = (r >> 40) % 5 == 0 ? 0 : (int64_t)((r >> 24) % 50000) + 1;
    e->old_addr = (mt_kind_flags(e->kind) & MT_KF_FREE) && e->kind != MT_EV_free && e->kind != MT_EV_munmap
                      ? 0x7e0000000000ULL + ((r >> 28) % 1000) * 64
                      : 0;
    e->failed = (r >> 50) % 50 == 0;
}

static int is_marker_seq(int64_t seq) { return seq % 97 == 0; }

typedef struct {
    int64_t n, size_sum, size_null, stack_null, old_null, failed, thread_sum;
    uint64_t addr_xor;
} totals_t;

static void add_totals(totals_t *t, const mt_db_event_t *e)
{
    t->n++;
    if (e->size < 0) t->size_null++;
    else t->size_sum += e->size;
    t->stack_null += e->stack == 0;
    t->old_null += e->old_addr == 0;
    t->failed += e->failed != 0;
    t->thread_sum += e->thread;
    t->addr_xor ^= e->addr * 31 + (uint64_t)e->seq;
}

/* Writes events 1..n (markers skipped) in an order given by `order`:
 *   0 ascending; 1 shuffled inside windows of 256; 2 with every 1000th
 *   event held back until the end (late).  Then checks every aggregate and
 *   a sample of rows. */
static void roundtrip(const char *name, int64_t n, int order)
{
    mt_db_t *db = create(name);
    assert_int_equal(mt_db_exec(db, "INSERT INTO processes(id, pid) VALUES (1, 4242);"
                                    "INSERT INTO threads(id, process_id, tid) VALUES (1, 1, 4242), (2, 1, 4243),"
                                    " (3, 1, 4244);"),
                     0);
    totals_t want = {0};
    int64_t *seqs = malloc(sizeof *seqs * (size_t)n);
    assert_non_null(seqs);
    for (int64_t i = 0; i < n; i++) seqs[i] = i + 1;
    if (order == 1) {
        uint64_t s = 12345;
        for (int64_t base = 0; base < n; base += 256) {
            int64_t len = n - base < 256 ? n - base : 256;
            for (int64_t i = len - 1; i > 0; i--) {
                int64_t j = (int64_t)(rng(&s) % (uint64_t)(i + 1));
                int64_t t = seqs[base + i];
                seqs[base + i] = seqs[base + j];
                seqs[base + j] = t;
            }
        }
    }
    for (int pass = 0; pass < (order == 2 ? 2 : 1); pass++) {
        for (int64_t i = 0; i < n; i++) {
            int64_t seq = seqs[i];
            int held = order == 2 && seq % 1000 == 500 && !is_marker_seq(seq);
            if (held != (pass == 1)) continue;
            if (is_marker_seq(seq)) {
                assert_int_equal(mt_db_skip_seq(db, seq), 0);
                continue;
            }
            mt_db_event_t e;
            make_event(seq, &e);
            assert_int_equal(mt_db_add_event(db, &e), 0);
            add_totals(&want, &e);
        }
    }
    free(seqs);
    int64_t count = -1;
    assert_int_equal(mt_db_seal_events(db, &count), 0);
    assert_int_equal(count, want.n);
    assert_int_equal(mt_db_seal_events(db, NULL), 0); /* second time: nothing */
    assert_int_equal(mt_db_build_indexes(db), 0);
    mt_db_close(db);

    db = open_ro(name);
    char buf[64];
    assert_string_equal(q_text(db, "PRAGMA integrity_check", buf, sizeof buf), "ok");
    /* rows: events, less the releases folded into their allocations' rows */
    assert_int_equal(q_int(db, "SELECT count(*) + (SELECT count(*) FROM event_data WHERE free_delta > 0)"
                               " FROM event_data"),
                     want.n);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events"), want.n);
    assert_int_equal(q_int(db, "SELECT coalesce(sum(size), 0) FROM events"), want.size_sum);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events WHERE size IS NULL"), want.size_null);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events WHERE stack_id IS NULL"), want.stack_null);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events WHERE old_addr IS NULL"), want.old_null);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events WHERE failed = 1"), want.failed);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events WHERE failed IS NOT NULL AND failed != 1"), 0);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events WHERE ts_ns IS NULL"), 0);
    assert_int_equal(q_int(db, "SELECT sum(thread_id) FROM events"), want.thread_sum);
    assert_int_equal(q_int(db, "SELECT count(*) FROM events WHERE seq % 97 = 0"), 0);
    /* seq is the rowid and in order: the n-th row by rowid is the n-th seq */
    assert_int_equal(q_int(db, "SELECT count(*) FROM (SELECT seq, lag(seq) OVER (ORDER BY rowid) AS p"
                               " FROM event_data) WHERE p IS NOT NULL AND p >= seq"),
                     0);

    /* every event in order (the folded releases among them), field by
     * field, against its recomputed event */
    mt_evread_t *r = NULL;
    assert_int_equal(mt_evread_open(db, NULL, &r), 0);
    int64_t rows = 0, prev_ts = 0, ts_sum = 0;
    uint64_t addr_xor = 0;
    mt_db_event_t got;
    while (mt_evread_next(r, &got) == 1) {
        mt_db_event_t e;
        make_event(got.seq, &e);
        /* an event held back until after its place was written (late)
         * takes the time in effect there */
        if (order == 2 && e.seq % 1000 == 500 && got.ts != e.ts) assert_int_equal(got.ts, prev_ts);
        else assert_int_equal(got.ts, e.ts);
        prev_ts = got.ts;
        ts_sum += got.ts;
        assert_int_equal(got.kind, e.kind);
        assert_int_equal(got.thread, e.thread);
        assert_true(got.addr == e.addr);
        assert_int_equal(got.size, e.size);
        assert_int_equal(got.stack, e.stack);
        assert_true(got.old_addr == e.old_addr);
        assert_int_equal(got.failed, e.failed);
        assert_int_equal(got.via, e.via);
        addr_xor ^= e.addr * 31 + (uint64_t)e.seq;
        rows++;
    }
    mt_evread_close(r);
    assert_int_equal(rows, want.n);
    assert_true(addr_xor == want.addr_xor);
    /* the view's times are the cursor's */
    assert_int_equal(q_int(db, "SELECT sum(ts_ns) FROM events"), ts_sum);

    /* the events view joins names, pid and tid */
    mt_db_event_t first;
    int64_t first_seq = q_int(db, "SELECT min(seq) FROM event_data");
    make_event(first_seq, &first);
    char want_row[128], sql[256];
    snprintf(want_row, sizeof want_row, "4242:%lld:%s:%s", (long long)(4241 + first.thread),
             mt_kind_name(first.kind), mt_domain_name(mt_kind_domain(first.kind)));
    snprintf(sql, sizeof sql,
             "SELECT pid || ':' || tid || ':' || kind || ':' || domain FROM events WHERE seq = %lld",
             (long long)first_seq);
    char row[128];
    assert_string_equal(q_text(db, sql, row, sizeof row), want_row);
    mt_db_close(db);
}

static void test_events_small(void **state)
{
    (void)state;
    roundtrip("ev_small.db", 10, 0);
}

static void test_events_many_pages(void **state)
{
    (void)state;
    roundtrip("ev_many.db", 200000, 0);
}

static void test_events_shuffled(void **state)
{
    (void)state;
    roundtrip("ev_shuffled.db", 50000, 1);
}

static void test_events_late(void **state)
{
    (void)state;
    roundtrip("ev_late.db", 50000, 2);
}

static void test_events_none(void **state)
{
    (void)state;
    mt_db_t *db = create("ev_none.db");
    int64_t count = -1;
    assert_int_equal(mt_db_seal_events(db, &count), 0);
    assert_int_equal(count, 0);
    mt_db_close(db);
    db = open_ro("ev_none.db");
    char buf[16];
    assert_string_equal(q_text(db, "PRAGMA integrity_check", buf, sizeof buf), "ok");
    assert_int_equal(q_int(db, "SELECT count(*) FROM event_data"), 0);
    mt_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_identity_and_lookups),
        cmocka_unit_test(test_create_replaces_existing_file),
        cmocka_unit_test(test_create_in_missing_dir_fails),
        cmocka_unit_test(test_close_leaves_only_the_database),
        cmocka_unit_test(test_open_missing),
        cmocka_unit_test(test_open_text_file),
        cmocka_unit_test(test_open_empty_file),
        cmocka_unit_test(test_open_directory),
        cmocka_unit_test(test_open_other_program_sqlite),
        cmocka_unit_test(test_open_other_version),
        cmocka_unit_test(test_open_damaged_header),
        cmocka_unit_test(test_meta),
        cmocka_unit_test(test_statements),
        cmocka_unit_test(test_events_none),
        cmocka_unit_test(test_events_small),
        cmocka_unit_test(test_events_many_pages),
        cmocka_unit_test(test_events_shuffled),
        cmocka_unit_test(test_events_late),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
