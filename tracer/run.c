/* run.c - `memtrace run`: start a program under the preload library and
 * record it.
 *
 * Sequence: check the program and the output path; create the session
 * directory on /dev/shm with its `session` file; fork; the child waits on a
 * pipe until the database exists (so a bad output path stops everything
 * before the program runs), then execs the program with LD_PRELOAD and
 * MEMTRACE_SHM_DIR set; the parent runs the collector until every traced
 * process has ended, finishes the database and removes the session.
 *
 * Signals: SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to memtrace with kill()
 * are forwarded to the program (a terminal's Ctrl-C already reaches the
 * whole process group).  memtrace itself keeps recording; a second such
 * signal kills the program and ends recording with what has arrived.
 */
#define _GNU_SOURCE
#include "mt_clock.h"
#include "mt_collector.h"
#include "mt_db.h"
#include "mt_error.h"
#include "mt_ptrace.h"
#include "mt_run.h"
#include "mt_shm.h"
#include "mt_util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

extern char **environ;

#define DEFAULT_DEPTH 64
#define DEFAULT_RSS_MS 10

static volatile int g_stop;
static volatile pid_t g_child;

void mt_usage_run(FILE *out)
{
    fprintf(out,
            "usage: memtrace [run] [OPTIONS] [--] PROGRAM [ARGS...]\n"
            "\n"
            "Runs PROGRAM and records every allocation event (malloc, calloc, realloc,\n"
            "reallocarray, free, posix_memalign, aligned_alloc, memalign, valloc, pvalloc,\n"
            "mmap, munmap, mremap, brk, sbrk; and as system calls mmap, munmap, mremap,\n"
            "brk and madvise, the C library's and the loader's own included) with its call\n"
            "stack into an SQLite database.  Child processes (fork) and new images (exec)\n"
            "are recorded too.  In a CPython interpreter, the raw, memory and object\n"
            "domains (PyMem_Raw*, PyMem_*, PyObject_*), pymalloc's arenas and every\n"
            "garbage collection are recorded as well, with Python frames in the stacks\n"
            "(CPython 3.11).\n"
            "\n"
            "Options:\n"
            "  -o, --output FILE      database to write (default: memtrace.PROGRAM.PID.db)\n"
            "      --stack-depth N    frames kept per stack, 1..%d (default %d)\n"
            "      --no-stacks        record no call stacks (fastest)\n"
            "      --free-stacks      also record the call stack of free()\n"
            "      --allocator=NAME   libc (default): the C library serves malloc;\n"
            "                         bundled: memtrace's small-object allocator serves\n"
            "                         it, and its arena, pool and block transitions are\n"
            "                         recorded too (the allocator_events view)\n"
            "      --unwind=MODE      auto (default): frame pointers where the code has\n"
            "                         them, DWARF (libunwind) elsewhere; fp: frame\n"
            "                         pointers only (fast, wrong through code built\n"
            "                         without them); dwarf: libunwind only\n"
            "      --python=MODE      auto (default): record CPython's layers when the\n"
            "                         program runs an interpreter; off: the C library\n"
            "                         layer only; on: as auto, and say so when no\n"
            "                         interpreter was found\n"
            "      --python-native    full native stacks for Python-domain events too\n"
            "                         (default: the calling C function and the Python\n"
            "                         frames; much slower)\n"
            "      --os=HOW           how the OS layer (mmap, munmap, mremap, brk, madvise)\n"
            "                         is recorded: syscalls (default): as system calls,\n"
            "                         with ptrace and a seccomp filter, the C library's\n"
            "                         own calls and the loader's included; hooks: only\n"
            "                         the calls made through the library's functions\n"
            "      --mode=MODE        preload (default): the preload library records the\n"
            "                         heap; ptrace: no preload library, the OS layer only\n"
            "                         (chosen by itself for statically linked programs,\n"
            "                         whose malloc, calloc, realloc and free are then\n"
            "                         recorded through breakpoints: slow)\n"
            "      --malloc-stats MS  also take glibc's own statistics (mallinfo2: in use,\n"
            "                         free in its bins, mmapped) every MS milliseconds\n"
            "                         from a thread of memtrace's in the program, from\n"
            "                         main on (default 0: at exit only)\n"
            "      --rss-interval MS  sample resident memory every MS milliseconds\n"
            "                         (default %d, 0 = never)\n"
            "      --precise-times    stamp every record with its own reading of the\n"
            "                         clock (default: records carry a clock that memtrace\n"
            "                         advances every 100 us, at a fraction of the cost\n"
            "                         per event)\n"
            "  -q, --quiet            do not print the closing line\n"
            "  -h, --help             show this text\n"
            "\n"
            "Separate debug files with compressed sections (a -dbg package's) are kept\n"
            "inflated in $MEMTRACE_CACHE_DIR (default ~/.cache/memtrace/debug; empty:\n"
            "no cache), and so are the frames resolved in modules with debug\n"
            "information, which makes symbolizing at the end of a trace fast.\n"
            "\n"
            "With --os=syscalls the C library's own mmap, munmap, mremap, brk and madvise\n"
            "(those malloc makes) are recorded by hooks at their entries, without a ptrace\n"
            "stop; MEMTRACE_NO_LIBC_ENTRIES=1 leaves them to the tracer (slower, the same\n"
            "events).\n"
            "\n"
            "memtrace exits with the program's exit status (128+N when it died of signal N).\n"
            "When the program crashes or is killed, the database keeps every event recorded\n"
            "up to that point and meta.complete is 0.\n",
            MT_MAX_DEPTH, DEFAULT_DEPTH, DEFAULT_RSS_MS);
}

