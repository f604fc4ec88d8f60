/* collector.c - drains shared-memory regions into the trace database.
 *
 * Algorithm.  One loop, one thread:
 *   1. drain: for every mapped region and every chunk in state OWNED or
 *      FULL, convert the records in [consumed, used) into rows; a FULL
 *      chunk read to its end is set FREE for reuse (mt_shm.h);
 *   2. discover: list the session directory for region files not yet
 *      mapped (a new process, a fork child, an exec'd image);
 *   3. reap: wait for the launched program and for orphans handed to us
 *      (the launcher is a child subreaper), keeping their wait statuses;
 *   4. liveness: a region whose process is gone (or whose pid has started a
 *      newer image) is drained once more and closed;
 *   5. sample RSS of live processes every rss_interval_ms.
 * The loop ends when no child is left and every region is closed.  Rows go
 * into one long transaction committed every MT_COMMIT_EVENTS events, so a
 * reader sees data while the program runs.
 */
#define _GNU_SOURCE
#include "mt_collector.h"

#include "mt_error.h"
#include "mt_event.h"
#include "collector_py.h"
#include "mt_clock.h"
#include "mt_symbolize.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MT_COMMIT_EVENTS (1 << 20)
#define LIVENESS_NS 20000000ull /* 20 ms */
#define GAP_WAIT_NS 50000000ull /* 50 ms: see drain_region_all */

typedef struct {
    int32_t tid;
    int64_t id; /* threads.id */
} thread_ref_t;

typedef struct {
    mt_region_t *r;
    uint64_t map_size;
    char name[64];
    int64_t process_id;   /* processes.id = region index + 1 */
    uint64_t *consumed;   /* per chunk */
    uint64_t *chunk_ts;   /* per chunk: the time of its last MT_REC_TS read */
    struct pending *pending; /* per chunk: drain_region's work list */
    uint8_t *written;     /* per chunk: its header is not in a hole of the file (find_written) */
    int written_known;    /* find_written ran (written NULL: every chunk may be) */
    int closed;           /* drained after its process ended */
    int superseded;       /* its pid exec'd a newer image */
    int status_known;
    int wait_status;      /* from waitpid, when status_known */
    thread_ref_t *threads;
    size_t nthreads, capthreads;
    uint32_t *stack_ids;  /* trie slot -> stacks.id (dense, 0 = not yet) */
    mt_pygc_t gc;         /* CPython: a collection in progress */
    struct mallinfo_part {      /* MT_REC_MALLINFO snapshots being assembled */
        int64_t thread;
        uint64_t seq;
        unsigned have;          /* bit k: part k received */
        uint64_t v[9];
    } mallinfo[8];
} region_t;

typedef struct {
    pid_t pid;
    int status;
} reaped_t;

struct mt_collector {
    mt_collector_cfg_t cfg;
    region_t *regions;
    size_t nregions, capregions;
    uint8_t *known;       /* known[index]: region `index` is mapped */
    size_t nknown;
    reaped_t *reaped;
    size_t nreaped, capreaped;
    int child_reaped;
    int child_status;
    int64_t child_maxrss; /* bytes, from wait4 */
    int64_t child_cpu_ns; /* user + system time, from wait4 */
    int64_t next_thread_id;
    uint32_t next_stack_id; /* stacks.id are dense and start at 1: small ids, small rows */
    int64_t events, markers, since_commit;
    mt_stmt_t *ins_marker, *ins_thread, *ins_rss, *ins_mallinfo;
    uint64_t last_liveness, last_rss;
    uint64_t gap_end, gap_since; /* the window stood at gap_end since gap_since, blocked (drain_region_all) */
    int fold_off;                 /* behind the program: releases are not folded into rows */
    int tsc;              /* records carry TSC ticks */
    uint64_t last_tick;   /* rec_ts's last conversion (0: none) */
    int64_t last_rel;
    mt_tscmap_t tscmap;   /* ticks -> CLOCK_MONOTONIC ns */
    FILE *stream;         /* MEMTRACE_RECORD_STREAM: the records read go here too */
    mt_rec_t *sbuf;       /* the stream's records of the chunk being read (as mt_rec_t) */
    size_t nsbuf;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int64_t rel_ts(mt_collector_t *c, uint64_t ts)
{
    uint64_t s = c->cfg.session->start_ns;
    return ts >= s ? (int64_t)(ts - s) : 0;
}

/* A record's timestamp (ticks with MT_OPT_TSC, see mt_clock.h) as ns since
 * the session start. */
static int64_t rec_ts(mt_collector_t *c, uint64_t ts)
{
    /* records carry the shared clock: runs of them have the same time */
    if (ts == c->last_tick && c->last_tick) return c->last_rel;
    c->last_tick = ts;
    c->last_rel = rel_ts(c, c->tsc ? mt_tscmap_ns(&c->tscmap, ts) : ts);
    return c->last_rel;
}

/* A (ticks, ns) sample for rec_ts, taken before each pass over the
 * records so that most of them fall between two samples. */
static int sample_clock(mt_collector_t *c, int force)
{
    if (!c->tsc) return 0;
    uint64_t t = mt_clock_rdtsc(), ns = mono_ns();
    if (!force && c->tscmap.n && ns - c->tscmap.ns[c->tscmap.n - 1] < 1000000ull) return 0;
    c->last_tick = 0; /* rec_ts's cache: the map changes */
    return mt_tscmap_add(&c->tscmap, t, ns);
}

/* ---- the recorded stream (MEMTRACE_RECORD_STREAM, mt_collector.h) ---- */

/* Appends one block; on a write error the stream stops (with a warning):
 * it is a measuring aid, never a reason to fail a recording. */
static void stream_put(mt_collector_t *c, uint32_t kind, uint32_t region, int32_t tid, const void *data,
                       size_t size)
{
    mt_stream_block_t b = {kind, region, tid, (uint32_t)size};
    if (fwrite(&b, sizeof b, 1, c->stream) == 1 && (!size || fwrite(data, size, 1, c->stream) == 1)) return;
    fprintf(stderr, "memtrace: writing the record stream failed: %s; it stops here\n", strerror(errno));
    fclose(c->stream);
    c->stream = NULL;
}

static void stream_open(mt_collector_t *c)
{
    const char *path = getenv(MT_STREAM_ENV);
    if (!path || !*path) return;
    c->stream = fopen(path, "wbe");
    if (!c->stream) {
        fprintf(stderr, "memtrace: cannot write the record stream %s: %s\n", path, strerror(errno));
        return;
    }
    setvbuf(c->stream, NULL, _IOFBF, 1 << 20);
    mt_stream_head_t h;
    memset(&h, 0, sizeof h);
    h.magic = MT_STREAM_MAGIC;
    h.version = MT_SHM_VERSION;
    h.session = *c->cfg.session;
    if (fwrite(&h, sizeof h, 1, c->stream) != 1) {
        fprintf(stderr, "memtrace: writing the record stream failed: %s\n", strerror(errno));
        fclose(c->stream);
        c->stream = NULL;
    }
}

/* What the collector reads of a region besides its chunks: the header,
 * the modules, the published trie nodes, the Python names. */
static void stream_region(mt_collector_t *c, region_t *g)
{
    mt_region_t *r = g->r;
    uint32_t index = r->index;
    stream_put(c, MT_STREAM_REGION, index, 0, r, sizeof *r);
    uint32_t nmod = __atomic_load_n(&r->nmodules, __ATOMIC_ACQUIRE);
    if (nmod > MT_MAX_MODULES) nmod = MT_MAX_MODULES;
    if (c->stream) stream_put(c, MT_STREAM_MODULES, index, 0, mt_region_modules(r), nmod * sizeof(mt_module_t));
    const mt_trie_slot_t *slots = mt_region_trie(r);
    uint32_t nnodes = __atomic_load_n(&r->nnodes, __ATOMIC_ACQUIRE);
    if (nnodes > r->trie_slots) nnodes = r->trie_slots;
    mt_stream_node_t buf[256];
    size_t n = 0;
    for (uint32_t id = 1; id <= nnodes && c->stream; id++) {
        if (__atomic_load_n(&slots[id - 1].state, __ATOMIC_ACQUIRE) != 2) continue;
        buf[n++] = (mt_stream_node_t){id, 0, slots[id - 1]};
        if (n == 256) {
            stream_put(c, MT_STREAM_NODES, index, 0, buf, sizeof buf);
            n = 0;
        }
    }
    if (c->stream && n) stream_put(c, MT_STREAM_NODES, index, 0, buf, n * sizeof *buf);
    uint64_t names = __atomic_load_n(&r->py.names_used, __ATOMIC_ACQUIRE);
    if (names > MT_NAMES_SIZE) names = MT_NAMES_SIZE;
    if (c->stream && names) stream_put(c, MT_STREAM_NAMES, index, 0, mt_region_names(r), names);
}

int mt_collector_new(const mt_collector_cfg_t *cfg, mt_collector_t **out)
{
    mt_collector_t *c = calloc(1, sizeof *c);
    if (!c) return MT_ENOMEM;
    c->cfg = *cfg;
    c->tsc = (cfg->session->opt.flags & MT_OPT_TSC) != 0;
    int rc = c->tsc ? mt_tscmap_add(&c->tscmap, cfg->session->start_tsc, cfg->session->start_ns) : 0;
    if (!rc) rc = mt_stmt_prepare(cfg->db, "INSERT INTO markers VALUES(?,?,?,?,?,?)", &c->ins_marker);
    if (!rc) rc = mt_stmt_prepare(cfg->db, "INSERT INTO threads VALUES(?,?,?,?,?)", &c->ins_thread);
    if (!rc) rc = mt_stmt_prepare(cfg->db, "INSERT INTO rss_samples VALUES(?,?,?,?,?)", &c->ins_rss);
    if (!rc) rc = mt_stmt_prepare(cfg->db, "INSERT INTO malloc_stats VALUES(?,?,?,?,?,?,?,?,?,?,?)", &c->ins_mallinfo);
    if (rc) {
        mt_collector_free(c);
        return rc;
    }
    stream_open(c);
    *out = c;
    return 0;
}

void mt_collector_free(mt_collector_t *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->nregions; i++) {
        region_t *g = &c->regions[i];
        if (g->r) munmap(g->r, g->map_size);
        free(g->consumed);
        free(g->chunk_ts);
        free(g->pending);
        free(g->written);
        free(g->threads);
        free(g->stack_ids);
        mt_pyc_gc_free(&g->gc);
    }
    free(c->regions);
    free(c->known);
    free(c->reaped);
    mt_stmt_finalize(c->ins_marker);
    mt_stmt_finalize(c->ins_thread);
    mt_stmt_finalize(c->ins_rss);
    mt_tscmap_free(&c->tscmap);
    mt_stmt_finalize(c->ins_mallinfo);
    if (c->stream) fclose(c->stream);
    free(c->sbuf);
    free(c);
}

