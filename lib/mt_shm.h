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
 *   | mt_trie_slot_t[] |  stack trie nodes, in order of insertion (id = index + 1;
 *   |                  |  nnodes of them claimed)
 *   +------------------+ idx_off
 *   | uint32_t[]       |  the trie's hash index: (parent id, ip) -> id, lock-free
 *   +------------------+ names_off
 *   | Python names     |  mt_pyname_t entries (Python frames resolved in
 *   |                  |  the target while its interpreter is alive)
 *   +------------------+ chunk_off
 *   | chunk 0..n-1     |  MT_CHUNK_SIZE each: mt_chunk_t + records
 *   +------------------+
 *
 * Chunks.  A thread owns one chunk at a time and appends records to it:
 * mt_rec_t (48 bytes), or for a heap event without old_addr the compact
 * mt_rec32_t (32 bytes) whose time is that of the chunk's last MT_REC_TS
 * record; after each record it publishes the new fill level with a release
 * store to `used`.  When a chunk is full the thread marks it
 * FULL and claims a FREE one with a compare-and-swap.  The collector reads
 * [consumed, used) of every OWNED or FULL chunk; once a FULL chunk is read
 * to the end it sets it FREE again.  Key invariant: only the owning thread
 * writes records and `used`; only the collector turns FULL into FREE.
 *
 * Stack trie.  Node id = node index + 1 (0 is the empty stack).  The hash
 * index maps (parent, ip) to an id by open addressing: an empty entry is
 * claimed by CAS (0 -> MT_TRIE_BUSY), the next node index is taken from
 * the atomic `nnodes`, the node is written and published (state = 2,
 * release), and the entry set to the id (release); readers of a BUSY
 * entry wait until it is set.  Nodes lie one
 * after the other, so a program's new stacks touch new pages of the node
 * array in order (a table of nodes placed by hash touched a random page of
 * its 16 MiB per new node: thousands of page faults, each zeroing a page,
 * when an interpreter starts).  Nodes are never removed, so ids are stable
 * for the life of the region and the collector may read the nodes at any
 * time, ids 1 to nnodes; a node not in state 2 was claimed but not (yet)
 * written and is skipped.
 */
#ifndef MT_SHM_H
#define MT_SHM_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include "mt_clock.h"
#include "pym.h"

#define MT_SESSION_MAGIC 0x4d54534553534e31ULL /* "MTSESSN1" */
#define MT_REGION_MAGIC  0x4d54524547494f31ULL /* "MTREGIO1" */
#define MT_SHM_VERSION   11

#define MT_CHUNK_SIZE     (64u * 1024u)
#define MT_DEFAULT_CHUNKS 1024u     /* 64 MiB of address space per process */
#define MT_TRIE_SLOTS     (1u << 20) /* stack trie nodes per process */
#define MT_MAX_MODULES    1024u
#define MT_PATH_MAX       512
#define MT_CMDLINE_MAX    2048
#define MT_MAX_DEPTH      256
#define MT_NAMES_SIZE     (8u << 20) /* Python frame names per process (sparse) */
#define MT_ACTIVE_CHUNKS  4096u      /* chunks tracked by mt_region_t.active */

/* Options the launcher hands to every traced process. */
typedef struct {
    uint32_t stack_depth; /* 0: no stacks */
    uint32_t flags;       /* MT_OPT_* */
    uint32_t unwind;      /* MT_UNWIND_* */
    uint32_t malloc_stats_ms; /* glibc's mallinfo2 every this many ms (0: at exit only) */
} mt_options_t;

/* Unwinders (see tracer/preload.c) */
enum { MT_UNWIND_AUTO = 0, MT_UNWIND_FP = 1, MT_UNWIND_DWARF = 2 };