static void on_signal(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    int from_terminal = si && si->si_code == SI_KERNEL;
    g_stop++;
    if (g_child > 0) {
        if (g_stop >= 2) kill(g_child, SIGKILL);
        else if (!from_terminal) kill(g_child, sig);
    }
}

/* Finds PROGRAM like execvp would.  Returns 0 with the path in out, or an
 * MT_E* code. */
static int resolve_program(const char *prog, char *out, size_t cap)
{
    if (strchr(prog, '/')) {
        if (access(prog, F_OK) != 0) return MT_ENOENT;
        struct stat sb;
        if (stat(prog, &sb) != 0 || S_ISDIR(sb.st_mode) || access(prog, X_OK) != 0) return MT_EPERM;
        snprintf(out, cap, "%s", prog);
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    int seen = 0;
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        snprintf(out, cap, "%.*s%s%s", (int)len, path, len ? "/" : "", prog);
        struct stat sb;
        if (stat(out, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
            if (access(out, X_OK) == 0) return 0;
            seen = 1;
        }
        path += len + (colon ? 1 : 0);
        if (!colon) break;
    }
    return seen ? MT_EPERM : MT_ENOENT;
}

/* Says so in one line when the loader will run PROGRAM in secure-execution
 * mode (set-user-ID or set-group-ID to someone else, file capabilities),
 * where it ignores LD_PRELOAD: nothing can be recorded by preloading. */
static void warn_secure_exec(const char *prog, int os_syscalls)
{
    struct stat sb;
    if (stat(prog, &sb) != 0) return;
    const char *what = NULL;
    if ((sb.st_mode & S_ISUID) && sb.st_uid != geteuid()) what = "set-user-ID";
    else if ((sb.st_mode & S_ISGID) && (sb.st_mode & S_IXGRP) && sb.st_gid != getegid()) what = "set-group-ID";
    else if (geteuid() != 0 && getxattr(prog, "security.capability", NULL, 0) > 0) what = "given file capabilities";
    if (what && os_syscalls)
        fprintf(stderr,
                "memtrace: warning: %s is %s: the loader ignores LD_PRELOAD for it, so only its OS layer is "
                "recorded, and it runs without its privileges under ptrace (trace a copy without that)\n",
                prog, what);
    else if (what)
        fprintf(stderr,
                "memtrace: warning: %s is %s: the loader ignores LD_PRELOAD for it, so nothing will be recorded "
                "(trace a copy without that, or record its OS layer with --os=syscalls)\n",
                prog, what);
}

/* The preload library: $MEMTRACE_PRELOAD, or next to this executable, or in
 * ../lib/memtrace relative to it (installed layout). */
static int find_preload(char *out, size_t cap)
{
    const char *env = getenv("MEMTRACE_PRELOAD");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return access(out, R_OK) == 0 ? 0 : MT_ENOENT;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return MT_ENOENT;
    self[n] = 0;
    char *dir = dirname(self);
    snprintf(out, cap, "%s/libmemtrace_preload.so", dir);
    if (access(out, R_OK) == 0) return 0;
    snprintf(out, cap, "%s/../lib/memtrace/libmemtrace_preload.so", dir);
    if (access(out, R_OK) == 0) return 0;
    snprintf(out, cap, "%s/../tracer/libmemtrace_preload.so", dir);
    return access(out, R_OK) == 0 ? 0 : MT_ENOENT;
}

static void remove_session(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        char path[PATH_MAX];
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the shared clock (mt_session_t.clock) ----
 * A thread of the launcher stores the time in the session every
 * MT_CLOCK_PERIOD_NS; every record, the preload library's and the
 * system-call tracer's, reads it (mt_session_now) instead of the clock. */

typedef struct {
    mt_session_t *session;
    volatile int stop;
    int running;
    pthread_t thread;
} ticker_t;

/* Steps of MT_CLOCK_PERIOD_NS while the program makes events; after
 * TICKER_IDLE_STEPS steps without one, steps of TICKER_IDLE_NS (a program
 * that waits costs memtrace a thousand wake-ups a second, not ten
 * thousand; its first event after the wait may carry a time up to 1 ms
 * old). */
#define TICKER_IDLE_STEPS 20
#define TICKER_IDLE_NS 1000000l

static void *ticker_main(void *arg)
{
    ticker_t *k = arg;
    prctl(PR_SET_TIMERSLACK, 1000ul); /* wake within a microsecond, not the default 50 */
    uint64_t last_seq = 0;
    unsigned quiet = 0;
    while (!k->stop) {
        __atomic_store_n(&k->session->clock, mt_session_clock(k->session), __ATOMIC_RELAXED);
        uint64_t seq = __atomic_load_n(&k->session->seq, __ATOMIC_RELAXED);
        quiet = seq == last_seq ? quiet + 1 : 0;
        last_seq = seq;
        struct timespec period = {0, quiet > TICKER_IDLE_STEPS ? TICKER_IDLE_NS : (long)MT_CLOCK_PERIOD_NS};
        nanosleep(&period, NULL);
    }
    return NULL;
}

/* Starts the clock unless --precise-times; without it (no thread) the hooks
 * read the clock themselves. */
static void ticker_start(ticker_t *k, mt_session_t *session)
{
    memset(k, 0, sizeof *k);
    if (session->opt.flags & MT_OPT_PRECISE_TS) return;
    k->session = session;
    /* ticking before the program's first record: a record stamped by the
     * clock itself while the word was still 0 would be ahead of the word */
    __atomic_store_n(&session->clock, mt_session_clock(session), __ATOMIC_RELAXED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals are the main thread's */
    k->running = pthread_create(&k->thread, NULL, ticker_main, k) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void ticker_stop(ticker_t *k)
{
    if (!k->running) return;
    k->stop = 1;
    pthread_join(k->thread, NULL);
    k->running = 0;
}

/* Session directory and file.  Returns the mapped session or NULL. */
static mt_session_t *make_session(char *dir, size_t cap, const mt_options_t *opt)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(dir, cap, "%s/memtrace.%d.XXXXXX", base, (int)getpid());
    if (!mkdtemp(dir)) return NULL;
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/session", dir) >= sizeof path) return NULL;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return NULL;
    if (ftruncate(fd, sizeof(mt_session_t)) != 0) {
        close(fd);
        return NULL;
    }
    mt_session_t *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (s == MAP_FAILED) return NULL;
    s->version = MT_SHM_VERSION;
    s->collector_pid = getpid();
    s->opt = *opt;
    if (mt_clock_tsc_usable()) s->opt.flags |= MT_OPT_TSC;
    s->start_tsc = mt_clock_rdtsc();
    s->start_ns = mono_ns();
    s->seq = 1; /* seq 0 is never used */
    __atomic_store_n(&s->magic, MT_SESSION_MAGIC, __ATOMIC_RELEASE);
    return s;
}

/* The closing line: what was recorded, where. */
static void print_closing(const mt_collector_stats_t *st, const char *output)
{
    char ev[32], sz[32];
    struct stat sb;
    double bytes = stat(output, &sb) == 0 ? (double)sb.st_size : 0;
    fprintf(stderr, "memtrace: %s events from %lld process%s, %lld thread%s -> %s (%s)%s%s\n",
            mt_fmt_count(ev, sizeof ev, st->events), (long long)st->processes, st->processes == 1 ? "" : "es",
            (long long)st->threads, st->threads == 1 ? "" : "s", output, mt_fmt_bytes(sz, sizeof sz, bytes),
            st->incomplete ? ", incomplete: " : "", st->incomplete ? st->reason : "");
}

/* --rss-interval's value into *ms; 0, or 2 after one line on stderr. */
static int rss_interval_arg(const char *arg, long *ms)
{
    char *end;
    long v = strtol(arg, &end, 10);
    if (*end || v < 0 || v > 3600000) {
        fprintf(stderr, "memtrace: --rss-interval must be milliseconds (0..3600000), not '%s'\n", arg);
        return 2;
    }
    *ms = v;
    return 0;
}

/* An option getopt refused: one line naming where the usage is; returns 2. */
static int option_error(char **argv, const char *help)
{
    if (optopt) fprintf(stderr, "memtrace: option -%c: unknown or missing its value (see %s)\n", optopt, help);
    else fprintf(stderr, "memtrace: unknown option '%s' (see %s)\n", argv[optind - 1], help);
    return 2;
}

/* The meta rows every recording starts with (complete = 0 until it ends well). */
static void meta_start(mt_db_t *db, const char *command, const mt_session_t *session, uint32_t depth,
                       const char *mode, int os_syscalls)
{
    mt_db_meta_set_text(db, "command", command);
    mt_db_meta_set_text(db, "memtrace_version", MT_VERSION_STRING);
    mt_db_meta_set_int(db, "schema_version", MT_SCHEMA_VERSION);
    mt_db_meta_set_int(db, "start_ns", (int64_t)session->start_ns);
    mt_db_meta_set_int(db, "stack_depth", depth);
    mt_db_meta_set_text(db, "mode", mode);
    mt_db_meta_set_text(db, "os_capture", os_syscalls ? "syscalls" : "hooks");
    mt_db_meta_set_int(db, "complete", 0);
    mt_db_meta_set_int(db, "start_unix", (int64_t)time(NULL));
}

/* The meta rows of the end of a recording, which ended at end_ns (the
 * collector had read everything: not the end of the symbolizing and
 * indexing after it, which the program's timeline does not include). */
static void meta_end(mt_db_t *db, const mt_collector_stats_t *st, const mt_session_t *session, uint64_t end_ns)
{
    mt_db_meta_set_int(db, "duration_ns", (int64_t)(end_ns - session->start_ns));
    mt_db_meta_set_int(db, "events", st->events);
    mt_db_meta_set_int(db, "complete", !st->incomplete);
    if (st->incomplete) mt_db_meta_set_text(db, "incomplete_reason", st->reason);
}

/* SIGINT, SIGTERM, SIGHUP and SIGQUIT to memtrace go to `handler`. */
static void catch_signals(void (*handler)(int, siginfo_t *, void *))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}

/* After a failed recording: marks the database incomplete and keeps the
 * events written before the failure (mt_db_salvage); says what it kept. */
static void salvage(mt_db_t *db, const char *output, int why)
{
    char reason[256];
    snprintf(reason, sizeof reason, "recording stopped: writing the database failed (%s)",
             why == MT_EFULL ? "disk full or file size limit reached" : mt_strerror(why));
    mt_db_meta_set_int(db, "complete", 0);
    mt_db_meta_set_text(db, "incomplete_reason", reason);
    int64_t kept = 0;
    int rc = mt_db_salvage(db, &kept);
    if (!rc) rc = mt_db_meta_set_int(db, "events", kept);
    if (rc)
        fprintf(stderr, "memtrace: %s holds no events: %s\n", output, mt_strerror(rc));
    else
        fprintf(stderr, "memtrace: %s keeps the %lld events written before that, marked incomplete\n", output,
                (long long)kept);
}

static char *join_args(char **argv)
{
    size_t len = 1;
    for (char **a = argv; *a; a++) len += strlen(*a) + 1;
    char *s = malloc(len);
    if (!s) return NULL;
    s[0] = 0;
    for (char **a = argv; *a; a++) {
        if (a != argv) strcat(s, " ");
        strcat(s, *a);
    }
    return s;
}

const char *mt_debuginfod_urls;

/* Child side: wait for the go byte, then exec (with the preload library
 * unless `preload` is NULL; under the seccomp filter when the go byte is
 * 's': the tracer has seized us).  On failure, writes errno to the error
 * pipe and exits 127. */
static void child_exec(int go_fd, int err_fd, const char *prog, char **argv, const char *preload,
                       const char *dir)
{
    char c;
    if (read(go_fd, &c, 1) != 1) _exit(127);
    close(go_fd);
    int filter = c == 's';
    int e;
    if (!preload) goto exec;
    const char *old = getenv("LD_PRELOAD");
    char *pre = malloc(strlen(preload) + (old ? strlen(old) : 0) + 2);
    if (!pre) _exit(127);
    strcpy(pre, preload);
    if (old && *old) {
        strcat(pre, ":");
        strcat(pre, old);
    }
    setenv("LD_PRELOAD", pre, 1);
    setenv(MT_ENV_DIR, dir, 1);
exec:
    if (mt_debuginfod_urls) setenv("DEBUGINFOD_URLS", mt_debuginfod_urls, 1);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    /* last: from here on the memory calls stop for the tracer */
    if (filter && (e = -mt_ptrace_install_filter()) != 0) goto fail;
    execv(prog, argv);
    e = errno;
fail:;
    ssize_t w = write(err_fd, &e, sizeof e);
    (void)w;
    _exit(127);
}

int mt_cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"stack-depth", required_argument, NULL, 'd'},
        {"no-stacks", no_argument, NULL, 'n'},
        {"precise-times", no_argument, NULL, 'T'},
        {"free-stacks", no_argument, NULL, 'f'},
        {"unwind", required_argument, NULL, 'u'},
        {"allocator", required_argument, NULL, 'a'},
        {"rss-interval", required_argument, NULL, 'r'},
        {"python", required_argument, NULL, 'P'},
        {"python-native", no_argument, NULL, 'N'},
        {"malloc-stats", required_argument, NULL, 'S'},
        {"os", required_argument, NULL, 'O'},
        {"mode", required_argument, NULL, 'M'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *output = NULL;
    mt_options_t opt = {DEFAULT_DEPTH, 0, MT_UNWIND_AUTO, 0};
    static const char *const unwind_names[] = {"auto", "fp", "dwarf"};
    long rss_ms = DEFAULT_RSS_MS;
    int quiet = 0;
    int os_syscalls = 1, ptrace_only = 0;
    int ch;
    optind = 1;
    opterr = 0;
    /* "+": stop at the program name, its options are its own */
    while ((ch = getopt_long(argc, argv, "+o:qh", longopts, NULL)) != -1) {
        char *end;
        switch (ch) {
        case 'o': output = optarg; break;
        case 'd': {
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > MT_MAX_DEPTH) {
                fprintf(stderr, "memtrace: --stack-depth must be a number from 1 to %d, not '%s'\n",
                        MT_MAX_DEPTH, optarg);
                return 2;
            }
            opt.stack_depth = (uint32_t)v;
            break;
        }
        case 'n': opt.stack_depth = 0; break;
        case 'T': opt.flags |= MT_OPT_PRECISE_TS; break;
        case 'f': opt.flags |= MT_OPT_FREE_STACKS; break;
        case 'a':
            if (!strcmp(optarg, "bundled")) opt.flags |= MT_OPT_BUNDLED;
            else if (!strcmp(optarg, "libc")) opt.flags &= ~MT_OPT_BUNDLED;
            else {
                fprintf(stderr, "memtrace: --allocator must be libc or bundled, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'u': {
            int found = -1;
            for (int i = 0; i < 3; i++)
                if (!strcmp(optarg, unwind_names[i])) found = i;
            if (found < 0) {
                fprintf(stderr, "memtrace: --unwind must be auto, fp or dwarf, not '%s'\n", optarg);
                return 2;
            }
            opt.unwind = (uint32_t)found;
            break;
        }
        case 'r':
            if (rss_interval_arg(optarg, &rss_ms)) return 2;
            break;
        case 'O':
            if (!strcmp(optarg, "syscalls") || !strcmp(optarg, "hooks")) os_syscalls = optarg[0] == 's';
            else {
                fprintf(stderr, "memtrace: --os must be syscalls or hooks, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'M':
            if (!strcmp(optarg, "preload") || !strcmp(optarg, "ptrace")) ptrace_only = optarg[1] == 't';
            else {
                fprintf(stderr, "memtrace: --mode must be preload or ptrace, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'P':
            opt.flags &= ~(MT_OPT_PY_OFF | MT_OPT_PY_ON);
            if (!strcmp(optarg, "off")) opt.flags |= MT_OPT_PY_OFF;
            else if (!strcmp(optarg, "on")) opt.flags |= MT_OPT_PY_ON;
            else if (strcmp(optarg, "auto") != 0) {
                fprintf(stderr, "memtrace: --python must be auto, on or off, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'N': opt.flags |= MT_OPT_PY_NATIVE; break;
        case 'S': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 0 || v > 3600000) {
                fprintf(stderr, "memtrace: --malloc-stats must be milliseconds (0..3600000), not '%s'\n", optarg);
                return 2;
            }
            opt.malloc_stats_ms = (uint32_t)v;
            break;
        }
        case 'q': quiet = 1; break;
        case 'h': mt_usage_run(stdout); return 0;
        default: return option_error(argv, "memtrace --help");
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "memtrace: no program to run (usage: memtrace [run] [OPTIONS] PROGRAM [ARGS...])\n");
        return 2;
    }
    char **pargv = argv + optind;
    char prog[PATH_MAX];
    int rc = resolve_program(pargv[0], prog, sizeof prog);
    if (rc) {
        fprintf(stderr, "memtrace: %s: %s\n", pargv[0],
                rc == MT_ENOENT ? "no such program" : "not an executable file (permission denied)");
        return 127;
    }
    warn_secure_exec(prog, os_syscalls || ptrace_only);
    if (!ptrace_only && mt_elf_is_static(prog) == 1) {
        fprintf(stderr, "memtrace: %s is statically linked: the preload library cannot work there; recording "
                        "with ptrace (--mode=ptrace: the OS layer only)\n", pargv[0]);
        ptrace_only = 1;
    }
    if (ptrace_only) os_syscalls = 1;
    else if (os_syscalls) opt.flags |= MT_OPT_OS_SYSCALLS;
    char preload[PATH_MAX];
    if (!ptrace_only && find_preload(preload, sizeof preload)) {
        fprintf(stderr, "memtrace: cannot find libmemtrace_preload.so next to memtrace (set MEMTRACE_PRELOAD)\n");
        return 1;
    }
    char dir[PATH_MAX];
    mt_session_t *session = make_session(dir, sizeof dir, &opt);
    if (!session) {
        fprintf(stderr, "memtrace: cannot create the session in %s: %s\n", dir, strerror(errno));
        return 1;
    }

    int go[2], errp[2];
    if (pipe2(go, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0) {
        fprintf(stderr, "memtrace: pipe: %s\n", strerror(errno));
        remove_session(dir);
        return 1;
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    pid_t child = fork();
    if (child < 0) {
        fprintf(stderr, "memtrace: fork: %s\n", strerror(errno));
        remove_session(dir);
        return 1;
    }
    if (child == 0) {
        close(go[1]);
        close(errp[0]);
        child_exec(go[0], errp[1], prog, pargv, ptrace_only ? NULL : preload, dir);
    }
    close(go[0]);
    close(errp[1]);
    g_child = child;
    ticker_t ticker;
    ticker_start(&ticker, session);
    /* past a file size limit (ulimit -f) a write fails with EFBIG instead of
     * killing memtrace; the child's disposition is its own (it execs) */
    signal(SIGXFSZ, SIG_IGN);
    mt_ptracer_t *tracer = NULL;
    if (os_syscalls) {
        /* seized before it may exec: its filter stops need us */
        mt_ptracer_cfg_t pcfg = {dir, session, MT_PT_RUN, !ptrace_only, opt.stack_depth};
        char perr[256];
        if (mt_ptracer_start(&pcfg, child, &tracer, perr, sizeof perr) != 0) {
            if (ptrace_only) {
                fprintf(stderr, "memtrace: %s: --mode=ptrace needs ptrace\n", perr);
                kill(child, SIGKILL);
                waitpid(child, NULL, 0);
                remove_session(dir);
                return 1;
            }
            /* the heap layer does not need ptrace: go on as with --os=hooks */
            fprintf(stderr, "memtrace: warning: %s; recording the OS layer with the hooks only (--os=hooks)\n",
                    perr);
            os_syscalls = 0;
            opt.flags &= ~MT_OPT_OS_SYSCALLS;
            session->opt.flags = opt.flags; /* before the child execs: the preload library reads it */
        }
    }

    char defname[PATH_MAX];
    if (!output) {
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof tmp, "%s", pargv[0]);
        snprintf(defname, sizeof defname, "memtrace.%s.%d.db", basename(tmp), (int)child);
        output = defname;
    }
    char err[512];
    mt_db_t *db = NULL;
    rc = mt_db_create(output, &db, err, sizeof err);
    if (rc) {
        fprintf(stderr, "memtrace: %s\n", err);
        kill(child, SIGKILL);
        if (tracer) mt_ptracer_join(tracer, NULL);
        else waitpid(child, NULL, 0);
        remove_session(dir);
        return 1;
    }
    char *cmd = join_args(pargv);
    meta_start(db, cmd, session, opt.stack_depth, ptrace_only ? "ptrace" : "preload", os_syscalls);
    free(cmd);
    mt_db_meta_set_text(db, "unwind", unwind_names[opt.unwind]);
    mt_db_meta_set_text(db, "allocator", opt.flags & MT_OPT_BUNDLED ? "bundled" : "libc");
    mt_db_meta_set_int(db, "time_step_ns", opt.flags & MT_OPT_PRECISE_TS ? 0 : MT_CLOCK_PERIOD_NS);
    catch_signals(on_signal);

    /* let the child exec, and learn whether exec worked */
    if (write(go[1], tracer ? "s" : "g", 1) != 1) { /* the child died already: reaped below */ }
    close(go[1]);
    int child_errno = 0;
    ssize_t k = read(errp[0], &child_errno, sizeof child_errno);
    close(errp[0]);
    if (k == (ssize_t)sizeof child_errno) {
        fprintf(stderr, "memtrace: cannot execute %s: %s\n", prog, strerror(child_errno));
        if (tracer) mt_ptracer_join(tracer, NULL);
        else waitpid(child, NULL, 0);
        mt_db_close(db);
        unlink(output);
        remove_session(dir);
        return 127;
    }

    mt_collector_cfg_t cfg = {dir, session, db, child, (unsigned)rss_ms, NULL, NULL, NULL};
    if (tracer) {
        cfg.reaped = mt_ptracer_reaped;
        cfg.children_left = mt_ptracer_children_left;
        cfg.reap_ctx = tracer;
    }
    mt_collector_t *col = NULL;
    mt_collector_stats_t st;
    memset(&st, 0, sizeof st);
    rc = mt_collector_new(&cfg, &col);
    if (!rc) rc = mt_collector_run(col, &g_stop);
    uint64_t end_ns = mono_ns();
    if (rc) {
        if (rc == MT_EFULL)
            fprintf(stderr, "memtrace: writing %s failed: disk full or file size limit reached; recording stopped, "
                    "the program keeps running untraced\n", output);
        else
            fprintf(stderr, "memtrace: writing %s failed: %s (%s); recording stopped, the program keeps running "
                    "untraced\n", output, mt_strerror(rc), mt_db_errmsg(db));
        session->collector_pid = -1; /* the preload library stops tracing */
    }
    int status = 0;
    mt_ptracer_stats_t pst;
    memset(&pst, 0, sizeof pst);
    if (rc) {
        /* database broken: wait for the program, do not kill it; keep what
         * was written before the failure */
        if (tracer) mt_ptracer_join(tracer, &pst);
        else waitpid(child, &status, 0);
        tracer = NULL;
        mt_collector_free(col);
        col = NULL;
        salvage(db, output, rc);
    } else {
        if (tracer) mt_ptracer_join(tracer, &pst); /* it has ended: the collector saw every exit */
        tracer = NULL;
        rc = mt_collector_finish(col, &st);
        status = st.child_status;
        /* after a second signal recording ended without waiting for the
         * killed program: its status, unless the collector reaped it */
        int killed_status;
        if (g_stop >= 2 && waitpid(child, &killed_status, 0) == child) status = killed_status;
        if (rc) fprintf(stderr, "memtrace: finishing %s failed: %s (%s)\n", output, mt_strerror(rc), mt_db_errmsg(db));
    }
    if (!rc) {
        /* a first signal is only passed on; a second one cut recording short */
        if (g_stop >= 2) { /* the first cause to name, then what followed from it */
            char then[sizeof st.reason];
            snprintf(then, sizeof then, "%s", st.incomplete ? st.reason : "");
            snprintf(st.reason, sizeof st.reason, "recording stopped by a second signal to memtrace%s%.180s%s",
                     *then ? " (" : "", then, *then ? ")" : "");
            st.incomplete = 1;
        }
        meta_end(db, &st, session, end_ns);
        mt_db_meta_set_int(db, "collector_waits", st.chunk_waits);
        if (os_syscalls) {
            mt_db_meta_set_int(db, "os_own_calls", pst.own);
            mt_db_meta_set_int(db, "os_tracer_stops", pst.stops);
            if (pst.breakpoints) mt_db_meta_set_int(db, "static_breakpoints", pst.breakpoints);
        }
        if (st.child_maxrss) mt_db_meta_set_int(db, "max_rss_bytes", st.child_maxrss);
        if (st.child_cpu_ns) mt_db_meta_set_int(db, "cpu_ns", st.child_cpu_ns);
        if ((opt.flags & MT_OPT_PY_ON) && st.python_processes == 0)
            fprintf(stderr, "memtrace: --python=on: no CPython interpreter was found in %s\n", prog);
        if (st.processes == 0 && !os_syscalls)
            fprintf(stderr,
                    "memtrace: warning: no traced process reported in: %s is statically linked, set-user-ID, "
                    "or cleared LD_PRELOAD\n",
                    prog);
    }
    mt_collector_free(col);
    mt_db_close(db);
    ticker_stop(&ticker);
    remove_session(dir);
    munmap(session, sizeof *session);

    if (!quiet && !rc) print_closing(&st, output);
    if (rc) return 1;
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 1;
}

/* ---- memtrace attach PID ---- */

static mt_ptracer_t *volatile g_tracer;

void mt_usage_attach(FILE *out)
{
    fprintf(out,
            "usage: memtrace attach [OPTIONS] PID\n"
            "\n"
            "Records the OS layer of a running process - every mmap, munmap, mremap, brk\n"
            "and memory-returning madvise of its threads, and of the processes it starts -\n"
            "with ptrace, without restarting it (no preload library: no heap events).\n"
            "Ctrl-C (SIGINT), SIGTERM or SIGHUP to memtrace detach and leave the process\n"
            "running; recording also ends when the process does.  Every system call of the\n"
            "process stops it while attached (no seccomp filter can be removed again), so\n"
            "it runs slower until memtrace detaches (docs/os-layer.md).\n"
            "\n"
            "Options:\n"
            "  -o, --output FILE      database to write (default: memtrace.attach.PID.db)\n"
            "      --rss-interval MS  sample resident memory every MS milliseconds\n"
            "                         (default %d, 0 = never)\n"
            "  -q, --quiet            do not print the closing line\n"
            "  -h, --help             show this text\n"
            "\n"
            "The trace has meta.mode = 'attach'; after a detach meta.complete is 0 and\n"
            "meta.incomplete_reason says the process was left running.\n",
            DEFAULT_RSS_MS);
}

static void on_attach_signal(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si, (void)uc;
    g_stop = 1;
    if (g_tracer) mt_ptracer_detach(g_tracer); /* sets a flag: async-signal-safe */
}

int mt_cmd_attach(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'},
        {"rss-interval", required_argument, NULL, 'r'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *output = NULL;
    long rss_ms = DEFAULT_RSS_MS;
    int quiet = 0, ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "+o:qh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o': output = optarg; break;
        case 'r':
            if (rss_interval_arg(optarg, &rss_ms)) return 2;
            break;
        case 'q': quiet = 1; break;
        case 'h': mt_usage_attach(stdout); return 0;
        default: return option_error(argv, "memtrace help attach");
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "memtrace: attach needs exactly one process id (usage: memtrace attach [OPTIONS] PID)\n");
        return 2;
    }
    char *end;
    long pidl = strtol(argv[optind], &end, 10);
    if (*end || pidl <= 0 || pidl > 4194304) {
        fprintf(stderr, "memtrace: attach: '%s' is not a process id\n", argv[optind]);
        return 2;
    }
    pid_t pid = (pid_t)pidl;
    if (pid == getpid() || (kill(pid, 0) != 0 && errno == ESRCH)) {
        fprintf(stderr, "memtrace: attach: no process %d%s\n", (int)pid, pid == getpid() ? " to trace (that is memtrace)" : "");
        return 1;
    }
    mt_options_t opt = {0, 0, MT_UNWIND_AUTO, 0};
    char dir[PATH_MAX];
    mt_session_t *session = make_session(dir, sizeof dir, &opt);
    if (!session) {
        fprintf(stderr, "memtrace: cannot create the session in %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char defname[64];
    if (!output) {
        snprintf(defname, sizeof defname, "memtrace.attach.%d.db", (int)pid);
        output = defname;
    }
    char err[512];
    mt_db_t *db = NULL;
    int rc = mt_db_create(output, &db, err, sizeof err);
    if (rc) {
        fprintf(stderr, "memtrace: %s\n", err);
        remove_session(dir);
        return 1;
    }
    mt_ptracer_t *tracer = NULL;
    mt_ptracer_cfg_t pcfg = {dir, session, MT_PT_ATTACH, 0, DEFAULT_DEPTH};
    if (mt_ptracer_start(&pcfg, pid, &tracer, err, sizeof err) != 0) {
        fprintf(stderr, "memtrace: attach: %s\n", err);
        mt_db_close(db);
        unlink(output);
        remove_session(dir);
        return 1;
    }
    g_tracer = tracer;
    catch_signals(on_attach_signal);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "attach %d", (int)pid);
    meta_start(db, cmd, session, DEFAULT_DEPTH, "attach", 1);

    mt_collector_cfg_t cfg = {dir, session, db, pid, (unsigned)rss_ms, mt_ptracer_reaped, mt_ptracer_children_left, tracer};
    mt_collector_t *col = NULL;
    mt_collector_stats_t st;
    memset(&st, 0, sizeof st);
    rc = mt_collector_new(&cfg, &col);
    volatile int never = 0; /* the collector ends when the tracer has detached or the process ended */
    if (!rc) rc = mt_collector_run(col, &never);
    uint64_t end_ns = mono_ns();
    if (rc) {
        fprintf(stderr, "memtrace: writing %s failed: %s (%s); detaching\n", output, mt_strerror(rc), mt_db_errmsg(db));
        mt_ptracer_detach(tracer);
    }
    mt_ptracer_stats_t pst;
    mt_ptracer_join(tracer, &pst);
    g_tracer = NULL;
    if (!rc) {
        rc = mt_collector_finish(col, &st);
        if (rc) fprintf(stderr, "memtrace: finishing %s failed: %s (%s)\n", output, mt_strerror(rc), mt_db_errmsg(db));
    }
    if (!rc) {
        if (pst.detached) {
            st.incomplete = 1;
            snprintf(st.reason, sizeof st.reason, "detached from process %d, which kept running", (int)pid);
        }
        meta_end(db, &st, session, end_ns);
    }
    mt_collector_free(col);
    mt_db_close(db);
    remove_session(dir);
    munmap(session, sizeof *session);
    if (!quiet && !rc) print_closing(&st, output);
    return rc ? 1 : 0;
}
