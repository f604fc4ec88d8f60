/* mt_db.c - SQLite access for the whole project (the only file that
 * includes sqlite3.h).
 *
 * Bulk loading: event_data rows do not pass through SQLite's INSERT at all;
 * mt_evstore writes the table's B-tree leaf pages straight into the
 * database file, after the pages the schema took, and mt_db_seal_events
 * completes the tree (a tenth of the cost per row).  So that SQLite writes
 * nothing to the file meanwhile, a database being recorded is served by an
 * in-memory SQLite database with the same schema; sealing copies its rows
 * into the file (ATTACH) and reopens the file.  The journal and
 * synchronous writes are off: a crash of the target cannot damage the file
 * (the collector survives it and finishes the database); an interrupted
 * collector leaves a valid file holding the schema only.
 */
#include "mt_db.h"

#include "mt_error.h"
#include "mt_event.h"
#include "mt_util.h"
#include "mt_schema_sql.h" /* generated: mt_schema_trace_sql, mt_schema_indexes_sql */

#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE_SIZE 4096 /* small tables stay small; event rows fill pages either way */
#define BULK_PRAGMAS                                                           \
    "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"                         \
    "PRAGMA locking_mode=EXCLUSIVE; PRAGMA cache_size=-32768;"

struct mt_db {
    char errbuf[512];     /* mt_db_errmsg's answer, fit for a terminal */
    sqlite3 *h;           /* the file; while recording, the in-memory stand-in */
    char *path;
    mt_evstore_t *events; /* bulk writer; NULL when reading or sealed */
    uint32_t events_root; /* event_data's root page in the file */
    uint32_t times_root;  /* event_times' */
};

struct mt_stmt {
    sqlite3_stmt *h;
    mt_db_t *db;
};

static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK: case SQLITE_DONE: case SQLITE_ROW: return 0;
    case SQLITE_NOMEM: return MT_ENOMEM;
    case SQLITE_FULL: return MT_EFULL;
    case SQLITE_NOTADB: return MT_ENOTDB;
    case SQLITE_CORRUPT: return MT_ECORRUPT;
    case SQLITE_CANTOPEN: return MT_ENOENT;
    case SQLITE_PERM: case SQLITE_READONLY: return MT_EPERM;
    case SQLITE_IOERR: return MT_EIO;
    default: return MT_ESQL;
    }
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    mt_text_sanitize(err);
}

static int configured;

static void configure_once(void)
{
    /* One connection per thread in this program: no SQLite mutexes, no
     * memory statistics (both measurable on the insert path). */
    if (!configured) {
        sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
        sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
        configured = 1;
    }
}

int mt_db_exec(mt_db_t *db, const char *sql)
{
    return map_rc(sqlite3_exec(db->h, sql, NULL, NULL, NULL));
}

const char *mt_db_errmsg(mt_db_t *db)
{
    if (!db || !db->h) return "no database";
    snprintf(db->errbuf, sizeof db->errbuf, "%s", sqlite3_errmsg(db->h));
    mt_text_sanitize(db->errbuf);
    return db->errbuf;
}

int mt_db_begin(mt_db_t *db) { return mt_db_exec(db, "BEGIN"); }

int mt_db_commit(mt_db_t *db) { return mt_db_exec(db, "COMMIT"); }

static int fill_lookups(mt_db_t *db)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->h, "INSERT INTO domains VALUES(?,?,?,?)", -1, &st, NULL);
    if (rc) return map_rc(rc);
