/* doublefree.c - frees one 24-byte block twice (only meaningful under
 * --allocator=bundled, which detects it; the C library would abort), then
 * frees a pointer into the middle of another block, and exits 0. No stdio. */
#include <stdlib.h>

int main(void)
{
    char *p = malloc(24);
    char *q = malloc(24);
    if (!p || !q) return 1;
    free(p);
    free(p);      /* the block freed last in its pool: freed twice */
    free(q + 16); /* not the start of a block */
    free(q);
    return 0;
}
