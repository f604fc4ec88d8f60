/* collector_replay.c - the collector alone, fed a recorded stream.
 *
 * usage: collector_replay [-k ROUNDS] [-c CHUNKS] [-o DB] STREAM
 *
 * STREAM is what a recording with MEMTRACE_RECORD_STREAM=STREAM wrote
 * (mt_collector.h): every record the collector converted, in that order,
 * and what it read of each region besides the chunks.  This program makes
 * a session directory, as the launcher does, and forks one "program" per
 * recorded region (region files are made the way the preload library
 * makes them, lib/mt_shm.h): each creates its region, publishes the
 * recorded stack trie, modules and Python names, and puts the region's
 * records back into chunks, thread by thread, claiming FREE chunks and
 * marking them FULL as the preload library does (an event without old_addr
 * as a compact record, after a time record when its time moved), then
 * exits.  Meanwhile
 * this process runs the collector (mt_collector_new, _run, _finish) into a
 * fresh database, exactly as `memtrace run` does, and measures it: its own
 * CPU time (getrusage RUSAGE_SELF: the feeding processes are not counted),
 * its peak resident memory, its heap in use when the run loop ends.
 *
 * -k ROUNDS  feeds the stream ROUNDS times, sequence numbers shifted by the
 *            recorded session's count each round (the same threads and
 *            stacks): a trace ROUNDS times as long (default 1)
 * -c CHUNKS  chunks per region (default 1024, as the preload library)
 * -o DB      keep the database there (default: a temporary file, removed)
 *
 * Timestamps are fed as recorded: time-stamp-counter ticks are then mapped
 * with the recorded start and this process's clock samples, so the
 * database's times are not the recorded ones (its events, threads, stacks
 * and markers are).
 *
 * Prints "name value" lines: events, rounds, run_cpu_s (user + system),
 * run_sys_s (the system part: mostly writing the database), finish_cpu_s,
 * events_per_s (run loop), events_per_s_all (run loop and finishing),
 * db_bytes, bytes_per_event, rss_start_kib, rss_peak_kib (ru_maxrss),
 * heap_end_of_run_kib (mallinfo2: in use when the run loop ended), waits
 * (times a feeding process found no free chunk: the collector was behind).
 * Exit status 0, or 1 on an error (a stream that does not end with its
 * END block, a collector error, an event count other than the stream's).
 */
#define _GNU_SOURCE
#include "mt_collector.h"
#include "mt_error.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_REGIONS 64
#define MAX_THREADS 4096

/* The stream.  This process reads it with pread (the page cache is not
 * its memory); the feeding processes map it. */
typedef struct {
    const char *path;
    const uint8_t *p;                /* mapped, in a feeding process */
    size_t len;
    mt_stream_head_t head;
    uint64_t end_seq;                /* the session's next seq at the end */
    uint32_t region[MAX_REGIONS];    /* indexes of the recorded regions */
    uint64_t header_off[MAX_REGIONS]; /* where their mt_region_t is */
    int nregions;
    int64_t events;                  /* records of type event */
} stream_t;

static int fail(const char *what)
{
    fprintf(stderr, "collector_replay: %s\n", what);
    return 1;
}

/* The next block at *off of a mapped stream, or NULL at the end. */
static const mt_stream_block_t *next_block(const stream_t *s, size_t *off, const uint8_t **data)
{
    if (*off + sizeof(mt_stream_block_t) > s->len) return NULL;
    const mt_stream_block_t *b = (const mt_stream_block_t *)(s->p + *off);
    if (b->size > s->len - *off - sizeof *b) return NULL;
    *data = s->p + *off + sizeof *b;
    *off += sizeof *b + b->size;
    return b;
}