#define X(code, name, layer, desc)                                       \
    sqlite3_bind_int(st, 1, code);                                       \
    sqlite3_bind_text(st, 2, #name, -1, SQLITE_STATIC);                  \
    sqlite3_bind_int(st, 3, layer);                                      \
    sqlite3_bind_text(st, 4, desc, -1, SQLITE_STATIC);                   \
    if ((rc = sqlite3_step(st)) != SQLITE_DONE) goto out;                \
    sqlite3_reset(st);
    MT_DOMAINS(X)
#undef X
    sqlite3_finalize(st);
    rc = sqlite3_prepare_v2(db->h, "INSERT INTO event_kinds VALUES(?,?,?,?,?,?,?)", -1, &st, NULL);
    if (rc) return map_rc(rc);
#define X(code, name, dom, flags, desc)                                  \
    sqlite3_bind_int(st, 1, code);                                       \
    sqlite3_bind_text(st, 2, #name, -1, SQLITE_STATIC);                  \
    sqlite3_bind_int(st, 3, MT_DOM_##dom);                               \
    sqlite3_bind_int(st, 4, ((flags) & MT_KF_ALLOC) != 0);               \
    sqlite3_bind_int(st, 5, ((flags) & MT_KF_FREE) != 0);                \
    sqlite3_bind_text(st, 6, desc, -1, SQLITE_STATIC);                   \
    if (mt_kind_release(code) >= 0) sqlite3_bind_int(st, 7, mt_kind_release(code)); \
    else sqlite3_bind_null(st, 7);                                       \
    if ((rc = sqlite3_step(st)) != SQLITE_DONE) goto out;                \
    sqlite3_reset(st);
    MT_KINDS(X)
#undef X
#define X(code, name, desc)                                              \
    sqlite3_bind_int(st, 1, MT_KIND_PYM_BASE + code);                    \
    sqlite3_bind_text(st, 2, #name, -1, SQLITE_STATIC);                  \
    sqlite3_bind_int(st, 3, MT_DOM_bundled);                             \
    sqlite3_bind_int(st, 4, 0);                                          \
    sqlite3_bind_int(st, 5, 0);                                          \
    sqlite3_bind_text(st, 6, desc, -1, SQLITE_STATIC);                   \
    if ((rc = sqlite3_step(st)) != SQLITE_DONE) goto out;                \
    sqlite3_reset(st);
    PYM_EVENTS(X)
#undef X
    sqlite3_finalize(st);
    rc = sqlite3_prepare_v2(db->h, "INSERT INTO marker_kinds VALUES(?,?,?)", -1, &st, NULL);
    if (rc) return map_rc(rc);
#define X(code, name, desc)                                              \
    sqlite3_bind_int(st, 1, code);                                       \
    sqlite3_bind_text(st, 2, #name, -1, SQLITE_STATIC);                  \
    sqlite3_bind_text(st, 3, desc, -1, SQLITE_STATIC);                   \
    if ((rc = sqlite3_step(st)) != SQLITE_DONE) goto out;                \
    sqlite3_reset(st);
    MT_MARKERS(X)
#undef X
    rc = SQLITE_DONE;
out:
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : map_rc(rc);
}

int mt_db_create(const char *path, mt_db_t **out, char *err, size_t errlen)
{
    configure_once();
    *out = NULL;
    mt_db_t *db = calloc(1, sizeof *db);
    if (!db) return MT_ENOMEM;
    int rc;
    if (unlink(path) != 0 && errno != ENOENT) {
        set_err(err, errlen, "cannot replace %s: %s", path, strerror(errno));
        free(db);
        return errno == EACCES || errno == EPERM ? MT_EPERM : MT_EIO;
    }
    rc = sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc) {
        set_err(err, errlen, "cannot create %s: %s", path, db->h ? sqlite3_errmsg(db->h) : "out of memory");
        rc = map_rc(rc);
        goto fail;
    }
    char pragmas[256];
    snprintf(pragmas, sizeof pragmas,
             "PRAGMA page_size=%d; " BULK_PRAGMAS "PRAGMA application_id=%u; PRAGMA user_version=%d;",
             PAGE_SIZE, MT_APPLICATION_ID, MT_SCHEMA_VERSION);
    rc = sqlite3_exec(db->h, pragmas, NULL, NULL, NULL);
    if (!rc) rc = sqlite3_exec(db->h, "BEGIN", NULL, NULL, NULL);
    if (!rc) rc = sqlite3_exec(db->h, mt_schema_trace_sql, NULL, NULL, NULL);
    if (!rc) rc = fill_lookups(db) ? SQLITE_ERROR : SQLITE_OK;
    if (!rc) rc = sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);
    int64_t root = 0, times_root = 0, npages = 0;
    if (!rc) {
        sqlite3_stmt *st;
        rc = sqlite3_prepare_v2(db->h,
                                "SELECT (SELECT rootpage FROM sqlite_schema WHERE name = 'event_data'),"
                                " (SELECT rootpage FROM sqlite_schema WHERE name = 'event_times'),"
                                " (SELECT page_count FROM pragma_page_count)",
                                -1, &st, NULL);
        if (!rc && sqlite3_step(st) == SQLITE_ROW) {
            root = sqlite3_column_int64(st, 0);
            times_root = sqlite3_column_int64(st, 1);
            npages = sqlite3_column_int64(st, 2);
        }
        sqlite3_finalize(st);
    }
    if (rc || root <= 0 || times_root <= 0 || npages <= 0) {
        set_err(err, errlen, "cannot create %s: %s", path, sqlite3_errmsg(db->h));
        rc = rc ? map_rc(rc) : MT_ECORRUPT;
        goto fail;
    }
    /* from here on the file belongs to the page writer until sealing */
    sqlite3_close(db->h);
    db->h = NULL;
    db->events_root = (uint32_t)root;
    db->times_root = (uint32_t)times_root;
    rc = sqlite3_open_v2(":memory:", &db->h, SQLITE_OPEN_READWRITE, NULL);
    if (!rc) rc = sqlite3_exec(db->h, mt_schema_trace_sql, NULL, NULL, NULL);
    if (rc) {
        set_err(err, errlen, "cannot create %s: %s", path, db->h ? sqlite3_errmsg(db->h) : "out of memory");
        rc = map_rc(rc);
        goto fail;
    }
    db->path = strdup(path);
    if (!db->path) {
        rc = MT_ENOMEM;
        goto fail;
    }
    rc = mt_evstore_new(path, PAGE_SIZE, (uint32_t)npages + 1, 1, &db->events);
    if (rc) {
        set_err(err, errlen, "cannot write %s: %s", path, mt_strerror(rc));
        goto fail;
    }
    *out = db;
    return 0;
fail:
    if (db->h) sqlite3_close(db->h);
    free(db->path);
    free(db);
    unlink(path);
    return rc ? rc : MT_EIO;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Compares a memtrace file's size with the size its header declares
 * (valid when the change counter equals version-valid-for):
 *   shorter  the file was cut (a copy that stopped, a full disk): damaged;
 *   longer   events are being written past the declared end: the trace is
 *            being recorded, or its recorder was killed (mt_evstore.h).
 * Other files are left to SQLite.  Returns 0 or MT_ECORRUPT with `err`. */
static int check_size(const char *path, uint64_t size, char *err, size_t errlen)
{
    unsigned char h[100];
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t got = fread(h, 1, sizeof h, f);
    fclose(f);
    if (got != sizeof h || memcmp(h, "SQLite format 3", 16) != 0 || be32(h + 68) != MT_APPLICATION_ID) return 0;
    uint64_t page = (uint32_t)h[16] << 8 | h[17];
    if (page == 1) page = 65536;
    uint64_t pages = be32(h + 28);
    if (!pages || be32(h + 24) != be32(h + 92)) return 0;
    if (size < pages * page) {
        set_err(err, errlen, "%s: truncated: %llu of its %llu bytes are there (copy it again, or record again)",
                path, (unsigned long long)size, (unsigned long long)(pages * page));
        return MT_ECORRUPT;
    }
    if (size > pages * page) {
        set_err(err, errlen,
                "%s: still being recorded, or its recording was cut off (memtrace killed): no events can be "
                "read until memtrace has finished it", path);
        return MT_ECORRUPT;
    }
    return 0;
}

int mt_db_open(const char *path, int flags, mt_db_t **out, char *err, size_t errlen)
{
    configure_once();
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return errno == EACCES ? MT_EPERM : MT_ENOENT;
    }
    if (!S_ISREG(sb.st_mode)) {
        set_err(err, errlen, "%s: not a regular file", path);
        return MT_ENOTDB;
    }
    if (sb.st_size == 0) {
        set_err(err, errlen, "%s: empty file, not a memtrace database", path);
        return MT_ENOTDB;
    }
    int src = check_size(path, (uint64_t)sb.st_size, err, errlen);
    if (src) return src;
    mt_db_t *db = calloc(1, sizeof *db);
    if (!db) return MT_ENOMEM;
    db->path = strdup(path);
    int oflags = flags & MT_DB_WRITE ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
    int rc = sqlite3_open_v2(path, &db->h, oflags, NULL);
    int ret = 0;
    if (rc) {
        set_err(err, errlen, "%s: %s", path, db->h ? sqlite3_errmsg(db->h) : "cannot open");
        ret = map_rc(rc);
        goto fail;
    }
    sqlite3_stmt *st = NULL;
    int64_t appid = -1, version = -1;
    rc = sqlite3_prepare_v2(db->h, "PRAGMA application_id", -1, &st, NULL);
    if (!rc && sqlite3_step(st) == SQLITE_ROW) appid = sqlite3_column_int64(st, 0);
    else rc = rc ? rc : sqlite3_errcode(db->h);
    sqlite3_finalize(st);
    if (!rc) {
        rc = sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &st, NULL);
        if (!rc && sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int64(st, 0);
        else rc = rc ? rc : sqlite3_errcode(db->h);
        sqlite3_finalize(st);
    }
    if (rc) {
        ret = map_rc(rc);
        if (ret == MT_ESQL || ret == MT_ENOTDB) ret = MT_ENOTDB;
        if (ret == MT_ECORRUPT)
            set_err(err, errlen, "%s: damaged, cannot be read (%s)", path, sqlite3_errmsg(db->h));
        else
            set_err(err, errlen, "%s: not a memtrace database (%s)", path, sqlite3_errmsg(db->h));
        goto fail;
    }
    if (appid != MT_APPLICATION_ID) {
        set_err(err, errlen, "%s: not a memtrace database (an SQLite file of another program)", path);
        ret = MT_ENOTDB;
        goto fail;
    }
    if (version != MT_SCHEMA_VERSION) {
        set_err(err, errlen,
                "%s: schema version %lld, this memtrace reads version %d: use the memtrace that wrote it",
                path, (long long)version, MT_SCHEMA_VERSION);
        ret = MT_EVERSION;
        goto fail;
    }
    sqlite3_exec(db->h, "PRAGMA cache_size=-65536; PRAGMA temp_store=MEMORY;", NULL, NULL, NULL);
    *out = db;
    return 0;
fail:
    sqlite3_close(db->h);
    free(db->path);
    free(db);
    return ret ? ret : MT_EIO;
}

void mt_db_close(mt_db_t *db)
{
    if (!db) return;
    if (db->events) mt_db_seal_events(db, NULL);
    mt_evstore_free(db->events);
    sqlite3_close(db->h);
    free(db->path);
    free(db);
}

int mt_db_meta_set_text(mt_db_t *db, const char *key, const char *value)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h, "INSERT OR REPLACE INTO meta VALUES(?,?)", -1, &st, NULL);
    if (rc) return map_rc(rc);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    if (value) sqlite3_bind_text(st, 2, value, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : map_rc(rc);
}

int mt_db_meta_set_int(mt_db_t *db, const char *key, int64_t value)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db->h, "INSERT OR REPLACE INTO meta VALUES(?,?)", -1, &st, NULL);
    if (rc) return map_rc(rc);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, value);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : map_rc(rc);
}

