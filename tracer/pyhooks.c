/* pyhooks.c - the CPython layer of the preload library: the raw, memory
 * and object domains, the object allocator's arenas, garbage collections,
 * and Python frames in stacks.
 *
 * Place in the pipeline: part of libmemtrace_preload.so (see preload.c for
 * the hook rules).  docs/cpython-capture.md gives the measurements behind
 * each choice; in short:
 *
 * Attach.  At the constructor (the interpreter is the executable or a
 * DT_NEEDED libpython, relocated by then) and after each dlopen (a libpython
 * opened RTLD_LOCAL is reached only through its handle), look up
 * PyMem_SetAllocator.  Wrap RAW, MEM and OBJ with PyMem_SetAllocator and
 * the arena allocator with PyObject_SetArenaAllocator.  Each wrapper's ctx
 * is a slot holding the allocator it wraps; slots are never rewritten,
 * because CPython saves and restores the RAW allocator around its own
 * default-allocator windows.
 *
 * Watch.  When PYTHONMALLOC or -X dev is set, pre-initialisation replaces
 * all three domains without chaining.  Until the interpreter is
 * initialised, every recorded C library call checks the OBJ domain; if a
 * built-in configuration replaced ours (_PyMem_GetCurrentAllocatorName()
 * names it), the wrappers go in again on top.  A foreign allocator
 * (tracemalloc, an embedder's) is left alone: it chains to ours.
 *
 * Interpreter initialised.  A pending call (Py_AddPendingCall) runs at the
 * next bytecode, in the main thread with the GIL: it appends a C function
 * to gc.callbacks, registers an atexit function (names are resolved there,
 * while the interpreter is alive), adds an audit hook (cpython.run_* marks
 * the start of the user's code) and registers Py_AtExit.
 *
 * Python frames (3.11 only: the layout is read directly, see below).  The
 * calling thread's frame chain is read from the thread state; each frame is
 * recorded like a return address, as (code object, instruction offset)
 * tagged with bit 63 (MT_PYFRAME).  Code objects are kept alive
 * (Py_IncRef at first sight) so an address is never reused; file, name and
 * line are resolved once per distinct frame at exit.  Events of the Python
 * domains carry the native caller (one return address: the object-specific
 * allocator) and the Python frames; --python-native unwinds the whole
 * native stack instead.  C library events of a thread running Python get
 * their Python frames in place of the evaluation loop's native frames.
 */
#define _GNU_SOURCE
#include "mt_event.h"
#include "preload_int.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ---- the part of CPython's C API used here (declared, not included:
 * memtrace builds without Python headers and serves several versions) ---- */

typedef struct py_object PyObject;
typedef ssize_t Py_ssize_t;

enum { DOM_RAW = 0, DOM_MEM = 1, DOM_OBJ = 2 };

typedef struct {
    void *ctx;
    void *(*malloc)(void *ctx, size_t size);
    void *(*calloc)(void *ctx, size_t nelem, size_t elsize);
    void *(*realloc)(void *ctx, void *ptr, size_t new_size);
    void (*free)(void *ctx, void *ptr);
} py_alloc_t; /* PyMemAllocatorEx (3.5+) */

typedef struct {
    void *ctx;
    void *(*alloc)(void *ctx, size_t size);
    void (*free)(void *ctx, void *ptr, size_t size);
} py_arena_t; /* PyObjectArenaAllocator */

typedef PyObject *(*py_cfunc_t)(PyObject *, PyObject *);
typedef struct {
    const char *name;
    py_cfunc_t meth;
    int flags;
    const char *doc;
} py_methoddef_t; /* PyMethodDef */
#define PY_METH_VARARGS 1
#define PY_METH_NOARGS 4

static struct {
    void (*GetAllocator)(int, py_alloc_t *);
    void (*SetAllocator)(int, py_alloc_t *);
    void (*GetArenaAllocator)(py_arena_t *);
    void (*SetArenaAllocator)(py_arena_t *);
    const char *(*CurrentAllocatorName)(void);
    int (*IsInitialized)(void);
    int (*AddPendingCall)(int (*)(void *), void *);
    const char *(*GetVersion)(void);
    const unsigned long *Version;
    void *(*UncheckedGet)(void);
    void *(*GILStateGet)(void);
    int (*Addr2Line)(PyObject *, int);
    PyObject *(*Import)(const char *);
    PyObject *(*GetAttr)(PyObject *, const char *);
    int (*ListAppend)(PyObject *, PyObject *);
    Py_ssize_t (*ListSize)(PyObject *);
    PyObject *(*ListGetItem)(PyObject *, Py_ssize_t);
    PyObject *(*TupleGetItem)(PyObject *, Py_ssize_t);
    PyObject *(*CFunctionNew)(py_methoddef_t *, PyObject *, PyObject *);
    const char *(*AsUTF8)(PyObject *, Py_ssize_t *);
    long (*LongAsLong)(PyObject *);
    PyObject *(*DictGet)(PyObject *, const char *);
    void (*ErrClear)(void);
    PyObject *(*CallMethod)(PyObject *, const char *, const char *, ...);
    void (*IncRef)(PyObject *);
    void (*DecRef)(PyObject *);
    PyObject *None;
    int (*AddAuditHook)(int (*)(const char *, PyObject *, void *), void *);
    int (*AtExit)(void (*)(void));
    Py_ssize_t (*AllocatedBlocks)(void);
    int (*DebugMallocStats)(FILE *);
    void *EvalFrame;
} api;

