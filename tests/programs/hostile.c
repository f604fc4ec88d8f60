/* hostile.c - a program that does what a traced program may do to the
 * tracer's assumptions, one MODE at a time; each mode allocates blocks of
 * sizes no other mode uses, so the test can count them exactly.
 *
 * usage: hostile MODE [PROGRAM]
 *
 *   closefds  closes every file descriptor (0..4095), then 10 x malloc(101);
 *             a fork child 10 x malloc(102)
 *   rlimit    RLIMIT_NOFILE 8 (after closing fds 3..4095), RLIMIT_CORE 0,
 *             RLIMIT_FSIZE 4096 (soft; hard unlimited); a fork child
 *             10 x malloc(103); then the hard RLIMIT_FSIZE 4096 too, and a
 *             fork child 10 x malloc(110); the parent 10 x malloc(104)
 *   chdir     chdir("/") and into a directory it then removes; a fork child
 *             10 x malloc(105); then execs PROGRAM (an absolute path)
 *   handlers  its own handlers for SIGSEGV (recovers with siglongjmp: 3
 *             faults), SIGINT, SIGTERM, SIGPIPE, SIGCHLD, SIGUSR1, SIGALRM;
 *             10 x malloc(107); then an interval timer fires SIGALRM 50
 *             times while main waits in sigsuspend(), and the handler makes one
 *             malloc(106) + free each time
 *   vfork     vfork + exec of PROGRAM, then vfork + exit of the child;
 *             10 x malloc(109) in the parent
 *   threads   4 threads by pthread_create (clone3 on glibc 2.34 and later),
 *             thread t: 100 x malloc(200 + t) + free
 *
 * Children exit with exit(0); the parent waits for each and exits 0, or 1
 * when a child failed.  No stdio.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static void *keep[16];
static volatile sig_atomic_t alarms;
static sigjmp_buf recover;

static void alloc_n(int n, size_t size)
{
    for (int i = 0; i < n; i++)
        if (!(keep[i] = malloc(size))) abort();
    for (int i = 0; i < n; i++) free(keep[i]);
}

/* a fork child that makes n allocations of size bytes; returns 0 when it
 * exited 0 */
static int child_alloc(int n, size_t size)
{
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        alloc_n(n, size);
        exit(0);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void on_segv(int sig)
{
    (void)sig;
    siglongjmp(recover, 1);
}

static void on_alarm(int sig)
{
    (void)sig;
    void *p = malloc(106); /* not async-signal-safe in general; main is in sigsuspend() */
    if (!p) abort();
    free(p);
    alarms++;
}

static void on_other(int sig) { (void)sig; }

static void *thread_main(void *arg)
{
    size_t t = (size_t)(uintptr_t)arg;
    for (int i = 0; i < 100; i++) {
        void *p = malloc(200 + t);
        if (!p) abort();
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    const char *mode = argv[1];
    int rc = 0;
    if (!strcmp(mode, "closefds")) {
        for (int fd = 0; fd < 4096; fd++) close(fd);
        alloc_n(10, 101);
        rc = child_alloc(10, 102);
    } else if (!strcmp(mode, "rlimit")) {
        for (int fd = 3; fd < 4096; fd++) close(fd);
        struct rlimit nofile = {8, 8}, fsize = {4096, RLIM_INFINITY}, core = {0, 0};
        if (setrlimit(RLIMIT_NOFILE, &nofile) || setrlimit(RLIMIT_FSIZE, &fsize) || setrlimit(RLIMIT_CORE, &core))
            return 3;
        rc = child_alloc(10, 103);
        fsize.rlim_max = 4096;
        if (setrlimit(RLIMIT_FSIZE, &fsize)) return 3;
        rc |= child_alloc(10, 110);
        alloc_n(10, 104);
    } else if (!strcmp(mode, "chdir")) {
        if (argc < 3 || chdir("/") != 0) return 2;
        char dir[] = "/tmp/hostile.XXXXXX";
        if (!mkdtemp(dir) || chdir(dir) != 0 || rmdir(dir) != 0) return 3;
        rc = child_alloc(10, 105);
        if (rc) return 1;
        execv(argv[2], argv + 2);
        return 127;
    } else if (!strcmp(mode, "handlers")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_segv;
        sa.sa_flags = SA_NODEFER;
        sigaction(SIGSEGV, &sa, NULL);
        sa.sa_handler = on_other;
        sa.sa_flags = SA_RESTART;
        int others[] = {SIGINT, SIGTERM, SIGPIPE, SIGCHLD, SIGUSR1};
        for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) sigaction(others[i], &sa, NULL);
        sa.sa_handler = on_alarm;
        sa.sa_flags = 0;
        sigaction(SIGALRM, &sa, NULL);
        for (int k = 0; k < 3; k++)
            if (sigsetjmp(recover, 1) == 0) {
                volatile int *np = (volatile int *)(uintptr_t)(argc * 0);
                *np = k;
            }
        raise(SIGUSR1);
        alloc_n(10, 107);
        /* SIGALRM is delivered only inside sigsuspend: exactly 50 handler runs */
        sigset_t block, wait_mask;
        sigemptyset(&block);
        sigaddset(&block, SIGALRM);
        sigprocmask(SIG_BLOCK, &block, &wait_mask);
        sigdelset(&wait_mask, SIGALRM);
        struct itimerval it = {{0, 2000}, {0, 2000}};
        setitimer(ITIMER_REAL, &it, NULL);
        while (alarms < 50) sigsuspend(&wait_mask);
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &off, NULL);
        signal(SIGALRM, SIG_IGN); /* one may be pending */
        sigprocmask(SIG_UNBLOCK, &block, NULL);
    } else if (!strcmp(mode, "vfork")) {
        if (argc < 3) return 2;
        pid_t pid = vfork();
        if (pid == 0) {
            execv(argv[2], argv + 2);
            _exit(127);
        }
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) rc = 1;
        pid = vfork();
        if (pid == 0) _exit(0);
        if (pid < 0 || waitpid(pid, &status, 0) != pid) rc = 1;
        alloc_n(10, 109);
    } else if (!strcmp(mode, "threads")) {
        pthread_t th[4];
        for (int t = 0; t < 4; t++)
            if (pthread_create(&th[t], NULL, thread_main, (void *)(uintptr_t)t) != 0) abort();
        for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
    } else {
        return 2;
    }
    return rc ? 1 : 0;
}