static int meta_get(mt_db_t *db, const char *key, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(db->h, "SELECT value FROM meta WHERE key = ?", -1, st, NULL);
    if (rc) return map_rc(rc);
    sqlite3_bind_text(*st, 1, key, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(*st);
    if (rc == SQLITE_ROW && sqlite3_column_type(*st, 0) != SQLITE_NULL) return 0;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? MT_ENOENT : map_rc(rc);
}

int mt_db_meta_get_text(mt_db_t *db, const char *key, char **out)
{
    sqlite3_stmt *st = NULL;
    *out = NULL;
    int rc = meta_get(db, key, &st);
    if (!rc) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        *out = strdup(v ? v : "");
        if (!*out) rc = MT_ENOMEM;
    } else if (rc == MT_ENOENT) {
        rc = 0;
    }
    sqlite3_finalize(st);
    return rc;
}

int mt_db_meta_get_int(mt_db_t *db, const char *key, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = meta_get(db, key, &st);
    if (!rc) *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

static int step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : map_rc(rc);
}

int mt_db_add_event(mt_db_t *db, const mt_db_event_t *ev)
{
    return db->events ? mt_evstore_add(db->events, ev) : MT_EINVAL;
}

int64_t mt_db_event_window_end(const mt_db_t *db)
{
    return db->events ? mt_evstore_window_end(db->events) : INT64_MAX;
}

