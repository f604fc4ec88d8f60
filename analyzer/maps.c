/* maps.c - `memtrace maps [--at SEQ | --time MS] [--csv] DB`: the OS
 * layer's mappings live at one moment, each with what it is.
 *
 * Place in the pipeline: analyzer subcommand (entry point in mt_analyzer.h).
 * One pass over the os-layer events up to the moment, per process, keeping
 * the mapped address ranges as sorted, disjoint regions:
 *
 *   mmap (result, length)      the range becomes one region (a MAP_FIXED
 *                              mapping over older ones replaces their parts)
 *   munmap (addr, length)      the range is cut out of every region it
 *                              touches (a region may split in two)
 *   mremap (old -> new, size)  the region at old moves to [new, new + size)
 *   brk / sbrk                 the program break: one "brk heap" region from
 *                              the first break seen to the current one
 *
 * What a mapping is, from the call that made it: the layer it served
 * (event_data.via: a pymalloc arena, the bundled allocator, the C
 * library's malloc), else the functions on its stack (glibc's arena code
 * new_heap / alloc_new_heap, the thread library's allocate_stack, the
 * loader's _dl_* mapping files, pymalloc's _PyObject_Arena*), else a
 * mapping of the program's own.
 */
#include "mt_analyzer.h"

#include "cli.h"
#include "mt_error.h"
#include "mt_event.h"
#include "mt_util.h"
#include "stackfmt.h"
#include "table.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define SYNOPSIS "[--at SEQ | --time MS] [--csv] DB"

enum { C_PROC, C_PID, C_START, C_END, C_SIZE, C_WHAT, C_SEQ, C_STACK, NCOLS };
static const mt_tcol_t cols[NCOLS] = {
    [C_PROC] = {"process", "process_id", MT_TCOL_ID, 0, MT_TCOL_ONLY_CSV},
    [C_PID] = {"pid", "pid", MT_TCOL_ID, 0, 0},
    [C_START] = {"start", "start", MT_TCOL_ADDR, 0, 0},
    [C_END] = {"end", "end", MT_TCOL_ADDR, 0, MT_TCOL_ONLY_CSV},
    [C_SIZE] = {"size", "size", MT_TCOL_BYTES, 0, 0},
    [C_WHAT] = {"what", "what", MT_TCOL_TEXT, 0, 0},
    [C_SEQ] = {"made at seq", "seq", MT_TCOL_ID, 0, 0},
    [C_STACK] = {"by", "stack_id,frames", MT_TCOL_STACK, 0, 0},
};

void mt_usage_maps(FILE *out)
{
    fprintf(out,
            "usage: memtrace maps " SYNOPSIS "\n"
            "\n"
            "The mappings of the OS layer (mmap, mremap, munmap, brk, sbrk) live at one\n"
            "moment, per process, by address, each with what it is and the call that\n"
            "made it:\n"
            "\n"
            "  pymalloc arena      made by CPython's arena allocator\n"
            "  bundled allocator   made by memtrace's bundled allocator\n"
            "  malloc arena        glibc's per-thread arenas (new_heap on the stack)\n"
            "  large malloc chunk  made inside a malloc call (a request over\n"
            "                      glibc's mmap threshold)\n"
            "  brk heap            the program break, from the first one seen\n"
            "  thread stack        made by pthread_create (allocate_stack)\n"
            "  loader              made by the dynamic loader (libraries' segments)\n"
            "  program             any other: the program's own mmap\n"
            "\n"
            "A munmap of part of a mapping leaves the rest; a MAP_FIXED mapping over\n"
            "another replaces that part.  What the trace holds of the OS layer depends\n"
            "on how it was recorded: the calls made through the C library's functions,\n"
            "or every system call (docs/os-layer.md).\n"
            "\n"
            "Options:\n"
            "  --at SEQ    the moment after the event numbered SEQ (default: the end)\n"
            "  --time MS   the moment MS milliseconds into the trace\n"
            "  --csv       RFC 4180 CSV: process_id,pid,start,end,size,what,seq,\n"
            "              stack_id,frames\n"
            "  -h, --help  this text\n"
            "\n"
            "Exit status: 0 done, 1 the trace cannot be read, 2 usage error.\n");
}

typedef struct {
    uint64_t start, end;
    int64_t seq, stack;
    int via, brk;
} region_t;

typedef struct {
    int64_t process;
    region_t *r;
    size_t n, cap;
    int has_brk;
    uint64_t brk_start, brk_end;
    int64_t brk_seq, brk_stack;
} proc_t;