/* threads.id for (region, tid), inserting the row on first sight. */
static int thread_id(mt_collector_t *c, region_t *g, int32_t tid, const mt_rec_t *first, int64_t *out)
{
    for (size_t i = 0; i < g->nthreads; i++)
        if (g->threads[i].tid == tid) {
            *out = g->threads[i].id;
            return 0;
        }
    if (g->nthreads == g->capthreads) {
        size_t cap = g->capthreads ? 2 * g->capthreads : 8;
        thread_ref_t *t = realloc(g->threads, cap * sizeof *t);
        if (!t) return MT_ENOMEM;
        g->threads = t;
        g->capthreads = cap;
    }
    int64_t id = c->next_thread_id++;
    g->threads[g->nthreads++] = (thread_ref_t){tid, id};
    mt_stmt_bind_int(c->ins_thread, 1, id);
    mt_stmt_bind_int(c->ins_thread, 2, g->process_id);
    mt_stmt_bind_int(c->ins_thread, 3, tid);
    mt_stmt_bind_int(c->ins_thread, 4, (int64_t)first->seq);
    mt_stmt_bind_int(c->ins_thread, 5, rec_ts(c, first->ts));
    *out = id;
    return mt_stmt_run(c->ins_thread);
}

/* stacks.id of trie node `node` (1-based slot) of a region; 0 for none. */
static int64_t stack_id(mt_collector_t *c, region_t *g, uint32_t node)
{
    if (!node || node > g->r->trie_slots) return 0;
    uint32_t *id = &g->stack_ids[node - 1];
    if (!*id) *id = ++c->next_stack_id;
    return *id;
}

static int store_record(mt_collector_t *c, region_t *g, int64_t thread, const mt_rec_t *rec)
{
    if (rec->type == MT_REC_EVENT) {
        mt_db_event_t e;
        e.seq = (int64_t)rec->seq;
        e.ts = rec_ts(c, rec->ts);
        e.kind = rec->kind;
        e.thread = thread;
        e.process = g->process_id;
        e.free_delta = 0;
        e.addr = rec->addr;
        e.size = mt_kind_sizeless(rec->kind) ? -1 : (int64_t)rec->size;
        e.failed = (rec->flags & MT_RF_FAILED) != 0;
        unsigned via = MT_RF_VIA_GET(rec->flags); /* 0: top level, MT_RF_VIA_LIBC: domain 0 */
        e.via = via == 0 ? 0 : via == MT_RF_VIA_LIBC ? 1 : (int)via + 1;
        if (rec->kind >= MT_KIND_PYM_BASE) {
            /* bundled-allocator event: old_addr carries the pool, stack the
             * size class + 1 (mt_shm.h) */
            e.stack = 0;
            e.old_addr = 0;
            e.pool = rec->old_addr;
            e.sclass = rec->stack;
        } else {
            e.stack = stack_id(c, g, rec->stack);
            e.old_addr = rec->old_addr;
            e.pool = 0;
            e.sclass = 0;
        }
        c->events++;
        c->since_commit++;
        return mt_db_add_event(c->cfg.db, &e);
    }
    if (rec->type == MT_REC_MARKER) {
        mt_stmt_bind_int(c->ins_marker, 1, (int64_t)rec->seq);
        mt_stmt_bind_int(c->ins_marker, 2, rec_ts(c, rec->ts));
        mt_stmt_bind_int(c->ins_marker, 3, thread);
        mt_stmt_bind_int(c->ins_marker, 4, g->process_id);
        mt_stmt_bind_int(c->ins_marker, 5, rec->kind);
        mt_stmt_bind_int(c->ins_marker, 6, (int64_t)rec->size);
        c->markers++;
        int rc = mt_stmt_run(c->ins_marker);
        return rc ? rc : mt_db_skip_seq(c->cfg.db, (int64_t)rec->seq);
    }
    if (rec->type == MT_REC_SKIP) return mt_db_skip_seq(c->cfg.db, (int64_t)rec->seq);
    if (rec->type == MT_REC_GC)
        return mt_pyc_gc(c->cfg.db, &g->gc, thread, rec, rec_ts(c, rec->ts));
    if (rec->type == MT_REC_RSS) {
        mt_stmt_bind_int(c->ins_rss, 1, rec_ts(c, rec->ts));
        mt_stmt_bind_int(c->ins_rss, 2, (int64_t)rec->seq);
        mt_stmt_bind_int(c->ins_rss, 3, g->process_id);
        mt_stmt_bind_int(c->ins_rss, 4, (int64_t)rec->addr);
        mt_stmt_bind_int(c->ins_rss, 5, (int64_t)rec->size);
        return mt_stmt_run(c->ins_rss);
    }
    if (rec->type == MT_REC_MALLINFO && rec->kind < 3) {
        /* three parts from one thread with one seq, in any order (a thread's
         * chunks are not always read in order); the row goes in with the
         * third */
        struct mallinfo_part *m = NULL, *freeslot = NULL;
        for (int i = 0; i < 8; i++) {
            struct mallinfo_part *q = &g->mallinfo[i];
            if (q->have && q->thread == thread && q->seq == rec->seq) m = q;
            else if (!q->have && !freeslot) freeslot = q;
        }
        if (!m) {
            if (!freeslot) freeslot = &g->mallinfo[rec->seq % 8]; /* overflow: drop the oldest guess */
            m = freeslot;
            memset(m, 0, sizeof *m);
            m->thread = thread;
            m->seq = rec->seq;
        }
        uint64_t *v = m->v;
        v[rec->kind * 3] = rec->addr;
        v[rec->kind * 3 + 1] = rec->size;
        v[rec->kind * 3 + 2] = rec->old_addr;
        m->have |= 1u << rec->kind;
        if (m->have != 7) return 0;
        m->have = 0;
        /* v holds the columns in order: arena, in use, free, fastbin free,
         * top releasable, mmapped bytes, mmapped chunks, free chunks */
        mt_stmt_bind_int(c->ins_mallinfo, 1, g->process_id);
        mt_stmt_bind_int(c->ins_mallinfo, 2, (int64_t)rec->seq);
        mt_stmt_bind_int(c->ins_mallinfo, 3, rec_ts(c, rec->ts));
        for (int i = 0; i < 8; i++) mt_stmt_bind_int(c->ins_mallinfo, 4 + i, (int64_t)v[i]);
        return mt_stmt_run(c->ins_mallinfo);
    }
    return 0; /* unknown record types are skipped */
}

