/* leak.c - a known leak beside blocks that are freed.
 *
 * leak_on_purpose() calls leak_one() 100 times; leak_one() mallocs 1000
 * bytes and drops the pointer: exactly 100 blocks, 100,000 bytes leaked,
 * all from the single malloc line in leak_one().  Around it, 20 blocks of
 * 48 bytes are allocated by keep_temporaries() and freed again, so a leak
 * query has to tell the two apart.  No stdio.
 */
#include <stdlib.h>
#include <unistd.h>

#define LEAK_BLOCKS 100
#define LEAK_SIZE 1000
#define TEMP_BLOCKS 20

static volatile unsigned char sink;

__attribute__((noinline)) void leak_one(int i)
{
    unsigned char *p = malloc(LEAK_SIZE); /* the leaking line */
    if (!p) abort();
    p[0] = (unsigned char)i;
    p[LEAK_SIZE - 1] = (unsigned char)i;
    sink = p[0];
    /* p goes out of scope here: its only pointer is lost */
}

__attribute__((noinline)) void leak_on_purpose(void)
{
    for (int i = 0; i < LEAK_BLOCKS; i++) leak_one(i);
}

__attribute__((noinline)) void keep_temporaries(void)
{
    void *t[TEMP_BLOCKS];
    for (int i = 0; i < TEMP_BLOCKS; i++)
        if (!(t[i] = malloc(48))) abort();
    for (int i = 0; i < TEMP_BLOCKS; i++) free(t[i]);
}

int main(void)
{
    keep_temporaries();
    leak_on_purpose();
    static const char done[] = "leak: 100 blocks of 1000 bytes leaked\n";
    ssize_t w = write(1, done, sizeof done - 1);
    (void)w;
    return 0;
}
