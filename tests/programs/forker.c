/* forker.c - a parent and a fork child with distinct, known allocations.
 *
 * The parent mallocs 3 blocks of 33 bytes, forks, waits for the child and
 * frees its 3 blocks.  The child mallocs 7 blocks of 77 bytes and exits 0
 * (through exit(), without freeing them).  No stdio.
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define PARENT_BLOCKS 3
#define CHILD_BLOCKS 7

int main(void)
{
    void *mine[PARENT_BLOCKS];
    for (int i = 0; i < PARENT_BLOCKS; i++)
        if (!(mine[i] = malloc(33))) abort();

    pid_t pid = fork();
    if (pid < 0) abort();
    if (pid == 0) {
        static void *theirs[CHILD_BLOCKS];
        for (int i = 0; i < CHILD_BLOCKS; i++)
            if (!(theirs[i] = malloc(77))) abort();
        exit(0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) abort();
    for (int i = 0; i < PARENT_BLOCKS; i++) free(mine[i]);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
