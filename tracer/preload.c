/* preload.c - libmemtrace_preload.so: the hooks that run inside the target.
 *
 * Place in the pipeline: injected with LD_PRELOAD by the memtrace launcher.
 * It interposes the C library's allocation entry points and the mapping
 * calls, and writes one fixed-size record per call into the shared-memory
 * region described in lib/mt_shm.h, which the collector drains.
 *
 * Hook context.  Everything reachable from a hook runs inside the target's
 * malloc and obeys these rules (each such function says
 * "hook context: no allocation"):
 *   - no allocation through the traced allocator, no stdio, no SQLite;
 *   - no lock shared between threads on the hot path (per-thread chunks,
 *     a lock-free stack trie, one atomic sequence counter);
 *   - no system call per event (clock_gettime is a vDSO call);
 *   - a per-thread recursion guard: calls made while a hook is active
 *     (libunwind's own mallocs, dlsym's) go straight to the C library.
 *
 * Order.  Every event takes a global sequence number.  Allocations take it
 * after the real call returns and frees before the real call, so a block's
 * allocation always precedes its free and the next allocation of the same
 * address, across threads.
 *
 * Bootstrap.  Hooks can run before this library's constructor (other
 * libraries' constructors allocate).  The real allocator is reached through
 * glibc's exported __libc_* entry points, so no dlsym is needed to serve a
 * call; the first hook that finds tracing uninitialised initialises it.
 */
#define _GNU_SOURCE
#include "mt_clock.h"
#include "mt_event.h"
#include "mt_shm.h"
#include "preload_int.h"
#include "pym.h"

#include <dlfcn.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#define EXPORT __attribute__((visibility("default")))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
extern void __libc_free(void *);

/* ---- process-wide state ---- */

enum { ST_UNINIT = 0, ST_INITIALISING = 1, ST_READY = 2, ST_OFF = 3 };

static int g_state;                 /* ST_* (atomic) */
static mt_session_t *g_session;
static mt_region_t *g_region;
static uint64_t g_self_lo, g_self_hi; /* this library's text: frames to skip */
static uint64_t g_unw_lo, g_unw_hi;   /* libunwind's text: its own mmaps are ours */
static uint32_t g_depth;            /* stack depth (0: no stacks) */
static uint32_t g_opt_flags;
static uint32_t g_unwind;           /* MT_UNWIND_* */
static int g_bundled;               /* --allocator=bundled: pym serves malloc (set once) */
static pthread_key_t g_tkey;
static char g_dir[MT_PATH_MAX];

static int (*real_brk)(void *);
static void *(*real_sbrk)(intptr_t);
static void *(*real_dlopen)(const char *, int);
static int (*real_dlclose)(void *);
static void (*real_exit)(int) __attribute__((noreturn));
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_reallocarray)(void *, size_t, size_t);
static size_t (*real_usable_size)(void *);

/* ---- per-thread state ---- */

/* The per-thread stack cache: 1024 stacks of up to 64 frames, 4-way set
 * associative (direct-mapped, 207 distinct stacks - churn's - collided in
 * half the lookups, and each miss walks the shared trie frame by frame). */
#define TCACHE_SLOTS 1024
#define TCACHE_WAYS 4
#define TCACHE_SETS (TCACHE_SLOTS / TCACHE_WAYS)
#define TCACHE_DEPTH 64

typedef struct {
    uint64_t hash[TCACHE_WAYS];
    uint32_t id[TCACHE_WAYS], depth[TCACHE_WAYS];
    uint32_t victim; /* the way to replace next (round robin) */
} tcache_set_t;

struct tstate {
    mt_chunk_t *chunk;   /* owned chunk, NULL before the first record */
    char *data;          /* chunk payload */
    uint64_t pos;        /* bytes written to the chunk */
    int32_t tid;
    mt_region_t *region; /* region the chunk belongs to (fork check) */
    uint64_t stack_lo, stack_hi; /* this thread's stack: frame pointers must lie inside */
    uint64_t call_ts;    /* timestamp of the hook call in progress (0: not taken) */
    uint64_t chunk_ts;   /* time of the chunk's last MT_REC_TS (0: none yet) */
    uint32_t yields_due; /* sched_yield calls owed to a collector that is behind (leave) */
    tcache_set_t cache[TCACHE_SETS];
    uint64_t cache_ip[TCACHE_SLOTS][TCACHE_DEPTH]; /* set * TCACHE_WAYS + way */
};

static __thread int t_in_hook __attribute__((tls_model("initial-exec")));
__thread unsigned mt_t_via __attribute__((tls_model("initial-exec")));
/* --os=syscalls: while the real allocator serves a call of the program, the
 * via code (mt_shm.h: MT_RF_VIA_LIBC, or MT_DOM_os for sbrk) that the
 * launcher's system-call tracer gives the mmap/brk it makes;
 * MT_SERVING_OWN while memtrace maps memory of its own and
 * MT_SERVING_HOOKED while a hook makes a mapping call it records itself
 * (neither recorded by the tracer); 0 otherwise.  The launcher reads it and t_in_hook from the stopped thread
 * (MT_HELLO_TLS). */
static __thread uint8_t t_serving __attribute__((tls_model("initial-exec")));
static int g_os_syscalls; /* MT_OPT_OS_SYSCALLS: the launcher's tracer follows the system calls */
static int g_statm_fd = -1; /* /proc/self/status of this process (reopened after fork) */
static __thread tstate_t *t_state __attribute__((tls_model("initial-exec")));
/* Set while this thread writes a record (reserve_n to publish_n): a signal
 * handler's mapping call then must not write one of its own into the slot
 * (os_begin leaves it to the tracer). */
static __thread uint8_t t_writing __attribute__((tls_model("initial-exec")));

/* ---- raw system calls (never through our own hooks) ---- */

/* A system call with the kernel's result (-errno on failure): not libc's
 * syscall(), which would set errno; never through a hook. */
static inline long raw_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "0"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

static inline int sys_failed(long r) { return (unsigned long)r > -4096UL; }

/* A system call's result as the C library returns it: -1 and errno on
 * failure. */
static long ret_errno(long r)
{
    if (!sys_failed(r)) return r;
    errno = (int)-r;
    return -1;
}

/* Mappings of memtrace's own: marked for the launcher's system-call tracer,
 * which leaves them out (MT_SERVING_OWN). */
static void *raw_mmap(void *a, size_t l, int p, int f, int fd, off_t o)
{
    uint8_t s = t_serving;
    t_serving = MT_SERVING_OWN;
    void *r = (void *)syscall(SYS_mmap, a, l, p, f, fd, o);
    t_serving = s;
    return r;
}
static int raw_munmap(void *a, size_t l)
{
    uint8_t s = t_serving;
    t_serving = MT_SERVING_OWN;
    int r = (int)syscall(SYS_munmap, a, l);
    t_serving = s;
    return r;
}

/* --os=syscalls: a message to the launcher's tracer (MT_MADV_MEMTRACE in
 * mt_shm.h); without one, a call that fails with EINVAL. */
static void hello(uint64_t op, uint64_t a, uint64_t b)
{
    int e = errno; /* the program's, whatever call brought us here */
    syscall(SYS_madvise, a, b, MT_MADV_MEMTRACE, op);
    errno = e;
}

static inline uint64_t now_ns(void) { return mt_clock_mono_ns(); }

/* A record's timestamp: the session's shared clock, or TSC ticks or ns
 * with --precise-times (mt_session_now); the collector converts.
 * hook context: no allocation, no system call. */
static inline uint64_t now_ts(void) { return mt_session_now(g_session); }
uint64_t mt_pl_clock(void) { return mt_session_clock(g_session); }

/* ---- chunks ---- */

/* Backlog beyond which a thread taking a new chunk yields to the collector:
 * chunks are taken lowest first, so a chunk index past BACKLOG_CHUNKS says
 * that many are full and not read yet.  One sched_yield per two chunks
 * beyond it, at the end of the hook call. */
#define BACKLOG_CHUNKS 16

/* Publishes the current chunk as FULL and claims a FREE one, waiting while
 * the collector catches up.  Returns 0, or -1 when tracing was switched off
 * because the collector is gone.  hook context: no allocation. */
static int next_chunk(tstate_t *t)
{
    mt_region_t *r = g_region;
    if (t->chunk) {
        __atomic_store_n(&t->chunk->state, MT_CHUNK_FULL, __ATOMIC_RELEASE);
        t->chunk = NULL;
    }
    for (unsigned spins = 0;; spins++) {
        /* the lowest free chunk: while the collector keeps up, a few chunks
         * serve the whole run and stay in the caches (taken round robin,
         * every page of the region was faulted in - zeroed by the kernel -
         * and cold: 7% of py_lists' time) */
        uint32_t i;
        mt_chunk_t *c = mt_chunk_claim(r, 0, t->tid, &i);
        if (c) {
            t->chunk = c;
            t->data = (char *)(c + 1);
            t->pos = 0;
            t->chunk_ts = 0; /* its compact records need a time of their own */
            /* the collector is behind: with more threads of the program
             * than CPUs it got a share of one and read most records after
             * the program had ended, alone, with the other CPUs idle
             * (pairs4: a 100 ms tail after 125 ms of run).  Yielding gives
             * it its turn on this CPU (with a CPU of its own it changes
             * nothing) - at the end of the hook call (leave), not here: a
             * record whose number is taken must not wait, or the
             * collector's window passes it by and it goes in late */
            if (UNLIKELY(i >= BACKLOG_CHUNKS)) t->yields_due = (i - BACKLOG_CHUNKS) / 2 + 1;
            return 0;
        }
        /* every chunk is in use: the collector is behind; wait for it */
        if (spins == 0) __atomic_fetch_add(&r->chunk_waits, 1, __ATOMIC_RELAXED);
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
        if (spins % 1000 == 999 && (g_session->collector_pid <= 0 /* it gave up */ ||
                                    (kill(g_session->collector_pid, 0) != 0 && errno == ESRCH))) {
            __atomic_or_fetch(&r->flags, MT_RG_DISABLED, __ATOMIC_RELAXED);
            __atomic_store_n(&g_state, ST_OFF, __ATOMIC_RELEASE);
            return -1;
        }
    }
}

