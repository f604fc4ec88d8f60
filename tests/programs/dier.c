/* dier.c - a program that dies, at a point the test chooses.
 *
 * usage: dier MODE ROUNDS [THREADS]
 *
 * Every mode first runs ROUNDS rounds of a fixed mix of heap and mapping
 * calls (round i: malloc, calloc, realloc, free of the round's blocks, a
 * block of 40 + i % 64 bytes kept in a ring of 32 whose old entry is freed,
 * and every 16th round an mmap + munmap of one page), then:
 *
 *   exit     exits 0 (the reference run the count shim counts)
 *   segv     writes through a null pointer (SIGSEGV)
 *   abort    abort() (SIGABRT)
 *   kill     kill(getpid(), SIGKILL)
 *   oom      lowers its own address-space limit (setrlimit RLIMIT_AS) to
 *            64 MiB above what it uses, mallocs blocks of 1 MiB until one
 *            fails, and aborts as an xmalloc would
 *   spin     starts THREADS threads (default 1) that loop forever on
 *            malloc(1000 + t) + free, counting each finished call in a
 *            shared file (below); prints "ready" once every thread has run
 *   stubborn spin, with SIGINT and SIGTERM ignored
 *   hog      mallocs and touches blocks of 1 MiB forever, counting each
 *            finished malloc (for an out-of-memory kill by a cgroup)
 *
 * Counters (spin, hog): DIER_COUNTS names a file the program maps shared;
 * slot t holds thread t's tid and its number of finished calls, updated
 * after each call returns, so they survive any death: a recorded event is
 * at most one call ahead of them per thread (the call in flight).
 * No stdio.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RING 32
#define MAX_THREADS 16

typedef struct {
    int64_t tid;
    int64_t calls;
} counter_t;

static counter_t *counters;
static volatile unsigned char sink;

static void say(const char *s)
{
    ssize_t w = write(1, s, strlen(s));
    (void)w;
}

static void rounds(long n)
{
    static void *ring[RING];
    for (long i = 0; i < n; i++) {
        char *a = malloc(8 + (size_t)(i % 200));
        char *b = calloc(1, 16 + (size_t)(i % 50));
        if (!a || !b) abort();
        a = realloc(a, 300 + (size_t)(i % 300));
        if (!a) abort();
        a[0] = b[0];
        free(b);
        free(a);
        void **slot = &ring[i % RING];
        free(*slot); /* NULL the first time round: free(NULL) */
        if (!(*slot = malloc(40 + (size_t)(i % 64)))) abort();
        if (i % 16 == 0) {
            void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED) abort();
            munmap(m, 4096);
        }
    }
}

static void map_counters(void)
{
    const char *path = getenv("DIER_COUNTS");
    if (!path) abort();
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, sizeof(counter_t) * MAX_THREADS) != 0) abort();
    counters = mmap(NULL, sizeof(counter_t) * MAX_THREADS, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (counters == MAP_FAILED) abort();
    close(fd);
}

static volatile int started;

static void *spinner(void *arg)
{
    size_t t = (size_t)(uintptr_t)arg;
    counter_t *c = &counters[t];
    __atomic_store_n(&c->tid, (int64_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
    for (long i = 0;; i++) {
        unsigned char *p = malloc(1000 + t);
        if (!p) abort();
        __atomic_store_n(&c->calls, c->calls + 1, __ATOMIC_RELEASE);
        p[0] = (unsigned char)i;
        sink = p[0];
        free(p);
        __atomic_store_n(&c->calls, c->calls + 1, __ATOMIC_RELEASE);
        if (i == 1000) __atomic_add_fetch(&started, 1, __ATOMIC_ACQ_REL);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        say("usage: dier exit|segv|abort|kill|oom|spin|stubborn|hog ROUNDS [THREADS]\n");
        return 2;
    }
    const char *mode = argv[1];
    rounds(strtol(argv[2], NULL, 10));
    if (!strcmp(mode, "exit")) return 0;
    if (!strcmp(mode, "segv")) {
        volatile int *np = (volatile int *)(uintptr_t)(argc * 0); /* null, unseen by the compiler */
        *np = 1;
        return 1;
    }
    if (!strcmp(mode, "abort")) abort();
    if (!strcmp(mode, "kill")) {
        kill(getpid(), SIGKILL);
        return 1;
    }
    if (!strcmp(mode, "oom")) {
        struct rlimit rl;
        long pages = 0;
        int fd = open("/proc/self/statm", O_RDONLY);
        char buf[64] = {0};
        if (fd >= 0 && read(fd, buf, sizeof buf - 1) > 0) pages = strtol(buf, NULL, 10);
        if (fd >= 0) close(fd);
        rl.rlim_cur = rl.rlim_max = (rlim_t)pages * 4096 + (64u << 20);
        if (setrlimit(RLIMIT_AS, &rl) != 0) return 3;
        for (;;) {
            char *p = malloc(1u << 20);
            if (!p) {
                say("dier: out of memory\n");
                abort();
            }
            p[0] = 1;
        }
    }
    if (!strcmp(mode, "stubborn")) {
        signal(SIGINT, SIG_IGN);
        signal(SIGTERM, SIG_IGN);
        mode = "spin";
    }
    if (!strcmp(mode, "spin")) {
        long n = argc > 3 ? strtol(argv[3], NULL, 10) : 1;
        if (n < 1 || n > MAX_THREADS) return 2;
        map_counters();
        for (long t = 0; t < n; t++) {
            pthread_t th;
            if (pthread_create(&th, NULL, spinner, (void *)(uintptr_t)t) != 0) abort();
        }
        while (__atomic_load_n(&started, __ATOMIC_ACQUIRE) < n) usleep(1000);
        say("ready\n");
        for (;;) pause();
    }
    if (!strcmp(mode, "hog")) {
        map_counters();
        counters[0].tid = (int64_t)syscall(SYS_gettid);
        say("ready\n");
        for (;;) {
            char *p = malloc(1u << 20);
            if (!p) abort();
            __atomic_store_n(&counters[0].calls, counters[0].calls + 1, __ATOMIC_RELEASE);
            memset(p, 1, 1u << 20);
        }
    }
    say("dier: unknown mode\n");
    return 2;
}
