/* mt_ptrace.h - the operating-system layer as system calls: a tracer
 * thread in the launcher follows the target with ptrace and records every
 * mmap, munmap, mremap, brk and memory-returning madvise it makes, the C
 * library's own included (tracer/ptrace.c, docs/os-layer.md).
 *
 * Place in the pipeline: started by `memtrace run` (--os=syscalls,
 * --mode=ptrace) and `memtrace attach`.  Its records go into the same
 * shared-memory regions as the preload library's (mt_shm.h), with sequence
 * numbers from the session's counter, so the collector stores them like any
 * other event.  Processes without the preload library (static programs,
 * --mode=ptrace, attach) get a region made by the tracer.
 *
 * Threads: every ptrace request comes from the tracer thread, which
 * therefore also waits for every child; the collector takes process exits
 * from mt_ptracer_reaped() instead of calling wait itself.
 */
#ifndef MT_PTRACE_H
#define MT_PTRACE_H

#include "mt_shm.h"

#include <stdint.h>
#include <sys/types.h>

typedef struct mt_ptracer mt_ptracer_t;

/* How the target is followed. */
enum {
    MT_PT_RUN = 0,    /* launched by us: a seccomp filter stops only the memory calls */
    MT_PT_ATTACH = 1, /* a running process: every system call stops (no filter can be removed) */
};

typedef struct {
    const char *dir;       /* session directory */
    mt_session_t *session; /* mapped session file */
    int how;               /* MT_PT_* */
    int preload;           /* 1: the preload library runs in the target (it says hello) */
    uint32_t stack_depth;  /* frames unwound per OS event (0: none) */
} mt_ptracer_cfg_t;

/* Child side of MT_PT_RUN, right before exec: installs the seccomp filter
 * that stops the process (and everything it starts) on the memory system
 * calls only.  The tracer must have seized the process already: a stop
 * with no tracer fails the call with ENOSYS.  Returns 0 or -errno. */
int mt_ptrace_install_filter(void);

/* Whether the executable at `path` is a static program (an ELF file with
 * no PT_INTERP).  Returns 1 static, 0 dynamic or not ELF, -errno when it
 * cannot be read. */
int mt_elf_is_static(const char *path);

/* Starts the tracer thread and has it seize `pid` (MT_PT_RUN: a child
 * that has not exec'd yet; MT_PT_ATTACH: every thread of a running
 * process).  Returns once the process is traced: 0, or a negative MT_E*
 * with a message in err. */
int mt_ptracer_start(const mt_ptracer_cfg_t *cfg, pid_t pid, mt_ptracer_t **out, char *err, size_t errlen);

/* Collector side: the next process exit the tracer saw (1), or none (0). */
int mt_ptracer_reaped(void *tracer, pid_t *pid, int *status, int64_t *maxrss, int64_t *cpu_ns);

/* Collector side: 1 while some traced process is still running. */
int mt_ptracer_children_left(void *tracer);

/* MT_PT_ATTACH: stop tracing, leaving every process running.  Safe from
 * any thread (also a signal handler); the tracer detaches within a millisecond. */
void mt_ptracer_detach(mt_ptracer_t *t);

/* Totals for meta and the closing line. */
typedef struct {
    int64_t events;   /* OS events recorded */
    int64_t own;      /* memtrace's own calls in the target, not recorded */
    int64_t stops;    /* ptrace stops handled */
    int breakpoints;  /* static programs: malloc/free breakpoints set */
    int detached;     /* MT_PT_ATTACH: processes left running */
} mt_ptracer_stats_t;

/* Waits for the tracer thread to end and frees it. */
void mt_ptracer_join(mt_ptracer_t *t, mt_ptracer_stats_t *stats);

#endif