/* A record stamped after the last clock sample waits for the next pass,
 * so that its time is interpolated between two samples, never
 * extrapolated: a thread's times then never go backwards.  (Not a record
 * stamped implausibly far ahead: the target's data is not trusted.) */
static int held_back(const mt_collector_t *c, const mt_rec_t *rec)
{
    if (!c->tsc || !c->tscmap.n) return 0;
    uint64_t last = c->tscmap.tick[c->tscmap.n - 1];
    return rec->ts > last && rec->ts - last < (1ull << 34);
}

/* Gives a FULL chunk read to its end back to the target: no longer
 * active, then FREE (in that order: a thread that claims it marks it
 * active again). */
static void release_chunk(region_t *g, uint32_t i)
{
    mt_region_t *r = g->r;
    g->consumed[i] = 0;
    g->chunk_ts[i] = 0;
    if (i < MT_ACTIVE_CHUNKS) __atomic_fetch_and(&r->active[i / 64], ~(1ull << (i % 64)), __ATOMIC_RELEASE);
    __atomic_store_n(&mt_region_chunk(r, i)->state, MT_CHUNK_FREE, __ATOMIC_RELEASE);
}

/* The bytes of records a chunk has published (never trusting the target
 * with more than the chunk holds; a record reaching past them is not read). */
static uint64_t chunk_used(const mt_chunk_t *ch)
{
    uint64_t used = __atomic_load_n(&ch->used, __ATOMIC_ACQUIRE);
    return used > MT_CHUNK_DATA ? MT_CHUNK_DATA : used;
}

/* The record at `pos` of a chunk with `used` bytes published, as an
 * mt_rec_t: itself, or a compact one filled into *tmp with the time
 * *chunk_ts.  NULL at the end, or for an MT_REC_TS (which sets *chunk_ts).
 * *len gets the record's length (0: none whole). */
static inline const mt_rec_t *rec_at(const mt_chunk_t *ch, uint64_t pos, uint64_t used, uint64_t *chunk_ts,
                                     mt_rec_t *tmp, uint64_t *len)
{
    const uint8_t *p = (const uint8_t *)(ch + 1) + pos;
    *len = 0;
    if (pos + sizeof(mt_rec32_t) > used) return NULL;
    uint64_t l = mt_rec_len(p[0]);
    if (pos + l > used) return NULL;
    *len = l;
    if (l == sizeof(mt_rec_t)) return (const mt_rec_t *)(const void *)p;
    const mt_rec32_t *c = (const mt_rec32_t *)(const void *)p;
    if (c->type == MT_REC_TS) {
        *chunk_ts = c->addr;
        return NULL;
    }
    tmp->type = MT_REC_EVENT;
    tmp->kind = c->kind;
    tmp->flags = c->flags;
    tmp->stack = c->stack;
    tmp->seq = c->seq;
    tmp->ts = *chunk_ts;
    tmp->addr = c->addr;
    tmp->size = c->size;
    tmp->old_addr = 0;
    return tmp;
}

/* The seq of the first record not read yet at `pos` (past time records);
 * 0 when there is none. */
static uint64_t head_seq(const mt_chunk_t *ch, uint64_t pos, uint64_t used)
{
    for (;;) {
        uint64_t ts = 0, len;
        mt_rec_t tmp;
        const mt_rec_t *rec = rec_at(ch, pos, used, &ts, &tmp, &len);
        if (rec) return rec->seq ? rec->seq : 1;
        if (!len) return 0;
        pos += len;
    }
}

/* MEMTRACE_RECORD_STREAM: the records read, as mt_rec_t (the replay feeds
 * them back so), in blocks per chunk. */
static void stream_flush(mt_collector_t *c, uint32_t region, int32_t tid)
{
    if (c->stream && c->nsbuf) stream_put(c, MT_STREAM_RECORDS, region, tid, c->sbuf, c->nsbuf * sizeof *c->sbuf);
    c->nsbuf = 0;
}

static void stream_rec(mt_collector_t *c, uint32_t region, int32_t tid, const mt_rec_t *rec)
{
    enum { SBUF = 1024 };
    if (!c->sbuf && !(c->sbuf = malloc(SBUF * sizeof *c->sbuf))) return;
    c->sbuf[c->nsbuf++] = *rec;
    if (c->nsbuf == SBUF) stream_flush(c, region, tid);
}

/* A chunk with records not read yet, and the seq of the first of them. */
typedef struct pending {
    uint32_t chunk;
    uint64_t head;
} pending_t;

static int by_head(const void *a, const void *b)
{
    uint64_t x = ((const pending_t *)a)->head, y = ((const pending_t *)b)->head;
    return (x > y) - (x < y);
}

/* The path of region file `name` of the session; 0 when it is too long. */
static int region_path(const mt_collector_t *c, const char *name, char *out, size_t cap)
{
    return (size_t)snprintf(out, cap, "%s/%s", c->cfg.dir, name) < cap;
}

/* Which chunks' headers lie outside the holes of the region file, for the
 * last drain, which reads every chunk whatever the active marks say: a
 * chunk whose header page was never written is FREE (zero), and a look at
 * it would fault in a page of zeros (the 1,024 chunks of a region: 2.6 ms
 * of a short trace's end).  The file system says which pages were written,
 * not the target's data.  Run once per region; on any failure every chunk
 * counts as written. */
