/* aborter.c - 1000 mallocs of 10 bytes, then abort() (SIGABRT, signal 6).
 * Every malloc happened before the crash, so every one must be in the
 * trace.  No stdio. */
#include <stdlib.h>

#define BLOCKS 1000

static void *keep[BLOCKS];

int main(void)
{
    for (int i = 0; i < BLOCKS; i++)
        if (!(keep[i] = malloc(10))) return 1;
    abort();
}