#define MT_OPT_FREE_STACKS 1u /* also unwind at free() (off by default) */
#define MT_OPT_BUNDLED 2u     /* the bundled allocator serves malloc (--allocator=bundled) */
#define MT_OPT_PY_OFF 4u      /* --python=off: no CPython capture */
#define MT_OPT_PY_ON 8u       /* --python=on: say so when no interpreter is found */
#define MT_OPT_PY_NATIVE 16u  /* --python-native: full native stacks for Python-domain events */
#define MT_OPT_TSC 32u        /* record ts are time-stamp counter ticks (lib/mt_clock.h) */
#define MT_OPT_PRECISE_TS 128u /* --precise-times: every record reads the clock itself
                               * (by default heap events take the session's shared
                               * clock word, mt_session_t.clock) */
#define MT_OPT_OS_SYSCALLS 64u /* --os=syscalls: the launcher records mmap, munmap, mremap,
                               * brk and madvise as system calls (tracer/ptrace.c); the
                               * preload library leaves them alone and tells the launcher,
                               * through MT_MADV_MEMTRACE calls, where its per-thread
                               * call state lives */

/* --os=syscalls: a madvise with this advice never reaches any real advice;
 * the launcher's seccomp filter stops on it and reads the arguments
 * (the kernel then fails it with EINVAL).  syscall(SYS_madvise, a, b,
 * MT_MADV_MEMTRACE, op):
 *   op MT_HELLO_TLS:    a, b = offsets from the thread pointer of the
 *                       preload's per-thread words t_in_hook and t_serving
 *   op MT_HELLO_REGION: a = index of the region this image just created */
#define MT_MADV_MEMTRACE 0x4d54
enum { MT_HELLO_TLS = 1, MT_HELLO_REGION = 2 };

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
    uint8_t pad2[60];
    /* The shared clock: the launcher stores the time (in the units of
     * record ts: TSC ticks with MT_OPT_TSC, else ns) here every
     * MT_CLOCK_PERIOD_NS; a hook reads it (one load, mostly from its own
     * cache) instead of the time-stamp counter, which cost the hot hooks
     * 10-40 ns an event.  0: not ticking (read the clock instead).  Own
     * cache line. */
    uint64_t clock;
    uint8_t pad3[56];
} mt_session_t;

#define MT_CLOCK_PERIOD_NS 100000u /* the shared clock's step: 100 us */

/* mt_session_clock: a reading of the clock in the session's units (for
 * what needs more than the shared clock's step: a CPython collection's
 * start and stop).  mt_session_now: the time for a record: the shared
 * clock while it ticks, else a reading of the clock.  All records of a process - the
 * preload library's and the system-call tracer's - take it from the same
 * word, so one thread's times follow its order. */
static inline uint64_t mt_session_clock(const mt_session_t *s)
{
    return (s->opt.flags & MT_OPT_TSC) ? mt_clock_rdtsc() : mt_clock_mono_ns();
}
static inline uint64_t mt_session_now(const mt_session_t *s)
{
    uint64_t c = __atomic_load_n(&s->clock, __ATOMIC_RELAXED);
    return c ? c : mt_session_clock(s);
}

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
    MT_REC_RSS = 3,    /* a resident-memory sample (rss_samples), taken by the tracer
                        * right after an OS event: addr = resident bytes, size =
                        * virtual bytes, seq = that event's seq + 1 (not a number
                        * of its own) */
    MT_REC_MALLINFO = 4, /* the C library's view of its heap (mallinfo2) at exit,
                          * in three records (part in `kind`), seq = the session's
                          * next number then (not a number of its own):
                          *   part 0: addr = arena, size = uordblks, old_addr = fordblks
                          *   part 1: addr = fsmblks, size = keepcost, old_addr = hblkhd
                          *   part 2: addr = hblks, size = ordblks */
    MT_REC_GC = 5,     /* a CPython collection: kind 0 start, 1 stop; size = generation,
                        * addr = collected, old_addr = uncollectable (stop only) */
    MT_REC_EV32 = 6,   /* an event as MT_REC_EVENT, old_addr 0, in an mt_rec32_t:
                        * its ts is that of the last MT_REC_TS before it in the
                        * same chunk */
    MT_REC_TS = 7,     /* an mt_rec32_t: `addr` holds the time of the MT_REC_EV32
                        * records after it in this chunk; seq 0 (no number) */
    MT_REC_SKIP = 8,   /* a number taken to name a moment (python.stats_seq, the
                        * GC callback's, the bundled allocator's statistics):
                        * no event has it, and the collector need not wait for one */
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

