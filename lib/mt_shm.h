/* mt_shm.h - the shared-memory contract between the preload library (in the
 * target) and the collector (in the memtrace launcher).
 *
 * Why shared memory: a target killed with SIGKILL cannot flush anything.
 * Every record is written straight into a file on tmpfs that the collector
 * maps too, so whatever left a hook survives the target's death.
 *
 * Files, all in one session directory (MEMTRACE_SHM_DIR, made by the
 * launcher under /dev/shm):
 *
 *   session            one mt_session_t: global sequence counter, options
 *   proc.<pid>.<n>     one region per process image (fork and exec each
 *                      make a new one), created by the preload library
 *
 * Region layout (offsets in mt_region_t):
 *
 *   +------------------+ 0
 *   | mt_region_t      |  header: identity, counters, flags
 *   +------------------+ mod_off
 *   | mt_module_t[]    |  loaded objects (dl_iterate_phdr snapshot)
 *   +------------------+ trie_off
 *   | mt_trie_slot_t[] |  stack trie: (parent id, ip) -> id, lock-free
 *   +------------------+ log_off
 *   | uint32_t[]       |  node log: ids in order of insertion (nnodes used)
 *   +------------------+ names_off
 *   | Python names     |  mt_pyname_t entries (Python frames resolved in
 *   |                  |  the target while its interpreter is alive)
 *   +------------------+ chunk_off
 *   | chunk 0..n-1     |  MT_CHUNK_SIZE each: mt_chunk_t + records
 *   +------------------+
 *
 * Chunks.  A thread owns one chunk at a time and appends fixed-size
 * mt_rec_t records to it; after each record it publishes the new fill level
 * with a release store to `used`.  When a chunk is full the thread marks it
 * FULL and claims a FREE one with a compare-and-swap.  The collector reads
 * [consumed, used) of every OWNED or FULL chunk; once a FULL chunk is read
 * to the end it sets it FREE again.  Key invariant: only the owning thread
 * writes records and `used`; only the collector turns FULL into FREE.
 *
 * Stack trie.  Node id = slot index + 1 (0 is the empty stack).  A slot is
 * claimed by CAS on `state` (0 -> 1), filled, then published by storing
 * state = 2 with release order; readers skip slots in state 1 until they
 * become 2.  Nodes are never removed, so ids are stable for the life of the
 * region and the collector may read the table at any time.  Each inserted
 * id is also appended to the node log (index from an atomic counter, the id
 * stored after it), so the collector visits the nodes without scanning the
 * whole table; a log entry still 0 was never completed and is skipped.
 */
#ifndef MT_SHM_H
#define MT_SHM_H

#include <stdint.h>

#include "pym.h"

#define MT_SESSION_MAGIC 0x4d54534553534e31ULL /* "MTSESSN1" */
#define MT_REGION_MAGIC  0x4d54524547494f31ULL /* "MTREGIO1" */
#define MT_SHM_VERSION   5

#define MT_CHUNK_SIZE     (64u * 1024u)
#define MT_DEFAULT_CHUNKS 1024u     /* 64 MiB of address space per process */
#define MT_TRIE_SLOTS     (1u << 20) /* stack trie nodes per process */
#define MT_MAX_MODULES    1024u
#define MT_PATH_MAX       512
#define MT_CMDLINE_MAX    2048
#define MT_MAX_DEPTH      256
#define MT_NAMES_SIZE     (8u << 20) /* Python frame names per process (sparse) */

/* Options the launcher hands to every traced process. */
typedef struct {
    uint32_t stack_depth; /* 0: no stacks */
    uint32_t flags;       /* MT_OPT_* */
    uint32_t unwind;      /* MT_UNWIND_* */
    uint32_t pad;
} mt_options_t;

/* Unwinders (see tracer/preload.c) */
enum { MT_UNWIND_AUTO = 0, MT_UNWIND_FP = 1, MT_UNWIND_DWARF = 2 };

#define MT_OPT_FREE_STACKS 1u /* also unwind at free() (off by default) */
#define MT_OPT_BUNDLED 2u     /* the bundled allocator serves malloc (--allocator=bundled) */
#define MT_OPT_PY_OFF 4u      /* --python=off: no CPython capture */
#define MT_OPT_PY_ON 8u       /* --python=on: say so when no interpreter is found */
#define MT_OPT_PY_NATIVE 16u  /* --python-native: full native stacks for Python-domain events */
#define MT_OPT_TSC 32u        /* record ts are time-stamp counter ticks (lib/mt_clock.h) */

typedef struct {
    uint64_t magic;
    uint32_t version;
    int32_t collector_pid;    /* a target whose collector is gone stops tracing */
    uint64_t start_ns;        /* CLOCK_MONOTONIC at session start */
    mt_options_t opt;
    uint64_t start_tsc;       /* MT_OPT_TSC: the time-stamp counter at start_ns */
    uint8_t pad0[64 - 48];
    uint64_t seq;             /* next sequence number (atomic), own cache line */
    uint8_t pad1[56];
    uint32_t region_count;    /* regions created so far (atomic) */
} mt_session_t;

