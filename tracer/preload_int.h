/* preload_int.h - what the preload library's parts share: the hook frame
 * and record writers of preload.c, and the CPython layer of pyhooks.c.
 *
 * Everything here is hidden (not exported from libmemtrace_preload.so) and
 * runs in hook context unless it says otherwise (see preload.c).
 */
#ifndef MT_PRELOAD_INT_H
#define MT_PRELOAD_INT_H

#include <stdint.h>

#include "mt_shm.h"

#define MT_HIDDEN __attribute__((visibility("hidden")))

typedef struct tstate tstate_t;

/* ---- preload.c ---- */

/* The domain (mt_domain_t) of the higher-layer call in progress on this
 * thread (a PyMem_RawMalloc wrapper sets pymem_raw around the call it
 * wraps), stored in each record's flags (MT_RF_VIA_*). */
extern __thread unsigned mt_t_via __attribute__((tls_model("initial-exec"))) MT_HIDDEN;

/* The hook frame: the thread's state with the recursion guard taken, or
 * NULL when this call is not to be recorded (guard untouched). */
MT_HIDDEN tstate_t *mt_pl_enter(void);
MT_HIDDEN void mt_pl_leave(void);
/* Runs `fn(arg)` with the recursion guard held: nothing it allocates is
 * recorded.  Not hook context: for memtrace's own work in the target. */
MT_HIDDEN void mt_pl_untraced(void (*fn)(void *), void *arg);

MT_HIDDEN uint64_t mt_pl_seq(void);
/* A number for a moment in the order, not for an event: taken like an
 * event's, and announced to the collector (MT_REC_SKIP) so that it does
 * not hold its window waiting for an event with it. */
MT_HIDDEN uint64_t mt_pl_seq_moment(void);
/* A reading of the clock itself (mt_clock.h: ticks or ns, as the session
 * says), not the shared clock's step: a collection's times. */
MT_HIDDEN uint64_t mt_pl_clock(void);
MT_HIDDEN mt_region_t *mt_pl_region(void);
MT_HIDDEN uint32_t mt_pl_depth(void);
MT_HIDDEN uint32_t mt_pl_options(void);

/* One event record with a stack id from one of the two functions below. */
MT_HIDDEN void mt_pl_event(tstate_t *t, uint64_t seq, int kind, const void *addr, uint64_t size, const void *old,
                           int failed, unsigned via, uint32_t stack, uint16_t flags);
MT_HIDDEN void mt_pl_marker(tstate_t *t, int marker, uint64_t value);
MT_HIDDEN void mt_pl_emit(tstate_t *t, const mt_rec_t *rec);
/* The native stack of the caller (Python frames merged in), as a stack id. */
MT_HIDDEN uint32_t mt_pl_native_stack(tstate_t *t, uint16_t *flags);
/* The stack id of the frames ip[0..n) (innermost first). */
MT_HIDDEN uint32_t mt_pl_stack_of(tstate_t *t, const uint64_t *ip, int n, uint16_t *flags);

/* ---- pyhooks.c ---- */

/* Nonzero while the Python domain wrappers must be checked at each C
 * library call (from attach until the interpreter is initialised). */
extern int mt_py_watching MT_HIDDEN;
/* Nonzero when Python frames are to be merged into native stacks. */
extern int mt_py_frames_on MT_HIDDEN;

/* Looks for a CPython interpreter (handle: a dlopen result, or NULL for
 * the process's global scope) and installs the domain wrappers.  Not hook
 * context; called with the recursion guard held. */
MT_HIDDEN void mt_py_attach(void *handle);
/* The re-install check of mt_py_watching; the guard is held. */
MT_HIDDEN void mt_py_watch(void);
/* Merges the Python frames of the calling thread into the native stack
 * ip[0..n) (innermost first), writing at most `cap` frames to out.
 * Returns the new count, or -1 when the thread runs no Python code. */
MT_HIDDEN int mt_py_merge(const uint64_t *ip, int n, uint64_t *out, int cap);
/* Inside a Python-domain call (a PyMem/PyObject wrapper serving it): that
 * call's stack - its native caller and the Python frames, computed once
 * per call and shared with the wrapper's own event - as the stack of an
 * event the call makes beneath (a malloc serving PyObject_Malloc), so that
 * no native unwind runs through the interpreter for it.  0 outside such a
 * call, or with --python-native.  hook context: no allocation. */
MT_HIDDEN uint32_t mt_py_call_stack(tstate_t *t, uint16_t *flags);
/* Names the Python frames when the process ends without Python's atexit
 * (os._exit); the recursion guard is held. */
MT_HIDDEN void mt_py_at_exit(void);

#endif