int mt_db_event_admit(mt_db_t *db, int64_t seq) { return db->events ? mt_evstore_admit(db->events, seq) : 0; }

void mt_db_event_fold(mt_db_t *db, int on)
{
    if (db->events) mt_evstore_fold(db->events, on);
}

int mt_db_skip_seq(mt_db_t *db, int64_t seq)
{
    return db->events ? mt_evstore_skip(db->events, seq) : MT_EINVAL;
}

/* Inserts events that arrived after their place in the pages was written.
 * Such an event takes the time in effect at its place (event_times gets a
 * row for it only when it comes before every row there). */
static int insert_late(mt_db_t *db, const mt_db_event_t *ev, size_t n)
{
    if (!n) return 0;
    sqlite3_stmt *st, *tt = NULL;
    int rc = sqlite3_prepare_v2(db->h,
                                "INSERT INTO event_data(via, kind, thread, addr, size, stack, old_addr, failed, pool,"
                                " size_class, seq) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                                -1, &st, NULL);
    if (rc) return map_rc(rc);
    rc = sqlite3_prepare_v2(db->h,
                            "INSERT INTO event_times(seq, ts) SELECT ?1, ?2"
                            " WHERE NOT EXISTS (SELECT 1 FROM event_times WHERE seq <= ?1)",
                            -1, &tt, NULL);
    if (!rc) rc = sqlite3_exec(db->h, "BEGIN", NULL, NULL, NULL);
    for (size_t i = 0; i < n && !rc; i++) {
        const mt_db_event_t *e = &ev[i];
        if (e->via) sqlite3_bind_int64(st, 1, e->via - 1);
        else sqlite3_bind_null(st, 1);
        sqlite3_bind_int(st, 2, e->kind);
        sqlite3_bind_int64(st, 3, e->thread);
        sqlite3_bind_int64(st, 4, (int64_t)e->addr);
        if (e->size >= 0) sqlite3_bind_int64(st, 5, e->size);
        else sqlite3_bind_null(st, 5);
        if (e->stack) sqlite3_bind_int64(st, 6, e->stack);
        else sqlite3_bind_null(st, 6);
        if (e->old_addr) sqlite3_bind_int64(st, 7, (int64_t)e->old_addr);
        else sqlite3_bind_null(st, 7);
        if (e->failed) sqlite3_bind_int(st, 8, 1);
        else sqlite3_bind_null(st, 8);
        if (e->pool) sqlite3_bind_int64(st, 9, (int64_t)e->pool);
        else sqlite3_bind_null(st, 9);
        if (e->sclass) sqlite3_bind_int64(st, 10, (int64_t)e->sclass - 1);
        else sqlite3_bind_null(st, 10);
        sqlite3_bind_int64(st, 11, e->seq);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sqlite3_errcode(db->h);
        sqlite3_reset(st);
        if (rc) break;
        sqlite3_bind_int64(tt, 1, e->seq);
        sqlite3_bind_int64(tt, 2, e->ts);
        rc = sqlite3_step(tt) == SQLITE_DONE ? 0 : sqlite3_errcode(db->h);
        sqlite3_reset(tt);
    }
    sqlite3_finalize(st);
    sqlite3_finalize(tt);
    if (!rc) rc = sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);
    return map_rc(rc);
}