/* The compact record, 32 bytes: mt_rec_t without ts and old_addr, its
 * first 16 bytes laid out alike.  A third less for the program to write
 * and the collector to read than mt_rec_t, and the time moves in steps of
 * the shared clock (MT_CLOCK_PERIOD_NS), so one MT_REC_TS serves many
 * events. */
typedef struct {
    uint8_t type;  /* MT_REC_EV32 or MT_REC_TS */
    uint8_t kind;
    uint16_t flags;
    uint32_t stack;
    uint64_t seq;
    uint64_t addr; /* MT_REC_TS: the time */
    uint64_t size;
} mt_rec32_t;
_Static_assert(sizeof(mt_rec_t) == 48 && sizeof(mt_rec32_t) == 32, "record sizes");

/* The length of a record of type `type`: 48 bytes but for the compact
 * types (an unknown type, from a damaged target, is skipped as 48). */
static inline uint64_t mt_rec_len(uint8_t type)
{
    return type == MT_REC_EV32 || type == MT_REC_TS ? sizeof(mt_rec32_t) : sizeof(mt_rec_t);
}

/* For bundled-allocator events (kind >= MT_KIND_PYM_BASE): addr is the
 * block (or the pool, or the arena, for their events), size the event's
 * value, old_addr the pool, stack the size class + 1 (0: none). */
#define MT_RF_FAILED 1u /* the call failed (NULL or MAP_FAILED result) */
#define MT_RF_STACK_TRUNCATED 2u /* stack deeper than stack_depth */
/* Bits 8-11: the domain (mt_domain_t) of the higher-layer call this event
 * serves, 0 at top level (a malloc inside PyMem_RawMalloc: pymem_raw). */
#define MT_RF_VIA_SHIFT 8
#define MT_RF_VIA_GET(f) (((unsigned)(f) >> MT_RF_VIA_SHIFT) & 15u)
/* In the 4-bit field 0 means top level, so the libc domain (code 0) is
 * written as 15: an mmap that glibc's malloc makes while serving a malloc
 * call.  The collector stores it as via = 0 (see docs/schema.md). */
#define MT_RF_VIA_LIBC 15u
/* Not a via code: the preload library's t_serving value while it maps or
 * unmaps memory of its own (region, per-thread state, libunwind's caches),
 * which the system-call tracer leaves out. */
#define MT_SERVING_OWN 14u
/* The preload library's t_serving value while it makes a mapping call that
 * its hook records itself (a file mmap, which cannot carry the tag below):
 * the tracer leaves it out. */
#define MT_SERVING_HOOKED 13u

/* --os=syscalls: mapping calls the preload hooks record themselves carry
 * this tag where the kernel ignores it, and the seccomp filter lets them
 * run without a stop: munmap's third argument, mremap's sixth (both
 * unused), and, for an anonymous mmap, the offset (ignored for anonymous
 * mappings; page-aligned and far beyond any file). */
#define MT_SYSCALL_TAG 0x4d54a77a9c0ffee1ull
#define MT_SYSCALL_TAG_OFFSET 0x4d5400000000ull

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
    uint64_t mod_off, trie_off, idx_off, names_off, chunk_off, total_size;
    uint32_t nnodes;         /* stack trie nodes claimed (atomic) */
    uint32_t pad1;
    uint32_t trie_slots;
    uint32_t nmodules;       /* published modules (atomic) */
    uint32_t mod_lock;       /* spin lock for appending modules (cold path) */
    uint32_t pad0;
    uint64_t free_null;      /* free(NULL) calls (atomic, not events) */
    uint64_t lost;           /* events dropped (tracing disabled) */
    uint64_t chunk_waits;    /* times a thread waited for a free chunk */
    /* The break after the last brk call recorded in this process, by the
     * hooks (the C library's brk) or by the tracer (a raw system call): the
     * next one's old_addr, whoever records it (atomic; 0: none yet). */
    uint64_t brk_now;
    /* Bit i: chunk i may hold records (set when it is claimed, cleared by
     * the collector before it frees it): the collector visits these, not
     * every chunk's header (1024 headers on their own pages: a cost per
     * pass, and pages of shared memory made for nothing).  Chunks past
     * MT_ACTIVE_CHUNKS are always visited. */
    uint64_t active[MT_ACTIVE_CHUNKS / 64];
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

