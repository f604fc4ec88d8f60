/* threads4.c - 4 threads, each making 10,000 malloc/free pairs (or
 * argv[1] pairs; with argv[2] "ready", it says "ready" on stdout before
 * starting them).
 *
 * Worker w allocates blocks of 8 + w*8 + (i % 16) bytes and frees each one
 * at once, so every thread has exactly 10,000 malloc and 10,000 free events
 * of its own; main allocates nothing itself.  No stdio.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define NTHREADS 4
#define PAIRS 10000

static long g_pairs = PAIRS;

static volatile unsigned char sink;

static void *worker(void *arg)
{
    size_t w = (size_t)(uintptr_t)arg;
    for (long i = 0; i < g_pairs; i++) {
        unsigned char *p = malloc(8 + w * 8 + (size_t)(i % 16));
        if (!p) abort();
        p[0] = (unsigned char)i;
        sink = p[0];
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1) g_pairs = atol(argv[1]);
    if (argc > 2 && argv[2][0] == 'r') {
        ssize_t r = write(1, "ready\n", 6);
        (void)r;
    }
    pthread_t th[NTHREADS];
    for (int w = 0; w < NTHREADS; w++)
        if (pthread_create(&th[w], NULL, worker, (void *)(uintptr_t)w) != 0) abort();
    for (int w = 0; w < NTHREADS; w++) pthread_join(th[w], NULL);
    static const char done[] = "threads4: done\n";
    ssize_t wr = write(1, done, sizeof done - 1);
    (void)wr;
    return 0;
}
