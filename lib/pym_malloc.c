/* pym_malloc.c - libmemtrace_pym_malloc.so: the bundled allocator as any
 * program's malloc, with no tracing at all.
 *
 *   LD_PRELOAD=libmemtrace_pym_malloc.so ./program
 *
 * For comparing the bundled allocator itself with the C library's
 * (bench/bundled.sh); `memtrace run --allocator=bundled` is the traced
 * equivalent.  Every entry point of the malloc family maps to pym_*; what pym
 * does not serve (large or strongly aligned requests, foreign pointers) it
 * hands to the C library itself (lib/pym.h).
 */
#define _GNU_SOURCE
#include "pym.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

EXPORT void *malloc(size_t n) { return pym_malloc(n); }
EXPORT void free(void *p) { pym_free(p); }
EXPORT void *calloc(size_t a, size_t b) { return pym_calloc(a, b); }
EXPORT void *realloc(void *p, size_t n) { return pym_realloc(p, n); }
EXPORT size_t malloc_usable_size(void *p) { return p ? pym_usable_size(p) : 0; }
EXPORT void *memalign(size_t al, size_t n) { return pym_memalign(al, n); }

EXPORT void *aligned_alloc(size_t al, size_t n)
{
    if (!al || (al & (al - 1))) {
        errno = EINVAL;
        return NULL;
    }
    return pym_memalign(al, n);
}

EXPORT int posix_memalign(void **out, size_t al, size_t n)
{
    if (al < sizeof(void *) || (al & (al - 1))) return EINVAL;
    void *p = pym_memalign(al, n);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}

EXPORT void *valloc(size_t n) { return pym_memalign((size_t)sysconf(_SC_PAGESIZE), n); }

EXPORT void *pvalloc(size_t n)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    if (n > SIZE_MAX - ps) {
        errno = ENOMEM;
        return NULL;
    }
    return pym_memalign(ps, n ? (n + ps - 1) & ~(ps - 1) : ps);
}

EXPORT void *reallocarray(void *p, size_t a, size_t b)
{
    size_t n;
    if (__builtin_mul_overflow(a, b, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return pym_realloc(p, n);
}

__attribute__((constructor)) static void pym_malloc_init(void) { pym_atfork_register(); }