/* The thread's next record slot in its chunk (claiming a new chunk when
 * this one is full), or NULL when the record is lost (counted).  The hot
 * hooks fill the slot in place and publish() it: a record built on the
 * stack and copied cost a store-forwarding stall (8-byte stores read back
 * as 16-byte loads).  hook context: no allocation. */
#define PREFETCH_AHEAD 256 /* bytes: 8 compact records */
static inline void *reserve_n(tstate_t *t, uint64_t len)
{
    t_writing = 1;
    if (UNLIKELY(!t->chunk || t->pos + len > MT_CHUNK_DATA)) {
        if (next_chunk(t) != 0) {
            __atomic_fetch_add(&g_region->lost, 1, __ATOMIC_RELAXED);
            t_writing = 0;
            return NULL;
        }
    }
    /* ownership of a line some records ahead, requested now: the
     * collector has read this chunk's lines before, and a store to a line
     * in its cache waits for the line to come over */
    if (t->pos + PREFETCH_AHEAD < MT_CHUNK_DATA)
        __asm__ volatile("prefetchw %0" : : "m"(*(const char *)(t->data + t->pos + PREFETCH_AHEAD)));
    return t->data + t->pos;
}

static inline mt_rec_t *reserve(tstate_t *t) { return reserve_n(t, sizeof(mt_rec_t)); }

/* Publishes the `len` bytes of records reserve_n() gave room for.  hook
 * context: no allocation. */
static inline void publish_n(tstate_t *t, uint64_t len)
{
    t->pos += len;
    __atomic_store_n(&t->chunk->used, t->pos, __ATOMIC_RELEASE);
    t_writing = 0;
}

static inline void publish(tstate_t *t) { publish_n(t, sizeof(mt_rec_t)); }

/* Appends one record to the thread's chunk and publishes it.
 * hook context: no allocation. */
static inline void emit(tstate_t *t, const mt_rec_t *rec)
{
    mt_rec_t *slot = reserve(t);
    if (!slot) return;
    memcpy(slot, rec, sizeof *rec);
    publish(t);
}

static inline uint64_t next_seq(void)
{
    return __atomic_fetch_add(&g_session->seq, 1, __ATOMIC_RELAXED);
}

/* ---- stacks ---- */

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

/* Finds or inserts the trie node (parent, ip): mt_trie_insert (mt_shm.h),
 * shared with the launcher's tracer.  hook context: no allocation. */
static uint32_t trie_node(uint32_t parent, uint64_t ip) { return mt_trie_insert(g_region, parent, ip); }

/* ---- unwinding ----
 *
 * Two unwinders.  libunwind reads DWARF call-frame information and is right
 * for any code, at about 12 ns a frame.  Walking frame pointers costs about
 * 1 ns a frame but is right only through code built with frame pointers.
 * MT_UNWIND_AUTO walks frame pointers while every return address lies in a
 * module whose functions set up a frame pointer (checked once per module by
 * looking at the first bytes of its functions, found through the module's
 * .eh_frame_hdr table); at the first frame in any other module it uses
 * libunwind for the whole stack - except for the outermost frames of a
 * process or thread (in the C library's start code), which it learns from
 * the first libunwind walk that ends there.  A learned tail is used only
 * when every one of its return addresses is still in the stack slot where
 * libunwind found it (slots are kept relative to the top of the stack), so
 * a frame without frame pointers that is called from several places is
 * never given the wrong callers: it goes to libunwind instead.
 */

typedef struct {
    uint64_t lo, hi; /* executable segment */
    int fp;          /* functions set up frame pointers */
} umod_t;

typedef struct {
    uint32_t n;
    umod_t m[MT_MAX_MODULES];
} umods_t;

static umods_t *g_umods; /* published copy (atomic pointer); old copies are never freed */

#define MAX_TAILS 32
#define TAIL_LEN 8
typedef struct {
    uint64_t ra;               /* a return address in a module without frame pointers */
    uint32_t n;                /* frames after it, outermost last */
    uint32_t emit;             /* bit i: tail[i] is recorded (not one of our frames) */
    uint64_t tail[TAIL_LEN];   /* their return addresses */
    uint64_t slot[TAIL_LEN];   /* where each was found: stack_hi - address */
} tail_t;
static tail_t g_tails[MAX_TAILS];
static uint32_t g_ntails; /* published entries (atomic) */
static uint32_t g_tail_lock;

/* Reads a value of the encodings .eh_frame_hdr uses in practice. */
static int eh_read(const uint8_t **p, uint8_t enc, uint64_t base, uint64_t *out)
{
    int32_t s4;
    uint32_t u4;
    switch (enc & 0x0f) {
    case 0x03: memcpy(&u4, *p, 4); *out = u4; *p += 4; break;      /* udata4 */
    case 0x0b: memcpy(&s4, *p, 4); *out = (uint64_t)(int64_t)s4; *p += 4; break; /* sdata4 */
    default: return -1;
    }
    switch (enc & 0x70) {
    case 0x00: break;
    case 0x30: *out += base; break; /* datarel: relative to the table start */
    case 0x10: break;               /* pcrel: only used for eh_frame_ptr, ignored */
    default: return -1;
    }
    return 0;
}

/* Whether the functions of a module begin with "push %rbp; mov %rsp,%rbp"
 * (after an optional endbr64).  hook context: no allocation. */
static int module_has_fp(const struct dl_phdr_info *info)
{
#if defined(__x86_64__)
    const uint8_t *hdr = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_GNU_EH_FRAME)
            hdr = (const uint8_t *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    if (!hdr || hdr[0] != 1 || hdr[3] != 0x3b) return 0;
    const uint8_t *p = hdr + 4;
    uint64_t tmp, count;
    if (eh_read(&p, hdr[1], (uint64_t)(uintptr_t)hdr, &tmp) || eh_read(&p, hdr[2], (uint64_t)(uintptr_t)hdr, &count))
        return 0;
    if (count < 4) return 0;
    uint32_t samples = count < 64 ? (uint32_t)count : 64, hits = 0;
    for (uint32_t k = 0; k < samples; k++) {
        uint64_t idx = count * k / samples;
        int32_t rel;
        memcpy(&rel, p + idx * 8, 4);
        const uint8_t *f = hdr + rel;
        if (f[0] == 0xf3 && f[1] == 0x0f && f[2] == 0x1e && f[3] == 0xfa) f += 4; /* endbr64 */
        if (f[0] == 0x55 && f[1] == 0x48 && f[2] == 0x89 && f[3] == 0xe5) hits++;
    }
    /* -fno-omit-frame-pointer code: 30-100% (PLT and start-up stubs have
     * none); distribution builds without it: under 2% */
    return hits * 4 >= samples;
#else
    (void)info;
    return 0;
#endif
}

static int umod_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    umods_t *u = arg;
    int fp = -1;
    for (int i = 0; i < info->dlpi_phnum && u->n < MT_MAX_MODULES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        if (fp < 0) fp = module_has_fp(info);
        umod_t *m = &u->m[u->n++];
        m->lo = info->dlpi_addr + ph->p_vaddr;
        m->hi = m->lo + ph->p_memsz;
        m->fp = fp;
    }
    return 0;
}

/* Rebuilds the unwinder's module table (init, dlopen, fork).  Caller holds
 * the region's mod_lock.  hook context: no allocation (raw mmap). */