#include "pyoffsets.h"

/* ---- state ---- */

int mt_py_watching;
int mt_py_frames_on;

#define MAX_SLOTS 48
typedef struct {
    int dom; /* DOM_* */
    py_alloc_t prev;
} slot_t;

static slot_t g_slots[MAX_SLOTS];
static int g_nslots;              /* slots used (installs are single-threaded: start-up) */
static py_arena_t g_arena_prev;
static int g_attached;            /* an interpreter's API was found */
static int g_installed;           /* wrappers in */
static int g_frames;              /* read Python frames */
static int g_native;              /* --python-native */
static int g_pending;             /* pending call scheduled */
static int g_ready;               /* pending call ran: gc callback and atexit in */
static int g_user_seen;           /* cpython.run_* seen */
static unsigned g_minor;          /* 3.minor */
static uint64_t g_eval_lo, g_eval_hi; /* _PyEval_EvalFrameDefault's code */

static const int dom_mt[3] = {MT_DOM_pymem_raw, MT_DOM_pymem, MT_DOM_pyobj};
static const int kind_base[3] = {MT_EV_raw_malloc, MT_EV_mem_malloc, MT_EV_obj_malloc};

/* Code objects seen in frames, each Py_IncRef'd once (open addressing;
 * only touched by the thread holding the GIL).  Raw mmap: hook context. */
#define CODE_SET_SLOTS (1u << 18)
static uintptr_t *g_codes;
static uint32_t g_ncodes;
static uintptr_t g_code_cache[1024]; /* direct-mapped front of the set */

static mt_pyinfo_t *info(void) { return &mt_pl_region()->py; }

static void note(const char *msg)
{
    mt_pyinfo_t *pi = info();
    size_t used = strlen(pi->note), len = strlen(msg);
    if (used + len + 3 >= sizeof pi->note) return;
    if (used) {
        memcpy(pi->note + used, "; ", 2);
        used += 2;
    }
    memcpy(pi->note + used, msg, len + 1);
}

/* ---- frames ---- */

/* Keeps a code object alive for the rest of the run, once.
 * hook context: no allocation; the GIL is held. */
