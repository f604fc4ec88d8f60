/* execer.c - allocates, then replaces itself with another program.
 *
 * usage: execer PROGRAM [ARGS...]
 * mallocs 2 blocks of 222 bytes (never freed: exec discards them), then
 * execv(PROGRAM, argv + 1).  Exits 127 when exec fails.  No stdio.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *keep[2];

int main(int argc, char **argv)
{
    if (argc < 2) {
        static const char usage[] = "usage: execer PROGRAM [ARGS...]\n";
        ssize_t w = write(2, usage, sizeof usage - 1);
        (void)w;
        return 2;
    }
    for (int i = 0; i < 2; i++)
        if (!(keep[i] = malloc(222))) abort();
    execv(argv[1], argv + 1);
    static const char failed[] = "execer: exec failed\n";
    ssize_t w = write(2, failed, sizeof failed - 1);
    (void)w;
    return 127;
}
