/* mt_remote_unwind.h - call stacks of stopped threads of another process
 * (tracer/remote_unwind.c), for the OS events the tracer records. */
#ifndef MT_REMOTE_UNWIND_H
#define MT_REMOTE_UNWIND_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

/* One per process image: its objects' unwind tables, mapped locally. */
typedef struct mt_runwind mt_runwind_t;

mt_runwind_t *mt_runwind_new(pid_t pid);
void mt_runwind_free(mt_runwind_t *u);

/* The return addresses of thread `tid` (stopped, with registers `regs`),
 * innermost first (the first is where it is stopped); at most `max`.
 * *truncated is 1 when the stack went on.  Returns how many. */
uint32_t mt_runwind_stack(mt_runwind_t *u, pid_t tid, const struct user_regs_struct *regs, uint64_t *ips,
                          uint32_t max, int *truncated);

#endif