static void find_written(const mt_collector_t *c, region_t *g)
{
    g->written_known = 1;
    const mt_region_t *r = g->r;
    char path[4096];
    if (!region_path(c, g->name, path, sizeof path)) return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    uint8_t *w = calloc(r->nchunks, 1);
    const off_t co = (off_t)r->chunk_off, cs = MT_CHUNK_SIZE, hdr = sizeof(mt_chunk_t);
    for (off_t pos = co; w && pos < (off_t)g->map_size;) {
        off_t d = lseek(fd, pos, SEEK_DATA), h = d < 0 ? -1 : lseek(fd, d, SEEK_HOLE);
        if (d < 0 && errno == ENXIO) break; /* no data after pos */
        if (d < 0 || h <= d) {
            free(w);
            w = NULL;
            break;
        }
        /* the headers [co + i cs, co + i cs + hdr) that meet [d, h) */
        uint64_t first = d <= co ? 0 : (uint64_t)((d - co) / cs + ((d - co) % cs >= hdr));
        for (uint64_t i = first; i < r->nchunks && co + (off_t)i * cs < h; i++) w[i] = 1;
        pos = h;
    }
    close(fd);
    g->written = w;
}

/* Converts the published records of one region, chunk by chunk in the
 * order of their first unread seq, and within the event store's reorder
 * window (mt_db_event_window_end): a chunk stops at the first record
 * beyond it and goes on in a later pass, once the gap below is filled.
 * A chunk's index says nothing about its age; read in index order behind
 * a busy program, a newer chunk pushed the window past an older one whose
 * events then all went in "late", one SQLite INSERT each.  Nor does a
 * chunk's first number bound the rest: a thread that lost the CPU for a
 * while wrote a few records, then more after a window of other threads'
 * events.  With `unlimited` (the end of the region) every chunk is read,
 * whatever the active marks say; with `unlimited` 2 also beyond the
 * window.  Returns the number of records read, or
 * a negative MT_E*; *blocked gets the lowest seq the window held back
 * (0: none). */
/* Folding releases into their allocations' rows costs the store about a
 * quarter more time an event: not while the collector is behind (more than
 * FOLD_OFF_CHUNKS full chunks of a region wait), so that it does not hold
 * the program up or make its end wait; again once it has caught up (at
 * most FOLD_ON_CHUNKS).  The events recorded are the same either way; only
 * how many rows they take. */
#define FOLD_OFF_CHUNKS 32 /* 64 KiB each, about 2,000 records */
#define FOLD_ON_CHUNKS 4

static long drain_region(mt_collector_t *c, region_t *g, int unlimited, uint64_t *blocked)
{
    mt_region_t *r = g->r;
    long n = 0;
    size_t np = 0;
    /* the chunks marked active (all of them with `unlimited`: the last
     * drain does not trust the marks a damaged target may have cleared) */
    uint32_t tracked = r->nchunks < MT_ACTIVE_CHUNKS ? r->nchunks : MT_ACTIVE_CHUNKS;
    uint64_t word = 0;
    size_t full = 0; /* of the chunks with records to read, those their thread left */
    if (unlimited && !g->written_known) find_written(c, g);
    for (uint32_t i = 0; i < r->nchunks; i++) {
        if (unlimited && g->written && !g->written[i]) continue;
        if (i < tracked && !unlimited) {
            if (i % 64 == 0) word = __atomic_load_n(&r->active[i / 64], __ATOMIC_ACQUIRE);
            if (!word) {
                i |= 63; /* none in this word */
                continue;
            }
            if (!(word >> (i % 64) & 1)) continue;
        }
        mt_chunk_t *ch = mt_region_chunk(r, i);
        uint32_t st = __atomic_load_n(&ch->state, __ATOMIC_ACQUIRE);
        if (st != MT_CHUNK_OWNED && st != MT_CHUNK_FULL) continue;
        uint64_t used = chunk_used(ch);
        uint64_t pos = g->consumed[i];
        uint64_t head = pos < used ? head_seq(ch, pos, used) : 0;
        if (head) {
            g->pending[np++] = (pending_t){i, head};
            full += st == MT_CHUNK_FULL;
        } else if (st == MT_CHUNK_FULL) {
            release_chunk(g, i); /* read to its end (time records aside) */
        }
    }
    if (np > 1) qsort(g->pending, np, sizeof *g->pending, by_head);
    if (c->fold_off ? full <= FOLD_ON_CHUNKS : full > FOLD_OFF_CHUNKS) {
        c->fold_off = !c->fold_off;
        mt_db_event_fold(c->cfg.db, !c->fold_off);
    }
    for (size_t k = 0; k < np; k++) {
        uint32_t i = g->pending[k].chunk;
        mt_chunk_t *ch = mt_region_chunk(r, i);
        uint32_t st = __atomic_load_n(&ch->state, __ATOMIC_ACQUIRE);
        uint64_t used = chunk_used(ch); /* again: more may be published since */
        uint64_t pos = g->consumed[i];
        uint64_t end = (uint64_t)mt_db_event_window_end(c->cfg.db);
        int64_t tid_row = 0;
        int rc = 0;
        for (;;) {
            mt_rec_t tmp;
            uint64_t len, ts = g->chunk_ts[i];
            /* the lines ahead: written by another CPU, each read is a miss */
            __builtin_prefetch((const char *)(ch + 1) + pos + 1024);
            const mt_rec_t *rec = rec_at(ch, pos, used, &ts, &tmp, &len);
            if (!rec) {
                if (!len) break; /* the end of what is published */
                g->chunk_ts[i] = ts; /* a time record */
                pos += len;
                continue;
            }
            if (held_back(c, rec)) break;
            if (unlimited < 2 && rec->seq >= end) {
                /* the window moved while this chunk was read? */
                end = (uint64_t)mt_db_event_window_end(c->cfg.db);
                if (rec->seq >= end) {
                    if (!*blocked || rec->seq < *blocked) *blocked = rec->seq;
                    break;
                }
            }
            if (!tid_row && (rc = thread_id(c, g, ch->tid, rec, &tid_row)) != 0) return rc;
            rc = store_record(c, g, tid_row, rec);
            if (rc) return rc;
            if (c->stream) stream_rec(c, r->index, ch->tid, rec);
            pos += len;
            n++;
        }
        stream_flush(c, r->index, ch->tid);
        g->consumed[i] = pos;
        /* a record cut off at the end of a FULL chunk (a damaged target)
         * is never completed: the chunk is done */
        if (st == MT_CHUNK_FULL && (pos >= used || !head_seq(ch, pos, used))) release_chunk(g, i);
    }
    return n;
}

/* Drains one region until nothing more can be read.  When the window held
 * records back and nothing could be read below them, the numbers missing
 * below the lowest of them are in no published record: the window steps
 * over them.  While the program runs, only once the window has stood still
 * for GAP_WAIT_NS: a thread that took a number may have lost the CPU before
 * it published the record, or be waiting for a free chunk, and the record
 * then still comes in order.  A number that never comes (taken by a thread
 * that was killed, or whose record was lost) costs that wait once.  A
 * record that comes after the step goes in late.  At the end (`unlimited`:
 * the process is gone) the window steps at once, as often as it takes to
 * read everything, a window at a time. */
static long drain_region_all(mt_collector_t *c, region_t *g, int unlimited)
{
    long total = 0;
    for (;;) {
        uint64_t blocked = 0;
        long n = drain_region(c, g, unlimited, &blocked);
        if (n < 0) return n;
        total += n;
        if (!blocked) break;
        if (n > 0) continue;
        int64_t end = mt_db_event_window_end(c->cfg.db);
        if (!unlimited) {
            uint64_t now = mono_ns();
            if ((uint64_t)end != c->gap_end) {
                c->gap_end = (uint64_t)end;
                c->gap_since = now;
                break;
            }
            if (now - c->gap_since < GAP_WAIT_NS) break;
        }
        if (blocked < INT64_MAX / 2) { /* above: a damaged target's number */
            int rc = mt_db_event_admit(c->cfg.db, (int64_t)blocked);
            if (rc) return rc;
        }
        if (mt_db_event_window_end(c->cfg.db) == end) {
            /* no window holds it: at the end, what is left is read as it
             * comes (the rest of it late) */
            if (!unlimited) break;
            unlimited = 2;
        }
    }
    return total;
}

