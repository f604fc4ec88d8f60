/* derive.c - derived tables stored in the trace, built once: `lifetimes`,
 * one row per block of every layer from its allocation to its end, so that
 * questions about lifetimes, leaks and realloc chains become plain SQL.
 *
 * Place in the pipeline: analyzer.  Built by `memtrace derive DB`, or
 * lazily by `memtrace query` the first time a statement names a derived
 * table.  One pass over event_data in seq order; each live block is kept
 * in a map (process, layer, address) -> its allocation, and written when
 * it ends (free, munmap, the old block of a realloc or mremap, an
 * allocation at its address whose free was not seen) or, still live, at
 * the end.  The table and its indexes are created in one transaction:
 * another reader sees either nothing or all of it.
 */
#define _GNU_SOURCE /* strcasestr */
#include "mt_analyzer.h"

#include "keymap.h"
#include "mt_db.h"
#include "mt_error.h"
#include "mt_event.h"
#include "progress.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DERIVE_SQL                                                                                    \
    "CREATE TABLE lifetimes (\n"                                                                      \
    "    process_id  INTEGER NOT NULL,\n"                                                              \
    "    layer       INTEGER NOT NULL,  -- domains.id\n"                                               \
    "    addr        INTEGER NOT NULL,\n"                                                              \
    "    size        INTEGER,\n"                                                                       \
    "    alloc_seq   INTEGER NOT NULL,  -- the event that created the block\n"                         \
    "    alloc_ts    INTEGER NOT NULL,\n"                                                              \
    "    alloc_kind  INTEGER NOT NULL,\n"                                                              \
    "    thread      INTEGER NOT NULL,  -- threads.id of the allocating thread\n"                      \
    "    stack       INTEGER,           -- stacks.id of the allocation\n"                               \
    "    end_seq     INTEGER,           -- the event that ended it; NULL: live when the trace ended\n"  \
    "    end_ts      INTEGER,\n"                                                                       \
    "    end_kind    INTEGER,           -- NULL also when its free was never seen (replaced)\n"         \
    "    realloc_of  INTEGER            -- alloc_seq of the block a realloc/mremap replaced with this\n" \
    ");\n"

typedef struct {
    int64_t size, seq, ts, thread, stack, realloc_of;
    int kind;
} blk_t;

typedef struct {
    mt_keymap_t live;  /* (process << 8 | layer, addr) -> index + 1 */
    blk_t *b;
    uint32_t *freelist;
    size_t n, cap, nfree;
    mt_stmt_t *ins;
    int64_t *thread_proc; /* threads.id -> processes.id */
    size_t nthreads;
    int64_t rows;
} derive_t;

static int emit(derive_t *d, int64_t key, uint64_t addr, const blk_t *b, int64_t end_seq, int64_t end_ts,
                int end_kind)
{
    mt_stmt_t *st = d->ins;
    mt_stmt_bind_int(st, 1, key >> 8);
    mt_stmt_bind_int(st, 2, key & 0xff);
    mt_stmt_bind_int(st, 3, (int64_t)addr);
    if (b->size >= 0) mt_stmt_bind_int(st, 4, b->size);
    else mt_stmt_bind_null(st, 4);
    mt_stmt_bind_int(st, 5, b->seq);
    mt_stmt_bind_int(st, 6, b->ts);
    mt_stmt_bind_int(st, 7, b->kind);
    mt_stmt_bind_int(st, 8, b->thread);
    if (b->stack) mt_stmt_bind_int(st, 9, b->stack);
    else mt_stmt_bind_null(st, 9);
    if (end_seq >= 0) {
        mt_stmt_bind_int(st, 10, end_seq);
        mt_stmt_bind_int(st, 11, end_ts);
    } else {
        mt_stmt_bind_null(st, 10);
        mt_stmt_bind_null(st, 11);
    }
    if (end_kind >= 0) mt_stmt_bind_int(st, 12, end_kind);
    else mt_stmt_bind_null(st, 12);
    if (b->realloc_of) mt_stmt_bind_int(st, 13, b->realloc_of);
    else mt_stmt_bind_null(st, 13);
    d->rows++;
    return mt_stmt_run(st);
}

/* Ends the live block (key, addr), if any; returns its alloc_seq (0: none). */
static int end_block(derive_t *d, int64_t key, uint64_t addr, int64_t seq, int64_t ts, int kind, int64_t *was)
{
    *was = 0;
    uint32_t v = mt_keymap_del(&d->live, key, (int64_t)addr);
    if (!v) return 0;
    blk_t *b = &d->b[v - 1];
    *was = b->seq;
    d->freelist[d->nfree++] = v - 1;
    return emit(d, key, addr, b, seq, ts, kind);
}

