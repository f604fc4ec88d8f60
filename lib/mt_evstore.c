/* mt_evstore.c - event_data written as SQLite B-tree pages (see mt_evstore.h
 * for the algorithm and the page formats). */
#define _GNU_SOURCE
#include "mt_evstore.h"

#include "mt_error.h"
#include "mt_event.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH_BYTES (1u << 21) /* leaves are written 2 MiB at a time */
#define RING_BITS 18
#define RING_SIZE (1u << RING_BITS)
#define RING_EMPTY 0 /* sequence numbers start at 1: the ring needs no filling,
                       * its pages are touched only where events go through it */

#define MAX_LEVELS 16 /* interior levels: hundreds of children a page, far more than enough */

/* One interior level of the B-tree, built while the leaves are written:
 * the page being filled, whose last child is kept as the right-most
 * pointer (not a cell yet), and the full page before it, held back until
 * the open page has a second child, so that at the end a lone child can
 * still take a cell of it (every interior page needs a cell). */
typedef struct {
    uint8_t *open;
    uint32_t ncells, content, nchild;
    uint32_t right;      /* the open page's last child, and its largest key */
    int64_t right_key;
    uint8_t *done;       /* the held-back full page (has_done) */
    uint32_t done_ncells, done_content, done_right;
    int64_t done_key;
    int has_done;
} level_t;

typedef struct {
    int64_t seq, ts;
} tick_t;
#define SPOOL_TICKS 4096u /* event_times rows buffered before the spool file gets them */

/* Folding.  A release (free, PyMem_RawFree, PyMem_Free, PyObject_Free)
 * that carries nothing but its block is stored in its allocation's row, as
 * free_delta (its seq minus the allocation's), while that row is still in
 * the write batch (up to 2 MiB of pages not yet written, some 100,000
 * rows): the same thread, the same via, no stack.  For that, an
 * allocation's row is written with free_delta 0 in three bytes, which the
 * release overwrites in place.  The index of those rows: an entry a block,
 * by its address, domain and process (a new allocation at an address takes
 * the entry over, a release removes it), direct-mapped: a block whose
 * entry another took is not found, and its release is stored as its own
 * row, which is never wrong.  (Rows held back in a FIFO until their
 * release came instead cost the collector half again its time on
 * py_lists' stream, against a quarter: the FIFO's copies.) */
#define FOLD_BITS 16
#define FOLD_ENTRIES (1u << FOLD_BITS) /* 32 bytes each: 2 MiB */
#define DELTA_MAX 0x7fffff /* free_delta's three bytes: a signed 24-bit integer */
typedef struct {
    uint64_t addr;
    uint32_t seq;    /* the allocation's, modulo 2^32 */
    uint32_t at;     /* where its free_delta's three bytes are, in the batch */
    uint32_t gen;    /* the batch it is in (mt_evstore_t.gen); 0: empty */
    uint32_t tag;    /* process << 5 | release kind */
    uint32_t thread;
    int32_t via;
} fold_ent_t;

typedef struct {
    int64_t seq; /* the slot's seq, or RING_EMPTY */
    int skip;    /* a marker used this seq: no event */
    mt_evrow_t ev;
} slot_t;

struct mt_evstore {
    uint32_t first_page;    /* page number of the first leaf in the database */
    int fd;
    uint32_t page_size;
    slot_t *ring;
    size_t nring;           /* occupied slots: 0 lets in-order events skip the ring */
    int64_t ring_end;       /* above the largest seq ever put in the ring (flush) */
    int64_t base;           /* next seq to write */
    uint8_t *page;          /* one page read back from the file (rebuilding levels, splicing) */
    uint8_t *batch;         /* pages not yet written to the database; the leaf under
                             * construction is built in place at its next page */
    uint32_t nbatch, batch_cap; /* pages in batch, capacity in pages */
    uint32_t ncells, content; /* cells in page, start of cell content */
    int64_t page_max_rowid;
    uint32_t next_page;     /* page number of the next page finished (leaf or interior) */
    uint32_t durable_end;   /* pages before it are in the file */
    int64_t batch_count;    /* events in the leaves of batch */
    int64_t durable_count;  /* events in the leaves in the file */
    uint32_t rebuild_end;   /* rebuilding the levels after a failure: pages before it exist */
    level_t lv[MAX_LEVELS];
    int failed;             /* the first write error: recording has stopped */
    mt_evrow_t *late;
    size_t nlate, caplate;
    int64_t stalls;         /* times a number no event had made the window step over it */
    int64_t count;
    int flushed;
    /* event_times: a row where the time changes, spooled to an unlinked
     * file in the database's directory and built after event_data */
    char *dir;              /* the database's directory (for the spool) */
    int64_t last_ts;        /* time of the last event written (INT64_MIN: none yet) */
    tick_t *ticks;          /* the spool's unwritten tail */
    uint32_t nticks;
    int spool_fd;           /* -1 until the first SPOOL_TICKS rows are written */
    uint64_t spooled;       /* rows in the spool file */
    int times_lost;         /* the spool could not be written: no times at all */
    fold_ent_t *fold;       /* the rows a release may still be folded into */
    uint32_t gen;           /* the batch's generation: one more at each write */
    uint32_t leaf_events;   /* events in the leaf under construction (rows + folded releases) */
    int no_fold;            /* folding turned off (mt_evstore_fold) */
};

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* SQLite varint: big-endian 7 bits per byte, 9th byte holds 8 bits. */
static size_t put_varint(uint8_t *p, uint64_t v)
{
    if (v <= 0x7f) {
        p[0] = (uint8_t)v;
        return 1;
    }
    if (v > 0x00ffffffffffffffull) {
        p[8] = (uint8_t)v;
        v >>= 8;
        for (int i = 7; i >= 0; i--) {
            p[i] = (uint8_t)((v & 0x7f) | 0x80);
            v >>= 7;
        }
        return 9;
    }
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | 0x80);
        v >>= 7;
    } while (v);
    tmp[0] &= 0x7f;
    for (size_t i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
    return n;
}