static int keep_code(uintptr_t code)
{
    uintptr_t *c = &g_code_cache[(code >> 4) & 1023];
    if (*c == code) return 1;
    if (!g_codes) {
        void *p = (void *)syscall(SYS_mmap, NULL, CODE_SET_SLOTS * sizeof(uintptr_t), PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if ((unsigned long)p > -4096UL) return 0;
        g_codes = p;
    }
    uint32_t h = (uint32_t)((code >> 4) * 0x9e3779b1u) & (CODE_SET_SLOTS - 1);
    for (;; h = (h + 1) & (CODE_SET_SLOTS - 1)) {
        if (g_codes[h] == code) break;
        if (!g_codes[h]) {
            if (g_ncodes >= CODE_SET_SLOTS / 2) return 0; /* full: frames of new code are dropped */
            g_codes[h] = code;
            g_ncodes++;
            api.IncRef((PyObject *)code);
            break;
        }
    }
    *c = code;
    return 1;
}

/* The Python frames of the thread holding the GIL, innermost first; entry[i]
 * is set where a C-level call of the evaluation loop began.
 * hook context: no allocation; call only with the GIL held. */
static int read_frames(uint64_t *out, uint8_t *entry, int max)
{
    char *ts = api.UncheckedGet();
    if (!ts) return 0;
    char *cf = *(char **)(ts + TS_CFRAME);
    if (!cf) return 0;
    char *f = *(char **)(cf + CF_CURRENT);
    int n = 0;
    for (int guard = 0; f && n < max && guard < 4096; guard++) {
        char *code = *(char **)(f + FR_CODE);
        char *prev = *(char **)(f + FR_PREV_INSTR);
        uint8_t is_entry = *(uint8_t *)(f + FR_IS_ENTRY);
        char *start = code + CO_CODE;
        int first = *(int *)(code + CO_FIRSTTRACEABLE);
        if (*(uint8_t *)(f + FR_OWNER) == OWNED_BY_GENERATOR || prev >= start + 2 * (ptrdiff_t)first) {
            if (keep_code((uintptr_t)code)) {
                ptrdiff_t off = prev > start ? (prev - start) / 2 : 0;
                if (entry) entry[n] = is_entry;
                out[n++] = MT_PYFRAME(code, off);
            }
        } else if (entry && n > 0) {
            entry[n - 1] |= is_entry; /* an incomplete frame still ends its group */
        }
        f = *(char **)(f + FR_PREVIOUS);
    }
    return n;
}

/* True when the calling thread holds the GIL (3.11's unchecked thread
 * state is the GIL holder's, not necessarily the caller's). */
static inline int holds_gil(void)
{
    void *ts = api.UncheckedGet();
    return ts && ts == api.GILStateGet();
}

int mt_py_merge(const uint64_t *ip, int n, uint64_t *out, int cap)
{
    if (!g_frames || !holds_gil()) return -1;
    uint64_t py[MT_MAX_DEPTH];
    uint8_t ent[MT_MAX_DEPTH];
    int np = read_frames(py, ent, MT_MAX_DEPTH);
    if (np == 0) return -1;
    int k = 0, j = 0;
    for (int i = 0; i < n && k < cap; i++) {
        if (ip[i] >= g_eval_lo && ip[i] < g_eval_hi && j < np) {
            /* this run of the evaluation loop: its frames up to its entry */
            do out[k++] = py[j];
            while (!ent[j++] && j < np && k < cap);
            continue;
        }
        out[k++] = ip[i];
    }
    while (j < np && k < cap) out[k++] = py[j++]; /* native walk ended early */
    return k;
}

/* The stack of a Python-domain event: the native caller and the Python
 * frames (or the whole native stack with --python-native).
 * hook context: no allocation. */
static uint32_t py_stack(tstate_t *t, int dom, const void *ra, uint16_t *fl)
{
    uint32_t depth = mt_pl_depth();
    if (!depth) return 0;
    if (g_native) return mt_pl_native_stack(t, fl);
    uint64_t ip[MT_MAX_DEPTH + 1];
    ip[0] = (uint64_t)(uintptr_t)ra;
    int n = 1;
    if (g_frames && (dom != DOM_RAW || holds_gil())) n += read_frames(ip + 1, NULL, (int)depth);
    return mt_pl_stack_of(t, ip, n, fl);
}

/* ---- the domain wrappers ---- */

static void schedule_pending(void);

#define UNLIKELY_PY(x) __builtin_expect(!!(x), 0)

/* Before initialisation ends, each MEM/OBJ call checks whether it has. */
static inline void check_init(void)
{
    if (UNLIKELY_PY(!g_pending) && api.IsInitialized()) schedule_pending();
}

/* The Python-domain call in progress on this thread (innermost), for
 * mt_py_call_stack: its caller, domain and, once computed, its stack. */
typedef struct {
    const void *ra; /* NULL: none */
    int dom;
    uint32_t stack; /* 0: not computed yet */
    uint16_t flags;
} py_call_t;
static __thread py_call_t t_call __attribute__((tls_model("initial-exec")));

uint32_t mt_py_call_stack(tstate_t *t, uint16_t *flags)
{
    if (!t_call.ra || g_native) return 0;
    if (!t_call.stack) t_call.stack = py_stack(t, t_call.dom, t_call.ra, &t_call.flags);
    *flags |= t_call.flags;
    return t_call.stack;
}

/* Around the call a wrapper serves: the layer (via) and the call's stack
 * for what happens beneath. */
#define CALL_BEGIN(s)                                             \
    unsigned via = mt_t_via;                                      \
    py_call_t outer = t_call;                                     \
    t_call = (py_call_t){__builtin_return_address(0), (s)->dom, 0, 0}; \
    mt_t_via = (unsigned)dom_mt[(s)->dom]
#define CALL_END()                                                \
    py_call_t mine = t_call;                                      \
    t_call = outer;                                               \
    mt_t_via = via

/* The wrapper's own event: the stack computed beneath, if any was. */
#define RECORD_ALLOC(s, kind_off, p, size, old, failed, via)                                    \
    do {                                                                                        \
        tstate_t *t = mt_pl_enter();                                                            \
        if (t) {                                                                                \
            uint16_t fl = mine.flags;                                                           \
            uint32_t st = mine.stack ? mine.stack                                               \
                                     : py_stack(t, (s)->dom, __builtin_return_address(0), &fl); \
            mt_pl_event(t, mt_pl_seq(), kind_base[(s)->dom] + (kind_off), p, size, old, failed, via, st, fl); \
            if ((s)->dom != DOM_RAW) check_init();                                              \
            mt_pl_leave();                                                                      \
        }                                                                                       \
    } while (0)

static void *w_malloc(void *ctx, size_t n)
{
    slot_t *s = ctx;
    CALL_BEGIN(s);
    void *p = s->prev.malloc(s->prev.ctx, n);
    CALL_END();
    RECORD_ALLOC(s, 0, p, n, NULL, p == NULL, via);
    return p;
}

static void *w_calloc(void *ctx, size_t a, size_t b)
{
    slot_t *s = ctx;
    CALL_BEGIN(s);
    void *p = s->prev.calloc(s->prev.ctx, a, b);
    CALL_END();
    size_t total;
    if (__builtin_mul_overflow(a, b, &total)) total = SIZE_MAX;
    RECORD_ALLOC(s, 1, p, total, NULL, p == NULL, via);
    return p;
}

static void *w_realloc(void *ctx, void *old, size_t n)
{
    slot_t *s = ctx;
    CALL_BEGIN(s);
    void *p = s->prev.realloc(s->prev.ctx, old, n);
    CALL_END();
    RECORD_ALLOC(s, 2, p, n, old, p == NULL, via);
    return p;
}

static void w_free(void *ctx, void *p)
{
    slot_t *s = ctx;
    CALL_BEGIN(s);
    if (p) {
        /* the sequence number before the block is released (preload.c's order rule) */
        tstate_t *t = mt_pl_enter();
        if (t) {
            uint16_t fl = 0;
            uint32_t st = (mt_pl_options() & MT_OPT_FREE_STACKS)
                              ? py_stack(t, s->dom, __builtin_return_address(0), &fl)
                              : 0;
            mt_pl_event(t, mt_pl_seq(), kind_base[s->dom] + 3, p, 0, NULL, 0, via, st, fl);
            mt_pl_leave();
        }
    }
    s->prev.free(s->prev.ctx, p);
    CALL_END();
    (void)mine; /* a free's own event is recorded before the call */
}

static void *w_arena_alloc(void *ctx, size_t n)
{
    (void)ctx;
    unsigned via = mt_t_via;
    mt_t_via = MT_DOM_pyarena;
    void *p = g_arena_prev.alloc(g_arena_prev.ctx, n);
    mt_t_via = via;
    tstate_t *t = mt_pl_enter();
    if (t) {
        uint16_t fl = 0;
        uint32_t st = py_stack(t, DOM_OBJ, __builtin_return_address(0), &fl);
        mt_pl_event(t, mt_pl_seq(), MT_EV_py_arena_alloc, p, n, NULL, p == NULL, via, st, fl);
        mt_pl_leave();
    }
    return p;
}

static void w_arena_free(void *ctx, void *p, size_t n)
{
    (void)ctx;
    unsigned via = mt_t_via;
    tstate_t *t = p ? mt_pl_enter() : NULL;
    if (t) {
        mt_pl_event(t, mt_pl_seq(), MT_EV_py_arena_free, p, n, NULL, 0, via, 0, 0);
        mt_pl_leave();
    }
    mt_t_via = MT_DOM_pyarena;
    g_arena_prev.free(g_arena_prev.ctx, p, n);
    mt_t_via = via;
}

/* Wraps the three domains on top of whatever is there now. */
static void install_domains(void)
{
    if (g_nslots + 3 > MAX_SLOTS) return;
    for (int d = DOM_RAW; d <= DOM_OBJ; d++) {
        slot_t *s = &g_slots[g_nslots++];
        s->dom = d;
        api.GetAllocator(d, &s->prev);
        py_alloc_t mine = {s, w_malloc, w_calloc, w_realloc, w_free};
        api.SetAllocator(d, &mine);
    }
    g_installed = 1;
    info()->installs++;
}

/* The name of CPython's allocator configuration, or NULL (custom, or not
 * safe to ask: 3.12 takes a lock that does not exist before its runtime). */
static const char *allocator_name(void)
{
    if (!api.CurrentAllocatorName || g_minor == 12) return NULL;
    return api.CurrentAllocatorName();
}

static void set_allocator_name(const char *name)
{
    mt_pyinfo_t *pi = info();
    if (!name) return;
    strncpy(pi->allocator, name, sizeof pi->allocator - 1);
    pi->allocator[sizeof pi->allocator - 1] = 0;
}

void mt_py_watch(void)
{
    if (!g_installed) return;
    if (api.IsInitialized()) {
        mt_py_watching = 0;
        schedule_pending();
        return;
    }
    py_alloc_t cur;
    api.GetAllocator(DOM_OBJ, &cur);
    if (cur.malloc == w_malloc) return;
    const char *name = allocator_name();
    if (!name) return; /* a foreign allocator: it chains to ours */
    set_allocator_name(name);
    install_domains();
}

/* ---- after initialisation: GC, atexit, audit ---- */

static PyObject *none(void)
{
    api.IncRef(api.None);
    return api.None;
}

static long dict_long(PyObject *d, const char *key)
{
    PyObject *v = d ? api.DictGet(d, key) : NULL;
    long x = v ? api.LongAsLong(v) : -1;
    return x;
}

/* gc.callbacks entry: callback(phase, info).  One record per phase. */
static PyObject *gc_callback(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *phase = api.TupleGetItem(args, 0), *d = api.TupleGetItem(args, 1);
    const char *ph = phase ? api.AsUTF8(phase, NULL) : NULL;
    tstate_t *t = ph ? mt_pl_enter() : NULL;
    if (t) {
        mt_rec_t r = {0};
        r.type = MT_REC_GC;
        r.kind = strcmp(ph, "start") == 0 ? 0 : 1;
        r.seq = mt_pl_seq();
        r.ts = mt_pl_clock(); /* a collection takes tens of microseconds: exact times */
        r.size = (uint64_t)dict_long(d, "generation");
        if (r.kind == 1) {
            r.addr = (uint64_t)dict_long(d, "collected");
            r.old_addr = (uint64_t)dict_long(d, "uncollectable");
        }
        mt_pl_emit(t, &r);
        mt_pl_leave();
    }
    api.ErrClear();
    return none();
}

/* gc.get_stats()[g]["collections"] for g = 0..2 */
static void gc_counts(PyObject *gc, int64_t out[3])
{
    for (int g = 0; g < 3; g++) out[g] = -1;
    PyObject *stats = api.CallMethod(gc, "get_stats", NULL);
    if (!stats) return;
    for (int g = 0; g < 3 && g < api.ListSize(stats); g++) out[g] = dict_long(api.ListGetItem(stats, g), "collections");
    api.DecRef(stats);
}

/* Parses "  <class> <size> <pools> <used> <avail>" rows and the "# arenas"
 * lines of _PyObject_DebugMallocStats. */
static int64_t number_after(const char *s, const char *key)
{
    const char *p = strstr(s, key);
    if (!p) return -1;
    p = strchr(p, '=');
    if (!p) return -1;
    int64_t v = 0;
    int any = 0;
    for (p++; *p && *p != '\n'; p++) {
        if (*p >= '0' && *p <= '9') {
            v = v * 10 + (*p - '0');
            any = 1;
        }
    }
    return any ? v : -1;
}

static void parse_mallocstats(const char *s, mt_pyinfo_t *pi)
{
    const char *p = strstr(s, "-----   ----");
    if (p) p = strchr(p, '\n');
    while (p && *p) {
        p++;
        int cls, size, pools;
        long long used, avail;
        if (sscanf(p, "%d %d %d %lld %lld", &cls, &size, &pools, &used, &avail) != 5) break;
        if (cls >= 0 && cls < MT_PY_CLASSES) {
            pi->class_used[cls] = used;
            pi->class_pools[cls] = pools;
        }
        p = strchr(p, '\n');
    }
    pi->arenas_allocated = number_after(s, "# arenas allocated total");
    pi->arenas_reclaimed = number_after(s, "# arenas reclaimed");
    pi->arenas_highwater = number_after(s, "# arenas highwater mark");
    pi->arenas_current = number_after(s, "# arenas allocated current");
}

/* pymalloc's own figures, for checking the state rebuilt from the events.
 * _PyObject_DebugMallocStats reports only when the object domain is
 * pymalloc itself: the wrappers step aside meanwhile (nothing allocates
 * from Python in between). */
static void snapshot_pymalloc(void)
{
    mt_pyinfo_t *pi = info();
    if (pi->stats_valid) return;
    memset(pi->class_used, 0, sizeof pi->class_used);
    memset(pi->class_pools, 0, sizeof pi->class_pools);
    pi->arenas_allocated = pi->arenas_reclaimed = pi->arenas_highwater = pi->arenas_current = -1;
    pi->allocated_blocks = api.AllocatedBlocks ? (int64_t)api.AllocatedBlocks() : -1;
    /* our newest OBJ wrapper: the allocator below it is CPython's (with
     * tracemalloc, say, above it: stepped aside too, and put back) */
    slot_t *s = NULL;
    for (int k = g_nslots - 1; k >= 0 && !s; k--)
        if (g_slots[k].dom == DOM_OBJ) s = &g_slots[k];
    py_alloc_t cur;
    api.GetAllocator(DOM_OBJ, &cur);
    if (api.DebugMallocStats && s) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (f) {
            api.SetAllocator(DOM_OBJ, &s->prev);
            api.DebugMallocStats(f);
            api.SetAllocator(DOM_OBJ, &cur);
            fclose(f);
            if (buf) parse_mallocstats(buf, pi);
            free(buf);
        }
    }
    pi->stats_seq = mt_pl_seq_moment();
    __atomic_store_n(&pi->stats_valid, 1, __ATOMIC_RELEASE);
}