static int add_block(derive_t *d, int64_t key, uint64_t addr, const blk_t *nb)
{
    uint32_t ix;
    if (d->nfree) {
        ix = d->freelist[--d->nfree];
    } else {
        if (d->n == d->cap) {
            size_t cap = d->cap ? 2 * d->cap : 4096;
            blk_t *b = realloc(d->b, cap * sizeof *b);
            if (!b) return MT_ENOMEM;
            d->b = b;
            uint32_t *f = realloc(d->freelist, cap * sizeof *f);
            if (!f) return MT_ENOMEM;
            d->freelist = f;
            d->cap = cap;
        }
        ix = (uint32_t)d->n++;
    }
    d->b[ix] = *nb;
    return mt_keymap_put(&d->live, key, (int64_t)addr, ix + 1);
}

static int load_threads(mt_db_t *db, derive_t *d)
{
    mt_stmt_t *st;
    int rc = mt_stmt_prepare(db, "SELECT id, process_id FROM threads ORDER BY id", &st);
    while (!rc && (rc = mt_stmt_step(st)) == 1) {
        int64_t id = mt_stmt_int(st, 0);
        if (id < 0 || id > 100000000) continue;
        if ((size_t)id >= d->nthreads) {
            size_t n = (size_t)id + 1024;
            int64_t *p = realloc(d->thread_proc, n * sizeof *p);
            if (!p) {
                rc = MT_ENOMEM;
                break;
            }
            memset(p + d->nthreads, 0, (n - d->nthreads) * sizeof *p);
            d->thread_proc = p;
            d->nthreads = n;
        }
        d->thread_proc[id] = mt_stmt_int(st, 1);
        rc = 0;
    }
    mt_stmt_finalize(st);
    return rc < 0 ? rc : 0;
}

/* Builds the lifetimes table in `db` (opened for writing). */
static int build(mt_db_t *db, const char *progress, int64_t *rows)
{
    derive_t d;
    memset(&d, 0, sizeof d);
    mt_evread_t *sel = NULL;
    mt_progress_t prog;
    int rc = mt_progress_start(&prog, progress, db);
    if (!rc) rc = load_threads(db, &d);
    if (!rc) rc = mt_db_begin(db);
    if (!rc) rc = mt_db_exec(db, DERIVE_SQL);
    if (!rc)
        rc = mt_stmt_prepare(db, "INSERT INTO lifetimes VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)", &d.ins);
    if (!rc) rc = mt_evread_open(db, NULL, &sel);
    mt_db_event_t ev;
    while (!rc && (rc = mt_evread_next(sel, &ev)) == 1) {
        rc = 0;
        int kind = ev.kind;
        unsigned fl = mt_kind_flags(kind);
        if (!(fl & (MT_KF_ALLOC | MT_KF_FREE)) || ev.failed) continue;
        int64_t seq = ev.seq, ts = ev.ts, thread = ev.thread;
        uint64_t addr = ev.addr, old = ev.old_addr;
        int64_t proc = thread >= 0 && (size_t)thread < d.nthreads ? d.thread_proc[thread] : 0;
        int64_t key = proc << 8 | (mt_kind_domain(kind) & 0xff);
        int resize = (fl & MT_KF_ALLOC) && (fl & MT_KF_FREE);
        int64_t replaced = 0, dummy;
        if (fl & MT_KF_FREE) {
            uint64_t victim = resize ? old : addr;
            if (victim && (rc = end_block(&d, key, victim, seq, ts, kind, &replaced))) break;
        }
        if ((fl & MT_KF_ALLOC) && addr) {
            /* an allocation at a live address: that block's end was not seen */
            if ((rc = end_block(&d, key, addr, seq, ts, -1, &dummy))) break;
            blk_t nb = {ev.size, seq, ts, thread, ev.stack, replaced, kind};
            if ((rc = add_block(&d, key, addr, &nb))) break;
        }
        if ((seq & 0xffff) == 0) mt_progress_tick(&prog, seq);
    }
    mt_evread_close(sel);
    /* the blocks still live when the trace ended */
    for (size_t i = 0; rc >= 0 && d.live.bits && i < (size_t)1 << d.live.bits; i++) {
        const mt_kslot_t *s = &d.live.slots[i];
        if (s->val && (rc = emit(&d, s->a, (uint64_t)s->b, &d.b[s->val - 1], -1, 0, -1))) break;
    }
    if (rc > 0) rc = 0;
    mt_stmt_finalize(d.ins);
    if (!rc)
        rc = mt_db_exec(db, "CREATE INDEX lifetimes_alloc ON lifetimes(alloc_seq);"
                            "CREATE INDEX lifetimes_stack ON lifetimes(process_id, layer, stack);");
    if (!rc) rc = mt_db_commit(db);
    else mt_db_exec(db, "ROLLBACK");
    mt_progress_end(&prog);
    *rows = d.rows;
    mt_keymap_free(&d.live);
    free(d.b);
    free(d.freelist);
    free(d.thread_proc);
    return rc;
}

