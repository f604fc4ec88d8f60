/* test_seccomp.c - the seccomp filter of the system-call tracer
 * (mt_ptrace_install_filter in tracer/ptrace.c), installed in a child with
 * no tracer: a call the filter would stop for the tracer then fails with
 * ENOSYS, a call it lets through runs.  Each case is one system call with
 * exact arguments; the child makes only raw system calls (no malloc: its
 * brk and mmap would fail).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "mt_ptrace.h"

/* 1 when the raw call was stopped for the tracer (ENOSYS without one) */
static int stopped(long rc) { return rc == -1 && errno == ENOSYS; }

/* Runs in the child; returns 0 or the number of the first case that failed. */
static int child_cases(void)
{
    /* before the filter: a mapping to work on */
    char *m = (char *)syscall(SYS_mmap, 0, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 100;
    if (mt_ptrace_install_filter() != 0) return 101;
    long tag = (long)MT_SYSCALL_TAG;
    /* 1-4: the memory calls stop */
    if (!stopped(syscall(SYS_mmap, 0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))) return 1;
    if (!stopped(syscall(SYS_munmap, m, 4096))) return 2;
    if (!stopped(syscall(SYS_mremap, m, 4096, 8192, MREMAP_MAYMOVE, 0))) return 3;
    if (!stopped(syscall(SYS_brk, 0))) return 4;
    /* 5-8: madvise only with the advice that returns memory, and memtrace's own */
    if (!stopped(syscall(SYS_madvise, m, 4096, MADV_DONTNEED))) return 5;
    if (!stopped(syscall(SYS_madvise, m, 4096, MADV_FREE))) return 6;
    if (!stopped(syscall(SYS_madvise, m, 4096, MT_MADV_MEMTRACE, MT_HELLO_TLS))) return 7;
    if (syscall(SYS_madvise, m, 4096, MADV_WILLNEED) != 0) return 8;
    /* 9-11: the hooks' tagged calls pass without a stop */
    long p = syscall(SYS_mmap, 0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                     (long)MT_SYSCALL_TAG_OFFSET);
    if (p == -1) return 9;
    long q = syscall(SYS_mremap, p, 8192, 16384, MREMAP_MAYMOVE, 0, tag);
    if (q == -1) return 10;
    if (syscall(SYS_munmap, q, 16384, tag) != 0) return 11;
    /* 12-13: half a tag is no tag */
    if (!stopped(syscall(SYS_munmap, m, 4096, (long)(uint32_t)tag))) return 12;
    if (!stopped(syscall(SYS_mmap, 0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                         (long)(MT_SYSCALL_TAG_OFFSET & 0xffffffff00000000ull) + 4096)))
        return 13;
    /* 14: every other call runs */
    if (syscall(SYS_getpid) <= 0) return 14;
    return 0;
}

static void test_filter(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(child_cases());
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* else: the number of the case that failed */
}

static void test_static_detection(void **state)
{
    (void)state;
    assert_int_equal(mt_elf_is_static("/proc/self/exe"), 0); /* this test is dynamic */
    assert_int_equal(mt_elf_is_static("/no/such/file"), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter),
        cmocka_unit_test(test_static_detection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
