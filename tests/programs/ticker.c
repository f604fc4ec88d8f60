/* ticker.c - a long-running process for `memtrace attach`: writes "ready"
 * to stdout, then every 10 ms maps 1 MiB, touches it and unmaps it, and
 * counts the rounds in the file named by argv[1] (rewritten each round), so
 * a test can see it still runs after memtrace detached.  Runs until killed.
 * No stdio, no malloc.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    static const char ready[] = "ready\n";
    if (write(1, ready, sizeof ready - 1) < 0) return 1;
    for (unsigned long round = 1;; round++) {
        char *m = mmap(NULL, 1u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) abort();
        m[0] = 1;
        munmap(m, 1u << 20);
        if (argc > 1) {
            char num[24];
            int k = (int)sizeof num;
            unsigned long x = round;
            num[--k] = '\n';
            do num[--k] = (char)('0' + x % 10); while ((x /= 10) && k > 0);
            int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                if (write(fd, num + k, sizeof num - (size_t)k) < 0) abort();
                close(fd);
            }
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
}