/* Cuts [a, b) out of the process's regions. */
static int cut(proc_t *p, uint64_t a, uint64_t b)
{
    for (size_t i = 0; i < p->n; i++) {
        region_t *r = &p->r[i];
        if (r->end <= a || r->start >= b) continue;
        if (r->start < a && r->end > b) { /* split in two */
            if (p->n == p->cap) {
                size_t cap = p->cap ? 2 * p->cap : 64;
                region_t *v = realloc(p->r, cap * sizeof *v);
                if (!v) return MT_ENOMEM;
                p->r = v;
                p->cap = cap;
                r = &p->r[i];
            }
            region_t tail = *r;
            tail.start = b;
            r->end = a;
            memmove(&p->r[i + 2], &p->r[i + 1], (p->n - i - 1) * sizeof *p->r);
            p->r[i + 1] = tail;
            p->n++;
            return 0;
        }
        if (r->start < a) r->end = a;
        else if (r->end > b) r->start = b;
        else { /* wholly inside: gone */
            memmove(r, r + 1, (p->n - i - 1) * sizeof *r);
            p->n--;
            i--;
        }
    }
    return 0;
}

static int add(proc_t *p, const region_t *nr)
{
    int rc = cut(p, nr->start, nr->end);
    if (rc) return rc;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        region_t *v = realloc(p->r, cap * sizeof *v);
        if (!v) return MT_ENOMEM;
        p->r = v;
        p->cap = cap;
    }
    size_t i = 0;
    while (i < p->n && p->r[i].start < nr->start) i++;
    memmove(&p->r[i + 1], &p->r[i], (p->n - i) * sizeof *p->r);
    p->r[i] = *nr;
    p->n++;
    return 0;
}

static const char *what(mt_stackfmt_t *sf, const region_t *r, int *rc)
{
    if (r->brk) return "brk heap";
    if (r->via == MT_DOM_pyarena) return "pymalloc arena";
    if (r->via == MT_DOM_bundled) return "bundled allocator";
    const mt_stackfmt_frame_t *f[64];
    int n = 0;
    *rc = r->stack ? mt_stackfmt_frames(sf, r->stack, f, 64, &n, NULL) : 0;
    if (r->via == MT_DOM_libc) return "large malloc chunk"; /* made inside a malloc call */
    for (int i = 0; i < n; i++) {
        const char *fn = f[i]->function;
        if (!fn) continue;
        if (!strcmp(fn, "new_heap") || !strcmp(fn, "alloc_new_heap") || !strcmp(fn, "shrink_heap"))
            return "malloc arena";
        if (!strncmp(fn, "_PyObject_Arena", 15)) return "pymalloc arena";
        if (!strcmp(fn, "allocate_stack") || !strcmp(fn, "pthread_create")) return "thread stack";
        if (!strncmp(fn, "_dl_", 4)) return "loader";
    }
    for (int i = 0; i < n; i++) {
        const char *fn = f[i]->function;
        if (fn && (!strcmp(fn, "sysmalloc") || !strcmp(fn, "__libc_malloc") || !strcmp(fn, "malloc") ||
                   !strcmp(fn, "calloc") || !strcmp(fn, "realloc")))
            return "large malloc chunk";
    }
    return "program";
}