static void build_umods(void)
{
    umods_t *u = raw_mmap(NULL, sizeof *u, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (u == MAP_FAILED) return;
    u->n = 0;
    dl_iterate_phdr(umod_cb, u);
    __atomic_store_n(&g_umods, u, __ATOMIC_RELEASE);
}

static inline const umod_t *umod_find(const umods_t *u, uint64_t ip, const umod_t *hint)
{
    if (hint && ip >= hint->lo && ip < hint->hi) return hint;
    for (uint32_t i = 0; i < u->n; i++)
        if (ip >= u->m[i].lo && ip < u->m[i].hi) return &u->m[i];
    return NULL;
}

/* The learned tail below `ra` whose return addresses are all in place on
 * this thread's stack, or NULL.  hook context: no allocation. */
static const tail_t *tail_find(const tstate_t *t, uint64_t ra)
{
    uint32_t n = __atomic_load_n(&g_ntails, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n; i++) {
        const tail_t *tl = &g_tails[i];
        if (tl->ra != ra) continue;
        uint32_t k = 0;
        for (; k < tl->n; k++) {
            uint64_t at = t->stack_hi - tl->slot[k];
            if (tl->slot[k] < 8 || at < t->stack_lo || *(const uint64_t *)(uintptr_t)at != tl->tail[k]) break;
        }
        if (k == tl->n) return tl;
    }
    return NULL;
}

static int is_self(uint64_t ip) { return ip >= g_self_lo && ip < g_self_hi; }

/* Walks the stack with libunwind's cursor, finds the frame of return
 * address `ra` and, when it is among the last TAIL_LEN + 1 frames, remembers
 * the frames below it with the stack slots they were read from. */
static void tail_learn(tstate_t *t, uint64_t ra)
{
    if (__atomic_load_n(&g_ntails, __ATOMIC_ACQUIRE) >= MAX_TAILS) return;
    unw_context_t uc;
    unw_cursor_t cur;
    if (unw_getcontext(&uc) != 0 || unw_init_local(&cur, &uc) != 0) return;
    uint64_t ip[MT_MAX_DEPTH + 8], sp[MT_MAX_DEPTH + 8];
    int n = 0;
    do {
        unw_word_t a, b;
        if (unw_get_reg(&cur, UNW_REG_IP, &a) != 0 || unw_get_reg(&cur, UNW_REG_SP, &b) != 0) return;
        ip[n] = a;
        sp[n] = b;
        n++;
    } while (n < MT_MAX_DEPTH + 8 && unw_step(&cur) > 0);
    int j = 1; /* ip[0] is this function */
    while (j < n && ip[j] != ra) j++;
    int rest = n - 1 - j;
    if (j >= n || rest > TAIL_LEN) return;
    tail_t tl = {.ra = ra, .n = (uint32_t)rest};
    for (int k = 0; k < rest; k++) {
        uint64_t at = sp[j + 1 + k] - 8; /* the call that made frame j+k pushed ip[j+1+k] here */
        if (at < t->stack_lo || at + 8 > t->stack_hi) return;
        tl.tail[k] = ip[j + 1 + k];
        tl.slot[k] = t->stack_hi - at;
        if (!is_self(tl.tail[k])) tl.emit |= 1u << k;
    }
    if (__atomic_exchange_n(&g_tail_lock, 1, __ATOMIC_ACQUIRE)) return; /* someone else learns */
    uint32_t k = g_ntails;
    if (k < MAX_TAILS && !tail_find(t, ra)) {
        g_tails[k] = tl;
        __atomic_store_n(&g_ntails, k + 1, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&g_tail_lock, 0, __ATOMIC_RELEASE);
}

/* Walks frame pointers from this function's frame.  Returns the number of
 * return addresses stored (this library's frames excluded), or -1 when a
 * frame lies in code without frame pointers (then *stop_ra is that frame's
 * return address).  hook context: no allocation. */
static int fp_walk(tstate_t *t, uint64_t *ip, int max, uint64_t *stop_ra)
{
    const umods_t *u = __atomic_load_n(&g_umods, __ATOMIC_ACQUIRE);
    if (!u || !t->stack_hi) return -1;
    const uint64_t *fp = (const uint64_t *)__builtin_frame_address(0);
    const umod_t *hint = NULL;
    int n = 0;
    while (n < max) {
        uint64_t f = (uint64_t)(uintptr_t)fp;
        if (f < t->stack_lo || f + 16 > t->stack_hi || (f & 7)) return n ? n : -1;
        uint64_t ra = fp[1];
        const uint64_t *next = (const uint64_t *)fp[0];
        if (is_self(ra)) {
            fp = next;
            continue;
        }
        const umod_t *m = umod_find(u, ra, hint);
        if (!m) return n ? n : -1; /* not code: the chain has ended */
        hint = m;
        if (!m->fp) {
            if (g_unwind == MT_UNWIND_FP) { /* no DWARF: the chain ends here */
                ip[n++] = ra;
                return n;
            }
            const tail_t *tl = tail_find(t, ra);
            if (!tl) {
                *stop_ra = ra;
                return -1;
            }
            ip[n++] = ra;
            for (uint32_t i = 0; i < tl->n && n < max; i++)
                if (tl->emit & (1u << i)) ip[n++] = tl->tail[i];
            return n;
        }
        ip[n++] = ra;
        if ((uint64_t)(uintptr_t)next <= f) return n; /* end of chain */
        fp = next;
    }
    return n;
}

/* Unwinds the caller's stack and returns its trie id (0: no stack).
 * Frames inside this library are skipped.  hook context: no allocation
 * (libunwind may allocate once per thread; the recursion guard routes that
 * to the C library untraced). */
static uint32_t capture_stack_in(tstate_t *t, uint16_t *flags, uint64_t inner);
static uint32_t capture_stack(tstate_t *t, uint16_t *flags) { return capture_stack_in(t, flags, 0); }

/* capture_stack, with `inner` (when not 0) as the innermost frame: the C
 * library function whose entry jumped to a hook (libc_entries), which left
 * no frame of its own.  Such a hook runs inside the C library, where frame
 * pointers mean nothing: it is unwound with DWARF only. */
static uint32_t capture_stack_in(tstate_t *t, uint16_t *flags, uint64_t inner)
{
    if (!g_depth) return 0;
    if (mt_py_frames_on && !inner) { /* serving a Python-domain call: its stack */
        uint32_t id = mt_py_call_stack(t, flags);
        if (id) return id;
    }
    void *buf[MT_MAX_DEPTH + 9];
    void **raw = buf + 1; /* buf[0]: room for `inner` */
    uint64_t stop_ra = 0;
    int n = g_unwind == MT_UNWIND_DWARF || inner ? -1 : fp_walk(t, (uint64_t *)raw, (int)g_depth + 1, &stop_ra);
    if (n < 0 && g_unwind == MT_UNWIND_FP) n = 0;
    if (n < 0) {
        n = unw_backtrace(raw, (int)g_depth + 8);
        /* learn the start-code frames below stop_ra for the next walks */
        if (stop_ra)
            for (int i = 0; i < n; i++)
                if ((uint64_t)raw[i] == stop_ra) {
                    if (n - 1 - i <= TAIL_LEN) tail_learn(t, stop_ra);
                    break;
                }
        /* drop this library's frames: the hooks at the top, traced_main
         * below main (fp_walk skips them itself) */
        int k = 0;
        for (int i = 0; i < n; i++)
            if ((uint64_t)raw[i] < g_self_lo || (uint64_t)raw[i] >= g_self_hi) raw[k++] = raw[i];
        n = k;
    }
    uint64_t *ip = (uint64_t *)raw;
    if (inner) {
        buf[0] = (void *)(uintptr_t)inner;
        ip = (uint64_t *)buf;
        n++;
    }
    uint64_t merged[2 * MT_MAX_DEPTH + 8];
    if (mt_py_frames_on) {
        /* a thread running Python: its Python frames in place of the
         * interpreter's evaluation-loop frames */
        int m = mt_py_merge(ip, n, merged, (int)(sizeof merged / sizeof merged[0]));
        if (m >= 0) {
            ip = merged;
            n = m;
        }
    }
    return mt_pl_stack_of(t, ip, n, flags);
}

/* The stack id of ip[0..n), innermost first, cut at the depth limit.
 * hook context: no allocation. */
uint32_t mt_pl_stack_of(tstate_t *t, const uint64_t *ip, int n, uint16_t *flags)
{
    if (n > (int)g_depth) {
        n = (int)g_depth;
        *flags |= MT_RF_STACK_TRUNCATED;
    }
    if (n <= 0) return 0;

    /* per-thread cache: the same stack again costs a hash and a compare */
    /* four independent multiply chains: a quarter of the latency of one */
    uint64_t l0 = (uint64_t)n, l1 = 0, l2 = 0, l3 = 0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        l0 = (l0 + ip[i]) * 0x9e3779b97f4a7c15ull;
        l1 = (l1 + ip[i + 1]) * 0xc2b2ae3d27d4eb4full;
        l2 = (l2 + ip[i + 2]) * 0x165667b19e3779f9ull;
        l3 = (l3 + ip[i + 3]) * 0x27d4eb2f165667c5ull;
    }
    for (; i < n; i++) l0 = (l0 + ip[i]) * 0x9e3779b97f4a7c15ull;
    uint64_t h = mix(l0 ^ (l1 << 1 | l1 >> 63) ^ (l2 << 2 | l2 >> 62) ^ (l3 << 3 | l3 >> 61));
    uint32_t set = (uint32_t)(h % TCACHE_SETS);
    tcache_set_t *cs = &t->cache[set];
    for (uint32_t w = 0; w < TCACHE_WAYS; w++)
        if (cs->hash[w] == h && cs->id[w] && cs->depth[w] == (uint32_t)n &&
            memcmp(t->cache_ip[set * TCACHE_WAYS + w], ip, (size_t)n * sizeof *ip) == 0)
            return cs->id[w];

    uint32_t id = 0;
    for (int i = n - 1; i >= 0; i--) { /* outermost first */
        uint32_t next = trie_node(id, ip[i]);
        if (!next) break;
        id = next;
    }
    if (n <= TCACHE_DEPTH && id) {
        uint32_t w = cs->victim++ % TCACHE_WAYS;
        cs->hash[w] = h;
        cs->depth[w] = (uint32_t)n;
        cs->id[w] = id;
        memcpy(t->cache_ip[set * TCACHE_WAYS + w], ip, (size_t)n * sizeof *ip);
    }
    return id;
}

/* ---- initialisation ---- */

typedef struct {
    uint64_t probe, lo, hi;
} text_range_t;

/* Finds the executable segment containing range->probe. */
static int text_range_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    text_range_t *tr = arg;
    uint64_t probe = tr->probe;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uint64_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (probe >= lo && probe < hi) {
            tr->lo = lo;
            tr->hi = hi;
            return 1;
        }
    }
    return 0;
}

static void spin_lock(uint32_t *l)
{
    while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE)) __builtin_ia32_pause();
}
static void spin_unlock(uint32_t *l) { __atomic_store_n(l, 0, __ATOMIC_RELEASE); }

static int module_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    mt_region_t *r = g_region;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uint64_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < lo) lo = a;
        if (a + ph->p_memsz > hi) hi = a + ph->p_memsz;
    }
    if (hi == 0) return 0;
    mt_module_t *mods = mt_region_modules(r);
    uint32_t n = __atomic_load_n(&r->nmodules, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n; i++)
        if (mods[i].base == info->dlpi_addr && mods[i].start == lo) return 0;
    if (n >= MT_MAX_MODULES) return 0;
    mt_module_t *m = &mods[n];
    m->start = lo;
    m->end = hi;
    m->base = info->dlpi_addr;
    const char *name = info->dlpi_name;
    if (!name || !*name) name = r->exe; /* the main program */
    size_t len = strlen(name);
    if (len >= MT_PATH_MAX) len = MT_PATH_MAX - 1;
    memcpy(m->path, name, len);
    m->path[len] = 0;
    __atomic_store_n(&r->nmodules, n + 1, __ATOMIC_RELEASE);
    return 0;
}

/* Records the loaded objects that are not yet in the module table. */
static void scan_modules(void)
{
    if (!g_region) return;
    spin_lock(&g_region->mod_lock);
    dl_iterate_phdr(module_cb, NULL);
    build_umods();
    spin_unlock(&g_region->mod_lock);
}