static int stream_load(const char *path, stream_t *s)
{
    memset(s, 0, sizeof *s);
    s->path = path;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        perror(path);
        return 1;
    }
    s->len = (size_t)sb.st_size;
    if (pread(fd, &s->head, sizeof s->head, 0) != (ssize_t)sizeof s->head || s->head.magic != MT_STREAM_MAGIC ||
        s->head.version != MT_SHM_VERSION) {
        close(fd);
        return fail("not a record stream of this version");
    }
    static mt_rec_t rec[MT_CHUNK_SIZE / sizeof(mt_rec_t)];
    uint64_t off = sizeof s->head;
    int ended = 0;
    mt_stream_block_t b;
    while (off + sizeof b <= s->len && pread(fd, &b, sizeof b, (off_t)off) == (ssize_t)sizeof b) {
        off += sizeof b;
        if (b.size > s->len - off) break;
        if (b.kind == MT_STREAM_END && b.size == sizeof(uint64_t)) {
            ended = pread(fd, &s->end_seq, sizeof s->end_seq, (off_t)off) == (ssize_t)sizeof s->end_seq;
        } else if (b.kind == MT_STREAM_REGION && b.size == sizeof(mt_region_t)) {
            if (s->nregions == MAX_REGIONS) break;
            s->region[s->nregions] = b.region;
            s->header_off[s->nregions++] = off;
        } else if (b.kind == MT_STREAM_RECORDS) {
            for (uint64_t o = 0; o < b.size;) {
                size_t n = b.size - o < sizeof rec ? b.size - o : sizeof rec;
                if (pread(fd, rec, n, (off_t)(off + o)) != (ssize_t)n) break;
                for (size_t i = 0; i < n / sizeof *rec; i++) s->events += rec[i].type == MT_REC_EVENT;
                o += n;
            }
        }
        off += b.size;
    }
    close(fd);
    if (!ended || off != s->len) return fail("the stream has no end (the recording did not finish)");
    if (!s->nregions) return fail("the stream has no region");
    return 0;
}

/* ---- the feeding process of one region ---- */

typedef struct {
    int32_t tid;
    mt_chunk_t *ch;
    uint64_t used;
    uint64_t ts; /* the time of the chunk's last MT_REC_TS (0: none) */
} open_chunk_t;

