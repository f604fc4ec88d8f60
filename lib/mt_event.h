/* mt_event.h - the event model: layers (domains), event kinds and markers.
 *
 * Place in the pipeline: shared by every part.  The preload library writes
 * kind codes into records, the collector stores them, and the database
 * carries the same lists as lookup tables (`domains`, `event_kinds`,
 * `marker_kinds`) so that SQL reads names, not numbers.  Each list is written
 * once here, as an X-macro, and expanded wherever it is needed.
 *
 * Codes are part of the on-disk contract: never renumber, only append.
 * The two most frequent kinds, free (0) and malloc (1), have the codes that
 * SQLite stores in zero payload bytes.
 */
#ifndef MT_EVENT_H
#define MT_EVENT_H

#include <stdint.h>

#include "pym.h"

/* X(code, name, layer, description) - the seed's layer diagram */
#define MT_DOMAINS(X)                                                        \
    X(0, libc,      0, "C library allocator (malloc and friends)")          \
    X(1, os,       -1, "operating system: mmap, munmap, mremap, brk, sbrk") \
    X(2, pymem_raw, 1, "CPython raw domain (PyMem_Raw*)")                   \
    X(3, pymem,     1, "CPython memory domain (PyMem_*)")                   \
    X(4, pyobj,     2, "CPython object domain (PyObject_*)")                \
    X(5, bundled,   2, "memtrace bundled small-object allocator")         \
    X(6, pyarena,   2, "CPython object allocator's arenas (PyObject_SetArenaAllocator)")

typedef enum {
#define X(code, name, layer, desc) MT_DOM_##name = code,
    MT_DOMAINS(X)
#undef X
    MT_DOM_COUNT
} mt_domain_t;

/* Flags of an event kind: what it does to the set of live blocks. */
#define MT_KF_ALLOC 1u /* creates a block at addr of size */
#define MT_KF_FREE  2u /* ends the block at addr (realloc: at old_addr) */

/* X(code, name, domain, flags, description) */
#define MT_KINDS(X)                                                                  \
    X(0,  free,           libc, MT_KF_FREE, "free(addr)")                            \
    X(1,  malloc,         libc, MT_KF_ALLOC, "malloc(size)")                          \
    X(2,  calloc,         libc, MT_KF_ALLOC, "calloc(n, m): size = n*m")              \
    X(3,  realloc,        libc, MT_KF_ALLOC | MT_KF_FREE, "realloc(old_addr, size)")  \
    X(4,  reallocarray,   libc, MT_KF_ALLOC | MT_KF_FREE, "reallocarray(old_addr, n, m)") \
    X(5,  posix_memalign, libc, MT_KF_ALLOC, "posix_memalign(&addr, align, size)")    \
    X(6,  aligned_alloc,  libc, MT_KF_ALLOC, "aligned_alloc(align, size)")            \
    X(7,  memalign,       libc, MT_KF_ALLOC, "memalign(align, size)")                 \
    X(8,  valloc,         libc, MT_KF_ALLOC, "valloc(size)")                          \
    X(9,  pvalloc,        libc, MT_KF_ALLOC, "pvalloc(size)")                         \
    X(10, mmap,           os,   MT_KF_ALLOC, "mmap/mmap64: addr = result, size = length") \
    X(11, munmap,         os,   MT_KF_FREE, "munmap(addr, size)")                     \
    X(12, mremap,         os,   MT_KF_ALLOC | MT_KF_FREE, "mremap(old_addr, old size, size)") \
    X(13, brk,            os,   0, "brk system call: addr = the break after it, old_addr = before, size = brk heap size after it (--os=hooks: the brk() function, addr = requested break, size = result, 0 ok)") \
    X(14, sbrk,           os,   0, "sbrk(size): addr = previous break, size = increment") \
    X(15, raw_malloc,     pymem_raw, MT_KF_ALLOC, "PyMem_RawMalloc(size)")             \
    X(16, raw_calloc,     pymem_raw, MT_KF_ALLOC, "PyMem_RawCalloc(n, m): size = n*m") \
    X(17, raw_realloc,    pymem_raw, MT_KF_ALLOC | MT_KF_FREE, "PyMem_RawRealloc(old_addr, size)") \
    X(18, raw_free,       pymem_raw, MT_KF_FREE, "PyMem_RawFree(addr)")                \
    X(19, mem_malloc,     pymem, MT_KF_ALLOC, "PyMem_Malloc(size)")                    \
    X(20, mem_calloc,     pymem, MT_KF_ALLOC, "PyMem_Calloc(n, m): size = n*m")        \
    X(21, mem_realloc,    pymem, MT_KF_ALLOC | MT_KF_FREE, "PyMem_Realloc(old_addr, size)") \
    X(22, mem_free,       pymem, MT_KF_FREE, "PyMem_Free(addr)")                       \
    X(23, obj_malloc,     pyobj, MT_KF_ALLOC, "PyObject_Malloc(size)")                 \
    X(24, obj_calloc,     pyobj, MT_KF_ALLOC, "PyObject_Calloc(n, m): size = n*m")     \
    X(25, obj_realloc,    pyobj, MT_KF_ALLOC | MT_KF_FREE, "PyObject_Realloc(old_addr, size)") \
    X(26, obj_free,       pyobj, MT_KF_FREE, "PyObject_Free(addr)")                    \
    X(27, py_arena_alloc, pyarena, MT_KF_ALLOC, "object allocator's arena allocator: alloc(size)") \
    X(28, py_arena_free,  pyarena, MT_KF_FREE, "object allocator's arena allocator: free(addr, size)") \
    X(29, madvise,        os,   0, "madvise(addr, size, advice) that returns memory (DONTNEED, FREE, REMOVE): old_addr = advice")