/* Copies every table the recording wrote from the in-memory stand-in into
 * the file, attached as "trace". */
static int copy_to_file(mt_db_t *db)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db->h, "ATTACH ?1 AS trace", -1, &st, NULL);
    if (!rc) {
        sqlite3_bind_text(st, 1, db->path, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sqlite3_errcode(db->h);
    }
    sqlite3_finalize(st);
    if (rc) return map_rc(rc);
    rc = sqlite3_exec(db->h, "PRAGMA trace.journal_mode=OFF; PRAGMA trace.synchronous=OFF; BEGIN", NULL, NULL,
                      NULL);
    if (!rc)
        rc = sqlite3_prepare_v2(db->h,
                                "SELECT name FROM main.sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
                                " AND name NOT IN ('event_data', 'event_times', 'domains', 'event_kinds', 'marker_kinds')",
                                -1, &st, NULL);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        char *sql = sqlite3_mprintf("INSERT INTO trace.\"%w\" SELECT * FROM main.\"%w\"",
                                    (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 0));
        rc = sql ? sqlite3_exec(db->h, sql, NULL, NULL, NULL) : SQLITE_NOMEM;
        sqlite3_free(sql);
    }
    sqlite3_finalize(st);
    if (!rc) rc = sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);
    else sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
    int drc = sqlite3_exec(db->h, "DETACH trace", NULL, NULL, NULL);
    return map_rc(rc ? rc : drc);
}

