/* mt_db.h - the only door to SQLite.
 *
 * Place in the pipeline: the collector writes a trace through the bulk
 * writer below; the analyzer and `memtrace query` read it through the
 * statement wrapper.  mt_db.c is the only file that includes sqlite3.h.
 *
 * A trace is created with the schema of schemas/trace.sql (embedded at build
 * time) and PRAGMA user_version = MT_SCHEMA_VERSION.  Opening checks both
 * the file's identity and its version and refuses anything else with one
 * line in mt_db_errmsg().
 */
#ifndef MT_DB_H
#define MT_DB_H

#include <stddef.h>
#include <stdint.h>

#include "mt_evstore.h"

#define MT_SCHEMA_VERSION 4
#define MT_APPLICATION_ID 0x4d54524bu /* "MTRK": PRAGMA application_id */

typedef struct mt_db mt_db_t;
typedef struct mt_stmt mt_stmt_t;

/* Open flags */
#define MT_DB_READONLY 0
#define MT_DB_WRITE    1

/* Creates a new trace at `path` (an existing file is replaced), with the
 * schema and lookup tables, tuned for bulk loading.  On failure *out is
 * NULL, nothing is left at `path`, and `err` (if not NULL, size errlen) says
 * why in one line. */
int mt_db_create(const char *path, mt_db_t **out, char *err, size_t errlen);

/* Opens an existing trace.  Fails with MT_ENOENT, MT_ENOTDB, MT_EVERSION or
 * MT_ECORRUPT and a one-line message in `err`. */
int mt_db_open(const char *path, int flags, mt_db_t **out, char *err, size_t errlen);

/* Flushes buffered rows, closes.  NULL is fine. */
void mt_db_close(mt_db_t *db);

/* Last SQLite error text of this connection. */
const char *mt_db_errmsg(mt_db_t *db);

/* Runs one or more SQL statements with no result rows. */
int mt_db_exec(mt_db_t *db, const char *sql);

int mt_db_begin(mt_db_t *db);
int mt_db_commit(mt_db_t *db);

/* meta table */
int mt_db_meta_set_text(mt_db_t *db, const char *key, const char *value);
int mt_db_meta_set_int(mt_db_t *db, const char *key, int64_t value);
/* *out is malloc'ed (free it) or NULL when the key is absent. */
int mt_db_meta_get_text(mt_db_t *db, const char *key, char **out);
/* Returns MT_ENOENT when the key is absent. */
int mt_db_meta_get_int(mt_db_t *db, const char *key, int64_t *out);

/* ---- bulk writer (collector) ---- */

typedef mt_evrow_t mt_db_event_t;

/* Adds one event to event_data, in any order (see mt_evstore.h): events
 * are written as B-tree pages to a spool beside the database and spliced
 * into it by mt_db_seal_events.  Only on a database made by mt_db_create. */
int mt_db_add_event(mt_db_t *db, const mt_db_event_t *ev);
/* Declares a sequence number used by something other than an event. */
int mt_db_skip_seq(mt_db_t *db, int64_t seq);
/* One past the highest sequence number mt_db_add_event takes in place now
 * (mt_evstore_window_end); INT64_MAX when events do not go through the
 * bulk writer. */
int64_t mt_db_event_window_end(const mt_db_t *db);
/* mt_evstore_admit: makes room in the window for `seq`. */
int mt_db_event_admit(mt_db_t *db, int64_t seq);
/* mt_evstore_fold: whether releases are folded into their allocations'
 * rows from now on (on at the start). */
void mt_db_event_fold(mt_db_t *db, int on);

/* Moves the spooled events into the database: closes the connection,
 * splices the pages, reopens, inserts late events.  No statement of this
 * connection may be open.  Called by mt_db_build_indexes and mt_db_close;
 * does nothing the second time.  Returns the number of events through
 * `count` when not NULL. */
int mt_db_seal_events(mt_db_t *db, int64_t *count);

/* mt_db_seal_events for a recording whose event writes failed (disk full,
 * file size limit: mt_db_add_event returned MT_EFULL or MT_EIO): keeps the
 * events written before the failure, dropping the newest of them as far as
 * needed to make room for the rest of the database (the tables kept in
 * memory: meta, processes, threads, markers...).  Without a failure it is
 * mt_db_seal_events.  `count` (optional) gets the events kept. */
int mt_db_salvage(mt_db_t *db, int64_t *count);

/* Seals the events and builds the indexes of schemas/indexes.sql. */
int mt_db_build_indexes(mt_db_t *db);

/* ---- statements (everything else) ---- */