/* One line on stderr when a process cannot be traced (the program goes on
 * untraced): "memtrace: process PID is not traced: WHAT (errno N)".
 * hook context: no allocation (write only). */
static void say_untraced(const char *what, int err)
{
    char line[160], num[24];
    size_t o = 0;
    const char *parts[] = {"memtrace: process ", NULL, " is not traced: ", what, " (errno ", NULL, ")\n"};
    uint64_t vals[2] = {(uint64_t)getpid(), (uint64_t)err};
    int v = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        const char *s = parts[i];
        if (!s) { /* a number */
            int k = 0;
            uint64_t x = vals[v++];
            do { num[k++] = (char)('0' + x % 10); x /= 10; } while (x && k < (int)sizeof num);
            while (k && o < sizeof line) line[o++] = num[--k];
            continue;
        }
        size_t n = strlen(s);
        if (n > sizeof line - o) n = sizeof line - o;
        memcpy(line + o, s, n);
        o += n;
    }
    ssize_t w = write(2, line, o);
    (void)w;
}

/* Gives the region file its size.  A program may have lowered its own
 * RLIMIT_FSIZE below it (ftruncate past the limit raises SIGXFSZ, which
 * would kill the program): the soft limit is raised to the hard one for the
 * call, and when even that is too low the call fails with SIGXFSZ ignored.
 * Only at process start (constructor, fork child): one thread.
 * hook context: no allocation. */
static int size_region(int fd, uint64_t total)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_FSIZE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= total)
        return ftruncate(fd, (off_t)total);
    struct rlimit raised = {rl.rlim_max, rl.rlim_max};
    if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= total) {
        if (setrlimit(RLIMIT_FSIZE, &raised) != 0) return -1;
        int rc = ftruncate(fd, (off_t)total);
        int e = errno;
        setrlimit(RLIMIT_FSIZE, &rl);
        errno = e;
        return rc;
    }
    struct sigaction ign, old;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGXFSZ, &ign, &old);
    int rc = ftruncate(fd, (off_t)total); /* EFBIG, the signal discarded */
    int e = errno;
    sigaction(SIGXFSZ, &old, NULL);
    errno = e;
    return rc;
}

/* Creates this process image's region file and maps it.  Returns 0 or -1.
 * hook context: no allocation (open/ftruncate/mmap system calls only). */
static int create_region(int32_t parent_index, uint32_t flags)
{
    uint32_t index = __atomic_fetch_add(&g_session->region_count, 1, __ATOMIC_RELAXED);
    char path[MT_PATH_MAX + 64];
    char num[32];
    /* path = dir + "/proc." + pid + "." + index, without stdio */
    size_t dl = strlen(g_dir), o = 0;
    memcpy(path, g_dir, dl);
    o = dl;
    memcpy(path + o, "/proc.", 6);
    o += 6;
    uint64_t vals[2] = {(uint64_t)getpid(), index};
    for (int v = 0; v < 2; v++) {
        int k = 0;
        uint64_t x = vals[v];
        do { num[k++] = (char)('0' + x % 10); x /= 10; } while (x);
        while (k) path[o++] = num[--k];
        path[o++] = v == 0 ? '.' : 0;
    }
    uint32_t nchunks = MT_DEFAULT_CHUNKS;
    uint64_t total = MT_REGION_SIZE(nchunks, MT_TRIE_SLOTS);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        say_untraced("cannot create its region file", errno);
        return -1;
    }
    if (size_region(fd, total) != 0) {
        say_untraced("cannot size its region file", errno);
        close(fd);
        unlink(path);
        return -1;
    }
    void *p = raw_mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        say_untraced("cannot map its region file", errno);
        unlink(path);
        return -1;
    }
    mt_region_t *r = p;
    r->version = MT_SHM_VERSION;
    r->index = index;
    r->pid = getpid();
    r->ppid = getppid();
    r->parent_region = parent_index;
    r->flags = flags;
    r->start_ns = now_ns();
    mt_region_layout(r, nchunks, MT_TRIE_SLOTS);
    ssize_t k = readlink("/proc/self/exe", r->exe, sizeof r->exe - 1);
    r->exe[k > 0 ? k : 0] = 0;
    mt_read_small_file("/proc/self/cmdline", r->cmdline, sizeof r->cmdline, &r->cmdline_len);
    g_region = r;
    __atomic_store_n(&r->magic, MT_REGION_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

static void thread_exit(void *arg);
static void atfork_child(void);
static void record_marker(tstate_t *t, int marker, uint64_t value);
static tstate_t *thread_state(void);
static void pym_event(void *ctx, int kind, uintptr_t arena, uintptr_t pool, uintptr_t block, unsigned size_class,
                      uint64_t value);

/* True when this pid already has a region: this image replaced a traced
 * one by exec.  Runs once, at initialisation (opendir allocates: untraced,
 * the recursion guard is held). */
static int earlier_image(void)
{
    char prefix[32];
    size_t o = 0;
    char num[16];
    int k = 0;
    uint64_t x = (uint64_t)getpid();
    memcpy(prefix, "proc.", 5);
    o = 5;
    do { num[k++] = (char)('0' + x % 10); x /= 10; } while (x);
    while (k) prefix[o++] = num[--k];
    prefix[o++] = '.';
    prefix[o] = 0;
    DIR *d = opendir(g_dir);
    if (!d) return 0;
    int found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d))) found = strncmp(de->d_name, prefix, o) == 0;
    closedir(d);
    return found;
}

/* Maps the session, creates the region, resolves the real functions.
 * Runs once per process, from the first hook or the constructor, with the
 * recursion guard held. */