typedef enum {
#define X(code, name, dom, flags, desc) MT_EV_##name = code,
    MT_KINDS(X)
#undef X
    MT_EV_COUNT
} mt_kind_t;

/* The bundled allocator's internal events (PYM_EVENTS in pym.h) are event
 * kinds too, in the bundled domain, at MT_KIND_PYM_BASE + their pym code.
 * They change no block of the program (flags 0): the program's own
 * malloc/free events still say that. */
#define MT_KIND_PYM_BASE 32
#define MT_KIND_MAX (MT_KIND_PYM_BASE + PYM_EV_COUNT)

/* X(code, name, description) - points on the timeline that are not heap events */
#define MT_MARKERS(X)                                                  \
    X(0, process_start, "the preload library initialised in a process") \
    X(1, main_enter,    "main() entered")                               \
    X(2, process_exit,  "exit() or return from main: value = status")   \
    X(3, exec,          "this process image replaced an earlier one (exec)") \
    X(4, fork_child,    "first event of a forked child")                \
    X(5, thread_start,  "first event of a thread")                      \
    X(6, killed,        "process died of a signal: value = signal")     \
    X(7, py_init,       "the CPython interpreter is initialised (capture of GC and frames begins)") \
    X(8, py_user_code,  "CPython starts running the user's code (script, -c, -m): value = 1 file, 2 command, 3 module") \
    X(9, py_atexit,     "CPython runs its atexit functions (the program's Python code has ended)")

typedef enum {
#define X(code, name, desc) MT_MK_##name = code,
    MT_MARKERS(X)
#undef X
    MT_MK_COUNT
} mt_marker_t;

/* Names, flags and domains by code; NULL / 0 for unknown codes. */
const char *mt_domain_name(int code);
const char *mt_domain_description(int code);
const char *mt_kind_name(int code);
unsigned mt_kind_flags(int code);
int mt_kind_domain(int code);
const char *mt_marker_name(int code);
/* True for the kinds whose event has no size (free and the PyMem/PyObject
 * frees): their size column is NULL. */
static inline int mt_kind_sizeless(int code)
{
    return code == MT_EV_free || code == MT_EV_raw_free || code == MT_EV_mem_free || code == MT_EV_obj_free;
}
/* For a kind that allocates a block of the C library or a CPython domain,
 * the kind that releases it (free, raw_free, mem_free, obj_free); -1 for
 * any other kind. */
static inline int mt_kind_release(int code)
{
    if (code >= MT_EV_malloc && code <= MT_EV_pvalloc) return MT_EV_free;
    if (code >= MT_EV_raw_malloc && code <= MT_EV_raw_realloc) return MT_EV_raw_free;
    if (code >= MT_EV_mem_malloc && code <= MT_EV_mem_realloc) return MT_EV_mem_free;
    if (code >= MT_EV_obj_malloc && code <= MT_EV_obj_realloc) return MT_EV_obj_free;
    return -1;
}

#endif