static region_t *region_by_index(mt_collector_t *c, uint32_t index)
{
    for (size_t i = 0; i < c->nregions; i++)
        if (c->regions[i].r->index == index) return &c->regions[i];
    return NULL;
}

static void cmdline_text(const mt_region_t *r, char *out, size_t cap)
{
    size_t n = r->cmdline_len < cap - 1 ? r->cmdline_len : cap - 1;
    if (n > sizeof r->cmdline - 1) n = sizeof r->cmdline - 1;
    memcpy(out, r->cmdline, n);
    out[n] = 0;
    while (n > 0 && out[n - 1] == 0) n--;
    for (size_t i = 0; i < n; i++)
        if (out[i] == 0) out[i] = ' ';
}

/* The processes row of a region; parent_id and exec_of are filled at the
 * end (finish_process), when every region is known. */
static int insert_process(mt_collector_t *c, region_t *g)
{
    mt_region_t *r = g->r;
    mt_stmt_t *st;
    int rc = mt_stmt_prepare(c->cfg.db,
                             "INSERT INTO processes(id, pid, ppid, exe, cmdline, start_ts)"
                             " VALUES(?,?,?,?,?,?)",
                             &st);
    if (rc) return rc;
    char cmd[MT_CMDLINE_MAX + 1];
    char exe[MT_PATH_MAX];
    memcpy(exe, r->exe, sizeof exe);
    exe[sizeof exe - 1] = 0;
    cmdline_text(r, cmd, sizeof cmd);
    mt_stmt_bind_int(st, 1, g->process_id);
    mt_stmt_bind_int(st, 2, r->pid);
    mt_stmt_bind_int(st, 3, r->ppid);
    mt_stmt_bind_text(st, 4, exe);
    mt_stmt_bind_text(st, 5, cmd);
    mt_stmt_bind_int(st, 6, rel_ts(c, r->start_ns));
    rc = mt_stmt_run(st);
    mt_stmt_finalize(st);
    return rc;
}

/* Maps a region file once its header is published.  Returns 1 when a new
 * region was added, 0 when not (yet), < 0 on error. */
static int add_region(mt_collector_t *c, const char *name)
{
    char path[4096];
    size_t nlen = strlen(name);
    if (nlen >= sizeof c->regions[0].name || !region_path(c, name, path, sizeof path)) return 0;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || (uint64_t)sb.st_size < sizeof(mt_region_t)) {
        close(fd);
        return 0;
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return 0;
    mt_region_t *r = p;
    if (__atomic_load_n(&r->magic, __ATOMIC_ACQUIRE) != MT_REGION_MAGIC || r->version != MT_SHM_VERSION ||
        r->total_size != (uint64_t)sb.st_size || r->nchunks == 0 ||
        r->chunk_off + (uint64_t)r->nchunks * MT_CHUNK_SIZE > r->total_size ||
        r->trie_off + (uint64_t)r->trie_slots * sizeof(mt_trie_slot_t) > r->idx_off ||
        r->idx_off + (uint64_t)r->trie_slots * sizeof(uint32_t) > r->names_off ||
        r->names_off + MT_NAMES_SIZE > r->chunk_off) {
        munmap(p, (size_t)sb.st_size);
        return 0; /* not published yet (or damaged): look again later */
    }
    if (c->nregions == c->capregions) {
        size_t cap = c->capregions ? 2 * c->capregions : 8;
        region_t *n = realloc(c->regions, cap * sizeof *n);
        if (!n) {
            munmap(p, (size_t)sb.st_size);
            return MT_ENOMEM;
        }
        c->regions = n;
        c->capregions = cap;
    }
    region_t *g = &c->regions[c->nregions];
    memset(g, 0, sizeof *g);
    g->r = r;
    g->map_size = (uint64_t)sb.st_size;
    memcpy(g->name, name, nlen + 1);
    g->process_id = (int64_t)r->index + 1;
    g->consumed = calloc(r->nchunks, sizeof *g->consumed);
    g->chunk_ts = calloc(r->nchunks, sizeof *g->chunk_ts);
    g->pending = calloc(r->nchunks, sizeof *g->pending);
    g->stack_ids = calloc(r->trie_slots, sizeof *g->stack_ids);
    if (!g->consumed || !g->chunk_ts || !g->pending || !g->stack_ids) {
        free(g->consumed);
        free(g->chunk_ts);
        free(g->pending);
        free(g->stack_ids);
        munmap(p, (size_t)sb.st_size);
        return MT_ENOMEM;
    }
    /* of two images of one pid, the older was replaced by exec */
    for (size_t i = 0; i < c->nregions; i++) {
        region_t *o = &c->regions[i];
        if (o->r->pid != r->pid) continue;
        if (o->r->index < r->index) o->superseded = 1;
        else g->superseded = 1;
    }
    c->nregions++;
    if (r->index >= c->nknown) {
        size_t cap = c->nknown ? c->nknown : 64;
        while (cap <= r->index) cap *= 2;
        uint8_t *k = realloc(c->known, cap);
        if (!k) return MT_ENOMEM;
        memset(k + c->nknown, 0, cap - c->nknown);
        c->known = k;
        c->nknown = cap;
    }
    c->known[r->index] = 1;
    int rc = insert_process(c, g);
    return rc ? rc : 1;
}

/* Orders "proc.PID.INDEX" names by INDEX (creation order). */
static int by_region_index(const void *a, const void *b)
{
    const char *x = strrchr((const char *)a, '.'), *y = strrchr((const char *)b, '.');
    unsigned long i = x ? strtoul(x + 1, NULL, 10) : 0, j = y ? strtoul(y + 1, NULL, 10) : 0;
    return (i > j) - (i < j);
}

/* Whether region `index` is mapped already (c->known grows with the index). */
static int region_known(mt_collector_t *c, unsigned long index)
{
    return index < c->nknown && c->known[index];
}

static int scan_dir(mt_collector_t *c)
{
    DIR *d = opendir(c->cfg.dir);
    if (!d) return 0;
    struct dirent *de;
    int rc = 0;
    size_t n = 0, cap = 0;
    char(*names)[64] = NULL;
    while ((de = readdir(d))) {
        const char *dot = strrchr(de->d_name, '.');
        if (strncmp(de->d_name, "proc.", 5) != 0 || !dot || strlen(de->d_name) >= 64) continue;
        if (region_known(c, strtoul(dot + 1, NULL, 10))) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char(*grown)[64] = realloc(names, cap * sizeof *names);
            if (!grown) {
                rc = MT_ENOMEM;
                break;
            }
            names = grown;
        }
        memcpy(names[n++], de->d_name, strlen(de->d_name) + 1);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof names[0], by_region_index);
    for (size_t i = 0; i < n && rc >= 0; i++) rc = add_region(c, names[i]);
    free(names);
    return rc < 0 ? rc : 0;
}

/* 'R', 'S', ... from /proc/PID/stat; 0 when the process is gone. */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t k = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (k <= 0) return 0;
    buf[k] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : 0;
}

/* The next ended child: from wait4, or from the tracer thread that waits
 * for them (cfg.reaped).  Returns its pid, or 0 when there is none. */