/* Serial type of an integer as SQLite picks it, and its width in bytes. */
static inline unsigned int_type_w(int64_t v, uint8_t *type)
{
    if ((uint64_t)v <= 1) {
        *type = (uint8_t)(8 + v); /* 8: the constant 0, 9: the constant 1 */
        return 0;
    }
    uint64_t u = v < 0 ? ~(uint64_t)v : (uint64_t)v; /* magnitude, for the signed ranges */
    /* bytes for its bits and a sign bit, then SQLite's widths 1-4, 6, 8 */
    static const uint8_t type_of[9] = {0, 1, 2, 3, 4, 5, 5, 6, 6}, width_of[9] = {0, 1, 2, 3, 4, 6, 6, 8, 8};
    unsigned bytes = (unsigned)(72 - __builtin_clzll(u | 1)) / 8;
    *type = type_of[bytes];
    return width_of[bytes];
}

/* Stores the low `w` bytes of v big-endian at p (1 <= w <= 8), writing 8
 * bytes: the caller's buffer has room, and what follows is written later. */
static inline void put_be_fast(uint8_t *p, uint64_t v, unsigned w)
{
    uint64_t be = __builtin_bswap64(v << (8 * (8 - w)));
    memcpy(p, &be, 8);
}

/* put_varint without its buffer: the length first, then the bytes from
 * the last one back. */
static inline size_t put_varint_fast(uint8_t *p, uint64_t v)
{
    if (v <= 0x7f) {
        p[0] = (uint8_t)v;
        return 1;
    }
    if (v <= 0x3fff) { /* a payload size, a seq up to 16383 */
        p[0] = (uint8_t)(0x80 | (v >> 7));
        p[1] = (uint8_t)(v & 0x7f);
        return 2;
    }
    if (v <= 0x1fffff) {
        p[0] = (uint8_t)(0x80 | (v >> 14));
        p[1] = (uint8_t)(0x80 | ((v >> 7) & 0x7f));
        p[2] = (uint8_t)(v & 0x7f);
        return 3;
    }
    if (v <= 0xfffffff) { /* a seq up to 268 million */
        p[0] = (uint8_t)(0x80 | (v >> 21));
        p[1] = (uint8_t)(0x80 | ((v >> 14) & 0x7f));
        p[2] = (uint8_t)(0x80 | ((v >> 7) & 0x7f));
        p[3] = (uint8_t)(v & 0x7f);
        return 4;
    }
    if (v > 0x00ffffffffffffffull) return put_varint(p, v);
    size_t n = (size_t)(64 - __builtin_clzll(v) + 6) / 7;
    for (size_t i = n; i-- > 0;) {
        p[i] = (uint8_t)((v & 0x7f) | 0x80);
        v >>= 7;
    }
    p[n - 1] &= 0x7f;
    return n;
}

/* A cell of columns val[0..11) (bit i of `present`: column i is not NULL)
 * and rowid `seq`.  The body goes straight into place: the columns' widths
 * are known first, so the record's size is too.  buf needs 128 bytes (a
 * cell is at most 1 + 9 + 12 + 11 * 8 bytes, and stores write 8 bytes at
 * a time).  With `slot`, free_delta (column 5) is stored in three bytes
 * whatever its value, and *slot gets where they are in the cell. */
static inline size_t encode_vals(int64_t *val, int present, int64_t seq, uint8_t *buf, size_t *slot)
{
    unsigned w[11];
    if (slot) present |= 1 << 5;
    int ncols = 32 - __builtin_clz((unsigned)present); /* trailing NULLs are implied */

    /* cell = payload size, rowid (seq), record; record = header size (1
     * byte: ncols + 1 < 128), serial types, body.  The payload is at most
     * 12 + 11 * 8 = 100 bytes: its size is one byte, so the types go
     * straight to their place (gathered and copied, they were read back
     * from bytes just stored one by one: a store-forwarding stall) */
    size_t o = 1 + put_varint_fast(buf + 1, (uint64_t)seq);
    buf[o++] = (uint8_t)(ncols + 1);
    unsigned body = 0;
    for (int i = 0; i < ncols; i++) {
        uint8_t type = 0;
        w[i] = present >> i & 1 ? int_type_w(val[i], &type) : 0;
        buf[o + (size_t)i] = type;
        body += w[i];
    }
    if (slot) { /* (ncols > 5) */
        body += 3 - w[5];
        w[5] = 3;
        buf[o + 5] = 3; /* 24-bit integer */
    }
    buf[0] = (uint8_t)(1 + (unsigned)ncols + body);
    o += (size_t)ncols;
    for (int i = 0; i < ncols; i++) {
        if (slot && i == 5) *slot = o;
        if (w[i]) put_be_fast(buf + o, (uint64_t)val[i], w[i]);
        o += w[i];
    }
    return o;
}

/* Column order of event_data: kind, thread, addr, size, stack, free_delta,
 * via, old_addr, failed, pool, size_class, seq (the rowid alias: never
 * stored in the record; free_delta and via before the rarer columns, so
 * that an event whose release is folded in, or one serving a higher
 * layer's call, stores no NULLs for them).  The time is not in the row:
 * event_times holds it where it changes. */