/* Chunk states */
enum { MT_CHUNK_FREE = 0, MT_CHUNK_OWNED = 1, MT_CHUNK_FULL = 2 };

typedef struct {
    uint32_t state; /* MT_CHUNK_* (atomic) */
    int32_t tid;    /* owner thread */
    uint64_t used;  /* bytes of records published (atomic, release) */
    uint64_t pad[6];
} mt_chunk_t;      /* 64 bytes; records follow */

#define MT_CHUNK_DATA (MT_CHUNK_SIZE - sizeof(mt_chunk_t))

/* Record types */
enum {
    MT_REC_EVENT = 1,  /* a heap or mapping event: kind in `kind` */
    MT_REC_MARKER = 2, /* a timeline marker: marker code in `kind`, value in size */
    MT_REC_GC = 3,     /* a CPython collection: kind 0 start, 1 stop; size = generation,
                        * addr = collected, old_addr = uncollectable (stop only) */
};

/* One record, 48 bytes, identical for every type (simple and branch-free on
 * the hot path; compaction is the collector's job). */
typedef struct {
    uint8_t type;      /* MT_REC_* */
    uint8_t kind;      /* mt_kind_t or mt_marker_t */
    uint16_t flags;    /* MT_RF_* */
    uint32_t stack;    /* trie node id of the innermost frame, 0 = none */
    uint64_t seq;      /* global order */
    uint64_t ts;       /* CLOCK_MONOTONIC ns, or TSC ticks with MT_OPT_TSC */
    uint64_t addr;     /* result / freed address */
    uint64_t size;     /* requested size, or marker value */
    uint64_t old_addr; /* realloc, mremap: the block that was replaced */
} mt_rec_t;

/* For bundled-allocator events (kind >= MT_KIND_PYM_BASE): addr is the
 * block (or the pool, or the arena, for their events), size the event's
 * value, old_addr the pool, stack the size class + 1 (0: none). */
#define MT_RF_FAILED 1u /* the call failed (NULL or MAP_FAILED result) */
#define MT_RF_STACK_TRUNCATED 2u /* stack deeper than stack_depth */
/* Bits 8-11: the domain (mt_domain_t) of the higher-layer call this event
 * serves, 0 at top level (a malloc inside PyMem_RawMalloc: pymem_raw). */
#define MT_RF_VIA_SHIFT 8
#define MT_RF_VIA_GET(f) (((unsigned)(f) >> MT_RF_VIA_SHIFT) & 15u)

typedef struct {
    uint64_t start, end; /* text/data address range covered */
    uint64_t base;       /* load bias (dlpi_addr) */
    char path[MT_PATH_MAX];
} mt_module_t;

typedef struct {
    uint64_t ip;
    uint32_t parent; /* node id of the caller's node, 0 = root */
    uint32_t state;  /* 0 empty, 1 being written, 2 published (atomic) */
} mt_trie_slot_t;

/* Region flags */
#define MT_RG_EXITED    1u  /* exit() ran (status in exit_status) */
#define MT_RG_FORKED    2u  /* this process is a fork child */
#define MT_RG_EXECED    4u  /* an earlier image of this pid was traced */
#define MT_RG_TRIE_FULL 8u  /* stack trie overflowed: some stacks are truncated */
#define MT_RG_DISABLED  16u /* tracing stopped (collector gone) */

/* Python frames.  A Python frame in a stack is an "ip" with bit 63 set:
 * the code object's address >> 4 in bits 20-62 and the instruction
 * (code-unit) offset in bits 0-19.  Its name is resolved in the target. */
#define MT_PYFRAME_TAG (1ull << 63)
#define MT_PYFRAME(code, off) \
    (MT_PYFRAME_TAG | (((uint64_t)(code) >> 4) << 20) | ((uint64_t)(off) & 0xfffffu))
#define MT_IS_PYFRAME(ip) (((uint64_t)(ip) & MT_PYFRAME_TAG) != 0)

/* One resolved Python frame in the names area: file and function names
 * follow the header (not NUL-terminated); entries are 8-byte aligned. */
typedef struct {
    uint64_t ip;       /* MT_PYFRAME value */
    int32_t line;      /* -1: unknown */
    uint16_t file_len, func_len;
} mt_pyname_t;
#define MT_PYNAME_SIZE(e) ((sizeof(mt_pyname_t) + (e)->file_len + (e)->func_len + 7u) & ~7u)

#define MT_PY_CLASSES 64

/* What the preload library found out about a CPython interpreter in the
 * process (mt_region_t.py); written by the target, read at the end. */
