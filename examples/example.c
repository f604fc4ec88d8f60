/* example.c - the program the README's first command runs under memtrace.
 *
 * Small and deterministic: a growing array (realloc chain), a burst of
 * short-lived strings, one mmap'd buffer, and a deliberate leak of
 * 10 blocks x 256 bytes from make_leak(), so `memtrace summary` has
 * something to say about every section.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

__attribute__((noinline)) static int *grow_array(size_t n)
{
    int *a = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == cap) {
            cap = cap ? cap * 2 : 4;
            int *b = realloc(a, cap * sizeof *a);
            if (!b) abort();
            a = b;
        }
        a[i] = (int)i;
    }
    return a;
}

__attribute__((noinline)) static void make_leak(void)
{
    for (int i = 0; i < 10; i++) {
        char *p = malloc(256);
        if (!p) abort();
        memset(p, i, 256);
    }
}

int main(void)
{
    int *a = grow_array(100000);
    long sum = 0;
    for (int i = 0; i < 1000; i++) {
        char *s = malloc(32);
        if (!s) abort();
        snprintf(s, 32, "item %d", i);
        sum += (long)strlen(s);
        free(s);
    }
    void *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED) {
        memset(m, 1, 1 << 20);
        munmap(m, 1 << 20);
    }
    make_leak();
    printf("example: sum=%ld last=%d\n", sum, a[99999]);
    free(a);
    return 0;
}
