/* mt_collector.h - drains the shared-memory regions of a session into a
 * trace database.
 *
 * Place in the pipeline: the launcher (tracer/run.c) creates the session,
 * starts the target, and hands the loop to the collector, which maps every
 * process region that appears in the session directory, turns records into
 * rows, samples RSS, and, once every traced process has ended, writes
 * processes, threads, modules, frames and stacks and symbolizes them.
 */
#ifndef MT_COLLECTOR_H
#define MT_COLLECTOR_H

#include "mt_db.h"
#include "mt_shm.h"

#include <stdint.h>
#include <sys/types.h>

typedef struct mt_collector mt_collector_t;

typedef struct {
    const char *dir;          /* session directory */
    mt_session_t *session;    /* mapped session file */
    mt_db_t *db;              /* trace being written (owned by the caller) */
    pid_t child;              /* the launched program */
    unsigned rss_interval_ms; /* 0: no sampling */
    /* When set, another thread waits for the children (the ptrace tracer,
     * mt_ptrace.h): the collector takes process exits from `reaped` and
     * asks `children_left` instead of calling wait itself. */
    int (*reaped)(void *ctx, pid_t *pid, int *status, int64_t *maxrss, int64_t *cpu_ns);
    int (*children_left)(void *ctx);
    void *reap_ctx;
} mt_collector_cfg_t;

/* Totals the launcher prints at the end. */
typedef struct {
    int64_t events;
    int64_t processes;
    int64_t threads;
    int64_t markers;
    int64_t chunk_waits; /* times a traced thread waited for the collector */
    int64_t python_processes; /* processes that ran a CPython interpreter */
    int child_status;  /* wait status of the launched program */
    int64_t child_maxrss; /* its peak resident set, bytes (0: unknown) */
    int64_t child_cpu_ns; /* its user + system time (0: unknown) */
    int incomplete;    /* some process ended without a clean exit */
    char reason[256];  /* why incomplete */
} mt_collector_stats_t;

/* The recorded stream (a benchmarking aid, docs/performance.md): with
 * MEMTRACE_RECORD_STREAM=FILE in its environment the collector appends to
 * FILE every record it converts, in the order it converts them, and at the
 * end what it read of each region besides the chunks, so that
 * bench/collector_replay.c can feed the same stream to a collector alone.
 * FILE: an mt_stream_head_t, then blocks, each an mt_stream_block_t and
 * `size` bytes of the kind's data.  Host byte order. */
#define MT_STREAM_ENV   "MEMTRACE_RECORD_STREAM"
#define MT_STREAM_MAGIC 0x4d5453545245414dULL /* "MTSTREAM" */

typedef struct {
    uint64_t magic;
    uint32_t version;  /* MT_SHM_VERSION */
    uint32_t pad;
    mt_session_t session; /* as the collector started */
} mt_stream_head_t;

enum {
    MT_STREAM_RECORDS = 1, /* mt_rec_t[] read from one chunk of thread `tid` */
    MT_STREAM_REGION = 2,  /* the mt_region_t header, at the end */
    MT_STREAM_MODULES = 3, /* mt_module_t[nmodules] */
    MT_STREAM_NODES = 4,   /* mt_stream_node_t[]: the published trie nodes in log order */
    MT_STREAM_NAMES = 5,   /* the names area in use (py.names_used bytes) */
    MT_STREAM_END = 6,     /* uint64_t: the session's next sequence number at the end */
};

typedef struct {
    uint32_t kind;   /* MT_STREAM_* */
    uint32_t region; /* mt_region_t.index */
    int32_t tid;     /* MT_STREAM_RECORDS: the chunk's owner */
    uint32_t size;   /* bytes that follow */
} mt_stream_block_t;

typedef struct {
    uint32_t id;     /* node id (slot + 1) */
    uint32_t pad;
    mt_trie_slot_t slot;
} mt_stream_node_t;

int mt_collector_new(const mt_collector_cfg_t *cfg, mt_collector_t **out);
void mt_collector_free(mt_collector_t *c);

/* Runs until the launched program and every traced process have ended
 * (or *stop becomes 2: then whatever is in the regions is drained and the
 * loop ends).  Returns 0 or a negative MT_E* (database errors: the loop
 * stops, what was written stays). */
int mt_collector_run(mt_collector_t *c, volatile int *stop);

/* Writes processes, threads, modules, frames, stacks; symbolizes; builds
 * indexes; fills meta counters.  Call once after mt_collector_run. */
int mt_collector_finish(mt_collector_t *c, mt_collector_stats_t *stats);

#endif
