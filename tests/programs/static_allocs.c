/* static_allocs.c - 10 mallocs of 64 bytes, freed; linked statically
 * (tests/CMakeLists.txt links programs named *static* with -static), so
 * LD_PRELOAD has nothing to interpose.  No stdio. */
#include <stdlib.h>

static void *keep[10];

int main(void)
{
    for (int i = 0; i < 10; i++)
        if (!(keep[i] = malloc(64))) return 1;
    for (int i = 0; i < 10; i++) free(keep[i]);
    return 0;
}