/* Claims a FREE chunk for thread `tid`, as the preload library does. */
static mt_chunk_t *claim(mt_region_t *r, int32_t tid, uint32_t *hint)
{
    for (;;) {
        uint32_t i;
        mt_chunk_t *c = mt_chunk_claim(r, *hint % r->nchunks, tid, &i);
        if (c) {
            *hint = i + 1;
            return c;
        }
        __atomic_fetch_add(&r->chunk_waits, 1, __ATOMIC_RELAXED);
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
}

static int feed_region(stream_t *s, int k, const char *dir, uint32_t nchunks, int rounds)
{
    int sfd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (sfd < 0) return 1;
    s->p = mmap(NULL, s->len, PROT_READ, MAP_PRIVATE, sfd, 0);
    close(sfd);
    if (s->p == MAP_FAILED) return 1;
    const mt_region_t *rec_r = (const mt_region_t *)(s->p + s->header_off[k]);
    uint32_t slots = rec_r->trie_slots;
    if (!slots || (slots & (slots - 1))) return 1;
    uint64_t total = MT_REGION_SIZE(nchunks, slots);
    char path[4096];
    snprintf(path, sizeof path, "%s/proc.%d.%u", dir, (int)getpid(), s->region[k]);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)total) != 0) return 1;
    mt_region_t *r = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (r == MAP_FAILED) return 1;
    /* the recorded header (exit status, flags, Python and allocator
     * figures), laid out for this file and this process */
    memcpy(r, rec_r, sizeof *r);
    r->magic = 0;
    r->pid = getpid();
    r->ppid = getppid();
    r->chunk_waits = 0;
    r->nnodes = 0;
    r->mod_lock = 0;
    mt_region_layout(r, nchunks, slots);

    size_t off = sizeof s->head;
    const uint8_t *data;
    const mt_stream_block_t *b;
    while ((b = next_block(s, &off, &data))) {
        if (b->region != s->region[k]) continue;
        if (b->kind == MT_STREAM_MODULES) {
            size_t n = b->size / sizeof(mt_module_t);
            if (n > MT_MAX_MODULES) n = MT_MAX_MODULES;
            memcpy(mt_region_modules(r), data, n * sizeof(mt_module_t));
            r->nmodules = (uint32_t)n;
        } else if (b->kind == MT_STREAM_NODES) {
            const mt_stream_node_t *nd = (const mt_stream_node_t *)data;
            for (size_t i = 0; i < b->size / sizeof *nd; i++) {
                if (!nd[i].id || nd[i].id > slots) continue;
                mt_region_trie(r)[nd[i].id - 1] = nd[i].slot;
                if (nd[i].id > r->nnodes) r->nnodes = nd[i].id;
            }
        } else if (b->kind == MT_STREAM_NAMES) {
            size_t n = b->size < MT_NAMES_SIZE ? b->size : MT_NAMES_SIZE;
            memcpy(mt_region_names(r), data, n);
        }
    }
    __atomic_store_n(&r->magic, MT_REGION_MAGIC, __ATOMIC_RELEASE);

    static open_chunk_t open_chunks[MAX_THREADS];
    size_t nopen = 0;
    uint32_t hint = 0;
    for (int round = 0; round < rounds; round++) {
        uint64_t shift = (uint64_t)round * (s->end_seq - 1); /* seq 1 is the first one used */
        for (off = sizeof s->head; (b = next_block(s, &off, &data));) {
            if (b->kind != MT_STREAM_RECORDS || b->region != s->region[k]) continue;
            open_chunk_t *o = NULL;
            for (size_t i = 0; i < nopen && !o; i++)
                if (open_chunks[i].tid == b->tid) o = &open_chunks[i];
            if (!o) {
                if (nopen == MAX_THREADS) return 1;
                o = &open_chunks[nopen++];
                *o = (open_chunk_t){b->tid, NULL, 0, 0};
            }
            /* each record as the preload library writes it: an event
             * without old_addr compact (after a time record when its time
             * differs from the chunk's), the others whole */
            const mt_rec_t *src = (const mt_rec_t *)data;
            for (size_t n = b->size / sizeof *src; n; n--, src++) {
                int compact = src->type == MT_REC_EVENT && !src->old_addr;
                /* room for the longest it can take: a time record and the event */
                if (!o->ch || o->used + (compact ? 2 * sizeof(mt_rec32_t) : sizeof *src) > MT_CHUNK_DATA) {
                    if (o->ch) __atomic_store_n(&o->ch->state, MT_CHUNK_FULL, __ATOMIC_RELEASE);
                    o->ch = claim(r, b->tid, &hint);
                    o->used = 0;
                    o->ts = 0;
                }
                uint64_t len = !compact ? sizeof *src : sizeof(mt_rec32_t) * (src->ts == o->ts ? 1 : 2);
                char *dst = (char *)(o->ch + 1) + o->used;
                if (!compact) {
                    memcpy(dst, src, sizeof *src);
                    ((mt_rec_t *)(void *)dst)->seq += shift;
                } else {
                    mt_rec32_t *c = (mt_rec32_t *)(void *)dst;
                    if (src->ts != o->ts) {
                        *c++ = (mt_rec32_t){MT_REC_TS, 0, 0, 0, 0, src->ts, 0};
                        o->ts = src->ts;
                    }
                    *c = (mt_rec32_t){MT_REC_EV32, src->kind, src->flags, src->stack, src->seq + shift, src->addr,
                                      src->size};
                }
                o->used += len;
                __atomic_store_n(&o->ch->used, o->used, __ATOMIC_RELEASE);
            }
        }
    }
    for (size_t i = 0; i < nopen; i++)
        if (open_chunks[i].ch) __atomic_store_n(&open_chunks[i].ch->state, MT_CHUNK_FULL, __ATOMIC_RELEASE);
    return 0;
}

/* ---- the collector ---- */

/* This process's CPU time: user + system, or (sys_only) system. */
static double cpu_s(int sys_only)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    return sys_only ? sys : sys + (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
}

static long maxrss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void remove_dir(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "collector_replay: cannot remove %s\n", dir);
}

