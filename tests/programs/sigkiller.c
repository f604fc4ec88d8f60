/* sigkiller.c - 500 mallocs of 20 bytes, then SIGKILL to itself: nothing in
 * the process can run after that (no exit, no destructors), so the trace
 * must hold what the hooks wrote before the kill.  No stdio. */
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#define BLOCKS 500

static void *keep[BLOCKS];

int main(void)
{
    for (int i = 0; i < BLOCKS; i++)
        if (!(keep[i] = malloc(20))) return 1;
    kill(getpid(), SIGKILL);
    return 1; /* not reached */
}
