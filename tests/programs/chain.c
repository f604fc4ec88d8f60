/* chain.c - a chain of fork + exec, each process with threads of its own.
 *
 * usage: chain DEPTH
 * Starts 2 threads; thread t makes 10 mallocs of 300 + 10 * DEPTH + t bytes
 * (freed); then, when DEPTH > 0, forks a child that execs "chain DEPTH-1"
 * (this same program, by /proc/self/exe) and waits for it.  Exits 0 when
 * every descendant did.  chain 3 makes 4 images in 4 processes: 7 process
 * rows (each fork child is a row, replaced by its exec'd image).  Prints nothing.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static long depth;

static void *worker(void *arg)
{
    size_t t = (size_t)(uintptr_t)arg;
    void *p[10];
    for (int i = 0; i < 10; i++)
        if (!(p[i] = malloc(300 + 10 * (size_t)depth + t))) abort();
    for (int i = 0; i < 10; i++) free(p[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    depth = strtol(argv[1], NULL, 10);
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        if (pthread_create(&th[t], NULL, worker, (void *)(uintptr_t)t) != 0) abort();
    for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
    if (depth <= 0) return 0;
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        char next[24];
        snprintf(next, sizeof next, "%ld", depth - 1);
        char *args[] = {argv[0], next, NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
