/* collector_fixture.h - the collector (tracer/collector.c) run to the end
 * on a region laid out by hand, for the tests that need one
 * (tests/fuzz/fuzz_collector.c, tests/unit/test_collector_order.c).
 *
 * fixture_open makes a session directory (in /dev/shm when writable), a
 * "program" that exits at once (/bin/true: posix_spawn, not fork, since a
 * fork child of a multi-threaded, sanitized process can deadlock before it
 * exits), the session and one region file laid out as the preload library
 * lays it out (lib/mt_shm.h), marked as exited.  The caller fills the
 * chunks and the trie, then calls fixture_publish and fixture_collect, which
 * runs mt_collector_new, _run and _finish into a new database at
 * f->dbpath.  fixture_close removes everything.
 */
#ifndef MT_COLLECTOR_FIXTURE_H
#define MT_COLLECTOR_FIXTURE_H

#include "mt_collector.h"
#include "mt_db.h"
#include "mt_shm.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct {
    char dir[128], path[192], dbpath[192];
    pid_t child;
    mt_session_t *session;
    mt_region_t *r;
    uint64_t total; /* bytes of the region file */
} fixture_t;

/* Returns 0, or -1 with what failed on stderr. */
static int fixture_open(fixture_t *f, const char *name, uint32_t nchunks, uint32_t slots)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s/%s.%d.XXXXXX", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm", name,
             (int)getpid());
    char *targv[] = {"true", NULL};
    if (!mkdtemp(f->dir) || posix_spawn(&f->child, "/bin/true", NULL, NULL, targv, environ) != 0 ||
        !(f->session = calloc(1, sizeof *f->session))) {
        perror("fixture_open");
        return -1;
    }
    snprintf(f->dbpath, sizeof f->dbpath, "%s.db", f->dir);
    f->session->magic = MT_SESSION_MAGIC;
    f->session->version = MT_SHM_VERSION;
    f->session->collector_pid = getpid();
    f->session->seq = 1;

    f->total = MT_REGION_SIZE(nchunks, slots);
    snprintf(f->path, sizeof f->path, "%s/proc.%d.0", f->dir, (int)f->child);
    int fd = open(f->path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)f->total) != 0) {
        perror("fixture_open: region file");
        if (fd >= 0) close(fd);
        return -1;
    }
    void *p = mmap(NULL, f->total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        perror("fixture_open: mmap");
        return -1;
    }
    f->r = p;
    f->r->version = MT_SHM_VERSION;
    f->r->pid = f->child;
    f->r->ppid = getpid();
    f->r->parent_region = -1;
    mt_region_layout(f->r, nchunks, slots);
    f->r->exit_status = 0;
    f->r->flags = MT_RG_EXITED;
    memcpy(f->r->exe, "/test/prog", 11);
    return 0;
}

/* The region is complete: the collector may map it. */
static void fixture_publish(fixture_t *f) { __atomic_store_n(&f->r->magic, MT_REGION_MAGIC, __ATOMIC_RELEASE); }

/* Runs the collector to the end.  Returns 0 when it ran (*finish_rc then
 * has mt_collector_finish's code, and *st is set when that is 0), else
 * the failure (-1: the database could not be made). */
static int fixture_collect(fixture_t *f, mt_collector_stats_t *st, int *finish_rc)
{
    char err[256];
    mt_db_t *db;
    if (mt_db_create(f->dbpath, &db, err, sizeof err) != 0) {
        fprintf(stderr, "fixture_collect: %s\n", err);
        return -1;
    }
    mt_collector_cfg_t cfg = {f->dir, f->session, db, f->child, 0, NULL, NULL, NULL};
    mt_collector_t *col = NULL;
    volatile int stop = 0;
    int rc = mt_collector_new(&cfg, &col);
    if (!rc) rc = mt_collector_run(col, &stop);
    if (!rc) *finish_rc = mt_collector_finish(col, st);
    mt_collector_free(col);
    mt_db_close(db);
    return rc;
}

static void fixture_close(fixture_t *f)
{
    if (f->r) munmap(f->r, f->total);
    unlink(f->path);
    rmdir(f->dir);
    unlink(f->dbpath);
    free(f->session);
    if (f->child > 0) waitpid(f->child, NULL, 0);
}

#endif