static size_t encode_row(const mt_evrow_t *ev, uint8_t *buf, size_t *slot)
{
    int64_t val[11];
    int present = 0; /* bit i: column i is not NULL */
    val[0] = ev->kind;
    val[1] = ev->thread;
    val[2] = (int64_t)ev->addr;
    present = 0x7;
    val[3] = ev->size;
    present |= (ev->size >= 0) << 3;
    val[4] = ev->stack;
    present |= (ev->stack != 0) << 4;
    val[5] = ev->free_delta;
    present |= (ev->free_delta != 0) << 5;
    val[6] = ev->via - 1; /* via holds domain + 1, 0: NULL */
    present |= (ev->via != 0) << 6;
    val[7] = (int64_t)ev->old_addr;
    present |= (ev->old_addr != 0) << 7;
    val[8] = 1;
    present |= (ev->failed != 0) << 8;
    val[9] = (int64_t)ev->pool;
    present |= (ev->pool != 0) << 9;
    val[10] = (int64_t)ev->sclass - 1;
    present |= (ev->sclass != 0) << 10;
    return encode_vals(val, present, ev->seq, buf, slot);
}

size_t mt_evstore_encode_cell(const mt_evrow_t *ev, uint8_t *buf) { return encode_row(ev, buf, NULL); }

/* An event_times row (rowid seq, record: ts; seq is declared after ts, so
 * the record needs no NULL in its place) as a table-leaf cell; buf needs
 * 32 bytes. */
static size_t encode_time_cell(int64_t seq, int64_t ts, uint8_t *buf)
{
    size_t o = 1 + put_varint_fast(buf + 1, (uint64_t)seq);
    uint8_t type = 0;
    unsigned w = int_type_w(ts, &type);
    buf[o++] = 2; /* header size */
    buf[o++] = type;
    if (w) put_be_fast(buf + o, (uint64_t)ts, w);
    buf[0] = (uint8_t)(2 + w);
    return o + w;
}

static void page_reset(mt_evstore_t *s)
{
    s->ncells = 0;
    s->content = s->page_size;
    s->page_max_rowid = 0;
}

/* Finalises the leaf under construction, built in place at `out` (the
 * batch's next page, see append). */
static void leaf_finish(mt_evstore_t *s, uint8_t *out)
{
    out[0] = 0x0D;
    put16(out + 1, 0);
    put16(out + 3, s->ncells);
    put16(out + 5, s->content == 65536 ? 0 : s->content);
    out[7] = 0;
    /* the gap between pointers and content is zeroed for reproducibility */
    uint32_t gap0 = 8 + 2 * s->ncells;
    memset(out + gap0, 0, s->content - gap0);
}

static int write_all(int fd, const void *buf, size_t len, off_t off)
{
    const char *p = buf;
    while (len) {
        ssize_t k = pwrite(fd, p, len, off);
        if (k < 0) {
            if (errno == EINTR) continue;
            return errno == ENOSPC || errno == EDQUOT || errno == EFBIG ? MT_EFULL : MT_EIO;
        }
        p += k;
        len -= (size_t)k;
        off += k;
    }
    return 0;
}

/* Writes the finished pages.  On a write error the store keeps what was
 * written before (the pages of earlier batches) and takes no more. */
static int flush_batch(mt_evstore_t *s)
{
    if (s->failed) return s->failed;
    if (!s->nbatch) return 0;
    uint64_t first = s->next_page - s->nbatch;
    int rc = write_all(s->fd, s->batch, (size_t)s->nbatch * s->page_size, (off_t)((first - 1) * s->page_size));
    s->nbatch = 0;
    if (!++s->gen) s->gen = 1; /* the rows there take no more releases */
    if (rc) {
        s->failed = rc;
    } else {
        s->durable_end = s->next_page;
        s->durable_count += s->batch_count;
    }
    s->batch_count = 0;
    return rc;
}

/* Gives a finished page the next page number and writes it (through the
 * batch; while rebuilding after a failure, only past what the file has). */
static int emit_page(mt_evstore_t *s, const uint8_t *pg, uint32_t *pno)
{
    uint32_t P = s->page_size;
    *pno = s->next_page++;
    if (s->rebuild_end) return *pno < s->rebuild_end ? 0 : write_all(s->fd, pg, P, (off_t)(*pno - 1) * P);
    memcpy(s->batch + (size_t)s->nbatch * P, pg, P);
    s->nbatch++;
    return s->nbatch == s->batch_cap ? flush_batch(s) : 0;
}

/* Header of an interior page; the rest of it is in place. */
static void interior_finish(uint8_t *pg, uint32_t ncells, uint32_t content, uint32_t right)
{
    pg[0] = 0x05;
    put16(pg + 1, 0);
    put16(pg + 3, ncells);
    put16(pg + 5, content == 65536 ? 0 : content);
    pg[7] = 0;
    put32(pg + 8, right);
}

/* Appends the cell (child, key) to an interior page; 0 when it does not
 * fit (room kept for its pointer; the right-most child is in the header). */
static int interior_cell(uint8_t *pg, uint32_t *ncells, uint32_t *content, uint32_t child, int64_t key)
{
    uint8_t cell[13];
    put32(cell, child);
    size_t n = 4 + put_varint(cell + 4, (uint64_t)key);
    if (12 + 2 * (*ncells + 1) + n > *content) return 0;
    *content -= (uint32_t)n;
    memcpy(pg + *content, cell, n);
    put16(pg + 12 + 2 * *ncells, *content);
    (*ncells)++;
    return 1;
}