/* ---- names of Python frames ---- */

static uint32_t g_named_upto; /* stack trie nodes looked at */
static uint64_t *g_named;     /* resolved frames (open addressing) */
static uint32_t g_named_cap, g_nnamed;

static int named_insert(uint64_t ip)
{
    if (g_nnamed * 2 >= g_named_cap) {
        uint32_t cap = g_named_cap ? 2 * g_named_cap : 4096;
        uint64_t *n = calloc(cap, sizeof *n);
        if (!n) return -1;
        for (uint32_t i = 0; i < g_named_cap; i++) {
            if (!g_named[i]) continue;
            uint32_t h = (uint32_t)(g_named[i] * 0x9e3779b97f4a7c15ull >> 40) & (cap - 1);
            while (n[h]) h = (h + 1) & (cap - 1);
            n[h] = g_named[i];
        }
        free(g_named);
        g_named = n;
        g_named_cap = cap;
    }
    uint32_t h = (uint32_t)(ip * 0x9e3779b97f4a7c15ull >> 40) & (g_named_cap - 1);
    while (g_named[h]) {
        if (g_named[h] == ip) return 0;
        h = (h + 1) & (g_named_cap - 1);
    }
    g_named[h] = ip;
    g_nnamed++;
    return 1;
}

static const char *code_str(char *code, int off, Py_ssize_t *len)
{
    PyObject *s = *(PyObject **)(code + off);
    const char *u = s ? api.AsUTF8(s, len) : NULL;
    if (!u) {
        api.ErrClear();
        *len = 0;
        return "";
    }
    if (*len > 4000) *len = 4000;
    return u;
}

