/* osmaps.c - what the OS layer must show for known calls.
 *
 *   - 5 x malloc(1 MiB): above glibc's mmap threshold (128 KiB), so each is
 *     served by one mmap system call of 1 MiB + 4 KiB (the chunk header,
 *     rounded to pages) made inside the malloc; then 5 frees, each one
 *     munmap of the same size made inside the free;
 *   - one thread created with a 256 KiB stack: glibc maps it (plus a guard
 *     page) with mmap in the creating thread, outside any malloc;
 *   - madvise(MADV_DONTNEED) on 64 KiB of a 1 MiB anonymous mapping the
 *     program maps itself (mmap, munmap through the library's functions).
 *   - 4 x malloc(100 KiB), kept: below the mmap threshold, so glibc grows
 *     its brk heap for them, with brk system calls inside the mallocs;
 *   - 3 raw brk system calls, not through the C library: a probe, the break
 *     raised by 64 KiB, and put back (glibc's own idea of the break stays
 *     right);
 *   - one mmap of 2^60 bytes, which fails with ENOMEM (exit status 3 if
 *     errno says otherwise);
 *   - one malloc(2 MiB) kept to the end: at exit glibc's own statistics
 *     (malloc_stats) show exactly one mmapped chunk of 2 MiB + 4 KiB.
 * No stdio: every other mapping call is the loader's or the C library's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BIG (1u << 20)
#define NBIG 5

static void *worker(void *arg) { return arg; }

int main(void)
{
    void *p[NBIG];
    for (int i = 0; i < NBIG; i++)
        if (!(p[i] = malloc(BIG))) abort();
    for (int i = 0; i < NBIG; i++) free(p[i]);

    pthread_attr_t a;
    pthread_t t;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 * 1024);
    if (pthread_create(&t, &a, worker, NULL) != 0) abort();
    pthread_join(t, NULL);
    pthread_attr_destroy(&a);

    char *m = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) abort();
    m[0] = 1;
    if (madvise(m, 64 * 1024, MADV_DONTNEED) != 0) abort();
    if (munmap(m, BIG) != 0) abort();
    /* a mapping no machine has room for: fails with ENOMEM, as untraced */
    errno = 0;
    if (mmap(NULL, (size_t)1 << 60, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED) abort();
    if (errno != ENOMEM) return 3;

    static void *volatile small[4];
    for (int i = 0; i < 4; i++)
        if (!(small[i] = malloc(100 * 1024))) abort();
    long cur = syscall(SYS_brk, 0);
    if (syscall(SYS_brk, cur + 64 * 1024) != cur + 64 * 1024) abort();
    if (syscall(SYS_brk, cur) != cur) abort();

    static void *volatile kept;
    if (!(kept = malloc(2 * BIG))) abort();
    return 0;
}