static void libc_entries(void);
static void init_tracing(void)
{
    int expect = ST_UNINIT;
    if (!__atomic_compare_exchange_n(&g_state, &expect, ST_INITIALISING, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        while (__atomic_load_n(&g_state, __ATOMIC_ACQUIRE) == ST_INITIALISING) __builtin_ia32_pause();
        return;
    }
    int ok = 0, execed = 0;
    const char *dir = getenv(MT_ENV_DIR);
    if (dir && strlen(dir) < MT_PATH_MAX - 32) {
        /* first, before this library maps anything: which of the calls
         * that follow are ours (the options are not read yet) */
        hello(MT_HELLO_TLS, (uint64_t)((char *)&t_in_hook - (char *)__builtin_thread_pointer()),
              (uint64_t)((char *)&t_serving - (char *)__builtin_thread_pointer()));
        strcpy(g_dir, dir);
        char path[MT_PATH_MAX + 16];
        strcpy(path, dir);
        strcat(path, "/session");
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
            void *p = raw_mmap(NULL, sizeof(mt_session_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            close(fd);
            if (p != MAP_FAILED && ((mt_session_t *)p)->magic == MT_SESSION_MAGIC) {
                g_session = p;
                g_depth = g_session->opt.stack_depth;
                if (g_depth > MT_MAX_DEPTH) g_depth = MT_MAX_DEPTH;
                g_opt_flags = g_session->opt.flags;
                g_unwind = g_session->opt.unwind;
                g_os_syscalls = (g_opt_flags & MT_OPT_OS_SYSCALLS) != 0;
                execed = earlier_image();
                ok = create_region(-1, execed ? MT_RG_EXECED : 0) == 0;
                if (ok && g_os_syscalls) hello(MT_HELLO_REGION, g_region->index, 0);
            }
        }
    }
    if (ok) {
        text_range_t self = {(uint64_t)(uintptr_t)&init_tracing, 0, 0};
        dl_iterate_phdr(text_range_cb, &self);
        g_self_lo = self.lo;
        g_self_hi = self.hi;
        /* per-thread caches: no lock shared between threads while unwinding */
        unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
        text_range_t unw = {(uint64_t)(uintptr_t)&unw_backtrace, 0, 0};
        dl_iterate_phdr(text_range_cb, &unw);
        g_unw_lo = unw.lo;
        g_unw_hi = unw.hi;
        real_brk = dlsym(RTLD_NEXT, "brk");
        real_sbrk = dlsym(RTLD_NEXT, "sbrk");
        real_dlopen = dlsym(RTLD_NEXT, "dlopen");
        real_dlclose = dlsym(RTLD_NEXT, "dlclose");
        real_exit = dlsym(RTLD_NEXT, "exit");
        real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
        real_aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
        real_reallocarray = dlsym(RTLD_NEXT, "reallocarray");
        pthread_key_create(&g_tkey, thread_exit);
        pthread_atfork(NULL, NULL, atfork_child);
        if (g_opt_flags & MT_OPT_BUNDLED) {
            pym_set_event_hook(pym_event, NULL);
            pym_atfork_register(); /* after ours: its child handler runs second */
            g_bundled = 1;
        }
        scan_modules();
        g_statm_fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        libc_entries();
    }
    __atomic_store_n(&g_state, ok ? ST_READY : ST_OFF, __ATOMIC_RELEASE);
    if (ok && execed) {
        tstate_t *t = thread_state();
        if (t) record_marker(t, MT_MK_exec, 0);
    }
}

/* Per-thread state, created at the thread's first event.
 * hook context: no allocation (raw mmap). */
static tstate_t *thread_state(void)
{
    tstate_t *t = t_state;
    if (LIKELY(t != NULL)) return t;
    t = raw_mmap(NULL, sizeof *t, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED) return NULL;
    t->tid = (int32_t)syscall(SYS_gettid);
    t->region = g_region;
    pthread_attr_t attr;
    /* its malloc is a new thread's first: the C library makes the thread's
     * arena here, for the program's call that brought us (--os=syscalls) */
    uint8_t serving = t_serving;
    t_serving = MT_RF_VIA_LIBC;
    int got = pthread_getattr_np(pthread_self(), &attr);
    t_serving = serving;
    if (got == 0) { /* allocates: untraced, we hold the guard */
        void *addr;
        size_t size;
        if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
            t->stack_lo = (uint64_t)(uintptr_t)addr;
            t->stack_hi = t->stack_lo + size;
        }
        pthread_attr_destroy(&attr);
    }
    t_state = t;
    pthread_setspecific(g_tkey, t);
    if (t->tid != getpid()) record_marker(t, MT_MK_thread_start, (uint64_t)t->tid);
    return t;
}

/* Thread exit: hand the chunk to the collector and drop the state. */
static void thread_exit(void *arg)
{
    tstate_t *t = arg;
    t_in_hook = 1;
    if (t && t->chunk && t->region == g_region)
        __atomic_store_n(&t->chunk->state, MT_CHUNK_FULL, __ATOMIC_RELEASE);
    t_state = NULL;
    if (t) raw_munmap(t, sizeof *t);
    t_in_hook = 0;
}

/* In a fork child: a region of its own, so the parent's stays the parent's. */
static void atfork_child(void)
{
    if (__atomic_load_n(&g_state, __ATOMIC_ACQUIRE) != ST_READY) return;
    int saved = t_in_hook;
    t_in_hook = 1;
    mt_region_t *parent = g_region;
    tstate_t *t = t_state;
    if (t) {
        t->chunk = NULL; /* belongs to the parent */
        memset(t->cache, 0, sizeof t->cache);
        t->tid = (int32_t)syscall(SYS_gettid);
    }
    if (create_region((int32_t)parent->index, MT_RG_FORKED) == 0) {
        if (g_os_syscalls) hello(MT_HELLO_REGION, g_region->index, 0);
        if (t) t->region = g_region;
        g_region->brk_now = parent->brk_now; /* the same break */
        g_region->py = parent->py; /* the same interpreter; its names area starts empty */
        g_region->py.names_used = 0;
        g_region->py.stats_valid = 0;
        if (g_statm_fd >= 0) close(g_statm_fd); /* it reads the parent's */
        g_statm_fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
        raw_munmap(parent, parent->total_size);
        scan_modules();
        if (!t) t = thread_state();
        if (t) record_marker(t, MT_MK_fork_child, (uint64_t)getppid());
    } else {
        g_region = NULL;
        __atomic_store_n(&g_state, ST_OFF, __ATOMIC_RELEASE);
    }
    t_in_hook = saved;
}

/* ---- the hook frame ---- */

/* Returns the thread's state when this call is to be recorded, with the
 * recursion guard taken; NULL otherwise (guard untouched). */
static inline tstate_t *enter(void)
{
    if (UNLIKELY(t_in_hook)) return NULL;
    t_in_hook = 1;
    int st = __atomic_load_n(&g_state, __ATOMIC_ACQUIRE);
    if (UNLIKELY(st != ST_READY)) {
        if (st == ST_UNINIT || st == ST_INITIALISING) init_tracing();
        if (__atomic_load_n(&g_state, __ATOMIC_ACQUIRE) != ST_READY) {
            t_in_hook = 0;
            return NULL;
        }
    }
    tstate_t *t = thread_state();
    if (UNLIKELY(!t)) t_in_hook = 0;
    return t;
}

/* Ends a recorded call (enter() returned the thread's state). */
static inline void leave(void)
{
    tstate_t *t = t_state;
    t->call_ts = 0;
    t_in_hook = 0;
    if (UNLIKELY(t->yields_due)) { /* see next_chunk */
        for (; t->yields_due; t->yields_due--) {
            uint64_t t0 = now_ns();
            sched_yield();
            if (now_ns() - t0 < 5000) { /* back at once: nothing else wanted this CPU */
                t->yields_due = 0;
                break;
            }
        }
    }
}

/* One timestamp per hook call, shared by the call's event and the bundled
 * allocator's events inside it.  hook context: no allocation. */
static inline uint64_t call_ts(tstate_t *t)
{
    if (!t->call_ts) t->call_ts = now_ts();
    return t->call_ts;
}

/* Writes one event record in place (see reserve).  hook context: no
 * allocation. */
static inline void put_event(tstate_t *t, uint64_t seq, int kind, const void *addr, uint64_t size,
                             const void *old, uint16_t flags, uint32_t stack)
{
    uint64_t ts = call_ts(t);
    if (LIKELY(!old)) { /* the compact record, after the time when it moved */
        uint64_t len = ts == t->chunk_ts ? sizeof(mt_rec32_t) : 2 * sizeof(mt_rec32_t);
        mt_rec32_t *c = reserve_n(t, len);
        if (UNLIKELY(!c)) return;
        if (ts != t->chunk_ts) { /* (a new chunk has chunk_ts 0) */
            len = 2 * sizeof(mt_rec32_t);
            c->type = MT_REC_TS;
            c->seq = 0;
            c->addr = ts;
            c++;
            t->chunk_ts = ts;
        }
        c->type = MT_REC_EV32;
        c->kind = (uint8_t)kind;
        c->flags = flags;
        c->stack = stack;
        c->seq = seq;
        c->addr = (uint64_t)(uintptr_t)addr;
        c->size = size;
        publish_n(t, len);
        return;
    }
    mt_rec_t *r = reserve(t);
    if (UNLIKELY(!r)) return;
    r->type = MT_REC_EVENT;
    r->kind = (uint8_t)kind;
    r->flags = flags;
    r->stack = stack;
    r->seq = seq;
    r->ts = ts;
    r->addr = (uint64_t)(uintptr_t)addr;
    r->size = size;
    r->old_addr = (uint64_t)(uintptr_t)old;
    publish(t);
}

/* Records one event; `seq` is taken by the caller at the point that keeps
 * the order rule.  hook context: no allocation. */
static inline void record(tstate_t *t, uint64_t seq, int kind, const void *addr, uint64_t size,
                          const void *old, int failed, int want_stack)
{
    uint16_t flags = (uint16_t)((failed ? MT_RF_FAILED : 0) | (mt_t_via << MT_RF_VIA_SHIFT));
    call_ts(t); /* the time of the call, before the unwind */
    uint32_t stack = want_stack ? capture_stack(t, &flags) : 0;
    put_event(t, seq, kind, addr, size, old, flags, stack);
    if (UNLIKELY(mt_py_watching)) mt_py_watch();
}

/* ---- the interface of preload_int.h ---- */

tstate_t *mt_pl_enter(void) { return enter(); }
void mt_pl_leave(void) { leave(); }
uint64_t mt_pl_seq(void) { return next_seq(); }

uint64_t mt_pl_seq_moment(void)
{
    uint64_t seq = next_seq();
    tstate_t *t = t_state; /* none: the gap is stepped over later */
    if (t) {
        mt_rec_t r = {0};
        r.type = MT_REC_SKIP;
        r.seq = seq;
        r.ts = now_ts();
        emit(t, &r);
    }
    return seq;
}
mt_region_t *mt_pl_region(void) { return g_region; }
uint32_t mt_pl_depth(void) { return g_depth; }
uint32_t mt_pl_options(void) { return g_opt_flags; }
uint32_t mt_pl_native_stack(tstate_t *t, uint16_t *flags) { return capture_stack(t, flags); }
void mt_pl_emit(tstate_t *t, const mt_rec_t *rec) { emit(t, rec); }

void mt_pl_untraced(void (*fn)(void *), void *arg)
{
    int saved = t_in_hook;
    t_in_hook = 1;
    fn(arg);
    t_in_hook = saved;
}

void mt_pl_event(tstate_t *t, uint64_t seq, int kind, const void *addr, uint64_t size, const void *old, int failed,
                 unsigned via, uint32_t stack, uint16_t flags)
{
    put_event(t, seq, kind, addr, size, old, (uint16_t)(flags | (failed ? MT_RF_FAILED : 0) | (via << MT_RF_VIA_SHIFT)),
              stack);
}

void mt_pl_marker(tstate_t *t, int marker, uint64_t value) { record_marker(t, marker, value); }

static void record_marker(tstate_t *t, int marker, uint64_t value)
{
    mt_rec_t r = {0};
    r.type = MT_REC_MARKER;
    r.kind = (uint8_t)marker;
    r.seq = next_seq();
    r.ts = now_ts();
    r.size = value;
    emit(t, &r);
}

/* This process's /proc/self/status into buf, NUL-terminated: one pread
 * of the descriptor kept open.  Returns 0 when it cannot be read.  hook
 * context: no allocation. */
static int read_status(char *buf, size_t cap)
{
    if (g_statm_fd < 0) return 0;
    ssize_t k = pread(g_statm_fd, buf, cap - 1, 0);
    if (k <= 0) return 0;
    buf[k] = 0;
    return 1;
}

/* A resident-memory sample right after a mapping call (MT_REC_RSS): one
 * pread of /proc/self/status.  Mapping calls are rare; the heap hooks never
 * call this.  hook context: no allocation. */
static void record_rss(tstate_t *t, uint64_t event_seq)
{
    char buf[2048];
    uint64_t rss, vm;
    if (!read_status(buf, sizeof buf) || mt_status_rss(buf, &rss, &vm)) return;
    mt_rec_t r = {0};
    r.type = MT_REC_RSS;
    r.seq = event_seq + 1;
    r.ts = call_ts(t);
    r.addr = rss;
    r.size = vm;
    emit(t, &r);
}

/* ---- the serving allocator ----
 *
 * The C library's, or with --allocator=bundled the bundled one (lib/pym.h),
 * whose internal events pym_event() records.  Calls made inside a hook
 * (libunwind's, the loader's) always go to the C library: the bundled
 * allocator may be holding a lock while its event hook runs.  The bundled
 * allocator hands pointers it does not own to the C library, so blocks
 * allocated before initialisation are freed correctly.
 */

static inline int use_pym(int reentrant) { return g_bundled && !reentrant; }

static void *srv_malloc(int re, size_t n) { return use_pym(re) ? pym_malloc(n) : __libc_malloc(n); }
static void *srv_calloc(int re, size_t a, size_t b) { return use_pym(re) ? pym_calloc(a, b) : __libc_calloc(a, b); }
static void *srv_memalign(int re, size_t al, size_t n)
{
    return use_pym(re) ? pym_memalign(al, n) : __libc_memalign(al, n);
}
static void *srv_realloc(int re, void *old, size_t n)
{
    return use_pym(re) || (g_bundled && pym_owns(old)) ? pym_realloc(old, n) : __libc_realloc(old, n);
}
static void srv_free(void *p)
{
    if (g_bundled) pym_free(p); /* hands foreign pointers to the C library */
    else __libc_free(p);
}
static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

/* pym's event hook: one record per internal transition.  Runs with a pym
 * lock held.  hook context: no allocation. */
static void pym_event(void *ctx, int kind, uintptr_t arena, uintptr_t pool, uintptr_t block, unsigned size_class,
                      uint64_t value)
{
    (void)ctx;
    tstate_t *t = t_state;
    if (!t || __atomic_load_n(&g_state, __ATOMIC_ACQUIRE) != ST_READY) return;
    mt_rec_t r;
    r.type = MT_REC_EVENT;
    r.kind = (uint8_t)(MT_KIND_PYM_BASE + kind);
    r.flags = 0;
    r.stack = size_class == PYM_NO_CLASS ? 0 : size_class + 1;
    r.seq = next_seq();
    r.ts = call_ts(t);
    r.addr = block ? block : pool ? pool : arena;
    r.size = value;
    r.old_addr = pool;
    emit(t, &r);
}

#define ALLOC_HOOK(kind, call, size_expr)                              \
    int re = t_in_hook;                                                \
    tstate_t *t = enter();                                             \
    if (t) t_serving = MT_RF_VIA_LIBC;                                 \
    void *p = call;                                                    \
    if (t) {                                                           \
        t_serving = 0;                                                 \
        record(t, next_seq(), kind, p, size_expr, NULL, p == NULL, 1); \
        leave();                                                       \
    }                                                                  \
    return p

EXPORT void *malloc(size_t n) { ALLOC_HOOK(MT_EV_malloc, srv_malloc(re, n), n); }

EXPORT void *calloc(size_t a, size_t b)
{
    size_t total;
    if (__builtin_mul_overflow(a, b, &total)) total = SIZE_MAX;
    ALLOC_HOOK(MT_EV_calloc, srv_calloc(re, a, b), total);
}

EXPORT void *memalign(size_t al, size_t n) { ALLOC_HOOK(MT_EV_memalign, srv_memalign(re, al, n), n); }
EXPORT void *valloc(size_t n)
{
    ALLOC_HOOK(MT_EV_valloc, use_pym(re) ? pym_memalign(page_size(), n) : __libc_valloc(n), n);
}
EXPORT void *pvalloc(size_t n)
{
    size_t ps = page_size(), rounded = n + ps - 1 < n ? SIZE_MAX : (n + ps - 1) & ~(ps - 1);
    ALLOC_HOOK(MT_EV_pvalloc, use_pym(re) ? pym_memalign(ps, rounded ? rounded : ps) : __libc_pvalloc(n), n);
}

EXPORT void *aligned_alloc(size_t al, size_t n)
{
    ALLOC_HOOK(MT_EV_aligned_alloc,
               use_pym(re) ? ((al & (al - 1)) || !al ? (errno = EINVAL, NULL) : pym_memalign(al, n))
               : real_aligned_alloc ? real_aligned_alloc(al, n)
                                    : __libc_memalign(al, n),
               n);
}

EXPORT int posix_memalign(void **out, size_t al, size_t n)
{
    int re = t_in_hook;
    tstate_t *t = enter();
    int rc;
    if (t) t_serving = MT_RF_VIA_LIBC;
    if (real_posix_memalign && !use_pym(re)) {
        rc = real_posix_memalign(out, al, n);
    } else if (al < sizeof(void *) || (al & (al - 1))) {
        rc = EINVAL;
    } else {
        void *p = srv_memalign(re, al, n);
        rc = p ? 0 : ENOMEM;
        if (p) *out = p;
    }
    if (t) {
        t_serving = 0;
        record(t, next_seq(), MT_EV_posix_memalign, rc ? NULL : *out, n, NULL, rc != 0, 1);
        leave();
    }
    return rc;
}

EXPORT void free(void *p)
{
    if (!p) {
        if (g_region && !t_in_hook) __atomic_fetch_add(&g_region->free_null, 1, __ATOMIC_RELAXED);
        return;
    }
    tstate_t *t = enter();
    if (t) {
        record(t, next_seq(), MT_EV_free, p, 0, NULL, 0, g_opt_flags & MT_OPT_FREE_STACKS);
        t_serving = MT_RF_VIA_LIBC;
        srv_free(p); /* inside the guard: the bundled allocator's events are recorded */
        t_serving = 0;
        leave();
        return;
    }
    /* untraced: a block the C library gave to untraced code (dlerror's
     * message, say) goes straight back, with no allocator event */
    if (g_bundled && !pym_owns(p)) __libc_free(p);
    else srv_free(p);
}

EXPORT void *realloc(void *old, size_t n)
{
    int re = t_in_hook;
    tstate_t *t = enter();
    if (t) t_serving = MT_RF_VIA_LIBC;
    void *p = srv_realloc(re, old, n);
    if (t) {
        t_serving = 0;
        /* realloc(p, 0) frees p and returns NULL: not a failure */
        int failed = p == NULL && !(old && n == 0);
        record(t, next_seq(), MT_EV_realloc, p, n, old, failed, 1);
        leave();
    }
    return p;
}

EXPORT void *reallocarray(void *old, size_t a, size_t b)
{
    size_t total;
    if (__builtin_mul_overflow(a, b, &total)) total = SIZE_MAX;
    int re = t_in_hook;
    tstate_t *t = enter();
    void *p;
    if (t) t_serving = MT_RF_VIA_LIBC;
    if (real_reallocarray && !use_pym(re)) {
        p = real_reallocarray(old, a, b);
    } else if (total == SIZE_MAX) {
        errno = ENOMEM;
        p = NULL;
    } else {
        p = srv_realloc(re, old, total);
    }
    if (t) {
        t_serving = 0;
        record(t, next_seq(), MT_EV_reallocarray, p, total, old, p == NULL && !(old && total == 0), 1);
        leave();
    }
    return p;
}

/* Only the serving allocator knows a block's size. */
EXPORT size_t malloc_usable_size(void *p)
{
    if (!p) return 0;
    if (g_bundled) return pym_usable_size(p);
    if (!real_usable_size) {
        int st = t_in_hook;
        t_in_hook = 1;
        real_usable_size = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
        t_in_hook = st;
    }
    return real_usable_size ? real_usable_size(p) : 0;
}

/* ---- mappings ---- */

enum { LC_MMAP, LC_MUNMAP, LC_MREMAP, LC_BRK, LC_MADVISE, LC_N };
static void *g_lc_fn[LC_N];     /* the patched C library functions */
static void *lc_mmap(void *a, size_t l, int prot, int fl, int fd, off_t off);
static int lc_munmap(void *a, size_t l);
static void *lc_mremap(void *old, size_t oldlen, size_t len, int fl, void *want);

/* True when a mapping call comes from libunwind (its per-thread caches,
 * made and dropped on our behalf): not the program's. */
static int from_unwinder(const void *caller)
{
    uint64_t a = (uint64_t)(uintptr_t)caller;
    return a >= g_unw_lo && a < g_unw_hi;
}

/* With --os=syscalls the hooks still record the mapping calls the program
 * makes through them (cheaper than a tracer stop) and make the system call
 * with memtrace's tag (MT_SYSCALL_TAG in mt_shm.h), which the launcher's
 * seccomp filter lets through without stopping; a call that cannot carry
 * the tag (a file mmap) is marked MT_SERVING_HOOKED for the tracer, which
 * then leaves it to the hook.  hook context: no allocation. */
static long hooked_mmap(void *a, size_t l, int prot, int fl, int fd, off_t off)
{
    if (!g_os_syscalls) return raw_syscall6(SYS_mmap, (long)a, (long)l, prot, fl, fd, off);
    /* the kernel ignores an anonymous mapping's offset (not a huge-page
     * one: that gets a file, whose offset counts) */
    if ((fl & MAP_ANONYMOUS) && !(fl & MAP_HUGETLB) && off == 0)
        return raw_syscall6(SYS_mmap, (long)a, (long)l, prot, fl, fd, (long)MT_SYSCALL_TAG_OFFSET);
    uint8_t s = t_serving;
    t_serving = MT_SERVING_HOOKED;
    long r = raw_syscall6(SYS_mmap, (long)a, (long)l, prot, fl, fd, off);
    t_serving = s;
    return r;
}

/* mmap and mmap64: one body; `caller` tells libunwind's own calls apart.
 * A call this hook does not record (made inside another hook: pymalloc's
 * arenas, say) goes where the C library's own calls go. */
static void *do_mmap(void *a, size_t l, int prot, int fl, int fd, off_t off, const void *caller)
{
    if (from_unwinder(caller)) return raw_mmap(a, l, prot, fl, fd, off);
    tstate_t *t = enter();
    if (!t)
        return g_lc_fn[LC_MMAP] ? lc_mmap(a, l, prot, fl, fd, off)
                                : (void *)ret_errno(raw_syscall6(SYS_mmap, (long)a, (long)l, prot, fl, fd, off));
    long r = hooked_mmap(a, l, prot, fl, fd, off);
    uint64_t seq = next_seq();
    record(t, seq, MT_EV_mmap, sys_failed(r) ? NULL : (void *)r, l, NULL, sys_failed(r), 1);
    record_rss(t, seq);
    leave();
    return (void *)ret_errno(r);
}

EXPORT void *mmap(void *a, size_t l, int prot, int fl, int fd, off_t off)
{
    return do_mmap(a, l, prot, fl, fd, off, __builtin_return_address(0));
}

EXPORT void *mmap64(void *a, size_t l, int prot, int fl, int fd, off_t off)
{
    return do_mmap(a, l, prot, fl, fd, off, __builtin_return_address(0));
}

EXPORT int munmap(void *a, size_t l)
{
    if (from_unwinder(__builtin_return_address(0))) return raw_munmap(a, l);
    tstate_t *t = enter();
    if (!t)
        return g_lc_fn[LC_MUNMAP] ? lc_munmap(a, l) : (int)ret_errno(raw_syscall6(SYS_munmap, (long)a, (long)l, 0, 0, 0, 0));
    uint64_t seq = next_seq();
    long rc = raw_syscall6(SYS_munmap, (long)a, (long)l, g_os_syscalls ? (long)MT_SYSCALL_TAG : 0, 0, 0, 0); /* see hooked_mmap */
    record(t, seq, MT_EV_munmap, a, l, NULL, rc != 0, 1);
    record_rss(t, seq);
    leave();
    return (int)ret_errno(rc);
}

EXPORT void *mremap(void *old, size_t oldlen, size_t len, int fl, ...)
{
    void *want = NULL;
    if (fl & (MREMAP_FIXED | MREMAP_DONTUNMAP)) {
        va_list ap;
        va_start(ap, fl);
        want = va_arg(ap, void *);
        va_end(ap);
    }
    tstate_t *t = enter();
    if (!t)
        return g_lc_fn[LC_MREMAP] ? lc_mremap(old, oldlen, len, fl, want)
                                  : (void *)ret_errno(raw_syscall6(SYS_mremap, (long)old, (long)oldlen, (long)len, fl,
                                                                   (long)want, 0));
    long r = raw_syscall6(SYS_mremap, (long)old, (long)oldlen, (long)len, fl, (long)want,
                          g_os_syscalls ? (long)MT_SYSCALL_TAG : 0);
    uint64_t seq = next_seq();
    record(t, seq, MT_EV_mremap, sys_failed(r) ? NULL : (void *)r, len, old, sys_failed(r), 1);
    record_rss(t, seq);
    leave();
    return (void *)ret_errno(r);
}

EXPORT int brk(void *a)
{
    tstate_t *t = enter();
    if (t && g_os_syscalls) { /* the C library's brk cannot carry the tag: the tracer records it */
        leave();
        t = NULL;
    }
    if (!real_brk) real_brk = dlsym(RTLD_NEXT, "brk");
    int rc = real_brk(a);
    if (t) {
        record(t, next_seq(), MT_EV_brk, a, (uint64_t)(int64_t)rc, NULL, rc != 0, 1);
        leave();
    }
    return rc;
}

EXPORT void *sbrk(intptr_t incr)
{
    tstate_t *t = enter();
    if (!real_sbrk) real_sbrk = dlsym(RTLD_NEXT, "sbrk");
    if (t) t_serving = MT_DOM_os; /* its brk system call serves this sbrk */
    void *p = real_sbrk(incr);
    if (t) {
        t_serving = 0;
        record(t, next_seq(), MT_EV_sbrk, p == (void *)-1 ? NULL : p, (uint64_t)(int64_t)incr, NULL,
               p == (void *)-1, 1);
        leave();
    }
    return p;
}

/* ---- the C library's own mapping calls (--os=syscalls) ----
 *
 * glibc's malloc maps, unmaps and moves the break with internal calls to
 * its own mmap, munmap, mremap, brk and madvise, which no interposed symbol
 * sees: the launcher's tracer caught each with a ptrace stop, some 100 us
 * apiece (grow: 1,635 of them).  These five functions are thin system-call
 * wrappers, and the internal calls go to the same code as the exported
 * symbols.  So their entries are overwritten with a jump to the hooks
 * below (libc_entries), which make the system call themselves, with the
 * tag the seccomp filter lets through, and record it as the tracer would
 * have: the same kinds, fields, via code (t_serving), order rule and
 * resident-memory sample.  What a hook cannot record - a file mapping,
 * which carries no tag, or a call before this thread has its state - is
 * made untagged, exactly as before, and the tracer records it.
 */

#define TAG ((long)MT_SYSCALL_TAG)

typedef struct {
    tstate_t *t;
    unsigned via;
    int entered; /* enter() taken: leave() at the end */
} oscall_t;

enum { OS_TRACER = -1, OS_OWN = 0, OS_RECORD = 1 };

/* Who records a mapping call that came through a patched entry:
 * OS_RECORD, this hook (c filled in); OS_OWN, nobody - memtrace's own code
 * (the loader's lookups, libunwind, pthread_getattr_np for a new thread);
 * OS_TRACER, the launcher's tracer, as if there were no hook. */
static int os_begin(oscall_t *c)
{
    uint8_t s = t_serving;
    c->t = NULL;
    c->via = 0;
    c->entered = 0;
    if (s == MT_SERVING_OWN || s == MT_SERVING_HOOKED) return OS_OWN;
    if (__atomic_load_n(&g_state, __ATOMIC_ACQUIRE) != ST_READY) return OS_TRACER;
    if (t_writing) return OS_TRACER; /* a signal handler's call, amid a record */
    if (t_in_hook) {
        if (!s) return OS_OWN;
        c->t = t_state; /* serving a malloc-family call (via libc) or an sbrk (via os) */
        c->via = s & 15u;
        return c->t ? OS_RECORD : OS_TRACER;
    }
    /* the C library on its own account (a thread's stack, a locale); a
     * thread with no state yet, or none left (its end), is the tracer's */
    if (!t_state) return OS_TRACER;
    c->t = enter();
    if (!c->t) return OS_TRACER;
    c->entered = 1;
    return OS_RECORD;
}

/* The record of a mapping call made through patched entry `fn`, and the
 * resident-memory sample after it.  hook context: no allocation. */
static void os_record(oscall_t *c, const void *fn, uint64_t seq, int kind, long addr, uint64_t size, long old,
                      int failed)
{
    tstate_t *t = c->t;
    uint16_t flags = (uint16_t)((failed ? MT_RF_FAILED : 0) | (c->via << MT_RF_VIA_SHIFT));
    call_ts(t);
    /* fn + 1: inside the function, also to a symbolizer that looks up the
     * address before a return address */
    uint32_t stack = capture_stack_in(t, &flags, (uint64_t)(uintptr_t)fn + 1);
    put_event(t, seq, kind, (const void *)addr, size, (const void *)old, flags, stack);
    record_rss(t, seq);
    if (c->entered) leave();
}

static void **g_curbrk;         /* the C library's __curbrk */
static uint64_t g_heap_start;   /* the brk heap's start (/proc/self/stat) */

static void *lc_mmap(void *a, size_t l, int prot, int fl, int fd, off_t off)
{
    if (off & 4095) { /* as the C library: the kernel takes pages */
        errno = EINVAL;
        return MAP_FAILED;
    }
    oscall_t c;
    int who = (fl & MAP_ANONYMOUS) && !(fl & MAP_HUGETLB) && off == 0 ? os_begin(&c) : OS_TRACER;
    long r = raw_syscall6(SYS_mmap, (long)a, (long)l, prot, fl, fd,
                          who == OS_TRACER ? (long)off : (long)MT_SYSCALL_TAG_OFFSET);
    if (who == OS_RECORD)
        os_record(&c, g_lc_fn[LC_MMAP], next_seq(), MT_EV_mmap, sys_failed(r) ? 0 : r, l, 0, sys_failed(r));
    return (void *)ret_errno(r);
}

static int lc_munmap(void *a, size_t l)
{
    oscall_t c;
    int who = os_begin(&c);
    uint64_t seq = who == OS_RECORD ? next_seq() : 0; /* a release: numbered before it happens */
    long r = raw_syscall6(SYS_munmap, (long)a, (long)l, who == OS_TRACER ? 0 : TAG, 0, 0, 0);
    if (who == OS_RECORD) os_record(&c, g_lc_fn[LC_MUNMAP], seq, MT_EV_munmap, (long)a, l, 0, sys_failed(r));
    return (int)ret_errno(r);
}

/* mremap is variadic; its optional fifth argument arrives where a fixed
 * one would. */
static void *lc_mremap(void *old, size_t oldlen, size_t len, int fl, void *want)
{
    if (!(fl & (MREMAP_FIXED | MREMAP_DONTUNMAP))) want = NULL;
    oscall_t c;
    int who = os_begin(&c);
    long r = raw_syscall6(SYS_mremap, (long)old, (long)oldlen, (long)len, fl, (long)want,
                          who == OS_TRACER ? 0 : TAG);
    if (who == OS_RECORD)
        os_record(&c, g_lc_fn[LC_MREMAP], next_seq(), MT_EV_mremap, sys_failed(r) ? 0 : r, len, (long)old,
                  sys_failed(r));
    return (void *)ret_errno(r);
}

/* brk as the C library's: the kernel answers with the break after the call
 * (the old one when it refused), kept in __curbrk for sbrk.  The record:
 * addr = the break after, old_addr = before, size = the heap's size. */
static int lc_brk(void *a)
{
    oscall_t c;
    int who = os_begin(&c);
    /* the break before: as the last recorded call left it (the tracer's
     * too: a raw system call), else as the C library knows it */
    mt_region_t *rg = g_region; /* NULL once tracing is off (a fork child without a region) */
    long before = rg ? (long)__atomic_load_n(&rg->brk_now, __ATOMIC_RELAXED) : 0;
    if (!before) before = (long)(uintptr_t)*g_curbrk;
    long now = raw_syscall6(SYS_brk, (long)a, who == OS_TRACER ? 0 : TAG, 0, 0, 0, 0);
    *g_curbrk = (void *)now;
    /* memtrace's own brk too: the break it leaves is the next one's start */
    if (who != OS_TRACER && rg) __atomic_store_n(&rg->brk_now, (uint64_t)now, __ATOMIC_RELAXED);
    if (who == OS_RECORD) {
        os_record(&c, g_lc_fn[LC_BRK], next_seq(), MT_EV_brk, now,
                  (uint64_t)now >= g_heap_start ? (uint64_t)now - g_heap_start : 0, before, a && now != (long)a);
    }
    if (now < (long)a) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

static int lc_madvise(void *a, size_t l, int advice)
{
    oscall_t c;
    int who = advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE ? os_begin(&c) : OS_TRACER;
    uint64_t seq = who == OS_RECORD ? next_seq() : 0; /* a release: numbered before it happens */
    long r = raw_syscall6(SYS_madvise, (long)a, (long)l, advice, who == OS_TRACER ? 0 : TAG, 0, 0);
    if (who == OS_RECORD)
        os_record(&c, g_lc_fn[LC_MADVISE], seq, MT_EV_madvise, (long)a, l, advice, sys_failed(r));
    return (int)ret_errno(r);
}

#undef TAG

/* The brk heap's start: field 47 of /proc/self/stat (start_brk). */
static uint64_t heap_start(void)
{
    char buf[1024];
    mt_read_small_file("/proc/self/stat", buf, sizeof buf, NULL);
    const char *p = strrchr(buf, ')'); /* the command name may hold anything */
    if (!p) return 0;
    for (int field = 2; field < 47 && *p; p++)
        if (*p == ' ') field++;
    return strtoull(p, NULL, 10);
}

/* Overwrites the entry of the C library's function `name` with a jump to
 * `to` (movabs $to, %rax; jmp *%rax: %rax is free at a call's entry).
 * Only a function of the C library, entered at its start and at least as
 * long as the jump.  Returns 0 when patched. */
static int patch_entry(int which, const char *name, void *to)
{
    void *fn = dlsym(RTLD_NEXT, name);
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    if (!fn || !dladdr1(fn, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym || info.dli_saddr != fn ||
        sym->st_size < 12 || !info.dli_fname || !strstr(info.dli_fname, "/libc.so"))
        return -1;
    uint8_t code[12] = {0x48, 0xb8};
    uint64_t target = (uint64_t)(uintptr_t)to;
    memcpy(code + 2, &target, 8);
    code[10] = 0xff;
    code[11] = 0xe0;
    uintptr_t ps = page_size(), lo = (uintptr_t)fn & ~(ps - 1), hi = ((uintptr_t)fn + sizeof code + ps - 1) & ~(ps - 1);
    if (mprotect((void *)lo, hi - lo, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) return -1;
    memcpy(fn, code, sizeof code);
    mprotect((void *)lo, hi - lo, PROT_READ | PROT_EXEC);
    g_lc_fn[which] = fn;
    return 0;
}

/* 1 when this process has one thread. */
static int single_threaded(void)
{
    char buf[2048];
    const char *p = read_status(buf, sizeof buf) ? strstr(buf, "\nThreads:") : NULL;
    return p && strtol(p + 9, NULL, 10) == 1;
}

/* Sends the C library's own mapping calls to the hooks above (init, with
 * the recursion guard held).  brk needs __curbrk, which it keeps. */
static void libc_entries(void)
{
    if (!g_os_syscalls || getenv("MEMTRACE_NO_LIBC_ENTRIES")) return;
    /* only while no other thread can be inside one of these functions: one
     * blocked in munmap's system call would return into the middle of the
     * jump (the preload library starts before main, so normally none is) */
    if (!single_threaded()) return;
    patch_entry(LC_MMAP, "mmap", (void *)lc_mmap);
    patch_entry(LC_MUNMAP, "munmap", (void *)lc_munmap);
    patch_entry(LC_MREMAP, "mremap", (void *)lc_mremap);
    patch_entry(LC_MADVISE, "madvise", (void *)lc_madvise);
    g_curbrk = dlsym(RTLD_NEXT, "__curbrk");
    if (g_curbrk && (g_heap_start = heap_start()) != 0) patch_entry(LC_BRK, "brk", (void *)lc_brk);
}

/* ---- modules, main, exit ---- */

EXPORT void *dlopen(const char *file, int mode)
{
    int st = t_in_hook;
    t_in_hook = 1;
    if (!real_dlopen) real_dlopen = dlsym(RTLD_NEXT, "dlopen");
    t_in_hook = st;
    void *h = real_dlopen(file, mode);
    if (h && __atomic_load_n(&g_state, __ATOMIC_ACQUIRE) == ST_READY) {
        t_in_hook = 1;
        scan_modules();
        mt_py_attach(h); /* a libpython opened RTLD_LOCAL is seen only through its handle */
        t_in_hook = st;
    }
    return h;
}

/* A module unloaded keeps its row: addresses seen while it was loaded
 * still resolve to it (the collector symbolises by the table). */
EXPORT int dlclose(void *h)
{
    if (!real_dlclose) real_dlclose = dlsym(RTLD_NEXT, "dlclose");
    return real_dlclose(h);
}

/* --allocator=bundled: the allocator's own statistics into the region, for
 * checking the layout rebuilt from the events.  Taken once, at exit.  (In a
 * process whose other threads still allocate at exit, a transition can fall
 * between the snapshot and its sequence number.) */
static void snapshot_pym(void)
{
    if (!g_bundled || __atomic_load_n(&g_region->pym_stats_valid, __ATOMIC_ACQUIRE)) return;
    pym_stats(&g_region->pym_stats);
    g_region->pym_stats_seq = mt_pl_seq_moment();
    __atomic_store_n(&g_region->pym_stats_valid, 1, __ATOMIC_RELEASE);
}

/* The C library's own view of its heap (mallinfo2) as MT_REC_MALLINFO
 * records: bytes in use, free in its bins, its top chunk, its mmapped
 * chunks.  Called in the exit path, outside any allocator call (mallinfo2
 * takes the arena locks).  With --allocator=bundled it describes the C
 * library's part only. */
static void snapshot_malloc(tstate_t *t)
{
    struct mallinfo2 mi = mallinfo2();
    uint64_t seq = __atomic_load_n(&g_session->seq, __ATOMIC_RELAXED);
    uint64_t ts = now_ts();
    const uint64_t v[3][3] = {{mi.arena, mi.uordblks, mi.fordblks},
                              {mi.fsmblks, mi.keepcost, mi.hblkhd},
                              {mi.hblks, mi.ordblks, 0}};
    for (int part = 0; part < 3; part++) {
        mt_rec_t r = {0};
        r.type = MT_REC_MALLINFO;
        r.kind = (uint8_t)part;
        r.seq = seq;
        r.ts = ts;
        r.addr = v[part][0];
        r.size = v[part][1];
        r.old_addr = v[part][2];
        emit(t, &r);
    }
}

/* --malloc-stats MS: a thread of memtrace's own in the process takes
 * glibc's statistics every MS milliseconds (mallinfo2 takes the arena
 * locks: from its own thread, never inside a hook of the program's). */
static void *malloc_stats_thread(void *arg)
{
    (void)arg;
    uint32_t ms = g_session->opt.malloc_stats_ms;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    for (;;) {
        nanosleep(&ts, NULL);
        if (__atomic_load_n(&g_state, __ATOMIC_ACQUIRE) != ST_READY) break;
        tstate_t *t = enter();
        if (!t) continue;
        snapshot_malloc(t);
        leave();
    }
    return NULL;
}

static void start_malloc_stats(void)
{
    if (!g_session || !g_session->opt.malloc_stats_ms || g_bundled) return;
    pthread_t th;
    pthread_attr_t at;
    if (pthread_attr_init(&at) != 0) return;
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, 64 * 1024);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the program's signals are not for it */
    pthread_create(&th, &at, malloc_stats_thread, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&at);
}

static void record_exit(int status)
{
    /* a vfork child (posix_spawn's too) shares its parent's memory: what it
     * would record would be the parent's; its _exit is not the parent's end */
    if (g_region && g_region->pid != (int32_t)syscall(SYS_getpid)) return;
    tstate_t *t = enter();
    if (!t) return;
    snapshot_pym();
    mt_py_at_exit();
    if (!(__atomic_load_n(&g_region->flags, __ATOMIC_RELAXED) & MT_RG_EXITED)) {
        snapshot_malloc(t);
        record_marker(t, MT_MK_process_exit, (uint64_t)(int64_t)status);
        g_region->exit_status = status;
        __atomic_or_fetch(&g_region->flags, MT_RG_EXITED, __ATOMIC_RELEASE);
    }
    leave();
}

EXPORT void exit(int status)
{
    record_exit(status);
    if (!real_exit) {
        t_in_hook = 1;
        real_exit = dlsym(RTLD_NEXT, "exit");
        t_in_hook = 0;
    }
    real_exit(status);
}

/* _exit and _Exit end the process at once (os._exit, a forked child that
 * must not run atexit handlers): a normal end all the same. */
EXPORT void _exit(int status)
{
    record_exit(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

EXPORT void _Exit(int status)
{
    record_exit(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

typedef int (*main_fn)(int, char **, char **);
static main_fn g_real_main;

static int traced_main(int argc, char **argv, char **envp)
{
    tstate_t *t = enter();
    if (t) {
        record_marker(t, MT_MK_main_enter, 0);
        leave();
        start_malloc_stats(); /* main is a safe place to start a thread */
    }
    int rc = g_real_main(argc, argv, envp);
    record_exit(rc);
    return rc;
}

typedef int (*start_main_fn)(main_fn, int, char **, void (*)(void), void (*)(void),
                             void (*)(void), void *);

EXPORT int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
                             void (*fini)(void), void (*rtld_fini)(void), void *stack_end)
{
    t_in_hook = 1;
    start_main_fn real = (start_main_fn)dlsym(RTLD_NEXT, "__libc_start_main");
    t_in_hook = 0;
    g_real_main = main;
    return real(traced_main, argc, argv, init, fini, rtld_fini, stack_end);
}

__attribute__((constructor)) static void preload_init(void)
{
    tstate_t *t = enter();
    if (t) {
        record_marker(t, MT_MK_process_start, 0);
        mt_py_attach(NULL); /* the executable or a DT_NEEDED libpython: relocated by now */
        leave();
    }
}

__attribute__((destructor)) static void preload_fini(void)
{
    if (__atomic_load_n(&g_state, __ATOMIC_ACQUIRE) != ST_READY) return;
    t_in_hook = 1;
    scan_modules(); /* objects loaded without dlopen's PLT entry */
    snapshot_pym(); /* if exit() was not seen (a return from a thread-less exit path) */
    t_in_hook = 0;
}