static int add_child(mt_evstore_t *s, int level, uint32_t child, int64_t key);

/* Writes level L's held-back page and hands it to the level above. */
static int emit_done(mt_evstore_t *s, int level)
{
    level_t *lv = &s->lv[level];
    uint32_t pno;
    interior_finish(lv->done, lv->done_ncells, lv->done_content, lv->done_right);
    lv->has_done = 0;
    int rc = emit_page(s, lv->done, &pno);
    return rc ? rc : add_child(s, level + 1, pno, lv->done_key);
}

/* Adds a finished page (a leaf for level 0) as the next child of the
 * interior level `level`. */
static int add_child(mt_evstore_t *s, int level, uint32_t child, int64_t key)
{
    if (level >= MAX_LEVELS) return MT_ECORRUPT;
    level_t *lv = &s->lv[level];
    uint32_t P = s->page_size;
    if (!lv->open) {
        lv->open = calloc(1, P);
        lv->done = calloc(1, P);
        if (!lv->open || !lv->done) return MT_ENOMEM;
        lv->content = P;
    }
    if (lv->nchild && !interior_cell(lv->open, &lv->ncells, &lv->content, lv->right, lv->right_key)) {
        /* full: it becomes the held-back page, the new child starts the next */
        uint8_t *t = lv->done;
        lv->done = lv->open;
        lv->open = t;
        memset(lv->open, 0, P);
        lv->done_ncells = lv->ncells;
        lv->done_content = lv->content;
        lv->done_right = lv->right;
        lv->done_key = lv->right_key;
        lv->has_done = 1;
        lv->ncells = 0;
        lv->content = P;
        lv->nchild = 0;
    }
    lv->right = child;
    lv->right_key = key;
    lv->nchild++;
    return lv->nchild == 2 && lv->has_done ? emit_done(s, level) : 0;
}

static int finish_leaf(mt_evstore_t *s)
{
    if (!s->ncells) return 0;
    leaf_finish(s, s->batch + (size_t)s->nbatch * s->page_size);
    uint32_t pno = s->next_page++;
    s->nbatch++;
    s->batch_count += s->leaf_events;
    s->leaf_events = 0;
    int64_t key = s->page_max_rowid;
    page_reset(s);
    int rc = s->nbatch == s->batch_cap ? flush_batch(s) : 0;
    return rc ? rc : add_child(s, 0, pno, key);
}

/* Appends a cell (of rowid `rowid`, larger than the cells' before it) to
 * the current leaf, which is built in place in the write batch, at its
 * next page (no copy of the page); *at (if given) gets where the cell is
 * in the batch. */
static int append_cell(mt_evstore_t *s, const uint8_t *cell, size_t n, int64_t rowid, uint32_t *at)
{
    if (8 + 2 * (s->ncells + 1) + n > s->content) {
        int rc = finish_leaf(s);
        if (rc) return rc;
    }
    uint8_t *leaf = s->batch + (size_t)s->nbatch * s->page_size;
    s->content -= (uint32_t)n;
    uint8_t *dst = leaf + s->content;
    if (n >= 16 && n <= 32) { /* most cells: two fixed copies, no call */
        memcpy(dst, cell, 16);
        memcpy(dst + n - 16, cell + n - 16, 16);
    } else {
        memcpy(dst, cell, n);
    }
    put16(leaf + 8 + 2 * s->ncells, s->content);
    s->ncells++;
    s->page_max_rowid = rowid;
    if (at) *at = (uint32_t)(dst - s->batch);
    return 0;
}

/* Writes the spool's buffered rows to its file (made on first use: an
 * unlinked file next to the database).  On failure the times are given
 * up: a partial table would give later events a wrong time. */