/* Resolves every Python frame of the stack trie not resolved yet into the
 * names area.  Runs with the GIL and the recursion guard held. */
static void resolve_names(void *arg)
{
    (void)arg;
    mt_region_t *r = mt_pl_region();
    if (!g_frames || !r) return;
    mt_trie_slot_t *slots = mt_region_trie(r);
    uint32_t nnodes = __atomic_load_n(&r->nnodes, __ATOMIC_ACQUIRE);
    if (nnodes > r->trie_slots) nnodes = r->trie_slots;
    char *names = mt_region_names(r);
    uint64_t used = r->py.names_used;
    for (; g_named_upto < nnodes; g_named_upto++) {
        if (__atomic_load_n(&slots[g_named_upto].state, __ATOMIC_ACQUIRE) != 2) continue;
        uint64_t ip = slots[g_named_upto].ip;
        if (!MT_IS_PYFRAME(ip) || named_insert(ip) != 1) continue;
        char *code = (char *)(((ip >> 20) & ((1ull << 43) - 1)) << 4);
        int off = (int)(ip & 0xfffff);
        Py_ssize_t flen, qlen;
        const char *file = code_str(code, CO_FILENAME, &flen);
        const char *func = code_str(code, CO_QUALNAME, &qlen);
        mt_pyname_t e = {ip, api.Addr2Line((PyObject *)code, off * 2), (uint16_t)flen, (uint16_t)qlen};
        uint64_t size = MT_PYNAME_SIZE(&e);
        if (used + size > MT_NAMES_SIZE) break;
        memcpy(names + used, &e, sizeof e);
        memcpy(names + used + sizeof e, file, (size_t)flen);
        memcpy(names + used + sizeof e + flen, func, (size_t)qlen);
        used += size;
    }
    __atomic_store_n(&r->py.names_used, used, __ATOMIC_RELEASE);
}

