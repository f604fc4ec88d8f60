/* spawner.c - 3 mallocs of 33 bytes, then posix_spawn of argv[1] (glibc
 * spawns with clone(CLONE_VM | CLONE_VFORK): no fork handlers run, the new
 * image is the first region of its pid), waits for it, frees. No stdio. */
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>

extern char **environ;

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    void *p[3];
    for (int i = 0; i < 3; i++)
        if (!(p[i] = malloc(33))) abort();
    pid_t pid;
    char *args[] = {argv[1], NULL};
    if (posix_spawn(&pid, argv[1], NULL, NULL, args, environ) != 0) return 1;
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return 1;
    for (int i = 0; i < 3; i++) free(p[i]);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