int mt_db_seal_events(mt_db_t *db, int64_t *count)
{
    if (!db->events) return 0;
    mt_evstore_t *ev = db->events;
    db->events = NULL; /* sealed, even if what follows fails */
    if (!sqlite3_get_autocommit(db->h)) sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);
    int ret = mt_evstore_splice(ev, db->events_root, db->times_root);
    if (!ret) ret = copy_to_file(db);
    /* the stand-in is done with; the file serves from now on */
    if (sqlite3_close(db->h) != SQLITE_OK) { /* a statement is still open: a caller's bug */
        mt_evstore_free(ev);
        return ret ? ret : MT_EINVAL;
    }
    db->h = NULL;
    int rc = sqlite3_open_v2(db->path, &db->h, SQLITE_OPEN_READWRITE, NULL);
    if (!rc) rc = sqlite3_exec(db->h, BULK_PRAGMAS, NULL, NULL, NULL);
    if (rc && !ret) ret = map_rc(rc);
    if (!ret) {
        size_t nlate;
        const mt_db_event_t *late = mt_evstore_late(ev, &nlate);
        ret = insert_late(db, late, nlate);
        if (!ret) ret = mt_db_meta_set_int(db, "late_events", (int64_t)nlate);
        if (!ret) ret = mt_db_meta_set_int(db, "window_stalls", mt_evstore_stalls(ev));
        if (!ret && mt_evstore_times_lost(ev)) ret = mt_db_meta_set_int(db, "times_lost", 1);
        if (count) *count = mt_evstore_count(ev) + (int64_t)nlate;
    }
    mt_evstore_free(ev);
    return ret;
}

int mt_db_salvage(mt_db_t *db, int64_t *count)
{
    if (!db->events || !mt_evstore_failed(db->events)) return mt_db_seal_events(db, count);
    /* the stand-in's tables go into the file: room for twice their pages */
    int64_t pages = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "PRAGMA page_count", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) pages = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    int rc = mt_evstore_make_room(db->events, (uint64_t)(pages + 16) * 2 * PAGE_SIZE);
    if (rc) return rc;
    return mt_db_seal_events(db, count);
}

int mt_db_build_indexes(mt_db_t *db)
{
    int rc = mt_db_seal_events(db, NULL);
    if (!rc) rc = mt_db_exec(db, mt_schema_indexes_sql);

    return rc;
}

/* ---- statements ---- */


int mt_stmt_prepare(mt_db_t *db, const char *sql, mt_stmt_t **out)
{
    *out = NULL;
    mt_stmt_t *st = calloc(1, sizeof *st);
    if (!st) return MT_ENOMEM;
    int rc = sqlite3_prepare_v2(db->h, sql, -1, &st->h, NULL);
    if (rc || !st->h) {
        sqlite3_finalize(st->h);
        free(st);
        return rc ? map_rc(rc) : MT_EINVAL; /* no statement: empty SQL */
    }
    st->db = db;
    *out = st;
    return 0;
}

int mt_stmt_step(mt_stmt_t *st)
{
    int rc = sqlite3_step(st->h);
    if (rc == SQLITE_ROW) return 1;
    if (rc == SQLITE_DONE) return 0;
    return map_rc(rc);
}

int mt_stmt_reset(mt_stmt_t *st) { return map_rc(sqlite3_reset(st->h)); }

void mt_stmt_finalize(mt_stmt_t *st)
{
    if (!st) return;
    sqlite3_finalize(st->h);
    free(st);
}

int mt_stmt_run(mt_stmt_t *st) { return step_reset(st->h); }