/* The process ends without Python's atexit (os._exit, or exit() from C
 * while the interpreter runs): name the frames now, while it is alive.
 * Called from the exit hooks; the recursion guard is held. */
void mt_py_at_exit(void)
{
    if (g_frames && g_ready && api.IsInitialized && api.IsInitialized() && holds_gil()) resolve_names(NULL);
}

static void atexit_body(void *arg)
{
    (void)arg;
    snapshot_pymalloc();
    resolve_names(NULL);
}

/* atexit function: the program's Python code has ended; the interpreter is
 * still whole. */
static PyObject *atexit_callback(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    tstate_t *t = mt_pl_enter();
    if (t) {
        mt_pl_marker(t, MT_MK_py_atexit, 0);
        mt_pl_leave();
    }
    PyObject *gc = api.Import("gc"); /* traced, like pending_body */
    if (gc) {
        gc_counts(gc, info()->gc_after);
        api.DecRef(gc);
    }
    api.ErrClear();
    mt_pl_untraced(atexit_body, NULL);
    return none();
}

/* Py_AtExit: the end of Py_FinalizeEx.  Frames first seen during
 * finalisation are named here (their code objects are still alive: we hold
 * references). */
static void at_finalize(void) { mt_pl_untraced(resolve_names, NULL); }

/* The process's resident bytes without shared memory (mt_status_rss):
 * memtrace's own record buffers are shared memory.  -1: unreadable. */
static int64_t resident_bytes(void)
{
    char buf[2048];
    uint32_t len = 0;
    uint64_t rss, vm;
    mt_read_small_file("/proc/self/status", buf, sizeof buf, &len);
    return len && mt_status_rss(buf, &rss, &vm) == 0 ? (int64_t)rss : -1;
}

static int audit_hook(const char *event, PyObject *args, void *ud)
{
    (void)args;
    (void)ud;
    if (g_user_seen || strncmp(event, "cpython.run_", 12) != 0) return 0;
    const char *w = event + 12;
    int v = strcmp(w, "file") == 0 ? 1 : strcmp(w, "command") == 0 ? 2 : strcmp(w, "module") == 0 ? 3 : 0;
    if (!v) return 0;
    g_user_seen = 1;
    info()->startup_rss = resident_bytes();
    tstate_t *t = mt_pl_enter();
    if (t) {
        mt_pl_marker(t, MT_MK_py_user_code, (uint64_t)v);
        mt_pl_leave();
    }
    return 0;
}