static void spool_out(mt_evstore_t *s)
{
    if (s->times_lost || !s->nticks) return;
    if (s->spool_fd < 0) {
        s->spool_fd = open(s->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (s->spool_fd < 0) { /* a file system without O_TMPFILE */
            size_t len = strlen(s->dir) + 32;
            char *name = malloc(len);
            if (name) {
                snprintf(name, len, "%s/.memtrace-times.XXXXXX", s->dir);
                s->spool_fd = mkostemp(name, O_CLOEXEC);
                if (s->spool_fd >= 0) unlink(name);
                free(name);
            }
        }
    }
    size_t len = (size_t)s->nticks * sizeof *s->ticks;
    if (s->spool_fd < 0 || write_all(s->spool_fd, s->ticks, len, (off_t)(s->spooled * sizeof *s->ticks))) {
        s->times_lost = 1;
        return;
    }
    s->spooled += s->nticks;
    s->nticks = 0;
}

/* The fold index entry of block (addr, release kind `rel`, process): its
 * slot, and in *tag the block's tag. */
static fold_ent_t *fold_slot(mt_evstore_t *s, uint64_t addr, int rel, int64_t process, uint32_t *tag)
{
    *tag = (uint32_t)process << 5 | (uint32_t)rel;
    uint64_t h = ((addr >> 3) ^ (uint64_t)*tag << 40) * 0x9e3779b97f4a7c15ull;
    return &s->fold[h >> (64 - FOLD_BITS)];
}

/* The entry of the block's row when that row is still in the batch;
 * NULL when there is none. */
static fold_ent_t *fold_find(mt_evstore_t *s, uint64_t addr, int rel, int64_t process)
{
    uint32_t tag;
    fold_ent_t *e = fold_slot(s, addr, rel, process, &tag);
    return e->gen == s->gen && e->addr == addr && e->tag == tag ? e : NULL;
}

/* The block an event releases, as its fold key (the release kind) and
 * address; -1 when it releases no block of a folded layer. */
static int released(const mt_evrow_t *ev, uint64_t *addr)
{
    if (mt_kind_sizeless(ev->kind)) { /* the frees */
        *addr = ev->addr;
        return ev->addr ? ev->kind : -1;
    }
    if (!ev->old_addr) return -1; /* (an allocation, realloc(NULL, n)) */
    int rel = mt_kind_release(ev->kind); /* a realloc: the old block */
    if (rel < 0 || !(mt_kind_flags(ev->kind) & MT_KF_FREE)) return -1;
    *addr = ev->old_addr;
    return rel;
}

/* Takes one in-order event: its time (where it differs from the previous
 * event's, event_times gets a row; times are made non-decreasing in seq
 * order, an event stamped before one numbered ahead of it taking that
 * one's time, so that a run of events shares one row), then folds it into
 * its allocation's row, or writes its own row. */
static int append(mt_evstore_t *s, const mt_evrow_t *ev)
{
    s->count++;
    if (ev->ts > s->last_ts) {
        s->last_ts = ev->ts;
        s->ticks[s->nticks++] = (tick_t){ev->seq, ev->ts};
        if (s->nticks == SPOOL_TICKS) spool_out(s);
    }
    uint64_t victim;
    int rel = s->no_fold ? -1 : released(ev, &victim);
    fold_ent_t *e = rel >= 0 ? fold_find(s, victim, rel, ev->process) : NULL;
    if (e) {
        e->gen = 0; /* the block is released: its row takes no later release */
        /* folded, it is rebuilt from the row: only when nothing else is lost */
        if (ev->kind == rel && (int64_t)e->thread == ev->thread && e->via == ev->via && !ev->stack &&
            !ev->failed && ev->size < 0 && !ev->old_addr && !ev->pool && !ev->sclass &&
            (uint32_t)ev->seq - e->seq <= DELTA_MAX) {
            uint32_t d = (uint32_t)ev->seq - e->seq;
            uint8_t *p = s->batch + e->at;
            p[0] = (uint8_t)(d >> 16);
            p[1] = (uint8_t)(d >> 8);
            p[2] = (uint8_t)d;
            s->batch_count++; /* its row's leaf is in the batch */
            return 0;
        }
    }
    uint8_t cell[128];
    rel = mt_kind_release(ev->kind);
    int foldable = rel >= 0 && !s->no_fold && ev->addr && !ev->failed && !ev->free_delta &&
                   (uint64_t)ev->thread <= UINT32_MAX;
    size_t slot = 0;
    size_t n = encode_row(ev, cell, foldable ? &slot : NULL);
    uint32_t at;
    int rc = append_cell(s, cell, n, ev->seq, &at);
    if (rc) return rc;
    s->leaf_events += 1 + (ev->free_delta != 0);
    if (foldable) {
        uint32_t tag;
        fold_ent_t *f = fold_slot(s, ev->addr, rel, ev->process, &tag);
        *f = (fold_ent_t){ev->addr, (uint32_t)ev->seq, at + (uint32_t)slot, s->gen, tag, (uint32_t)ev->thread, ev->via};
    }
    return 0;
}

int mt_evstore_new(const char *db_path, uint32_t page_size, uint32_t first_page, int64_t first_seq,
                   mt_evstore_t **out)
{
    *out = NULL;
    if (page_size < 512 || page_size > 65536 || (page_size & (page_size - 1)) || first_seq < 1) return MT_EINVAL;
    mt_evstore_t *s = calloc(1, sizeof *s);
    if (!s) return MT_ENOMEM;
    s->fd = -1;
    s->spool_fd = -1;
    s->last_ts = INT64_MIN;
    s->page_size = page_size;
    s->base = first_seq;
    s->first_page = first_page;
    s->next_page = s->durable_end = first_page;
    s->page = malloc(page_size);
    s->batch_cap = BATCH_BYTES / page_size;
    s->batch = malloc(BATCH_BYTES);
    s->ring = calloc(RING_SIZE, sizeof *s->ring); /* all RING_EMPTY */
    s->ticks = malloc(SPOOL_TICKS * sizeof *s->ticks);
    s->fold = calloc(FOLD_ENTRIES, sizeof *s->fold);
    const char *slash = strrchr(db_path, '/');
    s->dir = slash ? strndup(db_path, slash == db_path ? 1 : (size_t)(slash - db_path)) : strdup(".");
    s->gen = 1;
    if (!first_page || !s->page || !s->batch || !s->ring || !s->ticks || !s->dir || !s->fold) {
        mt_evstore_free(s);
        return MT_ENOMEM;
    }
    s->fd = open(db_path, O_RDWR | O_CLOEXEC);
    if (s->fd < 0) {
        int e = errno;
        mt_evstore_free(s);
        return e == EACCES || e == EPERM ? MT_EPERM : MT_EIO;
    }
    page_reset(s);
    *out = s;
    return 0;
}

/* Writes the ring's contiguous run starting at base.  With `force`, also
 * steps over empty slots until `upto` (exclusive). */
static int drain_ring(mt_evstore_t *s, int64_t upto)
{
    while (s->base < upto) {
        slot_t *sl = &s->ring[(uint64_t)s->base & (RING_SIZE - 1)];
        if (sl->seq == s->base) {
            if (!sl->skip) {
                int rc = append(s, &sl->ev);
                if (rc) return rc;
            }
            sl->seq = RING_EMPTY;
            s->nring--;
        }
        s->base++;
    }
    return 0;
}

static int drain_ready(mt_evstore_t *s)
{
    while (s->nring) { /* (an empty ring: no slot to look at, no cache miss) */
        slot_t *sl = &s->ring[(uint64_t)s->base & (RING_SIZE - 1)];
        if (sl->seq != s->base) return 0;
        if (!sl->skip) {
            int rc = append(s, &sl->ev);
            if (rc) return rc;
        }
        sl->seq = RING_EMPTY;
        s->nring--;
        s->base++;
    }
    return 0;
}

static int put_late(mt_evstore_t *s, const mt_evrow_t *ev)
{
    uint64_t victim;
    int rel = released(ev, &victim);
    fold_ent_t *e = rel >= 0 ? fold_find(s, victim, rel, ev->process) : NULL;
    if (e) e->gen = 0; /* its block's row can take no later release */
    if (s->nlate == s->caplate) {
        size_t cap = s->caplate ? 2 * s->caplate : 64;
        mt_evrow_t *n = realloc(s->late, cap * sizeof *n);
        if (!n) return MT_ENOMEM;
        s->late = n;
        s->caplate = cap;
    }
    s->late[s->nlate++] = *ev;
    return 0;
}

/* Moves the window so that it holds `seq`: what the ring has below
 * seq - window is written, the numbers missing there are given up.  Past
 * one window every slot is empty: the base jumps, so that a wild seq (a
 * damaged target's) costs one window, not a step per number. */
static int step_window(mt_evstore_t *s, int64_t seq)
{
    int64_t upto = seq - (int64_t)RING_SIZE + 1;
    if (upto <= s->base) return 0;
    s->stalls++;
    int64_t lim = s->base + (int64_t)RING_SIZE;
    int rc = drain_ring(s, upto < lim ? upto : lim);
    if (rc) return rc;
    if (s->base < upto) s->base = upto;
    return drain_ready(s);
}

static int place(mt_evstore_t *s, int64_t seq, const mt_evrow_t *ev)
{
    if (seq == s->base) {
        /* in order (the usual case): no copy through the ring, and no look
         * at its slot (a cache miss an event: the ring is larger than the
         * caches; the slot of base is always empty, drain_ready saw to it) */
        int rc = ev ? append(s, ev) : 0;
        if (rc) return rc;
        s->base++;
        return drain_ready(s);
    }
    if (seq < s->base) return ev ? put_late(s, ev) : 0;
    if (seq >= s->base + (int64_t)RING_SIZE) {
        /* a gap has stalled the ring for a whole window: step over it,
         * then place seq in the window that now holds it */
        int rc = step_window(s, seq);
        return rc ? rc : place(s, seq, ev);
    }
    slot_t *sl = &s->ring[(uint64_t)seq & (RING_SIZE - 1)];
    if (sl->seq != RING_EMPTY) return ev ? put_late(s, ev) : 0; /* duplicate seq: keep it anyway */
    sl->seq = seq;
    s->nring++;
    if (seq >= s->ring_end) s->ring_end = seq + 1;
    sl->skip = ev == NULL;
    if (ev) sl->ev = *ev;
    return 0; /* seq > base: it waits for the numbers below */
}

int mt_evstore_add(mt_evstore_t *s, const mt_evrow_t *ev) { return s->failed ? s->failed : place(s, ev->seq, ev); }

int64_t mt_evstore_window_end(const mt_evstore_t *s) { return s->base + (int64_t)RING_SIZE; }

int mt_evstore_admit(mt_evstore_t *s, int64_t seq) { return s->failed ? s->failed : step_window(s, seq); }

void mt_evstore_fold(mt_evstore_t *s, int on)
{
    if (!on && !s->no_fold && !++s->gen) s->gen = 1; /* no row written so far takes a release */
    s->no_fold = !on;
}

int mt_evstore_skip(mt_evstore_t *s, int64_t seq) { return s->failed ? s->failed : place(s, seq, NULL); }

int mt_evstore_flush(mt_evstore_t *s)
{
    if (s->flushed) return 0;
    if (s->failed) { /* what was written is all there is */
        s->flushed = 1;
        return 0;
    }
    /* write whatever the ring still holds, in order, stepping over gaps
     * (not a look at every slot: most pages of the ring of a short trace
     * were never touched, and faulting them in took 7 ms) */
    int rc = s->nring ? drain_ring(s, s->ring_end) : 0;
    if (!rc) rc = finish_leaf(s);
    if (!rc) rc = flush_batch(s);
    if (!rc) s->flushed = 1;
    return rc;
}

const mt_evrow_t *mt_evstore_late(mt_evstore_t *s, size_t *n)
{
    *n = s->nlate;
    return s->late;
}

int64_t mt_evstore_stalls(const mt_evstore_t *s) { return s->stalls; }

int64_t mt_evstore_count(mt_evstore_t *s) { return s->failed ? s->durable_count : s->count; }

int mt_evstore_failed(mt_evstore_t *s) { return s->failed; }

int mt_evstore_make_room(mt_evstore_t *s, uint64_t bytes)
{
    if (!s->failed) return 0;
    uint64_t P = s->page_size;
    for (;;) {
        uint64_t pages = s->durable_end - s->first_page;
        off_t end = (off_t)((s->durable_end - 1) * P);
        if (ftruncate(s->fd, end) != 0) return MT_EIO;
        /* + the interior pages (hundreds of children each, a page per 64
         * is ample) and event_times (a row takes less than 16 bytes) */
        uint64_t times = (s->spooled + s->nticks) * 16 / P + 2 * MAX_LEVELS;
        int e = posix_fallocate(s->fd, end, (off_t)(bytes + (pages / 64 + 4 + MAX_LEVELS + times) * P));
        if (ftruncate(s->fd, end) != 0) return MT_EIO;
        if (e == 0) return 0;
        if (e != ENOSPC && e != EFBIG && e != EDQUOT) return MT_EIO;
        if (!pages) return MT_EFULL;
        s->durable_end -= pages / 8 ? (uint32_t)(pages / 8) : 1; /* the newest events go first */
    }
}

/* SQLite varint at p (at most 9 bytes). */
static uint64_t get_varint(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 7 | (p[i] & 0x7f);
        if (!(p[i] & 0x80)) return v;
    }
    return v << 8 | p[8];
}

