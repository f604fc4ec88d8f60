/* fuzz_evstore.c - fuzz target: the bulk event store (lib/mt_evstore.c)
 * against SQLite's own reader.  Events built from the input are written
 * through mt_db_add_event in a shuffled order, with some sequence numbers
 * declared as markers' (mt_db_skip_seq), sealed, and read back with SQL:
 * every event must come back exactly, in seq order, and the file must pass
 * PRAGMA integrity_check.
 *
 * Input: 2 bytes of shuffle window, then 33 bytes per event: ts (6), kind
 * (1), thread (2), addr (8), size (4, 0xffffffff = NULL), stack (3),
 * old_addr (4), flags (1: failed, skip this seq, via in bits 4-7), pool (2),
 * size class (2).  At most 4096 events.
 */
#include "mt_db.h"

#include "fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EV_BYTES 33
#define MAX_EVENTS 4096

static uint64_t take(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

static int64_t col_or(mt_stmt_t *st, int col, int64_t null_value)
{
    return mt_stmt_column_type(st, col) == MT_COL_NULL ? null_value : mt_stmt_int(st, col);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 + EV_BYTES) return 0;
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "%s/fuzz_evstore.%d.db", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm",
                           (int)getpid());
    size_t window = take(data, 2) % 64 + 1;
    size_t n = (size - 2) / EV_BYTES;
    if (n > MAX_EVENTS) n = MAX_EVENTS;
    mt_evrow_t *ev = calloc(n, sizeof *ev);
    int *skip = calloc(n, sizeof *skip);
    size_t *order = calloc(n, sizeof *order);
    CHECK(ev && skip && order);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = data + 2 + i * EV_BYTES;
        mt_evrow_t *e = &ev[i];
        e->seq = (int64_t)i + 1;
        e->ts = (int64_t)take(p, 6);
        e->kind = p[6];
        e->thread = (int64_t)take(p + 7, 2);
        e->addr = take(p + 9, 8);
        uint64_t sz = take(p + 17, 4);
        e->size = sz == 0xffffffffu ? -1 : (int64_t)sz;
        e->stack = (int64_t)take(p + 21, 3);
        e->old_addr = take(p + 24, 4);
        e->failed = p[28] & 1;
        skip[i] = (p[28] & 2) != 0;
        e->via = p[28] >> 4;
        e->pool = take(p + 29, 2);
        e->sclass = (uint32_t)take(p + 31, 2);
        order[i] = i;
    }
    /* shuffle within windows: events arrive out of order, as from threads */
    for (size_t i = 0; i < n; i++) {
        size_t j = i + (ev[i].ts % window);
        if (j >= n) j = n - 1;
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    char err[256];
    mt_db_t *db = NULL;
    int rc = mt_db_create(path, &db, err, sizeof err);
    CHECK(rc == 0);
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        rc = skip[i] ? mt_db_skip_seq(db, ev[i].seq) : mt_db_add_event(db, &ev[i]);
        CHECK(rc == 0);
    }
    int64_t count = -1;
    rc = mt_db_seal_events(db, &count);
    CHECK(rc == 0);
    mt_db_close(db);

    rc = mt_db_open(path, MT_DB_READONLY, &db, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    CHECK(rc == 0);
    mt_stmt_t *st;
    rc = mt_stmt_prepare(db, "PRAGMA integrity_check", &st);
    CHECK(rc == 0 && mt_stmt_step(st) == 1);
    CHECK(strcmp(mt_stmt_text(st, 0), "ok") == 0);
    mt_stmt_finalize(st);
    rc = mt_stmt_prepare(db,
                         "SELECT seq, (SELECT ts FROM event_times t WHERE t.seq <= e.seq ORDER BY t.seq DESC LIMIT 1),"
                         " kind, thread, addr, size, stack, old_addr, failed, pool, size_class, via"
                         " FROM event_data e ORDER BY seq",
                         &st);
    CHECK(rc == 0);
    size_t i = 0, rows = 0;
    int64_t time = INT64_MIN; /* times do not go back in seq order */
    while (mt_stmt_step(st) == 1) {
        while (i < n && skip[i]) i++;
        CHECK(i < n);
        const mt_evrow_t *e = &ev[i++];
        rows++;
        if (e->ts > time) time = e->ts;
        CHECK(mt_stmt_int(st, 0) == e->seq);
        CHECK(mt_stmt_int(st, 1) == time);
        CHECK(mt_stmt_int(st, 2) == e->kind);
        CHECK(mt_stmt_int(st, 3) == e->thread);
        CHECK((uint64_t)mt_stmt_int(st, 4) == e->addr);
        CHECK(col_or(st, 5, -1) == (e->size < 0 ? -1 : e->size));
        CHECK(col_or(st, 6, 0) == e->stack);
        CHECK((uint64_t)col_or(st, 7, 0) == e->old_addr);
        CHECK(col_or(st, 8, 0) == e->failed);
        CHECK((uint64_t)col_or(st, 9, 0) == e->pool);
        CHECK(col_or(st, 10, -1) == (int64_t)e->sclass - 1);
        CHECK(col_or(st, 11, -1) == (int64_t)e->via - 1); /* via holds domain + 1, 0: NULL */
    }
    while (i < n && skip[i]) i++;
    CHECK(i == n);
    CHECK((int64_t)rows == count);
    mt_stmt_finalize(st);
    mt_db_close(db);
    unlink(path);
    free(ev);
    free(skip);
    free(order);
    return 0;
}