/* Fills the offsets and sizes of a region of `nchunks` chunks and `slots`
 * trie slots (a power of two), in the order of the diagram above. */
static inline void mt_region_layout(mt_region_t *r, uint32_t nchunks, uint32_t slots)
{
    r->nchunks = nchunks;
    r->trie_slots = slots;
    r->mod_off = MT_PAGE_ROUND(sizeof(mt_region_t));
    r->trie_off = r->mod_off + MT_PAGE_ROUND((uint64_t)MT_MAX_MODULES * sizeof(mt_module_t));
    r->idx_off = r->trie_off + MT_PAGE_ROUND((uint64_t)slots * sizeof(mt_trie_slot_t));
    r->names_off = r->idx_off + MT_PAGE_ROUND((uint64_t)slots * sizeof(uint32_t));
    r->chunk_off = r->names_off + MT_NAMES_SIZE;
    r->total_size = MT_REGION_SIZE(nchunks, slots);
}

/* Reads a small file (/proc/PID/cmdline) into buf, NUL-terminated, for a
 * region's header: the preload library fills its own (hook context: no
 * allocation), the launcher's tracer those of the processes it makes
 * regions for.  *len (when not NULL) gets the bytes read. */
static inline void mt_read_small_file(const char *path, char *buf, size_t cap, uint32_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    if (fd >= 0) {
        ssize_t k;
        while (got < cap - 1 && (k = read(fd, buf + got, cap - 1 - got)) > 0) got += (size_t)k;
        close(fd);
    }
    buf[got] = 0;
    if (len) *len = (uint32_t)got;
}

/* Resident and virtual bytes of a process from its /proc/PID/status text:
 * resident = RssAnon + RssFile, leaving out RssShmem - shared memory, where
 * memtrace's own record buffers are (up to 64 MiB a process), so they do not
 * count as the program's.  Returns 0, or -1 when the fields are missing.
 * No allocation (hook context). */
static inline int mt_status_rss(const char *buf, uint64_t *rss, uint64_t *vm)
{
    static const char *const keys[3] = {"RssAnon:", "RssFile:", "VmSize:"};
    uint64_t v[3] = {0, 0, 0};
    int found = 0;
    for (const char *p = buf; *p;) {
        for (int k = 0; k < 3; k++) {
            size_t n = 0;
            while (keys[k][n] && p[n] == keys[k][n]) n++;
            if (keys[k][n]) continue;
            const char *q = p + n;
            while (*q == ' ' || *q == '\t') q++;
            while (*q >= '0' && *q <= '9') v[k] = v[k] * 10 + (uint64_t)(*q++ - '0');
            found |= 1 << k;
        }
        while (*p && *p != '\n') p++;
        if (*p) p++;
    }
    if (found != 7) return -1;
    *rss = (v[0] + v[1]) * 1024; /* kB */
    *vm = v[2] * 1024;
    return 0;
}

static inline mt_chunk_t *mt_region_chunk(mt_region_t *r, uint32_t i)
{
    return (mt_chunk_t *)((char *)r + r->chunk_off + (uint64_t)i * MT_CHUNK_SIZE);
}
/* Claims a FREE chunk for thread `tid`, looking from chunk `first` on
 * (round the end), and marks it active; NULL when every chunk is in use.
 * *index gets its number.  The preload library, the system-call tracer and
 * the collector's replay bench claim chunks this way. */