static pid_t next_reaped(mt_collector_t *c, int *status, int64_t *maxrss, int64_t *cpu_ns)
{
    if (c->cfg.reaped) {
        pid_t p;
        return c->cfg.reaped(c->cfg.reap_ctx, &p, status, maxrss, cpu_ns) ? p : 0;
    }
    struct rusage ru;
    memset(&ru, 0, sizeof ru); /* wait4 fills it only for a child it reaps */
    pid_t p = wait4(-1, status, WNOHANG, &ru);
    if (p <= 0) return 0;
    *maxrss = (int64_t)ru.ru_maxrss * 1024;
    *cpu_ns = ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
              ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
    return p;
}

static void reap(mt_collector_t *c)
{
    int status;
    pid_t p;
    int64_t maxrss, cpu_ns;
    while ((p = next_reaped(c, &status, &maxrss, &cpu_ns)) > 0) {
        if (p == c->cfg.child) {
            c->child_reaped = 1;
            c->child_status = status;
            c->child_maxrss = maxrss;
            c->child_cpu_ns = cpu_ns;
        }
        if (c->nreaped == c->capreaped) {
            size_t cap = c->capreaped ? 2 * c->capreaped : 16;
            reaped_t *n = realloc(c->reaped, cap * sizeof *n);
            if (!n) continue;
            c->reaped = n;
            c->capreaped = cap;
        }
        c->reaped[c->nreaped++] = (reaped_t){p, status};
    }
}

static int no_children_left(mt_collector_t *c)
{
    if (c->cfg.children_left) return !c->cfg.children_left(c->cfg.reap_ctx);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 && errno == ECHILD;
}

static void sample_rss(mt_collector_t *c)
{
    for (size_t i = 0; i < c->nregions; i++) {
        region_t *g = &c->regions[i];
        if (g->closed || g->superseded) continue;
        char path[64], buf[2048];
        snprintf(path, sizeof path, "/proc/%d/status", (int)g->r->pid);
        uint32_t len = 0;
        mt_read_small_file(path, buf, sizeof buf, &len);
        uint64_t vm, rss;
        if (!len || mt_status_rss(buf, &rss, &vm)) continue;
        mt_stmt_bind_int(c->ins_rss, 1, rel_ts(c, mono_ns()));
        mt_stmt_bind_int(c->ins_rss, 2, (int64_t)__atomic_load_n(&c->cfg.session->seq, __ATOMIC_ACQUIRE));
        mt_stmt_bind_int(c->ins_rss, 3, g->process_id);
        mt_stmt_bind_int(c->ins_rss, 4, (int64_t)rss);
        mt_stmt_bind_int(c->ins_rss, 5, (int64_t)vm);
        mt_stmt_run(c->ins_rss);
    }
}

/* Closes regions whose process has ended (after one more drain). */
static int check_liveness(mt_collector_t *c, int force)
{
    for (size_t i = 0; i < c->nregions; i++) {
        region_t *g = &c->regions[i];
        if (g->closed) continue;
        int ended = force || g->superseded;
        if (!ended) {
            char s = proc_state(g->r->pid);
            ended = s == 0 || s == 'Z' || s == 'X';
        }
        if (!ended) continue;
        int crc = sample_clock(c, 1); /* its last records are all stamped before now */
        if (crc) return crc;
        long rc = drain_region_all(c, g, 1);
        if (rc < 0) return (int)rc;
        g->closed = 1;
    }
    return 0;
}

int mt_collector_run(mt_collector_t *c, volatile int *stop)
{
    int rc = mt_db_begin(c->cfg.db);
    if (rc) return rc;
    uint64_t last_scan = 0;
    for (;;) {
        long total = 0;
        if ((rc = sample_clock(c, 0))) return rc;
        for (size_t i = 0; i < c->nregions; i++) {
            if (c->regions[i].closed) continue;
            long n = drain_region_all(c, &c->regions[i], 0);
            if (n < 0) return (int)n;
            total += n;
        }
        uint64_t now = mono_ns();
        if (total == 0 || now - last_scan > 10000000ull) {
            rc = scan_dir(c);
            if (rc) return rc;
            last_scan = now;
        }
        reap(c);
        if (now - c->last_liveness > LIVENESS_NS || c->child_reaped) {
            rc = check_liveness(c, 0);
            if (rc) return rc;
            c->last_liveness = now;
        }
        if (c->cfg.rss_interval_ms && now - c->last_rss > c->cfg.rss_interval_ms * 1000000ull) {
            sample_rss(c);
            c->last_rss = now;
        }
        if (c->since_commit >= MT_COMMIT_EVENTS) {
            rc = mt_db_commit(c->cfg.db);
            if (!rc) rc = mt_db_begin(c->cfg.db);
            if (rc) return rc;
            c->since_commit = 0;
        }
        if (*stop >= 2) break;
        /* with a tracer that waits for the children, its end is the end:
         * every process it followed has ended, or it detached from them
         * (memtrace attach); the last drain below reads what is left */
        if (c->cfg.reaped && no_children_left(c)) {
            reap(c); /* exits pushed before the tracer ended */
            break;
        }
        if (c->child_reaped && no_children_left(c)) {
            int open_regions = 0;
            scan_dir(c);
            for (size_t i = 0; i < c->nregions; i++) open_regions += !c->regions[i].closed;
            if (!open_regions) break;
        }
        if (total == 0) {
            struct timespec ts = {0, 500000};
            nanosleep(&ts, NULL);
        }
    }
    /* last drain: everything any process published before it ended */
    scan_dir(c);
    rc = check_liveness(c, 1);
    if (!rc) rc = mt_db_commit(c->cfg.db);
    return rc;
}

/* ---- finishing: processes, threads, modules, frames, stacks ---- */

typedef struct {
    uint64_t ip;
    int64_t id;
} frame_slot_t;

typedef struct {
    frame_slot_t *slots;
    size_t cap, n;
} frame_map_t;

/* Inserts a frame row: a return address (symbolized later), or a Python
 * frame with the names the target resolved (symbolized = 1, python = 1). */
static int insert_frame(mt_stmt_t *ins, mt_stmt_t *ins_py, const mt_pynames_t *names, int64_t id,
                        int64_t process_id, uint64_t ip)
{
    if (!MT_IS_PYFRAME(ip)) {
        mt_stmt_bind_int(ins, 1, id);
        mt_stmt_bind_int(ins, 2, process_id);
        mt_stmt_bind_int(ins, 3, (int64_t)ip);
        return mt_stmt_run(ins);
    }
    const char *file = NULL, *func = NULL;
    const mt_pyname_t *e = mt_pyc_name(names, ip, &file, &func);
    mt_stmt_bind_int(ins_py, 1, id);
    mt_stmt_bind_int(ins_py, 2, process_id);
    mt_stmt_bind_int(ins_py, 3, (int64_t)ip);
    if (e) {
        mt_stmt_bind_textn(ins_py, 4, func, e->func_len);
        mt_stmt_bind_textn(ins_py, 5, file, e->file_len);
        if (e->line >= 0) mt_stmt_bind_int(ins_py, 6, e->line);
        else mt_stmt_bind_null(ins_py, 6);
    } else {
        for (int k = 4; k <= 6; k++) mt_stmt_bind_null(ins_py, k);
    }
    return mt_stmt_run(ins_py);
}