/* Prepares one statement.  Returns MT_ESQL with the message in
 * mt_db_errmsg() on a syntax error. */
int mt_stmt_prepare(mt_db_t *db, const char *sql, mt_stmt_t **out);
/* 1: a row is ready, 0: done, < 0: error (MT_ESQL, MT_ECORRUPT, MT_EFULL). */
int mt_stmt_step(mt_stmt_t *st);
int mt_stmt_reset(mt_stmt_t *st);
void mt_stmt_finalize(mt_stmt_t *st);
/* Executes a prepared statement that returns no rows, then resets it. */
int mt_stmt_run(mt_stmt_t *st);

/* Binding: index from 1; `mt_stmt_bind_null` for NULL. */
int mt_stmt_bind_int(mt_stmt_t *st, int idx, int64_t v);
int mt_stmt_bind_text(mt_stmt_t *st, int idx, const char *v); /* copied; NULL binds NULL */
int mt_stmt_bind_textn(mt_stmt_t *st, int idx, const char *v, int len); /* len bytes, no NUL needed */
int mt_stmt_bind_blob(mt_stmt_t *st, int idx, const void *v, int len);
int mt_stmt_bind_null(mt_stmt_t *st, int idx);

/* Column types */
enum { MT_COL_INT = 1, MT_COL_FLOAT = 2, MT_COL_TEXT = 3, MT_COL_BLOB = 4, MT_COL_NULL = 5 };

int mt_stmt_columns(mt_stmt_t *st);
const char *mt_stmt_column_name(mt_stmt_t *st, int col);
int mt_stmt_column_type(mt_stmt_t *st, int col);
int64_t mt_stmt_int(mt_stmt_t *st, int col);
/* The integer in `col`, or `dflt` when it is NULL. */
int64_t mt_stmt_int_or(mt_stmt_t *st, int col, int64_t dflt);
double mt_stmt_double(mt_stmt_t *st, int col);
/* Valid until the next step/reset/finalize; NULL for SQL NULL. */
const char *mt_stmt_text(mt_stmt_t *st, int col);
const void *mt_stmt_blob(mt_stmt_t *st, int col, int *len);
/* True when the statement does not write (for read-only query checks). */
int mt_stmt_readonly(mt_stmt_t *st);

/* ---- event times ----
 * event_data's rows carry no time: event_times has a row (seq, ts) where
 * it changes.  A pass over events in seq order reads their times with a
 * cursor over event_times (mt_evread does; so do the passes over kinds
 * that are never folded into rows). */
typedef struct {
    mt_stmt_t *st;
    int64_t ts;                /* time in effect (0 before the first row) */
    int64_t next_seq, next_ts; /* the row after it; next_seq INT64_MAX: none */
    int rc;                    /* the first error reading event_times */
} mt_times_t;

int mt_times_open(mt_db_t *db, mt_times_t *t);
void mt_times_step_(mt_times_t *t, int64_t seq); /* mt_times_at's way forward */
/* The time of event `seq`; seq must not decrease from call to call. */
static inline int64_t mt_times_at(mt_times_t *t, int64_t seq)
{
    if (seq >= t->next_seq) mt_times_step_(t, seq);
    return t->ts;
}
/* Ends the cursor; returns the first error it met, or 0. */
int mt_times_close(mt_times_t *t);

/* ---- events in order ----
 * Every event in seq order with its time, the releases stored in their
 * allocations' rows (event_data.free_delta) among them as events of their
 * own.  `where` (NULL: all) is a condition on event_data's columns; its
 * parameters are bound on mt_evread_stmt() before the first
 * mt_evread_next().  A release stored in a row comes with that row: a
 * condition on kind must take a release kind with its allocating kinds,
 * and one on seq (an upper bound) must be checked again by the caller. */
typedef struct mt_evread mt_evread_t;
int mt_evread_open(mt_db_t *db, const char *where, mt_evread_t **out);
mt_stmt_t *mt_evread_stmt(mt_evread_t *r);
/* 1: *ev is the next event (size < 0, stack 0, old_addr 0, via 0, pool 0,
 * sclass 0 for NULL, as mt_db_event_t has them), 0: no more, < 0: error. */
int mt_evread_next(mt_evread_t *r, mt_db_event_t *ev);
void mt_evread_close(mt_evread_t *r);

/* Last inserted rowid on this connection. */
int64_t mt_db_last_rowid(mt_db_t *db);

/* Progress callback invoked about every `every_ops` VM steps while a long
 * statement runs; return non-zero to interrupt.  NULL removes it. */
void mt_db_progress(mt_db_t *db, int every_ops, int (*cb)(void *), void *arg);

#endif