int mt_stmt_bind_int(mt_stmt_t *st, int idx, int64_t v) { return map_rc(sqlite3_bind_int64(st->h, idx, v)); }
int mt_stmt_bind_text(mt_stmt_t *st, int idx, const char *v)
{
    return map_rc(v ? sqlite3_bind_text(st->h, idx, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st->h, idx));
}
int mt_stmt_bind_textn(mt_stmt_t *st, int idx, const char *v, int len)
{
    return map_rc(v ? sqlite3_bind_text(st->h, idx, v, len, SQLITE_TRANSIENT) : sqlite3_bind_null(st->h, idx));
}
int mt_stmt_bind_blob(mt_stmt_t *st, int idx, const void *v, int len)
{
    return map_rc(sqlite3_bind_blob(st->h, idx, v, len, SQLITE_TRANSIENT));
}
int mt_stmt_bind_null(mt_stmt_t *st, int idx) { return map_rc(sqlite3_bind_null(st->h, idx)); }

int mt_stmt_columns(mt_stmt_t *st) { return sqlite3_column_count(st->h); }
const char *mt_stmt_column_name(mt_stmt_t *st, int col) { return sqlite3_column_name(st->h, col); }
int mt_stmt_column_type(mt_stmt_t *st, int col)
{
    switch (sqlite3_column_type(st->h, col)) {
    case SQLITE_INTEGER: return MT_COL_INT;
    case SQLITE_FLOAT: return MT_COL_FLOAT;
    case SQLITE_TEXT: return MT_COL_TEXT;
    case SQLITE_BLOB: return MT_COL_BLOB;
    default: return MT_COL_NULL;
    }
}
int64_t mt_stmt_int(mt_stmt_t *st, int col) { return sqlite3_column_int64(st->h, col); }
int64_t mt_stmt_int_or(mt_stmt_t *st, int col, int64_t dflt)
{
    return mt_stmt_column_type(st, col) == MT_COL_NULL ? dflt : mt_stmt_int(st, col);
}
double mt_stmt_double(mt_stmt_t *st, int col) { return sqlite3_column_double(st->h, col); }
const char *mt_stmt_text(mt_stmt_t *st, int col) { return (const char *)sqlite3_column_text(st->h, col); }
const void *mt_stmt_blob(mt_stmt_t *st, int col, int *len)
{
    const void *p = sqlite3_column_blob(st->h, col);
    *len = sqlite3_column_bytes(st->h, col);
    return p;
}
int mt_stmt_readonly(mt_stmt_t *st) { return sqlite3_stmt_readonly(st->h); }

int64_t mt_db_last_rowid(mt_db_t *db) { return sqlite3_last_insert_rowid(db->h); }

void mt_db_progress(mt_db_t *db, int every_ops, int (*cb)(void *), void *arg)
{
    sqlite3_progress_handler(db->h, cb ? every_ops : 0, cb, arg);
}

/* ---- event times ---- */

static void times_next(mt_times_t *t)
{
    int rc = mt_stmt_step(t->st);
    if (rc == 1) {
        t->next_seq = mt_stmt_int(t->st, 0);
        t->next_ts = mt_stmt_int(t->st, 1);
        return;
    }
    if (rc < 0 && !t->rc) t->rc = rc;
    t->next_seq = INT64_MAX;
}

int mt_times_open(mt_db_t *db, mt_times_t *t)
{
    *t = (mt_times_t){.next_seq = INT64_MAX};
    int rc = mt_stmt_prepare(db, "SELECT seq, ts FROM event_times ORDER BY seq", &t->st);
    if (!rc) times_next(t);
    return rc ? rc : t->rc;
}

void mt_times_step_(mt_times_t *t, int64_t seq)
{
    while (seq >= t->next_seq) {
        t->ts = t->next_ts;
        times_next(t);
    }
}

int mt_times_close(mt_times_t *t)
{
    mt_stmt_finalize(t->st);
    t->st = NULL;
    return t->rc;
}

/* ---- events in order ---- */

typedef struct {
    int64_t seq, thread;
    uint64_t addr;
    int kind, via;
} release_t;

struct mt_evread {
    mt_stmt_t *st;
    mt_times_t times;
    int have_row;      /* the row read ahead is in `row` */
    mt_db_event_t row;
    release_t *heap;   /* releases folded into rows already read, by seq */
    size_t nheap, capheap;
};