static int frame_id(frame_map_t *m, mt_stmt_t *ins, mt_stmt_t *ins_py, const mt_pynames_t *names,
                    int64_t process_id, uint64_t ip, int64_t *next_id, int64_t *out)
{
    if (m->n * 2 >= m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 4096;
        frame_slot_t *s = calloc(cap, sizeof *s);
        if (!s) return MT_ENOMEM;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->slots[i].id) continue;
            size_t h = (m->slots[i].ip * 0x9e3779b97f4a7c15ull >> 20) & (cap - 1);
            while (s[h].id) h = (h + 1) & (cap - 1);
            s[h] = m->slots[i];
        }
        free(m->slots);
        m->slots = s;
        m->cap = cap;
    }
    size_t h = (ip * 0x9e3779b97f4a7c15ull >> 20) & (m->cap - 1);
    while (m->slots[h].id) {
        if (m->slots[h].ip == ip) {
            *out = m->slots[h].id;
            return 0;
        }
        h = (h + 1) & (m->cap - 1);
    }
    int64_t id = (*next_id)++;
    m->slots[h] = (frame_slot_t){ip, id};
    m->n++;
    *out = id;
    return insert_frame(ins, ins_py, names, id, process_id, ip);
}

/* Writes modules, frames and stacks of one region. */
static int write_region_tables(mt_collector_t *c, region_t *g, mt_stmt_t *ins_mod, mt_stmt_t *ins_frame,
                               mt_stmt_t *ins_pyframe, mt_stmt_t *ins_stack, int64_t *next_frame)
{
    mt_region_t *r = g->r;
    mt_pynames_t *names = NULL;
    int rc = mt_pyc_names_load(r, &names);
    if (rc) return rc;
    uint32_t nmod = __atomic_load_n(&r->nmodules, __ATOMIC_ACQUIRE);
    if (nmod > MT_MAX_MODULES) nmod = MT_MAX_MODULES;
    mt_module_t *mods = mt_region_modules(r);
    for (uint32_t i = 0; i < nmod && !rc; i++) {
        char path[MT_PATH_MAX];
        memcpy(path, mods[i].path, sizeof path);
        path[sizeof path - 1] = 0;
        mt_stmt_bind_int(ins_mod, 1, g->process_id);
        mt_stmt_bind_text(ins_mod, 2, path);
        mt_stmt_bind_int(ins_mod, 3, (int64_t)mods[i].base);
        mt_stmt_bind_int(ins_mod, 4, (int64_t)mods[i].start);
        mt_stmt_bind_int(ins_mod, 5, (int64_t)mods[i].end);
        rc = mt_stmt_run(ins_mod);
    }
    if (rc) {
        mt_pyc_names_free(names);
        return rc;
    }

    uint32_t nslots = r->trie_slots;
    mt_trie_slot_t *slots = mt_region_trie(r);
    uint16_t *depth = calloc(nslots, sizeof *depth);
    uint32_t *path = malloc(sizeof *path * (MT_MAX_DEPTH + 8));
    frame_map_t fm = {0};
    if (!depth || !path) {
        rc = MT_ENOMEM;
        goto out;
    }
    uint32_t nnodes = __atomic_load_n(&r->nnodes, __ATOMIC_ACQUIRE);
    if (nnodes > nslots) nnodes = nslots;
    for (uint32_t i = 0; i < nnodes && !rc; i++) {
        if (__atomic_load_n(&slots[i].state, __ATOMIC_ACQUIRE) != 2) continue; /* claimed but never written */
        /* depth: walk up to a node of known depth (the trie has no cycles
         * unless the target damaged it: bound the walk) */
        if (!depth[i]) {
            int np = 0;
            uint32_t node = i + 1;
            while (node && node <= nslots && !depth[node - 1] && np < MT_MAX_DEPTH + 8) {
                path[np++] = node;
                node = slots[node - 1].parent;
            }
            uint16_t d = node && node <= nslots ? depth[node - 1] : 0;
            while (np > 0) depth[path[--np] - 1] = ++d;
        }
        int64_t fid;
        rc = frame_id(&fm, ins_frame, ins_pyframe, names, g->process_id, slots[i].ip, next_frame, &fid);
        if (rc) break;
        mt_stmt_bind_int(ins_stack, 1, stack_id(c, g, i + 1));
        if (slots[i].parent && slots[i].parent <= nslots)
            mt_stmt_bind_int(ins_stack, 2, stack_id(c, g, slots[i].parent));
        else
            mt_stmt_bind_null(ins_stack, 2);
        mt_stmt_bind_int(ins_stack, 3, fid);
        mt_stmt_bind_int(ins_stack, 4, depth[i]);
        rc = mt_stmt_run(ins_stack);
    }
out:
    free(depth);
    free(path);
    free(fm.slots);
    mt_pyc_names_free(names);
    return rc;
}

