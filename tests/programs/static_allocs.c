/* static_allocs.c - linked statically (the build adds -static to programs
 * named *static*): no LD_PRELOAD can reach it.
 *
 * 3 x malloc(1 MiB) (each an mmap of 1 MiB + 4 KiB), 20 x malloc(100)
 * (from the brk heap), all freed, then exit 0.  No stdio.
 */
#include <stdlib.h>

static void *volatile keep[23];

int main(void)
{
    for (int i = 0; i < 3; i++)
        if (!(keep[i] = malloc(1u << 20))) abort();
    for (int i = 3; i < 23; i++)
        if (!(keep[i] = malloc(100))) abort();
    for (int i = 0; i < 23; i++) free(keep[i]);
    return 0;
}
