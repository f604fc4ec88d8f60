/* mt_evstore.h - the bulk event store: writes the event_data table's B-tree
 * pages directly, in SQLite's file format, at memory speed.
 *
 * Why: SQLite's own INSERT path costs about 0.5 us per row; a traced program
 * makes tens of millions of events.  The table is append-only and keyed by
 * seq, which is exactly the case where a B-tree can be built bottom-up:
 * leaf pages filled in key order, then interior pages over them.
 *
 * How:
 *   1. mt_evstore_add() takes events in any order.  A ring indexed by seq
 *      puts them back in order (sequence numbers are dense: every number is
 *      used once, by an event or by a marker passed to mt_evstore_skip()).
 *      An event older than what was already written goes to a "late" list.
 *   2. In-order events are encoded as table-leaf cells and packed into
 *      pages, which are written straight into the database file after its
 *      last page (SQLite itself writes nothing to the file meanwhile: see
 *      mt_db.c).
 *   3. The interior pages are built as the leaves are: one open page per
 *      level; a finished leaf is a child of the lowest level, a full
 *      interior page is written at the next page number (between the
 *      leaves) and becomes a child of the level above.  So the store's
 *      memory does not grow with the table: a few pages per level.
 *   3a. The time is not in event_data's rows: event_times gets a row
 *      (seq, ts) where it changes (times are made non-decreasing in seq
 *      order, and records carry a clock that moves every 100 us, so a row
 *      serves hundreds of events).  Those rows go to a spool file, and
 *      event_times is built from it after event_data, the same way.
 *   4. mt_evstore_splice() completes the open pages upwards, puts the top
 *      page at the table's root page number and updates the page count in
 *      the database header.  Until then the header still says the file
 *      ends before the new pages, so an interrupted recording leaves a
 *      valid database without them.  After a write error the levels are
 *      rebuilt from the pages the file kept (mt_evstore_make_room drops
 *      the newest).
 *
 * On-disk formats written here (https://www.sqlite.org/fileformat2.html):
 *
 *   table leaf page            table interior page
 *   off size meaning           off size meaning
 *   0   1    0x0D              0   1    0x05
 *   1   2    first freeblock=0 1   2    first freeblock=0
 *   3   2    number of cells   3   2    number of cells
 *   5   2    content start     5   2    content start
 *   7   1    fragmented=0      7   1    fragmented=0
 *   8   2n   cell pointers     8   4    right-most child page
 *                              12  2n   cell pointers
 *   cell: varint payload size, cell: 4-byte child page,
 *         varint rowid, record        varint largest rowid in child
 *
 * Records omit trailing NULL columns (legal: SQLite reads absent trailing
 * columns as their default), which keeps a free() row at about 16 bytes
 * with its cell pointer.
 */
#ifndef MT_EVSTORE_H
#define MT_EVSTORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mt_evstore mt_evstore_t;

/* One row of event_data (see schemas/trace.sql for the column order), and
 * its time (for event_times). */
typedef struct {
    int64_t seq, ts;
    int kind;          /* mt_kind_t */
    int64_t thread;    /* threads.id */
    uint64_t addr;
    int64_t size;      /* < 0: NULL */
    int64_t stack;     /* 0: NULL */
    uint64_t old_addr; /* 0: NULL */
    int failed;
    uint64_t pool;     /* bundled-allocator events: the pool; 0: NULL */
    uint32_t sclass;   /* their size class + 1; 0: NULL */
    int via;           /* domain of the enclosing higher-layer call + 1; 0: NULL */
    int64_t process;   /* processes.id (not stored: releases pair with allocations
                        * of their own process) */
    int64_t free_delta; /* set by the store: the block's release, folded into
                         * this row, came free_delta numbers later; 0: NULL */
} mt_evrow_t;

/* Creates a store writing leaves into the database file `db_path` from
 * page number `first_page` on (one past its last page), with pages of
 * `page_size` bytes (512..65536, a power of two, the database's).
 * `first_seq` (at least 1) is the lowest sequence number that will occur. */
int mt_evstore_new(const char *db_path, uint32_t page_size, uint32_t first_page, int64_t first_seq,
                   mt_evstore_t **out);

/* Adds an event (any order).  Fails only on I/O errors (MT_EIO, MT_EFULL). */
int mt_evstore_add(mt_evstore_t *s, const mt_evrow_t *ev);

/* One past the highest seq that can be placed now without stepping over a
 * gap still open at the bottom of the reorder window (an event with a seq
 * at or above it forces the window forward, and the missing events then
 * arrive "late"). */
int64_t mt_evstore_window_end(const mt_evstore_t *s);

/* Moves the window so that `seq` fits in it: what the ring holds below
 * seq - window is written, the numbers missing there are given up (an
 * event that comes for one later goes in "late").  For a caller that
 * knows no published event fills the gap. */
int mt_evstore_admit(mt_evstore_t *s, int64_t seq);

/* Folding releases into their allocations' rows (on at the start) costs
 * the store about a quarter more time an event (look-ups in a 2 MiB
 * index, writes back into the batch).  Turned off, every event gets its
 * own row from now on; the events stored are the same. */
void mt_evstore_fold(mt_evstore_t *s, int on);

/* Declares that `seq` belongs to no event (it was used by a marker). */
int mt_evstore_skip(mt_evstore_t *s, int64_t seq);

/* Writes everything still buffered as leaf pages.  After this, only
 * mt_evstore_splice, mt_evstore_late and mt_evstore_free may be called. */
int mt_evstore_flush(mt_evstore_t *s);

/* Events that arrived after their place was written; the caller inserts
 * them through SQLite.  Valid until mt_evstore_free. */
const mt_evrow_t *mt_evstore_late(mt_evstore_t *s, size_t *n);

/* Times the window stepped over a number that no event had (taken and
 * never published, by a thread that died or a bug): each held up to a
 * window of events in the ring first. */
int64_t mt_evstore_stalls(const mt_evstore_t *s);

/* Number of events stored in pages (late ones excluded). */
int64_t mt_evstore_count(mt_evstore_t *s);

/* After a write error (disk full, file size limit) the store takes no more
 * events; the leaves written before it are kept, and mt_evstore_flush and
 * mt_evstore_splice complete the table with them.  Returns that error, or
 * 0 while none happened. */
int mt_evstore_failed(mt_evstore_t *s);

/* After a write error: drops the newest pages until `bytes` more, and
 * room for the interior pages, can be allocated at the end of the file,
 * and truncates the file there.  0 when there is room (or
 * no error happened), MT_EFULL when not even an empty table leaves room. */
int mt_evstore_make_room(mt_evstore_t *s, uint64_t bytes);

/* Completes the table in the database file, with its root at page `root`
 * (currently an empty leaf), then builds event_times after it with its
 * root at `times_root` (an empty leaf too; 0: no times table).  No SQLite
 * connection may write the file meanwhile.  Returns 0 or MT_EIO /
 * MT_EFULL / MT_ECORRUPT. */
int mt_evstore_splice(mt_evstore_t *s, uint32_t root, uint32_t times_root);

/* True when event_times could not be written (its spool file or its
 * pages): the table is then empty. */
int mt_evstore_times_lost(const mt_evstore_t *s);

/* Frees the store (the database file stays as it is). */
void mt_evstore_free(mt_evstore_t *s);

/* Encodes one event as a table-leaf cell into buf (at least 128 bytes).
 * Returns the cell size.  Exposed for unit tests. */
size_t mt_evstore_encode_cell(const mt_evrow_t *ev, uint8_t *buf);

#endif