/* The bundled allocator's statistics of a region, when it left them. */
static int write_pym_stats(mt_collector_t *c, region_t *g)
{
    mt_region_t *r = g->r;
    if (!__atomic_load_n(&r->pym_stats_valid, __ATOMIC_ACQUIRE)) return 0;
    const pym_stats_t *ps = &r->pym_stats;
    mt_stmt_t *st;
    int rc = mt_stmt_prepare(c->cfg.db,
                             "INSERT INTO allocator_stats(process_id, seq, size_class, arenas, pools_used, pools_full,"
                             " pools_empty, blocks_used, blocks_free, bytes_in_use, bad_frees)"
                             " VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                             &st);
    if (rc) return rc;
    for (int k = -1; k < PYM_NCLASSES && !rc; k++) {
        mt_stmt_bind_int(st, 1, g->process_id);
        mt_stmt_bind_int(st, 2, (int64_t)r->pym_stats_seq);
        if (k < 0) {
            mt_stmt_bind_null(st, 3);
            mt_stmt_bind_int(st, 4, (int64_t)ps->arenas);
            mt_stmt_bind_int(st, 5, (int64_t)ps->pools_used);
            mt_stmt_bind_int(st, 6, (int64_t)ps->pools_full);
            mt_stmt_bind_int(st, 7, (int64_t)ps->pools_empty);
            mt_stmt_bind_int(st, 8, (int64_t)ps->blocks_used);
            mt_stmt_bind_int(st, 9, (int64_t)ps->blocks_free);
            mt_stmt_bind_int(st, 10, (int64_t)ps->bytes_in_use);
            mt_stmt_bind_int(st, 11, (int64_t)ps->bad_frees);
        } else {
            const pym_class_stats_t *cs = &ps->cls[k];
            mt_stmt_bind_int(st, 3, k);
            mt_stmt_bind_null(st, 4);
            mt_stmt_bind_int(st, 5, cs->pools_used);
            mt_stmt_bind_int(st, 6, cs->pools_full);
            mt_stmt_bind_int(st, 7, cs->pools_empty);
            mt_stmt_bind_int(st, 8, (int64_t)cs->blocks_used);
            mt_stmt_bind_int(st, 9, (int64_t)cs->blocks_free);
            mt_stmt_bind_null(st, 10);
            mt_stmt_bind_null(st, 11);
        }
        rc = mt_stmt_run(st);
    }
    mt_stmt_finalize(st);
    return rc;
}

static const reaped_t *find_reaped(mt_collector_t *c, pid_t pid)
{
    for (size_t i = c->nreaped; i-- > 0;)
        if (c->reaped[i].pid == pid) return &c->reaped[i];
    return NULL;
}

/* Fills end/exit columns; returns 1 when the process ended cleanly. */
static int finish_process(mt_collector_t *c, region_t *g, mt_stmt_t *upd, mt_collector_stats_t *st)
{
    mt_region_t *r = g->r;
    uint32_t flags = __atomic_load_n(&r->flags, __ATOMIC_ACQUIRE);
    int clean = 0, have_status = 0, code = 0, sig = 0;
    const reaped_t *rp = g->superseded ? NULL : find_reaped(c, r->pid);
    if (rp && WIFSIGNALED(rp->status)) {
        sig = WTERMSIG(rp->status);
    } else if (rp && WIFEXITED(rp->status)) {
        have_status = 1;
        code = WEXITSTATUS(rp->status);
        clean = 1;
    } else if (flags & MT_RG_EXITED) {
        have_status = 1;
        code = r->exit_status;
        clean = 1;
    }
    if (g->superseded) clean = 1; /* replaced by exec: nothing was cut short */
    mt_stmt_bind_null(upd, 1); /* end_ts: not observed yet */
    if (have_status) mt_stmt_bind_int(upd, 2, code);
    else mt_stmt_bind_null(upd, 2);
    if (sig) mt_stmt_bind_int(upd, 3, sig);
    else mt_stmt_bind_null(upd, 3);
    mt_stmt_bind_int(upd, 4, clean);
    mt_stmt_bind_int(upd, 5, (int64_t)__atomic_load_n(&r->free_null, __ATOMIC_RELAXED));
    mt_stmt_bind_int(upd, 6, (int64_t)__atomic_load_n(&r->lost, __ATOMIC_RELAXED));
    region_t *parent = r->parent_region >= 0 ? region_by_index(c, (uint32_t)r->parent_region) : NULL;
    region_t *prev = NULL; /* the image this one replaced: same pid, created just before */
    for (size_t i = 0; i < c->nregions; i++) {
        region_t *o = &c->regions[i];
        if (o->r->pid == r->pid && o->r->index < r->index && (!prev || o->r->index > prev->r->index)) prev = o;
    }
    if (!parent && !prev) {
        /* started by vfork or posix_spawn + exec, which make no region of
         * their own: the parent is the newest earlier image of its ppid */
        for (size_t i = 0; i < c->nregions; i++) {
            region_t *o = &c->regions[i];
            if (o->r->pid == r->ppid && o->r->index < r->index && (!parent || o->r->index > parent->r->index))
                parent = o;
        }
    }
    if (parent) mt_stmt_bind_int(upd, 7, parent->process_id);
    else mt_stmt_bind_null(upd, 7);
    if (prev) mt_stmt_bind_int(upd, 8, prev->process_id);
    else mt_stmt_bind_null(upd, 8);
    mt_stmt_bind_int(upd, 9, g->process_id);
    mt_stmt_run(upd);
    if (!clean && !st->incomplete) {
        st->incomplete = 1;
        if (sig)
            snprintf(st->reason, sizeof st->reason, "process %d killed by signal %d (%s)", (int)r->pid, sig,
                     strsignal(sig));
        else
            snprintf(st->reason, sizeof st->reason, "process %d ended without exit (killed or crashed)",
                     (int)r->pid);
    }
    if (sig) {
        /* a marker for the death, after every event of the process */
        mt_stmt_bind_int(c->ins_marker, 1, (int64_t)__atomic_load_n(&c->cfg.session->seq, __ATOMIC_ACQUIRE));
        mt_stmt_bind_int(c->ins_marker, 2, rel_ts(c, mono_ns()));
        mt_stmt_bind_null(c->ins_marker, 3);
        mt_stmt_bind_int(c->ins_marker, 4, g->process_id);
        mt_stmt_bind_int(c->ins_marker, 5, MT_MK_killed);
        mt_stmt_bind_int(c->ins_marker, 6, sig);
        mt_stmt_run(c->ins_marker);
    }
    if (__atomic_load_n(&r->lost, __ATOMIC_RELAXED) && !st->incomplete) {
        st->incomplete = 1;
        snprintf(st->reason, sizeof st->reason, "process %d lost events (collector stopped)", (int)r->pid);
    }
    return clean;
}

int mt_collector_finish(mt_collector_t *c, mt_collector_stats_t *st)
{
    memset(st, 0, sizeof *st);
    mt_db_t *db = c->cfg.db;
    mt_stmt_t *ins_mod = NULL, *ins_frame = NULL, *ins_pyframe = NULL, *ins_stack = NULL, *upd = NULL;
    int rc = mt_db_begin(db);
    if (!rc) rc = mt_stmt_prepare(db, "INSERT INTO modules(process_id, path, base, start, end) VALUES(?,?,?,?,?)",
                                  &ins_mod);
    if (!rc) rc = mt_stmt_prepare(db, "INSERT INTO frames(id, process_id, ip) VALUES(?,?,?)", &ins_frame);
    if (!rc)
        rc = mt_stmt_prepare(db,
                             "INSERT INTO frames(id, process_id, ip, function, file, line, symbolized, python)"
                             " VALUES(?,?,?,?,?,?,1,1)",
                             &ins_pyframe);
    if (!rc) rc = mt_stmt_prepare(db, "INSERT INTO stacks VALUES(?,?,?,?)", &ins_stack);
    if (!rc)
        rc = mt_stmt_prepare(db,
                             "UPDATE processes SET end_ts = ?, exit_status = ?, exit_signal = ?, complete = ?,"
                             " free_null = ?, lost_events = ?, parent_id = ?, exec_of = ? WHERE id = ?",
                             &upd);
    int64_t next_frame = 1;
    for (size_t i = 0; i < c->nregions && c->stream; i++) stream_region(c, &c->regions[i]);
    if (c->stream) {
        uint64_t seq = __atomic_load_n(&c->cfg.session->seq, __ATOMIC_ACQUIRE);
        stream_put(c, MT_STREAM_END, 0, 0, &seq, sizeof seq);
    }
    if (c->stream && fclose(c->stream) != 0)
        fprintf(stderr, "memtrace: writing the record stream failed: %s\n", strerror(errno));
    c->stream = NULL;
    for (size_t i = 0; i < c->nregions && !rc; i++) {
        rc = write_region_tables(c, &c->regions[i], ins_mod, ins_frame, ins_pyframe, ins_stack, &next_frame);
        if (!rc) finish_process(c, &c->regions[i], upd, st);
        if (!rc) rc = write_pym_stats(c, &c->regions[i]);
        if (!rc) rc = mt_pyc_write_info(db, c->regions[i].process_id, c->regions[i].r);
        if (!rc) rc = mt_pyc_gc_write(db, &c->regions[i].gc, c->regions[i].process_id);
        st->python_processes += c->regions[i].r->py.present != 0;
        st->chunk_waits += (int64_t)__atomic_load_n(&c->regions[i].r->chunk_waits, __ATOMIC_RELAXED);
    }
    if (!rc) rc = mt_db_commit(db);
    mt_stmt_finalize(ins_mod);
    mt_stmt_finalize(ins_frame);
    mt_stmt_finalize(ins_pyframe);
    mt_stmt_finalize(ins_stack);
    mt_stmt_finalize(upd);
    /* sealing the events needs every statement of the connection closed */
    mt_stmt_finalize(c->ins_marker);
    mt_stmt_finalize(c->ins_thread);
    mt_stmt_finalize(c->ins_rss);
    mt_stmt_finalize(c->ins_mallinfo);
    c->ins_marker = c->ins_thread = c->ins_rss = c->ins_mallinfo = NULL;
    if (rc) return rc;
    rc = mt_symbolize(db, NULL);
    if (rc) return rc;
    rc = mt_db_build_indexes(db);
    if (!rc) rc = mt_pyc_triggers(db);
    if (rc) return rc;
    st->events = c->events;
    st->markers = c->markers;
    st->processes = (int64_t)c->nregions;
    st->threads = c->next_thread_id;
    st->child_status = c->child_status;
    st->child_maxrss = c->child_maxrss;
    st->child_cpu_ns = c->child_cpu_ns;
    if (c->child_reaped && WIFSIGNALED(c->child_status) && !st->incomplete) {
        st->incomplete = 1;
        snprintf(st->reason, sizeof st->reason, "program killed by signal %d (%s)", WTERMSIG(c->child_status),
                 strsignal(WTERMSIG(c->child_status)));
    }
    return 0;
}