static inline mt_chunk_t *mt_chunk_claim(mt_region_t *r, uint32_t first, int32_t tid, uint32_t *index)
{
    uint32_t n = r->nchunks;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = first + k < n ? first + k : first + k - n;
        mt_chunk_t *c = mt_region_chunk(r, i);
        uint32_t expect = MT_CHUNK_FREE;
        if (__atomic_load_n(&c->state, __ATOMIC_RELAXED) != MT_CHUNK_FREE) continue;
        if (!__atomic_compare_exchange_n(&c->state, &expect, 3 /* claiming */, 0, __ATOMIC_ACQUIRE,
                                         __ATOMIC_RELAXED))
            continue;
        c->tid = tid;
        __atomic_store_n(&c->used, 0, __ATOMIC_RELAXED);
        if (i < MT_ACTIVE_CHUNKS) __atomic_fetch_or(&r->active[i / 64], 1ull << (i % 64), __ATOMIC_RELEASE);
        __atomic_store_n(&c->state, MT_CHUNK_OWNED, __ATOMIC_RELEASE);
        *index = i;
        return c;
    }
    return NULL;
}

static inline mt_module_t *mt_region_modules(mt_region_t *r)
{
    return (mt_module_t *)((char *)r + r->mod_off);
}
static inline mt_trie_slot_t *mt_region_trie(mt_region_t *r)
{
    return (mt_trie_slot_t *)((char *)r + r->trie_off);
}
static inline uint32_t *mt_region_index(mt_region_t *r)
{
    return (uint32_t *)((char *)r + r->idx_off);
}
static inline char *mt_region_names(mt_region_t *r)
{
    return (char *)r + r->names_off;
}

/* Finds or inserts the stack trie node (parent, ip) of a region and returns
 * its id, or 0 when the table is full (then MT_RG_TRIE_FULL is set).
 * Lock-free (see the top of this file): the preload library's threads and
 * the launcher's tracer insert into the same table.  hook context: no
 * allocation. */
#define MT_TRIE_BUSY 0xffffffffu /* an index entry being filled */

static inline uint32_t mt_trie_insert(mt_region_t *r, uint32_t parent, uint64_t ip)
{
    mt_trie_slot_t *nodes = mt_region_trie(r);
    uint32_t *idx = mt_region_index(r);
    uint32_t nslots = r->trie_slots, mask = nslots - 1;
    uint64_t x = ip * 31 + parent; /* the hash: one function for every writer */
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    uint32_t h = (uint32_t)x & mask;
    for (unsigned probe = 0; probe < 4096; probe++, h = (h + 1) & mask) {
        uint32_t id = __atomic_load_n(&idx[h], __ATOMIC_ACQUIRE);
        if (id == 0) {
            if (__atomic_load_n(&r->nnodes, __ATOMIC_RELAXED) >= nslots) break; /* full */
            uint32_t expect = 0;
            if (__atomic_compare_exchange_n(&idx[h], &expect, MT_TRIE_BUSY, 0, __ATOMIC_ACQUIRE,
                                            __ATOMIC_ACQUIRE)) {
                uint32_t k = __atomic_fetch_add(&r->nnodes, 1, __ATOMIC_RELAXED);
                if (k >= nslots) { /* full after all */
                    __atomic_store_n(&idx[h], 0, __ATOMIC_RELEASE);
                    break;
                }
                nodes[k].ip = ip;
                nodes[k].parent = parent;
                __atomic_store_n(&nodes[k].state, 2, __ATOMIC_RELEASE);
                __atomic_store_n(&idx[h], k + 1, __ATOMIC_RELEASE);
                return k + 1;
            }
            id = expect;
        }
        while (id == MT_TRIE_BUSY) {
            __builtin_ia32_pause();
            id = __atomic_load_n(&idx[h], __ATOMIC_ACQUIRE);
        }
        if (id == 0) { /* given back: the table is full */
            h = (h - 1) & mask;
            continue;
        }
        if (id > nslots) break; /* damaged */
        if (nodes[id - 1].ip == ip && nodes[id - 1].parent == parent) return id;
    }
    __atomic_or_fetch(&r->flags, MT_RG_TRIE_FULL, __ATOMIC_RELAXED);
    return 0;
}

/* Environment variables from launcher to target */
#define MT_ENV_DIR "MEMTRACE_SHM_DIR"

#endif