int main(int argc, char **argv)
{
    int rounds = 1, opt;
    uint32_t nchunks = MT_DEFAULT_CHUNKS;
    const char *out = NULL;
    while ((opt = getopt(argc, argv, "k:c:o:")) != -1) {
        if (opt == 'k') rounds = atoi(optarg);
        else if (opt == 'c') nchunks = (uint32_t)atoi(optarg);
        else if (opt == 'o') out = optarg;
        else return 2;
    }
    if (optind + 1 != argc || rounds < 1 || nchunks < 1) {
        fprintf(stderr, "usage: collector_replay [-k ROUNDS] [-c CHUNKS] [-o DB] STREAM\n");
        return 2;
    }
    static stream_t s;
    if (stream_load(argv[optind], &s)) return 1;

    char dir[128], dbpath[4096];
    snprintf(dir, sizeof dir, "%s/collector_replay.%d.XXXXXX", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm",
             (int)getpid());
    if (!mkdtemp(dir)) return fail("cannot make the session directory");
    snprintf(dbpath, sizeof dbpath, "%s", out ? out : "");
    if (!out) snprintf(dbpath, sizeof dbpath, "%s.db", dir);
    unlink(dbpath);

    mt_session_t *session = calloc(1, sizeof *session);
    if (!session) return fail("out of memory");
    *session = s.head.session;
    session->collector_pid = getpid();
    session->seq = (uint64_t)rounds * (s.end_seq - 1) + 1;

    /* the "programs", one per region, lowest index first */
    pid_t child[MAX_REGIONS];
    for (int k = 0; k < s.nregions; k++) {
        child[k] = fork();
        if (child[k] < 0) return fail("fork failed");
        if (child[k] == 0) {
            /* a feeder never outlives the replay (it would wait for a free
             * chunk for ever) */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() == 1) _exit(1);
            _exit(feed_region(&s, k, dir, nchunks, rounds));
        }
    }

    char err[256];
    mt_db_t *db;
    if (mt_db_create(dbpath, &db, err, sizeof err) != 0) return fail(err);
    mt_collector_cfg_t cfg = {dir, session, db, child[0], 0, NULL, NULL, NULL};
    mt_collector_t *col = NULL;
    volatile int stop = 0;
    long rss0 = maxrss_kib();
    double t0 = cpu_s(0), sys0 = cpu_s(1);
    int rc = mt_collector_new(&cfg, &col);
    if (!rc) rc = mt_collector_run(col, &stop);
    double t1 = cpu_s(0), sys1 = cpu_s(1);
    struct mallinfo2 mi = mallinfo2();
    mt_collector_stats_t st;
    memset(&st, 0, sizeof st);
    if (!rc) rc = mt_collector_finish(col, &st);
    mt_collector_free(col);
    mt_db_close(db);
    double t2 = cpu_s(0);
    long rss1 = maxrss_kib();
    int status = 0;
    while (wait(NULL) > 0) continue;
    if (!rc && !WIFEXITED(st.child_status)) rc = MT_EIO;
    if (!rc && WEXITSTATUS(st.child_status) != 0) status = fail("a feeding process failed");

    int64_t want = s.events * rounds;
    struct stat sb;
    int64_t bytes = stat(dbpath, &sb) == 0 ? (int64_t)sb.st_size : 0;
    if (rc) {
        fprintf(stderr, "collector_replay: the collector failed: %s\n", mt_strerror(rc));
        status = 1;
    } else if (st.events != want) {
        fprintf(stderr, "collector_replay: %lld events stored, the stream has %lld\n", (long long)st.events,
                (long long)want);
        status = 1;
    }
    double ev = (double)st.events;
    printf("events %lld\n", (long long)st.events);
    printf("rounds %d\n", rounds);
    printf("run_cpu_s %.3f\n", t1 - t0);
    printf("run_sys_s %.3f\n", sys1 - sys0);
    printf("finish_cpu_s %.3f\n", t2 - t1);
    printf("events_per_s %.0f\n", t1 > t0 ? ev / (t1 - t0) : 0.0);
    printf("events_per_s_all %.0f\n", t2 > t0 ? ev / (t2 - t0) : 0.0);
    printf("db_bytes %lld\n", (long long)bytes);
    printf("bytes_per_event %.1f\n", ev > 0 ? (double)bytes / ev : 0.0);
    printf("rss_start_kib %ld\n", rss0);
    printf("rss_peak_kib %ld\n", rss1);
    printf("heap_end_of_run_kib %zu\n", (mi.uordblks + mi.hblkhd) / 1024);
    printf("waits %lld\n", (long long)st.chunk_waits);

    remove_dir(dir);
    if (!out) unlink(dbpath);
    free(session);
    return status;
}