/* Empties the interior levels, for a tree built anew. */
static void reset_levels(mt_evstore_t *s)
{
    for (int l = 0; l < MAX_LEVELS; l++) {
        level_t *lv = &s->lv[l];
        lv->ncells = lv->nchild = 0;
        lv->has_done = 0;
        lv->content = s->page_size;
        if (lv->open) memset(lv->open, 0, s->page_size);
    }
}

/* Releases folded into the rows of an event_data leaf: rows whose record
 * has a free_delta (column 5, see mt_evstore_encode_cell) other than 0. */
static uint32_t leaf_folds(const uint8_t *pg, uint32_t P, uint32_t ncells)
{
    static const uint8_t width[10] = {0, 1, 2, 3, 4, 6, 8, 8, 0, 0};
    uint32_t n = 0;
    for (uint32_t i = 0; i < ncells; i++) {
        uint32_t off = (uint32_t)pg[8 + 2 * i] << 8 | pg[9 + 2 * i];
        const uint8_t *c = pg + off, *end = pg + P;
        for (int v = 0; v < 2; v++) /* payload size, rowid */
            for (int k = 0; k < 9 && c < end && (*c++ & 0x80); k++) {}
        if (c + 7 > end || c[0] <= 6 || c[6] > 9 || !c[6]) continue;
        const uint8_t *body = c + c[0];
        for (int k = 1; k <= 5; k++) body += c[k] < 10 ? width[c[k]] : 0;
        uint64_t v = 0;
        for (unsigned k = 0; k < width[c[6]] && body + k < end; k++) v = v << 8 | body[k];
        n += v != 0 || c[6] == 9;
    }
    return n;
}