static py_methoddef_t g_gc_def = {"memtrace_gc_callback", gc_callback, PY_METH_VARARGS, NULL};
static py_methoddef_t g_atexit_def = {"memtrace_atexit", atexit_callback, PY_METH_NOARGS, NULL};

static void pending_body(void *arg)
{
    (void)arg;
    mt_pyinfo_t *pi = info();
    PyObject *gc = api.Import("gc");
    if (gc) {
        PyObject *cbs = api.GetAttr(gc, "callbacks");
        PyObject *fn = api.CFunctionNew(&g_gc_def, NULL, NULL);
        if (cbs && fn && api.ListAppend(cbs, fn) == 0) {
            pi->gc_callback_seq = mt_pl_seq_moment();
            gc_counts(gc, pi->gc_before);
            PyObject *thr = api.CallMethod(gc, "get_threshold", NULL);
            for (int g = 0; thr && g < 3; g++) {
                PyObject *v = api.TupleGetItem(thr, g);
                pi->gc_threshold[g] = v ? (int32_t)api.LongAsLong(v) : -1;
            }
            if (thr) api.DecRef(thr);
        } else {
            note("gc.callbacks could not be extended: no GC events");
        }
        if (fn) api.DecRef(fn);
        if (cbs) api.DecRef(cbs);
        api.DecRef(gc);
    }
    api.ErrClear();
    PyObject *ax = api.Import("atexit");
    PyObject *fn = api.CFunctionNew(&g_atexit_def, NULL, NULL);
    if (ax && fn) {
        PyObject *res = api.CallMethod(ax, "register", "O", fn);
        if (res) api.DecRef(res);
    }
    if (fn) api.DecRef(fn);
    if (ax) api.DecRef(ax);
    api.ErrClear();
    if (api.AddAuditHook) api.AddAuditHook(audit_hook, NULL);
    if (api.AtExit) api.AtExit(at_finalize);
    api.ErrClear();
    g_ready = 1;
}

static int pending_call(void *arg)
{
    (void)arg;
    tstate_t *t = mt_pl_enter();
    if (t) {
        mt_pl_marker(t, MT_MK_py_init, 0);
        mt_pl_leave();
    }
    /* traced: memtrace's own Python objects (its two functions, the modules
     * it imports) are in the trace like the program's, right after the
     * py_init marker, so the pymalloc state rebuilt from events stays exact */
    pending_body(NULL);
    return 0;
}

static void schedule_pending(void)
{
    if (g_pending) return;
    g_pending = 1;
    mt_py_watching = 0;
    if (api.AddPendingCall(pending_call, NULL) != 0) note("Py_AddPendingCall failed: no GC events");
}

/* ---- attach ---- */

static void *sym(void *h, const char *name) { return dlsym(h, name); }

/* The version of the interpreter: Py_Version (3.11+) or Py_GetVersion(). */
static void read_version(void)
{
    mt_pyinfo_t *pi = info();
    const char *v = api.GetVersion ? api.GetVersion() : NULL;
    size_t k = 0;
    while (v && v[k] && v[k] != ' ' && k < sizeof pi->version - 1) {
        pi->version[k] = v[k];
        k++;
    }
    pi->version[k] = 0;
    if (api.Version) {
        pi->hexversion = *api.Version;
    } else if (v) {
        unsigned maj = 0, min = 0, mic = 0;
        if (sscanf(v, "%u.%u.%u", &maj, &min, &mic) >= 2)
            pi->hexversion = ((uint64_t)maj << 24) | ((uint64_t)min << 16) | ((uint64_t)mic << 8);
    }
    g_minor = (pi->hexversion >> 24) == 3 ? (unsigned)(pi->hexversion >> 16) & 0xff : 0;
}

static void say_once(const char *msg)
{
    static int said;
    if (said) return;
    said = 1;
    (void)!write(2, msg, strlen(msg));
}

static void atfork_child(void)
{
    /* the child's region starts with an empty trie and names area */
    g_named_upto = 0;
    free(g_named);
    g_named = NULL;
    g_named_cap = g_nnamed = 0;
}