static int has_table(mt_db_t *db, const char *name, int *yes)
{
    mt_stmt_t *st;
    *yes = 0;
    int rc = mt_stmt_prepare(db, "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", &st);
    if (rc) return rc;
    mt_stmt_bind_text(st, 1, name);
    *yes = (rc = mt_stmt_step(st)) == 1;
    mt_stmt_finalize(st);
    return rc < 0 ? rc : 0;
}

int mt_derive_if_needed(const char *path, const char *sql, const char *cmd)
{
    /* a word "lifetimes" in the statement: build it if the trace lacks it */
    const char *p = sql;
    int named = 0;
    while (!named && (p = strcasestr(p, "lifetimes")) != NULL) {
        int before = p == sql || !(p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z') || (p[-1] >= 'A' && p[-1] <= 'Z') ||
                                   (p[-1] >= '0' && p[-1] <= '9'));
        char c = p[9];
        int after = !(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'));
        named = before && after;
        p += 9;
    }
    if (!named) return 0;
    mt_db_t *db = NULL;
    char err[512];
    if (mt_db_open(path, MT_DB_READONLY, &db, err, sizeof err)) return 0; /* the query reports it */
    int yes = 0;
    int rc = has_table(db, "lifetimes", &yes);
    mt_db_close(db);
    if (rc || yes) return 0;
    if (mt_db_open(path, MT_DB_WRITE, &db, err, sizeof err)) {
        fprintf(stderr, "memtrace %s: the lifetimes table is not in %s and it cannot be written (%s): run "
                        "memtrace derive on a writable copy\n", cmd, path, err);
        return 1;
    }
    int64_t rows = 0;
    char label[64];
    snprintf(label, sizeof label, "memtrace %s: building lifetimes", cmd);
    rc = build(db, label, &rows);
    if (rc) fprintf(stderr, "memtrace %s: building lifetimes in %s failed: %s (%s)\n", cmd, path, mt_strerror(rc),
                    mt_db_errmsg(db));
    mt_db_close(db);
    return rc ? 1 : 0;
}

void mt_usage_derive(FILE *out)
{
    fprintf(out,
            "usage: memtrace derive [--force] DB\n"
            "\n"
            "Builds the derived table `lifetimes` in the trace: one row per block of\n"
            "every layer (C library, OS mappings, the CPython domains), from the event\n"
            "that created it to the one that ended it, so lifetimes, leaks and realloc\n"
            "chains become plain SQL (docs/schema.md).  One pass over the events; the\n"
            "table and its indexes are stored in the trace, so later queries are\n"
            "instant.  `memtrace query` builds it by itself the first time a statement\n"
            "names it.\n"
            "\n"
            "Options:\n"
            "  --force     rebuild it when it exists\n"
            "  -h, --help  this text\n"
            "\n"
            "Exit status: 0 done (or already there), 1 the trace cannot be read or\n"
            "written, 2 usage error.\n");
}

int mt_cmd_derive(int argc, char **argv)
{
    const char *path = NULL;
    int force = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            mt_usage_derive(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--force")) force = 1;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "memtrace derive: unknown option '%s' (usage: memtrace derive [--force] DB)\n", argv[i]);
            return 2;
        } else if (!path) path = argv[i];
        else {
            fprintf(stderr, "memtrace derive: one DB only (usage: memtrace derive [--force] DB)\n");
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "memtrace derive: missing DB (usage: memtrace derive [--force] DB)\n");
        return 2;
    }
    mt_db_t *db = NULL;
    char err[512];
    if (mt_db_open(path, MT_DB_WRITE, &db, err, sizeof err)) {
        fprintf(stderr, "memtrace derive: %s\n", err);
        return 1;
    }
    int yes = 0, rc = has_table(db, "lifetimes", &yes);
    if (!rc && yes && force) rc = mt_db_exec(db, "DROP TABLE lifetimes");
    int64_t rows = 0;
    if (!rc && (!yes || force)) rc = build(db, "memtrace derive: reading events", &rows);
    if (rc) fprintf(stderr, "memtrace derive: %s: %s (%s)\n", path, mt_strerror(rc), mt_db_errmsg(db));
    else if (yes && !force) printf("lifetimes is already in %s\n", path);
    else printf("lifetimes: %lld blocks in %s\n", (long long)rows, path);
    mt_db_close(db);
    return rc ? 1 : 0;
}