/* After a write error: the levels as they were when the pages the file
 * still has were written, rebuilt from them (the build is deterministic:
 * each interior page the builder finishes again is already there, at the
 * same page number).  The events of the leaves are counted. */
static int rebuild_levels(mt_evstore_t *s)
{
    uint32_t P = s->page_size;
    reset_levels(s);
    s->rebuild_end = s->durable_end;
    s->next_page = s->first_page;
    s->durable_count = 0;
    while (s->next_page < s->rebuild_end) {
        uint32_t pno = s->next_page++;
        if (pread(s->fd, s->page, P, (off_t)(pno - 1) * P) != (ssize_t)P) return MT_EIO;
        uint32_t ncells = (uint32_t)s->page[3] << 8 | s->page[4];
        if (s->page[0] != 0x0D || !ncells) return MT_ECORRUPT;
        uint32_t last = (uint32_t)s->page[8 + 2 * (ncells - 1)] << 8 | s->page[9 + 2 * (ncells - 1)];
        if (last < 8 + 2 * ncells || last >= P) return MT_ECORRUPT;
        uint8_t cell[18] = {0}; /* payload size and rowid: two varints */
        memcpy(cell, s->page + last, P - last < sizeof cell ? P - last : sizeof cell);
        const uint8_t *c = cell;
        while (*c & 0x80 && c < cell + 8) c++;
        s->durable_count += ncells + leaf_folds(s->page, P, ncells);
        int rc = add_child(s, 0, pno, (int64_t)get_varint(c + 1));
        if (rc) return rc;
    }
    return 0;
}

/* Completes the levels: each level's pages go to the level above, the
 * top page is written at `root` (a single leaf is copied there, and the
 * file then ends before it). */
static int finish_levels(mt_evstore_t *s, uint32_t root)
{
    uint32_t P = s->page_size;
    for (int l = 0; l < MAX_LEVELS; l++) {
        level_t *lv = &s->lv[l];
        int top = !lv->has_done;
        for (int k = l + 1; k < MAX_LEVELS && top; k++) top = !s->lv[k].nchild && !s->lv[k].has_done;
        if (!lv->nchild && !lv->has_done) {
            if (top) return 0; /* no leaf at all */
            continue;
        }
        if (top && lv->nchild == 1) {
            /* one page in all (a single leaf): it is the root; the file
             * ends before it */
            int rc = s->rebuild_end ? 0 : flush_batch(s);
            if (rc) return rc;
            if (lv->right != s->next_page - 1) return MT_ECORRUPT;
            if (pread(s->fd, s->page, P, (off_t)(lv->right - 1) * P) != (ssize_t)P) return MT_EIO;
            s->next_page--;
            return write_all(s->fd, s->page, P, (off_t)(root - 1) * P);
        }
        if (top) {
            interior_finish(lv->open, lv->ncells, lv->content, lv->right);
            return write_all(s->fd, lv->open, P, (off_t)(root - 1) * P);
        }
        if (lv->has_done && lv->nchild == 1) {
            /* a lone child: the held-back page gives it its last cell's
             * child, whose own page becomes that page's right-most */
            uint32_t off = (uint32_t)lv->done[12 + 2 * (lv->done_ncells - 1)] << 8 | lv->done[13 + 2 * (lv->done_ncells - 1)];
            uint8_t *c = lv->done + off;
            uint32_t child = get32(c);
            int64_t key = (int64_t)get_varint(c + 4);
            uint8_t tmp[13];
            size_t n = 4 + put_varint(tmp, (uint64_t)key);
            if (!interior_cell(lv->open, &lv->ncells, &lv->content, lv->done_right, lv->done_key)) return MT_ECORRUPT;
            memset(c, 0, n);
            lv->done_ncells--;
            memset(lv->done + 12 + 2 * lv->done_ncells, 0, 2);
            lv->done_content += (uint32_t)n;
            lv->done_right = child;
            lv->done_key = key;
            lv->nchild = 2;
        }
        int rc = lv->has_done ? emit_done(s, l) : 0;
        if (rc) return rc;
        if (lv->nchild < 2) return MT_ECORRUPT; /* cannot happen: a level above it has pages */
        uint32_t pno;
        interior_finish(lv->open, lv->ncells, lv->content, lv->right);
        rc = emit_page(s, lv->open, &pno);
        if (!rc) rc = add_child(s, l + 1, pno, lv->right_key);
        if (rc) return rc;
        lv->nchild = 0;
    }
    return MT_ECORRUPT;
}