int mt_cmd_maps(int argc, char **argv)
{
    const char *at_s = NULL, *time_s = NULL;
    const mt_cli_opt_t opts[] = {{"--at", NULL, 1, &at_s}, {"--time", NULL, 1, &time_s}};
    mt_cli_t c = {.cmd = "maps", .synopsis = SYNOPSIS, .usage = mt_usage_maps, .has_csv = 1};
    int status = mt_cli_parse(&c, argc, argv, opts, 2);
    if (status >= 0) return status;
    int64_t at = -1, at_ts = -1;
    if (at_s && time_s) return mt_cli_usage_error(&c, "%s", "--at and --time: one moment only");
    if (at_s && mt_cli_int(at_s, 0, INT64_MAX, &at))
        return mt_cli_usage_error(&c, "--at wants a seq (an event's number), not '%s'", at_s);
    if (time_s && mt_cli_ms(time_s, &at_ts))
        return mt_cli_usage_error(&c, "--time wants milliseconds (0 or more), not '%s'", time_s);
    status = 1;

    mt_db_t *db = NULL;
    mt_stmt_t *st = NULL;
    mt_stackfmt_t *sf = NULL;
    mt_table_t *t = NULL;
    proc_t *procs = NULL;
    size_t nprocs = 0;
    int64_t events = 0;
    int rc;
    if (mt_cli_open(&c, &db)) goto out;
    /* (the OS layer's events: none is ever folded into another's row, so
     * event_data's rows are all of them; mt_evread is not needed) */
    rc = mt_stmt_prepare(db,
                         "SELECT e.seq, e.kind, t.process_id, e.addr, e.size, e.old_addr, e.stack, e.via,"
                         " e.failed FROM event_data e JOIN threads t ON t.id = e.thread"
                         " WHERE e.kind BETWEEN 10 AND 14 ORDER BY e.seq",
                         &st);
    mt_times_t times = {0};
    if (!rc) rc = mt_times_open(db, &times);
    while (!rc && (rc = mt_stmt_step(st)) == 1) {
        rc = 0;
        int64_t seq = mt_stmt_int(st, 0), ts = mt_times_at(&times, seq);
        if ((at >= 0 && seq > at) || (at_ts >= 0 && ts > at_ts)) break;
        if (mt_stmt_int(st, 8)) continue; /* failed */
        int kind = (int)mt_stmt_int(st, 1);
        int64_t process = mt_stmt_int(st, 2);
        proc_t *p = NULL;
        for (size_t i = 0; i < nprocs && !p; i++)
            if (procs[i].process == process) p = &procs[i];
        if (!p) {
            proc_t *v = realloc(procs, (nprocs + 1) * sizeof *v);
            if (!v) {
                rc = MT_ENOMEM;
                break;
            }
            procs = v;
            p = &procs[nprocs++];
            memset(p, 0, sizeof *p);
            p->process = process;
        }
        uint64_t addr = (uint64_t)mt_stmt_int(st, 3), old = (uint64_t)mt_stmt_int(st, 5);
        int64_t size = mt_stmt_int_or(st, 4, 0);
        region_t nr = {addr, addr + (uint64_t)(size > 0 ? size : 0), seq, mt_stmt_int(st, 6),
                       (int)mt_stmt_int_or(st, 7, -1), 0};
        events++;
        switch (kind) {
        case MT_EV_mmap:
            if (addr && size > 0) rc = add(p, &nr);
            break;
        case MT_EV_munmap:
            if (size > 0) rc = cut(p, addr, addr + (uint64_t)size);
            break;
        case MT_EV_mremap:
            for (size_t i = 0; i < p->n; i++)
                if (p->r[i].start == old) {
                    nr.seq = p->r[i].seq; /* the mapping keeps the call that made it */
                    nr.stack = p->r[i].stack;
                    nr.via = p->r[i].via;
                    rc = cut(p, p->r[i].start, p->r[i].end);
                    break;
                }
            if (!rc && addr && size > 0) rc = add(p, &nr);
            break;
        case MT_EV_brk: /* addr: the requested break; size: 0 when it moved there */
            if (size == 0 && addr) {
                if (!p->has_brk) {
                    p->has_brk = 1;
                    p->brk_start = addr;
                    p->brk_seq = seq;
                    p->brk_stack = nr.stack;
                }
                p->brk_end = addr;
            }
            break;
        case MT_EV_sbrk: /* addr: the previous break; size: the increment */
            if (addr) {
                if (!p->has_brk) {
                    p->has_brk = 1;
                    p->brk_start = addr;
                    p->brk_seq = seq;
                    p->brk_stack = nr.stack;
                }
                p->brk_end = addr + (uint64_t)size;
            }
            break;
        }
    }
    mt_stmt_finalize(st);
    st = NULL;
    int trc = mt_times_close(&times);
    if (rc >= 0 && trc) rc = trc;
    if (rc < 0) goto fail;
    if ((rc = mt_stackfmt_open(db, &sf)) || (rc = mt_table_create(cols, NCOLS, &t))) goto fail;
    int64_t total = 0, nregions = 0;
    for (size_t k = 0; k < nprocs; k++) {
        proc_t *p = &procs[k];
        if (p->has_brk && p->brk_end > p->brk_start) {
            region_t b = {p->brk_start, p->brk_end, p->brk_seq, p->brk_stack, -1, 1};
            if ((rc = add(p, &b))) goto fail;
        }
        for (size_t i = 0; i < p->n; i++) {
            const region_t *r = &p->r[i];
            const char *w = what(sf, r, &rc);
            if (rc) goto fail;
            if ((rc = mt_table_row(t))) goto fail;
            mt_table_int(t, C_PROC, p->process);
            int64_t pid = mt_cli_pid(&c, p->process);
            if (pid >= 0) mt_table_int(t, C_PID, pid);
            mt_table_int(t, C_START, (int64_t)r->start);
            mt_table_int(t, C_END, (int64_t)r->end);
            mt_table_int(t, C_SIZE, (int64_t)(r->end - r->start));
            mt_table_text(t, C_WHAT, w);
            mt_table_int(t, C_SEQ, r->seq);
            if (r->stack) mt_table_int(t, C_STACK, r->stack);
            total += (int64_t)(r->end - r->start);
            nregions++;
        }
    }
    if (c.csv) {
        rc = mt_table_write(t, sf, 1, stdout, NULL);
    } else if (!events) {
        printf("no OS-layer events in %s: no mmap, munmap, mremap, brk or sbrk was recorded\n", c.path);
    } else {
        char a[64], b[32];
        printf("mappings live %s in %s: %s, %s in all\n\n",
               at >= 0 ? "after the event numbered --at" : at_ts >= 0 ? "at --time" : "at the end", c.path,
               mt_fmt_count(b, sizeof b, nregions), mt_cli_bytes(a, sizeof a, total));
        rc = mt_table_write(t, sf, 0, stdout, "  ");
    }
    if (rc) goto fail;
    status = mt_cli_flush(&c, stdout);
    goto out;
fail:
    mt_cli_fail(&c, db, rc);
out:
    mt_stmt_finalize(st);
    mt_table_destroy(t);
    mt_stackfmt_close(sf);
    for (size_t k = 0; k < nprocs; k++) free(procs[k].r);
    free(procs);
    mt_db_close(db);
    mt_cli_free(&c);
    return status;
}