void mt_py_attach(void *handle)
{
    if (g_attached || (mt_pl_options() & MT_OPT_PY_OFF) || !mt_pl_region()) return;
    void *h = handle ? handle : RTLD_DEFAULT;
    api.SetAllocator = sym(h, "PyMem_SetAllocator");
    api.GetAllocator = sym(h, "PyMem_GetAllocator");
    if (!api.SetAllocator || !api.GetAllocator) {
        /* a failed dlsym leaves an error message that the C library frees
         * at the program's next dl call: free it now, untraced */
        (void)dlerror();
        (void)dlerror();
        return;
    }
    g_attached = 1;
    api.GetArenaAllocator = sym(h, "PyObject_GetArenaAllocator");
    api.SetArenaAllocator = sym(h, "PyObject_SetArenaAllocator");
    api.CurrentAllocatorName = sym(h, "_PyMem_GetCurrentAllocatorName");
    api.IsInitialized = sym(h, "Py_IsInitialized");
    api.AddPendingCall = sym(h, "Py_AddPendingCall");
    api.GetVersion = sym(h, "Py_GetVersion");
    api.Version = sym(h, "Py_Version");
    api.UncheckedGet = sym(h, "_PyThreadState_UncheckedGet");
    api.GILStateGet = sym(h, "PyGILState_GetThisThreadState");
    api.Addr2Line = sym(h, "PyCode_Addr2Line");
    api.Import = sym(h, "PyImport_ImportModule");
    api.GetAttr = sym(h, "PyObject_GetAttrString");
    api.ListAppend = sym(h, "PyList_Append");
    api.ListSize = sym(h, "PyList_Size");
    api.ListGetItem = sym(h, "PyList_GetItem");
    api.TupleGetItem = sym(h, "PyTuple_GetItem");
    api.CFunctionNew = sym(h, "PyCFunction_NewEx");
    api.AsUTF8 = sym(h, "PyUnicode_AsUTF8AndSize");
    api.LongAsLong = sym(h, "PyLong_AsLong");
    api.DictGet = sym(h, "PyDict_GetItemString");
    api.ErrClear = sym(h, "PyErr_Clear");
    api.CallMethod = sym(h, "PyObject_CallMethod");
    api.IncRef = sym(h, "Py_IncRef");
    api.DecRef = sym(h, "Py_DecRef");
    api.None = sym(h, "_Py_NoneStruct");
    api.AddAuditHook = sym(h, "PySys_AddAuditHook");
    api.AtExit = sym(h, "Py_AtExit");
    api.AllocatedBlocks = sym(h, "_Py_GetAllocatedBlocks");
    api.DebugMallocStats = sym(h, "_PyObject_DebugMallocStats");
    api.EvalFrame = sym(h, "_PyEval_EvalFrameDefault");

    mt_pyinfo_t *pi = info();
    pi->present = 1;
    for (int g = 0; g < 3; g++) pi->gc_before[g] = pi->gc_after[g] = -1;
    pi->startup_rss = -1;
    read_version();
    /* 3.5 brought PyMemAllocatorEx; versions after 3.13 are not known */
    if (g_minor < 5 || g_minor > 13) {
        note("CPython version not known to memtrace: only the C library layer is recorded");
        say_once("memtrace: this CPython version is not known to memtrace: recording the C library layer only\n");
        return;
    }
    int needed = api.IsInitialized && api.AddPendingCall && api.Import && api.GetAttr && api.ListAppend &&
                 api.ListSize && api.ListGetItem && api.TupleGetItem && api.CFunctionNew && api.AsUTF8 &&
                 api.LongAsLong && api.DictGet && api.ErrClear && api.CallMethod && api.IncRef && api.DecRef &&
                 api.None;
    if (!needed) {
        note("part of the C API is not exported: only the C library layer is recorded");
        return;
    }
    /* pymalloc's geometry by version (Objects/obmalloc.c): 3.10 made arenas
     * 1 MiB and pools 16 KiB on 64-bit builds with the radix tree */
    pi->arena_size = g_minor >= 10 ? 1u << 20 : 256u << 10;
    pi->pool_size = g_minor >= 10 ? 16u << 10 : 4u << 10;
    pi->small_max = 512;
    pi->size_classes = g_minor >= 8 ? 512 / 16 : 512 / 8;
    if (g_minor == 11 && api.UncheckedGet && api.GILStateGet && api.Addr2Line) {
        g_frames = 1;
        pi->frames = 1;
        Dl_info di;
        const ElfW(Sym) *es = NULL;
        if (api.EvalFrame && dladdr1(api.EvalFrame, &di, (void **)&es, RTLD_DL_SYMENT) && es) {
            g_eval_lo = (uint64_t)(uintptr_t)api.EvalFrame;
            g_eval_hi = g_eval_lo + es->st_size;
        }
        mt_py_frames_on = 1;
    } else {
        note("Python frames are read for CPython 3.11 only");
    }
    g_native = (mt_pl_options() & MT_OPT_PY_NATIVE) != 0;
    set_allocator_name(allocator_name());
    install_domains();
    if (api.GetArenaAllocator && api.SetArenaAllocator) {
        api.GetArenaAllocator(&g_arena_prev);
        py_arena_t mine = {NULL, w_arena_alloc, w_arena_free};
        api.SetArenaAllocator(&mine);
    } else {
        note("no arena allocator API: arenas are not recorded");
    }
    pthread_atfork(NULL, NULL, atfork_child);
    if (api.IsInitialized()) {
        /* a late attach (a libpython opened after Py_Initialize ran): what
         * the interpreter allocated before is not in the trace */
        note("the wrappers went in after the interpreter was initialised: blocks allocated before are missing");
        schedule_pending();
    } else {
        mt_py_watching = 1;
    }
}