/* Builds event_times after event_data, from the spool, with its top page
 * at `root`.  A write error leaves the table empty (the file then ends
 * after event_data) and the times lost. */
static void build_times(mt_evstore_t *s, uint32_t root)
{
    if (s->times_lost || !root) return;
    reset_levels(s);
    /* after a write error event_data was completed page by page; the
     * times go through the batch again */
    int failed = s->failed;
    int64_t durable_count = s->durable_count;
    uint32_t data_end = s->next_page;
    s->failed = 0;
    s->rebuild_end = 0;
    s->nbatch = 0;
    s->batch_count = 0;
    page_reset(s);
    tick_t *buf = malloc(SPOOL_TICKS * sizeof *buf);
    int rc = buf ? 0 : MT_ENOMEM;
    for (uint64_t i = 0; i < s->spooled + s->nticks && !rc; i += SPOOL_TICKS) {
        const tick_t *t = buf;
        uint64_t k = s->spooled + s->nticks - i < SPOOL_TICKS ? s->spooled + s->nticks - i : SPOOL_TICKS;
        if (i >= s->spooled) {
            t = s->ticks; /* the tail never written out (less than SPOOL_TICKS rows) */
        } else if (pread(s->spool_fd, buf, k * sizeof *buf, (off_t)(i * sizeof *buf)) != (ssize_t)(k * sizeof *buf)) {
            rc = MT_EIO;
            break;
        }
        for (uint64_t j = 0; j < k && !rc; j++) {
            uint8_t cell[32];
            rc = append_cell(s, cell, encode_time_cell(t[j].seq, t[j].ts, cell), t[j].seq, NULL);
        }
    }
    free(buf);
    if (!rc) rc = finish_leaf(s);
    if (!rc) rc = finish_levels(s, root);
    if (!rc) rc = flush_batch(s);
    if (rc) {
        s->next_page = data_end;
        s->times_lost = 1;
    }
    s->failed = failed;
    s->durable_count = durable_count;
}

int mt_evstore_splice(mt_evstore_t *s, uint32_t root, uint32_t times_root)
{
    int rc = mt_evstore_flush(s);
    if (rc) return rc;
    int dbfd = s->fd;
    uint8_t hdr[100];
    if (pread(dbfd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr || memcmp(hdr, "SQLite format 3", 16) != 0)
        return MT_ECORRUPT;
    uint32_t P = (uint32_t)hdr[16] << 8 | hdr[17];
    if (P == 1) P = 65536;
    uint32_t npages = get32(hdr + 28);
    /* nothing but these pages may have been added since the store began */
    if (P != s->page_size || get32(hdr + 32) != 0 /* freelist */ || npages + 1 != s->first_page || root == 0 ||
        root > npages || times_root > npages || times_root == root)
        return MT_ECORRUPT;
    if (s->failed) rc = rebuild_levels(s);
    if (!rc) rc = finish_levels(s, root);
    if (!rc && !s->failed) rc = flush_batch(s);
    if (rc) return rc;
    build_times(s, times_root);
    /* header: page count, change counter, version-valid-for; the file ends
     * at the last page */
    uint32_t counter = get32(hdr + 24) + 1;
    uint8_t h4[4];
    put32(h4, s->next_page - 1);
    if ((rc = write_all(dbfd, h4, 4, 28))) return rc;
    put32(h4, counter);
    if ((rc = write_all(dbfd, h4, 4, 24))) return rc;
    if ((rc = write_all(dbfd, h4, 4, 92))) return rc;
    if (ftruncate(dbfd, (off_t)(s->next_page - 1) * P) != 0) rc = MT_EIO;
    return rc;
}

int mt_evstore_times_lost(const mt_evstore_t *s) { return s->times_lost; }

void mt_evstore_free(mt_evstore_t *s)
{
    if (!s) return;
    if (s->fd >= 0) close(s->fd);
    if (s->spool_fd >= 0) close(s->spool_fd);
    free(s->ticks);
    free(s->fold);
    free(s->dir);
    free(s->page);
    free(s->batch);
    free(s->ring);
    for (int l = 0; l < MAX_LEVELS; l++) {
        free(s->lv[l].open);
        free(s->lv[l].done);
    }
    free(s->late);
    free(s);
}