int mt_evread_open(mt_db_t *db, const char *where, mt_evread_t **out)
{
    *out = NULL;
    mt_evread_t *r = calloc(1, sizeof *r);
    if (!r) return MT_ENOMEM;
    char *sql = sqlite3_mprintf("SELECT seq, kind, thread, addr, size, stack, old_addr, failed, pool, size_class,"
                                " via, free_delta FROM event_data%s%s ORDER BY seq",
                                where ? " WHERE " : "", where ? where : "");
    int rc = sql ? mt_stmt_prepare(db, sql, &r->st) : MT_ENOMEM;
    sqlite3_free(sql);
    if (!rc) rc = mt_times_open(db, &r->times);
    if (rc) {
        mt_evread_close(r);
        return rc;
    }
    r->have_row = -1; /* not read yet */
    *out = r;
    return 0;
}

mt_stmt_t *mt_evread_stmt(mt_evread_t *r) { return r->st; }

static int read_row(mt_evread_t *r)
{
    int rc = mt_stmt_step(r->st);
    r->have_row = rc == 1;
    if (rc != 1) return rc;
    mt_stmt_t *st = r->st;
    mt_db_event_t *e = &r->row;
    memset(e, 0, sizeof *e);
    e->seq = mt_stmt_int(st, 0);
    e->kind = (int)mt_stmt_int(st, 1);
    e->thread = mt_stmt_int(st, 2);
    e->addr = (uint64_t)mt_stmt_int(st, 3);
    e->size = mt_stmt_int_or(st, 4, -1);
    e->stack = mt_stmt_int(st, 5);
    e->old_addr = (uint64_t)mt_stmt_int(st, 6);
    e->failed = mt_stmt_int(st, 7) != 0;
    e->pool = (uint64_t)mt_stmt_int(st, 8);
    e->sclass = mt_stmt_column_type(st, 9) == MT_COL_NULL ? 0 : (uint32_t)mt_stmt_int(st, 9) + 1;
    e->via = mt_stmt_column_type(st, 10) == MT_COL_NULL ? 0 : (int)mt_stmt_int(st, 10) + 1;
    e->free_delta = mt_stmt_int(st, 11);
    return 1;
}

static int heap_push(mt_evread_t *r, release_t v)
{
    if (r->nheap == r->capheap) {
        size_t cap = r->capheap ? 2 * r->capheap : 256;
        release_t *h = realloc(r->heap, cap * sizeof *h);
        if (!h) return MT_ENOMEM;
        r->heap = h;
        r->capheap = cap;
    }
    size_t i = r->nheap++;
    while (i && r->heap[(i - 1) / 2].seq > v.seq) {
        r->heap[i] = r->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    r->heap[i] = v;
    return 0;
}

static release_t heap_pop(mt_evread_t *r)
{
    release_t top = r->heap[0], last = r->heap[--r->nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= r->nheap) break;
        if (c + 1 < r->nheap && r->heap[c + 1].seq < r->heap[c].seq) c++;
        if (r->heap[c].seq >= last.seq) break;
        r->heap[i] = r->heap[c];
        i = c;
    }
    if (r->nheap) r->heap[i] = last;
    return top;
}

int mt_evread_next(mt_evread_t *r, mt_db_event_t *ev)
{
    if (r->have_row < 0) {
        int rc = read_row(r);
        if (rc < 0) return rc;
    }
    if (r->nheap && (!r->have_row || r->heap[0].seq < r->row.seq)) {
        release_t v = heap_pop(r);
        memset(ev, 0, sizeof *ev);
        ev->seq = v.seq;
        ev->kind = v.kind;
        ev->thread = v.thread;
        ev->addr = v.addr;
        ev->size = -1;
        ev->via = v.via;
    } else if (r->have_row) {
        *ev = r->row;
        if (ev->free_delta) {
            int k = mt_kind_release(ev->kind);
            int rc = k < 0 ? MT_ECORRUPT
                           : heap_push(r, (release_t){ev->seq + ev->free_delta, ev->thread, ev->addr, k, ev->via});
            if (rc) return rc;
        }
        int rc = read_row(r);
        if (rc < 0) return rc;
    } else {
        return r->times.rc;
    }
    ev->ts = mt_times_at(&r->times, ev->seq);
    return 1;
}

void mt_evread_close(mt_evread_t *r)
{
    if (!r) return;
    mt_stmt_finalize(r->st);
    mt_times_close(&r->times);
    free(r->heap);
    free(r);
}
