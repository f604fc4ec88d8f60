/* waiter.c - 100 mallocs of 64 bytes, then "ready" on stdout, then waits for
 * a signal (pause).  With an argument, it handles SIGTERM itself: it frees
 * the 100 blocks and exits 0, so a forwarded SIGTERM must reach it.
 * No stdio. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *blocks[100];
static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
    (void)sig;
    got_term = 1;
}

int main(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_term;
        sigaction(SIGTERM, &sa, NULL);
    }
    for (int i = 0; i < 100; i++)
        if (!(blocks[i] = malloc(64))) abort();
    ssize_t w = write(1, "ready\n", 6);
    (void)w;
    while (!got_term) pause();
    for (int i = 0; i < 100; i++) free(blocks[i]);
    return 0;
}
