/* pairs.c - a thread-scaling workload for bench/run.sh: N threads, each
 * making the same number of malloc/free pairs (sizes 16..1040) under a few
 * frames of call depth.  `pairs 1` and `pairs 4` show whether the cost per
 * event grows with the number of threads.  usage: pairs NTHREADS [PAIRS] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static long g_pairs = 400000;

__attribute__((noinline)) static void *leaf(size_t n) { return malloc(n); }
__attribute__((noinline)) static void *mid(size_t n) { return leaf(n); }

static void *worker(void *arg)
{
    unsigned seed = (unsigned)(size_t)arg;
    unsigned long sum = 0;
    void *keep[16] = {0};
    for (long i = 0; i < g_pairs; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 16 + (seed >> 16) % 1025;
        char *p = mid(n);
        p[0] = (char)i;
        sum += (unsigned char)p[0];
        unsigned k = (seed >> 4) & 15;
        free(keep[k]);
        keep[k] = p;
    }
    for (int k = 0; k < 16; k++) free(keep[k]);
    return (void *)sum;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1;
    if (argc > 2) g_pairs = atol(argv[2]);
    if (n < 1 || n > 64 || g_pairs < 1) return 2;
    pthread_t t[64];
    for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, worker, (void *)(size_t)(i + 1));
    unsigned long total = 0;
    for (int i = 0; i < n; i++) {
        void *r;
        pthread_join(t[i], &r);
        total += (unsigned long)r;
    }
    printf("pairs threads=%d pairs_per_thread=%ld events=%ld checksum=%lu\n", n, g_pairs, 2 * g_pairs * n, total);
    return 0;
}