typedef struct {
    uint32_t present;          /* 1: an interpreter's allocator API was found */
    uint32_t installs;         /* domain wrapper installations */
    uint64_t hexversion;       /* PY_VERSION_HEX, 0 if unknown */
    char version[32];
    char allocator[24];        /* _PyMem_GetCurrentAllocatorName() at install */
    uint32_t arena_size, pool_size, size_classes, small_max;
    uint32_t frames;           /* 1: Python frames are captured */
    int32_t gc_threshold[3];
    uint64_t gc_callback_seq;  /* 0: no GC callback */
    int64_t gc_before[3];      /* gc.get_stats() collections at the callback's install */
    int64_t gc_after[3];       /* the same at atexit; -1: not reached */
    uint64_t names_used;       /* bytes of the names area in use (atomic, release) */
    int64_t startup_rss;       /* resident bytes when the user's code started; -1: unknown */
    uint32_t stats_valid;      /* 1: the pymalloc figures below are set */
    uint32_t pad;
    uint64_t stats_seq;        /* events with seq < this are reflected */
    int64_t allocated_blocks;  /* sys.getallocatedblocks() */
    int64_t arenas_allocated, arenas_reclaimed, arenas_highwater, arenas_current;
    int64_t class_used[MT_PY_CLASSES];  /* blocks in use per size class */
    int64_t class_pools[MT_PY_CLASSES]; /* pools per size class */
    char note[256];            /* what could not be captured, and why */
} mt_pyinfo_t;

typedef struct {
    uint64_t magic;
    uint32_t version;
    uint32_t index;          /* order of creation in the session */
    int32_t pid, ppid;
    int32_t parent_region;   /* index of the parent's region (fork), -1 */
    int32_t exit_status;
    uint32_t flags;          /* MT_RG_* (atomic) */
    uint32_t nchunks;
    uint64_t start_ns;
    uint64_t mod_off, trie_off, log_off, names_off, chunk_off, total_size;
    uint32_t nnodes;         /* node log entries claimed (atomic) */
    uint32_t pad1;
    uint32_t trie_slots;
    uint32_t nmodules;       /* published modules (atomic) */
    uint32_t mod_lock;       /* spin lock for appending modules (cold path) */
    uint32_t pad0;
    uint64_t free_null;      /* free(NULL) calls (atomic, not events) */
    uint64_t lost;           /* events dropped (tracing disabled) */
    uint64_t chunk_waits;    /* times a thread waited for a free chunk */
    char exe[MT_PATH_MAX];
    char cmdline[MT_CMDLINE_MAX]; /* NUL-separated argv, cmdline_len bytes */
    uint32_t cmdline_len;
    uint32_t pym_stats_valid;     /* 1 once pym_stats below is written (atomic) */
    uint64_t pym_stats_seq;       /* sequence number taken right after the snapshot */
    pym_stats_t pym_stats;        /* --allocator=bundled: the allocator's own
                                   * statistics when the process exited */
    mt_pyinfo_t py;               /* CPython, when the process runs one */
} mt_region_t;

#define MT_PAGE_ROUND(x) (((uint64_t)(x) + 4095) & ~(uint64_t)4095)
#define MT_REGION_SIZE(nchunks, slots)                                         \
    (MT_PAGE_ROUND(sizeof(mt_region_t)) +                                      \
     MT_PAGE_ROUND((uint64_t)MT_MAX_MODULES * sizeof(mt_module_t)) +           \
     MT_PAGE_ROUND((uint64_t)(slots) * sizeof(mt_trie_slot_t)) +               \
     MT_PAGE_ROUND((uint64_t)(slots) * sizeof(uint32_t)) + MT_NAMES_SIZE +      \
     (uint64_t)(nchunks) * MT_CHUNK_SIZE)

/* Sets the offsets of a new region of `nchunks` chunks and `slots` trie
 * slots (the layout above), its total size and its counts. */
static inline void mt_region_layout(mt_region_t *r, uint32_t nchunks, uint32_t slots)
{
    r->nchunks = nchunks;
    r->trie_slots = slots;
    r->mod_off = MT_PAGE_ROUND(sizeof(mt_region_t));
    r->trie_off = r->mod_off + MT_PAGE_ROUND((uint64_t)MT_MAX_MODULES * sizeof(mt_module_t));
    r->log_off = r->trie_off + MT_PAGE_ROUND((uint64_t)slots * sizeof(mt_trie_slot_t));
    r->names_off = r->log_off + MT_PAGE_ROUND((uint64_t)slots * sizeof(uint32_t));
    r->chunk_off = r->names_off + MT_NAMES_SIZE;
    r->total_size = MT_REGION_SIZE(nchunks, slots);
}

static inline mt_chunk_t *mt_region_chunk(mt_region_t *r, uint32_t i)
{
    return (mt_chunk_t *)((char *)r + r->chunk_off + (uint64_t)i * MT_CHUNK_SIZE);
}
static inline mt_module_t *mt_region_modules(mt_region_t *r)
{
    return (mt_module_t *)((char *)r + r->mod_off);
}
static inline mt_trie_slot_t *mt_region_trie(mt_region_t *r)
{
    return (mt_trie_slot_t *)((char *)r + r->trie_off);
}
static inline uint32_t *mt_region_log(mt_region_t *r)
{
    return (uint32_t *)((char *)r + r->log_off);
}
static inline char *mt_region_names(mt_region_t *r)
{
    return (char *)r + r->names_off;
}

/* Environment variables from launcher to target */
#define MT_ENV_DIR "MEMTRACE_SHM_DIR"

#endif
