/* ptrace_internal.h - what the tracer's files share (tracer/ptrace.c: the
 * thread, processes, regions and system calls; tracer/static_malloc.c:
 * breakpoints on the allocator of static programs).  Everything here runs
 * on the tracer thread. */
#ifndef MT_PTRACE_INTERNAL_H
#define MT_PTRACE_INTERNAL_H

#include "mt_ptrace.h"
#include "mt_remote_unwind.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

typedef struct {
    int32_t tid;
    mt_chunk_t *chunk;
    uint64_t pos;
} writer_t;

typedef struct {
    int32_t tid;
    mt_rec_t rec;
    uint32_t nips;
    uint64_t *ips;          /* its stack, innermost first, until the region's trie takes it */
} pending_t;

/* A breakpoint (int3) in a static program: at the entry of malloc, calloc,
 * realloc or free, or at the return address of a call in progress. */
enum { BP_MALLOC, BP_CALLOC, BP_REALLOC, BP_FREE, BP_RETURN };
typedef struct {
    uint64_t addr;
    uint8_t orig;           /* the instruction byte it replaces */
    int what;               /* BP_* */
    int refs;               /* BP_RETURN: calls that will return there */
} bp_t;

/* One process image: a process from fork (or attach) to exec or exit, or
 * from exec to the next. */
typedef struct image {
    pid_t pid, ppid;
    int32_t parent_index;   /* region index of the fork parent's image, -1 */
    uint32_t rflags;        /* MT_RG_FORKED, MT_RG_EXECED: for a region made here */
    int discard;            /* the launcher's own child before its exec */
    int own;                /* no preload library: the region is made here */
    int have_tls;           /* MT_HELLO_TLS seen */
    int64_t off_in_hook, off_serving;
    mt_region_t *r;         /* its region, NULL until known */
    uint64_t rsize;
    uint32_t chunk_hint;
    pending_t *pend;        /* records waiting for the region */
    size_t npend, cappend;
    writer_t *w;            /* the tracer's chunks in the region, one per thread */
    size_t nw, capw;
    uint64_t brk;           /* the program break after the last brk call, 0: unknown */
    uint64_t heap_start;    /* where the brk heap begins (start_brk), 0: unknown */
    mt_runwind_t *uw;       /* its stacks' unwinder (NULL until needed) */
    bp_t *bps;              /* static program: malloc/free breakpoints */
    size_t nbps, capbps;
    uint64_t start_ns;
    int ended;
    char exe[MT_PATH_MAX];
    char cmdline[MT_CMDLINE_MAX];
    uint32_t cmdline_len;
} image_t;

typedef struct {
    pid_t tid;
    image_t *img;
    int started;            /* its first stop was seen */
    int followed;           /* the call in progress is recorded at its exit */
    long nr;
    uint64_t a[6];
    uint64_t seq;           /* taken at entry (munmap, madvise) */
    unsigned via;
    int own;
    /* static programs: the allocator call in progress (breakpoints) */
    int in_call;            /* BP_* + 1 of the call, 0: none */
    uint64_t call_a0, call_a1, call_ret, call_sp;
    uint32_t call_nips;
    uint64_t call_ips[MT_MAX_DEPTH];
    uint64_t stepping;      /* the breakpoint being stepped over, 0: none */
} task_t;

typedef struct {
    pid_t pid;
    int status;
    int64_t maxrss;
    int64_t cpu_ns; /* user + system time */
} exit_t;

struct mt_ptracer {
    mt_ptracer_cfg_t cfg;
    pthread_t thread;
    pid_t first;            /* the process we seized */
    task_t **tasks;
    size_t ntasks, captasks;
    image_t **images;
    size_t nimages, capimages;
    pthread_mutex_t lock;   /* guards exits, done, ready, err below */
    pthread_cond_t cond;
    exit_t *exits;
    size_t nexits, capexits, exits_read;
    int done;               /* no traced process left */
    int ready;              /* 1 seized, -1 failed */
    char err[256];
    volatile int detach_req;
    mt_ptracer_stats_t st;
};

/* CLOCK_MONOTONIC in ns. */
uint64_t mt_pt_mono_ns(void);
uint64_t mt_pt_record_ts(const mt_ptracer_t *t);
/* Grows *arr (of *cap elements of elem bytes) to hold need; 0 or MT_ENOMEM. */
int mt_pt_grow(void **arr, size_t *cap, size_t need, size_t elem);
/* Writes a record of thread tid, with its stack (innermost first), into the
 * image's region now, or keeps it until the region is known. */
void mt_pt_put(mt_ptracer_t *t, image_t *img, int32_t tid, mt_rec_t *rec, const uint64_t *ips, uint32_t nips);
/* The call stack of stopped thread k (registers regs), innermost first. */
uint32_t mt_pt_unwind(mt_ptracer_t *t, task_t *k, const struct user_regs_struct *regs, uint64_t *ips, uint16_t *flags);

/* static_malloc.c: breakpoints at the entries of malloc, calloc, realloc
 * and free of a static executable (from its symbol table); how many. */
int mt_pt_set_alloc_breakpoints(image_t *img, pid_t tid);
/* A SIGTRAP of thread k: one of the breakpoints (handled, the thread
 * resumed: 1) or the program's own (0). */
int mt_pt_on_breakpoint(mt_ptracer_t *t, task_t *k);

#endif
